//! The `local` provider: a host is a sandbox directory plus an agent
//! process on this machine.
//!
//! ```text
//! {root}/hosts/{host_id}/host.json          record: agent pid/pgid/start time, network
//! {root}/hosts/{host_id}/agent.log          agent stdout+stderr
//! {root}/hosts/{host_id}/agent/             agent --data-dir
//! {root}/hosts/{host_id}/agent/ca.pem       CA to trust
//! {root}/hosts/{host_id}/agent/enroll.token one-time token, 0600
//! ```
//!
//! The agent leads its own process group and writes straight to its log
//! file (no pipe to the control plane), so it survives a control-plane
//! restart like a real host would; `host.json` lets the next instance find
//! and delete it. The agent's environment is cleared down to an allowlist,
//! so the control plane's own secrets (master key, database URL) never reach
//! a host, and carries [`SANDBOX_ENV`], the marker that finds every process
//! of the host, including workloads that left the agent's process group.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use hood_domain::{HostId, Timestamp};
use hood_runtime::files::{read_json, wipe_file, write_json};
use hood_runtime::proc::{self, ProcessRecord};
use hood_runtime::ExitInfo;
use serde::{Deserialize, Serialize};
use tokio::process::Command;
use tokio::sync::Mutex;

use crate::netns::{self, NetnsConfig, NetnsRecord};
use crate::{
    CreateHostRequest, HostHandle, HostProvider, HostResources, ProviderError, ProviderHostState,
    ProviderHostStatus, Result,
};

/// Environment marker carried by a host's agent and everything it starts:
/// the sandbox directory.
pub const SANDBOX_ENV: &str = "HOOD_LOCAL_SANDBOX";

/// Variables of the control plane's environment passed on to agents.
pub const AGENT_ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "HOOD_LOG",
    "HOOD_LOG_FORMAT",
    "RUST_LOG",
    "RUST_BACKTRACE",
    // The machine's container engine: local hosts run containers there.
    "HOOD_CONTAINER_SOCKET",
];

const HOST_FILE: &str = "host.json";
const AGENT_DIR: &str = "agent";
const AGENT_LOG: &str = "agent.log";
const CA_FILE: &str = "ca.pem";
const TOKEN_FILE: &str = "enroll.token";
const AGENT_LOG_MAX: u64 = 10 * 1024 * 1024;

/// Configuration of a [`LocalProvider`].
#[derive(Debug, Clone)]
pub struct LocalProviderConfig {
    /// Sandboxes live in `{root}/hosts/`.
    pub root: PathBuf,
    /// Program and leading arguments of the agent; `agent --data-dir …` is
    /// appended. Default: this executable (`hood`).
    pub agent_command: Vec<OsString>,
    /// Extra environment for agents (on top of [`AGENT_ENV_ALLOWLIST`]).
    pub agent_env: BTreeMap<String, String>,
    /// Time between SIGTERM and SIGKILL when deleting a host.
    pub stop_grace: Duration,
    /// Put each host in its own network namespace (root only).
    pub netns: Option<NetnsConfig>,
}

impl LocalProviderConfig {
    /// Defaults: agent is the current executable, 10 s grace, no namespaces.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|source| ProviderError::Io {
            context: "finding the current executable for the agent command".into(),
            source,
        })?;
        Ok(Self {
            root: root.into(),
            agent_command: vec![exe.into_os_string()],
            agent_env: BTreeMap::new(),
            stop_grace: Duration::from_secs(10),
            netns: None,
        })
    }
}

/// Hosts as local sandboxes. Cheap to clone.
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    hosts_dir: PathBuf,
    agent_command: Vec<OsString>,
    agent_env: BTreeMap<String, String>,
    stop_grace: Duration,
    netns: Option<(NetnsConfig, PathBuf)>,
    /// Serialises create/delete/partition per host.
    locks: StdMutex<HashMap<HostId, Arc<Mutex<()>>>>,
    /// Serialises network slot allocation.
    alloc: Mutex<()>,
    /// Agent exits this instance reaped: host → (pid, exit).
    exits: Arc<StdMutex<HashMap<HostId, (i32, ExitInfo)>>>,
}

/// `host.json`. Never holds the enrollment token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HostRecord {
    host_id: HostId,
    region: String,
    resources: HostResources,
    created_at: Timestamp,
    gateway_url: Option<String>,
    /// `None` until the agent is spawned: a create interrupted before that
    /// is resumed by the next create.
    agent: Option<AgentRecord>,
    netns: Option<NetnsRecord>,
    #[serde(default)]
    partitioned: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AgentRecord {
    #[serde(flatten)]
    process: ProcessRecord,
    /// How it was started, for operators.
    argv: Vec<String>,
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ProviderError {
    let context = context.into();
    move |source| ProviderError::Io { context, source }
}

fn now() -> Timestamp {
    hood_clock::now()
}

impl LocalProvider {
    /// Opens (creating) the root. With `netns`, checks for root, `ip` and a
    /// free address range first, and fails rather than silently running
    /// without isolation.
    pub async fn new(config: LocalProviderConfig) -> Result<Self> {
        if config.agent_command.is_empty() {
            return Err(ProviderError::InvalidRequest {
                field: "agent_command".into(),
                reason: "must name a program".into(),
            });
        }
        let hosts = config.root.join("hosts");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&hosts)
            .map_err(io_err("creating the local provider root"))?;
        let hosts_dir = fs::canonicalize(&hosts).map_err(io_err("resolving the provider root"))?;
        let netns = match config.netns {
            Some(cfg) => {
                let ip = netns::init(&cfg).await?;
                Some((cfg, ip))
            }
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                hosts_dir,
                agent_command: config.agent_command,
                agent_env: config.agent_env,
                stop_grace: config.stop_grace,
                netns,
                locks: StdMutex::new(HashMap::new()),
                alloc: Mutex::new(()),
                exits: Arc::new(StdMutex::new(HashMap::new())),
            }),
        })
    }

    /// The sandbox directory of a host.
    pub fn sandbox_dir(&self, host_id: HostId) -> PathBuf {
        self.inner.hosts_dir.join(host_id.to_string())
    }

    fn host_lock(&self, host_id: HostId) -> Arc<Mutex<()>> {
        lock(&self.inner.locks).entry(host_id).or_default().clone()
    }

    fn read_record(&self, host_id: HostId) -> Result<Option<HostRecord>> {
        read_json(&self.sandbox_dir(host_id).join(HOST_FILE)).map_err(io_err("reading host.json"))
    }

    fn write_record(&self, rec: &HostRecord) -> Result<()> {
        write_json(&self.sandbox_dir(rec.host_id).join(HOST_FILE), rec)
            .map_err(io_err("writing host.json"))
    }

    fn handle(&self, rec: &HostRecord) -> HostHandle {
        HostHandle {
            host_id: rec.host_id,
            provider: "local".into(),
            provider_ref: self.sandbox_dir(rec.host_id).to_string_lossy().into_owned(),
            region: rec.region.clone(),
            resources: rec.resources,
            address: rec.netns.as_ref().map(|n| IpAddr::V4(n.ns_addr)),
            created_at: rec.created_at,
        }
    }

    fn used_slots(&self) -> Vec<u32> {
        let Ok(rd) = fs::read_dir(&self.inner.hosts_dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| {
            let rec: HostRecord = read_json(&e.ok()?.path().join(HOST_FILE)).ok()??;
            rec.netns.map(|n| n.slot)
        })
        .collect()
    }

    async fn provision(
        &self,
        req: &CreateHostRequest,
        existing: Option<HostRecord>,
    ) -> Result<HostHandle> {
        let id = req.host_id;
        let sandbox = self.sandbox_dir(id);
        let agent_dir = sandbox.join(AGENT_DIR);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&agent_dir)
            .map_err(io_err("creating the host sandbox"))?;
        let mut rec = existing.unwrap_or_else(|| HostRecord {
            host_id: id,
            region: req.region.clone(),
            resources: req.resources,
            created_at: now(),
            gateway_url: None,
            agent: None,
            netns: None,
            partitioned: false,
        });
        self.write_record(&rec)?;

        if let Some((cfg, ip)) = &self.inner.netns {
            if rec.netns.is_none() {
                let _alloc = self.inner.alloc.lock().await;
                let slot = netns::free_slot(ip, cfg.base, &self.used_slots())
                    .await?
                    .ok_or_else(|| {
                        ProviderError::Conflict(
                            "no free network slot for another local host".into(),
                        )
                    })?;
                rec.netns = Some(NetnsRecord::plan(cfg.base, id, slot));
                self.write_record(&rec)?; // reserves the slot
            }
            if let Some(ns) = &rec.netns {
                netns::setup(ip, ns).await?;
                rec.partitioned = false;
            }
        }

        write_private(
            &agent_dir.join(CA_FILE),
            req.enrollment.ca_pem.as_bytes(),
            0o644,
        )?;
        write_private(
            &agent_dir.join(TOKEN_FILE),
            req.enrollment.token.as_bytes(),
            0o600,
        )?;
        let gateway = match (&self.inner.netns, &rec.netns) {
            (Some((cfg, _)), Some(ns)) if cfg.rewrite_loopback_gateway => {
                netns::rewrite_gateway(&req.enrollment.gateway_url, ns.host_addr)
            }
            _ => req.enrollment.gateway_url.clone(),
        };
        rec.gateway_url = Some(gateway.clone());

        let (mut child, argv) = self.spawn_agent(&sandbox, &gateway, rec.netns.as_ref())?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let process = ProcessRecord {
            pgid: pid,
            ..ProcessRecord::capture(pid).unwrap_or(ProcessRecord {
                pid,
                pgid: pid,
                start_ticks: 0,
            })
        };
        rec.agent = Some(AgentRecord { process, argv });
        self.write_record(&rec)?;

        // Reap the agent and remember how it ended, for host_status.
        let exits = self.inner.exits.clone();
        tokio::spawn(async move {
            if let Ok(st) = child.wait().await {
                let exit = ExitInfo::from_status(st, now());
                tracing::info!(host_id = %id, pid, code = ?exit.code, signal = ?exit.signal, "local host agent exited");
                lock(&exits).insert(id, (pid, exit));
            }
        });
        tracing::info!(host_id = %id, pid, sandbox = %sandbox.display(), netns = ?rec.netns.as_ref().map(|n| &n.name), "local host created");
        Ok(self.handle(&rec))
    }

    fn spawn_agent(
        &self,
        sandbox: &Path,
        gateway: &str,
        ns: Option<&NetnsRecord>,
    ) -> Result<(tokio::process::Child, Vec<String>)> {
        let agent_dir = sandbox.join(AGENT_DIR);
        let mut argv: Vec<OsString> = Vec::new();
        if let (Some(ns), Some((_, ip))) = (ns, &self.inner.netns) {
            argv.extend([
                ip.clone().into_os_string(),
                "netns".into(),
                "exec".into(),
                ns.name.clone().into(),
            ]);
        }
        argv.extend(self.inner.agent_command.iter().cloned());
        argv.extend([
            "agent".into(),
            "--data-dir".into(),
            agent_dir.clone().into_os_string(),
            "--gateway".into(),
            gateway.into(),
            "--ca-file".into(),
            agent_dir.join(CA_FILE).into_os_string(),
            // The token travels as a file, never on the command line.
            "--enrollment-token-file".into(),
            agent_dir.join(TOKEN_FILE).into_os_string(),
        ]);
        // Nodes listen on the host's own address: the namespace's in a
        // network namespace, loopback otherwise.
        let address = ns.map_or(IpAddr::from([127, 0, 0, 1]), |ns| IpAddr::V4(ns.ns_addr));
        argv.extend(["--address".into(), address.to_string().into()]);

        let log_path = sandbox.join(AGENT_LOG);
        if fs::metadata(&log_path).is_ok_and(|m| m.len() > AGENT_LOG_MAX) {
            let _ = fs::rename(&log_path, sandbox.join(format!("{AGENT_LOG}.1")));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(io_err("opening agent.log"))?;
        let log2 = log.try_clone().map_err(io_err("opening agent.log"))?;

        let (program, args) = argv
            .split_first()
            .ok_or_else(|| ProviderError::InvalidRequest {
                field: "agent_command".into(),
                reason: "must name a program".into(),
            })?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(
                std::env::vars_os()
                    .filter(|(k, _)| k.to_str().is_some_and(|k| AGENT_ENV_ALLOWLIST.contains(&k))),
            )
            .envs(&self.inner.agent_env)
            .env(SANDBOX_ENV, sandbox)
            .current_dir(sandbox)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            // Own group: delete_host signals the whole tree at once, and
            // signals aimed at the control plane's terminal miss the host.
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(io_err(format!(
            "starting the agent ({})",
            program.to_string_lossy()
        )))?;
        let argv = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Ok((child, argv))
    }

    /// Kills everything of the host and removes its sandbox and network.
    async fn destroy(&self, host_id: HostId) -> Result<()> {
        let sandbox = self.sandbox_dir(host_id);
        let rec = self.read_record(host_id).ok().flatten();
        // Without a record, the namespace names are still derivable.
        let ns = rec.as_ref().and_then(|r| r.netns.clone()).or_else(|| {
            self.inner
                .netns
                .as_ref()
                .map(|(cfg, _)| NetnsRecord::plan(cfg.base, host_id, 0))
        });
        if !sandbox.exists() && ns.as_ref().is_none_or(|n| netns::members(n).is_empty()) {
            if let (Some((_, ip)), Some(ns)) = (&self.inner.netns, &ns) {
                netns::teardown(ip, ns).await;
            }
            return Ok(());
        }
        let agent = rec
            .as_ref()
            .and_then(|r| r.agent.as_ref())
            .map(|a| a.process)
            .filter(ProcessRecord::is_alive);
        // Snapshot the tree before signalling anything: a dying parent
        // breaks the chain that leads to its children.
        let snapshot: Vec<ProcessRecord> = agent
            .iter()
            .flat_map(|a| std::iter::once(a.pid).chain(proc::descendants(a.pid)))
            .filter_map(ProcessRecord::capture)
            .collect();
        let marker = sandbox.to_string_lossy().into_owned();
        let find = || {
            let mut v: Vec<i32> = snapshot
                .iter()
                .filter(|r| r.is_alive())
                .map(|r| r.pid)
                .collect();
            v.extend(proc::processes_with_env(SANDBOX_ENV, |x| x == marker));
            v.extend(proc::processes_referencing(&sandbox));
            if let Some(ns) = &ns {
                v.extend(netns::members(ns));
            }
            v
        };
        let clean = proc::terminate_tree(
            agent.map(|a| a.pgid),
            find,
            nix::sys::signal::Signal::SIGTERM,
            self.inner.stop_grace,
        )
        .await;
        if !clean {
            tracing::warn!(host_id = %host_id, "some processes of the host survived SIGKILL");
        }
        if let (Some((_, ip)), Some(ns)) = (&self.inner.netns, &ns) {
            netns::teardown(ip, ns).await;
        }
        if let Err(e) = wipe_file(&sandbox.join(AGENT_DIR).join(TOKEN_FILE)) {
            tracing::warn!(host_id = %host_id, error = %e, "could not wipe the enrollment token file");
        }
        match fs::remove_dir_all(&sandbox) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("removing the host sandbox")(e));
            }
            _ => {}
        }
        lock(&self.inner.exits).remove(&host_id);
        tracing::info!(host_id = %host_id, "local host deleted");
        Ok(())
    }

    async fn set_partitioned(&self, host_id: HostId, partitioned: bool) -> Result<()> {
        let l = self.host_lock(host_id);
        let _g = l.lock().await;
        let mut rec = self
            .read_record(host_id)?
            .ok_or(ProviderError::NotFound(host_id))?;
        let (Some((_, ip)), Some(ns)) = (&self.inner.netns, &rec.netns) else {
            return Err(ProviderError::Unsupported {
                provider: "local".into(),
                operation: "partition of a host without a network namespace",
            });
        };
        netns::set_link(ip, ns, !partitioned).await?;
        rec.partitioned = partitioned;
        self.write_record(&rec)?;
        tracing::info!(host_id = %host_id, partitioned, "local host network changed");
        Ok(())
    }
}

fn validate(req: &CreateHostRequest) -> Result<()> {
    let bad = |field: &str, reason: &str| {
        Err(ProviderError::InvalidRequest {
            field: field.into(),
            reason: reason.into(),
        })
    };
    let url = &req.enrollment.gateway_url;
    if !url.contains("://") || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad(
            "enrollment.gateway_url",
            "must be a URL like https://host:port",
        );
    }
    if req.enrollment.token.is_empty() {
        return bad("enrollment.token", "must not be empty");
    }
    if req.enrollment.ca_pem.trim().is_empty() {
        return bad("enrollment.ca_pem", "must not be empty");
    }
    if req.region.len() > 64 {
        return bad("region", "must be at most 64 characters");
    }
    Ok(())
}

/// Writes a file atomically through the one writer of secrets: private
/// from the first byte, `mode` once complete.
fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    hood_files::write_atomic(path, bytes, mode)
        .map_err(io_err(format!("writing {}", path.display())))
}

#[async_trait]
impl HostProvider for LocalProvider {
    fn name(&self) -> &str {
        "local"
    }

    async fn create_host(&self, req: CreateHostRequest) -> Result<HostHandle> {
        validate(&req)?;
        let l = self.host_lock(req.host_id);
        let _g = l.lock().await;
        let existing = self.read_record(req.host_id)?;
        if let Some(rec) = &existing {
            if rec.agent.is_some() {
                tracing::debug!(host_id = %req.host_id, "create_host: host exists");
                return Ok(self.handle(rec));
            }
        }
        match self.provision(&req, existing).await {
            Ok(h) => Ok(h),
            Err(e) => {
                tracing::warn!(host_id = %req.host_id, error = %e, "local host creation failed; cleaning up");
                if let Err(c) = self.destroy(req.host_id).await {
                    tracing::warn!(host_id = %req.host_id, error = %c, "cleanup after failed create failed");
                }
                Err(e)
            }
        }
    }

    async fn delete_host(&self, host_id: HostId) -> Result<()> {
        let l = self.host_lock(host_id);
        let _g = l.lock().await;
        self.destroy(host_id).await
    }

    async fn host_status(&self, host_id: HostId) -> Result<Option<ProviderHostStatus>> {
        let Some(rec) = self.read_record(host_id)? else {
            return Ok(self
                .sandbox_dir(host_id)
                .exists()
                .then_some(ProviderHostStatus {
                    host_id,
                    state: ProviderHostState::Provisioning,
                    address: None,
                    partitioned: false,
                    pid: None,
                    last_exit: None,
                }));
        };
        let (state, pid, last_exit) = match &rec.agent {
            None => (ProviderHostState::Provisioning, None, None),
            Some(a) if a.process.is_alive() => (
                ProviderHostState::Running,
                u32::try_from(a.process.pid).ok(),
                None,
            ),
            Some(a) => {
                let exit = lock(&self.inner.exits)
                    .get(&host_id)
                    .filter(|(pid, _)| *pid == a.process.pid)
                    .map(|(_, e)| *e);
                (ProviderHostState::Stopped, None, exit)
            }
        };
        Ok(Some(ProviderHostStatus {
            host_id,
            state,
            address: rec.netns.as_ref().map(|n| IpAddr::V4(n.ns_addr)),
            partitioned: rec.partitioned,
            pid,
            last_exit,
        }))
    }

    async fn list_hosts(&self) -> Result<Vec<HostHandle>> {
        let rd = fs::read_dir(&self.inner.hosts_dir).map_err(io_err("listing hosts"))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io_err("listing hosts"))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<HostId>().ok())
            else {
                continue;
            };
            match self.read_record(id) {
                Ok(Some(rec)) => out.push(self.handle(&rec)),
                // A sandbox without a readable record is still an orphan to report.
                _ => out.push(HostHandle {
                    host_id: id,
                    provider: "local".into(),
                    provider_ref: entry.path().to_string_lossy().into_owned(),
                    region: String::new(),
                    resources: HostResources::default(),
                    address: None,
                    created_at: Timestamp::from_millis(0),
                }),
            }
        }
        out.sort_by_key(|h| h.host_id);
        Ok(out)
    }

    async fn partition(&self, host_id: HostId) -> Result<()> {
        self.set_partitioned(host_id, true).await
    }

    async fn heal(&self, host_id: HostId) -> Result<()> {
        self.set_partitioned(host_id, false).await
    }
}
