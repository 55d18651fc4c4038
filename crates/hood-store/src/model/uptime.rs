//! Rows of the uptime worker's inputs and of materialized hours.

use crate::codec;
use crate::uptime::UptimeCursor;
use crate::StoreError;
use hood_domain::health::UptimeBucket;
use hood_domain::lifecycle::NodeState;
use hood_domain::Timestamp;

#[derive(sqlx::FromRow)]
pub(crate) struct UptimeCursorRow {
    id: String,
    created_at: i64,
    last_hour: Option<i64>,
}

impl TryFrom<UptimeCursorRow> for UptimeCursor {
    type Error = StoreError;
    fn try_from(r: UptimeCursorRow) -> Result<Self, StoreError> {
        Ok(UptimeCursor {
            node_id: codec::parse_id("nodes.id", &r.id)?,
            created_at: Timestamp(r.created_at),
            last_hour: r.last_hour,
        })
    }
}

/// One state change of a node's history: `(at, to_state)`.
#[derive(sqlx::FromRow)]
pub(crate) struct StateChangeRow {
    at: i64,
    to_state: String,
}

impl TryFrom<StateChangeRow> for (i64, NodeState) {
    type Error = StoreError;
    fn try_from(r: StateChangeRow) -> Result<Self, StoreError> {
        Ok((
            r.at,
            codec::parse_state("node_events.to_state", &r.to_state)?,
        ))
    }
}

pub(crate) const BUCKET_COLUMNS: &str = "hour_start, up_ms, syncing_ms, down_ms, maintenance_ms";

#[derive(sqlx::FromRow)]
pub(crate) struct UptimeBucketRow {
    hour_start: i64,
    up_ms: i64,
    syncing_ms: i64,
    down_ms: i64,
    maintenance_ms: i64,
}

impl TryFrom<UptimeBucketRow> for UptimeBucket {
    type Error = StoreError;
    fn try_from(r: UptimeBucketRow) -> Result<Self, StoreError> {
        Ok(UptimeBucket {
            hour_start_ms: r.hour_start,
            up_ms: r.up_ms,
            syncing_ms: r.syncing_ms,
            down_ms: r.down_ms,
            maintenance_ms: r.maintenance_ms,
        })
    }
}
