//! Control signals (`pause`, `resume`, `abort`), applied at step
//! boundaries.

use super::journal::Journal;
use super::runner::{Ended, Runner};
use crate::engine::signals;
use crate::SagaError;
use hood_domain::lifecycle::WorkflowState;
use hood_store::workflow::{Fence, SignalRecord, WorkflowRecord, WorkflowUpdate};

impl<C: Send + Sync + 'static> Runner<C> {
    /// Applies `pause`, `resume` and `abort` (oldest first, consumed
    /// atomically with the state change). Other signals are left to steps.
    pub(super) async fn handle_signals(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        journal: &mut Journal,
    ) -> Result<Option<Ended>, SagaError> {
        let pending = self.store().pending_signals(&wf.id).await?;
        let controls: Vec<&SignalRecord> = pending
            .iter()
            .filter(|s| signals::CONTROL.contains(&s.name.as_str()))
            .collect();
        journal.pending_signals = i64::try_from(pending.len() - controls.len()).unwrap_or(i64::MAX);
        if controls.is_empty() {
            return Ok(None);
        }
        let ids: Vec<String> = controls.iter().map(|s| s.id.clone()).collect();
        let abort = controls.iter().any(|s| s.name == signals::ABORT);
        let mut paused = wf.state == WorkflowState::Paused;
        for s in &controls {
            if s.name == signals::PAUSE {
                paused = true;
            } else if s.name == signals::RESUME {
                paused = false;
            }
        }
        let names: Vec<&str> = controls.iter().map(|s| s.name.as_str()).collect();
        tracing::info!(signals = ?names, "control signals received");
        let at = self.now();
        let consume = |to: WorkflowState| WorkflowUpdate {
            consume_signals: ids.clone(),
            ..WorkflowUpdate::to(to, at)
        };
        match wf.state {
            WorkflowState::Pending if abort => {
                let update = WorkflowUpdate {
                    error: Some("aborted by signal before any step ran".into()),
                    release: true,
                    ..consume(WorkflowState::Failed)
                };
                *wf = self.store().update_workflow(fence, &update).await?;
                tracing::info!("workflow aborted before it started");
                return Ok(Some(Ended::Settled));
            }
            WorkflowState::Running | WorkflowState::Waiting | WorkflowState::Paused if abort => {
                let update = WorkflowUpdate {
                    error: Some("aborted by signal".into()),
                    ..consume(WorkflowState::Compensating)
                };
                self.update(wf, fence, update).await?;
                tracing::warn!("workflow aborted: compensating");
            }
            WorkflowState::Pending | WorkflowState::Running | WorkflowState::Waiting if paused => {
                if wf.state == WorkflowState::Pending {
                    self.update(wf, fence, WorkflowUpdate::to(WorkflowState::Running, at))
                        .await?;
                }
                let update = WorkflowUpdate {
                    waiting_for: Some("paused".into()),
                    release: true,
                    wake_on_signals: vec![signals::RESUME.into(), signals::ABORT.into()],
                    ..consume(WorkflowState::Paused)
                };
                *wf = self.store().update_workflow(fence, &update).await?;
                tracing::info!("workflow paused");
                if wf.next_run_at.is_some() {
                    self.engine.wake();
                }
                return Ok(Some(Ended::Released));
            }
            WorkflowState::Paused if !paused => {
                self.update(wf, fence, consume(WorkflowState::Running))
                    .await?;
                tracing::info!("workflow resumed");
            }
            state => {
                // Nothing to do in this state (e.g. abort while already
                // compensating, resume while running): consume only.
                self.update(wf, fence, consume(state)).await?;
            }
        }
        Ok(None)
    }
}
