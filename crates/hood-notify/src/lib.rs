//! Incident notification delivery.
//!
//! The health service decides *what* to send and keeps the delivery log and
//! its retries in the database; this crate does the sending:
//!
//! * [`ChannelConfig`] — a channel as stored (JSON tagged by `kind`), with
//!   [`ChannelConfig::validate`] (the message names the field) and
//!   [`ChannelConfig::redacted`] (for API responses). Its `Debug` hides every
//!   secret.
//! * [`Notifier::send`] — one attempt to deliver a [`Notification`] on one
//!   channel: a signed webhook ([`sign_webhook`] /
//!   [`verify_webhook_signature`]), a Slack incoming webhook, the Telegram Bot
//!   API, or SMTP email (lettre: plain, STARTTLS or implicit TLS, AUTH).
//! * [`DestinationPolicy`] — the SSRF guard: notifications reach public
//!   addresses only, unless the operator allows a network; checked at
//!   channel creation ([`DestinationPolicy::check_channel`]) and at send
//!   time after DNS resolution, connecting only to checked addresses.
//! * [`SendError`] — [`SendError::is_retryable`] splits transient failures
//!   (connection, timeout, HTTP 5xx/408/429, SMTP 4xx) from permanent ones
//!   (bad config, refused destination, HTTP 4xx, SMTP 5xx). Its `Display`
//!   never carries a secret.
//!
//! Secrets (webhook signing secret, Slack webhook URL path, Telegram bot
//! token, SMTP password) never appear in a log line, an error message or a
//! `Debug` rendering.

mod config;
mod email;
mod error;
mod guard;
mod http;
mod notifier;
mod render;
mod signature;
mod smtp;

pub use config::{
    ChannelConfig, ConfigError, SmtpTls, DEFAULT_TELEGRAM_API_BASE, MIN_WEBHOOK_SECRET_CHARS,
};
pub use error::SendError;
pub use guard::{DestinationPolicy, RefusedDestination};
pub use notifier::{Notifier, NotifierConfig};
pub use render::{render_subject, render_text};
pub use signature::{sign_webhook, verify_webhook_signature};

use serde::{Deserialize, Serialize};

/// What happened, rendered into every channel's message.
///
/// The webhook channel sends exactly this, serialized as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key of this delivery; the webhook header `Hood-Delivery`.
    pub delivery_id: String,
    /// `incident.opened` | `incident.escalated` | `incident.resolved` | `test`.
    pub event: String,
    pub incident_id: String,
    pub org_id: String,
    /// `node_down`, `node_lagging`, `app_critical`, `host_unreachable`,
    /// `chain_halted`.
    pub category: String,
    /// `info` | `warning` | `critical`.
    pub severity: String,
    pub title: String,
    pub detail: String,
    pub node_id: Option<String>,
    pub chain: Option<String>,
    pub escalation_level: i64,
    /// Unix milliseconds.
    pub occurred_at_ms: i64,
}
