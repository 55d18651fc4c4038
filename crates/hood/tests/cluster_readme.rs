//! The README's cluster section, run as a new user would on one machine.
//!
//! * The whole sequence: the shared settings first, `hood migrate`, two api
//!   replicas (started together, sharing one `$HOOD_HOME`), an agent
//!   gateway, two orchestrators, two health and two billing replicas and
//!   two edges (each with its own usage spool) on
//!   PostgreSQL + NATS; then `hood artifact push` (what `import-anvil` does
//!   after npm), `hood node create`, `hood node list`, an RPC key from the
//!   API and a call through each edge replica; then `hood node delete`.
//!   Other tests run at the same time, so the addresses the README leaves
//!   to defaults are explicit free ports here, given through the flags the
//!   README uses for second replicas; orchestrator and health replicas open
//!   no port and start exactly as written.
//! * A node whose artifact object is missing from the store says so while
//!   it retries and fails with that reason; pushing again restores the
//!   object and the next node starts.
//! * `hood serve` refuses to start without a shared artifact store, and a
//!   taken address names the flag that moves it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{get_json, wait_for};
use common::{hood_bin, hood_cli, processes_under, push_anvil, HoodProcess, KillUnder};
use hood_identity::master_key::MasterKey;
use hood_testkit::{NatsStream, PgDatabase};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// What the README has the operator export before starting anything, for
/// one installation under `dir` (the README's `$PWD/.hood`).
struct Settings {
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Settings {
    fn new(dir: &Path, db: &PgDatabase, gateway: &str, nats: Option<&NatsStream>) -> Self {
        let home = dir.join(".hood");
        let mut env = vec![
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", MasterKey::generate().to_base64()),
            (
                "HOOD_ARTIFACT_STORE",
                format!("file://{}", home.join("artifacts").display()),
            ),
            ("HOOD_HOSTS_DIR", home.join("hosts").display().to_string()),
            ("HOOD_GATEWAY_URL", format!("https://{gateway}")),
            // Servers and CLI run "from the same directory".
            ("HOOD_HOME", home.display().to_string()),
            // Never a session of the machine's user.
            ("HOOD_CONFIG", dir.join("cli.json").display().to_string()),
        ];
        if let Some(nats) = nats {
            env.extend(nats.env());
        }
        Self {
            dir: dir.to_owned(),
            env,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.join(".hood")
    }

    fn serve(&self, args: &[&str], labels: &[&str]) -> HoodProcess {
        let mut argv = vec!["serve"];
        argv.extend_from_slice(args);
        HoodProcess::start(&argv, &self.env, labels)
    }

    /// A CLI command against `server` with the admin key from `$HOOD_HOME`.
    fn cli(&self, server: &str, args: &[&str]) -> (bool, String, String) {
        let mut env = self.env.clone();
        env.push(("HOOD_SERVER", server.to_owned()));
        hood_cli(args, &env, None)
    }

    fn migrate(&self) {
        let (ok, out, err) = hood_cli(&["migrate"], &self.env, None);
        assert!(ok, "migrate: {out} {err}");
    }
}

/// `eth_chainId`: stable, unlike the head, which anvil moves every second.
async fn rpc(http: &reqwest::Client, url: &str) -> Option<Value> {
    let r = http
        .post(url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_cluster_sequence_serves_rpc_through_both_edges() {
    let Some(anvil) = hood_testkit::anvil_bin("README cluster test") else {
        return;
    };
    let Some(db) = PgDatabase::create("cluster_readme").await else {
        return;
    };
    let Some(nats) = NatsStream::unique("README cluster test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _guard = KillUnder(dir.path().to_owned());
    let [api_a, api_b, gateway, edge_a, edge_b] = std::array::from_fn(|_| free_addr());
    let s = Settings::new(dir.path(), &db, &gateway, Some(&nats));
    s.migrate();

    // Two api replicas started at once, sharing one home: one bootstraps
    // the administrator, and its key is the one left in admin.key.
    let (api, api2) = std::thread::scope(|scope| {
        let a = scope.spawn(|| s.serve(&["--role", "api,auth", "--listen", &api_a], &["serving"]));
        let b = scope.spawn(|| s.serve(&["--role", "api,auth", "--listen", &api_b], &["serving"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let _gateway = s.serve(
        &["--role", "agent-gateway", "--gateway-listen", &gateway],
        &["serving"],
    );
    let _orchestrators = [
        s.serve(&["--role", "orchestrator"], &["serving"]),
        s.serve(&["--role", "orchestrator"], &["serving"]),
    ];
    let _health = [
        s.serve(&["--role", "health"], &["serving"]),
        s.serve(&["--role", "health"], &["serving"]),
    ];
    let _billing = [
        s.serve(&["--role", "billing"], &["serving"]),
        s.serve(&["--role", "billing"], &["serving"]),
    ];
    let _edges = [
        s.serve(
            &["--role", "edge", "--edge-addr", &edge_a],
            &["serving", "edge"],
        ),
        s.serve(
            &[
                "--role",
                "edge",
                "--edge-addr",
                &edge_b,
                "--edge-spool-dir",
                &s.home().join("edge-spool-2").display().to_string(),
            ],
            &["serving", "edge"],
        ),
    ];
    let base = api.url("serving");
    assert_eq!(base, format!("http://{api_a}"));
    assert_eq!(api2.url("serving"), format!("http://{api_b}"));

    // The three commands (the push is what import-anvil does after npm).
    push_anvil(
        &anvil,
        &[
            ("HOOD_SERVER", base.clone()),
            ("HOOD_HOME", s.home().display().to_string()),
            (
                "HOOD_CONFIG",
                dir.path().join("cli.json").display().to_string(),
            ),
        ],
    );
    let (ok, out, err) = s.cli(
        &base,
        &[
            "node",
            "create",
            "--chain",
            "ethereum-anvil",
            "--timeout",
            "240",
        ],
    );
    assert!(ok, "node create: {out} {err}");
    assert!(out.contains("healthy"), "{out}");
    // Either api replica answers for the node.
    let (ok, out, err) = s.cli(&api2.url("serving"), &["-o", "json", "node", "list"]);
    assert!(ok, "node list: {out} {err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let nodes = list["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{list}");
    assert_eq!(nodes[0]["state"], "healthy");
    let id = nodes[0]["id"].as_str().unwrap().to_owned();
    let endpoint = nodes[0]["rpc_endpoint"].as_str().unwrap().to_owned();

    // An RPC key through the API, a call through each edge replica.
    let (ok, out, err) = s.cli(
        &base,
        &[
            "-o",
            "json",
            "rpc-key",
            "create",
            "--name",
            "dapp",
            "--plan",
            "free",
            "--chains",
            "ethereum-anvil",
        ],
    );
    assert!(ok, "rpc-key create: {out} {err}");
    let token = serde_json::from_str::<Value>(&out).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let direct = rpc(&http, &endpoint).await.expect("the node answers");
    for edge in [&edge_a, &edge_b] {
        let url = format!("http://{edge}/ethereum-anvil/v1/{token}");
        let answer = wait_for(
            &format!("an answer through the edge on {edge}"),
            Duration::from_secs(60),
            async || rpc(&http, &url).await,
        )
        .await;
        assert_eq!(answer["result"], direct["result"], "{answer}");
    }

    let (ok, out, err) = s.cli(&base, &["node", "delete", &id, "--timeout", "120"]);
    assert!(ok, "node delete: {out} {err}");
    let hosts = s.home().join("hosts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !processes_under(&hosts).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(processes_under(&hosts), vec![], "no agent or node survives");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_artifact_object_is_named_in_the_node_failure_and_a_push_restores_it() {
    let Some(anvil) = hood_testkit::anvil_bin("missing artifact object test") else {
        return;
    };
    let Some(db) = PgDatabase::create("cluster_missing_object").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _guard = KillUnder(dir.path().to_owned());
    let [api_addr, gateway] = std::array::from_fn(|_| free_addr());
    let s = Settings::new(dir.path(), &db, &gateway, None);
    s.migrate();
    let api = s.serve(&["--role", "api,auth", "--listen", &api_addr], &["serving"]);
    let _gateway = s.serve(
        &["--role", "agent-gateway", "--gateway-listen", &gateway],
        &["serving"],
    );
    let _orchestrator = s.serve(&["--role", "orchestrator"], &["serving"]);
    let base = api.url("serving");
    let key = std::fs::read_to_string(s.home().join("admin.key"))
        .unwrap()
        .trim()
        .to_owned();
    let anvil_path = anvil.to_str().unwrap();
    let push = || {
        s.cli(
            &base,
            &[
                "-o",
                "json",
                "artifact",
                "push",
                "anvil-linux-amd64",
                "1.5.1",
                anvil_path,
            ],
        )
    };
    let (ok, out, err) = push();
    assert!(ok, "push: {out} {err}");
    let pushed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pushed["outcome"], "created");
    let sha = pushed["sha256"].as_str().unwrap().to_owned();
    let blob = s.home().join("artifacts/blobs/sha256").join(&sha);
    let original = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();

    let http = reqwest::Client::new();
    let create = |name: &'static str| {
        let http = http.clone();
        let (base, key) = (base.clone(), key.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/nodes"))
                .bearer_auth(&key)
                .json(&json!({"chain": "ethereum-anvil", "name": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["node"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let reason = format!(
        "artifact object anvil-linux-amd64 1.5.1 (sha256 {sha}) missing in the artifact store"
    );
    let id = create("without-object").await;
    let node_url = format!("{base}/api/v1/nodes/{id}");
    // While it retries, its history says why.
    let warning = wait_for(
        "a warning naming the missing object",
        Duration::from_secs(90),
        async || {
            let events = get_json(&http, &format!("{node_url}/events"), &key).await;
            let node = get_json(&http, &node_url, &key).await;
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "warning")
                .map(|e| json!({"message": e["message"], "state": node["state"]}))
        },
    )
    .await;
    let message = warning["message"].as_str().unwrap();
    assert!(message.contains(&reason), "{message}");
    assert!(message.contains("retrying"), "{message}");
    assert!(
        message.contains("push it again with `hood artifact push anvil-linux-amd64 1.5.1 FILE`"),
        "{message}"
    );
    assert_ne!(warning["state"], "failed", "said while retrying");
    // Then it fails with that reason, not "temporarily unavailable".
    let failed = wait_for("the node to fail", Duration::from_secs(120), async || {
        let n = get_json(&http, &node_url, &key).await;
        (n["state"] == "failed").then_some(n)
    })
    .await;
    let failure = failed["failure_reason"].as_str().unwrap();
    assert!(failure.contains(&reason), "{failure}");
    assert!(failure.contains("after 5 attempts"), "{failure}");
    assert!(!failure.contains("temporarily unavailable"), "{failure}");

    // Pushing again restores the object (the catalog row was there) ...
    let (ok, out, err) = push();
    assert!(ok, "push: {out} {err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["outcome"],
        "restored"
    );
    assert!(err.contains("stored it again"), "{err}");
    assert_eq!(std::fs::read(&blob).unwrap(), original);
    // ... and the next node starts.
    let id = create("after-restore").await;
    let node_url = format!("{base}/api/v1/nodes/{id}");
    wait_for(
        "the next node to be healthy",
        Duration::from_secs(120),
        async || {
            let n = get_json(&http, &node_url, &key).await;
            assert_ne!(n["state"], "failed", "{n}");
            (n["state"] == "healthy").then_some(n)
        },
    )
    .await;
    let r = http
        .delete(&node_url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for("terminated", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &key).await;
        (n["state"] == "terminated").then_some(n)
    })
    .await;
}

/// Runs `hood serve …` that must exit on its own: (exit ok, stderr).
fn serve_expecting_exit(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = Command::new(hood_bin());
    cmd.arg("serve")
        .args(args)
        .env_remove("HOOD_ARTIFACT_STORE")
        .env_remove("HOOD_LISTEN")
        .env_remove("HOOD_NATS_URL")
        .env("HOOD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hood serve {args:?} kept running; it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

#[test]
fn serve_refuses_to_start_without_a_shared_artifact_store_or_on_a_taken_address() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        // An empty database: whatever gets that far stops at its schema.
        (
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("empty.db").display()),
        ),
        ("HOOD_MASTER_KEY", MasterKey::generate().to_base64()),
        ("HOOD_HOME", dir.path().join("home").display().to_string()),
    ];
    for (roles, named) in [
        ("api,auth", "the api role"),
        ("agent-gateway", "the agent-gateway role"),
        ("orchestrator", "the orchestrator role"),
        ("api,orchestrator", "the api and orchestrator roles"),
    ] {
        let (ok, err) = serve_expecting_exit(&["--role", roles, "--listen", "127.0.0.1:0"], &env);
        assert!(!ok, "{roles} started without an artifact store");
        assert!(
            err.contains(&format!("{named} in cluster mode need")),
            "{roles}: {err}"
        );
        assert!(err.contains("set HOOD_ARTIFACT_STORE"), "{roles}: {err}");
        assert!(
            !dir.path().join("home/artifacts").exists(),
            "no silent local store"
        );
    }
    // Roles that never touch artifacts need none (and stop later, here at
    // the unmigrated schema).
    for roles in ["health", "edge", "auth"] {
        let (ok, err) = serve_expecting_exit(&["--role", roles, "--listen", "127.0.0.1:0"], &env);
        assert!(!ok);
        assert!(!err.contains("HOOD_ARTIFACT_STORE"), "{roles}: {err}");
    }

    // A second replica on the first one's address is told what to change.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut env = env.to_vec();
    env.push((
        "HOOD_ARTIFACT_STORE",
        format!("file://{}", dir.path().join("artifacts").display()),
    ));
    let (ok, err) = serve_expecting_exit(&["--role", "api,auth", "--listen", &addr], &env);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "the HTTP listener cannot listen on {addr}: the address is already in use"
        )),
        "{err}"
    );
    assert!(
        err.contains("Set --listen (or HOOD_LISTEN) to a free address"),
        "{err}"
    );
}
