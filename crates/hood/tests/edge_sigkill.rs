//! Metering survives a SIGKILL of `hood up` (embedded: SQLite, usage
//! written by the edge itself). 100,000 calls (`HOOD_EDGE_LOAD_REQUESTS`);
//! `hood up` is SIGKILLed a third of the way in and started again on the
//! same home and edge port. Every answered call ends up as exactly one
//! stored usage event: the spool the killed process left is shipped at the
//! next start, and what it had already shipped is dropped by request id.
//! The cluster-mode twin is in `edge_cluster.rs`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use common::edge::{fast_upstream, free_port, insert_key, settle_usage, Load};
use common::{temp_home, HoodProcess, UP_LABELS};
use hood_domain::rpc::KeyScope;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread")]
async fn embedded_metering_loses_nothing_to_a_sigkill() {
    let (_dir, home) = temp_home();
    let upstream = fast_upstream().await;
    let edge_addr = free_port();
    let env = vec![
        ("HOOD_HOME", home.display().to_string()),
        ("HOOD_EDGE_UPSTREAMS", format!("ethereum-anvil={upstream}")),
        ("HOOD_EDGE_PLANS", "loadtest=1000000000".to_owned()),
    ];
    let up = || {
        HoodProcess::start(
            &[
                "up",
                "--api-addr",
                "127.0.0.1:0",
                "--auth-addr",
                "127.0.0.1:0",
                "--gateway-addr",
                "127.0.0.1:0",
                "--edge-addr",
                &edge_addr,
            ],
            &env,
            UP_LABELS,
        )
    };
    let hood = up();
    let store: Arc<dyn hood_store::Store> =
        hood_store::connect(&format!("sqlite://{}", home.join("hood.db").display()))
            .await
            .unwrap();
    let org = store.list_orgs().await.unwrap()[0].id;
    let (key, token) = insert_key(&store, org, "loadtest", KeyScope::default()).await;

    let load = Load::start(
        vec![format!("http://{edge_addr}/ethereum-anvil/v1/{token}")],
        Load::total_from_env(),
        32,
    );
    load.wait_until_sent(load.total / 3).await;
    let killed = hood.stop("-KILL");
    assert!(!killed.success(), "hood up was killed: {killed:?}");
    // What the killed process had taken but maybe not yet shipped.
    let spooled: u64 = std::fs::read_dir(home.join("edge-spool"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    eprintln!(
        "killed at {} requests; {spooled} bytes left in the spool",
        load.sent()
    );
    assert!(spooled > 0, "the killed edge left usage in its spool");
    let hood = up();
    let (total, workers) = (load.total, load.workers as u64);
    let answered = load.finish().await;
    assert!(answered >= total * 9 / 10, "most requests were answered");

    let stored = settle_usage(&store, key.id, answered, workers).await;
    eprintln!("{stored} usage events stored for {answered} answered calls");
    // A clean stop ships the rest and leaves nothing behind but the empty
    // active segment.
    assert!(hood.stop("-TERM").success());
    assert_eq!(
        store.count_usage_events(key.id).await.unwrap() as u64,
        stored
    );
}
