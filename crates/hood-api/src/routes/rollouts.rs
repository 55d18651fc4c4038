//! Rollouts: a chain's nodes moved to another version, or onto their
//! chain's current recipe, in health-gated batches (platform
//! administrators: a rollout spans organizations).

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use hood_app::{CreateRollout, RolloutDetail};
use hood_domain::identity::Permission;
use hood_domain::lifecycle::rollout::RolloutNodeState;
use hood_domain::rollout::{BatchSize, RolloutKind};
use hood_domain::{NodeId, RolloutId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rollouts", get(list_rollouts).post(create_rollout))
        .route("/api/v1/rollouts/{rollout_id}", get(get_rollout))
        .route("/api/v1/rollouts/{rollout_id}/start", post(start_rollout))
        .route("/api/v1/rollouts/{rollout_id}/pause", post(pause_rollout))
        .route("/api/v1/rollouts/{rollout_id}/resume", post(resume_rollout))
        .route("/api/v1/rollouts/{rollout_id}/abort", post(abort_rollout))
        .route(
            "/api/v1/rollouts/{rollout_id}/approve",
            post(approve_rollout),
        )
}

/// A rollout: by an upgrade manifest (`upgrade_id`), or to an explicit
/// `version` of one of the chain's binaries.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRolloutRequest {
    /// Chain profile whose nodes are upgraded.
    pub chain: String,
    /// `upgrade` (default: another version) or `reconfigure` (the chain's
    /// current recipe applied to each target; give no version).
    #[serde(default)]
    pub kind: RolloutKindView,
    /// `chains/upgrades/{chain}/{upgrade_id}.yaml`.
    #[serde(default)]
    pub upgrade_id: Option<String>,
    /// Without a manifest: the binary (default: the chain's first)…
    #[serde(default)]
    pub binary: Option<String>,
    /// …and the version to roll out (its artifact must be in the store).
    #[serde(default)]
    pub version: Option<String>,
    /// Without a manifest: data the new version writes may not open with
    /// the old one (a revert restores the snapshot taken before it).
    #[serde(default)]
    pub forward_only: bool,
    /// Only nodes of this type.
    #[serde(default)]
    pub node_type: Option<String>,
    /// Only these nodes.
    #[serde(default)]
    pub nodes: Vec<Uuid>,
    /// Only nodes whose labels match, e.g. `region=eu,tier!=canary`.
    #[serde(default)]
    pub selector: Option<String>,
    /// Nodes in the first batch (0: no canary).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub canary: Option<u32>,
    /// Nodes per batch after the canary…
    #[serde(default)]
    #[schema(minimum = 1)]
    pub batch_size: Option<u32>,
    /// …or a share of the targets, 1 to 100.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub batch_percent: Option<u8>,
    /// Nodes out of service at once (caps every batch).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_unavailable: Option<u32>,
    /// Failed nodes tolerated; one more and every upgraded node reverts.
    #[serde(default)]
    pub failure_budget: Option<u32>,
    /// Wait for `approve` before each batch after the first.
    #[serde(default)]
    pub require_approval: Option<bool>,
    /// Seconds an upgraded node must stay healthy (default 30).
    #[serde(default)]
    pub soak_s: Option<u32>,
    /// Seconds a new version has to serve its old head (default 120).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub verify_timeout_s: Option<u32>,
    /// Start at once (else `POST …/start`).
    #[serde(default)]
    pub start: bool,
}

/// What a rollout changes on each node.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKindView {
    #[default]
    Upgrade,
    Reconfigure,
}

impl From<RolloutKindView> for RolloutKind {
    fn from(k: RolloutKindView) -> Self {
        match k {
            RolloutKindView::Upgrade => RolloutKind::Upgrade,
            RolloutKindView::Reconfigure => RolloutKind::Reconfigure,
        }
    }
}

impl From<RolloutKind> for RolloutKindView {
    fn from(k: RolloutKind) -> Self {
        match k {
            RolloutKind::Upgrade => RolloutKindView::Upgrade,
            RolloutKind::Reconfigure => RolloutKindView::Reconfigure,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutPolicyView {
    pub canary: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_percent: Option<u8>,
    pub max_unavailable: u32,
    pub failure_budget: u32,
    pub require_approval: bool,
}

/// Nodes by where they stand.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RolloutProgressView {
    pub total: u32,
    pub waiting: u32,
    pub upgrading: u32,
    pub soaking: u32,
    pub upgraded: u32,
    pub failed: u32,
    pub reverting: u32,
    pub reverted: u32,
    pub skipped: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutNodeView {
    pub node_id: Uuid,
    pub name: Option<String>,
    /// Batch index (0 is the canary when there is one).
    pub batch: u32,
    /// `waiting`, `upgrading`, `soaking`, `upgraded`, `failed`,
    /// `reverting`, `reverted` or `skipped`.
    pub state: String,
    pub from_version: String,
    /// The version the node reports running now.
    pub version: Option<String>,
    pub node_state: Option<String>,
    pub head_height: Option<i64>,
    pub soak_until: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    pub id: Uuid,
    pub kind: RolloutKindView,
    pub upgrade_id: Option<String>,
    pub chain: String,
    pub node_type: Option<String>,
    /// The label selector its targets were chosen by.
    pub selector: Option<String>,
    pub binary: String,
    pub from_version: String,
    pub to_version: String,
    pub forward_only: bool,
    pub policy: RolloutPolicyView,
    pub soak_s: u32,
    pub verify_timeout_s: u32,
    /// `pending`, `running`, `paused`, `awaiting_approval`, `completed`,
    /// `reverting`, `reverted`, `aborted` or `failed`.
    pub state: String,
    /// Batches an operator approved.
    pub approved_through: u32,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub progress: RolloutProgressView,
    /// Per node, in batch order (`GET` of one rollout only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<RolloutNodeView>>,
}

fn summary(
    r: &hood_domain::rollout::Rollout,
    nodes: &[hood_domain::rollout::RolloutNode],
) -> RolloutView {
    let mut progress = RolloutProgressView::default();
    for n in nodes {
        progress.total += 1;
        let slot = match n.state {
            RolloutNodeState::Waiting => &mut progress.waiting,
            RolloutNodeState::Upgrading => &mut progress.upgrading,
            RolloutNodeState::Soaking => &mut progress.soaking,
            RolloutNodeState::Upgraded => &mut progress.upgraded,
            RolloutNodeState::Failed => &mut progress.failed,
            RolloutNodeState::Reverting => &mut progress.reverting,
            RolloutNodeState::Reverted => &mut progress.reverted,
            RolloutNodeState::Skipped => &mut progress.skipped,
        };
        *slot += 1;
    }
    let (batch_size, batch_percent) = match r.policy.batch {
        BatchSize::Count(n) => (Some(n), None),
        BatchSize::Percent(p) => (None, Some(p)),
    };
    RolloutView {
        id: *r.id.as_uuid(),
        kind: r.kind.into(),
        upgrade_id: r.upgrade_id.clone(),
        chain: r.chain.clone(),
        node_type: r.node_type.clone(),
        selector: r.selector.clone(),
        binary: r.target.binary.clone(),
        from_version: r.from_version.clone(),
        to_version: r.target.version.clone(),
        forward_only: r.target.forward_only,
        policy: RolloutPolicyView {
            canary: r.policy.canary,
            batch_size,
            batch_percent,
            max_unavailable: r.policy.max_unavailable,
            failure_budget: r.policy.failure_budget,
            require_approval: r.policy.require_approval,
        },
        soak_s: r.soak_s,
        verify_timeout_s: r.verify_timeout_s,
        state: r.state.as_str().into(),
        approved_through: r.approved_through,
        error: r.error.clone(),
        created_by: r.created_by.clone(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        progress,
        nodes: None,
    }
}

async fn detail_view(state: &AppState, d: &RolloutDetail) -> ApiResult<RolloutView> {
    let mut view = summary(&d.rollout, &d.nodes);
    let mut nodes = Vec::with_capacity(d.nodes.len());
    for n in &d.nodes {
        let node = state.store.get_node(None, n.node_id).await?;
        nodes.push(RolloutNodeView {
            node_id: *n.node_id.as_uuid(),
            name: node.as_ref().map(|x| x.name.clone()),
            batch: n.batch,
            state: n.state.as_str().into(),
            from_version: n.from_version.clone(),
            version: node.as_ref().and_then(|x| x.binary_version.clone()),
            node_state: node.as_ref().map(|x| x.state.as_str().into()),
            head_height: node.as_ref().and_then(|x| x.head_height),
            soak_until: n.soak_until.map(rfc3339),
            error: n.error.clone(),
        });
    }
    view.nodes = Some(nodes);
    Ok(view)
}

fn require(caller: &Caller) -> ApiResult<()> {
    caller.require(Permission::Operate)?;
    caller.require_platform_admin()
}

#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", request_body = CreateRolloutRequest,
    responses((status = 201, body = RolloutView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The target's artifact is not in the store, or a node is in another live rollout")),
    security(("bearer" = ["operate", "platform_admin"])))]
/// Resolves the targets and plans the batches of a rollout (platform
/// admins); `start: true` starts it too.
pub async fn create_rollout(
    State(state): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateRolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutView>)> {
    require(&caller)?;
    if req.chain.trim().is_empty() {
        return Err(ApiError::invalid("chain", "must name a chain"));
    }
    let create = CreateRollout {
        chain: req.chain,
        kind: req.kind.into(),
        upgrade_id: req.upgrade_id,
        binary: req.binary,
        version: req.version,
        node_type: req.node_type,
        nodes: req.nodes.into_iter().map(NodeId::from_uuid).collect(),
        selector: req.selector,
        canary: req.canary,
        batch_size: req.batch_size,
        batch_percent: req.batch_percent,
        max_unavailable: req.max_unavailable,
        failure_budget: req.failure_budget,
        require_approval: req.require_approval,
        soak_s: req.soak_s,
        verify_timeout_s: req.verify_timeout_s,
        forward_only: req.forward_only,
        start: req.start,
    };
    let detail = state
        .rollouts
        .create(create, &format!("user {}", caller.user_id))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(detail_view(&state, &detail).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolloutQuery {
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", params(RolloutQuery),
    responses((status = 200, body = Page<RolloutView>)), security(("bearer" = ["operate", "platform_admin"])))]
/// Rollouts, newest first.
pub async fn list_rollouts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<RolloutQuery>,
) -> ApiResult<Json<Page<RolloutView>>> {
    require(&caller)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 500"));
    }
    let mut items = Vec::new();
    for r in state.rollouts.list(limit).await? {
        let d = state.rollouts.get(r.id).await?;
        items.push(summary(&d.rollout, &d.nodes));
    }
    Ok(Json(Page { items }))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{rollout_id}", tag = "rollouts", params(("rollout_id" = Uuid, Path)),
    responses((status = 200, body = RolloutView)), security(("bearer" = ["operate", "platform_admin"])))]
/// One rollout with every node's progress.
pub async fn get_rollout(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<RolloutId>,
) -> ApiResult<Json<RolloutView>> {
    require(&caller)?;
    let d = state.rollouts.get(id).await?;
    Ok(Json(detail_view(&state, &d).await?))
}

macro_rules! action {
    ($name:ident, $verb:literal, $method:ident, $doc:literal) => {
        #[utoipa::path(post, path = concat!("/api/v1/rollouts/{rollout_id}/", $verb), tag = "rollouts",
            params(("rollout_id" = Uuid, Path)),
            responses((status = 200, body = RolloutView),
                (status = 409, body = Problem, content_type = "application/problem+json", description = "Not possible in the rollout's state")),
            security(("bearer" = ["operate", "platform_admin"])))]
        #[doc = $doc]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            PathId(id): PathId<RolloutId>,
        ) -> ApiResult<Json<RolloutView>> {
            require(&caller)?;
            let d = state.rollouts.$method(id).await?;
            tracing::info!(rollout_id = %id, by = %caller.user_id, action = $verb, "rollout changed");
            Ok(Json(detail_view(&state, &d).await?))
        }
    };
}

action!(
    start_rollout,
    "start",
    start,
    "Starts the rollout (idempotent)."
);
action!(
    pause_rollout,
    "pause",
    pause,
    "Starts no new batch until resumed; the batch in flight finishes."
);
action!(
    resume_rollout,
    "resume",
    resume,
    "Lets a paused rollout go on."
);
action!(
    abort_rollout,
    "abort",
    abort,
    "Stops before the next batch; upgraded nodes stay upgraded."
);
action!(
    approve_rollout,
    "approve",
    approve,
    "Lets the next approval-gated batch start."
);
