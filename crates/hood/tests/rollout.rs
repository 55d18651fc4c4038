//! Rollouts end to end on `hood up` with real anvil binaries: six nodes on
//! 1.5.1 move to 1.7.1 through the shipped manifest in a canary and
//! batches of `max_unavailable` 2, paused and resumed midway, every node
//! ending on 1.7.1 (as anvil itself reports) with its chain continuing
//! from where it was; a version that cannot start stops the rollout after
//! its canary, whose `forward_only` upgrade restores its data snapshot and
//! old binary, leaving every other node untouched.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{get_json, node_head, node_rpc, wait_for};
use common::{hood_cli, hood_up, push_anvil, read_admin_key, temp_home, KillUnder};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "rollout-admin-password";

fn push(env: &[(&str, String)], version: &str, path: &Path) {
    let (ok, out, err) = hood_cli(
        &[
            "artifact",
            "push",
            "anvil-linux-amd64",
            version,
            path.to_str().unwrap(),
        ],
        env,
        None,
    );
    assert!(ok, "artifact push {version}: {out} {err}");
}

/// Creates `n` anvil nodes and waits until all are healthy; returns them.
async fn healthy_nodes(http: &reqwest::Client, api: &str, admin: &str, n: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = http
            .post(format!("{api}/api/v1/nodes"))
            .bearer_auth(admin)
            .json(&json!({"chain": "ethereum-anvil", "name": format!("n{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        ids.push(v["node"]["id"].as_str().unwrap().to_owned());
    }
    let mut nodes = Vec::new();
    for id in ids {
        let url = format!("{api}/api/v1/nodes/{id}");
        nodes.push(
            wait_for("node healthy", Duration::from_secs(120), async || {
                let n = get_json(http, &url, admin).await;
                assert_ne!(n["state"], "failed", "{n}");
                (n["state"] == "healthy" && n["rpc_endpoint"].is_string()).then_some(n)
            })
            .await,
        );
    }
    nodes
}

async fn rollout(http: &reqwest::Client, api: &str, admin: &str, id: &str) -> Value {
    get_json(http, &format!("{api}/api/v1/rollouts/{id}"), admin).await
}

async fn wait_rollout(
    http: &reqwest::Client,
    api: &str,
    admin: &str,
    id: &str,
    state: &str,
    within: Duration,
) -> Value {
    wait_for(state, within, async || {
        let r = rollout(http, api, admin, id).await;
        let s = r["state"].as_str().unwrap().to_owned();
        let ended = ["completed", "reverted", "aborted", "failed"].contains(&s.as_str());
        assert!(
            s == state || !ended,
            "rollout ended {s}, not {state}: {r:#}"
        );
        (s == state).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_roll_to_1_7_1_in_batches_with_a_pause() {
    let Some(anvil) = hood_testkit::anvil_bin("rollout") else {
        return;
    };
    let Some(anvil_next) = hood_testkit::anvil_next_bin("rollout") else {
        return;
    };
    // The console's rollout pages are checked in Chromium on the way.
    let browser = hood_testkit::chromium_bin("rollout console")
        .zip(hood_testkit::browser_tests_dir("rollout console"));
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(
        &home,
        &[
            ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ],
    );
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let nodes = healthy_nodes(&http, &api, &admin, 6).await;

    // Refused before anything is stored: the target is not in the store.
    let (ok, _, err) = hood_cli(
        &[
            "rollout",
            "create",
            "--chain",
            "ethereum-anvil",
            "--upgrade",
            "anvil-1.5.1-to-1.7.1",
        ],
        &env,
        None,
    );
    assert!(!ok && err.contains("hood artifact"), "{err}");
    push(&env, "1.7.1", &anvil_next);

    let mut heads = Vec::new();
    for n in &nodes {
        heads.push(node_head(&http, n["rpc_endpoint"].as_str().unwrap()).await);
    }
    let (ok, out, err) = hood_cli(
        &[
            "rollout",
            "create",
            "--chain",
            "ethereum-anvil",
            "--upgrade",
            "anvil-1.5.1-to-1.7.1",
            "--canary",
            "1",
            "--batch-size",
            "2",
            "--max-unavailable",
            "2",
            "--soak",
            "2",
            "--verify-timeout",
            "60",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert!(ok, "{out} {err}");
    let planned: Value = serde_json::from_str(&out).unwrap();
    let id = planned["id"].as_str().unwrap().to_owned();
    assert_eq!(planned["state"], "pending");
    let batches: Vec<u64> = planned["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        batches,
        [0, 1, 1, 2, 2, 3],
        "a canary, then batches of at most 2"
    );

    let started = Instant::now();
    let (ok, out, err) = hood_cli(&["rollout", "start", &id.clone()], &env, None);
    assert!(ok, "{out} {err}");
    // Pause once the canary is done; the next batch may be in flight, but
    // nothing after it starts while paused.
    wait_for("canary upgraded", Duration::from_secs(120), async || {
        let r = rollout(&http, &api, &admin, &id).await;
        (r["progress"]["upgraded"].as_u64() >= Some(1)).then_some(r)
    })
    .await;
    let (ok, out, err) = hood_cli(&["rollout", "pause", &id.clone()], &env, None);
    assert!(ok, "{out} {err}");
    let paused = rollout(&http, &api, &admin, &id).await;
    assert_eq!(paused["state"], "paused", "{paused:#}");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let still = rollout(&http, &api, &admin, &id).await;
    assert_eq!(still["state"], "paused");
    let touched = |r: &Value| {
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["state"] != "waiting")
            .count()
    };
    assert_eq!(
        touched(&still),
        touched(&paused),
        "no batch starts while paused: {still:#}"
    );
    assert!(touched(&still) < 6, "{still:#}");
    if let Some((chromium, dir)) = &browser {
        // The paused rollout in the console, resumed from its page.
        let shots =
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rollout-screenshots");
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        let passed = common::run_browser_script(
            "rollouts.e2e.mjs",
            dir,
            chromium,
            &shots,
            &[
                ("HOOD_API", api.clone()),
                ("HOOD_ADMIN_EMAIL", "admin@hood.local".into()),
                ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
                ("HOOD_ROLLOUT_ID", id.clone()),
            ],
        );
        assert!(passed, "the rollout pages' browser test failed");
    }
    // Resuming is idempotent: the console may have resumed it already.
    let (ok, out, err) = hood_cli(&["rollout", "resume", &id.clone()], &env, None);
    assert!(ok, "{out} {err}");
    // The CLI follows it to the end (exit 0 only when completed).
    let (ok, out, err) = hood_cli(&["rollout", "show", &id.clone(), "--watch"], &env, None);
    assert!(ok, "{out} {err}");
    assert!(out.contains("completed") && out.contains("6/6"), "{out}");
    let done = rollout(&http, &api, &admin, &id).await;
    let elapsed = started.elapsed();
    eprintln!(
        "six-node rollout (20 s of it paused): {:.1} s",
        elapsed.as_secs_f64()
    );
    assert_eq!(done["progress"]["upgraded"], 6, "{done:#}");

    for (n, before) in nodes.iter().zip(heads) {
        let url = format!("{api}/api/v1/nodes/{}", n["id"].as_str().unwrap());
        let now = get_json(&http, &url, &admin).await;
        assert_eq!(now["binary_version"], "1.7.1", "{now}");
        assert_eq!(now["rpc_endpoint"], n["rpc_endpoint"], "the endpoint stays");
        let endpoint = now["rpc_endpoint"].as_str().unwrap();
        let version = node_rpc(&http, endpoint, "web3_clientVersion", json!([])).await;
        assert!(
            version.as_str().unwrap().contains("1.7.1"),
            "anvil itself reports the new version: {version}"
        );
        let head = node_head(&http, endpoint).await;
        assert!(
            head >= before,
            "{}: head {head} went back from {before}",
            n["name"]
        );
    }
    // Each node was upgraded once.
    let workflows: Value = get_json(
        &http,
        &format!("{api}/api/v1/workflows?name=upgrade-node"),
        &admin,
    )
    .await;
    assert_eq!(workflows["items"].as_array().unwrap().len(), 6);
    drop(hood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_cannot_start_reverts_the_canary_with_its_data() {
    let Some(anvil) = hood_testkit::anvil_bin("rollout") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into())]);
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    push_anvil(&anvil, &env);
    // A release that exits at once.
    let broken = dir.path().join("anvil-broken");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'cannot open the database' >&2\nexit 3\n",
    )
    .unwrap();
    push(&env, "9.9.9", &broken);
    let http = reqwest::Client::new();
    let nodes = healthy_nodes(&http, &api, &admin, 3).await;
    // Let the chains grow a little so a restore has something to keep.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut heads = Vec::new();
    for n in &nodes {
        heads.push(node_head(&http, n["rpc_endpoint"].as_str().unwrap()).await);
    }
    let r = http
        .post(format!("{api}/api/v1/rollouts"))
        .bearer_auth(&admin)
        .json(
            &json!({"chain": "ethereum-anvil", "version": "9.9.9", "forward_only": true,
            "canary": 1, "batch_size": 2, "soak_s": 1, "verify_timeout_s": 8, "start": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let canary = created["nodes"][0]["node_id"].as_str().unwrap().to_owned();

    let ended = wait_rollout(
        &http,
        &api,
        &admin,
        &id,
        "reverted",
        Duration::from_secs(180),
    )
    .await;
    assert!(
        ended["error"].as_str().unwrap().contains("failure budget"),
        "{ended:#}"
    );
    let states: Vec<&str> = ended["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["reverted", "skipped", "skipped"], "{ended:#}");

    for (n, before) in nodes.iter().zip(heads) {
        let node_id = n["id"].as_str().unwrap();
        let url = format!("{api}/api/v1/nodes/{node_id}");
        let now = wait_for("healthy again", Duration::from_secs(60), async || {
            let v = get_json(&http, &url, &admin).await;
            (v["state"] == "healthy").then_some(v)
        })
        .await;
        assert_eq!(now["binary_version"], "1.5.1", "{now}");
        let endpoint = now["rpc_endpoint"].as_str().unwrap();
        let version = node_rpc(&http, endpoint, "web3_clientVersion", json!([])).await;
        assert!(version.as_str().unwrap().contains("1.5.1"), "{version}");
        let head = node_head(&http, endpoint).await;
        assert!(head >= before, "chain state intact: head {head} < {before}");
        let events = get_json(&http, &format!("{url}/events"), &admin).await;
        let text = events.to_string();
        if node_id == canary {
            assert!(text.contains("snapshotted"), "{text}");
            assert!(text.contains("restored from snapshot"), "{text}");
            assert!(text.contains("upgrade-node rolled back"), "{text}");
        } else {
            assert!(!text.contains("upgrading"), "untouched: {text}");
        }
    }
    drop(hood);
}

/// SIGKILL of `hood up` at random moments of rollouts that move three
/// nodes up to 1.7.1 and back down to 1.5.1 (the `forward_only` manifest,
/// so snapshots are taken on the way down), run after run: each rollout
/// still completes, every node ends on one version, healthy, with its
/// chain not gone back, and no node is upgraded twice by one rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_survive_sigkill_at_random_moments() {
    let Some(anvil) = hood_testkit::anvil_bin("rollout crash") else {
        return;
    };
    let Some(anvil_next) = hood_testkit::anvil_next_bin("rollout crash") else {
        return;
    };
    let runs: u64 = std::env::var("HOOD_ROLLOUT_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = common::seed_from_env("HOOD_ROLLOUT_CRASH_SEED");
    let mut rng = common::Rng(seed);
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let gateway = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut hood = common::hood_up_with_gateway(&home, &gateway);
    let admin = read_admin_key(&home);
    let env = |api: &str| {
        vec![
            ("HOOD_SERVER", api.to_owned()),
            ("HOOD_TOKEN", admin.clone()),
        ]
    };
    push_anvil(&anvil, &env(&hood.url("api")));
    push(&env(&hood.url("api")), "1.7.1", &anvil_next);
    let http = reqwest::Client::new();
    let nodes = healthy_nodes(&http, &hood.url("api"), &admin, 3).await;
    let mut heads: Vec<i64> = vec![0; nodes.len()];
    for run in 0..runs {
        let (upgrade, to) = if run % 2 == 0 {
            ("anvil-1.5.1-to-1.7.1", "1.7.1")
        } else {
            ("anvil-1.7.1-to-1.5.1", "1.5.1")
        };
        let api = hood.url("api");
        let r = http
            .post(format!("{api}/api/v1/rollouts"))
            .bearer_auth(&admin)
            .json(
                &json!({"chain": "ethereum-anvil", "upgrade_id": upgrade, "canary": 1,
                "batch_size": 2, "soak_s": 1, "verify_timeout_s": 60, "start": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let delay = rng.below(8_000);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(hood); // SIGKILL
        hood = common::hood_up_with_gateway(&home, &gateway);
        let api = hood.url("api");
        let ctx = format!("run {run} ({upgrade}, killed after {delay} ms, seed {seed})");
        let done = wait_rollout(
            &http,
            &api,
            &admin,
            &id,
            "completed",
            Duration::from_secs(240),
        )
        .await;
        assert_eq!(done["progress"]["upgraded"], 3, "{ctx}: {done:#}");
        for (i, n) in nodes.iter().enumerate() {
            let url = format!("{api}/api/v1/nodes/{}", n["id"].as_str().unwrap());
            let now = wait_for("healthy", Duration::from_secs(60), async || {
                let v = get_json(&http, &url, &admin).await;
                (v["state"] == "healthy").then_some(v)
            })
            .await;
            assert_eq!(now["binary_version"], to, "{ctx}: {now}");
            let endpoint = now["rpc_endpoint"].as_str().unwrap();
            let version = node_rpc(&http, endpoint, "web3_clientVersion", json!([])).await;
            assert!(version.as_str().unwrap().contains(to), "{ctx}: {version}");
            let head = node_head(&http, endpoint).await;
            assert!(head >= heads[i], "{ctx}: head {head} < {}", heads[i]);
            heads[i] = head;
            // One upgrade of this node by this rollout.
            let events = get_json(&http, &format!("{url}/events"), &admin).await;
            let from = if to == "1.7.1" { "1.5.1" } else { "1.7.1" };
            let started = events
                .as_array()
                .or_else(|| events["items"].as_array())
                .unwrap()
                .iter()
                .filter(|e| {
                    e["message"]
                        .as_str()
                        .is_some_and(|m| m == format!("upgrading anvil {from} → {to}"))
                })
                .count() as u64;
            assert_eq!(
                started,
                run / 2 + 1,
                "{ctx}: upgrades of node {i}: {events}"
            );
        }
    }
    let runs_of_upgrade: Value = get_json(
        &http,
        &format!(
            "{}/api/v1/workflows?name=upgrade-node&limit=1000",
            hood.url("api")
        ),
        &admin,
    )
    .await;
    let all = runs_of_upgrade["items"].as_array().unwrap();
    assert_eq!(
        all.len() as u64,
        runs * 3,
        "one upgrade per node per rollout"
    );
    assert!(all.iter().all(|w| w["state"] == "completed"), "{all:?}");
}

/// Copies a directory tree (the repository's chain catalog, to edit).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The anvil process of each node, by node id (its data directory names
/// the node).
fn anvil_pids(home: &Path, ids: &[String]) -> Vec<Option<u32>> {
    let procs = common::processes_under(home);
    ids.iter()
        .map(|id| {
            procs
                .iter()
                .find(|(_, c)| c.contains("/bin/anvil") && c.contains(id.as_str()))
                .map(|(p, _)| *p)
        })
        .collect()
}

/// An operator labels nodes, edits a node type's recipe and restarts the
/// control plane; `hood node reconfigure` restarts one node on the new
/// arguments (anvil serves twelve dev accounts, not ten) without losing
/// its chain, and a reconfigure rollout selected by label applies the
/// recipe to the other labelled node only: the unlabelled node keeps ten
/// accounts, and the node already on the new recipe keeps its process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_change_is_applied_by_reconfigure_and_by_a_labelled_rollout() {
    let Some(anvil) = hood_testkit::anvil_bin("reconfigure") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let chains = dir.path().join("chains");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chains"),
        &chains,
    );
    let gateway = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let up = || {
        let mut args = common::UP_ARGS.to_vec();
        args[6] = gateway.as_str();
        common::HoodProcess::start(
            &args,
            &[
                ("HOOD_HOME", home.display().to_string()),
                ("HOOD_CHAINS_DIR", chains.display().to_string()),
                ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ],
            common::UP_LABELS,
        )
    };
    let hood = up();
    let admin = read_admin_key(&home);
    let env = |api: &str| {
        vec![
            ("HOOD_SERVER", api.to_owned()),
            ("HOOD_TOKEN", admin.clone()),
        ]
    };
    push_anvil(&anvil, &env(&hood.url("api")));
    let http = reqwest::Client::new();
    let nodes = healthy_nodes(&http, &hood.url("api"), &admin, 3).await;
    let ids: Vec<String> = nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|n| n["rpc_endpoint"].as_str().unwrap().to_owned())
        .collect();
    let accounts = async |i: usize| {
        node_rpc(&http, &endpoints[i], "eth_accounts", json!([]))
            .await
            .as_array()
            .unwrap()
            .len()
    };
    for i in 0..3 {
        assert_eq!(accounts(i).await, 10, "the recipe's ten dev accounts");
    }

    // Labels through the CLI: set, add, remove; a bad key is refused.
    let label = |id: &str, changes: &[&str]| {
        let mut args = vec!["node", "label", id];
        args.extend_from_slice(changes);
        hood_cli(&args, &env(&hood.url("api")), None)
    };
    for (id, changes) in [
        (&ids[0], &["tier=main"][..]),
        (&ids[1], &["tier=main", "region=eu"]),
        (&ids[2], &["tier=edge"]),
        (&ids[1], &["region-"]),
    ] {
        let (ok, out, err) = label(id, changes);
        assert!(ok, "{out} {err}");
    }
    let (ok, out, _) = label(&ids[1], &[]);
    assert!(ok);
    assert_eq!(out.trim(), "tier=main", "region was removed");
    let (ok, _, err) = label(&ids[2], &["Tier=x"]);
    assert!(!ok && err.contains("label key `Tier`"), "{err}");
    let (ok, out, err) = hood_cli(
        &["node", "list", "--selector", "tier in (main)", "-o", "json"],
        &env(&hood.url("api")),
        None,
    );
    assert!(ok, "{out} {err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let mut names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["n0", "n1"], "{listed}");

    // The operator's change, read by the control plane at its next start.
    drop(hood);
    let recipe = chains.join("recipes/ethereum-anvil/dev.yaml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    let text = text.replacen(
        "    - --accounts\n    - \"10\"",
        "    - --accounts\n    - \"12\"",
        1,
    );
    assert!(
        text.contains("\"12\""),
        "the recipe's layout changed: {text}"
    );
    std::fs::write(&recipe, text).unwrap();
    let hood = up();
    let api = hood.url("api");
    for id in &ids {
        let url = format!("{api}/api/v1/nodes/{id}");
        wait_for(
            "healthy after the restart",
            Duration::from_secs(60),
            async || {
                let v = get_json(&http, &url, &admin).await;
                (v["state"] == "healthy").then_some(v)
            },
        )
        .await;
    }
    let before = node_head(&http, &endpoints[0]).await;

    let (ok, out, err) = hood_cli(
        &["node", "reconfigure", &ids[0], "-o", "json"],
        &env(&api),
        None,
    );
    assert!(ok, "{out} {err}");
    let after: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(after["state"], "healthy", "{after}");
    assert_eq!(
        after["rpc_endpoint"].as_str(),
        Some(endpoints[0].as_str()),
        "the endpoint stays"
    );
    assert_eq!(after["labels"], json!({"tier": "main"}), "{after}");
    assert_eq!(
        accounts(0).await,
        12,
        "anvil runs with the recipe's new arguments"
    );
    assert!(
        node_head(&http, &endpoints[0]).await >= before,
        "the chain continues"
    );
    let events = get_json(
        &http,
        &format!("{api}/api/v1/nodes/{}/events", ids[0]),
        &admin,
    )
    .await
    .to_string();
    assert!(events.contains("applying its recipe"), "{events}");
    assert!(events.contains("labels set by"), "{events}");

    // Nothing changed: the process is not restarted.
    let running = anvil_pids(&home, &ids);
    assert!(running.iter().all(Option::is_some), "{running:?}");
    let (ok, out, err) = hood_cli(&["node", "reconfigure", &ids[0]], &env(&api), None);
    assert!(ok, "{out} {err}");
    assert_eq!(
        anvil_pids(&home, &ids)[0],
        running[0],
        "an unchanged recipe leaves the process alone"
    );

    // The rest of the `tier=main` nodes, by a rollout.
    let (ok, out, err) = hood_cli(
        &[
            "rollout",
            "create",
            "--chain",
            "ethereum-anvil",
            "--reconfigure",
            "--selector",
            "tier=main",
            "--canary",
            "1",
            "--batch-size",
            "1",
            "--soak",
            "2",
            "--start",
            "--watch",
            "-o",
            "json",
        ],
        &env(&api),
        None,
    );
    assert!(ok, "the rollout completes: {out} {err}");
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(last["kind"], "reconfigure");
    assert_eq!(last["selector"], "tier=main");
    let mut targeted: Vec<&str> = last["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    targeted.sort_unstable();
    assert_eq!(targeted, ["n0", "n1"], "{last:#}");
    assert_eq!(accounts(1).await, 12, "the selected node took the recipe");
    assert_eq!(accounts(2).await, 10, "the unselected node did not");
    let now = anvil_pids(&home, &ids);
    assert_eq!(now[0], running[0], "n0 already ran the recipe: left alone");
    assert_ne!(now[1], running[1], "n1 was restarted on the recipe");
    assert_eq!(now[2], running[2], "n2 was not touched");
    // Not serving: refused with the reason.
    let r = http
        .post(format!(
            "{api}/api/v1/nodes/00000000-0000-4000-8000-000000000000/reconfigure"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(hood);
}

/// A manifest's checks gate its upgrade: a pre-check that does not hold
/// leaves the node untouched (never in maintenance, still 1.5.1); a
/// post-check that does not hold once 1.7.1 serves reverts it to 1.5.1.
/// Both rollouts end `reverted` naming the check. (The shipped manifest's
/// checks, which hold, are exercised by the six-node rollout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifests_checks_gate_the_upgrade() {
    let Some(anvil) = hood_testkit::anvil_bin("upgrade checks") else {
        return;
    };
    let Some(anvil_next) = hood_testkit::anvil_next_bin("upgrade checks") else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let chains = dir.path().join("chains");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../chains"),
        &chains,
    );
    let upgrades = chains.join("upgrades/ethereum-anvil");
    let shipped = std::fs::read_to_string(upgrades.join("anvil-1.5.1-to-1.7.1.yaml")).unwrap();
    let variant = |name: &str, from: &str, to: &str| {
        assert!(shipped.contains(from), "the manifest's layout changed");
        std::fs::write(
            upgrades.join(format!("{name}.yaml")),
            shipped.replacen(from, to, 1),
        )
        .unwrap();
    };
    // A day-old node only: ours is a minute old.
    variant(
        "too-young",
        "    expression: has(block_number.result)",
        "    expression: node.uptime_s > 86400",
    );
    // Serving another chain than anvil's: 1.7.1 serves 31337.
    variant(
        "wrong-chain",
        "    expression: hex_to_int(chain_id.result) == 31337",
        "    expression: hex_to_int(chain_id.result) == 1",
    );
    let hood = hood_up(
        &home,
        &[
            ("HOOD_CHAINS_DIR", chains.display().to_string()),
            ("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into()),
        ],
    );
    let api = hood.url("api");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    push_anvil(&anvil, &env);
    push(&env, "1.7.1", &anvil_next);
    let http = reqwest::Client::new();
    let node = healthy_nodes(&http, &api, &admin, 1).await.remove(0);
    let node_id = node["id"].as_str().unwrap().to_owned();
    let url = format!("{api}/api/v1/nodes/{node_id}");

    let roll = async |upgrade: &str| {
        let r = http
            .post(format!("{api}/api/v1/rollouts"))
            .bearer_auth(&admin)
            .json(
                &json!({"chain": "ethereum-anvil", "upgrade_id": upgrade, "canary": 1,
                "soak_s": 1, "verify_timeout_s": 15, "start": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let id = r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let ended = wait_rollout(
            &http,
            &api,
            &admin,
            &id,
            "reverted",
            Duration::from_secs(180),
        )
        .await;
        let now = wait_for("healthy again", Duration::from_secs(60), async || {
            let v = get_json(&http, &url, &admin).await;
            (v["state"] == "healthy").then_some(v)
        })
        .await;
        assert_eq!(now["binary_version"], "1.5.1", "{now}");
        let endpoint = now["rpc_endpoint"].as_str().unwrap();
        let version = node_rpc(&http, endpoint, "web3_clientVersion", json!([])).await;
        assert!(version.as_str().unwrap().contains("1.5.1"), "{version}");
        let events = get_json(&http, &format!("{url}/events"), &admin)
            .await
            .to_string();
        (ended.to_string(), events)
    };

    let (ended, events) = roll("too-young").await;
    assert!(
        ended.contains("pre-check `serving` of too-young does not hold"),
        "{ended}"
    );
    assert!(!events.contains("upgrading"), "untouched: {events}");

    let (ended, events) = roll("wrong-chain").await;
    assert!(
        ended.contains("post-check `right_chain` of wrong-chain does not hold"),
        "{ended}"
    );
    assert!(events.contains("upgrading anvil 1.5.1 → 1.7.1"), "{events}");
    assert!(events.contains("upgrade-node rolled back"), "{events}");
    drop(hood);
}
