//! The signed-in user's notifications (their feed): newest first, unread
//! ones marked, all marked read with one button. New ones also arrive
//! live on every page (see `live.rs`): a toast and the header's count.

use crate::layout::{empty_row, page, when, Nav};
use crate::pages::back_with_error;
use crate::session::redirect_with;
use crate::viewer::{Flash, Session};
use crate::Console;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hood_api::routes::notifications::{MarkReadView, NotificationPageView, NotificationView};
use maud::{html, Markup};

pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
) -> Response {
    let feed = match console
        .backend()
        .get::<NotificationPageView>(&session.caller, "/api/v1/notifications?limit=100")
        .await
    {
        Ok(f) => f,
        Err(f) => return f.into_response(),
    };
    let content = html! {
        section.card {
            p data-testid="inbox-unread" { (feed.unread) " unread" }
            @if feed.unread > 0 {
                form.inline method="post" action="/console/notifications/read" {
                    (crate::layout::csrf_input(&session))
                    button type="submit" data-testid="mark-all-read" { "Mark all read" }
                }
            }
            table #notifications.data {
                thead { tr { th { "When" } th { "What" } th { "Event" } } }
                tbody {
                    @for n in &feed.items { (row(n)) }
                    @if feed.items.is_empty() { (empty_row(3, "No notifications yet.")) }
                }
            }
        }
    };
    page(&session, Nav::Inbox, "Inbox", None, content)
}

/// One notification's row (also sent live, rendered the same way).
pub(crate) fn row(n: &NotificationView) -> Markup {
    html! {
        tr data-notification=(n.id) .unread[n.read_at.is_none()] {
            td { (when(&n.created_at)) }
            td { @if n.read_at.is_none() { strong { (n.title) } } @else { (n.title) } }
            td { code { (n.subject) } }
        }
    }
}

pub(crate) async fn mark_all_read(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    let to = "/console/notifications";
    match console
        .backend()
        .call::<_, MarkReadView>(
            &session.caller,
            Method::POST,
            "/api/v1/notifications/read",
            &serde_json::json!({ "all": true }),
        )
        .await
    {
        Ok(r) => redirect_with(
            &console,
            &headers,
            to,
            Flash::info(format!("{} marked read.", r.marked)),
        ),
        Err(f) => back_with_error(&console, &headers, to, &f),
    }
}
