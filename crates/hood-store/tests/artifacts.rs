//! Artifact catalog conformance: one set of bodies, run against SQLite and
//! PostgreSQL by the `conformance!` macro (see `tests/support/mod.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use support::Harness;

use hood_domain::{Timestamp, UserId};
use hood_store::artifact::{ArtifactRecord, RecordOutcome};
use hood_store::{Store, StoreError};
use std::sync::Arc;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn sha(fill: char) -> String {
    std::iter::repeat_n(fill, 64).collect()
}

fn artifact(name: &str, version: &str, sha256: &str, at: Timestamp) -> ArtifactRecord {
    ArtifactRecord {
        name: name.into(),
        version: version.into(),
        sha256: sha256.into(),
        size: 5 * 1024 * 1024 + 7,
        object_key: format!("blobs/sha256/{sha256}"),
        content_type: "application/octet-stream".into(),
        created_at: at,
        created_by: Some(UserId::from_uuid(Uuid::now_v7())),
    }
}

async fn artifact_events(store: &dyn Store) -> Vec<hood_store::OutboxRecord> {
    store
        .outbox_pending(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.subject == "artifact.pushed")
        .collect()
}

async fn record_get_list_and_announce(db: &Harness) {
    let store = db.migrated().await;
    assert_eq!(store.get_artifact("anvil", "1.5.1").await.unwrap(), None);
    assert!(store.list_artifacts().await.unwrap().is_empty());

    let a1 = artifact("anvil", "1.5.1", &sha('a'), T0);
    let a2 = artifact("anvil", "1.7.1", &sha('b'), T0.plus_secs(1));
    let mut r = artifact("reth", "1.9.3", &sha('c'), T0.plus_secs(2));
    r.created_by = None;
    r.content_type = "application/gzip".into();
    for a in [&r, &a2, &a1] {
        let outcome = store.record_artifact(a).await.unwrap();
        assert_eq!(outcome, RecordOutcome::Created(a.clone()));
        assert!(outcome.created());
    }

    assert_eq!(
        store.get_artifact("anvil", "1.5.1").await.unwrap(),
        Some(a1.clone())
    );
    assert_eq!(
        store.get_artifact("reth", "1.9.3").await.unwrap(),
        Some(r.clone())
    );
    // Exact match only: no prefix or case folding.
    assert_eq!(store.get_artifact("anvil", "1.5").await.unwrap(), None);
    assert_eq!(store.get_artifact("Anvil", "1.5.1").await.unwrap(), None);

    assert_eq!(
        store.list_artifacts().await.unwrap(),
        vec![a1.clone(), a2.clone(), r.clone()]
    );
    assert_eq!(
        store.list_artifact_versions("anvil").await.unwrap(),
        vec![a1.clone(), a2.clone()]
    );
    assert!(store
        .list_artifact_versions("nothing")
        .await
        .unwrap()
        .is_empty());

    let events = artifact_events(store).await;
    assert_eq!(events.len(), 3);
    let e = &events[2].event;
    assert_eq!(e.aggregate_type, "artifact");
    assert_eq!(e.aggregate_id, "anvil/1.5.1");
    assert_eq!(e.payload["name"], "anvil");
    assert_eq!(e.payload["version"], "1.5.1");
    assert_eq!(e.payload["sha256"], sha('a'));
    assert_eq!(e.payload["size"], a1.size);
    assert_eq!(e.payload["object_key"], a1.object_key);
    assert_eq!(
        e.payload["created_by"],
        a1.created_by.unwrap().to_string().as_str()
    );
}

async fn same_content_again_is_idempotent(db: &Harness) {
    let store = db.migrated().await;
    let first = artifact("anvil", "1.5.1", &sha('a'), T0);
    store.record_artifact(&first).await.unwrap();

    // Same name, version and content, pushed later by someone else.
    let again = artifact("anvil", "1.5.1", &sha('a'), T0.plus_secs(60));
    let outcome = store.record_artifact(&again).await.unwrap();
    assert_eq!(outcome, RecordOutcome::Existing(first.clone()));
    assert!(!outcome.created());
    assert_eq!(outcome.record(), &first);
    assert_eq!(
        store.get_artifact("anvil", "1.5.1").await.unwrap(),
        Some(first)
    );
    assert_eq!(artifact_events(store).await.len(), 1, "no second event");
}

async fn other_content_under_a_taken_version_conflicts(db: &Harness) {
    let store = db.migrated().await;
    let first = artifact("anvil", "1.5.1", &sha('a'), T0);
    store.record_artifact(&first).await.unwrap();

    let other = artifact("anvil", "1.5.1", &sha('f'), T0.plus_secs(60));
    let err = store.record_artifact(&other).await.unwrap_err();
    let StoreError::Conflict(what) = &err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert!(what.contains("anvil/1.5.1"), "{what}");
    assert!(
        what.contains(&sha('a')),
        "names the recorded sha256: {what}"
    );
    assert_eq!(
        store.get_artifact("anvil", "1.5.1").await.unwrap(),
        Some(first),
        "immutable"
    );
    assert_eq!(artifact_events(store).await.len(), 1);

    // Another version of the same name is a different artifact.
    let next = artifact("anvil", "1.7.1", &sha('f'), T0.plus_secs(61));
    assert!(store.record_artifact(&next).await.unwrap().created());
}

async fn concurrent_records_have_one_winner(db: &Harness) {
    db.migrated().await;
    // Independent pools, so the writes really race on the database.
    let mut stores: Vec<Arc<dyn Store>> = vec![db.store.clone()];
    for _ in 0..3 {
        stores.push(db.reopen().await);
    }
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = stores[i % stores.len()].clone();
        // Two thirds push content `a`, one third content `b`.
        let content = if i % 3 == 2 { sha('b') } else { sha('a') };
        let a = artifact("anvil", "1.5.1", &content, T0.plus_millis(i as i64));
        tasks.push(tokio::spawn(async move {
            (a.sha256.clone(), store.record_artifact(&a).await)
        }));
    }
    let mut created = Vec::new();
    let mut existing = 0;
    let mut conflicts = 0;
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    for (content, result) in &results {
        match result {
            Ok(RecordOutcome::Created(r)) => created.push(r.clone()),
            Ok(RecordOutcome::Existing(r)) => {
                assert_eq!(&r.sha256, content);
                existing += 1;
            }
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one push creates");
    let winner = &created[0];
    // Every push of the winner's content was idempotent, every other refused.
    let same = results.iter().filter(|(c, _)| c == &winner.sha256).count();
    assert_eq!(existing, same - 1);
    assert_eq!(conflicts, results.len() - same);
    let store = &*db.store;
    assert_eq!(
        store.get_artifact("anvil", "1.5.1").await.unwrap().as_ref(),
        Some(winner)
    );
    assert_eq!(artifact_events(store).await.len(), 1);
}

async fn shared_objects_are_reported_in_use(db: &Harness) {
    let store = db.migrated().await;
    let key = format!("blobs/sha256/{}", sha('d'));
    assert!(!store.artifact_object_in_use(&key).await.unwrap());
    // Two names, one content: one object.
    store
        .record_artifact(&artifact("gaiad", "25.3.2", &sha('d'), T0))
        .await
        .unwrap();
    store
        .record_artifact(&artifact("gaiad-copy", "25.3.2", &sha('d'), T0))
        .await
        .unwrap();
    assert!(store.artifact_object_in_use(&key).await.unwrap());
    assert!(!store
        .artifact_object_in_use(&format!("blobs/sha256/{}", sha('e')))
        .await
        .unwrap());
}

async fn garbage_artifact_rows_are_corrupt_not_panics(db: &Harness) {
    let store = db.migrated().await;
    let s = sha('a');
    // A negative size cannot even be stored (CHECK constraint); an id that
    // is not a UUID can, and must read as corrupt.
    db.exec(&format!(
        "INSERT INTO artifacts (name, version, sha256, size, object_key, content_type, created_at, created_by) \
         VALUES ('bad', '2', '{s}', 1, 'k', 'application/octet-stream', 0, 'not-a-uuid')"
    ))
    .await;
    assert!(matches!(
        store.get_artifact("bad", "2").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.list_artifacts().await,
        Err(StoreError::Corrupt(_))
    ));
}

conformance!(
    record_get_list_and_announce,
    same_content_again_is_idempotent,
    other_content_under_a_taken_version_conflicts,
    concurrent_records_have_one_winner,
    shared_objects_are_reported_in_use,
    garbage_artifact_rows_are_corrupt_not_panics,
);
