//! Hood's one JSON-RPC 2.0 client call.
//!
//! Everything in Hood that asks a node something over JSON-RPC (the agent's
//! sync probe and observation collectors, the health role's reference
//! heads, the edge's head probes, benchmarks) goes through [`call`] or, when
//! it sends the bytes itself, reads the answer with [`parse_answer`]; block
//! heights and other `0x` quantities are read with [`quantity`], which
//! applies the domain's one parser (`hood_domain::rpc::parse_quantity`).

use serde_json::{json, Value};
use std::time::Duration;

/// Why a call produced no result. Texts name no URL and no credential (the
/// caller knows which endpoint it asked and logs it masked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("timed out")]
    Timeout,
    /// The request never got an HTTP answer (refused, reset, DNS, TLS).
    #[error("request failed: {0}")]
    Transport(String),
    /// An HTTP error status without a JSON-RPC body.
    #[error("HTTP {0}")]
    Status(u16),
    #[error("the answer exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the answer is not JSON")]
    NotJson,
    /// The node answered with a JSON-RPC error object.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("the answer has neither result nor error")]
    NoResult,
}

/// How one call is made.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub timeout: Duration,
    /// HTTP basic auth (Bitcoin Core's cookie, credentials of an upstream).
    pub basic_auth: Option<(String, String)>,
    /// Largest answer read; a longer one is [`CallError::TooLarge`].
    pub max_answer_bytes: usize,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            basic_auth: None,
            max_answer_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The request body of one call (id 1).
pub fn request_body(method: &str, params: &[Value]) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

/// Calls `method` at `url` and returns its `result`.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: &[Value],
    options: &CallOptions,
) -> Result<Value, CallError> {
    let mut request = http
        .post(url)
        .json(&request_body(method, params))
        .timeout(options.timeout);
    if let Some((user, password)) = &options.basic_auth {
        request = request.basic_auth(user, Some(password));
    }
    let mut response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > options.max_answer_bytes {
            return Err(CallError::TooLarge(options.max_answer_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    match parse_answer(&body) {
        Err(CallError::NotJson) if !(200..300).contains(&status) => Err(CallError::Status(status)),
        other => other,
    }
}

/// Reads a single JSON-RPC answer: its `result`, or its error.
pub fn parse_answer(body: &[u8]) -> Result<Value, CallError> {
    let Ok(Value::Object(mut answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(CallError::NotJson);
    };
    match answer.remove("error") {
        Some(Value::Null) | None => answer.remove("result").ok_or(CallError::NoResult),
        Some(error) => Err(rpc_error(&error)),
    }
}

/// A `0x` quantity (or a plain non-negative JSON integer) as an integer.
pub fn quantity(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => hood_domain::rpc::parse_quantity(s),
        other => other.as_u64(),
    }
}

/// [`quantity`] for the signed columns heights are stored in.
pub fn quantity_i64(value: &Value) -> Option<i64> {
    quantity(value).and_then(|q| i64::try_from(q).ok())
}

fn rpc_error(error: &Value) -> CallError {
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let mut message = match error.get("message").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        // Not a conforming error object: keep its text.
        None => error.to_string(),
    };
    truncate(&mut message, 200);
    CallError::Rpc { code, message }
}

/// The innermost cause says the most (`Connection refused`).
fn transport(e: &reqwest::Error) -> CallError {
    if e.is_timeout() {
        return CallError::Timeout;
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let mut text = cause.to_string();
    truncate(&mut text, 200);
    CallError::Transport(text)
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::routing::post;

    #[test]
    fn answers_are_read_strictly() {
        assert_eq!(
            parse_answer(br#"{"jsonrpc":"2.0","id":1,"result":"0x10"}"#),
            Ok(json!("0x10"))
        );
        assert_eq!(
            parse_answer(br#"{"jsonrpc":"2.0","id":1,"result":null,"error":null}"#),
            Ok(Value::Null)
        );
        assert_eq!(
            parse_answer(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope"}}"#),
            Err(CallError::Rpc {
                code: -32601,
                message: "nope".into()
            })
        );
        // `data` may carry anything (a node's internals): it is not kept.
        let err = parse_answer(
            br#"{"id":1,"error":{"code":-32005,"message":"behind","data":{"secret":1}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "JSON-RPC error -32005: behind");
        assert_eq!(parse_answer(br#"{"id":1}"#), Err(CallError::NoResult));
        assert_eq!(parse_answer(b"<html>"), Err(CallError::NotJson));
        assert_eq!(parse_answer(b"[1]"), Err(CallError::NotJson));
    }

    #[test]
    fn quantities_follow_the_domain_rule() {
        assert_eq!(quantity(&json!("0x1b4")), Some(436));
        assert_eq!(quantity(&json!(12)), Some(12));
        assert_eq!(quantity(&json!("0x")), None);
        assert_eq!(quantity(&json!("12")), None);
        assert_eq!(quantity(&json!(-1)), None);
        assert_eq!(quantity_i64(&json!("0xffffffffffffffff")), None);
        assert_eq!(quantity_i64(&json!("0x7fffffffffffffff")), Some(i64::MAX));
    }

    async fn serve(app: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn calls_a_real_server() {
        let url = serve(axum::Router::new().route(
            "/",
            post(|axum::Json(req): axum::Json<Value>| async move {
                let method = req["method"].as_str().unwrap_or_default().to_owned();
                axum::Json(match method.as_str() {
                    "eth_blockNumber" => json!({"jsonrpc":"2.0","id":req["id"],"result":"0x2a"}),
                    "echo" => json!({"jsonrpc":"2.0","id":req["id"],"result":req["params"]}),
                    _ => json!({"jsonrpc":"2.0","id":req["id"],"error":{"code":-32601,"message":"method not found"}}),
                })
            }),
        ))
        .await;
        let http = reqwest::Client::new();
        let o = CallOptions::default();
        let head = call(&http, &url, "eth_blockNumber", &[], &o).await.unwrap();
        assert_eq!(quantity(&head), Some(42));
        assert_eq!(
            call(&http, &url, "echo", &[json!(1), json!("a")], &o).await,
            Ok(json!([1, "a"]))
        );
        assert!(matches!(
            call(&http, &url, "nope", &[], &o).await,
            Err(CallError::Rpc { code: -32601, .. })
        ));
    }

    #[tokio::test]
    async fn status_size_and_transport_errors_are_told_apart() {
        let url = serve(
            axum::Router::new()
                .route(
                    "/down",
                    post(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }),
                )
                .route("/big", post(|| async { "x".repeat(10_000) })),
        )
        .await;
        let http = reqwest::Client::new();
        let o = CallOptions {
            max_answer_bytes: 1_000,
            ..CallOptions::default()
        };
        assert_eq!(
            call(&http, &format!("{url}/down"), "m", &[], &o).await,
            Err(CallError::Status(502))
        );
        assert_eq!(
            call(&http, &format!("{url}/big"), "m", &[], &o).await,
            Err(CallError::TooLarge(1_000))
        );
        // A port nothing listens on.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(matches!(
            call(&http, &format!("http://{addr}"), "m", &[], &o).await,
            Err(CallError::Transport(_))
        ));
    }
}
