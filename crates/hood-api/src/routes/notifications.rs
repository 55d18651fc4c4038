//! Users' notification feeds: what happened to their organization's
//! nodes, incidents and allocations (fanned out from the event bus), read
//! and marked read here, and pushed live over a WebSocket.

use crate::auth::{Caller, WEBSOCKET_PROTOCOL};
use crate::clock::{now, rfc3339};
use crate::extract::{Json, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hood_domain::feed::FeedItem;
use hood_domain::identity::Permission;
use hood_domain::validate::FieldError;
use hood_domain::{FeedItemId, UserId};
use hood_store::feed::FeedQuery;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// How often a live follow looks for new items.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// Items sent per look.
const STREAM_BATCH: i64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/notifications/read", post(mark_read))
        .route("/api/v1/notifications/stream", get(stream))
}

/// One notification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    /// The event's subject, e.g. `node.state_changed`, `incident.opened`,
    /// `allocation.active`, `compute.container.{id}.started`.
    pub subject: String,
    pub title: String,
    /// The event's ids and states (what to link to).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at: String,
    pub read_at: Option<String>,
}

impl From<&FeedItem> for NotificationView {
    fn from(i: &FeedItem) -> Self {
        Self {
            id: *i.id.as_uuid(),
            subject: i.subject.clone(),
            title: i.title.clone(),
            detail: i.detail.clone(),
            created_at: rfc3339(i.created_at),
            read_at: i.read_at.map(rfc3339),
        }
    }
}

/// A page of notifications, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationPageView {
    pub items: Vec<NotificationView>,
    /// The caller's unread notifications, all pages.
    pub unread: i64,
    /// `before` for the next page, when there may be one.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// Older than this one (the previous page's `next_before`).
    pub before: Option<Uuid>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// These notifications (of the caller's).
    #[schema(max_items = 500)]
    pub ids: Option<Vec<Uuid>>,
    /// Every unread one instead.
    pub all: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarkReadView {
    /// How many were unread and are read now.
    pub marked: u64,
    pub unread: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Send what came after this one first (a reconnect's last id);
    /// without it, only what comes from now on.
    pub after: Option<Uuid>,
}

/// Feeds are users': a service account has none.
fn user(caller: &Caller) -> ApiResult<UserId> {
    caller.require(Permission::Read)?;
    Ok(caller.user_id)
}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    params(NotificationsQuery),
    responses((status = 200, body = NotificationPageView)),
    security(("bearer" = ["read"])))]
/// The caller's notifications, newest first, a page at a time.
pub async fn list_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<Json<NotificationPageView>> {
    let user = user(&caller)?;
    let limit = i64::from(q.limit.unwrap_or(50));
    if !(1..=200).contains(&limit) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "limit",
            "must be between 1 and 200",
        )]));
    }
    let items = state
        .store
        .feed(
            user,
            &FeedQuery {
                unread_only: q.unread.unwrap_or(false),
                before: q.before.map(FeedItemId::from_uuid),
                after: None,
                limit,
            },
        )
        .await?;
    let next_before = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| *i.id.as_uuid()))
        .flatten();
    Ok(Json(NotificationPageView {
        items: items.iter().map(NotificationView::from).collect(),
        unread: state.store.unread_feed_items(user).await?,
        next_before,
    }))
}

#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "notifications",
    request_body = MarkReadRequest,
    responses((status = 200, body = MarkReadView)),
    security(("bearer" = ["read"])))]
/// Marks some of the caller's notifications read (`ids`), or all of them
/// (`all: true`).
pub async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<MarkReadRequest>,
) -> ApiResult<Json<MarkReadView>> {
    let user = user(&caller)?;
    let ids: Option<Vec<FeedItemId>> = match (body.ids, body.all.unwrap_or(false)) {
        (Some(ids), false) if ids.len() <= 500 => {
            Some(ids.into_iter().map(FeedItemId::from_uuid).collect())
        }
        (Some(_), false) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "ids",
                "at most 500 at a time (or `all: true`)",
            )]))
        }
        (None, true) => None,
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "ids",
                "give either `ids` or `all: true`",
            )]))
        }
    };
    let marked = state
        .store
        .mark_feed_read(user, ids.as_deref(), now())
        .await?;
    Ok(Json(MarkReadView {
        marked,
        unread: state.store.unread_feed_items(user).await?,
    }))
}

#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "notifications",
    params(StreamQuery),
    responses((status = 101, description = "WebSocket: one text frame per new notification (a `NotificationView`), oldest first. Browsers offer the subprotocols `hood.v1` and `bearer.{token}` instead of an `Authorization` header; the server selects `hood.v1`."),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket upgrade")),
    security(("bearer" = ["read"])))]
/// The caller's new notifications, live, over WebSocket.
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let user = user(&caller)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::BadRequest(format!(
            "this endpoint speaks WebSocket only (connect with `Upgrade: websocket`): {e}"
        ))
    })?;
    let cursor = match q.after {
        Some(after) => Some(FeedItemId::from_uuid(after)),
        None => state.store.newest_feed_item(user).await?,
    };
    Ok(upgrade
        .protocols([WEBSOCKET_PROTOCOL])
        .on_upgrade(move |socket| follow(socket, state, user, cursor))
        .into_response())
}

/// Sends the user's new items as they arrive, until the client goes.
async fn follow(
    mut socket: WebSocket,
    state: AppState,
    user: UserId,
    mut cursor: Option<FeedItemId>,
) {
    let mut tick = tokio::time::interval(STREAM_POLL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        }
        let query = FeedQuery {
            after: cursor,
            limit: STREAM_BATCH,
            ..FeedQuery::default()
        };
        let items = match (cursor, state.store.feed(user, &query).await) {
            // With no item yet, everything is new.
            (None, Ok(items)) => {
                let mut items = items;
                items.reverse();
                items
            }
            (Some(_), Ok(items)) => items,
            (_, Err(e)) => {
                tracing::warn!(error = %e, "reading a notification feed failed");
                continue;
            }
        };
        for item in &items {
            let Ok(text) = serde_json::to_string(&NotificationView::from(item)) else {
                continue;
            };
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
            cursor = Some(item.id);
        }
    }
}
