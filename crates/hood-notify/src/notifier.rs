//! [`Notifier`]: one delivery attempt on one channel.

use crate::config::{ChannelConfig, DEFAULT_TELEGRAM_API_BASE};
use crate::email::build_message;
use crate::guard::{DestinationPolicy, ResolveError};
use crate::smtp::{self, SmtpSettings, Submission};
use crate::{http, Notification, SendError};
use base64::Engine as _;
use reqwest::Url;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// Installation-wide settings of the [`Notifier`].
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Bound on each HTTP request (resolution and connect included) and on
    /// each SMTP stage (resolution; connect with TLS, greeting and EHLO;
    /// STARTTLS; AUTH; each command; the message).
    pub timeout: Duration,
    /// Replaces [`DEFAULT_TELEGRAM_API_BASE`] for channels that do not name
    /// their own `api_base` (e.g. a local Bot API server, or a test double).
    pub telegram_api_base: Option<String>,
    /// The name this host gives in EHLO and in `Message-ID`s: a domain name
    /// or an address literal such as `[192.0.2.1]`.
    pub smtp_hello_name: String,
    /// Which addresses notifications may reach (the SSRF guard): public
    /// ones, plus the networks the operator allows.
    pub destinations: DestinationPolicy,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            telegram_api_base: None,
            smtp_hello_name: "localhost".to_owned(),
            destinations: DestinationPolicy::default(),
        }
    }
}

/// Sends notifications. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    cfg: NotifierConfig,
    /// Trusted for SMTP over TLS besides the web PKI roots (DER).
    smtp_extra_roots: Arc<[Vec<u8>]>,
    allow_plaintext_auth: bool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("cfg", &self.cfg)
            .field("smtp_extra_roots", &self.smtp_extra_roots.len())
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
            // request) somewhere else, past the destination check;
            // receivers must answer directly.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on our behalf, out of the
            // guard's sight.
            .no_proxy()
            .dns_resolver(Arc::new(http::GuardedResolver::new(
                cfg.destinations.clone(),
            )))
            .user_agent(concat!("hood-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Setup(format!("HTTP client: {}", e.without_url())))?;
        Ok(Self {
            http,
            cfg,
            smtp_extra_roots: Arc::from(Vec::new()),
            allow_plaintext_auth: false,
        })
    }

    /// Also trust these DER certificates for SMTP over TLS (a private relay's
    /// CA; tests).
    pub fn with_smtp_root_certificates<I>(mut self, ders: I) -> Result<Self, SendError>
    where
        I: IntoIterator<Item = Vec<u8>>,
    {
        let mut roots = self.smtp_extra_roots.to_vec();
        roots.extend(ders);
        // Parse them now: a bad certificate is a setup error, not a failed
        // delivery later.
        smtp::tls_parameters("localhost", &roots)?;
        self.smtp_extra_roots = roots.into();
        Ok(self)
    }

    /// The destination policy this notifier enforces.
    pub fn destinations(&self) -> &DestinationPolicy {
        &self.cfg.destinations
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
        let policy = &self.cfg.destinations;
        // Names are checked by the client's resolver; an address literal
        // never reaches it, so it is checked here.
        let check_url = |kind: &'static str, raw: &str| match Url::parse(raw) {
            Ok(url) => policy
                .check_url(&url)
                .map_err(|reason| SendError::Destination {
                    channel: kind,
                    reason,
                }),
            // validate() accepted it; reqwest will say what is wrong.
            Err(_) => Ok(()),
        };
        match channel {
            ChannelConfig::Webhook { url, secret } => {
                check_url("webhook", url)?;
                http::send_webhook(&self.http, url, secret, n, &secrets).await
            }
            ChannelConfig::Slack { webhook_url } => {
                check_url("slack", webhook_url)?;
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
                check_url("telegram", base)?;
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
                let credentials = username.as_deref().zip(password.as_deref());
                let mut secrets = secrets;
                if let Some((user, pass)) = credentials {
                    // What AUTH PLAIN puts on the wire, should a server echo it.
                    secrets.push(
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("\0{user}\0{pass}")),
                    );
                }
                let message = build_message(
                    n,
                    from,
                    to,
                    &self.cfg.smtp_hello_name,
                    hood_clock::to_system_time(hood_clock::now()),
                )?;
                let addrs = self.resolve_smtp_host(smtp_host, *smtp_port).await?;
                let submission = Submission {
                    host: smtp_host,
                    addrs: &addrs,
                    tls: *tls,
                    credentials,
                };
                let settings = SmtpSettings {
                    hello_name: &self.cfg.smtp_hello_name,
                    timeout: self.cfg.timeout,
                    extra_roots: &self.smtp_extra_roots,
                    allow_plaintext_auth: self.allow_plaintext_auth,
                };
                smtp::send_mail(
                    &submission,
                    &settings,
                    message.envelope(),
                    &message.formatted(),
                    &secrets,
                )
                .await
            }
        }
    }

    /// The SMTP host's addresses, each admitted by the destination policy.
    async fn resolve_smtp_host(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<std::net::SocketAddr>, SendError> {
        let resolved =
            tokio::time::timeout(self.cfg.timeout, self.cfg.destinations.resolve(host, port))
                .await
                .map_err(|_| SendError::Timeout {
                    channel: "email",
                    stage: "resolve",
                })?;
        resolved.map_err(|e| match e {
            ResolveError::Refused(reason) => SendError::Destination {
                channel: "email",
                reason,
            },
            lookup @ ResolveError::Lookup { .. } => SendError::Connection {
                channel: "email",
                message: lookup.to_string(),
            },
        })
    }
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
