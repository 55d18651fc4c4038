//! Users' SSH public keys.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::audit::AuditContext;
use hood_domain::ssh_key::SshKey;
use hood_domain::{SshKeyId, Timestamp, UserId};

#[async_trait]
pub trait SshKeyStore: Send + Sync {
    /// Stores a user's key with its audit row; `Conflict("ssh key")` when
    /// the user already holds it, `NotFound("user")` without the user.
    async fn add_ssh_key(&self, key: &SshKey, audit: &AuditContext) -> StoreResult<()>;

    /// A user's keys, oldest first.
    async fn ssh_keys_of_user(&self, user: UserId) -> StoreResult<Vec<SshKey>>;

    /// Removes a user's key with its audit row; `false` when the user
    /// holds no such key.
    async fn remove_ssh_key(
        &self,
        user: UserId,
        id: SshKeyId,
        at: Timestamp,
        audit: &AuditContext,
    ) -> StoreResult<bool>;

    /// Every user's key with this fingerprint (`SHA256:…`): whom a key
    /// offered to the SSH gateway may be.
    async fn ssh_keys_with_fingerprint(&self, fingerprint: &str) -> StoreResult<Vec<SshKey>>;
}
