//! `hood up` as a process: clean shutdown on Ctrl-C and SIGTERM, data kept
//! across restarts, the admin key file private, login rate limiting.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::{hood_up, read_admin_key, temp_home};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn hood_up_stops_cleanly_and_keeps_its_data() {
    let (_dir, home) = temp_home();
    let http = reqwest::Client::new();
    let hood = hood_up(&home, &[]);
    let admin = read_admin_key(&home);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("admin.key"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "admin.key is private");
    }
    let r = http
        .post(format!("{}/api/v1/orgs", hood.url("api")))
        .bearer_auth(&admin)
        .json(&json!({"slug": "durable", "name": "Durable"}))
        .send()
        .await
        .expect("create org");
    assert_eq!(r.status(), StatusCode::CREATED);
    // The auth listener serves the identity routes too.
    let r = http
        .get(format!("{}/api/v1/me", hood.url("auth")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), StatusCode::OK);
    let status = hood.stop("-INT");
    assert!(status.success(), "Ctrl-C exits 0, got {status:?}");

    let hood = hood_up(&home, &[]);
    assert_eq!(read_admin_key(&home), admin, "no second bootstrap");
    let r = http
        .get(format!("{}/api/v1/orgs", hood.url("api")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list orgs");
    let body: serde_json::Value = r.json().await.expect("json");
    let slugs: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["slug"].as_str())
        .collect();
    assert!(slugs.contains(&"durable"), "{slugs:?}");
    let status = hood.stop("-TERM");
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_is_rate_limited_per_client_ip() {
    let (_dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/login", hood.url("api"));
    let body = json!({"email": "admin@hood.local", "password": "not the password"});
    for i in 0..20 {
        let r = http.post(&url).json(&body).send().await.expect("login");
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {} is judged on its merits",
            i + 1
        );
    }
    let r = http.post(&url).json(&body).send().await.expect("login");
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the 21st attempt within a minute is refused"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let problem: serde_json::Value = r.json().await.expect("json");
    assert_eq!(problem["status"], 429);
}
