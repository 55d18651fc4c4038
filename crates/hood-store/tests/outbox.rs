//! Outbox batches for the relay, on SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[macro_use]
mod support;

use hood_domain::identity::Organization;
use hood_domain::{EventId, OrgId, Timestamp};
use hood_store::Store;
use std::collections::HashSet;
use std::time::Duration;
use support::Harness;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const PUBLISHED_AT: Timestamp = Timestamp(1_700_000_100_000);

/// Creates `n` orgs (one outbox row each); returns the new rows' ids, oldest
/// first.
async fn write_events(store: &dyn Store, n: usize) -> Vec<EventId> {
    let before: HashSet<EventId> = store
        .outbox_pending(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    for _ in 0..n {
        let slug = format!("o-{}", Uuid::new_v4().simple());
        let org = Organization {
            id: OrgId::from_uuid(Uuid::now_v7()),
            slug: slug.clone(),
            name: slug,
            created_at: T0,
        };
        store.create_org(&org).await.unwrap();
    }
    store
        .outbox_pending(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .filter(|id| !before.contains(id))
        .collect()
}

async fn pending_ids(store: &dyn Store) -> Vec<EventId> {
    store
        .outbox_pending(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn batch_is_oldest_first_and_finish_marks_only_given_ids(db: &Harness) {
    let store = db.migrated().await;
    let ids = write_events(store, 5).await;
    assert_eq!(ids.len(), 5);

    let batch = store.outbox_lock_batch(3).await.unwrap();
    let got: Vec<EventId> = batch.records().iter().map(|r| r.id).collect();
    assert_eq!(got, ids[..3], "oldest three, in seq order");
    let seqs: Vec<i64> = batch.records().iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(batch.records().iter().all(|r| r.published_at.is_none()));
    assert_eq!(batch.records()[0].event.subject, "identity.org.created");

    // ids[3] is not in the batch: ignored, not marked.
    batch
        .finish(&[ids[0], ids[2], ids[3]], PUBLISHED_AT)
        .await
        .unwrap();
    assert_eq!(pending_ids(store).await, vec![ids[1], ids[3], ids[4]]);
    let marked = db
        .scalar(&format!(
            "SELECT published_at FROM outbox WHERE id = '{}'",
            ids[0]
        ))
        .await;
    assert_eq!(marked, Some(PUBLISHED_AT.millis()));

    let next = store.outbox_lock_batch(10).await.unwrap();
    let got: Vec<EventId> = next.records().iter().map(|r| r.id).collect();
    assert_eq!(got, vec![ids[1], ids[3], ids[4]]);
    next.finish(&got, PUBLISHED_AT).await.unwrap();
    assert!(pending_ids(store).await.is_empty());

    let empty = store.outbox_lock_batch(10).await.unwrap();
    assert!(empty.records().is_empty());
    empty.finish(&[], PUBLISHED_AT).await.unwrap();
}

async fn dropped_batch_leaves_rows_pending(db: &Harness) {
    let store = db.migrated().await;
    let ids = write_events(store, 3).await;

    let batch = store.outbox_lock_batch(10).await.unwrap();
    assert_eq!(batch.records().len(), 3);
    drop(batch);
    assert_eq!(pending_ids(store).await, ids, "nothing marked");

    // The rows are released (on PostgreSQL the rollback of the dropped
    // transaction is flushed when its connection returns to the pool, which
    // happens in the background): a later batch gets them all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = store.outbox_lock_batch(10).await.unwrap();
        let got: Vec<EventId> = again.records().iter().map(|r| r.id).collect();
        if got == ids {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows of a dropped batch were never released: got {got:?}"
        );
        drop(again);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn zero_or_negative_limit_locks_nothing(db: &Harness) {
    let store = db.migrated().await;
    write_events(store, 2).await;
    assert!(store
        .outbox_lock_batch(0)
        .await
        .unwrap()
        .records()
        .is_empty());
    assert!(store
        .outbox_lock_batch(-1)
        .await
        .unwrap()
        .records()
        .is_empty());
    assert_eq!(pending_ids(store).await.len(), 2);
}

conformance!(
    batch_is_oldest_first_and_finish_marks_only_given_ids,
    dropped_batch_leaves_rows_pending,
    zero_or_negative_limit_locks_nothing,
);

/// Row locks exist only on PostgreSQL; embedded mode runs one relay.
mod postgres_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_batches_never_share_a_row() {
        let Some(db) =
            Harness::postgres("postgres_only::concurrent_batches_never_share_a_row").await
        else {
            return;
        };
        let store = db.migrated().await;
        let ids = write_events(store, 5).await;

        let first = store.outbox_lock_batch(3).await.unwrap();
        // A second relay neither waits for the first nor sees its rows.
        let second = tokio::time::timeout(Duration::from_secs(5), store.outbox_lock_batch(10))
            .await
            .expect("a second batch must skip locked rows, not wait for them")
            .unwrap();
        let a: Vec<EventId> = first.records().iter().map(|r| r.id).collect();
        let b: Vec<EventId> = second.records().iter().map(|r| r.id).collect();
        assert_eq!(a, ids[..3]);
        assert_eq!(b, ids[3..]);

        // A third, while both are held, gets nothing.
        let third = store.outbox_lock_batch(10).await.unwrap();
        assert!(third.records().is_empty(), "{:?}", third.records());

        second.finish(&b, PUBLISHED_AT).await.unwrap();
        first.finish(&a, PUBLISHED_AT).await.unwrap();
        assert!(pending_ids(store).await.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_relays_take_each_row_once() {
        let Some(db) = Harness::postgres("postgres_only::racing_relays_take_each_row_once").await
        else {
            return;
        };
        db.migrated().await;
        let ids = write_events(&*db.store, 60).await;

        let mut tasks = Vec::new();
        for _ in 0..6 {
            // Each "relay" on its own store (own pool), as separate processes.
            let store = db.reopen().await;
            tasks.push(tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let batch = store.outbox_lock_batch(4).await.unwrap();
                    if batch.records().is_empty() {
                        return taken;
                    }
                    let got: Vec<EventId> = batch.records().iter().map(|r| r.id).collect();
                    // Hold the rows a little, as a relay publishing would.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    batch.finish(&got, PUBLISHED_AT).await.unwrap();
                    taken.extend(got);
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: HashSet<EventId> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "a row was taken twice");
        assert_eq!(distinct, ids.iter().copied().collect::<HashSet<_>>());
        assert!(pending_ids(&*db.store).await.is_empty());
    }
}
