//! A claimed run's driver and the fenced moves every stage of a run uses:
//! state updates, parking, step contexts, and running user code.

use super::config::WorkerConfig;
use super::journal::Journal;
use crate::context::StepContext;
use crate::definition::Workflow;
use crate::engine::Engine;
use crate::outcome::StepError;
use crate::SagaError;
use futures::FutureExt as _;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::Timestamp;
use hood_store::workflow::WorkflowStore;
use hood_store::workflow::{Fence, SignalRecord, StepKind, WorkflowRecord, WorkflowUpdate};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

/// How one claimed run ended for this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Parked (timer, signal, children, paused, backoff) or handed back.
    Released,
    /// Finished or stuck.
    Settled,
}

/// What to do after a step-level move.
pub(super) enum Flow {
    Continue,
    Stop(Ended),
}

/// The driver of one claimed run (one per claim, consumed by its run).
pub(super) struct Runner<C> {
    pub(super) engine: Engine<C>,
    pub(super) config: Arc<WorkerConfig>,
    pub(super) stop: Arc<AtomicBool>,
}

impl<C: Send + Sync + 'static> Runner<C> {
    /// The engine's clock (aligned to the database where replicas share
    /// one).
    pub(super) fn now(&self) -> hood_domain::Timestamp {
        self.engine.clock().now()
    }

    pub(super) fn store(&self) -> &Arc<dyn WorkflowStore> {
        self.engine.store()
    }

    /// A fenced change that keeps the lease (the store keeps the run due,
    /// so it is claimable again as soon as the lease expires, should this
    /// worker die).
    pub(super) async fn update(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        update: WorkflowUpdate,
    ) -> Result<(), SagaError> {
        let from = wf.state;
        *wf = self.store().update_workflow(fence, &update).await?;
        if from != wf.state {
            tracing::debug!(from = %from, to = %wf.state, "workflow state changed");
        }
        Ok(())
    }

    /// Parks the run without a lease until `next_run_at`, one of the
    /// `wake_on` signals or one of the `children` finishing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn park(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        to: WorkflowState,
        next_run_at: Option<Timestamp>,
        waiting_for: &str,
        wake_on: &[&str],
        children: Vec<String>,
    ) -> Result<(), SagaError> {
        let at = self.now();
        let update = WorkflowUpdate {
            next_run_at,
            waiting_for: Some(waiting_for.to_owned()),
            release: true,
            wake_on_signals: wake_on.iter().map(|s| (*s).to_owned()).collect(),
            wake_on_children: children,
            ..WorkflowUpdate::to(to, at)
        };
        *wf = self.store().update_workflow(fence, &update).await?;
        tracing::info!(
            state = %wf.state,
            waiting_for,
            next_run_at = wf.next_run_at.map(Timestamp::millis),
            "workflow parked"
        );
        if wf.next_run_at.is_some_and(|t| t <= at) {
            // What it waits for already happened: claim it again now.
            self.engine.wake();
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn context(
        &self,
        def: &Workflow<C>,
        wf: &WorkflowRecord,
        journal: &Journal,
        idx: usize,
        kind: StepKind,
        attempt: u32,
        signals: Vec<SignalRecord>,
    ) -> StepContext<C> {
        let rec = journal.steps.get(idx).and_then(Option::as_ref);
        StepContext {
            workflow_id: wf.id.clone(),
            workflow_name: wf.name.clone(),
            version: wf.version,
            step_name: def
                .steps()
                .get(idx)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            step_index: idx,
            kind,
            attempt,
            now: self.now(),
            timer: rec.and_then(|r| r.wake_at),
            output: rec.and_then(|r| r.output.clone()),
            app: Arc::clone(self.engine.app()),
            input: Arc::new(wf.input.clone()),
            outputs: Arc::new(journal.outputs(def)),
            signals: Arc::new(signals),
            taken: Arc::new(Mutex::new(Vec::new())),
            runs: Arc::new(self.engine.clone()),
        }
    }
}

/// Runs a step future, turning a panic into a retryable error: a panic is
/// a bug, but possibly one triggered by a transient condition.
pub(super) async fn catch_panic<T>(
    fut: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Err(StepError::Retryable(format!("panicked: {msg}")))
        }
    }
}
