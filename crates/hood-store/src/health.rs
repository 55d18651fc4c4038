//! What the health role keeps: leader leases, per-node health counters,
//! chain head tracking, incidents, notification channels and deliveries,
//! hourly uptime.
//!
//! Leader-gated writes ([`HealthStore::apply_health`],
//! [`HealthStore::put_uptime_buckets`]) name the [`Lease`] they hold; the
//! store checks, in the same transaction, that the lease is still theirs and
//! unexpired, so a deposed leader that wakes up late writes nothing
//! ([`StoreError::Fenced`](crate::StoreError::Fenced)).

use crate::node::NodeChange;
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::health::{ChainHeadTrack, IncidentCategory, Severity, UptimeBucket};
use hood_domain::lifecycle::{HostState, IncidentState, NodeState};
use hood_domain::node::Node;
use hood_domain::{ChannelId, DeliveryId, IncidentId, NodeId, OrgId, Timestamp};
use std::collections::BTreeMap;

/// A held leader lease. `generation` rises at every change of holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub generation: i64,
    pub expires_at: Timestamp,
}

/// What the evaluator carries from one cycle to the next for a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeHealth {
    pub consecutive_misses: u32,
    pub down_since: Option<Timestamp>,
    /// Node version at the transition to `down` (names the migration).
    pub down_version: Option<i64>,
    pub last_migration_at: Option<Timestamp>,
    pub last_head: Option<i64>,
    pub head_changed_at: Option<Timestamp>,
    /// Policy name → since when (ms) it has been firing.
    pub policy_firing: BTreeMap<String, i64>,
}

/// The agent's latest report of a node's workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadReport {
    /// `starting | running | restarting | stopped | failed`.
    pub state: String,
    pub updated_at: Timestamp,
    pub observation: serde_json::Value,
}

/// Everything one evaluation needs about one node (one query for all).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSnapshot {
    pub node: Node,
    /// `None` before the first evaluation.
    pub health: Option<NodeHealth>,
    pub host_state: Option<HostState>,
    pub host_last_seen: Option<Timestamp>,
    pub workload: Option<WorkloadReport>,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: IncidentId,
    pub org_id: OrgId,
    /// At most one unresolved incident per key (`node_down:{node}`, …).
    pub dedupe_key: String,
    pub category: IncidentCategory,
    pub severity: Severity,
    pub state: IncidentState,
    pub node_id: Option<NodeId>,
    pub chain: Option<String>,
    pub title: String,
    pub detail: String,
    /// The chain-wide incident that mutes this one.
    pub root_id: Option<IncidentId>,
    pub escalation_level: i64,
    pub escalated_at: Option<Timestamp>,
    /// Consecutive evaluations without the condition (hysteresis).
    pub clear_cycles: i64,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// A change to an unresolved incident; `None` fields are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentChange {
    pub state: Option<IncidentState>,
    pub clear_cycles: Option<i64>,
    pub escalation_level: Option<i64>,
    pub root_id: Option<Option<IncidentId>>,
    pub detail: Option<String>,
}

/// One write of an evaluation cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum HealthWrite {
    /// Records the node's counters and, if `change` is set, moves the node
    /// (history and outbox as [`NodeStore::update_node`](crate::node::NodeStore::update_node)).
    /// With a change, a node no longer at `expected_version` is skipped
    /// whole and reported stale (the next cycle judges it again); counters
    /// alone are written whatever the version, since only the leader
    /// writes them.
    Node {
        node_id: NodeId,
        expected_version: i64,
        change: Option<NodeChange>,
        health: NodeHealth,
    },
    ChainHead {
        chain: String,
        track: ChainHeadTrack,
    },
    /// Opens the incident unless an unresolved one has its key; outbox
    /// `incident.opened`.
    OpenIncident(Incident),
    /// Applies `change` if the incident is still in `expected_state`.
    /// Outbox: `incident.resolved`, `incident.escalated`, `incident.muted`,
    /// `incident.unmuted` as the change implies.
    UpdateIncident {
        id: IncidentId,
        expected_state: IncidentState,
        change: IncidentChange,
    },
}

/// What [`HealthStore::apply_health`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub nodes_changed: usize,
    pub incidents_opened: usize,
    pub incidents_updated: usize,
    /// Nodes skipped because someone else changed them first.
    pub stale_nodes: Vec<NodeId>,
}

/// Which incidents [`HealthStore::list_incidents`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub state: Option<IncidentState>,
    pub node_id: Option<NodeId>,
    /// Only unresolved ones.
    pub active: bool,
    pub limit: i64,
}

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

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub channel: NotificationChannel,
    pub incident: Incident,
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

/// Per-node input of the uptime worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeCursor {
    pub node_id: NodeId,
    pub created_at: Timestamp,
    /// Start of the latest materialized hour, if any.
    pub last_hour: Option<i64>,
}

/// A node's state log over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLog {
    /// The state in force at the start of the range (`None`: not created yet).
    pub state_at_start: Option<NodeState>,
    /// `(at_ms, new_state)` inside the range, oldest first.
    pub changes: Vec<(i64, NodeState)>,
}

/// Health, incidents, notifications and uptime.
#[async_trait]
pub trait HealthStore: Send + Sync {
    // -- leader election --
    /// Takes or renews the lease `name` for `holder`. `None` while another
    /// holder's lease is unexpired. A new holder gets a higher generation.
    async fn acquire_leader_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>>;
    /// Gives the lease up at once (graceful shutdown) so a standby need not
    /// wait for it to expire.
    async fn release_leader_lease(&self, lease: &Lease) -> StoreResult<()>;

    // -- evaluation --
    /// Every node not terminated or failed, with its counters, host and
    /// workload report.
    async fn health_snapshot(&self) -> StoreResult<Vec<HealthSnapshot>>;
    async fn chain_heads(&self) -> StoreResult<BTreeMap<String, ChainHeadTrack>>;
    async fn unresolved_incidents(&self) -> StoreResult<Vec<Incident>>;
    /// Applies one cycle's writes in one transaction, fenced by `lease`.
    async fn apply_health(
        &self,
        lease: &Lease,
        writes: &[HealthWrite],
        now: Timestamp,
    ) -> StoreResult<ApplyReport>;

    // -- incidents (API) --
    async fn list_incidents(
        &self,
        org: OrgId,
        filter: &IncidentFilter,
    ) -> StoreResult<Vec<Incident>>;
    async fn get_incident(
        &self,
        org: Option<OrgId>,
        id: IncidentId,
    ) -> StoreResult<Option<Incident>>;
    /// Acknowledges an open or muted incident (stops escalation); outbox
    /// `incident.acknowledged`. Acknowledging twice is a no-op.
    async fn acknowledge_incident(
        &self,
        org: OrgId,
        id: IncidentId,
        by: &str,
        now: Timestamp,
    ) -> StoreResult<Incident>;

    // -- notifications --
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

    // -- uptime --
    async fn uptime_cursors(&self) -> StoreResult<Vec<UptimeCursor>>;
    async fn node_state_log(
        &self,
        node: NodeId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<StateLog>;
    /// Upserts materialized hours, fenced by `lease`.
    async fn put_uptime_buckets(
        &self,
        lease: &Lease,
        node: NodeId,
        buckets: &[UptimeBucket],
    ) -> StoreResult<()>;
    async fn uptime_buckets(
        &self,
        node: NodeId,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<UptimeBucket>>;

    // -- cleanup --
    /// Deletes enrollment tokens that expired unused before `before`.
    async fn delete_expired_enrollment_tokens(&self, before: Timestamp) -> StoreResult<u64>;
}
