//! Users' notification feeds end to end on `hood up`: a node's state
//! changes reach its organization's users live over a real WebSocket
//! client (a bearer header, or the token as a subprotocol the way a browser
//! sends it), never another organization's; the feed lists them unread
//! until marked read; a reconnect with its last id gets what came after.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::http::{second_org, Api};
use common::{hood_cli, hood_up, push_anvil, read_admin_key, temp_home, KillUnder};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum Auth<'a> {
    Header(&'a str),
    Subprotocol(&'a str),
    None,
}

async fn connect(base: &str, query: &str, auth: Auth<'_>) -> Result<Socket, StatusCode> {
    let url = format!(
        "{}/api/v1/notifications/stream{query}",
        base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().unwrap();
    match auth {
        Auth::Header(token) => {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Auth::Subprotocol(token) => {
            request.headers_mut().insert(
                "sec-websocket-protocol",
                format!("hood.v1, bearer.{token}").parse().unwrap(),
            );
        }
        Auth::None => {}
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            if let Some(selected) = response.headers().get("sec-websocket-protocol") {
                assert_eq!(selected, "hood.v1", "the token is never echoed back");
            }
            Ok(socket)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status()),
        Err(e) => panic!("{e}"),
    }
}

/// The next notification within `within`, if any.
async fn next(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("the stream ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_their_organization_live_and_no_one_else() {
    let Some(anvil) = hood_testkit::anvil_bin("notifications") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &[]);
    let base = hood.url("api");
    let admin = read_admin_key(&home);
    push_anvil(
        &anvil,
        &[("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", admin.clone())],
    );
    let api = Api::new(base.clone());
    let bob = second_org(&api, &admin).await;

    // No credentials, or bad ones: refused before any upgrade.
    assert_eq!(
        connect(&base, "", Auth::None).await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        connect(&base, "", Auth::Subprotocol("hood_nope_nope"))
            .await
            .err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    let plain = api.get("/api/v1/notifications/stream", &admin).await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST, "{}", plain.text);

    let mut mine = connect(&base, "", Auth::Header(&admin)).await.unwrap();
    let mut theirs = connect(&base, "", Auth::Subprotocol(&bob)).await.unwrap();

    // A node of the admin's organization changes state.
    let r = api
        .post(
            "/api/v1/nodes",
            &admin,
            json!({"chain": "ethereum-anvil", "name": "watched"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let node = r.body["node"]["id"].as_str().unwrap().to_owned();
    let first = next(&mut mine, Duration::from_secs(60))
        .await
        .expect("a notification of the node's state change");
    assert_eq!(first["subject"], "node.state_changed", "{first}");
    assert_eq!(first["detail"]["node_id"], node.as_str());
    assert!(
        first["title"]
            .as_str()
            .unwrap()
            .contains("ethereum-anvil node is"),
        "{first}"
    );
    assert_eq!(first["read_at"], Value::Null);
    // Until the node is healthy, every change arrives, in order.
    let mut seen = vec![first.clone()];
    while seen.last().unwrap()["detail"]["state"] != "healthy" {
        let n = next(&mut mine, Duration::from_secs(90))
            .await
            .unwrap_or_else(|| panic!("the node never became healthy: {seen:?}"));
        seen.push(n);
    }
    // Another organization hears nothing of it.
    assert_eq!(next(&mut theirs, Duration::from_secs(2)).await, None);

    // The feed lists them, newest first, unread.
    let page = api.get("/api/v1/notifications", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let listed: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let mut streamed: Vec<&str> = seen.iter().map(|i| i["id"].as_str().unwrap()).collect();
    streamed.reverse();
    assert_eq!(listed, streamed);
    assert_eq!(page.body["unread"], seen.len());
    let empty = api.get("/api/v1/notifications", &bob).await;
    assert_eq!(empty.body["items"], json!([]));

    // A reconnect after the first one gets the rest again.
    let mut again = connect(
        &base,
        &format!("?after={}", first["id"].as_str().unwrap()),
        Auth::Header(&admin),
    )
    .await
    .unwrap();
    let replayed = next(&mut again, Duration::from_secs(10)).await.unwrap();
    assert_eq!(replayed["id"], seen[1]["id"]);

    // The CLI lists the same feed.
    let cli_env = [("HOOD_SERVER", base.clone()), ("HOOD_TOKEN", admin.clone())];
    let (ok, out, err) = hood_cli(&["notification", "list", "--unread"], &cli_env, None);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("ID") && out.contains("ethereum-anvil node is"),
        "{out}"
    );
    assert!(out.contains(&format!("{} unread", seen.len())), "{out}");
    let (ok, _, err) = hood_cli(&["notification", "read"], &cli_env, None);
    assert!(!ok && err.contains("--all"), "{err}");

    // Marked read: one, then all.
    let one = api
        .post(
            "/api/v1/notifications/read",
            &admin,
            json!({"ids": [first["id"]]}),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["marked"], 1);
    assert_eq!(one.body["unread"], seen.len() - 1);
    let bad = api
        .post("/api/v1/notifications/read", &admin, json!({}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let (ok, out, err) = hood_cli(&["notification", "read", "--all"], &cli_env, None);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{} marked read, 0 unread", seen.len() - 1)),
        "{out}"
    );
    let unread = api.get("/api/v1/notifications?unread=true", &admin).await;
    assert_eq!(unread.body["items"], json!([]));
}
