//! Channel configuration as stored: validation, redaction, a `Debug` that
//! never shows a secret.

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The Telegram Bot API used when neither the channel nor the installation
/// names another.
pub const DEFAULT_TELEGRAM_API_BASE: &str = "https://api.telegram.org";

/// What replaces a secret in [`ChannelConfig::redacted`] and `Debug`.
const REDACTED: &str = "***";

/// RFC 5321 guarantees servers accept at least 100 recipients.
const MAX_RECIPIENTS: usize = 100;
const MAX_URL_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 1024;
/// Shortest webhook signing secret [`ChannelConfig::validate`] accepts.
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain TCP, never upgraded (e.g. a local relay on port 25).
    /// Credentials are not sent over it unless the installation explicitly
    /// allows it ([`crate::Notifier::with_plaintext_smtp_auth`]).
    #[default]
    None,
    /// Plain TCP upgraded with STARTTLS when the server offers it, else left
    /// plain (then, as with `none`, no credentials unless allowed). A server
    /// that offers STARTTLS must pass certificate verification.
    Opportunistic,
    /// STARTTLS is required (usually port 587): a server that does not offer
    /// it is refused before anything is sent.
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Implicit,
}

/// A channel's configuration as stored (JSON, tagged by `kind`). Secrets are
/// fields here; `Debug` redacts them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// POST of the notification JSON, signed with `secret` (`Hood-Signature`;
    /// at least [`MIN_WEBHOOK_SECRET_CHARS`] characters).
    Webhook { url: String, secret: String },
    /// A Slack incoming webhook; the URL's path is the credential.
    Slack { webhook_url: String },
    /// The Telegram Bot API `sendMessage`.
    Telegram {
        bot_token: String,
        chat_id: String,
        /// Defaults to [`DEFAULT_TELEGRAM_API_BASE`] (or the installation's
        /// override).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_base: Option<String>,
    },
    /// SMTP submission.
    Email {
        smtp_host: String,
        smtp_port: u16,
        #[serde(default)]
        tls: SmtpTls,
        from: String,
        to: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
}

/// A channel configuration that does not pass [`ChannelConfig::validate`].
/// `field` names the offending field (`to[2]` for a list element); the
/// message never repeats a secret value.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl ChannelConfig {
    /// `webhook`, `slack`, `telegram` or `email` (the serde tag).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Slack { .. } => "slack",
            Self::Telegram { .. } => "telegram",
            Self::Email { .. } => "email",
        }
    }

    /// Checks URLs parse (http/https only), emails look like addresses and
    /// required fields are non-empty. The error names the field and never
    /// repeats a secret.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Webhook { url, secret } => {
                check_url("url", url)?;
                check_secret("secret", secret)?;
                // An HMAC key: anything shorter is guessable.
                if secret.chars().count() < MIN_WEBHOOK_SECRET_CHARS {
                    return Err(ConfigError::new(
                        "secret",
                        format!("must be at least {MIN_WEBHOOK_SECRET_CHARS} characters"),
                    ));
                }
                Ok(())
            }
            Self::Slack { webhook_url } => {
                let url = check_url("webhook_url", webhook_url)?;
                if url.path().trim_matches('/').is_empty() {
                    return Err(ConfigError::new(
                        "webhook_url",
                        "must be the full incoming-webhook URL, path included",
                    ));
                }
                Ok(())
            }
            Self::Telegram {
                bot_token,
                chat_id,
                api_base,
            } => {
                check_secret("bot_token", bot_token)?;
                // The token becomes a path segment: keep it to the documented
                // alphabet ("123456:ABC-DEF...") so it cannot alter the URL.
                if !bot_token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
                {
                    return Err(ConfigError::new(
                        "bot_token",
                        "may contain only letters, digits, ':', '_' and '-'",
                    ));
                }
                check_chat_id(chat_id)?;
                if let Some(base) = api_base {
                    check_url("api_base", base)?;
                }
                Ok(())
            }
            Self::Email {
                smtp_host,
                smtp_port,
                tls: _,
                from,
                to,
                username,
                password,
            } => {
                check_host(smtp_host)?;
                if *smtp_port == 0 {
                    return Err(ConfigError::new("smtp_port", "must be between 1 and 65535"));
                }
                check_address("from", from)?;
                if to.is_empty() {
                    return Err(ConfigError::new("to", "needs at least one recipient"));
                }
                if to.len() > MAX_RECIPIENTS {
                    return Err(ConfigError::new(
                        "to",
                        format!("at most {MAX_RECIPIENTS} recipients"),
                    ));
                }
                for (i, addr) in to.iter().enumerate() {
                    check_address(&format!("to[{i}]"), addr)?;
                }
                match (username, password) {
                    (None, None) => Ok(()),
                    (Some(_), None) => Err(ConfigError::new(
                        "password",
                        "is required when username is set",
                    )),
                    (None, Some(_)) => Err(ConfigError::new(
                        "username",
                        "is required when password is set",
                    )),
                    (Some(user), Some(pass)) => {
                        if user.is_empty() {
                            return Err(ConfigError::new("username", "must not be empty"));
                        }
                        if user.len() > 255 || user.chars().any(char::is_control) {
                            return Err(ConfigError::new(
                                "username",
                                "must be at most 255 bytes without control characters",
                            ));
                        }
                        check_secret("password", pass)?;
                        if pass.contains('\0') {
                            return Err(ConfigError::new("password", "must not contain NUL"));
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// The config with every secret replaced by `"***"`, for API responses.
    ///
    /// The webhook URL stays (minus any password in it); the Slack webhook
    /// URL shows scheme and host only (its path is the credential); the
    /// Telegram bot token, the webhook secret and the SMTP password are
    /// hidden.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        let Some(obj) = value.as_object_mut() else {
            return Value::Null;
        };
        let hide = |obj: &mut serde_json::Map<String, Value>, key: &str| {
            if let Some(v) = obj.get_mut(key) {
                if !v.is_null() {
                    *v = Value::String(REDACTED.to_owned());
                }
            }
        };
        match self {
            Self::Webhook { url, .. } => {
                obj.insert("url".into(), Value::String(url_without_password(url)));
                hide(obj, "secret");
            }
            Self::Slack { webhook_url } => {
                obj.insert(
                    "webhook_url".into(),
                    Value::String(url_origin_only(webhook_url)),
                );
            }
            Self::Telegram { .. } => hide(obj, "bot_token"),
            Self::Email { .. } => hide(obj, "password"),
        }
        value
    }

    /// The secret strings of this config, to scrub from anything derived
    /// from a remote answer or a library error before it is shown.
    pub(crate) fn secrets(&self) -> Vec<String> {
        match self {
            Self::Webhook { secret, .. } => vec![secret.clone()],
            Self::Slack { webhook_url } => {
                let mut out = vec![webhook_url.clone()];
                if let Ok(url) = Url::parse(webhook_url) {
                    let path = url.path().trim_matches('/');
                    if !path.is_empty() {
                        out.push(path.to_owned());
                    }
                }
                out
            }
            Self::Telegram { bot_token, .. } => vec![bot_token.clone()],
            Self::Email { password, .. } => password.iter().cloned().collect(),
        }
    }
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook { url, secret: _ } => f
                .debug_struct("Webhook")
                .field("url", &url_without_password(url))
                .field("secret", &REDACTED)
                .finish(),
            Self::Slack { webhook_url } => f
                .debug_struct("Slack")
                .field("webhook_url", &url_origin_only(webhook_url))
                .finish(),
            Self::Telegram {
                bot_token: _,
                chat_id,
                api_base,
            } => f
                .debug_struct("Telegram")
                .field("bot_token", &REDACTED)
                .field("chat_id", chat_id)
                .field("api_base", api_base)
                .finish(),
            Self::Email {
                smtp_host,
                smtp_port,
                tls,
                from,
                to,
                username,
                password,
            } => f
                .debug_struct("Email")
                .field("smtp_host", smtp_host)
                .field("smtp_port", smtp_port)
                .field("tls", tls)
                .field("from", from)
                .field("to", to)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| REDACTED))
                .finish(),
        }
    }
}

/// `scheme://host[:port]/***`, or `***` when the URL does not parse.
fn url_origin_only(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) if url.has_host() => format!("{}/{REDACTED}", url.origin().ascii_serialization()),
        _ => REDACTED.to_owned(),
    }
}

/// The URL with a password in its userinfo replaced by `***`; `***` when it
/// does not parse (it might be anything).
fn url_without_password(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
                return REDACTED.to_owned();
            }
            url.to_string()
        }
        Err(_) => REDACTED.to_owned(),
    }
}

fn check_url(field: &str, raw: &str) -> Result<Url, ConfigError> {
    if raw.trim().is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    // The parser's error never quotes the input, but say it plainly anyway.
    let url =
        Url::parse(raw).map_err(|e| ConfigError::new(field, format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(field, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(field, "must name a host"));
    }
    Ok(url)
}

fn check_secret(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(ConfigError::new(
            field,
            format!("must be at most {MAX_SECRET_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_chat_id(chat_id: &str) -> Result<(), ConfigError> {
    let numeric = {
        let digits = chat_id.strip_prefix('-').unwrap_or(chat_id);
        !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let username = chat_id.strip_prefix('@').is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if chat_id.is_empty() {
        Err(ConfigError::new("chat_id", "must not be empty"))
    } else if numeric || username {
        Ok(())
    } else {
        Err(ConfigError::new(
            "chat_id",
            "must be a numeric chat id or @channelusername",
        ))
    }
}

fn check_host(host: &str) -> Result<(), ConfigError> {
    if host.is_empty() {
        return Err(ConfigError::new("smtp_host", "must not be empty"));
    }
    let ok = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "smtp_host",
            "must be a host name or IP address",
        ))
    }
}

/// A plain `local@domain` address: what goes between `<` and `>` in the SMTP
/// envelope and in the headers, so nothing that could break out of either.
pub(crate) fn looks_like_address(addr: &str) -> bool {
    if addr.len() > 254 {
        return false;
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'<' | b'>'
                        | b'('
                        | b')'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'['
                        | b']'
                        | b'@'
                )
        });
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

fn check_address(field: &str, addr: &str) -> Result<(), ConfigError> {
    if addr.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if looks_like_address(addr) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            "must be an email address like name@example.com",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const SLACK: &str = "https://hooks.slack.com/services/T0001/B0002/SlackPathSecret";
    const TOKEN: &str = "123456:TelegramTokenSecret";

    fn email() -> ChannelConfig {
        ChannelConfig::Email {
            smtp_host: "smtp.example.com".into(),
            smtp_port: 465,
            tls: SmtpTls::Implicit,
            from: "hood@example.com".into(),
            to: vec!["ops@example.com".into(), "oncall@example.org".into()],
            username: Some("hood".into()),
            password: Some("SmtpPasswordSecret".into()),
        }
    }

    fn all() -> Vec<ChannelConfig> {
        vec![
            ChannelConfig::Webhook {
                url: "https://hooks.example.com/hood".into(),
                secret: "WebhookSigningSecret".into(),
            },
            ChannelConfig::Slack {
                webhook_url: SLACK.into(),
            },
            ChannelConfig::Telegram {
                bot_token: TOKEN.into(),
                chat_id: "-1001234".into(),
                api_base: None,
            },
            email(),
        ]
    }

    const SECRETS: [&str; 5] = [
        "WebhookSigningSecret",
        "SlackPathSecret",
        "/services/T0001",
        "TelegramTokenSecret",
        "SmtpPasswordSecret",
    ];

    #[test]
    fn every_example_config_is_valid() {
        for c in all() {
            c.validate().unwrap();
        }
    }

    #[test]
    fn json_is_tagged_by_kind_and_defaults_apply() {
        let c: ChannelConfig = serde_json::from_value(json!({
            "kind": "telegram", "bot_token": TOKEN, "chat_id": "@hood_alerts"
        }))
        .unwrap();
        assert_eq!(c.kind(), "telegram");
        assert!(matches!(c, ChannelConfig::Telegram { api_base: None, .. }));
        let e: ChannelConfig = serde_json::from_value(json!({
            "kind": "email", "smtp_host": "localhost", "smtp_port": 25,
            "from": "a@example.com", "to": ["b@example.com"]
        }))
        .unwrap();
        assert!(matches!(
            e,
            ChannelConfig::Email {
                tls: SmtpTls::None,
                username: None,
                password: None,
                ..
            }
        ));
        let tls: ChannelConfig = serde_json::from_value(json!({
            "kind": "email", "smtp_host": "localhost", "smtp_port": 465, "tls": "implicit",
            "from": "a@example.com", "to": ["b@example.com"]
        }))
        .unwrap();
        assert!(matches!(
            tls,
            ChannelConfig::Email {
                tls: SmtpTls::Implicit,
                ..
            }
        ));
        let back = serde_json::to_value(&tls).unwrap();
        assert_eq!(back["kind"], "email");
        assert_eq!(back["tls"], "implicit");
        for (name, mode) in [
            ("none", SmtpTls::None),
            ("opportunistic", SmtpTls::Opportunistic),
            ("starttls", SmtpTls::Starttls),
            ("implicit", SmtpTls::Implicit),
        ] {
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
            assert_eq!(
                serde_json::from_value::<SmtpTls>(json!(name)).unwrap(),
                mode
            );
        }
        assert!(serde_json::from_value::<SmtpTls>(json!("ssl")).is_err());
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        assert!(serde_json::from_value::<ChannelConfig>(json!({
            "kind": "slack", "webhook_url": SLACK, "channel": "#ops"
        }))
        .is_err());
        assert!(serde_json::from_value::<ChannelConfig>(json!({
            "kind": "pager", "url": "https://x"
        }))
        .is_err());
    }

    #[test]
    fn debug_hides_every_secret() {
        for c in all() {
            let dbg = format!("{c:?} {c:#?}");
            for s in SECRETS {
                assert!(!dbg.contains(s), "{s} leaked in {dbg}");
            }
            assert!(dbg.contains("***"), "{dbg}");
        }
    }

    #[test]
    fn redacted_hides_secrets_and_keeps_the_rest() {
        for c in all() {
            let text = c.redacted().to_string();
            for s in SECRETS {
                assert!(!text.contains(s), "{s} leaked in {text}");
            }
        }
        let [webhook, slack, telegram, email] = <[ChannelConfig; 4]>::try_from(all()).unwrap();
        assert_eq!(
            webhook.redacted(),
            json!({"kind": "webhook", "url": "https://hooks.example.com/hood", "secret": "***"})
        );
        assert_eq!(
            slack.redacted(),
            json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/***"})
        );
        assert_eq!(
            telegram.redacted(),
            json!({"kind": "telegram", "bot_token": "***", "chat_id": "-1001234"})
        );
        let e = email.redacted();
        assert_eq!(e["password"], "***");
        assert_eq!(e["username"], "hood");
        assert_eq!(e["to"], json!(["ops@example.com", "oncall@example.org"]));
        assert_eq!(e["tls"], "implicit");
    }

    #[test]
    fn redacted_webhook_url_drops_an_embedded_password() {
        let c = ChannelConfig::Webhook {
            url: "https://user:UrlPassword@hooks.example.com/x".into(),
            secret: "s".into(),
        };
        let r = c.redacted().to_string();
        assert!(!r.contains("UrlPassword"), "{r}");
        assert!(!format!("{c:?}").contains("UrlPassword"));
    }

    #[test]
    fn redacted_slack_url_that_does_not_parse_is_fully_hidden() {
        let c = ChannelConfig::Slack {
            webhook_url: "not a url SlackPathSecret".into(),
        };
        assert_eq!(c.redacted()["webhook_url"], "***");
    }

    fn field_of(c: ChannelConfig) -> String {
        c.validate().unwrap_err().field
    }

    #[test]
    fn validation_names_the_field() {
        let hook = |url: &str, secret: &str| ChannelConfig::Webhook {
            url: url.into(),
            secret: secret.into(),
        };
        assert_eq!(field_of(hook("", "s")), "url");
        assert_eq!(field_of(hook("ftp://example.com/x", "s")), "url");
        assert_eq!(field_of(hook("not a url", "s")), "url");
        assert_eq!(field_of(hook("https://example.com/x", "")), "secret");
        assert_eq!(field_of(hook("https://example.com/x", "   ")), "secret");
        assert_eq!(field_of(hook("https://example.com/x", "short")), "secret");
        hook("http://127.0.0.1:8080/hook", "0123456789abcdef")
            .validate()
            .unwrap();

        let slack = |u: &str| ChannelConfig::Slack {
            webhook_url: u.into(),
        };
        assert_eq!(field_of(slack("https://hooks.slack.com/")), "webhook_url");
        assert_eq!(field_of(slack("file:///etc/passwd")), "webhook_url");

        let tg = |token: &str, chat: &str, base: Option<&str>| ChannelConfig::Telegram {
            bot_token: token.into(),
            chat_id: chat.into(),
            api_base: base.map(Into::into),
        };
        assert_eq!(field_of(tg("", "1", None)), "bot_token");
        assert_eq!(field_of(tg("12:ab/../x", "1", None)), "bot_token");
        assert_eq!(field_of(tg(TOKEN, "", None)), "chat_id");
        assert_eq!(field_of(tg(TOKEN, "chat 1", None)), "chat_id");
        assert_eq!(field_of(tg(TOKEN, "1", Some("gopher://x"))), "api_base");
        tg(TOKEN, "@hood_alerts", Some("http://127.0.0.1:1"))
            .validate()
            .unwrap();

        let with = |f: &dyn Fn(&mut ChannelConfig)| {
            let mut c = email();
            f(&mut c);
            c
        };
        macro_rules! set {
            ($field:ident = $v:expr) => {
                with(&|c| {
                    if let ChannelConfig::Email { $field, .. } = c {
                        *$field = $v;
                    }
                })
            };
        }
        assert_eq!(field_of(set!(smtp_host = String::new())), "smtp_host");
        assert_eq!(
            field_of(set!(smtp_host = "smtp example".into())),
            "smtp_host"
        );
        assert_eq!(field_of(set!(smtp_port = 0)), "smtp_port");
        assert_eq!(field_of(set!(from = "hood".into())), "from");
        assert_eq!(field_of(set!(to = vec![])), "to");
        assert_eq!(
            field_of(set!(
                to = vec![
                    "a@example.com".into(),
                    "b@example.com>\r\nRCPT TO:<c@x.y".into()
                ]
            )),
            "to[1]"
        );
        assert_eq!(field_of(set!(password = None)), "password");
        assert_eq!(field_of(set!(username = None)), "username");
        assert_eq!(field_of(set!(username = Some(String::new()))), "username");
        assert_eq!(field_of(set!(password = Some(String::new()))), "password");
    }

    #[test]
    fn validation_errors_do_not_repeat_secrets() {
        let bad = [
            ChannelConfig::Slack {
                webhook_url: "gopher://hooks.slack.com/services/SlackPathSecret".into(),
            },
            ChannelConfig::Telegram {
                bot_token: "TelegramTokenSecret/../".into(),
                chat_id: "1".into(),
                api_base: None,
            },
            ChannelConfig::Email {
                smtp_host: "h".into(),
                smtp_port: 25,
                tls: SmtpTls::None,
                from: "a@example.com".into(),
                to: vec!["b@example.com".into()],
                username: Some("u".into()),
                password: Some("SmtpPasswordSecret\0".into()),
            },
        ];
        for c in bad {
            let e = c.validate().unwrap_err().to_string();
            for s in SECRETS {
                assert!(!e.contains(s), "{s} leaked in {e}");
            }
        }
    }

    #[test]
    fn address_shapes() {
        for ok in [
            "a@example.com",
            "first.last+tag@sub.example.co",
            "ops@localhost",
        ] {
            assert!(looks_like_address(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            "a b@example.com",
            "<a@example.com>",
            "a@exa mple.com",
            "a@-example.com",
            "a@example..com",
            ".a@example.com",
            "a@example.com\r\nBcc: x@y.z",
            "ä@example.com",
        ] {
            assert!(!looks_like_address(bad), "{bad:?}");
        }
    }
}
