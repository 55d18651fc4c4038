//! Node store conformance: the same bodies on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use hood_domain::identity::Organization;
use hood_domain::label::Labels;
use hood_domain::lifecycle::WorkflowState;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::{Node, NodeKeyMaterial};
use hood_domain::{HostId, NodeId, OrgId, Timestamp};
use hood_store::node::NodeChange;
use hood_store::workflow::NewWorkflow;
use hood_store::{Store, StoreError};
use serde_json::json;
use support::Harness;
use uuid::Uuid;

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn org(store: &dyn Store, slug: &str) -> Organization {
    let o = Organization {
        id: OrgId::from_uuid(Uuid::now_v7()),
        slug: slug.into(),
        name: slug.into(),
        created_at: T0,
    };
    store.create_org(&o).await.unwrap();
    o
}

fn node(org: &Organization, name: &str) -> Node {
    Node {
        id: NodeId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: name.into(),
        chain: "ethereum-anvil".into(),
        node_type: "dev".into(),
        provider: "local".into(),
        region: "local".into(),
        state: NodeState::Provisioning,
        sync_status: SyncStatus::Unknown,
        app_health: ApplicationHealth::Unknown,
        host_id: None,
        rpc_endpoint: None,
        head_height: None,
        binary_version: None,
        failure_reason: None,
        version: 0,
        created_at: T0,
        updated_at: T0,
    }
}

async fn nodes_create_get_list_and_scope(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let a = node(&acme, "alpha");
    store.create_node(&a).await.unwrap();
    store.create_node(&node(&globex, "alpha")).await.unwrap();
    assert!(matches!(
        store.create_node(&node(&acme, "alpha")).await,
        Err(StoreError::Conflict(f)) if f == "name"
    ));
    assert_eq!(
        store.get_node(Some(acme.id), a.id).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.get_node(Some(globex.id), a.id).await.unwrap(),
        None,
        "other org sees nothing"
    );
    assert_eq!(store.get_node(None, a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.list_nodes(Some(acme.id)).await.unwrap(),
        vec![a.clone()]
    );
    assert_eq!(store.list_nodes(None).await.unwrap().len(), 2);

    let mut running = node(&acme, "beta");
    running.state = NodeState::Healthy;
    assert!(matches!(
        store.create_node(&running).await,
        Err(StoreError::InvalidTransition(_))
    ));
    let events = store.list_node_events(a.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "created");
}

async fn node_updates_are_versioned_and_checked(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = node(&acme, "alpha");
    store.create_node(&n).await.unwrap();
    let host = HostId::from_uuid(Uuid::now_v7());
    let placed = store
        .update_node(
            n.id,
            0,
            &NodeChange {
                host_id: Some(Some(host)),
                rpc_endpoint: Some(Some("http://127.0.0.1:1234".into())),
                message: "placed on host".into(),
                ..Default::default()
            },
            T0.plus_secs(1),
        )
        .await
        .unwrap();
    assert_eq!(placed.version, 1);
    assert_eq!(placed.host_id, Some(host));
    assert_eq!(placed.state, NodeState::Provisioning);

    // A writer that read version 0 lost the race.
    assert!(matches!(
        store
            .update_node(n.id, 0, &NodeChange { state: Some(NodeState::Syncing), ..Default::default() }, T0)
            .await,
        Err(StoreError::Conflict(f)) if f == "version"
    ));
    // The machine refuses provisioning -> down.
    assert!(matches!(
        store
            .update_node(
                n.id,
                1,
                &NodeChange {
                    state: Some(NodeState::Down),
                    ..Default::default()
                },
                T0
            )
            .await,
        Err(StoreError::InvalidTransition(_))
    ));
    let healthy = store
        .update_node(
            n.id,
            1,
            &NodeChange {
                state: Some(NodeState::Healthy),
                sync_status: Some(SyncStatus::Synced),
                message: "synced".into(),
                ..Default::default()
            },
            T0.plus_secs(2),
        )
        .await
        .unwrap();
    assert_eq!(healthy.state, NodeState::Healthy);
    assert_eq!(healthy.version, 2);
    assert_eq!(store.get_node(None, n.id).await.unwrap(), Some(healthy));

    let events = store.list_node_events(n.id, 0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "updated", "state_changed"]);
    assert_eq!(events[2].from_state, Some(NodeState::Provisioning));
    assert_eq!(events[2].to_state, Some(NodeState::Healthy));
    assert_eq!(
        store
            .list_node_events(n.id, events[1].seq, 100)
            .await
            .unwrap()
            .len(),
        1
    );

    let subjects: Vec<String> = store
        .outbox_pending(100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.subject)
        .filter(|s| s.starts_with("node."))
        .collect();
    assert_eq!(
        subjects,
        ["node.created", "node.state_changed"],
        "one outbox event per transition"
    );
    assert!(matches!(
        store
            .update_node(
                NodeId::from_uuid(Uuid::now_v7()),
                0,
                &NodeChange::default(),
                T0
            )
            .await,
        Err(StoreError::NotFound("node"))
    ));
}

async fn concurrent_updates_of_one_version_have_one_winner(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = node(&acme, "alpha");
    store.create_node(&n).await.unwrap();
    let mut tasks = vec![];
    for i in 0..8 {
        let s = db.reopen().await;
        tasks.push(tokio::spawn(async move {
            s.update_node(
                n.id,
                0,
                &NodeChange {
                    head_height: Some(Some(i)),
                    message: format!("writer {i}"),
                    ..Default::default()
                },
                T0,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one writer of version 0 wins");
    assert_eq!(
        store.get_node(None, n.id).await.unwrap().unwrap().version,
        1
    );
}

async fn node_keys_are_stored_once_and_wiped(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = node(&acme, "alpha");
    store.create_node(&n).await.unwrap();
    let keys = NodeKeyMaterial {
        node_id: n.id,
        kind: "p2p_nodekey".into(),
        sealed_data_key: vec![1, 2, 3],
        ciphertext: vec![4, 5, 6, 7],
        fingerprint: "ab".repeat(32),
        created_at: T0,
    };
    store.put_node_keys(&keys).await.unwrap();
    store.put_node_keys(&keys).await.unwrap();
    let other = NodeKeyMaterial {
        fingerprint: "cd".repeat(32),
        ..keys.clone()
    };
    assert!(matches!(
        store.put_node_keys(&other).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_node_keys(n.id).await.unwrap(), Some(keys));
    store.wipe_node_keys(n.id).await.unwrap();
    store.wipe_node_keys(n.id).await.unwrap();
    assert_eq!(store.get_node_keys(n.id).await.unwrap(), None);
}

async fn labels_are_replaced_whole_and_read_per_org(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let globex = org(store, "globex").await;
    let (a, b, g) = (node(&acme, "a"), node(&acme, "b"), node(&globex, "g"));
    for n in [&a, &b, &g] {
        store.create_node(n).await.unwrap();
    }
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert!(store.node_labels(a.id).await.unwrap().is_empty());
    store
        .set_node_labels(a.id, &labels(&[("region", "eu"), ("tier", "canary")]))
        .await
        .unwrap();
    // A second set replaces: `tier` is gone, `env` is new.
    let now = labels(&[("region", "us"), ("env", "prod")]);
    store.set_node_labels(a.id, &now).await.unwrap();
    assert_eq!(store.node_labels(a.id).await.unwrap(), now);
    store
        .set_node_labels(g.id, &labels(&[("region", "eu")]))
        .await
        .unwrap();
    let acme_labels = store.labels_by_node(Some(acme.id)).await.unwrap();
    assert_eq!(acme_labels.len(), 1, "b has none, g is globex's");
    assert_eq!(acme_labels[&a.id], now);
    assert_eq!(store.labels_by_node(None).await.unwrap().len(), 2);
    store.set_node_labels(a.id, &Labels::new()).await.unwrap();
    assert!(store.node_labels(a.id).await.unwrap().is_empty());
    // Labels of a node that does not exist are refused, not stored.
    let ghost = NodeId::from_uuid(Uuid::now_v7());
    assert!(store.set_node_labels(ghost, &now).await.is_err());
    assert!(store.node_labels(ghost).await.unwrap().is_empty());
}

fn provision(n: &Node) -> NewWorkflow {
    NewWorkflow {
        id: format!("provision-node-{}", n.id),
        name: "provision-node".into(),
        version: 1,
        input: json!({ "node_id": n.id }),
        parent_id: None,
        created_at: T0,
    }
}

/// Subjects of the pending outbox events about nodes, oldest first.
async fn node_subjects(store: &dyn Store) -> Vec<String> {
    store
        .outbox_pending(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.subject)
        .filter(|s| s.starts_with("node."))
        .collect()
}

async fn a_node_and_its_workflow_are_created_together(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let n = node(&acme, "alpha");
    let wf = provision(&n);
    let run = store.create_node_with_workflow(&n, &wf).await.unwrap();

    assert_eq!(
        (run.id.as_str(), run.name.as_str(), run.version),
        (wf.id.as_str(), "provision-node", 1)
    );
    assert_eq!(run.state, WorkflowState::Pending);
    assert_eq!(run.input, wf.input);
    assert_eq!(
        run.next_run_at,
        Some(T0),
        "due at once, as create_workflow makes it"
    );
    assert_eq!(store.get_workflow(&wf.id).await.unwrap(), Some(run.clone()));
    assert_eq!(
        store.get_node(Some(acme.id), n.id).await.unwrap(),
        Some(n.clone())
    );
    let history = store.list_node_events(n.id, 0, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, "created");
    assert_eq!(node_subjects(store).await, ["node.created"]);

    // The same run as create_workflow would have stored: asking it for the
    // same id now finds this one.
    let (again, created) = store.create_workflow(&wf).await.unwrap();
    assert!(!created);
    assert_eq!(again, run);
}

async fn a_node_name_conflict_stores_no_workflow(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let first = node(&acme, "alpha");
    store.create_node(&first).await.unwrap();

    let second = node(&acme, "alpha");
    let wf = provision(&second);
    assert!(matches!(
        store.create_node_with_workflow(&second, &wf).await,
        Err(StoreError::Conflict(f)) if f == "name"
    ));
    assert_eq!(store.get_workflow(&wf.id).await.unwrap(), None);
    assert_eq!(store.get_node(None, second.id).await.unwrap(), None);
    assert_eq!(
        node_subjects(store).await,
        ["node.created"],
        "the first node's only"
    );

    let stranger = node(
        &Organization {
            id: OrgId::from_uuid(Uuid::now_v7()),
            slug: "nobody".into(),
            name: "nobody".into(),
            created_at: T0,
        },
        "alpha",
    );
    let wf = provision(&stranger);
    assert!(matches!(
        store.create_node_with_workflow(&stranger, &wf).await,
        Err(StoreError::NotFound("org"))
    ));
    assert_eq!(store.get_workflow(&wf.id).await.unwrap(), None);

    let mut running = node(&acme, "beta");
    running.state = NodeState::Healthy;
    let wf = provision(&running);
    assert!(matches!(
        store.create_node_with_workflow(&running, &wf).await,
        Err(StoreError::InvalidTransition(_))
    ));
    assert_eq!(store.get_workflow(&wf.id).await.unwrap(), None);
    assert_eq!(store.list_nodes(Some(acme.id)).await.unwrap(), vec![first]);
}

async fn a_workflow_conflict_stores_no_node(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;

    // A run with that id exists already (even of the same definition).
    let n = node(&acme, "alpha");
    let wf = provision(&n);
    let (existing, _) = store.create_workflow(&wf).await.unwrap();
    assert!(matches!(
        store.create_node_with_workflow(&n, &wf).await,
        Err(StoreError::Conflict(f)) if f == "workflow id"
    ));
    assert_eq!(store.get_node(None, n.id).await.unwrap(), None);
    assert_eq!(store.list_node_events(n.id, 0, 10).await.unwrap(), vec![]);
    assert_eq!(store.get_workflow(&wf.id).await.unwrap(), Some(existing));

    // The workflow insert itself fails (its parent does not exist), after
    // the node's rows were written in the same transaction.
    let orphan = NewWorkflow {
        parent_id: Some("no-such-parent".into()),
        ..provision(&n)
    };
    let orphan = NewWorkflow {
        id: format!("{}-child", orphan.id),
        ..orphan
    };
    assert!(matches!(
        store.create_node_with_workflow(&n, &orphan).await,
        Err(StoreError::NotFound("parent workflow"))
    ));
    assert_eq!(store.get_node(None, n.id).await.unwrap(), None);
    assert_eq!(store.get_workflow(&orphan.id).await.unwrap(), None);
    assert_eq!(
        node_subjects(store).await,
        Vec::<String>::new(),
        "no node.created"
    );

    // Nothing was left behind that blocks a clean retry under a fresh id.
    let retry = NewWorkflow {
        id: format!("{}-retry", wf.id),
        ..wf
    };
    store.create_node_with_workflow(&n, &retry).await.unwrap();
    assert!(store.get_node(None, n.id).await.unwrap().is_some());
}

async fn racing_node_creations_store_one_node_and_one_workflow(db: &Harness) {
    let store = db.migrated().await;
    let acme = org(store, "acme").await;
    let mut tasks = vec![];
    for _ in 0..6 {
        let s = db.reopen().await;
        let n = node(&acme, "alpha");
        tasks.push(tokio::spawn(async move {
            let wf = provision(&n);
            s.create_node_with_workflow(&n, &wf).await
        }));
    }
    let mut winners = vec![];
    for t in tasks {
        match t.await.unwrap() {
            Ok(run) => winners.push(run),
            Err(StoreError::Conflict(f)) if f == "name" => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "one node of that name");
    let runs = store
        .list_workflows(&hood_store::workflow::WorkflowFilter::default())
        .await
        .unwrap();
    assert_eq!(runs, winners, "and only its workflow");
    assert_eq!(store.list_nodes(Some(acme.id)).await.unwrap().len(), 1);
}

conformance!(
    nodes_create_get_list_and_scope,
    node_updates_are_versioned_and_checked,
    concurrent_updates_of_one_version_have_one_winner,
    node_keys_are_stored_once_and_wiped,
    labels_are_replaced_whole_and_read_per_org,
    a_node_and_its_workflow_are_created_together,
    a_node_name_conflict_stores_no_workflow,
    a_workflow_conflict_stores_no_node,
    racing_node_creations_store_one_node_and_one_workflow,
);
