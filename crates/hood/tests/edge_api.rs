//! The RPC key and usage API against a real `hood up`: keys shown once and
//! never again, scope and plan validation, changes, revocation, tenancy,
//! permissions, usage queries (validation, empty and seeded results), the
//! OpenAPI document, and the `hood rpc-key` / `hood usage` CLI.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::http::{second_org, Api};
use common::{hood_cli, hood_up, read_admin_key, temp_home};
use hood_domain::rpc::{UsageEvent, UsageStatus};
use hood_domain::{OrgId, RpcKeyId, Timestamp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The names of a 400's invalid params.
fn invalid_fields(body: &Value) -> Vec<String> {
    body["invalid-params"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn frontend_key() -> Value {
    json!({
        "name": "frontend",
        "plan": "free",
        "chains": ["ethereum"],
        "denied_methods": ["debug_*", "trace_*"],
        "ip_allow": ["10.0.0.0/8", "2001:db8::/32"],
        "origin_allow": ["https://app.example.com"],
    })
}

/// Stores usage events straight into the embedded database (the edge's
/// path, which the HTTP API does not offer).
async fn seed_usage(home: &std::path::Path, events: &[UsageEvent]) {
    let store: std::sync::Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .expect("store");
    assert_eq!(
        store.record_usage(events).await.expect("record usage"),
        events.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rpc_keys_and_usage_api() {
    let (_dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let admin = read_admin_key(&home);
    let api = Api::new(hood.url("api"));

    // -- plans --
    let r = api.get("/api/v1/rpc-plans", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plans: Vec<(&str, i64)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["cu_per_minute"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        [
            ("free", 1_000),
            ("basic", 10_000),
            ("pro", 100_000),
            ("enterprise", 1_000_000)
        ]
    );

    // -- create: the key is in this response only --
    let r = api.post("/api/v1/rpc-keys", &admin, frontend_key()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let created = r.body.clone();
    let token = created["key"].as_str().expect("key").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    let prefix = created["prefix"].as_str().expect("prefix").to_owned();
    assert!(
        token.starts_with(&format!("hrpc_{prefix}_")),
        "{token} / {prefix}"
    );
    let secret = token
        .rsplit_once(&format!("{prefix}_"))
        .unwrap()
        .1
        .to_owned();
    assert_eq!(secret.len(), 43);
    assert_eq!(created["name"], "frontend");
    assert_eq!(created["plan"], "free");
    assert_eq!(created["chains"], json!(["ethereum"]));
    assert_eq!(created["denied_methods"], json!(["debug_*", "trace_*"]));
    assert_eq!(created["allowed_methods"], json!([]));
    assert_eq!(created["ip_allow"], json!(["10.0.0.0/8", "2001:db8::/32"]));
    assert_eq!(created["origin_allow"], json!(["https://app.example.com"]));
    assert_eq!(created["version"], 1);
    assert!(created["revoked_at"].is_null());
    assert!(created.get("secret_hash").is_none(), "{created}");

    let r = api.get("/api/v1/rpc-keys", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0].get("key").is_none(), "{}", r.text);
    assert!(!r.text.contains(&secret), "the secret is shown once");
    let r = api.get(&format!("/api/v1/rpc-keys/{id}"), &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.get("key").is_none() && !r.text.contains(&secret));
    assert!(!r.text.contains("hash"), "{}", r.text);
    assert_eq!(r.body["prefix"], prefix.as_str());
    // A second key never repeats the first one's prefix or secret.
    let r = api
        .post(
            "/api/v1/rpc-keys",
            &admin,
            json!({"name": "backend", "plan": "enterprise"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_ne!(r.body["prefix"], prefix.as_str());
    assert_eq!(r.body["chains"], json!([]), "no restriction");
    let backend = r.body["id"].as_str().unwrap().to_owned();
    let r = api.get("/api/v1/rpc-keys", &admin).await;
    let ids: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [backend.as_str(), id.as_str()], "newest first");

    // -- validation: 400 naming each bad field --
    let cases = [
        (json!({"name": "x", "plan": "gold"}), vec!["plan"]),
        (json!({"name": "", "plan": "free"}), vec!["name"]),
        (
            json!({"name": "x", "plan": "free", "chains": ["nochain"]}),
            vec!["chains"],
        ),
        (
            json!({"name": "x", "plan": "free", "chains": ["Bad Chain"]}),
            vec!["chains"],
        ),
        (
            json!({"name": "x", "plan": "free", "allowed_methods": ["*"]}),
            vec!["allowed_methods"],
        ),
        (
            json!({"name": "x", "plan": "free", "denied_methods": ["deb*ug"]}),
            vec!["denied_methods"],
        ),
        (
            json!({"name": "x", "plan": "free", "ip_allow": ["10.0.0.0/33"]}),
            vec!["ip_allow"],
        ),
        (
            json!({"name": "x", "plan": "free", "ip_allow": ["2001:db8::/129"]}),
            vec!["ip_allow"],
        ),
        (
            json!({"name": "x", "plan": "free", "origin_allow": ["app.example.com"]}),
            vec!["origin_allow"],
        ),
        (
            json!({"name": "x", "plan": "free", "origin_allow": ["https://app.example.com/"]}),
            vec!["origin_allow"],
        ),
        (
            json!({"name": "", "plan": "gold", "chains": ["nochain"], "ip_allow": ["x"], "origin_allow": ["ftp://a.b"]}),
            vec!["name", "plan", "ip_allow", "origin_allow", "chains"],
        ),
    ];
    for (body, fields) in cases {
        let r = api.post("/api/v1/rpc-keys", &admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(invalid_fields(&r.body), fields, "{body}: {}", r.text);
    }
    let r = api
        .post(
            "/api/v1/rpc-keys",
            &admin,
            json!({"name": "x", "plan": "free", "scope": {}}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown fields: {}",
        r.text
    );
    let r = api
        .post("/api/v1/rpc-keys", &admin, json!({"name": "x"}))
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "plan is required: {}",
        r.text
    );
    let r = api.get("/api/v1/rpc-keys", &admin).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        2,
        "nothing stored"
    );

    // -- patch: any subset --
    let path = format!("/api/v1/rpc-keys/{id}");
    let r = api
        .patch(
            &path,
            &admin,
            json!({"plan": "pro", "chains": [], "ip_allow": ["192.0.2.1", "192.0.2.1"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"], "pro");
    assert_eq!(r.body["chains"], json!([]));
    assert_eq!(r.body["ip_allow"], json!(["192.0.2.1"]), "deduplicated");
    assert_eq!(r.body["name"], "frontend", "untouched");
    assert_eq!(r.body["denied_methods"], json!(["debug_*", "trace_*"]));
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["prefix"], prefix.as_str());
    assert!(r.body.get("key").is_none());
    let r = api
        .patch(&path, &admin, json!({"name": " Frontend v2 "}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["name"].as_str(), r.body["version"].as_i64()),
        (Some("Frontend v2"), Some(3))
    );
    let r = api.patch(&path, &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], 3, "an empty change writes nothing");
    let r = api
        .patch(
            &path,
            &admin,
            json!({"plan": "gold", "allowed_methods": ["**"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(invalid_fields(&r.body), ["plan", "allowed_methods"]);
    let r = api.patch(&path, &admin, json!({"prefix": "0123"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = api.get(&path, &admin).await;
    assert_eq!(r.body["version"], 3, "refused changes wrote nothing");

    // -- permissions: a viewer reads, only key managers change --
    let me = api.get("/api/v1/me", &admin).await;
    let acme = me.body["org"]["id"].as_str().unwrap().to_owned();
    let viewer = api.user(&admin, &acme, "carol@acme.test", "viewer").await;
    let r = api.get("/api/v1/rpc-keys", &viewer).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    for r in [
        api.post("/api/v1/rpc-keys", &viewer, frontend_key()).await,
        api.patch(&path, &viewer, json!({"plan": "free"})).await,
        api.delete(&path, &viewer).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }

    // -- tenancy: another org sees nothing of it --
    let bob = second_org(&api, &admin).await;
    let r = api.get("/api/v1/rpc-keys", &bob).await;
    assert_eq!(r.body["items"], json!([]));
    for r in [
        api.get(&path, &bob).await,
        api.patch(&path, &bob, json!({"plan": "free"})).await,
        api.delete(&path, &bob).await,
        api.get(&format!("/api/v1/usage?key={id}"), &bob).await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    let r = api.get(&path, &admin).await;
    assert!(r.body["revoked_at"].is_null(), "bob revoked nothing");
    let r = api.get("/api/v1/rpc-keys/not-an-id", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // -- usage: empty, validated, then seeded --
    let r = api.get("/api/v1/usage", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["granularity"], "hour");
    assert_eq!(r.body["rows"], json!([]));
    assert_eq!(
        r.body["totals"],
        json!({"requests": 0, "compute_units": 0, "errors": 0})
    );
    let r = api
        .get(
            "/api/v1/usage?from=1700000000000&to=1700003600000&granularity=day",
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["from"], "2023-11-14T00:00:00Z",
        "floored to the bucket"
    );
    assert_eq!(r.body["to"], "2023-11-14T23:13:20Z");
    let bad = [
        ("granularity=week", "granularity"),
        ("from=yesterday", "from"),
        ("to=2023-13-01T00:00:00Z", "to"),
        ("from=1700003600000&to=1700000000000", "to"),
        ("from=2023-01-01T00:00:00Z&to=2023-03-01T00:00:00Z", "from"),
        (
            "from=2020-01-01T00:00:00Z&to=2023-03-01T00:00:00Z&granularity=day",
            "from",
        ),
        ("key=not-an-id", "key"),
        ("chain=Not%20A%20Chain", "chain"),
    ];
    for (q, field) in bad {
        let r = api.get(&format!("/api/v1/usage?{q}"), &admin).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.text);
        assert_eq!(invalid_fields(&r.body), [field], "{q}: {}", r.text);
    }
    let r = api.get("/api/v1/usage?window=1d", &admin).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown parameter: {}",
        r.text
    );
    let r = api
        .get(
            &format!("/api/v1/usage?key={}", uuid::Uuid::now_v7()),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    let key_id: RpcKeyId = id.parse().unwrap();
    let org: OrgId = acme.parse().unwrap();
    let t = Timestamp::from_millis(1_700_000_000_000); // 22:13:20Z
    let ev = |n: u32, chain: &str, method: &str, status: UsageStatus, cu: u32, at: Timestamp| {
        UsageEvent {
            request_id: format!("{}", uuid::Uuid::now_v7()),
            org_id: org,
            key_id,
            chain: chain.into(),
            method: method.into(),
            compute_units: cu,
            status,
            http_status: if status == UsageStatus::Ok { 200 } else { 429 },
            latency_us: 100 * u64::from(n),
            at,
        }
    };
    seed_usage(
        &home,
        &[
            ev(1, "ethereum", "eth_call", UsageStatus::Ok, 26, t),
            ev(
                3,
                "ethereum",
                "eth_call",
                UsageStatus::RateLimited,
                26,
                t.plus_secs(60),
            ),
            ev(
                5,
                "ethereum",
                "eth_blockNumber",
                UsageStatus::Ok,
                10,
                t.plus_secs(3_600),
            ),
            ev(
                7,
                "solana",
                "getSlot",
                UsageStatus::Ok,
                5,
                t.plus_secs(7_200),
            ),
        ],
    )
    .await;
    let window = "from=2023-11-14T22:00:00Z&to=2023-11-15T02:00:00Z";
    let r = api.get(&format!("/api/v1/usage?{window}"), &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rows = r.body["rows"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str, i64, i64, i64)> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["key_id"], id.as_str());
            (
                row["bucket_start"].as_str().unwrap(),
                row["chain"].as_str().unwrap(),
                row["method"].as_str().unwrap(),
                row["requests"].as_i64().unwrap(),
                row["compute_units"].as_i64().unwrap(),
                row["errors"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("2023-11-14T22:00:00Z", "ethereum", "eth_call", 2, 52, 1),
            (
                "2023-11-14T23:00:00Z",
                "ethereum",
                "eth_blockNumber",
                1,
                10,
                0
            ),
            ("2023-11-15T00:00:00Z", "solana", "getSlot", 1, 5, 0),
        ]
    );
    assert_eq!(rows[0]["avg_latency_us"], 200);
    assert_eq!(
        r.body["totals"],
        json!({"requests": 4, "compute_units": 67, "errors": 1})
    );
    let r = api
        .get(
            &format!("/api/v1/usage?{window}&granularity=day&chain=ethereum&key={id}"),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 2, "{}", r.text);
    assert_eq!(r.body["totals"]["requests"], 3);
    let r = api
        .get(&format!("/api/v1/usage?{window}&key={backend}"), &admin)
        .await;
    assert_eq!(r.body["rows"], json!([]));
    let r = api.get(&format!("/api/v1/usage?{window}"), &bob).await;
    assert_eq!(
        r.body["rows"],
        json!([]),
        "another org's usage is invisible"
    );

    // -- revoke: idempotent, then frozen --
    let r = api.delete(&path, &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = api.get(&path, &admin).await;
    let revoked_at = r.body["revoked_at"].as_str().expect("revoked").to_owned();
    assert_eq!(r.body["version"], 4);
    let r = api.delete(&path, &admin).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = api.get(&path, &admin).await;
    assert_eq!(r.body["revoked_at"], revoked_at.as_str(), "first time kept");
    assert_eq!(r.body["version"], 4);
    let r = api.patch(&path, &admin, json!({"plan": "free"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = api
        .delete(
            &format!("/api/v1/rpc-keys/{}", uuid::Uuid::now_v7()),
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // -- the OpenAPI document names the routes --
    let r = api.get("/openapi.json", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    for p in [
        "/api/v1/rpc-keys",
        "/api/v1/rpc-keys/{key_id}",
        "/api/v1/rpc-plans",
        "/api/v1/usage",
    ] {
        assert!(r.body["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    let ops = &r.body["paths"]["/api/v1/rpc-keys/{key_id}"];
    for m in ["get", "patch", "delete"] {
        assert!(ops.get(m).is_some(), "{m} /rpc-keys/{{key_id}}");
    }
    assert!(r.body["components"]["schemas"]
        .get("CreatedRpcKey")
        .is_some());
    assert!(!r.text.contains(&secret));
}

#[test]
fn cli_rpc_keys_and_usage() {
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
        "rpc-key",
        "create",
        "--name",
        "cli",
        "--plan",
        "free",
        "--chains",
        "ethereum",
        "--deny-methods",
        "debug_*,trace_*",
        "--ip-allow",
        "10.0.0.0/8",
        "--origin-allow",
        "https://app.example.com",
    ]))
    .expect("json output");
    let token = created["key"].as_str().expect("key").to_owned();
    assert!(token.starts_with("hrpc_"), "{token}");
    assert_eq!(created["denied_methods"], json!(["debug_*", "trace_*"]));
    let id = created["id"].as_str().expect("id").to_owned();

    // The table form prints the key once, clearly.
    let table = run(&["rpc-key", "create", "--name", "cli-2", "--plan", "basic"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("shown once"), "{table}");
    let shown: Vec<&str> = table.lines().filter(|l| l.starts_with("hrpc_")).collect();
    assert_eq!(shown.len(), 1, "{table}");

    let list = run(&["rpc-key", "list"]);
    assert!(
        list.contains("cli-2") && list.contains("ethereum"),
        "{list}"
    );
    assert!(!list.contains("hrpc_"), "keys never listed: {list}");
    let list: Value =
        serde_json::from_str(&run(&["-o", "json", "rpc-key", "list"])).expect("json output");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&token));

    let updated: Value = serde_json::from_str(&run(&[
        "-o", "json", "rpc-key", "update", &id, "--plan", "pro", "--chains", "",
    ]))
    .expect("json output");
    assert_eq!(updated["plan"], "pro");
    assert_eq!(updated["chains"], json!([]));
    assert_eq!(updated["denied_methods"], json!(["debug_*", "trace_*"]));
    let err = fails(&["rpc-key", "update", &id]);
    assert!(err.contains("nothing to change"), "{err}");
    let err = fails(&["rpc-key", "create", "--name", "x", "--plan", "gold"]);
    assert!(err.contains("plan") && err.contains("gold"), "{err}");
    let err = fails(&[
        "rpc-key",
        "create",
        "--name",
        "x",
        "--plan",
        "free",
        "--ip-allow",
        "10.0.0.0/99",
    ]);
    assert!(err.contains("ip_allow"), "{err}");
    let plans = run(&["rpc-key", "plans"]);
    assert!(
        plans.contains("enterprise") && plans.contains("1000000"),
        "{plans}"
    );

    let out = run(&["rpc-key", "revoke", &id]);
    assert!(out.contains(&id) && out.contains("revoked"), "{out}");
    let shown: Value =
        serde_json::from_str(&run(&["-o", "json", "rpc-key", "show", &id])).expect("json output");
    assert!(shown["revoked_at"].is_string(), "{shown}");
    run(&["rpc-key", "revoke", &id]);
    let err = fails(&["rpc-key", "show", &uuid::Uuid::now_v7().to_string()]);
    assert!(err.contains("not found"), "{err}");

    let usage = run(&["usage"]);
    assert!(usage.contains("total: 0 requests"), "{usage}");
    let usage: Value = serde_json::from_str(&run(&[
        "-o",
        "json",
        "usage",
        "--granularity",
        "day",
        "--key",
        &id,
        "--chain",
        "ethereum",
        "--from",
        "2023-11-14T23:00:00+01:00",
        "--to",
        "1700003600000",
    ]))
    .expect("json output");
    assert_eq!(usage["granularity"], "day");
    assert_eq!(usage["from"], "2023-11-14T00:00:00Z");
    assert_eq!(usage["rows"], json!([]));
    let err = fails(&["usage", "--from", "yesterday"]);
    assert!(err.contains("from"), "{err}");
    let err = fails(&["usage", "--granularity", "week"]);
    assert!(err.contains("hour"), "{err}");
}
