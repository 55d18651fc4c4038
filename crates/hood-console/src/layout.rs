//! The page shell and the small pieces every page repeats: navigation by
//! permission, flash banners, forms with their CSRF token, states, times.

use crate::viewer::{Session, CSRF_FIELD};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Nodes,
    Allocations,
    Incidents,
    Workflows,
    Rollouts,
    Hosts,
    Chains,
    RpcKeys,
    Usage,
    Storage,
    Channels,
    Billing,
    ApiKeys,
    Orgs,
    /// The signed-in user's own page (reached from their name).
    Account,
    /// The signed-in user's notifications (reached from the header).
    Inbox,
}

/// Not a permission: sections only platform administrators see.
const PLATFORM_ADMIN: &str = "platform_admin";

/// A section, the permission it needs (the API's), and where it lives.
const SECTIONS: &[(Nav, &str, &str, Option<&str>)] = &[
    (Nav::Overview, "Overview", "/console", None),
    (Nav::Nodes, "Nodes", "/console/nodes", Some("read")),
    (
        Nav::Allocations,
        "Allocations",
        "/console/allocations",
        Some("read"),
    ),
    (
        Nav::Incidents,
        "Incidents",
        "/console/incidents",
        Some("read"),
    ),
    (Nav::RpcKeys, "RPC keys", "/console/rpc-keys", Some("read")),
    (Nav::Usage, "Usage", "/console/usage", Some("read")),
    (Nav::Storage, "Storage", "/console/storage", Some("read")),
    (
        Nav::Billing,
        "Billing",
        "/console/billing",
        Some("read_billing"),
    ),
    (
        Nav::Channels,
        "Notifications",
        "/console/channels",
        Some("read"),
    ),
    (
        Nav::Workflows,
        "Workflows",
        "/console/workflows",
        Some("read"),
    ),
    (
        Nav::Rollouts,
        "Rollouts",
        "/console/rollouts",
        Some(PLATFORM_ADMIN),
    ),
    (Nav::Hosts, "Hosts", "/console/hosts", Some("read")),
    (Nav::Chains, "Chains", "/console/chains", Some("read")),
    (Nav::ApiKeys, "API keys", "/console/api-keys", Some("read")),
    (Nav::Orgs, "Organizations", "/console/orgs", Some("read")),
];

/// `extra`: the page's own assets beyond the shared stylesheet and script
/// (`.css` as stylesheets, the rest as deferred scripts, in order).
fn head(title: &str, extra: &[&str]) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Hood" }
            link rel="stylesheet" href=(crate::assets::url("app.css"));
            link rel="icon" href=(crate::assets::url("favicon.svg")) type="image/svg+xml";
            script src=(crate::assets::url("app.js")) defer {}
            @for asset in extra {
                @if asset.ends_with(".css") {
                    link rel="stylesheet" href=(crate::assets::url(asset));
                } @else {
                    script src=(crate::assets::url(asset)) defer {}
                }
            }
        }
    }
}

/// A signed-in page. `live`: the query of the page's event stream
/// (`""` for the organization's events, `"node=…"` for one node's).
pub(crate) fn page(
    session: &Session,
    nav: Nav,
    title: &str,
    live: Option<&str>,
    content: Markup,
) -> Response {
    page_with_assets(session, nav, title, live, content, &[])
}

/// A signed-in page that loads assets of its own (see [`head`]).
pub(crate) fn page_with_assets(
    session: &Session,
    nav: Nav,
    title: &str,
    live: Option<&str>,
    content: Markup,
    assets: &[&str],
) -> Response {
    let me = &session.me;
    // Every page follows the user's notifications; a page that follows
    // nodes and incidents too names them.
    let live = format!(
        "{}&since={}",
        live.unwrap_or("feed=only"),
        hood_clock::now().millis()
    );
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, assets))
            body data-live=(live) data-csrf=(session.csrf) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" aria-label="Hood console home" { "Hood" }
                    nav aria-label="Sections" {
                        ul {
                            @for (section, label, href, needs) in SECTIONS {
                                @if needs.is_none_or(|p| if p == PLATFORM_ADMIN { session.platform_admin() } else { session.can(p) }) {
                                    li {
                                        a href=(href) aria-current=[(*section == nav).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        a.inbox href="/console/notifications" data-testid="inbox" aria-current=[(nav == Nav::Inbox).then_some("page")] {
                            "Inbox" span.count data-testid="unread-count" hidden { "0" }
                        }
                        a href="/console/account" title=(me.user.email) aria-current=[(nav == Nav::Account).then_some("page")] { (me.user.display_name) } span { " · " (me.org.name) " · " (me.user.role) }
                        form method="post" action="/console/logout" {
                            (csrf_input(session))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    div #live-status.live role="status" aria-live="polite" {}
                    @if let Some(flash) = &session.flash {
                        div.flash.error[flash.error] role=(if flash.error { "alert" } else { "status" }) {
                            p { (flash.message) }
                            @if let Some(secret) = &flash.secret {
                                div.secret {
                                    label for="secret-value" { (flash.secret_label.as_deref().unwrap_or("Secret")) " (shown only once: copy it now)" }
                                    div.secret-row {
                                        input #secret-value readonly value=(secret) data-testid="secret";
                                        button type="button" data-copy="secret-value" { "Copy" }
                                    }
                                }
                            }
                        }
                    }
                    h1 { (title) }
                    (content)
                }
                div #toasts aria-live="assertive" {}
            }
        }
    };
    html_response(StatusCode::OK, body)
}

/// A page outside the session: sign-in, errors, the status page.
pub(crate) fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, &[]))
            body.bare {
                main #main {
                    (content)
                }
            }
        }
    }
}

pub(crate) fn html_response(status: StatusCode, body: Markup) -> Response {
    (status, Html(body.into_string())).into_response()
}

/// The hidden CSRF field every form carries.
pub(crate) fn csrf_input(session: &Session) -> Markup {
    csrf_field(&session.csrf)
}

pub(crate) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A one-button form (`confirm`: the question asked before it is sent).
pub(crate) fn action_button(
    session: &Session,
    action: &str,
    label: &str,
    confirm: Option<&str>,
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(action) data-confirm=[confirm] {
            (csrf_input(session))
            button.danger[danger] type="submit" { (label) }
        }
    }
}

/// A state as a coloured badge (the class names the state).
pub(crate) fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("badge state-{}", css_token(state))) { (state) } }
}

/// Only letters, digits and `-`, for class names built from data.
pub(crate) fn css_token(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Bytes in the largest binary unit that keeps a digit before the point
/// (negative counts read as 0).
pub(crate) fn byte_size(bytes: impl TryInto<u64>) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let bytes: u64 = bytes.try_into().unwrap_or(0);
    // Display only: the float is never stored or summed.
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An RFC 3339 instant as a readable UTC time, machine-readable too.
pub(crate) fn when(rfc3339: &str) -> Markup {
    let shown = rfc3339
        .get(..19)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or_else(|| rfc3339.to_owned());
    html! { time datetime=(rfc3339) { (shown) } }
}

pub(crate) fn optional_when(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(t) => when(t),
        None => html! { span.muted { "—" } },
    }
}

/// A filter box for the table of id `table`, and the table's sortable
/// header (sorting and filtering are the script's; without it the table
/// is complete, just static).
pub(crate) fn table_filter(table: &str, label: &str) -> Markup {
    html! {
        div.filter {
            label for=(format!("{table}-filter")) { (label) }
            input type="search" id=(format!("{table}-filter")) data-filter=(table) placeholder="Type to filter";
        }
    }
}

pub(crate) fn sortable_head(columns: &[&str]) -> Markup {
    html! {
        thead {
            tr {
                @for c in columns {
                    th scope="col" aria-sort="none" {
                        button.sort type="button" { (c) }
                    }
                }
            }
        }
    }
}

pub(crate) fn empty_row(columns: usize, text: &str) -> Markup {
    html! { tr.empty { td colspan=(columns) { (text) } } }
}

/// A form's error banner, for a page re-rendered after a refused submit.
pub(crate) fn form_error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            div.flash.error role="alert" { p { (m) } }
        }
    }
}

/// Text that was escaped before (SVG built by [`crate::chart`]).
pub(crate) fn trusted(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}

/// A plain page that says why a request was refused.
pub(crate) fn refused(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    html_response(
        status,
        bare(
            title,
            html! {
                div.card.narrow {
                    h1 { (status.as_u16()) " " (title) }
                    p { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::byte_size;

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(byte_size(0u64), "0 B");
        assert_eq!(byte_size(-5i64), "0 B");
        assert_eq!(byte_size(1_023u64), "1023 B");
        assert_eq!(byte_size(1_536u64), "1.5 KiB");
        assert_eq!(byte_size(3 * 1_048_576u64), "3.0 MiB");
        assert_eq!(byte_size(5 * 1_073_741_824i64), "5.0 GiB");
    }
}
