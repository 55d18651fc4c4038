//! Background observation against real endpoints: a tiny local JSON-RPC
//! and HTTP server with known answers, and the real anvil node.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use hood_chains::policy::{CompiledPolicies, PolicyInput};
use hood_domain::workload::{CollectorPlan, CollectorSource, SyncProbe, WorkloadObservation};
use hood_workloads::observe::{Observer, Target};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers like an EVM node; `eth_gasPrice` fails with a JSON-RPC error
/// whose `data` must not reach the observation.
async fn rpc(State(hits): State<Arc<AtomicUsize>>, Json(req): Json<Value>) -> Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let id = req["id"].clone();
    let result = match req["method"].as_str().unwrap_or_default() {
        "eth_syncing" => json!(false),
        "eth_blockNumber" => json!("0x10"),
        "net_peerCount" => json!("0x3"),
        "eth_chainId" => json!("0x7a69"),
        _ => {
            return Json(json!({
                "jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not available", "data": "internal detail"}
            }))
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

async fn serve() -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/", post(rpc))
        .route(
            "/status",
            get(|| async { Json(json!({"result": {"n_peers": "7"}})) }),
        )
        .route(
            "/metrics",
            get(|| async {
                "# TYPE peers gauge\npeers{dir=\"in\"} 2\npeers{dir=\"out\"} 5\nheight 1e3\n"
            }),
        )
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, hits)
}

fn jsonrpc(name: &str, method: &str) -> CollectorPlan {
    CollectorPlan {
        name: name.into(),
        interval_s: 1,
        timeout_s: 1,
        source: CollectorSource::JsonRpc {
            port: "rpc".into(),
            method: method.into(),
            params: vec![],
            path: None,
            cookie_file: None,
        },
    }
}

fn target(port: u16, dir: &std::path::Path, collectors: Vec<CollectorPlan>) -> Target {
    Target {
        workload_id: "node-1".into(),
        process_ids: vec!["node-1-anvil".into()],
        sync: Some(SyncProbe {
            port: "rpc".into(),
            syncing_method: "eth_syncing".into(),
            head_method: "eth_blockNumber".into(),
            peers_method: Some("net_peerCount".into()),
        }),
        collectors,
        ports: BTreeMap::from([("rpc".to_string(), port)]),
        node_dir: dir.to_path_buf(),
        vars: BTreeMap::new(),
        address: std::net::Ipv4Addr::LOCALHOST.into(),
    }
}

fn observer() -> Observer {
    let mut o = Observer::new(reqwest::Client::new());
    o.set_sync_interval(Duration::from_millis(200));
    o
}

/// Polls until `done` holds for the workload's observation.
async fn until(
    observer: &Observer,
    what: &str,
    done: impl Fn(&WorkloadObservation) -> bool,
) -> WorkloadObservation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let obs = observer.observation("node-1").unwrap_or_default();
        if done(&obs) {
            return obs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {obs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn observation_reports_sync_collectors_and_errors() {
    let (port, hits) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let observer = observer();
    let collectors = vec![
        jsonrpc("block_number", "eth_blockNumber"),
        jsonrpc("chain_id", "eth_chainId"),
        jsonrpc("gas_price", "eth_gasPrice"),
        CollectorPlan {
            name: "net_info".into(),
            interval_s: 1,
            timeout_s: 1,
            source: CollectorSource::Http {
                port: "rpc".into(),
                path: "/status".into(),
            },
        },
        CollectorPlan {
            name: "metrics".into(),
            interval_s: 1,
            timeout_s: 1,
            source: CollectorSource::Prometheus {
                port: "rpc".into(),
                path: "/metrics".into(),
            },
        },
        CollectorPlan {
            name: "system".into(),
            interval_s: 1,
            timeout_s: 1,
            source: CollectorSource::System,
        },
        CollectorPlan {
            name: "unallocated".into(),
            interval_s: 1,
            timeout_s: 1,
            source: CollectorSource::Http {
                port: "metrics".into(),
                path: "/".into(),
            },
        },
    ];
    observer
        .watch(target(port, dir.path(), collectors.clone()))
        .await;
    assert_eq!(
        observer.workload_of("node-1-anvil").as_deref(),
        Some("node-1")
    );
    assert_eq!(observer.running_tasks(), 1);

    let obs = until(&observer, "every sample", |o| {
        o.sync.is_some() && o.samples.len() == collectors.len()
    })
    .await;
    let sync = obs.sync.clone().unwrap();
    assert_eq!(sync.syncing, Some(false));
    assert_eq!(sync.head, Some(16));
    assert_eq!(sync.peers, Some(3));
    assert_eq!(sync.error, None);

    let s = &obs.samples;
    assert_eq!(s["block_number"].result, Some(json!("0x10")));
    assert_eq!(s["chain_id"].result, Some(json!("0x7a69")));
    assert_eq!(s["chain_id"].error, None);
    assert_eq!(s["gas_price"].result, None);
    let error: Value = serde_json::from_str(s["gas_price"].error.as_deref().unwrap()).unwrap();
    assert_eq!(
        error,
        json!({"code": -32601, "message": "method not available"})
    );
    assert_eq!(
        s["net_info"].result,
        Some(json!({"status": 200, "body": {"result": {"n_peers": "7"}}}))
    );
    assert_eq!(
        s["metrics"].result,
        Some(json!({"peers": 7, "height": 1000}))
    );
    let system = s["system"].result.clone().unwrap();
    for key in [
        "disk_free_percent",
        "disk_free_bytes",
        "memory_used_percent",
        "load1",
    ] {
        assert!(system[key].is_number(), "system.{key} in {system}");
    }
    assert_eq!(
        s["unallocated"].error.as_deref(),
        Some("no port `metrics` allocated")
    );
    assert!(obs.at_ms >= sync.at_ms);

    // What the heartbeat reports is what the policies read.
    let reported: Value = serde_json::to_value(&obs).unwrap();
    let catalog = hood_chains::builtin().unwrap();
    let policies =
        CompiledPolicies::compile(&catalog.get("ethereum-anvil").unwrap().observation).unwrap();
    let input = PolicyInput {
        samples: reported["samples"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        sync: json!({"status": "synced", "head": 16, "head_age_s": 1, "peers": 3}),
        node: json!({"node_type": "dev", "uptime_s": 60}),
    };
    for r in policies.evaluate(&input) {
        assert_eq!(r.error, None, "{}", r.name);
        if r.name != "disk_low" {
            assert!(!r.firing, "{} fired", r.name);
        }
    }

    // The same target again keeps the task and its samples.
    observer
        .watch(target(port, dir.path(), collectors.clone()))
        .await;
    assert_eq!(
        observer.observation("node-1").unwrap().samples.len(),
        collectors.len()
    );

    // Unwatching stops every sampler: the server hears nothing more.
    observer.unwatch("node-1").await;
    assert_eq!(observer.running_tasks(), 0);
    assert!(observer.watched().is_empty());
    assert_eq!(observer.observation("node-1"), None);
    let before = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "a sampler outlived unwatch"
    );
}

#[tokio::test]
async fn a_changed_target_replaces_the_task_and_shutdown_stops_all() {
    let (port, hits) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let observer = observer();
    observer.watch(target(port, dir.path(), vec![])).await;
    until(&observer, "the sync probe", |o| o.sync.is_some()).await;
    observer
        .watch(target(
            port,
            dir.path(),
            vec![jsonrpc("chain_id", "eth_chainId")],
        ))
        .await;
    assert_eq!(observer.running_tasks(), 1);
    until(&observer, "chain_id", |o| {
        o.samples.contains_key("chain_id")
    })
    .await;

    observer.shutdown().await;
    assert_eq!(observer.running_tasks(), 0);
    let before = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn a_dropped_observer_leaves_no_sampler_behind() {
    let (port, hits) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let observer = observer();
    observer.watch(target(port, dir.path(), vec![])).await;
    until(&observer, "the sync probe", |o| o.sync.is_some()).await;
    drop(observer);
    // Aborted tasks are dropped at their next poll; give them one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hits.load(Ordering::SeqCst), before);
}

/// With the real anvil (mining a block a second) the head rises between
/// two observations.
#[tokio::test]
async fn anvil_head_rises_between_observations() {
    let Some(anvil) = hood_testkit::anvil_bin("anvil_head_rises_between_observations") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let _child = tokio::process::Command::new(anvil)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--block-time", "1", "--chain-id", "31337"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let observer = observer();
    let mut t = target(port, dir.path(), vec![jsonrpc("chain_id", "eth_chainId")]);
    // anvil does not implement net_peerCount (the plan leaves it out for
    // this chain).
    if let Some(sync) = &mut t.sync {
        sync.peers_method = None;
    }
    observer.watch(t).await;
    let first = until(&observer, "a head", |o| {
        o.sync.as_ref().and_then(|s| s.head).is_some()
    })
    .await;
    let head = first.sync.as_ref().unwrap().head.unwrap();
    let second = until(&observer, "a higher head", |o| {
        o.sync
            .as_ref()
            .and_then(|s| s.head)
            .is_some_and(|h| h > head)
    })
    .await;
    let sync = second.sync.unwrap();
    assert_eq!(sync.syncing, Some(false));
    assert_eq!(sync.error, None);
    let chain_id = until(&observer, "chain_id", |o| {
        o.samples.contains_key("chain_id")
    })
    .await;
    assert_eq!(chain_id.samples["chain_id"].result, Some(json!("0x7a69")));
    observer.shutdown().await;
}
