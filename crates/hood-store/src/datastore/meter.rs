//! [`MeterStore`] for [`SqlStore`].

use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as};
use crate::meter::{IngestOutcome, MeterStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::billing::MeterEvent;
use hood_domain::{OrgId, Timestamp};

/// Columns one meter event binds.
const METER_EVENT_WIDTH: usize = 7;

#[derive(sqlx::FromRow)]
struct MeterEventRow {
    id: String,
    meter: String,
    dimensions: String,
    quantity: i64,
    at: i64,
}

impl TryFrom<MeterEventRow> for MeterEvent {
    type Error = StoreError;
    fn try_from(r: MeterEventRow) -> StoreResult<Self> {
        Ok(MeterEvent {
            id: r.id,
            meter: r.meter,
            dimensions: codec::parse_json("dimensions", &r.dimensions)?,
            quantity: u64::try_from(r.quantity)
                .map_err(|_| StoreError::Corrupt(format!("meter event quantity {}", r.quantity)))?,
            at: Timestamp::from_millis(r.at),
        })
    }
}

#[async_trait]
impl MeterStore for SqlStore {
    async fn insert_meter_events(
        &self,
        org: OrgId,
        events: &[MeterEvent],
        now: Timestamp,
    ) -> StoreResult<IngestOutcome> {
        if events.is_empty() {
            return Ok(IngestOutcome::default());
        }
        // Callers validate events first (`MeterEvent::validate`); an event
        // that slipped through is refused whole, never clamped.
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let quantity = i64::try_from(e.quantity).map_err(|_| {
                StoreError::Corrupt(format!("meter event {}: quantity out of range", e.id))
            })?;
            let dimensions = serde_json::to_string(&e.dimensions)
                .map_err(|err| StoreError::Corrupt(format!("meter event {}: {err}", e.id)))?;
            rows.push((e, quantity, dimensions));
        }
        let backend = self.pool.backend();
        let org = org.to_string();
        let mut accepted = 0u64;
        let mut tx = self.pool.begin_write().await?;
        // Multi-row statements; a repeated id (stored before, or earlier in
        // the batch) is skipped by the primary key, so the first copy wins.
        for chunk in rows.chunks(backend.rows_per_statement(METER_EVENT_WIDTH)) {
            let sql = format!(
                "INSERT INTO meter_events (org_id, id, meter, dimensions, quantity, at, received_at) \
                 VALUES {} ON CONFLICT (org_id, id) DO NOTHING",
                backend.values_list(chunk.len(), METER_EVENT_WIDTH)
            );
            // One-off text: keep it out of the prepared-statement cache.
            let mut q = query(sql).persistent(false);
            for (e, quantity, dimensions) in chunk {
                q = q
                    .bind(org.as_str())
                    .bind(e.id.as_str())
                    .bind(e.meter.as_str())
                    .bind(dimensions.as_str())
                    .bind(*quantity)
                    .bind(e.at.millis())
                    .bind(now.millis());
            }
            accepted += q.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(IngestOutcome {
            accepted,
            duplicates: events.len() as u64 - accepted,
        })
    }

    async fn meter_events(
        &self,
        org: OrgId,
        meter: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<MeterEvent>> {
        let rows = query_as::<MeterEventRow>(
            "SELECT id, meter, dimensions, quantity, at FROM meter_events \
             WHERE org_id = $1 AND meter = $2 AND at >= $3 AND at < $4 ORDER BY at, id",
        )
        .bind(org.to_string())
        .bind(meter)
        .bind(from.millis())
        .bind(to.millis())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(MeterEvent::try_from).collect()
    }
}
