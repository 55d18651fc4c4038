//! Driving one claimed run: resume from the journal, then step, signal,
//! compensate or park until the run settles or is released.

use super::journal::Journal;
use super::lease::renew_until_lost;
use super::runner::{Ended, Flow, Runner};
use super::timing::after;
use crate::engine::signals;
use crate::SagaError;
use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_store::workflow::{Fence, WorkflowRecord, WorkflowUpdate};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// How long a run that hit an engine (not step) error, e.g. the database
/// being unreachable, waits before it is claimed again.
const ERROR_RETRY: Duration = Duration::from_secs(5);

impl<C: Send + Sync + 'static> Runner<C> {
    /// Drives one claimed run while a companion future renews the lease;
    /// whichever ends first ends the other, so losing the lease stops the
    /// run's work at its next await point.
    pub(super) async fn run_claimed(self, wf: WorkflowRecord) {
        let Some(fence) = wf.fence() else {
            return;
        };
        let span = tracing::info_span!(
            "workflow",
            workflow_id = %wf.id,
            workflow = %wf.name,
            version = wf.version,
            generation = fence.generation,
            claims = wf.attempts,
        );
        let parent = wf.parent_id.clone();
        async {
            let result = tokio::select! {
                res = self.drive(wf, &fence) => Some(res),
                () = renew_until_lost(Arc::clone(self.store()), self.engine.clock().as_ref(), &fence, self.config.lease_ttl) => None,
            };
            match result {
                Some(Ok(Ended::Settled)) => {
                    self.engine.settled();
                    if parent.is_some() {
                        self.engine.wake();
                    }
                }
                Some(Ok(Ended::Released)) => {}
                Some(Err(e)) if e.is_lease_lost() => {
                    tracing::warn!("lease lost: a fenced write was rejected; stopped working on this workflow");
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "workflow run failed; handing it back for a later retry");
                    let at = self.now();
                    if let Err(e) = self
                        .store()
                        .release_lease(&fence, Some(after(at, ERROR_RETRY)), Some("engine error"), at)
                        .await
                    {
                        tracing::warn!(error = %e, "could not release the lease; it will expire");
                    }
                }
                None => {
                    tracing::warn!("lease lost while working; stopped working on this workflow");
                }
            }
        }
        .instrument(span)
        .await;
    }

    async fn drive(&self, mut wf: WorkflowRecord, fence: &Fence) -> Result<Ended, SagaError> {
        let Some(def) = self.engine.registry().get(&wf.name, wf.version).cloned() else {
            // Claims filter on known definitions; hand back what slipped through.
            self.store()
                .release_lease(fence, wf.next_run_at, wf.waiting_for.as_deref(), self.now())
                .await?;
            return Ok(Ended::Released);
        };
        let mut journal = Journal {
            steps: vec![None; def.steps().len()],
            pending_signals: 1,
        };
        for rec in self.store().list_steps(&wf.id).await? {
            let slot = usize::try_from(rec.step_index)
                .ok()
                .and_then(|i| journal.steps.get_mut(i));
            let Some(slot) = slot else {
                return Err(SagaError::Journal {
                    id: wf.id.clone(),
                    detail: format!(
                        "step {} journaled, but {} v{} has {} steps",
                        rec.step_index,
                        wf.name,
                        wf.version,
                        def.steps().len()
                    ),
                });
            };
            *slot = Some(rec);
        }

        let mut check_signals = true;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                self.store()
                    .release_lease(fence, Some(self.now()), None, self.now())
                    .await?;
                return Ok(Ended::Released);
            }
            // An action interrupted by a crash runs again before signals are
            // looked at: its effects may exist, so it must reach an outcome.
            if wf.state == WorkflowState::Running {
                let idx = journal.first_unfinished();
                let interrupted = journal
                    .steps
                    .get(idx)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.state == StepState::Running);
                if interrupted {
                    match self
                        .run_action(&def, &mut wf, fence, &mut journal, idx)
                        .await?
                    {
                        Flow::Continue => continue,
                        Flow::Stop(end) => return Ok(end),
                    }
                }
            }
            if check_signals || journal.pending_signals > 0 {
                check_signals = false;
                if let Some(end) = self.handle_signals(&mut wf, fence, &mut journal).await? {
                    return Ok(end);
                }
            }
            match wf.state {
                WorkflowState::Pending | WorkflowState::Waiting => {
                    self.update(
                        &mut wf,
                        fence,
                        WorkflowUpdate::to(WorkflowState::Running, self.now()),
                    )
                    .await?;
                }
                WorkflowState::Paused => {
                    self.park(
                        &mut wf,
                        fence,
                        WorkflowState::Paused,
                        None,
                        "paused",
                        &[signals::RESUME, signals::ABORT],
                        Vec::new(),
                    )
                    .await?;
                    return Ok(Ended::Released);
                }
                WorkflowState::Running => {
                    let idx = journal.first_unfinished();
                    if idx == def.steps().len() {
                        return self.complete(&mut wf, fence, &journal).await;
                    }
                    let failed = journal
                        .steps
                        .get(idx)
                        .and_then(Option::as_ref)
                        .filter(|s| s.state == StepState::Failed)
                        .map(|s| {
                            let error = s.error.as_deref().unwrap_or("no error recorded");
                            match s.attempt {
                                1 => format!("step `{}` failed: {error}", s.step_name),
                                n => format!(
                                    "step `{}` failed after {n} attempts: {error}",
                                    s.step_name
                                ),
                            }
                        });
                    let flow = match failed {
                        // Failure journaled, but the run did not move on
                        // before the previous worker stopped.
                        Some(error) => self.fail_forward(&mut wf, fence, &journal, error).await?,
                        None => {
                            self.run_action(&def, &mut wf, fence, &mut journal, idx)
                                .await?
                        }
                    };
                    if let Flow::Stop(end) = flow {
                        return Ok(end);
                    }
                }
                WorkflowState::Compensating => {
                    if let Flow::Stop(end) =
                        self.compensate(&def, &mut wf, fence, &mut journal).await?
                    {
                        return Ok(end);
                    }
                }
                WorkflowState::Stuck
                | WorkflowState::Completed
                | WorkflowState::Failed
                | WorkflowState::Abandoned => {
                    self.store()
                        .release_lease(fence, None, wf.waiting_for.as_deref(), self.now())
                        .await?;
                    return Ok(Ended::Released);
                }
            }
        }
    }

    async fn complete(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &Journal,
    ) -> Result<Ended, SagaError> {
        let output = journal
            .steps
            .last()
            .and_then(Option::as_ref)
            .and_then(|s| s.output.clone())
            .unwrap_or(serde_json::Value::Null);
        let update = WorkflowUpdate {
            output: Some(output),
            release: true,
            ..WorkflowUpdate::to(WorkflowState::Completed, self.now())
        };
        *wf = self.store().update_workflow(fence, &update).await?;
        tracing::info!("workflow completed");
        Ok(Ended::Settled)
    }
}
