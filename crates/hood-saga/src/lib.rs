//! Hood's durable workflow (saga) engine, modelled on Oxide's steno and on
//! DBOS (design §3).
//!
//! A [`Workflow`] is a named, versioned sequence of [`Step`]s; each step
//! has an [`Action`], an optional [`Undo`] and a [`RetryPolicy`]. Every
//! step outcome is journaled in the store (`hood_store::workflow`) before
//! the next step starts, so a crashed process resumes from the journal:
//! steps that succeeded are never run again, a step that was running when
//! the process died runs again (**actions and undos must be idempotent**).
//!
//! * **Leases and fencing.** A worker claims a due run with a lease (an
//!   owner and a generation), renews it while it works, and every journal
//!   write is fenced on the generation; the moment one is rejected (or a
//!   renewal fails) the worker drops the run. On PostgreSQL any number of
//!   workers in any number of processes share the work (`FOR UPDATE SKIP
//!   LOCKED`); on SQLite one in-process worker ([`WorkerConfig::embedded`]).
//! * **Failure.** A retryable error is retried with exponential backoff
//!   (durable: the wait is the run's `next_run_at`, the worker is freed).
//!   A permanent error, exhausted retries or an `abort` signal undo the
//!   completed steps in reverse order; when all are undone the run is
//!   `failed` with the original error. An undo that keeps failing leaves
//!   the run `stuck` for an operator ([`Engine::retry`],
//!   [`Engine::abandon`]).
//! * **Waiting.** Steps may sleep until an instant, wait for a signal
//!   (`approve` or any name) or for child workflows; the run is parked
//!   without a lease and woken by the timer, the signal or the child.
//!   `pause`/`resume`/`abort` act at step boundaries.
//! * **Versions.** Workers claim only runs of definitions they know: a run
//!   of an unknown name or version is left untouched, never replayed
//!   against the wrong steps ([`Engine::refuse_unknown`] fails such runs
//!   where no other worker could know them).
//!
//! Defining, starting and awaiting a workflow:
//!
//! ```no_run
//! # use hood_saga::*;
//! # use std::{sync::Arc, time::Duration};
//! struct Services { /* provider clients, stores, … */ }
//!
//! # async fn demo(store: Arc<dyn hood_store::Store>) -> Result<(), SagaError> {
//! let provision = Workflow::new("provision-node", 1)
//!     .step(
//!         Step::new("create-host", |ctx: StepContext<Services>| async move {
//!             let host_id = format!("host-{}", ctx.workflow_id); // deterministic
//!             Ok(serde_json::json!({ "host": host_id }).into())
//!         })
//!         .undo(|_ctx: StepContext<Services>| async move { Ok(()) })
//!         .retry(RetryPolicy::INFRASTRUCTURE),
//!     );
//! let registry = Registry::new().with(provision)?;
//! let engine = Engine::new(store, registry, Arc::new(Services {}));
//! let worker = engine.spawn_worker(WorkerConfig::embedded());
//! engine
//!     .start(StartWorkflow::new("provision-node-42", ("provision-node", 1), serde_json::json!({}))?)
//!     .await?;
//! let done = engine.wait("provision-node-42", Duration::from_secs(60)).await?;
//! # let _ = done; worker.shutdown().await;
//! # Ok(()) }
//! ```

mod bench;
mod context;
mod definition;
mod engine;
mod outcome;
mod retry;
mod start;
mod worker;

pub use bench::{bench_step_throughput, BenchReport};
pub use context::{ChildSpec, Runs, StepContext};
pub use definition::{Action, Registry, Step, Undo, Workflow};
pub use engine::{signals, Engine};
pub use outcome::{StepError, StepOutcome};
pub use retry::RetryPolicy;
pub use start::{StartWorkflow, Started};
pub use worker::{WorkerConfig, WorkerHandle};

pub use hood_domain::lifecycle::{StepState, WorkflowState};
pub use hood_store::workflow::{
    SignalRecord, StepExecution, StepKind, StepRecord, WorkflowDetail, WorkflowFilter,
    WorkflowRecord,
};

use hood_store::StoreError;

/// Engine failures (a step's own failures are [`StepError`]s, journaled,
/// not returned).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No definition of this name and version is registered here.
    #[error("unknown workflow definition {name} v{version}")]
    UnknownDefinition { name: String, version: i64 },
    #[error("invalid workflow definition: {0}")]
    InvalidDefinition(String),
    /// The id is taken by a run of another definition.
    #[error("workflow id {0} is already used by a different workflow")]
    IdConflict(String),
    #[error("workflow {0} not found")]
    NotFound(String),
    /// The run has finished; it takes no more signals.
    #[error("workflow {0} has finished")]
    Finished(String),
    /// An operator action on a run that is not stuck.
    #[error("workflow {id} is not stuck: {detail}")]
    NotStuck { id: String, detail: String },
    #[error("timed out waiting for workflow {0}")]
    Timeout(String),
    #[error("invalid workflow input: {0}")]
    InvalidInput(String),
    /// The journal does not match the definition it claims to be of.
    #[error("journal of workflow {id} is inconsistent: {detail}")]
    Journal { id: String, detail: String },
}

impl SagaError {
    /// Whether retrying the same call cannot succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Store(StoreError::Database(_)) | Self::Timeout(_) => false,
            Self::Store(_)
            | Self::UnknownDefinition { .. }
            | Self::InvalidDefinition(_)
            | Self::IdConflict(_)
            | Self::NotFound(_)
            | Self::Finished(_)
            | Self::NotStuck { .. }
            | Self::InvalidInput(_)
            | Self::Journal { .. } => true,
        }
    }

    /// A fenced write was rejected: this process no longer holds the run.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::Store(e) if hood_store::workflow::is_lease_lost(e))
    }
}
