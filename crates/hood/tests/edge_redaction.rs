//! Secrets never leak: `hood up` runs with debug logging, an RPC key is
//! created through the API and used for every kind of request (served,
//! batch, denied, limited, malformed, revoked), and an external upstream
//! carries credentials in its URL (one live, one dead so errors are
//! logged). Then every log line, every announcement on stdout and every
//! response body is searched for the key, its secret part, the upstream
//! password and the upstream's path secret.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use axum::http::HeaderMap;
use common::{read_admin_key, temp_home, HoodProcess, KillUnder, UP_ARGS, UP_LABELS};
use serde_json::{json, Value};
use std::time::Duration;

const UPSTREAM_PASSWORD: &str = "upstream-pa55word-7f3e";
const PATH_SECRET: &str = "path-secret-91ab";

/// An upstream that insists on basic auth.
async fn guarded_upstream() -> String {
    let app = axum::Router::new().route(
        "/{secret}",
        axum::routing::post(|headers: HeaderMap, body: axum::body::Bytes| async move {
            let authorized = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic "));
            if !authorized {
                return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({})));
            }
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = |c: &Value| json!({"jsonrpc": "2.0", "id": c["id"], "result": "0x2a"});
            let out = match &v {
                Value::Array(calls) => Value::Array(calls.iter().map(answer).collect()),
                c => answer(c),
            };
            (axum::http::StatusCode::OK, axum::Json(out))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://rpcuser:{UPSTREAM_PASSWORD}@{addr}/{PATH_SECRET}")
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_in_any_log_or_answer() {
    let live = guarded_upstream().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://rpcuser:{UPSTREAM_PASSWORD}@{}/{PATH_SECRET}",
            l.local_addr().unwrap()
        )
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let log = dir.path().join("hood.log");
    let mut envs = vec![
        ("HOOD_HOME", home.display().to_string()),
        ("HOOD_LOG", "debug".to_owned()),
        (
            "HOOD_EDGE_UPSTREAMS",
            format!("redactnet={live},redactnet={dead}"),
        ),
    ];
    envs.push(("HOOD_HEARTBEAT_INTERVAL_MS", "1000".to_owned()));
    let hood = HoodProcess::start_logged(UP_ARGS, &envs, UP_LABELS, Some(&log));
    let api = hood.url("api");
    let edge = hood.url("edge");
    let admin = read_admin_key(&home);
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{api}/api/v1/rpc-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "leaky", "plan": "free", "denied_methods": ["eth_getBalance"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["key"]
        .as_str()
        .expect("the key is shown once")
        .to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    // The secret's alphabet includes `_`: split as the edge does.
    let (_, secret) = hood_identity::api_keys::parse_rpc_key(&token).expect("an hrpc_ key");
    let secret = secret.to_owned();
    assert_eq!(secret.len(), hood_identity::api_keys::SECRET_LEN);

    let mut answers = Vec::new();
    let mut send = async |url: String, body: String| {
        let r = http.post(url).body(body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        answers.push(text.clone());
        (status, text)
    };
    let url = format!("{edge}/redactnet/v1/{token}");
    let call = |m: &str| json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": []}).to_string();
    // Served (the pool may need a probe first).
    let mut served = false;
    for _ in 0..50 {
        let (status, _) = send(url.clone(), call("eth_blockNumber")).await;
        if status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the live upstream serves");
    send(
        url.clone(),
        format!("[{},{}]", call("eth_chainId"), call("eth_blockNumber")),
    )
    .await;
    let (status, _) = send(url.clone(), call("eth_getBalance")).await;
    assert_eq!(status, 403);
    send(url.clone(), "{broken".to_owned()).await;
    send(format!("{edge}/ethereum/v1/{token}"), call("eth_chainId")).await;
    send(format!("{edge}/redactnet/v1/{token}x"), call("eth_chainId")).await;
    let mut limited = false;
    for _ in 0..120 {
        if send(url.clone(), call("eth_blockNumber")).await.0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited);
    let r = http
        .delete(format!("{api}/api/v1/rpc-keys/{key_id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = send(url.clone(), call("eth_chainId")).await;
    assert_eq!(status, 401);
    let announced: Vec<String> = hood.stdout_rest.try_iter().collect();
    hood.stop("-TERM");

    let mut logged = std::fs::read_to_string(&log).unwrap();
    logged.push_str(&announced.join("\n"));
    assert!(
        logged.lines().count() > 20 && logged.contains("DEBUG"),
        "debug logging was on:\n{logged}"
    );
    assert!(logged.contains("upstream"), "upstream events were logged");
    for (what, needle) in [
        ("the key", token.as_str()),
        ("the key's secret", secret.as_str()),
        ("the upstream password", UPSTREAM_PASSWORD),
        ("the upstream path secret", PATH_SECRET),
    ] {
        for (n, line) in logged.lines().enumerate() {
            assert!(!line.contains(needle), "{what} in log line {n}: {line}");
        }
        for a in &answers {
            assert!(!a.contains(needle), "{what} in an answer: {a}");
        }
    }
}
