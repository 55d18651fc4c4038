//! The RPC edge on `hood up`, with a managed ethereum-anvil node as its
//! upstream: a valid key is served (single and batch), an unknown key gets
//! 401, a denied method and a disallowed chain are refused, exceeding the
//! plan gets 429 with Retry-After, a revoked key is refused within a
//! second, and after a clean stop every answered call has exactly one
//! usage event.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::{get_json, wait_for};
use common::{hood_cli, hood_up, push_anvil, read_admin_key, temp_home, KillUnder};
use hood_domain::{OrgId, RpcKeyId};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn managed_node_serves_through_the_edge_with_keys_limits_and_metering() {
    let Some(anvil) = hood_testkit::anvil_bin("edge_end_to_end") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[("HOOD_HEARTBEAT_INTERVAL_MS", "1000".into())]);
    let api = hood.url("api");
    let edge = hood.url("edge");
    let admin = read_admin_key(&home);
    let env = vec![("HOOD_SERVER", api.clone()), ("HOOD_TOKEN", admin.clone())];
    push_anvil(&anvil, &env);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{api}/api/v1/nodes"))
        .bearer_auth(&admin)
        .json(&json!({"chain": "ethereum-anvil", "name": "upstream"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let node: Value = r.json().await.unwrap();
    let org: OrgId = node["node"]["org_id"].as_str().unwrap().parse().unwrap();
    let node_url = format!(
        "{api}/api/v1/nodes/{}",
        node["node"]["id"].as_str().unwrap()
    );
    wait_for("healthy", Duration::from_secs(60), async || {
        let n = get_json(&http, &node_url, &admin).await;
        assert_ne!(n["state"], "failed", "{n}");
        (n["state"] == "healthy").then_some(n)
    })
    .await;

    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    // The operator's way: `hood rpc-key create` (the secret is shown once).
    let (ok, out, err) = hood_cli(
        &[
            "-o",
            "json",
            "rpc-key",
            "create",
            "--name",
            "e2e",
            "--plan",
            "free",
            "--chains",
            "ethereum-anvil",
            "--deny-methods",
            "eth_getBalance",
        ],
        &env,
        None,
    );
    assert!(ok, "rpc-key create: {out} {err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let token = created["key"].as_str().unwrap().to_owned();
    let key_id: RpcKeyId = created["id"].as_str().unwrap().parse().unwrap();
    let key = store
        .get_rpc_key(org, key_id)
        .await
        .unwrap()
        .expect("stored");
    let rpc = |chain: &str, token: &str, body: Value| {
        let http = http.clone();
        let url = format!("{edge}/{chain}/v1/{token}");
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = r.text().await.unwrap();
            let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
            (status, body, retry)
        }
    };
    let call =
        |id: u64, method: &str| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": []});
    // Answered calls of `key`, counted by the client.
    let mut answered = 0u64;

    // The node joins the pool within a refresh.
    wait_for("served", Duration::from_secs(20), async || {
        let (status, body, _) = rpc("ethereum-anvil", &token, call(1, "eth_blockNumber")).await;
        answered += 1;
        (status == 200 && body["result"].is_string()).then_some(body)
    })
    .await;

    // A batch: each call answered, in order, by id.
    let (status, body, _) = rpc(
        "ethereum-anvil",
        &token,
        json!([call(10, "eth_chainId"), call(11, "eth_blockNumber")]),
    )
    .await;
    answered += 2;
    assert_eq!(status, 200, "{body}");
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], 10);
    assert_eq!(items[0]["result"], "0x7a69", "anvil's chain id 31337");
    assert!(items[1]["result"].is_string());

    // A newHeads subscription over WebSocket, proxied to the managed node
    // (it mines a block a second): two heads arrive.
    {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let ws_url = format!(
            "{}/ethereum-anvil/v1/{token}",
            edge.replace("http://", "ws://")
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("WebSocket through the edge");
        ws.send(Message::text(
            json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
                .to_string(),
        ))
        .await
        .unwrap();
        let mut heads = 0;
        let deadline = Instant::now() + Duration::from_secs(15);
        while heads < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, ws.next())
                .await
                .expect("heads in time")
                .expect("open")
                .unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == 1 {
                assert!(v["result"].is_string(), "subscribed: {v}");
                answered += 1;
            } else if v["method"] == "eth_subscription" {
                assert!(v["params"]["result"]["number"].is_string(), "{v}");
                heads += 1;
                // Every pushed message is metered too.
                answered += 1;
            }
        }
        ws.close(None).await.unwrap();
        // Until the close completes, a head may still be pushed (and
        // metered): count what arrives.
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["method"] == "eth_subscription" {
                    answered += 1;
                }
            }
        }
    }

    // Unknown key: 401, and nothing metered for anyone.
    let (bogus, _) = {
        let g = hood_identity::api_keys::generate_rpc_key();
        (g.token, ())
    };
    let (status, body, _) = rpc("ethereum-anvil", &bogus, call(1, "eth_blockNumber")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], -32001);

    // Denied method: refused, naming the method.
    let (status, body, _) = rpc("ethereum-anvil", &token, call(2, "eth_getBalance")).await;
    answered += 1;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("eth_getBalance"),
        "{body}"
    );
    // Disallowed chain (a known chain, outside the key's list).
    let (status, body, _) = rpc("ethereum", &token, call(3, "eth_blockNumber")).await;
    answered += 1;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ethereum"));
    // Malformed bodies.
    let r = http
        .post(format!("{edge}/ethereum-anvil/v1/{token}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    answered += 1;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], -32700);

    // The free plan: 1,000 CU a minute; eth_blockNumber costs 10.
    let mut limited = None;
    for i in 0..150 {
        let (status, body, retry) =
            rpc("ethereum-anvil", &token, call(100 + i, "eth_blockNumber")).await;
        answered += 1;
        if status == 429 {
            limited = Some((body, retry));
            break;
        }
        assert_eq!(status, 200, "{body}");
    }
    let (body, retry) = limited.expect("the plan's limit is enforced");
    assert_eq!(body["error"]["code"], -32005, "{body}");
    assert_eq!(body["error"]["data"]["plan"], "free");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);

    // The usage API sees every answered call (hourly rollups).
    let usage_url = format!("{api}/api/v1/usage?key={}&granularity=hour", key.id);
    let usage = wait_for("usage rolled up", Duration::from_secs(10), async || {
        let u = get_json(&http, &usage_url, &admin).await;
        (u["totals"]["requests"].as_u64() == Some(answered)).then_some(u)
    })
    .await;
    let limited_calls = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["errors"].as_u64().unwrap())
        .sum::<u64>();
    assert!(limited_calls >= 4, "refusals count as errors: {usage}");
    // The free plan admits ~1,000 CU at once; calls that found no upstream
    // yet (while the pool filled) are metered at 0 CU.
    let cu = usage["totals"]["compute_units"].as_u64().unwrap();
    assert!((900..=1_100).contains(&cu), "{usage}");
    let (ok, out, err) = hood_cli(
        &[
            "-o",
            "json",
            "usage",
            "--key",
            &key.id.to_string(),
            "--granularity",
            "day",
        ],
        &env,
        None,
    );
    assert!(ok, "hood usage: {err}");
    let daily: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        daily["totals"]["requests"].as_u64(),
        Some(answered),
        "{daily}"
    );

    // Revocation reaches the edge within a second (`hood rpc-key revoke`).
    let (ok, _, err) = hood_cli(&["rpc-key", "revoke", &key.id.to_string()], &env, None);
    assert!(ok, "revoke: {err}");
    let revoked_at = Instant::now();
    loop {
        let (status, _, _) = rpc("ethereum-anvil", &token, call(5, "eth_chainId")).await;
        if status == 401 {
            break;
        }
        answered += 1;
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still served {:?} after revocation",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revocation took effect in {:?}", revoked_at.elapsed());

    // A clean stop flushes every usage event: one per answered call.
    hood.stop("-TERM");
    let events = store.count_usage_events(key.id).await.unwrap();
    assert_eq!(events as u64, answered, "one usage event per answered call");
}
