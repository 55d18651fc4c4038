//! Workflow runs of the saga engine as the control plane records them: the
//! run, its step journal, the append-only execution log and signals.
//!
//! The engine (`hood-saga`) owns the semantics and the store owns what must
//! be atomic (leases, fenced writes); these are the records both speak.

use crate::lifecycle::{StepState, WorkflowState};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// The lease a worker holds on one workflow: every fenced write names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub workflow_id: String,
    pub owner: String,
    pub generation: i64,
}

/// A workflow run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    /// Deterministic, caller-chosen id (`provision-node-{uuid}`,
    /// `migrate-node-{id}-{version}`): creating it twice creates one run.
    pub id: String,
    pub name: String,
    pub version: i64,
    pub input: serde_json::Value,
    /// Set for child workflows: the parent is woken when this run ends.
    pub parent_id: Option<String>,
    pub created_at: Timestamp,
}

/// One workflow run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub state: WorkflowState,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    /// The error that failed the run (kept through compensation).
    pub error: Option<String>,
    pub parent_id: Option<String>,
    /// Human-readable reason the run is parked (`timer`, `signal:approve`,
    /// `children`, `paused`, `backoff`), for operators.
    pub waiting_for: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When the run is next due to be claimed; `None` = parked until a
    /// signal, a child or an operator wakes it.
    pub next_run_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    /// Fencing token: incremented by every claim.
    pub lease_generation: i64,
    pub lease_expires_at: Option<Timestamp>,
    /// Number of claims so far (a crash loop shows as a growing number).
    pub attempts: i64,
}

impl WorkflowRecord {
    /// The fence of the current lease holder (meaningful right after a
    /// claim).
    pub fn fence(&self) -> Option<Fence> {
        self.lease_owner.as_ref().map(|owner| Fence {
            workflow_id: self.id.clone(),
            owner: owner.clone(),
            generation: self.lease_generation,
        })
    }
}

/// Whether an execution ran a step's action or its undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Action,
    Undo,
}

impl StepKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Action => "action",
            Self::Undo => "undo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "action" => Some(Self::Action),
            "undo" => Some(Self::Undo),
            _ => None,
        }
    }
}

/// One row of the step journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub workflow_id: String,
    pub step_index: i64,
    pub step_name: String,
    pub state: StepState,
    /// Attempt number of the action (1-based; the next one to run while
    /// the step waits out a backoff).
    pub attempt: i64,
    /// Attempt number of the undo (0 until compensation starts).
    pub undo_attempt: i64,
    pub output: Option<serde_json::Value>,
    /// Last error of the action.
    pub error: Option<String>,
    /// Last error of the undo.
    pub undo_error: Option<String>,
    /// The durable timer the step last asked for (sleep until).
    pub wake_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Lease generation of the last write to this row.
    pub generation: i64,
    pub updated_at: Timestamp,
}

/// A workflow with its journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDetail {
    pub workflow: WorkflowRecord,
    /// In step order.
    pub steps: Vec<StepRecord>,
}

/// Start or finish of one execution, in the append-only execution log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionEvent {
    Start,
    Finish,
}

impl ExecutionEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Finish => "finish",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(Self::Start),
            "finish" => Some(Self::Finish),
            _ => None,
        }
    }
}

/// One row of the execution log: the evidence of who ran what, when, under
/// which lease generation. Never updated or deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepExecution {
    /// Insertion order.
    pub seq: i64,
    pub workflow_id: String,
    pub step_index: i64,
    pub step_name: String,
    pub kind: StepKind,
    pub event: ExecutionEvent,
    pub attempt: i64,
    pub owner: String,
    pub generation: i64,
    pub at: Timestamp,
    /// For `finish`: the journaled outcome (`succeeded`, `retry`, ...) or
    /// `lease_lost` when the fenced journal write was rejected.
    pub outcome: Option<String>,
}

/// A signal to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSignal {
    /// Caller-generated UUID.
    pub id: String,
    pub workflow_id: String,
    pub name: String,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// A signal as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub id: String,
    pub workflow_id: String,
    pub name: String,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lease_owner: Option<&str>) -> WorkflowRecord {
        WorkflowRecord {
            id: "w".into(),
            name: "n".into(),
            version: 1,
            state: WorkflowState::Running,
            input: serde_json::Value::Null,
            output: None,
            error: None,
            parent_id: None,
            waiting_for: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            next_run_at: None,
            lease_owner: lease_owner.map(str::to_owned),
            lease_generation: 3,
            lease_expires_at: None,
            attempts: 1,
        }
    }

    #[test]
    fn the_fence_names_the_holder_and_generation() {
        assert_eq!(record(None).fence(), None);
        assert_eq!(
            record(Some("worker-a")).fence(),
            Some(Fence {
                workflow_id: "w".into(),
                owner: "worker-a".into(),
                generation: 3,
            })
        );
    }

    #[test]
    fn kinds_and_events_round_trip_their_names() {
        for k in [StepKind::Action, StepKind::Undo] {
            assert_eq!(StepKind::parse(k.as_str()), Some(k));
        }
        for e in [ExecutionEvent::Start, ExecutionEvent::Finish] {
            assert_eq!(ExecutionEvent::parse(e.as_str()), Some(e));
        }
        assert_eq!(StepKind::parse("redo"), None);
        assert_eq!(ExecutionEvent::parse(""), None);
    }
}
