//! Hood's HTTP services (the `api` and `auth` roles).
//!
//! Handlers are thin: they authenticate ([`auth::Caller`]), check tenancy
//! and permissions, validate with the domain's rules, and call the store.
//! Every error leaves as RFC 9457 problem JSON ([`problem::ApiError`]).

pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod extract;
pub mod invoice_page;
pub mod key_standing;
pub mod limiter;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod schemas;
pub mod sse;
pub mod state;
pub mod views;

mod audit;
mod unread_body;

use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use problem::ApiError;
use state::AppState;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Largest request body any endpoint accepts.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Which group of routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRole {
    /// Business API (8080): chains, nodes, hosts, workflows, health, RPC
    /// keys and usage...
    Api,
    /// Identity (8081): login, refresh, orgs, users, API keys, JWKS.
    Auth,
}

/// Builds the router for the given roles (both for `hood up`).
pub fn router(state: AppState, roles: &[HttpRole]) -> Router {
    let mut app =
        routes::ops::router().route("/openapi.json", axum::routing::get(openapi::serve_document));
    if roles.contains(&HttpRole::Auth) {
        app = app.merge(routes::identity::router());
    }
    if roles.contains(&HttpRole::Api) {
        app = app
            .merge(routes::chains::router())
            .merge(routes::nodes::router())
            .merge(routes::fleet::router())
            .merge(routes::health::router())
            .merge(routes::edge::router())
            .merge(routes::ledger::router())
            .merge(routes::billing::router())
            .merge(routes::invoicing::router())
            .merge(routes::credits::router())
            .merge(routes::budgets::router())
            .merge(routes::corrections::router())
            .merge(routes::keys::router())
            .merge(routes::rollouts::router())
            .merge(routes::snapshots::router())
            .merge(routes::allocations::router())
            .merge(routes::service_accounts::router())
            .merge(routes::ssh_keys::router())
            .merge(routes::containers::router())
            .merge(routes::notifications::router())
            .merge(routes::terminal::router());
    }
    // Small bodies everywhere, except the routes merged below that stream
    // large uploads and enforce their own limits.
    let mut app = app
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(refuse_announced_large_bodies));
    if roles.contains(&HttpRole::Api) {
        app = app
            .merge(routes::ingress::router())
            .merge(routes::artifacts::router())
            .merge(routes::storage::router())
            .merge(routes::storage_uploads::router())
            .merge(routes::billing::ingest_router())
            .merge(routes::invoicing::webhook_router());
    }
    // After every route is in: the layer wraps each of them.
    let app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        audit::record,
    ));
    let metrics = state.metrics.clone();
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(unread_body::close_if_body_unread))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The path only: query strings may carry tokens.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        // Every request carries an `x-request-id` (the client's, or a new
        // UUID), echoed in the answer and recorded in audit rows.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// `router` (the API's, with whatever else shares its listener, such as
/// the console) with requests for `{name}.{org}.{domain}` sent to that
/// container whatever their path (`HOOD_INGRESS_DOMAIN`); without a domain,
/// `router` as it is.
pub fn with_ingress(router: Router, state: AppState) -> Router {
    if state.ingress_domain.is_none() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        state,
        routes::ingress::by_host,
    ))
}

/// Refuses a body whose announced length exceeds [`BODY_LIMIT_BYTES`]
/// before any handler runs, as problem JSON (tower-http's limit layer
/// answers in plain text). A body without a length is cut at the same limit
/// by `DefaultBodyLimit` when a handler reads it.
async fn refuse_announced_large_bodies(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > BODY_LIMIT_BYTES as u64) {
        // The body is left unread: `unread_body` ends the connection.
        return ApiError::PayloadTooLarge {
            limit: BODY_LIMIT_BYTES,
        }
        .into_response();
    }
    next.run(req).await
}

async fn not_found(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    ApiError::NotFound("route").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// in-flight requests (bounded by `drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let mut rx2 = rx.clone();
    tokio::select! {
        res = server => res,
        _ = async move {
            let _ = rx2.wait_for(|v| *v).await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!("in-flight requests did not finish within {drain:?}; closing");
            Ok(())
        }
    }
}
