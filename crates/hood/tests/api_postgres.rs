//! The same API suite against cluster mode: `hood migrate`, then two
//! `hood serve --role api,auth` replicas on one PostgreSQL database, with
//! requests alternating between the replicas.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::suite::{run, Target};
use common::{hood_cli, read_admin_key, HoodProcess};
use hood_identity::master_key::MasterKey;
use hood_testkit::PgDatabase;

#[tokio::test(flavor = "multi_thread")]
async fn api_suite_on_postgres_with_two_replicas() {
    let Some(db) = PgDatabase::create("api_suite_on_postgres_with_two_replicas").await else {
        return;
    };
    let master = MasterKey::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = format!("file://{}", dir.path().join("artifacts").display());
    let env = |home: &std::path::Path| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("HOOD_MASTER_KEY", master.to_base64()),
            ("HOOD_HOME", home.display().to_string()),
            ("HOOD_ARTIFACT_STORE", artifacts.clone()),
        ]
    };
    let (home_a, home_b) = (dir.path().join("a"), dir.path().join("b"));

    // A server refuses an unmigrated schema instead of creating it.
    let (ok, _, err) = hood_cli(
        &["serve", "--role", "api", "--listen", "127.0.0.1:0"],
        &env(&home_a),
        None,
    );
    assert!(!ok, "serve must refuse an unmigrated database");
    assert!(
        err.contains("hood migrate"),
        "tells the operator what to do: {err}"
    );

    let (ok, out, err) = hood_cli(&["migrate"], &env(&home_a), None);
    assert!(ok, "migrate: {out} {err}");
    assert!(out.contains("applied migrations"), "{out}");
    let (ok, out, _) = hood_cli(&["migrate"], &env(&home_a), None);
    assert!(
        ok && out.contains("up to date"),
        "second migrate is a no-op: {out}"
    );

    let args = ["serve", "--role", "api,auth", "--listen", "127.0.0.1:0"];
    let a = HoodProcess::start(&args, &env(&home_a), &["serving"]);
    let b = HoodProcess::start(&args, &env(&home_b), &["serving"]);
    assert!(
        !home_b.join("admin.key").exists(),
        "only one replica bootstraps the admin"
    );
    let target = Target::new(
        vec![a.url("serving"), b.url("serving")],
        read_admin_key(&home_a),
        db.url.clone(),
        master,
    );
    run(&target).await;
}
