//! SMTP submission over lettre's async connection: connect to the checked
//! addresses, optional STARTTLS, optional AUTH, then MAIL FROM, RCPT TO for
//! each recipient, DATA. Each stage runs under the configured timeout and
//! is named in errors.
//!
//! Delivery is all-or-nothing: the recipients are given one by one and the
//! first refusal ends the session with QUIT before DATA, so the server has
//! nothing to deliver and a retry never duplicates the message for the
//! recipients that were accepted. (Once the end-of-data reply is 250 the
//! server owns delivery; its own later bounces are outside this.)

use crate::config::SmtpTls;
use crate::error::scrub;
use crate::SendError;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::Error as SmtpError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const CHANNEL: &str = "email";
/// How long the polite QUIT may take after a failure.
const QUIT_GRACE: Duration = Duration::from_secs(2);
/// Mechanisms tried, in lettre's order of preference: both send the
/// password as is, so they are only ever used over TLS (or where the
/// installation allows plaintext).
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

/// Where and how to submit.
pub(crate) struct Submission<'a> {
    /// The host as configured: the TLS server name.
    pub host: &'a str,
    /// What `host` resolved to, every address already checked by the
    /// destination policy; lettre tries them in order.
    pub addrs: &'a [SocketAddr],
    pub tls: SmtpTls,
    pub credentials: Option<(&'a str, &'a str)>,
}

/// Installation-wide settings.
pub(crate) struct SmtpSettings<'a> {
    pub hello_name: &'a str,
    pub timeout: Duration,
    /// Extra trusted roots (DER) besides the web PKI.
    pub extra_roots: &'a [Vec<u8>],
    pub allow_plaintext_auth: bool,
}

/// The name given in EHLO: an address literal (`[192.0.2.1]`) or a domain.
pub(crate) fn client_id(hello_name: &str) -> ClientId {
    let literal = hello_name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.strip_prefix("IPv6:").unwrap_or(s).parse::<IpAddr>().ok());
    match literal {
        Some(IpAddr::V4(v4)) => ClientId::Ipv4(v4),
        Some(IpAddr::V6(v6)) => ClientId::Ipv6(v6),
        None => ClientId::Domain(hello_name.to_owned()),
    }
}

/// TLS parameters verifying `host` against the web PKI roots and
/// `extra_roots`. A `Setup` error when a root does not parse.
pub(crate) fn tls_parameters(
    host: &str,
    extra_roots: &[Vec<u8>],
) -> Result<TlsParameters, SendError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    for der in extra_roots {
        let cert = Certificate::from_der(der.clone())
            .map_err(|e| SendError::Setup(format!("SMTP root certificate: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| SendError::Setup(format!("SMTP TLS configuration: {e}")))
}

/// Sends `message` (formatted, 7-bit) to the envelope's recipients.
pub(crate) async fn send_mail(
    sub: &Submission<'_>,
    settings: &SmtpSettings<'_>,
    envelope: &Envelope,
    message: &[u8],
    secrets: &[String],
) -> Result<(), SendError> {
    if sub.credentials.is_some() && sub.tls == SmtpTls::None && !settings.allow_plaintext_auth {
        return Err(plaintext_credentials_refused());
    }
    let hello = client_id(settings.hello_name);
    let tls = || tls_parameters(sub.host, settings.extra_roots);
    let implicit = match sub.tls {
        SmtpTls::Implicit => Some(tls()?),
        _ => None,
    };
    let mut conn = stage(
        "connect",
        settings.timeout,
        secrets,
        AsyncSmtpConnection::connect_tokio1(
            sub.addrs,
            Some(settings.timeout),
            &hello,
            implicit,
            None,
        ),
    )
    .await?;
    let mut usable = true;
    let result = transaction(
        &mut conn,
        &mut usable,
        sub,
        settings,
        envelope,
        message,
        secrets,
    )
    .await;
    // The message is accepted once the end-of-data reply is 250: a failed
    // QUIT must not turn that into a (retried) failure. After a failure,
    // say goodbye politely unless the connection is already gone.
    let broken = !usable
        || matches!(
            result,
            Err(SendError::Timeout { .. } | SendError::Connection { .. })
        );
    if !broken {
        let grace = if result.is_ok() {
            settings.timeout
        } else {
            QUIT_GRACE
        };
        let _ = tokio::time::timeout(grace, conn.quit()).await;
    }
    result
}

/// STARTTLS as configured, AUTH, then the mail. `usable` is false while
/// the connection may not be written to (see the STARTTLS step).
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    usable: &mut bool,
    sub: &Submission<'_>,
    settings: &SmtpSettings<'_>,
    envelope: &Envelope,
    message: &[u8],
    secrets: &[String],
) -> Result<(), SendError> {
    let t = settings.timeout;
    let upgrade = match sub.tls {
        SmtpTls::Starttls if !conn.can_starttls() => {
            return Err(SendError::Refused {
                channel: CHANNEL,
                message: "the SMTP server does not offer STARTTLS (tls: starttls requires it)"
                    .to_owned(),
            })
        }
        SmtpTls::Starttls => true,
        SmtpTls::Opportunistic => conn.can_starttls(),
        SmtpTls::None | SmtpTls::Implicit => false,
    };
    if upgrade {
        let params = tls_parameters(sub.host, settings.extra_roots)?;
        // lettre takes the plain stream out for the handshake and does not
        // put it back when that fails: the connection must not be written
        // to again (not even QUIT) unless the upgrade completes.
        *usable = false;
        let hello = client_id(settings.hello_name);
        stage("STARTTLS", t, secrets, conn.starttls(params, &hello)).await?;
        *usable = true;
    }
    tracing::debug!(
        smtp.tls = conn.is_encrypted(),
        smtp.mode = ?sub.tls,
        "SMTP session open"
    );

    if let Some((user, pass)) = sub.credentials {
        if !conn.is_encrypted() && !settings.allow_plaintext_auth {
            return Err(plaintext_credentials_refused());
        }
        let creds = Credentials::new(user.to_owned(), pass.to_owned());
        stage("AUTH", t, secrets, conn.auth(&MECHANISMS, &creds)).await?;
    }

    let mail = Mail::new(envelope.from().cloned(), vec![]);
    stage("MAIL FROM", t, secrets, conn.command(mail)).await?;
    for rcpt in envelope.to() {
        let refused = stage(
            "RCPT TO",
            t,
            secrets,
            conn.command(Rcpt::new(rcpt.clone(), vec![])),
        )
        .await
        .err();
        if let Some(err) = refused {
            return Err(match err {
                SendError::Smtp {
                    stage,
                    code,
                    message,
                } => SendError::Smtp {
                    stage,
                    code,
                    message: format!("<{rcpt}>: {message}"),
                },
                other => other,
            });
        }
    }
    stage("DATA", t, secrets, conn.command(Data)).await?;
    stage("end of data", t, secrets, conn.message(message)).await?;
    Ok(())
}

fn plaintext_credentials_refused() -> SendError {
    SendError::Refused {
        channel: CHANNEL,
        message: "refusing to send SMTP credentials over a plaintext connection \
                  (use tls: starttls or implicit)"
            .to_owned(),
    }
}

/// Runs one stage under `timeout`, its failure as a [`SendError`].
async fn stage<T>(
    name: &'static str,
    timeout: Duration,
    secrets: &[String],
    fut: impl Future<Output = Result<T, SmtpError>>,
) -> Result<T, SendError> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(SendError::Timeout {
            channel: CHANNEL,
            stage: name,
        }),
        Ok(result) => result.map_err(|e| classify(name, &e, secrets)),
    }
}

/// A lettre error as a [`SendError`]: 4xx/5xx replies keep their code
/// (retryable/permanent), a failed TLS handshake is permanent, an I/O
/// failure retryable, a reply lettre cannot parse a protocol error.
fn classify(stage: &'static str, e: &SmtpError, secrets: &[String]) -> SendError {
    // The reply text, or the chain of causes, without lettre's own prefix.
    let mut detail = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        detail.push(cause.to_string());
        source = cause.source();
    }
    let message = scrub(&detail.join(": "), secrets);
    if let Some(code) = e.status() {
        return SendError::Smtp {
            stage,
            code: u16::from(code),
            message,
        };
    }
    if e.is_timeout() {
        return SendError::Timeout {
            channel: CHANNEL,
            stage,
        };
    }
    if e.is_tls() || tls_handshake_failed(e) {
        return SendError::Tls { message };
    }
    if e.is_response() {
        return SendError::SmtpProtocol { stage, message };
    }
    if e.is_client() {
        return SendError::Refused {
            channel: CHANNEL,
            message: format!("{stage}: {message}"),
        };
    }
    SendError::Connection {
        channel: CHANNEL,
        message: format!("{stage}: {message}"),
    }
}

/// rustls reports its own failures (certificate, alerts) as I/O errors of
/// kind `InvalidData`; lettre wraps them as connection errors.
fn tls_handshake_failed(e: &SmtpError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn hello_names() {
        assert_eq!(client_id("mx.hood.test").to_string(), "mx.hood.test");
        assert_eq!(client_id("[192.0.2.1]").to_string(), "[192.0.2.1]");
        assert!(matches!(client_id("[IPv6:2001:db8::1]"), ClientId::Ipv6(_)));
        assert!(matches!(client_id("[nonsense]"), ClientId::Domain(_)));
    }

    #[test]
    fn a_root_that_is_not_der_is_a_setup_error() {
        assert!(matches!(
            tls_parameters("localhost", &[b"not DER".to_vec()]),
            Err(SendError::Setup(_))
        ));
        tls_parameters("smtp.example.com", &[]).unwrap();
    }
}
