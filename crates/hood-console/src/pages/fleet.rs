//! Hosts and chains.

use crate::chart::{lines, Series};
use crate::layout::{
    byte_size, empty_row, optional_when, page, sortable_head, state_badge, table_filter, trusted,
    when, Nav,
};
use crate::pages::segment;
use crate::viewer::Session;
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::clock::parse_rfc3339;
use hood_api::routes::chains::ChainView;
use hood_api::routes::fleet::{HostMetricPointView, HostMetricsView, HostView};
use hood_api::views::Page;
use maud::html;
use serde::Deserialize;

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
                        td { a href=(format!("/console/hosts/{}", h.id)) { code { (h.id) } } @if let Some(n) = &h.hostname { br; span.small { (n) } } }
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

/// The monitor's windows: `?minutes=` and its tab label.
const MONITOR_WINDOWS: [(i64, &str); 4] =
    [(15, "15 min"), (60, "1 h"), (360, "6 h"), (1440, "24 h")];

#[derive(Debug, Deserialize)]
pub(crate) struct HostQuery {
    minutes: Option<i64>,
}

/// One host: what it is, what it offers, and the cluster monitor's charts
/// of its CPU, memory, disk and network.
pub(crate) async fn host(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<HostQuery>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let minutes = q
        .minutes
        .filter(|m| MONITOR_WINDOWS.iter().any(|(w, _)| w == m))
        .unwrap_or(60);
    let api = console.backend();
    let who = &session.caller;
    let host_path = format!("/api/v1/hosts/{id}");
    let metrics_path = format!("/api/v1/hosts/{id}/metrics?minutes={minutes}");
    let (host, metrics) = tokio::join!(
        api.get::<HostView>(who, &host_path),
        api.get::<HostMetricsView>(who, &metrics_path),
    );
    let host = match host {
        Ok(h) => h,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "ID" } dd { code { (host.id) } } }
                div { dt { "State" } dd data-testid="host-state" { (state_badge(&host.state)) } }
                div { dt { "Agent" } dd { @if host.connected { span.badge.state-healthy { "connected" } } @else { span.badge.state-down { "offline" } } " " (host.agent_version.as_deref().unwrap_or("")) } }
                div { dt { "Name" } dd { (host.hostname.as_deref().unwrap_or("—")) } }
                div { dt { "Provider" } dd { (host.provider) " · " (host.region) } }
                div { dt { "Address" } dd { (host.address.as_deref().unwrap_or("—")) } }
                @if let Some(c) = &host.capacity {
                    div { dt { "Capacity" } dd { (c.cores) " cores · " (byte_size(c.memory_mib.saturating_mul(MIB))) " memory · " (byte_size(c.disk_mib.saturating_mul(MIB))) " disk · " (c.gpus.len()) " GPUs" } }
                    div { dt { "Free" } dd data-testid="host-free-cores" { (c.free.cores.len()) " cores" } }
                }
                div { dt { "Last seen" } dd { (optional_when(host.last_seen_at.as_deref())) } }
                div { dt { "Created" } dd { (when(&host.created_at)) } }
            }
        }
        section.card {
            h2 { "Monitor" }
            nav.tabs aria-label="Monitor window" {
                @for (m, label) in MONITOR_WINDOWS {
                    a href=(format!("/console/hosts/{}?minutes={m}", host.id)) aria-current=[(m == minutes).then_some("page")] { (label) }
                }
            }
            @match &metrics {
                Ok(m) if m.points.is_empty() => p.muted data-testid="no-metrics" { "No samples in this window: the host's agent has not sent a heartbeat with its counters." },
                Ok(m) => (monitor_charts(m)),
                Err(f) => p.muted { (f.message()) },
            }
        }
    };
    // Agents that cannot tell their name report `unknown`.
    let title = match host.hostname.as_deref().filter(|n| *n != "unknown") {
        Some(name) => format!("Host {name}"),
        None => format!("Host {}", id.chars().take(8).collect::<String>()),
    };
    page(&session, Nav::Hosts, &title, None, content)
}

const MIB: u64 = 1024 * 1024;

fn monitor_charts(m: &HostMetricsView) -> maud::Markup {
    let at = |p: &HostMetricPointView| parse_rfc3339(&p.at).map_or(0, |t| t.millis());
    let series = |name, value: fn(&HostMetricPointView) -> Option<f64>| Series {
        name,
        points: m.points.iter().map(|p| (at(p), value(p))).collect(),
    };
    let bytes = |v: f64| byte_size(v as u64);
    let rate = |v: f64| format!("{}/s", byte_size(v as u64));
    let latest = m.points.last();
    let memory_total = latest.map(|p| p.memory_total_bytes as f64);
    let disk_total = latest.map(|p| p.disk_total_bytes as f64);
    let cpu = lines(
        "CPU busy, percent",
        &[series("busy", |p| p.cpu_percent)],
        Some(100.0),
        |v| format!("{v:.1} %"),
        "chart-cpu",
    );
    let memory = lines(
        "Memory used",
        &[series("used", |p| Some(p.memory_used_bytes as f64))],
        memory_total,
        bytes,
        "chart-memory",
    );
    let disk = lines(
        "Disk used",
        &[series("used", |p| Some(p.disk_used_bytes as f64))],
        disk_total,
        bytes,
        "chart-disk",
    );
    let network = lines(
        "Network, bytes per second",
        &[
            series("received", |p| p.net_rx_bytes_per_sec.map(|v| v as f64)),
            series("sent", |p| p.net_tx_bytes_per_sec.map(|v| v as f64)),
        ],
        None,
        rate,
        "chart-network",
    );
    html! {
        div.grid2 {
            figure { figcaption { "CPU " @if let Some(v) = latest.and_then(|p| p.cpu_percent) { strong data-testid="cpu-now" { (format!("{v:.1} %")) } } } (trusted(cpu)) }
            figure { figcaption { "Memory " @if let Some(p) = latest { strong { (byte_size(p.memory_used_bytes)) } " of " (byte_size(p.memory_total_bytes)) } } (trusted(memory)) }
            figure { figcaption { "Disk " @if let Some(p) = latest { strong { (byte_size(p.disk_used_bytes)) } " of " (byte_size(p.disk_total_bytes)) } } (trusted(disk)) }
            figure { figcaption { "Network " span.key.s0 {} "received " span.key.s1 {} "sent" } (trusted(network)) }
        }
        p.small.muted { (m.points.len()) " samples, one per heartbeat." }
    }
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
