//! Rows of the identity tables.

use crate::codec::{self, opt_ts};
use crate::StoreError;
use hood_domain::identity::{ApiKey, Organization, Session, SigningKey, User};
use hood_domain::Timestamp;

pub(crate) const ORG_COLUMNS: &str = "id, slug, name, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: String,
    slug: String,
    name: String,
    created_at: i64,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> Result<Self, StoreError> {
        Ok(Organization {
            id: codec::parse_id("orgs.id", &r.id)?,
            slug: r.slug,
            name: r.name,
            created_at: Timestamp(r.created_at),
        })
    }
}

pub(crate) const USER_COLUMNS: &str =
    "id, org_id, email, display_name, role, platform_admin, password_hash, disabled, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    org_id: String,
    email: String,
    display_name: String,
    role: String,
    platform_admin: bool,
    password_hash: Option<String>,
    disabled: bool,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: codec::parse_id("users.id", &r.id)?,
            org_id: codec::parse_id("users.org_id", &r.org_id)?,
            email: r.email,
            display_name: r.display_name,
            role: codec::parse_role("users.role", &r.role)?,
            platform_admin: r.platform_admin,
            password_hash: r.password_hash,
            disabled: r.disabled,
            created_at: Timestamp(r.created_at),
        })
    }
}

pub(crate) const API_KEY_COLUMNS: &str = "id, org_id, user_id, name, prefix, secret_hash, role, \
     scopes, created_at, expires_at, revoked_at, last_used_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: String,
    org_id: String,
    user_id: String,
    name: String,
    prefix: String,
    secret_hash: String,
    role: String,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: codec::parse_id("api_keys.id", &r.id)?,
            org_id: codec::parse_id("api_keys.org_id", &r.org_id)?,
            user_id: codec::parse_id("api_keys.user_id", &r.user_id)?,
            name: r.name,
            prefix: r.prefix,
            secret_hash: r.secret_hash,
            role: codec::parse_role("api_keys.role", &r.role)?,
            scopes: codec::decode_scopes("api_keys.scopes", &r.scopes)?,
            created_at: Timestamp(r.created_at),
            expires_at: opt_ts(r.expires_at),
            revoked_at: opt_ts(r.revoked_at),
            last_used_at: opt_ts(r.last_used_at),
        })
    }
}

pub(crate) const SESSION_COLUMNS: &str =
    "id, user_id, org_id, created_at, expires_at, revoked_at, revoked_reason";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: String,
    user_id: String,
    org_id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            id: codec::parse_id("sessions.id", &r.id)?,
            user_id: codec::parse_id("sessions.user_id", &r.user_id)?,
            org_id: codec::parse_id("sessions.org_id", &r.org_id)?,
            created_at: Timestamp(r.created_at),
            expires_at: Timestamp(r.expires_at),
            revoked_at: opt_ts(r.revoked_at),
            revoked_reason: r.revoked_reason,
        })
    }
}

/// What a refresh-token exchange needs of the token row.
#[derive(sqlx::FromRow)]
pub(crate) struct RefreshTokenRow {
    pub(crate) session_id: String,
    pub(crate) expires_at: i64,
}

pub(crate) const SIGNING_KEY_COLUMNS: &str =
    "kid, sealed_private_key, public_key_pem, created_at, retired_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    sealed_private_key: Vec<u8>,
    public_key_pem: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for SigningKey {
    type Error = StoreError;
    fn try_from(r: SigningKeyRow) -> Result<Self, StoreError> {
        Ok(SigningKey {
            kid: r.kid,
            sealed_private_key: r.sealed_private_key,
            public_key_pem: r.public_key_pem,
            created_at: Timestamp(r.created_at),
            retired_at: opt_ts(r.retired_at),
        })
    }
}
