//! Compensation: a run that failed for good undoes its completed steps in
//! reverse order, then fails; an undo that fails for good leaves it stuck.

use super::journal::Journal;
use super::runner::{catch_panic, Ended, Flow, Runner};
use super::timing::{after, millis};
use crate::definition::{Step, Workflow};
use crate::engine::settled_state;
use crate::SagaError;
use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_store::workflow::{
    Fence, StepEnd, StepFinish, StepKind, StepStart, WorkflowRecord, WorkflowUpdate,
};
use std::sync::Arc;
use tracing::Instrument as _;

impl<C: Send + Sync + 'static> Runner<C> {
    /// A step failed for good: undo what succeeded, or fail at once when
    /// nothing did.
    pub(super) async fn fail_forward(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &Journal,
        error: String,
    ) -> Result<Flow, SagaError> {
        let anything_done = journal
            .steps
            .iter()
            .flatten()
            .any(|s| s.state == StepState::Succeeded);
        if anything_done {
            let update = WorkflowUpdate {
                error: Some(error.clone()),
                ..WorkflowUpdate::to(WorkflowState::Compensating, self.now())
            };
            self.update(wf, fence, update).await?;
            tracing::warn!(error = %error, "workflow failed: compensating");
            Ok(Flow::Continue)
        } else {
            let update = WorkflowUpdate {
                error: Some(error.clone()),
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Failed, self.now())
            };
            *wf = self.store().update_workflow(fence, &update).await?;
            tracing::warn!(error = %error, "workflow failed; nothing to compensate");
            Ok(Flow::Stop(Ended::Settled))
        }
    }

    /// Undoes the latest step still to undo (one per call).
    pub(super) async fn compensate(
        &self,
        def: &Workflow<C>,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
    ) -> Result<Flow, SagaError> {
        let undo_failed = journal
            .steps
            .iter()
            .flatten()
            .any(|s| s.state == StepState::UndoFailed);
        if undo_failed {
            // Journaled before the previous worker could mark the run.
            return self.mark_stuck(wf, fence).await;
        }
        let next = journal.steps.iter().enumerate().rev().find_map(|(i, s)| {
            let s = s.as_ref()?;
            matches!(s.state, StepState::Succeeded | StepState::Compensating).then_some(i)
        });
        let Some(idx) = next else {
            let update = WorkflowUpdate {
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Failed, self.now())
            };
            *wf = self.store().update_workflow(fence, &update).await?;
            tracing::warn!(
                error = wf.error.as_deref(),
                "workflow failed; compensation complete"
            );
            return Ok(Flow::Stop(Ended::Settled));
        };
        let Some(step) = def.steps().get(idx) else {
            return Err(SagaError::Journal {
                id: wf.id.clone(),
                detail: format!("no step {idx}"),
            });
        };
        let index = i64::try_from(idx).unwrap_or(i64::MAX);
        let Some(undo) = step.undo.clone() else {
            self.store().skip_undo(fence, index, self.now()).await?;
            journal.set(idx, |r| r.state = StepState::Compensated);
            return Ok(Flow::Continue);
        };
        let undo_attempt = journal
            .steps
            .get(idx)
            .and_then(Option::as_ref)
            .map_or(1, |r| r.undo_attempt.max(1));
        let span = tracing::info_span!(
            "step",
            step = %step.name,
            index = idx,
            attempt = undo_attempt,
            kind = "undo"
        );
        self.run_undo(def, step, undo, wf, fence, journal, idx)
            .instrument(span)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_undo(
        &self,
        def: &Workflow<C>,
        step: &Step<C>,
        undo: Arc<dyn crate::definition::Undo<C>>,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
        idx: usize,
    ) -> Result<Flow, SagaError> {
        let index = i64::try_from(idx).unwrap_or(i64::MAX);
        let attempt = journal
            .steps
            .get(idx)
            .and_then(Option::as_ref)
            .map_or(1, |r| r.undo_attempt.max(1));
        let attempt_u32 = u32::try_from(attempt).unwrap_or(u32::MAX);
        self.store()
            .start_step(
                fence,
                &StepStart {
                    index,
                    name: step.name.clone(),
                    kind: StepKind::Undo,
                    attempt,
                    now: self.now(),
                },
            )
            .await?;
        journal.set(idx, |r| {
            r.state = StepState::Compensating;
            r.undo_attempt = attempt;
        });
        let ctx = self.context(
            def,
            wf,
            journal,
            idx,
            StepKind::Undo,
            attempt_u32,
            Vec::new(),
        );
        tracing::debug!("step undo started");
        let result = catch_panic(undo.undo(ctx)).await;
        let at = self.now();
        let end = |finish: StepFinish| StepEnd {
            index,
            attempt,
            now: at,
            finish,
            consume_signals: Vec::new(),
        };
        match result {
            Ok(()) => {
                journal.pending_signals = self
                    .store()
                    .finish_step(fence, &end(StepFinish::Compensated))
                    .await?;
                journal.set(idx, |r| r.state = StepState::Compensated);
                tracing::info!("step undone");
                Ok(Flow::Continue)
            }
            Err(err) if err.is_retryable() && step.retry.retries_after(attempt_u32) => {
                let delay = step.retry.backoff(attempt_u32);
                let finish = StepFinish::UndoRetry {
                    error: err.message().to_owned(),
                    next_attempt: attempt + 1,
                };
                journal.pending_signals = self.store().finish_step(fence, &end(finish)).await?;
                self.store()
                    .release_lease(
                        fence,
                        Some(after(at, delay)),
                        Some("undo retry backoff"),
                        at,
                    )
                    .await?;
                tracing::warn!(error = %err, retry_in_ms = millis(delay), "undo attempt failed; will retry");
                Ok(Flow::Stop(Ended::Released))
            }
            Err(err) => {
                let finish = StepFinish::UndoFailed {
                    error: err.message().to_owned(),
                };
                journal.pending_signals = self.store().finish_step(fence, &end(finish)).await?;
                journal.set(idx, |r| r.state = StepState::UndoFailed);
                tracing::error!(error = %err, "undo failed for good");
                self.mark_stuck(wf, fence).await
            }
        }
    }

    async fn mark_stuck(&self, wf: &mut WorkflowRecord, fence: &Fence) -> Result<Flow, SagaError> {
        let update = WorkflowUpdate {
            release: true,
            waiting_for: Some("operator".into()),
            ..WorkflowUpdate::to(WorkflowState::Stuck, self.now())
        };
        *wf = self.store().update_workflow(fence, &update).await?;
        debug_assert!(settled_state(wf.state));
        tracing::error!(
            error = wf.error.as_deref(),
            "workflow stuck: an undo failed; needs an operator (retry or abandon)"
        );
        Ok(Flow::Stop(Ended::Settled))
    }
}
