//! Containers (Edd Cloud's compute): a named image run as an allocation of
//! a SKU, stopped and started at will. `{container}` in a path is the
//! container's id or its name.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, Path, Query};
use crate::problem::{ApiResult, Problem};
use crate::routes::allocations::audit_context;
use crate::routes::allocations::{AllocationLogsQuery, AllocationLogsView};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use hood_app::{ContainerStatus, CreateContainer};
use hood_domain::container::ContainerSpec;
use hood_domain::identity::Permission;
use hood_domain::scope::{self, Action, Scope, ScopeError};
use hood_domain::workload::ContainerRestart;
use hood_domain::ContainerId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/containers",
            get(list_containers).post(create_container),
        )
        .route(
            "/api/v1/containers/{container}",
            get(get_container).delete(delete_container),
        )
        .route(
            "/api/v1/containers/{container}/start",
            post(start_container),
        )
        .route("/api/v1/containers/{container}/stop", post(stop_container))
        .route(
            "/api/v1/containers/{container}/restart",
            post(restart_container),
        )
        .route("/api/v1/containers/{container}/logs", get(container_logs))
}

/// The scope of one container (`compute.{org}.containers.{id}`).
fn container_scope(id: ContainerId) -> impl FnOnce(&str) -> Result<Scope, ScopeError> {
    move |org| scope::resource("compute", org, "containers", Some(&id.to_string()))
}

/// A container.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContainerView {
    pub id: Uuid,
    pub name: String,
    pub sku: String,
    pub image: String,
    pub command: Vec<String>,
    /// The names of its environment variables (values are not echoed).
    pub env: Vec<String>,
    /// The TCP ports it serves.
    pub ports: Vec<u16>,
    /// How many SSH public keys may log in.
    pub ssh_keys: usize,
    /// never | on-failure | unless-stopped
    pub restart: String,
    /// running | stopped: what was asked.
    pub desired: String,
    /// starting | running | stopping | stopped | exited | failed
    pub status: String,
    /// Why it is not running although asked to (no room yet, its image
    /// failed to start, its command ended).
    pub error: Option<String>,
    /// The allocation it runs as now (or ran as last).
    pub allocation_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    /// Bumped by every start and stop.
    pub generation: u32,
    pub created_at: String,
    pub updated_at: String,
}

fn restart_name(r: ContainerRestart) -> &'static str {
    match r {
        ContainerRestart::Never => "never",
        ContainerRestart::OnFailure => "on-failure",
        ContainerRestart::UnlessStopped => "unless-stopped",
    }
}

impl From<&ContainerStatus> for ContainerView {
    fn from(s: &ContainerStatus) -> Self {
        let c = &s.container;
        Self {
            id: *c.id.as_uuid(),
            name: c.name.clone(),
            sku: c.sku.clone(),
            image: c.spec.image.clone(),
            command: c.spec.command.clone(),
            env: c.spec.env.keys().cloned().collect(),
            ports: c.spec.ports.clone(),
            ssh_keys: c.spec.ssh_public_keys.len(),
            restart: restart_name(c.spec.restart).into(),
            desired: c.desired.as_str().into(),
            status: s.status().into(),
            error: c
                .error
                .clone()
                .or_else(|| s.allocation.as_ref().and_then(|a| a.error.clone())),
            allocation_id: s.allocation.as_ref().map(|a| a.id.0),
            host_id: s.allocation.as_ref().map(|a| a.host_id.0),
            generation: c.generation,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContainerRequest {
    /// Unique in the organization: 1 to 63 lowercase letters, digits and
    /// `-`, starting with a letter.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z]([a-z0-9-]*[a-z0-9])?$"
    )]
    pub name: String,
    /// A SKU from `GET /api/v1/skus`.
    #[schema(min_length = 1, max_length = 64)]
    pub sku: String,
    /// An image reference in the hosts' image store.
    #[schema(min_length = 1, max_length = 512)]
    pub image: String,
    /// The command to run (argv); empty runs the image's own.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// TCP ports it serves (at most 16, distinct).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// OpenSSH public keys allowed in.
    #[serde(default)]
    pub ssh_public_keys: Vec<String>,
    /// never (default) | on-failure | unless-stopped
    #[serde(default)]
    pub restart: Option<RestartView>,
}

/// When the host's engine restarts the container's command once it ends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartView {
    Never,
    OnFailure,
    UnlessStopped,
}

const NOT_FOUND: &str = "No container of that id or name in the organization";

#[utoipa::path(post, path = "/api/v1/containers", tag = "containers",
    request_body = CreateContainerRequest,
    responses(
        (status = 201, body = ContainerView, description = "Stored and placed: its allocation is reserved and starting"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A field is invalid (each is named)"),
        (status = 402, body = Problem, content_type = "application/problem+json", description = "The organization's prepaid credits cannot pay its first minute"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "The caller may not create containers (`compute.{org}.containers: [create]`)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The name is taken, or no host has room for the SKU (nothing is kept)")),
    security(("bearer" = ["read", "operate"])))]
/// Creates a container and starts it as an allocation of its SKU.
pub async fn create_container(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateContainerRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(
        Permission::Operate,
        |org| scope::resource("compute", org, "containers", None),
        Action::Create,
    )?;
    let created = state
        .containers()
        .create(
            caller.org_id,
            CreateContainer {
                name: body.name,
                sku: body.sku,
                spec: ContainerSpec {
                    image: body.image,
                    command: body.command,
                    env: body.env,
                    ports: body.ports,
                    ssh_public_keys: body.ssh_public_keys,
                    restart: match body.restart {
                        None | Some(RestartView::Never) => ContainerRestart::Never,
                        Some(RestartView::OnFailure) => ContainerRestart::OnFailure,
                        Some(RestartView::UnlessStopped) => ContainerRestart::UnlessStopped,
                    },
                },
            },
            &audit_context(&caller, &headers),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(ContainerView::from(&created))))
}

#[utoipa::path(get, path = "/api/v1/containers", tag = "containers",
    responses((status = 200, body = Page<ContainerView>, description = "Newest first")),
    security(("bearer" = ["read"])))]
/// The organization's containers.
pub async fn list_containers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ContainerView>>> {
    if caller.service_account.is_none() {
        caller.require(Permission::Read)?;
    }
    let items = state.containers().list(caller.org_id).await?;
    Ok(Json(Page {
        // A service account sees the containers it may read.
        items: items
            .iter()
            .filter(|c| {
                caller.may(
                    Permission::Read,
                    container_scope(c.container.id),
                    Action::Read,
                )
            })
            .map(ContainerView::from)
            .collect(),
    }))
}

/// What start, stop and restart do.
#[derive(Clone, Copy)]
enum Change {
    Start,
    Stop,
    Restart,
}

/// Applies `change` to the container the path names, if the caller may
/// update it.
async fn change(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    container: &str,
    change: Change,
) -> ApiResult<Json<ContainerView>> {
    let found = named(
        state,
        caller,
        container,
        Permission::Operate,
        Action::Update,
    )
    .await?;
    let (service, org) = (state.containers(), caller.org_id);
    let (id, audit) = (
        found.container.id.to_string(),
        audit_context(caller, headers),
    );
    let changed = match change {
        Change::Start => service.start(org, &id, &audit).await?,
        Change::Stop => service.stop(org, &id, &audit).await?,
        Change::Restart => service.restart(org, &id, &audit).await?,
    };
    Ok(Json(ContainerView::from(&changed)))
}

/// The container the path names, if the caller may do `action` to it.
async fn named(
    state: &AppState,
    caller: &Caller,
    container: &str,
    permission: Permission,
    action: Action,
) -> ApiResult<ContainerStatus> {
    // A user without the permission is refused before the lookup; a
    // service account's grants name the container, so it is found first.
    if caller.service_account.is_none() {
        caller.require(permission)?;
    }
    let found = state.containers().get(caller.org_id, container).await?;
    caller.require_grant(permission, container_scope(found.container.id), action)?;
    Ok(found)
}

#[utoipa::path(get, path = "/api/v1/containers/{container}", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name")),
    responses((status = 200, body = ContainerView),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND)),
    security(("bearer" = ["read"])))]
pub async fn get_container(
    State(state): State<AppState>,
    caller: Caller,
    Path(container): Path<String>,
) -> ApiResult<Json<ContainerView>> {
    let found = named(&state, &caller, &container, Permission::Read, Action::Read).await?;
    Ok(Json(ContainerView::from(&found)))
}

#[utoipa::path(post, path = "/api/v1/containers/{container}/stop", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name")),
    responses((status = 200, body = ContainerView, description = "Stopping: its allocation is released (billing stops) and its host removes it"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Another request changed it first")),
    security(("bearer" = ["read", "operate"])))]
/// Stops the container; stopping a stopped one changes nothing.
pub async fn stop_container(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(container): Path<String>,
) -> ApiResult<Json<ContainerView>> {
    change(&state, &caller, &headers, &container, Change::Stop).await
}

#[utoipa::path(post, path = "/api/v1/containers/{container}/start", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name")),
    responses((status = 200, body = ContainerView, description = "Starting on a new allocation (a running one is left alone)"),
        (status = 402, body = Problem, content_type = "application/problem+json", description = "Prepaid credits cannot pay its first minute"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "No host has room for its SKU now, or another request changed it first")),
    security(("bearer" = ["read", "operate"])))]
/// Starts the container on a new allocation of its SKU.
pub async fn start_container(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(container): Path<String>,
) -> ApiResult<Json<ContainerView>> {
    change(&state, &caller, &headers, &container, Change::Start).await
}

#[utoipa::path(post, path = "/api/v1/containers/{container}/restart", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name")),
    responses((status = 200, body = ContainerView, description = "Its allocation released and a new one placed (or placed as soon as the old one's room is free)"),
        (status = 402, body = Problem, content_type = "application/problem+json", description = "Prepaid credits cannot pay its first minute"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Another request changed it first")),
    security(("bearer" = ["read", "operate"])))]
/// Restarts the container on a new allocation.
pub async fn restart_container(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(container): Path<String>,
) -> ApiResult<Json<ContainerView>> {
    change(&state, &caller, &headers, &container, Change::Restart).await
}

#[utoipa::path(delete, path = "/api/v1/containers/{container}", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name")),
    responses((status = 204, description = "Deleted; its allocation is released"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "Another request changed it first")),
    security(("bearer" = ["read", "operate"])))]
/// Deletes the container, releasing its allocation.
pub async fn delete_container(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(container): Path<String>,
) -> ApiResult<StatusCode> {
    let found = named(
        &state,
        &caller,
        &container,
        Permission::Operate,
        Action::Delete,
    )
    .await?;
    state
        .containers()
        .delete(
            caller.org_id,
            &found.container.id.to_string(),
            &audit_context(&caller, &headers),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/containers/{container}/logs", tag = "containers",
    params(("container" = String, Path, description = "The container's id or name"), AllocationLogsQuery),
    responses((status = 200, body = AllocationLogsView, description = "The last lines of its current (or last) allocation"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "`lines` out of range"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = NOT_FOUND),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "It has not started yet, or its allocation ended and its output went with it"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Its host's agent did not answer")),
    security(("bearer" = ["read"])))]
/// What the container wrote (stdout and stderr), from its host's engine.
pub async fn container_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(container): Path<String>,
    Query(q): Query<AllocationLogsQuery>,
) -> ApiResult<Json<AllocationLogsView>> {
    let found = named(&state, &caller, &container, Permission::Read, Action::Read).await?;
    let logs = state
        .containers()
        .logs(
            caller.org_id,
            &found.container.id.to_string(),
            q.lines.unwrap_or(100),
        )
        .await?;
    Ok(Json(AllocationLogsView {
        allocation_id: logs.allocation_id.0,
        lines: logs.lines,
    }))
}
