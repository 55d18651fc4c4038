//! `hood bench health`: the health role's evaluation cycle over a synthetic
//! fleet, anchored on the bare snapshot read every cycle starts with.
//!
//! The fleet is one org with ten `ethereum-anvil` nodes per host, every node
//! `healthy` and reported running by its agent. About 1 % of the nodes sit
//! on hosts whose agents stopped reporting ten minutes ago, so each cycle
//! has real transitions and incidents to write. Between cycles the live
//! agents report again with the head one block further, as anvil does,
//! stamped with when they first saw it (`head_since_ms`): that keeps them
//! fresh however long the run takes, and a moved head alone costs no write;
//! what is written each cycle is what changed (the silent hosts' nodes).

use super::{ms, percentile};
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use hood_chains::ChainCatalog;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, HostState, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::workload::{Sample, SyncSample, WorkloadObservation};
use hood_domain::{HostId, NodeId, OrgId, Timestamp};
use hood_health::{Evaluator, HealthConfig};
use hood_store::fleet::{Host, WorkloadReport};
use hood_store::health::Lease;
use hood_store::node::NodeChange;
use hood_store::{Backend, Store};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const CHAIN: &str = "ethereum-anvil";
const NODES_PER_HOST: usize = 10;
/// How long the agents of the stale hosts have been silent.
const STALE_FOR_MS: i64 = 10 * 60_000;
/// Lease held by the benchmark; renewed before each cycle.
const LEASE_TTL_MS: i64 = 10 * 60_000;
const HOLDER: &str = "hood-bench";
/// First head the agents report; each refresh adds one block.
const FIRST_HEAD: i64 = 1_000;

/// One host and the nodes it runs.
struct HostFixture {
    id: HostId,
    nodes: Vec<NodeId>,
}

/// The synthetic fleet.
struct Fleet {
    live: Vec<HostFixture>,
    stale: Vec<HostFixture>,
}

impl Fleet {
    /// `nodes` nodes, 1 % of them (at least one) on stale hosts, ten per host.
    fn plan(nodes: usize) -> Self {
        let stale = if nodes == 0 { 0 } else { (nodes / 100).max(1) };
        let hosts = |count: usize| -> Vec<HostFixture> {
            (0..count.div_ceil(NODES_PER_HOST))
                .map(|h| HostFixture {
                    id: HostId::from_uuid(Uuid::now_v7()),
                    nodes: (0..NODES_PER_HOST.min(count - h * NODES_PER_HOST))
                        .map(|_| NodeId::from_uuid(Uuid::now_v7()))
                        .collect(),
                })
                .collect()
        };
        Self {
            live: hosts(nodes - stale),
            stale: hosts(stale),
        }
    }

    fn hosts(&self) -> impl Iterator<Item = &HostFixture> {
        self.live.iter().chain(&self.stale)
    }

    fn stale_nodes(&self) -> usize {
        self.stale.iter().map(|h| h.nodes.len()).sum()
    }
}

/// Runs `f` over `items`, `width` at a time; the first error wins.
async fn for_each<T, F, Fut>(items: impl IntoIterator<Item = T>, width: usize, f: F) -> Result<()>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut running = futures::stream::iter(items).map(f).buffer_unordered(width);
    while let Some(done) = running.next().await {
        done?;
    }
    Ok(())
}

/// What an anvil node's agent reports: synced at `head`, every collector of
/// the profile's `observation.yaml` answering, no policy firing.
fn observation(head: i64, at: Timestamp) -> Result<Value> {
    let at_ms = at.millis();
    let sample = |result: Value| Sample {
        at_ms,
        result: Some(result),
        error: None,
    };
    let report = WorkloadObservation {
        at_ms,
        sync: Some(SyncSample {
            at_ms,
            syncing: Some(false),
            head: Some(head),
            // Every live head moves every cycle: first seen now.
            head_since_ms: Some(at_ms),
            peers: None,
            error: None,
        }),
        samples: BTreeMap::from([
            (
                "block_number".to_owned(),
                sample(json!(format!("{head:#x}"))),
            ),
            ("chain_id".to_owned(), sample(json!("0x7a69"))),
            ("gas_price".to_owned(), sample(json!("0x3b9aca00"))),
            (
                "system".to_owned(),
                sample(json!({
                    "disk_free_percent": 62.5,
                    "disk_free_bytes": 33_554_432_000_u64,
                    "disk_total_bytes": 53_687_091_200_u64,
                    "memory_used_percent": 41.2,
                    "cpu_percent": 7.5,
                    "load1": 0.4,
                })),
            ),
        ]),
    };
    Ok(serde_json::to_value(report)?)
}

/// Concurrent writers while seeding: PostgreSQL commits in parallel (group
/// commit); SQLite has one writer at a time.
fn width(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 8,
        Backend::Sqlite => 1,
    }
}

/// The hosts' agents report every workload `running` at `head`, as of `at`.
async fn heartbeats(
    store: &dyn Store,
    hosts: &[HostFixture],
    head: i64,
    at: Timestamp,
) -> Result<()> {
    let obs = observation(head, at)?;
    for_each(hosts, width(store.backend()), |host| {
        let reports: Vec<WorkloadReport> = host
            .nodes
            .iter()
            .zip(1_000_i64..)
            .map(|(node, pid)| WorkloadReport {
                workload_id: node.to_string(),
                state: "running".into(),
                pid: Some(pid),
                restarts: 0,
                observation: obs.clone(),
                updated_at: at,
            })
            .collect();
        async move {
            store
                .record_heartbeat(host.id, &reports, at)
                .await
                .context("recording a heartbeat")
        }
    })
    .await
}

/// Creates the org, the hosts (`ready`), the nodes (`healthy`, placed,
/// synced) and the agents' first reports, through the store's own methods.
async fn seed(store: &dyn Store, fleet: &Fleet) -> Result<()> {
    let now = hood_clock::now();
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]),
        name: "bench health".into(),
        created_at: now,
    };
    store.create_org(&org).await.context("creating the org")?;
    let org_id = org.id;
    let w = width(store.backend());

    for_each(fleet.hosts().enumerate(), w, |(i, h)| async move {
        let host = Host {
            id: h.id,
            org_id: Some(org_id),
            provider: "local".into(),
            region: "bench".into(),
            state: HostState::Requested,
            address: Some(format!(
                "10.{}.{}.{}",
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            )),
            provider_ref: json!({}),
            hostname: Some(format!("bench-host-{i}")),
            agent_version: Some(env!("CARGO_PKG_VERSION").into()),
            last_seen_at: None,
            connected_at: None,
            created_at: now,
            updated_at: now,
        };
        store.create_host(&host).await.context("creating a host")?;
        for to in [
            HostState::Provisioning,
            HostState::Enrolling,
            HostState::Ready,
        ] {
            store
                .transition_host(h.id, to, now)
                .await
                .context("moving a host to ready")?;
        }
        Ok(())
    })
    .await?;
    eprintln!("  hosts created");

    let placed = fleet
        .hosts()
        .flat_map(|h| h.nodes.iter().map(move |n| (h.id, *n)))
        .enumerate();
    for_each(placed, w, |(i, (host, id))| async move {
        let node = Node {
            id,
            org_id,
            name: format!("bench-{i:06}"),
            chain: CHAIN.into(),
            node_type: "dev".into(),
            provider: "local".into(),
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
            created_at: now,
            updated_at: now,
        };
        store.create_node(&node).await.context("creating a node")?;
        let change = NodeChange {
            state: Some(NodeState::Healthy),
            sync_status: Some(SyncStatus::Synced),
            app_health: Some(ApplicationHealth::Ok),
            host_id: Some(Some(host)),
            rpc_endpoint: Some(Some(format!("http://127.0.0.1:{}", 20_000 + i % 40_000))),
            head_height: Some(Some(FIRST_HEAD)),
            binary_version: Some(Some("1.5.1".into())),
            message: "placed and synced (benchmark fixture)".into(),
            ..NodeChange::default()
        };
        store
            .update_node(id, 0, &change, now)
            .await
            .context("moving a node to healthy")?;
        Ok(())
    })
    .await?;
    eprintln!("  nodes created");

    heartbeats(store, &fleet.live, FIRST_HEAD, hood_clock::now()).await?;
    let silent_since = Timestamp(hood_clock::now().millis() - STALE_FOR_MS);
    heartbeats(store, &fleet.stale, FIRST_HEAD, silent_since).await?;
    Ok(())
}

/// Takes (or renews) the health lease for the benchmark.
async fn lease(store: &dyn Store) -> Result<Lease> {
    match store
        .acquire_leader_lease(
            hood_health::leases::HEALTH,
            HOLDER,
            LEASE_TTL_MS,
            hood_clock::now(),
        )
        .await?
    {
        Some(lease) => Ok(lease),
        None => bail!(
            "the health lease is held by a running health role; run the benchmark on a fresh database"
        ),
    }
}

pub(super) async fn run(url: &str, nodes: usize, cycles: usize) -> Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if cycles == 0 {
        bail!("--cycles must be at least 1");
    }
    if !["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        bail!(
            "unsupported --database-url {} (expected sqlite://… or postgres://…)",
            hood_store::redact_url(url)
        );
    }
    let store: Arc<dyn Store> = hood_store::connect(url).await.context("connecting")?;
    store.migrate().await.context("migrating")?;
    let backend = store.backend().as_str();
    let chains = ChainCatalog::builtin()
        .map_err(|report| anyhow::anyhow!("built-in chain definitions are invalid:\n{report}"))?;
    if chains.get(CHAIN).is_none() {
        bail!("the built-in catalog has no chain `{CHAIN}`");
    }
    let config = HealthConfig::default();

    let fleet = Fleet::plan(nodes);
    let hosts = fleet.live.len() + fleet.stale.len();
    eprintln!("seeding {nodes} nodes on {hosts} hosts ({backend})…");
    let started = Instant::now();
    seed(store.as_ref(), &fleet).await?;
    let seeding = started.elapsed();
    println!(
        "seeded {nodes} nodes on {hosts} hosts in {:.1} s ({:.0} nodes/s; not part of the measurement)",
        seeding.as_secs_f64(),
        nodes as f64 / seeding.as_secs_f64().max(1e-9)
    );

    // One warm-up read, which also checks that the database was fresh.
    let seen = store.health_snapshot().await?.len();
    if seen != nodes {
        bail!("the database is not fresh: the snapshot holds {seen} nodes, {nodes} were seeded");
    }
    let evaluator = Evaluator::new(store.clone(), &chains, config.rules, None, BTreeMap::new())
        .with_clock(store.clock());
    let mut anchors = Vec::with_capacity(cycles);
    let mut runs = Vec::with_capacity(cycles);
    let mut refreshing = Duration::ZERO;
    for cycle in 0..cycles {
        // The live agents report again, one block further (not measured).
        let started = Instant::now();
        let head = FIRST_HEAD + 1 + i64::try_from(cycle)?;
        heartbeats(store.as_ref(), &fleet.live, head, hood_clock::now()).await?;
        let held = lease(store.as_ref()).await?;
        refreshing += started.elapsed();

        // Anchor: the bare snapshot read of the same data, just before the
        // cycle reads it again.
        let started = Instant::now();
        let snapshot = store.health_snapshot().await?;
        let anchor = started.elapsed();
        anchors.push(anchor);
        drop(snapshot);

        let started = Instant::now();
        let report = evaluator
            .run_cycle(&held)
            .await
            .with_context(|| format!("cycle {}", cycle + 1))?;
        let took = started.elapsed();
        eprintln!(
            "  cycle {}: {:.1} ms (anchor {:.1} ms), {} nodes, {} written, {} transitions, {} incidents opened",
            cycle + 1,
            ms(took),
            ms(anchor),
            report.nodes,
            report.nodes_written,
            report.transitions,
            report.incidents_opened
        );
        runs.push((took, report));
    }
    if let Ok(held) = lease(store.as_ref()).await {
        store.release_leader_lease(&held).await?;
    }

    anchors.sort();
    let anchor = percentile(&anchors, 50.0);
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| runs[i].0);
    let times: Vec<Duration> = order.iter().map(|&i| runs[i].0).collect();
    let p50 = percentile(&times, 50.0);
    let max = times.last().copied().unwrap_or_default();
    let rank = ((times.len() as f64 - 1.0) * 0.5).round() as usize;
    let Some(median) = order.get(rank).map(|&i| &runs[i].1) else {
        bail!("no cycle ran");
    };
    let Some((_, first)) = runs.first() else {
        bail!("no cycle ran");
    };
    let interval = config.evaluate_every;

    println!(
        "{:>7}  {:<8}  {:>13}  {:>12}  {:>12}  {:>7}  {:>8}  {:>8}  {:>17}  {:>6}",
        "nodes",
        "backend",
        "anchor p50 ms",
        "cycle p50 ms",
        "cycle max ms",
        "read ms",
        "judge ms",
        "write ms",
        "transitions (1st)",
        "ratio"
    );
    println!(
        "{:>7}  {:<8}  {:>13.1}  {:>12.1}  {:>12.1}  {:>7}  {:>8}  {:>8}  {:>17}  {:>6.2}",
        nodes,
        backend,
        ms(anchor),
        ms(p50),
        ms(max),
        median.read_ms,
        median.judge_ms,
        median.write_ms,
        first.transitions,
        ms(p50) / ms(anchor).max(0.001)
    );
    println!(
        "evaluated: {} nodes per cycle over {cycles} cycles; {} of them on {} silent hosts",
        first.nodes,
        fleet.stale_nodes(),
        fleet.stale.len()
    );
    println!(
        "first cycle: {} transitions, {} incidents opened (read/judge/write of the median cycle: {}/{}/{} ms)",
        first.transitions,
        first.incidents_opened,
        median.read_ms,
        median.judge_ms,
        median.write_ms
    );
    println!(
        "anchor: bare health_snapshot() of {nodes} nodes, p50 {:.1} ms over {} reads (one before each cycle) on {backend}",
        ms(anchor),
        anchors.len()
    );
    println!(
        "ratio: {:.2}x, cycle p50 / anchor p50 (snapshot, incidents and heads read, every node judged, one fenced write of the nodes that changed)",
        ms(p50) / ms(anchor).max(0.001)
    );
    let share = 100.0 * max.as_secs_f64() / interval.as_secs_f64();
    if max <= interval {
        println!(
            "interval: fits: the slowest cycle ({:.0} ms) takes {share:.1}% of the default {} s evaluation interval",
            ms(max),
            interval.as_secs()
        );
    } else {
        println!(
            "interval: does NOT fit: the slowest cycle ({:.0} ms) takes {share:.0}% of the default {} s evaluation interval",
            ms(max),
            interval.as_secs()
        );
    }
    println!(
        "agents reported between cycles in {:.1} s in all (not part of the measurement)",
        refreshing.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_puts_one_percent_on_stale_hosts_ten_per_host() {
        let f = Fleet::plan(10_000);
        assert_eq!(f.stale_nodes(), 100);
        assert_eq!(f.stale.len(), 10);
        assert_eq!(f.live.len(), 990);
        assert!(f.hosts().all(|h| h.nodes.len() == NODES_PER_HOST));

        let f = Fleet::plan(205);
        assert_eq!(f.stale_nodes(), 2);
        assert_eq!(f.hosts().map(|h| h.nodes.len()).sum::<usize>(), 205);
        assert_eq!(f.live.last().map(|h| h.nodes.len()), Some(3));

        let f = Fleet::plan(1);
        assert_eq!((f.stale_nodes(), f.live.len()), (1, 0));
    }

    #[test]
    fn the_fixture_report_parses_as_an_agent_observation() {
        let v = observation(4_096, Timestamp(1_700_000_000_000)).unwrap();
        let back: WorkloadObservation = serde_json::from_value(v).unwrap();
        assert_eq!(back.sync.and_then(|s| s.head), Some(4_096));
        assert_eq!(back.samples["block_number"].result, Some(json!("0x1000")));
    }
}
