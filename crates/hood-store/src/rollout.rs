//! Rollouts and the binary versions nodes are pinned to.
//!
//! The rollout workflow is the only writer of a rollout's progress once it
//! runs; operators' pause, resume and abort change the rollout's state
//! only from the states the rollout machine allows, checked in the UPDATE
//! itself, so a racing workflow step and an operator cannot both win.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::lifecycle::rollout::RolloutState;
use hood_domain::rollout::{PinnedBinary, Rollout, RolloutNode};
use hood_domain::{NodeId, RolloutId, Timestamp};

#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Stores a rollout and its planned nodes in one transaction.
    async fn create_rollout(&self, rollout: &Rollout, nodes: &[RolloutNode]) -> StoreResult<()>;
    /// A rollout with its nodes in batch order.
    async fn get_rollout(&self, id: RolloutId) -> StoreResult<Option<(Rollout, Vec<RolloutNode>)>>;
    /// Rollouts, newest first.
    async fn list_rollouts(&self, limit: i64) -> StoreResult<Vec<Rollout>>;
    /// Moves the rollout to `to` if it is in one of `from`; `error` is kept
    /// when `None`. Returns whether it moved.
    async fn set_rollout_state(
        &self,
        id: RolloutId,
        from: &[RolloutState],
        to: RolloutState,
        error: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records that an operator approved batches up to `through`.
    async fn approve_rollout(&self, id: RolloutId, through: u32, now: Timestamp)
        -> StoreResult<()>;
    /// Writes one node's progress (state, soak deadline, error).
    async fn update_rollout_node(&self, node: &RolloutNode) -> StoreResult<()>;
    /// Rollouts not yet finished that target `node`.
    async fn live_rollouts_of_node(&self, node: NodeId) -> StoreResult<Vec<RolloutId>>;
    /// The binaries `node` is pinned to (empty: its profile's versions).
    async fn node_binaries(&self, node: NodeId) -> StoreResult<Vec<PinnedBinary>>;
    /// Pins `node`'s binary to a version (replacing an earlier pin).
    async fn pin_node_binary(
        &self,
        node: NodeId,
        pin: &PinnedBinary,
        now: Timestamp,
    ) -> StoreResult<()>;
}
