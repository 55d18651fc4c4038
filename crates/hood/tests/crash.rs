//! Crash safety of node provisioning and termination: `hood up` is killed
//! with SIGKILL at a random moment of each, 20 times, and restarted. Every
//! run must end in the intended state with exactly one host per live node
//! and no orphaned host, directory or process. The seed is printed so a
//! failure can be replayed (`HOOD_CRASH_SEED`).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{
    hood_up_with_gateway, processes_under, push_anvil, read_admin_key, seed_from_env, temp_home,
    KillUnder, Rng,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `hood up` in a fresh home with a fixed gateway address (agents find it
/// again after a restart) and anvil in its artifact store.
struct Installation {
    _dir: tempfile::TempDir,
    home: std::path::PathBuf,
    _guard: KillUnder,
    gateway: String,
    hood: common::HoodProcess,
    key: String,
}

impl Installation {
    fn with_anvil(anvil: &std::path::Path) -> Self {
        let (_dir, home) = temp_home();
        let _guard = KillUnder(home.clone());
        let gateway = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let hood = hood_up_with_gateway(&home, &gateway);
        let key = read_admin_key(&home);
        push_anvil(
            anvil,
            &[
                ("HOOD_SERVER", hood.url("api")),
                ("HOOD_TOKEN", key.clone()),
            ],
        );
        Self {
            _dir,
            home,
            _guard,
            gateway,
            hood,
            key,
        }
    }
}

async fn node_state(http: &reqwest::Client, api: &str, key: &str, id: &str) -> Value {
    http.get(format!("{api}/api/v1/nodes/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn wait_for(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    id: &str,
    want: &str,
    ctx: &str,
) -> Value {
    let started = Instant::now();
    loop {
        let node = node_state(http, api, key, id).await;
        if node["state"] == want {
            return node;
        }
        assert!(
            !["failed", "terminated"].contains(&node["state"].as_str().unwrap_or_default())
                || node["state"] == want,
            "{ctx}: node ended {} instead of {want}: {node}",
            node["state"]
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{ctx}: not {want} in time: {node}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn host_dirs(home: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(home.join("hosts").join("hosts"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_and_termination_survive_sigkill_at_random_moments() {
    let Some(anvil) = hood_testkit::anvil_bin("crash test") else {
        return;
    };
    let runs: u64 = std::env::var("HOOD_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = seed_from_env("HOOD_CRASH_SEED");
    eprintln!("crash test: {runs} runs");
    let mut rng = Rng(seed);
    let Installation {
        _dir,
        home,
        _guard,
        gateway,
        mut hood,
        key,
    } = Installation::with_anvil(&anvil);
    let http = reqwest::Client::new();

    for run in 0..runs {
        // -- provisioning, killed at a random moment --
        let api = hood.url("api");
        let r = http
            .post(format!("{api}/api/v1/nodes"))
            .bearer_auth(&key)
            .json(&json!({"chain": "ethereum-anvil", "name": format!("crash-{run}")}))
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 202);
        let id = r.json::<Value>().await.unwrap()["node"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let delay = rng.below(2_500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(hood); // SIGKILL
        hood = hood_up_with_gateway(&home, &gateway);
        let api = hood.url("api");
        let ctx = format!("run {run} (provision killed after {delay} ms)");
        let node = wait_for(&http, &api, &key, &id, "healthy", &ctx).await;
        let host = node["host_id"].as_str().expect("placed").to_owned();
        assert_eq!(
            host_dirs(&home),
            vec![host.clone()],
            "{ctx}: exactly one host for the one live node"
        );
        let hosts: Value = http
            .get(format!("{api}/api/v1/hosts"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let live: Vec<&Value> = hosts["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["state"] != "deleted")
            .collect();
        assert_eq!(live.len(), 1, "{ctx}: one live host record: {hosts}");
        let anvils = processes_under(&home)
            .into_iter()
            .filter(|(_, c)| c.contains("/bin/anvil"))
            .count();
        assert_eq!(anvils, 1, "{ctx}: one anvil process");

        // -- termination, killed at a random moment --
        let r = http
            .delete(format!("{api}/api/v1/nodes/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 202);
        let delay = rng.below(800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(hood);
        hood = hood_up_with_gateway(&home, &gateway);
        let api = hood.url("api");
        let ctx = format!("run {run} (terminate killed after {delay} ms)");
        wait_for(&http, &api, &key, &id, "terminated", &ctx).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_under(&home).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(processes_under(&home), vec![], "{ctx}: no orphaned process");
        assert_eq!(
            host_dirs(&home),
            Vec::<String>::new(),
            "{ctx}: no orphaned host directory"
        );
    }
    let wfs: Value = http
        .get(format!("{}/api/v1/workflows?limit=1000", hood.url("api")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let not_completed: Vec<&Value> = wfs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["state"] != "completed")
        .collect();
    assert!(
        not_completed.is_empty(),
        "every workflow completed: {not_completed:?}"
    );
    assert_eq!(
        wfs["items"].as_array().unwrap().len() as u64,
        runs * 2,
        "one provision and one terminate per node"
    );
}

/// `POST /nodes` killed mid-request: the node and its provisioning
/// workflow commit in one transaction, so after SIGKILL every node that
/// exists has its workflow and becomes healthy; none is left in
/// `provisioning` with nothing to finish it.
#[tokio::test(flavor = "multi_thread")]
async fn node_creation_killed_mid_request_leaves_no_node_without_its_workflow() {
    let Some(anvil) = hood_testkit::anvil_bin("node creation crash test") else {
        return;
    };
    let Installation {
        _dir,
        home,
        _guard,
        gateway,
        mut hood,
        key,
    } = Installation::with_anvil(&anvil);
    let http = reqwest::Client::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut answered = Vec::new();
    for round in 0..3 {
        // Requests race the kill: some commit, some never reach the store,
        // some commit but never see their answer.
        let api = hood.url("api");
        let requests: Vec<_> = (0..4)
            .map(|i| {
                let http = http.clone();
                let (api, key) = (api.clone(), key.clone());
                tokio::spawn(async move {
                    http.post(format!("{api}/api/v1/nodes"))
                        .bearer_auth(&key)
                        .json(&json!({"chain": "ethereum-anvil", "name": format!("race-{round}-{i}")}))
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status() == 202)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20 + rng.below(130))).await;
        drop(hood); // SIGKILL
        for r in requests {
            if let Some(r) = r.await.unwrap() {
                let body: Value = r.json().await.unwrap_or_default();
                if let Some(id) = body["node"]["id"].as_str() {
                    answered.push(id.to_owned());
                }
            }
        }
        hood = hood_up_with_gateway(&home, &gateway);
    }
    let api = hood.url("api");
    let nodes: Value = http
        .get(format!("{api}/api/v1/nodes"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    eprintln!(
        "{} nodes stored, {} creations answered",
        ids.len(),
        answered.len()
    );
    assert!(
        !ids.is_empty(),
        "no creation committed before a kill: the test proved nothing"
    );
    for id in &answered {
        assert!(ids.contains(id), "an answered node {id} was lost");
    }
    for id in &ids {
        let wf = http
            .get(format!("{api}/api/v1/workflows/provision-node-{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(wf.status(), 200, "node {id} has no provisioning workflow");
    }
    for id in &ids {
        wait_for(&http, &api, &key, id, "healthy", "after the kills").await;
    }
    for id in &ids {
        let r = http
            .delete(format!("{api}/api/v1/nodes/{id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    for id in &ids {
        wait_for(&http, &api, &key, id, "terminated", "cleanup").await;
    }
}
