//! The console's only way to read or change anything behind a login: the
//! API's own router, called in process with the signed-in user's bearer
//! token. Every permission and tenancy rule is therefore the API's, checked
//! on the server exactly as for `curl` or the CLI; the console adds none of
//! its own and cannot drift from them.

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use hood_api::problem::Problem;
use hood_api::state::AppState;
use hood_api::HttpRole;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use tower::ServiceExt;

/// Largest answer the console reads from the API (a full usage window).
const ANSWER_LIMIT_BYTES: usize = 16 * 1024 * 1024;

/// Who a call is made for: the bearer token and the browser's address (the
/// API's login limiter counts per client address).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub token: Option<String>,
    pub peer: SocketAddr,
}

/// A refused or failed call, as the API described it.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub title: String,
    pub detail: Option<String>,
    /// `(parameter, reason)` for each invalid field the API named.
    pub invalid: Vec<(String, String)>,
}

impl Failure {
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal Server Error".into(),
            detail: Some(detail.into()),
            invalid: Vec::new(),
        }
    }

    /// One line for a form's error banner.
    pub(crate) fn message(&self) -> String {
        let mut text = self.detail.clone().unwrap_or_else(|| self.title.clone());
        for (name, reason) in &self.invalid {
            text.push_str(&format!("; {name}: {reason}"));
        }
        text
    }
}

#[derive(Clone)]
pub(crate) struct Backend {
    router: Router,
}

impl Backend {
    /// Both HTTP roles: the console signs in through the auth routes even
    /// in a process that serves only the api role (same store, same keys).
    pub(crate) fn new(state: AppState) -> Self {
        Self {
            router: hood_api::router(state, &[HttpRole::Api, HttpRole::Auth]),
        }
    }

    async fn send(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, bytes::Bytes), Failure> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = &caller.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let has_body = body.is_some();
        if has_body {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .map_err(|e| Failure::internal(format!("building an API request: {e}")))?;
        request.extensions_mut().insert(ConnectInfo(caller.peer));
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = to_bytes(response.into_body(), ANSWER_LIMIT_BYTES)
            .await
            .map_err(|e| Failure::internal(format!("reading an API answer: {e}")))?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        Err(match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) => Failure {
                status,
                title: p.title,
                detail: p.detail,
                invalid: p
                    .invalid_params
                    .into_iter()
                    .map(|i| (i.name, i.reason))
                    .collect(),
            },
            Err(_) => Failure {
                status,
                title: status.canonical_reason().unwrap_or("Error").into(),
                detail: None,
                invalid: Vec::new(),
            },
        })
    }

    fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, Failure> {
        serde_json::from_slice(bytes).map_err(|e| {
            Failure::internal(format!("the API's answer to {path} did not decode: {e}"))
        })
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        path: &str,
    ) -> Result<T, Failure> {
        let (_, bytes) = self.send(caller, Method::GET, path, None).await?;
        Self::decode(path, &bytes)
    }

    /// A call with a JSON body (`POST`, `PUT`, `PATCH`).
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let json = serde_json::to_vec(body)
            .map_err(|e| Failure::internal(format!("encoding a request to {path}: {e}")))?;
        let (_, bytes) = self.send(caller, method, path, Some(json)).await?;
        Self::decode(path, &bytes)
    }

    /// Hands a browser's request to the API as it is (its upgrade too: a
    /// WebSocket stays connected to the API's handler), at `path` with the
    /// session's token instead of its cookies; answers the API's response.
    pub(crate) async fn forward(
        &self,
        caller: &Caller,
        path: &str,
        request: axum::extract::Request,
    ) -> Result<axum::response::Response, Failure> {
        let (mut parts, body) = request.into_parts();
        parts.uri = path
            .parse()
            .map_err(|_| Failure::internal(format!("not a path to forward: {path}")))?;
        parts.headers.remove(header::COOKIE);
        parts.headers.remove(header::AUTHORIZATION);
        if let Some(token) = &caller.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Failure::internal("the session's token is not a header value"))?;
            parts.headers.insert(header::AUTHORIZATION, value);
        }
        // Only what the API needs of the connection: the console's own
        // extensions (its matched path parameters among them) would
        // confuse the API's router.
        let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        parts.extensions = axum::http::Extensions::new();
        if let Some(upgrade) = upgrade {
            parts.extensions.insert(upgrade);
        }
        parts.extensions.insert(ConnectInfo(caller.peer));
        match self
            .router
            .clone()
            .oneshot(Request::from_parts(parts, body))
            .await
        {
            Ok(r) => Ok(r),
            Err(never) => match never {},
        }
    }

    /// A call whose answer the console does not read (`DELETE`, `POST`
    /// without body, 204s).
    pub(crate) async fn act(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
    ) -> Result<StatusCode, Failure> {
        let (status, _) = self.send(caller, method, path, None).await?;
        Ok(status)
    }
}
