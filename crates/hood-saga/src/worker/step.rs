//! Running a step's action and journaling its outcome: done, suspended
//! (timer, signal, children), retried after a durable backoff, or failed.

use super::journal::Journal;
use super::runner::{catch_panic, Ended, Flow, Runner};
use super::timing::{after, millis};
use crate::definition::{Step, Workflow};
use crate::engine::signals;
use crate::outcome::StepOutcome;
use crate::SagaError;
use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_store::workflow::{
    Fence, StepEnd, StepFinish, StepKind, StepRecord, StepStart, WorkflowRecord,
};
use tracing::Instrument as _;

impl<C: Send + Sync + 'static> Runner<C> {
    pub(super) async fn run_action(
        &self,
        def: &Workflow<C>,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
        idx: usize,
    ) -> Result<Flow, SagaError> {
        let Some(step) = def.steps().get(idx) else {
            return Err(SagaError::Journal {
                id: wf.id.clone(),
                detail: format!("no step {idx}"),
            });
        };
        let attempt = journal
            .steps
            .get(idx)
            .and_then(Option::as_ref)
            .map_or(1, |r| r.attempt.max(1));
        let span =
            tracing::info_span!("step", step = %step.name, index = idx, attempt, kind = "action");
        self.run_action_in_span(def, step, wf, fence, journal, idx, attempt)
            .instrument(span)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_action_in_span(
        &self,
        def: &Workflow<C>,
        step: &Step<C>,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
        idx: usize,
        attempt: i64,
    ) -> Result<Flow, SagaError> {
        let attempt_u32 = u32::try_from(attempt).unwrap_or(u32::MAX);
        let index = i64::try_from(idx).unwrap_or(i64::MAX);
        let started = self.now();
        self.store()
            .start_step(
                fence,
                &StepStart {
                    index,
                    name: step.name.clone(),
                    kind: StepKind::Action,
                    attempt,
                    now: started,
                },
            )
            .await?;
        match journal.steps.get_mut(idx) {
            Some(Some(rec)) => {
                rec.state = StepState::Running;
                rec.attempt = attempt;
            }
            Some(slot) => {
                *slot = Some(StepRecord {
                    workflow_id: wf.id.clone(),
                    step_index: index,
                    step_name: step.name.clone(),
                    state: StepState::Running,
                    attempt,
                    undo_attempt: 0,
                    output: None,
                    error: None,
                    undo_error: None,
                    wake_at: None,
                    started_at: Some(started),
                    finished_at: None,
                    generation: fence.generation,
                    updated_at: started,
                })
            }
            None => {}
        }
        let signals = if journal.pending_signals > 0 {
            self.store()
                .pending_signals(&wf.id)
                .await?
                .into_iter()
                .filter(|s| !signals::CONTROL.contains(&s.name.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        let ctx = self.context(
            def,
            wf,
            journal,
            idx,
            StepKind::Action,
            attempt_u32,
            signals,
        );
        tracing::debug!("step action started");
        let result = catch_panic(step.action.run(ctx.clone())).await;
        let at = self.now();
        let end = |finish: StepFinish| StepEnd {
            index,
            attempt,
            now: at,
            finish,
            consume_signals: Vec::new(),
        };
        match result {
            Ok(StepOutcome::Done(output)) => {
                let mut e = end(StepFinish::Succeeded {
                    output: output.clone(),
                });
                e.consume_signals = ctx.taken_signals();
                journal.pending_signals = self.store().finish_step(fence, &e).await?;
                journal.set(idx, |r| {
                    r.state = StepState::Succeeded;
                    r.output = Some(output);
                    r.wake_at = None;
                });
                tracing::info!(
                    elapsed_ms = at.millis() - started.millis(),
                    "step succeeded"
                );
                Ok(Flow::Continue)
            }
            Ok(StepOutcome::SleepUntil(until)) => {
                self.suspend(
                    wf,
                    fence,
                    journal,
                    idx,
                    end(StepFinish::Suspended {
                        wake_at: Some(until),
                    }),
                )
                .await?;
                self.park(
                    wf,
                    fence,
                    WorkflowState::Waiting,
                    Some(until),
                    "timer",
                    &[signals::PAUSE, signals::ABORT],
                    Vec::new(),
                )
                .await?;
                Ok(Flow::Stop(Ended::Released))
            }
            Ok(StepOutcome::WaitForSignal { name, deadline }) => {
                self.suspend(
                    wf,
                    fence,
                    journal,
                    idx,
                    end(StepFinish::Suspended { wake_at: deadline }),
                )
                .await?;
                let waiting_for = format!("signal:{name}");
                self.park(
                    wf,
                    fence,
                    WorkflowState::Waiting,
                    deadline,
                    &waiting_for,
                    &[name.as_str(), signals::PAUSE, signals::ABORT],
                    Vec::new(),
                )
                .await?;
                Ok(Flow::Stop(Ended::Released))
            }
            Ok(StepOutcome::WaitForChildren(children)) => {
                self.suspend(
                    wf,
                    fence,
                    journal,
                    idx,
                    end(StepFinish::Suspended { wake_at: None }),
                )
                .await?;
                // Waiting for nothing: run again at once.
                let next = children.is_empty().then(|| self.now());
                self.park(
                    wf,
                    fence,
                    WorkflowState::Waiting,
                    next,
                    "children",
                    &[signals::PAUSE, signals::ABORT],
                    children,
                )
                .await?;
                Ok(Flow::Stop(Ended::Released))
            }
            Err(err) if err.is_retryable() && step.retry.retries_after(attempt_u32) => {
                let delay = step.retry.backoff(attempt_u32);
                let finish = StepFinish::Retry {
                    error: err.message().to_owned(),
                    next_attempt: attempt + 1,
                };
                journal.pending_signals = self.store().finish_step(fence, &end(finish)).await?;
                self.store()
                    .release_lease(fence, Some(after(at, delay)), Some("retry backoff"), at)
                    .await?;
                tracing::warn!(error = %err, retry_in_ms = millis(delay), "step attempt failed; will retry");
                Ok(Flow::Stop(Ended::Released))
            }
            Err(err) => {
                let error = if err.is_retryable() {
                    format!(
                        "step `{}` failed after {attempt} attempts: {err}",
                        step.name
                    )
                } else {
                    format!("step `{}` failed: {err}", step.name)
                };
                let finish = StepFinish::Failed {
                    error: err.message().to_owned(),
                };
                journal.pending_signals = self.store().finish_step(fence, &end(finish)).await?;
                journal.set(idx, |r| r.state = StepState::Failed);
                tracing::warn!(error = %err, "step failed for good");
                self.fail_forward(wf, fence, journal, error).await
            }
        }
    }

    async fn suspend(
        &self,
        wf: &WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
        idx: usize,
        end: StepEnd,
    ) -> Result<(), SagaError> {
        let wake_at = match &end.finish {
            StepFinish::Suspended { wake_at } => *wake_at,
            _ => None,
        };
        journal.pending_signals = self.store().finish_step(fence, &end).await?;
        journal.set(idx, |r| {
            r.state = StepState::Pending;
            r.wake_at = wake_at;
        });
        tracing::debug!(workflow_id = %wf.id, "step suspended");
        Ok(())
    }
}
