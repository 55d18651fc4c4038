//! Node snapshots: take one (202 + snapshot-node), list them, restore one
//! (202 + restore-node).

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, PathId};
use crate::problem::{ApiResult, Problem};
use crate::routes::nodes::NodeAccepted;
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::snapshot::NodeSnapshot;
use hood_domain::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/nodes/{node_id}/snapshots",
            get(list_snapshots).post(take_snapshot),
        )
        .route("/api/v1/nodes/{node_id}/restore", post(restore_snapshot))
}

/// One snapshot of a node's data directory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotView {
    pub node_id: Uuid,
    pub name: String,
    /// uploading | complete | failed
    pub state: String,
    /// Why it was taken: manual | scheduled | migration (pulled from the
    /// old host)
    pub reason: String,
    /// The node's head height when it was taken.
    pub head_height: Option<i64>,
    pub files: i64,
    /// Bytes of the data directory.
    pub raw_bytes: i64,
    /// Bytes stored (zstd).
    pub compressed_bytes: i64,
    pub chunks_total: i64,
    /// Chunks stored so far.
    pub chunks_done: i64,
    pub error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

impl From<&NodeSnapshot> for SnapshotView {
    fn from(s: &NodeSnapshot) -> Self {
        Self {
            node_id: s.node_id.0,
            name: s.name.clone(),
            state: s.state.as_str().into(),
            reason: s.reason.clone(),
            head_height: s.head_height,
            files: s.files,
            raw_bytes: s.raw_bytes,
            compressed_bytes: s.compressed_bytes,
            chunks_total: s.chunks_total,
            chunks_done: s.chunks_done,
            error: s.error.clone(),
            created_at: rfc3339(s.created_at),
            completed_at: s.completed_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakeSnapshotRequest {
    /// Unique per node: 1-128 letters, digits, `-`, `_`; default
    /// `manual-{unix ms}`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub name: Option<String>,
}

/// A snapshot being taken.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotAccepted {
    pub node_id: Uuid,
    pub name: String,
    pub workflow_id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A complete snapshot of this node.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub snapshot: String,
}

#[utoipa::path(post, path = "/api/v1/nodes/{node_id}/snapshots", tag = "nodes", params(("node_id" = Uuid, Path)),
    request_body = TakeSnapshotRequest,
    responses((status = 202, body = SnapshotAccepted, description = "The snapshot workflow runs: the node is stopped while its data is packed, then serves while the chunks upload"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The node is not serving, or the name is taken")),
    security(("bearer" = ["read", "operate"])))]
/// Takes a snapshot of the node's data directory into the object store.
pub async fn take_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Json(body): Json<TakeSnapshotRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Read)?;
    state.nodes.get(caller.org_id, id).await?;
    caller.require(Permission::Operate)?;
    let name = body.name;
    let accepted = state
        .snapshots
        .take(caller.org_id, id, name, "manual")
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SnapshotAccepted {
            node_id: accepted.node_id.0,
            name: accepted.name,
            workflow_id: accepted.workflow_id,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/snapshots", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = Page<SnapshotView>, description = "Newest first")),
    security(("bearer" = ["read"])))]
/// The node's snapshots with their upload progress.
pub async fn list_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Read)?;
    let items = state.snapshots.list(caller.org_id, id).await?;
    Ok(Json(Page {
        items: items.iter().map(SnapshotView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/nodes/{node_id}/restore", tag = "nodes", params(("node_id" = Uuid, Path)),
    request_body = RestoreRequest,
    responses((status = 202, body = NodeAccepted, description = "The restore workflow runs: the node's data directory is replaced by the snapshot"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such node or snapshot"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The node is not serving or the snapshot is not complete")),
    security(("bearer" = ["read", "operate"])))]
/// Replaces the node's data directory with one of its snapshots.
pub async fn restore_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Json(body): Json<RestoreRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Read)?;
    state.nodes.get(caller.org_id, id).await?;
    caller.require(Permission::Operate)?;
    let accepted = state
        .snapshots
        .restore(caller.org_id, id, &body.snapshot)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(NodeAccepted::from(&accepted))))
}
