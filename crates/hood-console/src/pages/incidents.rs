//! Incidents: open ones first, acknowledgement, history.

use super::segment;
use crate::layout::{
    action_button, optional_when, page, sortable_head, state_badge, table_filter, when, Nav,
};
use crate::viewer::Session;
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::health::IncidentView;
use hood_api::views::Page;
use maud::{html, Markup};
use serde::Deserialize;

/// One incident as a table row; live updates send the same markup.
pub(crate) fn incident_row(session: &Session, i: &IncidentView) -> Markup {
    html! {
        tr data-incident=(i.id) {
            td { (state_badge(&i.severity)) }
            td data-testid="incident-state" { (state_badge(&i.state)) }
            td {
                (i.title)
                @if !i.detail.is_empty() { br; span.small.muted { (i.detail) } }
            }
            td {
                @if let Some(node) = i.node_id { a href=(format!("/console/nodes/{node}")) { "node" } }
                @else { (i.chain.as_deref().unwrap_or("—")) }
            }
            td { (when(&i.opened_at)) }
            td { (optional_when(i.acknowledged_at.as_deref())) }
            td { (optional_when(i.resolved_at.as_deref())) }
            td {
                @if i.state == "open" && session.can("operate") {
                    (action_button(session, &format!("/console/incidents/{}/ack", i.id), "Acknowledge", None, false))
                }
            }
        }
    }
}

const COLUMNS: [&str; 8] = [
    "Severity",
    "State",
    "Incident",
    "Subject",
    "Opened",
    "Acknowledged",
    "Resolved",
    "",
];

/// A table of incidents (`data-incidents` marks it for live rows).
pub(crate) fn incident_rows(session: &Session, list: &[IncidentView], empty: &str) -> Markup {
    html! {
        table.data.incidents data-incidents data-sortable {
            (sortable_head(&COLUMNS))
            tbody {
                @for i in list { (incident_row(session, i)) }
                @if list.is_empty() { tr.empty { td colspan=(COLUMNS.len()) { (empty) } } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    all: Option<bool>,
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> Response {
    let all = q.all.unwrap_or(false);
    let path = if all {
        "/api/v1/incidents?limit=500"
    } else {
        "/api/v1/incidents?active=true&limit=500"
    };
    let incidents = match console
        .backend()
        .get::<Page<IncidentView>>(&session.caller, path)
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        nav.tabs aria-label="Which incidents" {
            a href="/console/incidents" aria-current=[(!all).then_some("page")] { "Active" }
            a href="/console/incidents?all=true" aria-current=[all.then_some("page")] { "History" }
        }
        (table_filter("incidents", "Filter incidents"))
        div #incidents {
            (incident_rows(&session, &incidents, if all { "No incidents." } else { "No active incidents." }))
        }
    };
    page(&session, Nav::Incidents, "Incidents", Some(""), content)
}

pub(crate) async fn acknowledge(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    // Back where the button was (the overview, a node, the list).
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console").map(|i| r[i..].to_owned()))
        .filter(|p| !p.starts_with("//"))
        .unwrap_or_else(|| "/console/incidents".into());
    super::act_and_return(
        &console,
        &session,
        &headers,
        (Method::POST, &format!("/api/v1/incidents/{id}/ack")),
        &back,
        "Incident acknowledged: escalation stopped.",
    )
    .await
}
