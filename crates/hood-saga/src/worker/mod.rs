//! Workers: claim due runs with a lease, drive them step by step, journal
//! every outcome fenced on the lease generation, renew the lease while
//! working, and drop a run the moment the lease is lost.
//!
//! One concept per module, each importing only those listed before it:
//!
//! * `config`: how a worker runs ([`WorkerConfig`]);
//! * `timing`: durations as the store's millisecond timestamps;
//! * `lease`: renewing a claimed run's lease until it is lost;
//! * `journal`: the worker's local copy of a run's journal;
//! * `runner`: the run driver's fenced moves (update, park, step context)
//!   and running user code (panics become retryable errors);
//! * `compensation`: undoing completed steps in reverse, `stuck` when an
//!   undo fails for good;
//! * `step`: a step's action and its outcome (done, suspended, retried
//!   with durable backoff, failed);
//! * `control`: `pause`, `resume` and `abort` at step boundaries;
//! * `drive`: one claimed run from its journal until it settles or is
//!   released;
//! * `claim`: the worker loop claiming due runs, and [`WorkerHandle`].

mod claim;
mod compensation;
mod config;
mod control;
mod drive;
mod journal;
mod lease;
mod runner;
mod step;
mod timing;

pub(crate) use claim::spawn;
pub use claim::WorkerHandle;
pub use config::WorkerConfig;

impl<C: Send + Sync + 'static> crate::engine::Engine<C> {
    /// Starts a worker on this engine's store (see [`WorkerConfig`]).
    pub fn spawn_worker(&self, config: WorkerConfig) -> WorkerHandle {
        spawn(self.clone(), config)
    }
}
