//! Nodes: the list (with creation), one node's page (state timeline,
//! events, live head and log tail, uptime, endpoint, status-page
//! visibility, snapshots taken and restored, delete).

use super::{back_with_error, segment, FormData};
use crate::chart::{stacked_bars, timeline_columns};
use crate::layout::{
    action_button, byte_size, csrf_input, empty_row, optional_when, page, sortable_head,
    state_badge, table_filter, trusted, when, Nav,
};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::chains::ChainView;
use hood_api::routes::health::{IncidentView, UptimeView};
use hood_api::routes::nodes::{
    NodeAccepted, NodeEventView, NodeSyncView, NodeView, StatusPageVisibility,
};
use hood_api::routes::snapshots::{
    RestoreRequest, SnapshotAccepted, SnapshotView, TakeSnapshotRequest,
};
use hood_api::views::Page;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One state change of a node's timeline; live updates send the same.
pub(crate) fn transition_item(e: &NodeEventView) -> Markup {
    html! {
        li data-seq=(e.seq) data-to=(e.to_state.as_deref().unwrap_or("")) {
            (when(&e.at)) " " (e.from_state.as_deref().unwrap_or("—")) " → "
            (state_badge(e.to_state.as_deref().unwrap_or("")))
            @if !e.message.is_empty() { " " span.muted { (e.message) } }
        }
    }
}

pub(crate) fn node_row(n: &NodeView) -> Markup {
    html! {
        tr data-node=(n.id) {
            td { a href=(format!("/console/nodes/{}", n.id)) { (n.name) } }
            td { (n.chain) }
            td data-node-state=(n.id) { (state_badge(&n.state)) }
            td { (n.sync_status) }
            td.num data-node-head=(n.id) { (n.head_height.map(|h| h.to_string()).unwrap_or_default()) }
            td { (n.region) }
            td { (when(&n.created_at)) }
        }
    }
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let api = console.backend();
    let who = &session.caller;
    let (nodes, chains) = tokio::join!(
        api.get::<Page<NodeView>>(who, "/api/v1/nodes"),
        api.get::<Page<ChainView>>(who, "/api/v1/chains"),
    );
    let nodes = match nodes {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let chains = chains.map(|p| p.items).unwrap_or_default();
    let content = html! {
        (table_filter("nodes", "Filter nodes"))
        table #nodes.data data-sortable {
            (sortable_head(&["Name", "Chain", "State", "Sync", "Head", "Region", "Created"]))
            tbody {
                @for n in &nodes { (node_row(n)) }
                @if nodes.is_empty() { (empty_row(7, "No nodes yet.")) }
            }
        }
        @if session.can("operate") {
            section.card #create {
                h2 { "Create a node" }
                form method="post" action="/console/nodes" data-busy="Creating…" {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="chain" { "Chain" }
                            select #chain name="chain" required {
                                @for c in &chains {
                                    option value=(c.name) { (c.display_name) " (" (c.name) ")" }
                                }
                            }
                        }
                        div {
                            label for="node-name" { "Name" }
                            input #node-name name="name" pattern="[a-z0-9][a-z0-9-]{0,62}" placeholder="optional: chain-random" aria-describedby="node-name-help";
                            small #node-name-help { "Lower-case letters, digits and dashes." }
                        }
                    }
                    button.primary type="submit" { "Create node" }
                }
            }
        }
    };
    page(&session, Nav::Nodes, "Nodes", Some(""), content)
}

pub(crate) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let mut body = serde_json::json!({ "chain": form.get("chain").unwrap_or_default() });
    if let Some(name) = form.get("name") {
        body["name"] = name.into();
    }
    match console
        .backend()
        .call::<_, NodeAccepted>(&session.caller, Method::POST, "/api/v1/nodes", &body)
        .await
    {
        Ok(accepted) => redirect_with(
            &console,
            &headers,
            &format!("/console/nodes/{}", accepted.node.id),
            Flash::info(format!(
                "Node {} is being provisioned (workflow {}).",
                accepted.node.name, accepted.workflow_id
            )),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/nodes#create", &f),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DetailQuery {
    window: Option<String>,
}

const WINDOWS: [(&str, &str); 3] = [("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")];

/// Uptime as stacked bars (up, syncing, maintenance, down) in seconds: one
/// column per hour over a day's window, per UTC day beyond, every column
/// of the window drawn (a node's hours before it existed are empty).
fn uptime_chart(u: &UptimeView) -> String {
    let hour = 3_600_000;
    let step = if u.to_ms - u.from_ms > 2 * 24 * hour {
        24 * hour
    } else {
        hour
    };
    let mut values: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &u.buckets {
        let start = b.hour_start_ms.div_euclid(step) * step;
        let v = values.entry(start).or_insert_with(|| vec![0; 4]);
        v[0] += b.up_ms / 1000;
        v[1] += b.syncing_ms / 1000;
        v[2] += b.maintenance_ms / 1000;
        v[3] += b.down_ms / 1000;
    }
    stacked_bars(
        "Uptime: up, syncing, maintenance, down",
        &[
            "up".into(),
            "syncing".into(),
            "maintenance".into(),
            "down".into(),
        ],
        &timeline_columns(u.from_ms, u.to_ms, step, 4, &values),
        "seconds",
        "uptime-chart",
    )
}

pub(crate) async fn detail(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let window = q
        .window
        .filter(|w| WINDOWS.iter().any(|(k, _)| k == w))
        .unwrap_or_else(|| "24h".into());
    let api = console.backend();
    let who = &session.caller;
    let node = match api
        .get::<NodeView>(who, &format!("/api/v1/nodes/{id}"))
        .await
    {
        Ok(n) => n,
        Err(f) => return f.into_response(),
    };
    let paths = [
        format!("/api/v1/nodes/{id}/events?limit=1000"),
        format!("/api/v1/nodes/{id}/uptime?window={window}"),
        format!("/api/v1/incidents?node_id={id}&limit=50"),
        format!("/api/v1/nodes/{id}/status-page"),
        format!("/api/v1/nodes/{id}/sync"),
        format!("/api/v1/nodes/{id}/snapshots"),
    ];
    let (events, uptime, incidents, public, sync, snapshots) = tokio::join!(
        api.get::<Page<NodeEventView>>(who, &paths[0]),
        api.get::<UptimeView>(who, &paths[1]),
        api.get::<Page<IncidentView>>(who, &paths[2]),
        api.get::<StatusPageVisibility>(who, &paths[3]),
        api.get::<NodeSyncView>(who, &paths[4]),
        api.get::<Page<SnapshotView>>(who, &paths[5]),
    );
    let head = sync.ok().and_then(|s| s.head_height).or(node.head_height);
    let events = events.map(|p| p.items).unwrap_or_default();
    let transitions: Vec<&NodeEventView> = events.iter().filter(|e| e.to_state.is_some()).collect();
    let public = public.map(|p| p.public).unwrap_or(false);
    let running = !matches!(node.state.as_str(), "terminated" | "terminating" | "failed");
    let content = html! {
        section.card.node-head {
            dl.facts {
                div { dt { "State" } dd data-node-state=(node.id) data-testid="node-state" { (state_badge(&node.state)) } }
                div { dt { "Sync" } dd data-node-sync=(node.id) { (node.sync_status) } }
                div { dt { "Head" } dd.num data-node-head=(node.id) data-testid="node-head" { (head.map(|h| h.to_string()).unwrap_or_else(|| "—".into())) } }
                div { dt { "Chain" } dd { (node.chain) " · " (node.node_type) } }
                div { dt { "Labels" } dd data-testid="node-labels" {
                    @if node.labels.is_empty() { "—" }
                    @for (k, v) in &node.labels { code.label { (k) "=" (v) } " " }
                } }
                div { dt { "RPC endpoint" } dd { code data-node-field="rpc_endpoint" data-node=(node.id) { (node.rpc_endpoint.as_deref().unwrap_or("—")) } } }
                div { dt { "Host" } dd data-node-field="host_id" data-node=(node.id) { (node.host_id.map(|h| h.to_string()).unwrap_or_else(|| "—".into())) } }
                div { dt { "Version" } dd data-node-field="binary_version" data-node=(node.id) { (node.binary_version.as_deref().unwrap_or("—")) } }
                div { dt { "Health" } dd data-node-field="app_health" data-node=(node.id) { (node.app_health) } }
                div { dt { "Created" } dd { (when(&node.created_at)) } }
            }
            @if let Some(reason) = &node.failure_reason {
                p.flash.error role="alert" { "Failure: " (reason) }
            }
            @if session.can("operate") {
                div.actions {
                    form.inline method="post" action=(format!("/console/nodes/{}/status-page", node.id)) {
                        (csrf_input(&session))
                        input type="hidden" name="public" value=(if public { "false" } else { "true" });
                        button type="submit" data-testid="toggle-public" {
                            @if public { "Hide from status page" } @else { "Show on status page" }
                        }
                    }
                    @if running {
                        (action_button(&session, &format!("/console/nodes/{}/delete", node.id), "Delete node",
                            Some("Delete this node? Its host and key material are destroyed."), true))
                    }
                }
            }
            @if public {
                p.small { "On the public status page. Badge: " code { "/status/badges/" (node.id) ".svg" } }
            }
        }
        section.card {
            h2 { "Uptime" }
            nav.tabs aria-label="Uptime window" {
                @for (key, label) in WINDOWS {
                    a href=(format!("/console/nodes/{}?window={key}", node.id)) aria-current=[(key == window).then_some("page")] { (label) }
                }
            }
            @match &uptime {
                Ok(u) => {
                    p { "Up " strong data-testid="uptime-percent" { (u.uptime_percent.map(|p| format!("{p:.3} %")).unwrap_or_else(|| "—".into())) }
                        " over the last " (WINDOWS.iter().find(|(k, _)| *k == window).map(|(_, l)| *l).unwrap_or("")) "; down " (u.down_ms / 1000) " s." }
                    (trusted(uptime_chart(u)))
                    p.legend { span.key.s0 {} "up " span.key.s1 {} "syncing " span.key.s2 {} "maintenance " span.key.s3 {} "down" }
                }
                Err(f) => p.muted { (f.message()) },
            }
        }
        div.grid2 {
            section.card {
                h2 { "State timeline" }
                ol.timeline #timeline data-after=(events.iter().map(|e| e.seq).max().unwrap_or(0)) {
                    @for e in transitions.iter().rev() { (transition_item(e)) }
                }
            }
            section.card {
                h2 { "Incidents" }
                @match &incidents {
                    Ok(p) => (super::incidents::incident_rows(&session, &p.items, "No incidents for this node.")),
                    Err(f) => p.muted { (f.message()) },
                }
            }
        }
        (snapshot_section(&session, &node, running, snapshots.map(|p| p.items)))
        section.card {
            h2 { "Log tail" }
            p.small.muted { "The last lines of the node's processes, streamed while this page is open." }
            pre #log-tail.log tabindex="0" aria-label="Log tail" { "Waiting for the node's agent…" }
        }
        section.card {
            h2 { "Events" }
            (table_filter("events", "Filter events"))
            table #events.data data-sortable {
                (sortable_head(&["#", "At", "Kind", "Change", "Message"]))
                tbody {
                    @for e in events.iter().rev() {
                        tr {
                            td.num { (e.seq) }
                            td { (when(&e.at)) }
                            td { (e.kind) }
                            td { @if let Some(to) = &e.to_state { (e.from_state.as_deref().unwrap_or("—")) " → " (to) } }
                            td { (e.message) }
                        }
                    }
                    @if events.is_empty() { (empty_row(5, "No events.")) }
                }
            }
        }
        p.small.muted { "Last change " (optional_when(Some(&node.updated_at))) }
    };
    page(
        &session,
        Nav::Nodes,
        &format!("Node {}", node.name),
        Some(&format!(
            "node={}&after={}",
            node.id,
            events.iter().map(|e| e.seq).max().unwrap_or(0)
        )),
        content,
    )
}

pub(crate) async fn delete(
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
        (Method::DELETE, &format!("/api/v1/nodes/{id}")),
        &format!("/console/nodes/{id}"),
        "The node is being terminated.",
    )
    .await
}

pub(crate) async fn set_public(
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
    let public = form.get("public").as_deref() == Some("true");
    let to = format!("/console/nodes/{id}");
    match console
        .backend()
        .call::<_, StatusPageVisibility>(
            &session.caller,
            Method::PUT,
            &format!("/api/v1/nodes/{id}/status-page"),
            &StatusPageVisibility { public },
        )
        .await
    {
        Ok(v) => redirect_with(
            &console,
            &headers,
            &to,
            Flash::info(if v.public {
                "The node is on the public status page."
            } else {
                "The node is no longer on the public status page."
            }),
        ),
        Err(f) => back_with_error(&console, &headers, &to, &f),
    }
}

/// The node's snapshots with their upload progress; operators take one
/// (optionally named) and restore a complete one.
fn snapshot_section(
    session: &Session,
    node: &NodeView,
    running: bool,
    snapshots: Result<Vec<SnapshotView>, crate::backend::Failure>,
) -> Markup {
    let operate = session.can("operate") && running;
    html! {
        section.card #snapshots {
            h2 { "Snapshots" }
            p.small.muted { "The node's data directory in the object store: compressed, in checksummed chunks. "
                "Taking one stops the node while its data is packed; a migration restores the latest." }
            @if operate {
                form.inline method="post" action=(format!("/console/nodes/{}/snapshots", node.id)) {
                    (csrf_input(session))
                    label { "Name " input type="text" name="name" pattern="[A-Za-z0-9_-]{1,128}" placeholder="manual-…" maxlength="128"; }
                    " "
                    button type="submit" data-testid="take-snapshot" { "Take snapshot" }
                }
            }
            @match &snapshots {
                Ok(items) => {
                    table #snapshot-list.data {
                        (sortable_head(&["Name", "State", "Head", "Data", "Stored", "Chunks", "Taken", ""]))
                        tbody {
                            @for s in items {
                                tr data-snapshot=(s.name) {
                                    td { (s.name) @if s.reason == "scheduled" { " " span.muted { "(scheduled)" } } }
                                    td { (state_badge(&s.state)) @if let Some(e) = &s.error { " " span.muted { (e) } } }
                                    td.num { (s.head_height.map(|h| h.to_string()).unwrap_or_else(|| "—".into())) }
                                    td.num { (byte_size(s.raw_bytes)) }
                                    td.num { (byte_size(s.compressed_bytes)) }
                                    td.num {
                                        progress value=(s.chunks_done) max=(s.chunks_total.max(1)) aria-label="chunks stored" {}
                                        " " (s.chunks_done) "/" (s.chunks_total)
                                    }
                                    td { (when(&s.created_at)) }
                                    td {
                                        @if operate && s.state == "complete" {
                                            form.inline method="post" action=(format!("/console/nodes/{}/restore", node.id))
                                                data-confirm=(format!("Replace this node's data with snapshot {}?", s.name)) {
                                                (csrf_input(session))
                                                input type="hidden" name="snapshot" value=(s.name);
                                                button type="submit" { "Restore" }
                                            }
                                        }
                                    }
                                }
                            }
                            @if items.is_empty() { (empty_row(8, "No snapshots yet.")) }
                        }
                    }
                }
                Err(f) => p.muted { (f.message()) },
            }
        }
    }
}

pub(crate) async fn take_snapshot(
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
    let name = form.get("name");
    let to = format!("/console/nodes/{id}");
    match console
        .backend()
        .call::<_, SnapshotAccepted>(
            &session.caller,
            Method::POST,
            &format!("/api/v1/nodes/{id}/snapshots"),
            &TakeSnapshotRequest { name },
        )
        .await
    {
        Ok(a) => redirect_with(
            &console,
            &headers,
            &to,
            Flash::info(format!(
                "Snapshot {} is being taken: the node stops while its data is packed.",
                a.name
            )),
        ),
        Err(f) => back_with_error(&console, &headers, &to, &f),
    }
}

pub(crate) async fn restore_snapshot(
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
    let snapshot = form.get("snapshot").unwrap_or_default();
    let to = format!("/console/nodes/{id}");
    match console
        .backend()
        .call::<_, NodeAccepted>(
            &session.caller,
            Method::POST,
            &format!("/api/v1/nodes/{id}/restore"),
            &RestoreRequest {
                snapshot: snapshot.clone(),
            },
        )
        .await
    {
        Ok(_) => redirect_with(
            &console,
            &headers,
            &to,
            Flash::info(format!(
                "The node is being restored from snapshot {snapshot}."
            )),
        ),
        Err(f) => back_with_error(&console, &headers, &to, &f),
    }
}
