//! `GET /api/v1/allocations/{id}/terminal`: a WebSocket to a shell inside
//! the allocation (the frame format is `hood_terminal::frame`'s).
//!
//! The first message is text, JSON: `{"session_id", "allocation_id",
//! "offset"}`, the offset the next output byte will have. Keep the session
//! id and the offset after the last byte received; reconnecting with
//! `?session=…&offset=…` resumes exactly there.

use crate::auth::Caller;
use crate::extract::{PathId, Query};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::routes::allocations::audit_context;
use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hood_domain::identity::Permission;
use hood_domain::AllocationId;
use hood_terminal::{ClientFrame, Read, Replay, ServerFrame, Session};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;
use uuid::Uuid;

/// Output goes out in frames of at most this.
const MAX_OUTPUT_FRAME: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/allocations/{allocation_id}/terminal",
        get(allocation_terminal),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TerminalQuery {
    /// Resume this session (from an earlier connection's first message)
    /// instead of opening a new one.
    pub session: Option<Uuid>,
    /// With `session`: the offset after the last output byte received.
    pub offset: Option<u64>,
    /// The window's columns (1-1000, default 80) for a new session.
    pub cols: Option<u16>,
    /// The window's rows (1-1000, default 24) for a new session.
    pub rows: Option<u16>,
}

#[utoipa::path(get, path = "/api/v1/allocations/{allocation_id}/terminal", tag = "allocations",
    params(("allocation_id" = Uuid, Path), TerminalQuery),
    responses((status = 101, description = "WebSocket: a text frame `{session_id, allocation_id, offset}`, then binary frames of one type byte each: 0 input, 1 output (u64 offset, bytes), 2 resize (u16 cols, u16 rows), 3 pause, 4 resume, 5 screen snapshot (u64 offset, bytes), 6 exit (i32 code, reason)"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "Not a WebSocket upgrade, or a window size out of range"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such allocation in the organization, or no such session of it (ended long ago)"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "The allocation is not active, or its host could not open a shell"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "No agent gateway can reach this process's sessions (neither one in this process nor a relay over NATS), or the host's agent did not answer")),
    security(("bearer" = ["read", "operate"])))]
/// A terminal into the allocation's sandbox over WebSocket; recorded
/// (asciicast v2 in the object store) and audited.
pub async fn allocation_terminal(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    PathId(id): PathId<AllocationId>,
    Query(q): Query<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    caller.require_grant(
        Permission::Operate,
        crate::routes::allocations::allocation_scope(id),
        hood_domain::scope::Action::Update,
    )?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::BadRequest(format!(
            "this endpoint speaks WebSocket only (connect with `Upgrade: websocket`): {e}"
        ))
    })?;
    let terminals = state.terminals.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "terminals need an agent gateway in this process or a relay over NATS (HOOD_NATS_URL)"
                .into(),
        )
    })?;
    let (session, offset) = match q.session {
        Some(session) => (
            terminals.find(caller.org_id, id, session)?,
            q.offset.unwrap_or(0),
        ),
        None => {
            let ctx = audit_context(&caller, &headers);
            let session = terminals
                .open(
                    caller.org_id,
                    id,
                    q.cols.unwrap_or(80),
                    q.rows.unwrap_or(24),
                    &ctx,
                )
                .await?;
            (session, 0)
        }
    };
    Ok(upgrade
        .on_upgrade(move |socket| serve(socket, session, offset))
        .into_response())
}

/// One client connection to a session, until either goes away.
async fn serve(mut socket: WebSocket, session: Arc<Session>, mut offset: u64) {
    session.client_attached();
    let hello = serde_json::json!({
        "session_id": session.info().id,
        "allocation_id": session.info().allocation_id,
        "offset": offset,
    });
    let mut changed = session.subscribe();
    let mut paused = false;
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok()
    {
        loop {
            if !paused {
                let frame = match session.read(offset) {
                    Read::Replay(Replay::Bytes { data, .. }) if !data.is_empty() => {
                        let data: Vec<u8> = data.into_iter().take(MAX_OUTPUT_FRAME).collect();
                        let frame = ServerFrame::Output { offset, data };
                        if let ServerFrame::Output { data, .. } = &frame {
                            offset += data.len() as u64;
                        }
                        Some(frame)
                    }
                    Read::Replay(Replay::Screen {
                        offset: next,
                        screen,
                    }) => {
                        offset = next;
                        Some(ServerFrame::Snapshot {
                            offset: next,
                            screen,
                        })
                    }
                    Read::Ended(ended) => {
                        let _ = socket
                            .send(Message::Binary(
                                ServerFrame::Exit {
                                    code: ended.code,
                                    reason: ended.reason,
                                }
                                .encode()
                                .into(),
                            ))
                            .await;
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                    Read::Replay(Replay::Bytes { .. }) => None,
                };
                if let Some(frame) = frame {
                    if socket
                        .send(Message::Binary(frame.encode().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                changed = changed.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                message = socket.recv() => match message {
                    Some(Ok(Message::Binary(bytes))) => match ClientFrame::decode(&bytes) {
                        Ok(ClientFrame::Pause) => paused = true,
                        Ok(ClientFrame::Resume) => paused = false,
                        // An ended session answers with its exit above.
                        Ok(frame) => {
                            let _ = session.input(frame);
                        }
                        Err(e) => {
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame {
                                    // 1003: data the endpoint cannot accept.
                                    code: 1003,
                                    reason: e.to_string().into(),
                                })))
                                .await;
                            break;
                        }
                    },
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    session.client_detached();
}
