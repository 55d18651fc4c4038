#![allow(clippy::expect_used, clippy::unwrap_used)]

//! Edge store conformance: RPC keys (CRUD, outbox, prefix conflicts,
//! revocation, resync), exactly-once usage metering with hourly and daily
//! rollups, and the serving node list — the same bodies on SQLite and
//! PostgreSQL.

#[macro_use]
mod support;

use hood_domain::event::DomainEvent;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::rpc::{Granularity, KeyScope, RpcKey, UsageEvent, UsageStatus};
use hood_domain::{NodeId, OrgId, RpcKeyId, Timestamp};
use hood_store::edge::{ServingNode, UsageQuery, UsageRollup};
use hood_store::node::NodeChange;
use hood_store::{Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use support::Harness;
use uuid::Uuid;

/// 2023-11-14T22:13:20Z.
const T0: Timestamp = Timestamp(1_700_000_000_000);
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

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

fn key(org: &Organization, name: &str, prefix: &str, at: Timestamp) -> RpcKey {
    RpcKey {
        id: RpcKeyId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: name.into(),
        prefix: prefix.into(),
        secret_hash: format!("hash-of-{prefix}-never-published"),
        plan: "free".into(),
        scope: KeyScope {
            chains: vec!["ethereum".into()],
            denied_methods: vec!["debug_*".into()],
            ..KeyScope::default()
        },
        created_at: at,
        updated_at: at,
        revoked_at: None,
        version: 1,
    }
}

async fn create_key(
    store: &dyn Store,
    org: &Organization,
    name: &str,
    prefix: &str,
    at: Timestamp,
) -> RpcKey {
    let k = key(org, name, prefix, at);
    store.create_rpc_key(&k).await.unwrap();
    k
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

/// The outbox events about one key, oldest first.
async fn key_events(store: &dyn Store, id: RpcKeyId) -> Vec<DomainEvent> {
    outbox(store)
        .await
        .into_iter()
        .filter(|e| e.aggregate_id == id.to_string())
        .collect()
}

fn event(
    n: u32,
    org: &Organization,
    key: &RpcKey,
    chain: &str,
    method: &str,
    status: UsageStatus,
    at: Timestamp,
) -> UsageEvent {
    UsageEvent {
        request_id: format!("req-{n:08}"),
        org_id: org.id,
        key_id: key.id,
        chain: chain.into(),
        method: method.into(),
        compute_units: 10 + n % 7,
        status,
        http_status: if status == UsageStatus::Ok { 200 } else { 429 },
        latency_us: 1_000 + u64::from(n),
        at,
    }
}

fn query(org: &Organization, g: Granularity, from: i64, to: i64) -> UsageQuery {
    UsageQuery {
        org_id: org.id,
        key_id: None,
        chain: None,
        from: Timestamp(from),
        to: Timestamp(to),
        granularity: g,
    }
}

async fn rollups(store: &dyn Store, q: &UsageQuery) -> Vec<UsageRollup> {
    store.usage_rollups(q).await.unwrap()
}

/// Every rollup row of an org at a granularity.
async fn all_rollups(store: &dyn Store, org: &Organization, g: Granularity) -> Vec<UsageRollup> {
    rollups(store, &query(org, g, i64::MIN / 2, i64::MAX / 2)).await
}

/// Rollups as (bucket, key, chain, method) → (requests, cu, errors,
/// latency sum).
type Sums = BTreeMap<(i64, String, String, String), (i64, i64, i64, i64)>;

/// What the rollups must say about `events` (assumed stored exactly once).
fn expected_rollups(events: &[&UsageEvent], g: Granularity) -> Sums {
    let mut out = BTreeMap::new();
    for e in events {
        let s = out
            .entry((
                g.bucket_start(e.at.millis()),
                e.key_id.to_string(),
                e.chain.clone(),
                e.method.clone(),
            ))
            .or_insert((0, 0, 0, 0));
        s.0 += 1;
        s.1 += i64::from(e.compute_units);
        s.2 += i64::from(e.status.is_error());
        s.3 += i64::try_from(e.latency_us).unwrap();
    }
    out
}

fn as_map(rows: &[UsageRollup]) -> Sums {
    rows.iter()
        .map(|r| {
            (
                (
                    r.bucket_start.millis(),
                    r.key_id.to_string(),
                    r.chain.clone(),
                    r.method.clone(),
                ),
                (r.requests, r.compute_units, r.errors, r.latency_us_sum),
            )
        })
        .collect()
}

/// A node straight from creation to `state` (through the machine), with
/// `endpoint`.
async fn node(
    store: &dyn Store,
    org: &Organization,
    name: &str,
    chain: &str,
    path: &[NodeState],
    endpoint: Option<&str>,
) -> Node {
    let n = Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: name.into(),
        chain: chain.into(),
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
    let mut version = 0;
    let mut current = n.clone();
    for (i, state) in path.iter().enumerate() {
        let change = NodeChange {
            state: Some(*state),
            rpc_endpoint: (i == 0).then(|| endpoint.map(str::to_owned)),
            message: format!("to {}", state.as_str()),
            ..Default::default()
        };
        current = store
            .update_node(n.id, version, &change, T0.plus_secs(1 + i as i64))
            .await
            .unwrap();
        version = current.version;
    }
    current
}

// -- 1. keys --

async fn rpc_key_crud_with_outbox(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let first = create_key(store, &acme, "frontend", "0123456789ab", T0).await;
    let second = create_key(store, &acme, "backend", "0123456789ac", T0.plus_secs(1)).await;

    assert_eq!(
        store.get_rpc_key(acme.id, first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_rpc_key(globex.id, first.id).await.unwrap(),
        None,
        "other org"
    );
    assert_eq!(
        store
            .get_rpc_key(acme.id, RpcKeyId::from_uuid(Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.list_rpc_keys(acme.id).await.unwrap(),
        vec![second.clone(), first.clone()],
        "newest first"
    );
    assert!(store.list_rpc_keys(globex.id).await.unwrap().is_empty());
    assert_eq!(
        store.find_rpc_key_by_prefix("0123456789ab").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.find_rpc_key_by_prefix("ffffffffffff").await.unwrap(),
        None
    );

    // The created event names the key, never its hash.
    let events = key_events(store, first.id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, "edge.rpc_key.created");
    assert_eq!(events[0].aggregate_type, "rpc_key");
    assert_eq!(
        events[0].payload,
        serde_json::json!({
            "key_id": first.id.to_string(),
            "org_id": acme.id.to_string(),
            "prefix": "0123456789ab",
            "version": 1,
        })
    );
    for e in outbox(store).await {
        assert!(
            !e.payload.to_string().contains("hash-of-"),
            "hash published: {e:?}"
        );
    }

    // Update: name, plan and scope replaced; the rest of the input ignored.
    let mut change = first.clone();
    change.name = "frontend-v2".into();
    change.plan = "pro".into();
    change.scope = KeyScope {
        allowed_methods: vec!["eth_*".into()],
        ip_allow: vec!["10.0.0.0/8".into()],
        ..KeyScope::default()
    };
    change.prefix = "ignoredignor".into();
    change.secret_hash = "ignored".into();
    change.version = 99;
    let updated = store
        .update_rpc_key(&change, T0.plus_secs(10))
        .await
        .unwrap();
    assert_eq!(updated.name, "frontend-v2");
    assert_eq!(updated.plan, "pro");
    assert_eq!(updated.scope, change.scope);
    assert_eq!(updated.prefix, first.prefix);
    assert_eq!(updated.secret_hash, first.secret_hash);
    assert_eq!(updated.created_at, first.created_at);
    assert_eq!(updated.updated_at, T0.plus_secs(10));
    assert_eq!(updated.version, 2);
    assert_eq!(updated.revoked_at, None);
    assert_eq!(
        store.get_rpc_key(acme.id, first.id).await.unwrap(),
        Some(updated.clone())
    );
    let events = key_events(store, first.id).await;
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["edge.rpc_key.created", "edge.rpc_key.updated"]);
    assert_eq!(events[1].payload["version"], 2);
    assert_eq!(events[1].payload["prefix"], "0123456789ab");

    // Not this org's key, or no key at all: NotFound, nothing written.
    let mut foreign = updated.clone();
    foreign.org_id = globex.id;
    assert!(matches!(
        store.update_rpc_key(&foreign, T0.plus_secs(11)).await,
        Err(StoreError::NotFound("rpc key"))
    ));
    let mut ghost = updated.clone();
    ghost.id = RpcKeyId::from_uuid(Uuid::now_v7());
    assert!(matches!(
        store.update_rpc_key(&ghost, T0.plus_secs(11)).await,
        Err(StoreError::NotFound("rpc key"))
    ));
    assert_eq!(
        store.get_rpc_key(acme.id, first.id).await.unwrap(),
        Some(updated)
    );
    assert_eq!(key_events(store, first.id).await.len(), 2);
}

async fn rpc_key_prefix_conflict_and_unknown_org(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    create_key(store, &acme, "one", "aaaaaaaaaaaa", T0).await;
    let clash = key(&globex, "two", "aaaaaaaaaaaa", T0);
    match store.create_rpc_key(&clash).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "prefix"),
        other => panic!("expected a prefix conflict, got {other:?}"),
    }
    assert!(store
        .get_rpc_key(globex.id, clash.id)
        .await
        .unwrap()
        .is_none());
    assert!(
        key_events(store, clash.id).await.is_empty(),
        "no event for a refused key"
    );

    let orphan = key(
        &Organization {
            id: OrgId::from_uuid(Uuid::now_v7()),
            slug: "nobody".into(),
            name: "nobody".into(),
            created_at: T0,
        },
        "x",
        "bbbbbbbbbbbb",
        T0,
    );
    assert!(matches!(
        store.create_rpc_key(&orphan).await,
        Err(StoreError::NotFound("org"))
    ));
}

async fn revoke_twice_keeps_the_first_time(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let k = create_key(store, &acme, "k", "cccccccccccc", T0).await;

    assert!(
        !store
            .revoke_rpc_key(globex.id, k.id, T0.plus_secs(5))
            .await
            .unwrap(),
        "other org"
    );
    assert!(!store
        .revoke_rpc_key(
            acme.id,
            RpcKeyId::from_uuid(Uuid::now_v7()),
            T0.plus_secs(5)
        )
        .await
        .unwrap());
    assert_eq!(
        store
            .get_rpc_key(acme.id, k.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    assert!(store
        .revoke_rpc_key(acme.id, k.id, T0.plus_secs(5))
        .await
        .unwrap());
    let revoked = store.get_rpc_key(acme.id, k.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(T0.plus_secs(5)));
    assert_eq!(revoked.updated_at, T0.plus_secs(5));
    assert_eq!(revoked.version, 2);

    assert!(
        store
            .revoke_rpc_key(acme.id, k.id, T0.plus_secs(9))
            .await
            .unwrap(),
        "idempotent"
    );
    assert_eq!(
        store.get_rpc_key(acme.id, k.id).await.unwrap(),
        Some(revoked.clone())
    );
    let events = key_events(store, k.id).await;
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["edge.rpc_key.created", "edge.rpc_key.revoked"]);
    assert_eq!(events[1].payload["version"], 2);
    assert_eq!(events[1].payload["prefix"], "cccccccccccc");
    assert_eq!(events[1].payload["revoked_at"], T0.plus_secs(5).millis());

    // A revoked key cannot be changed, and still resolves by prefix.
    let mut change = revoked.clone();
    change.name = "renamed".into();
    match store.update_rpc_key(&change, T0.plus_secs(10)).await {
        Err(StoreError::Conflict(what)) => assert_eq!(what, "revoked rpc key"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_rpc_key(acme.id, k.id).await.unwrap(),
        Some(revoked.clone())
    );
    assert_eq!(
        store.find_rpc_key_by_prefix("cccccccccccc").await.unwrap(),
        Some(revoked)
    );
}

async fn keys_changed_since_is_the_resync_backstop(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let a = create_key(store, &acme, "a", "a00000000000", T0).await;
    let b = create_key(store, &acme, "b", "b00000000000", T0.plus_secs(10)).await;
    let c = create_key(store, &globex, "c", "c00000000000", T0.plus_secs(20)).await;
    let ids = |keys: Vec<RpcKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();

    assert_eq!(
        ids(store.rpc_keys_changed_since(T0).await.unwrap()),
        [a.id, b.id, c.id]
    );
    assert_eq!(
        ids(store
            .rpc_keys_changed_since(T0.plus_secs(10))
            .await
            .unwrap()),
        [b.id, c.id],
        "inclusive"
    );
    assert!(store
        .rpc_keys_changed_since(T0.plus_secs(21))
        .await
        .unwrap()
        .is_empty());

    // Changes and revocations move a key to the end, across orgs.
    store.update_rpc_key(&a, T0.plus_secs(30)).await.unwrap();
    assert!(store
        .revoke_rpc_key(acme.id, b.id, T0.plus_secs(40))
        .await
        .unwrap());
    let changed = store
        .rpc_keys_changed_since(T0.plus_secs(25))
        .await
        .unwrap();
    assert_eq!(ids(changed.clone()), [a.id, b.id]);
    assert_eq!(
        changed[1].revoked_at,
        Some(T0.plus_secs(40)),
        "revoked keys included"
    );

    // A replica with a slow clock never moves `updated_at` backwards.
    let late = store.update_rpc_key(&a, T0.plus_secs(1)).await.unwrap();
    assert_eq!(late.updated_at, T0.plus_secs(30));
    assert_eq!(late.version, 3);
    assert_eq!(
        ids(store
            .rpc_keys_changed_since(T0.plus_secs(30))
            .await
            .unwrap()),
        [a.id, b.id]
    );
}

// -- 2. usage --

async fn record_usage_is_idempotent(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let k = create_key(store, &acme, "k", "d00000000000", T0).await;
    let events: Vec<UsageEvent> = (0..40)
        .map(|n| {
            let status = if n % 5 == 0 {
                UsageStatus::RateLimited
            } else {
                UsageStatus::Ok
            };
            let method = ["eth_call", "eth_blockNumber"][n as usize % 2];
            event(
                n,
                &acme,
                &k,
                "ethereum",
                method,
                status,
                T0.plus_secs(i64::from(n)),
            )
        })
        .collect();

    assert_eq!(store.record_usage(&[]).await.unwrap(), 0);
    assert_eq!(store.record_usage(&events[..30]).await.unwrap(), 30);
    let hourly = all_rollups(store, &acme, Granularity::Hour).await;
    let daily = all_rollups(store, &acme, Granularity::Day).await;
    let first_30: Vec<&UsageEvent> = events[..30].iter().collect();
    assert_eq!(
        as_map(&hourly),
        expected_rollups(&first_30, Granularity::Hour)
    );
    assert_eq!(
        as_map(&daily),
        expected_rollups(&first_30, Granularity::Day)
    );

    // The same batch again (a bus redelivery): nothing new, nothing added.
    assert_eq!(store.record_usage(&events[..30]).await.unwrap(), 0);
    assert_eq!(all_rollups(store, &acme, Granularity::Hour).await, hourly);
    assert_eq!(all_rollups(store, &acme, Granularity::Day).await, daily);
    assert_eq!(store.count_usage_events(k.id).await.unwrap(), 30);

    // Overlapping batch, with a duplicate inside it: each id counts once.
    let mut overlap: Vec<UsageEvent> = events[20..40].to_vec();
    overlap.push(events[35].clone());
    let mut twin = events[36].clone();
    twin.compute_units = 9_999; // same id, different body: the first wins
    overlap.insert(0, twin);
    assert_eq!(store.record_usage(&overlap).await.unwrap(), 10);
    assert_eq!(store.count_usage_events(k.id).await.unwrap(), 40);
    // Event 36 was stored with the twin's body (first in its batch).
    let twin = &overlap[0];
    let stored: Vec<&UsageEvent> = events
        .iter()
        .map(|e| {
            if e.request_id == twin.request_id {
                twin
            } else {
                e
            }
        })
        .collect();
    for g in Granularity::ALL {
        assert_eq!(
            as_map(&all_rollups(store, &acme, g).await),
            expected_rollups(&stored, g),
            "{g}"
        );
    }
    let total: i64 = all_rollups(store, &acme, Granularity::Day)
        .await
        .iter()
        .map(|r| r.requests)
        .sum();
    assert_eq!(total, 40);
    let errors: i64 = all_rollups(store, &acme, Granularity::Day)
        .await
        .iter()
        .map(|r| r.errors)
        .sum();
    assert_eq!(errors, 8, "every fifth request was rate limited");
    assert_eq!(
        store
            .count_usage_events(RpcKeyId::from_uuid(Uuid::now_v7()))
            .await
            .unwrap(),
        0
    );
}

async fn rollups_split_at_hour_and_day_boundaries(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let k1 = create_key(store, &acme, "k1", "e00000000001", T0).await;
    let k2 = create_key(store, &acme, "k2", "e00000000002", T0).await;
    let kg = create_key(store, &globex, "kg", "e00000000003", T0).await;
    // 2023-11-14T22:00Z and the day's start.
    let hour = Granularity::Hour.bucket_start(T0.millis());
    let day = Granularity::Day.bucket_start(T0.millis());
    assert_eq!(
        hour + 2 * HOUR,
        day + DAY,
        "T0's hour is the day's second-to-last"
    );
    let at = |ms: i64| Timestamp(ms);
    let evs = vec![
        event(
            1,
            &acme,
            &k1,
            "ethereum",
            "eth_call",
            UsageStatus::Ok,
            at(hour),
        ),
        event(
            2,
            &acme,
            &k1,
            "ethereum",
            "eth_call",
            UsageStatus::RpcError,
            at(hour + HOUR - 1),
        ),
        event(
            3,
            &acme,
            &k1,
            "ethereum",
            "eth_call",
            UsageStatus::Ok,
            at(hour + HOUR),
        ),
        event(
            4,
            &acme,
            &k1,
            "ethereum",
            "eth_call",
            UsageStatus::UpstreamError,
            at(hour + 2 * HOUR - 1),
        ),
        // The next day.
        event(
            5,
            &acme,
            &k1,
            "ethereum",
            "eth_call",
            UsageStatus::Ok,
            at(day + DAY),
        ),
        event(
            6,
            &acme,
            &k2,
            "solana",
            "getSlot",
            UsageStatus::Denied,
            at(hour + 5),
        ),
        event(
            7,
            &acme,
            &k1,
            "solana",
            "getSlot",
            UsageStatus::Ok,
            at(hour + 6),
        ),
        event(
            8,
            &globex,
            &kg,
            "ethereum",
            "eth_call",
            UsageStatus::Ok,
            at(hour + 7),
        ),
    ];
    assert_eq!(store.record_usage(&evs).await.unwrap(), 8);

    let hourly = all_rollups(store, &acme, Granularity::Hour).await;
    let pick = |rows: &[UsageRollup], b: i64, k: &RpcKey, chain: &str| -> UsageRollup {
        rows.iter()
            .find(|r| r.bucket_start.millis() == b && r.key_id == k.id && r.chain == chain)
            .cloned()
            .unwrap_or_else(|| panic!("no row {b} {chain}"))
    };
    let h0 = pick(&hourly, hour, &k1, "ethereum");
    assert_eq!(
        (h0.requests, h0.compute_units, h0.errors, h0.latency_us_sum),
        (2, 11 + 12, 1, 1_001 + 1_002)
    );
    assert_eq!(h0.granularity, Granularity::Hour);
    assert_eq!(h0.method, "eth_call");
    let h1 = pick(&hourly, hour + HOUR, &k1, "ethereum");
    assert_eq!((h1.requests, h1.errors), (2, 1));
    let next_day_hour = pick(&hourly, day + DAY, &k1, "ethereum");
    assert_eq!(next_day_hour.requests, 1);
    assert_eq!(hourly.len(), 5, "{hourly:?}");
    // Ordered by bucket, key, chain, method.
    let order: Vec<(i64, String, String)> = hourly
        .iter()
        .map(|r| {
            (
                r.bucket_start.millis(),
                r.key_id.to_string(),
                r.chain.clone(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);

    let daily = all_rollups(store, &acme, Granularity::Day).await;
    let d0 = pick(&daily, day, &k1, "ethereum");
    assert_eq!(
        (d0.requests, d0.errors, d0.granularity),
        (4, 2, Granularity::Day)
    );
    assert_eq!(d0.compute_units, 11 + 12 + 13 + 14);
    assert_eq!(pick(&daily, day + DAY, &k1, "ethereum").requests, 1);
    assert_eq!(
        pick(&daily, day, &k2, "solana").errors,
        1,
        "denied counts as an error"
    );
    assert_eq!(daily.len(), 4);

    // [from, to): the bucket starting at `to` is out, the one at `from` in.
    let window = rollups(store, &query(&acme, Granularity::Hour, hour, hour + HOUR)).await;
    assert_eq!(window.len(), 3);
    assert!(window.iter().all(|r| r.bucket_start.millis() == hour));
    let window = rollups(
        store,
        &query(&acme, Granularity::Hour, hour + 1, hour + HOUR + 1),
    )
    .await;
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].bucket_start.millis(), hour + HOUR);

    // Filters.
    let mut q = query(&acme, Granularity::Hour, hour, hour + DAY * 2);
    q.key_id = Some(k2.id);
    let only_k2 = rollups(store, &q).await;
    assert_eq!(only_k2.len(), 1);
    assert_eq!(only_k2[0].key_id, k2.id);
    q.key_id = None;
    q.chain = Some("solana".into());
    let solana = rollups(store, &q).await;
    assert_eq!(solana.len(), 2);
    assert!(solana.iter().all(|r| r.chain == "solana"));
    q.key_id = Some(k1.id);
    assert_eq!(rollups(store, &q).await.len(), 1);
    // Another org's key through this org: nothing.
    q.key_id = Some(kg.id);
    q.chain = None;
    assert!(rollups(store, &q).await.is_empty());
    // The other org sees only its own.
    let theirs = all_rollups(store, &globex, Granularity::Hour).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].key_id, kg.id);
}

async fn large_batches_are_chunked_and_fast(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let keys = [
        create_key(store, &acme, "k1", "f00000000001", T0).await,
        create_key(store, &acme, "k2", "f00000000002", T0).await,
        create_key(store, &acme, "k3", "f00000000003", T0).await,
    ];
    let methods = [
        "eth_call",
        "eth_blockNumber",
        "eth_getLogs",
        "eth_getBalance",
        "eth_chainId",
    ];
    let chains = ["ethereum", "polygon"];
    // More rows than one statement takes on either backend.
    let n = 7_000u32;
    let events: Vec<UsageEvent> = (0..n)
        .map(|i| {
            let status = if i % 11 == 0 {
                UsageStatus::RpcError
            } else {
                UsageStatus::Ok
            };
            event(
                i,
                &acme,
                &keys[i as usize % 3],
                chains[i as usize % 2],
                methods[i as usize % 5],
                status,
                T0.plus_millis(i64::from(i) * 1_000),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    assert_eq!(store.record_usage(&events[..5_000]).await.unwrap(), 5_000);
    let took = started.elapsed();
    eprintln!("{:?}: 5,000 usage events recorded in {took:?}", db.backend);
    assert!(
        took < std::time::Duration::from_secs(20),
        "5,000 events took {took:?}"
    );
    assert_eq!(store.record_usage(&events).await.unwrap(), 2_000);
    assert_eq!(store.record_usage(&events).await.unwrap(), 0);

    let all: Vec<&UsageEvent> = events.iter().collect();
    for g in Granularity::ALL {
        let rows = all_rollups(store, &acme, g).await;
        assert_eq!(as_map(&rows), expected_rollups(&all, g), "{g}");
        assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), i64::from(n));
    }
    let stored: i64 = {
        let mut sum = 0;
        for k in &keys {
            sum += store.count_usage_events(k.id).await.unwrap();
        }
        sum
    };
    assert_eq!(stored, i64::from(n));
}

async fn concurrent_overlapping_batches_count_each_request_once(db: &Harness) {
    db.migrated().await;
    let store: Arc<dyn Store> = db.store.clone();
    let acme = org(&*store, "acme").await;
    let k = create_key(&*store, &acme, "k", "a10000000000", T0).await;
    let events: Vec<UsageEvent> = (0..600)
        .map(|n| {
            event(
                n,
                &acme,
                &k,
                "ethereum",
                "eth_call",
                UsageStatus::Ok,
                T0.plus_secs(i64::from(n)),
            )
        })
        .collect();
    // Eight writers, each with an overlapping window of the same requests
    // (as replicas consuming a redelivering bus would).
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let store = store.clone();
        let batch: Vec<UsageEvent> = events[w * 50..(w * 50 + 250).min(600)].to_vec();
        tasks.push(tokio::spawn(async move {
            store.record_usage(&batch).await.unwrap()
        }));
    }
    let mut new = 0;
    for t in tasks {
        new += t.await.unwrap();
    }
    let covered: BTreeSet<usize> = (0..8)
        .flat_map(|w| w * 50..(w * 50 + 250).min(600))
        .collect();
    assert_eq!(new, covered.len() as u64);
    assert_eq!(
        store.count_usage_events(k.id).await.unwrap(),
        covered.len() as i64
    );
    let rows = all_rollups(&*store, &acme, Granularity::Day).await;
    assert_eq!(
        rows.iter().map(|r| r.requests).sum::<i64>(),
        covered.len() as i64
    );
}

// -- 3. serving nodes --

async fn serving_nodes_are_healthy_nodes_with_an_endpoint(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    use NodeState::{Healthy, Syncing};
    let serving = node(
        store,
        &acme,
        "serving",
        "ethereum",
        &[Syncing, Healthy],
        Some("http://127.0.0.1:8545"),
    )
    .await;
    let other_chain = node(
        store,
        &acme,
        "sol",
        "solana",
        &[Syncing, Healthy],
        Some("http://127.0.0.1:8899"),
    )
    .await;
    node(
        store,
        &acme,
        "no-endpoint",
        "ethereum",
        &[Syncing, Healthy],
        None,
    )
    .await;
    node(
        store,
        &acme,
        "syncing",
        "ethereum",
        &[Syncing],
        Some("http://127.0.0.1:8546"),
    )
    .await;
    node(store, &acme, "new", "ethereum", &[], None).await;

    assert_eq!(
        store.serving_nodes().await.unwrap(),
        vec![
            ServingNode {
                node_id: serving.id,
                org_id: acme.id,
                chain: "ethereum".into(),
                rpc_endpoint: "http://127.0.0.1:8545".into(),
            },
            ServingNode {
                node_id: other_chain.id,
                org_id: acme.id,
                chain: "solana".into(),
                rpc_endpoint: "http://127.0.0.1:8899".into(),
            },
        ]
    );
}

conformance!(
    rpc_key_crud_with_outbox,
    rpc_key_prefix_conflict_and_unknown_org,
    revoke_twice_keeps_the_first_time,
    keys_changed_since_is_the_resync_backstop,
    record_usage_is_idempotent,
    rollups_split_at_hour_and_day_boundaries,
    large_batches_are_chunked_and_fast,
    concurrent_overlapping_batches_count_each_request_once,
    serving_nodes_are_healthy_nodes_with_an_endpoint,
);
