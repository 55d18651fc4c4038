//! Notification channels and the deliveries of incident events to them:
//! recorded (unique per channel, incident, event and escalation level)
//! before anything is sent, claimed by senders, retried, logged per
//! attempt.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::{ChannelId, DeliveryId, IncidentId, OrgId, Timestamp};

pub use hood_domain::incident::Incident;
pub use hood_domain::notification::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, NotificationChannel,
};

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub channel: NotificationChannel,
    pub incident: Incident,
}

/// Channels (API) and deliveries (the health role's dispatcher).
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// `Conflict("name")` when the org has a channel of that name.
    async fn create_channel(&self, channel: &NotificationChannel) -> StoreResult<()>;
    async fn list_channels(&self, org: OrgId) -> StoreResult<Vec<NotificationChannel>>;
    async fn get_channel(
        &self,
        org: OrgId,
        id: ChannelId,
    ) -> StoreResult<Option<NotificationChannel>>;
    /// Disables a channel and forgets its secrets' use: pending deliveries
    /// to it fail. Returns false when there was none.
    async fn delete_channel(&self, org: OrgId, id: ChannelId, now: Timestamp) -> StoreResult<bool>;
    /// Creates one pending delivery per enabled channel of the incident's
    /// org for `event` at `level`; a repeat (bus redelivery) adds nothing.
    /// Returns how many were created.
    async fn enqueue_deliveries(
        &self,
        incident: IncidentId,
        event: &str,
        level: i64,
        now: Timestamp,
    ) -> StoreResult<usize>;
    /// Claims up to `limit` due pending deliveries for `lease_ms` (several
    /// senders never claim the same one).
    async fn claim_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt and its outcome.
    async fn finish_delivery(
        &self,
        id: DeliveryId,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Deliveries of an org's incidents, newest first (optionally one incident).
    async fn list_deliveries(
        &self,
        org: OrgId,
        incident: Option<IncidentId>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>>;
    async fn delivery_attempts(&self, id: DeliveryId) -> StoreResult<Vec<DeliveryAttempt>>;
}
