//! Console sessions through the real routers on SQLite: the token pair is
//! rotated through the API's refresh route when the access token nears its
//! end; two requests racing with the same refresh token both continue the
//! session (the API would otherwise see a reuse and revoke it); a session
//! the API ended sends the browser back to sign in.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

use hood_api::state::{ApiConfig, AppState};
use hood_api::{bootstrap, HttpRole};
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

const EMAIL: &str = "ops@acme.test";
const PASSWORD: &str = "a long enough password";

/// The console and the API on one listener, access tokens living 30 s
/// (inside the console's 60 s rotation margin: every page rotates).
async fn start(dir: &tempfile::TempDir) -> String {
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
            access_ttl_secs: 30,
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
    let console = Console::new(state.clone(), None, ConsoleConfig::default());
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
    base
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

/// A client that sends exactly the cookies it is given.
async fn get(base: &str, path: &str, cookies: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .header("cookie", cookies)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_rotate_survive_races_and_end_with_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = start(&dir).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Sign in.
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
    let access = set_cookie(&signed_in, "hood_access").unwrap();
    let refresh = set_cookie(&signed_in, "hood_refresh").unwrap();
    let csrf = set_cookie(&signed_in, "hood_csrf").unwrap();
    let jar = |access: &str, refresh: &str| {
        format!("hood_access={access}; hood_refresh={refresh}; hood_csrf={csrf}")
    };

    // The access token is within the margin: the page rotates the pair.
    let page = get(&base, "/console", &jar(&access, &refresh)).await;
    assert_eq!(page.status(), 200);
    let access2 = set_cookie(&page, "hood_access").expect("a rotated access token");
    let refresh2 = set_cookie(&page, "hood_refresh").expect("a rotated refresh token");
    assert_ne!(refresh2, refresh);
    assert_ne!(access2, access);

    // Two requests racing with the same (now old) cookies both continue
    // the session, and get the same new pair.
    let old = jar(&access, &refresh);
    let (a, b) = tokio::join!(
        get(&base, "/console/nodes", &old),
        get(&base, "/console/incidents", &old)
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(set_cookie(&a, "hood_refresh"), Some(refresh2.clone()));
    assert_eq!(set_cookie(&b, "hood_refresh"), Some(refresh2.clone()));

    // The session goes on with the newest pair.
    let page = get(&base, "/console/rpc-keys", &jar(&access2, &refresh2)).await;
    assert_eq!(page.status(), 200);
    let access3 = set_cookie(&page, "hood_access").unwrap();
    let refresh3 = set_cookie(&page, "hood_refresh").unwrap();

    // Signing out ends the session at the API: its refresh token no longer
    // rotates, and the browser is sent to sign in.
    let out = http
        .post(format!("{base}/console/logout"))
        .header("cookie", jar(&access3, &refresh3))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        set_cookie(&out, "hood_refresh").as_deref(),
        Some(""),
        "cleared"
    );
    let after = get(
        &base,
        "/console",
        &format!("hood_refresh={refresh3}; hood_csrf={csrf}"),
    )
    .await;
    assert_eq!(after.status(), 303);
    assert!(after.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login"));
}
