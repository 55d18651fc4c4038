//! Rows of notification channels, deliveries and attempts.

use crate::codec::{self, opt_ts};
use crate::StoreError;
use hood_domain::notification::{Delivery, DeliveryAttempt, DeliveryState, NotificationChannel};
use hood_domain::Timestamp;

pub(crate) const CHANNEL_COLUMNS: &str =
    "id, org_id, name, kind, sealed_config, redacted_config, enabled, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ChannelRow {
    id: String,
    org_id: String,
    name: String,
    kind: String,
    sealed_config: Vec<u8>,
    redacted_config: String,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ChannelRow> for NotificationChannel {
    type Error = StoreError;
    fn try_from(r: ChannelRow) -> Result<Self, StoreError> {
        Ok(NotificationChannel {
            id: codec::parse_id("notification_channels.id", &r.id)?,
            org_id: codec::parse_id("notification_channels.org_id", &r.org_id)?,
            name: r.name,
            kind: r.kind,
            sealed_config: r.sealed_config,
            redacted_config: codec::parse_json(
                "notification_channels.redacted_config",
                &r.redacted_config,
            )?,
            enabled: r.enabled,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, channel_id, incident_id, event, \
     escalation_level, state, attempts, next_attempt_at, last_error, created_at, delivered_at";

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    channel_id: String,
    incident_id: String,
    event: String,
    escalation_level: i64,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: codec::parse_id("notification_deliveries.id", &r.id)?,
            channel_id: codec::parse_id("notification_deliveries.channel_id", &r.channel_id)?,
            incident_id: codec::parse_id("notification_deliveries.incident_id", &r.incident_id)?,
            event: r.event,
            escalation_level: r.escalation_level,
            state: codec::parse_name(
                "notification_deliveries.state",
                &r.state,
                DeliveryState::parse,
            )?,
            attempts: r.attempts,
            next_attempt_at: Timestamp(r.next_attempt_at),
            last_error: r.last_error,
            created_at: Timestamp(r.created_at),
            delivered_at: opt_ts(r.delivered_at),
        })
    }
}

/// A delivery's attempt count and state, read under lock before recording
/// an attempt.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryProgressRow {
    pub(crate) attempts: i64,
    pub(crate) state: String,
}

pub(crate) const ATTEMPT_COLUMNS: &str = "attempt, at, ok, error";

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryAttemptRow {
    attempt: i64,
    at: i64,
    ok: bool,
    error: Option<String>,
}

impl TryFrom<DeliveryAttemptRow> for DeliveryAttempt {
    type Error = StoreError;
    fn try_from(r: DeliveryAttemptRow) -> Result<Self, StoreError> {
        Ok(DeliveryAttempt {
            attempt: r.attempt,
            at: Timestamp(r.at),
            ok: r.ok,
            error: r.error,
        })
    }
}
