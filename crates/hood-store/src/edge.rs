//! What the RPC edge keeps about keys and routing: RPC keys (hashed
//! secrets, plan, scope) and the managed nodes it may route to. Usage
//! metering has its own trait ([`crate::usage`]); its types are re-exported
//! here under the paths they always had.
//!
//! Keys announce every change on the outbox (`edge.rpc_key.created`,
//! `.updated`, `.revoked`: ids, prefix and version, never the hash) so edge
//! replicas drop cached keys within a second;
//! [`RpcKeyStore::rpc_keys_changed_since`] is the periodic backstop for a
//! replica that missed news.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::rpc::RpcKey;
use hood_domain::{NodeId, OrgId, RpcKeyId, Timestamp};

pub use crate::usage::UsageQuery;
pub use hood_domain::usage::UsageRollup;

/// A managed node the edge may route RPC to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNode {
    pub node_id: NodeId,
    pub org_id: OrgId,
    pub chain: String,
    pub rpc_endpoint: String,
}

/// RPC keys: managed through the API, verified and cached by the edge.
#[async_trait]
pub trait RpcKeyStore: Send + Sync {
    /// Inserts the key + outbox `edge.rpc_key.created` ({key_id, org_id,
    /// prefix, version}; never the hash). `Conflict("prefix")` on a prefix
    /// collision, `NotFound("org")` for an unknown org.
    async fn create_rpc_key(&self, key: &RpcKey) -> StoreResult<()>;
    async fn get_rpc_key(&self, org: OrgId, id: RpcKeyId) -> StoreResult<Option<RpcKey>>;
    /// Keys of an org (revoked ones too), newest first.
    async fn list_rpc_keys(&self, org: OrgId) -> StoreResult<Vec<RpcKey>>;
    /// The key with this public prefix, whatever its org or state.
    async fn find_rpc_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<RpcKey>>;
    /// Replaces name/plan/scope of a live key of `key.org_id`, sets
    /// `updated_at` (never backwards), version+1, outbox
    /// `edge.rpc_key.updated`. Returns the stored key. `NotFound("rpc key")`
    /// when the org has no such key; `Conflict("revoked rpc key")` when it
    /// is revoked. Other fields of `key` (prefix, hash, times, version) are
    /// ignored.
    async fn update_rpc_key(&self, key: &RpcKey, now: Timestamp) -> StoreResult<RpcKey>;
    /// Sets `revoked_at` once, version+1, `updated_at`, outbox
    /// `edge.rpc_key.revoked`. False when no such key in `org`; revoking
    /// twice keeps the first time and writes no second event.
    async fn revoke_rpc_key(&self, org: OrgId, id: RpcKeyId, now: Timestamp) -> StoreResult<bool>;
    /// Keys (revoked too) whose `updated_at >= since`, oldest change first:
    /// the edge's periodic cache resync backstop.
    async fn rpc_keys_changed_since(&self, since: Timestamp) -> StoreResult<Vec<RpcKey>>;
}

/// The edge's routing view of managed nodes (its upstream pools).
#[async_trait]
pub trait EdgeStore: Send + Sync {
    /// Nodes that may serve RPC: state `healthy` and `rpc_endpoint` set,
    /// ordered by chain, then node id.
    async fn serving_nodes(&self) -> StoreResult<Vec<ServingNode>>;
}
