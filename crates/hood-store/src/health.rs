//! What the health role's evaluation cycle reads and writes: per-node health
//! counters, chain head tracking, and one cycle's writes applied in one
//! transaction.
//!
//! Leader-gated writes ([`HealthStore::apply_health`],
//! [`UptimeStore::put_uptime_buckets`](crate::uptime::UptimeStore::put_uptime_buckets))
//! name the [`Lease`] they hold; the store checks, in the same transaction,
//! that the lease is still theirs and unexpired, so a deposed leader that
//! wakes up late writes nothing
//! ([`StoreError::Fenced`](crate::StoreError::Fenced)).
//!
//! The rest of what the health role keeps has its own trait: leader leases
//! ([`crate::lease`]), incidents ([`crate::incident`]), notification
//! channels and deliveries ([`crate::notification`]) and hourly uptime
//! ([`crate::uptime`]). Their types are re-exported here under the paths
//! they always had.

use crate::node::NodeChange;
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::health::ChainHeadTrack;
use hood_domain::lifecycle::{HostState, IncidentState};
use hood_domain::node::Node;
use hood_domain::{IncidentId, NodeId, Timestamp};
use std::collections::BTreeMap;

pub use crate::incident::IncidentFilter;
pub use crate::lease::Lease;
pub use crate::notification::DueDelivery;
pub use crate::uptime::{StateLog, UptimeCursor};
pub use hood_domain::incident::Incident;
pub use hood_domain::notification::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, NotificationChannel,
};

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

/// The health evaluation cycle: one snapshot read, one fenced write.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Every node not terminated or failed, with its counters, host and
    /// workload report.
    async fn health_snapshot(&self) -> StoreResult<Vec<HealthSnapshot>>;
    async fn chain_heads(&self) -> StoreResult<BTreeMap<String, ChainHeadTrack>>;
    async fn unresolved_incidents(&self) -> StoreResult<Vec<Incident>>;
    /// The agent's latest report of one node on its current host (its
    /// processes folded into one, as in the snapshot); `None` when the
    /// node runs nowhere or has not been reported yet. The node row keeps
    /// its head only with each state change; this is the head of now.
    async fn node_report(&self, node: NodeId) -> StoreResult<Option<WorkloadReport>>;
    /// One node's snapshot, as [`HealthStore::health_snapshot`] has it
    /// (whatever its state); `None` when there is no such node. What an
    /// upgrade's checks read besides the agent's fresh samples.
    async fn node_snapshot(&self, node: NodeId) -> StoreResult<Option<HealthSnapshot>>;
    /// Applies one cycle's writes in one transaction, fenced by `lease`.
    async fn apply_health(
        &self,
        lease: &Lease,
        writes: &[HealthWrite],
        now: Timestamp,
    ) -> StoreResult<ApplyReport>;
}
