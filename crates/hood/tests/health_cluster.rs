//! The health promise in cluster mode: PostgreSQL, NATS JetStream, an api
//! replica, an agent gateway, two orchestrators and two health replicas as
//! separate `hood serve` processes. A node's host dies and, while the node
//! is down, the health leader is killed too. The standby takes over: one
//! incident, one migration, one "opened" and one "resolved" webhook, and
//! the node is healthy again on a new host.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{
    create_healthy_node, fast_health_env, get_json, transitions, wait_for, webhook_receiver, SECRET,
};
use common::{hood_cli, processes_under, push_anvil, read_admin_key, HoodProcess, KillUnder};
use hood_identity::master_key::MasterKey;
use hood_testkit::{NatsStream, PgDatabase};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The holder of the health lease, as `health-<pid>-<tag>`.
async fn health_leader(pool: &sqlx::PgPool) -> Option<(String, u32)> {
    let holder: Option<String> = sqlx::query_scalar(
        "SELECT holder FROM leader_leases WHERE name = 'health' AND expires_at > $1",
    )
    .bind(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
    .fetch_optional(pool)
    .await
    .unwrap();
    let holder = holder?;
    let pid = holder.split('-').nth(1)?.parse().ok()?;
    Some((holder, pid))
}

#[tokio::test(flavor = "multi_thread")]
async fn standby_health_replica_finishes_an_outage_after_the_leader_dies() {
    let Some(anvil) = hood_testkit::anvil_bin("health cluster test") else {
        return;
    };
    let Some(db) = PgDatabase::create("health_cluster").await else {
        return;
    };
    let Some(nats) = NatsStream::unique("health cluster test") else {
        return;
    };
    let (hook_url, received) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    let _guard = KillUnder(shared.clone());
    let gateway = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let master = MasterKey::generate();
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
        ];
        env.extend(fast_health_env());
        env.extend(nats.env());
        env
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
    let mut health = [
        Some(serve("health", "health-a")),
        Some(serve("health", "health-b")),
    ];
    let base = api.url("serving");
    let key = read_admin_key(&dir.path().join("api"));
    let cli_env = [("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &cli_env);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/notification-channels"))
        .bearer_auth(&key)
        .json(&json!({"name": "ops-hook", "config": {"kind": "webhook", "url": hook_url, "secret": SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let (id, node) =
        create_healthy_node(&http, &base, &key, "survivor", Duration::from_secs(90)).await;
    let node_url = format!("{base}/api/v1/nodes/{id}");
    let old_host = node["host_id"].as_str().unwrap().to_owned();

    // Exactly one of the two replicas leads.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let pids: Vec<u32> = health.iter().flatten().map(HoodProcess::pid).collect();
    let (holder, leader_pid) = wait_for("a health leader", Duration::from_secs(20), async || {
        health_leader(&pool).await.map(|(h, p)| json!([h, p]))
    })
    .await
    .as_array()
    .map(|a| {
        (
            a[0].as_str().unwrap().to_owned(),
            a[1].as_u64().unwrap() as u32,
        )
    })
    .unwrap();
    assert!(pids.contains(&leader_pid), "{holder} is one of {pids:?}");

    // The host dies.
    let sandbox = shared.join("hosts").join("hosts").join(&old_host);
    let victims = processes_under(&sandbox);
    assert!(
        !victims.is_empty(),
        "the host's agent runs under {sandbox:?}"
    );
    for (pid, _) in &victims {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    wait_for("down", Duration::from_secs(30), async || {
        let ev = get_json(&http, &format!("{node_url}/events"), &key).await;
        transitions(&ev).contains(&"down".to_owned()).then_some(ev)
    })
    .await;

    // Mid-outage, the leader dies without a word (no lease release).
    let slot = health
        .iter()
        .position(|p| p.as_ref().map(HoodProcess::pid) == Some(leader_pid))
        .unwrap();
    let leader = health[slot].take().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &leader_pid.to_string()])
        .status();
    drop(leader);
    let killed = Instant::now();
    let (new_holder, _) =
        wait_for(
            "a new leader",
            Duration::from_secs(20),
            async || match health_leader(&pool).await {
                Some((h, p)) if p != leader_pid => Some(json!([h, p])),
                _ => None,
            },
        )
        .await
        .as_array()
        .map(|a| (a[0].as_str().unwrap().to_owned(), a[1].as_u64().unwrap()))
        .unwrap();
    eprintln!(
        "leader {holder} killed; {new_holder} took over in {:?}",
        killed.elapsed()
    );

    // The standby finishes the job: migrated, healthy, resolved, notified.
    let node = wait_for(
        "healthy on a new host",
        Duration::from_secs(120),
        async || {
            let n = get_json(&http, &node_url, &key).await;
            assert_ne!(n["state"], "failed", "{n}");
            (n["state"] == "healthy" && n["host_id"].as_str() != Some(&old_host)).then_some(n)
        },
    )
    .await;
    assert_ne!(node["host_id"].as_str(), Some(old_host.as_str()));
    let incident = wait_for("incident resolved", Duration::from_secs(60), async || {
        let list = get_json(
            &http,
            &format!("{base}/api/v1/incidents?node_id={id}"),
            &key,
        )
        .await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 1, "one incident only: {list}");
        items
            .into_iter()
            .next()
            .filter(|i| i["state"] == "resolved")
    })
    .await;
    assert_eq!(incident["category"], "node_down");
    wait_for(
        "resolved notification",
        Duration::from_secs(30),
        async || {
            let got = received.lock().unwrap().clone();
            got.iter()
                .any(|r| r.event == "incident.resolved")
                .then_some(Value::Null)
        },
    )
    .await;
    // Give a duplicate the time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received.lock().unwrap().clone();
    let count = |event: &str| got.iter().filter(|r| r.event == event).count();
    assert_eq!(count("incident.opened"), 1, "{got:?}");
    assert_eq!(count("incident.resolved"), 1, "{got:?}");
    assert!(got.iter().all(|r| r.signature_ok));

    let events = get_json(&http, &format!("{node_url}/events"), &key).await;
    let t = transitions(&events);
    assert_eq!(t.iter().filter(|s| *s == "down").count(), 1, "{t:?}");
    assert_eq!(t.iter().filter(|s| *s == "migrating").count(), 1, "{t:?}");
    let migrations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workflows WHERE name = 'migrate-node'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(migrations, 1, "one migration workflow");
    let incidents: i64 = sqlx::query_scalar("SELECT count(*) FROM incidents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(incidents, 1);

    // Clean up: the node and its new host go.
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
    pool.close().await;
}
