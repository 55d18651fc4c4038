//! The dialect abstraction: everything that differs between SQLite and
//! PostgreSQL, and a thin typed query API over both.
//!
//! Queries are written once (`crate::datastore`) and compiled once. They
//! read like sqlx's own API:
//!
//! ```ignore
//! let n = query("UPDATE users SET disabled = $2 WHERE id = $1")
//!     .bind(id.to_string())
//!     .bind(true)
//!     .execute(&mut tx)
//!     .await?;
//! let row = query_as::<UserRow>("SELECT … FROM users WHERE id = $1")
//!     .bind(id.to_string())
//!     .fetch_optional(&self.pool)
//!     .await?;
//! ```
//!
//! Binds are a small closed set of portable [`Value`]s, kept until the query
//! runs and then bound to the native sqlx query of whichever backend the
//! executor belongs to. Native pools stay (and with them the per-connection
//! prepared-statement cache); `sqlx::Any` is not used because it decodes
//! through its own value model and loses the native types.
//!
//! Design notes:
//! * A typed `None` stays typed ([`Value::Int`]`(None)` binds a NULL
//!   `BIGINT`, not an untyped NULL): PostgreSQL infers parameter types from
//!   the bind, and `$2 IS NULL OR org_id = $2` needs to know it is text.
//! * [`Tx`] carries a lifetime because the PostgreSQL migration runs on a
//!   dedicated connection (its session advisory lock must die with it);
//!   transactions from the pool are `Tx<'static>`.
//! * Dialect SQL is reached only through [`Backend`]'s fragment methods
//!   (`FOR UPDATE`, `SKIP LOCKED`, `INDEXED BY`, bind limits, placeholder
//!   style), so a datastore function never spells a dialect's syntax.

use crate::migrate::{self, Migration};
use crate::{StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments as _, Connection as _, Executor as _};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// This dialect's migrations, in order.
    pub(crate) fn migrations(self) -> &'static [Migration] {
        match self {
            Backend::Sqlite => migrate::SQLITE,
            Backend::Postgres => migrate::POSTGRES,
        }
    }

    /// One row, column `n`: 1 when `schema_migrations` exists, else 0.
    pub(crate) const fn schema_table_exists_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "SELECT count(*) AS n FROM sqlite_master \
                 WHERE type = 'table' AND name = 'schema_migrations'"
            }
            Backend::Postgres => {
                "SELECT count(*) AS n FROM pg_catalog.pg_tables \
                 WHERE schemaname = current_schema() AND tablename = 'schema_migrations'"
            }
        }
    }

    /// Locks the rows a `SELECT` reads until the transaction ends, so a
    /// concurrent writer waits. SQLite has no row locks: `BEGIN IMMEDIATE`
    /// (see [`Pool::begin_write`]) already serialises writers.
    pub(crate) const fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// [`Self::for_update`], passing over rows another transaction holds:
    /// concurrent claimers each get different rows instead of waiting.
    pub(crate) const fn for_update_skip_locked(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// A row lock that still lets others insert rows referring to the
    /// locked one (a foreign key check takes `KEY SHARE`).
    pub(crate) const fn for_no_key_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// [`Self::for_no_key_update`] of one table of a join only.
    pub(crate) fn for_no_key_update_of(self, table: &str) -> String {
        match self {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!(" FOR NO KEY UPDATE OF {table}"),
        }
    }

    /// The database server's clock, in Unix milliseconds.
    pub(crate) const fn now_millis(self) -> &'static str {
        match self {
            // Julian days to Unix epoch milliseconds (millisecond precision).
            Backend::Sqlite => {
                "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
            }
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// SQLite's planner keeps no statistics; `INDEXED BY` makes it use the
    /// index a query was written for. PostgreSQL plans by statistics.
    pub(crate) fn indexed_by(self, index: &str) -> String {
        match self {
            Backend::Sqlite => format!(" INDEXED BY {index}"),
            Backend::Postgres => String::new(),
        }
    }

    /// Most bind parameters one statement may carry: SQLite's
    /// `SQLITE_MAX_VARIABLE_NUMBER` (32766 since 3.32), PostgreSQL's wire
    /// protocol limit (65535).
    pub(crate) const fn max_bind_params(self) -> usize {
        match self {
            Backend::Sqlite => 32_766,
            Backend::Postgres => 65_535,
        }
    }

    /// Rows of `width` binds that fit in one statement.
    pub(crate) const fn rows_per_statement(self, width: usize) -> usize {
        self.max_bind_params() / width
    }

    /// `($1, …, $w), ($w+1, …)`: `rows` tuples of `width` placeholders for
    /// a built multi-row statement whose only binds they are.
    ///
    /// On SQLite the placeholders are anonymous `?`, bound in order. SQLite
    /// keeps `$n` and `?n` parameters in a list it searches linearly, both
    /// while parsing and when sqlx asks each parameter's name before binding
    /// it, so thousands of them cost quadratic time (over a second for 3,000
    /// rows); anonymous ones never enter that list. PostgreSQL only knows
    /// `$n`.
    pub(crate) fn values_list(self, rows: usize, width: usize) -> String {
        let mut out = String::with_capacity(rows * width * 7);
        for r in 0..rows {
            if r > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for c in 0..width {
                if c > 0 {
                    out.push_str(", ");
                }
                match self {
                    Backend::Sqlite => out.push('?'),
                    Backend::Postgres => {
                        out.push('$');
                        out.push_str(&(r * width + c + 1).to_string());
                    }
                }
            }
            out.push(')');
        }
        out
    }
}

/// `$first, $first+1, …`: `n` numbered placeholders for an `IN` list (short
/// lists, so both dialects take `$n`).
pub(crate) fn numbered_placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// WAL lets SQLite readers proceed while one connection writes; writers
/// queue on the database lock (`busy_timeout`), so a handful of connections
/// is plenty.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const PG_MAX_CONNECTIONS: u32 = 10;
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the session-level advisory lock held while migrating ("hood" in
/// ASCII). Advisory locks are per database, so this only serialises
/// migrations of the same database.
const PG_MIGRATION_LOCK_KEY: i64 = 0x686f_6f64;

/// A native connection pool of one backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// Opens a pool from a URL: `sqlite://PATH` (created if missing) or
    /// `postgres://…`.
    pub(crate) async fn open(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Self::open_postgres(url).await
        } else {
            Err(StoreError::Database(sqlx::Error::Configuration(
                format!(
                    "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
                    crate::redact_url(url)
                )
                .into(),
            )))
        }
    }

    /// Embedded mode: SQLite in WAL mode, foreign keys on.
    async fn open_sqlite(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
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
            SqlitePoolOptions::new().max_connections(SQLITE_MAX_CONNECTIONS)
        }
        .connect_with(options)
        .await?;
        tracing::debug!(url = %crate::redact_url(url), "opened SQLite store");
        Ok(Pool::Sqlite(pool))
    }

    /// Cluster mode: PostgreSQL.
    async fn open_postgres(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        tracing::debug!(url = %crate::redact_url(url), "connected to PostgreSQL store");
        Ok(Pool::Postgres(pool))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A transaction that is allowed to write.
    ///
    /// SQLite: `BEGIN IMMEDIATE` takes the write lock at once (waiting up to
    /// `busy_timeout`); a deferred transaction that reads before writing can
    /// fail with `SQLITE_BUSY` instead of waiting when another writer
    /// commits in between. PostgreSQL: read committed is enough, since
    /// every race-sensitive operation starts with a conditional write or a
    /// row lock that arbitrates.
    pub(crate) async fn begin_write(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Cheap round trip.
    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Pool::Sqlite(pool) => pool.execute(sqlx::raw_sql("SELECT 1")).await.map(drop),
            Pool::Postgres(pool) => pool.execute(sqlx::raw_sql("SELECT 1")).await.map(drop),
        }
    }

    /// Takes the dialect's migration lock, so concurrent `hood migrate`
    /// runs take turns and the second finds nothing pending.
    ///
    /// SQLite: the lock is the `BEGIN IMMEDIATE` write lock of the
    /// migration's own transaction ([`MigrationLock::begin`]). PostgreSQL:
    /// `pg_advisory_lock` on a dedicated connection, closed by
    /// [`MigrationLock::release`], which releases the lock even when the
    /// migration failed half way.
    pub(crate) async fn lock_for_migration(&self) -> StoreResult<MigrationLock> {
        match self {
            Pool::Sqlite(pool) => Ok(MigrationLock::Sqlite(pool.acquire().await?)),
            Pool::Postgres(pool) => {
                let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
                let locked = sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(PG_MIGRATION_LOCK_KEY)
                    .execute(&mut conn)
                    .await;
                if let Err(e) = locked {
                    close_quietly(conn).await;
                    return Err(e.into());
                }
                Ok(MigrationLock::Postgres(conn))
            }
        }
    }
}

async fn close_quietly(conn: PgConnection) {
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the migration connection failed");
    }
}

/// The connection a migration runs on, holding the dialect's migration
/// lock (see [`Pool::lock_for_migration`]).
pub(crate) enum MigrationLock {
    Sqlite(PoolConnection<sqlx::Sqlite>),
    Postgres(PgConnection),
}

impl MigrationLock {
    /// The one transaction all pending migrations run in.
    pub(crate) async fn begin(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        Ok(match self {
            MigrationLock::Sqlite(conn) => Tx::Sqlite(conn.begin_with("BEGIN IMMEDIATE").await?),
            MigrationLock::Postgres(conn) => Tx::Postgres(conn.begin().await?),
        })
    }

    /// Gives the lock up.
    pub(crate) async fn release(self) {
        match self {
            MigrationLock::Sqlite(conn) => drop(conn),
            MigrationLock::Postgres(conn) => close_quietly(conn).await,
        }
    }
}

/// An open transaction of one backend. Dropping it unfinished rolls back.
pub(crate) enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
}

impl Tx<'_> {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }

    /// Runs a script of several statements without binds (migrations).
    pub(crate) async fn execute_script(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        // `Executor::execute` (boxed future) rather than `RawSql::execute`,
        // whose future trips the `Send` check of `async_trait` methods.
        match self {
            Tx::Sqlite(tx) => (&mut **tx).execute(sqlx::raw_sql(sql)).await.map(drop),
            Tx::Postgres(tx) => (&mut **tx).execute(sqlx::raw_sql(sql)).await.map(drop),
        }
    }
}

/// Where a query runs: a pool (any connection, autocommit) or one
/// connection (inside a transaction). Built from `&Pool` or `&mut Tx`.
pub(crate) enum Executor<'e> {
    SqlitePool(&'e SqlitePool),
    PgPool(&'e PgPool),
    Sqlite(&'e mut SqliteConnection),
    Postgres(&'e mut PgConnection),
}

impl<'e> From<&'e Pool> for Executor<'e> {
    fn from(pool: &'e Pool) -> Self {
        match pool {
            Pool::Sqlite(p) => Executor::SqlitePool(p),
            Pool::Postgres(p) => Executor::PgPool(p),
        }
    }
}

impl<'e> From<&'e mut Tx<'_>> for Executor<'e> {
    fn from(tx: &'e mut Tx<'_>) -> Self {
        match tx {
            Tx::Sqlite(t) => Executor::Sqlite(t),
            Tx::Postgres(t) => Executor::Postgres(t),
        }
    }
}

/// A bind parameter. Every variant carries an `Option` so that a NULL keeps
/// its SQL type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'q> {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<Cow<'q, str>>),
    Bytes(Option<Cow<'q, [u8]>>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(Some(v))
    }
}

impl<'q> From<&'q str> for Value<'q> {
    fn from(v: &'q str) -> Self {
        Value::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'q> From<&'q String> for Value<'q> {
    fn from(v: &'q String) -> Self {
        Value::Text(Some(Cow::Borrowed(v.as_str())))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Some(Cow::Owned(v)))
    }
}

impl<'q> From<Option<&'q str>> for Value<'q> {
    fn from(v: Option<&'q str>) -> Self {
        Value::Text(v.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Value<'_> {
    fn from(v: Option<String>) -> Self {
        Value::Text(v.map(Cow::Owned))
    }
}

impl<'q> From<&'q Option<String>> for Value<'q> {
    fn from(v: &'q Option<String>) -> Self {
        Value::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl<'q> From<&'q [u8]> for Value<'q> {
    fn from(v: &'q [u8]) -> Self {
        Value::Bytes(Some(Cow::Borrowed(v)))
    }
}

impl<'q> From<&'q Vec<u8>> for Value<'q> {
    fn from(v: &'q Vec<u8>) -> Self {
        Value::Bytes(Some(Cow::Borrowed(v.as_slice())))
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(Some(Cow::Owned(v)))
    }
}

fn sqlite_args(values: Vec<Value<'_>>) -> Result<SqliteArguments<'_>, sqlx::Error> {
    let mut args = SqliteArguments::default();
    args.reserve(values.len(), 0);
    for value in values {
        match value {
            Value::Int(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::Bytes(None) => args.add(None::<Vec<u8>>),
            Value::Bytes(Some(Cow::Borrowed(v))) => args.add(v),
            Value::Bytes(Some(Cow::Owned(v))) => args.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn pg_args(values: Vec<Value<'_>>) -> Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    // Eight bytes a value is the common case (BIGINT) and a floor for text.
    args.reserve(values.len(), values.len() * 8);
    for value in values {
        match value {
            Value::Int(v) => args.add(v),
            Value::Bool(v) => args.add(v),
            Value::Text(v) => args.add(v),
            Value::Bytes(None) => args.add(None::<Vec<u8>>),
            Value::Bytes(Some(v)) => args.add(v.as_ref()),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// Runs `$body` once per executor kind, with `$db` the native database
/// type, `$args` the native arguments built from `$values` and `$exec` the
/// native executor.
macro_rules! on_backend {
    ($on:expr, $values:expr, |$db:ident, $args:ident, $exec:ident| $body:expr) => {
        match $on {
            Executor::SqlitePool($exec) => {
                type $db = sqlx::Sqlite;
                let $args = sqlite_args($values)?;
                $body
            }
            Executor::Sqlite($exec) => {
                type $db = sqlx::Sqlite;
                let $args = sqlite_args($values)?;
                $body
            }
            Executor::PgPool($exec) => {
                type $db = sqlx::Postgres;
                let $args = pg_args($values)?;
                $body
            }
            Executor::Postgres($exec) => {
                type $db = sqlx::Postgres;
                let $args = pg_args($values)?;
                $body
            }
        }
    };
}

/// A row struct that decodes from both backends' rows (derive
/// `sqlx::FromRow` on a struct of portable field types).
pub(crate) trait PortableRow:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> PortableRow for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

/// A single column value that decodes from both backends.
pub(crate) trait PortableScalar: Send + Unpin
where
    (Self,): PortableRow,
{
}

impl<T: Send + Unpin> PortableScalar for T where (T,): PortableRow {}

/// A statement with its binds, not yet run.
#[must_use = "a query does nothing until it is executed or fetched"]
pub(crate) struct Query<'q> {
    sql: Cow<'q, str>,
    values: Vec<Value<'q>>,
    persistent: bool,
}

/// A statement whose bind values are yet to be given (`$1…`, or `?` in a
/// SQLite statement built with [`Backend::values_list`]).
pub(crate) fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q> {
    Query {
        sql: sql.into(),
        values: Vec::new(),
        persistent: true,
    }
}

/// A query whose rows decode into `R`.
pub(crate) fn query_as<'q, R: PortableRow>(sql: impl Into<Cow<'q, str>>) -> QueryAs<'q, R> {
    QueryAs {
        query: query(sql),
        row: PhantomData,
    }
}

/// A query whose rows are one column of type `T`.
pub(crate) fn query_scalar<'q, T>(sql: impl Into<Cow<'q, str>>) -> QueryScalar<'q, T>
where
    T: PortableScalar,
    (T,): PortableRow,
{
    QueryScalar {
        query: query(sql),
        column: PhantomData,
    }
}

impl<'q> Query<'q> {
    pub(crate) fn bind(mut self, value: impl Into<Value<'q>>) -> Self {
        self.values.push(value.into());
        self
    }

    /// `false` keeps a one-off statement text (a built multi-row insert)
    /// out of the connection's prepared-statement cache.
    pub(crate) fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Runs the statement; returns the number of rows it changed.
    pub(crate) async fn execute<'e>(self, on: impl Into<Executor<'e>>) -> Result<u64, sqlx::Error> {
        let Query {
            sql,
            values,
            persistent,
        } = self;
        on_backend!(on.into(), values, |Db, args, exec| {
            sqlx::query_with::<Db, _>(&sql, args)
                .persistent(persistent)
                .execute(exec)
                .await
                .map(|done| done.rows_affected())
        })
    }
}

/// A [`Query`] decoding its rows into `R`.
#[must_use = "a query does nothing until it is fetched"]
pub(crate) struct QueryAs<'q, R> {
    query: Query<'q>,
    row: PhantomData<fn() -> R>,
}

macro_rules! fetchers {
    ($native:ident, $out:ty) => {
        pub(crate) fn bind(mut self, value: impl Into<Value<'q>>) -> Self {
            self.query = self.query.bind(value);
            self
        }

        /// See [`Query::persistent`].
        pub(crate) fn persistent(mut self, persistent: bool) -> Self {
            self.query = self.query.persistent(persistent);
            self
        }

        /// Exactly one row (`RowNotFound` when there is none).
        pub(crate) async fn fetch_one<'e>(
            self,
            on: impl Into<Executor<'e>>,
        ) -> Result<$out, sqlx::Error> {
            let Query {
                sql,
                values,
                persistent,
            } = self.query;
            on_backend!(on.into(), values, |Db, args, exec| {
                sqlx::$native::<Db, $out, _>(&sql, args)
                    .persistent(persistent)
                    .fetch_one(exec)
                    .await
            })
        }

        /// The first row, if any.
        pub(crate) async fn fetch_optional<'e>(
            self,
            on: impl Into<Executor<'e>>,
        ) -> Result<Option<$out>, sqlx::Error> {
            let Query {
                sql,
                values,
                persistent,
            } = self.query;
            on_backend!(on.into(), values, |Db, args, exec| {
                sqlx::$native::<Db, $out, _>(&sql, args)
                    .persistent(persistent)
                    .fetch_optional(exec)
                    .await
            })
        }

        /// Every row.
        pub(crate) async fn fetch_all<'e>(
            self,
            on: impl Into<Executor<'e>>,
        ) -> Result<Vec<$out>, sqlx::Error> {
            let Query {
                sql,
                values,
                persistent,
            } = self.query;
            on_backend!(on.into(), values, |Db, args, exec| {
                sqlx::$native::<Db, $out, _>(&sql, args)
                    .persistent(persistent)
                    .fetch_all(exec)
                    .await
            })
        }
    };
}

impl<'q, R: PortableRow> QueryAs<'q, R> {
    fetchers!(query_as_with, R);
}

/// A [`Query`] whose rows are one column of type `T`.
#[must_use = "a query does nothing until it is fetched"]
pub(crate) struct QueryScalar<'q, T> {
    query: Query<'q>,
    column: PhantomData<fn() -> T>,
}

impl<'q, T> QueryScalar<'q, T>
where
    T: PortableScalar,
    (T,): PortableRow,
{
    fetchers!(query_scalar_with, T);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_use_the_dialects_placeholders() {
        assert_eq!(Backend::Sqlite.values_list(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(
            Backend::Postgres.values_list(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(Backend::Postgres.values_list(0, 3), "");
        assert_eq!(numbered_placeholders(3, 2), "$3, $4");
        assert_eq!(numbered_placeholders(1, 0), "");
    }

    #[test]
    fn multi_row_statements_stay_within_the_bind_limit() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            for width in [1, 7, 10, 19] {
                let rows = backend.rows_per_statement(width);
                assert!(rows * width <= backend.max_bind_params());
                assert!((rows + 1) * width > backend.max_bind_params());
            }
        }
    }

    #[test]
    fn lock_fragments_exist_only_where_the_dialect_has_row_locks() {
        assert_eq!(Backend::Sqlite.for_update(), "");
        assert_eq!(Backend::Sqlite.for_update_skip_locked(), "");
        assert_eq!(Backend::Sqlite.for_no_key_update_of("w"), "");
        assert_eq!(Backend::Postgres.for_update(), " FOR UPDATE");
        assert_eq!(
            Backend::Postgres.for_no_key_update_of("w"),
            " FOR NO KEY UPDATE OF w"
        );
        assert_eq!(
            Backend::Sqlite.indexed_by("workflows_due_idx"),
            " INDEXED BY workflows_due_idx"
        );
        assert_eq!(Backend::Postgres.indexed_by("workflows_due_idx"), "");
    }

    #[test]
    fn nulls_keep_their_type() {
        assert_eq!(Value::from(None::<i64>), Value::Int(None));
        assert_eq!(Value::from(None::<String>), Value::Text(None));
        assert_eq!(Value::from(&None::<String>), Value::Text(None));
        assert_eq!(Value::from(None::<&str>), Value::Text(None));
        assert_eq!(Value::from("a"), Value::Text(Some(Cow::Borrowed("a"))));
        assert_eq!(
            Value::from(vec![1u8]),
            Value::Bytes(Some(Cow::Owned(vec![1])))
        );
    }

    #[tokio::test]
    async fn one_query_text_runs_on_sqlite_with_typed_binds() {
        let pool = Pool::open("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        let mut tx = pool.begin_write().await.expect("begin");
        query("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT, b BLOB, f BOOLEAN NOT NULL)")
            .execute(&mut tx)
            .await
            .expect("create");
        let inserted = query("INSERT INTO t (id, n, b, f) VALUES ($1, $2, $3, $4)")
            .bind("a")
            .bind(None::<i64>)
            .bind(vec![1u8, 2])
            .bind(true)
            .execute(&mut tx)
            .await
            .expect("insert");
        assert_eq!(inserted, 1);
        tx.commit().await.expect("commit");

        #[derive(sqlx::FromRow)]
        struct Row {
            id: String,
            n: Option<i64>,
            b: Vec<u8>,
            f: bool,
        }
        let row = query_as::<Row>("SELECT id, n, b, f FROM t WHERE id = $1")
            .bind("a")
            .fetch_one(&pool)
            .await
            .expect("select");
        assert_eq!(
            (row.id.as_str(), row.n, row.b, row.f),
            ("a", None, vec![1, 2], true)
        );
        let missing = query_scalar::<i64>("SELECT n FROM t WHERE id = $1")
            .bind("b")
            .fetch_optional(&pool)
            .await
            .expect("select");
        assert_eq!(missing, None);
    }
}
