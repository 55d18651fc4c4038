//! Step throughput benchmark (`hood bench saga`): how many journaled steps
//! per second the engine sustains on a given store.

use crate::definition::{Registry, Step, Workflow};
use crate::engine::Engine;
use crate::outcome::StepOutcome;
use crate::start::StartWorkflow;
use crate::worker::WorkerConfig;
use crate::{SagaError, StepContext};
use hood_domain::lifecycle::WorkflowState;
use hood_store::workflow::WorkflowFilter;
use hood_store::Store;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Result of [`bench_step_throughput`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub backend: &'static str,
    pub workflows: usize,
    pub steps_per_workflow: usize,
    pub workers: usize,
    /// Runs each worker drives at once.
    pub concurrency_per_worker: usize,
    /// Steps journaled (workflows × steps).
    pub total_steps: usize,
    /// Creating the runs (not part of `elapsed`).
    pub create_elapsed: Duration,
    /// From the workers' start to the last completion.
    pub elapsed: Duration,
    pub steps_per_sec: f64,
    pub workflows_per_sec: f64,
    /// Runs that did not complete (should be 0).
    pub failed: usize,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} workflows × {} steps, {} worker(s) × {} concurrent: {} steps in {:.3} s = {:.0} steps/s ({:.1} workflows/s; creating the runs took {:.3} s){}",
            self.backend,
            self.workflows,
            self.steps_per_workflow,
            self.workers,
            self.concurrency_per_worker,
            self.total_steps,
            self.elapsed.as_secs_f64(),
            self.steps_per_sec,
            self.workflows_per_sec,
            self.create_elapsed.as_secs_f64(),
            if self.failed > 0 {
                format!(", {} NOT COMPLETED", self.failed)
            } else {
                String::new()
            }
        )
    }
}

/// Runs each benchmark worker drives at once. Steps are no-ops, so the
/// benchmark measures the engine and the journal, not the actions.
const CONCURRENCY: usize = 8;

/// Creates `workflows` runs of a workflow of `steps` no-op steps in
/// `store` (migrated), then drives them with `workers` in-process workers
/// (each driving up to 8 runs at once) and reports journaled steps per
/// second, from the workers' start to the last completion (creating the
/// runs is timed separately). Each call uses a fresh workflow name and ids,
/// so the benchmark can be repeated on the same database.
pub async fn bench_step_throughput(
    store: Arc<dyn Store>,
    workflows: usize,
    steps: usize,
    workers: usize,
) -> Result<BenchReport, SagaError> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("bench-{run}");
    let mut def = Workflow::<()>::new(name.clone(), 1);
    for i in 0..steps {
        def = def.step(Step::new(
            format!("step-{i}"),
            |ctx: StepContext<()>| async move { StepOutcome::done(ctx.step_index) },
        ));
    }
    let registry = Registry::new().with(def)?;
    let backend = store.backend();
    let engine = Engine::new(store.clone(), registry, Arc::new(()));
    let workers = workers.max(1);

    let creating = Instant::now();
    for i in 0..workflows {
        let id = format!("{name}-{i}");
        engine
            .start(StartWorkflow::new(
                &id,
                (name.as_str(), 1),
                serde_json::Value::Null,
            )?)
            .await?;
    }
    let create_elapsed = creating.elapsed();

    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            engine.spawn_worker(
                WorkerConfig::cluster()
                    .owner(format!("{name}-worker-{i}"))
                    .max_concurrent(CONCURRENCY),
            )
        })
        .collect();
    // Every run settles exactly once in this process: count the settles
    // rather than polling each run.
    let mut settled = engine.inner.settled.subscribe();
    let baseline = *settled.borrow_and_update();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let done = settled.borrow_and_update().wrapping_sub(baseline);
        if usize::try_from(done).unwrap_or(usize::MAX) >= workflows {
            break;
        }
        if tokio::time::timeout_at(deadline, settled.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let elapsed = started.elapsed();
    for h in handles {
        h.shutdown().await;
    }
    let completed = store
        .list_workflows(&WorkflowFilter {
            state: Some(WorkflowState::Completed),
            name: Some(name.clone()),
            ..WorkflowFilter::default()
        })
        .await?
        .len();
    let total_steps = workflows * steps;
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    #[allow(clippy::cast_precision_loss)]
    let report = BenchReport {
        backend: backend.as_str(),
        workflows,
        steps_per_workflow: steps,
        workers,
        concurrency_per_worker: CONCURRENCY,
        total_steps,
        create_elapsed,
        elapsed,
        steps_per_sec: total_steps as f64 / secs,
        workflows_per_sec: workflows as f64 / secs,
        failed: workflows.saturating_sub(completed),
    };
    Ok(report)
}
