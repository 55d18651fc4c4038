//! The console and the API on one loopback listener over SQLite, with an
//! organization and its administrator, for the console's crate tests.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // each test uses part of it

use hood_api::state::{ApiConfig, AppState};
use hood_api::{bootstrap, HttpRole};
use hood_bus::EventBus;
use hood_chains::ChainCatalog;
use hood_console::{Console, ConsoleConfig};
use hood_domain::identity::{Organization, Role, User};
use hood_domain::{OrgId, UserId};
use hood_identity::master_key::MasterKey;
use hood_identity::password::hash_password;
use hood_identity::tokens::{TokenConfig, TokenIssuer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub const EMAIL: &str = "ops@acme.test";
pub const PASSWORD: &str = "a long enough password";

pub struct Fixture {
    pub base: String,
    pub store: Arc<dyn hood_store::Store>,
    pub org: Organization,
}

/// Serves the console (live updates from `bus`, if any) and the API;
/// access tokens live `access_ttl_secs`.
pub async fn start(
    dir: &tempfile::TempDir,
    access_ttl_secs: i64,
    bus: Option<Arc<dyn EventBus>>,
) -> Fixture {
    let store: Arc<dyn hood_store::Store> = hood_store::connect(&hood_testkit::sqlite_url(dir))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let master = MasterKey::generate();
    let keys = bootstrap::ensure_signing_keys(store.as_ref(), &master)
        .await
        .expect("keys");
    let tokens = TokenIssuer::new(
        &keys,
        &master,
        TokenConfig {
            access_ttl_secs,
            ..TokenConfig::default()
        },
    )
    .expect("issuer");
    let chains = Arc::new(ChainCatalog::builtin().expect("chains"));
    let state = AppState::new(store.clone(), tokens, None, chains, &ApiConfig::default());
    let now = hood_api::clock::now();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: now,
    };
    store.create_org(&org).await.expect("org");
    let user = User {
        id: UserId::from_uuid(uuid::Uuid::now_v7()),
        org_id: org.id,
        email: EMAIL.into(),
        display_name: "Ops".into(),
        role: Role::Admin,
        platform_admin: false,
        password_hash: Some(hash_password(PASSWORD).expect("hash")),
        disabled: false,
        created_at: now,
    };
    store.create_user(&user).await.expect("user");
    let console = Console::new(state.clone(), bus, ConsoleConfig::default());
    let app = hood_console::router(console)
        .merge(hood_api::router(state, &[HttpRole::Api, HttpRole::Auth]));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(hood_api::serve(
        listener,
        app,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    Fixture { base, store, org }
}

/// The value `name` is set to by `resp`.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

/// Signs in through the console's form: the answer that set the cookies.
pub async fn sign_in(base: &str) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let csrf = set_cookie(&form, "hood_csrf").expect("a CSRF cookie");
    let signed_in = http
        .post(format!("{base}/console/login"))
        .header("cookie", format!("hood_csrf={csrf}"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in
}
