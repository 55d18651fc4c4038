//! Hood's system of record.
//!
//! * **Narrow repository traits, one per resource** (identity, outbox,
//!   workflows, fleet, artifacts, nodes, health evaluation, leader leases,
//!   incidents, notifications, uptime, RPC keys, usage, edge routing), each
//!   object-safe and `Send + Sync`, so a service can hold exactly the
//!   `Arc<dyn …>` it uses. [`Store`] bundles them all for wiring.
//! * **One implementation for both dialects**, [`SqlStore`]
//!   (`datastore/`, one file per resource), written against the dialect
//!   abstraction in `db.rs`: every query text exists once and is compiled
//!   once; what differs between SQLite (embedded mode) and PostgreSQL
//!   (cluster mode) is reached only through `db::Backend`'s fragments and
//!   `db::Pool`/`db::Tx`.
//! * **Store-private row structs** (`model/`, one file per resource) derive
//!   `sqlx::FromRow` for both backends and convert into domain types; a
//!   value that does not parse (bad UUID, unknown state, bad JSON) is
//!   [`StoreError::Corrupt`], never a panic.
//!
//! Conventions shared by both dialects, so one query text serves both:
//! timestamps are `BIGINT` Unix milliseconds, ids are UUID text, JSON is
//! text, placeholders are `$1…`. Each dialect has its own migrations under
//! `migrations/{sqlite,postgres}`, applied by [`Store::migrate`] (`hood
//! migrate`), never implicitly by a cluster-mode server. Both backends run
//! the same conformance suite (`tests/`).
//!
//! Every mutating method that announces something writes its outbox row in
//! the same transaction as the change (transactional outbox).

use async_trait::async_trait;
use std::sync::Arc;

pub mod allocation;
pub mod artifact;
pub mod audit;
pub mod bench;
pub mod billing;
pub mod clock;
pub mod container;
pub mod credits;
pub mod edge;
pub mod feed;
pub mod fleet;
pub mod health;
pub mod identity;
pub mod incident;
pub mod lease;
pub mod ledger;
pub mod meter;
pub mod migrate;
pub mod node;
pub mod notification;
pub mod outbox;
pub mod retention;
pub mod rollout;
pub mod service_account;
pub mod snapshot;
pub mod ssh_key;
pub mod status_page;
pub mod storage;
pub mod uptime;
pub mod usage;
pub mod workflow;

mod codec;
mod datastore;
mod db;
mod model;

pub use datastore::SqlStore;
pub use db::Backend;
pub use identity::{IdentityStore, RefreshOutcome};
pub use outbox::{OutboxBatch, OutboxRecord, OutboxStore};

/// Store failures. `Conflict` and `NotFound` are expected outcomes that the
/// API maps to 409 / 404; `Database` is anything else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the string names what collided
    /// (e.g. "email", "slug", "prefix").
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Schema is older than this binary expects; run `hood migrate`.
    #[error(
        "database schema is at version {found}, this binary needs {expected}: run `hood migrate`"
    )]
    SchemaOutOfDate { found: i64, expected: i64 },
    /// Schema is newer than this binary knows: refuse rather than corrupt.
    #[error("database schema is at version {found}, newer than this binary knows ({expected}); upgrade hood")]
    SchemaTooNew { found: i64, expected: i64 },
    /// A leader-gated write by a leader that lost its lease (fencing).
    #[error("lease `{0}` is no longer held by this replica")]
    Fenced(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A lifecycle change its state machine does not allow.
    #[error(transparent)]
    InvalidTransition(#[from] hood_domain::machine::InvalidTransition),
    /// A correction of an invoice its rules do not allow.
    #[error(transparent)]
    Correction(#[from] hood_domain::billing::CorrectionError),
}

/// A column that does not decode into its row struct's type is corrupt
/// data; anything else sqlx reports is a database error.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::ColumnDecode { index, source } => {
                StoreError::Corrupt(format!("column {index}: {source}"))
            }
            sqlx::Error::Decode(source) => StoreError::Corrupt(source.to_string()),
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a Hood process needs from its database: every resource trait,
/// plus the schema and liveness checks. Wiring passes `Arc<dyn Store>`;
/// a service that needs less takes the narrow trait(s) instead.
#[async_trait]
pub trait Store:
    clock::DatabaseClock
    + IdentityStore
    + OutboxStore
    + workflow::WorkflowStore
    + fleet::FleetStore
    + artifact::ArtifactCatalog
    + node::NodeStore
    + health::HealthStore
    + lease::LeaderLeaseStore
    + incident::IncidentStore
    + notification::NotificationStore
    + uptime::UptimeStore
    + edge::RpcKeyStore
    + usage::UsageStore
    + edge::EdgeStore
    + retention::RetentionStore
    + ledger::LedgerStore
    + status_page::StatusPageStore
    + meter::MeterStore
    + billing::BillingStore
    + credits::CreditStore
    + rollout::RolloutStore
    + snapshot::SnapshotStore
    + allocation::AllocationStore
    + audit::AuditStore
    + storage::StorageStore
    + service_account::ServiceAccountStore
    + ssh_key::SshKeyStore
    + feed::FeedStore
    + container::ContainerStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Applies pending migrations; returns the versions applied.
    async fn migrate(&self) -> StoreResult<Vec<i64>>;
    /// Fails with `SchemaOutOfDate`/`SchemaTooNew` unless the schema is
    /// exactly at this binary's version. Servers call this at start.
    async fn check_schema(&self) -> StoreResult<()>;
}

/// Opens a store from a URL: `sqlite://PATH` (created if missing) or
/// `postgres://…`. Does not migrate.
///
/// Returns the concrete store so that callers can coerce it to whichever
/// `Arc<dyn …>` they need (`Arc<dyn Store>` for wiring, or narrow traits).
pub async fn connect(url: &str) -> StoreResult<Arc<SqlStore>> {
    Ok(Arc::new(SqlStore::connect(url).await?))
}

/// How [`connect_with`] opens a store. The default is what every Hood
/// process uses; the fields exist for benchmarks only and are never read
/// from configuration or the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// **Benchmark-only switch**, default `true`. `false` makes ledger
    /// writes skip the Merkle log: no leaf hashing, no `ledger_leaves`,
    /// `ledger_tree_nodes` or head-frontier writes (records still get leaf
    /// indexes and the head its size and clock). It exists so `hood bench
    /// ledger` can measure what proof upkeep costs; a database written
    /// with it off has no valid log and must be thrown away.
    pub ledger_log: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { ledger_log: true }
    }
}

/// [`connect`] with [`ConnectOptions`] (benchmarks only; everything else
/// calls [`connect`], which takes the defaults).
pub async fn connect_with(url: &str, options: ConnectOptions) -> StoreResult<Arc<SqlStore>> {
    Ok(Arc::new(SqlStore::connect_with(url, options).await?))
}

/// Masks the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }

    #[test]
    fn decode_failures_are_corrupt_and_the_rest_database_errors() {
        let decode = sqlx::Error::ColumnDecode {
            index: "\"id\"".into(),
            source: "not a string".into(),
        };
        assert!(matches!(StoreError::from(decode), StoreError::Corrupt(_)));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Database(sqlx::Error::RowNotFound)
        ));
    }

    #[tokio::test]
    async fn unknown_url_schemes_are_refused_without_the_password() {
        let err = connect("mysql://u:hunter2@h/db")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unsupported database URL scheme"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
