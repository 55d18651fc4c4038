//! The HTTP API suite, run unchanged against `hood up` (SQLite) and against
//! `hood migrate` + two `hood serve` replicas (PostgreSQL). Requests rotate
//! over the target's replicas, so the cluster run also proves that replicas
//! serve the same data.

use hood_domain::identity::{Role, User};
use hood_domain::{OrgId, SessionId, Timestamp, UserId};
use hood_identity::master_key::MasterKey;
use hood_identity::tokens::{TokenConfig, TokenIssuer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Target {
    pub urls: Vec<String>,
    pub admin_key: String,
    pub database_url: String,
    pub master_key: MasterKey,
    next: AtomicUsize,
    http: reqwest::Client,
}

pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Target {
    pub fn new(
        urls: Vec<String>,
        admin_key: String,
        database_url: String,
        master_key: MasterKey,
    ) -> Self {
        Self {
            urls,
            admin_key,
            database_url,
            master_key,
            next: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        }
    }

    fn base(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.urls[i % self.urls.len()]
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base(), path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("content-type", ct).body(bytes);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = resp.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).expect("json")));
        let r = self.raw(method, path, token, body).await;
        if !r.status.is_success() {
            assert_eq!(
                r.content_type, "application/problem+json",
                "{path}: every error is problem JSON, got {} {:?}",
                r.status, r.body
            );
            assert_eq!(
                r.body["status"],
                r.status.as_u16(),
                "{path}: problem status matches"
            );
        }
        r
    }

    /// Waits out the time a credential change takes to reach every
    /// replica's cache (a second at most; the replica that made it forgets
    /// at once, so one replica needs no wait).
    pub async fn settle_credentials(&self) {
        if self.urls.len() > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Mints an access token as the installation would, but issued at `at`.
    pub async fn mint_access_token(&self, user: &Value, session: &str, at: Timestamp) -> String {
        let store: std::sync::Arc<dyn hood_store::Store> = hood_store::connect(&self.database_url)
            .await
            .expect("store");
        let keys = store.list_signing_keys().await.expect("keys");
        let issuer =
            TokenIssuer::new(&keys, &self.master_key, TokenConfig::default()).expect("issuer");
        let u = User {
            id: user["id"]
                .as_str()
                .expect("id")
                .parse::<UserId>()
                .expect("uid"),
            org_id: user["org_id"]
                .as_str()
                .expect("org")
                .parse::<OrgId>()
                .expect("oid"),
            email: user["email"].as_str().expect("email").to_owned(),
            display_name: "x".into(),
            role: Role::Admin,
            platform_admin: false,
            password_hash: None,
            disabled: false,
            created_at: at,
        };
        let sid: SessionId = session.parse().expect("sid");
        issuer.issue_access(&u, sid, at).expect("issue").0
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

const PASSWORD: &str = "correct horse battery staple";

async fn login(t: &Target, email: &str) -> Value {
    let r = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "login {email}: {:?}", r.body);
    r.body
}

/// The whole suite. Returns nothing; panics on the first broken promise.
pub async fn run(t: &Target) {
    let admin = t.admin_key.clone();

    // -- operational endpoints --
    let r = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = t.call(Method::GET, "/openapi.json", None, None).await;
    assert!(
        r.body["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "OpenAPI 3.1"
    );
    for p in [
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/me",
        "/api/v1/orgs",
        "/api/v1/api-keys",
        "/api/v1/chains",
    ] {
        assert!(r.body["paths"].get(p).is_some(), "openapi documents {p}");
    }

    // -- the web console, on every replica: `/` leads to its sign-in page,
    // which carries the Content-Security-Policy --
    for _ in 0..t.urls.len() {
        let r = t.raw(Method::GET, "/", None, None).await;
        assert_eq!(r.status, StatusCode::OK, "/ leads to the console");
        assert!(
            r.content_type.starts_with("text/html"),
            "{}",
            r.content_type
        );
        let csp = r
            .headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{csp}");
    }

    // -- authentication basics --
    let r = t.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/api/v1/me", "hood_notakey_atall").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/api/v1/me", &admin).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["user"]["platform_admin"], true);
    assert_eq!(r.body["credential"], "api_key");

    // -- organizations and bad input --
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&admin),
            json!({"slug": "acme", "name": "Acme Corp"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let acme = r.body["id"].as_str().expect("org id").to_owned();
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&admin),
            json!({"slug": "acme", "name": "Again"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&admin),
            json!({"slug": "Bad Slug!", "name": ""}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let names: Vec<&str> = r.body["invalid-params"]
        .as_array()
        .expect("params")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["slug", "name"], "every invalid field is named");
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&admin),
            json!({"slug": "x-corp", "name": "X", "color": "red"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "unknown field refused");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("color"),
        "{:?}",
        r.body
    );
    let r = t
        .raw(
            Method::POST,
            "/api/v1/orgs",
            Some(&admin),
            Some(("application/json", b"{\"slug\": ".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "malformed JSON");
    let r = t
        .raw(
            Method::POST,
            "/api/v1/orgs",
            Some(&admin),
            Some(("text/plain", b"hello".to_vec())),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!("{{\"slug\":\"big\",\"name\":\"{}\"}}", "x".repeat(200_000));
    let r = t
        .raw(
            Method::POST,
            "/api/v1/orgs",
            Some(&admin),
            Some(("application/json", big.into_bytes())),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = t.get("/api/v1/orgs/not-a-uuid", &admin).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = t
        .get("/api/v1/orgs/00000000-0000-0000-0000-000000000000", &admin)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t.get("/api/v1/nowhere", &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&admin),
            json!({"slug": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let globex = r.body["id"].as_str().expect("org id").to_owned();

    // -- users --
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&admin),
            json!({"email": "Alice@Acme.test", "role": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let alice = r.body.clone();
    assert_eq!(
        alice["email"], "alice@acme.test",
        "e-mail stored lower-case"
    );
    assert!(alice.get("password_hash").is_none(), "no hash in responses");
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&admin),
            json!({"email": "alice@acme.test", "role": "viewer", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&admin),
            json!({"email": "nope", "role": "root", "password": "short"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["invalid-params"].as_array().map(Vec::len), Some(3));
    let r = t
        .post(
            &format!("/api/v1/orgs/{globex}/users"),
            Some(&admin),
            json!({"email": "bob@globex.test", "role": "admin", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    // -- login, refresh, reuse detection --
    let r = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "alice@acme.test", "password": "wrong password!!"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let pair = login(t, "ALICE@acme.test").await;
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let refresh1 = pair["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(pair["expires_in"], 900, "15 minute access tokens");
    let r = t.get("/api/v1/me", &access).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["credential"], "session");
    assert_eq!(r.body["org"]["id"], acme.as_str());

    let r = t
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let refresh2 = r.body["refresh_token"]
        .as_str()
        .expect("refresh2")
        .to_owned();
    let access2 = r.body["access_token"].as_str().expect("access2").to_owned();
    assert_ne!(refresh1, refresh2);
    let r = t.get("/api/v1/me", &access2).await;
    assert_eq!(r.status, StatusCode::OK);
    // A refresh token used twice: stolen. The whole family dies.
    let r = t
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = t
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh2}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the newest token of the family is dead too"
    );
    let r = t.get("/api/v1/me", &access2).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "access tokens of the family are dead"
    );

    // -- tampered and expired JWTs --
    let pair = login(t, "alice@acme.test").await;
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let session = pair["session_id"].as_str().expect("sid").to_owned();
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let mut payload = parts[1].clone().into_bytes();
    payload[10] = if payload[10] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(payload).expect("utf8");
    let r = t.get("/api/v1/me", &parts.join(".")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "tampered JWT");
    let stale = t
        .mint_access_token(
            &alice,
            &session,
            Timestamp::from_millis(now_ms() - 3_600_000),
        )
        .await;
    let r = t.get("/api/v1/me", &stale).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired JWT");
    let fresh = t
        .mint_access_token(&alice, &session, Timestamp::from_millis(now_ms()))
        .await;
    assert_eq!(
        t.get("/api/v1/me", &fresh).await.status,
        StatusCode::OK,
        "the minting itself is sound"
    );
    let r = t
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": access}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "an access token is not a refresh token"
    );

    // -- API keys --
    let r = t
        .post(
            "/api/v1/api-keys",
            Some(&access),
            json!({"name": "deployer", "role": "operator", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let key_token = r.body["token"].as_str().expect("token").to_owned();
    let key_id = r.body["key"]["id"].as_str().expect("key id").to_owned();
    assert!(key_token.starts_with("hood_"));
    let r = t.get("/api/v1/me", &key_token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["role"], "admin");
    assert_eq!(
        r.body["permissions"],
        json!(["read", "operate"]),
        "key limited to its role"
    );
    let r = t.get(&format!("/api/v1/api-keys/{key_id}"), &access).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.get("token").is_none() && r.body.get("secret_hash").is_none(),
        "secret never shown again"
    );
    // The operator key may not mint a more powerful key.
    let r = t
        .post(
            "/api/v1/api-keys",
            Some(&key_token),
            json!({"name": "escalate", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .post(
            "/api/v1/api-keys",
            Some(&access),
            json!({"name": "bad", "scopes": ["fly"], "expires_in_days": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let scoped = t
        .post(
            "/api/v1/api-keys",
            Some(&access),
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(scoped.status, StatusCode::CREATED);
    let scoped_token = scoped.body["token"].as_str().expect("token").to_owned();
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&scoped_token),
            json!({"email": "eve@acme.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "scope limits an admin's key"
    );
    let r = t
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    t.settle_credentials().await;
    for _ in &t.urls {
        let r = t.get("/api/v1/me", &key_token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "revoked key refused");
    }
    let r = t.get("/api/v1/api-keys", &access).await;
    let listed = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .cloned()
        .expect("listed");
    assert!(listed["revoked_at"].is_string());
    assert!(
        listed["last_used_at"].is_string(),
        "a used key is stamped: {listed}"
    );

    // -- permissions inside an org --
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&access),
            json!({"email": "vic@acme.test", "role": "viewer", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let vic = login(t, "vic@acme.test").await;
    let vic_access = vic["access_token"].as_str().expect("access").to_owned();
    let r = t
        .post(
            &format!("/api/v1/orgs/{acme}/users"),
            Some(&vic_access),
            json!({"email": "mal@acme.test", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a viewer cannot add users");
    let r = t
        .post(
            "/api/v1/orgs",
            Some(&access),
            json!({"slug": "mine", "name": "Mine"}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "org admins cannot create orgs"
    );

    // -- tenancy: every resource route of acme, as globex's admin, is 404 --
    let bob = login(t, "bob@globex.test").await;
    let bob_access = bob["access_token"].as_str().expect("access").to_owned();
    let alice_id = alice["id"].as_str().expect("id");
    let alice_keys = t.get("/api/v1/api-keys", &access).await.body["items"].clone();
    let alice_key = alice_keys[0]["id"]
        .as_str()
        .expect("a key of alice")
        .to_owned();
    let foreign: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/orgs/{acme}"), None),
        (Method::GET, format!("/api/v1/orgs/{acme}/users"), None),
        (
            Method::POST,
            format!("/api/v1/orgs/{acme}/users"),
            Some(json!({"email": "x@y.test", "role": "viewer"})),
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/{acme}/users/{alice_id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/orgs/{acme}/users/{alice_id}"),
            Some(json!({"display_name": "pwned"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/orgs/{acme}/users/{alice_id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/{globex}/users/{alice_id}"),
            None,
        ),
        (Method::GET, format!("/api/v1/api-keys/{alice_key}"), None),
        (
            Method::DELETE,
            format!("/api/v1/api-keys/{alice_key}"),
            None,
        ),
    ];
    for (method, path, body) in foreign {
        let r = t.call(method.clone(), &path, Some(&bob_access), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path} as another tenant"
        );
    }
    let r = t.get("/api/v1/orgs", &bob_access).await;
    let slugs: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["slug"].as_str())
        .collect();
    assert_eq!(slugs, ["globex"]);
    let r = t.get("/api/v1/api-keys", &bob_access).await;
    assert!(
        r.body["items"].as_array().expect("items").is_empty(),
        "no foreign keys listed"
    );
    // Alice is untouched.
    let r = t
        .get(&format!("/api/v1/orgs/{acme}/users/{alice_id}"), &access)
        .await;
    assert_eq!(r.body["display_name"], alice["display_name"]);
    assert_eq!(
        t.get(&format!("/api/v1/api-keys/{alice_key}"), &access)
            .await
            .status,
        StatusCode::OK
    );

    // -- logout ends the session --
    let r = t
        .call(Method::POST, "/api/v1/auth/logout", Some(&bob_access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.get("/api/v1/me", &bob_access).await.status,
        StatusCode::UNAUTHORIZED
    );

    // -- chains --
    let r = t.get("/api/v1/chains", &access).await;
    assert_eq!(r.status, StatusCode::OK);
    let chains: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ["ethereum-anvil", "ethereum", "solana", "bitcoin"] {
        assert!(chains.contains(&c), "{c} in {chains:?}");
    }
    assert_eq!(
        t.get("/api/v1/chains/ethereum-anvil", &access).await.status,
        StatusCode::OK
    );
    assert_eq!(
        t.get("/api/v1/chains/dogecoin-classic", &access)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // -- metrics saw it all, with route templates and no ids --
    let r = t.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Keys were read from the store, but far fewer times than used.
    for url in &t.urls {
        let text = t
            .http
            .get(format!("{url}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        let reads = super::http::metric_in(&text, "hood_api_key_reads_total")
            .expect("hood_api_key_reads_total is exported");
        assert!(reads >= 1.0, "{url}: keys are read: {reads}");
        assert!(
            text.contains("hood_credential_events_followed "),
            "{url}: whether credential events are followed is exported"
        );
    }
}
