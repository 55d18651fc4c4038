//! Managed ethereum-anvil nodes end to end on the real binary: `hood up`,
//! push the real anvil, create a node, it becomes healthy and its chain
//! advances, delete it, and nothing of it remains.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{hood_up, processes_under, push_anvil, read_admin_key, temp_home, KillUnder};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub async fn eth_block_number(http: &reqwest::Client, endpoint: &str) -> u64 {
    let v: Value = http
        .post(endpoint)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}))
        .send()
        .await
        .expect("rpc")
        .json()
        .await
        .expect("rpc json");
    u64::from_str_radix(
        v["result"].as_str().expect("hex").trim_start_matches("0x"),
        16,
    )
    .expect("number")
}

async fn wait_state(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    want: &str,
    within: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let node: Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if node["state"] == want {
            return node;
        }
        assert_ne!(node["state"], "failed", "node failed: {node}");
        assert!(
            started.elapsed() < within,
            "node not {want} within {within:?}: {node}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anvil_node_is_provisioned_serves_rpc_and_is_deleted_without_leftovers() {
    let Some(anvil) = hood_testkit::anvil_bin("anvil_node_end_to_end") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[]);
    let api = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);

    let http = reqwest::Client::new();
    let requested = Instant::now();
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&key)
        .json(&json!({"chain": "ethereum-anvil", "name": "devnet-1"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.expect("json");
    let id = accepted["node"]["id"].as_str().expect("id").to_owned();
    assert_eq!(accepted["workflow_id"], format!("provision-node-{id}"));
    let node_url = format!("{api}/api/v1/nodes/{id}");
    let node = wait_state(&http, &node_url, &key, "healthy", Duration::from_secs(60)).await;
    eprintln!("POST /nodes -> healthy in {:?}", requested.elapsed());
    assert_eq!(node["sync_status"], "synced");
    let host_id = node["host_id"]
        .as_str()
        .expect("placed on a host")
        .to_owned();
    let endpoint = node["rpc_endpoint"].as_str().expect("endpoint").to_owned();

    // The chain advances (anvil mines a block per second).
    let first = eth_block_number(&http, &endpoint).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = eth_block_number(&http, &endpoint).await;
    assert!(second > first, "head rises: {first} -> {second}");

    // Key material exists on the host only as a private file while it runs.
    let sandbox = home.join("hosts").join("hosts").join(&host_id);
    assert!(sandbox.is_dir(), "sandbox {sandbox:?}");
    let key_file = sandbox.join(format!("agent/workloads/nodes/{id}/secrets/nodekey"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("nodekey")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        !processes_under(&sandbox).is_empty(),
        "agent and anvil run in the sandbox"
    );

    // The history tells the story.
    let events: Value = http
        .get(format!("{node_url}/events"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let transitions: Vec<String> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["to_state"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(transitions, ["provisioning", "syncing", "healthy"]);

    // Operator views: the host is ready and connected, the workflow journal is complete.
    let host: Value = http
        .get(format!("{api}/api/v1/hosts/{host_id}"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("host")
        .json()
        .await
        .expect("json");
    assert_eq!(host["state"], "ready");
    assert_eq!(host["connected"], true);
    let wf: Value = http
        .get(format!("{api}/api/v1/workflows/provision-node-{id}"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("workflow")
        .json()
        .await
        .expect("json");
    assert_eq!(wf["state"], "completed", "{wf}");
    let steps: Vec<&str> = wf["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "accept",
            "create_host",
            "wait_for_agent",
            "generate_keys",
            "seed_data",
            "start_node",
            "wait_synced",
            "mark_healthy"
        ]
    );
    let logs: Value = http
        .get(format!("{node_url}/logs?lines=20"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("logs")
        .json()
        .await
        .expect("json");
    assert!(
        !logs["anvil"]
            .as_array()
            .expect("anvil log lines")
            .is_empty(),
        "{logs}"
    );

    // Followed live (server-sent events): a call made while following
    // shows up as a new line of the anvil process (anvil logs each method).
    let mut follow = http
        .get(format!("{node_url}/logs/follow?lines=1"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("follow");
    assert_eq!(follow.status(), 200);
    assert_eq!(follow.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut called = false;
    let followed = Instant::now();
    while !seen.contains("eth_getBalance") {
        assert!(followed.elapsed() < Duration::from_secs(30), "{seen}");
        if !called && seen.contains("event: line") {
            // The backlog arrived: call now.
            let r = http
                .post(&endpoint)
                .json(
                    &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance",
                              "params": ["0x0000000000000000000000000000000000000000", "latest"]}),
                )
                .send()
                .await
                .expect("rpc");
            assert!(r.status().is_success());
            called = true;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), follow.chunk())
            .await
            .expect("an event or a keep-alive in time")
            .expect("stream")
            .expect("not ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .any(|l| l["process"] == "anvil"
                && l["line"].as_str().unwrap_or("").contains("eth_getBalance")),
        "{seen}"
    );
    drop(follow);

    // Another tenant sees none of it.
    let org: Value = http
        .post(format!("{api}/api/v1/orgs"))
        .bearer_auth(&key)
        .json(&json!({"slug": "other", "name": "Other"}))
        .send()
        .await
        .expect("org")
        .json()
        .await
        .expect("json");
    let org_id = org["id"].as_str().expect("org id");
    let r = http.post(format!("{api}/api/v1/orgs/{org_id}/users")).bearer_auth(&key).json(&json!({"email": "ops@other.test", "role": "admin", "password": "a long enough password"})).send().await.expect("user");
    assert_eq!(r.status(), 201);
    let login: Value = http
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({"email": "ops@other.test", "password": "a long enough password"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let other = login["access_token"].as_str().expect("token");
    for path in [
        format!("/api/v1/nodes/{id}"),
        format!("/api/v1/nodes/{id}/events"),
        format!("/api/v1/nodes/{id}/logs"),
        format!("/api/v1/hosts/{host_id}"),
        format!("/api/v1/workflows/provision-node-{id}"),
    ] {
        let r = http
            .get(format!("{api}{path}"))
            .bearer_auth(other)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{path} as another tenant");
    }
    let r = http
        .delete(&node_url)
        .bearer_auth(other)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404, "another tenant cannot delete it");
    for path in ["/api/v1/nodes", "/api/v1/hosts", "/api/v1/workflows"] {
        let v: Value = http
            .get(format!("{api}{path}"))
            .bearer_auth(other)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(
            v["items"],
            json!([]),
            "{path} lists nothing of another tenant"
        );
    }

    let r = http
        .delete(&node_url)
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 202);
    let node = wait_state(
        &http,
        &node_url,
        &key,
        "terminated",
        Duration::from_secs(60),
    )
    .await;
    assert!(node["host_id"].is_null() && node["rpc_endpoint"].is_null());
    // Nothing of it remains: no agent, no anvil, no sandbox.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_under(&sandbox).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        processes_under(&sandbox),
        vec![],
        "no process of the host survives"
    );
    assert!(!sandbox.exists(), "sandbox removed");
    assert!(
        http.post(&endpoint).json(&json!({})).send().await.is_err(),
        "the RPC endpoint is gone"
    );
    // Deleting again is idempotent.
    let r = http
        .delete(&node_url)
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete again");
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_requests_are_validated_and_scoped() {
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[]);
    let api = hood.url("api");
    let key = read_admin_key(&home);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&key)
        .json(
            &json!({"chain": "dogecoin", "node_type": "x", "provider": "aws", "name": "Bad Name"}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.expect("json");
    let fields: Vec<&str> = problem["invalid-params"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(fields, ["chain", "provider", "name"]);
    let r = http
        .get(format!("{api}/api/v1/nodes/not-an-id"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!(
            "{api}/api/v1/nodes/00000000-0000-0000-0000-000000000000"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    // Without the artifact, the request is refused before anything is
    // stored, with the command that fixes it.
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&key)
        .json(&json!({"chain": "ethereum-anvil"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.expect("json");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("anvil-linux-amd64 1.5.1")
            && detail.contains("hood artifact import-anvil --version 1.5.1"),
        "{problem}"
    );
    let nodes: Value = http
        .get(format!("{api}/api/v1/nodes"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(nodes["items"], json!([]), "nothing stored");
    let hosts_dir = home.join("hosts").join("hosts");
    let left: Vec<_> = std::fs::read_dir(&hosts_dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no host was created: {left:?}");
    assert_eq!(processes_under(&home), vec![], "no agent left running");
}

/// The cluster monitor end to end: a real agent's heartbeats carry its
/// host's counters, `GET /api/v1/hosts/{id}/metrics` and `hood host
/// metrics` serve the series (memory as this machine has it, CPU within
/// 0–100, rates once two heartbeats are in), windows and limits hold, bad
/// input is a problem (or a non-zero exit), and another organization sees
/// no such host.
#[tokio::test(flavor = "multi_thread")]
async fn host_heartbeats_feed_the_cluster_monitor() {
    use common::health::{create_healthy_node, fast_health_env};
    use common::http::{second_org, Api};
    let Some(anvil) = hood_testkit::anvil_bin("host_heartbeats_feed_the_cluster_monitor") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &fast_health_env());
    let api_url = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![
        ("HOOD_SERVER", api_url.clone()),
        ("HOOD_TOKEN", key.clone()),
    ];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let (_, node) =
        create_healthy_node(&http, &api_url, &key, "monitored", Duration::from_secs(90)).await;
    let host = node["host_id"].as_str().expect("placed").to_owned();
    let api = Api::new(api_url.clone());

    // Heartbeats every second: three points, the later ones with rates.
    let started = Instant::now();
    let metrics = loop {
        let r = api
            .get(&format!("/api/v1/hosts/{host}/metrics?minutes=5"), &key)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let points = r.body["points"].as_array().unwrap();
        if points.len() >= 3 && points.last().unwrap()["cpu_percent"].is_number() {
            break r.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no series after 30 s: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(metrics["host_id"], host.as_str());
    assert_eq!(metrics["minutes"], 5);
    let points = metrics["points"].as_array().unwrap();
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap()
        * 1024;
    let mut previous_at = String::new();
    for p in points {
        let at = p["at"].as_str().unwrap().to_owned();
        assert!(at > previous_at, "oldest first: {metrics}");
        previous_at = at;
        assert_eq!(p["memory_total_bytes"], mem_total, "{p}");
        let used = p["memory_used_bytes"].as_u64().unwrap();
        assert!(used > 0 && used <= mem_total, "{p}");
        let disk_total = p["disk_total_bytes"].as_u64().unwrap();
        assert!(disk_total > 0 && p["disk_used_bytes"].as_u64().unwrap() <= disk_total);
    }
    assert!(
        points[0]["cpu_percent"].is_null(),
        "the window's first point has nothing to compare with: {metrics}"
    );
    let last = points.last().unwrap();
    let cpu = last["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{last}");
    assert!(last["net_rx_bytes_per_sec"].is_u64(), "{last}");
    assert!(last["net_tx_bytes_per_sec"].is_u64(), "{last}");

    // A limit keeps the newest.
    let two = api
        .get(
            &format!("/api/v1/hosts/{host}/metrics?minutes=5&limit=2"),
            &key,
        )
        .await;
    let two = two.body["points"].as_array().unwrap().clone();
    assert_eq!(two.len(), 2);
    assert!(two[1]["at"].as_str().unwrap() >= last["at"].as_str().unwrap());

    // Bad input: problems naming the parameter, and no such host.
    for (query, param) in [("minutes=0", "minutes"), ("limit=10001", "limit")] {
        let r = api
            .get(&format!("/api/v1/hosts/{host}/metrics?{query}"), &key)
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
        assert!(r.text.contains(param), "{}", r.text);
    }
    let r = api
        .get(&format!("/api/v1/hosts/{host}/metrics?minutes=x"), &key)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let unknown = "0190a3f2-0000-7000-8000-000000000000";
    let r = api
        .get(&format!("/api/v1/hosts/{unknown}/metrics"), &key)
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let bob = second_org(&api, &key).await;
    let r = api
        .get(&format!("/api/v1/hosts/{host}/metrics"), &bob)
        .await;
    assert_eq!(r.status, 404, "another organization's host: {}", r.text);

    // The CLI: a table and JSON; bad input exits non-zero with the reason.
    let (ok, out, err) =
        common::hood_cli(&["host", "metrics", &host, "--minutes", "5"], &env, None);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for column in ["AT", "CPU_%", "MEM_USED_MIB", "DISK_TOTAL_MIB", "RX_B/S"] {
        assert!(header.contains(column), "{out}");
    }
    assert!(lines.count() >= 3, "{out}");
    let (ok, out, err) = common::hood_cli(
        &["--output", "json", "host", "metrics", &host, "--limit", "1"],
        &env,
        None,
    );
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(json["points"][0]["memory_total_bytes"], mem_total);
    let (ok, _, err) = common::hood_cli(&["host", "metrics", &host, "--minutes", "0"], &env, None);
    assert!(!ok);
    assert!(err.contains("minutes"), "{err}");
}
