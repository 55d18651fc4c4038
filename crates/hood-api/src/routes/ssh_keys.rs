//! Users' SSH public keys: what lets a user in through Hood's SSH gateway.
//! Each user manages their own; a key is one OpenSSH public-key line,
//! checked (type, strength, wire format) and fingerprinted as `ssh-keygen
//! -l` shows it.

use crate::auth::Caller;
use crate::clock::{now, rfc3339};
use crate::extract::{Json, PathId};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::allocations::audit_context;
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::ssh_key::{parse_public_key, SshKey};
use hood_domain::validate::{self, FieldError};
use hood_domain::SshKeyId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/ssh-keys", get(list_ssh_keys).post(add_ssh_key))
        .route("/api/v1/ssh-keys/{key_id}", delete(remove_ssh_key))
}

/// One of the caller's SSH public keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SshKeyView {
    pub id: Uuid,
    pub name: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, …
    pub algorithm: String,
    /// The key in OpenSSH's one-line form, without its comment.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: String,
}

impl From<&SshKey> for SshKeyView {
    fn from(k: &SshKey) -> Self {
        Self {
            id: *k.id.as_uuid(),
            name: k.name.clone(),
            algorithm: k.algorithm.clone(),
            public_key: k.public_key.clone(),
            fingerprint: k.fingerprint.clone(),
            created_at: rfc3339(k.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddSshKeyRequest {
    /// One OpenSSH public-key line: the contents of a `.pub` file.
    #[schema(min_length = 1, max_length = 4096)]
    pub public_key: String,
    /// A name for it (default: the key's comment, else its fingerprint).
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
}

/// Users only: a service account has no shell to reach.
fn user_caller(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::Read)
}

#[utoipa::path(get, path = "/api/v1/ssh-keys", tag = "ssh keys",
    responses((status = 200, body = Page<SshKeyView>)),
    security(("bearer" = ["read"])))]
/// The caller's SSH public keys, oldest first.
pub async fn list_ssh_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<SshKeyView>>> {
    user_caller(&caller)?;
    let keys = state.store.ssh_keys_of_user(caller.user_id).await?;
    Ok(Json(Page {
        items: keys.iter().map(SshKeyView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/ssh-keys", tag = "ssh keys",
    request_body = AddSshKeyRequest,
    responses((status = 201, body = SshKeyView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "You already hold this key")),
    security(("bearer" = ["read"])))]
/// Adds an SSH public key to the caller's own.
pub async fn add_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<AddSshKeyRequest>,
) -> ApiResult<impl IntoResponse> {
    user_caller(&caller)?;
    if body.public_key.len() > 4 * 1024 {
        return Err(ApiError::Validation(vec![FieldError::new(
            "public_key",
            "at most 4 KiB (an RSA key of 16,384 bits fits in 3)",
        )]));
    }
    let parsed = parse_public_key(&body.public_key)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("public_key", e.to_string())]))?;
    let name = match body.name {
        Some(name) => {
            validate::display_name("name", &name).map_err(|e| ApiError::Validation(vec![e]))?;
            name.trim().to_owned()
        }
        None if validate::display_name("name", &parsed.comment).is_ok() => {
            parsed.comment.trim().to_owned()
        }
        None => parsed.fingerprint.clone(),
    };
    let key = SshKey {
        id: SshKeyId::from_uuid(Uuid::now_v7()),
        user_id: caller.user_id,
        org_id: caller.org_id,
        name,
        algorithm: parsed.algorithm,
        public_key: parsed.public_key,
        fingerprint: parsed.fingerprint,
        created_at: now(),
    };
    state
        .store
        .add_ssh_key(&key, &audit_context(&caller, &headers))
        .await
        .map_err(|e| match e {
            hood_store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("you already hold the key {}", key.fingerprint))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(SshKeyView::from(&key))))
}

#[utoipa::path(delete, path = "/api/v1/ssh-keys/{key_id}", tag = "ssh keys",
    params(("key_id" = Uuid, Path)),
    responses((status = 204, description = "Removed: it lets no one in any more")),
    security(("bearer" = ["read"])))]
/// Removes one of the caller's SSH public keys.
pub async fn remove_ssh_key(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<SshKeyId>,
) -> ApiResult<StatusCode> {
    user_caller(&caller)?;
    let removed = state
        .store
        .remove_ssh_key(caller.user_id, id, now(), &audit_context(&caller, &headers))
        .await?;
    if !removed {
        return Err(ApiError::NotFound("ssh key"));
    }
    Ok(StatusCode::NO_CONTENT)
}
