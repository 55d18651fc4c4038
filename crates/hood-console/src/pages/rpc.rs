//! RPC keys (self-service: create with plan, chains and method scopes; the
//! secret shown exactly once; revoke) and usage charts.

use super::{back_with_error, q, segment, FormData};
use crate::chart::{stacked_bars, timeline_columns};
use crate::layout::{
    action_button, csrf_input, empty_row, page, sortable_head, table_filter, trusted, when, Nav,
};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::chains::ChainView;
use hood_api::routes::edge::{CreatedRpcKey, RpcKeyView, RpcPlanView, UsageRowView, UsageView};
use hood_api::views::Page;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;

fn list_or_any(items: &[String]) -> Markup {
    html! {
        @if items.is_empty() { span.muted { "any" } } @else { (items.join(", ")) }
    }
}

pub(crate) async fn keys(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let api = console.backend();
    let who = &session.caller;
    let (keys, plans, chains) = tokio::join!(
        api.get::<Page<RpcKeyView>>(who, "/api/v1/rpc-keys"),
        api.get::<Page<RpcPlanView>>(who, "/api/v1/rpc-plans"),
        api.get::<Page<ChainView>>(who, "/api/v1/chains"),
    );
    let keys = match keys {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let plans = plans.map(|p| p.items).unwrap_or_default();
    let chains = chains.map(|p| p.items).unwrap_or_default();
    let edge = console.config().edge_url.clone();
    let content = html! {
        @if let Some(edge) = &edge {
            p { "Call a chain through the edge: " code { "POST " (edge) "/{chain}/v1/{key}" } }
        }
        (table_filter("rpc-keys", "Filter keys"))
        table #rpc-keys.data data-sortable {
            (sortable_head(&["Name", "Prefix", "Plan", "Chains", "Methods", "Created", ""]))
            tbody {
                @for k in &keys {
                    tr.revoked[k.revoked_at.is_some()] data-rpc-key=(k.id) {
                        td { (k.name) }
                        td { code { (k.prefix) } }
                        td { (k.plan) }
                        td { (list_or_any(&k.chains)) }
                        td {
                            @if !k.allowed_methods.is_empty() { "only " (k.allowed_methods.join(", ")) }
                            @if !k.denied_methods.is_empty() { " not " (k.denied_methods.join(", ")) }
                            @if k.allowed_methods.is_empty() && k.denied_methods.is_empty() { span.muted { "any" } }
                        }
                        td { (when(&k.created_at)) }
                        td {
                            @if let Some(at) = &k.revoked_at { span data-testid="revoked" { "revoked " (when(at)) } }
                            @else if session.can("manage_keys") {
                                (action_button(&session, &format!("/console/rpc-keys/{}/revoke", k.id), "Revoke",
                                    Some("Revoke this RPC key? Calls with it are refused at once."), true))
                            }
                        }
                    }
                }
                @if keys.is_empty() { (empty_row(7, "No RPC keys yet.")) }
            }
        }
        @if session.can("manage_keys") {
            section.card #create {
                h2 { "Create an RPC key" }
                form method="post" action="/console/rpc-keys" data-busy="Creating…" {
                    (csrf_input(&session))
                    div.fields {
                        div {
                            label for="rpc-name" { "Name" }
                            input #rpc-name name="name" required maxlength="200";
                        }
                        div {
                            label for="rpc-plan" { "Plan" }
                            select #rpc-plan name="plan" required {
                                @for p in &plans {
                                    option value=(p.name) { (p.name) " — " (p.cu_per_minute) " CU/min, burst " (p.burst_cu) }
                                }
                            }
                        }
                    }
                    fieldset {
                        legend { "Chains (none: every chain)" }
                        @for c in &chains {
                            label.check { input type="checkbox" name="chains" value=(c.name); " " (c.display_name) }
                        }
                    }
                    div.fields {
                        div {
                            label for="rpc-allowed" { "Allowed methods" }
                            textarea #rpc-allowed name="allowed_methods" rows="2" placeholder="e.g. eth_*, net_version (empty: all)" {}
                        }
                        div {
                            label for="rpc-denied" { "Denied methods" }
                            textarea #rpc-denied name="denied_methods" rows="2" placeholder="e.g. debug_*" {}
                        }
                        div {
                            label for="rpc-ips" { "Allowed client networks" }
                            textarea #rpc-ips name="ip_allow" rows="2" placeholder="CIDR blocks (empty: any)" {}
                        }
                        div {
                            label for="rpc-origins" { "Allowed browser origins" }
                            textarea #rpc-origins name="origin_allow" rows="2" placeholder="https://app.example (empty: any)" {}
                        }
                    }
                    button.primary type="submit" { "Create RPC key" }
                }
            }
        }
    };
    page(&session, Nav::RpcKeys, "RPC keys", None, content)
}

pub(crate) async fn create_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let body = serde_json::json!({
        "name": form.get("name").unwrap_or_default(),
        "plan": form.get("plan").unwrap_or_default(),
        "chains": form.all("chains"),
        "allowed_methods": form.list("allowed_methods"),
        "denied_methods": form.list("denied_methods"),
        "ip_allow": form.list("ip_allow"),
        "origin_allow": form.list("origin_allow"),
    });
    match console
        .backend()
        .call::<_, CreatedRpcKey>(&session.caller, Method::POST, "/api/v1/rpc-keys", &body)
        .await
    {
        Ok(created) => redirect_with(
            &console,
            &headers,
            "/console/rpc-keys",
            Flash {
                message: format!("RPC key {} created.", created.view.name),
                error: false,
                secret: Some(created.key),
                secret_label: Some("RPC key".into()),
            },
        ),
        Err(f) => back_with_error(&console, &headers, "/console/rpc-keys#create", &f),
    }
}

pub(crate) async fn revoke_key(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    match console
        .backend()
        .act(
            &session.caller,
            Method::DELETE,
            &format!("/api/v1/rpc-keys/{id}"),
        )
        .await
    {
        Ok(_) => redirect_with(
            &console,
            &headers,
            "/console/rpc-keys",
            Flash::info("RPC key revoked: calls with it are refused."),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/rpc-keys", &f),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsageQuery {
    granularity: Option<String>,
    range: Option<String>,
    chain: Option<String>,
    key: Option<String>,
}

/// The ranges offered, with their length in hours.
const RANGES: [(&str, &str, i64); 4] = [
    ("24h", "24 hours", 24),
    ("7d", "7 days", 7 * 24),
    ("30d", "30 days", 30 * 24),
    ("90d", "90 days", 90 * 24),
];

/// Requests per bucket, stacked by `series_of(row)`; at most seven named
/// series, the rest summed as "other".
fn chart_by(
    usage: &UsageView,
    series_of: impl Fn(&UsageRowView) -> &str,
    label: &str,
    test_id: &str,
) -> (String, Vec<String>) {
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for r in &usage.rows {
        *totals.entry(series_of(r)).or_insert(0) += r.requests;
    }
    let mut ranked: Vec<(&str, i64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut series: Vec<String> = ranked
        .iter()
        .take(7)
        .map(|(s, _)| (*s).to_owned())
        .collect();
    let other = ranked.len() > 7;
    if other {
        series.push("other".into());
    }
    let mut buckets: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for r in &usage.rows {
        let start = ms_of(&r.bucket_start);
        let values = buckets
            .entry(start)
            .or_insert_with(|| vec![0; series.len()]);
        let name = series_of(r);
        let i = series
            .iter()
            .position(|s| s == name)
            .unwrap_or(series.len().saturating_sub(1));
        if let Some(v) = values.get_mut(i) {
            *v += r.requests;
        }
    }
    let step = if usage.granularity == "day" {
        86_400_000
    } else {
        3_600_000
    };
    let columns = timeline_columns(
        ms_of(&usage.from),
        ms_of(&usage.to),
        step,
        series.len(),
        &buckets,
    );
    (
        stacked_bars(label, &series, &columns, "calls", test_id),
        series,
    )
}

/// Milliseconds of an instant the API wrote (RFC 3339).
fn ms_of(rfc3339: &str) -> i64 {
    hood_api::clock::parse_rfc3339(rfc3339)
        .map(|t| t.millis())
        .unwrap_or_default()
}

fn legend(series: &[String]) -> Markup {
    html! {
        p.legend {
            @for (i, s) in series.iter().enumerate() {
                span class=(format!("key s{}", i % 8)) {} (s) " "
            }
        }
    }
}

/// Sums of the rows by `key_of`: requests, compute units, errors.
fn totals_by<'a>(
    rows: &'a [UsageRowView],
    key_of: impl Fn(&'a UsageRowView) -> &'a str,
) -> Vec<(&'a str, i64, i64, i64)> {
    let mut sums: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for r in rows {
        let e = sums.entry(key_of(r)).or_insert((0, 0, 0));
        e.0 += r.requests;
        e.1 += r.compute_units;
        e.2 += r.errors;
    }
    let mut out: Vec<_> = sums
        .into_iter()
        .map(|(k, (a, b, c))| (k, a, b, c))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out
}

fn totals_table(id: &str, what: &str, rows: &[(&str, i64, i64, i64)]) -> Markup {
    html! {
        table.data id=(id) data-sortable {
            (sortable_head(&[what, "Calls", "Compute units", "Errors"]))
            tbody {
                @for (k, a, b, c) in rows {
                    tr { td { (k) } td.num { (a) } td.num { (b) } td.num { (c) } }
                }
                @if rows.is_empty() { (empty_row(4, "No calls in this window.")) }
            }
        }
    }
}

pub(crate) async fn usage(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Query(query): Query<UsageQuery>,
) -> Response {
    let granularity = match query.granularity.as_deref() {
        Some("day") => "day",
        _ => "hour",
    };
    let default_range = if granularity == "day" { "30d" } else { "24h" };
    let range = RANGES
        .iter()
        .find(|(k, _, _)| Some(*k) == query.range.as_deref())
        .or_else(|| RANGES.iter().find(|(k, _, _)| *k == default_range))
        .copied()
        .unwrap_or(RANGES[0]);
    // Hourly answers cover at most 31 days.
    let range = if granularity == "hour" && range.2 > 31 * 24 {
        RANGES[2]
    } else {
        range
    };
    let now = hood_clock::now();
    let hour_ms = 3_600_000;
    // Whole buckets: from the start of the first to the end of the current.
    let bucket_ms = if granularity == "day" {
        24 * hour_ms
    } else {
        hour_ms
    };
    let to = (now.millis() / bucket_ms + 1) * bucket_ms;
    let from = to - range.2 * hour_ms;
    let mut path = format!("/api/v1/usage?granularity={granularity}&from={from}&to={to}");
    let chain = query.chain.filter(|c| !c.is_empty());
    let key = query.key.filter(|k| !k.is_empty());
    if let Some(c) = &chain {
        path.push_str(&format!("&chain={}", q(c)));
    }
    if let Some(k) = &key {
        path.push_str(&format!("&key={}", q(k)));
    }
    let api = console.backend();
    let (usage, keys, chains) = tokio::join!(
        api.get::<UsageView>(&session.caller, &path),
        api.get::<Page<RpcKeyView>>(&session.caller, "/api/v1/rpc-keys"),
        api.get::<Page<ChainView>>(&session.caller, "/api/v1/chains"),
    );
    let usage = match usage {
        Ok(u) => u,
        Err(f) => return f.into_response(),
    };
    let keys = keys.map(|p| p.items).unwrap_or_default();
    let chains = chains.map(|p| p.items).unwrap_or_default();
    let (by_chain_svg, chain_series) = chart_by(
        &usage,
        |r| r.chain.as_str(),
        "Calls by chain",
        "usage-by-chain",
    );
    let (by_method_svg, method_series) = chart_by(
        &usage,
        |r| r.method.as_str(),
        "Calls by method",
        "usage-by-method",
    );
    let content = html! {
        form.toolbar method="get" action="/console/usage" {
            div {
                label for="u-granularity" { "Buckets" }
                select #u-granularity name="granularity" {
                    option value="hour" selected[granularity == "hour"] { "hour" }
                    option value="day" selected[granularity == "day"] { "day" }
                }
            }
            div {
                label for="u-range" { "Window" }
                select #u-range name="range" {
                    @for (k, label, _) in RANGES { option value=(k) selected[k == range.0] { (label) } }
                }
            }
            div {
                label for="u-chain" { "Chain" }
                select #u-chain name="chain" {
                    option value="" { "all" }
                    @for c in &chains { option value=(c.name) selected[chain.as_deref() == Some(c.name.as_str())] { (c.name) } }
                }
            }
            div {
                label for="u-key" { "Key" }
                select #u-key name="key" {
                    option value="" { "all" }
                    @for k in &keys { option value=(k.id) selected[key.as_deref() == Some(k.id.to_string().as_str())] { (k.name) " (" (k.prefix) ")" } }
                }
            }
            button type="submit" { "Show" }
        }
        section.tiles aria-label="Totals" {
            div.tile { span.n data-testid="usage-total-requests" { (usage.totals.requests) } span.l { "calls" } }
            div.tile { span.n data-testid="usage-total-cu" { (usage.totals.compute_units) } span.l { "compute units" } }
            div.tile { span.n data-testid="usage-total-errors" { (usage.totals.errors) } span.l { "errors" } }
        }
        p.small.muted { "From " (when(&usage.from)) " to " (when(&usage.to)) ", by " (usage.granularity) "." }
        section.card {
            h2 { "Calls by chain" }
            (trusted(by_chain_svg))
            (legend(&chain_series))
            (totals_table("usage-chains", "Chain", &totals_by(&usage.rows, |r| r.chain.as_str())))
        }
        section.card {
            h2 { "Calls by method" }
            (trusted(by_method_svg))
            (legend(&method_series))
            (totals_table("usage-methods", "Method", &totals_by(&usage.rows, |r| r.method.as_str())))
        }
    };
    page(&session, Nav::Usage, "Usage", None, content)
}
