//! The operator's promise, end to end on `hood up`: a node's host dies; the
//! node goes down within a few evaluations, exactly one incident opens, a
//! webhook receiver is told exactly once, the node migrates to a new host
//! with the same key material and comes back healthy, the incident resolves,
//! and the uptime report shows the gap.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{
    create_healthy_node, fast_health_env, get_json, transitions, wait_for, webhook_receiver,
    Received, SECRET,
};
use common::{hood_up, processes_under, push_anvil, read_admin_key, temp_home, KillUnder};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn dead_host_node_migrates_with_one_incident_and_one_notification() {
    let Some(anvil) = hood_testkit::anvil_bin("health_end_to_end") else {
        return;
    };
    let (hook_url, received) = webhook_receiver().await;
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &fast_health_env());
    let api = hood.url("api");
    let key = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", key.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{api}/api/v1/notification-channels"))
        .bearer_auth(&key)
        .json(&json!({"name": "ops-hook", "config": {"kind": "webhook", "url": hook_url, "secret": SECRET}}))
        .send()
        .await
        .expect("channel");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    let (id, node) =
        create_healthy_node(&http, &api, &key, "survivor", Duration::from_secs(60)).await;
    let node_url = format!("{api}/api/v1/nodes/{id}");
    let old_host = node["host_id"].as_str().unwrap().to_owned();
    let sandbox = home.join("hosts").join("hosts").join(&old_host);
    let key_path = |host: &str| {
        home.join("hosts")
            .join("hosts")
            .join(host)
            .join(format!("agent/workloads/nodes/{id}/secrets/nodekey"))
    };
    let old_key = std::fs::read(key_path(&old_host)).expect("node key on the first host");

    // A quiet period with heartbeats: nothing may be raised.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let incidents = get_json(&http, &format!("{api}/api/v1/incidents"), &key).await;
    let history = get_json(&http, &format!("{node_url}/events"), &key).await;
    let host = get_json(&http, &format!("{api}/api/v1/hosts/{old_host}"), &key).await;
    assert_eq!(
        incidents["items"].as_array().map(Vec::len),
        Some(0),
        "{incidents}\n{history}\n{host}"
    );

    // The host dies: its agent and everything it started.
    let killed_at = Instant::now();
    let victims = processes_under(&sandbox);
    assert!(!victims.is_empty());
    for (pid, _) in &victims {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }

    // Down within the heartbeat timeout plus three 1 s evaluations (with
    // slack for a loaded 2-core machine), then migrating.
    wait_for("down", Duration::from_secs(30), async || {
        let ev = get_json(&http, &format!("{node_url}/events"), &key).await;
        transitions(&ev).contains(&"down".to_owned()).then_some(ev)
    })
    .await;
    let to_down = killed_at.elapsed();
    eprintln!("host killed -> node down in {to_down:?}");
    assert!(to_down < Duration::from_secs(12), "down took {to_down:?}");

    // Migration: back to healthy on another host, same key material.
    let node = wait_for(
        "healthy on a new host",
        Duration::from_secs(90),
        async || {
            let n = get_json(&http, &node_url, &key).await;
            assert_ne!(n["state"], "failed", "{n}");
            (n["state"] == "healthy" && n["host_id"].as_str() != Some(&old_host)).then_some(n)
        },
    )
    .await;
    eprintln!("host killed -> healthy again in {:?}", killed_at.elapsed());
    let new_host = node["host_id"].as_str().unwrap().to_owned();
    assert_ne!(new_host, old_host);
    assert_eq!(
        std::fs::read(key_path(&new_host)).expect("node key on the new host"),
        old_key
    );
    let endpoint = node["rpc_endpoint"].as_str().unwrap();
    let rpc: Value = http
        .post(endpoint)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}))
        .send()
        .await
        .expect("rpc on the new host")
        .json()
        .await
        .unwrap();
    assert!(rpc["result"].is_string(), "{rpc}");
    let events = get_json(&http, &format!("{node_url}/events"), &key).await;
    let t = transitions(&events);
    assert_eq!(t.iter().filter(|s| *s == "down").count(), 1, "{t:?}");
    assert_eq!(t.iter().filter(|s| *s == "migrating").count(), 1, "{t:?}");

    // The old host is retired by the migration's last step.
    wait_for("old host deleted", Duration::from_secs(30), async || {
        let host = get_json(&http, &format!("{api}/api/v1/hosts/{old_host}"), &key).await;
        (host["state"] == "deleted").then_some(host)
    })
    .await;
    assert!(processes_under(&sandbox).is_empty());

    // Exactly one incident, resolved after the node stayed healthy.
    let incident = wait_for("incident resolved", Duration::from_secs(30), async || {
        let list = get_json(&http, &format!("{api}/api/v1/incidents?node_id={id}"), &key).await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 1, "one incident only: {list}");
        items
            .into_iter()
            .next()
            .filter(|i| i["state"] == "resolved")
    })
    .await;
    assert_eq!(incident["category"], "node_down");
    let all = get_json(&http, &format!("{api}/api/v1/incidents"), &key).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1), "{all}");

    // The receiver was told once that it opened and once that it resolved.
    wait_for(
        "resolved notification",
        Duration::from_secs(20),
        async || {
            let got = received.lock().unwrap().clone();
            got.iter().any(|r| r.event == "incident.resolved").then(|| {
                json!(got
                    .iter()
                    .map(|r| json!({"event": r.event, "delivery": r.delivery}))
                    .collect::<Vec<_>>())
            })
        },
    )
    .await;
    // Give a duplicate the time to show up, if there were one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received.lock().unwrap().clone();
    let opened: Vec<&Received> = got
        .iter()
        .filter(|r| r.event == "incident.opened")
        .collect();
    assert_eq!(opened.len(), 1, "{got:?}");
    assert_eq!(
        got.iter()
            .filter(|r| r.event == "incident.resolved")
            .count(),
        1,
        "{got:?}"
    );
    assert!(got.iter().all(|r| r.signature_ok), "signatures verify");
    assert_eq!(opened[0].body["incident_id"], incident["id"]);
    assert_eq!(opened[0].body["category"], "node_down");

    // Uptime shows the outage.
    let uptime = get_json(&http, &format!("{node_url}/uptime?window=24h"), &key).await;
    let down_ms = uptime["down_ms"].as_i64().expect("down_ms");
    let up_ms = uptime["up_ms"].as_i64().expect("up_ms");
    assert!(down_ms >= 2_000, "the gap is counted: {uptime}");
    assert!(up_ms > 0, "{uptime}");
    let pct = uptime["uptime_percent"].as_f64().expect("percent");
    assert!(pct < 100.0 && pct > 0.0, "{uptime}");
    assert_eq!(uptime["syncing_counts_as"], "up");

    // Terminating the migrated node cleans up its new host too.
    let r = http
        .delete(&node_url)
        .bearer_auth(&key)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 202);
    wait_for("terminated", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &key).await;
        (n["state"] == "terminated").then_some(n)
    })
    .await;
    let new_sandbox = home.join("hosts").join("hosts").join(&new_host);
    assert!(processes_under(&new_sandbox).is_empty());
    hood.stop("-TERM");
}
