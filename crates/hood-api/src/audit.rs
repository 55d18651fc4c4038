//! Every mutation through the API lands in the audit log. The use cases
//! that change allocations, host capacity and credits write rich rows
//! (before and after) in their own transaction; for every other route that
//! changes something (`POST`, `PUT`, `PATCH`, `DELETE` answered 2xx by an
//! authenticated caller) this layer writes one row after the answer: who,
//! `{resource}.{verb}` from the route, the resource's id (from the path,
//! else the answer's `id`), the status and the request's id. Bodies are
//! never copied (they may hold secrets).

use crate::auth::CallerSlot;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hood_domain::audit::AuditContext;
use hood_store::audit::AuditEvent;

/// Answers larger than this are not read for an id.
const MAX_ANSWER_READ: usize = 64 * 1024;

/// Routes whose use cases write their own audit rows in the change's
/// transaction (method, route).
const AUDITED_BY_USE_CASE: &[(Method, &str)] = &[
    (Method::POST, "/api/v1/allocations"),
    (Method::DELETE, "/api/v1/allocations/{allocation_id}"),
    (
        Method::POST,
        "/api/v1/allocations/{allocation_id}/force-release",
    ),
    (Method::PUT, "/api/v1/hosts/{host_id}/capacity"),
    (Method::POST, "/api/v1/credits/refunds"),
    (Method::PUT, "/api/v1/allocation-budget"),
    (Method::DELETE, "/api/v1/allocation-budget"),
    (Method::POST, "/api/v1/storage/namespaces"),
    (Method::DELETE, "/api/v1/storage/namespaces/{name}"),
    (Method::POST, "/api/v1/service-accounts"),
    (Method::PUT, "/api/v1/service-accounts/{account_id}"),
    (Method::DELETE, "/api/v1/service-accounts/{account_id}"),
    (Method::POST, "/api/v1/service-accounts/{account_id}/keys"),
    (Method::POST, "/api/v1/ssh-keys"),
    (Method::DELETE, "/api/v1/ssh-keys/{key_id}"),
];

/// `{resource}.{verb}`, the resource type, and which path segment holds
/// the resource's id, from a route template: the first segment after
/// `/api/v1/` names the resource; a literal last segment after a
/// parameter is the verb (`…/{id}/retry`), else the method is.
pub(crate) fn action_of(method: &Method, route: &str) -> (String, String, Option<usize>) {
    let segments: Vec<&str> = route
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // Singular, as the use cases name theirs (`allocation.create`).
    let plural = segments.first().copied().unwrap_or("api");
    let resource = match plural.strip_suffix('s') {
        Some(one) if !one.ends_with('s') && !one.ends_with('u') => one,
        _ => plural,
    }
    .to_owned();
    let id_at = segments.iter().position(|s| s.starts_with('{'));
    // The literal segments after the resource: `…/{id}/void`, or what a
    // sub-resource is called (`…/{id}/snapshots/{name}`).
    let literal = segments
        .iter()
        .skip(1)
        .filter(|s| !s.starts_with('{'))
        .copied()
        .collect::<Vec<_>>()
        .join(".");
    let what = if *method == Method::POST {
        "create"
    } else if *method == Method::DELETE {
        "delete"
    } else {
        "update"
    };
    let verb = match (literal.is_empty(), what) {
        (true, _) => what.to_owned(),
        // A POST to a literal names the action (`void`, `retry`) or what it
        // makes (`snapshots`).
        (false, "create") => literal,
        (false, _) => format!("{literal}.{what}"),
    };
    (format!("{resource}.{verb}"), resource, id_at)
}

/// The middleware (see the module's documentation).
pub(crate) async fn record(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(route) = route.filter(|r| {
        mutating
            && r.starts_with("/api/v1/")
            && !AUDITED_BY_USE_CASE
                .iter()
                .any(|(m, path)| *m == method && path == r)
    }) else {
        return next.run(req).await;
    };
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    let Some((org, actor)) = slot.take() else {
        return response;
    };
    if !response.status().is_success() {
        return response;
    }
    let (action, resource_type, id_at) = action_of(&method, &route);
    let path_segments: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut resource_id = id_at
        .and_then(|i| path_segments.get(i))
        .map(|s| (*s).to_owned());
    let (response, answer_id) = if resource_id.is_none() {
        answer_id(response).await
    } else {
        (response, None)
    };
    resource_id = resource_id.or(answer_id);
    let status = response.status();
    let event = AuditEvent {
        org_id: Some(org),
        action,
        resource_type,
        resource_id: resource_id.unwrap_or_default(),
        after: Some(serde_json::json!({
            "method": method.as_str(),
            "route": route,
            "status": status.as_u16(),
        })),
    };
    let ctx = AuditContext {
        actor,
        request_id,
        reason: None,
    };
    if let Err(e) = state
        .store
        .append_audit(&ctx, hood_clock::now(), event)
        .await
    {
        tracing::error!(error = %e, %route, "could not write the audit row of a request");
    }
    response
}

/// The `id` of a small JSON answer (top level, else of its first object
/// field: `{"node": {"id": …}}`); the answer is given back whole.
async fn answer_id(response: Response) -> (Response, Option<String>) {
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json || response.status() == StatusCode::NO_CONTENT {
        return (response, None);
    }
    // Only an answer whose whole size is known and small is read: a
    // streamed or large one passes untouched.
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|n| n <= MAX_ANSWER_READ as u64);
    if !small {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_READ).await {
        Ok(bytes) => bytes,
        Err(e) => {
            // A complete in-memory body cannot fail to read; if it did, the
            // client gets the error rather than a silently empty answer.
            tracing::error!(error = %e, "could not read an answer for its audit row");
            return (
                crate::problem::ApiError::Internal("the answer could not be read".into())
                    .into_response(),
                None,
            );
        }
    };
    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            let text =
                |v: &serde_json::Value| v.get("id").and_then(|i| i.as_str()).map(str::to_owned);
            text(&v).or_else(|| v.as_object()?.values().find_map(text))
        });
    (Response::from_parts(parts, Body::from(bytes)), id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_from_the_route() {
        assert_eq!(action_of(&Method::PUT, "/api/v1/status").1, "status");
        assert_eq!(
            action_of(&Method::POST, "/api/v1/ledger/transfers").0,
            "ledger.transfers"
        );
        let a = |m: Method, r: &str| {
            let (action, resource, id_at) = action_of(&m, r);
            (action, resource, id_at)
        };
        assert_eq!(
            a(Method::POST, "/api/v1/nodes"),
            ("node.create".into(), "node".into(), None)
        );
        assert_eq!(
            a(Method::DELETE, "/api/v1/rpc-keys/{id}"),
            ("rpc-key.delete".into(), "rpc-key".into(), Some(1))
        );
        assert_eq!(
            a(Method::POST, "/api/v1/invoices/{id}/void"),
            ("invoice.void".into(), "invoice".into(), Some(1))
        );
        assert_eq!(
            a(Method::PATCH, "/api/v1/users/{user_id}"),
            ("user.update".into(), "user".into(), Some(1))
        );
        assert_eq!(
            a(Method::PUT, "/api/v1/subscriptions/{id}/budget"),
            (
                "subscription.budget.update".into(),
                "subscription".into(),
                Some(1)
            )
        );
        assert_eq!(
            a(Method::DELETE, "/api/v1/nodes/{id}/snapshots/{name}"),
            ("node.snapshots.delete".into(), "node".into(), Some(1))
        );
    }
}
