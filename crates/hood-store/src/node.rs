//! Managed nodes, their event history and sealed key material.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::label::Labels;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::{Node, NodeEvent, NodeKeyMaterial};
use hood_domain::workflow::{NewWorkflow, WorkflowRecord};
use hood_domain::{HostId, NodeId, OrgId, Timestamp};
use std::collections::HashMap;

/// A change to a node, applied only if the node is still at the version the
/// caller read (optimistic locking). Fields left `None` are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// New lifecycle state; checked against the node state machine.
    pub state: Option<NodeState>,
    pub sync_status: Option<SyncStatus>,
    pub app_health: Option<ApplicationHealth>,
    /// `Some(None)` clears the placement.
    pub host_id: Option<Option<HostId>>,
    pub rpc_endpoint: Option<Option<String>>,
    pub head_height: Option<Option<i64>>,
    pub binary_version: Option<Option<String>>,
    pub failure_reason: Option<Option<String>>,
    /// Recorded in the node's history with the change.
    pub message: String,
}

/// Managed nodes: what the API and the node workflows read and write.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Inserts a node (state must be an initial state) with a `created`
    /// history entry and a `node.created` outbox event.
    /// `Conflict("name")` when the org already has a node of that name.
    async fn create_node(&self, node: &Node) -> StoreResult<()>;
    /// The node-creation use case in one transaction: [`Self::create_node`]
    /// and the workflow that will provision the node (inserted exactly as
    /// [`WorkflowStore::create_workflow`] would), so a node never exists
    /// without its workflow nor a workflow without its node. Returns the
    /// stored run. Fails, storing nothing, as `create_node` does, and with
    /// `Conflict("workflow id")` when a workflow of that id exists already
    /// (a new node's workflow cannot).
    ///
    /// [`WorkflowStore::create_workflow`]: crate::workflow::WorkflowStore::create_workflow
    async fn create_node_with_workflow(
        &self,
        node: &Node,
        workflow: &NewWorkflow,
    ) -> StoreResult<WorkflowRecord>;
    /// A node; with `org`, only if it belongs to that org.
    async fn get_node(&self, org: Option<OrgId>, id: NodeId) -> StoreResult<Option<Node>>;
    /// Nodes of an org (or all), oldest first.
    async fn list_nodes(&self, org: Option<OrgId>) -> StoreResult<Vec<Node>>;
    /// Applies `change` if the node is at `expected_version`; returns the
    /// updated node. A stale version is `Conflict("version")`; a transition
    /// the node machine refuses is `InvalidTransition`. A state change
    /// writes a history entry and a `node.state_changed` outbox event in the
    /// same transaction.
    async fn update_node(
        &self,
        id: NodeId,
        expected_version: i64,
        change: &NodeChange,
        now: Timestamp,
    ) -> StoreResult<Node>;
    /// Adds a history entry that is not a state change (progress, notes).
    async fn append_node_event(
        &self,
        id: NodeId,
        kind: &str,
        message: &str,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// A node's history, oldest first, at most `limit` entries after `after_seq`.
    async fn list_node_events(
        &self,
        id: NodeId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<NodeEvent>>;
    /// Stores a node's sealed key material once; storing identical material
    /// again is a no-op, different material is `Conflict`.
    async fn put_node_keys(&self, keys: &NodeKeyMaterial) -> StoreResult<()>;
    async fn get_node_keys(&self, id: NodeId) -> StoreResult<Option<NodeKeyMaterial>>;
    /// Destroys a node's key material (terminate). Idempotent.
    async fn wipe_node_keys(&self, id: NodeId) -> StoreResult<()>;

    /// Replaces a node's labels, all of them at once.
    async fn set_node_labels(&self, id: NodeId, labels: &Labels) -> StoreResult<()>;
    /// One node's labels (empty when it has none).
    async fn node_labels(&self, id: NodeId) -> StoreResult<Labels>;
    /// The labels of every labelled node, of one organization or of all.
    async fn labels_by_node(&self, org: Option<OrgId>) -> StoreResult<HashMap<NodeId, Labels>>;
}
