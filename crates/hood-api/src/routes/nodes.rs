//! Managed nodes: create (202 + ProvisionNode), list, show, history,
//! delete (202 + TerminateNode).

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, PathId, Query};
use crate::problem::ApiResult;
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hood_app::nodes::{CreateNode, NodeAccepted as Accepted};
use hood_domain::identity::Permission;
use hood_domain::node::{Node, NodeEvent};
use hood_domain::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/nodes", get(list_nodes).post(create_node))
        .route("/api/v1/nodes/{node_id}", get(get_node).delete(delete_node))
        .route("/api/v1/nodes/{node_id}/events", get(node_events))
        .route("/api/v1/nodes/{node_id}/logs", get(node_logs))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub chain: String,
    pub node_type: String,
    pub provider: String,
    pub region: String,
    /// provisioning | syncing | healthy | degraded | down | migrating | maintenance | terminating | terminated | failed
    pub state: String,
    /// unknown | syncing | synced | lagging
    pub sync_status: String,
    /// unknown | ok | degraded | critical
    pub app_health: String,
    pub host_id: Option<Uuid>,
    /// JSON-RPC endpoint of the node (present once it runs).
    pub rpc_endpoint: Option<String>,
    pub head_height: Option<i64>,
    pub binary_version: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Node> for NodeView {
    fn from(n: &Node) -> Self {
        Self {
            id: n.id.0,
            org_id: n.org_id.0,
            name: n.name.clone(),
            chain: n.chain.clone(),
            node_type: n.node_type.clone(),
            provider: n.provider.clone(),
            region: n.region.clone(),
            state: n.state.as_str().into(),
            sync_status: n.sync_status.as_str().into(),
            app_health: n.app_health.as_str().into(),
            host_id: n.host_id.map(|h| h.0),
            rpc_endpoint: n.rpc_endpoint.clone(),
            head_height: n.head_height,
            binary_version: n.binary_version.clone(),
            failure_reason: n.failure_reason.clone(),
            created_at: rfc3339(n.created_at),
            updated_at: rfc3339(n.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeEventView {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub message: String,
}

impl From<&NodeEvent> for NodeEventView {
    fn from(e: &NodeEvent) -> Self {
        Self {
            seq: e.seq,
            at: rfc3339(e.at),
            kind: e.kind.clone(),
            from_state: e.from_state.map(|s| s.as_str().into()),
            to_state: e.to_state.map(|s| s.as_str().into()),
            message: e.message.clone(),
        }
    }
}

/// Accepted: the workflow doing the work, and the node as it is now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeAccepted {
    pub node: NodeView,
    pub workflow_id: String,
}

impl From<&Accepted> for NodeAccepted {
    fn from(a: &Accepted) -> Self {
        Self {
            node: NodeView::from(&a.node),
            workflow_id: a.workflow_id.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    /// Chain profile, e.g. `ethereum-anvil`.
    #[schema(schema_with = crate::schemas::slug)]
    pub chain: String,
    /// Node type of the profile; default: the profile's default.
    pub node_type: Option<String>,
    /// Unique per organization; default: `{chain}-{random}`.
    #[schema(schema_with = crate::schemas::optional_slug)]
    pub name: Option<String>,
    /// Host provider; default `local`.
    pub provider: Option<String>,
    /// Provider region; default `local`.
    #[schema(schema_with = crate::schemas::optional_slug)]
    pub region: Option<String>,
}

/// The answer of `GET /api/v1/nodes/{node_id}/logs`: the last lines of each
/// process, by process name.
pub type NodeLogsView = std::collections::BTreeMap<String, Vec<String>>;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Lines per process (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub lines: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/logs", tag = "nodes", params(("node_id" = Uuid, Path), LogsQuery),
    responses((status = 200, body = std::collections::HashMap<String, Vec<String>>, description = "The last lines of each process, by process name"),
        (status = 409, description = "The node runs on no host, or its agent could not read the logs"),
        (status = 503, description = "No orchestrator in this process, or the node's agent did not answer")),
    security(("bearer" = ["read"])))]
/// The tail of the node's process logs, fetched from its agent.
pub async fn node_logs(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.require(Permission::Read)?;
    let logs = state
        .nodes
        .logs(caller.org_id, id, q.lines.unwrap_or(100))
        .await?;
    Ok(Json(logs))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events after this sequence number.
    pub after: Option<i64>,
    /// At most this many (default 200).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = CreateNodeRequest,
    responses((status = 202, body = NodeAccepted, description = "Stored with its provision workflow, in one transaction; the workflow runs"),
        (status = 409, description = "The organization has a node of this name, or a binary the chain runs is not in the artifact store (the detail names the command that adds it)")),
    security(("bearer" = ["operate"])))]
/// Requests a node. Provisioning runs as a durable workflow; poll the node.
pub async fn create_node(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateNodeRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Operate)?;
    let request = CreateNode {
        chain: req.chain,
        node_type: req.node_type,
        name: req.name,
        provider: req.provider,
        region: req.region,
    };
    let accepted = state.nodes.create(caller.org_id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(NodeAccepted::from(&accepted))))
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = Page<NodeView>)), security(("bearer" = ["read"])))]
/// The organization's nodes.
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<NodeView>>> {
    caller.require(Permission::Read)?;
    let nodes = state.nodes.list(caller.org_id).await?;
    Ok(Json(Page {
        items: nodes.iter().map(NodeView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = NodeView)), security(("bearer" = ["read"])))]
pub async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeView>> {
    caller.require(Permission::Read)?;
    let node = state.nodes.get(caller.org_id, id).await?;
    Ok(Json(NodeView::from(&node)))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/events", tag = "nodes", params(("node_id" = Uuid, Path), EventsQuery),
    responses((status = 200, body = Page<NodeEventView>)), security(("bearer" = ["read"])))]
/// The node's history, oldest first.
pub async fn node_events(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Page<NodeEventView>>> {
    caller.require(Permission::Read)?;
    let events = state
        .nodes
        .events(
            caller.org_id,
            id,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(200),
        )
        .await?;
    Ok(Json(Page {
        items: events.iter().map(NodeEventView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 202, body = NodeAccepted, description = "The terminate workflow runs")),
    security(("bearer" = ["read", "operate"])))]
/// Terminates a node: stop, wipe keys, delete the host. Idempotent.
pub async fn delete_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Read)?;
    // Existence first: another organization's node is 404, not 403.
    state.nodes.get(caller.org_id, id).await?;
    caller.require(Permission::Operate)?;
    let accepted = state.nodes.terminate(caller.org_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(NodeAccepted::from(&accepted))))
}
