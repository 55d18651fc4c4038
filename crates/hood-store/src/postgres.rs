//! Cluster mode: PostgreSQL.
//!
//! The repository code is shared with SQLite (`repo_common.rs`, included
//! below); this file holds what differs: connection setup, how a writing
//! transaction begins, and the migration lock.

use crate::migrate::Migration;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Connection as _;

type Db = sqlx::Postgres;
type DbPool = sqlx::PgPool;
type DbRow = sqlx::postgres::PgRow;
type DbConn = sqlx::PgConnection;
type StoreImpl = PgStore;

const BACKEND: Backend = Backend::Postgres;
const MIGRATIONS: &[Migration] = crate::migrate::POSTGRES;
const SCHEMA_TABLE_EXISTS_SQL: &str = "SELECT count(*) AS n FROM pg_catalog.pg_tables \
     WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";

const MAX_CONNECTIONS: u32 = 10;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the session-level advisory lock held while migrating ("hood" in
/// ASCII). Advisory locks are per database, so this only serialises
/// migrations of the same database.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f64;

/// A PostgreSQL-backed [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: DbPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`). Does not migrate: in cluster mode
    /// that is `hood migrate`'s job, never a server's.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        tracing::debug!(url = %crate::redact_url(url), "connected to PostgreSQL store");
        Ok(Self { pool })
    }
}

/// Read committed is enough: every race-sensitive operation starts with a
/// conditional write whose row lock arbitrates.
async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// Runs the migrations on a dedicated connection holding
/// `pg_advisory_lock`, so concurrent `hood migrate` runs take turns. The
/// connection is closed afterwards, which releases the lock even when the
/// migration failed half way.
async fn migrate_locked(pool: &DbPool) -> StoreResult<Vec<i64>> {
    let mut conn = DbConn::connect_with(&pool.connect_options()).await?;
    let result = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        let applied = apply_pending(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(applied)
    }
    .await;
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the migration connection failed");
    }
    result
}

include!("repo_common.rs");
include!("workflow_repo.rs");
include!("fleet_repo.rs");
include!("artifact_repo.rs");
include!("node_repo.rs");
include!("health_repo.rs");
include!("edge_repo.rs");
include!("outbox_repo.rs");
