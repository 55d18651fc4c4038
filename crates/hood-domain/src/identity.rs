//! Identity and tenancy: organizations, users, roles, permissions, API keys
//! and login sessions.

use crate::{ApiKeyId, OrgId, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role a user holds inside an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Billing,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Billing, Role::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Billing => "billing",
            Role::Admin => "admin",
        }
    }

    /// The permissions a role grants. One table, read by every check.
    pub const fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Viewer => &[Read],
            Role::Operator => &[Read, Operate],
            Role::Billing => &[Read, ReadBilling, ManageBilling],
            Role::Admin => &[
                Read,
                Operate,
                ReadBilling,
                ManageBilling,
                ManageUsers,
                ManageKeys,
            ],
        }
    }

    pub fn allows(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// True when every permission of `other` is also granted by `self`: a
    /// user may only hand out (to a key or another user) what they hold.
    pub fn covers(self, other: Role) -> bool {
        other.permissions().iter().all(|p| self.allows(*p))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown role or permission name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected one of: {expected})")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "role",
                value: s.to_owned(),
                expected: "viewer, operator, billing, admin",
            })
    }
}

/// What an authenticated caller may do inside its organization. API key
/// scopes are expressed in the same vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read any resource of the organization except billing data.
    Read,
    /// Create, change and delete nodes, hosts, rollouts, incidents.
    Operate,
    /// Read subscriptions, invoices, usage and the ledger.
    ReadBilling,
    /// Change subscriptions and payment settings.
    ManageBilling,
    /// Create, change and remove users of the organization.
    ManageUsers,
    /// Create and revoke API keys of other users of the organization.
    ManageKeys,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::Read,
        Permission::Operate,
        Permission::ReadBilling,
        Permission::ManageBilling,
        Permission::ManageUsers,
        Permission::ManageKeys,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Operate => "operate",
            Permission::ReadBilling => "read_billing",
            Permission::ManageBilling => "manage_billing",
            Permission::ManageUsers => "manage_users",
            Permission::ManageKeys => "manage_keys",
        }
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "scope",
                value: s.to_owned(),
                expected: "read, operate, read_billing, manage_billing, manage_users, manage_keys",
            })
    }
}

/// An organization: the unit of tenancy. Every resource belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    /// Unique, URL-safe short name.
    pub slug: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A user. `password_hash` is a PHC string (argon2id); never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    /// Unique across the installation, stored lower-cased.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// Operators of the installation itself: may create and list all orgs.
    pub platform_admin: bool,
    /// `None` for users who only sign in through the external OIDC issuer.
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// An API key's stored record. The secret is never stored: only its hash,
/// plus a public prefix used to find the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    /// The user the key acts for.
    pub user_id: UserId,
    pub name: String,
    /// Public, unique lookup prefix embedded in the token.
    pub prefix: String,
    /// Hex SHA-256 of the secret part (secrets are 256-bit random, so a fast
    /// hash is the right tool; passwords get argon2).
    pub secret_hash: String,
    /// The key's role; never more than its creator's.
    pub role: Role,
    /// Further restriction: empty means "everything the role allows".
    pub scopes: Vec<Permission>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl ApiKey {
    /// Why a key that matched its secret may still not be used.
    pub fn unusable_reason(&self, now: Timestamp) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            return Some("API key has been revoked");
        }
        match self.expires_at {
            Some(exp) if exp <= now => Some("API key has expired"),
            _ => None,
        }
    }

    /// Effective permission check: the role must allow it and, when the key
    /// is scoped, the scope list must name it.
    pub fn allows(&self, p: Permission) -> bool {
        self.role.allows(p) && (self.scopes.is_empty() || self.scopes.contains(&p))
    }
}

/// A login session: the family of refresh tokens descended from one login.
/// Reusing a spent refresh token revokes the whole family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub created_at: Timestamp,
    /// The family may not be refreshed past this instant (login + 7 days
    /// of inactivity is rolled forward on each refresh).
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked ("logout", "refresh_token_reuse", ...).
    pub revoked_reason: Option<String>,
}

/// One refresh token of a session family, identified by its JWT id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// The token's `jti` claim.
    pub jti: String,
    pub session_id: SessionId,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// Set when the token has been exchanged; a second exchange is reuse.
    pub used_at: Option<Timestamp>,
}

/// An RS256 signing key of the installation. The private half is sealed
/// under the installation's master key before it reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// `kid` header value.
    pub kid: String,
    /// AES-256-GCM sealed PKCS#8 DER of the private key.
    pub sealed_private_key: Vec<u8>,
    /// SubjectPublicKeyInfo PEM of the public key (published as JWKS).
    pub public_key_pem: String,
    pub created_at: Timestamp,
    /// Keys stop signing when retired but keep verifying until tokens expire.
    pub retired_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_covers_every_role_and_viewer_covers_only_itself() {
        for r in Role::ALL {
            assert!(Role::Admin.covers(r));
            assert_eq!(Role::Viewer.covers(r), r == Role::Viewer);
        }
        assert!(!Role::Operator.covers(Role::Billing));
        assert!(!Role::Billing.covers(Role::Operator));
    }

    #[test]
    fn role_and_permission_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn scoped_key_is_limited_to_its_scopes_within_its_role() {
        let mut key = ApiKey {
            id: ApiKeyId::from_uuid(uuid::Uuid::nil()),
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            name: "k".into(),
            prefix: "p".into(),
            secret_hash: "h".into(),
            role: Role::Operator,
            scopes: vec![],
            created_at: Timestamp(0),
            expires_at: Some(Timestamp(10)),
            revoked_at: None,
            last_used_at: None,
        };
        assert!(key.allows(Permission::Operate));
        assert!(!key.allows(Permission::ManageUsers));
        key.scopes = vec![Permission::Read];
        assert!(!key.allows(Permission::Operate));
        assert!(key.allows(Permission::Read));
        assert_eq!(key.unusable_reason(Timestamp(9)), None);
        assert!(key.unusable_reason(Timestamp(10)).is_some());
        key.revoked_at = Some(Timestamp(1));
        assert_eq!(
            key.unusable_reason(Timestamp(0)),
            Some("API key has been revoked")
        );
    }
}
