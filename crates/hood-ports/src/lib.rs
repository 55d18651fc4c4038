//! The ports between Hood's roles.
//!
//! A role that needs another to act asks through one of these traits; the
//! role that acts implements it; the binary wires the two. So the HTTP
//! layer and the health role never depend on the orchestrator, and the
//! orchestrator never depends on them (ARCHITECTURE.md's layer order).

use async_trait::async_trait;
use hood_domain::allocation::Allocation;
use hood_domain::node::Node;
use hood_domain::workload::{AllocationLogs, LogCursor, NodeLogs, TerminalTask};
use hood_domain::{HostId, NodeId};
use std::collections::BTreeMap;

/// Why a port could not do what was asked. The variants map to the answer a
/// caller gives its own caller (404, 409, 503, 500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The target (workflow, node, host) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The target is not in a state the request applies to.
    #[error("{0}")]
    Conflict(String),
    /// A dependency did not answer (an agent, the database); try again.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// What the use cases ask of the orchestrator. Starting a workflow is not
/// here: it is a row the use case writes in its own transaction, and
/// [`Self::workflows_due`] only shortens the wait for a worker to see it.
#[async_trait]
pub trait NodeOperations: Send + Sync {
    /// Host providers that can place nodes (`local`, …).
    fn providers(&self) -> Vec<String>;
    /// Workflow rows were just written: wake this process's workers (other
    /// processes' workers find them at their next poll).
    fn workflows_due(&self);
    /// Operator: re-runs the compensation of a `stuck` workflow.
    async fn retry_workflow(&self, id: &str) -> Result<(), PortError>;
    /// Operator: gives up on a `stuck` workflow (leftovers are the
    /// operator's).
    async fn abandon_workflow(&self, id: &str, reason: &str) -> Result<(), PortError>;
    /// The last `lines` log lines of each process of a running node, by
    /// process name (asks the node's agent).
    async fn node_logs(&self, node: &Node, lines: u32) -> Result<serde_json::Value, PortError>;
    /// Each process's log lines with cursors to follow them: after the
    /// cursors in `after`, else the last `lines` (asks the node's agent).
    async fn follow_node_logs(
        &self,
        node: &Node,
        lines: u32,
        after: BTreeMap<String, LogCursor>,
    ) -> Result<NodeLogs, PortError> {
        let _ = (node, lines, after);
        Err(PortError::Unavailable(
            "this orchestrator cannot follow node logs".into(),
        ))
    }
    /// Deletes one snapshot of a node: its objects, then its record.
    async fn delete_snapshot(&self, node: NodeId, name: &str) -> Result<(), PortError>;
}

/// What the allocation use cases ask of the orchestrator.
#[async_trait]
pub trait AllocationOperations: Send + Sync {
    /// The last `lines` lines an allocation's sandbox wrote, or with
    /// `after` those written since (asks its host's agent).
    async fn allocation_logs(
        &self,
        allocation: &Allocation,
        lines: u32,
        after: Option<LogCursor>,
    ) -> Result<AllocationLogs, PortError>;

    /// Asks the allocation's agent to start a shell in its sandbox for
    /// terminal session `task.session_id` (a signed task); returns once
    /// the shell runs and the agent dialed its stream.
    async fn open_terminal(
        &self,
        _allocation: &Allocation,
        _task: &TerminalTask,
    ) -> Result<(), PortError> {
        Err(PortError::Unavailable(
            "this orchestrator cannot open terminals".into(),
        ))
    }
}

/// What the health role asks of the orchestrator: the health role decides,
/// workflows act.
#[async_trait]
pub trait NodeRecovery: Send + Sync {
    /// Starts (or finds) the migration of `node` down at `version`; the
    /// workflow id is derived from both, so every replica asking about the
    /// same outage starts the same run. Returns the run's id.
    async fn start_migration(&self, node: NodeId, version: i64) -> Result<String, PortError>;
    /// Deletes a host nothing runs on any more (orphaned, or quarantined
    /// and seen again).
    async fn reap_host(&self, host: HostId) -> Result<(), PortError>;
}
