//! The fleet at a glance: nodes by state and chain, hosts, open incidents,
//! stuck workflows.

use super::incidents::incident_rows;
use crate::layout::{page, state_badge, Nav};
use crate::viewer::Session;
use crate::Console;
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use hood_api::routes::fleet::{HostView, WorkflowView};
use hood_api::routes::health::IncidentView;
use hood_api::routes::nodes::NodeView;
use hood_api::views::Page;
use maud::html;
use std::collections::BTreeMap;

/// Counts of `key` over `items`, sorted by key.
pub(crate) fn count_by<'a, T>(
    items: &'a [T],
    key: impl Fn(&'a T) -> &'a str,
) -> BTreeMap<&'a str, usize> {
    let mut out = BTreeMap::new();
    for item in items {
        *out.entry(key(item)).or_insert(0) += 1;
    }
    out
}

pub(crate) async fn overview(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let api = console.backend();
    let who = &session.caller;
    let (nodes, incidents, hosts, stuck) = tokio::join!(
        api.get::<Page<NodeView>>(who, "/api/v1/nodes"),
        api.get::<Page<IncidentView>>(who, "/api/v1/incidents?active=true&limit=100"),
        api.get::<Page<HostView>>(who, "/api/v1/hosts"),
        api.get::<Page<WorkflowView>>(who, "/api/v1/workflows?state=stuck&limit=100"),
    );
    let nodes = nodes.map(|p| p.items).unwrap_or_default();
    let live: Vec<&NodeView> = nodes.iter().filter(|n| n.state != "terminated").collect();
    let by_state = count_by(&live, |n| n.state.as_str());
    let by_chain = count_by(&live, |n| n.chain.as_str());
    let incidents = incidents.map(|p| p.items);
    let hosts = hosts.map(|p| p.items);
    let stuck = stuck.map(|p| p.items);
    let content = html! {
        section.tiles aria-label="Summary" {
            a.tile href="/console/nodes" {
                span.n data-testid="node-count" { (live.len()) }
                span.l { "nodes" }
            }
            a.tile href="/console/incidents" {
                span.n data-testid="open-incidents" { (incidents.as_ref().map(Vec::len).unwrap_or(0)) }
                span.l { "open incidents" }
            }
            @if let Ok(h) = &hosts {
                a.tile href="/console/hosts" {
                    span.n { (h.iter().filter(|h| h.state != "deleted").count()) }
                    span.l { "hosts" }
                }
            }
            @if let Ok(s) = &stuck {
                a.tile.warn[!s.is_empty()] href="/console/workflows?state=stuck" {
                    span.n { (s.len()) }
                    span.l { "stuck workflows" }
                }
            }
        }
        div.grid2 {
            section.card {
                h2 { "Nodes by state" }
                @if by_state.is_empty() {
                    p.muted { "No nodes yet. " a href="/console/nodes#create" { "Create one" } "." }
                } @else {
                    ul.counts {
                        @for (state, n) in &by_state {
                            li { (state_badge(state)) " " span.count { (n) } }
                        }
                    }
                }
            }
            section.card {
                h2 { "Nodes by chain" }
                @if by_chain.is_empty() {
                    p.muted { "—" }
                } @else {
                    ul.counts {
                        @for (chain, n) in &by_chain {
                            li { span.chain { (chain) } " " span.count { (n) } }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Open incidents" }
            @match &incidents {
                Ok(list) => (incident_rows(&session, list, "No open incidents.")),
                Err(f) => p.muted { (f.message()) },
            }
        }
        @if let Ok(s) = &stuck {
            @if !s.is_empty() {
                section.card {
                    h2 { "Stuck workflows" }
                    ul {
                        @for w in s {
                            li { a href=(format!("/console/workflows/{}", w.id)) { (w.name) " " (w.id) } " — " (w.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    page(&session, Nav::Overview, "Overview", Some(""), content)
}
