#![allow(clippy::expect_used, clippy::unwrap_used)]

//! The database's clock, and replicas whose own clocks disagree judging a
//! lease by it: the same bodies on SQLite and PostgreSQL.

#[macro_use]
mod support;

use hood_clock::{AlignedClock, Clock, ManualClock};
use hood_domain::Timestamp;
use hood_store::clock::align_clock;
use std::time::Duration;
use support::Harness;

async fn the_database_clock_reads_wall_time(db: &Harness) {
    let store = db.migrated().await;
    let before = hood_clock::now();
    let read = store.database_now().await.unwrap();
    let after = hood_clock::now();
    // Same machine: the database's clock is ours, to within a second.
    assert!(
        read.millis() >= before.millis() - 1_000 && read.millis() <= after.millis() + 1_000,
        "{before:?} <= {read:?} <= {after:?}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.database_now().await.unwrap() > read, "it moves");
}

async fn skewed_replicas_aligned_to_the_database_agree_on_a_lease(db: &Harness) {
    let store = db.migrated().await;
    let now = hood_clock::now();
    // Replica A's clock is an hour behind, replica B's an hour ahead.
    let a = AlignedClock::over(ManualClock::at(now.plus_secs(-3_600)));
    let b = AlignedClock::over(ManualClock::at(now.plus_secs(3_600)));
    // Unaligned, B would find A's fresh 60 s lease long expired and take it.
    let held = store
        .acquire_leader_lease("clock-test", "a", 60_000, a.now())
        .await
        .unwrap()
        .expect("a leads");
    let stolen = store
        .acquire_leader_lease("clock-test", "b", 60_000, b.now())
        .await
        .unwrap();
    assert!(
        stolen.is_some(),
        "skew hands the lease over: the hazard is real"
    );
    store.release_leader_lease(&stolen.unwrap()).await.unwrap();
    let _ = held;

    // Aligned to the database, both judge by its clock.
    align_clock(store, &a).await.unwrap();
    align_clock(store, &b).await.unwrap();
    assert!((a.now().millis() - b.now().millis()).abs() < 1_000);
    let held = store
        .acquire_leader_lease("clock-test-2", "a", 60_000, a.now())
        .await
        .unwrap()
        .expect("a leads");
    assert!(store
        .acquire_leader_lease("clock-test-2", "b", 60_000, b.now())
        .await
        .unwrap()
        .is_none());
    assert!(held.expires_at.millis() - store.database_now().await.unwrap().millis() > 50_000);
    let _: Timestamp = held.expires_at;
}

conformance!(
    the_database_clock_reads_wall_time,
    skewed_replicas_aligned_to_the_database_agree_on_a_lease,
);
