//! [`Store`] for [`SqlStore`]: liveness, migrations and the schema check.

use super::SqlStore;
use crate::codec;
use crate::db::{query, query_as, query_scalar, Executor, Tx};
use crate::migrate::{self, AppliedMigration, Migration};
use crate::{Backend, Store, StoreError, StoreResult};
use async_trait::async_trait;

async fn read_applied<'e>(on: impl Into<Executor<'e>>) -> StoreResult<Vec<AppliedMigration>> {
    Ok(query_as::<AppliedMigration>(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
    )
    .fetch_all(on)
    .await?)
}

/// Applies the pending migrations of `known` on `tx`, which holds the
/// dialect's migration lock.
async fn apply_pending(
    tx: &mut Tx<'_>,
    backend: Backend,
    known: &[Migration],
) -> StoreResult<Vec<i64>> {
    tx.execute_script(migrate::TRACKING_TABLE_DDL).await?;
    let applied = read_applied(&mut *tx).await?;
    let pending = migrate::pending(known, &applied)?;
    let mut versions = Vec::with_capacity(pending.len());
    for m in pending {
        tx.execute_script(m.sql).await?;
        query(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(m.checksum())
        .bind(codec::now_ms())
        .execute(&mut *tx)
        .await?;
        tracing::info!(
            backend = backend.as_str(),
            version = m.version,
            name = m.name,
            "applied migration"
        );
        versions.push(m.version);
    }
    Ok(versions)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.pool.backend()
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(self.pool.ping().await?)
    }

    /// All pending migrations in one transaction, under the dialect's
    /// migration lock: a second `hood migrate` waits, then finds nothing
    /// pending.
    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        let backend = self.pool.backend();
        let mut lock = self.pool.lock_for_migration().await?;
        let result = async {
            let mut tx = lock.begin().await?;
            let applied = apply_pending(&mut tx, backend, backend.migrations()).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(applied)
        }
        .await;
        lock.release().await;
        result
    }

    async fn check_schema(&self) -> StoreResult<()> {
        let known = self.pool.backend().migrations();
        let tables = query_scalar::<i64>(self.pool.backend().schema_table_exists_sql())
            .fetch_one(&self.pool)
            .await?;
        if tables == 0 {
            return Err(StoreError::SchemaOutOfDate {
                found: 0,
                expected: migrate::latest_version(known),
            });
        }
        let applied = read_applied(&self.pool).await?;
        migrate::check(known, &applied)
    }
}
