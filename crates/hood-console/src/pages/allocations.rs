//! Allocations: the organization's slices (with creation from a SKU), one
//! allocation's page (reservation, price, the tail of its output, release)
//! and its terminal: xterm.js over the API's terminal WebSocket, which the
//! console passes through with the session's token.

use super::billing::amount as price;
use super::{act_and_return, back_with_error, segment, FormData};
use crate::layout::{
    action_button, csrf_input, empty_row, optional_when, page, page_with_assets, refused,
    sortable_head, state_badge, table_filter, when, Nav,
};
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::allocations::{AllocationLogsView, AllocationView, SkuView};
use hood_api::views::Page;
use maud::{html, Markup};

/// The terminal page's policy: the console's, except that styles may be
/// inline. xterm.js sizes and colours its rows through `<style>` elements
/// it creates; scripts stay `'self'` only.
const TERMINAL_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn cores(a: &AllocationView) -> String {
    let list: Vec<String> = a.reservation.cores.iter().map(u32::to_string).collect();
    if list.is_empty() {
        "—".into()
    } else {
        list.join(", ")
    }
}

fn allocation_row(a: &AllocationView) -> Markup {
    html! {
        tr data-allocation=(a.id) {
            td { a href=(format!("/console/allocations/{}", a.id)) { code { (a.id) } } }
            td { (a.sku) }
            td data-testid="allocation-state" { (state_badge(&a.state)) }
            td { (cores(a)) }
            td.num { (price(a.price_per_minute_minor, &a.currency)) }
            td { (optional_when(a.active_since.as_deref())) }
            td { (when(&a.created_at)) }
        }
    }
}

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let api = console.backend();
    let who = &session.caller;
    let (allocations, skus) = tokio::join!(
        api.get::<Page<AllocationView>>(who, "/api/v1/allocations"),
        api.get::<Page<SkuView>>(who, "/api/v1/skus"),
    );
    let allocations = match allocations {
        Ok(p) => p.items,
        Err(f) => return f.into_response(),
    };
    let skus = skus.map(|p| p.items).unwrap_or_default();
    let content = html! {
        (table_filter("allocations", "Filter allocations"))
        table #allocations.data data-sortable {
            (sortable_head(&["Allocation", "SKU", "State", "Cores", "Per minute", "Active since", "Created"]))
            tbody {
                @for a in &allocations { (allocation_row(a)) }
                @if allocations.is_empty() { (empty_row(7, "No allocations yet.")) }
            }
        }
        @if session.can("operate") {
            section.card #create {
                h2 { "Allocate a slice" }
                @if skus.is_empty() {
                    p.hint { "No SKUs are on offer: the operator configures them (" code { "HOOD_SKU_FILE" } ")." }
                } @else {
                    form method="post" action="/console/allocations" data-busy="Allocating…" {
                        (csrf_input(&session))
                        div.fields {
                            div {
                                label for="sku" { "SKU" }
                                select #sku name="sku" required {
                                    @for s in &skus {
                                        option value=(s.name) {
                                            (s.name) " — " (s.cores) " cores, " (s.memory_mib) " MiB, "
                                            (price(s.price_per_minute_minor, &s.currency)) " a minute"
                                        }
                                    }
                                }
                            }
                            div {
                                label for="command" { "Command" }
                                textarea #command name="command" rows="2" placeholder="optional: one argument per line" aria-describedby="command-help" {}
                                small #command-help { "Empty: a bare sandbox to open a terminal in." }
                            }
                            div {
                                label for="max-minutes" { "Maximum duration (minutes)" }
                                input #max-minutes name="max_duration_minutes" type="number" min="1" max="129600" placeholder="optional";
                            }
                        }
                        button.primary type="submit" data-testid="allocate" { "Allocate" }
                    }
                }
            }
        }
    };
    page(&session, Nav::Allocations, "Allocations", None, content)
}

/// `POST /console/allocations`: the API's creation, then the new page.
pub(crate) async fn create(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: FormData,
) -> Response {
    let mut body = serde_json::json!({
        "sku": form.get("sku").unwrap_or_default(),
        // One argument per line, kept as typed apart from the line ends.
        "command": form
            .get("command")
            .map(|c| c.lines().map(str::trim_end).filter(|l| !l.is_empty()).map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default(),
    });
    if let Some(minutes) = form.get("max_duration_minutes") {
        match minutes.parse::<u32>() {
            Ok(m) => body["max_duration_minutes"] = m.into(),
            Err(_) => {
                return redirect_with(
                    &console,
                    &headers,
                    "/console/allocations#create",
                    Flash {
                        message: format!(
                        "The maximum duration must be a whole number of minutes, not {minutes:?}."
                    ),
                        error: true,
                        ..Flash::default()
                    },
                )
            }
        }
    }
    match console
        .backend()
        .call::<_, AllocationView>(&session.caller, Method::POST, "/api/v1/allocations", &body)
        .await
    {
        Ok(a) => redirect_with(
            &console,
            &headers,
            &format!("/console/allocations/{}", a.id),
            Flash::info(format!("Allocation of {} requested.", a.sku)),
        ),
        Err(f) => back_with_error(&console, &headers, "/console/allocations#create", &f),
    }
}

/// One allocation of the session's organization, or the page that says
/// why not.
async fn allocation(
    console: &Console,
    session: &Session,
    id: &str,
) -> Result<AllocationView, Response> {
    console
        .backend()
        .get::<AllocationView>(&session.caller, &format!("/api/v1/allocations/{id}"))
        .await
        .map_err(IntoResponse::into_response)
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
    let a = match allocation(&console, &session, &id).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let api = console.backend();
    let active = a.state == "active";
    let logs = if active {
        Some(
            api.get::<AllocationLogsView>(
                &session.caller,
                &format!("/api/v1/allocations/{id}/logs?lines=100"),
            )
            .await,
        )
    } else {
        None
    };
    let base = format!("/console/allocations/{}", a.id);
    let ending = matches!(a.state.as_str(), "released" | "failed");
    let content = html! {
        section.card {
            dl.facts {
                div { dt { "SKU" } dd { (a.sku) } }
                div { dt { "State" } dd data-testid="allocation-state" { (state_badge(&a.state)) } }
                div { dt { "Host" } dd { code { (a.host_id) } } }
                div { dt { "Cores" } dd { (cores(&a)) } }
                div { dt { "Memory" } dd { (a.reservation.memory_mib) " MiB" } }
                div { dt { "Disk" } dd { (a.reservation.disk_mib) " MiB" } }
                @for g in &a.reservation.gpus {
                    div { dt { "GPU " (g.gpu) } dd { (g.kind) @if let Some(p) = &g.profile { " " (p) } } }
                }
                div { dt { "Per minute" } dd { (price(a.price_per_minute_minor, &a.currency)) } }
                div { dt { "Active" } dd { (optional_when(a.active_since.as_deref())) " – " (optional_when(a.active_until.as_deref())) } }
                @if let Some(e) = &a.expires_at { div { dt { "Ends by" } dd { (when(e)) } } }
                @if !a.command.is_empty() { div { dt { "Command" } dd { code { (a.command.join(" ")) } } } }
                div { dt { "Created" } dd { (when(&a.created_at)) } }
            }
            @if let Some(e) = &a.error { p.flash.error { (e) } }
            @if session.can("operate") && !ending {
                div.actions {
                    @if active {
                        a.button.primary href=(format!("{base}/terminal")) data-testid="open-terminal" { "Open terminal" }
                    }
                    (action_button(&session, &format!("{base}/release"), "Release", Some("Release this allocation? Its sandbox stops and its slice is freed."), true))
                }
            }
        }
        @if let Some(logs) = logs {
            section.card {
                h2 { "Output" }
                @match logs {
                    Ok(l) => pre.log tabindex="0" aria-label="The allocation's output" { (l.lines.join("\n")) },
                    Err(f) => p.muted { "The output is not available: " (f.message()) },
                }
            }
        }
    };
    page(
        &session,
        Nav::Allocations,
        &format!("Allocation {}", a.sku),
        None,
        content,
    )
}

/// `POST /console/allocations/{id}/release`.
pub(crate) async fn release(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    act_and_return(
        &console,
        &session,
        &headers,
        (Method::DELETE, &format!("/api/v1/allocations/{id}")),
        &format!("/console/allocations/{id}"),
        "Allocation released: its sandbox is being stopped.",
    )
    .await
}

/// `GET /console/allocations/{id}/terminal`: the terminal page.
pub(crate) async fn terminal(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    let a = match allocation(&console, &session, &id).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !session.can("operate") {
        return refused(
            StatusCode::FORBIDDEN,
            "Your role does not allow opening a terminal (it needs the operate permission).",
        );
    }
    let back = format!("/console/allocations/{}", a.id);
    let content = html! {
        p.hint {
            a href=(back) { "← Allocation" } " · A shell inside the sandbox; the session is recorded. "
            "A dropped connection resumes where it stopped."
        }
        @if a.state == "active" {
            div #terminal-status.live role="status" aria-live="polite" data-state="connecting" { "Connecting…" }
            div #terminal data-socket=(format!("{back}/terminal/ws")) {}
        } @else {
            p.flash.error { "The allocation is " (a.state) ": only an active allocation has a terminal." }
        }
    };
    let mut response = page_with_assets(
        &session,
        Nav::Allocations,
        &format!("Terminal · {}", a.sku),
        None,
        content,
        &["xterm.css", "xterm.js", "addon-fit.js", "terminal.js"],
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(TERMINAL_CONTENT_SECURITY_POLICY),
    );
    response
}

/// `GET /console/allocations/{id}/terminal/ws`: the API's terminal
/// WebSocket with the session's token. Only pages of this origin may open
/// it (a WebSocket is not bound by the same-origin rule, and carries the
/// cookies).
pub(crate) async fn terminal_socket(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let id = match segment(&id) {
        Ok(id) => id.to_owned(),
        Err(r) => return r.into_response(),
    };
    if !same_origin(request.headers()) {
        tracing::warn!(allocation_id = %id, "console terminal refused: cross-origin WebSocket");
        return refused(
            StatusCode::FORBIDDEN,
            "A terminal opens only from this console's own pages.",
        );
    }
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    console
        .backend()
        .forward(
            &session.caller,
            &format!("/api/v1/allocations/{id}/terminal{query}"),
            request,
        )
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Whether the request's `Origin` (when it has one; browsers always send
/// it with a WebSocket) names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_this_origin_opens_a_terminal() {
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            (header::HOST, "hood.example"),
            (header::ORIGIN, "https://Hood.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:9090")
        ])));
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "null")
        ])));
        // No Origin: not a browser's cross-site request.
        assert!(same_origin(&headers(&[host])));
    }
}
