//! The `process` adapter: workloads as supervised child processes.
//!
//! Layout under the adapter's root, one directory per workload:
//!
//! ```text
//! {root}/workloads/{id}/spec.json   spec without secret contents (+ their SHA-256)
//! {root}/workloads/{id}/state.json  desired state and last status
//! {root}/workloads/{id}/pid.json    the running child (pid, pgid, start time)
//! {root}/workloads/{id}/logs/       output.log and its rotations
//! {root}/workloads/{id}/data/       working directory, spec files, chain data
//! ```
//!
//! Each child leads its own process group and carries
//! `HOOD_WORKLOAD_DIR={root}/workloads/{id}` in its environment, so stopping
//! it reaches every descendant: the group by `killpg`, escapees by the
//! marker. The supervisor holds the read ends of stdout/stderr; a child
//! therefore cannot outlive an agent restart usefully, and [`recover`]
//! kills what the previous agent left and starts it again.
//!
//! [`recover`]: ProcessRuntime::recover

use crate::logs::LogCursor;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::files::{read_json, sha256_file, sha256_hex, wipe_file, write_file, write_json};
use crate::logs::{self, LogLimits, LogWriter, MAX_LINE};
use crate::proc::{self, ProcessRecord};
use crate::spec::{RestartMode, WorkloadId, WorkloadSpec};
use crate::status::{ExitInfo, RuntimeEvent, RuntimeEventKind, WorkloadState, WorkloadStatus};
use crate::{Result, RuntimeError, WorkloadRuntime};
use hood_clock::now;

/// Environment variable carrying the workload directory: the marker that
/// finds a workload's processes even after they leave its process group.
pub const WORKLOAD_DIR_ENV: &str = "HOOD_WORKLOAD_DIR";
/// Environment variable carrying the workload's data directory.
pub const DATA_DIR_ENV: &str = "HOOD_DATA_DIR";
/// Environment variable carrying the workload id.
pub const WORKLOAD_ID_ENV: &str = "HOOD_WORKLOAD_ID";

const SPEC_FILE: &str = "spec.json";
const STATE_FILE: &str = "state.json";
const PID_FILE: &str = "pid.json";
const LOG_DIR: &str = "logs";
const DATA_DIR: &str = "data";

/// Configuration of a [`ProcessRuntime`].
#[derive(Debug, Clone)]
pub struct ProcessRuntimeConfig {
    /// Where workload directories live (created if missing).
    pub root: PathBuf,
    pub log_limits: LogLimits,
}

impl ProcessRuntimeConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            log_limits: LogLimits::default(),
        }
    }
}

/// Supervises workloads as child processes. Cheap to clone.
///
/// Dropping every handle does not stop the workloads (their supervisor
/// tasks keep running on the tokio runtime); call
/// [`ProcessRuntime::shutdown`] for an orderly stop.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    limits: LogLimits,
    slots: StdMutex<HashMap<WorkloadId, Arc<Slot>>>,
    events: broadcast::Sender<RuntimeEvent>,
    closed: AtomicBool,
}

/// One workload known to the runtime.
struct Slot {
    shared: Arc<Shared>,
    /// Serialises start/stop/remove of this workload.
    ctl: Mutex<Control>,
}

/// What the supervisor task and the API both touch.
struct Shared {
    id: WorkloadId,
    dir: PathBuf,
    cell: StdMutex<Cell>,
    log: StdMutex<LogWriter>,
    events: broadcast::Sender<RuntimeEvent>,
}

struct Cell {
    desired: Desired,
    status: WorkloadStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Desired {
    Running,
    Stopped,
}

struct Control {
    removed: bool,
    launch: Option<Arc<Launch>>,
    fingerprint: Option<String>,
    sup: Option<Supervisor>,
}

/// What a supervisor needs to (re)spawn a workload.
struct Launch {
    spec: WorkloadSpec,
    /// After recovery, secret contents are not in memory: the files left on
    /// disk are used if their SHA-256 still matches.
    recovered_secrets: Option<BTreeMap<PathBuf, String>>,
}

struct Supervisor {
    stop_tx: Option<oneshot::Sender<Duration>>,
    task: JoinHandle<()>,
}

/// `spec.json`: the spec minus secret contents.
#[derive(Serialize, Deserialize)]
struct PersistedSpec {
    fingerprint: String,
    spec: WorkloadSpec,
    secret_sha256: BTreeMap<PathBuf, String>,
}

/// `state.json`.
#[derive(Serialize, Deserialize)]
struct PersistedState {
    desired: Desired,
    status: WorkloadStatus,
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

impl ProcessRuntime {
    /// Opens (creating) the runtime root. Does not touch existing workloads:
    /// call [`ProcessRuntime::recover`] once at agent start for that.
    pub fn new(config: ProcessRuntimeConfig) -> Result<Self> {
        let workloads = config.root.join("workloads");
        fs::create_dir_all(&workloads).map_err(io_err("creating runtime root"))?;
        // Canonical, so the environment marker matches however the root was named.
        let root = fs::canonicalize(&config.root).map_err(io_err("resolving runtime root"))?;
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                limits: config.log_limits,
                slots: StdMutex::new(HashMap::new()),
                events,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Directory holding everything of workload `id`.
    pub fn workload_dir(&self, id: &WorkloadId) -> PathBuf {
        self.inner.root.join("workloads").join(id.as_str())
    }

    fn slot(&self, id: &WorkloadId) -> Option<Arc<Slot>> {
        lock(&self.inner.slots).get(id).cloned()
    }

    fn slot_or_create(&self, id: &WorkloadId) -> Arc<Slot> {
        let mut slots = lock(&self.inner.slots);
        slots
            .entry(id.clone())
            .or_insert_with(|| Arc::new(self.new_slot(id, WorkloadStatus::new(id.clone()))))
            .clone()
    }

    fn new_slot(&self, id: &WorkloadId, status: WorkloadStatus) -> Slot {
        let dir = self.workload_dir(id);
        Slot {
            shared: Arc::new(Shared {
                id: id.clone(),
                log: StdMutex::new(LogWriter::new(dir.join(LOG_DIR), self.inner.limits)),
                dir,
                cell: StdMutex::new(Cell {
                    desired: Desired::Stopped,
                    status,
                }),
                events: self.inner.events.clone(),
            }),
            ctl: Mutex::new(Control {
                removed: false,
                launch: None,
                fingerprint: None,
                sup: None,
            }),
        }
    }

    /// Re-adopts the workloads of a previous agent run: kills whatever it
    /// left running (by recorded pid and by environment marker), then starts
    /// again every workload whose desired state is running. Workloads that
    /// were stopped, failed or finished stay as they were, with their
    /// secrets wiped. Returns the resulting statuses.
    pub async fn recover(&self) -> Result<Vec<WorkloadStatus>> {
        let dir = self.inner.root.join("workloads");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing workloads"))? {
            let entry = entry.map_err(io_err("listing workloads"))?;
            match entry.file_name().to_str().map(WorkloadId::new) {
                Some(Ok(id)) if self.slot(&id).is_none() => ids.push(id),
                _ => {}
            }
        }
        let results = futures::future::join_all(ids.iter().map(|id| self.recover_one(id))).await;
        let mut out = Vec::new();
        for (id, r) in ids.iter().zip(results) {
            match r {
                Ok(Some(s)) => out.push(s),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(workload = %id, error = %e, "could not recover workload");
                }
            }
        }
        Ok(out)
    }

    async fn recover_one(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        let dir = self.workload_dir(id);
        let pspec: Option<PersistedSpec> =
            read_json(&dir.join(SPEC_FILE)).map_err(io_err("reading spec.json"))?;
        let (sig, grace) = pspec
            .as_ref()
            .map(|p| (p.spec.stop_signal.to_nix(), p.spec.stop_grace))
            .unwrap_or((nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10)));
        kill_leftovers(&dir, sig, grace).await;
        let Some(pspec) = pspec else {
            tracing::warn!(workload = %id, "workload directory without spec.json; left alone");
            return Ok(None);
        };
        // An unreadable state is treated as "stopped": the control plane
        // re-sends what it wants running when the agent reconnects.
        let state: Option<PersistedState> = read_json(&dir.join(STATE_FILE)).unwrap_or_else(|e| {
            tracing::warn!(workload = %id, error = %e, "unreadable state.json; treating the workload as stopped");
            None
        });
        let (desired, mut status) = match state {
            Some(s) => (s.desired, s.status),
            None => (Desired::Stopped, WorkloadStatus::new(id.clone())),
        };
        status.pid = None;
        if !status.state.is_terminal() {
            status.state = WorkloadState::Stopped;
        }
        let slot = Arc::new(self.new_slot(id, status));
        // Hold the control lock before publishing the slot, so a concurrent
        // start waits for recovery instead of racing it.
        let mut ctl = slot.ctl.lock().await;
        {
            let mut slots = lock(&self.inner.slots);
            if slots.contains_key(id) {
                return Ok(None); // started meanwhile: that start wins
            }
            slots.insert(id.clone(), slot.clone());
        }
        let launch = Arc::new(Launch {
            spec: pspec.spec,
            recovered_secrets: Some(pspec.secret_sha256),
        });
        ctl.fingerprint = Some(pspec.fingerprint);
        ctl.launch = Some(launch.clone());
        if desired == Desired::Running {
            tracing::info!(workload = %id, "restarting workload after agent restart");
            slot.shared.set_desired(Desired::Running);
            match self.launch(&slot.shared, &mut ctl, launch).await {
                Ok(s) => return Ok(Some(s)),
                Err(e) => {
                    tracing::warn!(workload = %id, error = %e, "recovered workload failed to start");
                }
            }
        } else {
            wipe_secrets(&slot.shared, &launch.spec);
        }
        Ok(Some(slot.shared.status()))
    }

    /// Stops every workload (in parallel, each with its own grace) without
    /// changing its desired state, so the next [`ProcessRuntime::recover`]
    /// starts them again. For a graceful agent shutdown. Later starts are
    /// refused.
    pub async fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).values().cloned().collect();
        futures::future::join_all(slots.iter().map(|slot| async move {
            let mut ctl = slot.ctl.lock().await;
            let desired = lock(&slot.shared.cell).desired;
            stop_supervisor(&slot.shared, &mut ctl, None).await;
            slot.shared.set_desired(desired);
        }))
        .await;
    }

    /// Spawns the first process and hands it to a new supervisor task.
    async fn launch(
        &self,
        shared: &Arc<Shared>,
        ctl: &mut Control,
        launch: Arc<Launch>,
    ) -> Result<WorkloadStatus> {
        shared.update(|s| {
            s.state = WorkloadState::Starting;
            s.restarts = 0;
            s.last_error = None;
            s.pid = None;
        });
        match spawn_child(shared, &launch) {
            Ok(child) => {
                let (stop_tx, stop_rx) = oneshot::channel();
                let task = tokio::spawn(supervise(shared.clone(), launch, child, stop_rx));
                ctl.sup = Some(Supervisor {
                    stop_tx: Some(stop_tx),
                    task,
                });
                Ok(shared.status())
            }
            Err(e) => {
                shared.fail(&e.reason);
                wipe_secrets(shared, &launch.spec);
                Err(RuntimeError::Spawn {
                    id: shared.id.clone(),
                    reason: e.reason,
                })
            }
        }
    }
}

#[async_trait]
impl WorkloadRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn start(&self, spec: WorkloadSpec) -> Result<WorkloadStatus> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShutDown);
        }
        spec.validate()?;
        let fingerprint = spec.fingerprint();
        loop {
            let slot = self.slot_or_create(&spec.id);
            let mut ctl = slot.ctl.lock().await;
            if ctl.removed {
                continue; // removed while we waited: take the fresh slot
            }
            let supervising = ctl.sup.as_ref().is_some_and(|s| !s.task.is_finished());
            if supervising && ctl.fingerprint.as_deref() == Some(fingerprint.as_str()) {
                tracing::debug!(workload = %spec.id, "start: already running with this spec");
                return Ok(slot.shared.status());
            }
            if supervising {
                tracing::info!(workload = %spec.id, "start: spec changed, restarting");
                stop_supervisor(&slot.shared, &mut ctl, None).await;
            }
            let shared = slot.shared.clone();
            fs::create_dir_all(shared.dir.join(DATA_DIR))
                .map_err(io_err("creating workload directory"))?;
            let persisted = PersistedSpec {
                fingerprint: fingerprint.clone(),
                secret_sha256: spec
                    .files
                    .iter()
                    .filter(|f| f.secret)
                    .map(|f| (f.path.clone(), sha256_hex(&f.contents)))
                    .collect(),
                spec: redacted(&spec),
            };
            write_json(&shared.dir.join(SPEC_FILE), &persisted)
                .map_err(io_err("writing spec.json"))?;
            shared.set_desired(Desired::Running);
            ctl.fingerprint = Some(fingerprint);
            let launch = Arc::new(Launch {
                spec,
                recovered_secrets: None,
            });
            ctl.launch = Some(launch.clone());
            tracing::info!(workload = %shared.id, "starting workload");
            return self.launch(&shared, &mut ctl, launch).await;
        }
    }

    async fn stop(&self, id: &WorkloadId, grace: Option<Duration>) -> Result<WorkloadStatus> {
        let slot = self
            .slot(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        let mut ctl = slot.ctl.lock().await;
        if ctl.removed {
            return Err(RuntimeError::NotFound(id.clone()));
        }
        slot.shared.set_desired(Desired::Stopped);
        stop_supervisor(&slot.shared, &mut ctl, grace).await;
        Ok(slot.shared.status())
    }

    async fn remove(&self, id: &WorkloadId, wipe_data: bool) -> Result<()> {
        let dir = self.workload_dir(id);
        if let Some(slot) = self.slot(id) {
            let mut ctl = slot.ctl.lock().await;
            if !ctl.removed {
                slot.shared.set_desired(Desired::Stopped);
                stop_supervisor(&slot.shared, &mut ctl, None).await;
                ctl.removed = true;
                lock(&slot.shared.log).close();
                lock(&self.inner.slots).remove(id);
            }
        } else {
            // Not supervised (e.g. before recover): still clean up after it.
            kill_leftovers(
                &dir,
                nix::sys::signal::Signal::SIGTERM,
                Duration::from_secs(10),
            )
            .await;
        }
        // Secrets from the persisted spec: covers both paths above.
        if let Ok(Some(p)) = read_json::<PersistedSpec>(&dir.join(SPEC_FILE)) {
            for path in p.secret_sha256.keys() {
                if let Err(e) = wipe_file(&dir.join(DATA_DIR).join(path)) {
                    tracing::warn!(workload = %id, error = %e, "could not wipe secret file");
                }
            }
        }
        let res = if wipe_data {
            fs::remove_dir_all(&dir)
        } else {
            remove_all_but(&dir, DATA_DIR)
        };
        match res {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err("removing workload directory")(e))
            }
            _ => {
                tracing::info!(workload = %id, wipe_data, "workload removed");
                Ok(())
            }
        }
    }

    async fn status(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        Ok(self.slot(id).map(|s| s.shared.status()))
    }

    async fn list(&self) -> Result<Vec<WorkloadStatus>> {
        let mut v: Vec<WorkloadStatus> = lock(&self.inner.slots)
            .values()
            .map(|s| s.shared.status())
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    async fn tail_logs(&self, id: &WorkloadId, lines: usize) -> Result<Vec<String>> {
        if self.slot(id).is_none() {
            return Err(RuntimeError::NotFound(id.clone()));
        }
        let dir = self.workload_dir(id).join(LOG_DIR);
        let keep = self.inner.limits.keep;
        tokio::task::spawn_blocking(move || logs::tail(&dir, keep, lines))
            .await
            .map_err(|e| io_err("reading logs")(io::Error::other(e)))?
            .map_err(io_err("reading logs"))
    }

    async fn follow_logs(
        &self,
        id: &WorkloadId,
        after: Option<LogCursor>,
        tail_lines: usize,
    ) -> Result<(Vec<String>, LogCursor)> {
        if self.slot(id).is_none() {
            return Err(RuntimeError::NotFound(id.clone()));
        }
        let dir = self.workload_dir(id).join(LOG_DIR);
        let keep = self.inner.limits.keep;
        tokio::task::spawn_blocking(move || logs::follow(&dir, keep, after, tail_lines))
            .await
            .map_err(|e| io_err("following logs")(io::Error::other(e)))?
            .map_err(io_err("following logs"))
    }

    fn data_dir(&self, id: &WorkloadId) -> PathBuf {
        self.workload_dir(id).join(DATA_DIR)
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }
}

/// The spec as persisted: secret contents dropped.
fn redacted(spec: &WorkloadSpec) -> WorkloadSpec {
    let mut s = spec.clone();
    for f in s.files.iter_mut().filter(|f| f.secret) {
        f.contents = Vec::new();
    }
    s
}

fn remove_all_but(dir: &Path, keep: &str) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == keep {
            continue;
        }
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Kills what a previous supervisor of `dir` left running: the recorded
/// group (if the recorded process is really still the same one) and every
/// process carrying the directory's environment marker.
async fn kill_leftovers(dir: &Path, sig: nix::sys::signal::Signal, grace: Duration) {
    let record: Option<ProcessRecord> = read_json(&dir.join(PID_FILE)).ok().flatten();
    let pgid = record.filter(ProcessRecord::is_alive).map(|r| r.pgid);
    let marker = dir.to_string_lossy().into_owned();
    let find = || proc::processes_with_env(WORKLOAD_DIR_ENV, |v| v == marker);
    if pgid.is_some() || !find().is_empty() {
        tracing::info!(dir = %dir.display(), "killing processes left by a previous agent");
        if !proc::terminate_tree(pgid, find, sig, grace).await {
            tracing::warn!(dir = %dir.display(), "some leftover processes survived SIGKILL");
        }
    }
    let _ = fs::remove_file(dir.join(PID_FILE));
}

/// Asks the supervisor to stop (if it runs) and waits for it; afterwards
/// nothing of the workload runs, its secrets are wiped and it is `stopped`.
async fn stop_supervisor(shared: &Arc<Shared>, ctl: &mut Control, grace: Option<Duration>) {
    let spec_grace = ctl
        .launch
        .as_ref()
        .map(|l| l.spec.stop_grace)
        .unwrap_or(Duration::from_secs(10));
    if let Some(mut sup) = ctl.sup.take() {
        if let Some(tx) = sup.stop_tx.take() {
            let _ = tx.send(grace.unwrap_or(spec_grace));
        }
        if let Err(e) = sup.task.await {
            tracing::error!(workload = %shared.id, error = %e, "supervisor task ended abnormally");
            // Whatever the task left, the group must not survive it.
            kill_leftovers(
                &shared.dir,
                nix::sys::signal::Signal::SIGKILL,
                Duration::ZERO,
            )
            .await;
        }
    }
    if let Some(l) = &ctl.launch {
        wipe_secrets(shared, &l.spec);
    }
    let changed = shared.update(|s| {
        let was = s.state;
        s.state = WorkloadState::Stopped;
        s.pid = None;
        was != WorkloadState::Stopped
    });
    if changed {
        shared.emit(RuntimeEventKind::Stopped);
    }
}

fn wipe_secrets(shared: &Shared, spec: &WorkloadSpec) {
    let data = shared.dir.join(DATA_DIR);
    for f in spec.files.iter().filter(|f| f.secret) {
        if let Err(e) = wipe_file(&data.join(&f.path)) {
            tracing::warn!(workload = %shared.id, error = %e, "could not wipe secret file");
        }
    }
}

impl Shared {
    fn status(&self) -> WorkloadStatus {
        lock(&self.cell).status.clone()
    }

    /// Applies `f` to the status and persists the result.
    fn update<R>(&self, f: impl FnOnce(&mut WorkloadStatus) -> R) -> R {
        let mut cell = lock(&self.cell);
        let r = f(&mut cell.status);
        self.persist(&cell);
        r
    }

    fn set_desired(&self, desired: Desired) {
        let mut cell = lock(&self.cell);
        cell.desired = desired;
        self.persist(&cell);
    }

    fn persist(&self, cell: &Cell) {
        if !self.dir.exists() {
            return; // removed
        }
        let state = PersistedState {
            desired: cell.desired,
            status: cell.status.clone(),
        };
        if let Err(e) = write_json(&self.dir.join(STATE_FILE), &state) {
            tracing::warn!(workload = %self.id, error = %e, "could not persist workload state");
        }
    }

    fn emit(&self, kind: RuntimeEventKind) {
        let _ = self.events.send(RuntimeEvent {
            id: self.id.clone(),
            at: now(),
            kind,
        });
    }

    fn log_line(&self, line: &str) {
        let line = format!("[hood-runtime] {line}");
        if let Err(e) = lock(&self.log).write_line(line.as_bytes()) {
            tracing::warn!(workload = %self.id, error = %e, "could not write workload log");
        }
    }

    /// Marks the workload failed for good: no supervisor will restart it.
    fn fail(&self, reason: &str) {
        tracing::warn!(workload = %self.id, reason, "workload failed");
        self.log_line(&format!("failed: {reason}"));
        {
            let mut cell = lock(&self.cell);
            cell.status.state = WorkloadState::Failed;
            cell.status.pid = None;
            cell.status.last_error = Some(reason.to_owned());
            cell.desired = Desired::Stopped;
            self.persist(&cell);
        }
        self.emit(RuntimeEventKind::Failed {
            reason: reason.to_owned(),
        });
    }
}

struct RunningChild {
    child: Child,
    record: ProcessRecord,
    pumps: Vec<JoinHandle<()>>,
    started: Instant,
}

struct SpawnError {
    reason: String,
    /// A retry cannot help (e.g. secret material is gone).
    permanent: bool,
}

/// Writes the spec's files and spawns the process in its own group with
/// output piped into the workload log.
fn spawn_child(
    shared: &Arc<Shared>,
    launch: &Launch,
) -> std::result::Result<RunningChild, SpawnError> {
    let spec = &launch.spec;
    let data = shared.dir.join(DATA_DIR);
    let transient = |reason: String| SpawnError {
        reason,
        permanent: false,
    };
    fs::create_dir_all(&data).map_err(|e| transient(format!("creating data directory: {e}")))?;
    for f in &spec.files {
        if let (true, Some(hashes)) = (f.secret, &launch.recovered_secrets) {
            let on_disk = sha256_file(&data.join(&f.path));
            if on_disk.is_none() || on_disk.as_ref() != hashes.get(&f.path) {
                return Err(SpawnError {
                    reason: format!(
                        "secret file {} is no longer available after an agent restart; start the workload again with its key material",
                        f.path.display()
                    ),
                    permanent: true,
                });
            }
            continue;
        }
        write_file(&data, f)
            .map_err(|e| transient(format!("writing {}: {e}", f.path.display())))?;
    }
    let cwd = match &spec.working_dir {
        None => data.clone(),
        Some(wd) if wd.is_absolute() => wd.clone(),
        Some(wd) => data.join(wd),
    };
    fs::create_dir_all(&cwd).map_err(|e| transient(format!("creating working directory: {e}")))?;

    let mut cmd = Command::new(&spec.executable);
    cmd.args(&spec.args)
        .envs(&spec.env)
        .env(WORKLOAD_DIR_ENV, &shared.dir)
        .env(DATA_DIR_ENV, &data)
        .env(WORKLOAD_ID_ENV, shared.id.as_str())
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: one killpg reaches the whole tree, and a
        // Ctrl-C aimed at the agent's terminal does not hit workloads.
        .process_group(0)
        .kill_on_drop(false);
    let spawned = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| transient(format!("spawning {}: {e}", spec.executable.display())))?;
    let pid = child.id().unwrap_or(0);
    let ipid = i32::try_from(pid).unwrap_or(0);
    let record = ProcessRecord::capture(ipid).unwrap_or(ProcessRecord {
        pid: ipid,
        pgid: ipid,
        start_ticks: 0,
    });
    // The group is the child's own even if it already exited (pgid = pid).
    let record = ProcessRecord {
        pgid: ipid,
        ..record
    };
    if let Err(e) = write_json(&shared.dir.join(PID_FILE), &record) {
        tracing::warn!(workload = %shared.id, error = %e, "could not record pid");
    }
    // Before the pumps, so this line precedes the process's own output.
    shared.log_line(&format!("started pid {pid}"));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, shared.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, shared.clone())));
    }
    let started_at = now();
    shared.update(|s| {
        s.state = WorkloadState::Running;
        s.pid = Some(pid);
        s.started_at = Some(started_at);
    });
    shared.emit(RuntimeEventKind::Started { pid });
    tracing::info!(workload = %shared.id, pid, "workload process started");
    Ok(RunningChild {
        child,
        record,
        pumps,
        started: spawned,
    })
}

/// Copies one output stream into the workload log, line by line.
async fn pump(reader: impl AsyncRead + Unpin, shared: Arc<Shared>) {
    let mut r = BufReader::new(reader);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        match (&mut r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Err(e) = lock(&shared.log).write_line(&buf) {
                    tracing::warn!(workload = %shared.id, error = %e, "could not write workload log");
                }
            }
        }
    }
}

/// Kills the rest of the tree, reaps the child and drains its output.
async fn finish_child(
    shared: &Shared,
    rc: &mut RunningChild,
    spec: &WorkloadSpec,
    grace: Duration,
) -> Option<ExitInfo> {
    let marker = shared.dir.to_string_lossy().into_owned();
    let find = || proc::processes_with_env(WORKLOAD_DIR_ENV, |v| v == marker);
    if !proc::terminate_tree(Some(rc.record.pgid), find, spec.stop_signal.to_nix(), grace).await {
        tracing::warn!(workload = %shared.id, "some workload processes survived SIGKILL");
    }
    let exit = match tokio::time::timeout(Duration::from_secs(5), rc.child.wait()).await {
        Ok(Ok(st)) => Some(ExitInfo::from_status(st, now())),
        _ => None,
    };
    // Every writer is dead, so the pipes are at EOF; bound it anyway.
    for p in rc.pumps.drain(..) {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    let _ = fs::remove_file(shared.dir.join(PID_FILE));
    exit
}

fn describe(exit: &ExitInfo) -> String {
    match (exit.code, exit.signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "exited".to_owned(),
    }
}

enum Wake {
    Exited(Option<ExitInfo>),
    Stop(Duration),
}

/// Waits for the child to exit or a stop request. A closed stop channel
/// (runtime handle dropped) just means nobody can stop us any more.
async fn child_or_stop(
    rc: &mut RunningChild,
    stop_rx: &mut oneshot::Receiver<Duration>,
    stop_closed: &mut bool,
) -> Wake {
    loop {
        tokio::select! {
            res = rc.child.wait() => {
                return Wake::Exited(res.ok().map(|st| ExitInfo::from_status(st, now())));
            }
            g = &mut *stop_rx, if !*stop_closed => match g {
                Ok(grace) => return Wake::Stop(grace),
                Err(_) => *stop_closed = true,
            },
        }
    }
}

/// Sleeps `delay` unless a stop arrives first (returns true then).
async fn sleep_or_stop(
    delay: Duration,
    stop_rx: &mut oneshot::Receiver<Duration>,
    stop_closed: &mut bool,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            g = &mut *stop_rx, if !*stop_closed => match g {
                Ok(_) => return true,
                Err(_) => *stop_closed = true,
            },
        }
    }
}

/// What happens after a process ends.
enum Verdict {
    Restart,
    /// Clean final exit: stopped, nothing to restart.
    Done,
    Fail(String),
}

/// Restart budget: `Some(reason)` when another restart would exceed
/// `max_restarts_in_window`, else records this restart and returns `None`.
fn spend_restart(
    restart_times: &mut VecDeque<Instant>,
    policy: &crate::RestartPolicy,
) -> Option<String> {
    let t = Instant::now();
    while restart_times
        .front()
        .is_some_and(|first| t.duration_since(*first) > policy.window)
    {
        restart_times.pop_front();
    }
    if restart_times.len() >= policy.max_restarts_in_window as usize {
        return Some(format!(
            "gave up after {} restarts within {} s",
            restart_times.len(),
            policy.window.as_secs()
        ));
    }
    restart_times.push_back(t);
    None
}

/// Owns one workload's processes from first spawn to a final state.
///
/// Returns when the workload is stopped on request (the caller then marks
/// it stopped and wipes secrets), finishes under its policy, or fails.
async fn supervise(
    shared: Arc<Shared>,
    launch: Arc<Launch>,
    first: RunningChild,
    mut stop_rx: oneshot::Receiver<Duration>,
) {
    let spec = &launch.spec;
    let policy = &spec.restart;
    let mut current: std::result::Result<RunningChild, SpawnError> = Ok(first);
    let mut restart_times: VecDeque<Instant> = VecDeque::new();
    let mut consecutive = 0u32;
    let mut stop_closed = false;

    loop {
        // 1. Wait for the process to end (or for a stop request) and decide.
        let (verdict, ran_for) = match current {
            Ok(ref mut rc) => match child_or_stop(rc, &mut stop_rx, &mut stop_closed).await {
                Wake::Stop(grace) => {
                    tracing::info!(workload = %shared.id, "stopping workload");
                    let exit = finish_child(&shared, rc, spec, grace).await;
                    shared.log_line("stopped on request");
                    shared.update(|s| {
                        s.last_exit = exit.or(s.last_exit);
                        s.pid = None;
                    });
                    return;
                }
                Wake::Exited(exit) => {
                    let ran_for = rc.started.elapsed();
                    let exit = exit.unwrap_or(ExitInfo {
                        code: None,
                        signal: None,
                        at: now(),
                    });
                    let what = describe(&exit);
                    let wants_restart = match policy.mode {
                        RestartMode::Always => true,
                        RestartMode::OnFailure => !exit.success(),
                        RestartMode::Never => false,
                    };
                    let verdict = if !wants_restart {
                        if exit.success() {
                            Verdict::Done
                        } else {
                            Verdict::Fail(what.clone())
                        }
                    } else {
                        match spend_restart(&mut restart_times, policy) {
                            Some(reason) => Verdict::Fail(reason),
                            None => Verdict::Restart,
                        }
                    };
                    tracing::info!(workload = %shared.id, code = exit.code, signal = exit.signal, "workload process exited");
                    shared.log_line(&what);
                    // One update: the status never shows a dead process as running.
                    shared.update(|s| {
                        s.last_exit = Some(exit);
                        s.pid = None;
                        s.state = match &verdict {
                            Verdict::Restart => WorkloadState::Restarting,
                            Verdict::Done => WorkloadState::Stopped,
                            Verdict::Fail(reason) => {
                                s.last_error = Some(reason.clone());
                                WorkloadState::Failed
                            }
                        };
                    });
                    shared.emit(RuntimeEventKind::Exited { exit });
                    // The leader is gone; take the rest of its group with it
                    // so a restart never runs beside leftovers.
                    finish_child(&shared, rc, spec, spec.stop_grace).await;
                    (verdict, ran_for)
                }
            },
            Err(ref e) if e.permanent => (Verdict::Fail(e.reason.clone()), Duration::ZERO),
            Err(ref e) => {
                shared.log_line(&format!("restart failed: {}", e.reason));
                shared.update(|s| s.last_error = Some(e.reason.clone()));
                let verdict = match spend_restart(&mut restart_times, policy) {
                    Some(reason) => Verdict::Fail(format!("{reason}; last error: {}", e.reason)),
                    None => Verdict::Restart,
                };
                (verdict, Duration::ZERO)
            }
        };

        match verdict {
            Verdict::Done => {
                {
                    let mut cell = lock(&shared.cell);
                    cell.status.state = WorkloadState::Stopped;
                    cell.desired = Desired::Stopped;
                    shared.persist(&cell);
                }
                shared.emit(RuntimeEventKind::Stopped);
                wipe_secrets(&shared, spec);
                return;
            }
            Verdict::Fail(reason) => {
                shared.fail(&reason);
                wipe_secrets(&shared, spec);
                return;
            }
            Verdict::Restart => {}
        }

        // 2. Back off (doubling per quick failure), still listening for a stop.
        if ran_for >= policy.backoff_max {
            consecutive = 0; // it ran long enough to count as healthy
        }
        let delay = policy.backoff(consecutive);
        consecutive = consecutive.saturating_add(1);
        let attempt = shared.update(|s| {
            s.restarts += 1;
            s.state = WorkloadState::Restarting;
            s.restarts
        });
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        shared.log_line(&format!("restart {attempt} in {delay_ms} ms"));
        shared.emit(RuntimeEventKind::Restarting { attempt, delay_ms });
        tracing::info!(workload = %shared.id, attempt, delay_ms, "restarting workload");
        if sleep_or_stop(delay, &mut stop_rx, &mut stop_closed).await {
            return;
        }
        // 3. Spawn again.
        current = spawn_child(&shared, &launch);
    }
}
