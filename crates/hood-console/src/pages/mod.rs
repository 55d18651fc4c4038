//! The console's pages, one module per section. Each handler reads through
//! [`crate::backend`] with the session's token and renders with
//! [`crate::layout`]; a refusal of the API becomes a page with the same
//! status (another organization's node is a 404 here as there).

pub(crate) mod allocations;
pub(crate) mod auth;
pub(crate) mod billing;
pub(crate) mod channels;
pub(crate) mod fleet;
pub(crate) mod identity;
pub(crate) mod incidents;
pub(crate) mod nodes;
pub(crate) mod notifications;
pub(crate) mod overview;
pub(crate) mod rollouts;
pub(crate) mod rpc;
pub(crate) mod storage;
pub(crate) mod workflows;

use crate::backend::Failure;
pub(crate) use crate::layout::refused;
use crate::session::{redirect_with, FORM_LIMIT_BYTES};
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::body::to_bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;

/// The page for a refusal of the API, with its status.
pub(crate) fn failure_page(failure: &Failure) -> Response {
    let message = match failure.status {
        StatusCode::NOT_FOUND => "There is nothing here, or it is not yours to see.".to_owned(),
        StatusCode::FORBIDDEN => format!(
            "Your role does not allow this. {}",
            failure.detail.as_deref().unwrap_or_default()
        ),
        _ => failure.message(),
    };
    refused(failure.status, &message)
}

/// A refused form: back to `to` with the API's reason in a banner.
pub(crate) fn back_with_error(
    console: &Console,
    headers: &HeaderMap,
    to: &str,
    failure: &Failure,
) -> Response {
    if failure.status == StatusCode::NOT_FOUND {
        return failure_page(failure);
    }
    redirect_with(
        console,
        headers,
        to,
        Flash {
            message: failure.message(),
            error: true,
            ..Flash::default()
        },
    )
}

/// A button's action: the API's call (no body), then back to `to` with
/// `said` in a banner, or with the API's reason when it refused.
pub(crate) async fn act_and_return(
    console: &Console,
    session: &Session,
    headers: &HeaderMap,
    (method, api_path): (Method, &str),
    to: &str,
    said: &str,
) -> Response {
    match console
        .backend()
        .act(&session.caller, method, api_path)
        .await
    {
        Ok(_) => redirect_with(console, headers, to, Flash::info(said)),
        Err(f) => back_with_error(console, headers, to, &f),
    }
}

/// A submitted form's fields, in order, repeated names kept (multi-selects
/// and checkboxes).
#[derive(Debug, Default)]
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Every non-blank value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A list typed one per line or separated by commas.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split([',', '\n'])
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = to_bytes(request.into_body(), FORM_LIMIT_BYTES)
            .await
            .map_err(|_| refused(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map(FormData)
            .map_err(|_| refused(StatusCode::BAD_REQUEST, "The form could not be read."))
    }
}

/// A path segment that is not an id: there is nothing there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoSuchPath;

impl axum::response::IntoResponse for NoSuchPath {
    fn into_response(self) -> Response {
        refused(StatusCode::NOT_FOUND, "There is nothing here.")
    }
}

/// A path segment for an API URL: ids arrive from the browser, so anything
/// but an id's characters is refused before it reaches a URL.
pub(crate) fn segment(id: &str) -> Result<&str, NoSuchPath> {
    if !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        Ok(id)
    } else {
        Err(NoSuchPath)
    }
}

/// Percent-encodes a query value.
pub(crate) fn q(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        let f = FormData(vec![
            ("a".into(), " x ".into()),
            ("m".into(), "1".into()),
            ("m".into(), "".into()),
            ("m".into(), "2".into()),
            ("l".into(), "eth_call, eth_getLogs\nnet_*".into()),
        ]);
        assert_eq!(f.get("a").as_deref(), Some("x"));
        assert_eq!(f.get("zz"), None);
        assert_eq!(f.all("m"), vec!["1", "2"]);
        assert_eq!(f.list("l"), vec!["eth_call", "eth_getLogs", "net_*"]);
    }

    #[test]
    fn path_segments_are_ids_only() {
        assert!(segment("0190a2b4-aaaa-7bbb-8ccc-000000000001").is_ok());
        assert!(segment("provision-node-1").is_ok());
        assert!(segment("../x").is_err());
        assert!(segment("a/b").is_err());
        assert!(segment("a?b").is_err());
        assert!(segment("").is_err());
    }
}
