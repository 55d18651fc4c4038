//! Response and request bodies of the identity API. Kept apart from the
//! domain types so the wire format can evolve without touching the domain,
//! and so no secret field can be serialized by accident.

use crate::clock::rfc3339;
use hood_domain::identity::{ApiKey, Organization, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A list response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: String,
}

impl From<&Organization> for OrgView {
    fn from(o: &Organization) -> Self {
        Self {
            id: o.id.0,
            slug: o.slug.clone(),
            name: o.name.clone(),
            created_at: rfc3339(o.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// viewer | operator | billing | admin
    pub role: String,
    pub platform_admin: bool,
    pub disabled: bool,
    /// False for users who sign in only through the external OIDC issuer.
    pub has_password: bool,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.0,
            org_id: u.org_id.0,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().to_owned(),
            platform_admin: u.platform_admin,
            disabled: u.disabled,
            has_password: u.password_hash.is_some(),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Public lookup prefix; identifies the key in listings and logs.
    pub prefix: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.0,
            org_id: k.org_id.0,
            user_id: k.user_id.0,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            role: k.role.as_str().to_owned(),
            scopes: k.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// A newly created key: the only response that ever carries its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    /// The full secret token. Shown once; Hood keeps only its hash.
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub session_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeView {
    pub user: UserView,
    pub org: OrgView,
    /// session | api_key | oidc
    pub credential: String,
    /// What this credential may do.
    pub permissions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    #[schema(schema_with = crate::schemas::slug)]
    pub slug: String,
    #[schema(schema_with = crate::schemas::display_name)]
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    /// Default: the e-mail address.
    #[schema(schema_with = crate::schemas::optional_display_name)]
    pub display_name: Option<String>,
    /// May not exceed the caller's.
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
    /// Omit for users who sign in only through the external OIDC issuer.
    #[schema(schema_with = crate::schemas::optional_password)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(schema_with = crate::schemas::optional_display_name)]
    pub display_name: Option<String>,
    #[schema(schema_with = crate::schemas::optional_role)]
    pub role: Option<String>,
    pub disabled: Option<bool>,
    #[schema(schema_with = crate::schemas::optional_password)]
    pub password: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(schema_with = crate::schemas::display_name)]
    pub name: String,
    /// Defaults to the creator's role; may not exceed it.
    #[schema(schema_with = crate::schemas::optional_role)]
    pub role: Option<String>,
    /// Restrict further to these permissions (empty: all of the role's).
    #[serde(default)]
    #[schema(schema_with = crate::schemas::scopes)]
    pub scopes: Vec<String>,
    /// Lifetime in days; omit for a key that does not expire.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}
