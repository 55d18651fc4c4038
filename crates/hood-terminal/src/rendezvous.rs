//! Where a host's terminal stream meets its session. In the process that
//! holds the session that is the hub itself; elsewhere (an agent gateway
//! apart from the API) a relay to the process that does. The gateway only
//! sees this trait.

use crate::hub::{AgentInput, HubError, Session, TerminalHub};
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The host's end of a session: where its PTY's output goes.
#[async_trait]
pub trait AgentEnd: Send + Sync {
    /// Output from the PTY, in order.
    async fn output(&self, data: &[u8]);
    /// The shell exited or the host's stream ended; once.
    async fn finish(&self, code: Option<i32>, reason: &str);
}

/// A host's stream joined to its session: output goes to `end`, what the
/// clients send arrives on `input` (ending with [`AgentInput::Close`] or
/// the channel's end).
pub struct AgentLink {
    pub end: Box<dyn AgentEnd>,
    pub input: mpsc::UnboundedReceiver<AgentInput>,
}

/// Joins a host's terminal stream to session `session`, which only host
/// `host_id` may serve.
#[async_trait]
pub trait AgentRendezvous: Send + Sync {
    async fn attach_agent(&self, session: Uuid, host_id: &str) -> Result<AgentLink, HubError>;
}

#[async_trait]
impl AgentEnd for Arc<Session> {
    async fn output(&self, data: &[u8]) {
        Session::output(self, data);
    }

    async fn finish(&self, code: Option<i32>, reason: &str) {
        Session::finish(self, code, reason);
    }
}

#[async_trait]
impl AgentRendezvous for TerminalHub {
    async fn attach_agent(&self, session: Uuid, host_id: &str) -> Result<AgentLink, HubError> {
        let (session, input) = TerminalHub::attach_agent(self, session, host_id)?;
        Ok(AgentLink {
            end: Box::new(session),
            input,
        })
    }
}
