//! Wiring of the fleet roles: the internal CA, the agent gateway, host
//! providers, the artifact store and the orchestrator's saga worker.

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use hood_artifacts::{ArtifactError, ArtifactStore, StoreLocation};
use hood_chains::ChainCatalog;
use hood_gateway::{
    ArtifactSource, ArtifactSourceError, ArtifactStream, Fleet, Gateway, GatewayConfig,
};
use hood_identity::master_key::MasterKey;
use hood_identity::tasks::TaskSigner;
use hood_orchestrator::{NodeKeys, NodeSnapshots, Orchestrator, Services, Timings};
use hood_provider::{LocalProvider, LocalProviderConfig, ProviderRegistry};
use hood_saga::{WorkerConfig, WorkerHandle};
use hood_store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves artifacts to agents through the gateway.
pub struct GatewayArtifacts(pub Arc<ArtifactStore>);

#[async_trait::async_trait]
impl ArtifactSource for GatewayArtifacts {
    async fn open(&self, name: &str, version: &str) -> Result<ArtifactStream, ArtifactSourceError> {
        let (name, version) = (name.to_owned(), version.to_owned());
        match self.0.open_parts(&name, &version).await {
            Ok((sha256, size, body)) => {
                let body = body.map_err(move |e| source_error(&name, &version, e));
                Ok(ArtifactStream {
                    sha256,
                    size,
                    body: body.boxed(),
                })
            }
            Err(e) => Err(source_error(&name, &version, e)),
        }
    }
}

/// The artifact store's error as the gateway reports it to agents.
fn source_error(name: &str, version: &str, e: ArtifactError) -> ArtifactSourceError {
    match e {
        ArtifactError::NotFound { .. } | ArtifactError::Invalid(_) => {
            ArtifactSourceError::NotFound {
                name: name.to_owned(),
                version: version.to_owned(),
            }
        }
        ArtifactError::ObjectMissing {
            name,
            version,
            sha256,
        } => ArtifactSourceError::ObjectMissing {
            name,
            version,
            sha256,
        },
        ArtifactError::Corrupt(detail) => {
            tracing::error!(artifact = %name, version = %version, %detail, "artifact damaged");
            ArtifactSourceError::Damaged {
                name: name.to_owned(),
                version: version.to_owned(),
            }
        }
        other => ArtifactSourceError::Unavailable(other.to_string()),
    }
}

/// Which fleet roles a process runs and where their shared state lives.
pub struct FleetOptions {
    /// Sandboxes of the `local` provider (shared by orchestrator replicas).
    pub hosts_dir: PathBuf,
    /// The artifact store (none for a process that neither pushes nor
    /// serves artifacts, such as a health replica).
    pub artifacts: Option<StoreLocation>,
    /// Serve the agent gateway on this listener (`agent-gateway` role).
    pub gateway: Option<TcpListener>,
    /// The gateway URL handed to new hosts (default: the one served here).
    pub gateway_url: Option<String>,
    /// Run a saga worker (`orchestrator` role).
    pub run_worker: bool,
    /// The api role runs here: it opens terminal sessions.
    pub serve_terminals: bool,
    /// Relays terminal streams between this process's gateway and the
    /// replicas holding sessions (cluster mode, over NATS).
    pub terminal_relay: Option<hood_terminal_relay::TerminalRelay>,
}

/// The running fleet roles of one process.
pub struct FleetRoles {
    pub artifacts: Option<Arc<ArtifactStore>>,
    pub orchestrator: Orchestrator,
    pub gateway_url: String,
    gateway: Option<(Gateway, TcpListener)>,
    worker: Option<WorkerHandle>,
    /// The allocation provisioning worker (with the saga worker).
    allocations: Option<hood_orchestrator::AllocationWorkerHandle>,
    /// Terminal sessions, where the api role runs here and a host can
    /// reach them (through this process's gateway or the relay).
    pub terminals: Option<Arc<hood_terminal::TerminalHub>>,
    /// Answers relayed attaches for `terminals`' sessions.
    terminal_relay: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for FleetRoles {
    fn drop(&mut self) {
        if let Some(task) = &self.terminal_relay {
            task.abort();
        }
    }
}

impl FleetRoles {
    /// Everything of embedded mode: gateway on `gateway`, the `local`
    /// provider with sandboxes under `home/hosts`, artifacts under `home`.
    pub async fn embedded(
        store: Arc<dyn Store>,
        master: &MasterKey,
        chains: Arc<ChainCatalog>,
        home: &Path,
        gateway: TcpListener,
    ) -> Result<Self> {
        Self::start(
            store,
            master,
            chains,
            FleetOptions {
                hosts_dir: home.join("hosts"),
                artifacts: Some(StoreLocation::embedded(home)),
                gateway: Some(gateway),
                gateway_url: None,
                run_worker: true,
                serve_terminals: true,
                terminal_relay: None,
            },
        )
        .await
    }

    /// The roles a process runs, from explicit options (cluster mode).
    pub async fn start(
        store: Arc<dyn Store>,
        master: &MasterKey,
        chains: Arc<ChainCatalog>,
        opts: FleetOptions,
    ) -> Result<Self> {
        let ca = Arc::new(
            hood_gateway::load_or_create_ca(store.as_ref(), master, hood_clock::now())
                .await
                .context("loading the internal CA")?,
        );
        let artifacts = match &opts.artifacts {
            Some(location) => {
                let artifacts = Arc::new(
                    ArtifactStore::from_location(location, store.clone())
                        .context("opening the artifact store")?,
                );
                if let Err(e) = artifacts
                    .sweep_uploads(std::time::Duration::from_secs(86_400))
                    .await
                {
                    tracing::warn!(error = %e, "could not sweep abandoned uploads");
                }
                Some(artifacts)
            }
            None => None,
        };
        // Snapshots share the artifact store's bucket, under `snapshots/`.
        let snapshots = match &opts.artifacts {
            Some(location) => Some(NodeSnapshots::new(
                store.clone(),
                location
                    .open()
                    .context("opening the object store for snapshots")?,
            )),
            None => None,
        };
        let fleet = Fleet::new(store.clone()).with_capacity_store(store.clone());
        // Agents pin its public half at enrollment and run only tasks it
        // signed.
        let task_signer = TaskSigner::from_master(master);
        let mut gateway = None;
        // Sessions opened here; pointless when no host could reach them.
        let terminals =
            if opts.serve_terminals && (opts.gateway.is_some() || opts.terminal_relay.is_some()) {
                Some(terminal_hub(store.clone(), opts.artifacts.as_ref())?)
            } else {
                None
            };
        let rendezvous: Option<Arc<dyn hood_terminal::AgentRendezvous>> =
            match (&opts.terminal_relay, &terminals) {
                (Some(relay), local) => Some(relay.rendezvous(local.clone())),
                (None, Some(hub)) => Some(hub.clone()),
                (None, None) => None,
            };
        let terminal_relay = match (&opts.terminal_relay, &terminals) {
            (Some(relay), Some(hub)) => Some(
                relay
                    .serve_sessions(hub.clone())
                    .await
                    .context("serving terminal relays")?,
            ),
            _ => None,
        };
        let mut gateway_url = opts.gateway_url.clone();
        if let Some(listener) = opts.gateway {
            let local = listener.local_addr()?;
            gateway_url.get_or_insert_with(|| format!("https://{local}"));
            let mut g = Gateway::new(
                fleet.clone(),
                ca.clone(),
                GatewayConfig {
                    server_names: gateway_server_names(local, gateway_url.as_deref()),
                    heartbeat_interval: heartbeat_interval(),
                    task_public_key: Some(task_signer.public_key_base64()),
                    ..GatewayConfig::default()
                },
            )
            .context("starting the agent gateway")?
            .with_node_keys(Arc::new(NodeKeys::new(store.clone(), master.clone())));
            if let Some(artifacts) = &artifacts {
                g = g.with_artifacts(Arc::new(GatewayArtifacts(artifacts.clone())));
            }
            if let Some(snapshots) = &snapshots {
                g = g.with_snapshots(Arc::new(snapshots.clone()));
            }
            if let Some(rendezvous) = rendezvous {
                g = g.with_terminals(rendezvous);
            }
            gateway = Some((g, listener));
        }
        let gateway_url = gateway_url.unwrap_or_else(|| "https://127.0.0.1:9090".into());
        let mut providers = ProviderRegistry::new();
        let local_provider = LocalProvider::new(LocalProviderConfig::new(opts.hosts_dir.clone())?)
            .await
            .context("starting the local host provider")?;
        providers.register(Arc::new(local_provider))?;
        let allocation_worker =
            hood_orchestrator::AllocationWorker::new(store.clone(), fleet.clone(), task_signer)
                .with_lease(allocation_lease());
        let orchestrator = Orchestrator::new(Services {
            store: store.clone(),
            fleet,
            providers,
            chains,
            master: master.clone(),
            gateway_url: gateway_url.clone(),
            ca_pem: ca.cert_pem().to_owned(),
            timings: Timings::default(),
            snapshots,
        })?;
        let worker = if opts.run_worker {
            if store.backend() == hood_store::Backend::Sqlite {
                // Only the sole worker of a database may refuse unknown runs.
                for id in orchestrator.engine().refuse_unknown().await? {
                    tracing::warn!(workflow_id = %id, "refused a workflow of a version this binary does not know");
                }
            }
            Some(
                orchestrator
                    .engine()
                    .spawn_worker(WorkerConfig::for_backend(store.backend())),
            )
        } else {
            None
        };
        let allocations = opts.run_worker.then(|| allocation_worker.spawn());
        Ok(Self {
            artifacts,
            orchestrator,
            gateway_url,
            gateway,
            worker,
            allocations,
            terminals,
            terminal_relay,
        })
    }

    /// Serves terminals from `state` when sessions opened here can be
    /// reached by hosts.
    pub fn serve_terminals(&self, state: hood_api::state::AppState) -> hood_api::state::AppState {
        match &self.terminals {
            Some(hub) => state.with_terminals(hub.clone(), Arc::new(self.orchestrator.clone())),
            None => state,
        }
    }

    /// Starts serving the gateway until `shutdown`.
    pub fn spawn_gateway(
        &mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<Result<(), hood_gateway::GatewayError>>> {
        self.gateway
            .take()
            .map(|(gateway, listener)| tokio::spawn(gateway.serve(listener, shutdown)))
    }

    /// Stops the saga worker, letting the current step finish, and the
    /// allocation worker after its pass.
    pub async fn shutdown(&mut self) {
        if let Some(w) = self.worker.take() {
            w.shutdown().await;
        }
        if let Some(a) = self.allocations.take() {
            a.shutdown().await;
        }
    }
}

/// Names the gateway's server certificate is valid for: the host agents
/// are told to dial (`HOOD_GATEWAY_URL`) and the address it listens on,
/// unless that is a wildcard (`0.0.0.0` is not what agents dial).
fn gateway_server_names(local: SocketAddr, gateway_url: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = gateway_url
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
    {
        names.push(host);
    }
    let ip = local.ip().to_string();
    if (!local.ip().is_unspecified() || names.is_empty()) && !names.contains(&ip) {
        names.push(ip);
    }
    names
}

/// Agents' heartbeat period, told to them at session start
/// (`HOOD_HEARTBEAT_INTERVAL_MS`, default 15 s; tests shorten it).
/// How long an allocation's sandbox runs on a host without renewal
/// (`HOOD_ALLOCATION_LEASE_MS`; default 3 minutes).
/// The terminal hub: recordings go to the object store under
/// `terminal-recordings/` and their audit rows to `store`. Timeouts from
/// `HOOD_TERMINAL_IDLE_SECS` (900) and `HOOD_TERMINAL_DETACHED_SECS` (300).
fn terminal_hub(
    store: Arc<dyn Store>,
    objects: Option<&StoreLocation>,
) -> Result<Arc<hood_terminal::TerminalHub>> {
    let secs = |name: &str, default: u64| {
        std::time::Duration::from_secs(
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
                .max(1),
        )
    };
    let config = hood_terminal::HubConfig {
        idle_timeout: secs("HOOD_TERMINAL_IDLE_SECS", 900),
        detached_timeout: secs("HOOD_TERMINAL_DETACHED_SECS", 300),
        ..hood_terminal::HubConfig::default()
    };
    let mut hub = hood_terminal::TerminalHub::new(config);
    match objects {
        Some(location) => {
            let objects = location
                .open()
                .context("opening the object store for terminal recordings")?;
            hub = hub.with_archive(Arc::new(hood_terminal::ObjectArchive::new(objects, store)));
        }
        None => tracing::warn!("no object store: terminal sessions are not recorded"),
    }
    let hub = Arc::new(hub);
    hub.spawn_sweeper();
    Ok(hub)
}

fn allocation_lease() -> std::time::Duration {
    std::env::var("HOOD_ALLOCATION_LEASE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(hood_orchestrator::DEFAULT_ALLOCATION_LEASE, |ms| {
            std::time::Duration::from_millis(ms.max(1_000))
        })
}

fn heartbeat_interval() -> std::time::Duration {
    std::env::var("HOOD_HEARTBEAT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(std::time::Duration::from_secs(15), |ms| {
            std::time::Duration::from_millis(ms.max(100))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_gateway_certificate_names_the_address_agents_dial() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            gateway_server_names(addr("127.0.0.1:9090"), None),
            vec!["127.0.0.1"]
        );
        assert_eq!(
            gateway_server_names(addr("127.0.0.1:9090"), Some("https://127.0.0.1:9090")),
            vec!["127.0.0.1"]
        );
        // Listening everywhere, dialled at the machine's address.
        assert_eq!(
            gateway_server_names(addr("0.0.0.0:9090"), Some("https://10.0.0.5:9090")),
            vec!["10.0.0.5"]
        );
        assert_eq!(
            gateway_server_names(addr("0.0.0.0:9090"), Some("https://gw.example.net:9090")),
            vec!["gw.example.net"]
        );
        assert_eq!(
            gateway_server_names(addr("[::]:9090"), Some("https://[fd00::5]:9090")),
            vec!["fd00::5"]
        );
        assert_eq!(
            gateway_server_names(addr("10.0.0.5:9090"), Some("https://gw.example.net:9090")),
            vec!["gw.example.net", "10.0.0.5"]
        );
    }
}
