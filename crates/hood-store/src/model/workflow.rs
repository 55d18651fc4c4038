//! Rows of the workflow journal.

use crate::codec::{self, opt_ts};
use crate::StoreError;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::workflow::{
    ExecutionEvent, SignalRecord, StepExecution, StepKind, StepRecord, WorkflowRecord,
};
use hood_domain::Timestamp;

pub(crate) const WORKFLOW_COLUMNS: &str = "id, name, version, state, input, output, error, \
     parent_id, waiting_for, created_at, updated_at, next_run_at, lease_owner, lease_generation, \
     lease_expires_at, attempts";

#[derive(sqlx::FromRow)]
pub(crate) struct WorkflowRow {
    id: String,
    name: String,
    version: i64,
    state: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
    parent_id: Option<String>,
    waiting_for: Option<String>,
    created_at: i64,
    updated_at: i64,
    next_run_at: Option<i64>,
    lease_owner: Option<String>,
    lease_generation: i64,
    lease_expires_at: Option<i64>,
    attempts: i64,
}

impl TryFrom<WorkflowRow> for WorkflowRecord {
    type Error = StoreError;
    fn try_from(r: WorkflowRow) -> Result<Self, StoreError> {
        Ok(WorkflowRecord {
            id: r.id,
            name: r.name,
            version: r.version,
            state: codec::parse_state("workflows.state", &r.state)?,
            input: codec::parse_json("workflows.input", &r.input)?,
            output: codec::parse_opt_json("workflows.output", r.output.as_deref())?,
            error: r.error,
            parent_id: r.parent_id,
            waiting_for: r.waiting_for,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            next_run_at: opt_ts(r.next_run_at),
            lease_owner: r.lease_owner,
            lease_generation: r.lease_generation,
            lease_expires_at: opt_ts(r.lease_expires_at),
            attempts: r.attempts,
        })
    }
}

pub(crate) const STEP_COLUMNS: &str = "workflow_id, step_index, step_name, state, attempt, \
     undo_attempt, output, error, undo_error, wake_at, started_at, finished_at, generation, \
     updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct StepRow {
    workflow_id: String,
    step_index: i64,
    step_name: String,
    state: String,
    attempt: i64,
    undo_attempt: i64,
    output: Option<String>,
    error: Option<String>,
    undo_error: Option<String>,
    wake_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    generation: i64,
    updated_at: i64,
}

impl TryFrom<StepRow> for StepRecord {
    type Error = StoreError;
    fn try_from(r: StepRow) -> Result<Self, StoreError> {
        Ok(StepRecord {
            workflow_id: r.workflow_id,
            step_index: r.step_index,
            step_name: r.step_name,
            state: codec::parse_state("workflow_steps.state", &r.state)?,
            attempt: r.attempt,
            undo_attempt: r.undo_attempt,
            output: codec::parse_opt_json("workflow_steps.output", r.output.as_deref())?,
            error: r.error,
            undo_error: r.undo_error,
            wake_at: opt_ts(r.wake_at),
            started_at: opt_ts(r.started_at),
            finished_at: opt_ts(r.finished_at),
            generation: r.generation,
            updated_at: Timestamp(r.updated_at),
        })
    }
}

/// A fenced run joined to one of its steps, which may not exist yet (a
/// `LEFT JOIN`: every step column is then NULL), with the run's count of
/// unconsumed signals. Select `run_state`, `pending_signals` and the
/// [`STEP_COLUMNS`] of the step.
#[derive(sqlx::FromRow)]
pub(crate) struct FencedStepRow {
    run_state: String,
    pending_signals: i64,
    workflow_id: Option<String>,
    step_index: Option<i64>,
    step_name: Option<String>,
    state: Option<String>,
    attempt: Option<i64>,
    undo_attempt: Option<i64>,
    output: Option<String>,
    error: Option<String>,
    undo_error: Option<String>,
    wake_at: Option<i64>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    generation: Option<i64>,
    updated_at: Option<i64>,
}

/// What a step write needs, in one round trip (see [`FencedStepRow`]).
pub(crate) struct FencedStep {
    pub(crate) state: WorkflowState,
    pub(crate) step: Option<StepRecord>,
    pub(crate) pending_signals: i64,
}

impl TryFrom<FencedStepRow> for FencedStep {
    type Error = StoreError;
    fn try_from(r: FencedStepRow) -> Result<Self, StoreError> {
        let state = codec::parse_state("workflows.state", &r.run_state)?;
        let step = match r.step_index {
            None => None,
            Some(step_index) => {
                let missing =
                    |column: &str| StoreError::Corrupt(format!("workflow_steps.{column} is NULL"));
                Some(StepRecord::try_from(StepRow {
                    workflow_id: r.workflow_id.ok_or_else(|| missing("workflow_id"))?,
                    step_index,
                    step_name: r.step_name.ok_or_else(|| missing("step_name"))?,
                    state: r.state.ok_or_else(|| missing("state"))?,
                    attempt: r.attempt.ok_or_else(|| missing("attempt"))?,
                    undo_attempt: r.undo_attempt.ok_or_else(|| missing("undo_attempt"))?,
                    output: r.output,
                    error: r.error,
                    undo_error: r.undo_error,
                    wake_at: r.wake_at,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    generation: r.generation.ok_or_else(|| missing("generation"))?,
                    updated_at: r.updated_at.ok_or_else(|| missing("updated_at"))?,
                })?)
            }
        };
        Ok(FencedStep {
            state,
            step,
            pending_signals: r.pending_signals,
        })
    }
}

pub(crate) const EXECUTION_COLUMNS: &str = "seq, workflow_id, step_index, step_name, kind, \
     event, attempt, owner, generation, at, outcome";

#[derive(sqlx::FromRow)]
pub(crate) struct StepExecutionRow {
    seq: i64,
    workflow_id: String,
    step_index: i64,
    step_name: String,
    kind: String,
    event: String,
    attempt: i64,
    owner: String,
    generation: i64,
    at: i64,
    outcome: Option<String>,
}

impl TryFrom<StepExecutionRow> for StepExecution {
    type Error = StoreError;
    fn try_from(r: StepExecutionRow) -> Result<Self, StoreError> {
        Ok(StepExecution {
            seq: r.seq,
            workflow_id: r.workflow_id,
            step_index: r.step_index,
            step_name: r.step_name,
            kind: codec::parse_name("workflow_step_executions.kind", &r.kind, StepKind::parse)?,
            event: codec::parse_name(
                "workflow_step_executions.event",
                &r.event,
                ExecutionEvent::parse,
            )?,
            attempt: r.attempt,
            owner: r.owner,
            generation: r.generation,
            at: Timestamp(r.at),
            outcome: r.outcome,
        })
    }
}

pub(crate) const SIGNAL_COLUMNS: &str = "id, workflow_id, name, payload, created_at, consumed_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SignalRow {
    id: String,
    workflow_id: String,
    name: String,
    payload: String,
    created_at: i64,
    consumed_at: Option<i64>,
}

impl TryFrom<SignalRow> for SignalRecord {
    type Error = StoreError;
    fn try_from(r: SignalRow) -> Result<Self, StoreError> {
        Ok(SignalRecord {
            id: r.id,
            workflow_id: r.workflow_id,
            name: r.name,
            payload: codec::parse_json("workflow_signals.payload", &r.payload)?,
            created_at: Timestamp(r.created_at),
            consumed_at: opt_ts(r.consumed_at),
        })
    }
}
