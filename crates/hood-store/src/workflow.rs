//! Durable workflow journal for the saga engine (`hood-saga`): workflow
//! runs, their step journal, an append-only step-execution log, signals,
//! durable timers and leases with fencing generations.
//!
//! The engine owns the semantics; this module owns what must be atomic:
//!
//! * **Leases.** A worker claims a runnable workflow
//!   ([`WorkflowStore::claim_workflow`]), which bumps `lease_generation`.
//!   Every journal write and state change afterwards carries a [`Fence`]
//!   (owner + generation) and is applied only while the row still holds that
//!   generation; otherwise it fails with [`StoreError::Conflict`]`("lease")`
//!   (see [`is_lease_lost`]). A worker whose lease was stolen can therefore
//!   never write again.
//! * **Timers.** `next_run_at` is when the run should next be claimed
//!   (retry backoff, sleep until, signal or child wake-up); `NULL` parks it
//!   until something sets it.
//! * **No lost wake-ups.** Parking ([`WorkflowStore::update_workflow`]),
//!   sending a signal and finishing a child all lock the workflow row first,
//!   then look at signals/children, so a signal or a child finishing while
//!   the run is being parked always leaves it due.
//! * **Transitions.** Every state change goes through
//!   [`StateMachine::transition`]; a move the table does not allow is
//!   [`StoreError::InvalidTransition`].
//!
//! The records (runs, steps, executions, signals, [`Fence`]) are domain
//! types (`hood_domain::workflow`), re-exported here; what stays is store
//! mechanics: claims, filters and the change-sets of fenced writes.
//!
//! [`StateMachine::transition`]: hood_domain::machine::StateMachine::transition

use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::Timestamp;

pub use hood_domain::workflow::{
    ExecutionEvent, Fence, NewSignal, NewWorkflow, SignalRecord, StepExecution, StepKind,
    StepRecord, WorkflowDetail, WorkflowRecord,
};

/// What [`StoreError::Conflict`] names when a fenced write finds that the
/// caller no longer holds the lease (expired and claimed by someone else, or
/// the workflow left the state the write expected).
pub const LEASE_CONFLICT: &str = "lease";

/// True when `err` is a fenced write rejected because the lease was lost:
/// the caller must stop working on that workflow at once.
pub fn is_lease_lost(err: &StoreError) -> bool {
    matches!(err, StoreError::Conflict(what) if what == LEASE_CONFLICT)
}

/// Which runs a worker may claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    pub owner: String,
    pub now: Timestamp,
    pub lease_expires_at: Timestamp,
    /// `(name, version)` pairs the worker knows. Runs of other definitions
    /// are never claimed (left untouched rather than mis-replayed). Empty =
    /// claim nothing.
    pub definitions: Vec<(String, i64)>,
}

/// Filter for [`WorkflowStore::list_workflows`]; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowFilter {
    pub state: Option<WorkflowState>,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    /// At most this many (newest first); `None` = all.
    pub limit: Option<i64>,
}

/// A fenced change of the workflow row (state, result, timer, lease).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowUpdate {
    /// Target state; equal to the current one means "no transition".
    pub to: WorkflowState,
    pub now: Timestamp,
    /// With `release`: when the run is next due (`None` = parked until a
    /// signal, a child or an operator). Without: ignored, the run stays due
    /// (`now`) so that it is resumed as soon as the lease expires should
    /// the worker die. Terminal and stuck states always clear it.
    pub next_run_at: Option<Timestamp>,
    /// Sets `output` when `Some`.
    pub output: Option<serde_json::Value>,
    /// Sets `error` when `Some` (otherwise keeps it).
    pub error: Option<String>,
    /// Replaces `waiting_for`.
    pub waiting_for: Option<String>,
    /// Drops the lease (the worker is done with the run for now).
    pub release: bool,
    /// When any unconsumed signal with one of these names exists (checked
    /// under the row lock), the run is due at once instead of parked.
    pub wake_on_signals: Vec<String>,
    /// Likewise when any of these workflows has finished.
    pub wake_on_children: Vec<String>,
    /// Signal ids consumed by this change.
    pub consume_signals: Vec<String>,
}

impl WorkflowUpdate {
    /// A change to `to` that keeps everything else (timer cleared).
    pub fn to(to: WorkflowState, now: Timestamp) -> Self {
        Self {
            to,
            now,
            next_run_at: None,
            output: None,
            error: None,
            waiting_for: None,
            release: false,
            wake_on_signals: Vec::new(),
            wake_on_children: Vec::new(),
            consume_signals: Vec::new(),
        }
    }
}

/// The start of an action or undo execution.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStart {
    pub index: i64,
    pub name: String,
    pub kind: StepKind,
    pub attempt: i64,
    pub now: Timestamp,
}

/// How an execution ended, as journaled.
#[derive(Debug, Clone, PartialEq)]
pub enum StepFinish {
    /// Action done: `running -> succeeded`.
    Succeeded { output: serde_json::Value },
    /// Action attempt failed, retries left: `running -> pending`, the
    /// attempt counter moves to `next_attempt`.
    Retry { error: String, next_attempt: i64 },
    /// Action suspended itself (sleep, wait for a signal or child):
    /// `running -> pending`, same attempt, optional durable timer.
    Suspended { wake_at: Option<Timestamp> },
    /// Action failed for good: `running -> failed`.
    Failed { error: String },
    /// Undo done: `compensating -> compensated`.
    Compensated,
    /// Undo attempt failed, retries left: stays `compensating`.
    UndoRetry { error: String, next_attempt: i64 },
    /// Undo failed for good: `compensating -> undo_failed`.
    UndoFailed { error: String },
}

impl StepFinish {
    /// Outcome name recorded in the execution log.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Succeeded { .. } => "succeeded",
            Self::Retry { .. } => "retry",
            Self::Suspended { .. } => "suspended",
            Self::Failed { .. } => "failed",
            Self::Compensated => "compensated",
            Self::UndoRetry { .. } => "undo_retry",
            Self::UndoFailed { .. } => "undo_failed",
        }
    }

    pub const fn kind(&self) -> StepKind {
        match self {
            Self::Succeeded { .. }
            | Self::Retry { .. }
            | Self::Suspended { .. }
            | Self::Failed { .. } => StepKind::Action,
            Self::Compensated | Self::UndoRetry { .. } | Self::UndoFailed { .. } => StepKind::Undo,
        }
    }
}

/// The end of an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct StepEnd {
    pub index: i64,
    /// The attempt that ran (recorded in the log).
    pub attempt: i64,
    pub now: Timestamp,
    pub finish: StepFinish,
    /// Signals the action read; consumed only together with success.
    pub consume_signals: Vec<String>,
}

/// Durable workflow journal for the saga engine (`hood-saga`): workflows,
/// step journal, signals, timers, leases with fencing generations.
#[async_trait]
pub trait WorkflowStore: crate::clock::DatabaseClock + Send + Sync {
    // -- creation and reads --

    /// Creates a `pending` run due now. Idempotent by id: an existing run
    /// with the same name and version is returned with `false`; one of a
    /// different name or version is `Conflict("workflow id")`. A
    /// `parent_id` that does not exist is `NotFound("parent workflow")`.
    async fn create_workflow(&self, new: &NewWorkflow) -> StoreResult<(WorkflowRecord, bool)>;
    async fn get_workflow(&self, id: &str) -> StoreResult<Option<WorkflowRecord>>;
    /// The run with its step journal.
    async fn get_workflow_detail(&self, id: &str) -> StoreResult<Option<WorkflowDetail>>;
    /// Newest first.
    async fn list_workflows(&self, filter: &WorkflowFilter) -> StoreResult<Vec<WorkflowRecord>>;
    /// The step journal of one run, in step order.
    async fn list_steps(&self, workflow_id: &str) -> StoreResult<Vec<StepRecord>>;
    /// The execution log of one run (or of all runs), in insertion order.
    async fn list_step_executions(
        &self,
        workflow_id: Option<&str>,
    ) -> StoreResult<Vec<StepExecution>>;

    // -- leases --

    /// Claims the most overdue runnable run (due, not leased by anyone
    /// live, of a known definition, not stuck or finished): sets the owner
    /// and expiry, increments the generation and the claim count. `None`
    /// when nothing is due. Safe with any number of concurrent claimers.
    async fn claim_workflow(&self, req: &ClaimRequest) -> StoreResult<Option<WorkflowRecord>>;
    /// Extends the lease; lease lost when the generation moved on.
    async fn renew_lease(&self, fence: &Fence, expires_at: Timestamp) -> StoreResult<()>;
    /// Drops the lease, keeping the state; the run is next due at
    /// `next_run_at` (used between retry attempts).
    async fn release_lease(
        &self,
        fence: &Fence,
        next_run_at: Option<Timestamp>,
        waiting_for: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Drops every lease (generations keep counting). Only for a single
    /// worker starting up on a database no other process uses (embedded
    /// mode): leases found then belong to a process that died.
    async fn clear_leases(&self, now: Timestamp) -> StoreResult<u64>;
    /// When the next run of one of `definitions` becomes claimable (its
    /// `next_run_at`, or its lease expiry if later), so an idle worker knows
    /// how long it may sleep.
    async fn next_due_at(&self, definitions: &[(String, i64)]) -> StoreResult<Option<Timestamp>>;

    // -- fenced journal writes --

    /// Changes the workflow row (see [`WorkflowUpdate`]). A change to a
    /// terminal state wakes the parent, if any. Returns the updated row.
    async fn update_workflow(
        &self,
        fence: &Fence,
        update: &WorkflowUpdate,
    ) -> StoreResult<WorkflowRecord>;
    /// Journals the start of an action (`pending -> running`; a step found
    /// `running` was interrupted by a crash and stays `running`) or of an
    /// undo (`succeeded`/`undo_failed -> compensating`; `compensating`
    /// stays), and appends a `start` to the execution log.
    async fn start_step(&self, fence: &Fence, start: &StepStart) -> StoreResult<()>;
    /// Journals the end of an execution and appends a `finish` to the log.
    /// When the fence fails the log row is still written (outcome
    /// `lease_lost`) and the error returned. Returns the number of
    /// unconsumed signals of the run, so the engine knows whether to look.
    async fn finish_step(&self, fence: &Fence, end: &StepEnd) -> StoreResult<i64>;
    /// Marks a succeeded step without an undo as compensated
    /// (`succeeded -> compensating -> compensated`), without a log entry:
    /// nothing ran.
    async fn skip_undo(&self, fence: &Fence, index: i64, now: Timestamp) -> StoreResult<()>;

    // -- signals --

    /// Records a signal; a `waiting` or `paused` run becomes due at once.
    /// `NotFound("workflow")` for an unknown run; a finished one is
    /// `Conflict("workflow finished")`.
    async fn send_signal(&self, signal: &NewSignal) -> StoreResult<()>;
    /// Unconsumed signals of a run, oldest first.
    async fn pending_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>>;
    /// Every signal of a run, oldest first.
    async fn list_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>>;

    // -- operator actions (no lease: only on runs no worker may claim) --

    /// `stuck -> compensating`: steps whose undo failed go back to
    /// `compensating` with a fresh undo budget; the run is due now.
    async fn retry_stuck(&self, id: &str, now: Timestamp) -> StoreResult<WorkflowRecord>;
    /// `stuck -> abandoned` (terminal); leftover effects are the operator's.
    async fn abandon_stuck(
        &self,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<WorkflowRecord>;
    /// `pending -> failed` for a run no worker holds, with `error` (a run of
    /// an unknown definition refused by an operator or a single worker).
    async fn refuse_workflow(
        &self,
        id: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<WorkflowRecord>;
}
