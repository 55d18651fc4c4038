//! The edge in cluster mode: PostgreSQL, NATS JetStream, an api replica and
//! two edge replicas as separate `hood serve` processes.
//!
//! * A key revoked in the database is refused by both replicas within 1 s
//!   (outbox → relay → bus → every replica's key cache).
//! * Under a load of 100,000 requests (`HOOD_EDGE_LOAD_REQUESTS`) spread
//!   over both replicas, one replica is SIGKILLed mid-run and started
//!   again; afterwards every answered request is one stored usage event
//!   (the killed replica's spool is shipped when it starts again), and
//!   the only extras are calls whose answers the kill cut off.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::edge::{fast_upstream, free_port, insert_key, settle_usage, Load};
use common::{hood_cli, now, HoodProcess};
use hood_domain::rpc::KeyScope;
use hood_identity::master_key::MasterKey;
use hood_testkit::{NatsStream, PgDatabase};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_edge_replicas_revoke_fast_and_meter_exactly_across_a_restart() {
    let Some(db) = PgDatabase::create("edge_cluster").await else {
        return;
    };
    let Some(nats) = NatsStream::unique("edge cluster test") else {
        return;
    };
    let Some(redis) = hood_testkit::redis_url("edge cluster test") else {
        return;
    };
    // Limiter keys expire on their own once idle (a minute at most).
    let redis_prefix = format!("hood-test:{}", uuid::Uuid::new_v4().simple());
    let upstream = fast_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let env = |name: &str| {
        let mut env = vec![
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", master.to_base64()),
            ("HOOD_HOME", dir.path().join(name).display().to_string()),
            (
                "HOOD_ARTIFACT_STORE",
                format!("file://{}", dir.path().join("artifacts").display()),
            ),
            ("HOOD_EDGE_UPSTREAMS", format!("ethereum-anvil={upstream}")),
            ("HOOD_EDGE_PLANS", "loadtest=1000000000".to_owned()),
            ("HOOD_REDIS_URL", redis.clone()),
            ("HOOD_REDIS_PREFIX", redis_prefix.clone()),
        ];
        env.extend(nats.env());
        env
    };
    let (ok, out, err) = hood_cli(&["migrate"], &env("migrate"), None);
    assert!(ok, "migrate: {out} {err}");
    let _api = HoodProcess::start(
        &["serve", "--role", "api,auth", "--listen", "127.0.0.1:0"],
        &env("api"),
        &["serving"],
    );
    let edge_addrs = [free_port(), free_port()];
    let start_edge = |i: usize| {
        HoodProcess::start(
            &[
                "serve",
                "--role",
                "edge",
                "--listen",
                "127.0.0.1:0",
                "--edge-addr",
                &edge_addrs[i],
            ],
            &env(&format!("edge-{i}")),
            &["serving", "edge"],
        )
    };
    let mut edges = [Some(start_edge(0)), Some(start_edge(1))];

    let store: Arc<dyn hood_store::Store> = hood_store::connect(&db.url).await.unwrap();
    let org = store.list_orgs().await.unwrap()[0].id;
    let http = reqwest::Client::new();

    // Revocation reaches both replicas within a second.
    let (doomed, doomed_token) = insert_key(&store, org, "free", KeyScope::default()).await;
    for addr in &edge_addrs {
        let url = format!("http://{addr}/ethereum-anvil/v1/{doomed_token}");
        let started = Instant::now();
        while status(&http, &url).await != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{addr} never served the key"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(store.revoke_rpc_key(org, doomed.id, now()).await.unwrap());
    let revoked = Instant::now();
    let mut refused = [None, None];
    while refused.iter().any(Option::is_none) {
        for (i, addr) in edge_addrs.iter().enumerate() {
            if refused[i].is_none() {
                let url = format!("http://{addr}/ethereum-anvil/v1/{doomed_token}");
                if status(&http, &url).await == Some(401) {
                    refused[i] = Some(revoked.elapsed());
                }
            }
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "revocation not effective on every replica within 1 s: {refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation effective on both replicas after {refused:?}");

    // One plan budget across both replicas (Redis): the free plan admits
    // 100 calls of 10 CU at once (plus what refills meanwhile), not 100
    // per replica.
    let (_, shared_token) = insert_key(&store, org, "free", KeyScope::default()).await;
    let mut admitted = 0;
    let started = Instant::now();
    for i in 0..160 {
        let addr = &edge_addrs[i % 2];
        let url = format!("http://{addr}/ethereum-anvil/v1/{shared_token}");
        match status(&http, &url).await {
            Some(200) => admitted += 1,
            Some(429) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The bucket refills 1,000 CU a minute: one more 10-CU call per 0.6 s.
    let refilled = (started.elapsed().as_millis() / 600) as usize + 1;
    assert!(
        (100..=100 + refilled).contains(&admitted),
        "{admitted} admitted (at most {} with one shared budget; separate budgets would admit 160)",
        100 + refilled
    );

    // Load with replica 0 SIGKILLed mid-run and started again: its usage
    // spool still holds every call it answered.
    let (key, token) = insert_key(&store, org, "loadtest", KeyScope::default()).await;
    let urls = edge_addrs
        .iter()
        .map(|a| format!("http://{a}/ethereum-anvil/v1/{token}"))
        .collect();
    let load = Load::start(urls, Load::total_from_env(), 32);
    load.wait_until_sent(load.total / 3).await;
    let killed = edges[0].take().unwrap().stop("-KILL");
    assert!(!killed.success(), "replica 0 was killed: {killed:?}");
    edges[0] = Some(start_edge(0));
    eprintln!("replica 0 killed and restarted at {} requests", load.sent());
    let (total, workers) = (load.total, load.workers as u64);
    let answered = load.finish().await;
    assert!(answered >= total * 9 / 10, "most requests were answered");

    // Every answered call is stored once; the only extras are calls whose
    // answers the kill cut off on their way out.
    let stored = settle_usage(&store, key.id, answered, workers).await;
    eprintln!("{stored} usage events stored for {answered} answered calls");
    // Stop both replicas (shipping what they hold) and make sure nothing
    // more arrives.
    for e in edges.iter_mut() {
        assert!(e.take().unwrap().stop("-TERM").success());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.count_usage_events(key.id).await.unwrap() as u64,
        stored
    );
}
