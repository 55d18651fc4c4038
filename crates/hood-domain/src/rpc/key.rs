//! An RPC key's stored record.

use super::KeyScope;
use crate::{OrgId, RpcKeyId, Timestamp};
use std::fmt;

/// An RPC key's stored record. The secret is never stored: only its hash,
/// plus the public prefix the edge looks the record up by.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcKey {
    pub id: RpcKeyId,
    pub org_id: OrgId,
    pub name: String,
    /// Public, unique lookup prefix embedded in the token.
    pub prefix: String,
    /// Hex SHA-256 of the secret part. Never logged: `Debug` redacts it.
    pub secret_hash: String,
    /// Name of a plan of the installation's [`PlanCatalog`].
    pub plan: String,
    pub scope: KeyScope,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Rises at every change; the edge ignores news older than what it holds.
    pub version: i64,
}

impl RpcKey {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

impl fmt::Debug for RpcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcKey")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("secret_hash", &"<redacted>")
            .field("plan", &self.plan)
            .field("scope", &self.scope)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("revoked_at", &self.revoked_at)
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_key_debug_redacts_the_hash() {
        let key = RpcKey {
            id: RpcKeyId::from_uuid(uuid::Uuid::nil()),
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            name: "frontend".into(),
            prefix: "0123456789ab".into(),
            secret_hash: "deadbeefcafe".into(),
            plan: "free".into(),
            scope: KeyScope::default(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            revoked_at: None,
            version: 1,
        };
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("deadbeefcafe"), "{dbg}");
        assert!(
            dbg.contains("<redacted>") && dbg.contains("0123456789ab"),
            "{dbg}"
        );
        assert!(!key.is_revoked());
        let revoked = RpcKey {
            revoked_at: Some(Timestamp(3)),
            ..key
        };
        assert!(revoked.is_revoked());
    }
}
