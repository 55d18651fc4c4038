//! HTTP ingress to containers (Edd Cloud's container ingress): a running
//! container's first exposed port is served at `{name}.{org}.{domain}`
//! (`HOOD_INGRESS_DOMAIN`; the organization by its slug) and, for local
//! use, at `/ingress/{org}/{name}/…` on the API's address. The request goes
//! to the port its host published for it; a stopped container answers
//! 409, an unknown one 404, both as problem JSON. No credentials are asked
//! for: what the container serves is public, like a website.
//!
//! Bodies are read whole, up to [`MAX_BODY`] each way.

use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

/// The most a request or an answer carries through the ingress.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ingress/{org}/{container}", any(by_path_root))
        .route("/ingress/{org}/{container}/", any(by_path_root))
        .route("/ingress/{org}/{container}/{*path}", any(by_path))
}

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::HOST,
];

#[utoipa::path(get, path = "/ingress/{org}/{container}/{path}", tag = "containers",
    params(("org" = String, Path, description = "The organization's slug"),
        ("container" = String, Path, description = "The container's name"),
        ("path" = String, Path, description = "The path on the container's HTTP server")),
    responses((status = 200, description = "Whatever the container answers (any status, any content): every method is passed on"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such organization, container or exposed port"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The container is not running"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The request body is over 16 MiB"),
        (status = 502, body = Problem, content_type = "application/problem+json", description = "The container did not answer")))]
/// A running container's HTTP port, by path (for local use).
pub async fn by_path(
    State(state): State<AppState>,
    Path((org, container, path)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    forward(
        &state,
        &org,
        &container,
        &format!("/{path}{query}"),
        request,
    )
    .await
}

async fn by_path_root(
    State(state): State<AppState>,
    Path((org, container)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    forward(&state, &org, &container, &format!("/{query}"), request).await
}

/// `{name}.{org}.{domain}`: the container named by the host, when the
/// request's host is under the ingress domain; anything else goes on.
pub async fn by_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(domain) = state.ingress_domain.as_deref() else {
        return next.run(request).await;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .to_ascii_lowercase()
        });
    let Some(labels) = host
        .as_deref()
        .and_then(|h| h.strip_suffix(domain))
        .and_then(|h| h.strip_suffix('.'))
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let Some((container, org)) = labels.split_once('.').filter(|(_, o)| !o.contains('.')) else {
        return ApiError::NotFound("container").into_response();
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    match forward(&state, org, container, &target, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Sends `request` to the container's published port at `target`.
async fn forward(
    state: &AppState,
    org: &str,
    container: &str,
    target: &str,
    request: Request,
) -> ApiResult<Response> {
    let addr = state.containers().ingress(org, container, None).await?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_BODY })?;
    let mut headers = forwardable(&parts.headers);
    if let Some(host) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    let answer = state
        .ingress_client
        .request(parts.method, format!("http://{addr}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::BadGateway(format!("container `{container}` did not answer: {e}"))
        })?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = forwardable(answer.headers());
    if answer.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::BadGateway(format!(
            "container `{container}` answered more than {MAX_BODY} bytes"
        )));
    }
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| ApiError::BadGateway(format!("container `{container}`'s answer: {e}")))?;
    let mut response = (status, bytes).into_response();
    *response.headers_mut() = headers;
    Ok(response)
}

/// `headers` without the hop-by-hop ones.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in &HOP_BY_HOP {
        out.remove(name);
    }
    out.remove("keep-alive");
    out.remove(header::CONTENT_LENGTH);
    out
}
