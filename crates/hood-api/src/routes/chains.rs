//! Chain catalog, read-only: what Hood can run.

use crate::auth::Caller;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::views::Page;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use hood_chains::ChainSummary;
use hood_domain::identity::Permission;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chains", get(list_chains))
        .route("/api/v1/chains/{name}", get(get_chain))
}

#[utoipa::path(get, path = "/api/v1/chains", tag = "chains",
    responses((status = 200, description = "Chain summaries: `{ \"items\": [ChainSummary] }`")), security(("bearer" = [])))]
/// Every chain profile this installation can run, in name order.
pub async fn list_chains(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Page<ChainSummary>>> {
    caller.require(Permission::Read)?;
    Ok(Json(Page {
        items: state.chains.iter().map(|c| c.summary()).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/chains/{name}", tag = "chains", params(("name" = String, Path)),
    responses((status = 200, description = "ChainSummary"), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get_chain(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<ChainSummary>> {
    caller.require(Permission::Read)?;
    state
        .chains
        .get(&name)
        .map(|c| Json(c.summary()))
        .ok_or(ApiError::NotFound("chain"))
}
