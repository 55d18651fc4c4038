#![allow(clippy::expect_used, clippy::unwrap_used)]

//! Health store conformance: leader leases and fencing, the evaluator's
//! batched writes, incidents, notification channels and deliveries, uptime
//! and cleanup — the same bodies on SQLite and PostgreSQL.

#[macro_use]
mod support;

use hood_domain::event::DomainEvent;
use hood_domain::health::{
    hour_floor, incident_key, ChainHeadTrack, IncidentCategory, UptimeBucket, HOUR_MS,
};
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, HostState, IncidentState, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::{ChannelId, DeliveryId, HostId, IncidentId, NodeId, OrgId, Timestamp};
use hood_store::fleet::{EnrollmentToken, Host, WorkloadReport as FleetWorkload};
use hood_store::health::{
    ApplyReport, AttemptOutcome, Delivery, DeliveryAttempt, DeliveryState, HealthWrite, Incident,
    IncidentChange, IncidentFilter, Lease, NodeHealth, NotificationChannel, StateLog, UptimeCursor,
    WorkloadReport,
};
use hood_store::node::NodeChange;
use hood_store::{Store, StoreError};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use support::Harness;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const MIN: i64 = 60_000;
const LEASE: &str = "health";
const CHAIN: &str = "ethereum-anvil";

// -- fixtures --

async fn org(store: &dyn Store, slug: &str) -> Organization {
    let o = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: slug.into(),
        name: slug.into(),
        created_at: T0,
    };
    store.create_org(&o).await.unwrap();
    o
}

/// A freshly requested node (provisioning, version 0), stored.
async fn create_node(store: &dyn Store, org: &Organization, name: &str) -> Node {
    let n = Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: name.into(),
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
        created_at: T0,
        updated_at: T0,
    };
    store.create_node(&n).await.unwrap();
    n
}

fn to_state(state: NodeState, message: &str) -> NodeChange {
    NodeChange {
        state: Some(state),
        message: message.into(),
        ..Default::default()
    }
}

/// A node moved provisioning → syncing → healthy (version 2).
async fn healthy_node(store: &dyn Store, org: &Organization, name: &str) -> Node {
    let n = create_node(store, org, name).await;
    store
        .update_node(
            n.id,
            0,
            &to_state(NodeState::Syncing, "syncing"),
            T0.plus_secs(1),
        )
        .await
        .unwrap();
    let healthy = store
        .update_node(
            n.id,
            1,
            &to_state(NodeState::Healthy, "synced"),
            T0.plus_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(healthy.version, 2);
    healthy
}

/// The leader lease, held all day from `T0`.
async fn leader(store: &dyn Store) -> Lease {
    store
        .acquire_leader_lease(LEASE, "leader", 24 * 60 * MIN, T0)
        .await
        .unwrap()
        .expect("free lease")
}

fn wall_now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp(i64::try_from(ms).unwrap())
}

fn sample_health() -> NodeHealth {
    NodeHealth {
        consecutive_misses: 3,
        down_since: Some(T0.plus_secs(90)),
        down_version: Some(3),
        last_migration_at: Some(T0.plus_secs(10)),
        last_head: Some(1234),
        head_changed_at: Some(T0.plus_secs(80)),
        policy_firing: BTreeMap::from([
            ("disk_full".to_owned(), 1_700_000_050_000),
            ("peers_low".to_owned(), 1_700_000_060_000),
        ]),
    }
}

fn incident(
    org: &Organization,
    category: IncidentCategory,
    subject: &str,
    node: Option<NodeId>,
    at: Timestamp,
) -> Incident {
    Incident {
        id: IncidentId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        dedupe_key: incident_key(category, subject),
        category,
        severity: category.severity(),
        state: IncidentState::Open,
        node_id: node,
        chain: Some(CHAIN.into()),
        title: format!("{} {subject}", category.as_str()),
        detail: "3 heartbeats missed".into(),
        root_id: None,
        escalation_level: 0,
        escalated_at: None,
        clear_cycles: 0,
        opened_at: at,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        updated_at: at,
    }
}

async fn apply(
    store: &dyn Store,
    lease: &Lease,
    writes: &[HealthWrite],
    now: Timestamp,
) -> ApplyReport {
    store.apply_health(lease, writes, now).await.unwrap()
}

/// Opens `inc` through the evaluator's path and returns it as stored.
async fn open(store: &dyn Store, lease: &Lease, inc: &Incident) -> Incident {
    let report = apply(
        store,
        lease,
        &[HealthWrite::OpenIncident(inc.clone())],
        inc.opened_at,
    )
    .await;
    assert_eq!(report.incidents_opened, 1, "{} opened", inc.dedupe_key);
    get_incident(store, inc.id).await
}

async fn update(
    store: &dyn Store,
    lease: &Lease,
    id: IncidentId,
    expected_state: IncidentState,
    change: IncidentChange,
    now: Timestamp,
) -> ApplyReport {
    apply(
        store,
        lease,
        &[HealthWrite::UpdateIncident {
            id,
            expected_state,
            change,
        }],
        now,
    )
    .await
}

async fn get_incident(store: &dyn Store, id: IncidentId) -> Incident {
    store
        .get_incident(None, id)
        .await
        .unwrap()
        .expect("incident")
}

async fn outbox(store: &dyn Store) -> Vec<DomainEvent> {
    store
        .outbox_pending(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

/// Subjects of the outbox events about one aggregate, oldest first.
async fn subjects_of(store: &dyn Store, aggregate: &str) -> Vec<String> {
    outbox(store)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == aggregate)
        .map(|e| e.subject)
        .collect()
}

async fn snapshot_of(store: &dyn Store, id: NodeId) -> Option<hood_store::health::HealthSnapshot> {
    store
        .health_snapshot()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.node.id == id)
}

fn channel(org: &Organization, name: &str) -> NotificationChannel {
    NotificationChannel {
        id: ChannelId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: name.into(),
        kind: "webhook".into(),
        sealed_config: vec![0xde, 0xad, 0xbe, 0xef, 0x00],
        redacted_config: json!({"url": "https://hooks.example/abc", "secret": "***"}),
        enabled: true,
        created_at: T0,
        updated_at: T0,
    }
}

async fn create_channel(store: &dyn Store, org: &Organization, name: &str) -> NotificationChannel {
    let c = channel(org, name);
    store.create_channel(&c).await.unwrap();
    c
}

async fn deliveries(store: &dyn Store, org: &Organization, inc: IncidentId) -> Vec<Delivery> {
    store
        .list_deliveries(org.id, Some(inc), 1000)
        .await
        .unwrap()
}

async fn delivery(store: &dyn Store, org: &Organization, id: DeliveryId) -> Delivery {
    store
        .list_deliveries(org.id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .expect("delivery")
}

async fn claimed_ids(store: &dyn Store, now: Timestamp) -> Vec<DeliveryId> {
    store
        .claim_deliveries(100, 30_000, now)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.delivery.id)
        .collect()
}

// -- 1. leases --

async fn lease_renew_expiry_takeover_and_release(db: &Harness) {
    let store = db.migrated().await;
    let a = store
        .acquire_leader_lease(LEASE, "a", 10_000, T0)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(
        a,
        Lease {
            name: LEASE.into(),
            holder: "a".into(),
            generation: 1,
            expires_at: T0.plus_secs(10),
        }
    );

    let renewed = store
        .acquire_leader_lease(LEASE, "a", 10_000, T0.plus_secs(5))
        .await
        .unwrap()
        .expect("the holder renews");
    assert_eq!(renewed.generation, 1, "renewal keeps the generation");
    assert_eq!(
        renewed.expires_at,
        T0.plus_secs(15),
        "renewal extends expiry"
    );

    // Past the first expiry, but the renewal still holds.
    assert_eq!(
        store
            .acquire_leader_lease(LEASE, "b", 10_000, T0.plus_secs(12))
            .await
            .unwrap(),
        None,
        "another holder waits while the lease is live"
    );
    // Another lease name is independent.
    let other = store
        .acquire_leader_lease("uptime", "b", 10_000, T0.plus_secs(12))
        .await
        .unwrap()
        .expect("another lease");
    assert_eq!(other.generation, 1);

    let b = store
        .acquire_leader_lease(LEASE, "b", 10_000, T0.plus_secs(16))
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(b.holder, "b");
    assert_eq!(b.generation, 2, "a new holder gets a new generation");
    assert_eq!(b.expires_at, T0.plus_secs(26));
    assert_eq!(
        store
            .acquire_leader_lease(LEASE, "a", 10_000, T0.plus_secs(17))
            .await
            .unwrap(),
        None,
        "the deposed holder cannot take it back while b holds it"
    );

    // Releasing a lease one no longer holds does nothing.
    store.release_leader_lease(&renewed).await.unwrap();
    assert_eq!(
        store
            .acquire_leader_lease(LEASE, "a", 10_000, T0.plus_secs(18))
            .await
            .unwrap(),
        None,
        "a stale release must not free b's lease"
    );

    // b steps down: a standby takes over at once, long before b's expiry.
    store.release_leader_lease(&b).await.unwrap();
    let a2 = store
        .acquire_leader_lease(LEASE, "a", 10_000, T0.plus_secs(19))
        .await
        .unwrap()
        .expect("a released lease is free at once");
    assert_eq!(a2.generation, 3);
    assert_eq!(a2.expires_at, T0.plus_secs(29));

    // The same holder coming back after its own lease expired starts a new
    // generation too (its writes since expiry were fenced).
    let a3 = store
        .acquire_leader_lease(LEASE, "a", 10_000, T0.plus_secs(40))
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!(a3.generation, 4);
}

// -- 2. fencing --

async fn apply_health_is_fenced_by_the_lease(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = healthy_node(store, &acme, "alpha").await;
    let writes = vec![
        HealthWrite::Node {
            node_id: n.id,
            expected_version: n.version,
            change: Some(to_state(NodeState::Down, "3 heartbeats missed")),
            health: sample_health(),
        },
        HealthWrite::ChainHead {
            chain: CHAIN.into(),
            track: ChainHeadTrack {
                best_head: 100,
                advanced_at_ms: T0.millis(),
            },
        },
        HealthWrite::OpenIncident(incident(
            &acme,
            IncidentCategory::NodeDown,
            &n.id.to_string(),
            Some(n.id),
            T0,
        )),
    ];
    let outbox_before = outbox(store).await;

    let assert_untouched = |label: &'static str| {
        let outbox_before = outbox_before.clone();
        let n = n.clone();
        async move {
            assert_eq!(
                store.get_node(None, n.id).await.unwrap(),
                Some(n.clone()),
                "{label}: node unchanged"
            );
            assert_eq!(
                outbox(store).await,
                outbox_before,
                "{label}: no outbox row added"
            );
            assert_eq!(
                snapshot_of(store, n.id).await.unwrap().health,
                None,
                "{label}: no counters"
            );
            assert!(store.chain_heads().await.unwrap().is_empty(), "{label}");
            assert!(
                store.unresolved_incidents().await.unwrap().is_empty(),
                "{label}: no incident"
            );
        }
    };

    // Expired, nobody else took it yet.
    let a = store
        .acquire_leader_lease(LEASE, "a", 10_000, T0)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.apply_health(&a, &writes, T0.plus_secs(11)).await,
        Err(StoreError::Fenced(name)) if name == LEASE
    ));
    assert_untouched("expired").await;

    // Taken over: the deposed leader is fenced even if its own clock says
    // its lease is still good.
    let b = store
        .acquire_leader_lease(LEASE, "b", 10_000, T0.plus_secs(12))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        store.apply_health(&a, &writes, T0.plus_secs(5)).await,
        Err(StoreError::Fenced(_))
    ));
    assert_untouched("taken over").await;

    // Released: fenced at once, before its expiry.
    store.release_leader_lease(&b).await.unwrap();
    assert!(matches!(
        store.apply_health(&b, &writes, T0.plus_secs(13)).await,
        Err(StoreError::Fenced(_))
    ));
    assert_untouched("released").await;
    // Same holder, newer generation: the old lease value is still fenced.
    let a_again = store
        .acquire_leader_lease(LEASE, "a", 60_000, T0.plus_secs(14))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_again.generation, 3);
    assert!(matches!(
        store.apply_health(&a, &writes, T0.plus_secs(5)).await,
        Err(StoreError::Fenced(_))
    ));
    assert_untouched("old generation").await;

    // The very same writes under the current lease apply.
    let report = apply(store, &a_again, &writes, T0.plus_secs(15)).await;
    assert_eq!(report.nodes_changed, 1);
    assert_eq!(report.incidents_opened, 1);
    assert_eq!(
        store.get_node(None, n.id).await.unwrap().unwrap().state,
        NodeState::Down
    );
}

// -- 3. node writes --

async fn apply_health_moves_node_with_history_outbox_and_counters(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = healthy_node(store, &acme, "alpha").await;
    let lease = leader(store).await;
    let at = T0.plus_secs(90);
    let health = sample_health();

    let report = apply(
        store,
        &lease,
        &[HealthWrite::Node {
            node_id: n.id,
            expected_version: 2,
            change: Some(to_state(NodeState::Down, "3 heartbeats missed")),
            health: health.clone(),
        }],
        at,
    )
    .await;
    assert_eq!(
        report,
        ApplyReport {
            nodes_changed: 1,
            ..Default::default()
        }
    );

    let down = store.get_node(None, n.id).await.unwrap().unwrap();
    assert_eq!(down.state, NodeState::Down);
    assert_eq!(down.version, 3, "a state change bumps the version");
    assert_eq!(down.updated_at, at);

    let events = store.list_node_events(n.id, 0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["created", "state_changed", "state_changed", "state_changed"]
    );
    let last = events.last().unwrap();
    assert_eq!(last.from_state, Some(NodeState::Healthy));
    assert_eq!(last.to_state, Some(NodeState::Down));
    assert_eq!(last.at, at);
    assert_eq!(last.message, "3 heartbeats missed");

    let node_events: Vec<DomainEvent> = outbox(store)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == n.id.to_string())
        .collect();
    let subjects: Vec<&str> = node_events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "node.created",
            "node.state_changed",
            "node.state_changed",
            "node.state_changed"
        ]
    );
    let payload = &node_events.last().unwrap().payload;
    assert_eq!(payload["state"], "down");
    assert_eq!(payload["from_state"], "healthy");
    assert_eq!(payload["version"], 3);

    let snap = snapshot_of(store, n.id).await.unwrap();
    assert_eq!(snap.node, down);
    assert_eq!(snap.health, Some(health.clone()), "counters round-trip");

    // Counters only: recorded, but the node, its history and the outbox stay.
    let later = NodeHealth {
        consecutive_misses: 4,
        last_head: None,
        policy_firing: BTreeMap::new(),
        ..health
    };
    let report = apply(
        store,
        &lease,
        &[HealthWrite::Node {
            node_id: n.id,
            expected_version: 3,
            change: None,
            health: later.clone(),
        }],
        T0.plus_secs(120),
    )
    .await;
    assert_eq!(report, ApplyReport::default());
    let snap = snapshot_of(store, n.id).await.unwrap();
    assert_eq!(snap.health, Some(later), "counters overwritten");
    assert_eq!(snap.node, down, "a counters-only write leaves the node");
    assert_eq!(store.list_node_events(n.id, 0, 100).await.unwrap().len(), 4);
    assert_eq!(subjects_of(store, &n.id.to_string()).await.len(), 4);
}

async fn apply_health_skips_stale_nodes_and_applies_the_rest(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let raced = healthy_node(store, &acme, "raced").await;
    let fine = healthy_node(store, &acme, "fine").await;
    let counted = healthy_node(store, &acme, "counted").await;
    let young = create_node(store, &acme, "young").await;
    let ghost = NodeId::from_uuid(Uuid::now_v7());
    // Someone else (a workflow) moved `raced` after the evaluator read it.
    let moved = store
        .update_node(
            raced.id,
            2,
            &NodeChange {
                head_height: Some(Some(7)),
                message: "head".into(),
                ..Default::default()
            },
            T0.plus_secs(3),
        )
        .await
        .unwrap();
    assert_eq!(moved.version, 3);
    let lease = leader(store).await;
    let down = || Some(to_state(NodeState::Down, "3 heartbeats missed"));
    let fine_health = NodeHealth {
        consecutive_misses: 3,
        ..Default::default()
    };
    let track = ChainHeadTrack {
        best_head: 4242,
        advanced_at_ms: T0.plus_secs(50).millis(),
    };
    let inc = incident(
        &acme,
        IncidentCategory::NodeDown,
        &fine.id.to_string(),
        Some(fine.id),
        T0.plus_secs(60),
    );
    let writes = [
        HealthWrite::Node {
            node_id: raced.id,
            expected_version: 2,
            change: down(),
            health: sample_health(),
        },
        HealthWrite::Node {
            node_id: fine.id,
            expected_version: 2,
            change: down(),
            health: fine_health.clone(),
        },
        // Counters only, read at an old version: only the leader writes
        // counters, so they are written whatever the version.
        HealthWrite::Node {
            node_id: counted.id,
            expected_version: 1,
            change: None,
            health: sample_health(),
        },
        // The node machine refuses provisioning -> down.
        HealthWrite::Node {
            node_id: young.id,
            expected_version: 0,
            change: down(),
            health: sample_health(),
        },
        // A node that is not there.
        HealthWrite::Node {
            node_id: ghost,
            expected_version: 0,
            change: down(),
            health: sample_health(),
        },
        HealthWrite::ChainHead {
            chain: CHAIN.into(),
            track,
        },
        HealthWrite::OpenIncident(inc.clone()),
    ];
    let report = apply(store, &lease, &writes, T0.plus_secs(60)).await;
    assert_eq!(
        report,
        ApplyReport {
            nodes_changed: 1,
            incidents_opened: 1,
            incidents_updated: 0,
            stale_nodes: vec![raced.id, young.id, ghost],
        }
    );

    assert_eq!(store.get_node(None, raced.id).await.unwrap(), Some(moved));
    assert_eq!(
        store.get_node(None, counted.id).await.unwrap(),
        Some(counted.clone())
    );
    assert_eq!(
        store.get_node(None, young.id).await.unwrap(),
        Some(young.clone())
    );
    let fine_now = store.get_node(None, fine.id).await.unwrap().unwrap();
    assert_eq!((fine_now.state, fine_now.version), (NodeState::Down, 3));

    for skipped in [raced.id, young.id] {
        assert_eq!(
            snapshot_of(store, skipped).await.unwrap().health,
            None,
            "a stale node's counters are not written"
        );
    }
    assert_eq!(
        snapshot_of(store, fine.id).await.unwrap().health,
        Some(fine_health)
    );
    assert_eq!(
        snapshot_of(store, counted.id).await.unwrap().health,
        Some(sample_health()),
        "counters alone do not depend on the version"
    );
    assert_eq!(
        store.chain_heads().await.unwrap(),
        BTreeMap::from([(CHAIN.to_owned(), track)])
    );
    assert_eq!(get_incident(store, inc.id).await, inc);
    assert_eq!(
        subjects_of(store, &raced.id.to_string()).await,
        ["node.created", "node.state_changed", "node.state_changed"],
        "no transition event for the stale node"
    );
}

// -- 4. snapshot --

async fn health_snapshot_joins_host_and_workload_and_skips_finished_nodes(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let host = Host {
        id: HostId::from_uuid(Uuid::now_v7()),
        org_id: Some(acme.id),
        provider: "local".into(),
        region: "local".into(),
        state: HostState::Requested,
        address: None,
        provider_ref: json!({}),
        hostname: None,
        agent_version: None,
        last_seen_at: None,
        connected_at: None,
        created_at: T0,
        updated_at: T0,
    };
    store.create_host(&host).await.unwrap();
    let place = NodeChange {
        host_id: Some(Some(host.id)),
        message: "placed".into(),
        ..Default::default()
    };
    let placed = create_node(store, &acme, "placed").await;
    let placed = store
        .update_node(placed.id, 0, &place, T0.plus_secs(1))
        .await
        .unwrap();
    let neighbour = create_node(store, &acme, "neighbour").await;
    let neighbour = store
        .update_node(neighbour.id, 0, &place, T0.plus_secs(1))
        .await
        .unwrap();
    let loose = create_node(store, &acme, "loose").await;
    let terminated = create_node(store, &acme, "terminated").await;
    store
        .update_node(
            terminated.id,
            0,
            &to_state(NodeState::Terminating, "bye"),
            T0.plus_secs(2),
        )
        .await
        .unwrap();
    store
        .update_node(
            terminated.id,
            1,
            &to_state(NodeState::Terminated, "gone"),
            T0.plus_secs(3),
        )
        .await
        .unwrap();
    let failed = create_node(store, &acme, "failed").await;
    store
        .update_node(
            failed.id,
            0,
            &to_state(NodeState::Failed, "no capacity"),
            T0.plus_secs(2),
        )
        .await
        .unwrap();

    let observation = json!({"head": 1234, "syncing": false, "peers": 7});
    store
        .record_heartbeat(
            host.id,
            &[
                FleetWorkload {
                    workload_id: placed.id.to_string(),
                    state: "running".into(),
                    pid: Some(42),
                    restarts: 1,
                    observation: observation.clone(),
                    updated_at: T0.plus_secs(50),
                },
                FleetWorkload {
                    workload_id: "sidecar".into(),
                    state: "failed".into(),
                    pid: None,
                    restarts: 9,
                    observation: json!({"head": 1}),
                    updated_at: T0.plus_secs(51),
                },
            ],
            T0.plus_secs(60),
        )
        .await
        .unwrap();

    let snaps = store.health_snapshot().await.unwrap();
    let ids: Vec<NodeId> = snaps.iter().map(|s| s.node.id).collect();
    let mut expected = vec![placed.id, neighbour.id, loose.id];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(ids, expected, "terminated and failed nodes are left out");

    let by_id = |id: NodeId| snaps.iter().find(|s| s.node.id == id).unwrap();
    let p = by_id(placed.id);
    assert_eq!(p.node, placed);
    assert_eq!(p.health, None, "no evaluation yet");
    assert_eq!(p.host_state, Some(HostState::Requested));
    assert_eq!(p.host_last_seen, Some(T0.plus_secs(60)));
    assert_eq!(
        p.workload,
        Some(WorkloadReport {
            state: "running".into(),
            updated_at: T0.plus_secs(50),
            observation,
        })
    );
    let nb = by_id(neighbour.id);
    assert_eq!(nb.host_last_seen, Some(T0.plus_secs(60)));
    assert_eq!(nb.workload, None, "another workload is not this node's");
    let l = by_id(loose.id);
    assert_eq!(
        (l.host_state, l.host_last_seen, l.workload.clone()),
        (None, None, None)
    );
    // One node's report alone reads the same as in the snapshot.
    assert_eq!(store.node_report(placed.id).await.unwrap(), p.workload);
    assert_eq!(store.node_report(neighbour.id).await.unwrap(), None);
    assert_eq!(
        store.node_report(loose.id).await.unwrap(),
        None,
        "runs nowhere"
    );
    // One node's snapshot reads the same as in the whole snapshot, whatever
    // its state; an unknown node has none.
    assert_eq!(
        store.node_snapshot(placed.id).await.unwrap().as_ref(),
        Some(p)
    );
    assert_eq!(
        store.node_snapshot(loose.id).await.unwrap().as_ref(),
        Some(l)
    );
    let f = store.node_snapshot(failed.id).await.unwrap().unwrap();
    assert_eq!(f.node.state, NodeState::Failed);
    assert_eq!(
        store
            .node_snapshot(NodeId::from_uuid(uuid::Uuid::from_u128(9)))
            .await
            .unwrap(),
        None
    );
}

async fn status_page_lists_only_what_an_organization_made_public(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let shown = create_node(store, &acme, "shown").await;
    let hidden = create_node(store, &acme, "hidden").await;
    assert!(store.public_nodes().await.unwrap().is_empty());

    store
        .set_node_public(acme.id, shown.id, true, T0.plus_secs(1))
        .await
        .unwrap();
    // Showing twice keeps the first time.
    store
        .set_node_public(acme.id, shown.id, true, T0.plus_secs(9))
        .await
        .unwrap();
    let public = store.public_nodes().await.unwrap();
    assert_eq!(public.len(), 1);
    assert_eq!(
        (
            public[0].node_id,
            public[0].org_id,
            public[0].made_public_at
        ),
        (shown.id, acme.id, T0.plus_secs(1))
    );
    assert!(store.is_node_public(shown.id).await.unwrap());
    assert!(!store.is_node_public(hidden.id).await.unwrap());

    // Another organization can neither show nor hide acme's node.
    for public in [true, false] {
        let err = store
            .set_node_public(globex.id, shown.id, public, T0.plus_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound("node")), "{err:?}");
    }
    assert!(store.is_node_public(shown.id).await.unwrap());

    store
        .set_node_public(acme.id, shown.id, false, T0.plus_secs(3))
        .await
        .unwrap();
    assert!(!store.is_node_public(shown.id).await.unwrap());
    assert!(store.public_nodes().await.unwrap().is_empty());
}

// -- 5. incidents --

async fn incidents_open_once_per_key_until_resolved(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = healthy_node(store, &acme, "alpha").await;
    let lease = leader(store).await;
    let subject = n.id.to_string();

    let first = incident(&acme, IncidentCategory::NodeDown, &subject, Some(n.id), T0);
    assert_eq!(open(store, &lease, &first).await, first, "stored as given");
    assert_eq!(
        subjects_of(store, &first.id.to_string()).await,
        ["incident.opened"]
    );
    let opened = outbox(store)
        .await
        .into_iter()
        .find(|e| e.subject == "incident.opened")
        .unwrap();
    assert_eq!(opened.aggregate_type, "incident");
    assert_eq!(opened.payload["node_id"], subject);
    assert_eq!(opened.payload["category"], "node_down");

    // The next cycle reports the same condition: nothing new.
    let again = incident(
        &acme,
        IncidentCategory::NodeDown,
        &subject,
        Some(n.id),
        T0.plus_secs(30),
    );
    let report = apply(
        store,
        &lease,
        &[HealthWrite::OpenIncident(again.clone())],
        T0.plus_secs(30),
    )
    .await;
    assert_eq!(report.incidents_opened, 0);
    assert_eq!(store.get_incident(None, again.id).await.unwrap(), None);
    assert!(subjects_of(store, &again.id.to_string()).await.is_empty());
    assert_eq!(
        outbox(store)
            .await
            .iter()
            .filter(|e| e.subject == "incident.opened")
            .count(),
        1
    );
    assert_eq!(
        store.unresolved_incidents().await.unwrap(),
        vec![first.clone()]
    );

    // A change that names the wrong state does nothing.
    let report = update(
        store,
        &lease,
        first.id,
        IncidentState::Acknowledged,
        IncidentChange {
            state: Some(IncidentState::Resolved),
            ..Default::default()
        },
        T0.plus_secs(40),
    )
    .await;
    assert_eq!(report.incidents_updated, 0);
    assert_eq!(get_incident(store, first.id).await, first);

    let report = update(
        store,
        &lease,
        first.id,
        IncidentState::Open,
        IncidentChange {
            state: Some(IncidentState::Resolved),
            clear_cycles: Some(3),
            ..Default::default()
        },
        T0.plus_secs(120),
    )
    .await;
    assert_eq!(report.incidents_updated, 1);
    let resolved = get_incident(store, first.id).await;
    assert_eq!(resolved.state, IncidentState::Resolved);
    assert_eq!(resolved.resolved_at, Some(T0.plus_secs(120)));
    assert_eq!(resolved.clear_cycles, 3);
    assert_eq!(resolved.updated_at, T0.plus_secs(120));
    assert!(store.unresolved_incidents().await.unwrap().is_empty());

    // A recurrence after resolution is a new incident.
    let recurrence = incident(
        &acme,
        IncidentCategory::NodeDown,
        &subject,
        Some(n.id),
        T0.plus_secs(300),
    );
    assert_eq!(open(store, &lease, &recurrence).await, recurrence);
    assert_eq!(
        store.unresolved_incidents().await.unwrap(),
        vec![recurrence.clone()]
    );
    assert_eq!(
        subjects_of(store, &first.id.to_string()).await,
        ["incident.opened", "incident.resolved"]
    );
    assert_eq!(
        subjects_of(store, &recurrence.id.to_string()).await,
        ["incident.opened"]
    );
}

async fn incident_escalation_mute_unmute_and_resolve_events(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = healthy_node(store, &acme, "alpha").await;
    let lease = leader(store).await;
    let inc = open(
        store,
        &lease,
        &incident(
            &acme,
            IncidentCategory::NodeLagging,
            &n.id.to_string(),
            Some(n.id),
            T0,
        ),
    )
    .await;
    let root = open(
        store,
        &lease,
        &incident(
            &acme,
            IncidentCategory::ChainHalted,
            &format!("{}:{CHAIN}", acme.id),
            None,
            T0.plus_secs(1),
        ),
    )
    .await;
    let at = |min: i64| T0.plus_millis(min * MIN);

    let report = update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            escalation_level: Some(1),
            ..Default::default()
        },
        at(15),
    )
    .await;
    assert_eq!(report.incidents_updated, 1);
    let escalated = get_incident(store, inc.id).await;
    assert_eq!(escalated.escalation_level, 1);
    assert_eq!(escalated.escalated_at, Some(at(15)));
    assert_eq!(escalated.state, IncidentState::Open);
    let event = outbox(store)
        .await
        .into_iter()
        .find(|e| e.subject == "incident.escalated")
        .unwrap();
    assert_eq!(event.aggregate_id, inc.id.to_string());
    assert_eq!(event.payload["escalation_level"], 1);

    // The same level again is no escalation.
    update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            escalation_level: Some(1),
            ..Default::default()
        },
        at(16),
    )
    .await;
    assert_eq!(get_incident(store, inc.id).await.escalated_at, Some(at(15)));

    // Muted under the chain halt.
    update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            state: Some(IncidentState::Muted),
            root_id: Some(Some(root.id)),
            ..Default::default()
        },
        at(17),
    )
    .await;
    let muted = get_incident(store, inc.id).await;
    assert_eq!(muted.state, IncidentState::Muted);
    assert_eq!(muted.root_id, Some(root.id));
    // A muted incident does not notify, even when its level rises.
    update(
        store,
        &lease,
        inc.id,
        IncidentState::Muted,
        IncidentChange {
            escalation_level: Some(2),
            ..Default::default()
        },
        at(30),
    )
    .await;

    update(
        store,
        &lease,
        inc.id,
        IncidentState::Muted,
        IncidentChange {
            state: Some(IncidentState::Open),
            root_id: Some(None),
            ..Default::default()
        },
        at(40),
    )
    .await;
    let unmuted = get_incident(store, inc.id).await;
    assert_eq!(unmuted.state, IncidentState::Open);
    assert_eq!(unmuted.root_id, None);

    update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            state: Some(IncidentState::Resolved),
            detail: Some("caught up".into()),
            ..Default::default()
        },
        at(50),
    )
    .await;
    let resolved = get_incident(store, inc.id).await;
    assert_eq!(resolved.state, IncidentState::Resolved);
    assert_eq!(resolved.resolved_at, Some(at(50)));
    assert_eq!(resolved.detail, "caught up");

    assert_eq!(
        subjects_of(store, &inc.id.to_string()).await,
        [
            "incident.opened",
            "incident.escalated",
            "incident.muted",
            "incident.unmuted",
            "incident.resolved",
        ]
    );
    assert_eq!(
        subjects_of(store, &root.id.to_string()).await,
        ["incident.opened"]
    );
    // Resolved is final: a change expecting it open does nothing.
    let report = update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            escalation_level: Some(3),
            ..Default::default()
        },
        at(60),
    )
    .await;
    assert_eq!(report.incidents_updated, 0);
    assert_eq!(get_incident(store, inc.id).await, resolved);
}

async fn acknowledge_incident_is_scoped_and_idempotent(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let n = healthy_node(store, &acme, "alpha").await;
    let lease = leader(store).await;
    let inc = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "a", Some(n.id), T0),
    )
    .await;

    assert!(matches!(
        store
            .acknowledge_incident(globex.id, inc.id, "mallory", T0.plus_secs(1))
            .await,
        Err(StoreError::NotFound("incident"))
    ));
    assert!(matches!(
        store
            .acknowledge_incident(
                acme.id,
                IncidentId::from_uuid(Uuid::now_v7()),
                "alice",
                T0.plus_secs(1)
            )
            .await,
        Err(StoreError::NotFound("incident"))
    ));
    assert_eq!(get_incident(store, inc.id).await, inc, "untouched");
    assert_eq!(
        store.get_incident(Some(globex.id), inc.id).await.unwrap(),
        None
    );

    let acked = store
        .acknowledge_incident(acme.id, inc.id, "alice", T0.plus_secs(300))
        .await
        .unwrap();
    assert_eq!(acked.state, IncidentState::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(acked.acknowledged_at, Some(T0.plus_secs(300)));
    assert_eq!(
        store.get_incident(Some(acme.id), inc.id).await.unwrap(),
        Some(acked.clone())
    );
    let twice = store
        .acknowledge_incident(acme.id, inc.id, "bob", T0.plus_secs(360))
        .await
        .unwrap();
    assert_eq!(twice, acked, "the first acknowledgement stands");
    assert_eq!(get_incident(store, inc.id).await, acked);
    assert_eq!(
        subjects_of(store, &inc.id.to_string()).await,
        ["incident.opened", "incident.acknowledged"]
    );

    // Escalation (expecting it open) no longer applies.
    let report = update(
        store,
        &lease,
        inc.id,
        IncidentState::Open,
        IncidentChange {
            escalation_level: Some(1),
            ..Default::default()
        },
        T0.plus_secs(900),
    )
    .await;
    assert_eq!(report.incidents_updated, 0);

    // A muted incident stays muted but remembers who took it.
    let other = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::AppCritical, "b", Some(n.id), T0),
    )
    .await;
    update(
        store,
        &lease,
        other.id,
        IncidentState::Open,
        IncidentChange {
            state: Some(IncidentState::Muted),
            ..Default::default()
        },
        T0.plus_secs(10),
    )
    .await;
    let acked_muted = store
        .acknowledge_incident(acme.id, other.id, "carol", T0.plus_secs(20))
        .await
        .unwrap();
    assert_eq!(acked_muted.state, IncidentState::Muted);
    assert_eq!(acked_muted.acknowledged_by.as_deref(), Some("carol"));
    assert_eq!(get_incident(store, other.id).await, acked_muted);
}

async fn list_incidents_filters_and_never_crosses_orgs(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let n1 = healthy_node(store, &acme, "one").await;
    let n2 = healthy_node(store, &acme, "two").await;
    let g = healthy_node(store, &globex, "one").await;
    let lease = leader(store).await;
    let at = |min: i64| T0.plus_millis(min * MIN);

    let a1 = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "n1", Some(n1.id), at(0)),
    )
    .await;
    let a2 = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "n2", Some(n2.id), at(1)),
    )
    .await;
    let a2 = store
        .acknowledge_incident(acme.id, a2.id, "alice", at(2))
        .await
        .unwrap();
    let a3 = open(
        store,
        &lease,
        &incident(
            &acme,
            IncidentCategory::NodeLagging,
            "n1",
            Some(n1.id),
            at(3),
        ),
    )
    .await;
    update(
        store,
        &lease,
        a3.id,
        IncidentState::Open,
        IncidentChange {
            state: Some(IncidentState::Resolved),
            ..Default::default()
        },
        at(4),
    )
    .await;
    let a3 = get_incident(store, a3.id).await;
    let g1 = open(
        store,
        &lease,
        &incident(&globex, IncidentCategory::NodeDown, "g", Some(g.id), at(5)),
    )
    .await;

    let list = |org: OrgId, filter: IncidentFilter| async move {
        store
            .list_incidents(org, &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(acme.id, IncidentFilter::default()).await,
        [a3.id, a2.id, a1.id],
        "newest first, only acme's"
    );
    assert_eq!(
        store
            .list_incidents(acme.id, &IncidentFilter::default())
            .await
            .unwrap(),
        vec![a3.clone(), a2.clone(), a1.clone()]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                active: true,
                ..Default::default()
            }
        )
        .await,
        [a2.id, a1.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                state: Some(IncidentState::Acknowledged),
                ..Default::default()
            }
        )
        .await,
        [a2.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                state: Some(IncidentState::Resolved),
                ..Default::default()
            }
        )
        .await,
        [a3.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                node_id: Some(n1.id),
                ..Default::default()
            }
        )
        .await,
        [a3.id, a1.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                node_id: Some(n1.id),
                active: true,
                ..Default::default()
            }
        )
        .await,
        [a1.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                limit: 1,
                ..Default::default()
            }
        )
        .await,
        [a3.id]
    );
    assert_eq!(
        list(
            acme.id,
            IncidentFilter {
                node_id: Some(g.id),
                ..Default::default()
            }
        )
        .await,
        Vec::<IncidentId>::new()
    );
    assert_eq!(list(globex.id, IncidentFilter::default()).await, [g1.id]);
    assert_eq!(
        list(
            globex.id,
            IncidentFilter {
                node_id: Some(n1.id),
                ..Default::default()
            }
        )
        .await,
        Vec::<IncidentId>::new()
    );
    assert_eq!(
        list(
            globex.id,
            IncidentFilter {
                state: Some(IncidentState::Acknowledged),
                ..Default::default()
            }
        )
        .await,
        Vec::<IncidentId>::new()
    );
}

// -- 6. notifications --

async fn channels_create_list_get_delete(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let ops = create_channel(store, &acme, "ops").await;
    let pager = create_channel(store, &acme, "pager").await;
    let theirs = create_channel(store, &globex, "ops").await;

    assert!(matches!(
        store.create_channel(&channel(&acme, "ops")).await,
        Err(StoreError::Conflict(f)) if f == "name"
    ));
    let mut orphan = channel(&acme, "orphan");
    orphan.org_id = OrgId::from_uuid(Uuid::now_v7());
    assert!(matches!(
        store.create_channel(&orphan).await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(
        store.list_channels(acme.id).await.unwrap(),
        vec![ops.clone(), pager.clone()]
    );
    assert_eq!(
        store.list_channels(globex.id).await.unwrap(),
        vec![theirs.clone()]
    );
    assert_eq!(
        store.get_channel(acme.id, ops.id).await.unwrap(),
        Some(ops.clone())
    );
    assert_eq!(store.get_channel(globex.id, ops.id).await.unwrap(), None);

    assert!(
        !store
            .delete_channel(globex.id, ops.id, T0.plus_secs(1))
            .await
            .unwrap(),
        "another org cannot delete it"
    );
    assert_eq!(
        store.get_channel(acme.id, ops.id).await.unwrap(),
        Some(ops.clone())
    );

    assert!(store
        .delete_channel(acme.id, ops.id, T0.plus_secs(2))
        .await
        .unwrap());
    assert_eq!(store.list_channels(acme.id).await.unwrap(), vec![pager]);
    assert_eq!(store.get_channel(acme.id, ops.id).await.unwrap(), None);
    assert!(!store
        .delete_channel(acme.id, ops.id, T0.plus_secs(3))
        .await
        .unwrap());
    assert_eq!(
        store.list_channels(globex.id).await.unwrap(),
        vec![theirs],
        "the other org's channel of the same name stays"
    );
    // The deleted channel's name is free again.
    create_channel(store, &acme, "ops").await;
}

async fn enqueue_deliveries_once_per_enabled_channel(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let c1 = create_channel(store, &acme, "ops").await;
    let c2 = create_channel(store, &acme, "pager").await;
    let mut off = channel(&acme, "off");
    off.enabled = false;
    store.create_channel(&off).await.unwrap();
    create_channel(store, &globex, "theirs").await;
    let lease = leader(store).await;
    let inc = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "x", None, T0),
    )
    .await;
    let at = T0.plus_secs(5);

    assert_eq!(
        store
            .enqueue_deliveries(inc.id, "incident.opened", 0, at)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .enqueue_deliveries(inc.id, "incident.opened", 0, at.plus_secs(1))
            .await
            .unwrap(),
        0,
        "a bus redelivery adds nothing"
    );
    assert_eq!(
        store
            .enqueue_deliveries(inc.id, "incident.escalated", 1, at.plus_secs(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .enqueue_deliveries(
                IncidentId::from_uuid(Uuid::now_v7()),
                "incident.opened",
                0,
                at
            )
            .await
            .unwrap(),
        0
    );

    let list = deliveries(store, &acme, inc.id).await;
    assert_eq!(list.len(), 4);
    let keys: BTreeSet<(String, String, i64)> = list
        .iter()
        .map(|d| {
            (
                d.channel_id.to_string(),
                d.event.clone(),
                d.escalation_level,
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, i64)> = [
        (c1.id, "incident.opened", 0),
        (c2.id, "incident.opened", 0),
        (c1.id, "incident.escalated", 1),
        (c2.id, "incident.escalated", 1),
    ]
    .into_iter()
    .map(|(c, e, l)| (c.to_string(), e.to_owned(), l))
    .collect();
    assert_eq!(keys, expected);
    for d in &list {
        assert_eq!(d.incident_id, inc.id);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, d.created_at, "due at once");
        assert_eq!(d.last_error, None);
        assert_eq!(d.delivered_at, None);
    }
    assert_eq!(
        list.iter().map(|d| d.created_at).collect::<Vec<_>>(),
        [at.plus_secs(2), at.plus_secs(2), at, at],
        "newest first"
    );
    assert!(store
        .list_deliveries(globex.id, None, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_deliveries(globex.id, Some(inc.id), 100)
        .await
        .unwrap()
        .is_empty());
}

async fn deleted_channel_fails_its_pending_deliveries(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let c1 = create_channel(store, &acme, "ops").await;
    let c2 = create_channel(store, &acme, "pager").await;
    let lease = leader(store).await;
    let inc = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "x", None, T0),
    )
    .await;
    let at = T0.plus_secs(5);
    store
        .enqueue_deliveries(inc.id, "incident.opened", 0, at)
        .await
        .unwrap();
    let of =
        |list: &[Delivery], c: ChannelId| list.iter().find(|d| d.channel_id == c).unwrap().clone();
    let d2 = of(&deliveries(store, &acme, inc.id).await, c2.id);

    // Another org naming the channel neither deletes it nor touches its
    // deliveries.
    assert!(!store.delete_channel(globex.id, c2.id, at).await.unwrap());
    assert_eq!(delivery(store, &acme, d2.id).await, d2);

    assert!(store.delete_channel(acme.id, c1.id, at).await.unwrap());
    let list = deliveries(store, &acme, inc.id).await;
    let d1 = of(&list, c1.id);
    assert_eq!(d1.state, DeliveryState::Failed);
    assert_eq!(d1.last_error.as_deref(), Some("channel deleted"));
    assert_eq!(of(&list, c2.id), d2, "other channels are untouched");

    let due = store.claim_deliveries(10, 30_000, at).await.unwrap();
    assert_eq!(
        due.iter().map(|d| d.delivery.id).collect::<Vec<_>>(),
        [d2.id]
    );
    // Its channel goes while the send is in flight: the sender's outcome
    // must not bring the delivery back.
    assert!(store
        .delete_channel(acme.id, c2.id, at.plus_secs(1))
        .await
        .unwrap());
    store
        .finish_delivery(
            d2.id,
            &AttemptOutcome::Retry {
                next_attempt_at: at.plus_secs(60),
                error: "timeout".into(),
            },
            at.plus_secs(2),
        )
        .await
        .unwrap();
    let d2_now = delivery(store, &acme, d2.id).await;
    assert_eq!(d2_now.state, DeliveryState::Failed);
    assert_eq!(d2_now.last_error.as_deref(), Some("channel deleted"));
    assert!(claimed_ids(store, at.plus_secs(3600)).await.is_empty());
}

async fn claim_lease_retry_and_delivery(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let c1 = create_channel(store, &acme, "ops").await;
    let c2 = create_channel(store, &acme, "pager").await;
    let c3 = create_channel(store, &acme, "mail").await;
    let lease = leader(store).await;
    let inc = open(
        store,
        &lease,
        &incident(&acme, IncidentCategory::NodeDown, "x", None, T0),
    )
    .await;
    let t = T0.plus_secs(100);
    store
        .enqueue_deliveries(inc.id, "incident.opened", 0, t)
        .await
        .unwrap();
    let list = deliveries(store, &acme, inc.id).await;
    let of = |c: ChannelId| list.iter().find(|d| d.channel_id == c).unwrap().clone();
    let (d1, d2, d3) = (of(c1.id), of(c2.id), of(c3.id));

    assert!(
        store
            .claim_deliveries(10, 30_000, t.plus_millis(-1))
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let first = store.claim_deliveries(2, 30_000, t).await.unwrap();
    assert_eq!(first.len(), 2, "at most `limit`");
    let second = store.claim_deliveries(2, 30_000, t).await.unwrap();
    assert_eq!(second.len(), 1);
    let all: BTreeSet<String> = first
        .iter()
        .chain(&second)
        .map(|d| d.delivery.id.to_string())
        .collect();
    assert_eq!(
        all,
        [d1.id, d2.id, d3.id]
            .iter()
            .map(ToString::to_string)
            .collect()
    );
    let due = first
        .iter()
        .chain(&second)
        .find(|d| d.delivery.id == d1.id)
        .unwrap();
    assert_eq!(due.delivery, d1);
    assert_eq!(due.channel, c1, "with its channel, secrets included");
    assert_eq!(due.incident, inc);

    assert!(
        claimed_ids(store, t.plus_millis(29_999)).await.is_empty(),
        "claimed deliveries are not claimable again during the claim"
    );
    let reclaimed: BTreeSet<String> = claimed_ids(store, t.plus_millis(30_000))
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(reclaimed, all, "an abandoned claim lapses");
    // From here `t` is the reclaim time: all three are claimed until t + 30 s.
    let t = t.plus_secs(30);

    // d2: given up.
    store
        .finish_delivery(
            d2.id,
            &AttemptOutcome::Failed {
                error: "HTTP 410".into(),
            },
            t.plus_secs(1),
        )
        .await
        .unwrap();
    let failed = delivery(store, &acme, d2.id).await;
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error.as_deref(), Some("HTTP 410"));
    assert_eq!(
        store.delivery_attempts(d2.id).await.unwrap(),
        vec![DeliveryAttempt {
            attempt: 1,
            at: t.plus_secs(1),
            ok: false,
            error: Some("HTTP 410".into()),
        }]
    );

    // d1: a retry, then success.
    store
        .finish_delivery(
            d1.id,
            &AttemptOutcome::Retry {
                next_attempt_at: t.plus_secs(90),
                error: "HTTP 503".into(),
            },
            t.plus_secs(2),
        )
        .await
        .unwrap();
    let retried = delivery(store, &acme, d1.id).await;
    assert_eq!(retried.state, DeliveryState::Pending);
    assert_eq!(retried.attempts, 1);
    assert_eq!(retried.next_attempt_at, t.plus_secs(90));
    assert!(retried.next_attempt_at > d1.next_attempt_at);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(retried.delivered_at, None);

    // d3's claim lapses at t + 30 s; take it for an hour.
    assert!(claimed_ids(store, t.plus_secs(29)).await.is_empty());
    let d3_claim = store
        .claim_deliveries(100, 3_600_000, t.plus_secs(30))
        .await
        .unwrap();
    assert_eq!(
        d3_claim.iter().map(|d| d.delivery.id).collect::<Vec<_>>(),
        [d3.id],
        "neither the failed nor the retried delivery is due"
    );
    assert!(
        claimed_ids(store, t.plus_secs(89)).await.is_empty(),
        "a retry waits for its next attempt"
    );
    assert_eq!(claimed_ids(store, t.plus_secs(90)).await, [d1.id]);
    store
        .finish_delivery(d1.id, &AttemptOutcome::Delivered, t.plus_secs(91))
        .await
        .unwrap();
    let delivered = delivery(store, &acme, d1.id).await;
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(delivered.attempts, 2);
    assert_eq!(delivered.delivered_at, Some(t.plus_secs(91)));
    assert_eq!(delivered.last_error, None);
    assert_eq!(
        store.delivery_attempts(d1.id).await.unwrap(),
        vec![
            DeliveryAttempt {
                attempt: 1,
                at: t.plus_secs(2),
                ok: false,
                error: Some("HTTP 503".into()),
            },
            DeliveryAttempt {
                attempt: 2,
                at: t.plus_secs(91),
                ok: true,
                error: None,
            },
        ]
    );

    // Only d3 (its claim lapsed, never finished) is left to send.
    assert_eq!(claimed_ids(store, t.plus_secs(7200)).await, [d3.id]);
    assert!(store.delivery_attempts(d3.id).await.unwrap().is_empty());
    assert!(matches!(
        store
            .finish_delivery(
                DeliveryId::from_uuid(Uuid::now_v7()),
                &AttemptOutcome::Delivered,
                t
            )
            .await,
        Err(StoreError::NotFound("delivery"))
    ));

    // A late outcome from a sender whose claim had lapsed (another sender
    // delivered meanwhile) must not undo the delivery.
    store
        .finish_delivery(
            d1.id,
            &AttemptOutcome::Retry {
                next_attempt_at: t.plus_secs(150),
                error: "timeout".into(),
            },
            t.plus_secs(92),
        )
        .await
        .unwrap();
    assert_eq!(delivery(store, &acme, d1.id).await, delivered);
    assert_eq!(store.delivery_attempts(d1.id).await.unwrap().len(), 2);
}

async fn concurrent_claims_never_share_a_delivery(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    for i in 0..8 {
        create_channel(store, &acme, &format!("ch-{i}")).await;
    }
    let lease = leader(store).await;
    for k in 0..6 {
        let inc = open(
            store,
            &lease,
            &incident(
                &acme,
                IncidentCategory::NodeDown,
                &format!("n{k}"),
                None,
                T0,
            ),
        )
        .await;
        assert_eq!(
            store
                .enqueue_deliveries(inc.id, "incident.opened", 0, T0)
                .await
                .unwrap(),
            8
        );
    }
    let all: BTreeSet<String> = store
        .list_deliveries(acme.id, None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(all.len(), 48);

    let senders = 4;
    let barrier = Arc::new(tokio::sync::Barrier::new(senders));
    let mut tasks = vec![];
    for _ in 0..senders {
        let s = db.reopen().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = vec![];
            loop {
                let got = s
                    .claim_deliveries(3, 60_000, T0.plus_secs(1))
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|d| d.delivery.id.to_string()));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut claimed = vec![];
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "no delivery claimed twice");
    assert_eq!(distinct, all, "every delivery claimed once");
}

// -- 7. uptime --

async fn node_state_log_reads_start_state_and_changes(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = create_node(store, &acme, "alpha").await;
    let other = create_node(store, &acme, "beta").await;
    let at = |min: i64| T0.plus_millis(min * MIN);
    store
        .update_node(n.id, 0, &to_state(NodeState::Syncing, "syncing"), at(10))
        .await
        .unwrap();
    store
        .update_node(other.id, 0, &to_state(NodeState::Failed, "nope"), at(12))
        .await
        .unwrap();
    store
        .update_node(n.id, 1, &to_state(NodeState::Healthy, "synced"), at(20))
        .await
        .unwrap();
    // Not a state change: no entry in the log.
    store
        .update_node(
            n.id,
            2,
            &NodeChange {
                head_height: Some(Some(9)),
                message: "head".into(),
                ..Default::default()
            },
            at(25),
        )
        .await
        .unwrap();
    let lease = leader(store).await;
    apply(
        store,
        &lease,
        &[HealthWrite::Node {
            node_id: n.id,
            expected_version: 3,
            change: Some(to_state(NodeState::Down, "missed")),
            health: NodeHealth::default(),
        }],
        at(70),
    )
    .await;

    assert_eq!(
        store.node_state_log(n.id, at(-60), at(15)).await.unwrap(),
        StateLog {
            state_at_start: None,
            changes: vec![
                (at(0).millis(), NodeState::Provisioning),
                (at(10).millis(), NodeState::Syncing)
            ],
        },
        "before creation there is no state"
    );
    assert_eq!(
        store.node_state_log(n.id, at(15), at(75)).await.unwrap(),
        StateLog {
            state_at_start: Some(NodeState::Syncing),
            changes: vec![
                (at(20).millis(), NodeState::Healthy),
                (at(70).millis(), NodeState::Down)
            ],
        }
    );
    assert_eq!(
        store.node_state_log(n.id, at(20), at(70)).await.unwrap(),
        StateLog {
            state_at_start: Some(NodeState::Healthy),
            changes: vec![],
        },
        "a change at the start is the start state; the end is exclusive"
    );
    assert_eq!(
        store.node_state_log(n.id, at(80), at(140)).await.unwrap(),
        StateLog {
            state_at_start: Some(NodeState::Down),
            changes: vec![],
        }
    );
}

async fn uptime_buckets_are_fenced_upserted_and_ranged(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = create_node(store, &acme, "alpha").await;
    let other = create_node(store, &acme, "beta").await;
    let fresh = create_node(store, &acme, "gamma").await;
    let gone = create_node(store, &acme, "delta").await;
    store
        .update_node(gone.id, 0, &to_state(NodeState::Failed, "nope"), T0)
        .await
        .unwrap();
    // The store fences these writes against its own clock.
    let a = store
        .acquire_leader_lease("uptime", "a", 10 * MIN, wall_now())
        .await
        .unwrap()
        .unwrap();
    let h0 = hour_floor(T0.millis());
    let bucket = |hour: i64, up: i64, syncing: i64, down: i64, maintenance: i64| UptimeBucket {
        hour_start_ms: h0 + hour * HOUR_MS,
        up_ms: up,
        syncing_ms: syncing,
        down_ms: down,
        maintenance_ms: maintenance,
    };
    let b0 = bucket(0, HOUR_MS, 0, 0, 0);
    let b1 = bucket(1, 3_000_000, 600_000, 0, 0);
    let b2 = bucket(2, 0, 0, HOUR_MS, 0);
    store
        .put_uptime_buckets(&a, n.id, &[b0, b1, b2])
        .await
        .unwrap();
    store
        .put_uptime_buckets(&a, other.id, &[bucket(0, 1, 2, 3, 4)])
        .await
        .unwrap();
    // The hour is recomputed: the second write wins.
    let b1_again = bucket(1, 1_000_000, 1_000_000, 1_000_000, 600_000);
    store
        .put_uptime_buckets(&a, n.id, &[b1_again])
        .await
        .unwrap();

    assert_eq!(
        store
            .uptime_buckets(n.id, h0, h0 + 3 * HOUR_MS)
            .await
            .unwrap(),
        vec![b0, b1_again, b2]
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM node_uptime_hourly WHERE node_id = '{}'",
            n.id
        ))
        .await,
        Some(3),
        "one row per hour"
    );
    assert_eq!(
        store
            .uptime_buckets(n.id, h0 + HOUR_MS, h0 + 2 * HOUR_MS)
            .await
            .unwrap(),
        vec![b1_again],
        "from inclusive, to exclusive"
    );
    assert!(store
        .uptime_buckets(n.id, h0 + 3 * HOUR_MS, h0 + 10 * HOUR_MS)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .uptime_buckets(other.id, h0 - HOUR_MS, h0 + 10 * HOUR_MS)
            .await
            .unwrap(),
        vec![bucket(0, 1, 2, 3, 4)]
    );

    let mut expected = vec![
        UptimeCursor {
            node_id: n.id,
            created_at: T0,
            last_hour: Some(h0 + 2 * HOUR_MS),
        },
        UptimeCursor {
            node_id: other.id,
            created_at: T0,
            last_hour: Some(h0),
        },
        UptimeCursor {
            node_id: fresh.id,
            created_at: T0,
            last_hour: None,
        },
    ];
    expected.sort_by_key(|c| c.node_id.to_string());
    assert_eq!(
        store.uptime_cursors().await.unwrap(),
        expected,
        "finished nodes have no cursor"
    );

    // Fenced once released (or taken over): nothing is written.
    store.release_leader_lease(&a).await.unwrap();
    let late = bucket(3, 5, 5, 5, 5);
    assert!(matches!(
        store.put_uptime_buckets(&a, n.id, &[bucket(0, 0, 0, 0, 1), late]).await,
        Err(StoreError::Fenced(name)) if name == "uptime"
    ));
    let b = store
        .acquire_leader_lease("uptime", "b", 10 * MIN, wall_now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.generation, 2);
    assert!(matches!(
        store.put_uptime_buckets(&a, n.id, &[late]).await,
        Err(StoreError::Fenced(_))
    ));
    assert_eq!(
        store
            .uptime_buckets(n.id, h0, h0 + 10 * HOUR_MS)
            .await
            .unwrap(),
        vec![b0, b1_again, b2]
    );
    store.put_uptime_buckets(&b, n.id, &[late]).await.unwrap();
    assert_eq!(
        store
            .uptime_buckets(n.id, h0 + 3 * HOUR_MS, h0 + 4 * HOUR_MS)
            .await
            .unwrap(),
        vec![late]
    );
}

// -- 8. cleanup --

async fn expired_unused_enrollment_tokens_are_deleted(db: &Harness) {
    let store = db.migrated().await;
    let host = Host {
        id: HostId::from_uuid(Uuid::now_v7()),
        org_id: None,
        provider: "local".into(),
        region: "local".into(),
        state: HostState::Requested,
        address: None,
        provider_ref: json!({}),
        hostname: None,
        agent_version: None,
        last_seen_at: None,
        connected_at: None,
        created_at: T0,
        updated_at: T0,
    };
    store.create_host(&host).await.unwrap();
    let token = |hash: &str, expires_at: Timestamp| EnrollmentToken {
        token_hash: hash.into(),
        host_id: host.id,
        created_at: T0,
        expires_at,
        used_at: None,
        key_sha256: None,
    };
    store
        .insert_enrollment_token(&token("expired-unused", T0.plus_secs(60)))
        .await
        .unwrap();
    store
        .insert_enrollment_token(&token("expired-used", T0.plus_secs(60)))
        .await
        .unwrap();
    store
        .insert_enrollment_token(&token("live", T0.plus_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_enrollment_token("expired-used", T0.plus_secs(30))
            .await
            .unwrap(),
        Some(host.id)
    );

    assert_eq!(
        store
            .delete_expired_enrollment_tokens(T0.plus_secs(600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.find_enrollment_token("expired-unused").await.unwrap(),
        None
    );
    let used = store
        .find_enrollment_token("expired-used")
        .await
        .unwrap()
        .expect("a spent token is kept");
    assert_eq!(used.used_at, Some(T0.plus_secs(30)));
    assert!(store.find_enrollment_token("live").await.unwrap().is_some());
    assert_eq!(
        store
            .delete_expired_enrollment_tokens(T0.plus_secs(600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_expired_enrollment_tokens(T0.plus_secs(7200))
            .await
            .unwrap(),
        1
    );
    assert!(store.find_enrollment_token("live").await.unwrap().is_none());
    assert!(store
        .find_enrollment_token("expired-used")
        .await
        .unwrap()
        .is_some());
}

conformance!(
    lease_renew_expiry_takeover_and_release,
    apply_health_is_fenced_by_the_lease,
    apply_health_moves_node_with_history_outbox_and_counters,
    apply_health_skips_stale_nodes_and_applies_the_rest,
    health_snapshot_joins_host_and_workload_and_skips_finished_nodes,
    incidents_open_once_per_key_until_resolved,
    incident_escalation_mute_unmute_and_resolve_events,
    acknowledge_incident_is_scoped_and_idempotent,
    list_incidents_filters_and_never_crosses_orgs,
    channels_create_list_get_delete,
    enqueue_deliveries_once_per_enabled_channel,
    deleted_channel_fails_its_pending_deliveries,
    claim_lease_retry_and_delivery,
    concurrent_claims_never_share_a_delivery,
    node_state_log_reads_start_state_and_changes,
    uptime_buckets_are_fenced_upserted_and_ranged,
    expired_unused_enrollment_tokens_are_deleted,
    status_page_lists_only_what_an_organization_made_public,
);
