//! [`OutboxStore`] for [`SqlStore`], and [`insert_event`], the outbox append
//! every announcing mutation makes on its own transaction.

use super::SqlStore;
use crate::codec;
use crate::db::{numbered_placeholders, query, query_as, Backend, Pool, Tx};
use crate::model::all;
use crate::model::outbox::{OutboxRow, OUTBOX_COLUMNS};
use crate::outbox::{OutboxBatch, OutboxRecord, OutboxStore};
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::event::DomainEvent;
use hood_domain::{EventId, Timestamp};
use std::collections::HashSet;

/// Ids per `IN` list: far below both dialects' bind-parameter limits.
const MARK_CHUNK: usize = 500;

/// Appends an event to the outbox on the caller's transaction.
pub(crate) async fn insert_event(tx: &mut Tx<'_>, event: &DomainEvent) -> StoreResult<EventId> {
    let id = EventId::from_uuid(uuid::Uuid::now_v7());
    query(
        "INSERT INTO outbox (id, subject, aggregate_type, aggregate_id, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_string())
    .bind(&event.subject)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.payload.to_string())
    .bind(codec::now_ms())
    .execute(tx)
    .await?;
    Ok(id)
}

/// Marks unpublished rows published, in chunked `IN` lists.
async fn mark_published(tx: &mut Tx<'_>, ids: &[String], now: Timestamp) -> StoreResult<()> {
    for chunk in ids.chunks(MARK_CHUNK) {
        let sql = format!(
            "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id IN ({})",
            numbered_placeholders(2, chunk.len())
        );
        let mut q = query(sql).bind(now.millis());
        for id in chunk {
            q = q.bind(id.as_str());
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Rows claimed by one relay. On PostgreSQL `tx` holds their row locks
/// until `finish` commits, or the batch is dropped (an unfinished
/// transaction rolls back), which releases them unpublished. On SQLite, and
/// for an empty batch, nothing is held.
struct Batch {
    records: Vec<OutboxRecord>,
    tx: Option<Tx<'static>>,
    pool: Pool,
}

#[async_trait]
impl OutboxBatch for Batch {
    fn records(&self) -> &[OutboxRecord] {
        &self.records
    }

    async fn finish(self: Box<Self>, published: &[EventId], now: Timestamp) -> StoreResult<()> {
        let Batch { records, tx, pool } = *self;
        // Only rows of this batch: on PostgreSQL any other row may be
        // locked by another relay, and marking it is not ours to do.
        let mine: HashSet<EventId> = records.iter().map(|r| r.id).collect();
        let ids: Vec<String> = published
            .iter()
            .filter(|id| mine.contains(id))
            .map(ToString::to_string)
            .collect();
        match tx {
            Some(mut tx) => {
                mark_published(&mut tx, &ids, now).await?;
                tx.commit().await?;
            }
            None if ids.is_empty() => {}
            None => {
                let mut tx = pool.begin_write().await?;
                mark_published(&mut tx, &ids, now).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn outbox_pending(&self, limit: i64) -> StoreResult<Vec<OutboxRecord>> {
        let rows = query_as::<OutboxRow>(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"
        ))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn outbox_mark_published(&self, ids: &[EventId], now: Timestamp) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut tx = self.pool.begin_write().await?;
        mark_published(&mut tx, &ids, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn outbox_lock_batch(&self, limit: i64) -> StoreResult<Box<dyn OutboxBatch>> {
        let backend = self.pool.backend();
        // Concurrent relays pass over each other's rows instead of waiting
        // for them (or publishing them twice).
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE published_at IS NULL \
             ORDER BY seq LIMIT $1{}",
            backend.for_update_skip_locked()
        );
        let limit = limit.max(0);
        let (records, tx) = match backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin_write().await?;
                let rows = query_as::<OutboxRow>(&sql)
                    .bind(limit)
                    .fetch_all(&mut tx)
                    .await?;
                let records: Vec<OutboxRecord> = all(rows)?;
                if records.is_empty() {
                    tx.rollback().await?;
                    (records, None)
                } else {
                    (records, Some(tx))
                }
            }
            // One relay and no row locks: a plain read, nothing held.
            Backend::Sqlite => {
                let rows = query_as::<OutboxRow>(&sql)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                (all(rows)?, None)
            }
        };
        Ok(Box::new(Batch {
            records,
            tx,
            pool: self.pool.clone(),
        }))
    }
}
