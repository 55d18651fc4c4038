//! What a runtime reports about its workloads.

use std::process::ExitStatus;

use hood_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::WorkloadId;

/// Lifecycle of one workload as the agent reports it (the wire strings of
/// `WorkloadStatus.state` in the agent protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadState {
    /// Files being written and the process being spawned.
    Starting,
    Running,
    /// Exited; waiting out the backoff before the next start.
    Restarting,
    /// Stopped on request, or exited cleanly with nothing to restart.
    Stopped,
    /// Could not start, exited unsuccessfully under `never`, or gave up
    /// after too many restarts.
    Failed,
}

impl WorkloadState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    /// Whether the supervisor is done with the workload until the next start.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Failed)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited by itself.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    pub at: Timestamp,
}

impl ExitInfo {
    pub fn from_status(status: ExitStatus, at: Timestamp) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: status.code(),
            signal: status.signal(),
            at,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Snapshot of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    pub id: WorkloadId,
    pub state: WorkloadState,
    pub pid: Option<u32>,
    /// Restarts since the last `start` call.
    pub restarts: u32,
    /// When the current (or last) process was spawned.
    pub started_at: Option<Timestamp>,
    pub last_exit: Option<ExitInfo>,
    /// Why the workload is `failed` (or why the last spawn failed).
    pub last_error: Option<String>,
}

impl WorkloadStatus {
    pub(crate) fn new(id: WorkloadId) -> Self {
        Self {
            id,
            state: WorkloadState::Stopped,
            pid: None,
            restarts: 0,
            started_at: None,
            last_exit: None,
            last_error: None,
        }
    }
}

/// Something the agent forwards to the control plane as an `AgentEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    pub id: WorkloadId,
    pub at: Timestamp,
    pub kind: RuntimeEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeEventKind {
    /// A process was spawned (first start or restart).
    Started { pid: u32 },
    /// The process exited by itself.
    Exited { exit: ExitInfo },
    /// A restart is scheduled after `delay_ms`.
    Restarting { attempt: u32, delay_ms: u64 },
    /// The supervisor gave up or could not start; the workload is `failed`.
    Failed { reason: String },
    /// Stopped on request or after a clean final exit.
    Stopped,
}

impl RuntimeEventKind {
    /// The agent protocol's event kind string.
    pub fn wire_kind(&self) -> &'static str {
        match self {
            Self::Started { .. } => "workload_started",
            Self::Exited { .. } => "workload_exited",
            Self::Restarting { .. } => "workload_restarted",
            Self::Failed { .. } => "workload_failed",
            Self::Stopped => "workload_stopped",
        }
    }
}
