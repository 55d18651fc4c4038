//! Service accounts: non-human identities of an organization whose keys
//! reach only what their grants name (`storage.{org}.namespaces.logs:
//! [read]`). Grants never exceed what the user writing them holds; a key
//! is checked against its account's grants at every request, so a change
//! or a deletion applies to the next request on every replica.

use crate::auth::Caller;
use crate::clock::{now, rfc3339};
use crate::extract::{parse_id, Json, Path, PathId};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::allocations::audit_context;
use crate::state::AppState;
use crate::views::{ApiKeyView, CreatedApiKey, Page};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hood_domain::identity::{ApiKey, Permission};
use hood_domain::scope::{Action, Grant, Grants, S3AccessKey, Scope, ServiceAccount};
use hood_domain::validate::{self, FieldError};
use hood_domain::{ApiKeyId, ServiceAccountId};
use hood_identity::api_keys::generate_api_key;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/service-accounts",
            get(list_service_accounts).post(create_service_account),
        )
        .route(
            "/api/v1/service-accounts/{account_id}",
            get(get_service_account)
                .put(set_grants)
                .delete(delete_service_account),
        )
        .route(
            "/api/v1/service-accounts/{account_id}/keys",
            post(create_service_account_key),
        )
        .route(
            "/api/v1/service-accounts/{account_id}/s3-keys",
            get(list_s3_keys).post(create_s3_key),
        )
        .route(
            "/api/v1/service-accounts/{account_id}/s3-keys/{access_key_id}",
            axum::routing::delete(revoke_s3_key),
        )
}

/// An S3 access key of a service account (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct S3KeyView {
    /// The `aws_access_key_id` of S3 tools.
    pub access_key_id: String,
    pub service_account_id: Uuid,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&S3AccessKey> for S3KeyView {
    fn from(k: &S3AccessKey) -> Self {
        Self {
            access_key_id: k.access_key_id.clone(),
            service_account_id: *k.service_account_id.as_uuid(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

/// A new S3 access key with its secret, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedS3Key {
    pub key: S3KeyView,
    /// The `aws_secret_access_key`: shown once, kept only sealed.
    pub secret_access_key: String,
}

/// Actions on a scope and everything beneath it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantView {
    /// `service.{org}[.{resource}[.{id}]]`, `{org}` being the
    /// organization's slug, e.g. `storage.acme.namespaces.logs`.
    pub scope: String,
    /// Some of create, read, update, delete.
    pub actions: Vec<String>,
}

/// A service account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceAccountView {
    pub id: Uuid,
    pub name: String,
    /// The user who created it: its keys act for them, within the grants.
    pub owner_id: Uuid,
    pub grants: Vec<GrantView>,
    pub created_at: String,
}

impl From<&ServiceAccount> for ServiceAccountView {
    fn from(a: &ServiceAccount) -> Self {
        Self {
            id: *a.id.as_uuid(),
            name: a.name.clone(),
            owner_id: *a.owner_id.as_uuid(),
            grants: a
                .grants
                .0
                .iter()
                .map(|g| GrantView {
                    scope: g.scope.to_string(),
                    actions: g.actions.iter().map(|a| a.as_str().to_owned()).collect(),
                })
                .collect(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetGrantsRequest {
    pub grants: Vec<GrantView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServiceAccountKeyRequest {
    /// The key's name (default: the account's).
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// Parses grants and checks them against what the caller holds.
async fn checked_grants(state: &AppState, caller: &Caller, raw: &[GrantView]) -> ApiResult<Grants> {
    let mut grants = Vec::with_capacity(raw.len());
    let mut problems = Vec::new();
    for g in raw {
        let scope = g.scope.parse::<Scope>();
        let actions = g
            .actions
            .iter()
            .map(|a| a.parse::<Action>())
            .collect::<Result<Vec<_>, _>>();
        match (scope, actions) {
            (Ok(scope), Ok(actions)) => match Grant::new(scope, actions) {
                Ok(grant) => grants.push(grant),
                Err(e) => problems.push(FieldError::new("grants", e.to_string())),
            },
            (Err(e), _) | (_, Err(e)) => problems.push(FieldError::new("grants", e.to_string())),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let grants = Grants(grants);
    let org = state
        .store
        .get_org(caller.org_id)
        .await?
        .ok_or(ApiError::NotFound("organization"))?;
    let owner = Grants::of_role(
        &org.slug,
        caller.can(Permission::Read),
        caller.can(Permission::Operate),
    )
    .map_err(|e| ApiError::Internal(format!("the organization's scope: {e}")))?;
    if let Some((scope, action)) = grants.exceeding(&owner) {
        return Err(ApiError::Forbidden(format!(
            "`{}` on `{scope}` is beyond what you hold (scopes name your organization as `{}`)",
            action.as_str(),
            org.slug
        )));
    }
    Ok(grants)
}

async fn live_account(
    state: &AppState,
    caller: &Caller,
    id: ServiceAccountId,
) -> ApiResult<ServiceAccount> {
    state
        .store
        .service_account(caller.org_id, id)
        .await?
        .ok_or(ApiError::NotFound("service account"))
}

#[utoipa::path(get, path = "/api/v1/service-accounts", tag = "service accounts",
    responses((status = 200, body = Page<ServiceAccountView>)),
    security(("bearer" = ["manage_keys"])))]
/// The organization's service accounts, by name.
pub async fn list_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ServiceAccountView>>> {
    caller.require(Permission::ManageKeys)?;
    let items = state.store.list_service_accounts(caller.org_id).await?;
    Ok(Json(Page {
        items: items.iter().map(ServiceAccountView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/service-accounts", tag = "service accounts",
    request_body = CreateServiceAccountRequest,
    responses((status = 201, body = ServiceAccountView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The organization has a service account of that name")),
    security(("bearer" = ["manage_keys"])))]
/// Creates a service account with grants within the caller's own.
pub async fn create_service_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateServiceAccountRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageKeys)?;
    validate::display_name("name", &body.name).map_err(|e| ApiError::Validation(vec![e]))?;
    let grants = checked_grants(&state, &caller, &body.grants).await?;
    let account = ServiceAccount {
        id: ServiceAccountId::from_uuid(Uuid::now_v7()),
        org_id: caller.org_id,
        owner_id: caller.user_id,
        name: body.name.trim().to_owned(),
        grants,
        created_at: now(),
    };
    state
        .store
        .create_service_account(&account, &audit_context(&caller, &headers))
        .await
        .map_err(|e| match e {
            hood_store::StoreError::Conflict(_) => ApiError::Conflict(format!(
                "the organization already has a service account named `{}`",
                account.name
            )),
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(ServiceAccountView::from(&account)),
    ))
}

#[utoipa::path(get, path = "/api/v1/service-accounts/{account_id}", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    responses((status = 200, body = ServiceAccountView)),
    security(("bearer" = ["manage_keys"])))]
/// One service account and its grants.
pub async fn get_service_account(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ServiceAccountId>,
) -> ApiResult<Json<ServiceAccountView>> {
    caller.require(Permission::ManageKeys)?;
    let account = live_account(&state, &caller, id).await?;
    Ok(Json(ServiceAccountView::from(&account)))
}

#[utoipa::path(put, path = "/api/v1/service-accounts/{account_id}", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    request_body = SetGrantsRequest,
    responses((status = 200, body = ServiceAccountView)),
    security(("bearer" = ["manage_keys"])))]
/// Replaces a service account's grants; its keys see them at their next
/// request on this replica, within a second on every other.
pub async fn set_grants(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<ServiceAccountId>,
    Json(body): Json<SetGrantsRequest>,
) -> ApiResult<Json<ServiceAccountView>> {
    caller.require(Permission::ManageKeys)?;
    let grants = checked_grants(&state, &caller, &body.grants).await?;
    let account = state
        .store
        .set_service_account_grants(
            caller.org_id,
            id,
            &grants,
            now(),
            &audit_context(&caller, &headers),
        )
        .await?;
    state.credentials_changed(caller.org_id);
    Ok(Json(ServiceAccountView::from(&account)))
}

#[utoipa::path(delete, path = "/api/v1/service-accounts/{account_id}", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted; every key of it revoked")),
    security(("bearer" = ["manage_keys"])))]
/// Deletes a service account and revokes its keys: refused at once on
/// this replica, within a second on every other.
pub async fn delete_service_account(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<ServiceAccountId>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageKeys)?;
    let deleted = state
        .store
        .delete_service_account(caller.org_id, id, now(), &audit_context(&caller, &headers))
        .await?;
    state.credentials_changed(caller.org_id);
    if !deleted {
        return Err(ApiError::NotFound("service account"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/service-accounts/{account_id}/keys", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    request_body = CreateServiceAccountKeyRequest,
    responses((status = 201, body = CreatedApiKey, description = "The key; its token is shown once")),
    security(("bearer" = ["manage_keys"])))]
/// Issues an API key that acts as the service account.
pub async fn create_service_account_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<ServiceAccountId>,
    Json(body): Json<CreateServiceAccountKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageKeys)?;
    let account = live_account(&state, &caller, id).await?;
    if let Some(name) = &body.name {
        validate::display_name("name", name).map_err(|e| ApiError::Validation(vec![e]))?;
    }
    if let Some(d) = body.expires_in_days {
        if !(1..=3650).contains(&d) {
            return Err(ApiError::invalid(
                "expires_in_days",
                "must be between 1 and 3650",
            ));
        }
    }
    let owner = state
        .store
        .get_user(account.owner_id)
        .await?
        .filter(|u| u.org_id == caller.org_id)
        .ok_or_else(|| ApiError::Conflict("the service account's owner no longer exists".into()))?;
    let at = now();
    let generated = generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::from_uuid(Uuid::now_v7()),
        org_id: caller.org_id,
        // The key acts for the owner, never beyond their role; the grants
        // narrow it further at every request.
        user_id: owner.id,
        name: body
            .name
            .as_deref()
            .map_or_else(|| account.name.clone(), |n| n.trim().to_owned()),
        prefix: generated.prefix.clone(),
        secret_hash: generated.secret_hash.clone(),
        role: owner.role,
        scopes: vec![],
        created_at: at,
        expires_at: body.expires_in_days.map(|d| at.plus_secs(d * 86_400)),
        revoked_at: None,
        last_used_at: None,
    };
    state
        .store
        .create_service_account_key(account.id, &key, &audit_context(&caller, &headers))
        .await?;
    tracing::info!(key_id = %key.id, service_account = %account.id, "service account key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: ApiKeyView::from(&key),
            token: generated.token,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/service-accounts/{account_id}/s3-keys", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    responses((status = 201, body = CreatedS3Key, description = "The key; its secret is shown once"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This process holds no master key to seal the secret with")),
    security(("bearer" = ["manage_keys"])))]
/// Issues an S3 access key that acts as the service account: S3 calls
/// signed with it reach only what the account's grants name.
pub async fn create_s3_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<ServiceAccountId>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::ManageKeys)?;
    let account = live_account(&state, &caller, id).await?;
    let master = state.master.as_ref().ok_or_else(|| {
        ApiError::Unavailable("this process holds no master key to seal S3 secrets with".into())
    })?;
    let generated = hood_identity::s3_keys::generate_s3_key();
    let sealed =
        hood_identity::s3_keys::seal_secret(master, &generated.access_key_id, &generated.secret)
            .map_err(|e| ApiError::Internal(format!("sealing an S3 secret: {e}")))?;
    let key = S3AccessKey {
        access_key_id: generated.access_key_id.clone(),
        service_account_id: account.id,
        org_id: caller.org_id,
        created_at: now(),
        revoked_at: None,
    };
    state
        .store
        .create_s3_key(&key, &sealed, &audit_context(&caller, &headers))
        .await?;
    tracing::info!(access_key_id = %key.access_key_id, service_account = %account.id, "s3 key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedS3Key {
            key: S3KeyView::from(&key),
            secret_access_key: generated.secret,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/service-accounts/{account_id}/s3-keys", tag = "service accounts",
    params(("account_id" = Uuid, Path)),
    responses((status = 200, body = Page<S3KeyView>)),
    security(("bearer" = ["manage_keys"])))]
/// The service account's S3 keys, revoked ones included, newest first.
pub async fn list_s3_keys(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<ServiceAccountId>,
) -> ApiResult<Json<Page<S3KeyView>>> {
    caller.require(Permission::ManageKeys)?;
    let account = live_account(&state, &caller, id).await?;
    let keys = state.store.list_s3_keys(caller.org_id, account.id).await?;
    Ok(Json(Page {
        items: keys.iter().map(S3KeyView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/service-accounts/{account_id}/s3-keys/{access_key_id}", tag = "service accounts",
    params(("account_id" = Uuid, Path), ("access_key_id" = String, Path)),
    responses((status = 204, description = "Revoked: refused by every S3 endpoint within a second")),
    security(("bearer" = ["manage_keys"])))]
/// Revokes an S3 key.
pub async fn revoke_s3_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((account_id, access_key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageKeys)?;
    let id: ServiceAccountId = parse_id(&account_id).ok_or_else(|| {
        ApiError::invalid_param(
            "account_id",
            format!("`{account_id}` is not a valid id (a UUID)"),
        )
    })?;
    let revoked = state
        .store
        .revoke_s3_key(
            caller.org_id,
            id,
            &access_key_id,
            now(),
            &audit_context(&caller, &headers),
        )
        .await?;
    if !revoked {
        return Err(ApiError::NotFound("s3 key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
