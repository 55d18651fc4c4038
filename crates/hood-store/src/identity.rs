//! Identity and tenancy: organizations, users, sessions with their
//! rotating refresh tokens, API keys, signing keys and the installation's
//! first-start bootstrap.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::identity::{ApiKey, Organization, RefreshToken, Session, SigningKey, User};
use hood_domain::{ApiKeyId, OrgId, SessionId, Timestamp, UserId};

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

/// Identity and tenancy: what the `auth` role and the API's `Caller`
/// extractor read and write.
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
