//! Uptime: the worker materializes complete hours from the node state log
//! (so the log can be pruned later without changing any report), and a
//! report combines materialized hours with the live log for the rest.

use hood_domain::health::{
    hour_floor, hourly_buckets, summarize_uptime, UptimeBucket, UptimeSummary, HOUR_MS,
};
use hood_domain::{NodeId, Timestamp};
use hood_store::health::Lease;
use hood_store::uptime::UptimeStore;
use hood_store::StoreError;
use serde::Serialize;
use std::collections::BTreeMap;

/// Materializes every complete hour not yet stored, for every live node.
/// Returns how many hours were written.
pub async fn materialize_uptime(
    store: &dyn UptimeStore,
    lease: &Lease,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let complete_until = hour_floor(now.millis());
    let mut written = 0;
    for cursor in store.uptime_cursors().await? {
        let from = cursor
            .last_hour
            .map_or_else(|| hour_floor(cursor.created_at.millis()), |h| h + HOUR_MS);
        if from >= complete_until {
            continue;
        }
        let log = store
            .node_state_log(cursor.node_id, Timestamp(from), Timestamp(complete_until))
            .await?;
        let mut buckets = hourly_buckets(log.state_at_start, &log.changes, from, complete_until);
        // The last complete hour is always stored, even empty, so the
        // cursor advances past hours in which nothing counted.
        let last = complete_until - HOUR_MS;
        if buckets.last().is_none_or(|b| b.hour_start_ms != last) {
            buckets.push(UptimeBucket {
                hour_start_ms: last,
                ..UptimeBucket::default()
            });
        }
        store
            .put_uptime_buckets(lease, cursor.node_id, &buckets)
            .await?;
        written += buckets.len();
    }
    Ok(written)
}

/// Uptime of one node over `[from, to)`.
#[derive(Debug, Clone, Serialize)]
pub struct UptimeReport {
    pub node_id: String,
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(flatten)]
    pub summary: UptimeSummary,
    /// `(up + syncing) / (up + syncing + down)` as a percentage.
    pub uptime_percent: Option<f64>,
    /// How syncing time is counted, so the number can be read honestly.
    pub syncing_counts_as: &'static str,
    pub maintenance: &'static str,
    pub buckets: Vec<UptimeBucket>,
}

/// Materialized hours where they exist; the live log for partial hours and
/// hours the worker has not reached yet. Both give the same numbers.
pub async fn uptime_report(
    store: &dyn UptimeStore,
    node: NodeId,
    from: Timestamp,
    to: Timestamp,
) -> Result<UptimeReport, StoreError> {
    let stored: BTreeMap<i64, UptimeBucket> = store
        .uptime_buckets(node, hour_floor(from.millis()), to.millis())
        .await?
        .into_iter()
        .map(|b| (b.hour_start_ms, b))
        .collect();
    let log = store.node_state_log(node, from, to).await?;
    let live = hourly_buckets(log.state_at_start, &log.changes, from.millis(), to.millis());
    let hour_complete = |h: i64| h >= from.millis() && h + HOUR_MS <= to.millis();
    let mut buckets: Vec<UptimeBucket> = live
        .into_iter()
        .map(|b| match stored.get(&b.hour_start_ms) {
            Some(s) if hour_complete(b.hour_start_ms) => *s,
            _ => b,
        })
        .collect();
    // Hours materialized but absent from the live log (pruned history).
    for (h, s) in &stored {
        if hour_complete(*h) && !s.is_empty() && !buckets.iter().any(|b| b.hour_start_ms == *h) {
            buckets.push(*s);
        }
    }
    buckets.sort_by_key(|b| b.hour_start_ms);
    let summary = summarize_uptime(&buckets);
    Ok(UptimeReport {
        node_id: node.to_string(),
        from_ms: from.millis(),
        to_ms: to.millis(),
        uptime_percent: summary.ratio.map(|r| (r * 100_000.0).round() / 1000.0),
        summary,
        syncing_counts_as: "up",
        maintenance: "excluded",
        buckets,
    })
}
