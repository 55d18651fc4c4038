//! Hosts and workflows: what the control plane runs on and what it is doing.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Path, PathId, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use hood_domain::host_metrics::{series, HostMetricPoint};
use hood_domain::identity::Permission;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::machine::StateMachine;
use hood_domain::{HostId, NodeId};
use hood_store::fleet::{Host, HostFilter};
use hood_store::workflow::{WorkflowFilter, WorkflowRecord};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hosts", get(list_hosts))
        .route("/api/v1/hosts/{host_id}", get(get_host))
        .route("/api/v1/hosts/{host_id}/metrics", get(host_metrics))
        .route("/api/v1/workflows", get(list_workflows))
        .route("/api/v1/workflows/{workflow_id}", get(get_workflow))
        .route(
            "/api/v1/workflows/{workflow_id}/retry",
            post(retry_workflow),
        )
        .route(
            "/api/v1/workflows/{workflow_id}/abandon",
            post(abandon_workflow),
        )
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostView {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub provider: String,
    pub region: String,
    /// requested | provisioning | enrolling | ready | draining | unreachable | quarantined | deleting | deleted | failed
    pub state: String,
    pub address: Option<String>,
    pub hostname: Option<String>,
    pub agent_version: Option<String>,
    /// Whether an agent session is open.
    pub connected: bool,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    /// On the single-host view: its capacity, reservations and what is
    /// free, when a capacity is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::routes::allocations::HostCapacityView>,
}

impl From<&Host> for HostView {
    fn from(h: &Host) -> Self {
        Self {
            id: h.id.0,
            org_id: h.org_id.map(|o| o.0),
            provider: h.provider.clone(),
            region: h.region.clone(),
            state: h.state.as_str().into(),
            address: h.address.clone(),
            hostname: h.hostname.clone(),
            agent_version: h.agent_version.clone(),
            connected: h.connected_at.is_some(),
            last_seen_at: h.last_seen_at.map(rfc3339),
            created_at: rfc3339(h.created_at),
            capacity: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    pub index: i64,
    pub name: String,
    /// pending | running | succeeded | failed | compensating | compensated | undo_failed
    pub state: String,
    pub attempt: i64,
    pub error: Option<String>,
    pub undo_error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkflowView {
    pub id: String,
    pub name: String,
    pub version: i64,
    /// pending | running | waiting | paused | compensating | completed | failed | stuck | abandoned
    pub state: String,
    pub error: Option<String>,
    pub waiting_for: Option<String>,
    pub parent_id: Option<String>,
    pub attempts: i64,
    pub input: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    /// Present on the single-workflow view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

impl From<&WorkflowRecord> for WorkflowView {
    fn from(w: &WorkflowRecord) -> Self {
        Self {
            id: w.id.clone(),
            name: w.name.clone(),
            version: w.version,
            state: w.state.as_str().into(),
            error: w.error.clone(),
            waiting_for: w.waiting_for.clone(),
            parent_id: w.parent_id.clone(),
            attempts: w.attempts,
            input: w.input.clone(),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            steps: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQuery {
    /// Only workflows in this state.
    #[param(schema_with = crate::schemas::workflow_state)]
    pub state: Option<String>,
    /// Only workflows of this name (`provision-node`, …).
    pub name: Option<String>,
    /// At most this many, newest first (default 200).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbandonRequest {
    /// Why the operator gives up (kept in the journal).
    #[schema(schema_with = crate::schemas::reason)]
    pub reason: String,
}

#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts",
    responses((status = 200, body = Page<HostView>)), security(("bearer" = ["read"])))]
/// Hosts of the caller's organization (all hosts for platform admins).
pub async fn list_hosts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<HostView>>> {
    caller.require(Permission::Read)?;
    let filter = HostFilter {
        org_id: (!caller.platform_admin).then_some(caller.org_id),
        ..Default::default()
    };
    let hosts = state.store.list_hosts(&filter).await?;
    Ok(Json(Page {
        items: hosts.iter().map(HostView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host_id}", tag = "hosts", params(("host_id" = Uuid, Path)),
    responses((status = 200, body = HostView)), security(("bearer" = ["read"])))]
pub async fn get_host(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<HostId>,
) -> ApiResult<Json<HostView>> {
    caller.require(Permission::Read)?;
    let host = state
        .store
        .get_host(id)
        .await?
        .filter(|h| caller.platform_admin || h.org_id == Some(caller.org_id))
        .ok_or(ApiError::NotFound("host"))?;
    let mut view = HostView::from(&host);
    view.capacity = state
        .allocations
        .usage(id)
        .await?
        .as_ref()
        .map(crate::routes::allocations::HostCapacityView::from);
    Ok(Json(view))
}

/// The window and size of a host's metrics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsQuery {
    /// Minutes back from now (default 60, at most 10080: a week).
    #[param(minimum = 1, maximum = 10080)]
    pub minutes: Option<i64>,
    /// At most this many points, the newest (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// One point of a host's series: what its agent's heartbeat reported,
/// with rates against the heartbeat before.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostMetricPointView {
    pub at: String,
    /// Busy share of all CPUs since the previous point, 0–100; absent for
    /// the first point of a window and after a reboot.
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    /// The filesystem of the agent's data directory.
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
    /// Every interface but loopback, bytes per second.
    pub net_rx_bytes_per_sec: Option<u64>,
    pub net_tx_bytes_per_sec: Option<u64>,
}

/// A host's recent series, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostMetricsView {
    pub host_id: Uuid,
    pub minutes: i64,
    pub points: Vec<HostMetricPointView>,
}

impl From<&HostMetricPoint> for HostMetricPointView {
    fn from(p: &HostMetricPoint) -> Self {
        Self {
            at: rfc3339(p.at),
            cpu_percent: p.cpu_percent,
            memory_used_bytes: p.memory_used_bytes,
            memory_total_bytes: p.memory_total_bytes,
            disk_used_bytes: p.disk_used_bytes,
            disk_total_bytes: p.disk_total_bytes,
            net_rx_bytes_per_sec: p.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: p.net_tx_bytes_per_sec,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/hosts/{host_id}/metrics", tag = "hosts",
    params(("host_id" = Uuid, Path), HostMetricsQuery),
    responses((status = 200, body = HostMetricsView),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "`minutes` or `limit` out of range"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such host visible to the caller")),
    security(("bearer" = ["read"])))]
/// The cluster monitor: a host's CPU, memory, disk and network over the
/// last `minutes`, one point per heartbeat its agent sent.
pub async fn host_metrics(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<HostId>,
    Query(q): Query<HostMetricsQuery>,
) -> ApiResult<Json<HostMetricsView>> {
    caller.require(Permission::Read)?;
    let minutes = q.minutes.unwrap_or(60);
    if !(1..=10_080).contains(&minutes) {
        return Err(ApiError::invalid("minutes", "must be between 1 and 10080"));
    }
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    state
        .store
        .get_host(id)
        .await?
        .filter(|h| caller.platform_admin || h.org_id == Some(caller.org_id))
        .ok_or(ApiError::NotFound("host"))?;
    let since = crate::clock::now().plus_millis(-minutes * 60_000);
    let samples = state.store.host_samples(id, since, limit).await?;
    Ok(Json(HostMetricsView {
        host_id: id.0,
        minutes,
        points: series(&samples)
            .iter()
            .map(HostMetricPointView::from)
            .collect(),
    }))
}

/// Node workflows name their node in their input; a tenant sees the
/// workflows of its own nodes, platform admins see all.
async fn visible(
    state: &AppState,
    caller: &Caller,
    workflows: Vec<WorkflowRecord>,
) -> ApiResult<Vec<WorkflowRecord>> {
    if caller.platform_admin {
        return Ok(workflows);
    }
    let mine: HashSet<NodeId> = state
        .store
        .list_nodes(Some(caller.org_id))
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    Ok(workflows
        .into_iter()
        .filter(|w| {
            w.input
                .get("node_id")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<NodeId>().ok())
                .is_some_and(|id| mine.contains(&id))
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(WorkflowQuery),
    responses((status = 200, body = Page<WorkflowView>)), security(("bearer" = ["read"])))]
/// Durable workflows, newest first.
pub async fn list_workflows(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<WorkflowQuery>,
) -> ApiResult<Json<Page<WorkflowView>>> {
    caller.require(Permission::Read)?;
    let wf_state = q
        .state
        .as_deref()
        .map(|s| {
            WorkflowState::parse(s)
                .ok_or_else(|| ApiError::invalid("state", format!("unknown workflow state `{s}`")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let all = state
        .store
        .list_workflows(&WorkflowFilter {
            state: wf_state,
            name: q.name,
            parent_id: None,
            limit: Some(limit),
        })
        .await?;
    let shown = visible(&state, &caller, all).await?;
    Ok(Json(Page {
        items: shown.iter().map(WorkflowView::from).collect(),
    }))
}

async fn visible_workflow(state: &AppState, caller: &Caller, id: &str) -> ApiResult<WorkflowView> {
    caller.require(Permission::Read)?;
    let detail = state
        .store
        .get_workflow_detail(id)
        .await?
        .ok_or(ApiError::NotFound("workflow"))?;
    let shown = visible(state, caller, vec![detail.workflow.clone()]).await?;
    let Some(w) = shown.first() else {
        return Err(ApiError::NotFound("workflow"));
    };
    let mut view = WorkflowView::from(w);
    view.steps = Some(
        detail
            .steps
            .iter()
            .map(|s| StepView {
                index: s.step_index,
                name: s.step_name.clone(),
                state: s.state.as_str().into(),
                attempt: s.attempt,
                error: s.error.clone(),
                undo_error: s.undo_error.clone(),
                started_at: s.started_at.map(rfc3339),
                finished_at: s.finished_at.map(rfc3339),
            })
            .collect(),
    );
    Ok(view)
}

#[utoipa::path(get, path = "/api/v1/workflows/{workflow_id}", tag = "workflows", params(("workflow_id" = String, Path)),
    responses((status = 200, body = WorkflowView)), security(("bearer" = ["read"])))]
/// One workflow with its step journal.
pub async fn get_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkflowView>> {
    Ok(Json(visible_workflow(&state, &caller, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/workflows/{workflow_id}/retry", tag = "workflows", params(("workflow_id" = String, Path)),
    responses((status = 200, body = WorkflowView),
        (status = 409, description = "The workflow is not `stuck`"),
        (status = 503, description = "This process does not run the orchestrator")),
    security(("bearer" = ["read", "platform_admin"])))]
/// Re-runs the compensation of a `stuck` workflow (platform admins).
pub async fn retry_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkflowView>> {
    visible_workflow(&state, &caller, &id).await?;
    caller.require_platform_admin()?;
    state.nodes.operations()?.retry_workflow(&id).await?;
    tracing::info!(workflow_id = %id, by = %caller.user_id, "stuck workflow retried");
    Ok(Json(visible_workflow(&state, &caller, &id).await?))
}

#[utoipa::path(post, path = "/api/v1/workflows/{workflow_id}/abandon", tag = "workflows", params(("workflow_id" = String, Path)),
    request_body = AbandonRequest,
    responses((status = 200, body = WorkflowView),
        (status = 409, description = "The workflow is not `stuck`"),
        (status = 503, description = "This process does not run the orchestrator")),
    security(("bearer" = ["read", "platform_admin"])))]
/// Gives up on a `stuck` workflow (platform admins).
pub async fn abandon_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<AbandonRequest>,
) -> ApiResult<Json<WorkflowView>> {
    visible_workflow(&state, &caller, &id).await?;
    caller.require_platform_admin()?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "must say why the workflow is abandoned",
        ));
    }
    state
        .nodes
        .operations()?
        .abandon_workflow(&id, req.reason.trim())
        .await?;
    tracing::info!(workflow_id = %id, by = %caller.user_id, "stuck workflow abandoned");
    Ok(Json(visible_workflow(&state, &caller, &id).await?))
}
