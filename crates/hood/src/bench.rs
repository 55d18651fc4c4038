//! `hood bench …`: reproducible measurements, each reported against an
//! anchor measured in the same run on the same machine.

use anyhow::{bail, Context, Result};
use hood_api::routes::nodes::{CreateNodeRequest, NodeAccepted, NodeView};
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::{NodeId, OrgId};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

mod billing;
mod edge;
mod health;
mod ledger;
mod snapshot;
mod storage;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// The RPC edge against nginx and direct upstream calls: req/s, p50, p99.
    Edge(edge::EdgeBenchArgs),
    /// Saga engine step throughput, anchored on the store's bare write rate.
    Saga {
        /// Store to measure (`sqlite://…` or `postgres://…`); a fresh,
        /// migrated database is expected (the benchmark writes into it).
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 500)]
        workflows: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// One health evaluation cycle over a synthetic fleet, anchored on the
    /// bare snapshot read every cycle starts with.
    Health {
        /// Store to measure (`sqlite://…` or `postgres://…`); a fresh
        /// database (migrated by the benchmark, which writes into it).
        #[arg(long)]
        database_url: String,
        /// Nodes in the fleet (ten per host, 1 % on silent hosts).
        #[arg(long)]
        nodes: usize,
        /// Evaluation cycles measured (and snapshot reads for the anchor).
        #[arg(long, default_value_t = 5)]
        cycles: usize,
    },
    /// Ledger transfers/s (single and batched, a hot pair and many
    /// accounts), anchored on the store's bare insert rate; and the share of
    /// the Merkle log's upkeep (log on vs off).
    Ledger(ledger::LedgerBenchArgs),
    /// Meter-event ingest over HTTP (events/s) and period close for many
    /// organizations, anchored on the store's bare insert rate.
    Billing(billing::BillingBenchArgs),
    /// Snapshot and restore throughput of a data directory through the
    /// object store, anchored on `tar | zstd` of the same directory.
    Snapshot(snapshot::SnapshotBenchArgs),
    /// Object upload and download through Hood's storage API, anchored on
    /// the same object store written and read directly.
    Storage(storage::StorageBenchArgs),
    /// Time from `POST /nodes` to `healthy` for ethereum-anvil nodes on a
    /// running Hood, anchored on starting the same anvil binary directly.
    Provision {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// The anvil binary pushed as artifact `anvil-linux-amd64` (the anchor runs it directly).
        #[arg(long)]
        anvil: PathBuf,
    },
}

/// An api role served in this process for a benchmark: the real router,
/// authentication and validation, on a free loopback port, with a
/// bootstrapped administrator whose key is `admin`.
struct InProcessApi {
    addr: std::net::SocketAddr,
    admin: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcessApi {
    /// Serves `store` (migrated) with `master`; `configure` adds what the
    /// benchmark needs to the state (a storage service…); the admin key is
    /// written under `home`.
    async fn start(
        store: &std::sync::Arc<hood_store::SqlStore>,
        master: &hood_identity::master_key::MasterKey,
        home: &std::path::Path,
        configure: impl FnOnce(hood_api::state::AppState) -> hood_api::state::AppState,
    ) -> Result<Self> {
        let dyn_store: std::sync::Arc<dyn hood_store::Store> = store.clone();
        let keys = hood_api::bootstrap::ensure_signing_keys(store.as_ref(), master).await?;
        let tokens = hood_identity::tokens::TokenIssuer::new(
            &keys,
            master,
            hood_identity::tokens::TokenConfig::default(),
        )?;
        let chains = std::sync::Arc::new(
            hood_chains::ChainCatalog::builtin()
                .map_err(|r| anyhow::anyhow!("built-in chains are invalid:\n{r}"))?,
        );
        let state = configure(hood_api::state::AppState::new(
            dyn_store,
            tokens,
            None,
            chains,
            &hood_api::state::ApiConfig {
                login_attempts_per_minute: 1_000,
            },
        ));
        hood_api::bootstrap::bootstrap_admin(store.as_ref(), home, None).await?;
        let admin = std::fs::read_to_string(home.join(hood_api::bootstrap::ADMIN_KEY_FILE))?
            .trim()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(hood_api::serve(
            listener,
            hood_api::router(state, &[hood_api::HttpRole::Api, hood_api::HttpRole::Auth]),
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        Ok(Self {
            addr,
            admin,
            stop,
            server,
        })
    }

    /// Stops serving and waits for the server to end.
    async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(connect: &crate::cli::client::ConnectOpts, cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Saga {
            database_url,
            workflows,
            steps,
            workers,
        } => saga(&database_url, workflows, steps, workers).await,
        BenchCmd::Health {
            database_url,
            nodes,
            cycles,
        } => health::run(&database_url, nodes, cycles).await,
        BenchCmd::Provision { runs, anvil } => provision(connect, runs, anvil).await,
        BenchCmd::Edge(args) => edge::run(args).await,
        BenchCmd::Ledger(args) => ledger::run(args).await,
        BenchCmd::Billing(args) => billing::run(args).await,
        BenchCmd::Snapshot(args) => snapshot::run(args).await,
        BenchCmd::Storage(args) => storage::run(args).await,
    }
}

async fn saga(url: &str, workflows: usize, steps: usize, workers: usize) -> Result<()> {
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(url).await.context("connecting")?;
    store.migrate().await.context("migrating")?;
    // Anchor: single-write transactions through the same store (a saga step
    // costs two: start and finish).
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]),
        name: "bench".into(),
        created_at: hood_clock::now(),
    };
    store.create_org(&org).await?;
    let node = Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: "bench".into(),
        chain: "bench".into(),
        node_type: "bench".into(),
        provider: "bench".into(),
        region: "bench".into(),
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 0,
        created_at: org.created_at,
        updated_at: org.created_at,
    };
    store.create_node(&node).await?;
    let writes = 2_000;
    let started = Instant::now();
    for i in 0..writes {
        store
            .append_node_event(node.id, "bench", &i.to_string(), hood_clock::now())
            .await?;
    }
    let anchor = writes as f64 / started.elapsed().as_secs_f64();
    let report = hood_saga::bench_step_throughput(store.clone(), workflows, steps, workers).await?;
    println!("{report}");
    println!(
        "anchor: {anchor:.0} single-write transactions/s on {}",
        store.backend().as_str()
    );
    println!(
        "ratio: {:.3} saga steps per bare write transaction (ideal ≈ 0.5: a step journals a start and a finish)",
        report.steps_per_sec / anchor
    );
    Ok(())
}

async fn provision(
    connect: &crate::cli::client::ConnectOpts,
    runs: usize,
    anvil: PathBuf,
) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    // Anchor: the same binary started directly until it answers JSON-RPC.
    let http = reqwest::Client::new();
    let mut anchors = Vec::new();
    for _ in 0..runs.min(10) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&anvil)
            .args(["--port", &port.to_string(), "--block-time", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", anvil.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        loop {
            let ok = hood_jsonrpc::call(
                &http,
                &url,
                "eth_blockNumber",
                &[],
                &hood_jsonrpc::CallOptions::default(),
            )
            .await
            .is_ok();
            if ok {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("anvil did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anchors.push(started.elapsed());
        let _ = child.kill().await;
    }
    anchors.sort();

    let mut client = crate::cli::client::Client::new(connect)?;
    let mut times = Vec::new();
    for i in 0..runs {
        let started = Instant::now();
        let request = CreateNodeRequest {
            chain: "ethereum-anvil".into(),
            node_type: None,
            name: Some(format!(
                "bench-{}-{i}",
                &Uuid::new_v4().simple().to_string()[..6]
            )),
            provider: None,
            region: None,
            from_snapshot: None,
            labels: Default::default(),
        };
        let accepted: NodeAccepted = client.post("/api/v1/nodes", &request).await?;
        let id = accepted.node.id;
        loop {
            let node: NodeView = client.get(&format!("/api/v1/nodes/{id}")).await?;
            match node.state.as_str() {
                "healthy" => break,
                "failed" => bail!(
                    "node {id} failed: {}",
                    node.failure_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                ),
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("node {id} not healthy within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        times.push(started.elapsed());
        let _terminating: NodeAccepted = client
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/nodes/{id}"),
                None::<&()>,
            )
            .await?;
        eprintln!("run {}: {:.0} ms", i + 1, ms(times[i]));
    }
    times.sort();
    let (p50, p95) = (percentile(&times, 50.0), percentile(&times, 95.0));
    let anchor = percentile(&anchors, 50.0);
    println!(
        "POST /nodes -> healthy over {runs} runs: p50 {:.0} ms, p95 {:.0} ms",
        ms(p50),
        ms(p95)
    );
    println!(
        "anchor: anvil started directly until it answers, p50 {:.0} ms",
        ms(anchor)
    );
    println!(
        "ratio: p50 {:.1}x, p95 {:.1}x the direct start (host + agent enrollment + mTLS + artifact + keys + sync check)",
        ms(p50) / ms(anchor).max(0.001),
        ms(p95) / ms(anchor).max(0.001)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(11));
        assert_eq!(percentile(&v, 95.0), Duration::from_millis(19));
        assert_eq!(percentile(&v, 100.0), Duration::from_millis(20));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
