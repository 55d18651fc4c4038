//! Allocations end to end on the real binary: `hood up`, a host (made by
//! provisioning a node) whose agent reports what it measured, then given a
//! declared capacity through the CLI, CPU-slice
//! allocations filling it exactly, the next one refused with a clear 409,
//! a released slice placed again, idempotent retries, tenancy, and an
//! audit row per mutation carrying the request's id. And SIGKILL of
//! `hood up` in the middle of allocating and releasing, ten times: every
//! reservation matches a live allocation and the audit log has one row per
//! mutation.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::edge::free_port;
use common::http::{second_org, Api};
use common::{
    hood_cli, hood_up, hood_up_with_gateway, push_anvil, read_admin_key, seed_from_env, temp_home,
    KillUnder, Rng,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

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

#[tokio::test(flavor = "multi_thread")]
async fn cpu_slices_fill_a_declared_host_exactly_and_released_capacity_is_reused() {
    let Some(anvil) = hood_testkit::anvil_bin("allocations_end_to_end") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[]);
    let base = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);
    let api = Api::new(base.clone());
    let host = a_ready_host(&api, &key).await;

    // The agent measured the host when it connected: this machine's cores
    // and memory, no GPU (no NVML here).
    let reported = api
        .get(&format!("/api/v1/hosts/{host}/capacity"), &key)
        .await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.text);
    assert_eq!(reported.body["source"], "reported");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(reported.body["cores"], cores, "{}", reported.text);
    assert!(reported.body["memory_mib"].as_u64().unwrap() > 1024);
    assert!(reported.body["disk_mib"].as_u64().unwrap() > 0);
    assert_eq!(reported.body["gpus"], json!([]));

    // The operator declares the host: 8 cores, 16 GiB, 200 GiB of disk.
    let (ok, out, err) = hood_cli(
        &[
            "host",
            "capacity",
            &host,
            "--cores",
            "8",
            "--memory-mib",
            "16384",
            "--disk-mib",
            "204800",
        ],
        &env,
        None,
    );
    assert!(ok, "declare: {out}{err}");
    assert!(
        out.contains("declared") && out.contains("8 (8 free)"),
        "{out}"
    );
    let (ok, out, err) = hood_cli(&["alloc", "skus"], &env, None);
    assert!(
        ok && out.contains("cpu.2c4g") && out.contains("gpu.h200.1g.18gb"),
        "{out}{err}"
    );

    // Four 2-core slices fill the host exactly, on distinct cores.
    let mut cores = vec![];
    let mut ids = vec![];
    for i in 0..4 {
        let (ok, out, err) = hood_cli(
            &[
                "--output", "json", "alloc", "create", "cpu.2c4g", "--", "sleep", "infinity",
            ],
            &env,
            None,
        );
        assert!(ok, "slice {i}: {out}{err}");
        let a: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(a["state"], "requested");
        assert_eq!(a["host_id"], host.as_str());
        assert_eq!(a["command"], json!(["sleep", "infinity"]));
        cores.extend(a["reservation"]["cores"].as_array().unwrap().clone());
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    cores.sort_by_key(|c| c.as_u64());
    assert_eq!(cores, (0..8).map(|c| json!(c)).collect::<Vec<_>>());

    // The fifth is refused with a clear 409, through the API and the CLI.
    let r = api
        .post("/api/v1/allocations", &key, json!({"sku": "cpu.2c4g"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("no host has room for `cpu.2c4g`") && detail.contains("0 free"),
        "{detail}"
    );
    let (ok, _, err) = hood_cli(&["alloc", "create", "cpu.2c4g"], &env, None);
    assert!(!ok && err.contains("no host has room"), "{err}");

    // The host's view shows it full.
    let h = api.get(&format!("/api/v1/hosts/{host}"), &key).await;
    assert_eq!(h.body["capacity"]["free"]["cores"], json!([]), "{}", h.text);
    assert_eq!(
        h.body["capacity"]["reservations"].as_array().unwrap().len(),
        4
    );
    assert_eq!(h.body["capacity"]["free"]["memory_mib"], 16384 - 4 * 4096);

    // Releasing one frees its cores; the next allocation takes them.
    let (ok, out, err) = hood_cli(
        &["--output", "json", "alloc", "release", &ids[1]],
        &env,
        None,
    );
    assert!(ok, "{out}{err}");
    let released: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        released["state"], "released",
        "nothing ran yet: released at once"
    );
    let freed = released["reservation"]["cores"].clone();
    let again = api
        .post("/api/v1/allocations", &key, json!({"sku": "cpu.2c4g"}))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body["reservation"]["cores"], freed);
    // A second release of an ended allocation answers it as it is.
    let twice = api
        .delete(&format!("/api/v1/allocations/{}", ids[1]), &key)
        .await;
    assert_eq!(twice.status, StatusCode::OK);
    assert_eq!(twice.body["state"], "released");

    // Idempotency: a retry answers the first allocation; the same key for
    // another request is a conflict. (Release one slice to make room.)
    api.delete(&format!("/api/v1/allocations/{}", ids[0]), &key)
        .await;
    let send = |sku: &str| {
        api.http
            .post(format!("{base}/api/v1/allocations"))
            .bearer_auth(&key)
            .header("Idempotency-Key", "order-42")
            .header("x-request-id", format!("test-{sku}"))
            .json(&json!({"sku": sku}))
            .send()
    };
    let first = send("cpu.2c4g").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["x-request-id"], "test-cpu.2c4g");
    let first: Value = first.json().await.unwrap();
    let retry = send("cpu.2c4g").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    let other = send("cpu.4c8g").await.unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let listed = api.get("/api/v1/allocations", &key).await;
    let live = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "requested")
        .count();
    assert_eq!(live, 4, "{}", listed.text);

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
        .post("/api/v1/allocations", &bob, json!({"sku": "cpu.2c4g"}))
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
            Some(json!({"cores": 2, "memory_mib": 16384, "disk_mib": 204800})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // One audit row per mutation: 6 creations (4 + 1 + the keyed one), 2
    // releases (the repeated release changed nothing), 1 declaration.
    let (ok, out, err) = hood_cli(&["--output", "json", "audit"], &env, None);
    assert!(ok, "{out}{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let count = |action: &str| {
        rows["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == action)
            .count()
    };
    assert_eq!(count("allocation.create"), 6, "{out}");
    assert_eq!(count("allocation.release"), 2, "{out}");
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
    assert_eq!(declared["items"][0]["after"]["capacity"]["cores"], 8);
    let keyed = hood_cli(
        &["--output", "json", "audit", "--request-id", "test-cpu.2c4g"],
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
    drop(hood);
}

/// What the store holds after a crash must be whole: the host's
/// reservations are exactly the live allocations' (and fit it: the
/// capacity view computes what is free from them), and the audit log has
/// one creation per allocation and one release per released one.
async fn assert_consistent(api: &Api, key: &str, host: &str) -> (usize, usize) {
    let all = api.get("/api/v1/allocations", key).await.body["items"]
        .as_array()
        .unwrap()
        .clone();
    let live: Vec<&Value> = all
        .iter()
        .filter(|a| a["state"] != "released" && a["state"] != "failed")
        .collect();
    let capacity = api
        .get(&format!("/api/v1/hosts/{host}/capacity"), key)
        .await;
    assert_eq!(capacity.status, StatusCode::OK, "{}", capacity.text);
    let mut held: Vec<Value> = capacity.body["reservations"].as_array().unwrap().clone();
    let mut want: Vec<Value> = live.iter().map(|a| a["reservation"].clone()).collect();
    let order = |v: &Value| v["cores"].to_string();
    held.sort_by_key(order);
    want.sort_by_key(order);
    assert_eq!(held, want, "reservations are the live allocations'");
    let mut free = capacity.body["free"]["cores"].as_array().unwrap().len();
    free += live.len() * 2;
    assert_eq!(free, 8, "every core is free or held once");

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
    let count = |action: &str, id: &Value| {
        rows.iter()
            .filter(|r| r["action"] == action && &r["resource_id"] == id)
            .count()
    };
    for a in &all {
        assert_eq!(count("allocation.create", &a["id"]), 1, "{a}");
        let releases = usize::from(a["state"] == "released");
        assert_eq!(count("allocation.release", &a["id"]), releases, "{a}");
    }
    let released = all.iter().filter(|a| a["state"] == "released").count();
    (all.len(), released)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_allocation_and_release_leaves_every_reservation_matching() {
    let Some(anvil) = hood_testkit::anvil_bin("allocations_sigkill") else {
        return;
    };
    let mut rng = Rng(seed_from_env("HOOD_ALLOC_CRASH_SEED"));
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let gateway = free_port();
    let mut hood = hood_up_with_gateway(&home, &gateway);
    let key = read_admin_key(&home);
    push_anvil(
        &anvil,
        &[
            ("HOOD_SERVER", hood.url("api")),
            ("HOOD_TOKEN", key.clone()),
        ],
    );
    let host = a_ready_host(&Api::new(hood.url("api")), &key).await;
    let r = Api::new(hood.url("api"))
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/hosts/{host}/capacity"),
            &key,
            Some(json!({"cores": 8, "memory_mib": 32768, "disk_mib": 204800})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let mut answered = 0;
    let mut last = (0, 0);
    for run in 0..10 {
        let base = hood.url("api");
        // Four clients create and release as fast as they can.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (base, key, stop) = (base.clone(), key.clone(), stop.clone());
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
                            .json(&json!({"sku": "cpu.2c4g"}))
                            .send()
                            .await;
                        let Ok(made) = made else { break };
                        let status = made.status();
                        let victim =
                            if status == StatusCode::CREATED {
                                ok += 1;
                                let Ok(a) = made.json::<Value>().await else {
                                    break;
                                };
                                a["id"].as_str().unwrap().to_owned()
                            } else {
                                // Full (a crash left allocations live): release
                                // the oldest live one to make room.
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
                                let live =
                                    list["items"].as_array().unwrap().iter().rev().find(|a| {
                                        a["state"] != "released" && a["state"] != "failed"
                                    });
                                match live {
                                    Some(a) => a["id"].as_str().unwrap().to_owned(),
                                    None => panic!("refused with nothing live: {text}"),
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
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        hood.stop("-KILL");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            answered += c.await.unwrap();
        }
        hood = hood_up_with_gateway(&home, &gateway);
        let (made, released) = assert_consistent(&Api::new(hood.url("api")), &key, &host).await;
        eprintln!("run {run}: {made} allocations, {released} released");
        assert!(
            made > last.0 && released > last.1,
            "run {run} made and released some"
        );
        last = (made, released);
    }
    assert!(
        answered > 20,
        "the clients got answers between kills: {answered}"
    );
}
