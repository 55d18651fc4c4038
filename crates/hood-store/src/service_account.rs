//! Service accounts and the keys that act as them.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::identity::ApiKey;
use hood_domain::scope::{Grants, ServiceAccount};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, Timestamp};

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
}
