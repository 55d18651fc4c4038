//! Notifications of incidents: an organization's channels (webhook, Slack,
//! Telegram, email) and the deliveries of incident events to them, each
//! with its attempt log.

use crate::{ChannelId, DeliveryId, IncidentId, OrgId, Timestamp};

/// A notification channel (webhook, Slack, Telegram, email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationChannel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub name: String,
    pub kind: String,
    /// The configuration, secrets included, sealed under the master key.
    pub sealed_config: Vec<u8>,
    /// The configuration with its secrets masked.
    pub redacted_config: serde_json::Value,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One notification of one incident event to one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub channel_id: ChannelId,
    pub incident_id: IncidentId,
    /// `incident.opened`, `incident.escalated`, `incident.resolved`.
    pub event: String,
    pub escalation_level: i64,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: Timestamp,
        error: String,
    },
    /// Give up (permanent error, or attempts exhausted).
    Failed {
        error: String,
    },
}

/// One row of a delivery's attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: Timestamp,
    pub ok: bool,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states_round_trip_their_names() {
        for s in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ] {
            assert_eq!(DeliveryState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryState::parse("sent"), None);
    }
}
