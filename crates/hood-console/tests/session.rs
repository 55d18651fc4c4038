//! Console sessions through the real routers on SQLite: the token pair is
//! rotated through the API's refresh route when the access token nears its
//! end; two requests racing with the same refresh token both continue the
//! session (the API would otherwise see a reuse and revoke it); a session
//! the API ended sends the browser back to sign in.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod support;

use support::{set_cookie, sign_in, start};

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
    // Access tokens live 30 s, inside the console's 60 s rotation margin:
    // every page rotates.
    let base = start(&dir, 30, None).await.base;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = sign_in(&base).await;
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
