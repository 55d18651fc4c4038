//! External OIDC tokens through the real router: a local issuer publishes
//! discovery and JWKS exactly as an OIDC provider does; Hood verifies its
//! tokens and maps them to users by verified e-mail.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use hood_api::state::{ApiConfig, AppState};
use hood_api::{bootstrap, router, HttpRole};
use hood_chains::ChainCatalog;
use hood_domain::identity::{Organization, Role, User};
use hood_domain::{OrgId, UserId};
use hood_identity::master_key::MasterKey;
use hood_identity::oidc::{OidcConfig, OidcVerifier};
use hood_identity::tokens::{TokenConfig, TokenIssuer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread")]
async fn external_oidc_tokens_map_to_users_by_verified_email() {
    let issuer = hood_testkit::oidc::TestIssuer::start("sso@acme.test").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn hood_store::Store> = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let master = MasterKey::generate();
    let keys = bootstrap::ensure_signing_keys(store.as_ref(), &master)
        .await
        .expect("keys");
    let tokens = TokenIssuer::new(&keys, &master, TokenConfig::default()).expect("issuer");
    let oidc = OidcVerifier::new(
        OidcConfig::new(issuer.url.clone(), "hood"),
        reqwest::Client::new(),
    );
    let chains = Arc::new(ChainCatalog::builtin().expect("chains"));
    let state = AppState::new(
        store.clone(),
        tokens,
        Some(oidc),
        chains,
        &ApiConfig::default(),
    );

    let org = Organization {
        id: OrgId::from_uuid(uuid_v4()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: hood_api::clock::now(),
    };
    store.create_org(&org).await.expect("org");
    let user = User {
        id: UserId::from_uuid(uuid_v4()),
        org_id: org.id,
        email: "sso@acme.test".into(),
        display_name: "SSO user".into(),
        role: Role::Operator,
        platform_admin: false,
        password_hash: None,
        disabled: false,
        created_at: hood_api::clock::now(),
    };
    store.create_user(&user).await.expect("user");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = router(state, &[HttpRole::Api, HttpRole::Auth]);
    tokio::spawn(hood_api::serve(
        listener,
        app,
        std::future::pending(),
        Duration::from_secs(1),
    ));

    let now = hood_api::clock::now().secs();
    let claims = |email: &str, verified: bool, aud: &str, exp: i64| {
        json!({"iss": issuer.url, "sub": "ext-123", "aud": aud, "exp": exp, "iat": now,
               "email": email, "email_verified": verified})
    };
    let http = reqwest::Client::new();
    let me = |token: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r = http
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .expect("me");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let (status, body) = me(issuer.token(claims("SSO@acme.test", true, "hood", now + 300))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["credential"], "oidc");
    assert_eq!(body["user"]["email"], "sso@acme.test");
    assert_eq!(body["permissions"], json!(["read", "operate"]));

    for (why, token) in [
        (
            "unverified e-mail",
            issuer.token(claims("sso@acme.test", false, "hood", now + 300)),
        ),
        (
            "unknown user",
            issuer.token(claims("stranger@acme.test", true, "hood", now + 300)),
        ),
        (
            "wrong audience",
            issuer.token(claims("sso@acme.test", true, "someone-else", now + 300)),
        ),
        (
            "expired",
            issuer.token(claims("sso@acme.test", true, "hood", now - 600)),
        ),
    ] {
        let (status, body) = me(token).await;
        assert_eq!(status, 401, "{why}: {body}");
    }
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}
