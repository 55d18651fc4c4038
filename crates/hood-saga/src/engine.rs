//! The engine handle: start runs, signal them, operate on stuck ones, await
//! them, and spawn workers.

use crate::context::Runs;
use crate::definition::Registry;
use crate::start::{StartWorkflow, Started};
use crate::SagaError;
use hood_clock::Clock;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::machine::StateMachine;
use hood_store::workflow::WorkflowStore;
use hood_store::workflow::{
    NewSignal, NewWorkflow, WorkflowDetail, WorkflowFilter, WorkflowRecord,
};
use hood_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Names of the signals the engine itself acts on.
pub use hood_domain::node_workflows::signals;

pub(crate) struct Inner<C> {
    pub(crate) store: Arc<dyn WorkflowStore>,
    /// The engine's clock: leases and due times are judged by it, so where
    /// replicas share a database it is aligned to the database's.
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry<C>,
    pub(crate) app: Arc<C>,
    /// Bumped when in-process work may have become due (new run, signal,
    /// child finished): workers claim at once instead of at the next poll.
    pub(crate) work: watch::Sender<u64>,
    /// Bumped when a run finished or got stuck in this process: wakes
    /// [`Engine::wait`].
    pub(crate) settled: watch::Sender<u64>,
}

/// The saga engine. Cheap to clone; one per process (its workers share the
/// in-process wake-ups).
///
/// `C` is the application context handed to every step as
/// [`crate::StepContext::app`]: the orchestrator passes its services in one
/// struct (`Engine::new(store, registry, Arc::new(Services { … }))`).
pub struct Engine<C> {
    pub(crate) inner: Arc<Inner<C>>,
}

impl<C> Clone for Engine<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Send + Sync + 'static> Engine<C> {
    pub fn new(store: Arc<dyn WorkflowStore>, registry: Registry<C>, app: Arc<C>) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock: store.clock(),
                store,
                registry,
                app,
                work: watch::Sender::new(0),
                settled: watch::Sender::new(0),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn WorkflowStore> {
        &self.inner.store
    }

    /// Judges time by `clock` instead of the system's (build-time only:
    /// call before cloning the engine or spawning workers).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                Self {
                    inner: Arc::new(inner),
                }
            }
            Err(inner) => {
                tracing::warn!("with_clock on a shared engine is ignored");
                Self { inner }
            }
        }
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn registry(&self) -> &Registry<C> {
        &self.inner.registry
    }

    pub fn app(&self) -> &Arc<C> {
        &self.inner.app
    }

    /// Tells this process's workers that work may be due now.
    pub fn wake(&self) {
        self.inner.work.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn settled(&self) {
        self.inner.settled.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Creates the run (or finds it: same id, same definition) and wakes the
    /// workers. A definition this process does not know is refused, and an
    /// id already used by another definition is [`SagaError::IdConflict`].
    pub async fn start(&self, req: StartWorkflow) -> Result<Started, SagaError> {
        if self.inner.registry.get(&req.name, req.version).is_none() {
            return Err(SagaError::UnknownDefinition {
                name: req.name,
                version: req.version,
            });
        }
        let new = NewWorkflow {
            id: req.id.clone(),
            name: req.name,
            version: req.version,
            input: req.input,
            parent_id: req.parent_id,
            created_at: self.inner.clock.now(),
        };
        let (workflow, created) = match self.inner.store.create_workflow(&new).await {
            Ok(r) => r,
            Err(StoreError::Conflict(_)) => return Err(SagaError::IdConflict(req.id)),
            Err(StoreError::NotFound(_)) => {
                return Err(SagaError::NotFound(new.parent_id.unwrap_or_default()))
            }
            Err(e) => return Err(e.into()),
        };
        if created {
            tracing::info!(
                workflow_id = %workflow.id,
                workflow = %workflow.name,
                version = workflow.version,
                parent_id = workflow.parent_id.as_deref(),
                "workflow started"
            );
            self.wake();
        }
        Ok(Started { workflow, created })
    }

    pub async fn get(&self, id: &str) -> Result<Option<WorkflowDetail>, SagaError> {
        Ok(self.inner.store.get_workflow_detail(id).await?)
    }

    pub async fn list(&self, filter: &WorkflowFilter) -> Result<Vec<WorkflowRecord>, SagaError> {
        Ok(self.inner.store.list_workflows(filter).await?)
    }

    /// Runs stuck waiting for an operator.
    pub async fn list_stuck(&self) -> Result<Vec<WorkflowRecord>, SagaError> {
        self.list(&WorkflowFilter {
            state: Some(WorkflowState::Stuck),
            ..WorkflowFilter::default()
        })
        .await
    }

    /// Delivers a signal (durably) and wakes the run if it is parked.
    pub async fn signal(
        &self,
        workflow_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), SagaError> {
        let signal = NewSignal {
            id: uuid::Uuid::now_v7().to_string(),
            workflow_id: workflow_id.to_owned(),
            name: name.to_owned(),
            payload,
            created_at: self.inner.clock.now(),
        };
        match self.inner.store.send_signal(&signal).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Err(SagaError::NotFound(workflow_id.into())),
            Err(StoreError::Conflict(_)) => return Err(SagaError::Finished(workflow_id.into())),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(workflow_id, signal = name, "signal sent");
        self.wake();
        Ok(())
    }

    pub async fn pause(&self, workflow_id: &str) -> Result<(), SagaError> {
        self.signal(workflow_id, signals::PAUSE, serde_json::Value::Null)
            .await
    }

    pub async fn resume(&self, workflow_id: &str) -> Result<(), SagaError> {
        self.signal(workflow_id, signals::RESUME, serde_json::Value::Null)
            .await
    }

    /// Stops the run at its next step boundary and compensates.
    pub async fn abort(&self, workflow_id: &str) -> Result<(), SagaError> {
        self.signal(workflow_id, signals::ABORT, serde_json::Value::Null)
            .await
    }

    pub async fn approve(
        &self,
        workflow_id: &str,
        payload: serde_json::Value,
    ) -> Result<(), SagaError> {
        self.signal(workflow_id, signals::APPROVE, payload).await
    }

    /// Operator: runs a stuck run's compensation again (fresh undo budget).
    pub async fn retry(&self, workflow_id: &str) -> Result<WorkflowRecord, SagaError> {
        let record = self
            .inner
            .store
            .retry_stuck(workflow_id, self.inner.clock.now())
            .await
            .map_err(|e| operator_error(e, workflow_id))?;
        tracing::warn!(
            workflow_id,
            "operator retries compensation of stuck workflow"
        );
        self.wake();
        Ok(record)
    }

    /// Operator: gives up on a stuck run; what its failed undos left behind
    /// is now the operator's to clean up.
    pub async fn abandon(
        &self,
        workflow_id: &str,
        reason: &str,
    ) -> Result<WorkflowRecord, SagaError> {
        let record = self
            .inner
            .store
            .abandon_stuck(workflow_id, reason, self.inner.clock.now())
            .await
            .map_err(|e| operator_error(e, workflow_id))?;
        tracing::warn!(workflow_id, reason, "operator abandoned stuck workflow");
        self.settled();
        self.wake();
        Ok(record)
    }

    /// Marks failed every pending run whose definition this process does
    /// not know. Only for a process that is the sole worker of its database
    /// (embedded mode): in a cluster a newer replica may know the version,
    /// and leaving the run untouched is the right refusal.
    pub async fn refuse_unknown(&self) -> Result<Vec<String>, SagaError> {
        let pending = self
            .list(&WorkflowFilter {
                state: Some(WorkflowState::Pending),
                ..WorkflowFilter::default()
            })
            .await?;
        let mut refused = Vec::new();
        for wf in pending {
            if self.inner.registry.get(&wf.name, wf.version).is_some() {
                continue;
            }
            let error = format!(
                "unknown workflow definition {} v{}: refused, not replayed",
                wf.name, wf.version
            );
            match self
                .inner
                .store
                .refuse_workflow(&wf.id, &error, self.inner.clock.now())
                .await
            {
                Ok(_) => {
                    tracing::warn!(workflow_id = %wf.id, workflow = %wf.name, version = wf.version, "refused workflow of unknown definition");
                    refused.push(wf.id);
                }
                // Claimed or changed meanwhile: not ours to refuse.
                Err(StoreError::Conflict(_) | StoreError::InvalidTransition(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !refused.is_empty() {
            self.settled();
        }
        Ok(refused)
    }

    /// Waits until the run has finished (completed, failed, abandoned) or is
    /// stuck, and returns it. In-process completions wake the wait at once;
    /// others are seen by polling.
    pub async fn wait(
        &self,
        workflow_id: &str,
        timeout: Duration,
    ) -> Result<WorkflowRecord, SagaError> {
        self.wait_until(workflow_id, timeout, |wf| {
            wf.state.is_terminal() || wf.state == WorkflowState::Stuck
        })
        .await
    }

    /// Waits until `done` holds for the run.
    pub async fn wait_until(
        &self,
        workflow_id: &str,
        timeout: Duration,
        done: impl Fn(&WorkflowRecord) -> bool,
    ) -> Result<WorkflowRecord, SagaError> {
        const POLL: Duration = Duration::from_millis(250);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut settled = self.inner.settled.subscribe();
        loop {
            settled.borrow_and_update();
            let wf = self
                .inner
                .store
                .get_workflow(workflow_id)
                .await?
                .ok_or_else(|| SagaError::NotFound(workflow_id.into()))?;
            if done(&wf) {
                return Ok(wf);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SagaError::Timeout(workflow_id.into()));
            }
            let poll_until = (tokio::time::Instant::now() + POLL).min(deadline);
            tokio::select! {
                _ = settled.changed() => {}
                () = tokio::time::sleep_until(poll_until) => {}
            }
        }
    }
}

fn operator_error(e: StoreError, id: &str) -> SagaError {
    match e {
        StoreError::NotFound(_) => SagaError::NotFound(id.into()),
        StoreError::InvalidTransition(t) => SagaError::NotStuck {
            id: id.into(),
            detail: t.to_string(),
        },
        other => other.into(),
    }
}

/// True when a run in this state is over or needs an operator.
pub(crate) fn settled_state(state: WorkflowState) -> bool {
    state.is_terminal() || state == WorkflowState::Stuck
}

#[async_trait::async_trait]
impl<C: Send + Sync + 'static> Runs for Engine<C> {
    async fn start(&self, request: StartWorkflow) -> Result<Started, SagaError> {
        Engine::start(self, request).await
    }

    async fn get(&self, id: &str) -> Result<Option<WorkflowDetail>, SagaError> {
        Engine::get(self, id).await
    }

    async fn signal(
        &self,
        workflow_id: &str,
        name: &str,
        payload: serde_json::Value,
    ) -> Result<(), SagaError> {
        Engine::signal(self, workflow_id, name, payload).await
    }
}
