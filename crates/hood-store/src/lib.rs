//! Hood's system of record.
//!
//! Repository traits ([`IdentityStore`], [`OutboxStore`]) with two real
//! implementations: [`sqlite::SqliteStore`] (embedded mode) and
//! [`postgres::PgStore`] (cluster mode). Both run the same conformance suite
//! (`tests/conformance.rs`). Each dialect has its own migrations under
//! `migrations/{sqlite,postgres}`, applied by [`Store::migrate`] (`hood
//! migrate`), never implicitly by a cluster-mode server.
//!
//! Conventions shared by both dialects, so one query text serves both:
//! timestamps are `BIGINT` Unix milliseconds, ids are UUID text, JSON is
//! text, placeholders are `$1…`.
//!
//! Every mutating method that announces something writes its outbox row in
//! the same transaction as the change (transactional outbox).

use async_trait::async_trait;
use hood_domain::event::DomainEvent;
use hood_domain::identity::{ApiKey, Organization, RefreshToken, Session, SigningKey, User};
use hood_domain::{ApiKeyId, EventId, OrgId, SessionId, Timestamp, UserId};
use std::sync::Arc;

pub mod artifact;
mod codec;
pub mod edge;
pub mod fleet;
pub mod health;
pub mod migrate;
pub mod node;
pub mod postgres;
pub mod sqlite;
pub mod workflow;

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
}

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
    Database(#[from] sqlx::Error),
    /// A lifecycle change its state machine does not allow.
    #[error(transparent)]
    InvalidTransition(#[from] hood_domain::machine::InvalidTransition),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What happened when a refresh token was presented for exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now spent and `new` has been stored.
    Rotated { session: Session },
    /// The token had already been spent: the whole family is now revoked.
    ReuseDetected { session_id: SessionId },
    /// Unknown jti, expired token, or a session already revoked/expired.
    Rejected { reason: &'static str },
}

/// A row of the transactional outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: EventId,
    /// Monotonic sequence assigned by the store; publish order.
    pub seq: i64,
    pub event: DomainEvent,
    pub created_at: Timestamp,
    pub published_at: Option<Timestamp>,
}

/// Identity and tenancy repositories.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    // -- organizations --
    /// Inserts the org and an `identity.org.created` outbox event.
    /// `Conflict("slug")` when the slug is taken.
    async fn create_org(&self, org: &Organization) -> StoreResult<()>;
    async fn get_org(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    async fn list_orgs(&self) -> StoreResult<Vec<Organization>>;

    // -- users --
    /// Inserts the user and an `identity.user.created` outbox event.
    /// `Conflict("email")` when the e-mail is taken (case-insensitively).
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Users of one org, oldest first.
    async fn list_users(&self, org: OrgId) -> StoreResult<Vec<User>>;
    /// Changes role / display name / disabled flag / password hash of a user
    /// of `org` (outbox: `identity.user.updated`). `NotFound("user")` when
    /// the user does not exist in that org.
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    /// Deletes a user of `org` with its keys and sessions (outbox:
    /// `identity.user.deleted`). Returns false when no such user in `org`.
    async fn delete_user(&self, org: OrgId, id: UserId) -> StoreResult<bool>;
    /// Number of users in the installation (bootstrap check).
    async fn count_users(&self) -> StoreResult<i64>;

    // -- sessions and refresh tokens --
    /// Creates a session and its first refresh token atomically.
    async fn create_session(&self, session: &Session, first: &RefreshToken) -> StoreResult<()>;
    async fn get_session(&self, id: SessionId) -> StoreResult<Option<Session>>;
    /// Atomically exchanges refresh token `jti` for `next` (same session):
    /// marks `jti` used, inserts `next`, extends the session to
    /// `next.expires_at`. If `jti` was already used, revokes the session
    /// with reason `refresh_token_reuse` and reports `ReuseDetected`.
    /// Safe under concurrent calls with the same `jti`: exactly one rotates.
    async fn rotate_refresh_token(
        &self,
        jti: &str,
        next: &RefreshToken,
        now: Timestamp,
    ) -> StoreResult<RefreshOutcome>;
    /// Revokes a session (idempotent). Returns false if it does not exist.
    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;

    // -- API keys --
    /// Inserts the key and an `identity.api_key.created` outbox event.
    /// `Conflict("prefix")` on a prefix collision.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn find_api_key_by_prefix(&self, prefix: &str) -> StoreResult<Option<ApiKey>>;
    async fn get_api_key(&self, org: OrgId, id: ApiKeyId) -> StoreResult<Option<ApiKey>>;
    /// Keys of an org, optionally only those of one user; newest first.
    async fn list_api_keys(&self, org: OrgId, user: Option<UserId>) -> StoreResult<Vec<ApiKey>>;
    /// Sets `revoked_at` once (outbox: `identity.api_key.revoked`). Returns
    /// false when no such key in `org`; revoking twice keeps the first time.
    async fn revoke_api_key(&self, org: OrgId, id: ApiKeyId, now: Timestamp) -> StoreResult<bool>;
    /// Best-effort usage stamp; never fails a request on its own.
    async fn touch_api_key(&self, id: ApiKeyId, now: Timestamp) -> StoreResult<()>;

    // -- signing keys --
    /// Inserts a signing key unless one with the same kid exists.
    async fn insert_signing_key(&self, key: &SigningKey) -> StoreResult<()>;
    /// All signing keys, newest first (retired ones too: they still verify).
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>>;

    // -- installation bootstrap --
    /// Creates org + admin user + API key in one transaction if and only if
    /// the installation has no users yet. Returns false (and writes nothing)
    /// when another process bootstrapped first.
    async fn bootstrap(&self, org: &Organization, admin: &User, key: &ApiKey) -> StoreResult<bool>;
}

/// The transactional outbox, read by the relay that publishes to the bus.
#[async_trait]
pub trait OutboxStore: OutboxLocking + Send + Sync {
    /// Unpublished events in `seq` order, at most `limit`.
    async fn outbox_pending(&self, limit: i64) -> StoreResult<Vec<OutboxRecord>>;
    /// Marks events published (idempotent).
    async fn outbox_mark_published(&self, ids: &[EventId], now: Timestamp) -> StoreResult<()>;
    /// Locks up to `limit` unpublished rows for this relay, oldest first.
    /// PostgreSQL: a transaction holding the rows `FOR UPDATE SKIP LOCKED`,
    /// so several relays never publish the same row concurrently. SQLite: a
    /// plain read (embedded mode runs one relay).
    async fn outbox_lock_batch(&self, limit: i64) -> StoreResult<Box<dyn OutboxBatch>> {
        self.lock_outbox_batch(limit).await
    }
}

/// Rows of the outbox held by one relay between publishing and marking.
#[async_trait]
pub trait OutboxBatch: Send {
    fn records(&self) -> &[OutboxRecord];
    /// Marks `published` (ids of [`Self::records`]; others are ignored)
    /// published at `now` and releases the batch (commits). Dropping a
    /// batch without calling this releases its rows unpublished.
    async fn finish(self: Box<Self>, published: &[EventId], now: Timestamp) -> StoreResult<()>;
}

/// The dialect-specific half of [`OutboxStore::outbox_lock_batch`]. It is a
/// separate trait only so that its implementation can live in
/// `outbox_repo.rs` beside the batch type; call `outbox_lock_batch`.
#[doc(hidden)]
#[async_trait]
pub trait OutboxLocking: Send + Sync {
    async fn lock_outbox_batch(&self, limit: i64) -> StoreResult<Box<dyn OutboxBatch>>;
}

/// Everything a Hood process needs from its database.
#[async_trait]
pub trait Store:
    IdentityStore
    + OutboxStore
    + workflow::WorkflowStore
    + fleet::FleetStore
    + artifact::ArtifactCatalog
    + node::NodeStore
    + health::HealthStore
    + edge::EdgeStore
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
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        Err(StoreError::Database(sqlx::Error::Configuration(
            format!(
                "unsupported database URL scheme (expected sqlite:// or postgres://): {}",
                redact_url(url)
            )
            .into(),
        )))
    }
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
    #[test]
    fn redacts_password_only() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
