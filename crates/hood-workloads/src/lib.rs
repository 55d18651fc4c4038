//! The agent's workload commands (`start_workload`, `stop_workload`,
//! `remove_workload`, `probe_sync`, `observe_workload`, `tail_logs`, `snapshot_data`,
//! `restore_data`, `pack_snapshot`, `upload_snapshot`, `restore_snapshot`).
//!
//! A node's workload is a set of processes sharing one node directory:
//! `{root}/nodes/{node_id}/{data,config,secrets}`. Key material is opened in
//! memory with the node's data key (fetched over mTLS) and written to
//! `secrets/` (0600) only while the node runs; stop and remove wipe it.
//! Every command is idempotent: the control plane may deliver it again.
//!
//! While a node runs, an [`observe::Observer`] samples its sync probe and
//! its chain's collectors in the background; heartbeats report the latest
//! [`WorkloadObservation`](hood_domain::workload::WorkloadObservation).

pub mod containers;
pub mod leases;
pub mod observe;
pub mod sandbox;
mod snapshots;
pub mod terminal;

use async_trait::async_trait;
use base64::Engine as _;
use hood_agent::{CommandContext, CommandError, CommandHandler, Workload};
use hood_domain::workload::{
    allocation_workload_id, kinds, AllocationLeases, AllocationLogs, AllocationLogsRequest,
    AllocationRef, AllocationTask, DataSnapshotDone, DataSnapshotRef, NodeLogs, NodeLogsRequest,
    ProcessLogs, StartedAllocation, SyncReport, TerminalTask, WorkloadPlan, WorkloadRef,
    WorkloadStarted,
};
use hood_domain::NodeId;
use hood_runtime::{
    RestartPolicy, StopSignal, WorkloadId, WorkloadRuntime, WorkloadSpec, WorkloadState,
};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Set in every node process's environment: the SHA-256 of the node's
/// rendered files, so that a recipe's new file restarts the processes
/// that read it (their spec changed) and an unchanged one does not.
pub const CONFIG_DIGEST_ENV: &str = "HOOD_CONFIG_SHA256";

/// What the handler remembers of a started node (persisted next to it, so
/// an agent restart keeps the same ports).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct NodeRecord {
    plan: WorkloadPlan,
    ports: BTreeMap<String, u16>,
}

/// Runs node workloads on a [`WorkloadRuntime`].
pub struct WorkloadHandler {
    runtime: Arc<dyn WorkloadRuntime>,
    root: PathBuf,
    /// Address other parties use to reach this host's node ports.
    advertise: IpAddr,
    http: reqwest::Client,
    /// Serialises commands on the same node (start vs remove races).
    lock: Mutex<()>,
    /// Background sampling of running workloads.
    observer: observe::Observer,
    /// How long each allocation sandbox may run without word from the
    /// control plane.
    leases: leases::Leases,
    /// CPU used by each running sandbox, for the idle policy.
    cpu: sandbox::CpuMeter,
    /// The host's container engine, when it has one: allocations that
    /// name an image run there.
    containers: Option<Arc<containers::ContainerAllocations>>,
}

fn err(context: &str, e: impl std::fmt::Display) -> CommandError {
    CommandError(format!("{context}: {e}"))
}

impl WorkloadHandler {
    pub fn new(runtime: Arc<dyn WorkloadRuntime>, root: impl Into<PathBuf>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let root: PathBuf = root.into();
        Self {
            runtime,
            leases: leases::Leases::load(root.join("allocation-leases.json")),
            cpu: sandbox::CpuMeter::default(),
            root,
            advertise: IpAddr::V4(Ipv4Addr::LOCALHOST),
            observer: observe::Observer::new(http.clone()),
            http,
            lock: Mutex::new(()),
            containers: None,
        }
    }

    /// Runs allocations that name an image on `containers`.
    pub fn with_containers(mut self, containers: Arc<containers::ContainerAllocations>) -> Self {
        self.containers = Some(containers);
        self
    }

    /// Period of the background sync probe (default
    /// [`observe::DEFAULT_SYNC_INTERVAL`]); tests shorten it.
    pub fn with_sync_interval(mut self, every: Duration) -> Self {
        self.observer.set_sync_interval(every);
        self
    }

    /// The background sampler (for inspection; commands drive it).
    pub fn observer(&self) -> &observe::Observer {
        &self.observer
    }

    /// The host's own address: nodes' private ports listen there, probes
    /// and RPC endpoints use it (default 127.0.0.1).
    pub fn with_advertise(mut self, ip: IpAddr) -> Self {
        self.advertise = ip;
        self
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }

    fn record_path(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("workload.json")
    }

    fn load_record(&self, node: &str) -> Option<NodeRecord> {
        let bytes = std::fs::read(self.record_path(node)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn process_id(node: &str, process: &str) -> Result<WorkloadId, CommandError> {
        WorkloadId::new(format!("{node}-{process}")).map_err(|e| err("workload id", e))
    }

    /// What the observer samples for a node.
    fn observe_target(
        &self,
        plan: &WorkloadPlan,
        ports: &BTreeMap<String, u16>,
    ) -> observe::Target {
        observe::Target {
            workload_id: plan.workload_id.clone(),
            process_ids: plan
                .processes
                .iter()
                .map(|p| format!("{}-{}", plan.workload_id, p.name))
                .collect(),
            sync: plan.sync.clone(),
            collectors: plan.collectors.clone(),
            ports: ports.clone(),
            node_dir: self.node_dir(&plan.workload_id),
            vars: self.vars(plan, ports),
            address: self.advertise,
        }
    }

    /// Watches workloads that run without being observed: after an agent
    /// restart the runtime recovers the processes, and their records on
    /// disk say what to sample. Skipped while a command runs (it may be
    /// stopping the very workload), retried at the next heartbeat.
    async fn resume_observation(&self, list: &[hood_runtime::WorkloadStatus]) {
        let unobserved: Vec<&str> = list
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    WorkloadState::Starting | WorkloadState::Running | WorkloadState::Restarting
                )
            })
            .map(|s| s.id.as_str())
            .filter(|id| self.observer.workload_of(id).is_none())
            .collect();
        if unobserved.is_empty() {
            return;
        }
        let Ok(_guard) = self.lock.try_lock() else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(self.root.join("nodes")) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(node) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(record) = self.load_record(&node) else {
                continue;
            };
            let target = self.observe_target(&record.plan, &record.ports);
            if target
                .process_ids
                .iter()
                .any(|p| unobserved.contains(&p.as_str()))
            {
                tracing::info!(workload = %node, "resuming observation of a recovered workload");
                self.observer.watch(target).await;
            }
        }
    }

    /// Template variables of a node on this host.
    fn vars(&self, plan: &WorkloadPlan, ports: &BTreeMap<String, u16>) -> BTreeMap<String, String> {
        let dir = self.node_dir(&plan.workload_id);
        let mut vars = BTreeMap::new();
        vars.insert("data_dir".into(), dir.join("data").display().to_string());
        vars.insert(
            "config_dir".into(),
            dir.join("config").display().to_string(),
        );
        vars.insert(
            "secrets_dir".into(),
            dir.join("secrets").display().to_string(),
        );
        vars.insert("node_id".into(), plan.node_id.clone());
        vars.insert("node_name".into(), plan.node_name.clone());
        vars.insert("public_ip".into(), self.advertise.to_string());
        vars.insert("host_address".into(), self.advertise.to_string());
        for (name, port) in ports {
            vars.insert(format!("{name}_port"), port.to_string());
        }
        vars
    }

    async fn start(
        &self,
        plan: WorkloadPlan,
        ctx: &CommandContext,
    ) -> Result<WorkloadStarted, CommandError> {
        let node = plan.workload_id.clone();
        let dir = self.node_dir(&node);
        for sub in ["data", "config", "secrets"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| err("creating node directories", e))?;
        }
        set_mode(&dir.join("secrets"), 0o700)?;
        // Same ports asked (redelivery, agent restart, an upgrade to
        // another version): keep them, so the node's endpoint stays.
        let ports = match self.load_record(&node) {
            Some(r) if r.plan.ports == plan.ports => r.ports,
            _ => allocate_ports(self.advertise, &plan.ports)?,
        };
        write_json(
            &self.record_path(&node),
            &NodeRecord {
                plan: plan.clone(),
                ports: ports.clone(),
            },
        )?;
        let vars = self.vars(&plan, &ports);
        let render = |t: &str| hood_chains::render(t, &vars).map_err(|e| err("template", e));

        // What the processes read besides their arguments: a change of it
        // is a change of their spec, so the runtime restarts them on it.
        let mut config = sha2::Sha256::new();
        for f in &plan.files {
            let path = PathBuf::from(render(&f.path)?);
            ensure_inside(&dir, &path)?;
            write_file(&path, f.content.as_bytes(), parse_mode(&f.mode)?)?;
            for part in [
                path.as_os_str().as_encoded_bytes(),
                f.mode.as_bytes(),
                f.content.as_bytes(),
            ] {
                config.update((part.len() as u64).to_le_bytes());
                config.update(part);
            }
        }
        let config_digest = hex::encode(config.finalize());
        if !plan.keys.is_empty() {
            let node_id: NodeId = plan.node_id.parse().map_err(|e| err("node id", e))?;
            let dek = ctx
                .agent
                .node_key(node_id)
                .await
                .map_err(|e| err("fetching the node data key", e))?;
            let dek = hood_identity::master_key::MasterKey::from_bytes(dek.expose())
                .map_err(|e| err("node data key", e))?;
            for k in &plan.keys {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(&k.ciphertext_b64)
                    .map_err(|e| err("key material encoding", e))?;
                let secret =
                    hood_identity::envelope::open_node_material(&dek, &plan.node_id, &sealed)
                        .map_err(|e| err("opening key material", e))?;
                let path = PathBuf::from(render(&k.path)?);
                ensure_inside(&dir.join("secrets"), &path)?;
                let bytes = if k.encoding == "hex" {
                    hex::encode(&secret).into_bytes()
                } else {
                    secret
                };
                write_secret(&path, &bytes)?;
            }
        }
        for (i, p) in plan.processes.iter().enumerate() {
            ctx.progress(
                (i * 100 / plan.processes.len().max(1)) as u32,
                &format!("installing {} {}", p.artifact.name, p.artifact.version),
            );
            let cached = fetch_with_retry(ctx, &p.artifact).await?;
            let bin_dir = dir.join("bin");
            std::fs::create_dir_all(&bin_dir).map_err(|e| err("creating bin dir", e))?;
            // One file per version: a new version is a new executable
            // (the runtime restarts on it), the old one stays for a revert.
            let exe = bin_dir.join(executable_name(&p.name, &p.artifact.version));
            install_executable(&cached, &exe)?;
            let spec = WorkloadSpec {
                id: Self::process_id(&node, &p.name)?,
                executable: exe,
                args: p.args.iter().map(|a| render(a)).collect::<Result<_, _>>()?,
                env: p
                    .env
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), render(v)?)))
                    .chain(std::iter::once(Ok((
                        CONFIG_DIGEST_ENV.to_owned(),
                        config_digest.clone(),
                    ))))
                    .collect::<Result<_, CommandError>>()?,
                working_dir: Some(dir.join("data")),
                files: vec![],
                restart: RestartPolicy::default(),
                stop_signal: match p.stop_signal.as_str() {
                    "SIGINT" => StopSignal::Int,
                    "SIGQUIT" => StopSignal::Quit,
                    _ => StopSignal::Term,
                },
                stop_grace: Duration::from_secs(u64::from(p.stop_timeout_s)),
            };
            self.runtime
                .start(spec)
                .await
                .map_err(|e| err("starting process", e))?;
        }
        self.observer
            .watch(self.observe_target(&plan, &ports))
            .await;
        let rpc_endpoint = ports
            .get("rpc")
            .map(|p| format!("http://{}:{p}", self.advertise));
        Ok(WorkloadStarted {
            workload_id: node,
            ports,
            rpc_endpoint,
        })
    }

    /// Stops (and with `remove`, deletes) every process of a node, then wipes
    /// its secrets; `remove` also deletes the node directory.
    async fn stop(
        &self,
        node: &str,
        remove: bool,
        ctx: &CommandContext,
    ) -> Result<serde_json::Value, CommandError> {
        let processes = self.stop_processes(node, remove).await?;
        if let Ok(id) = node.parse::<NodeId>() {
            ctx.agent.forget_node_key(id);
        }
        Ok(serde_json::json!({ "workload_id": node, "processes": processes, "removed": remove }))
    }

    /// The part of [`Self::stop`] that needs no agent: processes, sampling,
    /// secrets and (with `remove`) the node directory.
    async fn stop_processes(&self, node: &str, remove: bool) -> Result<Vec<String>, CommandError> {
        let record = self.load_record(node);
        let processes: Vec<String> = match &record {
            Some(r) => r.plan.processes.iter().map(|p| p.name.clone()).collect(),
            None => vec![],
        };
        for p in &processes {
            let id = Self::process_id(node, p)?;
            if remove {
                self.runtime
                    .remove(&id, true)
                    .await
                    .map_err(|e| err("removing process", e))?;
            } else {
                self.runtime
                    .stop(&id, None)
                    .await
                    .map_err(|e| err("stopping process", e))?;
            }
        }
        // After the processes: until then a heartbeat still sees them run
        // and must find them observed, not resume them.
        self.observer.unwatch(node).await;
        wipe_secrets(&self.node_dir(node).join("secrets"));
        if remove {
            let dir = self.node_dir(node);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| err("removing node directory", e))?;
            }
        }
        Ok(processes)
    }

    async fn probe(&self, node: &str) -> Result<SyncReport, CommandError> {
        let record = self
            .load_record(node)
            .ok_or_else(|| CommandError(format!("no workload {node} on this host")))?;
        let probe = record
            .plan
            .sync
            .clone()
            .ok_or_else(|| CommandError("this workload has no sync probe".into()))?;
        let port = record
            .ports
            .get(&probe.port)
            .ok_or_else(|| CommandError(format!("no port `{}` allocated", probe.port)))?;
        let url = format!(
            "http://{}",
            std::net::SocketAddr::new(self.advertise, *port)
        );
        let syncing = self.rpc(&url, &probe.syncing_method).await?;
        let head = self.rpc(&url, &probe.head_method).await?;
        let head = hood_jsonrpc::quantity_i64(&head);
        Ok(SyncReport {
            synced: syncing == serde_json::Value::Bool(false),
            head,
        })
    }

    async fn rpc(&self, url: &str, method: &str) -> Result<serde_json::Value, CommandError> {
        hood_jsonrpc::call(
            &self.http,
            url,
            method,
            &[],
            &hood_jsonrpc::CallOptions::default(),
        )
        .await
        .map_err(|e| CommandError(format!("{method}: {e}")))
    }
}

impl WorkloadHandler {
    /// Fails unless none of the node's processes runs: a copy of a data
    /// directory being written is not a snapshot.
    async fn ensure_stopped(&self, node: &str) -> Result<(), CommandError> {
        let Some(record) = self.load_record(node) else {
            return Err(CommandError(format!("no workload {node} on this host")));
        };
        let list = self
            .runtime
            .list()
            .await
            .map_err(|e| err("listing processes", e))?;
        for p in &record.plan.processes {
            let id = Self::process_id(node, &p.name)?;
            let running = list.iter().any(|s| {
                s.id == id
                    && matches!(
                        s.state,
                        WorkloadState::Starting
                            | WorkloadState::Running
                            | WorkloadState::Restarting
                    )
            });
            if running {
                return Err(CommandError(format!(
                    "process {} of node {node} is running: stop the node first",
                    p.name
                )));
            }
        }
        Ok(())
    }

    /// Copies the stopped node's data directory to
    /// `snapshots/{name}`. Done once: asking again answers from the copy.
    async fn snapshot_data(&self, r: &DataSnapshotRef) -> Result<DataSnapshotDone, CommandError> {
        check_snapshot_name(&r.snapshot)?;
        let dir = self.node_dir(&r.workload_id);
        let target = dir.join("snapshots").join(&r.snapshot);
        if target.is_dir() {
            let (files, bytes) = tree_size(&target).map_err(|e| err("reading snapshot", e))?;
            return Ok(DataSnapshotDone {
                snapshot: r.snapshot.clone(),
                files,
                bytes,
            });
        }
        self.ensure_stopped(&r.workload_id).await?;
        let tmp = dir
            .join("snapshots")
            .join(format!("{}.partial", r.snapshot));
        let data = dir.join("data");
        let (files, bytes) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(tmp.parent().unwrap_or(&tmp))?;
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)?;
            }
            let copied = hood_files::copy_tree(&data, &tmp)?;
            hood_files::move_into_place(&tmp, &target)?;
            Ok::<_, std::io::Error>(copied)
        })
        .await
        .map_err(|e| err("snapshot task", e))?
        .map_err(|e| err("copying the data directory", e))?;
        tracing::info!(workload = %r.workload_id, snapshot = %r.snapshot, files, bytes, "data directory snapshotted");
        Ok(DataSnapshotDone {
            snapshot: r.snapshot.clone(),
            files,
            bytes,
        })
    }

    /// Replaces the stopped node's data directory with `snapshots/{name}`
    /// (kept: restoring twice gives the same data).
    async fn restore_data(&self, r: &DataSnapshotRef) -> Result<DataSnapshotDone, CommandError> {
        check_snapshot_name(&r.snapshot)?;
        let dir = self.node_dir(&r.workload_id);
        let source = dir.join("snapshots").join(&r.snapshot);
        if !source.is_dir() {
            return Err(CommandError(format!(
                "node {} has no snapshot `{}`",
                r.workload_id, r.snapshot
            )));
        }
        self.ensure_stopped(&r.workload_id).await?;
        let (files, bytes) = tokio::task::spawn_blocking(move || {
            let data = dir.join("data");
            let incoming = dir.join("data.restoring");
            let outgoing = dir.join("data.replaced");
            for leftover in [&incoming, &outgoing] {
                if leftover.exists() {
                    std::fs::remove_dir_all(leftover)?;
                }
            }
            let copied = hood_files::copy_tree(&source, &incoming)?;
            if data.exists() {
                std::fs::rename(&data, &outgoing)?;
            }
            hood_files::move_into_place(&incoming, &data)?;
            if outgoing.exists() {
                std::fs::remove_dir_all(&outgoing)?;
            }
            Ok::<_, std::io::Error>(copied)
        })
        .await
        .map_err(|e| err("restore task", e))?
        .map_err(|e| err("restoring the data directory", e))?;
        tracing::info!(workload = %r.workload_id, snapshot = %r.snapshot, files, bytes, "data directory restored");
        Ok(DataSnapshotDone {
            snapshot: r.snapshot.clone(),
            files,
            bytes,
        })
    }
}

fn check_snapshot_name(name: &str) -> Result<(), CommandError> {
    if hood_domain::workload::valid_snapshot_name(name) {
        Ok(())
    } else {
        Err(CommandError(format!(
            "snapshot name `{name}` must be 1 to 128 letters, digits, `-` or `_`"
        )))
    }
}

/// Files and bytes under a directory.
fn tree_size(dir: &Path) -> std::io::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let (f, b) = tree_size(&entry.path())?;
            files += f;
            bytes += b;
        } else if kind.is_file() {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// The installed executable of a process at a version.
fn executable_name(process: &str, version: &str) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{process}-{version}")
}

impl WorkloadHandler {
    /// Runs an allocation's sandbox (idempotent: the runtime compares
    /// specs).
    async fn start_allocation(
        &self,
        task: &AllocationTask,
        ctx: &CommandContext,
    ) -> Result<StartedAllocation, CommandError> {
        let workload = task.workload_id();
        if let Some(until) = task.lease_until_ms {
            if until <= hood_clock::now().millis() {
                return Err(CommandError(
                    "the allocation's lease ran out before it could start".into(),
                ));
            }
            self.leases.extend(&workload, until);
        }
        if let Some(container) = &task.container {
            let Some(containers) = &self.containers else {
                return Err(CommandError(
                    "this host runs no container engine (start the agent with --container-socket)"
                        .into(),
                ));
            };
            if containers.missing_image(container).await? {
                if let Some(archive) = &container.archive {
                    let path = fetch_with_retry(ctx, archive).await?;
                    containers.load_image(container, &path).await?;
                }
            }
            return containers.start(task, container).await;
        }
        let cgroup = sandbox::memory_cgroup(sandbox::cgroup_root(), &workload, task.memory_mib);
        let procs: Vec<PathBuf> = cgroup.iter().map(|d| d.join("cgroup.procs")).collect();
        let spec = sandbox::spec(task, &procs)?;
        let status = self
            .runtime
            .start(spec)
            .await
            .map_err(|e| err("starting the sandbox", e))?;
        tracing::info!(allocation = %task.allocation_id, cores = ?task.cores,
            memory_limited = cgroup.is_some(), "allocation sandbox started");
        Ok(StartedAllocation {
            workload_id: workload,
            pid: status.pid,
            hostname: task.hostname(),
            memory_limited: cgroup.is_some(),
            ports: BTreeMap::new(),
        })
    }

    /// Extends the leases of the allocations this host runs; returns how
    /// many it knew.
    fn renew_leases(&self, leases: &AllocationLeases) -> usize {
        leases
            .leases
            .iter()
            .filter(|l| {
                self.leases
                    .renew(&allocation_workload_id(l.allocation_id), l.until_ms)
            })
            .count()
    }

    /// Stops every allocation sandbox whose lease ran out (kept, with its
    /// output, until the control plane releases it); returns their
    /// workload ids.
    pub async fn enforce_leases(&self) -> Vec<String> {
        let expired = self.leases.take_expired(hood_clock::now().millis());
        for workload in &expired {
            let Ok(id) = WorkloadId::new(workload.clone()) else {
                continue;
            };
            tracing::warn!(workload = %workload,
                "the allocation's lease ran out without renewal: stopping its sandbox");
            if let Err(e) = self.runtime.stop(&id, None).await {
                tracing::warn!(workload = %workload, error = %e,
                    "could not stop a sandbox whose lease ran out");
            }
            if let Some(containers) = &self.containers {
                if let Err(e) = containers.stop(workload).await {
                    tracing::warn!(workload = %workload, error = %e,
                        "could not stop a container whose lease ran out");
                }
            }
        }
        expired
    }

    /// Enforces leases every `every` until the handler is dropped by
    /// everyone else (the agent stopping).
    pub fn spawn_lease_enforcer(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(handler) = weak.upgrade() else {
                    return;
                };
                handler.enforce_leases().await;
            }
        })
    }

    /// Each of a node's processes' log lines, after its cursor when the
    /// request has one, else the last `lines`.
    async fn follow_node_logs(&self, r: &NodeLogsRequest) -> Result<NodeLogs, CommandError> {
        let record = self
            .load_record(&r.workload_id)
            .ok_or_else(|| CommandError(format!("no workload {}", r.workload_id)))?;
        let mut processes = BTreeMap::new();
        for p in &record.plan.processes {
            let id = Self::process_id(&r.workload_id, &p.name)?;
            let (lines, cursor) = self
                .runtime
                .follow_logs(
                    &id,
                    r.after.get(&p.name).copied(),
                    r.lines.clamp(1, 10_000) as usize,
                )
                .await
                .map_err(|e| err("following logs", e))?;
            processes.insert(p.name.clone(), ProcessLogs { lines, cursor });
        }
        Ok(NodeLogs { processes })
    }

    /// The tail of an allocation sandbox's output (kept after it ended,
    /// until the sandbox is removed at release).
    async fn allocation_logs(
        &self,
        r: &AllocationLogsRequest,
    ) -> Result<AllocationLogs, CommandError> {
        let wid = WorkloadId::new(allocation_workload_id(r.allocation_id))
            .map_err(|e| err("workload id", e))?;
        let tail = r.lines.clamp(1, 10_000) as usize;
        if let Some(containers) = &self.containers {
            if containers.has(wid.as_str()).await? {
                // The engine keeps the log; it is read whole, without a
                // cursor to follow.
                return Ok(AllocationLogs {
                    allocation_id: r.allocation_id,
                    lines: containers.tail_logs(wid.as_str(), tail).await?,
                    cursor: None,
                });
            }
        }
        match self.runtime.follow_logs(&wid, r.after, tail).await {
            Ok((lines, cursor)) => Ok(AllocationLogs {
                allocation_id: r.allocation_id,
                lines,
                cursor: Some(cursor),
            }),
            // A runtime that cannot follow still tells the tail.
            Err(_) if r.after.is_none() => Ok(AllocationLogs {
                allocation_id: r.allocation_id,
                lines: self
                    .runtime
                    .tail_logs(&wid, tail)
                    .await
                    .map_err(|e| err("reading the sandbox's logs", e))?,
                cursor: None,
            }),
            Err(e) => Err(err("following the sandbox's logs", e)),
        }
    }

    /// Stops and removes an allocation's sandbox; one that is not there is
    /// already stopped.
    async fn stop_allocation(
        &self,
        id: hood_domain::AllocationId,
    ) -> Result<serde_json::Value, CommandError> {
        let workload = allocation_workload_id(id);
        let wid = WorkloadId::new(workload.clone()).map_err(|e| err("workload id", e))?;
        self.runtime
            .remove(&wid, true)
            .await
            .map_err(|e| err("removing the sandbox", e))?;
        if let Some(containers) = &self.containers {
            containers.remove(&workload).await?;
        }
        sandbox::remove_cgroup(sandbox::cgroup_root(), &workload);
        self.leases.forget(&workload);
        tracing::info!(allocation = %id, "allocation sandbox removed");
        Ok(serde_json::json!({ "workload_id": workload, "removed": true }))
    }
}

#[async_trait]
impl CommandHandler for WorkloadHandler {
    async fn handle(
        &self,
        kind: &str,
        payload: serde_json::Value,
        ctx: &CommandContext,
    ) -> Result<serde_json::Value, CommandError> {
        let snapshot_ref = || {
            serde_json::from_value::<DataSnapshotRef>(payload.clone())
                .map_err(|e| err("payload", e))
        };
        // An upload only reads its own archive and may take minutes: the
        // host's other commands do not wait for it.
        if kind == kinds::UPLOAD_SNAPSHOT {
            let done = self.upload_snapshot(&snapshot_ref()?, ctx).await?;
            return serde_json::to_value(done).map_err(|e| err("result", e));
        }
        // A terminal only reads the sandbox's status, then runs on its own.
        if kind == kinds::OPEN_TERMINAL {
            let task: TerminalTask = ctx.verified(payload, kind)?;
            if let Some(containers) = &self.containers {
                let workload = allocation_workload_id(task.allocation_id);
                if containers.has(&workload).await? {
                    return terminal::open_in_container(containers.engine(), &task, ctx).await;
                }
            }
            return terminal::open(&self.runtime, &task, ctx).await;
        }
        let _guard = self.lock.lock().await;
        let workload_ref = || {
            serde_json::from_value::<WorkloadRef>(payload.clone()).map_err(|e| err("payload", e))
        };
        match kind {
            kinds::START_WORKLOAD => {
                let plan: WorkloadPlan =
                    serde_json::from_value(payload.clone()).map_err(|e| err("payload", e))?;
                let started = self.start(plan, ctx).await?;
                serde_json::to_value(started).map_err(|e| err("result", e))
            }
            kinds::STOP_WORKLOAD => self.stop(&workload_ref()?.workload_id, false, ctx).await,
            kinds::REMOVE_WORKLOAD => self.stop(&workload_ref()?.workload_id, true, ctx).await,
            kinds::PROBE_SYNC => {
                let report = self.probe(&workload_ref()?.workload_id).await?;
                serde_json::to_value(report).map_err(|e| err("result", e))
            }
            kinds::TAIL_LOGS => {
                let r = workload_ref()?;
                let lines = r.lines.unwrap_or(100).min(10_000) as usize;
                let record = self
                    .load_record(&r.workload_id)
                    .ok_or_else(|| CommandError(format!("no workload {}", r.workload_id)))?;
                let mut out = serde_json::Map::new();
                for p in &record.plan.processes {
                    let id = Self::process_id(&r.workload_id, &p.name)?;
                    let tail = self
                        .runtime
                        .tail_logs(&id, lines)
                        .await
                        .map_err(|e| err("reading logs", e))?;
                    out.insert(p.name.clone(), serde_json::json!(tail));
                }
                Ok(serde_json::Value::Object(out))
            }
            kinds::SNAPSHOT_DATA | kinds::RESTORE_DATA => {
                let r: DataSnapshotRef =
                    serde_json::from_value(payload.clone()).map_err(|e| err("payload", e))?;
                let done = if kind == kinds::SNAPSHOT_DATA {
                    self.snapshot_data(&r).await?
                } else {
                    self.restore_data(&r).await?
                };
                serde_json::to_value(done).map_err(|e| err("result", e))
            }
            kinds::OBSERVE_WORKLOAD => {
                let id = workload_ref()?.workload_id;
                let fresh =
                    self.observer.sample_now(&id).await.ok_or_else(|| {
                        CommandError(format!("workload {id} is not observed here"))
                    })?;
                serde_json::to_value(fresh).map_err(|e| err("result", e))
            }
            kinds::PACK_SNAPSHOT => {
                let done = self.pack_snapshot(&snapshot_ref()?).await?;
                serde_json::to_value(done).map_err(|e| err("result", e))
            }
            kinds::RESTORE_SNAPSHOT => {
                let done = self.restore_snapshot(&snapshot_ref()?, ctx).await?;
                serde_json::to_value(done).map_err(|e| err("result", e))
            }
            kinds::START_ALLOCATION => {
                let task: AllocationTask = ctx.verified(payload, kind)?;
                let started = self.start_allocation(&task, ctx).await?;
                serde_json::to_value(started).map_err(|e| err("result", e))
            }
            kinds::STOP_ALLOCATION => {
                let r: AllocationRef = ctx.verified(payload, kind)?;
                self.stop_allocation(r.allocation_id).await
            }
            kinds::RENEW_ALLOCATION_LEASES => {
                let leases: AllocationLeases = ctx.verified(payload, kind)?;
                let renewed = self.renew_leases(&leases);
                Ok(serde_json::json!({ "renewed": renewed }))
            }
            kinds::FOLLOW_NODE_LOGS => {
                let r: NodeLogsRequest =
                    serde_json::from_value(payload.clone()).map_err(|e| err("payload", e))?;
                let logs = self.follow_node_logs(&r).await?;
                serde_json::to_value(logs).map_err(|e| err("result", e))
            }
            kinds::TAIL_ALLOCATION_LOGS => {
                let r: AllocationLogsRequest =
                    serde_json::from_value(payload.clone()).map_err(|e| err("payload", e))?;
                let logs = self.allocation_logs(&r).await?;
                serde_json::to_value(logs).map_err(|e| err("result", e))
            }
            "ping" => Ok(serde_json::json!({"pong": true})),
            other => Err(CommandError(format!("unknown command kind `{other}`"))),
        }
    }

    async fn workloads(&self) -> Vec<Workload> {
        let Ok(list) = self.runtime.list().await else {
            return vec![];
        };
        self.resume_observation(&list).await;
        let containers = match &self.containers {
            Some(c) => c.reports().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e.0, "could not list the host's containers");
                Vec::new()
            }),
            None => Vec::new(),
        };
        // Allocation sandboxes report the cores they used since the last
        // report (the control plane's idle policy reads it).
        let running: std::collections::HashSet<String> = list
            .iter()
            .filter(|s| s.state == WorkloadState::Running)
            .map(|s| s.id.to_string())
            .chain(
                containers
                    .iter()
                    .filter(|c| c.state == "running")
                    .map(|c| c.workload_id.clone()),
            )
            .collect();
        self.cpu.retain(&running);
        let container_workloads: Vec<Workload> = containers
            .into_iter()
            .map(|c| {
                let used = c.pid.and_then(|pid| self.cpu.sample(&c.workload_id, pid));
                Workload {
                    workload_id: c.workload_id,
                    state: c.state.into(),
                    pid: c.pid,
                    restarts: c.restarts,
                    observation: serde_json::json!({ "cpu_cores_used": used }),
                }
            })
            .collect();
        // Only copies of the latest samples: sampling runs in the background.
        let mut observations: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        list.into_iter()
            .map(|s| {
                if s.id.as_str().starts_with("alloc-") {
                    let used = s
                        .pid
                        .filter(|_| s.state == WorkloadState::Running)
                        .and_then(|pid| self.cpu.sample(s.id.as_str(), pid));
                    return (s, serde_json::json!({ "cpu_cores_used": used }));
                }
                let observation = match self.observer.workload_of(s.id.as_str()) {
                    Some(w) => observations
                        .entry(w)
                        .or_insert_with_key(|w| {
                            self.observer
                                .observation(w)
                                .and_then(|o| serde_json::to_value(o).ok())
                                .unwrap_or(serde_json::Value::Null)
                        })
                        .clone(),
                    None => serde_json::Value::Null,
                };
                (s, observation)
            })
            .map(|(s, observation)| Workload {
                workload_id: s.id.to_string(),
                state: match s.state {
                    WorkloadState::Starting => "starting",
                    WorkloadState::Running => "running",
                    WorkloadState::Restarting => "restarting",
                    WorkloadState::Stopped => "stopped",
                    WorkloadState::Failed => "failed",
                }
                .into(),
                pid: s.pid,
                restarts: s.restarts,
                observation,
            })
            .chain(container_workloads)
            .collect()
    }
}

/// Downloads an artifact, retrying transport failures (a gateway restart
/// mid-stream) a few times; a checksum mismatch, or an artifact the gateway
/// says it cannot serve (missing object, not in the catalog), is final at
/// once, with the gateway's reason as the command's failure.
pub(crate) async fn fetch_with_retry(
    ctx: &CommandContext,
    artifact: &hood_domain::workload::ArtifactRef,
) -> Result<PathBuf, CommandError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match ctx
            .agent
            .fetch_artifact(&artifact.name, &artifact.version, Some(&artifact.sha256))
            .await
        {
            Ok(path) => return Ok(path),
            Err(
                e @ (hood_agent::AgentError::ArtifactMismatch { .. }
                | hood_agent::AgentError::ArtifactNotServed { .. }),
            ) => return Err(err("fetching artifact", e)),
            Err(e) if attempt >= 5 => return Err(err("fetching artifact", e)),
            Err(e) => {
                tracing::warn!(artifact = %artifact.name, attempt, error = %e, "artifact download failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
                attempt += 1;
            }
        }
    }
}

/// Picks free TCP ports on the host's address for each named port. The OS
/// hands out an unused ephemeral port; the listener is closed before the
/// node binds.
pub(crate) fn allocate_ports<K: Ord + Clone>(
    address: IpAddr,
    names: &[K],
) -> Result<BTreeMap<K, u16>, CommandError> {
    let mut out = BTreeMap::new();
    let mut hold = Vec::new();
    for name in names {
        let l =
            std::net::TcpListener::bind((address, 0)).map_err(|e| err("allocating a port", e))?;
        let port = l
            .local_addr()
            .map_err(|e| err("allocating a port", e))?
            .port();
        hold.push(l); // held until all are chosen, so no two names share one
        out.insert(name.clone(), port);
    }
    Ok(out)
}

fn ensure_inside(root: &Path, path: &Path) -> Result<(), CommandError> {
    let ok = path.starts_with(root)
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if ok {
        Ok(())
    } else {
        Err(CommandError(format!(
            "path {} is outside the node directory",
            path.display()
        )))
    }
}

fn parse_mode(mode: &str) -> Result<u32, CommandError> {
    u32::from_str_radix(mode, 8).map_err(|e| err("file mode", e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CommandError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err("setting permissions", e))
}

/// Writes a plan's file atomically with its mode (secrets go through
/// [`write_secret`]).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CommandError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err("creating directory", e))?;
    }
    hood_files::write_atomic(path, bytes, mode).map_err(|e| err("writing file", e))
}

/// Writes key material: private and atomic, through the one secret writer.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    hood_files::write_private(path, bytes).map_err(|e| err("writing key material", e))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CommandError> {
    hood_files::write_json_private(path, value).map_err(|e| err("writing state", e))
}

/// Copies a cached artifact to the node's bin dir as an executable.
fn install_executable(from: &Path, to: &Path) -> Result<(), CommandError> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(|e| err("installing executable", e))?;
    set_mode(&tmp, 0o755)?;
    std::fs::rename(&tmp, to).map_err(|e| err("installing executable", e))
}

/// Overwrites then deletes the node's key material.
fn wipe_secrets(dir: &Path) {
    if let Err(e) = hood_files::wipe_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "wiping key material failed");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_are_distinct_and_paths_stay_inside() {
        let ports = allocate_ports::<String>(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &["rpc".into(), "p2p".into(), "ws".into()],
        )
        .unwrap();
        let mut values: Vec<u16> = ports.values().copied().collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), 3);
        let root = Path::new("/n/x");
        assert!(ensure_inside(root, Path::new("/n/x/secrets/k")).is_ok());
        assert!(ensure_inside(root, Path::new("/n/x/../y")).is_err());
        assert!(ensure_inside(root, Path::new("/etc/passwd")).is_err());
        assert_eq!(parse_mode("0640").unwrap(), 0o640);
        assert!(parse_mode("rw").is_err());
    }

    /// A runtime whose process list the test controls.
    struct FakeRuntime {
        list: std::sync::Mutex<Vec<hood_runtime::WorkloadStatus>>,
        events: tokio::sync::broadcast::Sender<hood_runtime::RuntimeEvent>,
    }

    impl FakeRuntime {
        fn new(ids: &[&str]) -> Self {
            let list = ids
                .iter()
                .map(|id| hood_runtime::WorkloadStatus {
                    id: WorkloadId::new(*id).unwrap(),
                    state: WorkloadState::Running,
                    pid: Some(1),
                    restarts: 0,
                    started_at: None,
                    last_exit: None,
                    last_error: None,
                })
                .collect();
            Self {
                list: std::sync::Mutex::new(list),
                events: tokio::sync::broadcast::channel(4).0,
            }
        }

        fn set_state(&self, id: &WorkloadId, state: WorkloadState) {
            for s in self.list.lock().unwrap().iter_mut() {
                if &s.id == id {
                    s.state = state;
                }
            }
        }
    }

    #[async_trait]
    impl WorkloadRuntime for FakeRuntime {
        fn name(&self) -> &'static str {
            "fake"
        }
        async fn start(
            &self,
            _spec: WorkloadSpec,
        ) -> hood_runtime::Result<hood_runtime::WorkloadStatus> {
            Err(hood_runtime::RuntimeError::NotFound(
                WorkloadId::new("fake").unwrap(),
            ))
        }
        async fn stop(
            &self,
            id: &WorkloadId,
            _grace: Option<Duration>,
        ) -> hood_runtime::Result<hood_runtime::WorkloadStatus> {
            self.set_state(id, WorkloadState::Stopped);
            self.status(id)
                .await?
                .ok_or_else(|| hood_runtime::RuntimeError::NotFound(id.clone()))
        }
        async fn remove(&self, id: &WorkloadId, _wipe: bool) -> hood_runtime::Result<()> {
            self.list.lock().unwrap().retain(|s| &s.id != id);
            Ok(())
        }
        async fn status(
            &self,
            id: &WorkloadId,
        ) -> hood_runtime::Result<Option<hood_runtime::WorkloadStatus>> {
            Ok(self
                .list
                .lock()
                .unwrap()
                .iter()
                .find(|s| &s.id == id)
                .cloned())
        }
        async fn list(&self) -> hood_runtime::Result<Vec<hood_runtime::WorkloadStatus>> {
            Ok(self.list.lock().unwrap().clone())
        }
        async fn tail_logs(
            &self,
            _id: &WorkloadId,
            _lines: usize,
        ) -> hood_runtime::Result<Vec<String>> {
            Ok(vec![])
        }
        fn data_dir(&self, id: &WorkloadId) -> PathBuf {
            PathBuf::from("/nonexistent").join(id.as_str())
        }
        fn subscribe(&self) -> tokio::sync::broadcast::Receiver<hood_runtime::RuntimeEvent> {
            self.events.subscribe()
        }
    }

    #[tokio::test]
    async fn a_sandbox_whose_lease_runs_out_is_stopped_and_renewals_keep_it_running() {
        let dir = tempfile::tempdir().unwrap();
        let kept = hood_domain::AllocationId::from_uuid(uuid::Uuid::now_v7());
        let lapsed = hood_domain::AllocationId::from_uuid(uuid::Uuid::now_v7());
        let (kept_w, lapsed_w) = (allocation_workload_id(kept), allocation_workload_id(lapsed));
        let runtime = Arc::new(FakeRuntime::new(&[&kept_w, &lapsed_w]));
        let handler = Arc::new(WorkloadHandler::new(runtime.clone(), dir.path()));
        let now = hood_clock::now().millis();
        handler.leases.extend(&kept_w, now + 150);
        handler.leases.extend(&lapsed_w, now + 150);
        // Only the kept one is renewed; a renewal for a sandbox this host
        // does not run grants nothing.
        let renewed = handler.renew_leases(&AllocationLeases {
            leases: vec![
                hood_domain::workload::AllocationLease {
                    allocation_id: kept,
                    until_ms: now + 60_000,
                },
                hood_domain::workload::AllocationLease {
                    allocation_id: hood_domain::AllocationId::from_uuid(uuid::Uuid::now_v7()),
                    until_ms: now + 60_000,
                },
            ],
        });
        assert_eq!(renewed, 1);
        assert!(handler.enforce_leases().await.is_empty(), "not yet");
        let enforcer = handler.spawn_lease_enforcer(Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let state = |w: &str| {
            runtime
                .list
                .lock()
                .unwrap()
                .iter()
                .find(|s| s.id.as_str() == w)
                .map(|s| s.state)
        };
        assert_eq!(state(&lapsed_w), Some(WorkloadState::Stopped));
        assert_eq!(state(&kept_w), Some(WorkloadState::Running));
        // Kept on disk: a restarted agent still enforces the kept lease.
        let again = WorkloadHandler::new(runtime.clone(), dir.path());
        assert_eq!(again.leases.until(&kept_w), Some(now + 60_000));
        assert_eq!(again.leases.until(&lapsed_w), None);
        enforcer.abort();
    }

    fn plan(node: &str, observed: bool) -> WorkloadPlan {
        serde_json::from_value(serde_json::json!({
            "workload_id": node, "node_id": node, "node_name": node, "ports": ["rpc"],
            "processes": [{
                "name": "anvil",
                "artifact": {"name": "anvil", "version": "1", "sha256": "00", "entrypoint": null},
                "args": [], "env": {}, "stop_signal": "SIGTERM", "stop_timeout_s": 1
            }],
            "files": [], "keys": [],
            "sync": if observed {
                serde_json::json!({"port": "rpc", "syncing_method": "eth_syncing", "head_method": "eth_blockNumber"})
            } else {
                serde_json::Value::Null
            },
            "collectors": if observed {
                serde_json::json!([{"name": "system", "interval_s": 1, "timeout_s": 1, "source": {"kind": "system"}}])
            } else {
                serde_json::json!([])
            },
        }))
        .unwrap()
    }

    fn write_record(root: &Path, plan: WorkloadPlan, port: u16) {
        let dir = root.join("nodes").join(&plan.workload_id);
        std::fs::create_dir_all(&dir).unwrap();
        let record = NodeRecord {
            plan,
            ports: BTreeMap::from([("rpc".to_string(), port)]),
        };
        write_json(&dir.join("workload.json"), &record).unwrap();
    }

    fn row<'a>(rows: &'a [Workload], id: &str) -> &'a Workload {
        rows.iter().find(|w| w.workload_id == id).unwrap()
    }

    /// After an agent restart the runtime recovers the processes; the first
    /// heartbeat resumes their observation from the records on disk, a stop
    /// ends it for good, and nothing samples a stopped node again.
    #[tokio::test]
    async fn recovered_workloads_are_observed_until_stopped() {
        let root = tempfile::tempdir().unwrap();
        // A port nobody listens on: the sync probe reports the failure.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        write_record(root.path(), plan("n1", true), port);
        write_record(root.path(), plan("n2", false), port);
        let runtime = Arc::new(FakeRuntime::new(&["n1-anvil", "n2-anvil", "stray-x"]));
        let handler = WorkloadHandler::new(runtime.clone(), root.path())
            .with_sync_interval(Duration::from_millis(100));

        let rows = handler.workloads().await;
        assert_eq!(handler.observer().watched(), ["n1", "n2"]);
        assert_eq!(
            handler.observer().running_tasks(),
            1,
            "n2 has nothing to sample"
        );
        assert_eq!(row(&rows, "stray-x").observation, serde_json::Value::Null);
        assert_eq!(row(&rows, "n2-anvil").observation, serde_json::Value::Null);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let obs = loop {
            let rows = handler.workloads().await;
            let obs: hood_domain::workload::WorkloadObservation =
                serde_json::from_value(row(&rows, "n1-anvil").observation.clone())
                    .unwrap_or_default();
            if obs.sync.is_some() && obs.samples.contains_key("system") {
                break obs;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no observation: {obs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let sync = obs.sync.unwrap();
        assert_eq!(sync.head, None);
        assert!(sync.error.unwrap().contains("eth_syncing"));
        assert!(obs.samples["system"].result.as_ref().unwrap()["disk_free_percent"].is_number());
        assert!(obs.at_ms > 0);

        handler.stop_processes("n1", false).await.unwrap();
        assert_eq!(handler.observer().watched(), ["n2"]);
        assert_eq!(handler.observer().running_tasks(), 0);
        // Stopped processes are not resumed at the next heartbeat.
        let rows = handler.workloads().await;
        assert_eq!(row(&rows, "n1-anvil").state, "stopped");
        assert_eq!(row(&rows, "n1-anvil").observation, serde_json::Value::Null);
        assert_eq!(handler.observer().watched(), ["n2"]);

        handler.stop_processes("n2", true).await.unwrap();
        assert!(handler.observer().watched().is_empty());
        assert!(!root.path().join("nodes/n2").exists());
    }
}
