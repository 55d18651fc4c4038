#![allow(clippy::expect_used, clippy::unwrap_used)]
//! SMTP email against a real SMTP server (aiosmtpd, started per test by
//! `hood_testkit::smtp`): plain, STARTTLS, implicit TLS, AUTH, refusals and
//! the destination guard. Without aiosmtpd the tests skip loudly (and fail
//! under CI).

mod support;

use hood_notify::{render_subject, render_text, ChannelConfig, NotifierConfig, SendError, SmtpTls};
use hood_testkit::smtp::{smtpd_python, SinkOptions, SinkTls, SmtpSink};
use std::time::Duration;
use support::{assert_no_secret, notification, notifier, notifier_with, strict_notifier};

const PASSWORD: &str = "SmtpPassw0rdSecret";
const FROM: &str = "hood@alerts.example.com";
const TO: [&str; 2] = ["ops@example.com", "oncall@example.org"];

fn email(host: &str, port: u16, tls: SmtpTls) -> ChannelConfig {
    ChannelConfig::Email {
        smtp_host: host.into(),
        smtp_port: port,
        tls,
        from: FROM.into(),
        to: TO.iter().map(|s| (*s).to_owned()).collect(),
        username: None,
        password: None,
    }
}

fn with_credentials(mut c: ChannelConfig, password: &str) -> ChannelConfig {
    if let ChannelConfig::Email {
        username,
        password: p,
        ..
    } = &mut c
    {
        *username = Some("hood".into());
        *p = Some(password.into());
    }
    c
}

/// The server, or `None` after a loud skip when aiosmtpd is not installed.
async fn sink(test: &str, options: SinkOptions) -> Option<SmtpSink> {
    let python = smtpd_python(test)?;
    Some(SmtpSink::start(&python, options).await)
}

fn auth_options(tls: SinkTls) -> SinkOptions {
    SinkOptions {
        tls,
        auth: Some(("hood".into(), PASSWORD.into())),
        ..SinkOptions::default()
    }
}

/// A notifier trusting the sink's self-signed certificate.
fn trusting(server: &SmtpSink) -> hood_notify::Notifier {
    notifier()
        .with_smtp_root_certificates([server.certificate_der.clone()])
        .unwrap()
}

#[tokio::test]
async fn plain_smtp_delivers_the_incident_with_envelope_headers_and_body() {
    let Some(server) = sink("plain_smtp_delivers", SinkOptions::default()).await else {
        return;
    };
    let mut n = notification();
    // A line starting with "." and a line that is only "." (which would end
    // DATA early without dot-stuffing).
    n.detail = "first line\n.hidden line\n.\nlast line".into();
    notifier()
        .send(&email("127.0.0.1", server.port, SmtpTls::None), &n)
        .await
        .unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.mail_from, FROM);
    assert_eq!(m.rcpt_tos, TO);
    assert!(!m.tls);
    assert_eq!(m.auth_user, None);
    assert_eq!(m.header("From"), Some(FROM));
    assert_eq!(m.header("To"), Some("ops@example.com, oncall@example.org"));
    assert_eq!(
        m.subject,
        "[CRITICAL] node_down opened: Node eth-main-1 is down"
    );
    assert_eq!(m.subject, render_subject(&n));
    assert_eq!(m.header("Message-ID"), Some("<hood.dlv_01HZX@hood.test>"));
    assert_eq!(m.header("Auto-Submitted"), Some("auto-generated"));
    assert_eq!(m.header("X-Hood-Delivery"), Some("dlv_01HZX"));
    assert_eq!(m.header("X-Hood-Event"), Some("incident.opened"));
    assert!(
        m.raw
            .contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{}",
        m.raw
    );
    let date = m.header("Date").unwrap();
    assert!(date.ends_with("+0000") && date.contains(", "), "{date}");
    // The decoded body is exactly the rendered text, the dot lines intact.
    assert_eq!(m.body.trim_end_matches('\n'), render_text(&n));
    assert!(
        m.body.contains("\n.hidden line\n.\nlast line"),
        "{}",
        m.body
    );
    assert!(m.raw.is_ascii(), "7-bit clean: {}", m.raw);
    assert_eq!(server.count("quit"), 1, "the client says goodbye");
}

#[tokio::test]
async fn non_ascii_subject_and_body_arrive_intact() {
    let Some(server) = sink("non_ascii_subject", SinkOptions::default()).await else {
        return;
    };
    let mut n = notification();
    n.title = "Nœud en panne — ethereum".into();
    n.detail = "Zeit überschritten · 120 s".into();
    notifier()
        .send(&email("127.0.0.1", server.port, SmtpTls::None), &n)
        .await
        .unwrap();
    let m = &server.messages()[0];
    assert_eq!(
        m.subject,
        "[CRITICAL] node_down opened: Nœud en panne — ethereum"
    );
    assert!(m.body.contains("Zeit überschritten · 120 s"), "{}", m.body);
    assert!(m.raw.is_ascii(), "{}", m.raw);
}

#[tokio::test]
async fn starttls_required_upgrades_then_authenticates() {
    let Some(server) = sink(
        "starttls_required",
        auth_options(SinkTls::Starttls { required: true }),
    )
    .await
    else {
        return;
    };
    // By name: resolved (loopback is allowed), the certificate checked
    // against the configured host.
    let channel = with_credentials(email("localhost", server.port, SmtpTls::Starttls), PASSWORD);
    trusting(&server)
        .send(&channel, &notification())
        .await
        .unwrap();
    let m = &server.messages()[0];
    assert!(m.tls, "the session was upgraded");
    assert_eq!(m.auth_user.as_deref(), Some("hood"));
    assert_eq!(m.rcpt_tos, TO);
    let auth: Vec<_> = server
        .events()
        .into_iter()
        .filter(|e| e["event"] == "auth")
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0]["tls"], true, "credentials only after the upgrade");
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_refused_before_mail() {
    let Some(server) = sink("starttls_not_offered", SinkOptions::default()).await else {
        return;
    };
    let err = notifier()
        .send(
            &email("127.0.0.1", server.port, SmtpTls::Starttls),
            &notification(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(server.count("connect"), 1);
    assert_eq!(server.count("rcpt"), 0);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn opportunistic_tls_upgrades_when_offered_and_stays_plain_otherwise() {
    let Some(offered) = sink(
        "opportunistic_offered",
        SinkOptions {
            tls: SinkTls::Starttls { required: false },
            ..SinkOptions::default()
        },
    )
    .await
    else {
        return;
    };
    trusting(&offered)
        .send(
            &email("127.0.0.1", offered.port, SmtpTls::Opportunistic),
            &notification(),
        )
        .await
        .unwrap();
    assert!(offered.messages()[0].tls);

    let Some(plain) = sink("opportunistic_plain", SinkOptions::default()).await else {
        return;
    };
    notifier()
        .send(
            &email("127.0.0.1", plain.port, SmtpTls::Opportunistic),
            &notification(),
        )
        .await
        .unwrap();
    assert!(!plain.messages()[0].tls);
}

#[tokio::test]
async fn opportunistic_tls_never_sends_credentials_in_plaintext() {
    let Some(server) = sink(
        "opportunistic_credentials",
        SinkOptions {
            auth_over_plaintext: true,
            ..auth_options(SinkTls::None)
        },
    )
    .await
    else {
        return;
    };
    let channel = with_credentials(
        email("127.0.0.1", server.port, SmtpTls::Opportunistic),
        PASSWORD,
    );
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
    assert_eq!(server.count("auth"), 0, "no AUTH was attempted");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls_with_auth() {
    let Some(server) = sink("implicit_tls", auth_options(SinkTls::Implicit)).await else {
        return;
    };
    let channel = with_credentials(email("127.0.0.1", server.port, SmtpTls::Implicit), PASSWORD);
    trusting(&server)
        .send(&channel, &notification())
        .await
        .unwrap();
    let m = &server.messages()[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("hood"));
    assert_eq!(m.rcpt_tos, TO);
}

#[tokio::test]
async fn wrong_password_is_permanent_and_not_shown() {
    let Some(server) = sink("wrong_password", auth_options(SinkTls::Implicit)).await else {
        return;
    };
    let channel = with_credentials(
        email("127.0.0.1", server.port, SmtpTls::Implicit),
        "SmtpPassw0rdSecret-but-wrong",
    );
    let err = trusting(&server)
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
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn untrusted_certificate_is_a_permanent_tls_error() {
    let Some(implicit) = sink(
        "untrusted_implicit",
        SinkOptions {
            tls: SinkTls::Implicit,
            ..SinkOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let err = notifier()
        .send(
            &email("127.0.0.1", implicit.port, SmtpTls::Implicit),
            &notification(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable());

    let Some(starttls) = sink(
        "untrusted_starttls",
        SinkOptions {
            tls: SinkTls::Starttls { required: true },
            ..SinkOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let err = notifier()
        .send(
            &email("127.0.0.1", starttls.port, SmtpTls::Starttls),
            &notification(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(starttls.messages().is_empty());
}

#[tokio::test]
async fn refused_recipient_is_permanent_and_nothing_is_sent() {
    let Some(server) = sink(
        "refused_recipient",
        SinkOptions {
            refuse: vec![(TO[1].into(), 550)],
            ..SinkOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let err = notifier()
        .send(
            &email("127.0.0.1", server.port, SmtpTls::None),
            &notification(),
        )
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
            assert!(message.contains(TO[1]), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    // The first recipient was accepted, the second refused: no DATA, so the
    // server has nothing to deliver to the first one either.
    assert_eq!(server.count("rcpt"), 2);
    assert!(server.messages().is_empty(), "all or nothing");
    assert_eq!(server.count("quit"), 1, "the client says goodbye");
}

#[tokio::test]
async fn temporarily_refused_recipient_is_retryable() {
    let Some(server) = sink(
        "temporarily_refused_recipient",
        SinkOptions {
            refuse: vec![(TO[0].into(), 450)],
            ..SinkOptions::default()
        },
    )
    .await
    else {
        return;
    };
    let err = notifier()
        .send(
            &email("127.0.0.1", server.port, SmtpTls::None),
            &notification(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Smtp { code: 450, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn credentials_are_not_sent_over_plaintext_by_default() {
    let Some(server) = sink(
        "plaintext_credentials_refused",
        SinkOptions {
            auth_over_plaintext: true,
            ..auth_options(SinkTls::None)
        },
    )
    .await
    else {
        return;
    };
    let channel = with_credentials(email("127.0.0.1", server.port, SmtpTls::None), PASSWORD);
    let err = notifier()
        .send(&channel, &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Refused { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_no_secret(&format!("{err} {err:?}"));
    assert_eq!(server.count("connect"), 0, "refused before connecting");
}

#[tokio::test]
async fn plaintext_auth_when_explicitly_allowed() {
    let Some(server) = sink(
        "plaintext_auth_allowed",
        SinkOptions {
            auth_over_plaintext: true,
            ..auth_options(SinkTls::None)
        },
    )
    .await
    else {
        return;
    };
    let channel = with_credentials(email("127.0.0.1", server.port, SmtpTls::None), PASSWORD);
    notifier()
        .with_plaintext_smtp_auth(true)
        .send(&channel, &notification())
        .await
        .unwrap();
    let m = &server.messages()[0];
    assert!(!m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("hood"));
}

#[tokio::test]
async fn loopback_smtp_host_is_refused_by_default_before_connecting() {
    let Some(server) = sink("smtp_destination_refused", SinkOptions::default()).await else {
        return;
    };
    for host in ["127.0.0.1", "localhost"] {
        let err = strict_notifier()
            .send(&email(host, server.port, SmtpTls::None), &notification())
            .await
            .unwrap_err();
        match &err {
            SendError::Destination { channel, reason } => {
                assert_eq!(*channel, "email");
                assert_eq!(reason.host, host);
                assert_eq!(reason.range.name, "loopback");
            }
            other => panic!("{host}: {other:?}"),
        }
        assert!(!err.is_retryable());
    }
    assert_eq!(server.count("connect"), 0, "nothing connected");
}

// ------------------------------------------------- without a real server

#[tokio::test]
async fn unreachable_server_is_retryable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = notifier()
        .send(&email("127.0.0.1", port, SmtpTls::None), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Connection { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn silent_server_times_out_retryably() {
    // Accepts the connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let notifier = notifier_with(NotifierConfig {
        timeout: Duration::from_millis(300),
        ..support::config()
    });
    let started = std::time::Instant::now();
    let err = notifier
        .send(&email("127.0.0.1", port, SmtpTls::None), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Timeout {
                stage: "connect",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn greeting_421_is_retryable() {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"421 4.3.2 mx.test too busy, closing\r\n")
                .await;
        }
    });
    let err = notifier()
        .send(&email("127.0.0.1", port, SmtpTls::None), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Smtp {
                stage: "connect",
                code: 421,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn invalid_recipient_is_a_config_error() {
    let mut channel = email("127.0.0.1", 1, SmtpTls::None);
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
