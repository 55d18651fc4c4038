//! The agent's end of a terminal session: one `Terminal` stream to the
//! gateway per session, dialed when a signed `open_terminal` task asks.

use crate::{AgentError, AgentHandle};
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::terminal_up::Body as Up;
use hood_agent_proto::v1::{TerminalDown, TerminalOpen, TerminalUp};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

impl AgentHandle {
    /// Dials the gateway's `Terminal` stream for `session`: returns where
    /// the PTY's output goes and what comes down from the clients.
    pub async fn open_terminal(
        &self,
        session: uuid::Uuid,
    ) -> Result<(mpsc::Sender<TerminalUp>, Streaming<TerminalDown>), AgentError> {
        let (tx, rx) = mpsc::channel(64);
        tx.send(TerminalUp {
            body: Some(Up::Open(TerminalOpen {
                session_id: session.to_string(),
            })),
        })
        .await
        .map_err(|_| AgentError::Config("terminal stream closed before it opened".into()))?;
        let down = AgentGatewayClient::new(self.channel()?)
            .terminal(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok((tx, down))
    }
}
