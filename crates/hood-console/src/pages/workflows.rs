//! Workflows: the saga runs, each one's journal of steps, and the
//! operator's retry or abandon of a stuck one.

use super::{back_with_error, q, segment, FormData};
use crate::layout::{
    action_button, csrf_input, empty_row, optional_when, page, sortable_head, state_badge,
    table_filter, when, Nav,
};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::fleet::WorkflowView;
use hood_api::views::Page;
use maud::html;
use serde::Deserialize;

const STATES: [&str; 10] = [
    "",
    "pending",
    "running",
    "waiting",
    "paused",
    "compensating",
    "stuck",
    "completed",
    "failed",
    "abandoned",
];

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(query): Query<ListQuery>,
) -> Response {
    let state = query
        .state
        .filter(|s| !s.is_empty() && STATES.contains(&s.as_str()));
    let path = match &state {
        Some(s) => format!("/api/v1/workflows?state={}&limit=500", q(s)),
        None => "/api/v1/workflows?limit=500".to_owned(),
    };
    let runs = match console
        .backend()
        .get::<Page<WorkflowView>>(&session.caller, &path)
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        nav.tabs aria-label="Workflow state" {
            @for s in STATES {
                a href=(if s.is_empty() { "/console/workflows".to_owned() } else { format!("/console/workflows?state={s}") })
                  aria-current=[(state.as_deref().unwrap_or("") == s).then_some("page")] {
                    (if s.is_empty() { "all" } else { s })
                }
            }
        }
        (table_filter("workflows", "Filter workflows"))
        table #workflows.data data-sortable {
            (sortable_head(&["Workflow", "Name", "State", "Attempts", "Error", "Updated"]))
            tbody {
                @for w in &runs {
                    tr {
                        td { a href=(format!("/console/workflows/{}", w.id)) { code { (w.id) } } }
                        td { (w.name) " v" (w.version) }
                        td { (state_badge(&w.state)) }
                        td.num { (w.attempts) }
                        td { (w.error.as_deref().unwrap_or("")) }
                        td { (when(&w.updated_at)) }
                    }
                }
                @if runs.is_empty() { (empty_row(6, "No workflows.")) }
            }
        }
    };
    page(&session, Nav::Workflows, "Workflows", None, content)
}

pub(crate) async fn detail(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let w = match console
        .backend()
        .get::<WorkflowView>(&session.caller, &format!("/api/v1/workflows/{id}"))
        .await
    {
        Ok(w) => w,
        Err(f) => return f.into_response(),
    };
    let steps = w.steps.as_deref().unwrap_or_default();
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "Name" } dd { (w.name) " v" (w.version) } }
                div { dt { "State" } dd { (state_badge(&w.state)) } }
                div { dt { "Attempts" } dd { (w.attempts) } }
                div { dt { "Waiting for" } dd { (w.waiting_for.as_deref().unwrap_or("—")) } }
                div { dt { "Created" } dd { (when(&w.created_at)) } }
                div { dt { "Updated" } dd { (when(&w.updated_at)) } }
            }
            @if let Some(e) = &w.error { p.flash.error { (e) } }
            @if w.state == "stuck" && session.platform_admin() {
                div.actions {
                    (action_button(&session, &format!("/console/workflows/{}/retry", w.id), "Retry compensation", None, false))
                    form.inline method="post" action=(format!("/console/workflows/{}/abandon", w.id)) data-confirm="Abandon this workflow? Hood stops trying; clean up by hand." {
                        (csrf_input(&session))
                        label for="reason" { "Reason" }
                        input #reason name="reason" required minlength="1" maxlength="500";
                        button.danger type="submit" { "Abandon" }
                    }
                }
            }
        }
        section.card {
            h2 { "Journal" }
            table.data {
                (sortable_head(&["#", "Step", "State", "Attempt", "Error", "Started", "Finished"]))
                tbody {
                    @for s in steps {
                        tr {
                            td.num { (s.index) }
                            td { (s.name) }
                            td { (state_badge(&s.state)) }
                            td.num { (s.attempt) }
                            td { (s.error.as_deref().unwrap_or("")) @if let Some(u) = &s.undo_error { " undo: " (u) } }
                            td { (optional_when(s.started_at.as_deref())) }
                            td { (optional_when(s.finished_at.as_deref())) }
                        }
                    }
                    @if steps.is_empty() { (empty_row(7, "No steps yet.")) }
                }
            }
        }
        section.card {
            h2 { "Input" }
            pre.log { (serde_json::to_string_pretty(&w.input).unwrap_or_default()) }
        }
    };
    page(
        &session,
        Nav::Workflows,
        &format!("Workflow {}", w.id),
        None,
        content,
    )
}

pub(crate) async fn retry(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    super::act_and_return(
        &console,
        &session,
        &headers,
        (Method::POST, &format!("/api/v1/workflows/{id}/retry")),
        &format!("/console/workflows/{id}"),
        "Retrying the workflow's compensation.",
    )
    .await
}

pub(crate) async fn abandon(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: FormData,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let to = format!("/console/workflows/{id}");
    let body = serde_json::json!({ "reason": form.get("reason").unwrap_or_default() });
    match console
        .backend()
        .call::<_, WorkflowView>(
            &session.caller,
            Method::POST,
            &format!("/api/v1/workflows/{id}/abandon"),
            &body,
        )
        .await
    {
        Ok(_) => redirect_with(&console, &headers, &to, Flash::info("Workflow abandoned.")),
        Err(f) => back_with_error(&console, &headers, &to, &f),
    }
}
