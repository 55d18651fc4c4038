//! [`WorkflowStore`] for [`SqlStore`]: the saga engine's journal.
//!
//! Fenced transactions start by row-locking the run (`FOR NO KEY UPDATE`
//! on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the database
//! write lock), so that what is read afterwards (signals, children) is
//! final with respect to concurrent signal senders and finishing children,
//! which lock the same row. `NO KEY` so that inserting a child (a foreign
//! key check on this row) does not wait.

use super::SqlStore;
use crate::codec;
use crate::db::{numbered_placeholders, query, query_as, query_scalar, Executor, Tx};
use crate::model::workflow::{
    FencedStep, FencedStepRow, SignalRow, StepExecutionRow, StepRow, WorkflowRow,
    EXECUTION_COLUMNS, SIGNAL_COLUMNS, STEP_COLUMNS, WORKFLOW_COLUMNS,
};
use crate::model::{all, one, qualified};
use crate::workflow::{
    ClaimRequest, ExecutionEvent, Fence, NewSignal, NewWorkflow, SignalRecord, StepEnd,
    StepExecution, StepFinish, StepKind, StepRecord, StepStart, WorkflowDetail, WorkflowFilter,
    WorkflowRecord, WorkflowStore, WorkflowUpdate, LEASE_CONFLICT,
};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_domain::machine::StateMachine;
use hood_domain::Timestamp;

/// The index that walks only runs with a timer, earliest first. SQLite
/// would rather filter claims by the `name` index, sorting every run of a
/// definition (finished ones too).
const DUE_INDEX: &str = "workflows_due_idx";

/// States in which a run is over: nothing claims, signals or wakes it.
const FINISHED_STATES: &str = "'completed', 'failed', 'abandoned'";

/// States a worker may claim when due. `stuck` waits for an operator.
const CLAIMABLE_STATES: &str = "'pending', 'running', 'waiting', 'paused', 'compensating'";

fn lease_lost() -> StoreError {
    StoreError::Conflict(LEASE_CONFLICT.to_owned())
}

/// `(name = $a AND version = $a+1) OR …` for each definition, from `first`.
fn definitions_clause(first: usize, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "(name = ${} AND version = ${})",
                first + 2 * i,
                first + 1 + 2 * i
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Inserts a `pending` run due at its creation unless one with that id
/// exists, on the caller's transaction; returns the run now stored and
/// whether this call created it. A missing parent is
/// `NotFound("parent workflow")`.
pub(crate) async fn insert_workflow(
    tx: &mut Tx<'_>,
    new: &NewWorkflow,
) -> StoreResult<(WorkflowRecord, bool)> {
    let inserted = query(
        "INSERT INTO workflows (id, name, version, state, input, parent_id, created_at, \
           updated_at, next_run_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&new.id)
    .bind(&new.name)
    .bind(new.version)
    .bind(WorkflowState::Pending.as_str())
    .bind(new.input.to_string())
    .bind(new.parent_id.as_deref())
    .bind(new.created_at.millis())
    .execute(&mut *tx)
    .await
    .map_err(|e| codec::write_error(e, "parent workflow"))?;
    let Some(stored) = fetch_workflow(tx, &new.id).await? else {
        return Err(StoreError::Corrupt(format!(
            "workflow {} vanished after insert",
            new.id
        )));
    };
    Ok((stored, inserted > 0))
}

async fn fetch_workflow<'e>(
    on: impl Into<Executor<'e>>,
    id: &str,
) -> StoreResult<Option<WorkflowRecord>> {
    let row = query_as::<WorkflowRow>(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(on)
    .await?;
    one(row)
}

/// The run, row-locked, if `fence` still holds its lease.
async fn lock_fenced(tx: &mut Tx<'_>, fence: &Fence) -> StoreResult<Option<WorkflowRecord>> {
    let row = query_as::<WorkflowRow>(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows \
         WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3{}",
        tx.backend().for_no_key_update()
    ))
    .bind(&fence.workflow_id)
    .bind(&fence.owner)
    .bind(fence.generation)
    .fetch_optional(tx)
    .await?;
    one(row)
}

/// What a step write needs, in one round trip: whether `fence` still holds
/// the run (row-locked, but not the step row, which may be missing), the
/// run's state, the step's row and the run's unconsumed signals. Signal
/// senders lock the run's row first, so the count stays exact until commit.
async fn lock_fenced_step(
    tx: &mut Tx<'_>,
    fence: &Fence,
    index: i64,
) -> StoreResult<Option<FencedStep>> {
    let row = query_as::<FencedStepRow>(format!(
        "SELECT w.state AS run_state, \
           (SELECT count(*) FROM workflow_signals g \
            WHERE g.workflow_id = w.id AND g.consumed_at IS NULL) AS pending_signals, \
           {step_columns} \
         FROM workflows w \
         LEFT JOIN workflow_steps s ON s.workflow_id = w.id AND s.step_index = $4 \
         WHERE w.id = $1 AND w.lease_owner = $2 AND w.lease_generation = $3{lock}",
        step_columns = qualified("s", STEP_COLUMNS),
        lock = tx.backend().for_no_key_update_of("w"),
    ))
    .bind(&fence.workflow_id)
    .bind(&fence.owner)
    .bind(fence.generation)
    .bind(index)
    .fetch_optional(tx)
    .await?;
    one(row)
}

/// The run, row-locked, whoever holds it.
async fn lock_any(tx: &mut Tx<'_>, id: &str) -> StoreResult<Option<WorkflowRecord>> {
    let row = query_as::<WorkflowRow>(format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1{}",
        tx.backend().for_no_key_update()
    ))
    .bind(id)
    .fetch_optional(tx)
    .await?;
    one(row)
}

async fn fetch_step(
    tx: &mut Tx<'_>,
    workflow_id: &str,
    index: i64,
) -> StoreResult<Option<StepRecord>> {
    let row = query_as::<StepRow>(format!(
        "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE workflow_id = $1 AND step_index = $2"
    ))
    .bind(workflow_id)
    .bind(index)
    .fetch_optional(tx)
    .await?;
    one(row)
}

/// Writes every mutable column of a step row from `step`, if the row is
/// still in `from`.
async fn write_step(tx: &mut Tx<'_>, step: &StepRecord, from: StepState) -> StoreResult<()> {
    let updated = query(
        "UPDATE workflow_steps SET state = $3, attempt = $4, undo_attempt = $5, output = $6, \
           error = $7, undo_error = $8, wake_at = $9, started_at = $10, finished_at = $11, \
           generation = $12, updated_at = $13, step_name = $14 \
         WHERE workflow_id = $1 AND step_index = $2 AND state = $15",
    )
    .bind(&step.workflow_id)
    .bind(step.step_index)
    .bind(step.state.as_str())
    .bind(step.attempt)
    .bind(step.undo_attempt)
    .bind(step.output.as_ref().map(ToString::to_string))
    .bind(step.error.as_deref())
    .bind(step.undo_error.as_deref())
    .bind(step.wake_at.map(Timestamp::millis))
    .bind(step.started_at.map(Timestamp::millis))
    .bind(step.finished_at.map(Timestamp::millis))
    .bind(step.generation)
    .bind(step.updated_at.millis())
    .bind(&step.step_name)
    .bind(from.as_str())
    .execute(tx)
    .await?;
    if updated == 0 {
        return Err(StoreError::Conflict("workflow step".to_owned()));
    }
    Ok(())
}

/// One row of the execution log.
struct Execution<'a> {
    index: i64,
    name: &'a str,
    kind: StepKind,
    event: ExecutionEvent,
    attempt: i64,
    at: Timestamp,
    outcome: Option<&'a str>,
}

async fn append_execution(tx: &mut Tx<'_>, fence: &Fence, e: Execution<'_>) -> StoreResult<()> {
    query(
        "INSERT INTO workflow_step_executions \
           (workflow_id, step_index, step_name, kind, event, attempt, owner, generation, at, \
            outcome) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&fence.workflow_id)
    .bind(e.index)
    .bind(e.name)
    .bind(e.kind.as_str())
    .bind(e.event.as_str())
    .bind(e.attempt)
    .bind(&fence.owner)
    .bind(fence.generation)
    .bind(e.at.millis())
    .bind(e.outcome)
    .execute(tx)
    .await?;
    Ok(())
}

async fn consume(
    tx: &mut Tx<'_>,
    workflow_id: &str,
    ids: &[String],
    now: Timestamp,
) -> StoreResult<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE workflow_signals SET consumed_at = $2 \
         WHERE workflow_id = $1 AND consumed_at IS NULL AND id IN ({})",
        numbered_placeholders(3, ids.len())
    );
    let mut q = query(sql).bind(workflow_id).bind(now.millis());
    for id in ids {
        q = q.bind(id);
    }
    let consumed = q.execute(tx).await?;
    Ok(i64::try_from(consumed).unwrap_or(i64::MAX))
}

/// Unconsumed signals of the run with one of `names`.
async fn count_pending_signals(
    tx: &mut Tx<'_>,
    workflow_id: &str,
    names: &[String],
) -> StoreResult<i64> {
    let sql = format!(
        "SELECT count(*) AS n FROM workflow_signals \
         WHERE workflow_id = $1 AND consumed_at IS NULL AND name IN ({})",
        numbered_placeholders(2, names.len())
    );
    let mut q = query_scalar::<i64>(sql).bind(workflow_id);
    for n in names {
        q = q.bind(n);
    }
    Ok(q.fetch_one(tx).await?)
}

async fn any_finished(tx: &mut Tx<'_>, ids: &[String]) -> StoreResult<bool> {
    let sql = format!(
        "SELECT count(*) AS n FROM workflows WHERE state IN ({FINISHED_STATES}) AND id IN ({})",
        numbered_placeholders(1, ids.len())
    );
    let mut q = query_scalar::<i64>(sql);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_one(tx).await? > 0)
}

/// Makes a waiting parent due now. The statement matches the parent's row
/// whatever its state, so it waits for a concurrent park of the parent to
/// commit and then sees the parked state (no lost wake-up).
async fn wake_parent(tx: &mut Tx<'_>, parent: &str, now: Timestamp) -> StoreResult<()> {
    query(
        "UPDATE workflows SET next_run_at = CASE \
           WHEN state = 'waiting' AND (next_run_at IS NULL OR next_run_at > $2) THEN $2 \
           ELSE next_run_at END \
         WHERE id = $1",
    )
    .bind(parent)
    .bind(now.millis())
    .execute(tx)
    .await?;
    Ok(())
}

/// The `from -> to` move, or no move when equal.
fn moved<M: StateMachine>(from: M, to: M) -> StoreResult<M> {
    if from == to {
        Ok(to)
    } else {
        Ok(from.transition(to)?)
    }
}

/// Ends an operator action on a locked run: sets `state`, clears the timer,
/// the wait and the lease, optionally replaces the error. Returns the row.
async fn finish_operator_action(
    tx: &mut Tx<'_>,
    wf: &WorkflowRecord,
    to: WorkflowState,
    error: Option<&str>,
    next_run_at: Option<Timestamp>,
    now: Timestamp,
) -> StoreResult<WorkflowRecord> {
    let row = query_as::<WorkflowRow>(format!(
        "UPDATE workflows SET state = $2, next_run_at = $3, waiting_for = NULL, \
           error = COALESCE($4, error), updated_at = $5, lease_owner = NULL, \
           lease_expires_at = NULL \
         WHERE id = $1 AND state = $6 RETURNING {WORKFLOW_COLUMNS}"
    ))
    .bind(&wf.id)
    .bind(to.as_str())
    .bind(next_run_at.map(Timestamp::millis))
    .bind(error)
    .bind(now.millis())
    .bind(wf.state.as_str())
    .fetch_one(tx)
    .await?;
    WorkflowRecord::try_from(row)
}

#[async_trait]
impl WorkflowStore for SqlStore {
    async fn create_workflow(&self, new: &NewWorkflow) -> StoreResult<(WorkflowRecord, bool)> {
        let mut tx = self.pool.begin_write().await?;
        let (stored, created) = insert_workflow(&mut tx, new).await?;
        tx.commit().await?;
        if !created && (stored.name != new.name || stored.version != new.version) {
            return Err(StoreError::Conflict("workflow id".to_owned()));
        }
        Ok((stored, created))
    }

    async fn get_workflow(&self, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        fetch_workflow(&self.pool, id).await
    }

    async fn get_workflow_detail(&self, id: &str) -> StoreResult<Option<WorkflowDetail>> {
        let Some(workflow) = self.get_workflow(id).await? else {
            return Ok(None);
        };
        let steps = self.list_steps(id).await?;
        Ok(Some(WorkflowDetail { workflow, steps }))
    }

    async fn list_workflows(&self, filter: &WorkflowFilter) -> StoreResult<Vec<WorkflowRecord>> {
        let mut clauses = Vec::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(s) = filter.state {
            binds.push(s.as_str());
            clauses.push(format!("state = ${}", binds.len()));
        }
        if let Some(name) = &filter.name {
            binds.push(name);
            clauses.push(format!("name = ${}", binds.len()));
        }
        if let Some(parent) = &filter.parent_id {
            binds.push(parent);
            clauses.push(format!("parent_id = ${}", binds.len()));
        }
        let mut sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows");
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if filter.limit.is_some() {
            sql.push_str(&format!(" LIMIT ${}", binds.len() + 1));
        }
        let mut q = query_as::<WorkflowRow>(sql);
        for b in binds {
            q = q.bind(b);
        }
        if let Some(limit) = filter.limit {
            q = q.bind(limit.max(0));
        }
        all(q.fetch_all(&self.pool).await?)
    }

    async fn list_steps(&self, workflow_id: &str) -> StoreResult<Vec<StepRecord>> {
        let rows = query_as::<StepRow>(format!(
            "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE workflow_id = $1 ORDER BY step_index"
        ))
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn list_step_executions(
        &self,
        workflow_id: Option<&str>,
    ) -> StoreResult<Vec<StepExecution>> {
        let rows = match workflow_id {
            Some(id) => {
                query_as::<StepExecutionRow>(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM workflow_step_executions \
                     WHERE workflow_id = $1 ORDER BY seq"
                ))
                .bind(id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                query_as::<StepExecutionRow>(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM workflow_step_executions ORDER BY seq"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        all(rows)
    }

    /// One statement: the sub-select picks (and on PostgreSQL row-locks,
    /// skipping rows other claimers hold) the most overdue candidate; the
    /// update bumps its generation. A candidate changed by a concurrent
    /// claim is re-checked against the `WHERE` under the lock, so two
    /// claimers never get the same lease.
    async fn claim_workflow(&self, req: &ClaimRequest) -> StoreResult<Option<WorkflowRecord>> {
        if req.definitions.is_empty() {
            return Ok(None);
        }
        let backend = self.pool.backend();
        let sql = format!(
            "UPDATE workflows SET lease_owner = $1, lease_generation = lease_generation + 1, \
               lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 \
             WHERE id = ( \
               SELECT id FROM workflows{due_index} \
               WHERE state IN ({CLAIMABLE_STATES}) \
                 AND next_run_at IS NOT NULL AND next_run_at <= $3 \
                 AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
                 AND ({defs}) \
               ORDER BY next_run_at LIMIT 1{skip_locked}) \
             AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
             RETURNING {WORKFLOW_COLUMNS}",
            due_index = backend.indexed_by(DUE_INDEX),
            defs = definitions_clause(4, req.definitions.len()),
            skip_locked = backend.for_update_skip_locked(),
        );
        let mut q = query_as::<WorkflowRow>(sql)
            .bind(&req.owner)
            .bind(req.lease_expires_at.millis())
            .bind(req.now.millis());
        for (name, version) in &req.definitions {
            q = q.bind(name).bind(*version);
        }
        one(q.fetch_optional(&self.pool).await?)
    }

    async fn renew_lease(&self, fence: &Fence, expires_at: Timestamp) -> StoreResult<()> {
        let updated = query(
            "UPDATE workflows SET lease_expires_at = $4 \
             WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3",
        )
        .bind(&fence.workflow_id)
        .bind(&fence.owner)
        .bind(fence.generation)
        .bind(expires_at.millis())
        .execute(&self.pool)
        .await?;
        if updated == 0 {
            return Err(lease_lost());
        }
        Ok(())
    }

    async fn release_lease(
        &self,
        fence: &Fence,
        next_run_at: Option<Timestamp>,
        waiting_for: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let updated = query(
            "UPDATE workflows SET lease_owner = NULL, lease_expires_at = NULL, \
               next_run_at = $4, waiting_for = $5, updated_at = $6 \
             WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3",
        )
        .bind(&fence.workflow_id)
        .bind(&fence.owner)
        .bind(fence.generation)
        .bind(next_run_at.map(Timestamp::millis))
        .bind(waiting_for)
        .bind(now.millis())
        .execute(&self.pool)
        .await?;
        if updated == 0 {
            return Err(lease_lost());
        }
        Ok(())
    }

    async fn clear_leases(&self, now: Timestamp) -> StoreResult<u64> {
        Ok(query(
            "UPDATE workflows SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE lease_owner IS NOT NULL",
        )
        .bind(now.millis())
        .execute(&self.pool)
        .await?)
    }

    async fn next_due_at(&self, definitions: &[(String, i64)]) -> StoreResult<Option<Timestamp>> {
        if definitions.is_empty() {
            return Ok(None);
        }
        // A leased run is due again only when its lease could expire.
        let sql = format!(
            "SELECT min(CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at > next_run_at \
               THEN lease_expires_at ELSE next_run_at END) AS due \
             FROM workflows{due_index} \
             WHERE next_run_at IS NOT NULL AND state IN ({CLAIMABLE_STATES}) AND ({defs})",
            due_index = self.pool.backend().indexed_by(DUE_INDEX),
            defs = definitions_clause(1, definitions.len()),
        );
        let mut q = query_scalar::<Option<i64>>(sql);
        for (name, version) in definitions {
            q = q.bind(name).bind(*version);
        }
        Ok(codec::opt_ts(q.fetch_one(&self.pool).await?))
    }

    async fn update_workflow(
        &self,
        fence: &Fence,
        update: &WorkflowUpdate,
    ) -> StoreResult<WorkflowRecord> {
        let mut tx = self.pool.begin_write().await?;
        let Some(current) = lock_fenced(&mut tx, fence).await? else {
            tx.rollback().await?;
            return Err(lease_lost());
        };
        let to = moved(current.state, update.to)?;
        let parked_for_good = to.is_terminal() || to == WorkflowState::Stuck;
        consume(
            &mut tx,
            &fence.workflow_id,
            &update.consume_signals,
            update.now,
        )
        .await?;
        let mut next_run_at = if parked_for_good {
            None
        } else if update.release {
            update.next_run_at
        } else {
            Some(update.now)
        };
        let due_now = next_run_at.is_some_and(|t| t <= update.now);
        if !parked_for_good && !due_now {
            let signalled = !update.wake_on_signals.is_empty()
                && count_pending_signals(&mut tx, &fence.workflow_id, &update.wake_on_signals)
                    .await?
                    > 0;
            let child_done = !signalled
                && !update.wake_on_children.is_empty()
                && any_finished(&mut tx, &update.wake_on_children).await?;
            if signalled || child_done {
                next_run_at = Some(update.now);
            }
        }
        let row = query_as::<WorkflowRow>(format!(
            "UPDATE workflows SET state = $3, next_run_at = $4, \
               output = COALESCE($5, output), error = COALESCE($6, error), \
               waiting_for = $7, updated_at = $8, \
               lease_owner = CASE WHEN $9 = 1 THEN NULL ELSE lease_owner END, \
               lease_expires_at = CASE WHEN $9 = 1 THEN NULL ELSE lease_expires_at END \
             WHERE id = $1 AND lease_generation = $2 \
             RETURNING {WORKFLOW_COLUMNS}"
        ))
        .bind(&fence.workflow_id)
        .bind(fence.generation)
        .bind(to.as_str())
        .bind(next_run_at.map(Timestamp::millis))
        .bind(update.output.as_ref().map(ToString::to_string))
        .bind(update.error.as_deref())
        .bind(update.waiting_for.as_deref())
        .bind(update.now.millis())
        .bind(i64::from(update.release))
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(lease_lost());
        };
        let record = WorkflowRecord::try_from(row)?;
        if to.is_terminal() && to != current.state {
            if let Some(parent) = &current.parent_id {
                wake_parent(&mut tx, parent, update.now).await?;
            }
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn start_step(&self, fence: &Fence, start: &StepStart) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let Some(locked) = lock_fenced_step(&mut tx, fence, start.index).await? else {
            tx.rollback().await?;
            return Err(lease_lost());
        };
        let expected = match start.kind {
            StepKind::Action => WorkflowState::Running,
            StepKind::Undo => WorkflowState::Compensating,
        };
        if locked.state != expected {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "workflow is {}, cannot start a step {}",
                locked.state,
                start.kind.as_str()
            )));
        }
        match (start.kind, locked.step) {
            (StepKind::Action, None) => {
                StepState::Pending.transition(StepState::Running)?;
                query(
                    "INSERT INTO workflow_steps (workflow_id, step_index, step_name, state, \
                       attempt, undo_attempt, started_at, generation, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $6)",
                )
                .bind(&fence.workflow_id)
                .bind(start.index)
                .bind(&start.name)
                .bind(StepState::Running.as_str())
                .bind(start.attempt)
                .bind(start.now.millis())
                .bind(fence.generation)
                .execute(&mut tx)
                .await?;
            }
            (StepKind::Action, Some(mut step)) => {
                let from = step.state;
                step.state = moved(from, StepState::Running)?;
                step.step_name.clone_from(&start.name);
                step.attempt = start.attempt;
                step.started_at = Some(start.now);
                step.finished_at = None;
                step.generation = fence.generation;
                step.updated_at = start.now;
                write_step(&mut tx, &step, from).await?;
            }
            (StepKind::Undo, None) => {
                tx.rollback().await?;
                return Err(StoreError::NotFound("workflow step"));
            }
            (StepKind::Undo, Some(mut step)) => {
                let from = step.state;
                step.state = moved(from, StepState::Compensating)?;
                step.undo_attempt = start.attempt;
                step.generation = fence.generation;
                step.updated_at = start.now;
                write_step(&mut tx, &step, from).await?;
            }
        }
        append_execution(
            &mut tx,
            fence,
            Execution {
                index: start.index,
                name: &start.name,
                kind: start.kind,
                event: ExecutionEvent::Start,
                attempt: start.attempt,
                at: start.now,
                outcome: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_step(&self, fence: &Fence, end: &StepEnd) -> StoreResult<i64> {
        let kind = end.finish.kind();
        let mut tx = self.pool.begin_write().await?;
        let locked = lock_fenced_step(&mut tx, fence, end.index).await?;
        let Some(locked) = locked else {
            // The journal stays as it was, but the log keeps the evidence
            // that this execution ran and was cut off.
            let name = fetch_step(&mut tx, &fence.workflow_id, end.index)
                .await?
                .map_or_else(String::new, |s| s.step_name);
            append_execution(
                &mut tx,
                fence,
                Execution {
                    index: end.index,
                    name: &name,
                    kind,
                    event: ExecutionEvent::Finish,
                    attempt: end.attempt,
                    at: end.now,
                    outcome: Some("lease_lost"),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(lease_lost());
        };
        let Some(mut step) = locked.step else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow step"));
        };
        let name = step.step_name.clone();
        let mut pending = locked.pending_signals;
        let from = step.state;
        match &end.finish {
            StepFinish::Succeeded { output } => {
                step.state = from.transition(StepState::Succeeded)?;
                step.output = Some(output.clone());
                step.wake_at = None;
                step.finished_at = Some(end.now);
            }
            StepFinish::Retry {
                error,
                next_attempt,
            } => {
                step.state = from.transition(StepState::Pending)?;
                step.error = Some(error.clone());
                step.attempt = *next_attempt;
                step.wake_at = None;
            }
            StepFinish::Suspended { wake_at } => {
                step.state = from.transition(StepState::Pending)?;
                step.wake_at = *wake_at;
            }
            StepFinish::Failed { error } => {
                step.state = from.transition(StepState::Failed)?;
                step.error = Some(error.clone());
                step.finished_at = Some(end.now);
            }
            StepFinish::Compensated => {
                step.state = from.transition(StepState::Compensated)?;
                step.finished_at = Some(end.now);
            }
            StepFinish::UndoRetry {
                error,
                next_attempt,
            } => {
                step.state = moved(from, StepState::Compensating)?;
                step.undo_error = Some(error.clone());
                step.undo_attempt = *next_attempt;
            }
            StepFinish::UndoFailed { error } => {
                step.state = from.transition(StepState::UndoFailed)?;
                step.undo_error = Some(error.clone());
            }
        }
        step.generation = fence.generation;
        step.updated_at = end.now;
        write_step(&mut tx, &step, from).await?;
        if matches!(end.finish, StepFinish::Succeeded { .. }) {
            pending -= consume(&mut tx, &fence.workflow_id, &end.consume_signals, end.now).await?;
        }
        append_execution(
            &mut tx,
            fence,
            Execution {
                index: end.index,
                name: &name,
                kind,
                event: ExecutionEvent::Finish,
                attempt: end.attempt,
                at: end.now,
                outcome: Some(end.finish.as_str()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(pending)
    }

    async fn skip_undo(&self, fence: &Fence, index: i64, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let Some(locked) = lock_fenced_step(&mut tx, fence, index).await? else {
            tx.rollback().await?;
            return Err(lease_lost());
        };
        let Some(mut step) = locked.step else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow step"));
        };
        let from = step.state;
        step.state = moved(from, StepState::Compensating)?.transition(StepState::Compensated)?;
        step.finished_at = Some(now);
        step.generation = fence.generation;
        step.updated_at = now;
        write_step(&mut tx, &step, from).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Locks the run's row before inserting (see the module notes): a run
    /// being parked concurrently either sees this signal or is woken by
    /// this statement once parked.
    async fn send_signal(&self, signal: &NewSignal) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        let state = query_scalar::<String>(
            "UPDATE workflows SET next_run_at = CASE \
               WHEN state IN ('waiting', 'paused') AND (next_run_at IS NULL OR next_run_at > $2) \
               THEN $2 ELSE next_run_at END \
             WHERE id = $1 RETURNING state",
        )
        .bind(&signal.workflow_id)
        .bind(signal.created_at.millis())
        .fetch_optional(&mut tx)
        .await?;
        let Some(state) = state else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow"));
        };
        let state: WorkflowState = codec::parse_state("workflows.state", &state)?;
        if state.is_terminal() {
            tx.rollback().await?;
            return Err(StoreError::Conflict("workflow finished".to_owned()));
        }
        query(
            "INSERT INTO workflow_signals (id, workflow_id, name, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&signal.id)
        .bind(&signal.workflow_id)
        .bind(&signal.name)
        .bind(signal.payload.to_string())
        .bind(signal.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(|e| codec::write_error(e, "workflow"))?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>> {
        let rows = query_as::<SignalRow>(format!(
            "SELECT {SIGNAL_COLUMNS} FROM workflow_signals \
             WHERE workflow_id = $1 AND consumed_at IS NULL ORDER BY created_at, id"
        ))
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn list_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>> {
        let rows = query_as::<SignalRow>(format!(
            "SELECT {SIGNAL_COLUMNS} FROM workflow_signals \
             WHERE workflow_id = $1 ORDER BY created_at, id"
        ))
        .bind(workflow_id)
        .fetch_all(&self.pool)
        .await?;
        all(rows)
    }

    async fn retry_stuck(&self, id: &str, now: Timestamp) -> StoreResult<WorkflowRecord> {
        let mut tx = self.pool.begin_write().await?;
        let Some(wf) = lock_any(&mut tx, id).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow"));
        };
        // Refused: roll back now. A dropped transaction rolls back only when
        // its connection is next used, and until then keeps the row locked
        // (a claim with SKIP LOCKED would pass it over).
        let to = match wf.state.transition(WorkflowState::Compensating) {
            Ok(to) => to,
            Err(e) => {
                tx.rollback().await?;
                return Err(e.into());
            }
        };
        StepState::UndoFailed.transition(StepState::Compensating)?;
        query(
            "UPDATE workflow_steps SET state = $2, undo_attempt = 1, updated_at = $3 \
             WHERE workflow_id = $1 AND state = $4",
        )
        .bind(id)
        .bind(StepState::Compensating.as_str())
        .bind(now.millis())
        .bind(StepState::UndoFailed.as_str())
        .execute(&mut tx)
        .await?;
        let record = finish_operator_action(&mut tx, &wf, to, None, Some(now), now).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn abandon_stuck(
        &self,
        id: &str,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<WorkflowRecord> {
        let mut tx = self.pool.begin_write().await?;
        let Some(wf) = lock_any(&mut tx, id).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow"));
        };
        let to = match wf.state.transition(WorkflowState::Abandoned) {
            Ok(to) => to,
            Err(e) => {
                tx.rollback().await?;
                return Err(e.into());
            }
        };
        let error = match &wf.error {
            Some(e) => format!("{e} (abandoned by operator: {reason})"),
            None => format!("abandoned by operator: {reason}"),
        };
        let record = finish_operator_action(&mut tx, &wf, to, Some(&error), None, now).await?;
        if let Some(parent) = &wf.parent_id {
            wake_parent(&mut tx, parent, now).await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn refuse_workflow(
        &self,
        id: &str,
        error: &str,
        now: Timestamp,
    ) -> StoreResult<WorkflowRecord> {
        let mut tx = self.pool.begin_write().await?;
        let Some(wf) = lock_any(&mut tx, id).await? else {
            tx.rollback().await?;
            return Err(StoreError::NotFound("workflow"));
        };
        if wf.lease_expires_at.is_some_and(|t| t > now) {
            tx.rollback().await?;
            return Err(lease_lost());
        }
        if wf.state != WorkflowState::Pending {
            // Only a run that never started may be refused: one that did
            // has effects to compensate.
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "workflow is {}, only a pending run can be refused",
                wf.state
            )));
        }
        let to = wf.state.transition(WorkflowState::Failed)?;
        let record = finish_operator_action(&mut tx, &wf, to, Some(error), None, now).await?;
        if let Some(parent) = &wf.parent_id {
            wake_parent(&mut tx, parent, now).await?;
        }
        tx.commit().await?;
        Ok(record)
    }
}
