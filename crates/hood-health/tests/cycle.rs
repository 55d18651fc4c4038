//! The evaluation cycle on a real store (SQLite and PostgreSQL): a node
//! whose agent reports the same thing again costs no write; one whose head
//! moved is written, in the cycle's one fenced, set-based write, unless
//! its agent says since when it has seen the head (then no write at all).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use hood_chains::ChainCatalog;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, HostState, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::workload::{SyncSample, WorkloadObservation};
use hood_domain::{HostId, NodeId, OrgId, Timestamp};
use hood_health::{Evaluator, HealthConfig};
use hood_store::fleet::{Host, WorkloadReport};
use hood_store::node::NodeChange;
use hood_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const CHAIN: &str = "ethereum-anvil";
const NODES: usize = 5;

fn now() -> Timestamp {
    hood_clock::now()
}

/// A ready host running `NODES` healthy, synced anvil nodes.
async fn seed(store: &dyn Store) -> (HostId, Vec<NodeId>) {
    let at = now();
    let org = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: at,
    };
    store.create_org(&org).await.unwrap();
    let host = HostId::from_uuid(Uuid::now_v7());
    store
        .create_host(&Host {
            id: host,
            org_id: Some(org.id),
            provider: "local".into(),
            region: "local".into(),
            state: HostState::Requested,
            address: Some("10.0.0.1".into()),
            provider_ref: serde_json::json!({}),
            hostname: Some("h1".into()),
            agent_version: None,
            last_seen_at: None,
            connected_at: None,
            created_at: at,
            updated_at: at,
        })
        .await
        .unwrap();
    for to in [
        HostState::Provisioning,
        HostState::Enrolling,
        HostState::Ready,
    ] {
        store.transition_host(host, to, at).await.unwrap();
    }
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let id = NodeId::from_uuid(Uuid::now_v7());
        store
            .create_node(&Node {
                id,
                org_id: org.id,
                name: format!("n{i}"),
                chain: CHAIN.into(),
                node_type: "dev".into(),
                provider: "local".into(),
                region: "local".into(),
                state: NodeState::Provisioning,
                sync_status: SyncStatus::Unknown,
                app_health: ApplicationHealth::Unknown,
                host_id: None,
                rpc_endpoint: None,
                head_height: None,
                binary_version: None,
                failure_reason: None,
                version: 0,
                created_at: at,
                updated_at: at,
            })
            .await
            .unwrap();
        let change = NodeChange {
            state: Some(NodeState::Healthy),
            sync_status: Some(SyncStatus::Synced),
            app_health: Some(ApplicationHealth::Ok),
            host_id: Some(Some(host)),
            rpc_endpoint: Some(Some(format!("http://127.0.0.1:{}", 30_000 + i))),
            head_height: Some(Some(100)),
            message: "placed".into(),
            ..NodeChange::default()
        };
        store.update_node(id, 0, &change, at).await.unwrap();
        nodes.push(id);
    }
    (host, nodes)
}

/// The agent reports every node running, synced, at its head (`heads[i]`);
/// `stamped`: with since when it has seen the head (agents that predate
/// the stamp send none).
async fn report(store: &dyn Store, host: HostId, nodes: &[NodeId], heads: &[i64], stamped: bool) {
    let at = now();
    let reports: Vec<WorkloadReport> = nodes
        .iter()
        .zip(heads)
        .map(|(node, head)| {
            let observation = WorkloadObservation {
                at_ms: at.millis(),
                sync: Some(SyncSample {
                    at_ms: at.millis(),
                    syncing: Some(false),
                    head: Some(*head),
                    head_since_ms: stamped.then_some(at.millis()),
                    peers: None,
                    error: None,
                }),
                samples: BTreeMap::new(),
            };
            WorkloadReport {
                workload_id: node.to_string(),
                state: "running".into(),
                pid: Some(1),
                restarts: 0,
                observation: serde_json::to_value(observation).unwrap(),
                updated_at: at,
            }
        })
        .collect();
    store.record_heartbeat(host, &reports, at).await.unwrap();
}

async fn only_what_changed_is_written(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    let (host, nodes) = seed(store.as_ref()).await;
    let chains = ChainCatalog::builtin().unwrap();
    let evaluator = Evaluator::new(
        store.clone(),
        &chains,
        HealthConfig::default().rules,
        None,
        BTreeMap::new(),
    )
    .with_clock(store.clock());
    let lease = store
        .acquire_leader_lease(hood_health::leases::HEALTH, "test", 60_000, now())
        .await
        .unwrap()
        .unwrap();

    let mut heads = vec![100; NODES];
    report(store.as_ref(), host, &nodes, &heads, false).await;
    let first = evaluator.run_cycle(&lease).await.unwrap();
    assert_eq!(first.nodes, NODES);
    assert_eq!(first.nodes_written, NODES, "first evaluation: {first:?}");
    let counters = async || -> Vec<_> {
        let snapshot = store.health_snapshot().await.unwrap();
        snapshot.into_iter().map(|s| (s.node, s.health)).collect()
    };
    let stored = counters().await;
    assert!(stored.iter().all(|(_, h)| h.is_some()), "{stored:?}");

    // The agent says the same again: nothing to write.
    report(store.as_ref(), host, &nodes, &heads, false).await;
    let again = evaluator.run_cycle(&lease).await.unwrap();
    assert_eq!(again.nodes_written, 0, "unchanged nodes: {again:?}");
    assert_eq!(counters().await, stored, "nodes and counters as they were");

    // Two heads moved: those two are written, and read back.
    heads[1] = 101;
    heads[3] = 105;
    report(store.as_ref(), host, &nodes, &heads, false).await;
    let moved = evaluator.run_cycle(&lease).await.unwrap();
    assert_eq!(moved.nodes_written, 2, "{moved:?}");
    assert_eq!(moved.transitions, 0, "{moved:?}");
    for (node, health) in counters().await {
        let i = nodes.iter().position(|n| *n == node.id).unwrap();
        let health = health.unwrap();
        assert_eq!(health.last_head, Some(heads[i]), "node {i}: {health:?}");
    }

    // An agent that says since when it has seen each head: moved heads
    // are judged from the report alone and cost no write.
    let before = counters().await;
    for head in heads.iter_mut() {
        *head += 1;
    }
    report(store.as_ref(), host, &nodes, &heads, true).await;
    let stamped = evaluator.run_cycle(&lease).await.unwrap();
    assert_eq!(stamped.nodes, NODES);
    assert_eq!(stamped.nodes_written, 0, "{stamped:?}");
    assert_eq!(stamped.transitions, 0, "{stamped:?}");
    assert_eq!(counters().await, before);
}

#[tokio::test]
async fn sqlite_writes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    only_what_changed_is_written(store).await;
}

#[tokio::test]
async fn postgres_writes_only_what_changed() {
    let Some(db) = hood_testkit::PgDatabase::create("health cycle").await else {
        return;
    };
    let store = hood_store::connect(&db.url).await.unwrap();
    only_what_changed_is_written(store).await;
}
