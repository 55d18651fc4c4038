//! Rollouts (platform administrators): every rollout with its progress,
//! one rollout's batches node by node, and pause, resume, approve and
//! abort. Node states and heads on the page follow the live stream.

use super::segment;
use crate::layout::{action_button, empty_row, page, sortable_head, state_badge, when, Nav};
use crate::viewer::Session;
use crate::Console;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::rollouts::{RolloutKindView, RolloutView};
use hood_api::views::Page;
use maud::{html, Markup};

/// A `<progress>` of the nodes that are done (no inline style: the CSP
/// forbids it, and the element needs none).
fn progress(r: &RolloutView) -> Markup {
    let p = &r.progress;
    let done = p.upgraded + p.reverted + p.skipped;
    html! {
        progress value=(done) max=(p.total.max(1)) aria-label="Nodes done" data-testid="rollout-progress" { (done) " of " (p.total) }
        " " span.num { (done) "/" (p.total) }
    }
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let rollouts = match console
        .backend()
        .get::<Page<RolloutView>>(&session.caller, "/api/v1/rollouts")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        p.hint { "Start one with " code { "hood rollout create --chain CHAIN --upgrade ID --start" } "." }
        table #rollouts.data data-sortable {
            (sortable_head(&["Rollout", "Chain", "From", "To", "State", "Progress", "Failed", "Created"]))
            tbody {
                @for r in &rollouts {
                    tr {
                        td { a href=(format!("/console/rollouts/{}", r.id)) { code { (what(r)) } } }
                        td { (r.chain) }
                        td { (r.from_version) }
                        td { (r.to_version) }
                        td { (state_badge(&r.state)) }
                        td { (progress(r)) }
                        td.num { (r.progress.failed) }
                        td { (when(&r.created_at)) }
                    }
                }
                @if rollouts.is_empty() { (empty_row(8, "No rollouts.")) }
            }
        }
    };
    page(&session, Nav::Rollouts, "Rollouts", None, content)
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
    let r = match console
        .backend()
        .get::<RolloutView>(&session.caller, &format!("/api/v1/rollouts/{id}"))
        .await
    {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    let nodes = r.nodes.as_deref().unwrap_or_default();
    let base = format!("/console/rollouts/{}", r.id);
    let live = matches!(
        r.state.as_str(),
        "pending" | "running" | "paused" | "awaiting_approval"
    );
    let batch = match (r.policy.batch_size, r.policy.batch_percent) {
        (Some(n), _) => format!("{n} nodes"),
        (None, Some(p)) => format!("{p} %"),
        (None, None) => "—".into(),
    };
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "Change" } dd { (what(&r)) } }
                div { dt { "Chain" } dd { (r.chain) } }
                @if let Some(selector) = &r.selector {
                    div { dt { "Selector" } dd { code { (selector) } } }
                }
                @if matches!(r.kind, RolloutKindView::Upgrade) {
                    div { dt { "Binary" } dd { (r.binary) " " (r.from_version) " → " (r.to_version) @if r.forward_only { " (forward only: data snapshotted)" } } }
                }
                div { dt { "State" } dd data-testid="rollout-state" { (state_badge(&r.state)) } }
                div { dt { "Progress" } dd { (progress(&r)) } }
                div { dt { "Batches" } dd { "canary " (r.policy.canary) ", then " (batch) ", at most " (r.policy.max_unavailable) " unavailable" } }
                div { dt { "Failure budget" } dd { (r.policy.failure_budget) " failed node(s)" } }
                div { dt { "Soak" } dd { (r.soak_s) " s" } }
                @if r.policy.require_approval { div { dt { "Approved" } dd { "through batch " (r.approved_through) } } }
                div { dt { "Created" } dd { (when(&r.created_at)) " by " (r.created_by) } }
            }
            @if let Some(e) = &r.error { p.flash.error { (e) } }
            @if live && session.platform_admin() {
                div.actions {
                    @if r.state == "pending" { (action_button(&session, &format!("{base}/start"), "Start", None, false)) }
                    @if r.state == "running" || r.state == "awaiting_approval" { (action_button(&session, &format!("{base}/pause"), "Pause", None, false)) }
                    @if r.state == "paused" { (action_button(&session, &format!("{base}/resume"), "Resume", None, false)) }
                    @if r.state == "awaiting_approval" { (action_button(&session, &format!("{base}/approve"), "Approve next batch", None, false)) }
                    (action_button(&session, &format!("{base}/abort"), "Abort", Some("Abort this rollout? Upgraded nodes stay upgraded; no further batch starts."), true))
                }
            }
        }
        section.card {
            h2 { "Nodes" }
            table #rollout-nodes.data {
                (sortable_head(&["Batch", "Node", "Rollout state", "Version", "Node state", "Head", "Error"]))
                tbody {
                    @for n in nodes {
                        tr {
                            td.num { (n.batch) }
                            td { a href=(format!("/console/nodes/{}", n.node_id)) { (n.name.as_deref().unwrap_or("(gone)")) } }
                            td { (state_badge(&n.state)) }
                            td { (n.version.as_deref().unwrap_or("—")) }
                            td data-node-state=(n.node_id) { (state_badge(n.node_state.as_deref().unwrap_or("unknown"))) }
                            td.num data-node-head=(n.node_id) { (n.head_height.map_or_else(|| "—".to_owned(), |h| h.to_string())) }
                            td { (n.error.as_deref().unwrap_or("")) }
                        }
                    }
                    @if nodes.is_empty() { (empty_row(7, "No nodes.")) }
                }
            }
        }
    };
    let title = match r.kind {
        RolloutKindView::Upgrade => format!("Rollout to {} {}", r.binary, r.to_version),
        RolloutKindView::Reconfigure => format!("Recipe rollout on {}", r.chain),
    };
    page(&session, Nav::Rollouts, &title, live.then_some(""), content)
}

/// `POST /console/rollouts/{id}/{verb}`: the API's action of that name.
pub(crate) async fn act(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let to = format!("/console/rollouts/{id}");
    let said = match verb.as_str() {
        "start" => "Rollout started.",
        "pause" => "Rollout paused: the batch in flight finishes, no new one starts.",
        "resume" => "Rollout resumed.",
        "approve" => "Next batch approved.",
        "abort" => "Rollout aborted.",
        _ => return crate::layout::refused(axum::http::StatusCode::NOT_FOUND, "No such action."),
    };
    super::act_and_return(
        &console,
        &session,
        &headers,
        (Method::POST, &format!("/api/v1/rollouts/{id}/{verb}")),
        &to,
        said,
    )
    .await
}

/// What the rollout changes: its manifest, an explicit version, or the
/// chain's current recipe.
fn what(r: &RolloutView) -> &str {
    match (r.kind, &r.upgrade_id) {
        (RolloutKindView::Reconfigure, _) => "current recipe",
        (RolloutKindView::Upgrade, Some(id)) => id,
        (RolloutKindView::Upgrade, None) => "explicit version",
    }
}
