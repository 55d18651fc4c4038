//! Managed nodes: create (202 + ProvisionNode), list, show, history,
//! delete (202 + TerminateNode).

use crate::auth::Caller;
use crate::clock::{now, rfc3339};
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::Page;
use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::{Node, NodeEvent};
use hood_domain::validate::{self, FieldError};
use hood_domain::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// What the HTTP layer needs from the orchestrator: start the durable
/// workflows that change a node. Implemented by `hood-orchestrator`.
#[async_trait]
pub trait NodeWorkflows: Send + Sync {
    /// Providers that can place nodes (`local`, …).
    fn providers(&self) -> Vec<String>;
    /// Starts (idempotently) the provision workflow; returns its id.
    async fn start_provision(&self, node: &Node) -> Result<String, String>;
    /// Starts (idempotently) the terminate workflow; returns its id.
    async fn start_terminate(&self, node: &Node) -> Result<String, String>;
    /// Operator: re-runs the compensation of a `stuck` workflow.
    async fn retry_workflow(&self, id: &str) -> Result<(), OperatorError>;
    /// Operator: gives up on a `stuck` workflow (leftovers are the operator's).
    async fn abandon_workflow(&self, id: &str, reason: &str) -> Result<(), OperatorError>;
    /// The last `lines` log lines of each process of a running node, by
    /// process name (asks the node's agent).
    async fn node_logs(&self, node: &Node, lines: u32) -> Result<serde_json::Value, OperatorError>;
}

/// Why an operator action on a workflow or node was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("{0} not found")]
    NotFound(String),
    /// The target is not in a state the action applies to.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<OperatorError> for ApiError {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::NotFound(_) => ApiError::NotFound("workflow"),
            OperatorError::Conflict(m) => ApiError::Conflict(m),
            OperatorError::Unavailable(m) => ApiError::Unavailable(m),
            OperatorError::Internal(m) => ApiError::Internal(m),
        }
    }
}

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNodeRequest {
    /// Chain profile, e.g. `ethereum-anvil`.
    #[schema(schema_with = crate::openapi::schemas::slug)]
    pub chain: String,
    /// Node type of the profile; default: the profile's default.
    pub node_type: Option<String>,
    /// Unique per organization; default: `{chain}-{random}`.
    #[schema(schema_with = crate::openapi::schemas::optional_slug)]
    pub name: Option<String>,
    /// Host provider; default `local`.
    pub provider: Option<String>,
    /// Provider region; default `local`.
    #[schema(schema_with = crate::openapi::schemas::optional_slug)]
    pub region: Option<String>,
}

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
    let node = visible_node(&state, &caller, id).await?;
    let lines = q.lines.unwrap_or(100);
    if !(1..=10_000).contains(&lines) {
        return Err(ApiError::invalid("lines", "must be between 1 and 10000"));
    }
    if node.host_id.is_none() {
        return Err(ApiError::Conflict(format!(
            "node is {} and runs on no host",
            node.state.as_str()
        )));
    }
    Ok(Json(workflows(&state)?.node_logs(&node, lines).await?))
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

pub(crate) fn workflows(state: &AppState) -> ApiResult<&dyn NodeWorkflows> {
    state
        .nodes
        .as_deref()
        .ok_or_else(|| ApiError::Unavailable("this process does not run the orchestrator".into()))
}

#[utoipa::path(post, path = "/api/v1/nodes", tag = "nodes", request_body = CreateNodeRequest,
    responses((status = 202, body = NodeAccepted, description = "Stored; the provision workflow runs"),
        (status = 409, description = "The organization has a node of this name"),
        (status = 503, description = "This process does not run the orchestrator")),
    security(("bearer" = ["operate"])))]
/// Requests a node. Provisioning runs as a durable workflow; poll the node.
pub async fn create_node(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateNodeRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Permission::Operate)?;
    let flows = workflows(&state)?;
    let mut errors = Vec::new();
    let chain = state.chains.get(&req.chain);
    if chain.is_none() {
        errors.push(FieldError::new(
            "chain",
            format!("unknown chain `{}`", req.chain),
        ));
    }
    let node_type = match (chain, &req.node_type) {
        (Some(c), Some(t)) if c.summary().node_types.iter().any(|n| &n.name == t) => {
            Some(t.clone())
        }
        (Some(_), Some(t)) => {
            errors.push(FieldError::new(
                "node_type",
                format!("chain `{}` has no node type `{t}`", req.chain),
            ));
            None
        }
        (Some(c), None) => Some(c.summary().default_node_type),
        (None, _) => None,
    };
    let provider = req.provider.clone().unwrap_or_else(|| "local".into());
    if !flows.providers().contains(&provider) {
        errors.push(FieldError::new(
            "provider",
            format!("no provider `{provider}` is configured"),
        ));
    } else if let Some(c) = chain {
        if !c.summary().providers.contains(&provider) {
            errors.push(FieldError::new(
                "provider",
                format!("chain `{}` does not run on `{provider}`", req.chain),
            ));
        }
    }
    let name = req.name.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            req.chain,
            &Uuid::new_v4().simple().to_string()[..6]
        )
    });
    if let Err(e) = validate::slug("name", &name) {
        errors.push(e);
    }
    let region = req.region.clone().unwrap_or_else(|| "local".into());
    if let Err(e) = validate::slug("region", &region) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = now();
    let node = Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: caller.org_id,
        name,
        chain: req.chain,
        node_type: node_type.unwrap_or_default(),
        provider,
        region,
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    state.store.create_node(&node).await?;
    let workflow_id = flows
        .start_provision(&node)
        .await
        .map_err(ApiError::Internal)?;
    tracing::info!(node_id = %node.id, chain = %node.chain, %workflow_id, "node requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(NodeAccepted {
            node: NodeView::from(&node),
            workflow_id,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = Page<NodeView>)), security(("bearer" = ["read"])))]
/// The organization's nodes.
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<NodeView>>> {
    caller.require(Permission::Read)?;
    let nodes = state.store.list_nodes(Some(caller.org_id)).await?;
    Ok(Json(Page {
        items: nodes.iter().map(NodeView::from).collect(),
    }))
}

async fn visible_node(state: &AppState, caller: &Caller, id: NodeId) -> ApiResult<Node> {
    caller.require(Permission::Read)?;
    state
        .store
        .get_node(Some(caller.org_id), id)
        .await?
        .ok_or(ApiError::NotFound("node"))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = NodeView)), security(("bearer" = ["read"])))]
pub async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeView>> {
    let node = visible_node(&state, &caller, id).await?;
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
    let node = visible_node(&state, &caller, id).await?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let events = state
        .store
        .list_node_events(node.id, q.after.unwrap_or(0), limit)
        .await?;
    Ok(Json(Page {
        items: events.iter().map(NodeEventView::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 202, body = NodeAccepted, description = "The terminate workflow runs"),
        (status = 503, description = "This process does not run the orchestrator")),
    security(("bearer" = ["read", "operate"])))]
/// Terminates a node: stop, wipe keys, delete the host. Idempotent.
pub async fn delete_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<impl IntoResponse> {
    let node = visible_node(&state, &caller, id).await?;
    caller.require(Permission::Operate)?;
    let flows = workflows(&state)?;
    let workflow_id = flows
        .start_terminate(&node)
        .await
        .map_err(ApiError::Internal)?;
    let node = state
        .store
        .get_node(Some(caller.org_id), id)
        .await?
        .unwrap_or(node);
    tracing::info!(node_id = %node.id, %workflow_id, "node termination requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(NodeAccepted {
            node: NodeView::from(&node),
            workflow_id,
        }),
    ))
}
