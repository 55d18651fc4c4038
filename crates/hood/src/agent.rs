//! `hood agent`: the on-host agent. Dials out to the agent gateway,
//! enrolls with a one-time token, then runs node workloads on the process
//! runtime as the control plane commands.

use anyhow::{Context, Result};
use hood_agent::{Agent, AgentConfig};
use hood_runtime::{ProcessRuntime, ProcessRuntimeConfig};
use hood_workloads::containers::ContainerAllocations;
use hood_workloads::WorkloadHandler;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct AgentOpts {
    /// Where the agent keeps its identity, artifact cache and workloads.
    #[arg(long, env = "HOOD_AGENT_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Agent gateway URL (`https://HOST:9090`).
    #[arg(long, env = "HOOD_GATEWAY_URL")]
    pub gateway: String,
    /// PEM of the internal CA to trust (given with the enrollment token).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// File holding the one-time enrollment token (read once, never logged).
    #[arg(long)]
    pub enrollment_token_file: Option<PathBuf>,
    /// Heartbeat interval override, seconds (the gateway suggests one).
    #[arg(long)]
    pub heartbeat_secs: Option<u64>,
    /// This host's own address: nodes' RPC ports listen there (never on
    /// every interface) and RPC endpoints name it.
    #[arg(long, env = "HOOD_AGENT_ADDRESS", default_value = "127.0.0.1")]
    pub address: std::net::IpAddr,
    /// The container engine's API socket (Docker's, or Podman's
    /// `podman system service`): allocations that name an image run there.
    /// Without it such allocations are refused on this host.
    #[arg(long, env = "HOOD_CONTAINER_SOCKET")]
    pub container_socket: Option<PathBuf>,
}

pub async fn run(opts: AgentOpts) -> Result<()> {
    let mut config = AgentConfig::new(opts.gateway.clone(), opts.data_dir.clone());
    if let Some(ca) = &opts.ca_file {
        config.ca_pem =
            Some(std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?);
    }
    config.token_file = opts.enrollment_token_file.clone();
    config.heartbeat_interval = opts.heartbeat_secs.map(Duration::from_secs);
    let agent = Agent::new(config).context("starting the agent")?;
    let runtime = ProcessRuntime::new(ProcessRuntimeConfig::new(opts.data_dir.join("runtime")))
        .context("starting the process runtime")?;
    // Workloads that were running before this agent restarted come back.
    let recovered = runtime.recover().await.context("recovering workloads")?;
    if !recovered.is_empty() {
        tracing::info!(count = recovered.len(), "recovered workloads");
    }
    let runtime = Arc::new(runtime);
    let mut handler = WorkloadHandler::new(runtime.clone(), opts.data_dir.join("workloads"))
        .with_advertise(opts.address);
    if let Some(socket) = &opts.container_socket {
        let containers = ContainerAllocations::connect(
            socket,
            opts.data_dir.join("workloads").join("containers"),
            opts.address,
        )
        .await
        .with_context(|| format!("connecting to the container engine at {}", socket.display()))?;
        tracing::info!(socket = %socket.display(), "allocations with an image run on this container engine");
        handler = handler.with_containers(Arc::new(containers));
    }
    let handler = Arc::new(handler);
    // Allocation sandboxes stop when their lease runs out, whether or not
    // the control plane can be reached.
    let _leases = handler.spawn_lease_enforcer(Duration::from_secs(1));
    agent
        .run(handler, crate::server::shutdown_signal())
        .await
        .context("agent session")?;
    // The agent stopping does not stop the node: workloads keep running
    // under their own process groups and are re-adopted on restart.
    Ok(())
}
