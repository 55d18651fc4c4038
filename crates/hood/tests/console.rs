//! The web console on `hood up`.
//!
//! * `console_end_to_end_in_chromium`: Debian's chromium, driven by
//!   Playwright (`tests/browser/console.e2e.mjs`), through the operator's
//!   and the customer's journeys: sign-in, an organization and its user, an
//!   RPC key shown once and used through the edge, usage that counts those
//!   calls, revocation, a managed anvil node whose head rises live, its
//!   host killed (down and the incident live, acknowledged), the outage on
//!   `/status`. Screenshots of the main pages are left in
//!   `$CARGO_TARGET_TMPDIR/console-screenshots`.
//! * `console_storage_browser_in_chromium`: the storage pages
//!   (`tests/browser/storage.e2e.mjs`): namespaces, uploads streamed by
//!   the page, folders, downloads, presigned URLs, the quota's refusal,
//!   deletion; another organization's namespace is a 404.
//! * `console_security`: over plain HTTP, what must hold whatever a browser
//!   does: another organization's node is a 404, a state-changing request
//!   without the CSRF token is refused and changes nothing, markup in data
//!   is escaped, session cookies are `HttpOnly` and `SameSite=Strict`, and
//!   no page carries an inline script.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::health::fast_health_env;
use common::http::{second_org, Api, PASSWORD};
use common::{
    hood_up, processes_under, push_anvil, read_admin_key, run_browser_script, temp_home, KillUnder,
};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_EMAIL: &str = "admin@hood.local";
const ADMIN_PASSWORD: &str = "console-admin-password";

fn admin_env() -> Vec<(&'static str, String)> {
    let mut env = fast_health_env();
    env.push(("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()));
    env
}

/// Kills every process of one host (its agent and the nodes it runs).
fn kill_host(home: &Path, host: &str) {
    let sandbox = home.join("hosts").join("hosts").join(host);
    let victims = processes_under(&sandbox);
    assert!(
        !victims.is_empty(),
        "no process under {}",
        sandbox.display()
    );
    for (pid, _) in victims {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

#[test]
fn console_end_to_end_in_chromium() {
    let test = "console_end_to_end_in_chromium";
    let Some(anvil) = hood_testkit::anvil_bin(test) else {
        return;
    };
    let Some(chromium) = hood_testkit::chromium_bin(test) else {
        return;
    };
    let Some(browser_dir) = hood_testkit::browser_tests_dir(test) else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &admin_env());
    let api = hood.url("api");
    let env = vec![
        ("HOOD_SERVER", api.clone()),
        ("HOOD_TOKEN", read_admin_key(&home)),
    ];
    push_anvil(&anvil, &env);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);

    let mut child = Command::new("node")
        .arg(browser_dir.join("console.e2e.mjs"))
        .current_dir(&browser_dir)
        .env("HOOD_API", &api)
        .env("HOOD_EDGE", hood.url("edge"))
        .env("HOOD_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("HOOD_CHROMIUM", &chromium)
        .env("HOOD_SCREENSHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs the browser test");
    let mut to_script = child.stdin.take().expect("stdin");
    let from_script = BufReader::new(child.stdout.take().expect("stdout"));
    let started = Instant::now();
    let mut passed = false;
    for line in from_script.lines().map_while(Result::ok) {
        eprintln!("[browser {:>5.1}s] {line}", started.elapsed().as_secs_f64());
        if let Some(host) = line.strip_prefix("@@hood kill-host ") {
            kill_host(&home, host.trim());
            writeln!(to_script, "ok").expect("answer the script");
        } else if line == "@@hood passed" {
            passed = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the browser test ran for more than 10 minutes"
        );
    }
    let status = child.wait().expect("browser test exit");
    eprintln!("screenshots: {}", shots.display());
    assert!(
        status.success() && passed,
        "the browser test failed: {status}"
    );
    for name in [
        "02-overview-admin",
        "06-node-healthy",
        "07-usage",
        "11-status",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "screenshot {name} was left"
        );
    }
}

/// A browser-like client: keeps cookies, never follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `hood_csrf` cookie of the last answer that set it.
fn set_cookie_values(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().rev().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
    })
}

/// Signs in through the console's form; returns the CSRF token to send.
async fn console_sign_in(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> String {
    let form = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .expect("login form");
    let csrf = cookie_value(&set_cookie_values(&form), "hood_csrf").expect("a CSRF cookie");
    let resp = client
        .post(format!("{base}/console/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", "/console"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), 303, "signed in");
    let cookies = set_cookie_values(&resp);
    for name in ["hood_access", "hood_refresh", "hood_csrf"] {
        let c = cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} set at sign-in: {cookies:?}"));
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Strict"), "{c}");
        assert!(c.contains("Path=/console"), "{c}");
        assert!(!c.contains("Secure"), "plain HTTP: no Secure flag ({c})");
    }
    cookie_value(&cookies, "hood_csrf").expect("a fresh CSRF token")
}

/// No inline script, no event-handler attribute, and the policy that
/// forbids them.
fn assert_no_inline_script(path: &str, headers: &reqwest::header::HeaderMap, body: &str) {
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
    assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    let script = regex::Regex::new(r"(?is)<script\b([^>]*)>(.*?)</script>").unwrap();
    for m in script.captures_iter(body) {
        assert!(
            m[1].contains("src="),
            "{path}: a script without src: {}",
            &m[0]
        );
        assert!(
            m[2].trim().is_empty(),
            "{path}: an inline script body: {}",
            &m[0]
        );
    }
    let handler = regex::Regex::new(r#"(?i)<[^>]+\son[a-z]+\s*="#).unwrap();
    assert!(!handler.is_match(body), "{path}: an inline event handler");
    assert!(!body.contains("javascript:"), "{path}: a javascript: URL");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_security() {
    let Some(anvil) = hood_testkit::anvil_bin("console_security") else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &admin_env());
    let base = hood.url("api");
    let admin_key = read_admin_key(&home);
    push_anvil(
        &anvil,
        &[
            ("HOOD_SERVER", base.clone()),
            ("HOOD_TOKEN", admin_key.clone()),
        ],
    );
    let api = Api::new(base.clone());

    // Organization A (the administrator's) has a node; organization B
    // (Globex) has a user, bob.
    let r = api
        .post(
            "/api/v1/nodes",
            &admin_key,
            json!({"chain": "ethereum-anvil", "name": "private-node"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let node_id = r.body["node"]["id"].as_str().unwrap().to_owned();
    second_org(&api, &admin_key).await;

    // Bob signs in to the console: A's node is a 404, as in the API, and
    // so is its event stream.
    let bob = browser();
    let bob_csrf = console_sign_in(&bob, &base, "bob@globex.test", PASSWORD).await;
    for path in [
        format!("/console/nodes/{node_id}"),
        format!("/console/live?node={node_id}"),
    ] {
        let r = bob.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = bob
        .post(format!("{base}/console/nodes/{node_id}/delete"))
        .form(&[("_csrf", bob_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "deleting another organization's node");
    let node = api
        .get(&format!("/api/v1/nodes/{node_id}"), &admin_key)
        .await;
    assert_ne!(node.body["state"], "terminating", "{}", node.text);

    // Bob changes his own password on his account page (mismatched
    // confirmations are refused first).
    let r = bob
        .post(format!("{base}/console/account"))
        .form(&[
            ("_csrf", bob_csrf.as_str()),
            ("password", "a brand new password"),
            ("confirm", "a different password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = bob
        .post(format!("{base}/console/account"))
        .form(&[
            ("_csrf", bob_csrf.as_str()),
            ("display_name", "Bob of Globex"),
            ("password", "a brand new password"),
            ("confirm", "a brand new password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = bob
        .get(format!("{base}/console/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Saved.") && page.contains("Bob of Globex"),
        "{page}"
    );
    let relogin = api
        .http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "bob@globex.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), 401, "the old password no longer works");
    let bob_token = api.login("bob@globex.test", "a brand new password").await;

    // A viewer of Globex sees no creation forms, and a forged creation is
    // refused by the API's rule (the console has none of its own).
    let me = api.get("/api/v1/me", &bob_token).await;
    let globex = me.body["org"]["id"].as_str().unwrap().to_owned();
    api.user(&bob_token, &globex, "viewer@globex.test", "viewer")
        .await;
    let viewer = browser();
    let viewer_csrf = console_sign_in(&viewer, &base, "viewer@globex.test", PASSWORD).await;
    let page = viewer
        .get(format!("{base}/console/rpc-keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Create an RPC key"),
        "a viewer is offered no creation"
    );
    let r = viewer
        .post(format!("{base}/console/rpc-keys"))
        .form(&[
            ("_csrf", viewer_csrf.as_str()),
            ("name", "sneaky"),
            ("plan", "free"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the form, with the API's reason");
    let page = viewer
        .get(format!(
            "{base}{}",
            r.headers()["location"].to_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("manage_keys"),
        "the API's refusal is shown: {page}"
    );
    let keys = api.get("/api/v1/rpc-keys", &bob_token).await;
    assert!(!keys.text.contains("sneaky"), "{}", keys.text);

    // The administrator signs in; a form posted without the CSRF token, or
    // with a wrong one, is refused and creates nothing.
    let admin = browser();
    let csrf = console_sign_in(&admin, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for token in [None, Some("forged-token")] {
        let mut form = vec![("name", "Forged"), ("slug", "forged")];
        if let Some(t) = token {
            form.push(("_csrf", t));
        }
        let r = admin
            .post(format!("{base}/console/orgs"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "CSRF token {token:?}");
    }
    // An upload streams with the token in a header: without it, or with a
    // wrong one, refused and nothing stored; with it, stored.
    let r = api
        .post(
            "/api/v1/storage/namespaces",
            &admin_key,
            json!({"name": "uploads"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.text);
    let upload = format!("{base}/console/storage/uploads/objects/a%20b.txt");
    for token in [None, Some("forged-token")] {
        let mut put = admin.put(&upload).body("forged bytes");
        if let Some(t) = token {
            put = put.header("x-csrf-token", t);
        }
        assert_eq!(
            put.send().await.unwrap().status(),
            403,
            "CSRF header {token:?}"
        );
    }
    let listed = api
        .get("/api/v1/storage/namespaces/uploads/objects", &admin_key)
        .await;
    assert_eq!(listed.body["items"], json!([]), "{}", listed.text);
    let r = admin
        .put(&upload)
        .header("x-csrf-token", csrf.as_str())
        .body("real bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin.get(&upload).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%20b.txt"
    );
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    assert_eq!(r.text().await.unwrap(), "real bytes");
    // A form that names no object goes back to the namespace saying so,
    // for presigning and deleting alike, and changes nothing.
    for action in ["presign", "delete-object"] {
        let r = admin
            .post(format!("{base}/console/storage/uploads/{action}"))
            .form(&[("_csrf", csrf.as_str()), ("key", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.ends_with("/console/storage/uploads"), "{location}");
        let page = admin
            .get(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("Name the object"), "{action}: {page}");
    }
    assert_eq!(admin.get(&upload).send().await.unwrap().status(), 200);

    let orgs = api.get("/api/v1/orgs", &admin_key).await;
    assert!(
        !orgs.text.contains("forged"),
        "a refused form created nothing: {}",
        orgs.text
    );
    // The same form with the token works (the refusal was the token's).
    let r = admin
        .post(format!("{base}/console/orgs"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "<script>alert(1)</script>"),
            ("slug", "script-org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let org_page = r.headers()["location"].to_str().unwrap().to_owned();

    // Markup in data is text: the organization's name is escaped on its
    // page and in the list.
    for path in [org_page.as_str(), "/console/orgs"] {
        let r = admin.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: the name is shown escaped"
        );
        assert!(!body.contains("<script>alert(1)"), "{path}: raw markup");
        assert_no_inline_script(path, &headers, &body);
    }

    // Every page, signed in or public, carries the policy and no inline
    // script.
    for path in [
        "/console",
        "/console/nodes",
        &format!("/console/nodes/{node_id}"),
        "/console/incidents",
        "/console/incidents?all=true",
        "/console/workflows",
        "/console/hosts",
        "/console/chains",
        "/console/orgs",
        "/console/api-keys",
        "/console/rpc-keys",
        "/console/usage",
        "/console/usage?granularity=day&range=90d",
        "/console/channels",
        "/console/login",
        "/status",
    ] {
        let r = admin.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        assert_no_inline_script(path, &headers, &body);
    }

    // Signed out, pages send the browser to sign in; the session is over.
    let r = admin
        .post(format!("{base}/console/logout"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = admin
        .get(format!("{base}/console/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login?next=%2Fconsole%2Fnodes"));

    // A badge exists only for a node its organization made public.
    let badge = format!("{base}/status/badges/{node_id}.svg");
    assert_eq!(reqwest::get(&badge).await.unwrap().status(), 404);
    let r = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/nodes/{node_id}/status-page"),
            &admin_key,
            Some(json!({"public": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = reqwest::get(&badge).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().contains("private-node"));
    // The public page is cached for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = reqwest::get(format!("{base}/status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if status.contains(r#"data-chain="ethereum-anvil""#) && status.contains("private-node") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the public node never showed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Bob cannot make A's node private (the API's rule, through its route).
    let r = api
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/nodes/{node_id}/status-page"),
            &bob_token,
            Some(json!({"public": false})),
        )
        .await;
    assert_eq!(r.status, 404);
}

/// Sign-in through the configured OpenID Connect issuer: the code flow
/// with PKCE against a provider on loopback, the state bound to the
/// browser, the user found by verified e-mail.
#[tokio::test(flavor = "multi_thread")]
async fn console_sign_in_through_oidc() {
    let issuer = hood_testkit::oidc::TestIssuer::start("sso@acme.test").await;
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let mut env = admin_env();
    env.push(("HOOD_OIDC_ISSUER", issuer.url.clone()));
    env.push(("HOOD_OIDC_AUDIENCE", "hood-console".into()));
    let hood = hood_up(&home, &env);
    let base = hood.url("api");
    let api = Api::new(base.clone());
    let admin_key = read_admin_key(&home);
    let r = api
        .post(
            "/api/v1/orgs",
            &admin_key,
            json!({"slug": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let org = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/api/v1/orgs/{org}/users"),
            &admin_key,
            json!({"email": "sso@acme.test", "role": "operator", "display_name": "Single Sign-On"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let client = browser();
    let login = client
        .get(format!("{base}/console/login?next=/console/nodes"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let provider = issuer.url.trim_start_matches("http://");
    assert!(
        login.contains(&format!("Sign in with {provider}")),
        "{login}"
    );

    // Off to the provider, with PKCE and a state and nonce; the flow's
    // cookie must survive the way back (Lax), and nothing else is Lax.
    let start = client
        .get(format!("{base}/console/login/oidc?next=%2Fconsole%2Fnodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let flow_cookie = set_cookie_values(&start)
        .into_iter()
        .find(|c| c.starts_with("hood_oidc="))
        .expect("the flow cookie");
    assert!(flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Lax"));
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}/authorize?", issuer.url)),
        "{authorize}"
    );
    for part in [
        "code_challenge_method=S256",
        "client_id=hood-console",
        "scope=openid",
        "nonce=",
        "state=",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let back = client.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 303);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!("{base}/console/login/oidc/callback?code=")));

    // A callback whose state this browser did not start is refused.
    let forged = regex::Regex::new(r"state=[^&]+")
        .unwrap()
        .replace(&callback, "state=forged")
        .into_owned();
    let r = client.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 400);

    let done = client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let cookies = set_cookie_values(&done);
    let access = cookies
        .iter()
        .find(|c| c.starts_with("hood_access=") && !c.starts_with("hood_access=;"))
        .expect("a session cookie");
    assert!(
        access.contains("HttpOnly") && access.contains("SameSite=Strict"),
        "{access}"
    );
    let page = done.text().await.unwrap();
    assert!(
        page.contains(r#"http-equiv="refresh" content="0;url=/console/nodes""#),
        "{page}"
    );
    let nodes = client
        .get(format!("{base}/console/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(nodes.status(), 200);
    let nodes = nodes.text().await.unwrap();
    assert!(
        nodes.contains("Single Sign-On") && nodes.contains("Acme"),
        "{nodes}"
    );

    // The code and the flow are spent: the same callback again is refused.
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // A provider identity no Hood user has is refused after the exchange.
    issuer.sign_in_as("stranger@acme.test");
    let stranger = browser();
    let start = stranger
        .get(format!("{base}/console/login/oidc"))
        .send()
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let back = stranger.get(&authorize).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let r = stranger.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = stranger
        .get(format!("{base}/console"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "not signed in");
}

#[test]
fn console_billing_pages_in_chromium() {
    let test = "console_billing_pages_in_chromium";
    let Some(chromium) = hood_testkit::chromium_bin(test) else {
        return;
    };
    let Some(browser_dir) = hood_testkit::browser_tests_dir(test) else {
        return;
    };
    let (dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &admin_env());
    let api = hood.url("api");
    let env = vec![
        ("HOOD_SERVER", api.clone()),
        ("HOOD_TOKEN", read_admin_key(&home)),
    ];
    let cli = |args: &[&str]| {
        let (ok, out, err) = common::hood_cli(args, &env, None);
        assert!(ok, "hood {args:?}: {out} {err}");
        out
    };
    let card = dir.path().join("card.json");
    std::fs::write(
        &card,
        json!({"currency": "USD", "rules": [
            {"meter": "gpu.minutes", "price": {"tiers": [{"rate": {"amount_minor": 1, "per": 1}}]}},
            {"meter": "rpc.compute_units", "price": {"tiers": [{"rate": {"amount_minor": 2, "per": 10000}}]}}
        ]})
        .to_string(),
    )
    .unwrap();
    cli(&[
        "billing",
        "rate-card",
        "create",
        "--file",
        card.to_str().unwrap(),
    ]);
    let today = &hood_api::clock::rfc3339(common::now())[..10];
    cli(&[
        "subscription",
        "create",
        "--kind",
        "hybrid",
        "--fee-minor",
        "4900",
        "--start-date",
        today,
    ]);
    // Usage of an ingested meter, through the API as a producer sends it.
    let (ok, out, err) = common::hood_cli(&["-o", "json", "credits", "show"], &env, None);
    assert!(!ok, "not on credits yet: {out}");
    assert!(err.contains("not found") || err.contains("404"), "{err}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{api}/api/v1/meter-events"))
            .bearer_auth(read_admin_key(&home))
            .json(&json!({"events": [
                {"id": "gpu-1", "meter": "gpu.minutes", "quantity": 30},
                {"id": "gpu-2", "meter": "gpu.minutes", "quantity": 12}
            ]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let day_start = common::now().millis() - common::now().millis().rem_euclid(86_400_000);
    let as_of = hood_api::clock::rfc3339(hood_domain::Timestamp::from_millis(
        day_start + 32 * 86_400_000,
    ));
    let report: serde_json::Value = serde_json::from_str(&cli(&[
        "-o",
        "json",
        "billing",
        "close-period",
        "--as-of",
        &as_of,
    ]))
    .unwrap();
    let invoice = &report["issued"][0];
    let (id, number) = (
        invoice["id"].as_str().unwrap().to_owned(),
        invoice["number"].as_str().unwrap().to_owned(),
    );
    let total = invoice["total_minor"].as_u64().unwrap();
    assert_eq!(total, 4_900 + 42, "the fee and 42 GPU minutes");
    cli(&["invoice", "pay", &id, "--reference", "BANK-CONSOLE"]);
    cli(&[
        "invoice",
        "credit",
        &id,
        "--amount-minor",
        "42",
        "--reason",
        "GPU minutes waived",
    ]);
    let due = total - 42;
    cli(&["credits", "enable", "--window-seconds", "60"]);
    cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "500",
        "--reference",
        "console-1",
    ]);
    cli(&[
        "credits",
        "top-up",
        "--amount-minor",
        "300",
        "--reference",
        "console-2",
    ]);

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-billing-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let passed = run_browser_script(
        "billing.e2e.mjs",
        &browser_dir,
        &chromium,
        &shots,
        &[
            ("HOOD_API", api.clone()),
            ("HOOD_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("HOOD_INVOICE_NUMBER", number),
            (
                "HOOD_INVOICE_TOTAL",
                format!("{}.{:02} USD", total / 100, total % 100),
            ),
            (
                "HOOD_INVOICE_DUE",
                format!("{}.{:02} USD", due / 100, due % 100),
            ),
        ],
    );
    eprintln!("screenshots: {}", shots.display());
    assert!(passed, "the billing browser test failed");
    assert!(shots.join("21-invoice.png").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn console_storage_browser_in_chromium() {
    let test = "console_storage_browser_in_chromium";
    let Some(chromium) = hood_testkit::chromium_bin(test) else {
        return;
    };
    let Some(browser_dir) = hood_testkit::browser_tests_dir(test) else {
        return;
    };
    let (_dir, home) = temp_home();
    let _guard = KillUnder(home.clone());
    let hood = hood_up(&home, &admin_env());
    let base = hood.url("api");
    let api = Api::new(base.clone());
    // Another organization's namespace, with an object in it.
    let bob = second_org(&api, &read_admin_key(&home)).await;
    let r = api
        .post(
            "/api/v1/storage/namespaces",
            &bob,
            json!({"name": "globex-private"}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::CREATED, "{}", r.text);
    let put = api
        .http
        .put(format!(
            "{base}/api/v1/storage/namespaces/globex-private/objects/secret.txt"
        ))
        .bearer_auth(&bob)
        .body("not for acme")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-storage-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let script_env = vec![
        ("HOOD_API", base.clone()),
        ("HOOD_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("HOOD_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("HOOD_OTHER_NAMESPACE", "globex-private".to_owned()),
    ];
    let shots_dir = shots.clone();
    let passed = tokio::task::spawn_blocking(move || {
        run_browser_script(
            "storage.e2e.mjs",
            &browser_dir,
            &chromium,
            &shots_dir,
            &script_env,
        )
    })
    .await
    .unwrap();
    eprintln!("screenshots: {}", shots.display());
    assert!(passed, "the storage browser test failed");
    assert!(shots.join("31-storage-presigned.png").is_file());

    // What the browser deleted is gone from the API too; Globex's object
    // is untouched.
    let r = api
        .get("/api/v1/storage/namespaces/globex-private/objects", &bob)
        .await;
    assert_eq!(r.body["items"][0]["key"], "secret.txt", "{}", r.body);
}
