//! Malformed requests are 4xx problem JSON naming what was wrong, through
//! the real router (both roles, as `hood up` serves them) on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::api;
use hood_api::BODY_LIMIT_BYTES;

#[tokio::test]
async fn usage_refuses_malformed_parameters_by_name() {
    let api = api().await;
    assert_eq!(api.get("/api/v1/usage").await.status, StatusCode::OK);
    api.get("/api/v1/usage?key=garbage")
        .await
        .names(StatusCode::BAD_REQUEST, "key");
    // Empty values used to count as "not given" and answered 200.
    for param in ["key", "chain", "from", "to", "granularity"] {
        api.get(&format!("/api/v1/usage?{param}="))
            .await
            .names(StatusCode::BAD_REQUEST, param);
    }
    // Other spellings of a UUID are not the documented format.
    api.get("/api/v1/usage?key=0195a3a25b1c7d2e8f00aabbccddeeff")
        .await
        .names(StatusCode::BAD_REQUEST, "key");
    api.get("/api/v1/usage?granularity=week")
        .await
        .names(StatusCode::BAD_REQUEST, "granularity");
    api.get("/api/v1/usage?from=yesterday")
        .await
        .names(StatusCode::BAD_REQUEST, "from");
    let unknown = api.get("/api/v1/usage?keys=x").await;
    unknown.names(StatusCode::BAD_REQUEST, "keys");
    assert!(
        unknown.body["invalid-params"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("key, chain, from, to, granularity"),
        "{}",
        unknown.body
    );
    api.get("/api/v1/usage?chain=ethereum&chain=bitcoin")
        .await
        .names(StatusCode::BAD_REQUEST, "chain");
    // A well-formed id of no key of the organization.
    api.get("/api/v1/usage?key=0195a3a2-5b1c-7d2e-8f00-aabbccddeeff")
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn typed_query_parameters_are_named_when_malformed() {
    let api = api().await;
    for (uri, param) in [
        ("/api/v1/incidents?limit=ten", "limit"),
        ("/api/v1/incidents?limit=0", "limit"),
        ("/api/v1/incidents?limit=1001", "limit"),
        ("/api/v1/incidents?active=maybe", "active"),
        ("/api/v1/incidents?state=closed", "state"),
        ("/api/v1/incidents?node_id=42", "node_id"),
        ("/api/v1/incidents?page=2", "page"),
        ("/api/v1/workflows?state=sleeping", "state"),
        ("/api/v1/workflows?limit=-1", "limit"),
    ] {
        api.get(uri).await.names(StatusCode::BAD_REQUEST, param);
    }
    let ok = api
        .get("/api/v1/incidents?state=open&active=true&limit=5")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn path_ids_are_named_when_malformed() {
    let api = api().await;
    api.get("/api/v1/nodes/not-a-uuid")
        .await
        .names(StatusCode::BAD_REQUEST, "node_id");
    api.get("/api/v1/nodes/%7B0195a3a2-5b1c-7d2e-8f00-aabbccddeeff%7D")
        .await
        .names(StatusCode::BAD_REQUEST, "node_id");
    api.get(&format!("/api/v1/orgs/{}/users/garbage", api.org))
        .await
        .names(StatusCode::BAD_REQUEST, "user_id");
    api.get("/api/v1/orgs/garbage/users/0195a3a2-5b1c-7d2e-8f00-aabbccddeeff")
        .await
        .names(StatusCode::BAD_REQUEST, "org_id");
    // Text path parameters that are not UTF-8: problem JSON, not plain text.
    api.get("/api/v1/chains/%FF")
        .await
        .problem(StatusCode::BAD_REQUEST);
    api.get("/api/v1/workflows/%FF")
        .await
        .problem(StatusCode::BAD_REQUEST);
    api.get("/api/v1/chains/no-such-chain")
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn body_errors_are_problem_json() {
    let api = api().await;
    let post = |content_type: &str, body: Vec<u8>| {
        Request::post("/api/v1/orgs")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap()
    };
    // Over the limit, announced: refused before the handler, as problem
    // JSON (it used to be tower-http's plain-text answer).
    let big = vec![b' '; BODY_LIMIT_BYTES + 1];
    let refused = api.send(post("application/json", big)).await;
    refused.problem(StatusCode::PAYLOAD_TOO_LARGE);
    // The body was never read: the connection cannot be reused.
    assert_eq!(refused.connection.as_deref(), Some("close"));
    api.send(post("text/plain", b"{}".to_vec()))
        .await
        .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    api.send(post("application/json", b"{\"slug\":".to_vec()))
        .await
        .problem(StatusCode::BAD_REQUEST);
    api.send(post(
        "application/json",
        br#"{"slug":"acme","name":"Acme","extra":1}"#.to_vec(),
    ))
    .await
    .problem(StatusCode::BAD_REQUEST);
    let created = api
        .send(post(
            "application/json",
            br#"{"slug":"acme","name":"Acme"}"#.to_vec(),
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
}

#[tokio::test]
async fn operational_answers_have_their_documented_media_types() {
    let api = api().await;
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .content_type
        .starts_with("application/openmetrics-text"));
    let doc = api.get("/openapi.json").await;
    assert_eq!(doc.content_type, "application/json");
    assert_eq!(doc.body["openapi"], "3.1.0");
    let live = api.get("/healthz").await;
    assert_eq!(live.body["status"], "ok");
    let ready = api.get("/readyz").await;
    assert_eq!(ready.body["database"], "sqlite");
}

/// Meter events: a batch is stored once whatever the retries, readings
/// aggregate and group them, and bad input is refused before anything is
/// stored.
#[tokio::test]
async fn meter_events_are_ingested_once_and_read_aggregated() {
    use serde_json::json;
    let api = api().await;
    let event = |id: &str, gpu: &str, quantity: u64, at: &str| json!({"id": id, "meter": "gpu_minutes", "dimensions": {"gpu": gpu}, "quantity": quantity, "at": at});
    let batch = json!({"events": [
        event("e1", "a100", 30, "2026-01-01T00:00:00Z"),
        event("e2", "a100", 12, "2026-01-01T01:00:00Z"),
        event("e3", "h100", 5, "2026-01-01T02:00:00Z"),
        event("e1", "a100", 999, "2026-01-01T00:00:00Z"),
    ]});
    let first = api
        .post_json("/api/v1/meter-events", &api.admin, batch.clone())
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body, json!({"accepted": 3, "duplicates": 1}));
    let retry = api
        .post_json("/api/v1/meter-events", &api.admin, batch)
        .await;
    assert_eq!(retry.body, json!({"accepted": 0, "duplicates": 4}));

    let window = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    let api = &api;
    let read = |q: String| async move {
        api.get(&format!("/api/v1/meters/gpu_minutes/readings?{q}"))
            .await
    };
    let sum = read(format!("{window}&group_by=gpu")).await;
    assert_eq!(sum.status, StatusCode::OK, "{}", sum.body);
    assert_eq!(
        sum.body["readings"],
        json!([
            {"dimensions": {"gpu": "a100"}, "quantity": 42},
            {"dimensions": {"gpu": "h100"}, "quantity": 5},
        ])
    );
    let latest = read(format!("{window}&aggregation=latest")).await;
    assert_eq!(
        latest.body["readings"],
        json!([{"dimensions": {}, "quantity": 5}])
    );
    let count = read(format!("{window}&aggregation=count")).await;
    assert_eq!(count.body["readings"][0]["quantity"], 3);
    let outside = read("from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z".into()).await;
    assert_eq!(outside.body["readings"], json!([]));

    // Refused whole, naming the field; nothing of the batch is stored.
    let bad = api
        .post_json(
            "/api/v1/meter-events",
            &api.admin,
            json!({"events": [event("ok-1", "a100", 1, "2026-01-01T00:00:00Z"), event("has space", "a100", 1, "2026-01-01T00:00:00Z")]}),
        )
        .await;
    bad.names(StatusCode::BAD_REQUEST, "events");
    assert_eq!(
        read(format!("{window}&aggregation=count")).await.body["readings"][0]["quantity"],
        3
    );
    api.post_json("/api/v1/meter-events", &api.admin, json!({"events": []}))
        .await
        .names(StatusCode::BAD_REQUEST, "events");
    api.post_json(
        "/api/v1/meter-events",
        &api.admin,
        json!({"events": [{"id": "x", "meter": "m", "quantity": 1, "at": "yesterday"}]}),
    )
    .await
    .names(StatusCode::BAD_REQUEST, "events");
    read(format!("{window}&aggregation=avg"))
        .await
        .names(StatusCode::BAD_REQUEST, "aggregation");
    read("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z".into())
        .await
        .names(StatusCode::BAD_REQUEST, "to");
    api.post_json(
        "/api/v1/meter-events",
        &api.admin,
        json!({"org_id": "0195a3a2-5b1c-7d2e-8f00-aabbccddeeff", "events": [event("y", "a100", 1, "2026-01-01T00:00:00Z")]}),
    )
    .await
    .names(StatusCode::BAD_REQUEST, "org_id");
}
