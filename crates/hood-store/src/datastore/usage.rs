//! [`UsageStore`] for [`SqlStore`]: exactly-once metering with chunked
//! multi-row statements.

use super::SqlStore;
use crate::db::{query, query_as, query_scalar};
use crate::model::all;
use crate::model::usage::{UsageRollupRow, ROLLUP_READ_COLUMNS};
use crate::usage::{UsageQuery, UsageRollup, UsageStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::rpc::{Granularity, UsageEvent};
use hood_domain::{OrgId, RpcKeyId, Timestamp};
use std::collections::BTreeMap;

const USAGE_EVENT_COLUMNS: &str = "request_id, org_id, key_id, chain, method, compute_units, \
     status, http_status, latency_us, at";
const USAGE_EVENT_WIDTH: usize = 10;

const ROLLUP_COLUMNS: &str = "granularity, bucket_start, key_id, chain, method, org_id, \
     requests, compute_units, errors, latency_us_sum";
const ROLLUP_WIDTH: usize = 10;

/// What a rollup row adds up.
#[derive(Default)]
struct Sums {
    org_id: String,
    requests: i64,
    compute_units: i64,
    errors: i64,
    latency_us_sum: i64,
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl UsageStore for SqlStore {
    async fn record_usage(&self, events: &[UsageEvent]) -> StoreResult<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let backend = self.pool.backend();
        // The first event of each request id, in id order: concurrent
        // batches then take the unique index's locks in the same order.
        let mut unique: BTreeMap<&str, &UsageEvent> = BTreeMap::new();
        for e in events {
            unique.entry(e.request_id.as_str()).or_insert(e);
        }
        let batch: Vec<&UsageEvent> = unique.values().copied().collect();

        let mut tx = self.pool.begin_write().await?;
        let mut new_events: Vec<&UsageEvent> = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(backend.rows_per_statement(USAGE_EVENT_WIDTH)) {
            let sql = format!(
                "INSERT INTO usage_events ({USAGE_EVENT_COLUMNS}) VALUES {} \
                 ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                backend.values_list(chunk.len(), USAGE_EVENT_WIDTH)
            );
            // One-off text: keep it out of the prepared-statement cache.
            let mut q = query_scalar::<String>(sql).persistent(false);
            for e in chunk {
                q = q
                    .bind(e.request_id.as_str())
                    .bind(e.org_id.to_string())
                    .bind(e.key_id.to_string())
                    .bind(e.chain.as_str())
                    .bind(e.method.as_str())
                    .bind(i64::from(e.compute_units))
                    .bind(e.status.as_str())
                    .bind(i64::from(e.http_status))
                    .bind(as_i64(e.latency_us))
                    .bind(e.at.millis());
            }
            for id in q.fetch_all(&mut tx).await? {
                match unique.get(id.as_str()) {
                    Some(e) => new_events.push(e),
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "usage insert returned request id `{id}` that was not in the batch"
                        )))
                    }
                }
            }
        }

        // Only what was new is added to the rollups: one row per bucket,
        // key, chain and method, in key order (a stable lock order).
        let mut sums: BTreeMap<(Granularity, i64, RpcKeyId, &str, &str), Sums> = BTreeMap::new();
        for e in &new_events {
            for g in Granularity::ALL {
                let s = sums
                    .entry((
                        g,
                        g.bucket_start(e.at.millis()),
                        e.key_id,
                        e.chain.as_str(),
                        e.method.as_str(),
                    ))
                    .or_default();
                if s.org_id.is_empty() {
                    s.org_id = e.org_id.to_string();
                }
                s.requests = s.requests.saturating_add(1);
                s.compute_units = s.compute_units.saturating_add(i64::from(e.compute_units));
                s.errors = s.errors.saturating_add(i64::from(e.status.is_error()));
                s.latency_us_sum = s.latency_us_sum.saturating_add(as_i64(e.latency_us));
            }
        }
        let rows: Vec<_> = sums.iter().collect();
        for chunk in rows.chunks(backend.rows_per_statement(ROLLUP_WIDTH)) {
            let sql = format!(
                "INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) VALUES {} \
                 ON CONFLICT (granularity, bucket_start, key_id, chain, method) DO UPDATE SET \
                 requests = usage_rollups.requests + excluded.requests, \
                 compute_units = usage_rollups.compute_units + excluded.compute_units, \
                 errors = usage_rollups.errors + excluded.errors, \
                 latency_us_sum = usage_rollups.latency_us_sum + excluded.latency_us_sum",
                backend.values_list(chunk.len(), ROLLUP_WIDTH)
            );
            let mut q = query(sql).persistent(false);
            for ((g, bucket, key, chain, method), s) in chunk {
                q = q
                    .bind(g.as_str())
                    .bind(*bucket)
                    .bind(key.to_string())
                    .bind(*chain)
                    .bind(*method)
                    .bind(s.org_id.as_str())
                    .bind(s.requests)
                    .bind(s.compute_units)
                    .bind(s.errors)
                    .bind(s.latency_us_sum);
            }
            q.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(new_events.len() as u64)
    }

    async fn usage_rollups(&self, q: &UsageQuery) -> StoreResult<Vec<UsageRollup>> {
        let rows = query_as::<UsageRollupRow>(format!(
            "SELECT {ROLLUP_READ_COLUMNS} FROM usage_rollups \
             WHERE org_id = $1 AND granularity = $2 AND bucket_start >= $3 AND bucket_start < $4 \
             AND ($5 IS NULL OR key_id = $5) AND ($6 IS NULL OR chain = $6) \
             ORDER BY bucket_start, key_id, chain, method"
        ))
        .bind(q.org_id.to_string())
        .bind(q.granularity.as_str())
        .bind(q.from.millis())
        .bind(q.to.millis())
        .bind(q.key_id.map(|k| k.to_string()))
        .bind(q.chain.as_deref())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn count_usage_events(&self, key: RpcKeyId) -> StoreResult<i64> {
        Ok(
            query_scalar::<i64>("SELECT count(*) AS n FROM usage_events WHERE key_id = $1")
                .bind(key.to_string())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn usage_event_units(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<(RpcKeyId, String, String, i64)>> {
        let rows: Vec<(String, String, String, i64)> = query_as(
            "SELECT key_id, chain, method, CAST(SUM(compute_units) AS BIGINT) AS cu \
             FROM usage_events WHERE org_id = $1 AND at >= $2 AND at < $3 \
             GROUP BY key_id, chain, method ORDER BY key_id, chain, method",
        )
        .bind(org.to_string())
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(key, chain, method, cu)| {
                let key = key.parse().map_err(|_| {
                    StoreError::Corrupt(format!("usage_events.key_id `{key}` is not an id"))
                })?;
                Ok((key, chain, method, cu))
            })
            .collect()
    }

    async fn usage_event_totals(
        &self,
        org: OrgId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<(i64, i64)> {
        let (n, cu): (i64, i64) = query_as(
            "SELECT count(*) AS n, CAST(COALESCE(SUM(compute_units), 0) AS BIGINT) AS cu FROM usage_events \
             WHERE org_id = $1 AND at >= $2 AND at < $3",
        )
        .bind(org.to_string())
        .bind(from.millis())
        .bind(to.millis())
        .fetch_one(&self.pool)
        .await?;
        Ok((n, cu))
    }
}
