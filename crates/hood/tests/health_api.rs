//! The health API against a real `hood up`: notification channels (secrets
//! sealed and never echoed, validation, tenancy, the destination guard and
//! its allow-list), incidents on a fresh install, node uptime errors, and
//! the `hood channel` / `hood incident` / `hood node uptime` CLI.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::http::{second_org, Api};
use common::{hood_cli, hood_up, read_admin_key, temp_home};
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::{NodeId, OrgId, Timestamp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SECRET: &str = "WebhookSigningSecretNeverEchoed";

fn webhook(name: &str) -> Value {
    json!({
        "name": name,
        "config": { "kind": "webhook", "url": "https://hooks.example.com/hood", "secret": SECRET }
    })
}

type Received = std::sync::Arc<std::sync::Mutex<Option<(String, String)>>>;

/// A local webhook receiver answering 200; keeps the last request's
/// `Hood-Signature` header and body.
async fn webhook_receiver() -> (String, Received) {
    let received: Received = Received::default();
    let keep = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let keep = keep.clone();
            async move {
                let sig = headers
                    .get("hood-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                *keep.lock().unwrap() = Some((sig, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

/// Stores a node of `org` straight into the embedded database.
async fn insert_node(home: &std::path::Path, org: OrgId) -> NodeId {
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .expect("store");
    let now = Timestamp::from_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis(),
        )
        .expect("ms"),
    );
    let node = Node {
        id: NodeId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org,
        name: "uptime-probe".into(),
        chain: "ethereum-anvil".into(),
        node_type: "dev".into(),
        provider: "local".into(),
        region: "local".into(),
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    store.create_node(&node).await.expect("create node");
    node.id
}

#[tokio::test(flavor = "multi_thread")]
async fn health_api_channels_incidents_and_uptime() {
    let (_dir, home) = temp_home();
    // The test receivers listen on loopback: allow it, as an operator would.
    let hood = hood_up(
        &home,
        &[("HOOD_NOTIFY_ALLOW_NETWORKS", "127.0.0.0/8".to_owned())],
    );
    let admin = read_admin_key(&home);
    let api = Api {
        base: hood.url("api"),
        http: reqwest::Client::new(),
    };

    // -- channels: create, redaction --
    let r = api
        .post("/api/v1/notification-channels", &admin, webhook("ops-hook"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains(SECRET), "secret echoed: {}", r.text);
    assert_eq!(r.body["name"], "ops-hook");
    assert_eq!(r.body["kind"], "webhook");
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["config"]["secret"], "***");
    assert_eq!(r.body["config"]["url"], "https://hooks.example.com/hood");
    let channel = r.body["id"].as_str().expect("channel id").to_owned();

    // -- invalid config: 422 naming the field --
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "bad", "config": {"kind": "webhook", "url": "ftp://example.com/x", "secret": SECRET}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(
        r.body["invalid-params"][0]["name"], "config.url",
        "{}",
        r.text
    );
    assert!(!r.text.contains(SECRET), "{}", r.text);
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "weak", "config": {"kind": "webhook", "url": "https://example.com/x", "secret": "short"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["invalid-params"][0]["name"], "config.secret");
    assert!(!r.text.contains("\"short\""), "{}", r.text);
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "em", "config": {"kind": "email", "smtp_host": "smtp.example.com", "smtp_port": 25,
                "from": "hood@example.com", "to": ["ops@example.com", "not an address"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["invalid-params"][0]["name"], "config.to[1]");
    // Shape errors (unknown kind or field) are malformed requests.
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "pager", "config": {"kind": "pager", "url": "https://x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "", "config": {"kind": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["invalid-params"][0]["name"], "name");

    // -- duplicate name --
    let r = api
        .post("/api/v1/notification-channels", &admin, webhook("ops-hook"))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

    // -- list and get --
    let r = api.get("/api/v1/notification-channels", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(items[0]["id"], channel.as_str());
    assert!(!r.text.contains(SECRET));
    let r = api
        .get(&format!("/api/v1/notification-channels/{channel}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["config"]["secret"], "***");
    assert!(!r.text.contains(SECRET));
    let r = api
        .get("/api/v1/notification-channels/not-a-uuid", &admin)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // -- tenancy: another org sees nothing of it --
    let bob = second_org(&api, &admin).await;
    let r = api
        .get(&format!("/api/v1/notification-channels/{channel}"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .delete(&format!("/api/v1/notification-channels/{channel}"), &bob)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .post(
            &format!("/api/v1/notification-channels/{channel}/test"),
            &bob,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api.get("/api/v1/notification-channels", &bob).await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    // Names are per organization.
    let r = api
        .post("/api/v1/notification-channels", &bob, webhook("ops-hook"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // -- delete --
    let r = api
        .delete(&format!("/api/v1/notification-channels/{channel}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = api
        .get(&format!("/api/v1/notification-channels/{channel}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .delete(&format!("/api/v1/notification-channels/{channel}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api.get("/api/v1/notification-channels", &admin).await;
    assert_eq!(r.body["items"], json!([]));
    // The name is free again.
    let r = api
        .post("/api/v1/notification-channels", &admin, webhook("ops-hook"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // -- the allow-list admits loopback only: other private blocks stay refused --
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "internal", "config": {"kind": "webhook", "url": "http://10.0.0.8/hook", "secret": SECRET}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["invalid-params"][0]["name"], "config.url");

    // -- test notification: delivered to a local receiver, 502 when refused --
    let (hook_url, received) = webhook_receiver().await;
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "local-hook", "config": {"kind": "webhook", "url": hook_url, "secret": SECRET}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let local = r.body["id"].as_str().expect("id").to_owned();
    let r = api
        .post(
            &format!("/api/v1/notification-channels/{local}/test"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["delivered"], true);
    let (signature, body) = received.lock().unwrap().clone().expect("webhook received");
    assert!(!signature.is_empty(), "signed");
    let sent: Value = serde_json::from_str(&body).expect("notification JSON");
    assert_eq!(sent["event"], "test");
    assert!(!body.contains(SECRET));
    let r = api
        .post(
            "/api/v1/notification-channels",
            &admin,
            json!({"name": "dead-hook", "config": {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": SECRET}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let dead = r.body["id"].as_str().expect("id").to_owned();
    let r = api
        .post(
            &format!("/api/v1/notification-channels/{dead}/test"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(!r.text.contains(SECRET), "{}", r.text);

    // -- incidents on a fresh install --
    let r = api.get("/api/v1/incidents", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"], json!([]));
    let r = api
        .get("/api/v1/incidents?active=true&limit=10", &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"], json!([]));
    let r = api.get("/api/v1/incidents?state=burning", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["invalid-params"][0]["name"], "state");
    let r = api.get("/api/v1/incidents?color=red", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown query field");
    let unknown = "0190b5a0-0000-7000-8000-000000000001";
    let r = api
        .post(
            &format!("/api/v1/incidents/{unknown}/ack"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .get(&format!("/api/v1/incidents/{unknown}"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api
        .get(&format!("/api/v1/incidents/{unknown}/deliveries"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // -- uptime --
    let r = api
        .get(&format!("/api/v1/nodes/{unknown}/uptime"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .get(&format!("/api/v1/nodes/{unknown}/uptime?window=7d"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = api
        .get(&format!("/api/v1/nodes/{unknown}/uptime?window=1y"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    for allowed in ["24h", "7d", "30d"] {
        assert!(detail.contains(allowed), "{detail}");
    }
    assert_eq!(r.body["invalid-params"][0]["name"], "window");
    // A node of the admin's org (stored directly: no workflow runs for it).
    let me = api.get("/api/v1/me", &admin).await;
    let org: OrgId = me.body["org"]["id"]
        .as_str()
        .expect("org id")
        .parse()
        .expect("org id");
    let node_id = insert_node(&home, org).await;
    let r = api
        .get(&format!("/api/v1/nodes/{node_id}/uptime"), &admin)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["node_id"], node_id.to_string());
    let span =
        r.body["to_ms"].as_i64().expect("to_ms") - r.body["from_ms"].as_i64().expect("from_ms");
    assert_eq!(span, 24 * 3_600_000, "default window is 24h");
    assert_eq!(r.body["syncing_counts_as"], "up");
    assert!(r.body["buckets"].is_array(), "{}", r.text);
    let r = api
        .get(
            &format!("/api/v1/nodes/{node_id}/uptime?window=30d"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let span =
        r.body["to_ms"].as_i64().expect("to_ms") - r.body["from_ms"].as_i64().expect("from_ms");
    assert_eq!(span, 30 * 24 * 3_600_000);
    let r = api
        .get(&format!("/api/v1/nodes/{node_id}/uptime"), &bob)
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "another org's node: {}",
        r.text
    );

    // -- permissions: a read-only key can read but not write --
    let r = api
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "reader", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let reader = r.body["token"].as_str().expect("token").to_owned();
    let r = api.get("/api/v1/notification-channels", &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = api
        .post("/api/v1/notification-channels", &reader, webhook("nope"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = api
        .post(
            &format!("/api/v1/incidents/{unknown}/ack"),
            &reader,
            json!({}),
        )
        .await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
        "{}",
        r.text
    );

    // -- OpenAPI lists the new routes --
    let r = api.get("/openapi.json", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    for path in [
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}/ack",
        "/api/v1/incidents/{incident_id}/deliveries",
        "/api/v1/notification-channels",
        "/api/v1/notification-channels/{channel_id}",
        "/api/v1/nodes/{node_id}/uptime",
    ] {
        assert!(
            r.body["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(r.content_type.starts_with("application/json"));
}

/// Without `HOOD_NOTIFY_ALLOW_NETWORKS`, a channel naming a non-public
/// destination is a 400 problem naming the field and the block.
#[tokio::test(flavor = "multi_thread")]
async fn channel_destinations_are_refused_without_the_allow_list() {
    let (_dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let admin = read_admin_key(&home);
    let api = Api {
        base: hood.url("api"),
        http: reqwest::Client::new(),
    };
    let cases = [
        (
            json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": SECRET}),
            "config.url",
            "loopback",
        ),
        (
            json!({"kind": "webhook", "url": "http://localhost:8080/hook", "secret": SECRET}),
            "config.url",
            "loopback",
        ),
        (
            json!({"kind": "slack", "webhook_url": "http://169.254.169.254/services/x"}),
            "config.webhook_url",
            "link-local",
        ),
        (
            json!({"kind": "telegram", "bot_token": "1:abc", "chat_id": "1", "api_base": "http://[::ffff:192.168.1.1]"}),
            "config.api_base",
            "private",
        ),
        (
            json!({"kind": "email", "smtp_host": "10.0.0.5", "smtp_port": 25,
                "from": "hood@example.com", "to": ["ops@example.com"]}),
            "config.smtp_host",
            "private",
        ),
        (
            json!({"kind": "email", "smtp_host": "fd00::25", "smtp_port": 25,
                "from": "hood@example.com", "to": ["ops@example.com"]}),
            "config.smtp_host",
            "unique local",
        ),
    ];
    for (i, (config, field, block)) in cases.into_iter().enumerate() {
        let r = api
            .post(
                "/api/v1/notification-channels",
                &admin,
                json!({"name": format!("refused-{i}"), "config": config}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.text);
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{}",
            r.content_type
        );
        assert_eq!(r.body["invalid-params"][0]["name"], field, "{}", r.text);
        let reason = r.body["invalid-params"][0]["reason"].as_str().unwrap();
        assert!(reason.contains(block), "{field}: {reason}");
        assert!(!r.text.contains(SECRET), "{}", r.text);
    }
    // Nothing was stored; a public destination is accepted.
    let r = api.get("/api/v1/notification-channels", &admin).await;
    assert_eq!(r.body["items"], json!([]), "{}", r.text);
    let r = api
        .post("/api/v1/notification-channels", &admin, webhook("public"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[test]
fn cli_channels_incidents_and_uptime() {
    let (dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let env = vec![
        ("HOOD_SERVER", hood.url("api")),
        ("HOOD_HOME", home.display().to_string()),
        (
            "HOOD_CONFIG",
            dir.path().join("cli.json").display().to_string(),
        ),
    ];
    let run = |args: &[&str]| {
        let (ok, out, err) = hood_cli(args, &env, None);
        assert!(ok, "hood {args:?} failed: {err}");
        assert!(!out.contains(SECRET), "secret printed by {args:?}: {out}");
        out
    };
    let fails = |args: &[&str]| {
        let (ok, _, err) = hood_cli(args, &env, None);
        assert!(!ok, "hood {args:?} should fail");
        assert!(!err.contains("panicked"), "no panic: {err}");
        err
    };

    let created: Value = serde_json::from_str(&run(&[
        "-o",
        "json",
        "channel",
        "create",
        "cli-hook",
        "--kind",
        "webhook",
        "--url",
        "https://hooks.example.com/cli",
        "--secret",
        SECRET,
    ]))
    .expect("json output");
    assert_eq!(created["name"], "cli-hook");
    assert_eq!(created["config"]["secret"], "***");
    let id = created["id"].as_str().expect("id").to_owned();

    let table = run(&[
        "channel",
        "create",
        "cli-slack",
        "--kind",
        "slack",
        "--webhook-url",
        "https://hooks.slack.com/services/T0/B0/SlackPathSecret",
    ]);
    assert!(
        table.starts_with("ID") && table.contains("cli-slack"),
        "{table}"
    );
    assert!(!table.contains("SlackPathSecret"), "{table}");

    let list: Value =
        serde_json::from_str(&run(&["-o", "json", "channel", "list"])).expect("json output");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["cli-hook", "cli-slack"]);
    let table = run(&["channel", "list"]);
    assert!(
        table.contains("cli-hook") && table.contains("webhook"),
        "{table}"
    );

    // Plain errors with a non-zero exit.
    let err = fails(&[
        "channel", "create", "x", "--kind", "webhook", "--secret", SECRET,
    ]);
    assert!(err.contains("--url"), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    let err = fails(&[
        "channel",
        "create",
        "cli-hook",
        "--kind",
        "webhook",
        "--url",
        "https://hooks.example.com/cli",
        "--secret",
        SECRET,
    ]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&[
        "channel",
        "create",
        "short",
        "--kind",
        "webhook",
        "--url",
        "https://h.example.com/x",
        "--secret",
        "tiny",
    ]);
    assert!(err.contains("secret"), "{err}");

    let out = run(&["channel", "delete", &id]);
    assert!(out.contains(&id), "{out}");
    fails(&["channel", "delete", &id]);

    let incidents: Value =
        serde_json::from_str(&run(&["-o", "json", "incident", "list"])).expect("json output");
    assert_eq!(incidents["items"], json!([]));
    let incidents: Value = serde_json::from_str(&run(&[
        "-o", "json", "incident", "list", "--active", "--node", &id,
    ]))
    .expect("json output");
    assert_eq!(incidents["items"], json!([]));
    let err = fails(&["incident", "ack", &id]);
    assert!(err.contains("not found"), "{err}");
    let err = fails(&["node", "uptime", &id]);
    assert!(err.contains("not found"), "{err}");
    let err = fails(&["node", "uptime", &id, "--window", "1y"]);
    assert!(err.contains("24h"), "{err}");
    // The node commands of the base set still parse.
    let nodes: Value =
        serde_json::from_str(&run(&["-o", "json", "node", "list"])).expect("json output");
    assert_eq!(nodes["items"], json!([]));
}
