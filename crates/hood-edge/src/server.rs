//! The edge's routes: JSON-RPC on `/{chain}/v1/{key}` and, with a
//! configured domain, `{chain}.{domain}/v1/{key}` — a `POST` is the HTTP
//! path ([`crate::http`]), a `GET` upgrades to a WebSocket
//! ([`crate::ws`]); both pass the same admission
//! ([`crate::admission`]). Plus `/healthz` and, for this machine only,
//! `/metrics`.

use crate::state::Edge;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(edge: Arc<Edge>, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/{chain}/v1/{key}",
            post(crate::http::by_path).get(crate::ws::by_path),
        )
        .route(
            "/v1/{key}",
            post(crate::http::by_host).get(crate::ws::by_host),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(edge)
}

/// Prometheus metrics, for scrapers on this machine only: the edge port is
/// public, its internals are not.
async fn metrics(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        edge.metrics.render(&edge.pools, edge.cache.stats()),
    )
        .into_response()
}
