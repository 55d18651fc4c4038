//! The public status page (`/status`) and node badges
//! (`/status/badges/{node_id}.svg`): no login, and only the nodes their
//! organization made public. Per chain: the current state, 90 days of
//! daily uptime from the uptime data, and the open incidents.

use crate::chart::{badge as badge_svg, day_class, uptime_strip, utc_label, Day};
use crate::layout::{bare, html_response, state_badge};
use crate::Console;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hood_domain::health::{summarize_uptime, UptimeBucket};
use hood_domain::node::Node;
use hood_domain::{NodeId, Timestamp};
use hood_store::incident::IncidentFilter;
use hood_store::Store;
use maud::{html, PreEscaped};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;
/// The strip's length.
const DAYS: i64 = 90;
/// How long one rendering of the page's data is served again: the page is
/// public, so a burst of visitors costs one read of the store.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// One public node as the page shows it.
#[derive(Debug, Clone)]
pub(crate) struct PublicNodeStatus {
    pub id: NodeId,
    pub name: String,
    pub state: String,
    pub days: Vec<Day>,
    pub ratio_90d: Option<f64>,
    /// The daily buckets summed, so chains can add nodes up.
    pub day_buckets: Vec<UptimeBucket>,
}

/// A chain's row: its public nodes' worst state and summed uptime.
#[derive(Debug, Clone)]
pub(crate) struct ChainStatus {
    pub chain: String,
    pub verdict: &'static str,
    pub days: Vec<Day>,
    pub ratio_90d: Option<f64>,
    pub nodes: Vec<PublicNodeStatus>,
}

#[derive(Debug, Clone)]
pub(crate) struct OpenIncident {
    pub title: String,
    pub chain: String,
    pub state: String,
    pub severity: String,
    pub opened_at: Timestamp,
}

#[derive(Debug)]
pub(crate) struct Snapshot {
    pub chains: Vec<ChainStatus>,
    pub incidents: Vec<OpenIncident>,
    pub at: Timestamp,
}

/// The last snapshot and when it was taken.
#[derive(Default)]
pub(crate) struct Cache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

/// A chain's verdict from its nodes' states: any node down is an outage;
/// anything but healthy (or maintenance, or suspended for non-payment) is
/// degraded.
pub(crate) fn verdict<'a>(states: impl IntoIterator<Item = &'a str>) -> &'static str {
    let mut verdict = "operational";
    for s in states {
        match s {
            "down" | "failed" => return "outage",
            "healthy" | "maintenance" | "suspended" | "terminated" => {}
            _ => verdict = "degraded",
        }
    }
    verdict
}

/// Hourly buckets folded into UTC days over `[from_day, from_day + DAYS)`.
pub(crate) fn daily(buckets: &[UptimeBucket], from_day_ms: i64) -> Vec<UptimeBucket> {
    let mut days: Vec<UptimeBucket> = (0..DAYS)
        .map(|i| UptimeBucket {
            hour_start_ms: from_day_ms + i * DAY_MS,
            ..UptimeBucket::default()
        })
        .collect();
    for b in buckets {
        let i = (b.hour_start_ms - from_day_ms).div_euclid(DAY_MS);
        if let Some(d) = usize::try_from(i).ok().and_then(|i| days.get_mut(i)) {
            d.up_ms += b.up_ms;
            d.syncing_ms += b.syncing_ms;
            d.down_ms += b.down_ms;
            d.maintenance_ms += b.maintenance_ms;
        }
    }
    days
}

fn strip_days(day_buckets: &[UptimeBucket]) -> Vec<Day> {
    day_buckets
        .iter()
        .map(|d| Day {
            label: utc_label(d.hour_start_ms, false),
            ratio: summarize_uptime(std::iter::once(d)).ratio,
        })
        .collect()
}

async fn node_status(
    store: &dyn Store,
    node: &Node,
    from_day_ms: i64,
    now: Timestamp,
) -> Result<PublicNodeStatus, hood_store::StoreError> {
    let report =
        hood_health::uptime_report(store, node.id, Timestamp::from_millis(from_day_ms), now)
            .await?;
    let day_buckets = daily(&report.buckets, from_day_ms);
    Ok(PublicNodeStatus {
        id: node.id,
        name: node.name.clone(),
        state: node.state.as_str().to_owned(),
        days: strip_days(&day_buckets),
        ratio_90d: report.summary.ratio,
        day_buckets,
    })
}

async fn take_snapshot(
    store: &dyn Store,
    now: Timestamp,
) -> Result<Snapshot, hood_store::StoreError> {
    let from_day_ms = (now.millis().div_euclid(DAY_MS) - (DAYS - 1)) * DAY_MS;
    let mut by_chain: BTreeMap<String, Vec<PublicNodeStatus>> = BTreeMap::new();
    let mut incidents = Vec::new();
    for public in store.public_nodes().await? {
        let Some(node) = store.get_node(Some(public.org_id), public.node_id).await? else {
            continue;
        };
        let status = node_status(store, &node, from_day_ms, now).await?;
        let open = store
            .list_incidents(
                public.org_id,
                &IncidentFilter {
                    state: None,
                    node_id: Some(node.id),
                    active: true,
                    limit: 20,
                },
            )
            .await?;
        for i in open {
            incidents.push(OpenIncident {
                title: i.title.clone(),
                chain: node.chain.clone(),
                state: i.state.as_str().to_owned(),
                severity: i.severity.as_str().to_owned(),
                opened_at: i.opened_at,
            });
        }
        by_chain.entry(node.chain.clone()).or_default().push(status);
    }
    incidents.sort_by_key(|i| std::cmp::Reverse(i.opened_at));
    let chains = by_chain
        .into_iter()
        .map(|(chain, nodes)| {
            let mut sum = daily(&[], from_day_ms);
            for n in &nodes {
                for (s, d) in sum.iter_mut().zip(&n.day_buckets) {
                    s.up_ms += d.up_ms;
                    s.syncing_ms += d.syncing_ms;
                    s.down_ms += d.down_ms;
                    s.maintenance_ms += d.maintenance_ms;
                }
            }
            ChainStatus {
                verdict: verdict(nodes.iter().map(|n| n.state.as_str())),
                ratio_90d: summarize_uptime(&sum).ratio,
                days: strip_days(&sum),
                chain,
                nodes,
            }
        })
        .collect();
    Ok(Snapshot {
        chains,
        incidents,
        at: now,
    })
}

impl Console {
    async fn status_snapshot(&self) -> Result<Arc<Snapshot>, hood_store::StoreError> {
        let mut last = self.status_cache().last.lock().await;
        if let Some((at, snap)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Ok(snap.clone());
            }
        }
        let snap = Arc::new(take_snapshot(self.store().as_ref(), hood_clock::now()).await?);
        *last = Some((Instant::now(), snap.clone()));
        Ok(snap)
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio
        .map(|r| format!("{:.3} %", r * 100.0))
        .unwrap_or_else(|| "no data".into())
}

pub(crate) async fn page(State(console): State<Console>) -> Response {
    let snap = match console.status_snapshot().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "status page: reading the store failed");
            return crate::layout::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The status page cannot be read right now.",
            );
        }
    };
    let overall = verdict(
        snap.chains
            .iter()
            .flat_map(|c| c.nodes.iter().map(|n| n.state.as_str())),
    );
    let headline = match overall {
        "operational" => "All systems operational",
        "degraded" => "Some systems degraded",
        _ => "Outage in progress",
    };
    let body = bare(
        "Status",
        html! {
            div.status-page {
                header.status-head {
                    div.brand.big { "Hood status" }
                    p class=(format!("banner verdict-{overall}")) data-testid="status-verdict" { (headline) }
                }
                @if !snap.incidents.is_empty() {
                    section.card {
                        h2 { "Open incidents" }
                        ul.incidents-public data-testid="status-incidents" {
                            @for i in &snap.incidents {
                                li { (state_badge(&i.severity)) " " strong { (i.title) } " · " (i.chain) " · " (i.state) " since " (utc_label(i.opened_at.millis(), true)) " UTC" }
                            }
                        }
                    }
                }
                @if snap.chains.is_empty() {
                    p.muted { "No public services yet." }
                }
                @for c in &snap.chains {
                    section.card.chain-status data-chain=(c.chain) {
                        div.row {
                            h2 { (c.chain) }
                            span class=(format!("badge verdict-{}", c.verdict)) data-testid="chain-verdict" { (c.verdict) }
                        }
                        (PreEscaped(uptime_strip(&format!("{}: 90 days of uptime", c.chain), &c.days)))
                        div.row.small.muted {
                            span { "90 days ago" }
                            span data-testid="chain-uptime" { (percent(c.ratio_90d)) " uptime" }
                            span { "today" }
                        }
                        details {
                            summary { (c.nodes.len()) " public node" @if c.nodes.len() != 1 { "s" } }
                            ul {
                                @for n in &c.nodes {
                                    li { (n.name) " " (state_badge(&n.state)) " " (percent(n.ratio_90d)) " · "
                                        span class=(format!("day {}", day_class(n.days.last().and_then(|d| d.ratio)))) { "today" }
                                        " · " a href=(format!("/status/badges/{}.svg", n.id)) { "badge" } }
                                }
                            }
                        }
                    }
                }
                p.small.muted { "Updated " (crate::layout::when(&hood_api::clock::rfc3339(snap.at))) ". Days are UTC; syncing counts as up, maintenance is excluded." }
            }
        },
    );
    let mut response = html_response(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=5"),
    );
    response
}

pub(crate) async fn badge(State(console): State<Console>, Path(file): Path<String>) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such public node").into_response();
    let Some(id) = file
        .strip_suffix(".svg")
        .and_then(|s| s.parse::<NodeId>().ok())
    else {
        return not_found();
    };
    let store = console.store();
    let public = match store.public_nodes().await {
        Ok(p) => p.into_iter().find(|p| p.node_id == id),
        Err(e) => {
            tracing::error!(error = %e, "badge: reading the store failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(public) = public else {
        return not_found();
    };
    let node = match store.get_node(Some(public.org_id), id).await {
        Ok(Some(n)) => n,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "badge: reading the node failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let now = hood_clock::now();
    let from = Timestamp::from_millis(now.millis() - 30 * DAY_MS);
    let ratio = hood_health::uptime_report(store.as_ref(), id, from, now)
        .await
        .ok()
        .and_then(|r| r.summary.ratio);
    let state = node.state.as_str();
    let tone = match verdict([state]) {
        "operational" => "up",
        "degraded" => "partial",
        _ => "down",
    };
    let message = match ratio {
        Some(r) => format!("{state} · {:.2}%", r * 100.0),
        None => state.to_owned(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=30"),
            ),
        ],
        badge_svg(&node.name, &message, tone),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(verdict(["healthy", "healthy"]), "operational");
        assert_eq!(verdict(["healthy", "syncing"]), "degraded");
        assert_eq!(verdict(["migrating", "down"]), "outage");
        assert_eq!(verdict(std::iter::empty()), "operational");
    }

    #[test]
    fn hours_fold_into_days() {
        let from = 10 * DAY_MS;
        let hours = [
            UptimeBucket {
                hour_start_ms: from + 3_600_000,
                up_ms: 3_000_000,
                down_ms: 600_000,
                ..UptimeBucket::default()
            },
            UptimeBucket {
                hour_start_ms: from + DAY_MS,
                up_ms: 3_600_000,
                ..UptimeBucket::default()
            },
            // Outside the window: ignored.
            UptimeBucket {
                hour_start_ms: from - 3_600_000,
                down_ms: 3_600_000,
                ..UptimeBucket::default()
            },
        ];
        let days = daily(&hours, from);
        assert_eq!(days.len(), DAYS as usize);
        assert_eq!(days[0].up_ms, 3_000_000);
        assert_eq!(days[0].down_ms, 600_000);
        assert_eq!(days[1].up_ms, 3_600_000);
        assert_eq!(days[2].up_ms, 0);
        let strip = strip_days(&days);
        assert_eq!(strip[0].ratio, Some(3_000_000.0 / 3_600_000.0));
        assert_eq!(strip[2].ratio, None);
        assert_eq!(utc_label(from, false), "1970-01-11");
    }
}
