//! What passes between the control plane and a host's agent: durable
//! commands and their outcomes, the agent's workload reports and the events
//! it reports.

use crate::lifecycle::CommandState;
use crate::{CommandId, HostId, Timestamp};

/// A durable command for a host's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentCommand {
    pub id: CommandId,
    pub host_id: HostId,
    /// `start_workload`, `stop_workload`, `ping`, …
    pub kind: String,
    pub payload: serde_json::Value,
    /// Unique per host: enqueuing the same key twice yields one command.
    pub idempotency_key: String,
    pub state: CommandState,
    /// Deliveries so far (a redelivery after a lost stream counts again).
    pub attempts: i64,
    pub created_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    pub acked_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub expires_at: Timestamp,
    pub progress_percent: Option<i64>,
    pub progress_message: Option<String>,
    /// Agent's output (JSON) on success.
    pub result: Option<serde_json::Value>,
    /// Agent's (or the expiry's) reason on failure.
    pub error: Option<String>,
}

impl AgentCommand {
    /// A fresh `queued` command; `idempotency_key` defaults to the id.
    pub fn new(
        id: CommandId,
        host_id: HostId,
        kind: impl Into<String>,
        payload: serde_json::Value,
        idempotency_key: Option<String>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        Self {
            id,
            host_id,
            kind: kind.into(),
            payload,
            idempotency_key: idempotency_key.unwrap_or_else(|| id.to_string()),
            state: CommandState::Queued,
            attempts: 0,
            created_at: now,
            dispatched_at: None,
            acked_at: None,
            finished_at: None,
            expires_at,
            progress_percent: None,
            progress_message: None,
            result: None,
            error: None,
        }
    }
}

/// How a command ended, as reported by the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandFinish {
    Succeeded(serde_json::Value),
    Failed(String),
}

/// The latest status of one workload on a host, from the agent's reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadReport {
    pub workload_id: String,
    /// `starting | running | restarting | stopped | failed`.
    pub state: String,
    pub pid: Option<i64>,
    pub restarts: i64,
    /// Latest observation (head height, syncing, …), JSON.
    pub observation: serde_json::Value,
    pub updated_at: Timestamp,
}

/// Something the agent reported (workload started/exited, cert renewed, …).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEventRecord {
    /// Assigned by the store; 0 when inserting.
    pub seq: i64,
    pub host_id: HostId,
    pub kind: String,
    pub workload_id: Option<String>,
    pub message: String,
    pub payload: serde_json::Value,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_new_command_is_queued_and_keyed_by_its_id_unless_told_otherwise() {
        let id = CommandId::from_uuid(Uuid::from_u128(7));
        let host = HostId::from_uuid(Uuid::from_u128(8));
        let cmd = AgentCommand::new(
            id,
            host,
            "ping",
            serde_json::Value::Null,
            None,
            Timestamp(10),
            Timestamp(20),
        );
        assert_eq!(cmd.state, CommandState::Queued);
        assert_eq!(cmd.idempotency_key, id.to_string());
        assert_eq!(
            (cmd.attempts, cmd.created_at, cmd.expires_at),
            (0, Timestamp(10), Timestamp(20))
        );
        let keyed = AgentCommand::new(
            id,
            host,
            "ping",
            serde_json::Value::Null,
            Some("start:1".into()),
            Timestamp(10),
            Timestamp(20),
        );
        assert_eq!(keyed.idempotency_key, "start:1");
    }
}
