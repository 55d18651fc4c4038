//! Operational endpoints every role serves: liveness, readiness and
//! metrics (the OpenAPI document is served by `openapi`).

use crate::problem::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The liveness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// The readiness answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    pub status: String,
    /// sqlite | postgres
    pub database: String,
}

#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Liveness, description = "The process is alive")))]
/// Liveness: answers while the process runs.
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness, description = "Ready to serve"),
        (status = 503, description = "The database does not answer, or its schema is not this binary's")))]
/// Readiness: the database answers and its schema matches this binary.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database: {e}")))?;
    state
        .store
        .check_schema()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Readiness {
        status: "ready".into(),
        database: state.store.backend().as_str().into(),
    }))
}

/// The media type of `/metrics` (OpenMetrics text).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, body = String, content_type = "application/openmetrics-text",
        description = "Prometheus metrics in the OpenMetrics text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .set_credential_events_followed(state.api_keys.is_watching());
    ([(CONTENT_TYPE, OPENMETRICS)], state.metrics.render())
}
