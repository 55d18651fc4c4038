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
use hood_orchestrator::{NodeKeys, Orchestrator, Services, Timings};
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
        match self.0.open_parts(name, version).await {
            Ok((sha256, size, body)) => Ok(ArtifactStream {
                sha256,
                size,
                body: body
                    .map_err(|e| ArtifactSourceError::Other(e.to_string()))
                    .boxed(),
            }),
            Err(ArtifactError::NotFound { .. } | ArtifactError::Invalid(_)) => {
                Err(ArtifactSourceError::NotFound)
            }
            Err(e) => Err(ArtifactSourceError::Other(e.to_string())),
        }
    }
}

/// Which fleet roles a process runs and where their shared state lives.
pub struct FleetOptions {
    /// Sandboxes of the `local` provider (shared by orchestrator replicas).
    pub hosts_dir: PathBuf,
    pub artifacts: StoreLocation,
    /// Serve the agent gateway here (`agent-gateway` role).
    pub gateway_listen: Option<SocketAddr>,
    /// The gateway URL handed to new hosts (default: the one served here).
    pub gateway_url: Option<String>,
    /// Run a saga worker (`orchestrator` role).
    pub run_worker: bool,
}

/// The running fleet roles of one process.
pub struct FleetRoles {
    pub artifacts: Arc<ArtifactStore>,
    pub orchestrator: Orchestrator,
    pub gateway_url: String,
    gateway: Option<(Gateway, TcpListener)>,
    worker: Option<WorkerHandle>,
}

impl FleetRoles {
    /// Everything of embedded mode: gateway on `gateway_addr`, the `local`
    /// provider with sandboxes under `home/hosts`, artifacts under `home`.
    pub async fn embedded(
        store: Arc<dyn Store>,
        master: &MasterKey,
        chains: Arc<ChainCatalog>,
        home: &Path,
        gateway_addr: SocketAddr,
    ) -> Result<Self> {
        Self::start(
            store,
            master,
            chains,
            FleetOptions {
                hosts_dir: home.join("hosts"),
                artifacts: StoreLocation::embedded(home),
                gateway_listen: Some(gateway_addr),
                gateway_url: None,
                run_worker: true,
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
        let artifacts = Arc::new(
            ArtifactStore::from_location(&opts.artifacts, store.clone())
                .context("opening the artifact store")?,
        );
        if let Err(e) = artifacts
            .sweep_uploads(std::time::Duration::from_secs(86_400))
            .await
        {
            tracing::warn!(error = %e, "could not sweep abandoned uploads");
        }
        let fleet = Fleet::new(store.clone());
        let mut gateway = None;
        let mut gateway_url = opts.gateway_url.clone();
        if let Some(addr) = opts.gateway_listen {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the agent gateway on {addr}"))?;
            let local = listener.local_addr()?;
            gateway_url.get_or_insert_with(|| format!("https://{local}"));
            let g = Gateway::new(
                fleet.clone(),
                ca.clone(),
                GatewayConfig {
                    server_names: vec![local.ip().to_string()],
                    heartbeat_interval: heartbeat_interval(),
                    ..GatewayConfig::default()
                },
            )
            .context("starting the agent gateway")?
            .with_artifacts(Arc::new(GatewayArtifacts(artifacts.clone())))
            .with_node_keys(Arc::new(NodeKeys::new(store.clone(), master.clone())));
            gateway = Some((g, listener));
        }
        let gateway_url = gateway_url.unwrap_or_else(|| "https://127.0.0.1:9090".into());
        let mut providers = ProviderRegistry::new();
        let local_provider = LocalProvider::new(LocalProviderConfig::new(opts.hosts_dir.clone())?)
            .await
            .context("starting the local host provider")?;
        providers.register(Arc::new(local_provider))?;
        let orchestrator = Orchestrator::new(Services {
            store: store.clone(),
            fleet,
            providers,
            chains,
            master: master.clone(),
            gateway_url: gateway_url.clone(),
            ca_pem: ca.cert_pem().to_owned(),
            timings: Timings::default(),
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
        Ok(Self {
            artifacts,
            orchestrator,
            gateway_url,
            gateway,
            worker,
        })
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

    /// Stops the saga worker, letting the current step finish.
    pub async fn shutdown(&mut self) {
        if let Some(w) = self.worker.take() {
            w.shutdown().await;
        }
    }
}

/// Agents' heartbeat period, told to them at session start
/// (`HOOD_HEARTBEAT_INTERVAL_MS`, default 15 s; tests shorten it).
fn heartbeat_interval() -> std::time::Duration {
    std::env::var("HOOD_HEARTBEAT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(std::time::Duration::from_secs(15), |ms| {
            std::time::Duration::from_millis(ms.max(100))
        })
}
