//! Managed nodes: create (202 + ProvisionNode), list, show, history,
//! delete (202 + TerminateNode).

use crate::auth::Caller;
use crate::clock::{now, rfc3339};
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hood_app::nodes::{CreateNode, NodeAccepted as Accepted};
use hood_domain::identity::Permission;
use hood_domain::label::Labels;
use hood_domain::node::{Node, NodeEvent};
use hood_domain::node_workflows::SnapshotSeed;
use hood_domain::scope::{self, Action, Scope, ScopeError};
use hood_domain::workload::WorkloadObservation;
use hood_domain::workload::{LogCursor, NodeLogs};
use hood_domain::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/nodes", get(list_nodes).post(create_node))
        .route("/api/v1/nodes/{node_id}", get(get_node).delete(delete_node))
        .route("/api/v1/nodes/{node_id}/events", get(node_events))
        .route(
            "/api/v1/nodes/{node_id}/labels",
            get(get_node_labels).put(set_node_labels),
        )
        .route(
            "/api/v1/nodes/{node_id}/reconfigure",
            post(reconfigure_node),
        )
        .route("/api/v1/nodes/{node_id}/logs", get(node_logs))
        .route("/api/v1/nodes/{node_id}/logs/follow", get(follow_node_logs))
        .route("/api/v1/nodes/{node_id}/sync", get(node_sync))
        .route(
            "/api/v1/nodes/{node_id}/status-page",
            get(get_status_page).put(set_status_page),
        )
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
    /// provisioning | syncing | healthy | degraded | down | migrating | maintenance | suspended | terminating | terminated | failed
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
    /// The operator's labels (`region=eu`), what rollouts and listings
    /// select by.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl NodeView {
    pub fn labelled(node: &Node, labels: Labels) -> Self {
        Self {
            labels,
            ..Self::from(node)
        }
    }
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
            labels: BTreeMap::new(),
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
    /// Start from a complete snapshot of another node of the organization,
    /// same chain (its data is restored before the first start).
    pub from_snapshot: Option<SnapshotSeedRequest>,
    /// Labels: keys of lowercase letters, digits, `-_./` (at most 63
    /// characters), values of letters, digits, `-_.`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A node's labels, replaced whole by `PUT`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeLabels {
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NodeListQuery {
    /// Only nodes whose labels match, e.g. `region=eu,tier!=canary`,
    /// `zone in (a,b)`, `drain`, `!drain`.
    pub selector: Option<String>,
}

/// A snapshot a new node starts from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSeedRequest {
    pub node_id: Uuid,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub snapshot: String,
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

/// One line of a node's process log, as a follow event's data.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeLogLine {
    pub process: String,
    pub line: String,
}

fn line_events(logs: &NodeLogs) -> Vec<axum::response::sse::Event> {
    logs.processes
        .iter()
        .flat_map(|(process, p)| {
            p.lines.iter().map(move |line| {
                let data = serde_json::to_string(&NodeLogLine {
                    process: process.clone(),
                    line: line.clone(),
                })
                .unwrap_or_default();
                crate::sse::event("line", &data)
            })
        })
        .collect()
}

fn cursors(logs: &NodeLogs) -> BTreeMap<String, LogCursor> {
    logs.processes
        .iter()
        .map(|(name, p)| (name.clone(), p.cursor))
        .collect()
}

/// The scope of one node (`nodes.{org}.nodes.{id}`), for
/// [`Caller::require_grant`] and [`Caller::may`].
pub(crate) fn node_scope(id: NodeId) -> impl FnOnce(&str) -> Result<Scope, ScopeError> {
    move |org| scope::resource("nodes", org, "nodes", Some(&id.to_string()))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/logs/follow", tag = "nodes", params(("node_id" = Uuid, Path), LogsQuery),
    responses((status = 200, content_type = "text/event-stream", body = NodeLogLine,
            description = "Server-sent events: the last `lines` of each process, then each new line as it is written (`event: line`, data `{process, line}`); `event: end` when the node stops running on a host; `event: error` when the agent did not answer a poll (it goes on)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The node runs on no host, or its agent could not read the logs"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No orchestrator in this process, or the node's agent did not answer")),
    security(("bearer" = ["read"])))]
/// Follows the node's process logs live (server-sent events).
pub async fn follow_node_logs(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    let org = caller.org_id;
    let service = state.nodes.clone();
    let first = service
        .follow_logs(org, id, q.lines.unwrap_or(100), BTreeMap::new())
        .await?;
    Ok(crate::sse::follow(
        line_events(&first),
        cursors(&first),
        move |after| {
            let service = service.clone();
            async move {
                let logs = service.follow_logs(org, id, 1, after).await?;
                Ok((line_events(&logs), cursors(&logs)))
            }
        },
    ))
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
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
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
    caller.require_grant(
        Permission::Operate,
        |org| scope::resource("nodes", org, "nodes", None),
        Action::Create,
    )?;
    let request = CreateNode {
        chain: req.chain,
        node_type: req.node_type,
        name: req.name,
        provider: req.provider,
        region: req.region,
        from_snapshot: req.from_snapshot.map(|s| SnapshotSeed {
            node_id: NodeId::from_uuid(s.node_id),
            snapshot: s.snapshot,
        }),
        labels: req.labels.clone(),
    };
    let accepted = state.nodes.create(caller.org_id, request).await?;
    let mut view = NodeAccepted::from(&accepted);
    view.node.labels = req.labels;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes", params(NodeListQuery),
    responses((status = 200, body = Page<NodeView>),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The selector does not parse")),
    security(("bearer" = ["read"])))]
/// The organization's nodes, with their labels; `selector` filters by them.
pub async fn list_nodes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<NodeListQuery>,
) -> ApiResult<Json<Page<NodeView>>> {
    if caller.service_account.is_none() {
        caller.require(Permission::Read)?;
    }
    let nodes = state
        .nodes
        .list_labelled(caller.org_id, q.selector.as_deref())
        .await?;
    Ok(Json(Page {
        // A service account sees the nodes it may read.
        items: nodes
            .into_iter()
            .filter(|(n, _)| caller.may(Permission::Read, node_scope(n.id), Action::Read))
            .map(|(n, l)| NodeView::labelled(&n, l))
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = NodeView)), security(("bearer" = ["read"])))]
pub async fn get_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeView>> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    let node = state.nodes.get(caller.org_id, id).await?;
    let labels = state.nodes.labels(caller.org_id, id).await?;
    Ok(Json(NodeView::labelled(&node, labels)))
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/labels", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = NodeLabels)), security(("bearer" = ["read"])))]
/// The node's labels.
pub async fn get_node_labels(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeLabels>> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    let labels = state.nodes.labels(caller.org_id, id).await?;
    Ok(Json(NodeLabels { labels }))
}

#[utoipa::path(put, path = "/api/v1/nodes/{node_id}/labels", tag = "nodes", params(("node_id" = Uuid, Path)),
    request_body = NodeLabels,
    responses((status = 200, body = NodeLabels),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A key or value is not a valid label")),
    security(("bearer" = ["operate"])))]
/// Replaces the node's labels (all of them; send the whole set). The change
/// is recorded in the node's history.
pub async fn set_node_labels(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Json(req): Json<NodeLabels>,
) -> ApiResult<Json<NodeLabels>> {
    caller.require_grant(Permission::Operate, node_scope(id), Action::Update)?;
    let labels = state
        .nodes
        .set_labels(
            caller.org_id,
            id,
            req.labels,
            &format!("user {}", caller.user_id),
        )
        .await?;
    Ok(Json(NodeLabels { labels }))
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
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
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
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    // Existence first: another organization's node is 404, not 403.
    state.nodes.get(caller.org_id, id).await?;
    caller.require_grant(Permission::Operate, node_scope(id), Action::Delete)?;
    let accepted = state.nodes.terminate(caller.org_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(NodeAccepted::from(&accepted))))
}

#[utoipa::path(post, path = "/api/v1/nodes/{node_id}/reconfigure", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 202, body = NodeAccepted, description = "The reconfigure workflow runs"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The node is not serving")),
    security(("bearer" = ["read", "operate"])))]
/// Starts the node's processes again from its chain's current recipe
/// (arguments, environment, files), in `maintenance` meanwhile.
pub async fn reconfigure_node(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    state.nodes.get(caller.org_id, id).await?;
    caller.require_grant(Permission::Operate, node_scope(id), Action::Update)?;
    let accepted = state.nodes.reconfigure(caller.org_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(NodeAccepted::from(&accepted))))
}

/// Whether a node is shown on the public status page (`/status`, and its
/// badge at `/status/badges/{node_id}.svg`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPageVisibility {
    pub public: bool,
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/status-page", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = StatusPageVisibility)), security(("bearer" = ["read"])))]
/// Whether the node is on the public status page.
pub async fn get_status_page(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<StatusPageVisibility>> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    state.nodes.get(caller.org_id, id).await?;
    let public = state.store.is_node_public(id).await?;
    Ok(Json(StatusPageVisibility { public }))
}

#[utoipa::path(put, path = "/api/v1/nodes/{node_id}/status-page", tag = "nodes", params(("node_id" = Uuid, Path)),
    request_body = StatusPageVisibility,
    responses((status = 200, body = StatusPageVisibility)), security(("bearer" = ["read", "operate"])))]
/// Shows the node on the public status page (its state, 90-day uptime and
/// badge, readable without a login), or hides it again.
pub async fn set_status_page(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
    Json(req): Json<StatusPageVisibility>,
) -> ApiResult<Json<StatusPageVisibility>> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    // Existence first: another organization's node is 404, not 403.
    state.nodes.get(caller.org_id, id).await?;
    caller.require_grant(Permission::Operate, node_scope(id), Action::Update)?;
    state
        .store
        .set_node_public(caller.org_id, id, req.public, now())
        .await?;
    Ok(Json(StatusPageVisibility { public: req.public }))
}

/// The node's sync as its agent last reported it (each heartbeat), fresher
/// than the node's `head_height`, which is recorded with state changes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeSyncView {
    /// Local head height (`None`: no report yet, or the probe failed).
    pub head_height: Option<i64>,
    /// The node says it is catching up.
    pub syncing: Option<bool>,
    /// When the sync probe ran (RFC 3339).
    pub observed_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/nodes/{node_id}/sync", tag = "nodes", params(("node_id" = Uuid, Path)),
    responses((status = 200, body = NodeSyncView)), security(("bearer" = ["read"])))]
/// The node's head and sync state from its agent's latest heartbeat.
pub async fn node_sync(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<NodeId>,
) -> ApiResult<Json<NodeSyncView>> {
    caller.require_grant(Permission::Read, node_scope(id), Action::Read)?;
    state.nodes.get(caller.org_id, id).await?;
    let report = state.store.node_report(id).await?;
    let sample = report
        .and_then(|r| serde_json::from_value::<WorkloadObservation>(r.observation).ok())
        .and_then(|o| o.sync)
        .filter(|s| s.error.is_none());
    Ok(Json(match sample {
        Some(s) => NodeSyncView {
            head_height: s.head,
            syncing: s.syncing,
            observed_at: Some(rfc3339(hood_domain::Timestamp::from_millis(s.at_ms))),
        },
        None => NodeSyncView {
            head_height: None,
            syncing: None,
            observed_at: None,
        },
    }))
}
