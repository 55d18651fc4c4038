//! Exactly-once usage metering of the RPC edge: raw usage events
//! de-duplicated by request id, and their hourly and daily rollups.
//!
//! Metering is exactly-once by construction: [`UsageStore::record_usage`]
//! inserts events keyed by `request_id` and adds to the rollups only the
//! rows that insert actually created, in the same transaction. A batch
//! redelivered by the bus adds nothing.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::rpc::{Granularity, UsageEvent};
use hood_domain::{OrgId, RpcKeyId, Timestamp};

pub use hood_domain::usage::UsageRollup;

/// Which rollup rows [`UsageStore::usage_rollups`] returns.
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

/// Usage metering (the edge's meter and its bus consumer) and reporting
/// (the API).
#[async_trait]
pub trait UsageStore: Send + Sync {
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
    /// Compute units of an organization's raw events with `from <= at <
    /// to`, per key, chain and method (the per-window accrual of prepaid
    /// credits: finer than the hourly rollups).
    async fn usage_event_units(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(RpcKeyId, String, String, i64)>>;
    /// Raw events of an organization with `from <= at < to`: how many and
    /// their compute units, straight from the events (not the rollups), for
    /// audits that check one against the other.
    async fn usage_event_totals(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<(i64, i64)>;
}
