//! [`MeterStore`] for [`SqlStore`].

use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as};
use crate::meter::{IngestOutcome, MeterStore};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::billing::MeterEvent;
use hood_domain::{OrgId, Timestamp};

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
        let mut outcome = IngestOutcome::default();
        let mut tx = self.pool.begin_write().await?;
        for e in events {
            // Callers validate events first (`MeterEvent::validate`); an
            // event that slipped through is refused whole, never clamped.
            let quantity = i64::try_from(e.quantity).map_err(|_| {
                StoreError::Corrupt(format!("meter event {}: quantity out of range", e.id))
            })?;
            let dimensions = serde_json::to_string(&e.dimensions)
                .map_err(|err| StoreError::Corrupt(format!("meter event {}: {err}", e.id)))?;
            let stored = query(
                "INSERT INTO meter_events (org_id, id, meter, dimensions, quantity, at, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, id) DO NOTHING",
            )
            .bind(org.to_string())
            .bind(&e.id)
            .bind(&e.meter)
            .bind(dimensions)
            .bind(quantity)
            .bind(e.at.millis())
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
            if stored == 1 {
                outcome.accepted += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        tx.commit().await?;
        Ok(outcome)
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
