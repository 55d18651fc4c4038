//! Service accounts and the keys that act as them.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::identity::{ApiKey, Role};
use hood_domain::scope::{Grants, S3AccessKey, ServiceAccount};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, Timestamp};

/// Subjects of the events that take power from a credential, written in
/// the transaction of the change (through the outbox to the bus): caches
/// of credentials on every replica evict the organization's entries on
/// them. With `identity.user.updated`, `identity.user.deleted` and
/// `identity.api_key.revoked` (the identity store's), [`CREDENTIAL_EVENTS`].
pub const SERVICE_ACCOUNT_UPDATED: &str = "identity.service_account.updated";
pub const SERVICE_ACCOUNT_DELETED: &str = "identity.service_account.deleted";
pub const S3_KEY_REVOKED: &str = "identity.s3_key.revoked";

/// Every subject after which a cached credential may grant too much; each
/// event's payload names its `org_id`.
pub const CREDENTIAL_EVENTS: [&str; 6] = [
    "identity.user.updated",
    "identity.user.deleted",
    "identity.api_key.revoked",
    SERVICE_ACCOUNT_UPDATED,
    SERVICE_ACCOUNT_DELETED,
    S3_KEY_REVOKED,
];

/// Everything an S3 request signed with an access key acts as, read in one
/// query: the key (revoked or not) with its sealed secret, its account
/// (no grants once deleted), the organization's slug, and the owner's
/// current role and standing.
#[derive(Debug, Clone)]
pub struct S3Principal {
    pub key: S3AccessKey,
    pub sealed_secret: Vec<u8>,
    pub account: ServiceAccount,
    pub org_slug: String,
    pub owner_role: Role,
    pub owner_disabled: bool,
}

#[async_trait]
pub trait ServiceAccountStore: Send + Sync {
    /// Stores a new account (`Conflict("service account")` when the
    /// organization has a live one of that name), with its audit row.
    async fn create_service_account(
        &self,
        account: &ServiceAccount,
        audit: &AuditContext,
    ) -> StoreResult<()>;

    /// A live account of the organization.
    async fn service_account(
        &self,
        org: OrgId,
        id: ServiceAccountId,
    ) -> StoreResult<Option<ServiceAccount>>;

    /// The organization's live accounts, by name.
    async fn list_service_accounts(&self, org: OrgId) -> StoreResult<Vec<ServiceAccount>>;

    /// Replaces an account's grants (its keys see them at their next
    /// request), with its audit row; `NotFound` for no live account.
    async fn set_service_account_grants(
        &self,
        org: OrgId,
        id: ServiceAccountId,
        grants: &Grants,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<ServiceAccount>;

    /// Deletes an account and revokes every key of it in one transaction,
    /// with its audit row; `false` when there was no live account.
    async fn delete_service_account(
        &self,
        org: OrgId,
        id: ServiceAccountId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool>;

    /// Stores an API key that acts as the account (the key's user is the
    /// account's owner), with its audit row (never the secret's hash).
    async fn create_service_account_key(
        &self,
        account: ServiceAccountId,
        key: &ApiKey,
        audit: &AuditContext,
    ) -> StoreResult<()>;

    /// The account a key acts as; `None` for a user's own key. A deleted
    /// account comes back with no grants: its key (revoked with it) must
    /// never fall back to the owner's rights.
    async fn service_account_of_key(&self, key: ApiKeyId) -> StoreResult<Option<ServiceAccount>>;

    /// Stores an S3 access key of a live account with its sealed secret,
    /// and its audit row (never the secret); `NotFound("service account")`
    /// when the account is not live.
    async fn create_s3_key(
        &self,
        key: &S3AccessKey,
        sealed_secret: &[u8],
        audit: &AuditContext,
    ) -> StoreResult<()>;

    /// The account's S3 keys, revoked ones included, newest first.
    async fn list_s3_keys(
        &self,
        org: OrgId,
        account: ServiceAccountId,
    ) -> StoreResult<Vec<S3AccessKey>>;

    /// Revokes a key of the account, with its audit row; `false` when it
    /// has no such live key.
    async fn revoke_s3_key(
        &self,
        org: OrgId,
        account: ServiceAccountId,
        access_key_id: &str,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool>;

    /// What a request signed with `access_key_id` acts as.
    async fn s3_principal(&self, access_key_id: &str) -> StoreResult<Option<S3Principal>>;
}
