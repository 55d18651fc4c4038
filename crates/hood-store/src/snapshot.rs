//! Node snapshots: what each is and how far its upload got (the bytes
//! live in the object store).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::snapshot::NodeSnapshot;
use hood_domain::{NodeId, OrgId, Timestamp};

#[async_trait]
pub trait SnapshotStore: Send + Sync {
    /// Records a new snapshot; `false` when the node already has one of
    /// that name (a replayed step finds it).
    async fn create_snapshot(&self, snapshot: &NodeSnapshot) -> StoreResult<bool>;
    /// Overwrites a snapshot's state, sizes, progress, error and
    /// completion time.
    async fn update_snapshot(&self, snapshot: &NodeSnapshot) -> StoreResult<()>;
    /// Upload progress: `chunks_done` only ever grows.
    async fn record_snapshot_progress(
        &self,
        node: NodeId,
        name: &str,
        chunks_done: i64,
    ) -> StoreResult<()>;
    async fn get_snapshot(&self, node: NodeId, name: &str) -> StoreResult<Option<NodeSnapshot>>;
    /// A node's snapshots, newest first.
    async fn list_snapshots(&self, node: NodeId) -> StoreResult<Vec<NodeSnapshot>>;
    /// The newest complete snapshot of a node: what a migration restores.
    async fn latest_complete_snapshot(&self, node: NodeId) -> StoreResult<Option<NodeSnapshot>>;
    /// Forgets one snapshot (its objects are deleted first).
    async fn delete_snapshot(&self, node: NodeId, name: &str) -> StoreResult<()>;
    /// Healthy nodes (organization, node) without a snapshot named `name`:
    /// what a scheduled backup of that name still has to take.
    async fn healthy_nodes_without_snapshot(&self, name: &str)
        -> StoreResult<Vec<(OrgId, NodeId)>>;
    /// Complete snapshots of `reason` beyond the newest `keep` of each node,
    /// and failed ones older than `before`: what retention deletes.
    async fn expired_snapshots(
        &self,
        reason: &str,
        keep: i64,
        before: Timestamp,
    ) -> StoreResult<Vec<NodeSnapshot>>;
}
