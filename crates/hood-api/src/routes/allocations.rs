//! Allocations (rented slices of hosts by SKU), the SKUs on offer, host
//! capacity declarations and the audit log.

use crate::auth::Caller;
use crate::clock::rfc3339;
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use hood_app::{CreateAllocation, HostUsage};
use hood_domain::allocation::{Allocation, AllocationSpec, IdlePolicy};
use hood_domain::audit::{AuditContext, AuditEntry};
use hood_domain::identity::Permission;
use hood_domain::placement::{GpuCapacity, GpuClaim, GpuShape, HostCapacity, Reservation, Shape};
use hood_domain::scope::{self, Action, Scope, ScopeError};
use hood_domain::sku::Sku;
use hood_domain::{AllocationId, HostId, OrgId, Timestamp};
use hood_store::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/skus", get(list_skus))
        .route(
            "/api/v1/allocations",
            get(list_allocations).post(create_allocation),
        )
        .route(
            "/api/v1/allocations/{allocation_id}",
            get(get_allocation).delete(release_allocation),
        )
        .route(
            "/api/v1/hosts/{host_id}/capacity",
            put(declare_capacity).get(host_capacity),
        )
        .route(
            "/api/v1/allocations/{allocation_id}/force-release",
            post(force_release),
        )
        .route(
            "/api/v1/allocations/{allocation_id}/logs",
            get(allocation_logs),
        )
        .route(
            "/api/v1/allocations/{allocation_id}/logs/follow",
            get(follow_allocation_logs),
        )
        .route(
            "/api/v1/allocation-budget",
            get(get_allocation_budget)
                .put(set_allocation_budget)
                .delete(remove_allocation_budget),
        )
        .route("/api/v1/audit", get(list_audit))
}

/// The scope of one allocation (`compute.{org}.allocations.{id}`), for
/// [`Caller::require_grant`] and [`Caller::may`].
pub(crate) fn allocation_scope(id: AllocationId) -> impl FnOnce(&str) -> Result<Scope, ScopeError> {
    move |org| scope::resource("compute", org, "allocations", Some(&id.to_string()))
}

/// The request's audit identity: who (the user, or the API key acting for
/// it) and which request (`x-request-id`, set on every request).
pub fn audit_context(caller: &Caller, headers: &HeaderMap) -> AuditContext {
    AuditContext {
        actor: caller.actor(),
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        reason: None,
    }
}

/// A GPU requirement: none, whole cards, or one MIG slice.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GpuShapeView {
    /// whole | mig
    pub kind: String,
    /// Whole GPUs.
    pub count: Option<u32>,
    /// The MIG profile (`1g.18gb`, `3g.71gb`, …).
    pub profile: Option<String>,
}

/// A named shape on offer and its price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SkuView {
    pub name: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    /// Absent for CPU slices.
    pub gpu: Option<GpuShapeView>,
    /// Minor units charged per started minute.
    pub price_per_minute_minor: u64,
    pub currency: String,
}

fn gpu_shape(shape: &Shape) -> Option<GpuShapeView> {
    match &shape.gpu {
        GpuShape::None => None,
        GpuShape::Whole { count } => Some(GpuShapeView {
            kind: "whole".into(),
            count: Some(*count),
            profile: None,
        }),
        GpuShape::Mig { profile } => Some(GpuShapeView {
            kind: "mig".into(),
            count: None,
            profile: Some(profile.clone()),
        }),
    }
}

impl From<&Sku> for SkuView {
    fn from(s: &Sku) -> Self {
        Self {
            name: s.name.clone(),
            cores: s.shape.cores,
            memory_mib: s.shape.memory_mib,
            disk_mib: s.shape.disk_mib,
            gpu: gpu_shape(&s.shape),
            price_per_minute_minor: s.price_per_minute_minor,
            currency: s.currency.to_string(),
        }
    }
}

/// One GPU (or MIG slice) an allocation holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GpuClaimView {
    /// The GPU's index on the host.
    pub gpu: u32,
    /// whole | mig
    pub kind: String,
    pub profile: Option<String>,
    /// The slice's first placement slot.
    pub start: Option<u8>,
}

/// What an allocation holds on its host.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    /// Core numbers, ascending.
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    pub disk_mib: u64,
    pub gpus: Vec<GpuClaimView>,
}

impl From<&Reservation> for ReservationView {
    fn from(r: &Reservation) -> Self {
        Self {
            cores: r.cores.clone(),
            memory_mib: r.memory_mib,
            disk_mib: r.disk_mib,
            gpus: r
                .gpus
                .iter()
                .map(|g| match g {
                    GpuClaim::Whole { gpu } => GpuClaimView {
                        gpu: *gpu,
                        kind: "whole".into(),
                        profile: None,
                        start: None,
                    },
                    GpuClaim::Mig {
                        gpu,
                        profile,
                        start,
                    } => GpuClaimView {
                        gpu: *gpu,
                        kind: "mig".into(),
                        profile: Some(profile.clone()),
                        start: Some(*start),
                    },
                })
                .collect(),
        }
    }
}

/// Release after `minutes` in a row under the utilization floor.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdlePolicyView {
    #[schema(minimum = 1, maximum = 129600)]
    pub minutes: u32,
    #[schema(minimum = 1, maximum = 100)]
    pub utilization_floor_percent: u8,
}

/// An allocation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub host_id: Uuid,
    pub sku: String,
    /// requested | provisioning | active | releasing | released | failed
    pub state: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    /// How many SSH public keys may log in (the keys themselves are not
    /// echoed).
    pub ssh_keys: usize,
    pub max_duration_minutes: Option<u32>,
    pub idle: Option<IdlePolicyView>,
    pub reservation: ReservationView,
    pub idempotency_key: Option<String>,
    /// When the maximum duration runs out.
    pub expires_at: Option<String>,
    /// Why it ended other than by request (its command exited, its sandbox
    /// could not start).
    pub error: Option<String>,
    /// What each active minute costs (the SKU's price when it was made).
    pub price_per_minute_minor: u64,
    pub currency: String,
    /// When it became active and stopped being active: the billed span.
    pub active_since: Option<String>,
    pub active_until: Option<String>,
    /// Since when it has been under its idle policy's utilization floor
    /// (absent: busy, or no policy); released once that lasts the
    /// policy's minutes.
    pub idle_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Allocation> for AllocationView {
    fn from(a: &Allocation) -> Self {
        Self {
            id: a.id.0,
            org_id: a.org_id.0,
            host_id: a.host_id.0,
            sku: a.sku.clone(),
            state: a.state.as_str().into(),
            image: a.spec.image.clone(),
            command: a.spec.command.clone(),
            ssh_keys: a.spec.ssh_public_keys.len(),
            max_duration_minutes: a.spec.max_duration_minutes,
            idle: a.spec.idle.map(|i| IdlePolicyView {
                minutes: i.minutes,
                utilization_floor_percent: i.utilization_floor_percent,
            }),
            reservation: ReservationView::from(&a.reservation),
            idempotency_key: a.idempotency_key.clone(),
            expires_at: a.expires_at.map(rfc3339),
            error: a.error.clone(),
            price_per_minute_minor: a.price_per_minute_minor,
            currency: a.currency.to_string(),
            active_since: a.active_since.map(rfc3339),
            idle_since: a.idle_since.map(rfc3339),
            active_until: a.active_until.map(rfc3339),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAllocationRequest {
    /// A SKU from `GET /api/v1/skus`.
    #[schema(min_length = 1, max_length = 64)]
    pub sku: String,
    /// An image reference; absent for a bare sandbox.
    #[schema(min_length = 1, max_length = 512)]
    pub image: Option<String>,
    /// The command to run (argv).
    #[serde(default)]
    pub command: Vec<String>,
    /// OpenSSH public keys (`ssh-ed25519 AAAA… comment`).
    #[serde(default)]
    pub ssh_public_keys: Vec<String>,
    /// Released after this many minutes (at most 90 days).
    #[schema(minimum = 1, maximum = 129600)]
    pub max_duration_minutes: Option<u32>,
    pub idle: Option<IdlePolicyView>,
    /// Retries with the same key answer the first allocation (the
    /// `Idempotency-Key` header does the same and wins).
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/skus", tag = "allocations",
    responses((status = 200, body = Page<SkuView>)), security(("bearer" = ["read"])))]
/// The SKUs on offer, with their price per minute.
pub async fn list_skus(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<SkuView>>> {
    caller.require(Permission::Read)?;
    Ok(Json(Page {
        items: state.allocations.skus().iter().map(SkuView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/allocations", tag = "allocations",
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key answer the first allocation")),
    request_body = CreateAllocationRequest,
    responses(
        (status = 201, body = AllocationView, description = "Placed: the capacity is reserved and the allocation is `requested`"),
        (status = 200, body = AllocationView, description = "A retry: the allocation this idempotency key made"),
        (status = 402, body = Problem, content_type = "application/problem+json", description = "The organization runs on prepaid credits and they cannot pay the allocation's first minute (or it is cut off)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "No host has room for the SKU, the idempotency key was used for another request, or the SKU's currency is not the credits'")),
    security(("bearer" = ["read", "operate"])))]
/// Rents a slice of a host: reserves a placement for the SKU and records
/// the allocation, its outbox event and its audit row in one transaction.
pub async fn create_allocation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateAllocationRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_grant(
        Permission::Operate,
        |org| scope::resource("compute", org, "allocations", None),
        Action::Create,
    )?;
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let accepted = state
        .allocations
        .create(
            caller.org_id,
            CreateAllocation {
                sku: body.sku,
                spec: AllocationSpec {
                    image: body.image,
                    command: body.command,
                    ssh_public_keys: body.ssh_public_keys,
                    max_duration_minutes: body.max_duration_minutes,
                    idle: body.idle.map(|i| IdlePolicy {
                        minutes: i.minutes,
                        utilization_floor_percent: i.utilization_floor_percent,
                    }),
                    ..Default::default()
                },
                idempotency_key: header_key.or(body.idempotency_key),
            },
            &audit_context(&caller, &headers),
        )
        .await?;
    let status = if accepted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(AllocationView::from(&accepted.allocation))))
}

#[utoipa::path(get, path = "/api/v1/allocations", tag = "allocations",
    responses((status = 200, body = Page<AllocationView>, description = "Newest first")),
    security(("bearer" = ["read"])))]
/// The organization's allocations.
pub async fn list_allocations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<AllocationView>>> {
    if caller.service_account.is_none() {
        caller.require(Permission::Read)?;
    }
    let items = state.allocations.list(caller.org_id).await?;
    Ok(Json(Page {
        // A service account sees the allocations it may read.
        items: items
            .iter()
            .filter(|a| caller.may(Permission::Read, allocation_scope(a.id), Action::Read))
            .map(AllocationView::from)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/allocations/{allocation_id}", tag = "allocations",
    params(("allocation_id" = Uuid, Path)),
    responses((status = 200, body = AllocationView)), security(("bearer" = ["read"])))]
pub async fn get_allocation(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AllocationId>,
) -> ApiResult<Json<AllocationView>> {
    caller.require_grant(Permission::Read, allocation_scope(id), Action::Read)?;
    let a = state.allocations.get(caller.org_id, id).await?;
    Ok(Json(AllocationView::from(&a)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AllocationLogsQuery {
    /// How many of the last lines (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub lines: Option<u32>,
}

/// The last lines an allocation's sandbox wrote.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationLogsView {
    pub allocation_id: Uuid,
    /// stdout and stderr, oldest first.
    pub lines: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/allocations/{allocation_id}/logs", tag = "allocations",
    params(("allocation_id" = Uuid, Path), AllocationLogsQuery),
    responses((status = 200, body = AllocationLogsView),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "`lines` out of range"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such allocation in the organization"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The allocation has no sandbox (not yet placed on its host, or ended), or its agent could not read the output"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No orchestrator in this process, or the host's agent did not answer")),
    security(("bearer" = ["read"])))]
/// The tail of the allocation's output, fetched from its host's agent.
pub async fn allocation_logs(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AllocationId>,
    Query(q): Query<AllocationLogsQuery>,
) -> ApiResult<Json<AllocationLogsView>> {
    caller.require_grant(Permission::Read, allocation_scope(id), Action::Read)?;
    let logs = state
        .allocations
        .logs(caller.org_id, id, q.lines.unwrap_or(100))
        .await?;
    Ok(Json(AllocationLogsView {
        allocation_id: logs.allocation_id.0,
        lines: logs.lines,
    }))
}

#[utoipa::path(get, path = "/api/v1/allocations/{allocation_id}/logs/follow", tag = "allocations",
    params(("allocation_id" = Uuid, Path), AllocationLogsQuery),
    responses((status = 200, content_type = "text/event-stream", body = String,
            description = "Server-sent events: the last `lines` lines, then each new line as it is written (`event: line`); `event: end` when the allocation stops running; `event: error` when the host did not answer a poll (it goes on)"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "`lines` out of range"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such allocation in the organization"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The allocation has no sandbox (not yet placed, or ended), or its host cannot follow logs"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No orchestrator in this process, or the host's agent did not answer")),
    security(("bearer" = ["read"])))]
/// Follows the allocation's output live (server-sent events).
pub async fn follow_allocation_logs(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<AllocationId>,
    Query(q): Query<AllocationLogsQuery>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    caller.require_grant(Permission::Read, allocation_scope(id), Action::Read)?;
    let org = caller.org_id;
    let service = state.allocations.clone();
    // The first read answers now: what cannot be followed is a plain
    // problem answer, not a stream.
    let first = service
        .follow_logs(org, id, q.lines.unwrap_or(100), None)
        .await?;
    let Some(cursor) = first.cursor else {
        return Err(ApiError::Conflict(
            "the allocation's host cannot follow logs; read them with GET …/logs".into(),
        ));
    };
    let line = |l: String| crate::sse::event("line", &l);
    let backlog = first.lines.into_iter().map(line).collect();
    Ok(crate::sse::follow(backlog, cursor, move |cursor| {
        let service = service.clone();
        async move {
            let logs = service.follow_logs(org, id, 1, Some(cursor)).await?;
            Ok((
                logs.lines.into_iter().map(line).collect(),
                logs.cursor.unwrap_or(cursor),
            ))
        }
    }))
}

#[utoipa::path(delete, path = "/api/v1/allocations/{allocation_id}", tag = "allocations",
    params(("allocation_id" = Uuid, Path)),
    responses((status = 200, body = AllocationView, description = "`released` when nothing ran yet, else `releasing` until the host has stopped it; an ended allocation is answered as it is"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The allocation kept changing state; try again")),
    security(("bearer" = ["read", "operate"])))]
/// Releases an allocation.
pub async fn release_allocation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<AllocationId>,
) -> ApiResult<Json<AllocationView>> {
    caller.require_grant(Permission::Read, allocation_scope(id), Action::Read)?;
    state.allocations.get(caller.org_id, id).await?;
    caller.require_grant(Permission::Operate, allocation_scope(id), Action::Delete)?;
    let a = state
        .allocations
        .release(caller.org_id, id, &audit_context(&caller, &headers))
        .await?;
    Ok(Json(AllocationView::from(&a)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceReleaseRequest {
    /// Why (kept in the audit log).
    #[schema(schema_with = crate::schemas::reason)]
    pub reason: String,
}

/// The organization's monthly allocation budget and this month so far.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AllocationBudgetView {
    pub org_id: Uuid,
    pub monthly_limit_minor: u64,
    pub currency: String,
    /// What this calendar month's (UTC) allocations cost so far.
    pub spent_minor: u64,
    pub month_start: String,
    pub updated_at: String,
}

impl From<&hood_app::BudgetStatus> for AllocationBudgetView {
    fn from(s: &hood_app::BudgetStatus) -> Self {
        Self {
            org_id: s.budget.org_id.0,
            monthly_limit_minor: s.budget.monthly_limit_minor,
            currency: s.budget.currency.to_string(),
            spent_minor: s.spent_minor,
            month_start: rfc3339(s.month_start),
            updated_at: rfc3339(s.budget.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationBudgetInput {
    #[schema(minimum = 1)]
    pub monthly_limit_minor: u64,
    /// ISO 4217; default the SKUs' currency.
    #[schema(min_length = 3, max_length = 3)]
    pub currency: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/allocation-budget", tag = "allocations",
    responses((status = 200, body = AllocationBudgetView),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "The organization has no allocation budget")),
    security(("bearer" = ["read"])))]
/// The organization's monthly allocation budget and what this month's
/// allocations cost so far.
pub async fn get_allocation_budget(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AllocationBudgetView>> {
    caller.require(Permission::Read)?;
    let status = state
        .allocations
        .budget(caller.org_id)
        .await?
        .ok_or(ApiError::NotFound("allocation budget"))?;
    Ok(Json(AllocationBudgetView::from(&status)))
}

#[utoipa::path(put, path = "/api/v1/allocation-budget", tag = "allocations",
    request_body = AllocationBudgetInput,
    responses((status = 200, body = AllocationBudgetView, description = "Set; once this month's allocations cost it, new ones are refused (402) and running ones released")),
    security(("bearer" = ["manage_billing"])))]
/// Caps what the organization's allocations may cost per calendar month
/// (UTC): at the cap new allocations answer 402 and running ones are
/// released within a billing pass (audited as `allocation.budget_exhausted`).
pub async fn set_allocation_budget(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(input): Json<AllocationBudgetInput>,
) -> ApiResult<Json<AllocationBudgetView>> {
    caller.require(Permission::ManageBilling)?;
    let currency = input
        .currency
        .map(|c| {
            c.to_ascii_uppercase()
                .parse::<hood_domain::billing::Currency>()
                .map_err(|e| ApiError::invalid("currency", e.to_string()))
        })
        .transpose()?;
    let status = state
        .allocations
        .set_budget(
            caller.org_id,
            Some(input.monthly_limit_minor),
            currency,
            &audit_context(&caller, &headers),
        )
        .await?
        .ok_or_else(|| ApiError::Internal("the budget was not stored".into()))?;
    Ok(Json(AllocationBudgetView::from(&status)))
}

#[utoipa::path(delete, path = "/api/v1/allocation-budget", tag = "allocations",
    responses((status = 204, description = "Removed (or there was none)")),
    security(("bearer" = ["manage_billing"])))]
/// Lifts the organization's allocation budget.
pub async fn remove_allocation_budget(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    caller.require(Permission::ManageBilling)?;
    state
        .allocations
        .set_budget(caller.org_id, None, None, &audit_context(&caller, &headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/allocations/{allocation_id}/force-release", tag = "allocations",
    params(("allocation_id" = Uuid, Path)), request_body = ForceReleaseRequest,
    responses((status = 200, body = AllocationView, description = "Releasing (or released, or already ended)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The allocation kept changing state; try again")),
    security(("bearer" = ["platform_admin"])))]
/// Releases any organization's allocation, with a reason kept in the audit
/// log (platform administrators).
pub async fn force_release(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<AllocationId>,
    Json(body): Json<ForceReleaseRequest>,
) -> ApiResult<Json<AllocationView>> {
    caller.require_platform_admin()?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(ApiError::invalid("reason", "1 to 500 characters"));
    }
    let mut audit = audit_context(&caller, &headers);
    audit.reason = Some(reason.to_owned());
    let a = state.allocations.force_release(id, &audit).await?;
    Ok(Json(AllocationView::from(&a)))
}

/// One GPU of a host.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuCapacityView {
    /// The GPU's index on the host (NVML's).
    pub index: u32,
    /// `NVIDIA H200`, …
    #[schema(min_length = 1, max_length = 128)]
    pub model: String,
    pub memory_mib: u64,
    /// In MIG mode: rented by slices, never whole.
    #[serde(default)]
    pub mig: bool,
}

/// What a host offers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityInput {
    #[schema(minimum = 1, maximum = 4096)]
    pub cores: u32,
    #[schema(minimum = 1)]
    pub memory_mib: u64,
    pub disk_mib: u64,
    #[serde(default)]
    pub gpus: Vec<GpuCapacityView>,
}

impl From<CapacityInput> for HostCapacity {
    fn from(c: CapacityInput) -> Self {
        HostCapacity {
            cores: c.cores,
            memory_mib: c.memory_mib,
            disk_mib: c.disk_mib,
            gpus: c
                .gpus
                .into_iter()
                .map(|g| GpuCapacity {
                    index: g.index,
                    model: g.model,
                    memory_mib: g.memory_mib,
                    mig: g.mig,
                })
                .collect(),
        }
    }
}

/// What is left of a host.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FreeView {
    pub cores: Vec<u32>,
    pub memory_mib: u64,
    pub disk_mib: u64,
    /// Indexes of GPUs no allocation touches.
    pub whole_gpus: Vec<u32>,
    /// Free compute slots (of seven) per MIG-mode GPU index.
    pub mig_slots: Vec<MigFreeView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MigFreeView {
    pub gpu: u32,
    pub free_slots: u8,
}

/// One GPU of a host, with the MIG profiles its model offers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GpuInventoryView {
    pub index: u32,
    pub model: String,
    pub memory_mib: u64,
    pub mig: bool,
    /// MIG profiles of the model (`1g.18gb`, …); empty for a model without
    /// MIG or unknown to Hood.
    pub mig_profiles: Vec<String>,
}

/// A host's capacity, its live reservations and what is left.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HostCapacityView {
    pub host_id: Uuid,
    /// reported (by the agent) | declared (by an operator)
    pub source: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
    pub gpus: Vec<GpuInventoryView>,
    pub reservations: Vec<ReservationView>,
    pub free: FreeView,
    pub updated_at: String,
}

impl From<&HostUsage> for HostCapacityView {
    fn from(u: &HostUsage) -> Self {
        let c = &u.inventory.capacity;
        Self {
            host_id: u.inventory.host_id.0,
            source: u.inventory.source.as_str().into(),
            cores: c.cores,
            memory_mib: c.memory_mib,
            disk_mib: c.disk_mib,
            gpus: c
                .gpus
                .iter()
                .map(|g| GpuInventoryView {
                    index: g.index,
                    model: g.model.clone(),
                    memory_mib: g.memory_mib,
                    mig: g.mig,
                    mig_profiles: hood_domain::placement::mig_profiles_for(&g.model)
                        .iter()
                        .map(|p| p.name.to_owned())
                        .collect(),
                })
                .collect(),
            reservations: u.reservations.iter().map(ReservationView::from).collect(),
            free: FreeView {
                cores: u.free.cores.clone(),
                memory_mib: u.free.memory_mib,
                disk_mib: u.free.disk_mib,
                whole_gpus: u.free.whole_gpus.clone(),
                mig_slots: u
                    .free
                    .mig_slots
                    .iter()
                    .map(|m| MigFreeView {
                        gpu: m.gpu,
                        free_slots: m.free_slots,
                    })
                    .collect(),
            },
            updated_at: rfc3339(u.inventory.updated_at),
        }
    }
}

/// The host, if the caller may see it (its organization's, or any for a
/// platform administrator).
async fn visible_host(state: &AppState, caller: &Caller, id: HostId) -> ApiResult<()> {
    state
        .store
        .get_host(id)
        .await?
        .filter(|h| caller.platform_admin || h.org_id == Some(caller.org_id))
        .map(drop)
        .ok_or(ApiError::NotFound("host"))
}

#[utoipa::path(put, path = "/api/v1/hosts/{host_id}/capacity", tag = "hosts",
    params(("host_id" = Uuid, Path)), request_body = CapacityInput,
    responses((status = 200, body = HostCapacityView),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The host's live allocations do not fit the new capacity")),
    security(("bearer" = ["platform_admin"])))]
/// Declares what a host offers (where its agent cannot measure it, e.g.
/// without NVML); the agent's reports never replace a declaration.
pub async fn declare_capacity(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<HostId>,
    Json(body): Json<CapacityInput>,
) -> ApiResult<Json<HostCapacityView>> {
    caller.require_platform_admin()?;
    let usage = state
        .allocations
        .declare_capacity(id, body.into(), &audit_context(&caller, &headers))
        .await?;
    Ok(Json(HostCapacityView::from(&usage)))
}

#[utoipa::path(get, path = "/api/v1/hosts/{host_id}/capacity", tag = "hosts",
    params(("host_id" = Uuid, Path)),
    responses((status = 200, body = HostCapacityView), (status = 404, body = Problem, content_type = "application/problem+json", description = "No such host, or no capacity known for it")),
    security(("bearer" = ["read"])))]
/// A host's capacity, its reservations and what is free.
pub async fn host_capacity(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<HostId>,
) -> ApiResult<Json<HostCapacityView>> {
    caller.require(Permission::Read)?;
    visible_host(&state, &caller, id).await?;
    let usage = state
        .allocations
        .usage(id)
        .await?
        .ok_or(ApiError::NotFound("host capacity"))?;
    Ok(Json(HostCapacityView::from(&usage)))
}

/// One audit row.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub id: Uuid,
    pub at: String,
    pub org_id: Option<Uuid>,
    /// `user:{id}`, `key:{id}` or `system:{role}`.
    pub actor: String,
    /// `allocation.create`, `allocation.release`, `host.capacity.declare`, …
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
    /// Why, when the actor gave a reason.
    pub reason: Option<String>,
}

impl From<&AuditEntry> for AuditView {
    fn from(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            org_id: e.org_id.map(|o| o.0),
            actor: e.actor.clone(),
            action: e.action.clone(),
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            before: e.before.clone(),
            after: e.after.clone(),
            request_id: e.request_id.clone(),
            reason: e.reason.clone(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Platform administrators: another organization's rows.
    pub org_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub request_id: Option<String>,
    /// Rows at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Rows before this instant (RFC 3339).
    pub until: Option<String>,
    /// The next page: rows written before this row id.
    pub before: Option<Uuid>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

fn instant(field: &'static str, v: Option<String>) -> ApiResult<Option<Timestamp>> {
    v.map(|s| {
        crate::clock::parse_rfc3339(&s).ok_or_else(|| {
            ApiError::invalid(field, "an RFC 3339 instant, e.g. 2026-01-31T00:00:00Z")
        })
    })
    .transpose()
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditView>, description = "Newest first")),
    security(("bearer" = ["manage_users"])))]
/// The audit log of the caller's organization: one row per mutation, with
/// who, what, before and after, and the request.
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditView>>> {
    // Organization administrators read their own; platform administrators
    // any organization's, or the platform's own rows without a filter.
    caller.require(Permission::ManageUsers)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let org_id = match (caller.platform_admin, q.org_id) {
        (true, org) => org.map(OrgId::from_uuid),
        (false, Some(org)) if org != caller.org_id.0 => return Err(ApiError::NotFound("org")),
        (false, _) => Some(caller.org_id),
    };
    let rows = state
        .store
        .list_audit(&AuditFilter {
            org_id,
            actor: q.actor,
            action: q.action,
            resource_type: q.resource_type,
            resource_id: q.resource_id,
            request_id: q.request_id,
            since: instant("since", q.since)?,
            until: instant("until", q.until)?,
            before: q.before,
            limit,
        })
        .await?;
    Ok(Json(Page {
        items: rows.iter().map(AuditView::from).collect(),
    }))
}
