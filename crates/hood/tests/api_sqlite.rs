//! The API suite against `hood up` (embedded SQLite), plus what only the
//! embedded mode promises: restart keeps data, Ctrl-C stops cleanly.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::suite::{run, Target};
use common::{hood_up, read_admin_key, temp_home};
use hood_identity::master_key::MasterKey;

#[tokio::test(flavor = "multi_thread")]
async fn api_suite_on_embedded_sqlite() {
    let (_dir, home) = temp_home();
    let hood = hood_up(&home, &[]);
    let (master, created) =
        MasterKey::load_or_create(&home.join("master.key")).expect("master key");
    assert!(!created, "hood up created the master key");
    let target = Target::new(
        vec![hood.url("api")],
        read_admin_key(&home),
        format!("sqlite://{}", home.join("hood.db").display()),
        master,
    );
    run(&target).await;
}
