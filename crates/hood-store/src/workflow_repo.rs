// Included into `sqlite.rs` and `postgres.rs` (see `repo_common.rs`).
//
// The workflow journal (`crate::workflow`). Wrapped in a module so its
// imports and helpers cannot collide with the other included repositories.

mod workflow_repo {
    use super::*;
    use crate::workflow::{
        ClaimRequest, ExecutionEvent, Fence, NewSignal, NewWorkflow, SignalRecord, StepEnd,
        StepExecution, StepFinish, StepKind, StepRecord, StepStart, WorkflowDetail, WorkflowFilter,
        WorkflowRecord, WorkflowStore, WorkflowUpdate, LEASE_CONFLICT,
    };
    use hood_domain::lifecycle::{StepState, WorkflowState};
    use hood_domain::machine::StateMachine;

    /// Row lock taken by the first statement of every fenced transaction, so
    /// that what is read afterwards (signals, children) is final with
    /// respect to concurrent signal senders and finishing children, which
    /// lock the same row. On SQLite `BEGIN IMMEDIATE` already holds the
    /// database write lock. `NO KEY` so that inserting a child (a foreign
    /// key check on this row) does not wait.
    const LOCK_ROW: &str = match BACKEND {
        Backend::Postgres => " FOR NO KEY UPDATE",
        Backend::Sqlite => "",
    };

    /// [`LOCK_ROW`] for a query joining the run (`w`) to a step row that
    /// may be missing: only the run's row is locked.
    const LOCK_RUN_ROW: &str = match BACKEND {
        Backend::Postgres => " FOR NO KEY UPDATE OF w",
        Backend::Sqlite => "",
    };

    /// SQLite keeps no statistics and would rather filter claims by the
    /// `name` index, sorting every run of a definition (finished ones too);
    /// the due index walks only runs that have a timer, earliest first.
    const DUE_INDEX: &str = match BACKEND {
        Backend::Postgres => "",
        Backend::Sqlite => " INDEXED BY workflows_due_idx",
    };

    /// Lets concurrent claimers pass over each other's candidates.
    const SKIP_LOCKED: &str = match BACKEND {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };

    const WF_COLUMNS: &str = "id, name, version, state, input, output, error, parent_id, \
         waiting_for, created_at, updated_at, next_run_at, lease_owner, lease_generation, \
         lease_expires_at, attempts";

    const STEP_COLUMNS: &str = "workflow_id, step_index, step_name, state, attempt, \
         undo_attempt, output, error, undo_error, wake_at, started_at, finished_at, \
         generation, updated_at";

    const EXEC_COLUMNS: &str = "seq, workflow_id, step_index, step_name, kind, event, attempt, \
         owner, generation, at, outcome";

    const SIGNAL_COLUMNS: &str = "id, workflow_id, name, payload, created_at, consumed_at";

    /// States in which a run is over: nothing claims, signals or wakes it.
    const FINISHED_STATES: &str = "'completed', 'failed', 'abandoned'";

    /// States a worker may claim when due. `stuck` waits for an operator.
    const CLAIMABLE_STATES: &str = "'pending', 'running', 'waiting', 'paused', 'compensating'";

    fn lease_lost() -> StoreError {
        StoreError::Conflict(LEASE_CONFLICT.to_owned())
    }

    fn json(column: &str, text: &str) -> StoreResult<serde_json::Value> {
        serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("{column}: not JSON: {e}")))
    }

    fn opt_json(column: &str, text: Option<String>) -> StoreResult<Option<serde_json::Value>> {
        text.map(|t| json(column, &t)).transpose()
    }

    /// `$start, $start+1, …` for an `IN` list of `n` values.
    fn placeholders(start: usize, n: usize) -> String {
        (start..start + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn workflow_from_row(row: &DbRow) -> StoreResult<WorkflowRecord> {
        Ok(WorkflowRecord {
            id: col(row, "id")?,
            name: col(row, "name")?,
            version: col(row, "version")?,
            state: codec::parse_state("workflows.state", &col::<String>(row, "state")?)?,
            input: json("workflows.input", &col::<String>(row, "input")?)?,
            output: opt_json("workflows.output", col(row, "output")?)?,
            error: col(row, "error")?,
            parent_id: col(row, "parent_id")?,
            waiting_for: col(row, "waiting_for")?,
            created_at: Timestamp(col(row, "created_at")?),
            updated_at: Timestamp(col(row, "updated_at")?),
            next_run_at: opt_ts(col(row, "next_run_at")?),
            lease_owner: col(row, "lease_owner")?,
            lease_generation: col(row, "lease_generation")?,
            lease_expires_at: opt_ts(col(row, "lease_expires_at")?),
            attempts: col(row, "attempts")?,
        })
    }

    fn step_from_row(row: &DbRow) -> StoreResult<StepRecord> {
        Ok(StepRecord {
            workflow_id: col(row, "workflow_id")?,
            step_index: col(row, "step_index")?,
            step_name: col(row, "step_name")?,
            state: codec::parse_state("workflow_steps.state", &col::<String>(row, "state")?)?,
            attempt: col(row, "attempt")?,
            undo_attempt: col(row, "undo_attempt")?,
            output: opt_json("workflow_steps.output", col(row, "output")?)?,
            error: col(row, "error")?,
            undo_error: col(row, "undo_error")?,
            wake_at: opt_ts(col(row, "wake_at")?),
            started_at: opt_ts(col(row, "started_at")?),
            finished_at: opt_ts(col(row, "finished_at")?),
            generation: col(row, "generation")?,
            updated_at: Timestamp(col(row, "updated_at")?),
        })
    }

    fn exec_from_row(row: &DbRow) -> StoreResult<StepExecution> {
        let kind: String = col(row, "kind")?;
        let event: String = col(row, "event")?;
        Ok(StepExecution {
            seq: col(row, "seq")?,
            workflow_id: col(row, "workflow_id")?,
            step_index: col(row, "step_index")?,
            step_name: col(row, "step_name")?,
            kind: StepKind::parse(&kind).ok_or_else(|| {
                StoreError::Corrupt(format!("workflow_step_executions.kind: `{kind}`"))
            })?,
            event: ExecutionEvent::parse(&event).ok_or_else(|| {
                StoreError::Corrupt(format!("workflow_step_executions.event: `{event}`"))
            })?,
            attempt: col(row, "attempt")?,
            owner: col(row, "owner")?,
            generation: col(row, "generation")?,
            at: Timestamp(col(row, "at")?),
            outcome: col(row, "outcome")?,
        })
    }

    fn signal_from_row(row: &DbRow) -> StoreResult<SignalRecord> {
        Ok(SignalRecord {
            id: col(row, "id")?,
            workflow_id: col(row, "workflow_id")?,
            name: col(row, "name")?,
            payload: json("workflow_signals.payload", &col::<String>(row, "payload")?)?,
            created_at: Timestamp(col(row, "created_at")?),
            consumed_at: opt_ts(col(row, "consumed_at")?),
        })
    }

    pub(super) async fn fetch_workflow(conn: &mut DbConn, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let row = sqlx::query(&format!("SELECT {WF_COLUMNS} FROM workflows WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    /// The run, row-locked, if `fence` still holds its lease.
    async fn lock_fenced(conn: &mut DbConn, fence: &Fence) -> StoreResult<Option<WorkflowRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {WF_COLUMNS} FROM workflows \
             WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3{LOCK_ROW}"
        ))
        .bind(&fence.workflow_id)
        .bind(&fence.owner)
        .bind(fence.generation)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    /// What a step write needs, in one round trip: whether `fence` still
    /// holds the run (row-locked), the run's state, the step's row and the
    /// run's unconsumed signals. Signal senders lock the run's row first, so
    /// the count stays exact until commit.
    struct FencedStep {
        state: WorkflowState,
        step: Option<StepRecord>,
        pending_signals: i64,
    }

    async fn lock_fenced_step(
        conn: &mut DbConn,
        fence: &Fence,
        index: i64,
    ) -> StoreResult<Option<FencedStep>> {
        let step_columns = STEP_COLUMNS
            .split(", ")
            .map(|c| format!("s.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let row = sqlx::query(&format!(
            "SELECT w.state AS run_state, \
               (SELECT count(*) FROM workflow_signals g \
                WHERE g.workflow_id = w.id AND g.consumed_at IS NULL) AS pending_signals, \
               {step_columns} \
             FROM workflows w \
             LEFT JOIN workflow_steps s ON s.workflow_id = w.id AND s.step_index = $4 \
             WHERE w.id = $1 AND w.lease_owner = $2 AND w.lease_generation = $3{LOCK_RUN_ROW}"
        ))
        .bind(&fence.workflow_id)
        .bind(&fence.owner)
        .bind(fence.generation)
        .bind(index)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let step = if col::<Option<i64>>(&row, "step_index")?.is_some() {
            Some(step_from_row(&row)?)
        } else {
            None
        };
        Ok(Some(FencedStep {
            state: codec::parse_state("workflows.state", &col::<String>(&row, "run_state")?)?,
            step,
            pending_signals: col(&row, "pending_signals")?,
        }))
    }

    /// The run, row-locked, whoever holds it.
    async fn lock_any(conn: &mut DbConn, id: &str) -> StoreResult<Option<WorkflowRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {WF_COLUMNS} FROM workflows WHERE id = $1{LOCK_ROW}"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn fetch_step(
        conn: &mut DbConn,
        workflow_id: &str,
        index: i64,
    ) -> StoreResult<Option<StepRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE workflow_id = $1 AND step_index = $2"
        ))
        .bind(workflow_id)
        .bind(index)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(step_from_row).transpose()
    }

    /// Writes every mutable column of a step row from `step`.
    async fn write_step(conn: &mut DbConn, step: &StepRecord, from: StepState) -> StoreResult<()> {
        let updated = sqlx::query(
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
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict("workflow step".to_owned()));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn append_execution(
        conn: &mut DbConn,
        fence: &Fence,
        index: i64,
        name: &str,
        kind: StepKind,
        event: ExecutionEvent,
        attempt: i64,
        at: Timestamp,
        outcome: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workflow_step_executions \
               (workflow_id, step_index, step_name, kind, event, attempt, owner, generation, at, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&fence.workflow_id)
        .bind(index)
        .bind(name)
        .bind(kind.as_str())
        .bind(event.as_str())
        .bind(attempt)
        .bind(&fence.owner)
        .bind(fence.generation)
        .bind(at.millis())
        .bind(outcome)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn consume(
        conn: &mut DbConn,
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
            placeholders(3, ids.len())
        );
        let mut q = sqlx::query(&sql).bind(workflow_id).bind(now.millis());
        for id in ids {
            q = q.bind(id);
        }
        let consumed = q.execute(&mut *conn).await?.rows_affected();
        Ok(i64::try_from(consumed).unwrap_or(i64::MAX))
    }

    /// Unconsumed signals of the run with one of `names`.
    async fn count_pending_signals(
        conn: &mut DbConn,
        workflow_id: &str,
        names: &[String],
    ) -> StoreResult<i64> {
        let sql = format!(
            "SELECT count(*) AS n FROM workflow_signals \
             WHERE workflow_id = $1 AND consumed_at IS NULL AND name IN ({})",
            placeholders(2, names.len())
        );
        let mut q = sqlx::query(&sql).bind(workflow_id);
        for n in names {
            q = q.bind(n);
        }
        col(&q.fetch_one(&mut *conn).await?, "n")
    }

    async fn any_finished(conn: &mut DbConn, ids: &[String]) -> StoreResult<bool> {
        let sql = format!(
            "SELECT count(*) AS n FROM workflows WHERE state IN ({FINISHED_STATES}) AND id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id);
        }
        let n: i64 = col(&q.fetch_one(&mut *conn).await?, "n")?;
        Ok(n > 0)
    }

    /// Makes a waiting parent due now. The statement matches the parent's
    /// row whatever its state, so it waits for a concurrent park of the
    /// parent to commit and then sees the parked state (no lost wake-up).
    async fn wake_parent(conn: &mut DbConn, parent: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE workflows SET next_run_at = CASE \
               WHEN state = 'waiting' AND (next_run_at IS NULL OR next_run_at > $2) THEN $2 \
               ELSE next_run_at END \
             WHERE id = $1",
        )
        .bind(parent)
        .bind(now.millis())
        .execute(&mut *conn)
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

    #[async_trait]
    impl WorkflowStore for StoreImpl {
        async fn create_workflow(&self, new: &NewWorkflow) -> StoreResult<(WorkflowRecord, bool)> {
            let inserted = sqlx::query(
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
            .execute(&self.pool)
            .await
            .map_err(|e| codec::write_error(e, "parent workflow"))?
            .rows_affected();
            let mut conn = self.pool.acquire().await?;
            let Some(existing) = fetch_workflow(&mut conn, &new.id).await? else {
                return Err(StoreError::Corrupt(format!(
                    "workflow {} vanished after insert",
                    new.id
                )));
            };
            if inserted == 0 && (existing.name != new.name || existing.version != new.version) {
                return Err(StoreError::Conflict("workflow id".to_owned()));
            }
            Ok((existing, inserted > 0))
        }

        async fn get_workflow(&self, id: &str) -> StoreResult<Option<WorkflowRecord>> {
            let mut conn = self.pool.acquire().await?;
            fetch_workflow(&mut conn, id).await
        }

        async fn get_workflow_detail(&self, id: &str) -> StoreResult<Option<WorkflowDetail>> {
            let Some(workflow) = self.get_workflow(id).await? else {
                return Ok(None);
            };
            let steps = self.list_steps(id).await?;
            Ok(Some(WorkflowDetail { workflow, steps }))
        }

        async fn list_workflows(
            &self,
            filter: &WorkflowFilter,
        ) -> StoreResult<Vec<WorkflowRecord>> {
            let mut clauses = Vec::new();
            let mut binds: Vec<String> = Vec::new();
            if let Some(s) = filter.state {
                binds.push(s.as_str().to_owned());
                clauses.push(format!("state = ${}", binds.len()));
            }
            if let Some(name) = &filter.name {
                binds.push(name.clone());
                clauses.push(format!("name = ${}", binds.len()));
            }
            if let Some(parent) = &filter.parent_id {
                binds.push(parent.clone());
                clauses.push(format!("parent_id = ${}", binds.len()));
            }
            let mut sql = format!("SELECT {WF_COLUMNS} FROM workflows");
            if !clauses.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&clauses.join(" AND "));
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC");
            if filter.limit.is_some() {
                sql.push_str(&format!(" LIMIT ${}", binds.len() + 1));
            }
            let mut q = sqlx::query(&sql);
            for b in &binds {
                q = q.bind(b);
            }
            if let Some(limit) = filter.limit {
                q = q.bind(limit.max(0));
            }
            let rows = q.fetch_all(&self.pool).await?;
            rows.iter().map(workflow_from_row).collect()
        }

        async fn list_steps(&self, workflow_id: &str) -> StoreResult<Vec<StepRecord>> {
            let rows = sqlx::query(&format!(
                "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE workflow_id = $1 ORDER BY step_index"
            ))
            .bind(workflow_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(step_from_row).collect()
        }

        async fn list_step_executions(
            &self,
            workflow_id: Option<&str>,
        ) -> StoreResult<Vec<StepExecution>> {
            let rows = match workflow_id {
                Some(id) => {
                    sqlx::query(&format!(
                        "SELECT {EXEC_COLUMNS} FROM workflow_step_executions \
                         WHERE workflow_id = $1 ORDER BY seq"
                    ))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!(
                        "SELECT {EXEC_COLUMNS} FROM workflow_step_executions ORDER BY seq"
                    ))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            rows.iter().map(exec_from_row).collect()
        }

        /// One statement: the sub-select picks (and on PostgreSQL row-locks,
        /// skipping rows other claimers hold) the most overdue candidate;
        /// the update bumps its generation. A candidate changed by a
        /// concurrent claim is re-checked against the `WHERE` under the
        /// lock, so two claimers never get the same lease.
        async fn claim_workflow(&self, req: &ClaimRequest) -> StoreResult<Option<WorkflowRecord>> {
            if req.definitions.is_empty() {
                return Ok(None);
            }
            let defs: Vec<String> = (0..req.definitions.len())
                .map(|i| format!("(name = ${} AND version = ${})", 4 + 2 * i, 5 + 2 * i))
                .collect();
            let sql = format!(
                "UPDATE workflows SET lease_owner = $1, lease_generation = lease_generation + 1, \
                   lease_expires_at = $2, attempts = attempts + 1, updated_at = $3 \
                 WHERE id = ( \
                   SELECT id FROM workflows{DUE_INDEX} \
                   WHERE state IN ({CLAIMABLE_STATES}) \
                     AND next_run_at IS NOT NULL AND next_run_at <= $3 \
                     AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
                     AND ({defs}) \
                   ORDER BY next_run_at LIMIT 1{SKIP_LOCKED}) \
                 AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
                 RETURNING {WF_COLUMNS}",
                defs = defs.join(" OR ")
            );
            let mut q = sqlx::query(&sql)
                .bind(&req.owner)
                .bind(req.lease_expires_at.millis())
                .bind(req.now.millis());
            for (name, version) in &req.definitions {
                q = q.bind(name).bind(*version);
            }
            let row = q.fetch_optional(&self.pool).await?;
            row.as_ref().map(workflow_from_row).transpose()
        }

        async fn renew_lease(&self, fence: &Fence, expires_at: Timestamp) -> StoreResult<()> {
            let updated = sqlx::query(
                "UPDATE workflows SET lease_expires_at = $4 \
                 WHERE id = $1 AND lease_owner = $2 AND lease_generation = $3",
            )
            .bind(&fence.workflow_id)
            .bind(&fence.owner)
            .bind(fence.generation)
            .bind(expires_at.millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
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
            let updated = sqlx::query(
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
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(lease_lost());
            }
            Ok(())
        }

        async fn clear_leases(&self, now: Timestamp) -> StoreResult<u64> {
            let cleared = sqlx::query(
                "UPDATE workflows SET lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                 WHERE lease_owner IS NOT NULL",
            )
            .bind(now.millis())
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(cleared)
        }

        async fn next_due_at(
            &self,
            definitions: &[(String, i64)],
        ) -> StoreResult<Option<Timestamp>> {
            if definitions.is_empty() {
                return Ok(None);
            }
            let defs: Vec<String> = (0..definitions.len())
                .map(|i| format!("(name = ${} AND version = ${})", 1 + 2 * i, 2 + 2 * i))
                .collect();
            // A leased run is due again only when its lease could expire.
            let sql = format!(
                "SELECT min(CASE WHEN lease_expires_at IS NOT NULL AND lease_expires_at > next_run_at \
                   THEN lease_expires_at ELSE next_run_at END) AS due \
                 FROM workflows{DUE_INDEX} \
                 WHERE next_run_at IS NOT NULL AND state IN ({CLAIMABLE_STATES}) AND ({defs})",
                defs = defs.join(" OR ")
            );
            let mut q = sqlx::query(&sql);
            for (name, version) in definitions {
                q = q.bind(name).bind(*version);
            }
            let row = q.fetch_one(&self.pool).await?;
            Ok(opt_ts(col(&row, "due")?))
        }

        async fn update_workflow(
            &self,
            fence: &Fence,
            update: &WorkflowUpdate,
        ) -> StoreResult<WorkflowRecord> {
            let mut tx = begin_write(&self.pool).await?;
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
            let row = sqlx::query(&format!(
                "UPDATE workflows SET state = $3, next_run_at = $4, \
                   output = COALESCE($5, output), error = COALESCE($6, error), \
                   waiting_for = $7, updated_at = $8, \
                   lease_owner = CASE WHEN $9 = 1 THEN NULL ELSE lease_owner END, \
                   lease_expires_at = CASE WHEN $9 = 1 THEN NULL ELSE lease_expires_at END \
                 WHERE id = $1 AND lease_generation = $2 \
                 RETURNING {WF_COLUMNS}"
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
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Err(lease_lost());
            };
            let record = workflow_from_row(&row)?;
            if to.is_terminal() && to != current.state {
                if let Some(parent) = &current.parent_id {
                    wake_parent(&mut tx, parent, update.now).await?;
                }
            }
            tx.commit().await?;
            Ok(record)
        }

        async fn start_step(&self, fence: &Fence, start: &StepStart) -> StoreResult<()> {
            let mut tx = begin_write(&self.pool).await?;
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
                    sqlx::query(
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
                    .execute(&mut *tx)
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
                start.index,
                &start.name,
                start.kind,
                ExecutionEvent::Start,
                start.attempt,
                start.now,
                None,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn finish_step(&self, fence: &Fence, end: &StepEnd) -> StoreResult<i64> {
            let kind = end.finish.kind();
            let mut tx = begin_write(&self.pool).await?;
            let locked = lock_fenced_step(&mut tx, fence, end.index).await?;
            let Some(locked) = locked else {
                // The journal stays as it was, but the log keeps the
                // evidence that this execution ran and was cut off.
                let name = fetch_step(&mut tx, &fence.workflow_id, end.index)
                    .await?
                    .map_or_else(String::new, |s| s.step_name);
                append_execution(
                    &mut tx,
                    fence,
                    end.index,
                    &name,
                    kind,
                    ExecutionEvent::Finish,
                    end.attempt,
                    end.now,
                    Some("lease_lost"),
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
                pending -=
                    consume(&mut tx, &fence.workflow_id, &end.consume_signals, end.now).await?;
            }
            append_execution(
                &mut tx,
                fence,
                end.index,
                &name,
                kind,
                ExecutionEvent::Finish,
                end.attempt,
                end.now,
                Some(end.finish.as_str()),
            )
            .await?;
            tx.commit().await?;
            Ok(pending)
        }

        async fn skip_undo(&self, fence: &Fence, index: i64, now: Timestamp) -> StoreResult<()> {
            let mut tx = begin_write(&self.pool).await?;
            let Some(locked) = lock_fenced_step(&mut tx, fence, index).await? else {
                tx.rollback().await?;
                return Err(lease_lost());
            };
            let Some(mut step) = locked.step else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("workflow step"));
            };
            let from = step.state;
            step.state =
                moved(from, StepState::Compensating)?.transition(StepState::Compensated)?;
            step.finished_at = Some(now);
            step.generation = fence.generation;
            step.updated_at = now;
            write_step(&mut tx, &step, from).await?;
            tx.commit().await?;
            Ok(())
        }

        /// Locks the run's row before inserting (see the module notes): a
        /// run being parked concurrently either sees this signal or is
        /// woken by this statement once parked.
        async fn send_signal(&self, signal: &NewSignal) -> StoreResult<()> {
            let mut tx = begin_write(&self.pool).await?;
            let row = sqlx::query(
                "UPDATE workflows SET next_run_at = CASE \
                   WHEN state IN ('waiting', 'paused') AND (next_run_at IS NULL OR next_run_at > $2) \
                   THEN $2 ELSE next_run_at END \
                 WHERE id = $1 RETURNING state",
            )
            .bind(&signal.workflow_id)
            .bind(signal.created_at.millis())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("workflow"));
            };
            let st: WorkflowState = codec::parse_state("workflows.state", &col::<String>(&row, "state")?)?;
            if st.is_terminal() {
                tx.rollback().await?;
                return Err(StoreError::Conflict("workflow finished".to_owned()));
            }
            sqlx::query(
                "INSERT INTO workflow_signals (id, workflow_id, name, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&signal.id)
            .bind(&signal.workflow_id)
            .bind(&signal.name)
            .bind(signal.payload.to_string())
            .bind(signal.created_at.millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| codec::write_error(e, "workflow"))?;
            tx.commit().await?;
            Ok(())
        }

        async fn pending_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>> {
            let rows = sqlx::query(&format!(
                "SELECT {SIGNAL_COLUMNS} FROM workflow_signals \
                 WHERE workflow_id = $1 AND consumed_at IS NULL ORDER BY created_at, id"
            ))
            .bind(workflow_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(signal_from_row).collect()
        }

        async fn list_signals(&self, workflow_id: &str) -> StoreResult<Vec<SignalRecord>> {
            let rows = sqlx::query(&format!(
                "SELECT {SIGNAL_COLUMNS} FROM workflow_signals \
                 WHERE workflow_id = $1 ORDER BY created_at, id"
            ))
            .bind(workflow_id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(signal_from_row).collect()
        }

        async fn retry_stuck(&self, id: &str, now: Timestamp) -> StoreResult<WorkflowRecord> {
            let mut tx = begin_write(&self.pool).await?;
            let Some(wf) = lock_any(&mut tx, id).await? else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("workflow"));
            };
            let to = wf.state.transition(WorkflowState::Compensating)?;
            StepState::UndoFailed.transition(StepState::Compensating)?;
            sqlx::query(
                "UPDATE workflow_steps SET state = $2, undo_attempt = 1, updated_at = $3 \
                 WHERE workflow_id = $1 AND state = $4",
            )
            .bind(id)
            .bind(StepState::Compensating.as_str())
            .bind(now.millis())
            .bind(StepState::UndoFailed.as_str())
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "UPDATE workflows SET state = $2, next_run_at = $3, waiting_for = NULL, \
                   updated_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND state = $4 RETURNING {WF_COLUMNS}"
            ))
            .bind(id)
            .bind(to.as_str())
            .bind(now.millis())
            .bind(wf.state.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let record = workflow_from_row(&row)?;
            tx.commit().await?;
            Ok(record)
        }

        async fn abandon_stuck(
            &self,
            id: &str,
            reason: &str,
            now: Timestamp,
        ) -> StoreResult<WorkflowRecord> {
            let mut tx = begin_write(&self.pool).await?;
            let Some(wf) = lock_any(&mut tx, id).await? else {
                tx.rollback().await?;
                return Err(StoreError::NotFound("workflow"));
            };
            let to = wf.state.transition(WorkflowState::Abandoned)?;
            let error = match &wf.error {
                Some(e) => format!("{e} (abandoned by operator: {reason})"),
                None => format!("abandoned by operator: {reason}"),
            };
            let row = sqlx::query(&format!(
                "UPDATE workflows SET state = $2, next_run_at = NULL, waiting_for = NULL, \
                   error = $3, updated_at = $4, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND state = $5 RETURNING {WF_COLUMNS}"
            ))
            .bind(id)
            .bind(to.as_str())
            .bind(&error)
            .bind(now.millis())
            .bind(wf.state.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let record = workflow_from_row(&row)?;
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
            let mut tx = begin_write(&self.pool).await?;
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
            let row = sqlx::query(&format!(
                "UPDATE workflows SET state = $2, next_run_at = NULL, waiting_for = NULL, \
                   error = $3, updated_at = $4, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND state = $5 RETURNING {WF_COLUMNS}"
            ))
            .bind(id)
            .bind(to.as_str())
            .bind(error)
            .bind(now.millis())
            .bind(wf.state.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let record = workflow_from_row(&row)?;
            if let Some(parent) = &wf.parent_id {
                wake_parent(&mut tx, parent, now).await?;
            }
            tx.commit().await?;
            Ok(record)
        }
    }
}
