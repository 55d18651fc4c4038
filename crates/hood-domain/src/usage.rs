//! Metered RPC usage as it is rolled up for reporting and billing: what one
//! key did on one chain with one method in one hourly or daily bucket. The
//! raw events and the bucketing rule are in [`crate::rpc`].

use crate::rpc::Granularity;
use crate::{RpcKeyId, Timestamp};

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
