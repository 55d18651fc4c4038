//! Embedded mode: SQLite in WAL mode.
//!
//! The repository code is shared with PostgreSQL (`repo_common.rs`, included
//! below); this file holds what differs: connection setup, how a writing
//! transaction begins, and the migration lock.

use crate::migrate::Migration;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

type Db = sqlx::Sqlite;
type DbPool = sqlx::SqlitePool;
type DbRow = sqlx::sqlite::SqliteRow;
type DbConn = sqlx::SqliteConnection;
type StoreImpl = SqliteStore;

const BACKEND: Backend = Backend::Sqlite;
const MIGRATIONS: &[Migration] = crate::migrate::SQLITE;
const SCHEMA_TABLE_EXISTS_SQL: &str =
    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";

/// WAL lets readers proceed while one connection writes; writers queue on
/// the database lock (`busy_timeout`), so a handful of connections is plenty.
const MAX_CONNECTIONS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: DbPool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`).
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // An in-memory database lives only as long as its connections and is
        // not shared safely across several: keep exactly one, forever.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        }
        .connect_with(options)
        .await?;
        tracing::debug!(url = %crate::redact_url(url), "opened SQLite store");
        Ok(Self { pool })
    }
}

/// `BEGIN IMMEDIATE` takes the write lock at once (waiting up to
/// `busy_timeout`). A deferred transaction that reads before writing can
/// fail with `SQLITE_BUSY` instead of waiting when another writer commits in
/// between.
async fn begin_write(pool: &DbPool) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The `BEGIN IMMEDIATE` write lock is the migration lock: a second
/// `hood migrate` waits, then finds nothing pending.
async fn migrate_locked(pool: &DbPool) -> StoreResult<Vec<i64>> {
    let mut tx = begin_write(pool).await?;
    let applied = apply_pending(&mut tx).await?;
    tx.commit().await?;
    Ok(applied)
}

include!("repo_common.rs");
include!("workflow_repo.rs");
include!("fleet_repo.rs");
include!("artifact_repo.rs");
include!("node_repo.rs");
include!("health_repo.rs");
include!("edge_repo.rs");
include!("outbox_repo.rs");
