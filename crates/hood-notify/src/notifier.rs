//! [`Notifier`]: one delivery attempt on one channel.

use crate::config::{ChannelConfig, DEFAULT_TELEGRAM_API_BASE};
use crate::email::build_message;
use crate::smtp::{self, ClientSettings, Envelope};
use crate::{http, Notification, SendError};
use rustls::pki_types::CertificateDer;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

/// Installation-wide settings of the [`Notifier`].
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Bound on each HTTP request (connect included) and on each SMTP
    /// connect, handshake, read and write.
    pub timeout: Duration,
    /// Replaces [`DEFAULT_TELEGRAM_API_BASE`] for channels that do not name
    /// their own `api_base` (e.g. a local Bot API server, or a test double).
    pub telegram_api_base: Option<String>,
    /// The name this host gives in EHLO/HELO and in `Message-ID`s: a domain
    /// name or an address literal such as `[192.0.2.1]`.
    pub smtp_hello_name: String,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            telegram_api_base: None,
            smtp_hello_name: "localhost".to_owned(),
        }
    }
}

/// Sends notifications. Cheap to clone (the HTTP client and TLS
/// configuration are shared).
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    cfg: NotifierConfig,
    tls_roots: rustls::RootCertStore,
    tls_config: Arc<rustls::ClientConfig>,
    allow_plaintext_auth: bool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("cfg", &self.cfg)
            .field("smtp_tls_roots", &self.tls_roots.len())
            .field("allow_plaintext_auth", &self.allow_plaintext_auth)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with the web PKI roots for SMTP over TLS. Fails on a zero
    /// timeout, an unusable hello name or `telegram_api_base`, or when the
    /// HTTP client cannot be built.
    pub fn new(cfg: NotifierConfig) -> Result<Self, SendError> {
        if cfg.timeout.is_zero() {
            return Err(SendError::Setup("timeout must be positive".to_owned()));
        }
        let hello = &cfg.smtp_hello_name;
        let hello_ok = !hello.is_empty()
            && hello.len() <= 255
            && hello
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
        if !hello_ok {
            return Err(SendError::Setup(
                "smtp_hello_name must be a domain name or an address literal".to_owned(),
            ));
        }
        if let Some(base) = &cfg.telegram_api_base {
            let ok = reqwest::Url::parse(base)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(SendError::Setup(
                    "telegram_api_base must be an http or https URL".to_owned(),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirect would resend a signed body (or a token-bearing
            // request) somewhere else; receivers must answer directly.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hood-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Setup(format!("HTTP client: {}", e.without_url())))?;
        let mut tls_roots = rustls::RootCertStore::empty();
        tls_roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls_config = tls_client_config(&tls_roots)?;
        Ok(Self {
            http,
            cfg,
            tls_roots,
            tls_config,
            allow_plaintext_auth: false,
        })
    }

    /// Also trust these DER certificates for SMTP over TLS (a private relay's
    /// CA; tests).
    pub fn with_smtp_root_certificates<I>(mut self, ders: I) -> Result<Self, SendError>
    where
        I: IntoIterator<Item = Vec<u8>>,
    {
        for der in ders {
            self.tls_roots
                .add(CertificateDer::from(der))
                .map_err(|e| SendError::Setup(format!("SMTP root certificate: {e}")))?;
        }
        self.tls_config = tls_client_config(&self.tls_roots)?;
        Ok(self)
    }

    /// Allow SMTP AUTH over a plaintext connection (`tls: none`), e.g. to a
    /// relay on the same host. Off by default: credentials are only sent
    /// over TLS.
    pub fn with_plaintext_smtp_auth(mut self, allow: bool) -> Self {
        self.allow_plaintext_auth = allow;
        self
    }

    /// One attempt to deliver `n` on `channel`. The configuration is
    /// validated first (an invalid one is a permanent [`SendError::Config`]).
    pub async fn send(&self, channel: &ChannelConfig, n: &Notification) -> Result<(), SendError> {
        let span = tracing::info_span!(
            "notify",
            channel = channel.kind(),
            delivery_id = %n.delivery_id,
            event = %n.event,
            incident_id = %n.incident_id,
        );
        async {
            let result = self.dispatch(channel, n).await;
            match &result {
                Ok(()) => tracing::info!("notification delivered"),
                // The error's Display carries no secret.
                Err(e) => tracing::warn!(
                    error = %e,
                    retryable = e.is_retryable(),
                    "notification delivery failed"
                ),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, channel: &ChannelConfig, n: &Notification) -> Result<(), SendError> {
        channel.validate()?;
        let secrets = channel.secrets();
        match channel {
            ChannelConfig::Webhook { url, secret } => {
                http::send_webhook(&self.http, url, secret, n, &secrets).await
            }
            ChannelConfig::Slack { webhook_url } => {
                http::send_slack(&self.http, webhook_url, n, &secrets).await
            }
            ChannelConfig::Telegram {
                bot_token,
                chat_id,
                api_base,
            } => {
                let base = api_base
                    .as_deref()
                    .or(self.cfg.telegram_api_base.as_deref())
                    .unwrap_or(DEFAULT_TELEGRAM_API_BASE);
                http::send_telegram(&self.http, base, bot_token, chat_id, n, &secrets).await
            }
            ChannelConfig::Email {
                smtp_host,
                smtp_port,
                tls,
                from,
                to,
                username,
                password,
            } => {
                let envelope = Envelope {
                    host: smtp_host,
                    port: *smtp_port,
                    tls: *tls,
                    from,
                    to,
                    credentials: username.as_deref().zip(password.as_deref()),
                };
                let settings = ClientSettings {
                    hello_name: &self.cfg.smtp_hello_name,
                    timeout: self.cfg.timeout,
                    tls_config: self.tls_config.clone(),
                    allow_plaintext_auth: self.allow_plaintext_auth,
                };
                let message = build_message(n, from, to, &self.cfg.smtp_hello_name, unix_now());
                smtp::send_mail(&envelope, &settings, &message, &secrets).await
            }
        }
    }
}

fn tls_client_config(
    roots: &rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, SendError> {
    // The provider is passed explicitly so nothing depends on a process-wide
    // default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::Setup(format!("TLS: {e}")))?
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Unix seconds now (0 before 1970, saturating far in the future).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn setup_checks() {
        Notifier::new(NotifierConfig::default()).unwrap();
        let bad = |f: fn(&mut NotifierConfig)| {
            let mut cfg = NotifierConfig::default();
            f(&mut cfg);
            Notifier::new(cfg).unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.timeout = Duration::ZERO),
            SendError::Setup(_)
        ));
        assert!(matches!(
            bad(|c| c.smtp_hello_name = String::new()),
            SendError::Setup(_)
        ));
        assert!(matches!(
            bad(|c| c.smtp_hello_name = "mx\r\nMAIL FROM:<x@y>".into()),
            SendError::Setup(_)
        ));
        assert!(matches!(
            bad(|c| c.telegram_api_base = Some("nope".into())),
            SendError::Setup(_)
        ));
        assert!(!bad(|c| c.timeout = Duration::ZERO).is_retryable());
    }

    #[test]
    fn bad_root_certificate_is_a_setup_error() {
        let n = Notifier::new(NotifierConfig::default()).unwrap();
        assert!(matches!(
            n.with_smtp_root_certificates([b"not DER".to_vec()]),
            Err(SendError::Setup(_))
        ));
    }
}
