//! The worker loop: claims due runs under a lease (up to `max_concurrent`
//! at once), sleeps until the next one is due, and stops gracefully or dead
//! through its handle.

use super::config::WorkerConfig;
use super::runner::Runner;
use super::timing::millis;
use crate::engine::Engine;
use hood_store::workflow::ClaimRequest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// Shortest idle sleep, so that a run that is due but was taken by another
/// worker does not make this one spin.
const MIN_IDLE: Duration = Duration::from_millis(10);

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
        match store.clear_leases(engine.clock().now()).await {
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
            let at = engine.clock().now();
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
                        u64::try_from(due.millis().saturating_sub(engine.clock().now().millis()))
                            .unwrap_or(0);
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
