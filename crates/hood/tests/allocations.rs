//! Allocations end to end on the real binary, `hood up` with a host (made
//! by provisioning a node) whose agent reports what it measured:
//!
//! * an operator declares the host's capacity; one-core slices fill it
//!   exactly and the next is refused with a clear 409; each slice becomes
//!   `active` in a sandbox of its own (its host name, its own PID 1, pinned
//!   to its core), a released slice's sandbox is gone and its core placed
//!   again; idempotent retries, tenancy, and an audit row per mutation
//!   carrying the request's id;
//! * SIGKILL of `hood up` while clients allocate and release, ten times:
//!   every reservation matches a live allocation, the audit log has one row
//!   per mutation, and once the worker has settled, a sandbox runs for
//!   exactly the active allocations.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::edge::free_port;
use common::http::{second_org, Api};
use common::{
    hood_cli, hood_up, push_anvil, read_admin_key, sandboxes_under, seed_from_env, temp_home,
    KillUnder, Rng,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The SKUs of these tests: one and two cores (the machine may have two).
fn sku_file(dir: &Path) -> (&'static str, String) {
    let path = dir.join("skus.json");
    let sku = |name: &str, cores: u32| {
        json!({"name": name, "cores": cores, "memory_mib": 256 * cores, "disk_mib": 1024,
               "gpu": {"kind": "none"}, "price_per_minute_minor": cores, "currency": "USD"})
    };
    std::fs::write(
        &path,
        json!([sku("cpu.1c", 1), sku("cpu.2c", 2)]).to_string(),
    )
    .unwrap();
    ("HOOD_SKU_FILE", path.display().to_string())
}

/// This machine's cores: what a host may honestly declare and pin to.
fn cores_here() -> u64 {
    std::thread::available_parallelism().unwrap().get() as u64
}

/// Declares `host`'s capacity through the CLI: this machine's cores,
/// 256 MiB each.
fn declare_this_machine(host: &str, env: &[(&'static str, String)]) {
    let (cores, memory) = (cores_here().to_string(), (256 * cores_here()).to_string());
    let args = [
        "host",
        "capacity",
        host,
        "--cores",
        &cores,
        "--memory-mib",
        &memory,
        "--disk-mib",
        "204800",
    ];
    let (ok, out, err) = hood_cli(&args, env, None);
    assert!(ok, "hood {args:?}: {out} {err}");
}

/// `hood up` (with `env`) and a ready host whose capacity is declared:
/// this machine's cores, 256 MiB each.
struct Rig {
    dir: tempfile::TempDir,
    home: std::path::PathBuf,
    hood: common::HoodProcess,
    api: Api,
    key: String,
    env: Vec<(&'static str, String)>,
    _guard: KillUnder,
}

impl Rig {
    /// `None` (and a loud skip) without anvil.
    async fn start(
        test: &str,
        env: impl FnOnce(&Path) -> Vec<(&'static str, String)>,
    ) -> Option<Rig> {
        let anvil = hood_testkit::anvil_bin(test)?;
        let (dir, home) = temp_home();
        let guard = KillUnder(home.clone());
        let hood = hood_up(&home, &env(dir.path()));
        let base = hood.url("api");
        let key = read_admin_key(&home);
        let cli_env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
        push_anvil(&anvil, &cli_env);
        let api = Api::new(base);
        let host = a_ready_host(&api, &key).await;
        let rig = Rig {
            dir,
            home,
            hood,
            api,
            key,
            env: cli_env,
            _guard: guard,
        };
        declare_this_machine(&host, &rig.env);
        Some(rig)
    }

    /// Runs the CLI; it must succeed.
    fn cli(&self, args: &[&str]) -> String {
        let (ok, out, err) = hood_cli(args, &self.env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    }

    /// Creates an allocation; answers its id.
    async fn allocate(&self, body: Value) -> String {
        let r = self.api.post("/api/v1/allocations", &self.key, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    fn sandbox_runs(&self, id: &str) -> bool {
        sandbox_runs_under(&self.home, id)
    }
}

/// Provisions a node and returns the host it landed on, once ready.
async fn a_ready_host(api: &Api, key: &str) -> String {
    let r = api
        .post(
            "/api/v1/nodes",
            key,
            json!({"chain": "ethereum-anvil", "name": "alloc-host"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["node"]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let node = api.get(&format!("/api/v1/nodes/{id}"), key).await.body;
        if node["state"] == "healthy" {
            return node["host_id"].as_str().expect("placed").to_owned();
        }
        assert_ne!(node["state"], "failed", "{node}");
        assert!(started.elapsed() < Duration::from_secs(90), "{node}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the allocation is in `state`.
async fn wait_alloc(api: &Api, key: &str, id: &str, state: &str) -> Value {
    wait_alloc_within(api, key, id, state, Duration::from_secs(30)).await
}

async fn wait_alloc_within(api: &Api, key: &str, id: &str, state: &str, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let a = api
            .get(&format!("/api/v1/allocations/{id}"), key)
            .await
            .body;
        if a["state"] == state {
            return a;
        }
        assert!(started.elapsed() < within, "allocation not {state}: {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The output of an allocation's sandbox, read from its host's runtime
/// directory (a local host lives under `home`).
fn sandbox_output(home: &Path, allocation: &str) -> String {
    fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name().to_string_lossy() == name {
                    return Some(path);
                }
                if let Some(found) = find(&path, name) {
                    return Some(found);
                }
            }
        }
        None
    }
    find(home, &format!("alloc-{allocation}"))
        .map(|dir| {
            let mut text = String::new();
            for entry in walk(&dir) {
                if entry.file_name().is_some_and(|n| n == "output.log") {
                    text.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
                }
            }
            text
        })
        .unwrap_or_default()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_slices_fill_a_declared_host_exactly_and_run_in_sandboxes() {
    let Some(anvil) = hood_testkit::anvil_bin("allocations_end_to_end") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[sku_file(dir.path())]);
    let base = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);
    let api = Api::new(base.clone());
    let host = a_ready_host(&api, &key).await;
    let n = cores_here();

    // The agent measured the host when it connected: this machine's cores
    // and memory, no GPU (no NVML here).
    let reported = api
        .get(&format!("/api/v1/hosts/{host}/capacity"), &key)
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.text);
    assert_eq!(reported.body["source"], "reported");
    assert_eq!(reported.body["cores"], n, "{}", reported.text);
    assert!(reported.body["memory_mib"].as_u64().unwrap() > 1024);
    assert!(reported.body["disk_mib"].as_u64().unwrap() > 0);
    assert_eq!(reported.body["gpus"], json!([]));

    // The operator declares the host: its cores, 256 MiB each to rent.
    let (ok, out, err) = hood_cli(
        &[
            "host",
            "capacity",
            &host,
            "--cores",
            &n.to_string(),
            "--memory-mib",
            &(256 * n).to_string(),
            "--disk-mib",
            "204800",
        ],
        &env,
        None,
    );
    assert!(ok, "declare: {out}{err}");
    assert!(
        out.contains("declared") && out.contains(&format!("{n} ({n} free)")),
        "{out}"
    );
    let (ok, out, err) = hood_cli(&["alloc", "skus"], &env, None);
    assert!(
        ok && out.contains("cpu.1c") && out.contains("cpu.2c"),
        "{out}{err}"
    );

    // One-core slices fill the host exactly, each on its own core, each
    // running its command in a sandbox of its own.
    let script = "echo host=$(hostname); grep Cpus_allowed_list /proc/self/status; \
                  echo init=$(tr '\\0' ' ' < /proc/1/cmdline | cut -c1-40); exec sleep 3600";
    let mut ids = vec![];
    let mut cores = BTreeSet::new();
    for i in 0..n {
        let (ok, out, err) = hood_cli(
            &[
                "--output", "json", "alloc", "create", "cpu.1c", "--", "sh", "-c", script,
            ],
            &env,
            None,
        );
        assert!(ok, "slice {i}: {out}{err}");
        let a: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["state"], "requested");
        assert_eq!(a["host_id"], host.as_str());
        cores.insert(a["reservation"]["cores"][0].as_u64().unwrap());
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(cores, (0..n).collect::<BTreeSet<_>>());
    for id in &ids {
        let a = wait_alloc(&api, &key, id, "active").await;
        let core = a["reservation"]["cores"][0].as_u64().unwrap();
        let started = Instant::now();
        let output = loop {
            let output = sandbox_output(&home, id);
            if output.contains("init=") {
                break output;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{output}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let hostname = format!("alloc-{}", &id.replace('-', "")[20..]);
        assert!(output.contains(&format!("host={hostname}")), "{output}");
        assert!(
            output.contains(&format!("Cpus_allowed_list:\t{core}\n")),
            "pinned to core {core}: {output}"
        );
        assert!(output.contains("init=/bin/sh -c hostname"), "{output}");
    }
    let running: BTreeSet<String> = sandboxes_under(&home).into_iter().map(|(_, a)| a).collect();
    assert_eq!(running, ids.iter().cloned().collect::<BTreeSet<_>>());

    // Its output through the API, from the host's agent: the CLI prints
    // the lines, JSON keeps them as a list.
    let (ok, out, err) = hood_cli(&["alloc", "logs", &ids[0], "--lines", "10"], &env, None);
    let hostname = format!("host=alloc-{}", &ids[0].replace('-', "")[20..]);
    assert!(ok && out.contains(&hostname), "{out}{err}");
    let logs = api
        .get(
            &format!("/api/v1/allocations/{}/logs?lines=1", ids[0]),
            &key,
        )
        .await;
    assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
    assert_eq!(
        logs.body["lines"].as_array().unwrap().len(),
        1,
        "{}",
        logs.text
    );
    assert!(
        logs.body["lines"][0].as_str().unwrap().starts_with("init="),
        "{}",
        logs.text
    );
    let r = api
        .get(
            &format!("/api/v1/allocations/{}/logs?lines=0", ids[0]),
            &key,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // The next is refused with a clear 409, through the API and the CLI.
    let r = api
        .post("/api/v1/allocations", &key, json!({"sku": "cpu.1c"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("no host has room for `cpu.1c`") && detail.contains("0 free"),
        "{detail}"
    );
    let (ok, _, err) = hood_cli(&["alloc", "create", "cpu.1c"], &env, None);
    assert!(!ok && err.contains("no host has room"), "{err}");

    // The host's view shows it full.
    let h = api.get(&format!("/api/v1/hosts/{host}"), &key).await;
    assert_eq!(h.body["capacity"]["free"]["cores"], json!([]), "{}", h.text);
    assert_eq!(
        h.body["capacity"]["reservations"].as_array().unwrap().len() as u64,
        n
    );
    assert_eq!(h.body["capacity"]["free"]["memory_mib"], 0);

    // Releasing one stops its sandbox and frees its core for the next.
    let (ok, out, err) = hood_cli(
        &["--output", "json", "alloc", "release", &ids[0]],
        &env,
        None,
    );
    assert!(ok, "{out}{err}");
    let releasing: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(releasing["state"], "releasing", "it ran: the host stops it");
    let freed = releasing["reservation"]["cores"].clone();
    wait_alloc(&api, &key, &ids[0], "released").await;
    assert!(
        !sandboxes_under(&home).iter().any(|(_, a)| a == &ids[0]),
        "the released sandbox is gone"
    );
    let again = api
        .post("/api/v1/allocations", &key, json!({"sku": "cpu.1c"}))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["reservation"]["cores"], freed);
    let again_id = again.body["id"].as_str().unwrap().to_owned();
    // Without a command it idles until released.
    wait_alloc(&api, &key, &again_id, "active").await;
    // Releasing an ended allocation answers it as it is.
    let twice = api
        .delete(&format!("/api/v1/allocations/{}", ids[0]), &key)
        .await;
    assert_eq!(twice.status, StatusCode::OK);
    assert_eq!(twice.body["state"], "released");

    // Idempotency: a retry answers the first allocation; the same key for
    // another request is a conflict. (Release a slice to make room.)
    api.delete(&format!("/api/v1/allocations/{again_id}"), &key)
        .await;
    wait_alloc(&api, &key, &again_id, "released").await;
    let send = |sku: &str| {
        api.http
            .post(format!("{base}/api/v1/allocations"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "order-42")
            .header("x-request-id", format!("test-{sku}"))
            .json(&json!({"sku": sku}))
            .send()
    };
    let first = send("cpu.1c").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["x-request-id"], "test-cpu.1c");
    let first: Value = first.json().await.unwrap();
    let retry = send("cpu.1c").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    let other = send("cpu.2c").await.unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);

    // Bad input is a 400 naming each field; nothing is placed.
    let r = api
        .post(
            "/api/v1/allocations",
            &key,
            json!({"sku": "cpu.nope", "ssh_public_keys": ["ssh-ed25519 garbage"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let named: Vec<&str> = r.body["invalid-params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["ssh_public_keys", "sku"], "{}", r.text);

    // Another organization sees none of it and cannot use this host.
    let bob = second_org(&api, &key).await;
    let r = api
        .get(
            &format!("/api/v1/allocations/{}", first["id"].as_str().unwrap()),
            &bob,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .post("/api/v1/allocations", &bob, json!({"sku": "cpu.1c"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.text.contains("available to this organization"),
        "{}",
        r.text
    );
    let r = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/hosts/{host}/capacity"),
            &bob,
            Some(json!({"cores": 64, "memory_mib": 1, "disk_mib": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Shrinking under the live allocations is refused.
    let r = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/hosts/{host}/capacity"),
            &key,
            Some(json!({"cores": 1, "memory_mib": 256, "disk_mib": 204800})),
        )
        .await;
    if n > 1 {
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    }

    // A platform administrator force-releases any allocation, with a
    // reason; another organization's administrator may not.
    let r = api
        .post(
            &format!("/api/v1/allocations/{}/force-release", ids[1]),
            &bob,
            json!({"reason": "mine now"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let (ok, out, err) = hood_cli(
        &[
            "--output",
            "json",
            "alloc",
            "force-release",
            &ids[1],
            "--reason",
            "host maintenance",
        ],
        &env,
        None,
    );
    assert!(ok, "{out}{err}");
    wait_alloc(&api, &key, &ids[1], "released").await;
    let forced = api
        .get(
            &format!(
                "/api/v1/audit?action=allocation.force_release&resource_id={}",
                ids[1]
            ),
            &key,
        )
        .await;
    assert_eq!(
        forced.body["items"][0]["reason"], "host maintenance",
        "{}",
        forced.text
    );

    // A command that ends on its own ends its allocation: released (the
    // slice is free again), with the reason on the record and in the
    // audit log; its sandbox is cleaned up and its logs are gone with it.
    let r = api
        .post(
            "/api/v1/allocations",
            &key,
            json!({"sku": "cpu.1c", "command": ["sh", "-c", "echo bye; exit 3"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let short = r.body["id"].as_str().unwrap().to_owned();
    let ended = wait_alloc(&api, &key, &short, "released").await;
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("ended on its own")),
        "{ended}"
    );
    let r = api
        .get(
            &format!("/api/v1/audit?action=allocation.exit&resource_id={short}"),
            &key,
        )
        .await;
    assert_eq!(
        r.body["items"][0]["actor"], "system:orchestrator",
        "{}",
        r.text
    );
    let r = api
        .get(&format!("/api/v1/allocations/{short}/logs"), &key)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(!sandboxes_under(&home).iter().any(|(_, a)| a == &short));

    // One audit row per mutation: n + 3 creations by the user, 2 releases
    // and a force-release, one declaration; the orchestrator's own moves
    // (one exit among them) are rows too.
    let (ok, out, err) = hood_cli(
        &["--output", "json", "audit", "--limit", "1000"],
        &env,
        None,
    );
    assert!(ok, "{out}{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let count = |action: &str| {
        rows["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .count() as u64
    };
    assert_eq!(count("allocation.create"), n + 3, "{out}");
    assert_eq!(count("allocation.release"), 2, "{out}");
    assert_eq!(count("allocation.force_release"), 1, "{out}");
    assert_eq!(count("allocation.exit"), 1, "{out}");
    assert_eq!(count("allocation.released"), 4, "{out}");
    assert!(count("allocation.activate") > n, "{out}");
    let system = rows["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "allocation.activate")
        .all(|r| r["actor"] == "system:orchestrator");
    assert!(system, "{out}");
    let declared = hood_cli(
        &[
            "--output",
            "json",
            "audit",
            "--action",
            "host.capacity.declare",
        ],
        &env,
        None,
    );
    let declared: Value = serde_json::from_str(&declared.1).unwrap();
    assert_eq!(declared["items"].as_array().unwrap().len(), 1, "{declared}");
    assert_eq!(declared["items"][0]["after"]["capacity"]["cores"], n);
    let keyed = hood_cli(
        &["--output", "json", "audit", "--request-id", "test-cpu.1c"],
        &env,
        None,
    );
    let keyed: Value = serde_json::from_str(&keyed.1).unwrap();
    assert_eq!(keyed["items"].as_array().unwrap().len(), 1, "{keyed}");
    assert_eq!(keyed["items"][0]["resource_id"], first["id"]);
    assert!(keyed["items"][0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("key:"));
    // bob's organization has no rows and cannot read another's.
    let r = api.get("/api/v1/audit", &bob).await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);

    // A maximum duration runs out: the allocation is released by the
    // orchestrator, its sandbox stopped.
    api.delete(
        &format!("/api/v1/allocations/{}", first["id"].as_str().unwrap()),
        &key,
    )
    .await;
    wait_alloc(&api, &key, first["id"].as_str().unwrap(), "released").await;
    let brief = api
        .post(
            "/api/v1/allocations",
            &key,
            json!({"sku": "cpu.1c", "max_duration_minutes": 1}),
        )
        .await;
    assert_eq!(brief.status, StatusCode::CREATED, "{}", brief.text);
    assert!(brief.body["expires_at"].is_string(), "{}", brief.text);
    let brief_id = brief.body["id"].as_str().unwrap().to_owned();
    wait_alloc(&api, &key, &brief_id, "active").await;
    let started = Instant::now();
    loop {
        let a = api
            .get(&format!("/api/v1/allocations/{brief_id}"), &key)
            .await
            .body;
        if a["state"] == "released" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not released after its minute: {a}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let expired = api
        .get(
            &format!("/api/v1/audit?resource_id={brief_id}&action=allocation.expire"),
            &key,
        )
        .await;
    assert_eq!(
        expired.body["items"][0]["actor"], "system:orchestrator",
        "{}",
        expired.text
    );
    assert!(!sandboxes_under(&home).iter().any(|(_, a)| a == &brief_id));
    drop(hood);
}

/// Every allocation of the organization.
async fn allocations(api: &Api, key: &str) -> Vec<Value> {
    api.get("/api/v1/allocations", key).await.body["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// What the store holds after a crash must be whole: the host's
/// reservations are exactly the live allocations' (and fit it: the
/// capacity view computes what is free from them), and the audit log has
/// one creation per allocation and one release per released one.
///
/// The list and the capacity are two reads while the worker may still be
/// finishing releases the crash interrupted, so they are compared only
/// when the list read before and after the capacity agree; a mismatch
/// that outlives 30 s of such views is a leak.
async fn assert_consistent(api: &Api, key: &str, host: &str, cores: u64) -> Vec<Value> {
    let states = |all: &[Value]| -> Vec<(Value, Value)> {
        all.iter()
            .map(|a| (a["id"].clone(), a["state"].clone()))
            .collect()
    };
    let started = Instant::now();
    'view: loop {
        let all = loop {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the allocations never held still for a look"
            );
            let before = allocations(api, key).await;
            let capacity = api
                .get(&format!("/api/v1/hosts/{host}/capacity"), key)
                .await;
            assert_eq!(capacity.status, StatusCode::OK, "{}", capacity.text);
            let after = allocations(api, key).await;
            if states(&before) != states(&after) {
                // The worker moved something in between: look again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let live: Vec<&Value> = after
                .iter()
                .filter(|a| a["state"] != "released" && a["state"] != "failed")
                .collect();
            let mut held: Vec<Value> = capacity.body["reservations"].as_array().unwrap().clone();
            let mut want: Vec<Value> = live.iter().map(|a| a["reservation"].clone()).collect();
            let order = |v: &Value| v["cores"].to_string();
            held.sort_by_key(order);
            want.sort_by_key(order);
            if held != want && started.elapsed() < Duration::from_secs(30) {
                eprintln!(
                    "reservations {held:?} differ from the live allocations' {want:?}; again"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(
                held,
                want,
                "reservations are the live allocations': {:?}",
                live.iter()
                    .map(|a| (&a["id"], &a["state"]))
                    .collect::<Vec<_>>()
            );
            let free = capacity.body["free"]["cores"].as_array().unwrap().len() as u64;
            assert_eq!(
                free + live.len() as u64,
                cores,
                "every core is free or held once"
            );
            break after;
        };

        // Every row, a page at a time (newest first).
        let mut rows: Vec<Value> = vec![];
        loop {
            let page = match rows.last() {
                None => "/api/v1/audit?limit=1000".to_owned(),
                Some(r) => format!(
                    "/api/v1/audit?limit=1000&before={}",
                    r["id"].as_str().unwrap()
                ),
            };
            let items = api.get(&page, key).await.body["items"]
                .as_array()
                .unwrap()
                .clone();
            let done = items.len() < 1000;
            rows.extend(items);
            if done {
                break;
            }
        }
        if states(&allocations(api, key).await) != states(&all) {
            // The audit was read after a transition the list had not seen.
            continue 'view;
        }
        let count = |action: &str, id: &Value| {
            rows.iter()
                .filter(|r| r["action"] == action && &r["resource_id"] == id)
                .count()
        };
        for a in &all {
            let state = a["state"].as_str().unwrap();
            let released = matches!(state, "releasing" | "released");
            assert_eq!(count("allocation.create", &a["id"]), 1, "{a}");
            assert_eq!(
                count("allocation.release", &a["id"]),
                usize::from(released),
                "{a}"
            );
            // Released by the worker after the agent stopped it, unless the
            // user's release found nothing dispatched and ended it at once.
            let at_once = rows.iter().any(|r| {
                r["action"] == "allocation.release"
                    && r["resource_id"] == a["id"]
                    && r["after"]["state"] == "released"
            });
            assert_eq!(
                count("allocation.released", &a["id"]),
                usize::from(state == "released" && !at_once),
                "{a}"
            );
            assert!(
                count("allocation.activate", &a["id"]) <= 1,
                "activated once at most: {a}"
            );
        }
        return all;
    }
}

/// Waits until no allocation is waiting for the worker or its agent.
async fn settle(api: &Api, key: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all = allocations(api, key).await;
        let busy = all.iter().any(|a| {
            matches!(
                a["state"].as_str(),
                Some("requested" | "provisioning" | "releasing")
            )
        });
        if !busy {
            return all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker did not settle: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_allocation_and_release_leaves_every_reservation_matching() {
    sigkill_while_allocating("allocations_sigkill", None).await;
}

/// The container image of the container tests.
const E2E_IMAGE: &str = "hood/e2e:1";

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_container_creation_leaves_no_orphaned_container() {
    let test = "allocations_sigkill_containers";
    let Some(podman) = hood_testkit::podman::Podman::start(test) else {
        return;
    };
    let Some(rootfs) = hood_testkit::podman::rootfs_tarball(test) else {
        return;
    };
    podman.import_rootfs(&rootfs, E2E_IMAGE);
    sigkill_while_allocating(test, Some(&podman)).await;
}

/// Ten SIGKILLs of `hood up` while four clients allocate and release
/// (containers on `podman` when given, else sandboxes): after each
/// restart the reservations are exactly the live allocations' and the
/// audit is whole; once settled, what runs on the host is exactly the
/// active allocations.
async fn sigkill_while_allocating(test: &str, podman: Option<&hood_testkit::podman::Podman>) {
    let Some(anvil) = hood_testkit::anvil_bin(test) else {
        return;
    };
    let mut rng = Rng(seed_from_env("HOOD_ALLOC_CRASH_SEED"));
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let skus = sku_file(dir.path());
    let gateway = free_port();
    let mut env = vec![
        ("HOOD_HOME", home.display().to_string()),
        (skus.0, skus.1.clone()),
    ];
    if let Some(podman) = podman {
        env.push((
            "HOOD_CONTAINER_SOCKET",
            podman.socket().display().to_string(),
        ));
    }
    let request = match podman {
        Some(_) => json!({"sku": "cpu.1c", "image": E2E_IMAGE, "command": ["sleep", "3600"]}),
        None => json!({"sku": "cpu.1c"}),
    };
    let start = |_: &Path| {
        common::HoodProcess::start(
            &[
                "up",
                "--api-addr",
                "127.0.0.1:0",
                "--auth-addr",
                "127.0.0.1:0",
                "--gateway-addr",
                &gateway,
                "--edge-addr",
                "127.0.0.1:0",
            ],
            &env,
            &["api", "auth", "edge"],
        )
    };
    let mut hood = start(&home);
    let key = read_admin_key(&home);
    push_anvil(
        &anvil,
        &[
            ("HOOD_SERVER", hood.url("api")),
            ("HOOD_TOKEN", key.clone()),
        ],
    );
    let host = a_ready_host(&Api::new(hood.url("api")), &key).await;
    let cores = cores_here();
    let r = Api::new(hood.url("api"))
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/hosts/{host}/capacity"),
            &key,
            Some(json!({"cores": cores, "memory_mib": 256 * cores, "disk_mib": 204800})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let mut answered = 0;
    let mut made_before = 0;
    let mut runs_that_allocated = 0;
    for run in 0..10 {
        let base = hood.url("api");
        // Each run starts settled (the agent reconnected, the worker caught
        // up), so its clients both allocate and release before the kill.
        settle(&Api::new(base.clone()), &key).await;
        let started = Instant::now();
        while Api::new(base.clone())
            .get(&format!("/api/v1/hosts/{host}"), &key)
            .await
            .body["connected"]
            != true
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the agent came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Four clients create and release as fast as they can.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (base, key, stop) = (base.clone(), key.clone(), stop.clone());
                let request = request.clone();
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut ok = 0;
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        let made = http
                            .post(format!("{base}/api/v1/allocations"))
                            .bearer_auth(&key)
                            .header("Idempotency-Key", format!("run{run}-c{c}-{i}"))
                            .json(&request)
                            .send()
                            .await;
                        let Ok(made) = made else { break };
                        let status = made.status();
                        let victim = if status == StatusCode::CREATED {
                            ok += 1;
                            let Ok(a) = made.json::<Value>().await else {
                                break;
                            };
                            a["id"].as_str().unwrap().to_owned()
                        } else {
                            // Full: release the oldest live one.
                            let text = made.text().await.unwrap_or_default();
                            assert_eq!(status, StatusCode::CONFLICT, "{text}");
                            let Ok(list) = http
                                .get(format!("{base}/api/v1/allocations"))
                                .bearer_auth(&key)
                                .send()
                                .await
                            else {
                                break;
                            };
                            let Ok(list) = list.json::<Value>().await else {
                                break;
                            };
                            let live = list["items"].as_array().unwrap().iter().rev().find(|a| {
                                !matches!(
                                    a["state"].as_str(),
                                    Some("released" | "failed" | "releasing")
                                )
                            });
                            match live {
                                Some(a) => a["id"].as_str().unwrap().to_owned(),
                                None => {
                                    // Everything is on its way out.
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                    continue;
                                }
                            }
                        };
                        let released = http
                            .delete(format!("{base}/api/v1/allocations/{victim}"))
                            .bearer_auth(&key)
                            .send()
                            .await;
                        match released {
                            Ok(r) if r.status().is_success() => ok += 1,
                            _ => break,
                        }
                    }
                    ok
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
        hood.stop("-KILL");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            answered += c.await.unwrap();
        }
        hood = start(&home);
        let all = assert_consistent(&Api::new(hood.url("api")), &key, &host, cores).await;
        eprintln!("run {run}: {} allocations", all.len());
        if all.len() > made_before {
            runs_that_allocated += 1;
        } else {
            // Say why, for the record: the host as the API sees it.
            let h = Api::new(hood.url("api"))
                .get(&format!("/api/v1/hosts/{host}"), &key)
                .await;
            eprintln!("run {run} allocated nothing; host: {}", h.text);
        }
        made_before = all.len();
    }
    assert!(
        runs_that_allocated >= 8,
        "most runs were killed while allocating: {runs_that_allocated} of 10"
    );
    assert!(
        answered > 10,
        "the clients got answers between kills: {answered}"
    );

    // Once the worker has settled everything, a sandbox runs for exactly
    // the active allocations: none orphaned, none missing.
    let api = Api::new(hood.url("api"));
    let all = settle(&api, &key).await;
    assert_consistent(&api, &key, &host, cores).await;
    let active: BTreeSet<String> = all
        .iter()
        .filter(|a| a["state"] == "active")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let started = Instant::now();
    loop {
        // On an engine: every container, running or not, is an active
        // allocation's, and runs.
        let running: BTreeSet<String> = match podman {
            Some(podman) => {
                let all: BTreeSet<String> = podman.containers().into_iter().collect();
                let up: BTreeSet<String> = podman.running_containers().into_iter().collect();
                if all != up {
                    BTreeSet::new()
                } else {
                    all.iter()
                        .filter_map(|c| c.strip_prefix("alloc-"))
                        .map(str::to_owned)
                        .collect()
                }
            }
            None => sandboxes_under(&home).into_iter().map(|(_, a)| a).collect(),
        };
        if running == active {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "running {running:?} != active allocations {active:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if podman.is_some() {
        assert!(
            !active.iter().any(|a| sandbox_runs_under(&home, a)),
            "containers, not sandboxes"
        );
    }
    drop(hood);
}

/// Whether a sandbox of allocation `id` runs under `home`.
fn sandbox_runs_under(home: &Path, id: &str) -> bool {
    sandboxes_under(home).iter().any(|(_, a)| a == id)
}

/// Prepaid credits on `hood up`: a running allocation of an organization
/// whose credits are exhausted is released by the billing role within a
/// tick, its sandbox stopped; a balance that cannot pay a first minute is
/// refused (402, problem JSON); a running allocation is charged per
/// minute, and when the balance cannot hold its next minute it is
/// released, the balance never below zero.
#[tokio::test(flavor = "multi_thread")]
async fn prepaid_allocations_stop_when_credits_run_out() {
    let Some(rig) = Rig::start("allocations_prepaid", |dir| {
        // A pricey core: 60 cents a minute, 10,000 micro-dollars a second.
        let skus = dir.join("skus.json");
        std::fs::write(
            &skus,
            json!([{"name": "cpu.pricey", "cores": 1, "memory_mib": 256, "disk_mib": 1024,
                    "gpu": {"kind": "none"}, "price_per_minute_minor": 60, "currency": "USD"}])
            .to_string(),
        )
        .unwrap();
        vec![
            ("HOOD_SKU_FILE", skus.display().to_string()),
            ("HOOD_CREDITS_TICK_MS", "300".into()),
        ]
    })
    .await
    else {
        return;
    };
    let (api, key) = (&rig.api, rig.key.as_str());
    let card = rig.dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({"currency": "USD", "rules": [
            {"meter": "rpc_compute_units", "price": {"tiers": [{"rate": {"amount_minor": 1, "per": 1}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    rig.cli(&[
        "billing",
        "rate-card",
        "create",
        "--file",
        card.to_str().unwrap(),
    ]);
    let pricey = || json!({"sku": "cpu.pricey"});

    // Running before the organization went prepaid; credits enabled with
    // nothing in them cut it off, and the billing role releases it.
    let before = rig.allocate(pricey()).await;
    wait_alloc(api, key, &before, "active").await;
    assert!(rig.sandbox_runs(&before));
    rig.cli(&["credits", "enable", "--window-seconds", "2"]);
    let ended = wait_alloc(api, key, &before, "released").await;
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("exhausted")),
        "{ended}"
    );
    assert!(ended["active_until"].is_string(), "{ended}");
    assert!(!rig.sandbox_runs(&before));
    let r = api
        .get(
            &format!("/api/v1/audit?action=allocation.credits_exhausted&resource_id={before}"),
            key,
        )
        .await;
    assert_eq!(r.body["items"][0]["actor"], "system:billing", "{}", r.text);

    // Cut off: 402 with a reason. Fifty cents cannot pay a first minute
    // of sixty: still 402.
    let refused = api.post("/api/v1/allocations", key, pricey()).await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        refused.text
    );
    assert!(refused.text.contains("exhausted"), "{}", refused.text);
    rig.cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "50",
        "--reference",
        "t-1",
    ]);
    let refused = api.post("/api/v1/allocations", key, pricey()).await;
    assert_eq!(
        refused.status,
        StatusCode::PAYMENT_REQUIRED,
        "{}",
        refused.text
    );
    assert!(refused.text.contains("first minute"), "{}", refused.text);
    let (ok, _, err) = hood_cli(&["alloc", "create", "cpu.pricey"], &rig.env, None);
    assert!(!ok && err.contains("first minute"), "{err}");

    // Thirty cents more: 80 cents, a first minute and 20 s more. It runs,
    // is charged by the second, and is released when the next window
    // cannot be held.
    rig.cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "30",
        "--reference",
        "t-2",
    ]);
    let paid = rig.allocate(pricey()).await;
    wait_alloc(api, key, &paid, "active").await;
    let started = Instant::now();
    let ended = wait_alloc_within(api, key, &paid, "released", Duration::from_secs(150)).await;
    let ran = started.elapsed();
    assert!(
        ran > Duration::from_secs(50) && ran < Duration::from_secs(100),
        "80 cents at 60 a minute ran {ran:?}"
    );
    assert!(
        ended["error"].as_str().unwrap().contains("exhausted"),
        "{ended}"
    );
    assert!(!rig.sandbox_runs(&paid));
    let credits = api.get("/api/v1/credits", key).await;
    assert_eq!(credits.body["state"], "stopped", "{}", credits.text);
    let spent = credits.body["spent_units"].as_u64().unwrap();
    assert!(
        spent <= 800_000 && spent > 700_000,
        "spent {spent} of 800,000: never more than was paid in"
    );

    // An operator gives 50 cents back with a reason (the CLI): the
    // organization is active again and the audit log says why.
    let out = rig.cli(&[
        "credits",
        "refund",
        "--amount-minor",
        "50",
        "--reference",
        "OUTAGE-1",
        "--reason",
        "host outage on the 3rd",
    ]);
    assert!(out.contains("50") && out.contains("true"), "{out}");
    let credits = api.get("/api/v1/credits", key).await;
    assert_eq!(credits.body["state"], "active", "{}", credits.text);
    let r = api.get("/api/v1/audit?action=credits.refund", key).await;
    assert_eq!(
        r.body["items"][0]["reason"], "host outage on the 3rd",
        "{}",
        r.text
    );
    let (ok, _, err) = hood_cli(
        &[
            "credits",
            "refund",
            "--amount-minor",
            "60",
            "--reference",
            "OUTAGE-1",
            "--reason",
            "again",
        ],
        &rig.env,
        None,
    );
    assert!(!ok && err.contains("another refund"), "{err}");

    // A monthly allocation budget (the CLI): one cent cannot pay a minute
    // of the pricey core, so the allocation is refused before it is
    // placed; lifted, the budget is gone.
    let out = rig.cli(&["alloc", "budget", "--set-minor", "1"]);
    assert!(
        out.contains("MONTHLY_LIMIT_MINOR") && out.contains("USD"),
        "{out}"
    );
    let (ok, _, err) = hood_cli(&["alloc", "create", "cpu.pricey"], &rig.env, None);
    assert!(
        !ok && err.contains("budget") && err.contains("402"),
        "{err}"
    );
    let budget = api.get("/api/v1/allocation-budget", key).await;
    assert_eq!(budget.body["monthly_limit_minor"], 1, "{}", budget.text);
    rig.cli(&["alloc", "budget", "--remove"]);
    let gone = api.get("/api/v1/allocation-budget", key).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
}

/// A host cut off from the control plane stops its sandboxes when their
/// leases run out: with a 3 s lease, a connected host's sandbox outlives
/// many leases (renewed), but once `hood up` is frozen (SIGSTOP; the
/// host's agent keeps running) the sandbox is stopped within the lease;
/// thawed, the control plane sees it ended and releases the allocation.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_cut_off_from_the_control_plane_stops_sandboxes_when_their_leases_run_out() {
    let Some(rig) = Rig::start("allocations_lease", |dir| {
        vec![sku_file(dir), ("HOOD_ALLOCATION_LEASE_MS", "3000".into())]
    })
    .await
    else {
        return;
    };
    let id = rig.allocate(json!({"sku": "cpu.1c"})).await;
    wait_alloc(&rig.api, &rig.key, &id, "active").await;
    // Connected: renewed, it outlives three leases.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(
        rig.sandbox_runs(&id),
        "a renewed lease keeps the sandbox running"
    );

    // Cut off: the control plane is frozen, the agent is not.
    let pid = rig.hood.pid().to_string();
    let signal = |s: &str| {
        assert!(std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let frozen = Instant::now();
    while rig.sandbox_runs(&id) {
        if frozen.elapsed() > Duration::from_secs(15) {
            signal("-CONT");
            panic!("the sandbox outlived its lease by far");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stopped_after = frozen.elapsed();
    signal("-CONT");
    assert!(
        stopped_after <= Duration::from_secs(6),
        "stopped {stopped_after:?} after the cut-off (lease 3 s, renewed every 1 s)"
    );
    // Back in touch: the host reports the sandbox ended; it is released.
    let ended = wait_alloc(&rig.api, &rig.key, &id, "released").await;
    assert!(
        ended["error"].as_str().is_some_and(|e| e.contains("ended")),
        "{ended}"
    );
}

/// The idle policy: an allocation under its utilization floor for the
/// policy's minutes is released (audited as `allocation.idle`); a busy one
/// with the same policy keeps running.
#[tokio::test(flavor = "multi_thread")]
async fn idle_allocations_are_released_and_busy_ones_kept() {
    let Some(rig) = Rig::start("allocations_idle", |dir| {
        vec![sku_file(dir), ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into())]
    })
    .await
    else {
        return;
    };
    let (api, key) = (&rig.api, rig.key.as_str());
    let policy = json!({"minutes": 1, "utilization_floor_percent": 5});
    let idle = rig.allocate(json!({"sku": "cpu.1c", "idle": policy})).await;
    let busy = rig
        .allocate(json!({"sku": "cpu.1c", "idle": policy,
                         // Busy a third of the time: well over the floor,
                         // without taking a core from the other tests.
                         "command": ["sh", "-c",
                             "while :; do timeout 0.3 sh -c 'while :; do :; done'; sleep 0.6; done"]}))
        .await;
    wait_alloc(api, key, &idle, "active").await;
    wait_alloc(api, key, &busy, "active").await;
    let started = Instant::now();
    // The idle one shows since when it idles, and that instant holds from
    // round to round (it is kept on the allocation, not restarted).
    let idle_since = loop {
        let a = api
            .get(&format!("/api/v1/allocations/{idle}"), key)
            .await
            .body;
        if let Some(since) = a["idle_since"].as_str() {
            break since.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never idle: {a}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = api
        .get(&format!("/api/v1/allocations/{idle}"), key)
        .await
        .body;
    assert_eq!(a["idle_since"], idle_since.as_str(), "{a}");
    let ended = wait_alloc_within(api, key, &idle, "released", Duration::from_secs(120)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(55),
        "released after {:?}, before its idle minute",
        started.elapsed()
    );
    assert!(
        ended["error"].as_str().is_some_and(|e| e.contains("idle")),
        "{ended}"
    );
    assert!(!rig.sandbox_runs(&idle));
    let r = api
        .get(
            &format!("/api/v1/audit?action=allocation.idle&resource_id={idle}"),
            key,
        )
        .await;
    assert_eq!(
        r.body["items"][0]["actor"], "system:orchestrator",
        "{}",
        r.text
    );
    // The busy one ran the same minute and more, over its floor: kept.
    let b = api
        .get(&format!("/api/v1/allocations/{busy}"), key)
        .await
        .body;
    assert_eq!(b["state"], "active", "{b}");
    assert!(b["idle_since"].is_null(), "busy: {b}");
    assert!(rig.sandbox_runs(&busy));
    api.delete(&format!("/api/v1/allocations/{busy}"), key)
        .await;
    wait_alloc(api, key, &busy, "released").await;
}

/// An allocation's output followed live over server-sent events, through
/// the API and `hood alloc logs --follow`: every line once, in order, as
/// it is written; the stream ends when the allocation is released.
#[tokio::test(flavor = "multi_thread")]
async fn allocation_logs_are_followed_live_until_release() {
    let Some(rig) = Rig::start("allocations_follow", |dir| vec![sku_file(dir)]).await else {
        return;
    };
    let script = "i=0; while [ $i -lt 60 ]; do i=$((i+1)); echo line-$i; sleep 0.1; done; \
                  exec sleep 3600";
    let id = rig
        .allocate(json!({"sku": "cpu.1c", "command": ["sh", "-c", script]}))
        .await;
    wait_alloc(&rig.api, &rig.key, &id, "active").await;
    let cli = {
        let env = rig.env.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            hood_cli(
                &["alloc", "logs", &id, "--follow", "--lines", "1000"],
                &env,
                None,
            )
        })
    };

    let mut resp = rig
        .api
        .http
        .get(format!(
            "{}/api/v1/allocations/{id}/logs/follow?lines=1",
            rig.hood.url("api")
        ))
        .bearer_auth(&rig.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut pending = String::new();
    let mut lines: Vec<String> = vec![];
    let mut ended = None;
    let started = Instant::now();
    let mut released = false;
    while ended.is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "{lines:?}");
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
            .await
            .expect("an event or a keep-alive in time")
            .unwrap()
        else {
            break;
        };
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let event = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("message")
                .to_owned();
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("")
                .to_owned();
            match event.as_str() {
                "line" => lines.push(data),
                "end" => ended = Some(data),
                _ => {}
            }
        }
        // Once the last line arrived (and the CLI, polling as often, had
        // time to get it too), release: the streams must end.
        if !released && lines.last().is_some_and(|l| l == "line-60") {
            tokio::time::sleep(hood_api::sse::POLL * 3).await;
            rig.api
                .delete(&format!("/api/v1/allocations/{id}"), &rig.key)
                .await;
            released = true;
        }
    }
    assert!(released, "line-60 never came: {lines:?}");
    // Every line once, in order, from where the stream started (the
    // runtime's own `[hood-runtime] …` lines aside).
    let numbers: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("line-"))
        .map(|n| n.parse().unwrap())
        .collect();
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..=60).collect::<Vec<_>>(),
        "no gap and no repeat"
    );
    assert!(ended.unwrap().contains("releas"));
    // The CLI followed the same lines and stopped at the end.
    let (ok, out, err) = tokio::time::timeout(Duration::from_secs(30), cli)
        .await
        .expect("the CLI ends with the stream")
        .unwrap();
    assert!(ok, "{out}{err}");
    let printed: Vec<&str> = out.lines().filter(|l| l.starts_with("line-")).collect();
    assert_eq!(printed.first(), Some(&"line-1"), "{out}");
    assert_eq!(printed.last(), Some(&"line-60"), "{out}");
    assert_eq!(printed.len(), 60, "{out}");
}

/// One client connection to a terminal session: what it read, and where.
struct Term {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    /// The offset after the last output byte received.
    offset: u64,
    /// Every output byte received, in order.
    output: Vec<u8>,
    exit: Option<(Option<i32>, String)>,
}

impl Term {
    async fn connect(rig: &Rig, id: &str, query: &str) -> Term {
        Term::connect_to(&rig.hood.url("api"), &rig.key, id, query).await
    }

    /// Connects to the API at `base` (`http://…`) with `key`.
    async fn connect_to(base: &str, key: &str, id: &str, query: &str) -> Term {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::Message;
        let url = format!(
            "{}/api/v1/allocations/{id}/terminal?{query}",
            base.replace("http://", "ws://")
        );
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("terminal WebSocket");
        let hello = loop {
            match futures::StreamExt::next(&mut ws).await.unwrap().unwrap() {
                Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
                _ => continue,
            }
        };
        Term {
            ws,
            session: hello["session_id"].as_str().unwrap().to_owned(),
            offset: hello["offset"].as_u64().unwrap(),
            output: vec![],
            exit: None,
        }
    }

    async fn send(&mut self, frame: hood_terminal::ClientFrame) {
        use tokio_tungstenite::tungstenite::Message;
        futures::SinkExt::send(&mut self.ws, Message::binary(frame.encode()))
            .await
            .unwrap();
    }

    async fn type_line(&mut self, line: &str) {
        self.send(hood_terminal::ClientFrame::Input(
            format!("{line}\n").into_bytes(),
        ))
        .await;
    }

    /// Reads until `done` holds for the text received, or the session
    /// ends. Output must continue exactly at the offset held.
    async fn read_until(&mut self, done: impl Fn(&str) -> bool) -> String {
        use hood_terminal::ServerFrame;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&String::from_utf8_lossy(&self.output)) && self.exit.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(left, futures::StreamExt::next(&mut self.ws))
                .await
                .unwrap_or_else(|_| {
                    panic!("terminal output: {}", String::from_utf8_lossy(&self.output))
                });
            let Some(Ok(Message::Binary(bytes))) = message else {
                continue;
            };
            match ServerFrame::decode(&bytes).unwrap() {
                ServerFrame::Output { offset, data } => {
                    assert_eq!(offset, self.offset, "output continues where it was");
                    self.offset += data.len() as u64;
                    self.output.extend(data);
                }
                ServerFrame::Snapshot { .. } => panic!("no gap was expected"),
                ServerFrame::Exit { code, reason } => self.exit = Some((code, reason)),
            }
        }
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

/// `R:<name>:<pid 1's argv>:<cpus>:E` as the shell answered it (the typed
/// line's echo shows `$(…)`, not answers).
fn answer(text: &str, tag: &str) -> Option<Vec<String>> {
    text.split(&format!("{tag}:"))
        .skip(1)
        .find(|rest| !rest.starts_with('$'))
        .and_then(|rest| rest.split(":E").next())
        .map(|fields| fields.split(':').map(str::to_owned).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_runs_inside_the_sandbox_resumes_exactly_and_is_recorded() {
    let Some(rig) = Rig::start("allocations_terminal", |dir| vec![sku_file(dir)]).await else {
        return;
    };
    let id = rig.allocate(json!({"sku": "cpu.1c"})).await;
    let active = wait_alloc(&rig.api, &rig.key, &id, "active").await;
    let core = active["reservation"]["cores"][0].as_u64().unwrap();

    // Not a WebSocket: a problem answer, nothing opened.
    let plain = rig
        .api
        .get(&format!("/api/v1/allocations/{id}/terminal"), &rig.key)
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST, "{}", plain.text);
    assert!(plain.text.contains("WebSocket"), "{}", plain.text);

    let mut term = Term::connect(&rig, &id, "cols=100&rows=30").await;
    assert_eq!(term.offset, 0);
    // Inside the sandbox: its host name, its own PID 1 (the sandbox's
    // init), its one core.
    term.type_line(r#"echo "R:$(hostname):$(tr '\0' ' ' < /proc/1/cmdline):$(nproc):$(grep Cpus_allowed_list /proc/self/status | cut -f2):E""#)
        .await;
    let text = term.read_until(|t| answer(t, "R").is_some()).await;
    let fields = answer(&text, "R").unwrap();
    let simple = id.replace('-', "");
    assert_eq!(
        fields[0],
        format!("alloc-{}", &simple[simple.len() - 12..]),
        "{text}"
    );
    assert!(fields[1].contains("hood-sandbox-init"), "PID 1: {text}");
    assert_eq!(fields[2], "1", "{text}");
    assert_eq!(fields[3], core.to_string(), "{text}");

    // The window size reached the PTY.
    term.send(hood_terminal::ClientFrame::Resize {
        cols: 120,
        rows: 40,
    })
    .await;
    term.type_line(r#"echo "S:$(stty size | tr ' ' ':'):E""#)
        .await;
    let text = term.read_until(|t| answer(t, "S").is_some()).await;
    assert_eq!(answer(&text, "S").unwrap(), vec!["40", "120"], "{text}");

    // Output written while no client is connected is replayed exactly
    // from the offset the client had.
    term.type_line("sleep 1; for i in 1 2 3; do echo \"gap-$((i*7))\"; done")
        .await;
    let session = term.session.clone();
    let before = term.output.clone();
    let offset = term.offset;
    drop(term);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut term = Term::connect(&rig, &id, &format!("session={session}&offset={offset}")).await;
    assert_eq!(term.session, session);
    assert_eq!(term.offset, offset);
    let text = term.read_until(|t| t.contains("gap-21")).await;
    assert!(text.contains("gap-7") && text.contains("gap-14"), "{text}");

    // The shell's exit ends the session for every client.
    term.type_line("exit 3").await;
    term.read_until(|_| false).await;
    let (code, reason) = term.exit.clone().expect("an exit frame");
    assert_eq!(
        code,
        Some(3),
        "{reason}: {}",
        String::from_utf8_lossy(&term.output)
    );
    let mut all = before;
    all.extend(&term.output);

    // Recorded in the object store (asciicast v2): its output is exactly
    // what the clients received; the audit log names it.
    let key = format!("terminal-recordings/{id}/{session}.cast");
    let path = rig.home.join("artifacts").join(&key);
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recording at {path:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cast = std::fs::read_to_string(&path).unwrap();
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        (header["version"].as_u64(), header["width"].as_u64()),
        (Some(2), Some(100))
    );
    let mut recorded = String::new();
    let mut resized = false;
    for line in lines {
        let event: Value = serde_json::from_str(line).unwrap();
        match event[1].as_str().unwrap() {
            "o" => recorded.push_str(event[2].as_str().unwrap()),
            "r" => resized |= event[2] == "120x40",
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(resized, "{cast}");
    assert_eq!(recorded, String::from_utf8_lossy(&all));
    // The close row follows the stored recording.
    let started = Instant::now();
    let audit = loop {
        let audit = rig
            .api
            .get(&format!("/api/v1/audit?resource_id={id}"), &rig.key)
            .await;
        assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
        if audit.text.contains("allocation.terminal.close")
            || started.elapsed() > Duration::from_secs(10)
        {
            break audit;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows = audit.body["items"].as_array().unwrap();
    let row = |action: &str| {
        rows.iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} row: {}", audit.text))
            .clone()
    };
    let open = row("allocation.terminal.open");
    assert_eq!(open["after"]["session_id"], session.as_str());
    let close = row("allocation.terminal.close");
    assert_eq!(close["after"]["recording"], key.as_str());
    assert_eq!(close["after"]["exit_code"], 3);
    assert_eq!(close["after"]["output_bytes"], all.len());
    assert_eq!(close["actor"], open["actor"]);

    // The CLI, from a pipe: the lines are typed in, end of input ends the
    // shell, and the CLI exits with the shell's status.
    let (ok, out, err) = {
        let env = rig.env.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            hood_cli(
                &["alloc", "terminal", &id],
                &env,
                Some("echo \"C:$(hostname):$(nproc):E\"\n"),
            )
        })
        .await
        .unwrap()
    };
    assert!(ok, "{out}{err}");
    assert_eq!(
        answer(&out, "C").unwrap(),
        vec![
            format!("alloc-{}", &simple[simple.len() - 12..]),
            "1".into()
        ],
        "{out}"
    );
    let (ok, _, _) = {
        let env = rig.env.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            hood_cli(&["alloc", "terminal", &id], &env, Some("exit 5\n"))
        })
        .await
        .unwrap()
    };
    assert!(!ok, "the shell's status 5 is the CLI's");

    // An ended session is not resumed; a released allocation opens none.
    rig.api
        .delete(&format!("/api/v1/allocations/{id}"), &rig.key)
        .await;
    wait_alloc(&rig.api, &rig.key, &id, "released").await;
    let url = format!(
        "{}/api/v1/allocations/{id}/terminal",
        rig.hood.url("api").replace("http://", "ws://")
    );
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", rig.key).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), StatusCode::CONFLICT)
        }
        other => panic!("expected a 409 refusal, got {other:?}"),
    }
}

/// Cluster mode: the API and the agent gateway are separate processes
/// (with an orchestrator, on PostgreSQL and NATS). The host's terminal
/// stream reaches the gateway, which relays it to the api replica holding
/// the session: a shell runs in the sandbox, a dropped client resumes
/// exactly, and the recording lands in the shared object store.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_crosses_from_the_api_to_a_separate_agent_gateway() {
    use common::HoodProcess;
    let Some(anvil) = hood_testkit::anvil_bin("cluster terminal") else {
        return;
    };
    let Some(db) = hood_testkit::PgDatabase::create("cluster_terminal").await else {
        return;
    };
    let Some(nats) = hood_testkit::NatsStream::unique("cluster terminal") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let _guard = KillUnder(shared.clone());
    std::fs::create_dir_all(shared.join("artifacts")).unwrap();
    let gateway = free_port();
    let master = hood_identity::master_key::MasterKey::generate();
    let skus = sku_file(dir.path());
    let env = |name: &str| {
        let mut env = vec![
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
            skus.clone(),
        ];
        env.extend(nats.env());
        env
    };
    let (ok, out, err) = hood_cli(&["migrate"], &env("migrate"), None);
    assert!(ok, "migrate: {out} {err}");
    let serve = |roles: &str, name: &str| {
        HoodProcess::start(
            &["serve", "--role", roles, "--listen", "127.0.0.1:0"],
            &env(name),
            &["serving"],
        )
    };
    let api_process = serve("api,auth", "api");
    let _gateway = serve("agent-gateway", "gateway");
    let _orchestrator = serve("orchestrator", "orchestrator");
    let base = api_process.url("serving");
    let key = read_admin_key(&dir.path().join("api"));
    let cli_env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &cli_env);
    let api = Api::new(base.clone());
    let host = a_ready_host(&api, &key).await;
    declare_this_machine(&host, &cli_env);
    let r = api
        .post("/api/v1/allocations", &key, json!({"sku": "cpu.1c"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    wait_alloc_within(&api, &key, &id, "active", Duration::from_secs(60)).await;
    // The api replica feeds users' notifications from NATS.
    let started = Instant::now();
    loop {
        let feed = api.get("/api/v1/notifications", &key).await;
        let active = feed.body["items"].as_array().unwrap().iter().any(|i| {
            i["subject"] == "allocation.active" && i["detail"]["allocation_id"] == id.as_str()
        });
        if active {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no allocation.active notification: {}",
            feed.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut term = Term::connect_to(&base, &key, &id, "cols=90&rows=20").await;
    term.type_line(r#"echo "R:$(hostname):$(nproc):E""#).await;
    let text = term.read_until(|t| answer(t, "R").is_some()).await;
    let simple = id.replace('-', "");
    assert_eq!(
        answer(&text, "R").unwrap(),
        vec![
            format!("alloc-{}", &simple[simple.len() - 12..]),
            "1".into()
        ],
        "{text}"
    );
    // Resumed exactly across the relay.
    term.type_line("sleep 1; for i in 1 2 3; do echo \"relayed-$((i*5))\"; done")
        .await;
    let (session, offset, mut all) = (term.session.clone(), term.offset, term.output.clone());
    drop(term);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut term = Term::connect_to(
        &base,
        &key,
        &id,
        &format!("session={session}&offset={offset}"),
    )
    .await;
    assert_eq!(
        (term.session.as_str(), term.offset),
        (session.as_str(), offset)
    );
    let text = term.read_until(|t| t.contains("relayed-15")).await;
    assert!(
        text.contains("relayed-5") && text.contains("relayed-10"),
        "{text}"
    );
    term.type_line("exit 4").await;
    term.read_until(|_| false).await;
    assert_eq!(
        term.exit.as_ref().map(|e| e.0),
        Some(Some(4)),
        "{:?}",
        term.exit
    );
    all.extend(&term.output);

    // Recorded where every replica keeps objects.
    let path = shared
        .join("artifacts")
        .join(format!("terminal-recordings/{id}/{session}.cast"));
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recording at {path:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cast = std::fs::read_to_string(&path).unwrap();
    let recorded: String = cast
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e[1] == "o")
        .map(|e| e[2].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recorded, String::from_utf8_lossy(&all));
}

/// The console's terminal in a real browser: xterm.js over the console's
/// WebSocket, a shell inside the sandbox, a dropped connection resumed
/// without repeating output (tests/browser/terminal.e2e.mjs), and the
/// session recorded and audited like any other.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_terminal_runs_a_shell_in_the_browser_and_resumes() {
    const ADMIN_PASSWORD: &str = "terminal-admin-password";
    let Some((chromium, browser_dir)) = hood_testkit::chromium_bin("console terminal")
        .zip(hood_testkit::browser_tests_dir("console terminal"))
    else {
        return;
    };
    let Some(rig) = Rig::start("console_terminal", |dir| {
        vec![
            sku_file(dir),
            ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ]
    })
    .await
    else {
        return;
    };
    let id = rig.allocate(json!({"sku": "cpu.1c"})).await;
    wait_alloc(&rig.api, &rig.key, &id, "active").await;
    let simple = id.replace('-', "");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("terminal-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let env = vec![
        ("HOOD_API", rig.hood.url("api")),
        ("HOOD_ADMIN_EMAIL", "admin@hood.local".to_owned()),
        ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("HOOD_ALLOCATION_ID", id.clone()),
        (
            "HOOD_SANDBOX_HOSTNAME",
            format!("alloc-{}", &simple[simple.len() - 12..]),
        ),
    ];
    let passed = tokio::task::spawn_blocking(move || {
        common::run_browser_script("terminal.e2e.mjs", &browser_dir, &chromium, &shots, &env)
    })
    .await
    .unwrap();
    assert!(passed, "the console terminal's browser test failed");

    // One session, opened by the signed-in user, closed by the shell's
    // exit, its recording in the object store.
    let started = Instant::now();
    let close = loop {
        let audit = rig
            .api
            .get(&format!("/api/v1/audit?resource_id={id}"), &rig.key)
            .await;
        assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
        let rows = audit.body["items"].as_array().unwrap().clone();
        let opens = rows
            .iter()
            .filter(|r| r["action"] == "allocation.terminal.open")
            .count();
        assert_eq!(opens, 1, "one session for the page, resumed: {rows:?}");
        if let Some(close) = rows
            .iter()
            .find(|r| r["action"] == "allocation.terminal.close")
        {
            break close.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no close row: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(close["after"]["exit_code"], 4, "{close}");
    let recording = close["after"]["recording"].as_str().unwrap();
    let cast = std::fs::read_to_string(rig.home.join("artifacts").join(recording)).unwrap();
    assert!(cast.contains(":42:E"), "{cast}");
}

/// A MIG slice is placed and accounted, but this agent cannot carve MIG
/// instances yet: rather than start a sandbox that sees no GPU while its
/// slice is paid for, the agent refuses the task and the allocation fails,
/// never active (never charged), its slots free again.
#[tokio::test(flavor = "multi_thread")]
async fn a_mig_slice_fails_clearly_instead_of_running_without_its_gpu() {
    let Some(rig) = Rig::start("allocations_mig", |dir| {
        let path = dir.join("skus.json");
        std::fs::write(
            &path,
            json!([{"name": "gpu.h200.1g.18gb", "cores": 1, "memory_mib": 256, "disk_mib": 1024,
                    "gpu": {"kind": "mig", "profile": "1g.18gb"},
                    "price_per_minute_minor": 3, "currency": "USD"}])
            .to_string(),
        )
        .unwrap();
        vec![("HOOD_SKU_FILE", path.display().to_string())]
    })
    .await
    else {
        return;
    };
    let hosts = rig.api.get("/api/v1/hosts", &rig.key).await;
    let host = hosts.body["items"][0]["id"].as_str().unwrap().to_owned();
    rig.cli(&[
        "host",
        "capacity",
        &host,
        "--cores",
        &cores_here().to_string(),
        "--memory-mib",
        &(256 * cores_here()).to_string(),
        "--disk-mib",
        "204800",
        "--gpu",
        "0:NVIDIA H200:144384:mig",
    ]);
    let id = rig.allocate(json!({"sku": "gpu.h200.1g.18gb"})).await;
    let failed = wait_alloc(&rig.api, &rig.key, &id, "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("MIG") && error.contains("1g.18gb on GPU 0"),
        "{failed}"
    );
    assert!(failed["active_since"].is_null(), "never active: {failed}");
    assert!(!rig.sandbox_runs(&id));
    let h = rig
        .api
        .get(&format!("/api/v1/hosts/{host}"), &rig.key)
        .await;
    assert_eq!(
        h.body["capacity"]["free"]["mig_slots"],
        json!([{"gpu": 0, "free_slots": 7}]),
        "{}",
        h.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocation_with_an_image_runs_as_a_container_on_the_hosts_engine() {
    let test = "allocations_container";
    let Some(podman) = hood_testkit::podman::Podman::start(test) else {
        return;
    };
    let Some(rootfs) = hood_testkit::podman::rootfs_tarball(test) else {
        return;
    };
    podman.import_rootfs(&rootfs, E2E_IMAGE);
    let socket = podman.socket().display().to_string();
    let Some(rig) = Rig::start(test, |dir| {
        vec![
            sku_file(dir),
            ("HOOD_CONTAINER_SOCKET", socket),
            // A terminal whose client left is closed a second later.
            ("HOOD_TERMINAL_DETACHED_SECS", "1".into()),
        ]
    })
    .await
    else {
        return;
    };
    let script = "echo hello-from-$(hostname); exec sleep 3600";
    let id = rig
        .allocate(json!({"sku": "cpu.1c", "image": E2E_IMAGE, "command": ["sh", "-c", script]}))
        .await;
    let active =
        wait_alloc_within(&rig.api, &rig.key, &id, "active", Duration::from_secs(60)).await;
    let core = active["reservation"]["cores"][0].as_u64().unwrap();
    let container = format!("alloc-{id}");
    assert_eq!(podman.running_containers(), vec![container.clone()]);
    // Not a bare sandbox beside it.
    assert!(!rig.sandbox_runs(&id));
    // Its placement is the container's.
    let limits = podman.run(&[
        "inspect",
        "--format",
        "{{.HostConfig.CpusetCpus}} {{.HostConfig.Memory}}",
        &container,
    ]);
    assert_eq!(limits.trim(), format!("{core} {}", 256u64 << 20));

    // Its output through the allocation's logs.
    let simple = id.replace('-', "");
    let hostname = format!("alloc-{}", &simple[simple.len() - 12..]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = rig
            .api
            .get(&format!("/api/v1/allocations/{id}/logs?lines=10"), &rig.key)
            .await;
        assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
        if logs.text.contains(&format!("hello-from-{hostname}")) {
            break;
        }
        assert!(Instant::now() < deadline, "{}", logs.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A terminal opens a shell inside the container, sized as asked.
    let mut term = Term::connect(&rig, &id, "cols=100&rows=30").await;
    term.type_line(r#"echo "R:$(hostname):$(stty size | tr ' ' ':'):E""#)
        .await;
    let text = term.read_until(|t| answer(t, "R").is_some()).await;
    assert_eq!(
        answer(&text, "R").unwrap(),
        vec![hostname.clone(), "30".into(), "100".into()],
        "{text}"
    );
    term.send(hood_terminal::ClientFrame::Resize {
        cols: 120,
        rows: 40,
    })
    .await;
    term.type_line(r#"echo "S:$(stty size | tr ' ' ':'):E""#)
        .await;
    let text = term.read_until(|t| answer(t, "S").is_some()).await;
    assert_eq!(answer(&text, "S").unwrap(), vec!["40", "120"], "{text}");
    term.type_line("exit 3").await;
    term.read_until(|_| false).await;
    assert_eq!(
        term.exit.as_ref().map(|e| e.0),
        Some(Some(3)),
        "{:?}",
        term.exit
    );

    // A terminal the control plane closes (its client left and did not
    // come back) is hung up on: the command in its foreground ends too.
    let mut left = Term::connect(&rig, &id, "cols=80&rows=24").await;
    left.type_line(r#"echo "F:$((40+2)):E"; sleep 4242"#).await;
    let text = left.read_until(|t| answer(t, "F").is_some()).await;
    assert_eq!(answer(&text, "F").unwrap(), vec!["42"], "{text}");
    let sleeping = || {
        podman
            .run(&["top", &container, "args"])
            .contains("sleep 4242")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sleeping() {
        assert!(
            Instant::now() < deadline,
            "the foreground command never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(left);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sleeping() {
        assert!(
            Instant::now() < deadline,
            "the closed terminal's foreground command still runs: {}",
            podman.run(&["top", &container, "args"])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The container itself runs on.
    assert_eq!(podman.running_containers(), vec![container.clone()]);

    // Release removes the container.
    rig.api
        .delete(&format!("/api/v1/allocations/{id}"), &rig.key)
        .await;
    wait_alloc(&rig.api, &rig.key, &id, "released").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while podman.containers().contains(&container) {
        assert!(
            Instant::now() < deadline,
            "the container outlived its release"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A command that ends releases its allocation.
    let short = rig
        .allocate(json!({"sku": "cpu.1c", "image": E2E_IMAGE, "command": ["sh", "-c", "exit 3"]}))
        .await;
    let ended = wait_alloc_within(
        &rig.api,
        &rig.key,
        &short,
        "released",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("ended on its own")),
        "{ended}"
    );

    // An image the host lacks fails the allocation, never active.
    let missing = rig
        .allocate(json!({"sku": "cpu.1c", "image": "hood/missing:1"}))
        .await;
    let failed = wait_alloc_within(
        &rig.api,
        &rig.key,
        &missing,
        "failed",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("hood/missing:1")),
        "{failed}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !podman.containers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "containers left: {:?}",
            podman.containers()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET /api/v1/containers/{name}` until its status is `status`.
async fn wait_container(rig: &Rig, name: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = rig
            .api
            .get(&format!("/api/v1/containers/{name}"), &rig.key)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["status"] == status {
            return r.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "container {name} not {status}: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_run_as_allocations_and_stop_start_restart_and_delete() {
    let test = "allocations_containers_api";
    let Some(podman) = hood_testkit::podman::Podman::start(test) else {
        return;
    };
    let Some(rootfs) = hood_testkit::podman::rootfs_tarball(test) else {
        return;
    };
    podman.import_rootfs(&rootfs, E2E_IMAGE);
    let socket = podman.socket().display().to_string();
    let Some(rig) = Rig::start(test, |dir| {
        vec![
            sku_file(dir),
            ("HOOD_CONTAINER_SOCKET", socket),
            ("HOOD_INGRESS_DOMAIN", "apps.test".into()),
        ]
    })
    .await
    else {
        return;
    };
    let serve = "mkdir -p /www && echo \"$GREETING from $(hostname)\" > /www/index.html \
                 && echo serving-$GREETING && exec busybox httpd -f -p 8000 -h /www";
    let out = rig.cli(&[
        "--output",
        "json",
        "container",
        "create",
        "web",
        "--image",
        E2E_IMAGE,
        "--sku",
        "cpu.1c",
        "-e",
        "GREETING=hello",
        "-p",
        "8000",
        "--",
        "sh",
        "-c",
        serve,
    ]);
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["name"], "web");
    assert_eq!(created["ports"], json!([8000]));
    assert_eq!(
        created["env"],
        json!(["GREETING"]),
        "names only, never values"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let running = wait_container(&rig, "web", "running").await;
    let first_allocation = running["allocation_id"].as_str().unwrap().to_owned();
    // The same container by its id; its allocation carries its SKU.
    let by_id = rig
        .api
        .get(&format!("/api/v1/containers/{id}"), &rig.key)
        .await;
    assert_eq!(by_id.body["name"], "web");
    let allocation = wait_alloc(&rig.api, &rig.key, &first_allocation, "active").await;
    assert_eq!(allocation["sku"], "cpu.1c");
    assert_eq!(allocation["image"], E2E_IMAGE);

    // On the host's engine, with its environment and its port published.
    let engine_name = format!("alloc-{first_allocation}");
    assert_eq!(podman.running_containers(), vec![engine_name.clone()]);
    let env = podman.run(&["inspect", "--format", "{{json .Config.Env}}", &engine_name]);
    assert!(env.contains("GREETING=hello"), "{env}");
    let published = podman.run(&["port", &engine_name, "8000"]);
    let port: u16 = published
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let body = loop_get(port).await;
    assert!(body.contains("hello from alloc-"), "{body}");

    // Through Hood's HTTP ingress: the path form, and the host form under
    // HOOD_INGRESS_DOMAIN (the organization by its slug).
    let slug = rig.api.get("/api/v1/me", &rig.key).await.body["org"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = rig.hood.url("api");
    let via_path = reqwest::get(format!("{base}/ingress/{slug}/web/index.html"))
        .await
        .unwrap();
    assert_eq!(via_path.status(), StatusCode::OK);
    assert_eq!(via_path.text().await.unwrap(), body);
    let via_host = reqwest::Client::new()
        .get(format!("{base}/"))
        .header("host", format!("web.{slug}.apps.test"))
        .send()
        .await
        .unwrap();
    assert_eq!(via_host.status(), StatusCode::OK);
    assert_eq!(via_host.text().await.unwrap(), body);
    let nowhere = reqwest::get(format!("{base}/ingress/{slug}/nope/"))
        .await
        .unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        nowhere.headers()["content-type"],
        "application/problem+json"
    );
    assert!(nowhere
        .text()
        .await
        .unwrap()
        .contains("container not found"));
    // The root of the path form is the container's root too.
    let root = reqwest::get(format!("{base}/ingress/{slug}/web/"))
        .await
        .unwrap();
    assert_eq!(root.text().await.unwrap(), body);

    // Its output, by name, through the API and the CLI.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rig
        .cli(&["container", "logs", "web", "--lines", "5"])
        .contains("serving-hello")
    {
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = rig
        .api
        .get("/api/v1/containers/web/logs?lines=0", &rig.key)
        .await;
    assert_eq!(logs.status, StatusCode::BAD_REQUEST, "{}", logs.text);

    // Bad requests: problem JSON naming the field; a taken name is 409.
    for (body, field) in [
        (
            json!({"name": "Web", "sku": "cpu.1c", "image": E2E_IMAGE}),
            "name",
        ),
        (
            json!({"name": "x", "sku": "no.such", "image": E2E_IMAGE}),
            "sku",
        ),
        (
            json!({"name": "x", "sku": "cpu.1c", "image": "a b"}),
            "image",
        ),
        (
            json!({"name": "x", "sku": "cpu.1c", "image": E2E_IMAGE, "ports": [80, 80]}),
            "ports",
        ),
    ] {
        let r = rig.api.post("/api/v1/containers", &rig.key, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(r.text.contains(field), "{field}: {}", r.text);
    }
    let taken = rig
        .api
        .post(
            "/api/v1/containers",
            &rig.key,
            json!({"name": "web", "sku": "cpu.1c", "image": E2E_IMAGE}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    let missing = rig.api.get("/api/v1/containers/nope", &rig.key).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);

    // Stop: its allocation is released and the engine's container gone.
    let stopping = rig
        .api
        .post("/api/v1/containers/web/stop", &rig.key, json!({}))
        .await;
    assert_eq!(stopping.status, StatusCode::OK, "{}", stopping.text);
    assert_eq!(stopping.body["desired"], "stopped");
    wait_container(&rig, "web", "stopped").await;
    wait_alloc(&rig.api, &rig.key, &first_allocation, "released").await;
    // A stopped container's ingress refuses, as problem JSON.
    let refused = reqwest::get(format!("{base}/ingress/{slug}/web/"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("stopped"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !podman.containers().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", podman.containers());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stopping again changes nothing.
    let again = rig.cli(&["--output", "json", "container", "stop", "web"]);
    assert!(again.contains("\"stopped\""), "{again}");

    // Start: a new allocation, running again.
    rig.cli(&["container", "start", "web"]);
    let restarted = wait_container(&rig, "web", "running").await;
    let second_allocation = restarted["allocation_id"].as_str().unwrap().to_owned();
    assert_ne!(second_allocation, first_allocation);
    // Restart: yet another one.
    rig.cli(&["container", "restart", "web"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let third_allocation = loop {
        let c = wait_container(&rig, "web", "running").await;
        let a = c["allocation_id"].as_str().unwrap().to_owned();
        if a != second_allocation {
            break a;
        }
        assert!(Instant::now() < deadline, "no new allocation: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    wait_alloc(&rig.api, &rig.key, &second_allocation, "released").await;
    let listed = rig.cli(&["container", "list"]);
    assert!(
        listed.contains("web") && listed.contains("running"),
        "{listed}"
    );

    // Its starts and stops reached the user's notification feed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed = rig.api.get("/api/v1/notifications", &rig.key).await;
        let subjects: Vec<String> = feed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["subject"].as_str().map(str::to_owned))
            .collect();
        let started = format!("compute.container.{id}.started");
        let stopped = format!("compute.container.{id}.stopped");
        let count = |s: &str| subjects.iter().filter(|x| *x == s).count();
        if count(&started) >= 3 && count(&stopped) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{subjects:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A service account needs `compute.{org}.containers: [create]`.
    let account_key = |grant: &str| {
        let made: Value = serde_json::from_str(&rig.cli(&[
            "--output",
            "json",
            "service-account",
            "create",
            &format!("sa-{}", grant.len()),
            "--grant",
            grant,
        ]))
        .unwrap();
        let key: Value = serde_json::from_str(&rig.cli(&[
            "--output",
            "json",
            "service-account",
            "key",
            made["id"].as_str().unwrap(),
        ]))
        .unwrap();
        key["token"].as_str().unwrap().to_owned()
    };
    let request = json!({"name": "worker", "sku": "cpu.1c", "image": E2E_IMAGE, "command": ["sleep", "3600"]});
    let allocations_only = account_key(&format!("compute.{slug}.allocations=create,read"));
    let r = rig
        .api
        .post("/api/v1/containers", &allocations_only, request.clone())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let containers = account_key(&format!(
        "compute.{slug}.containers=create,read,update,delete"
    ));
    let r = rig
        .api
        .post("/api/v1/containers", &containers, request)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    wait_container(&rig, "worker", "running").await;
    // …and sees only what it may read.
    let seen = rig.api.get("/api/v1/containers", &allocations_only).await;
    assert_eq!(seen.body["items"], json!([]), "{}", seen.text);

    // Delete: released, gone from the engine, gone from the API.
    for name in ["web", "worker"] {
        let r = rig
            .api
            .delete(&format!("/api/v1/containers/{name}"), &rig.key)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        let r = rig
            .api
            .get(&format!("/api/v1/containers/{name}"), &rig.key)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    wait_alloc(&rig.api, &rig.key, &third_allocation, "released").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !podman.containers().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", podman.containers());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every change is in the audit log.
    let audit = rig
        .api
        .get(&format!("/api/v1/audit?resource_id={id}"), &rig.key)
        .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "container.create",
        "container.stop",
        "container.start",
        "container.restart",
        "container.delete",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

/// The body of `GET /` on a loopback port, once it answers.
async fn loop_get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/")).await {
            if let Ok(text) = r.text().await {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "nothing answers on {port}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh Ed25519 key pair made by OpenSSH's `ssh-keygen`: (private key
/// file, public key line).
fn ssh_keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// OpenSSH's `ssh` as `user` through the gateway at `port` with `key`,
/// `stdin` typed in: (exit code, stdout, stderr).
fn ssh(port: &str, key: &Path, user: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("ssh")
        .args([
            "-p",
            port,
            "-i",
            &key.display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "LogLevel=ERROR",
            &format!("{user}@127.0.0.1"),
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

type FeedSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A user's live notification stream, authenticated the way a browser
/// does it (the token as a WebSocket subprotocol).
async fn notification_stream(base: &str, token: &str) -> FeedSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!(
        "{}/api/v1/notifications/stream",
        base.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("hood.v1, bearer.{token}").parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// The subjects a stream delivers until `done` holds for them or `within`
/// passes.
async fn subjects_until(
    socket: &mut FeedSocket,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    use tokio_tungstenite::tungstenite::Message;
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while !done(&seen) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match tokio::time::timeout(left, futures::StreamExt::next(socket)).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let item: Value = serde_json::from_str(text.as_str()).unwrap();
                if let Some(subject) = item["subject"].as_str() {
                    seen.push(subject.to_owned());
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the notification stream ended: {other:?}"),
            Err(_) => break,
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn openssh_logs_into_a_container_through_the_ssh_gateway_with_the_users_key() {
    let test = "allocations_ssh_gateway";
    let Some(podman) = hood_testkit::podman::Podman::start(test) else {
        return;
    };
    let Some(rootfs) = hood_testkit::podman::rootfs_tarball(test) else {
        return;
    };
    podman.import_rootfs(&rootfs, E2E_IMAGE);
    let socket = podman.socket().display().to_string();
    let ssh_addr = free_port();
    let port = ssh_addr.rsplit(':').next().unwrap().to_owned();
    let Some(rig) = Rig::start(test, |dir| {
        vec![
            sku_file(dir),
            ("HOOD_CONTAINER_SOCKET", socket),
            ("HOOD_SSH_ADDR", ssh_addr.clone()),
        ]
    })
    .await
    else {
        return;
    };
    let keys = rig.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (alice_key, alice_public) = ssh_keygen(&keys, "alice");
    let (stranger_key, _) = ssh_keygen(&keys, "stranger");
    let (bob_key, bob_public) = ssh_keygen(&keys, "bob");
    rig.cli(&[
        "ssh-key",
        "add",
        &alice_key.with_extension("pub").display().to_string(),
    ]);
    // Bob, of another organization, uploads his own key.
    let bob = second_org(&rig.api, &rig.key).await;
    let r = rig
        .api
        .post("/api/v1/ssh-keys", &bob, json!({"public_key": bob_public}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!alice_public.is_empty());

    // Live notifications, for this organization's user and another's.
    let base = rig.hood.url("api");
    let mut alice_feed = notification_stream(&base, &rig.key).await;
    let mut bob_feed = notification_stream(&base, &bob).await;
    rig.cli(&[
        "container",
        "create",
        "web",
        "--image",
        E2E_IMAGE,
        "--sku",
        "cpu.1c",
        "--",
        "sleep",
        "3600",
    ]);
    let running = wait_container(&rig, "web", "running").await;
    let container_id = running["id"].as_str().unwrap().to_owned();
    let started = format!("compute.container.{container_id}.started");
    let seen = subjects_until(&mut alice_feed, Duration::from_secs(30), |s| {
        s.contains(&started)
    })
    .await;
    assert!(seen.contains(&started), "{seen:?}");
    let allocation = running["allocation_id"].as_str().unwrap().replace('-', "");
    let hostname = format!("alloc-{}", &allocation[allocation.len() - 12..]);

    // The real OpenSSH client runs a command inside the container.
    let (code, out, err) = ssh(&port, &alice_key, "web", &["hostname; exit 7"], "");
    assert_eq!(code, 7, "{out}{err}");
    assert_eq!(out.trim(), hostname, "{err}");
    // And an interactive shell (a PTY of its own) reads what is typed.
    let (code, out, err) = ssh(
        &port,
        &alice_key,
        "web",
        &["-tt"],
        "echo \"R:$(hostname):E\"\nexit 3\n",
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("R:{hostname}:E")), "{out}{err}");

    // Refused: another organization's user, a key no one uploaded, a
    // container that does not exist.
    for (key, user) in [
        (&bob_key, "web"),
        (&stranger_key, "web"),
        (&alice_key, "nope"),
    ] {
        let (code, out, err) = ssh(&port, key, user, &["hostname"], "");
        assert_eq!(code, 255, "{user}: {out}{err}");
        assert!(err.contains("Permission denied"), "{err}");
        assert!(!out.contains(&hostname));
    }

    // Every SSH session is on the record as the user's terminal.
    let audit = rig
        .api
        .get("/api/v1/audit?action=allocation.terminal.open", &rig.key)
        .await;
    let rows = audit.body["items"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", audit.text);
    assert!(
        rows.iter().all(|r| r["after"]["via"] == "ssh"),
        "{}",
        audit.text
    );
    assert!(rows
        .iter()
        .all(|r| r["actor"].as_str().unwrap().starts_with("user:")));

    // Stopped, it lets no one in.
    rig.cli(&["container", "stop", "web"]);
    wait_container(&rig, "web", "stopped").await;
    let stopped = format!("compute.container.{container_id}.stopped");
    let seen = subjects_until(&mut alice_feed, Duration::from_secs(30), |s| {
        s.contains(&stopped)
    })
    .await;
    assert!(seen.contains(&stopped), "{seen:?}");
    // Another organization's user heard nothing of it.
    let heard = subjects_until(&mut bob_feed, Duration::from_secs(2), |_| false).await;
    assert!(
        !heard.iter().any(|s| s.contains(&container_id)),
        "{heard:?}"
    );
    let (code, _, err) = ssh(&port, &alice_key, "web", &["hostname"], "");
    assert_eq!(code, 255, "{err}");
}
