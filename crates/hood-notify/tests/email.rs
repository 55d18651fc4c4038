#![allow(clippy::expect_used, clippy::unwrap_used)]
//! SMTP email against the test SMTP server in `support/smtp.rs`.

mod support;

use base64::Engine as _;
use hood_notify::{ChannelConfig, NotifierConfig, SendError, SmtpTls};
use std::time::Duration;
use support::smtp::{tls_for_localhost, Behavior, SmtpServer};
use support::{assert_no_secret, notification, notifier, notifier_with};

const PASSWORD: &str = "SmtpPassw0rdSecret";

fn email(port: u16) -> ChannelConfig {
    ChannelConfig::Email {
        smtp_host: "127.0.0.1".into(),
        smtp_port: port,
        tls: SmtpTls::None,
        from: "hood@alerts.example.com".into(),
        to: vec!["ops@example.com".into(), "oncall@example.org".into()],
        username: None,
        password: None,
    }
}

fn with_credentials(mut c: ChannelConfig, tls: SmtpTls, host: &str) -> ChannelConfig {
    if let ChannelConfig::Email {
        username,
        password,
        tls: t,
        smtp_host,
        ..
    } = &mut c
    {
        *username = Some("hood".into());
        *password = Some(PASSWORD.into());
        *t = tls;
        *smtp_host = host.into();
    }
    c
}

/// The header block of a message, one entry per (unfolded) header line.
fn headers(message: &str) -> Vec<String> {
    let head = message.split_once("\r\n\r\n").expect("header/body split").0;
    head.replace("\r\n ", " ")
        .split("\r\n")
        .map(str::to_owned)
        .collect()
}

fn header<'a>(headers: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    headers
        .iter()
        .find_map(|h| h.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} header in {headers:#?}"))
}

fn body(message: &str) -> &str {
    message.split_once("\r\n\r\n").expect("body").1
}

#[tokio::test]
async fn email_is_delivered_with_envelope_headers_and_dot_stuffing() {
    let server = SmtpServer::start(Behavior::default()).await;
    let mut n = notification();
    // A line starting with "." and a line that is only "." (which would end
    // DATA early without dot-stuffing).
    n.detail = "first line\n.hidden line\n.\nlast line".into();
    notifier().send(&email(server.port), &n).await.unwrap();

    let s = server.session();
    assert_eq!(s.hello.as_deref(), Some("EHLO hood.test"));
    assert_eq!(s.mail_from.as_deref(), Some("hood@alerts.example.com"));
    assert_eq!(s.rcpt_to, ["ops@example.com", "oncall@example.org"]);
    assert!(s.auth.is_none());
    assert!(s.quit);
    assert!(!s.bare_lf, "every line must end in CRLF");
    let verbs: Vec<&str> = s
        .commands
        .iter()
        .map(|c| c.split([' ', ':']).next().unwrap())
        .collect();
    assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]);

    let raw = s.raw_data.unwrap();
    assert!(raw.contains("\r\n..hidden line\r\n"), "{raw}");
    assert!(raw.contains("\r\n..\r\n"), "{raw}");
    let message = s.message.unwrap();
    assert!(message.contains("\r\n.hidden line\r\n"), "{message}");
    assert!(message.contains("\r\n.\r\nlast line\r\n"), "{message}");
    assert!(message.is_ascii(), "7-bit clean");

    let h = headers(&message);
    assert_eq!(header(&h, "From"), "hood@alerts.example.com");
    assert_eq!(header(&h, "To"), "ops@example.com, oncall@example.org");
    assert_eq!(
        header(&h, "Subject"),
        "[CRITICAL] node_down opened: Node eth-main-1 is down"
    );
    assert_eq!(header(&h, "Message-ID"), "<hood.dlv_01HZX@hood.test>");
    assert_eq!(header(&h, "MIME-Version"), "1.0");
    assert_eq!(header(&h, "Content-Type"), "text/plain; charset=utf-8");
    assert_eq!(header(&h, "Content-Transfer-Encoding"), "quoted-printable");
    let date = header(&h, "Date");
    assert!(date.ends_with(" +0000") && date.contains(", "), "{date}");

    let text = body(&message);
    assert!(
        text.starts_with("[CRITICAL] node_down opened: Node eth-main-1 is down\r\nfirst line\r\n"),
        "{text}"
    );
    // "·" (U+00B7) in quoted-printable.
    assert!(text.contains("node nod_9 =C2=B7 chain ethereum"), "{text}");
}

#[tokio::test]
async fn non_ascii_subject_is_an_encoded_word() {
    let server = SmtpServer::start(Behavior::default()).await;
    let mut n = notification();
    n.title = "Nœud en panne — ethereum".into();
    notifier().send(&email(server.port), &n).await.unwrap();
    let message = server.session().message.unwrap();
    assert!(message.is_ascii());
    let h = headers(&message);
    let subject = header(&h, "Subject");
    let decoded: String = subject
        .split(' ')
        .map(|w| {
            let b64 = w
                .strip_prefix("=?utf-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap_or_else(|| panic!("not an encoded word: {w}"));
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(
        decoded,
        "[CRITICAL] node_down opened: Nœud en panne — ethereum"
    );
}

#[tokio::test]
async fn ehlo_refused_falls_back_to_helo() {
    let server = SmtpServer::start(Behavior {
        ehlo: false,
        ..Behavior::default()
    })
    .await;
    notifier()
        .send(&email(server.port), &notification())
        .await
        .unwrap();
    let s = server.session();
    assert_eq!(s.hello.as_deref(), Some("HELO hood.test"));
    assert_eq!(s.commands[0], "EHLO hood.test");
    assert!(s.message.is_some());
}

#[tokio::test]
async fn rcpt_550_is_permanent_and_nothing_is_sent() {
    let server = SmtpServer::start(Behavior {
        rcpt_reply: Some((
            "oncall@example.org".into(),
            "550 5.1.1 <oncall@example.org>: Recipient address rejected".into(),
        )),
        ..Behavior::default()
    })
    .await;
    let err = notifier()
        .send(&email(server.port), &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Smtp {
            stage,
            code,
            message,
        } => {
            assert_eq!(*stage, "RCPT TO");
            assert_eq!(*code, 550);
            assert!(message.contains("oncall@example.org"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    let s = server.session();
    assert!(s.message.is_none(), "no DATA after a refused recipient");
    assert!(s.quit, "the client says goodbye");
}

#[tokio::test]
async fn rcpt_450_is_retryable() {
    let server = SmtpServer::start(Behavior {
        rcpt_reply: Some((
            "ops@example.com".into(),
            "450 4.2.0 <ops@example.com>: mailbox busy, try later".into(),
        )),
        ..Behavior::default()
    })
    .await;
    let err = notifier()
        .send(&email(server.port), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Smtp { code: 450, .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn greeting_421_is_retryable() {
    let server = SmtpServer::start(Behavior {
        greeting: "421 4.3.2 mx.test too busy, closing".into(),
        ..Behavior::default()
    })
    .await;
    let err = notifier()
        .send(&email(server.port), &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Smtp { stage, code, .. } => {
            assert_eq!(*stage, "greeting");
            assert_eq!(*code, 421);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn greeting_554_is_permanent_and_the_client_quits() {
    let server = SmtpServer::start(Behavior {
        greeting: "554 5.7.1 no service for you".into(),
        ..Behavior::default()
    })
    .await;
    let err = notifier()
        .send(&email(server.port), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Smtp { code: 554, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(server.session().quit);
}

#[tokio::test]
async fn silent_server_times_out_retryably() {
    let server = SmtpServer::start(Behavior {
        silent: true,
        ..Behavior::default()
    })
    .await;
    let notifier = notifier_with(NotifierConfig {
        timeout: Duration::from_millis(300),
        smtp_hello_name: "hood.test".into(),
        telegram_api_base: None,
    });
    let started = std::time::Instant::now();
    let err = notifier
        .send(&email(server.port), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Timeout {
                stage: "greeting",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = notifier()
        .send(&email(port), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn credentials_are_not_sent_over_plaintext_by_default() {
    let server = SmtpServer::start(Behavior {
        auth: Some(("hood".into(), PASSWORD.into())),
        ..Behavior::default()
    })
    .await;
    let channel = with_credentials(email(server.port), SmtpTls::None, "127.0.0.1");
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
    assert!(server.sessions().is_empty(), "refused before connecting");
}

#[tokio::test]
async fn plaintext_auth_when_explicitly_allowed() {
    let server = SmtpServer::start(Behavior {
        auth: Some(("hood".into(), PASSWORD.into())),
        ..Behavior::default()
    })
    .await;
    let channel = with_credentials(email(server.port), SmtpTls::None, "127.0.0.1");
    notifier()
        .with_plaintext_smtp_auth(true)
        .send(&channel, &notification())
        .await
        .unwrap();
    let s = server.session();
    assert_eq!(s.auth, Some(("hood".into(), PASSWORD.into())));
    assert!(s.commands.iter().any(|c| c.starts_with("AUTH PLAIN ")));
    assert!(s.message.is_some());
}

#[tokio::test]
async fn auth_plain_over_implicit_tls() {
    let (tls, ca_der) = tls_for_localhost();
    let server = SmtpServer::start(Behavior {
        auth: Some(("hood".into(), PASSWORD.into())),
        tls: Some(tls),
        ..Behavior::default()
    })
    .await;
    let channel = with_credentials(email(server.port), SmtpTls::Implicit, "localhost");
    notifier()
        .with_smtp_root_certificates([ca_der])
        .unwrap()
        .send(&channel, &notification())
        .await
        .unwrap();
    let s = server.session();
    assert!(s.tls);
    assert_eq!(s.auth, Some(("hood".into(), PASSWORD.into())));
    assert_eq!(s.rcpt_to.len(), 2);
    assert!(s.message.is_some());
    assert!(s.quit);
}

#[tokio::test]
async fn wrong_password_is_permanent_and_not_shown() {
    let (tls, ca_der) = tls_for_localhost();
    let server = SmtpServer::start(Behavior {
        auth: Some(("hood".into(), "the-real-password".into())),
        tls: Some(tls),
        ..Behavior::default()
    })
    .await;
    let channel = with_credentials(email(server.port), SmtpTls::Implicit, "localhost");
    let err = notifier()
        .with_smtp_root_certificates([ca_der])
        .unwrap()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Smtp {
                stage: "AUTH",
                code: 535,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
    assert!(server.session().mail_from.is_none());
}

#[tokio::test]
async fn untrusted_certificate_is_a_permanent_tls_error() {
    let (tls, _ca_der) = tls_for_localhost();
    let server = SmtpServer::start(Behavior {
        tls: Some(tls),
        ..Behavior::default()
    })
    .await;
    let mut channel = email(server.port);
    if let ChannelConfig::Email { tls, smtp_host, .. } = &mut channel {
        *tls = SmtpTls::Implicit;
        *smtp_host = "localhost".into();
    }
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_without_auth_plain_is_refused() {
    // No AUTH advertised at all.
    let server = SmtpServer::start(Behavior::default()).await;
    let channel = with_credentials(email(server.port), SmtpTls::None, "127.0.0.1");
    let err = notifier()
        .with_plaintext_smtp_auth(true)
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let s = server.session();
    assert!(s.auth.is_none() && s.mail_from.is_none());
    assert!(s.quit);
}

#[tokio::test]
async fn invalid_recipient_is_a_config_error() {
    let mut channel = email(1);
    if let ChannelConfig::Email { to, .. } = &mut channel {
        to.push("evil@example.com>\r\nRCPT TO:<spam@example.net".into());
    }
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    match &err {
        SendError::Config(e) => assert_eq!(e.field, "to[2]"),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
}
