//! Hosts and chains.

use crate::layout::{
    empty_row, optional_when, page, sortable_head, state_badge, table_filter, when, Nav,
};
use crate::viewer::Session;
use crate::Console;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::chains::ChainView;
use hood_api::routes::fleet::HostView;
use hood_api::views::Page;
use maud::html;

pub(crate) async fn hosts(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let hosts = match console
        .backend()
        .get::<Page<HostView>>(&session.caller, "/api/v1/hosts")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        (table_filter("hosts", "Filter hosts"))
        table #hosts.data data-sortable {
            (sortable_head(&["Host", "State", "Agent", "Provider", "Region", "Address", "Last seen", "Created"]))
            tbody {
                @for h in &hosts {
                    tr {
                        td { code { (h.id) } @if let Some(n) = &h.hostname { br; span.small { (n) } } }
                        td { (state_badge(&h.state)) }
                        td { @if h.connected { span.badge.state-healthy { "connected" } } @else { span.badge.state-down { "offline" } } " " (h.agent_version.as_deref().unwrap_or("")) }
                        td { (h.provider) }
                        td { (h.region) }
                        td { (h.address.as_deref().unwrap_or("—")) }
                        td { (optional_when(h.last_seen_at.as_deref())) }
                        td { (when(&h.created_at)) }
                    }
                }
                @if hosts.is_empty() { (empty_row(8, "No hosts.")) }
            }
        }
    };
    page(&session, Nav::Hosts, "Hosts", None, content)
}

pub(crate) async fn chains(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let chains = match console
        .backend()
        .get::<Page<ChainView>>(&session.caller, "/api/v1/chains")
        .await
    {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        (table_filter("chains", "Filter chains"))
        table #chains.data data-sortable {
            (sortable_head(&["Chain", "Family", "Network", "Chain id", "Node types", "Binaries", "Sync", "Upgrades"]))
            tbody {
                @for c in &chains {
                    tr {
                        td { strong { (c.display_name) } br; code { (c.name) } }
                        td { (c.family) }
                        td { (c.network) }
                        td { (c.chain_id.as_deref().unwrap_or("—")) }
                        td { (c.node_types.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (c.binaries.iter().map(|b| format!("{} {}", b.name, b.version)).collect::<Vec<_>>().join(", ")) }
                        td { (c.sync_method) }
                        td { (c.upgrades.len()) }
                    }
                }
                @if chains.is_empty() { (empty_row(8, "No chains.")) }
            }
        }
    };
    page(&session, Nav::Chains, "Chains", None, content)
}
