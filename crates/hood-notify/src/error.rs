//! Why a delivery attempt failed, and whether trying again can help.

use crate::config::ConfigError;
use std::time::Duration;

/// One failed delivery attempt.
///
/// [`SendError::is_retryable`] tells the caller whether the same delivery
/// may succeed later. `Display` (and `Debug`) never contain a secret: no
/// webhook secret, Slack URL path, Telegram bot token or SMTP password —
/// library errors are stripped of their URL and anything quoted from a
/// remote answer is scrubbed of the channel's secrets.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The channel configuration does not validate. Permanent.
    #[error("invalid channel configuration: {0}")]
    Config(#[from] ConfigError),

    /// The notifier could not be built (TLS roots, HTTP client, hello name).
    /// Permanent.
    #[error("notifier setup failed: {0}")]
    Setup(String),

    /// No answer within the configured timeout. Retryable.
    #[error("{channel}: timed out during {stage}")]
    Timeout {
        channel: &'static str,
        stage: &'static str,
    },

    /// Could not connect, or the connection broke. Retryable.
    #[error("{channel}: connection failed: {message}")]
    Connection {
        channel: &'static str,
        message: String,
    },

    /// The HTTP endpoint answered with a non-success status. Retryable for
    /// 408, 429 and 5xx; permanent otherwise (redirects are not followed).
    #[error("{channel}: HTTP {status}: {body}")]
    Http {
        channel: &'static str,
        status: u16,
        /// The start of the response body, scrubbed of secrets.
        body: String,
        /// From `Retry-After`, when the server sent one.
        retry_after: Option<Duration>,
    },

    /// The Telegram Bot API answered `{"ok": false, ...}`. Retryable when
    /// `error_code` is 429 or at least 500.
    #[error("telegram: API error {error_code}: {description}")]
    Telegram {
        error_code: i64,
        description: String,
        /// `parameters.retry_after`, when Telegram sent one.
        retry_after: Option<Duration>,
    },

    /// A success status with an answer that is not what the API documents.
    /// Permanent (the message may or may not have been delivered; resending
    /// blindly could duplicate it).
    #[error("{channel}: unexpected response: {message}")]
    InvalidResponse {
        channel: &'static str,
        message: String,
    },

    /// The SMTP server rejected a command. Retryable for 4xx, permanent for
    /// 5xx.
    #[error("email: SMTP server answered {code} to {stage}: {message}")]
    Smtp {
        stage: &'static str,
        code: u16,
        message: String,
    },

    /// The peer does not speak SMTP as RFC 5321 describes (wrong port?).
    /// Permanent.
    #[error("email: SMTP protocol error during {stage}: {message}")]
    SmtpProtocol {
        stage: &'static str,
        message: String,
    },

    /// The TLS handshake with the SMTP server failed (certificate not
    /// trusted, name mismatch, no common protocol). Permanent.
    #[error("email: TLS handshake failed: {message}")]
    Tls { message: String },

    /// The destination is an address notifications may not reach (loopback,
    /// private, link-local, …; see [`crate::DestinationPolicy`]), or a name
    /// resolving to one. Nothing was sent. Permanent.
    #[error("{channel}: destination refused: {reason}")]
    Destination {
        channel: &'static str,
        reason: crate::RefusedDestination,
    },

    /// The send was refused before anything was sent, or the server lacks
    /// something required (e.g. credentials over plaintext, STARTTLS, a
    /// common AUTH mechanism). Permanent.
    #[error("{channel}: {message}")]
    Refused {
        channel: &'static str,
        message: String,
    },
}

impl SendError {
    /// Whether the same delivery may succeed if tried again later:
    /// connection errors, timeouts, HTTP 5xx, 408 and 429, Telegram 429/5xx
    /// and SMTP 4xx are retryable; everything else is permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Telegram { error_code, .. } => *error_code == 429 || *error_code >= 500,
            Self::Smtp { code, .. } => (400..500).contains(code),
            Self::Config(_)
            | Self::Setup(_)
            | Self::InvalidResponse { .. }
            | Self::SmtpProtocol { .. }
            | Self::Tls { .. }
            | Self::Destination { .. }
            | Self::Refused { .. } => false,
        }
    }

    /// How long the remote side asked us to wait, when it said
    /// (`Retry-After`, Telegram's `retry_after`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http { retry_after, .. } | Self::Telegram { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The channel kind the error came from, for log fields and metrics.
    pub fn channel(&self) -> &'static str {
        match self {
            Self::Timeout { channel, .. }
            | Self::Connection { channel, .. }
            | Self::Http { channel, .. }
            | Self::InvalidResponse { channel, .. }
            | Self::Destination { channel, .. }
            | Self::Refused { channel, .. } => channel,
            Self::Telegram { .. } => "telegram",
            Self::Smtp { .. } | Self::SmtpProtocol { .. } | Self::Tls { .. } => "email",
            Self::Config(_) | Self::Setup(_) => "config",
        }
    }
}

/// Longest remote text kept in an error.
const MAX_QUOTED: usize = 300;

/// `text` with each secret replaced by `***`, control characters flattened
/// and cut to a bounded length — for anything quoted from a remote answer or
/// a library error.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    let mut flat: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX_QUOTED {
        flat = flat.chars().take(MAX_QUOTED).collect::<String>() + "…";
    }
    flat.trim().to_owned()
}

/// A `reqwest` failure as a [`SendError`], without the URL (it holds the
/// Slack path or the Telegram token) and scrubbed of the secrets. A refusal
/// of the guarded resolver is a permanent [`SendError::Destination`].
pub(crate) fn from_reqwest(
    channel: &'static str,
    err: reqwest::Error,
    secrets: &[String],
) -> SendError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<crate::RefusedDestination>() {
            return SendError::Destination {
                channel,
                reason: refused.clone(),
            };
        }
        cause = e.source();
    }
    let timeout = err.is_timeout();
    let builder = err.is_builder();
    let err = err.without_url();
    // The chain of causes says *why* ("connection refused"), the top level
    // only *what* ("error sending request").
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    let message = scrub(&message, secrets);
    if timeout {
        SendError::Timeout {
            channel,
            stage: "request",
        }
    } else if builder {
        SendError::Refused { channel, message }
    } else {
        SendError::Connection { channel, message }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn http(status: u16) -> SendError {
        SendError::Http {
            channel: "webhook",
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    fn smtp(code: u16) -> SendError {
        SendError::Smtp {
            stage: "RCPT TO",
            code,
            message: String::new(),
        }
    }

    #[test]
    fn classification() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        for c in [421, 450, 451, 452, 454] {
            assert!(smtp(c).is_retryable(), "{c}");
        }
        for c in [500, 501, 530, 535, 550, 552, 554] {
            assert!(!smtp(c).is_retryable(), "{c}");
        }
        let tg = |error_code| SendError::Telegram {
            error_code,
            description: String::new(),
            retry_after: None,
        };
        assert!(tg(429).is_retryable());
        assert!(tg(502).is_retryable());
        assert!(!tg(400).is_retryable());
        assert!(!tg(403).is_retryable());
        assert!(SendError::Timeout {
            channel: "slack",
            stage: "request"
        }
        .is_retryable());
        assert!(SendError::Connection {
            channel: "email",
            message: "reset".into()
        }
        .is_retryable());
        assert!(!SendError::Tls {
            message: "bad cert".into()
        }
        .is_retryable());
        assert!(!SendError::SmtpProtocol {
            stage: "greeting",
            message: "x".into()
        }
        .is_retryable());
    }

    #[test]
    fn scrub_replaces_secrets_and_bounds_length() {
        let secrets = vec!["s3cret".to_owned(), String::new()];
        assert_eq!(scrub("token s3cret\r\nhere", &secrets), "token ***  here");
        let long = "x".repeat(1000);
        assert!(scrub(&long, &secrets).chars().count() <= MAX_QUOTED + 1);
    }
}
