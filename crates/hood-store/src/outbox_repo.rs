// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`).
//
// Outbox batches for the relay (`crate::OutboxBatch`). Wrapped in a module so
// its imports and helpers cannot collide with the other included
// repositories.

mod outbox_repo {
    use super::*;
    use crate::{OutboxBatch, OutboxLocking};
    use std::collections::HashSet;

    /// Concurrent relays pass over each other's rows instead of waiting for
    /// them (or publishing them twice). SQLite has one relay and no row locks.
    const SKIP_LOCKED: &str = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };

    const OUTBOX_COLUMNS: &str =
        "seq, id, subject, aggregate_type, aggregate_id, payload, created_at, published_at";

    /// Chunked `IN` lists: far below both dialects' bind-parameter limits.
    const CHUNK: usize = 500;

    /// Rows claimed by one relay. On PostgreSQL `tx` holds their row locks
    /// until `finish` commits, or the batch is dropped (sqlx rolls an
    /// unfinished transaction back), which releases them unpublished. On
    /// SQLite, and for an empty batch, nothing is held.
    struct Batch {
        records: Vec<OutboxRecord>,
        tx: Option<sqlx::Transaction<'static, Db>>,
        pool: DbPool,
    }

    async fn mark_published(conn: &mut DbConn, ids: &[String], now: Timestamp) -> StoreResult<()> {
        for chunk in ids.chunks(CHUNK) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "UPDATE outbox SET published_at = $1 WHERE published_at IS NULL AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now.millis());
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    #[async_trait]
    impl OutboxLocking for StoreImpl {
        async fn lock_outbox_batch(&self, limit: i64) -> StoreResult<Box<dyn OutboxBatch>> {
            let sql = format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE published_at IS NULL \
                 ORDER BY seq LIMIT $1{SKIP_LOCKED}"
            );
            let limit = limit.max(0);
            let (records, tx) = match BACKEND {
                Backend::Postgres => {
                    let mut tx = begin_write(&self.pool).await?;
                    let rows = sqlx::query(&sql).bind(limit).fetch_all(&mut *tx).await?;
                    let records = rows
                        .iter()
                        .map(outbox_from_row)
                        .collect::<StoreResult<Vec<_>>>()?;
                    if records.is_empty() {
                        tx.rollback().await?;
                        (records, None)
                    } else {
                        (records, Some(tx))
                    }
                }
                Backend::Sqlite => {
                    let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
                    let records = rows
                        .iter()
                        .map(outbox_from_row)
                        .collect::<StoreResult<Vec<_>>>()?;
                    (records, None)
                }
            };
            Ok(Box::new(Batch {
                records,
                tx,
                pool: self.pool.clone(),
            }))
        }
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
                    let mut tx = begin_write(&pool).await?;
                    mark_published(&mut tx, &ids, now).await?;
                    tx.commit().await?;
                }
            }
            Ok(())
        }
    }
}
