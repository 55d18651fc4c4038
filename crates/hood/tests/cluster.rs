//! Cluster mode on PostgreSQL: one agent gateway, two orchestrator replicas
//! and an api replica as separate `hood serve` processes. Fifty ethereum-anvil
//! nodes are provisioned together; the saga execution log proves that no
//! step ran twice at once and that both orchestrators did work; then all
//! fifty are deleted without leftovers.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{hood_cli, processes_under, push_anvil, read_admin_key, HoodProcess, KillUnder};
use hood_identity::master_key::MasterKey;
use hood_testkit::PgDatabase;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn two_orchestrators_provision_fifty_nodes_without_running_a_step_twice() {
    let Some(anvil) = hood_testkit::anvil_bin("cluster test") else {
        return;
    };
    let Some(db) = PgDatabase::create("cluster_fifty_nodes").await else {
        return;
    };
    let nodes: usize = std::env::var("HOOD_CLUSTER_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let _guard = KillUnder(shared.clone());
    let gateway = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let master = MasterKey::generate();
    let env = |name: &str| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", master.to_base64()),
            ("HOOD_HOME", dir.path().join(name).display().to_string()),
            ("HOOD_HOSTS_DIR", shared.join("hosts").display().to_string()),
            (
                "HOOD_ARTIFACT_STORE",
                format!("file://{}", shared.join("artifacts").display()),
            ),
            ("HOOD_GATEWAY_LISTEN", gateway.clone()),
            ("HOOD_GATEWAY_URL", format!("https://{gateway}")),
        ]
    };
    std::fs::create_dir_all(shared.join("artifacts")).unwrap();
    let (ok, out, err) = hood_cli(&["migrate"], &env("migrate"), None);
    assert!(ok, "migrate: {out} {err}");
    let serve = |roles: &str, name: &str| {
        HoodProcess::start(
            &["serve", "--role", roles, "--listen", "127.0.0.1:0"],
            &env(name),
            &["serving"],
        )
    };
    let api = serve("api,auth", "api");
    let _gateway = serve("agent-gateway", "gateway");
    let _orch_a = serve("orchestrator", "orch-a");
    let _orch_b = serve("orchestrator", "orch-b");
    let base = api.url("serving");
    let key = read_admin_key(&dir.path().join("api"));
    push_anvil(
        &anvil,
        &[("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())],
    );

    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..nodes {
        let r = http
            .post(format!("{base}/api/v1/nodes"))
            .bearer_auth(&key)
            .json(&json!({"chain": "ethereum-anvil", "name": format!("c-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["node"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let wait_all = |want: &'static str| {
        let http = http.clone();
        let base = base.clone();
        let key = key.clone();
        let ids = ids.clone();
        async move {
            let started = Instant::now();
            loop {
                let list: Value = http
                    .get(format!("{base}/api/v1/nodes"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let states: BTreeMap<String, String> = list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| {
                        (
                            n["id"].as_str().unwrap().to_owned(),
                            n["state"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                assert!(
                    !states.values().any(|s| s == "failed"),
                    "a node failed: {list}"
                );
                if ids
                    .iter()
                    .all(|id| states.get(id).map(String::as_str) == Some(want))
                {
                    return;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(300),
                    "not all {want} in time: {states:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    wait_all("healthy").await;

    // The journal: per step, starts and finishes alternate (never two
    // executions at once), and both replicas claimed work.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: Vec<(String, i64, String, String, String, i64)> = sqlx::query_as(
        "SELECT workflow_id, step_index, kind, event, owner, generation FROM workflow_step_executions \
         ORDER BY workflow_id, step_index, kind, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let mut open: BTreeMap<(String, i64, String), (String, i64)> = BTreeMap::new();
    let mut owners = std::collections::BTreeSet::new();
    for (wf, step, kind, event, owner, generation) in rows {
        owners.insert(owner.clone());
        let k = (wf.clone(), step, kind.clone());
        match event.as_str() {
            "start" => {
                let prev = open.insert(k, (owner.clone(), generation));
                assert!(
                    prev.is_none(),
                    "{wf} step {step} ({kind}) started by {owner} while {prev:?} was running it"
                );
            }
            "finish" => {
                let started = open.remove(&k);
                assert_eq!(
                    started,
                    Some((owner.clone(), generation)),
                    "{wf} step {step}: finish without its start"
                );
            }
            other => panic!("unknown execution event {other}"),
        }
    }
    assert!(open.is_empty(), "executions never finished: {open:?}");
    assert!(owners.len() >= 2, "both orchestrators did work: {owners:?}");
    let provisions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workflows WHERE name = 'provision-node' AND state = 'completed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(provisions as usize, nodes);
    let live_hosts: i64 = sqlx::query_scalar("SELECT count(*) FROM hosts WHERE state = 'ready'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(live_hosts as usize, nodes, "exactly one host per node");
    pool.close().await;

    for id in &ids {
        let r = http
            .delete(format!("{base}/api/v1/nodes/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    wait_all("terminated").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_under(&shared).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        processes_under(&shared),
        vec![],
        "no agent or node survives"
    );
    let left: Vec<_> = std::fs::read_dir(shared.join("hosts").join("hosts"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no sandbox left: {left:?}");
}
