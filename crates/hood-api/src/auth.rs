//! Authentication: turns `Authorization: Bearer …` into a [`Caller`].
//!
//! Three credential kinds share the header: Hood API keys (`hood_…`), Hood
//! session JWTs (RS256, our issuer), and — when configured — JWTs of an
//! external OIDC issuer, matched to a local user by verified e-mail.

use crate::clock::now;
use crate::key_standing::ApiKeyStanding;
use crate::problem::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hood_domain::identity::{Permission, Role, User};
use hood_domain::scope::{Action, Grants, Scope, ScopeError};
use hood_domain::{ApiKeyId, OrgId, ServiceAccountId, SessionId, UserId};
use hood_identity::api_keys::{parse_api_key, verify_secret, API_KEY_PREFIX};
use hood_identity::oidc::peek_issuer;
use hood_identity::TokenError;
use std::sync::{Arc, Mutex};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Session(SessionId),
    ApiKey {
        id: ApiKeyId,
        scopes: Vec<Permission>,
    },
    Oidc,
}

/// A key acting as a service account: it reaches only what the grants
/// name, and only through routes that check them.
#[derive(Debug, Clone)]
pub struct ScopedAccount {
    pub id: ServiceAccountId,
    /// The organization's slug: the `{org}` segment of its scopes.
    pub org_slug: String,
    pub grants: Grants,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub org_id: OrgId,
    /// Effective role: the user's, or the key's (never more than the user's).
    pub role: Role,
    pub platform_admin: bool,
    pub credential: Credential,
    /// `Some` when the key belongs to a service account.
    pub service_account: Option<ScopedAccount>,
}

impl Caller {
    /// Who this is in the audit log: `key:{id}` for an API key (acting for
    /// its user), else `user:{id}`.
    pub fn actor(&self) -> String {
        match &self.credential {
            Credential::ApiKey { id, .. } => format!("key:{id}"),
            _ => format!("user:{}", self.user_id),
        }
    }

    /// Whether the role and the key's permission list allow `p`.
    fn permitted(&self, p: Permission) -> bool {
        let scoped_ok = match &self.credential {
            Credential::ApiKey { scopes, .. } => scopes.is_empty() || scopes.contains(&p),
            _ => true,
        };
        self.role.allows(p) && scoped_ok
    }

    /// Whether the caller holds `p` on the whole organization. A service
    /// account's key never does: it reaches only what its grants name.
    pub fn can(&self, p: Permission) -> bool {
        self.service_account.is_none() && self.permitted(p)
    }

    /// Whether the caller may do `action` on the resource `target` names
    /// (given the organization's slug), needing `p` as well: a user (or
    /// their own key) by `p` alone, a service account's key by its grants.
    pub fn may(
        &self,
        p: Permission,
        target: impl FnOnce(&str) -> Result<Scope, ScopeError>,
        action: Action,
    ) -> bool {
        match &self.service_account {
            None => self.permitted(p),
            Some(account) => {
                self.permitted(p)
                    && target(&account.org_slug)
                        .is_ok_and(|scope| account.grants.allows(&scope, action))
            }
        }
    }

    /// 403 unless [`Caller::may`].
    pub fn require_grant(
        &self,
        p: Permission,
        target: impl FnOnce(&str) -> Result<Scope, ScopeError>,
        action: Action,
    ) -> Result<(), ApiError> {
        match &self.service_account {
            None => self.require(p),
            Some(account) => {
                let scope = target(&account.org_slug).ok();
                if self.permitted(p)
                    && scope
                        .as_ref()
                        .is_some_and(|s| account.grants.allows(s, action))
                {
                    return Ok(());
                }
                Err(ApiError::Forbidden(match scope {
                    Some(s) => format!(
                        "the service account's grants do not allow `{}` on `{s}`",
                        action.as_str()
                    ),
                    None => "the service account's grants do not reach this resource".into(),
                }))
            }
        }
    }

    /// 403 unless the caller holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.service_account.is_some() {
            return Err(ApiError::Forbidden(
                "a service account's key reaches only what its grants name, and this route                  takes no grant"
                    .into(),
            ));
        }
        if self.can(p) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action needs the `{}` permission",
                p.as_str()
            )))
        }
    }

    /// Tenancy: may the caller see resources of `org`? Platform admins may
    /// see every org; everyone else only their own. Callers of another org
    /// get 404 (not 403) so that ids of other tenants do not leak.
    pub fn sees_org(&self, org: OrgId) -> bool {
        self.org_id == org || self.platform_admin
    }

    pub fn require_platform_admin(&self) -> Result<(), ApiError> {
        if self.platform_admin && self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this action is reserved to platform administrators".into(),
            ))
        }
    }
}

/// Where the `Caller` extractor leaves who the caller was, for the audit
/// layer (`audit.rs`), which puts an empty slot in the request.
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<Mutex<Option<(OrgId, String)>>>);

impl CallerSlot {
    pub(crate) fn fill(&self, caller: &Caller) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((caller.org_id, caller.actor()));
        }
    }

    pub(crate) fn take(&self) -> Option<(OrgId, String)> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match parts.headers.get(AUTHORIZATION) {
            Some(header) => {
                let value = header
                    .to_str()
                    .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into())
                    })?
                    .to_owned()
            }
            // A browser cannot set headers on a WebSocket handshake: its
            // token rides as a subprotocol, never in a (logged) URL.
            None => websocket_token(&parts.headers).ok_or_else(|| {
                ApiError::Unauthorized("missing `Authorization: Bearer` credentials".into())
            })?,
        };
        let caller = authenticate(state, &token).await?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.fill(&caller);
        }
        Ok(caller)
    }
}

/// The subprotocol a WebSocket client offers first (`hood.v1`); the
/// server selects it, as browsers require an offered protocol back.
pub const WEBSOCKET_PROTOCOL: &str = "hood.v1";
/// A WebSocket client's token rides as the subprotocol `bearer.{token}`
/// beside [`WEBSOCKET_PROTOCOL`].
pub const WEBSOCKET_TOKEN_PREFIX: &str = "bearer.";

/// The token a WebSocket handshake carries in `Sec-WebSocket-Protocol`.
fn websocket_token(headers: &axum::http::HeaderMap) -> Option<String> {
    let upgrading = headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrading {
        return None;
    }
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WEBSOCKET_TOKEN_PREFIX))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// Resolves a bearer token to a caller.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(state, token).await;
    }
    let issuer = peek_issuer(token)
        .ok_or_else(|| ApiError::Unauthorized("malformed bearer token".into()))?;
    if issuer == state.tokens.config().issuer {
        return authenticate_session(state, token).await;
    }
    match &state.oidc {
        Some(oidc) if oidc.issuer() == issuer => authenticate_oidc(state, token).await,
        _ => Err(ApiError::Unauthorized("token issuer is not trusted".into())),
    }
}

async fn read_api_key_standing(
    state: &AppState,
    prefix: &str,
) -> Result<Option<ApiKeyStanding>, ApiError> {
    state.metrics.api_key_read();
    let Some(key) = state.store.find_api_key_by_prefix(prefix).await? else {
        return Ok(None);
    };
    let user = state.store.get_user(key.user_id).await?;
    let account = match state.store.service_account_of_key(key.id).await? {
        Some(account) => match state.store.get_org(key.org_id).await? {
            Some(org) => Some((account, org.slug)),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some(ApiKeyStanding::new(key, user, account)))
}

async fn authenticate_api_key(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid API key".into());
    let (prefix, secret) = parse_api_key(token).ok_or_else(invalid)?;
    let standing = state
        .api_keys
        .get_or_load(prefix, || read_api_key_standing(state, prefix))
        .await?
        .ok_or_else(invalid)?;
    let key = &standing.key;
    if !verify_secret(secret, &key.secret_hash) {
        return Err(invalid());
    }
    let now = now();
    if let Some(reason) = key.unusable_reason(now) {
        return Err(ApiError::Unauthorized(reason.into()));
    }
    let user = standing
        .user
        .as_ref()
        .ok_or_else(|| ApiError::Unauthorized("user no longer exists".into()))?;
    if user.disabled {
        return Err(ApiError::Unauthorized("user is disabled".into()));
    }
    if user.org_id != key.org_id {
        return Err(invalid());
    }
    if standing.stamp_due(std::time::Instant::now()) {
        // Usage stamps are advisory: a failure to write one must not fail
        // the call.
        if let Err(e) = state.store.touch_api_key(key.id, now).await {
            tracing::warn!(key_id = %key.id, error = %e, "could not record API key use");
        }
    }
    let service_account = standing
        .account
        .as_ref()
        .map(|(account, org_slug)| ScopedAccount {
            id: account.id,
            org_slug: org_slug.clone(),
            grants: account.grants.clone(),
        });
    Ok(Caller {
        user_id: user.id,
        org_id: user.org_id,
        // A key never exceeds its user's current role.
        role: if user.role.covers(key.role) {
            key.role
        } else {
            Role::Viewer
        },
        // A service account's key never acts with the platform's rights.
        platform_admin: user.platform_admin && service_account.is_none(),
        credential: Credential::ApiKey {
            id: key.id,
            scopes: key.scopes.clone(),
        },
        service_account,
    })
}

async fn authenticate_session(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let now = now();
    let claims = state
        .tokens
        .verify_access(token, now)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let bad = || ApiError::Unauthorized("token subject is invalid".into());
    let sid: SessionId = claims.sid.parse().map_err(|_| bad())?;
    let user_id: UserId = claims.sub.parse().map_err(|_| bad())?;
    let session = state
        .store
        .get_session(sid)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("session does not exist".into()))?;
    if session.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("session has been revoked".into()));
    }
    if session.user_id != user_id {
        return Err(bad());
    }
    let user = active_user(state, user_id).await?;
    Ok(Caller {
        user_id: user.id,
        org_id: user.org_id,
        role: user.role,
        platform_admin: user.platform_admin,
        credential: Credential::Session(sid),
        service_account: None,
    })
}

async fn authenticate_oidc(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::Unauthorized("token issuer is not trusted".into()));
    };
    let claims = oidc.verify(token).await.map_err(|e| match e {
        // The detail names an internal URL: log it, keep it out of the body.
        TokenError::JwksUnavailable(detail) => {
            tracing::warn!(%detail, "external OIDC issuer keys unavailable");
            ApiError::Unauthorized("the external issuer's signing keys are unavailable".into())
        }
        other => ApiError::Unauthorized(other.to_string()),
    })?;
    let email = match (claims.email, claims.email_verified) {
        (Some(email), Some(true)) => email,
        _ => {
            return Err(ApiError::Unauthorized(
                "external token carries no verified e-mail".into(),
            ))
        }
    };
    let user = state
        .store
        .find_user_by_email(&email)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("no Hood user for this external identity".into()))?;
    let user = active_user(state, user.id).await?;
    Ok(Caller {
        user_id: user.id,
        org_id: user.org_id,
        role: user.role,
        platform_admin: user.platform_admin,
        credential: Credential::Oidc,
        service_account: None,
    })
}

async fn active_user(state: &AppState, id: UserId) -> Result<User, ApiError> {
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("user no longer exists".into()))?;
    if user.disabled {
        return Err(ApiError::Unauthorized("user is disabled".into()));
    }
    Ok(user)
}
