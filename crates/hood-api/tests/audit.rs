//! Every mutation through the API is in the audit log: a row per 2xx
//! mutating request by an authenticated caller, naming who, what, which
//! resource and which request; refusals and reads leave none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};

fn call(
    method: &str,
    uri: &str,
    token: &str,
    request_id: &str,
    body: Option<Value>,
) -> Request<Body> {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("x-request-id", request_id);
    match body {
        Some(b) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

#[tokio::test]
async fn every_mutation_through_the_api_leaves_one_row() {
    let api = common::api().await;
    let made = api
        .send(call(
            "POST",
            "/api/v1/api-keys",
            &api.admin,
            "req-make",
            Some(json!({"name": "ci"})),
        ))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let key_id = made.body["key"]["id"].as_str().unwrap().to_owned();
    // Refused (a bad body), and a read: no rows.
    let refused = api
        .send(call(
            "POST",
            "/api/v1/api-keys",
            &api.admin,
            "req-refused",
            Some(json!({"name": ""})),
        ))
        .await;
    assert!(refused.status.is_client_error(), "{}", refused.body);
    api.send(call(
        "GET",
        "/api/v1/api-keys",
        &api.admin,
        "req-read",
        None,
    ))
    .await;
    let gone = api
        .send(call(
            "DELETE",
            &format!("/api/v1/api-keys/{key_id}"),
            &api.admin,
            "req-revoke",
            None,
        ))
        .await;
    assert!(gone.status.is_success(), "{}", gone.body);

    let rows = api
        .get(&format!("/api/v1/audit?resource_id={key_id}"))
        .await;
    assert_eq!(rows.status, StatusCode::OK, "{}", rows.body);
    let items = rows.body["items"].as_array().unwrap();
    let summary: Vec<(String, String)> = items
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["request_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("api-key.delete".to_owned(), "req-revoke".to_owned()),
            ("api-key.create".to_owned(), "req-make".to_owned()),
        ],
        "newest first, one row each"
    );
    assert!(items[0]["actor"].as_str().unwrap().starts_with("key:"));
    assert_eq!(items[0]["org_id"], api.org.as_str());
    assert_eq!(items[0]["after"]["status"], gone.status.as_u16());
    for id in ["req-refused", "req-read"] {
        let none = api.get(&format!("/api/v1/audit?request_id={id}")).await;
        assert_eq!(none.body["items"], json!([]), "{id}: {}", none.body);
    }
}
