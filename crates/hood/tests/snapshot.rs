//! Node snapshots end to end on `hood up` with a real anvil: `hood node
//! snapshot` stores the node's data directory in the object store (tar,
//! zstd, checksummed chunks under `artifacts/snapshots/{node}/{name}/`);
//! the node's host is killed and the node migrates warm: the new host
//! restores the snapshot, so the chain continues at or past the snapshot's
//! height instead of from zero; `hood node restore` takes the node back to
//! the snapshot; the node's console page lists its snapshots and takes one
//! (Chromium); a new node starts from the snapshot; terminating the node
//! deletes its snapshots (the new node keeps its copy).

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{
    create_healthy_node, fast_health_env, get_json, healthy_elsewhere, node_head, node_rpc,
    wait_for,
};
use common::{
    hood_cli, hood_up, processes_under, push_anvil, read_admin_key, temp_home, KillUnder,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Regular files under `dir` (0 when it is gone).
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

const ADMIN_PASSWORD: &str = "snapshot-admin-password";
/// Bytes of incompressible data the resumed upload carries.
const BALLAST: usize = 320 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_survives_the_host_and_restores_the_node() {
    let Some(anvil) = hood_testkit::anvil_bin("snapshots") else {
        return;
    };
    let browser = hood_testkit::chromium_bin("snapshot console")
        .zip(hood_testkit::browser_tests_dir("snapshot console"));
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let mut env = fast_health_env();
    env.push(("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()));
    let hood = hood_up(&home, &env);
    let api = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let (id, node) =
        create_healthy_node(&http, &api, &key, "keeper", Duration::from_secs(90)).await;
    let node_url = format!("{api}/api/v1/nodes/{id}");
    let endpoint = node["rpc_endpoint"].as_str().unwrap().to_owned();
    // A chain worth keeping.
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Refused with the reason, nothing stored.
    let r = http
        .post(format!("{node_url}/snapshots"))
        .bearer_auth(&key)
        .json(&json!({"name": "no/slashes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{node_url}/restore"))
        .bearer_auth(&key)
        .json(&json!({"snapshot": "never-taken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let taken_at = Instant::now();
    let (ok, out, err) = hood_cli(
        &[
            "node",
            "snapshot",
            &id,
            "--name",
            "before-crash",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    eprintln!("snapshot taken in {:?}", taken_at.elapsed());
    let snap: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(snap["state"], "complete", "{snap}");
    let height = snap["head_height"].as_i64().expect("the head when taken");
    assert!(height > 0, "{snap}");
    let chunks = snap["chunks_total"].as_i64().unwrap();
    assert!(chunks >= 1, "{snap}");
    assert_eq!(snap["chunks_done"].as_i64(), Some(chunks), "{snap}");
    assert!(snap["raw_bytes"].as_i64().unwrap() > 0, "{snap}");
    let objects = home.join(format!("artifacts/snapshots/{id}/before-crash"));
    assert!(objects.join("manifest.json").is_file());
    assert_eq!(
        std::fs::read_dir(objects.join("chunks")).unwrap().count() as i64,
        chunks
    );
    let (ok, out, err) = hood_cli(&["node", "snapshots", &id], &env, None);
    assert!(
        ok && out.contains("before-crash") && out.contains("complete"),
        "{out} {err}"
    );
    // The node serves again, past the snapshot.
    let now = get_json(&http, &node_url, &key).await;
    assert_eq!(now["state"], "healthy", "{now}");
    assert!(node_head(&http, &endpoint).await >= height);

    // The host dies; the node migrates warm.
    let old_host = now["host_id"].as_str().unwrap().to_owned();
    let sandbox = home.join("hosts").join("hosts").join(&old_host);
    for (pid, _) in processes_under(&sandbox) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let moved =
        healthy_elsewhere(&http, &node_url, &key, &old_host, Duration::from_secs(120)).await;
    let endpoint = moved["rpc_endpoint"].as_str().unwrap().to_owned();
    let migrated_head = node_head(&http, &endpoint).await;
    assert!(
        migrated_head >= height,
        "the chain continues from the snapshot: head {migrated_head} < {height}"
    );
    let events = get_json(&http, &format!("{node_url}/events"), &key)
        .await
        .to_string();
    assert!(
        events.contains("from snapshot before-crash"),
        "the new host restored the snapshot: {events}"
    );

    // Back to the snapshot on purpose: the head goes back towards it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before_restore = node_head(&http, &endpoint).await;
    let (ok, out, err) = hood_cli(
        &["node", "restore", &id, "before-crash", "-o", "json"],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    let restored: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(restored["state"], "healthy", "{restored}");
    let after_restore = node_head(&http, restored["rpc_endpoint"].as_str().unwrap()).await;
    assert!(
        after_restore >= height && after_restore < before_restore,
        "restored to {height}: head {after_restore}, was {before_restore}"
    );
    // An incomplete or unknown snapshot is not restored.
    let (ok, _, err) = hood_cli(&["node", "restore", &id, "nope"], &env, None);
    assert!(!ok && err.contains("snapshot"), "{err}");

    // The node's console page: the snapshots, and one taken from there.
    if let Some((chromium, dir)) = &browser {
        let shots =
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("snapshot-screenshots");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        let passed = common::run_browser_script(
            "snapshots.e2e.mjs",
            dir,
            chromium,
            &shots,
            &[
                ("HOOD_API", api.clone()),
                ("HOOD_ADMIN_EMAIL", "admin@hood.local".into()),
                ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
                ("HOOD_NODE_ID", id.clone()),
            ],
        );
        assert!(passed, "the node page's snapshot browser test failed");
        let list = get_json(&http, &format!("{node_url}/snapshots"), &key).await;
        assert!(list.to_string().contains("from-console"), "{list}");
    }

    // A new node starts from the snapshot: its chain is at or past it.
    let seed = format!("{id}/before-crash");
    let (ok, _, err) = hood_cli(
        &[
            "node",
            "create",
            "--chain",
            "ethereum-anvil",
            "--from-snapshot",
            &format!("{id}/nope"),
        ],
        &env,
        None,
    );
    assert!(!ok && err.contains("has no snapshot `nope`"), "{err}");
    let (ok, out, err) = hood_cli(
        &[
            "node",
            "create",
            "--chain",
            "ethereum-anvil",
            "--name",
            "seeded",
            "--from-snapshot",
            &seed,
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    let seeded: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(seeded["state"], "healthy", "{seeded}");
    let seeded_id = seeded["id"].as_str().unwrap().to_owned();
    let seeded_head = node_head(&http, seeded["rpc_endpoint"].as_str().unwrap()).await;
    assert!(seeded_head >= height, "seeded at {seeded_head} < {height}");
    let events = get_json(
        &http,
        &format!("{api}/api/v1/nodes/{seeded_id}/events"),
        &key,
    )
    .await
    .to_string();
    assert!(
        events.contains("data seeded from snapshot before-crash"),
        "{events}"
    );

    // Terminated for good: its snapshots go with it.
    let (ok, out, err) = hood_cli(&["node", "delete", &id], &env, None);
    assert!(ok, "{out} {err}");
    assert_eq!(
        files_under(&home.join(format!("artifacts/snapshots/{id}"))),
        0,
        "snapshot objects deleted"
    );
    let list = get_json(&http, &format!("{node_url}/snapshots"), &key).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    // The seeded node keeps its own copy.
    assert!(home
        .join(format!(
            "artifacts/snapshots/{seeded_id}/before-crash/manifest.json"
        ))
        .is_file());
    drop(hood);
}

/// The control plane is SIGKILLed while a snapshot of a node with 320 MiB
/// of data uploads; started again, the snapshot completes, and the upload
/// sent only the chunks the object store did not hold yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_a_control_plane_crash_resumes() {
    let Some(anvil) = hood_testkit::anvil_bin("snapshot resume") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let gateway = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let up = || {
        let mut args = common::UP_ARGS.to_vec();
        args[6] = gateway.as_str();
        let mut env = fast_health_env();
        env.push(("HOOD_HOME", home.display().to_string()));
        common::HoodProcess::start(&args, &env, common::UP_LABELS)
    };
    let hood = up();
    let key = read_admin_key(&home);
    push_anvil(
        &anvil,
        &[
            ("HOOD_SERVER", hood.url("api")),
            ("HOOD_TOKEN", key.clone()),
        ],
    );
    let http = reqwest::Client::new();
    let (id, node) = create_healthy_node(
        &http,
        &hood.url("api"),
        &key,
        "big",
        Duration::from_secs(90),
    )
    .await;
    // Ballast that does not compress: 160 chunks.
    let host = node["host_id"].as_str().unwrap();
    let data = home.join(format!(
        "hosts/hosts/{host}/agent/workloads/nodes/{id}/data"
    ));
    assert!(data.is_dir(), "{}", data.display());
    let mut ballast = vec![0u8; BALLAST];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in &mut ballast {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    std::fs::write(data.join("ballast.bin"), &ballast).unwrap();
    drop(ballast);

    let api = hood.url("api");
    let r = http
        .post(format!("{api}/api/v1/nodes/{id}/snapshots"))
        .bearer_auth(&key)
        .json(&json!({"name": "big"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // Cut it once some chunks are stored and most are not.
    let list = format!("{api}/api/v1/nodes/{id}/snapshots");
    let started = Instant::now();
    let at_kill = loop {
        let v = get_json(&http, &list, &key).await;
        let s = &v["items"][0];
        let (done, total) = (
            s["chunks_done"].as_i64().unwrap_or(0),
            s["chunks_total"].as_i64().unwrap_or(0),
        );
        assert!(done < total || total == 0, "finished before the cut: {s}");
        if done >= 4 {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no upload: {s}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    drop(hood); // SIGKILL
    let hood = up();
    let api = hood.url("api");
    let list = format!("{api}/api/v1/nodes/{id}/snapshots");
    let done = wait_for(
        "the snapshot completes",
        Duration::from_secs(240),
        async || {
            let v = get_json(&http, &list, &key).await;
            let s = v["items"][0].clone();
            assert_ne!(s["state"], "failed", "{s}");
            (s["state"] == "complete").then_some(s)
        },
    )
    .await;
    let total = done["chunks_total"].as_i64().unwrap();
    assert!(total >= 160, "{done}");
    let events = get_json(&http, &format!("{api}/api/v1/nodes/{id}/events"), &key)
        .await
        .to_string();
    let stored = events
        .split("snapshot big stored")
        .nth(1)
        .expect("the snapshot's event");
    let number_before = |what: &str| -> i64 {
        let at = stored.find(what).expect(what);
        stored[..at]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (sent, skipped) = (
        number_before(" chunks sent"),
        number_before(" already stored"),
    );
    eprintln!(
        "killed with {at_kill} of {total} chunks stored; then {sent} sent, {skipped} skipped"
    );
    assert!(
        skipped >= at_kill,
        "what was stored before the crash is not sent again: {stored}"
    );
    assert_eq!(sent + skipped, total, "{stored}");
    // And it restores: the ballast comes back byte for byte.
    let (ok, out, err) = hood_cli(
        &["node", "restore", &id, "big"],
        &[("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", key.clone())],
        None,
    );
    assert!(ok, "{out} {err}");
    let node = get_json(&http, &format!("{api}/api/v1/nodes/{id}"), &key).await;
    let host = node["host_id"].as_str().unwrap();
    let restored = home.join(format!(
        "hosts/hosts/{host}/agent/workloads/nodes/{id}/data/ballast.bin"
    ));
    assert_eq!(std::fs::metadata(&restored).unwrap().len(), BALLAST as u64);
    drop(hood);
}

/// Warm migration from a live host: a node with no snapshot at all loses
/// its process (SIGKILL, and its port taken so every restart fails) while
/// its host's agent keeps answering. The node goes down and migrates; the
/// migration pulls the data directory from the old host, so the new host's
/// chain holds a transfer made before the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_pulls_the_data_from_a_live_old_host() {
    let Some(anvil) = hood_testkit::anvil_bin("migration pull") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &fast_health_env());
    let api = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let (id, node) =
        create_healthy_node(&http, &api, &key, "puller", Duration::from_secs(90)).await;
    let node_url = format!("{api}/api/v1/nodes/{id}");
    let endpoint = node["rpc_endpoint"].as_str().unwrap().to_owned();
    let old_host = node["host_id"].as_str().unwrap().to_owned();

    // A transfer only this node's data holds.
    let to = "0x00000000000000000000000000000000000d00d1";
    let value = "0xde0b6b3a7640000"; // 1 ether
    let from = node_rpc(&http, &endpoint, "eth_accounts", json!([])).await[0].clone();
    node_rpc(
        &http,
        &endpoint,
        "eth_sendTransaction",
        json!([{"from": from, "to": to, "value": value}]),
    )
    .await;
    wait_for("the transfer mined", Duration::from_secs(10), async || {
        let b = node_rpc(&http, &endpoint, "eth_getBalance", json!([to, "latest"])).await;
        (b == value).then_some(b)
    })
    .await;
    // anvil writes its state every 10 s (--state-interval): the transfer is
    // on disk after the next write.
    tokio::time::sleep(Duration::from_secs(12)).await;

    // The process dies; its port stays taken so no restart can serve: the
    // agent gives up, the host keeps answering.
    let addr: std::net::SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let sandbox = home.join("hosts").join("hosts").join(&old_host);
    let anvils: Vec<u32> = processes_under(&sandbox)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("--state-interval"))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(anvils.len(), 1, "one anvil on the host");
    let _ = std::process::Command::new("kill")
        .args(["-9", &anvils[0].to_string()])
        .status();
    let started = Instant::now();
    let squatter = loop {
        if let Ok(l) = std::net::TcpListener::bind(addr) {
            break l;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{addr} stays taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let moved =
        healthy_elsewhere(&http, &node_url, &key, &old_host, Duration::from_secs(180)).await;
    drop(squatter);
    let events = get_json(&http, &format!("{node_url}/events"), &key)
        .await
        .to_string();
    assert!(
        events.contains(&format!("pulled from old host {old_host}")),
        "the migration pulled the data: {events}"
    );
    let endpoint = moved["rpc_endpoint"].as_str().unwrap().to_owned();
    let balance = node_rpc(&http, &endpoint, "eth_getBalance", json!([to, "latest"])).await;
    assert_eq!(balance, value, "the new host's chain holds the transfer");
    // The pulled data is kept as the node's snapshot, reason `migration`.
    let list = get_json(&http, &format!("{node_url}/snapshots"), &key).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["state"], "complete", "{list}");
    assert_eq!(items[0]["reason"], "migration", "{list}");
    drop(hood);
}
