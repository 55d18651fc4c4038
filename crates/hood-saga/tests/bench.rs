//! Step throughput of the engine (`hood bench saga`). The full runs are
//! `#[ignore]`d; run them with
//! `cargo test -p hood-saga --release --test bench -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestDb;
use hood_saga::bench_step_throughput;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke() {
    let db = TestDb::sqlite().await;
    let report = bench_step_throughput(db.store.clone(), 4, 3, 1)
        .await
        .unwrap();
    assert_eq!(report.total_steps, 12);
    assert_eq!(report.failed, 0);
    assert!(report.steps_per_sec > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn sqlite_throughput() {
    let db = TestDb::sqlite().await;
    for (workflows, steps) in [(200, 5), (1000, 5)] {
        let report = bench_step_throughput(db.store.clone(), workflows, steps, 1)
            .await
            .unwrap();
        println!("{report}");
        assert_eq!(report.failed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark"]
async fn postgres_throughput() {
    let Some(db) = TestDb::postgres("saga::bench").await else {
        return;
    };
    for workers in [1, 2, 4] {
        let report = bench_step_throughput(db.reopen().await, 1000, 5, workers)
            .await
            .unwrap();
        println!("{report}");
        assert_eq!(report.failed, 0);
    }
}
