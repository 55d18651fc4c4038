//! Node snapshot store conformance: the same bodies on SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::lifecycle::NodeState;
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::{NodeId, Timestamp};
use hood_store::{Store, StoreError};
use support::Harness;

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn nodes(store: &dyn Store, n: usize) -> Vec<NodeId> {
    support::anvil_nodes(store, n, T0).await
}

fn snapshot(node: NodeId, name: &str, reason: &str, at_s: i64) -> NodeSnapshot {
    NodeSnapshot {
        node_id: node,
        name: name.into(),
        state: SnapshotState::Uploading,
        reason: reason.into(),
        head_height: Some(100 + at_s),
        files: 0,
        raw_bytes: 0,
        compressed_bytes: 0,
        chunks_total: 0,
        chunks_done: 0,
        error: None,
        created_at: T0.plus_secs(at_s),
        completed_at: None,
    }
}

fn complete(mut s: NodeSnapshot) -> NodeSnapshot {
    s.state = SnapshotState::Complete;
    s.files = 3;
    s.raw_bytes = 1_000;
    s.compressed_bytes = 400;
    s.chunks_total = 2;
    s.chunks_done = 2;
    s.completed_at = Some(s.created_at.plus_secs(1));
    s
}

async fn a_snapshot_goes_from_uploading_to_complete(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 2).await;
    let s = snapshot(n[0], "s1", "manual", 1);
    assert!(store.create_snapshot(&s).await.unwrap());
    assert!(
        !store.create_snapshot(&s).await.unwrap(),
        "a replay finds it"
    );
    assert_eq!(
        store.get_snapshot(n[0], "s1").await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.get_snapshot(n[1], "s1").await.unwrap(), None);
    assert_eq!(store.latest_complete_snapshot(n[0]).await.unwrap(), None);

    store.record_snapshot_progress(n[0], "s1", 1).await.unwrap();
    store.record_snapshot_progress(n[0], "s1", 0).await.unwrap();
    assert_eq!(
        store
            .get_snapshot(n[0], "s1")
            .await
            .unwrap()
            .unwrap()
            .chunks_done,
        1,
        "progress never goes back"
    );
    let done = complete(s);
    store.update_snapshot(&done).await.unwrap();
    assert_eq!(
        store.latest_complete_snapshot(n[0]).await.unwrap(),
        Some(done.clone())
    );
    let newer = snapshot(n[0], "s2", "manual", 5);
    store.create_snapshot(&newer).await.unwrap();
    assert_eq!(
        store.latest_complete_snapshot(n[0]).await.unwrap(),
        Some(done.clone()),
        "an upload in progress is not restorable"
    );
    let names: Vec<String> = store
        .list_snapshots(n[0])
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["s2", "s1"], "newest first");

    let ghost = snapshot(n[1], "nope", "manual", 1);
    assert!(matches!(
        store.update_snapshot(&ghost).await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_snapshot(n[0], "s1").await.unwrap();
    assert_eq!(store.get_snapshot(n[0], "s1").await.unwrap(), None);
    assert_eq!(store.latest_complete_snapshot(n[0]).await.unwrap(), None);
}

async fn retention_keeps_the_newest_of_each_node(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 2).await;
    for (node, i) in [(n[0], 1), (n[0], 2), (n[0], 3), (n[1], 1)] {
        let s = complete(snapshot(node, &format!("b{i}"), "scheduled", i));
        store.create_snapshot(&s).await.unwrap();
        store.update_snapshot(&s).await.unwrap();
    }
    // Manual snapshots are not the schedule's to delete.
    let manual = complete(snapshot(n[0], "m", "manual", 0));
    store.create_snapshot(&manual).await.unwrap();
    store.update_snapshot(&manual).await.unwrap();
    let mut failed = snapshot(n[1], "f", "scheduled", 0);
    failed.state = SnapshotState::Failed;
    store.create_snapshot(&failed).await.unwrap();

    let expired = |v: Vec<NodeSnapshot>| -> Vec<(NodeId, String)> {
        v.into_iter().map(|s| (s.node_id, s.name)).collect()
    };
    let got = expired(
        store
            .expired_snapshots("scheduled", 2, T0.plus_secs(10))
            .await
            .unwrap(),
    );
    let mut want = vec![(n[0], "b1".to_string()), (n[1], "f".to_string())];
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want);
    let got = expired(store.expired_snapshots("scheduled", 1, T0).await.unwrap());
    assert_eq!(
        got,
        [(n[0], "b1".to_string()), (n[0], "b2".to_string())],
        "a failed snapshot younger than the cut is kept"
    );
}

async fn the_schedule_finds_healthy_nodes_without_its_snapshot(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 3).await;
    let healthy = hood_store::node::NodeChange {
        state: Some(NodeState::Healthy),
        message: "test".into(),
        ..Default::default()
    };
    store.update_node(n[0], 0, &healthy, T0).await.unwrap();
    store.update_node(n[1], 0, &healthy, T0).await.unwrap();
    // n[2] is still provisioning: not backed up.
    store
        .create_snapshot(&snapshot(n[1], "scheduled-1", "scheduled", 1))
        .await
        .unwrap();
    let due = store
        .healthy_nodes_without_snapshot("scheduled-1")
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, n[0]);
    let node = store.get_node(None, n[0]).await.unwrap().unwrap();
    assert_eq!(due[0].0, node.org_id);
    let mut all: Vec<NodeId> = store
        .healthy_nodes_without_snapshot("scheduled-2")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    all.sort_by_key(ToString::to_string);
    let mut want = vec![n[0], n[1]];
    want.sort_by_key(ToString::to_string);
    assert_eq!(all, want);
}

conformance!(
    a_snapshot_goes_from_uploading_to_complete,
    retention_keeps_the_newest_of_each_node,
    the_schedule_finds_healthy_nodes_without_its_snapshot,
);
