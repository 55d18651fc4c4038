//! Rows of usage rollups.

use crate::codec;
use crate::StoreError;
use hood_domain::usage::UsageRollup;
use hood_domain::Timestamp;

pub(crate) const ROLLUP_READ_COLUMNS: &str = "granularity, bucket_start, key_id, chain, method, \
     requests, compute_units, errors, latency_us_sum";

#[derive(sqlx::FromRow)]
pub(crate) struct UsageRollupRow {
    granularity: String,
    bucket_start: i64,
    key_id: String,
    chain: String,
    method: String,
    requests: i64,
    compute_units: i64,
    errors: i64,
    latency_us_sum: i64,
}

impl TryFrom<UsageRollupRow> for UsageRollup {
    type Error = StoreError;
    fn try_from(r: UsageRollupRow) -> Result<Self, StoreError> {
        Ok(UsageRollup {
            bucket_start: Timestamp(r.bucket_start),
            granularity: r
                .granularity
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("usage_rollups.granularity: {e}")))?,
            key_id: codec::parse_id("usage_rollups.key_id", &r.key_id)?,
            chain: r.chain,
            method: r.method,
            requests: r.requests,
            compute_units: r.compute_units,
            errors: r.errors,
            latency_us_sum: r.latency_us_sum,
        })
    }
}
