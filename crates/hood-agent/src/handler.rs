//! Command execution is delegated: the runtime adapters (process, systemd,
//! docker) implement [`CommandHandler`]; the agent only delivers, de-
//! duplicates and reports.

use crate::handle::AgentHandle;
use async_trait::async_trait;
use hood_agent_proto::v1::agent_message::Body as Up;
use hood_agent_proto::v1::CommandProgress;
use hood_domain::CommandId;
use hood_identity::tasks::{SignedTask, TaskRefusal, TaskVerifier};

/// A failed command; the message goes back to the control plane verbatim,
/// so it must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

impl From<String> for CommandError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for CommandError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The status of one workload, reported in `Hello` and every heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub workload_id: String,
    /// `starting | running | restarting | stopped | failed`.
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// Latest observation (head height, syncing, …).
    pub observation: serde_json::Value,
}

/// What a handler gets besides the payload: the command id, a progress
/// reporter and the agent (artifacts, node keys, events).
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub command_id: CommandId,
    pub agent: AgentHandle,
}

impl CommandContext {
    /// The parameters of a signed task kind, once their signature verifies
    /// against the task key this agent pinned at enrollment and they name
    /// this host and `kind` and have not expired. Nothing may run
    /// otherwise: whoever can write the command queue without the control
    /// plane's key cannot make this host run anything.
    pub fn verified<T: serde::de::DeserializeOwned>(
        &self,
        payload: serde_json::Value,
        kind: &str,
    ) -> Result<T, CommandError> {
        let refused = |why: TaskRefusal| {
            tracing::warn!(kind, command_id = %self.command_id, reason = %why, "refused a task");
            CommandError(format!("refused: {why}"))
        };
        let (host, key) = self
            .agent
            .task_trust()
            .ok_or_else(|| CommandError("this agent is not enrolled".into()))?;
        let key = key.ok_or(TaskRefusal::NoKey).map_err(refused)?;
        let verifier = TaskVerifier::from_base64(&key).map_err(refused)?;
        let signed: SignedTask =
            serde_json::from_value(payload).map_err(|_| refused(TaskRefusal::Unsigned))?;
        verifier
            .verify(&signed, host, kind, hood_clock::now())
            .map_err(refused)
    }

    /// Reports progress of a long-running command (best effort).
    pub fn progress(&self, percent: u32, message: &str) {
        self.agent.send_up(Up::Progress(CommandProgress {
            command_id: self.command_id.to_string(),
            message: message.to_owned(),
            percent: percent.min(100),
        }));
    }
}

/// Executes commands. Called at most once per command id, ever.
#[async_trait]
pub trait CommandHandler: Send + Sync + 'static {
    /// Runs `kind` with its JSON payload; the output (JSON) or the error is
    /// reported as the command's result.
    async fn handle(
        &self,
        kind: &str,
        payload: serde_json::Value,
        ctx: &CommandContext,
    ) -> Result<serde_json::Value, CommandError>;

    /// The workloads this handler runs, for heartbeats. None by default.
    async fn workloads(&self) -> Vec<Workload> {
        Vec::new()
    }
}

/// Handles only the built-in no-op commands (`ping`, `tail_logs`): for
/// tests and for checking a fresh host end to end.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinHandler;

#[async_trait]
impl CommandHandler for BuiltinHandler {
    async fn handle(
        &self,
        kind: &str,
        payload: serde_json::Value,
        ctx: &CommandContext,
    ) -> Result<serde_json::Value, CommandError> {
        match kind {
            "ping" => Ok(serde_json::json!({
                "pong": true,
                "host_id": ctx.agent.host_id(),
                "echo": payload,
            })),
            "tail_logs" => Ok(serde_json::json!({ "lines": [] })),
            other => Err(CommandError(format!("unknown command kind `{other}`"))),
        }
    }
}
