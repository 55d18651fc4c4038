//! Hourly uptime: each node's state log turned into materialized hours by
//! the health leader, read by the API.

use crate::lease::Lease;
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::health::UptimeBucket;
use hood_domain::lifecycle::NodeState;
use hood_domain::{NodeId, Timestamp};

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

/// Uptime materialization (leader-gated writes) and reads.
#[async_trait]
pub trait UptimeStore: Send + Sync {
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
}
