//! [`NotificationStore`] for [`SqlStore`].

use super::incident::list_limit;
use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as, query_scalar};
use crate::model::incident::{IncidentRow, INCIDENT_COLUMNS};
use crate::model::notification::{
    ChannelRow, DeliveryAttemptRow, DeliveryProgressRow, DeliveryRow, ATTEMPT_COLUMNS,
    CHANNEL_COLUMNS, DELIVERY_COLUMNS,
};
use crate::model::{all, one, qualified};
use crate::notification::{
    AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, DueDelivery, Incident,
    NotificationChannel, NotificationStore,
};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::{ChannelId, DeliveryId, IncidentId, OrgId, Timestamp};

#[async_trait]
impl NotificationStore for SqlStore {
    async fn create_channel(&self, ch: &NotificationChannel) -> StoreResult<()> {
        query(format!(
            "INSERT INTO notification_channels ({CHANNEL_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(ch.id.to_string())
        .bind(ch.org_id.to_string())
        .bind(&ch.name)
        .bind(&ch.kind)
        .bind(&ch.sealed_config)
        .bind(ch.redacted_config.to_string())
        .bind(ch.enabled)
        .bind(ch.created_at.millis())
        .bind(ch.updated_at.millis())
        .execute(&self.pool)
        .await
        .map_err(|e| codec::write_error(e, "org"))?;
        Ok(())
    }

    async fn list_channels(&self, org: OrgId) -> StoreResult<Vec<NotificationChannel>> {
        let rows = query_as::<ChannelRow>(format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels \
             WHERE org_id = $1 AND enabled = $2 ORDER BY created_at, id"
        ))
        .bind(org.to_string())
        .bind(true)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn get_channel(
        &self,
        org: OrgId,
        id: ChannelId,
    ) -> StoreResult<Option<NotificationChannel>> {
        let row = query_as::<ChannelRow>(format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels \
             WHERE id = $1 AND org_id = $2 AND enabled = $3"
        ))
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(true)
        .fetch_optional(&self.pool)
        .await?;
        one(row)
    }

    async fn delete_channel(&self, org: OrgId, id: ChannelId, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.pool.begin_write().await?;
        // Kept disabled (deliveries reference it) with its secrets erased and
        // its name freed for reuse.
        let done = query(
            "UPDATE notification_channels SET enabled = $1, sealed_config = $2, name = $3, \
             updated_at = $4 WHERE id = $5 AND org_id = $6 AND enabled = $7",
        )
        .bind(false)
        .bind(Vec::<u8>::new())
        .bind(format!("deleted-{id}"))
        .bind(now.millis())
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(true)
        .execute(&mut tx)
        .await?;
        if done != 1 {
            // Not this org's channel (or already deleted): touch nothing.
            return Ok(false);
        }
        query(
            "UPDATE notification_deliveries SET state = 'failed', last_error = 'channel deleted', \
             claimed_until = NULL WHERE channel_id = $1 AND state = 'pending'",
        )
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn enqueue_deliveries(
        &self,
        incident: IncidentId,
        event: &str,
        level: i64,
        now: Timestamp,
    ) -> StoreResult<usize> {
        let mut tx = self.pool.begin_write().await?;
        let channels = query_scalar::<String>(
            "SELECT c.id FROM notification_channels c JOIN incidents i ON i.org_id = c.org_id \
             WHERE i.id = $1 AND c.enabled = $2 ORDER BY c.id",
        )
        .bind(incident.to_string())
        .bind(true)
        .fetch_all(&mut tx)
        .await?;
        let mut created = 0;
        for channel in channels {
            let id = DeliveryId::from_uuid(uuid::Uuid::now_v7());
            let done = query(
                "INSERT INTO notification_deliveries (id, channel_id, incident_id, event, \
                 escalation_level, state, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(channel)
            .bind(incident.to_string())
            .bind(event)
            .bind(level)
            .bind(now.millis())
            .execute(&mut tx)
            .await?;
            created += usize::try_from(done).unwrap_or(0);
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn claim_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Vec<DueDelivery>> {
        let mut tx = self.pool.begin_write().await?;
        // Concurrent senders pass over each other's deliveries.
        let rows = query_as::<DeliveryRow>(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY next_attempt_at LIMIT $2{}",
            self.pool.backend().for_update_skip_locked()
        ))
        .bind(now.millis())
        .bind(limit.max(1))
        .fetch_all(&mut tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let delivery = Delivery::try_from(row)?;
            query("UPDATE notification_deliveries SET claimed_until = $1 WHERE id = $2")
                .bind(now.millis() + lease_ms)
                .bind(delivery.id.to_string())
                .execute(&mut tx)
                .await?;
            let channel = query_as::<ChannelRow>(format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = $1"
            ))
            .bind(delivery.channel_id.to_string())
            .fetch_one(&mut tx)
            .await?;
            let incident = query_as::<IncidentRow>(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1"
            ))
            .bind(delivery.incident_id.to_string())
            .fetch_optional(&mut tx)
            .await?;
            let Some(incident) = incident else {
                return Err(StoreError::Corrupt(format!(
                    "delivery {} has no incident",
                    delivery.id
                )));
            };
            out.push(DueDelivery {
                delivery,
                channel: NotificationChannel::try_from(channel)?,
                incident: Incident::try_from(incident)?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let row = query_as::<DeliveryProgressRow>(format!(
            "SELECT attempts, state FROM notification_deliveries WHERE id = $1{}",
            self.pool.backend().for_update()
        ))
        .bind(id.to_string())
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound("delivery"));
        };
        // Already settled (its channel was deleted, or a sender whose claim
        // had lapsed reports after another delivered it): a late outcome
        // must not bring it back to pending or count it again.
        if row.state != DeliveryState::Pending.as_str() {
            return Ok(());
        }
        let attempt = row.attempts + 1;
        let (state, next, error, delivered_at) = match outcome {
            AttemptOutcome::Delivered => (DeliveryState::Delivered, now, None, Some(now.millis())),
            AttemptOutcome::Retry {
                next_attempt_at,
                error,
            } => (
                DeliveryState::Pending,
                *next_attempt_at,
                Some(error.as_str()),
                None,
            ),
            AttemptOutcome::Failed { error } => {
                (DeliveryState::Failed, now, Some(error.as_str()), None)
            }
        };
        query(
            "UPDATE notification_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, \
             last_error = $4, delivered_at = $5, claimed_until = NULL WHERE id = $6",
        )
        .bind(state.as_str())
        .bind(attempt)
        .bind(next.millis())
        .bind(error)
        .bind(delivered_at)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        query(format!(
            "INSERT INTO notification_attempts (delivery_id, {ATTEMPT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(id.to_string())
        .bind(attempt)
        .bind(now.millis())
        .bind(matches!(outcome, AttemptOutcome::Delivered))
        .bind(error)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        incident: Option<IncidentId>,
        limit: i64,
    ) -> StoreResult<Vec<Delivery>> {
        let rows = query_as::<DeliveryRow>(format!(
            "SELECT {} FROM notification_deliveries d JOIN incidents i ON i.id = d.incident_id \
             WHERE i.org_id = $1 AND ($2 IS NULL OR d.incident_id = $2) \
             ORDER BY d.created_at DESC, d.id DESC LIMIT $3",
            qualified("d", DELIVERY_COLUMNS)
        ))
        .bind(org.to_string())
        .bind(incident.map(|i| i.to_string()))
        .bind(list_limit(limit))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn delivery_attempts(&self, id: DeliveryId) -> StoreResult<Vec<DeliveryAttempt>> {
        let rows = query_as::<DeliveryAttemptRow>(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM notification_attempts WHERE delivery_id = $1 \
             ORDER BY attempt"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }
}
