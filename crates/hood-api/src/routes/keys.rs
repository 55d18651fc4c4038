//! Key export: a node's key material sealed to the caller's X25519 public
//! key (a NaCl sealed box). Organization administrators only; every
//! export is recorded in the node's events.

use crate::auth::Caller;
use crate::extract::{Json, PathId};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::invoicing::invalid;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hood_domain::identity::{Permission, Role};
use hood_domain::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/nodes/{node_id}/key-export", post(export_keys))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyExportRequest {
    /// The recipient's X25519 public key, 32 bytes in standard base64
    /// (PyNaCl: `base64.b64encode(bytes(PrivateKey.generate().public_key))`).
    #[schema(min_length = 44, max_length = 44)]
    pub public_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyExportView {
    pub node_id: Uuid,
    /// What the material is (`p2p_nodekey`, …).
    pub kind: String,
    /// SHA-256 hex of the material: what the opened box hashes to.
    pub fingerprint: String,
    /// The material as a NaCl sealed box (libsodium `crypto_box_seal`) to
    /// the given key, standard base64. Open it with `hood keys open` or
    /// PyNaCl's `SealedBox(private_key).decrypt`.
    pub sealed: String,
}

#[utoipa::path(post, path = "/api/v1/nodes/{node_id}/key-export", tag = "nodes",
    params(("node_id" = Uuid, Path)), request_body = KeyExportRequest,
    responses((status = 200, body = KeyExportView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The node has no key material (not provisioned yet, or terminated)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "This process does not hold the master key")),
    security(("bearer" = ["manage_keys"])))]
/// Exports the node's key material sealed to your X25519 public key
/// (organization administrators; recorded in the node's events).
pub async fn export_keys(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Json(input): Json<KeyExportRequest>,
) -> ApiResult<Json<KeyExportView>> {
    caller.require(Permission::ManageKeys)?;
    if caller.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "exporting key material takes the admin role".into(),
        ));
    }
    let public_key = base64::engine::general_purpose::STANDARD
        .decode(input.public_key.trim())
        .map_err(|_| invalid("public_key", "must be standard base64"))?;
    let master = state
        .master
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this process does not hold the master key".into()))?;
    let export = state
        .nodes
        .export_keys(
            caller.org_id,
            id,
            &public_key,
            master,
            &format!("user {}", caller.user_id),
        )
        .await?;
    Ok(Json(KeyExportView {
        node_id: *export.node_id.as_uuid(),
        kind: export.kind,
        fingerprint: export.fingerprint,
        sealed: base64::engine::general_purpose::STANDARD.encode(&export.sealed),
    }))
}
