//! Workers: claim due runs with a lease, drive them step by step, journal
//! every outcome fenced on the lease generation, renew the lease while
//! working, and drop a run the moment the lease is lost.

use crate::context::StepContext;
use crate::definition::{Step, StepError, StepOutcome, Workflow};
use crate::engine::{now, settled_state, signals, Engine};
use crate::SagaError;
use futures::FutureExt as _;
use hood_domain::lifecycle::{StepState, WorkflowState};
use hood_domain::Timestamp;
use hood_store::workflow::{
    is_lease_lost, ClaimRequest, Fence, SignalRecord, StepEnd, StepFinish, StepKind, StepRecord,
    StepStart, WorkflowRecord, WorkflowUpdate,
};
use hood_store::{Backend, Store};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// How long a run that hit an engine (not step) error, e.g. the database
/// being unreachable, waits before it is claimed again.
const ERROR_RETRY: Duration = Duration::from_secs(5);

/// Shortest idle sleep, so that a run that is due but was taken by another
/// worker does not make this one spin.
const MIN_IDLE: Duration = Duration::from_millis(10);

/// How a worker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Lease owner id; unique per worker (process restarts get a new one).
    pub owner: String,
    /// Lease length; renewed every third of it while a run is held. A
    /// worker that stops renewing (crash, partition) loses its runs after
    /// this long.
    pub lease_ttl: Duration,
    /// Fallback poll for work started by other processes (in-process work
    /// wakes the worker at once).
    pub poll_interval: Duration,
    /// Runs driven at the same time.
    pub max_concurrent: usize,
    /// Drop every lease at start: only for the sole worker of a database
    /// (embedded SQLite), whose leases at start belong to a dead process.
    pub exclusive: bool,
}

impl WorkerConfig {
    /// A cluster worker: leases, a random owner id, 1 s poll.
    pub fn cluster() -> Self {
        Self {
            owner: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            max_concurrent: 16,
            exclusive: false,
        }
    }

    /// The single in-process worker of embedded mode: resumes runs left
    /// leased by a previous process at once instead of after lease expiry.
    pub fn embedded() -> Self {
        Self {
            exclusive: true,
            ..Self::cluster()
        }
    }

    /// [`embedded`](Self::embedded) on SQLite, [`cluster`](Self::cluster)
    /// on PostgreSQL.
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::embedded(),
            Backend::Postgres => Self::cluster(),
        }
    }

    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::cluster()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Stop,
    Kill,
}

/// A running worker. Dropping the handle stops it gracefully.
pub struct WorkerHandle {
    owner: String,
    control: watch::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops claiming; runs in flight stop at their next step boundary and
    /// hand their lease back (due at once), then this returns.
    pub async fn shutdown(self) {
        self.control.send_replace(Control::Stop);
        if let Err(e) = self.task.await {
            tracing::error!(owner = %self.owner, error = %e, "saga worker ended abnormally");
        }
    }

    /// Stops dead, like a crash: nothing more is journaled and leases stay
    /// until they expire. For tests and abrupt shutdown.
    pub async fn kill(self) {
        self.control.send_replace(Control::Kill);
        if let Err(e) = self.task.await {
            if !e.is_cancelled() {
                tracing::error!(owner = %self.owner, error = %e, "saga worker ended abnormally");
            }
        }
    }
}

pub(crate) fn spawn<C: Send + Sync + 'static>(
    engine: Engine<C>,
    config: WorkerConfig,
) -> WorkerHandle {
    let (control, rx) = watch::channel(Control::Run);
    let owner = config.owner.clone();
    let span = tracing::info_span!("saga_worker", owner = %config.owner);
    let task = tokio::spawn(worker_loop(engine, Arc::new(config), rx).instrument(span));
    WorkerHandle {
        owner,
        control,
        task,
    }
}

async fn worker_loop<C: Send + Sync + 'static>(
    engine: Engine<C>,
    config: Arc<WorkerConfig>,
    mut control: watch::Receiver<Control>,
) {
    let store = Arc::clone(engine.store());
    if config.exclusive {
        match store.clear_leases(now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(leases = n, "dropped leases of a previous process"),
            Err(e) => tracing::error!(error = %e, "could not drop stale leases"),
        }
    }
    let definitions = engine.registry().keys();
    let stop = Arc::new(AtomicBool::new(false));
    let mut work = engine.inner.work.subscribe();
    let mut tasks: JoinSet<()> = JoinSet::new();
    tracing::info!(definitions = definitions.len(), "saga worker started");

    loop {
        let ctl = *control.borrow_and_update();
        match ctl {
            Control::Kill => {
                tasks.shutdown().await;
                tracing::warn!("saga worker killed");
                return;
            }
            Control::Stop => break,
            Control::Run => {}
        }
        work.borrow_and_update();
        while let Some(res) = tasks.try_join_next() {
            log_task_end(res);
        }

        let mut claim_failed = false;
        while tasks.len() < config.max_concurrent {
            let at = now();
            let req = ClaimRequest {
                owner: config.owner.clone(),
                now: at,
                lease_expires_at: at.plus_millis(millis(config.lease_ttl)),
                definitions: definitions.clone(),
            };
            match store.claim_workflow(&req).await {
                Ok(Some(wf)) => {
                    let runner = Runner {
                        engine: engine.clone(),
                        config: Arc::clone(&config),
                        stop: Arc::clone(&stop),
                    };
                    tasks.spawn(runner.run_claimed(wf));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a workflow failed");
                    claim_failed = true;
                    break;
                }
            }
        }

        let idle = if tasks.len() >= config.max_concurrent || claim_failed {
            config.poll_interval
        } else {
            match store.next_due_at(&definitions).await {
                Ok(Some(due)) => {
                    let wait =
                        u64::try_from(due.millis().saturating_sub(now().millis())).unwrap_or(0);
                    Duration::from_millis(wait).clamp(MIN_IDLE, config.poll_interval.max(MIN_IDLE))
                }
                Ok(None) => config.poll_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the next due workflow failed");
                    config.poll_interval
                }
            }
        };

        tokio::select! {
            biased;
            changed = control.changed() => {
                if changed.is_err() {
                    // Handle dropped: stop gracefully.
                    break;
                }
            }
            Some(res) = tasks.join_next(), if !tasks.is_empty() => log_task_end(res),
            _ = work.changed() => {}
            () = tokio::time::sleep(idle) => {}
        }
    }

    // Graceful stop: in-flight runs hand their lease back at the next step
    // boundary. A kill meanwhile still stops dead.
    stop.store(true, Ordering::SeqCst);
    loop {
        tokio::select! {
            biased;
            changed = control.changed() => {
                if changed.is_ok() && *control.borrow() == Control::Kill {
                    tasks.shutdown().await;
                    break;
                }
                if changed.is_err() {
                    // Nothing left to tell us to kill: just drain.
                    while let Some(res) = tasks.join_next().await {
                        log_task_end(res);
                    }
                    break;
                }
            }
            res = tasks.join_next() => match res {
                Some(res) => log_task_end(res),
                None => break,
            },
        }
    }
    tracing::info!("saga worker stopped");
}

fn log_task_end(res: Result<(), tokio::task::JoinError>) {
    if let Err(e) = res {
        if e.is_panic() {
            tracing::error!(error = %e, "workflow task panicked; its lease will expire and another claim resumes it");
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn after(at: Timestamp, d: Duration) -> Timestamp {
    at.plus_millis(millis(d))
}

/// How one claimed run ended for this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Parked (timer, signal, children, paused, backoff) or handed back.
    Released,
    /// Finished or stuck.
    Settled,
}

/// What to do after a step-level move.
enum Flow {
    Continue,
    Stop(Ended),
}

struct Runner<C> {
    engine: Engine<C>,
    config: Arc<WorkerConfig>,
    stop: Arc<AtomicBool>,
}

/// The local copy of a run's journal, updated as this worker writes it.
struct Journal {
    steps: Vec<Option<StepRecord>>,
    /// Unconsumed signals the store last reported.
    pending_signals: i64,
}

impl Journal {
    fn first_unfinished(&self) -> usize {
        self.steps
            .iter()
            .position(|s| s.as_ref().is_none_or(|s| s.state != StepState::Succeeded))
            .unwrap_or(self.steps.len())
    }

    fn outputs<C>(&self, def: &Workflow<C>) -> BTreeMap<String, serde_json::Value> {
        self.steps
            .iter()
            .zip(def.steps.iter())
            .filter_map(|(rec, step)| {
                let out = rec.as_ref()?.output.clone()?;
                Some((step.name.clone(), out))
            })
            .collect()
    }

    fn set(&mut self, index: usize, f: impl FnOnce(&mut StepRecord)) {
        if let Some(Some(rec)) = self.steps.get_mut(index) {
            f(rec);
        }
    }
}

impl<C: Send + Sync + 'static> Runner<C> {
    fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    /// Drives one claimed run while a companion future renews the lease;
    /// whichever ends first ends the other, so losing the lease stops the
    /// run's work at its next await point.
    async fn run_claimed(self, wf: WorkflowRecord) {
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
                () = renew_until_lost(Arc::clone(self.store()), &fence, self.config.lease_ttl) => None,
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
                    let at = now();
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
                .release_lease(fence, wf.next_run_at, wf.waiting_for.as_deref(), now())
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
                    .release_lease(fence, Some(now()), None, now())
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
                        WorkflowUpdate::to(WorkflowState::Running, now()),
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
                        .release_lease(fence, None, wf.waiting_for.as_deref(), now())
                        .await?;
                    return Ok(Ended::Released);
                }
            }
        }
    }

    /// A fenced change that keeps the lease (the store keeps the run due,
    /// so it is claimable again as soon as the lease expires, should this
    /// worker die).
    async fn update(
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
    async fn park(
        &self,
        wf: &mut WorkflowRecord,
        fence: &Fence,
        to: WorkflowState,
        next_run_at: Option<Timestamp>,
        waiting_for: &str,
        wake_on: &[&str],
        children: Vec<String>,
    ) -> Result<(), SagaError> {
        let at = now();
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

    /// Applies `pause`, `resume` and `abort` (oldest first, consumed
    /// atomically with the state change). Other signals are left to steps.
    async fn handle_signals(
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
        let at = now();
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
            ..WorkflowUpdate::to(WorkflowState::Completed, now())
        };
        *wf = self.store().update_workflow(fence, &update).await?;
        tracing::info!("workflow completed");
        Ok(Ended::Settled)
    }

    /// A step failed for good: undo what succeeded, or fail at once when
    /// nothing did.
    async fn fail_forward(
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
                ..WorkflowUpdate::to(WorkflowState::Compensating, now())
            };
            self.update(wf, fence, update).await?;
            tracing::warn!(error = %error, "workflow failed: compensating");
            Ok(Flow::Continue)
        } else {
            let update = WorkflowUpdate {
                error: Some(error.clone()),
                release: true,
                ..WorkflowUpdate::to(WorkflowState::Failed, now())
            };
            *wf = self.store().update_workflow(fence, &update).await?;
            tracing::warn!(error = %error, "workflow failed; nothing to compensate");
            Ok(Flow::Stop(Ended::Settled))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn context(
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
            now: now(),
            timer: rec.and_then(|r| r.wake_at),
            output: rec.and_then(|r| r.output.clone()),
            app: Arc::clone(self.engine.app()),
            input: Arc::new(wf.input.clone()),
            outputs: Arc::new(journal.outputs(def)),
            signals: Arc::new(signals),
            taken: Arc::new(Mutex::new(Vec::new())),
            engine: self.engine.clone(),
        }
    }

    async fn run_action(
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
        let started = now();
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
        let at = now();
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
                let next = children.is_empty().then(now);
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

    /// Undoes the latest step still to undo (one per call).
    async fn compensate(
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
                ..WorkflowUpdate::to(WorkflowState::Failed, now())
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
            self.store().skip_undo(fence, index, now()).await?;
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
                    now: now(),
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
        let at = now();
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
            ..WorkflowUpdate::to(WorkflowState::Stuck, now())
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

/// Runs a step future, turning a panic into a retryable error: a panic is
/// a bug, but possibly one triggered by a transient condition.
async fn catch_panic<T>(
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

/// Renews the lease every third of its length; returns when it is lost
/// (generation moved on) or could not be renewed before it expired.
async fn renew_until_lost(store: Arc<dyn Store>, fence: &Fence, ttl: Duration) {
    let interval = (ttl / 3).max(Duration::from_millis(10));
    let mut valid_until = tokio::time::Instant::now() + ttl;
    loop {
        tokio::time::sleep(interval).await;
        let expires = after(now(), ttl);
        let sent = tokio::time::Instant::now();
        match store.renew_lease(fence, expires).await {
            Ok(()) => valid_until = sent + ttl,
            Err(e) if is_lease_lost(&e) => return,
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                if tokio::time::Instant::now() + interval >= valid_until {
                    return;
                }
            }
        }
    }
}
