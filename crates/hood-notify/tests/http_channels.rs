#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Webhook, Slack and Telegram against real loopback HTTP servers.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hood_notify::{
    render_text, verify_webhook_signature, ChannelConfig, Notification, NotifierConfig, SendError,
};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{assert_no_secret, notification, notifier, notifier_with, strict_notifier};

const WEBHOOK_SECRET: &str = "whsec_TopSecretSigningKey";
const SLACK_PATH: &str = "/services/T0000/B0000/SlackPathSecret";
const BOT_TOKEN: &str = "123456:TelegramBotTokenSecret";

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver answering from a script of responses (then 200 "ok"), and
/// recording every request.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

#[derive(Clone)]
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Option<Duration>,
}

fn answer(status: u16, body: &str) -> Scripted {
    Scripted {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
        delay: None,
    }
}

impl Receiver {
    fn with_script(script: Vec<Scripted>) -> Self {
        Self {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn start(&self) -> SocketAddr {
        let app = Router::new()
            .fallback(record_and_answer)
            .with_state(self.clone());
        serve(app).await
    }
}

async fn record_and_answer(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    r.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let next = r.script.lock().unwrap().pop_front();
    let Some(s) = next else {
        return (StatusCode::OK, "ok").into_response();
    };
    if let Some(d) = s.delay {
        tokio::time::sleep(d).await;
    }
    let mut response = (StatusCode::from_u16(s.status).unwrap(), s.body).into_response();
    for (name, value) in s.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn webhook(addr: SocketAddr) -> ChannelConfig {
    ChannelConfig::Webhook {
        url: format!("http://{addr}/hooks/hood"),
        secret: WEBHOOK_SECRET.into(),
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.headers
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_delivery_is_signed_and_carries_the_headers() {
    let rx = Receiver::default();
    let addr = rx.start().await;
    let n = notification();
    notifier().send(&webhook(addr), &n).await.unwrap();

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/hooks/hood");
    assert_eq!(header(req, "content-type"), "application/json");
    assert_eq!(header(req, "hood-delivery"), "dlv_01HZX");
    assert_eq!(header(req, "hood-event"), "incident.opened");
    assert!(header(req, "user-agent").starts_with("hood-notify/"));

    let sig = header(req, "hood-signature");
    assert!(sig.starts_with("t=") && sig.contains(",v1="), "{sig}");
    assert!(verify_webhook_signature(
        WEBHOOK_SECRET,
        sig,
        &req.body,
        now_s(),
        300
    ));
    assert!(!verify_webhook_signature(
        "another-secret",
        sig,
        &req.body,
        now_s(),
        300
    ));
    assert!(!verify_webhook_signature(
        WEBHOOK_SECRET,
        sig,
        &req.body,
        now_s() + 3600,
        300
    ));
    let mut tampered = req.body.to_vec();
    tampered.push(b' ');
    assert!(!verify_webhook_signature(
        WEBHOOK_SECRET,
        sig,
        &tampered,
        now_s(),
        300
    ));

    // The body is the notification itself.
    let body: Notification = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, n);
    let raw: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(raw["node_id"], "nod_9");
    assert_eq!(raw["occurred_at_ms"], 1_700_000_000_000_i64);
}

#[tokio::test]
async fn webhook_500_then_200_is_retryable_then_delivered() {
    let rx = Receiver::with_script(vec![answer(500, "upstream exploded")]);
    let addr = rx.start().await;
    let notifier = notifier();
    let channel = webhook(addr);
    let n = notification();

    let err = notifier.send(&channel, &n).await.unwrap_err();
    assert!(
        matches!(err, SendError::Http { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("500"), "{err}");
    assert_no_secret(&err.to_string());

    notifier.send(&channel, &n).await.unwrap();
    let seen = rx.seen();
    assert_eq!(seen.len(), 2);
    // Same delivery id both times: the receiver can de-duplicate.
    assert_eq!(
        header(&seen[0], "hood-delivery"),
        header(&seen[1], "hood-delivery")
    );
}

#[tokio::test]
async fn webhook_400_is_permanent() {
    let rx = Receiver::with_script(vec![answer(400, "bad payload")]);
    let addr = rx.start().await;
    let err = notifier()
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Http { status: 400, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("bad payload"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn webhook_429_and_408_are_retryable_and_429_carries_retry_after() {
    let mut limited = answer(429, "slow down");
    limited.headers.push(("retry-after", "7".into()));
    let rx = Receiver::with_script(vec![limited, answer(408, "")]);
    let addr = rx.start().await;
    let notifier = notifier();
    let err = notifier
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let err = notifier
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Http { status: 408, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn webhook_redirect_is_not_followed() {
    let mut moved = answer(307, "");
    moved.headers.push(("location", "/elsewhere".into()));
    let rx = Receiver::with_script(vec![moved]);
    let addr = rx.start().await;
    let err = notifier()
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Http { status: 307, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(rx.seen().len(), 1, "the signed body went nowhere else");
}

#[tokio::test]
async fn webhook_timeout_is_retryable() {
    let mut slow = answer(200, "ok");
    slow.delay = Some(Duration::from_secs(3));
    let rx = Receiver::with_script(vec![slow]);
    let addr = rx.start().await;
    let notifier = notifier_with(NotifierConfig {
        timeout: Duration::from_millis(300),
        ..support::config()
    });
    let err = notifier
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn webhook_connection_refused_is_retryable() {
    let port = closed_port().await;
    let channel = ChannelConfig::Webhook {
        url: format!("http://127.0.0.1:{port}/hook"),
        secret: WEBHOOK_SECRET.into(),
    };
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn invalid_config_is_permanent_and_sends_nothing() {
    let rx = Receiver::default();
    let addr = rx.start().await;
    let channel = ChannelConfig::Webhook {
        url: format!("http://{addr}/hook"),
        secret: String::new(),
    };
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Config(e) => assert_eq!(e.field, "secret"),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(rx.seen().is_empty());
}

// ------------------------------------------------------------------ slack

fn slack(addr: SocketAddr) -> ChannelConfig {
    ChannelConfig::Slack {
        webhook_url: format!("http://{addr}{SLACK_PATH}"),
    }
}

#[tokio::test]
async fn slack_posts_the_incoming_webhook_text_payload() {
    let rx = Receiver::default();
    let addr = rx.start().await;
    let mut n = notification();
    n.title = "<!channel> eth & co".into();
    notifier().send(&slack(addr), &n).await.unwrap();

    let seen = rx.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, SLACK_PATH);
    assert!(header(&seen[0], "content-type").starts_with("application/json"));
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(
        text,
        render_text(&n)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    );
    assert!(text.starts_with("[CRITICAL] node_down opened: &lt;!channel&gt; eth &amp; co"));
    assert!(text.contains("node nod_9 · chain ethereum"));
}

#[tokio::test]
async fn slack_404_is_permanent_and_the_error_hides_the_url_path() {
    // A receiver that echoes the path back, as some proxies do.
    let rx = Receiver::with_script(vec![answer(404, &format!("no_service for {SLACK_PATH}"))]);
    let addr = rx.start().await;
    let err = notifier()
        .send(&slack(addr), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Http { status: 404, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no_service"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn slack_503_is_retryable() {
    let rx = Receiver::with_script(vec![answer(503, "")]);
    let addr = rx.start().await;
    let err = notifier()
        .send(&slack(addr), &notification())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn slack_connection_error_hides_the_url_path() {
    let port = closed_port().await;
    let channel = ChannelConfig::Slack {
        webhook_url: format!("http://127.0.0.1:{port}{SLACK_PATH}"),
    };
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_no_secret(&format!("{err} {err:?}"));
}

// --------------------------------------------------------------- telegram

/// A Bot API double: `POST /bot<token>/sendMessage`, answering by chat id
/// with the documented JSON.
#[derive(Clone, Default)]
struct Telegram {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

async fn telegram_api(State(t): State<Telegram>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    t.seen.lock().unwrap().push((path.clone(), body.clone()));
    let reply = |status: u16, v: Value| {
        (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
    };
    let Some(token) = path
        .strip_prefix("/bot")
        .and_then(|p| p.strip_suffix("/sendMessage"))
    else {
        return reply(
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        );
    };
    if token != BOT_TOKEN {
        return reply(
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        );
    }
    match body["chat_id"].as_str().unwrap_or("") {
        "-100404" => reply(
            400,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
        ),
        "-100429" => reply(
            429,
            json!({
                "ok": false, "error_code": 429,
                "description": "Too Many Requests: retry after 5",
                "parameters": {"retry_after": 5}
            }),
        ),
        "-100200" => reply(
            200,
            json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
        ),
        "-100999" => (StatusCode::OK, "<html>captive portal</html>").into_response(),
        "-100401" => reply(
            400,
            json!({"ok": false, "error_code": 400,
                   "description": format!("Bad Request: bot{BOT_TOKEN} cannot post here")}),
        ),
        _ => reply(
            200,
            json!({"ok": true, "result": {"message_id": 17, "chat": {"id": body["chat_id"]}, "text": body["text"]}}),
        ),
    }
}

impl Telegram {
    async fn start(&self) -> SocketAddr {
        let app = Router::new()
            .fallback(telegram_api)
            .with_state(self.clone());
        serve(app).await
    }
}

fn telegram(chat_id: &str) -> ChannelConfig {
    ChannelConfig::Telegram {
        bot_token: BOT_TOKEN.into(),
        chat_id: chat_id.into(),
        api_base: None,
    }
}

fn telegram_notifier(addr: SocketAddr) -> hood_notify::Notifier {
    notifier_with(NotifierConfig {
        telegram_api_base: Some(format!("http://{addr}")),
        ..support::config()
    })
}

#[tokio::test]
async fn telegram_sends_the_message_to_the_bot_path() {
    let api = Telegram::default();
    let addr = api.start().await;
    let n = notification();
    telegram_notifier(addr)
        .send(&telegram("-1001234"), &n)
        .await
        .unwrap();

    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (path, body) = &seen[0];
    assert_eq!(path, &format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(body["chat_id"], "-1001234");
    assert_eq!(body["text"], render_text(&n));
    assert_eq!(body["disable_web_page_preview"], true);
}

#[tokio::test]
async fn telegram_channel_api_base_takes_precedence() {
    let api = Telegram::default();
    let addr = api.start().await;
    let channel = ChannelConfig::Telegram {
        bot_token: BOT_TOKEN.into(),
        chat_id: "@hood_alerts".into(),
        api_base: Some(format!("http://{addr}/")),
    };
    // The installation-wide override points nowhere; the channel wins.
    let port = closed_port().await;
    let notifier = notifier_with(NotifierConfig {
        telegram_api_base: Some(format!("http://127.0.0.1:{port}")),
        ..support::config()
    });
    notifier.send(&channel, &notification()).await.unwrap();
    assert_eq!(api.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn telegram_ok_false_400_is_permanent() {
    let api = Telegram::default();
    let addr = api.start().await;
    let err = telegram_notifier(addr)
        .send(&telegram("-100404"), &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Telegram {
            error_code,
            description,
            ..
        } => {
            assert_eq!(*error_code, 400);
            assert_eq!(description, "Bad Request: chat not found");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn telegram_429_is_retryable_with_retry_after() {
    let api = Telegram::default();
    let addr = api.start().await;
    let err = telegram_notifier(addr)
        .send(&telegram("-100429"), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Telegram {
                error_code: 429,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn telegram_body_is_read_even_on_http_200() {
    let api = Telegram::default();
    let addr = api.start().await;
    let notifier = telegram_notifier(addr);
    let err = notifier
        .send(&telegram("-100200"), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Telegram {
                error_code: 502,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());

    let err = notifier
        .send(&telegram("-100999"), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::InvalidResponse { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn telegram_errors_never_show_the_token() {
    let api = Telegram::default();
    let addr = api.start().await;
    let notifier = telegram_notifier(addr);

    // The API quoting the token back.
    let err = notifier
        .send(&telegram("-100401"), &notification())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("cannot post here"), "{err}");
    assert_no_secret(&format!("{err} {err:?}"));

    // A wrong token: 401, permanent.
    let wrong = ChannelConfig::Telegram {
        bot_token: "999:OtherToken".into(),
        chat_id: "1".into(),
        api_base: None,
    };
    let err = notifier.send(&wrong, &notification()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Telegram {
                error_code: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("OtherToken"), "{err}");

    // No server at all: the URL (with the token) is stripped from the error.
    let port = closed_port().await;
    let channel = ChannelConfig::Telegram {
        bot_token: BOT_TOKEN.into(),
        chat_id: "1".into(),
        api_base: Some(format!("http://127.0.0.1:{port}")),
    };
    let err = notifier.send(&channel, &notification()).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_no_secret(&format!("{err} {err:?}"));
}

// ----------------------------------------------------------- SSRF guard

#[tokio::test]
async fn loopback_webhook_is_refused_by_default_and_sends_nothing() {
    let rx = Receiver::default();
    let addr = rx.start().await;
    let err = strict_notifier()
        .send(&webhook(addr), &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Destination { channel, reason } => {
            assert_eq!(*channel, "webhook");
            assert_eq!(reason.range.name, "loopback");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(rx.seen().is_empty());
    // The same receiver is reached once the operator allows loopback.
    notifier()
        .send(&webhook(addr), &notification())
        .await
        .unwrap();
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_resolution() {
    let rx = Receiver::default();
    let addr = rx.start().await;
    let channel = ChannelConfig::Webhook {
        url: format!("http://localhost:{}/hooks/secret-path", addr.port()),
        secret: WEBHOOK_SECRET.into(),
    };
    let err = strict_notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Destination { reason, .. } => {
            assert_eq!(reason.host, "localhost");
            assert!(reason.ip.is_loopback(), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("secret-path"), "{err}");
    assert!(rx.seen().is_empty());
}

#[tokio::test]
async fn slack_and_telegram_destinations_are_guarded() {
    let slack = ChannelConfig::Slack {
        webhook_url: format!("http://10.1.2.3{SLACK_PATH}"),
    };
    let err = strict_notifier()
        .send(&slack, &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Destination {
                channel: "slack",
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&format!("{err} {err:?}"));

    // The installation's Bot API override is guarded too.
    let api = Telegram::default();
    let addr = api.start().await;
    let strict_telegram = notifier_with(NotifierConfig {
        telegram_api_base: Some(format!("http://{addr}")),
        destinations: hood_notify::DestinationPolicy::default(),
        ..support::config()
    });
    let err = strict_telegram
        .send(&telegram("1"), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Destination {
                channel: "telegram",
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_secret(&format!("{err} {err:?}"));
    assert!(api.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn link_local_metadata_address_is_refused_even_with_loopback_allowed() {
    let channel = ChannelConfig::Webhook {
        url: "http://169.254.169.254/latest/meta-data/".into(),
        secret: WEBHOOK_SECRET.into(),
    };
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Destination { reason, .. } => assert_eq!(reason.range.name, "link-local"),
        other => panic!("{other:?}"),
    }
}

// -------------------------------------------------------------- redaction

#[test]
fn debug_and_redacted_hide_every_secret() {
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let channels = [
        webhook(addr),
        slack(addr),
        telegram("1"),
        ChannelConfig::Email {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 465,
            tls: hood_notify::SmtpTls::Implicit,
            from: "hood@example.com".into(),
            to: vec!["ops@example.com".into()],
            username: Some("hood".into()),
            password: Some("SmtpPassw0rdSecret".into()),
        },
    ];
    for c in &channels {
        assert_no_secret(&format!("{c:?} {c:#?}"));
        assert_no_secret(&c.redacted().to_string());
        // Round trip through the stored JSON keeps the secrets (storage
        // needs them); only the views hide them.
        let stored = serde_json::to_string(c).unwrap();
        let back: ChannelConfig = serde_json::from_str(&stored).unwrap();
        assert_eq!(&back, c);
    }
    assert_eq!(
        channels[1].redacted(),
        json!({"kind": "slack", "webhook_url": "http://127.0.0.1:1/***"})
    );
}
