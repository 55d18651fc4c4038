//! The `auth` role: login, token refresh, organizations, users, API keys.

use crate::auth::{Caller, Credential};
use crate::clock::now;
use crate::extract::{Json, PathId, PathIds};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::*;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hood_domain::identity::{ApiKey, Organization, Permission, Role, Session, User};
use hood_domain::validate::{self, FieldError};
use hood_domain::{ApiKeyId, OrgId, SessionId, UserId};
use hood_identity::api_keys::generate_api_key;
use hood_identity::password::{burn_verify_time, hash_password, verify_password};
use hood_store::RefreshOutcome;
use std::net::SocketAddr;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/orgs", get(list_orgs).post(create_org))
        .route("/api/v1/orgs/{org_id}", get(get_org))
        .route(
            "/api/v1/orgs/{org_id}/users",
            get(list_users).post(create_user),
        )
        .route(
            "/api/v1/orgs/{org_id}/users/{user_id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/api/v1/api-keys", get(list_api_keys).post(create_api_key))
        .route(
            "/api/v1/api-keys/{key_id}",
            get(get_api_key).delete(revoke_api_key),
        )
        .route("/.well-known/jwks.json", get(jwks))
}

fn hash(password: &str) -> ApiResult<String> {
    hash_password(password).map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

/// Issues a session (or continues one) for `user`.
fn token_pair(
    state: &AppState,
    user: &User,
    session: SessionId,
    refresh: String,
) -> ApiResult<TokenPair> {
    let (access, claims) = state
        .tokens
        .issue_access(user, session, now())
        .map_err(|e| ApiError::Internal(format!("issuing access token: {e}")))?;
    Ok(TokenPair {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer".into(),
        expires_in: claims.exp - claims.iat,
        session_id: session.0,
    })
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenPair),
        (status = 401, description = "Wrong e-mail or password, or the user is disabled"),
        (status = 429, description = "Too many attempts from this address; see `Retry-After`")))]
/// Exchanges e-mail and password for an access and a refresh token.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = now();
    if let Err(retry_ms) = state.login_limiter.check(&peer.ip(), now.millis()) {
        state.metrics.login("rate_limited");
        return Err(ApiError::TooManyRequests {
            retry_after_secs: retry_ms.div_ceil(1000).max(1),
        });
    }
    let bad = || ApiError::Unauthorized("wrong e-mail or password".into());
    let user = state.store.find_user_by_email(&req.email).await?;
    let user = match user {
        Some(u) => match &u.password_hash {
            Some(phc) if verify_password(&req.password, phc) => u,
            _ => {
                state.metrics.login("bad_credentials");
                return Err(bad());
            }
        },
        None => {
            // Same work as a real check, so timing does not reveal accounts.
            burn_verify_time(&req.password);
            state.metrics.login("bad_credentials");
            return Err(bad());
        }
    };
    if user.disabled {
        state.metrics.login("bad_credentials");
        return Err(ApiError::Unauthorized("user is disabled".into()));
    }
    let session_id = SessionId::from_uuid(Uuid::now_v7());
    let (refresh, record) = state
        .tokens
        .issue_refresh(&user, session_id, now)
        .map_err(|e| ApiError::Internal(format!("issuing refresh token: {e}")))?;
    let session = Session {
        id: session_id,
        user_id: user.id,
        org_id: user.org_id,
        created_at: now,
        expires_at: record.expires_at,
        revoked_at: None,
        revoked_reason: None,
    };
    state.store.create_session(&session, &record).await?;
    state.metrics.login("ok");
    tracing::info!(user_id = %user.id, session_id = %session_id, "login");
    Ok(Json(token_pair(&state, &user, session_id, refresh)?))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair),
        (status = 401, description = "The refresh token is invalid, expired, revoked or was already used")))]
/// Rotates a refresh token. Presenting a spent refresh token revokes its
/// whole session family (stolen-token detection).
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = now();
    let claims = state
        .tokens
        .verify_refresh(&req.refresh_token, now)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let bad = || ApiError::Unauthorized("refresh token subject is invalid".into());
    let user_id: UserId = claims.sub.parse().map_err(|_| bad())?;
    let session_id: SessionId = claims.sid.parse().map_err(|_| bad())?;
    let user = state
        .store
        .get_user(user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized("user is disabled or gone".into()))?;
    let (next_token, next) = state
        .tokens
        .issue_refresh(&user, session_id, now)
        .map_err(|e| ApiError::Internal(format!("issuing refresh token: {e}")))?;
    match state
        .store
        .rotate_refresh_token(&claims.jti, &next, now)
        .await?
    {
        RefreshOutcome::Rotated { session }
            if session.id == session_id && session.user_id == user.id =>
        {
            Ok(Json(token_pair(&state, &user, session_id, next_token)?))
        }
        RefreshOutcome::Rotated { .. } => Err(bad()),
        RefreshOutcome::ReuseDetected { session_id } => {
            tracing::warn!(%session_id, user_id = %user.id, "refresh token reuse: session family revoked");
            Err(ApiError::Unauthorized(
                "refresh token was already used; the session has been revoked".into(),
            ))
        }
        RefreshOutcome::Rejected { reason } => Err(ApiError::Unauthorized(reason.into())),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "The session is revoked"),
        (status = 400, description = "The credential is not a session (API keys are revoked instead)")),
    security(("bearer" = [])))]
/// Revokes the caller's session (all its tokens).
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    match caller.credential {
        Credential::Session(sid) => {
            state.store.revoke_session(sid, "logout", now()).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::BadRequest(
            "only session tokens can log out; revoke API keys instead".into(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = MeView)), security(("bearer" = [])))]
/// Who the caller is and what the credential may do.
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<MeView>> {
    let user = state
        .store
        .get_user(caller.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let org = state
        .store
        .get_org(caller.org_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let credential = match caller.credential {
        Credential::Session(_) => "session",
        Credential::ApiKey { .. } => "api_key",
        Credential::Oidc => "oidc",
    };
    Ok(Json(MeView {
        user: (&user).into(),
        org: (&org).into(),
        credential: credential.into(),
        permissions: Permission::ALL
            .into_iter()
            .filter(|p| caller.can(*p))
            .map(|p| p.as_str().to_owned())
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs",
    responses((status = 200, body = Page<OrgView>)), security(("bearer" = ["read"])))]
/// Organizations the caller can see: their own, or all for platform admins.
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<OrgView>>> {
    caller.require(Permission::Read)?;
    let orgs = if caller.platform_admin {
        state.store.list_orgs().await?
    } else {
        state
            .store
            .get_org(caller.org_id)
            .await?
            .into_iter()
            .collect()
    };
    Ok(Json(Page {
        items: orgs.iter().map(OrgView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrgRequest,
    responses((status = 201, body = OrgView), (status = 409, description = "The slug is taken")),
    security(("bearer" = ["platform_admin"])))]
/// Creates an organization (platform admins only).
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateOrgRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_platform_admin()?;
    collect_errors([
        validate::slug("slug", &req.slug),
        validate::display_name("name", &req.name),
    ])?;
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: req.slug,
        name: req.name.trim().to_owned(),
        created_at: now(),
    };
    state.store.create_org(&org).await?;
    tracing::info!(org_id = %org.id, slug = %org.slug, by = %caller.user_id, "organization created");
    Ok((StatusCode::CREATED, Json(OrgView::from(&org))))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "orgs",
    params(("org_id" = Uuid, Path)), responses((status = 200, body = OrgView)),
    security(("bearer" = ["read"])))]
pub async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    PathId(org_id): PathId<OrgId>,
) -> ApiResult<Json<OrgView>> {
    let org = visible_org(&state, &caller, org_id).await?;
    Ok(Json(OrgView::from(&org)))
}

/// The org if the caller may see it; 404 otherwise (never 403: the ids of
/// other tenants must not be confirmable).
async fn visible_org(state: &AppState, caller: &Caller, org_id: OrgId) -> ApiResult<Organization> {
    caller.require(Permission::Read)?;
    if !caller.sees_org(org_id) {
        return Err(ApiError::NotFound("organization"));
    }
    state
        .store
        .get_org(org_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/users", tag = "users",
    params(("org_id" = Uuid, Path)), responses((status = 200, body = Page<UserView>)),
    security(("bearer" = ["read"])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    PathId(org_id): PathId<OrgId>,
) -> ApiResult<Json<Page<UserView>>> {
    visible_org(&state, &caller, org_id).await?;
    let users = state.store.list_users(org_id).await?;
    Ok(Json(Page {
        items: users.iter().map(UserView::from).collect(),
    }))
}

fn parse_role(field: &'static str, s: &str) -> Result<Role, FieldError> {
    s.parse::<Role>()
        .map_err(|e| FieldError::new(field, e.to_string()))
}

/// Runs every check and reports all failures together.
fn collect_errors<const N: usize>(checks: [Result<(), FieldError>; N]) -> ApiResult<()> {
    let errors: Vec<FieldError> = checks.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/users", tag = "users", request_body = CreateUserRequest,
    params(("org_id" = Uuid, Path)),
    responses((status = 201, body = UserView), (status = 409, description = "The e-mail address is taken")),
    security(("bearer" = ["read", "manage_users"])))]
/// Adds a user to an organization. The new user's role may not exceed the caller's.
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    PathId(org_id): PathId<OrgId>,
    Json(req): Json<CreateUserRequest>,
) -> ApiResult<impl IntoResponse> {
    visible_org(&state, &caller, org_id).await?;
    caller.require(Permission::ManageUsers)?;
    let role = parse_role("role", &req.role);
    let display = req
        .display_name
        .clone()
        .unwrap_or_else(|| req.email.clone());
    collect_errors([
        validate::email("email", &req.email),
        validate::display_name("display_name", &display),
        role.clone().map(|_| ()),
        req.password
            .as_deref()
            .map_or(Ok(()), |p| validate::password("password", p)),
    ])?;
    let role = role?;
    if !caller.role.covers(role) {
        return Err(ApiError::Forbidden(format!(
            "you cannot grant the `{role}` role"
        )));
    }
    let password_hash = match &req.password {
        Some(p) => Some(hash(p)?),
        None => None,
    };
    let user = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        org_id,
        email: req.email.to_lowercase(),
        display_name: display.trim().to_owned(),
        role,
        platform_admin: false,
        password_hash,
        disabled: false,
        created_at: now(),
    };
    state.store.create_user(&user).await?;
    tracing::info!(user_id = %user.id, %org_id, role = %role, by = %caller.user_id, "user created");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

async fn visible_user(
    state: &AppState,
    caller: &Caller,
    org_id: OrgId,
    user_id: UserId,
) -> ApiResult<User> {
    visible_org(state, caller, org_id).await?;
    state
        .store
        .get_user(user_id)
        .await?
        .filter(|u| u.org_id == org_id)
        .ok_or(ApiError::NotFound("user"))
}

#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/users/{user_id}", tag = "users",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = UserView)), security(("bearer" = ["read"])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    PathIds(org_id, user_id): PathIds<OrgId, UserId>,
) -> ApiResult<Json<UserView>> {
    let user = visible_user(&state, &caller, org_id, user_id).await?;
    Ok(Json(UserView::from(&user)))
}

#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/users/{user_id}", tag = "users", request_body = UpdateUserRequest,
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = UserView)),
    security(("bearer" = ["read", "manage_users"])))]
/// Changes a user. Anyone may change their own name and password; role and
/// disabled need `manage_users`.
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    PathIds(org_id, user_id): PathIds<OrgId, UserId>,
    Json(req): Json<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    let mut user = visible_user(&state, &caller, org_id, user_id).await?;
    let is_self = user.id == caller.user_id;
    if !is_self || req.role.is_some() || req.disabled.is_some() {
        caller.require(Permission::ManageUsers)?;
    }
    let role = req
        .role
        .as_deref()
        .map(|r| parse_role("role", r))
        .transpose();
    collect_errors([
        req.display_name
            .as_deref()
            .map_or(Ok(()), |n| validate::display_name("display_name", n)),
        req.password
            .as_deref()
            .map_or(Ok(()), |p| validate::password("password", p)),
        role.clone().map(|_| ()),
    ])?;
    if let Some(role) = role? {
        if !caller.role.covers(role) || !caller.role.covers(user.role) {
            return Err(ApiError::Forbidden(format!(
                "you cannot grant the `{role}` role"
            )));
        }
        if is_self && role != user.role {
            return Err(ApiError::Forbidden(
                "you cannot change your own role".into(),
            ));
        }
        user.role = role;
    }
    if let Some(disabled) = req.disabled {
        if is_self && disabled {
            return Err(ApiError::Forbidden("you cannot disable yourself".into()));
        }
        user.disabled = disabled;
    }
    if let Some(name) = req.display_name {
        user.display_name = name.trim().to_owned();
    }
    if let Some(p) = req.password {
        user.password_hash = Some(hash(&p)?);
    }
    state.store.update_user(&user).await?;
    state.credentials_changed(user.org_id);
    Ok(Json(UserView::from(&user)))
}

#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/users/{user_id}", tag = "users",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "The user is gone")),
    security(("bearer" = ["read", "manage_users"])))]
/// Removes a user with their API keys and sessions.
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    PathIds(org_id, user_id): PathIds<OrgId, UserId>,
) -> ApiResult<StatusCode> {
    let user = visible_user(&state, &caller, org_id, user_id).await?;
    caller.require(Permission::ManageUsers)?;
    if user.id == caller.user_id {
        return Err(ApiError::Forbidden("you cannot delete yourself".into()));
    }
    if !caller.role.covers(user.role) {
        return Err(ApiError::Forbidden(
            "you cannot delete a user with more permissions than you".into(),
        ));
    }
    let deleted = state.store.delete_user(org_id, user_id).await?;
    state.credentials_changed(org_id);
    if !deleted {
        return Err(ApiError::NotFound("user"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    responses((status = 200, body = Page<ApiKeyView>)), security(("bearer" = ["read"])))]
/// The caller's API keys; with `manage_keys`, every key of the organization.
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ApiKeyView>>> {
    caller.require(Permission::Read)?;
    let only = (!caller.can(Permission::ManageKeys)).then_some(caller.user_id);
    let keys = state.store.list_api_keys(caller.org_id, only).await?;
    Ok(Json(Page {
        items: keys.iter().map(ApiKeyView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey)),
    security(("bearer" = ["read"])))]
/// Creates an API key acting for the caller. The secret is in this response only.
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateApiKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Read)?;
    let role = req
        .role
        .as_deref()
        .map(|r| parse_role("role", r))
        .transpose();
    let scopes: Result<Vec<Permission>, FieldError> = req
        .scopes
        .iter()
        .map(|s| {
            s.parse::<Permission>()
                .map_err(|e| FieldError::new("scopes", e.to_string()))
        })
        .collect();
    let expiry = match req.expires_in_days {
        Some(d) if !(1..=3650).contains(&d) => Err(FieldError::new(
            "expires_in_days",
            "must be between 1 and 3650",
        )),
        _ => Ok(()),
    };
    collect_errors([
        validate::display_name("name", &req.name),
        role.clone().map(|_| ()),
        scopes.clone().map(|_| ()),
        expiry,
    ])?;
    let role = role?.unwrap_or(caller.role);
    let scopes = scopes?;
    if !caller.role.covers(role) {
        return Err(ApiError::Forbidden(format!(
            "a key cannot have more than your role (`{}`)",
            caller.role
        )));
    }
    // A key made with a scoped key may not widen that key's scopes.
    if let Credential::ApiKey { scopes: mine, .. } = &caller.credential {
        if !mine.is_empty() && (scopes.is_empty() || scopes.iter().any(|s| !mine.contains(s))) {
            return Err(ApiError::Forbidden(
                "a key cannot have scopes beyond the key that creates it".into(),
            ));
        }
    }
    if let Some(bad) = scopes.iter().find(|s| !role.allows(**s)) {
        return Err(ApiError::invalid(
            "scopes",
            format!("the `{role}` role does not include `{}`", bad.as_str()),
        ));
    }
    let now = now();
    let generated = generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::from_uuid(Uuid::now_v7()),
        org_id: caller.org_id,
        user_id: caller.user_id,
        name: req.name.trim().to_owned(),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        role,
        scopes,
        created_at: now,
        expires_at: req.expires_in_days.map(|d| now.plus_secs(d * 86_400)),
        revoked_at: None,
        last_used_at: None,
    };
    state.store.create_api_key(&key).await?;
    tracing::info!(key_id = %key.id, prefix = %key.prefix, user_id = %caller.user_id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: ApiKeyView::from(&key),
            token: generated.token,
        }),
    ))
}

async fn visible_key(state: &AppState, caller: &Caller, id: ApiKeyId) -> ApiResult<ApiKey> {
    caller.require(Permission::Read)?;
    state
        .store
        .get_api_key(caller.org_id, id)
        .await?
        .filter(|k| k.user_id == caller.user_id || caller.can(Permission::ManageKeys))
        .ok_or(ApiError::NotFound("API key"))
}

#[utoipa::path(get, path = "/api/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = Uuid, Path)), responses((status = 200, body = ApiKeyView)),
    security(("bearer" = ["read"])))]
pub async fn get_api_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ApiKeyId>,
) -> ApiResult<Json<ApiKeyView>> {
    let key = visible_key(&state, &caller, id).await?;
    Ok(Json(ApiKeyView::from(&key)))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{key_id}", tag = "api-keys",
    params(("key_id" = Uuid, Path)), responses((status = 204, description = "The key is revoked")),
    security(("bearer" = ["read"])))]
/// Revokes a key: refused at once on this replica, within a second on
/// every other. Idempotent.
pub async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ApiKeyId>,
) -> ApiResult<StatusCode> {
    let key = visible_key(&state, &caller, id).await?;
    state
        .store
        .revoke_api_key(caller.org_id, key.id, now())
        .await?;
    state.credentials_changed(key.org_id);
    tracing::info!(key_id = %key.id, by = %caller.user_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, body = Object, description = "JSON Web Key Set")))]
/// Public keys that verify Hood's session tokens.
pub async fn jwks(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.tokens.jwks())
}
