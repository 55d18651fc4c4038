//! Rollout store conformance: the same bodies on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::lifecycle::rollout::{RolloutNodeState, RolloutState};
use hood_domain::rollout::{
    BatchSize, PinnedBinary, Rollout, RolloutKind, RolloutNode, RolloutPolicy, SoftwareTarget,
};
use hood_domain::{NodeId, RolloutId, Timestamp};
use hood_store::{Store, StoreError};
use support::Harness;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn nodes(store: &dyn Store, n: usize) -> Vec<NodeId> {
    support::anvil_nodes(store, n, T0).await
}

fn rollout(created_at: Timestamp) -> Rollout {
    Rollout {
        id: RolloutId::from_uuid(Uuid::now_v7()),
        upgrade_id: Some("anvil-1.5.1-to-1.7.1".into()),
        kind: RolloutKind::Upgrade,
        chain: "ethereum-anvil".into(),
        node_type: Some("dev".into()),
        selector: Some("region=eu,tier!=canary".into()),
        from_version: "1.5.1".into(),
        target: SoftwareTarget {
            binary: "anvil".into(),
            artifact: "anvil-linux-amd64".into(),
            version: "1.7.1".into(),
            forward_only: true,
        },
        policy: RolloutPolicy {
            canary: 1,
            batch: BatchSize::Percent(50),
            max_unavailable: 2,
            failure_budget: 1,
            require_approval: true,
        },
        soak_s: 30,
        verify_timeout_s: 120,
        state: RolloutState::Pending,
        approved_through: 0,
        error: None,
        created_by: "user x".into(),
        created_at,
        updated_at: created_at,
    }
}

fn planned(r: &Rollout, batches: &[&[NodeId]]) -> Vec<RolloutNode> {
    let mut out = vec![];
    for (b, batch) in batches.iter().enumerate() {
        for (i, n) in batch.iter().enumerate() {
            out.push(RolloutNode {
                rollout_id: r.id,
                node_id: *n,
                batch: b as u32,
                position: i as u32,
                state: RolloutNodeState::Waiting,
                from_version: "1.5.1".into(),
                soak_until: None,
                error: None,
                updated_at: r.created_at,
            });
        }
    }
    out
}

async fn a_rollout_round_trips_with_its_batches(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 3).await;
    let r = rollout(T0);
    // Stored out of order; read back in batch order.
    let mut plan = planned(&r, &[&[n[2]], &[n[0], n[1]]]);
    plan.reverse();
    store.create_rollout(&r, &plan).await.unwrap();
    let (got, got_nodes) = store.get_rollout(r.id).await.unwrap().unwrap();
    assert_eq!(got, r);
    let order: Vec<(u32, NodeId)> = got_nodes.iter().map(|x| (x.batch, x.node_id)).collect();
    assert_eq!(order, [(0, n[2]), (1, n[0]), (1, n[1])]);
    assert_eq!(
        store
            .get_rollout(RolloutId::from_uuid(Uuid::now_v7()))
            .await
            .unwrap(),
        None
    );
    let newer = Rollout {
        kind: RolloutKind::Reconfigure,
        selector: None,
        ..rollout(Timestamp(T0.0 + 1000))
    };
    store.create_rollout(&newer, &[]).await.unwrap();
    let (got, _) = store.get_rollout(newer.id).await.unwrap().unwrap();
    assert_eq!(got, newer, "kind and selector round-trip");
    let listed: Vec<RolloutId> = store
        .list_rollouts(10)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, [newer.id, r.id], "newest first");
    // A node that does not exist stores nothing (one transaction).
    let bad = rollout(T0);
    let ghost = NodeId::from_uuid(Uuid::now_v7());
    assert!(store
        .create_rollout(&bad, &planned(&bad, &[&[n[0], ghost]]))
        .await
        .is_err());
    assert_eq!(store.get_rollout(bad.id).await.unwrap(), None);
}

async fn state_changes_follow_the_rollout_machine(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 1).await;
    let r = rollout(T0);
    store
        .create_rollout(&r, &planned(&r, &[&[n[0]]]))
        .await
        .unwrap();
    let at = Timestamp(T0.0 + 5);
    use RolloutState::*;
    // Not from where it is: nothing moves.
    assert!(!store
        .set_rollout_state(r.id, &[Running], Paused, None, at)
        .await
        .unwrap());
    assert!(store
        .set_rollout_state(r.id, &[Pending], Running, None, at)
        .await
        .unwrap());
    // A transition the machine refuses is never applied, whatever `from` says.
    assert!(!store
        .set_rollout_state(r.id, &[Running], Reverted, None, at)
        .await
        .unwrap());
    assert!(store
        .set_rollout_state(
            r.id,
            &[Running, Paused],
            Reverting,
            Some("budget spent"),
            at
        )
        .await
        .unwrap());
    // Kept when not given again.
    assert!(store
        .set_rollout_state(r.id, &[Reverting], Reverted, None, at)
        .await
        .unwrap());
    let (got, _) = store.get_rollout(r.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.error.as_deref()),
        (Reverted, Some("budget spent"))
    );
    assert_eq!(got.updated_at, at);
    assert!(!store
        .set_rollout_state(r.id, &[Reverted], Running, None, at)
        .await
        .unwrap());
    // Approvals only move forward.
    store.approve_rollout(r.id, 2, at).await.unwrap();
    store.approve_rollout(r.id, 1, at).await.unwrap();
    let (got, _) = store.get_rollout(r.id).await.unwrap().unwrap();
    assert_eq!(got.approved_through, 2);
}

async fn node_progress_and_live_rollouts(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 2).await;
    let r = rollout(T0);
    let mut plan = planned(&r, &[&[n[0]], &[n[1]]]);
    store.create_rollout(&r, &plan).await.unwrap();
    assert_eq!(store.live_rollouts_of_node(n[0]).await.unwrap(), [r.id]);
    plan[0].state = RolloutNodeState::Soaking;
    plan[0].soak_until = Some(Timestamp(T0.0 + 30_000));
    plan[0].error = Some("slow".into());
    plan[0].updated_at = Timestamp(T0.0 + 9);
    store.update_rollout_node(&plan[0]).await.unwrap();
    let (_, got) = store.get_rollout(r.id).await.unwrap().unwrap();
    assert_eq!(got[0], plan[0]);
    assert_eq!(got[1], plan[1]);
    let mut stranger = plan[1].clone();
    stranger.node_id = NodeId::from_uuid(Uuid::now_v7());
    assert!(matches!(
        store.update_rollout_node(&stranger).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_rollout_state(
            r.id,
            &[RolloutState::Pending],
            RolloutState::Aborted,
            None,
            T0,
        )
        .await
        .unwrap();
    assert!(store.live_rollouts_of_node(n[0]).await.unwrap().is_empty());
}

async fn pins_replace_each_other_per_binary(db: &Harness) {
    let store = db.migrated().await;
    let n = nodes(store, 2).await;
    assert!(store.node_binaries(n[0]).await.unwrap().is_empty());
    let pin = |v: &str| PinnedBinary {
        binary: "anvil".into(),
        artifact: "anvil-linux-amd64".into(),
        version: v.into(),
    };
    store
        .pin_node_binary(n[0], &pin("1.7.1"), T0)
        .await
        .unwrap();
    store
        .pin_node_binary(n[0], &pin("1.5.1"), T0)
        .await
        .unwrap();
    assert_eq!(store.node_binaries(n[0]).await.unwrap(), [pin("1.5.1")]);
    assert!(store.node_binaries(n[1]).await.unwrap().is_empty());
    let ghost = NodeId::from_uuid(Uuid::now_v7());
    assert!(store
        .pin_node_binary(ghost, &pin("1.7.1"), T0)
        .await
        .is_err());
}

conformance!(
    a_rollout_round_trips_with_its_batches,
    state_changes_follow_the_rollout_machine,
    node_progress_and_live_rollouts,
    pins_replace_each_other_per_binary,
);
