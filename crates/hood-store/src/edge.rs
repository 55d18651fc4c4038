//! What the RPC edge keeps: RPC keys (hashed secrets, plan, scope), raw
//! usage events de-duplicated by request id, and their hourly and daily
//! rollups.
//!
//! Keys announce every change on the outbox (`edge.rpc_key.created`,
//! `.updated`, `.revoked`: ids, prefix and version, never the hash) so edge
//! replicas drop cached keys within a second; [`EdgeStore::rpc_keys_changed_since`]
//! is the periodic backstop for a replica that missed news.
//!
//! Metering is exactly-once by construction: [`EdgeStore::record_usage`]
//! inserts events keyed by `request_id` and adds to the rollups only the
//! rows that insert actually created, in the same transaction. A batch
//! redelivered by the bus adds nothing.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::rpc::{Granularity, RpcKey, UsageEvent};
use hood_domain::{NodeId, OrgId, RpcKeyId, Timestamp};

/// Which rollup rows [`EdgeStore::usage_rollups`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub org_id: OrgId,
    /// Only this key's rows.
    pub key_id: Option<RpcKeyId>,
    /// Only this chain's rows.
    pub chain: Option<String>,
    /// Buckets starting at or after this instant…
    pub from: Timestamp,
    /// …and strictly before this one.
    pub to: Timestamp,
    pub granularity: Granularity,
}

/// One rollup row: what one key did on one chain with one method in one
/// bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRollup {
    pub bucket_start: Timestamp,
    pub granularity: Granularity,
    pub key_id: RpcKeyId,
    pub chain: String,
    pub method: String,
    pub requests: i64,
    pub compute_units: i64,
    /// Requests whose status is not `ok`.
    pub errors: i64,
    /// Sum of latencies; divide by `requests` for the mean.
    pub latency_us_sum: i64,
}

/// A managed node the edge may route RPC to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingNode {
    pub node_id: NodeId,
    pub org_id: OrgId,
    pub chain: String,
    pub rpc_endpoint: String,
}

/// RPC keys, usage metering and the edge's view of serving nodes.
#[async_trait]
pub trait EdgeStore: Send + Sync {
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
    /// Idempotent by `request_id`: inserts the events not yet stored and
    /// adds only those to the hourly and daily rollups, in one transaction.
    /// Returns how many were new. Within one batch the first event of a
    /// `request_id` counts. Batches of thousands are written with chunked
    /// multi-row statements.
    async fn record_usage(&self, events: &[UsageEvent]) -> StoreResult<u64>;
    /// Rollup rows of an org with `bucket_start` in `[from, to)` at a
    /// granularity, optionally one key / one chain, ordered by bucket_start,
    /// key, chain, method.
    async fn usage_rollups(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRollup>>;
    /// Raw events stored for one key.
    async fn count_usage_events(&self, key: RpcKeyId) -> StoreResult<i64>;
    /// Nodes that may serve RPC: state `healthy` and `rpc_endpoint` set,
    /// ordered by chain, then node id.
    async fn serving_nodes(&self) -> StoreResult<Vec<ServingNode>>;
}
