//! The public status page: which nodes their organization shows without a
//! login.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::{NodeId, OrgId, Timestamp};

/// A node shown on the public status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicNode {
    pub node_id: NodeId,
    pub org_id: OrgId,
    pub made_public_at: Timestamp,
}

/// Reads and writes of the status page's visibility list.
#[async_trait]
pub trait StatusPageStore: Send + Sync {
    /// Shows (`public`) or hides the node on the status page; a node of
    /// another organization is `NotFound("node")`. Idempotent: showing a
    /// shown node keeps its first `made_public_at`.
    async fn set_node_public(
        &self,
        org: OrgId,
        node: NodeId,
        public: bool,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Whether the node is shown.
    async fn is_node_public(&self, node: NodeId) -> StoreResult<bool>;
    /// Every shown node, oldest first.
    async fn public_nodes(&self) -> StoreResult<Vec<PublicNode>>;
}
