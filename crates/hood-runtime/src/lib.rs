//! Runtime adapters: how the on-host agent runs a workload (a blockchain
//! node, a sidecar) and keeps it running.
//!
//! The agent talks to one [`WorkloadRuntime`]; the adapter decides what a
//! workload is. Shipped: [`ProcessRuntime`] (`process`), a supervised child
//! process that works on any Linux host with no dependencies. `systemd` and
//! `docker` adapters (design §4) are not written yet; they implement the
//! same trait, with units/containers named after the [`WorkloadId`] and the
//! same directory layout for files and data, so the agent does not change.
//!
//! [`proc`] (process-tree discovery and killing) and [`files`] (private
//! file writing, secret wiping, atomic JSON) are public because the `local`
//! host provider reuses them.

pub mod files;
mod logs;
pub use logs::LogCursor;
pub mod proc;
mod process;
mod spec;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use logs::{LogLimits, LOG_FILE};
pub use process::{
    ProcessRuntime, ProcessRuntimeConfig, DATA_DIR_ENV, WORKLOAD_DIR_ENV, WORKLOAD_ID_ENV,
};
pub use spec::{RestartMode, RestartPolicy, StopSignal, WorkloadFile, WorkloadId, WorkloadSpec};
pub use status::{ExitInfo, RuntimeEvent, RuntimeEventKind, WorkloadState, WorkloadStatus};

/// Errors of a runtime adapter. Messages never contain file contents or
/// environment values (they may be secrets).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid workload spec: {field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    #[error("workload {0} not found")]
    NotFound(WorkloadId),
    #[error("could not start workload {id}: {reason}")]
    Spawn { id: WorkloadId, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the runtime is shutting down")]
    ShutDown,
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// A way of running workloads on this host.
///
/// Every method is idempotent, because agent commands are delivered at
/// least once: starting a running workload with the same spec does nothing,
/// stopping a stopped one returns its status, removing a missing one is Ok.
#[async_trait]
pub trait WorkloadRuntime: Send + Sync {
    /// Adapter name (`process`, later `systemd`, `docker`).
    fn name(&self) -> &'static str;

    /// Writes the spec's files and starts the workload. Same spec while
    /// running or restarting: no-op. Changed spec: stop (with the old spec's
    /// signal and grace), then start the new one. Fails if the first spawn
    /// fails (the workload is then `failed`).
    async fn start(&self, spec: WorkloadSpec) -> Result<WorkloadStatus>;

    /// Stops the workload's whole process tree: the stop signal, then
    /// SIGKILL after `grace` (default: the spec's `stop_grace`). Secret files
    /// are wiped. `NotFound` for an unknown id.
    async fn stop(&self, id: &WorkloadId, grace: Option<Duration>) -> Result<WorkloadStatus>;

    /// Stops and forgets the workload; with `wipe_data` its data directory
    /// goes too (otherwise it is kept for a later start). Missing: Ok.
    async fn remove(&self, id: &WorkloadId, wipe_data: bool) -> Result<()>;

    async fn status(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>>;

    /// All known workloads, sorted by id.
    async fn list(&self) -> Result<Vec<WorkloadStatus>>;

    /// The last `lines` lines of the workload's output (stdout and stderr
    /// interleaved by line, across rotated files), oldest first.
    async fn tail_logs(&self, id: &WorkloadId, lines: usize) -> Result<Vec<String>>;

    /// Follows the workload's output: without `after`, the last
    /// `tail_lines` lines; with it, the whole lines written since; and the
    /// cursor to go on from. Runtimes that cannot follow say so.
    async fn follow_logs(
        &self,
        id: &WorkloadId,
        after: Option<LogCursor>,
        tail_lines: usize,
    ) -> Result<(Vec<String>, LogCursor)> {
        let _ = (after, tail_lines);
        Err(RuntimeError::Io {
            context: format!("following the logs of {id}"),
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        })
    }

    /// The host directory where the workload's files and data live, for the
    /// agent to render paths into configs and args.
    fn data_dir(&self, id: &WorkloadId) -> PathBuf;

    /// Lifecycle events (started, exited, restarting, failed, stopped) for
    /// the agent to forward. Slow receivers lose the oldest events.
    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent>;
}
