//! [`UptimeStore`] for [`SqlStore`].

use super::lease::check_fence;
use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as, query_scalar};
use crate::lease::Lease;
use crate::model::all;
use crate::model::uptime::{StateChangeRow, UptimeBucketRow, UptimeCursorRow, BUCKET_COLUMNS};
use crate::uptime::{StateLog, UptimeCursor, UptimeStore};
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::health::UptimeBucket;
use hood_domain::{NodeId, Timestamp};

#[async_trait]
impl UptimeStore for SqlStore {
    async fn uptime_cursors(&self) -> StoreResult<Vec<UptimeCursor>> {
        let rows = query_as::<UptimeCursorRow>(
            "SELECT n.id, n.created_at, \
               (SELECT max(u.hour_start) FROM node_uptime_hourly u WHERE u.node_id = n.id) \
               AS last_hour \
             FROM nodes n WHERE n.state NOT IN ('terminated', 'failed') ORDER BY n.id",
        )
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn node_state_log(
        &self,
        node: NodeId,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<StateLog> {
        let before = query_scalar::<String>(
            "SELECT to_state FROM node_events \
             WHERE node_id = $1 AND to_state IS NOT NULL AND at <= $2 \
             ORDER BY at DESC, seq DESC LIMIT 1",
        )
        .bind(node.to_string())
        .bind(from.millis())
        .fetch_optional(&self.pool)
        .await?;
        let rows = query_as::<StateChangeRow>(
            "SELECT at, to_state FROM node_events WHERE node_id = $1 AND to_state IS NOT NULL \
             AND at > $2 AND at < $3 ORDER BY at, seq",
        )
        .bind(node.to_string())
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(StateLog {
            state_at_start: codec::parse_opt_state("node_events.to_state", before.as_deref())?,
            changes: all(rows)?,
        })
    }

    async fn put_uptime_buckets(
        &self,
        lease: &Lease,
        node: NodeId,
        buckets: &[UptimeBucket],
    ) -> StoreResult<()> {
        let now = Timestamp(codec::now_ms());
        let mut tx = self.pool.begin_write().await?;
        check_fence(&mut tx, lease, now).await?;
        for b in buckets {
            query(format!(
                "INSERT INTO node_uptime_hourly (node_id, {BUCKET_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node_id, hour_start) DO UPDATE SET \
                 up_ms = excluded.up_ms, syncing_ms = excluded.syncing_ms, \
                 down_ms = excluded.down_ms, maintenance_ms = excluded.maintenance_ms"
            ))
            .bind(node.to_string())
            .bind(b.hour_start_ms)
            .bind(b.up_ms)
            .bind(b.syncing_ms)
            .bind(b.down_ms)
            .bind(b.maintenance_ms)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn uptime_buckets(
        &self,
        node: NodeId,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<UptimeBucket>> {
        let rows = query_as::<UptimeBucketRow>(format!(
            "SELECT {BUCKET_COLUMNS} FROM node_uptime_hourly \
             WHERE node_id = $1 AND hour_start >= $2 AND hour_start < $3 ORDER BY hour_start"
        ))
        .bind(node.to_string())
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }
}
