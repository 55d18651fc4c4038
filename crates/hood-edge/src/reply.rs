//! Answers the edge writes itself: a JSON-RPC body with an HTTP status.

use crate::jsonrpc;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// `body` as JSON with `status`, and a `Retry-After` (whole seconds, at
/// least 1) when the client should wait.
pub(crate) fn reply(status: StatusCode, body: Value, retry_after_ms: Option<u64>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(ms) = retry_after_ms {
        let secs = ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    response
}

/// The answer when host routing finds no chain.
pub(crate) fn no_chain_in_host() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        jsonrpc::error_response(
            &Value::Null,
            jsonrpc::INVALID_REQUEST,
            "no chain in the host name (expected {chain}.{domain})",
            None,
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let header = |ms| {
            reply(StatusCode::TOO_MANY_REQUESTS, Value::Null, ms)
                .headers()
                .get(http::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header(None), None);
        assert_eq!(header(Some(0)).as_deref(), Some("1"));
        assert_eq!(header(Some(1)).as_deref(), Some("1"));
        assert_eq!(header(Some(1_000)).as_deref(), Some("1"));
        assert_eq!(header(Some(1_001)).as_deref(), Some("2"));
    }

    #[test]
    fn a_missing_chain_is_a_json_rpc_404() {
        let response = no_chain_in_host();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers().get(http::header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
    }
}
