//! The gateway's end of terminal sessions: an agent's `Terminal` stream
//! joined to its session in the hub. Only the host a session was opened
//! for may serve it.

use crate::shared::Shared;
use hood_agent_proto::v1::terminal_down::Body as Down;
use hood_agent_proto::v1::terminal_up::Body as Up;
use hood_agent_proto::v1::{TerminalDown, TerminalSize, TerminalUp};
use hood_terminal::{AgentInput, HubError};
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

/// How long an agent has to name its session after dialing.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Joins `inbound` (already authenticated as `host_id`) to its session;
/// returns the stream of what goes down to the agent.
pub(crate) async fn open(
    shared: Arc<Shared>,
    host_id: String,
    mut inbound: Streaming<TerminalUp>,
) -> Result<mpsc::Receiver<Result<TerminalDown, Status>>, Status> {
    let rendezvous = shared
        .terminals
        .clone()
        .ok_or_else(|| Status::unimplemented("this gateway serves no terminals"))?;
    let first = tokio::time::timeout(OPEN_TIMEOUT, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no TerminalOpen in time"))??;
    let session_id = match first.and_then(|m| m.body) {
        Some(Up::Open(open)) => open
            .session_id
            .parse::<uuid::Uuid>()
            .map_err(|_| Status::invalid_argument("session_id is not a UUID"))?,
        _ => {
            return Err(Status::invalid_argument(
                "the first message must be TerminalOpen",
            ))
        }
    };
    let link = rendezvous
        .attach_agent(session_id, &host_id)
        .await
        .map_err(|e| match e {
            HubError::NoSession(_) => Status::not_found(e.to_string()),
            HubError::WrongHost(_) => {
                tracing::warn!(host_id = %host_id, session = %session_id,
                    "refused a terminal stream for another host's session");
                Status::permission_denied(e.to_string())
            }
            HubError::AlreadyAttached(_) => Status::already_exists(e.to_string()),
            HubError::Ended { .. } => Status::failed_precondition(e.to_string()),
            HubError::Unreachable { .. } => Status::unavailable(e.to_string()),
        })?;
    let (session, mut input) = (link.end, link.input);
    tracing::info!(host_id = %host_id, session = %session_id, "terminal stream opened");
    let (tx, rx) = mpsc::channel::<Result<TerminalDown, Status>>(64);
    // Down: what clients send, until the session closes.
    tokio::spawn(async move {
        while let Some(message) = input.recv().await {
            let body = match message {
                AgentInput::Data(data) => Down::Input(data),
                AgentInput::Resize { cols, rows } => Down::Resize(TerminalSize {
                    cols: u32::from(cols),
                    rows: u32::from(rows),
                }),
                AgentInput::Close => Down::Close(true),
            };
            let close = matches!(body, Down::Close(_));
            if tx
                .send(Ok(TerminalDown { body: Some(body) }))
                .await
                .is_err()
            {
                break;
            }
            if close {
                break;
            }
        }
    });
    // Up: output until the shell exits or the stream breaks.
    let mut stop = shared.stop.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                m = inbound.message() => m,
                _ = stop.changed() => {
                    session.finish(None, "the agent gateway stopped").await;
                    return;
                }
            };
            match message {
                Ok(Some(TerminalUp {
                    body: Some(Up::Output(data)),
                })) => session.output(&data).await,
                Ok(Some(TerminalUp {
                    body: Some(Up::Exit(exit)),
                })) => {
                    session.finish(exit.code, &exit.reason).await;
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    session.finish(None, "the host closed the terminal").await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(session = %session_id, error = %e,
                        "terminal stream from the host broke");
                    session
                        .finish(None, "the host's terminal stream broke")
                        .await;
                    return;
                }
            }
        }
    });
    Ok(rx)
}
