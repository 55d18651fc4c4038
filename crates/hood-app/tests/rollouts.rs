//! The rollout use cases on a real store, SQLite and PostgreSQL: which
//! nodes a rollout targets and in which batches, what it refuses before
//! storing anything, and how operators move it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_app::{AppError, CreateRollout, RolloutService};
use hood_chains::ChainCatalog;
use hood_domain::identity::Organization;
use hood_domain::label::Labels;
use hood_domain::lifecycle::rollout::RolloutState;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::node_workflows::{rollout_workflow_id, ROLLOUT};
use hood_domain::rollout::{PinnedBinary, RolloutKind};
use hood_domain::{NodeId, OrgId, Timestamp};
use hood_store::artifact::ArtifactRecord;
use hood_store::node::NodeChange;
use hood_store::Store;
use std::sync::Arc;

const T0: Timestamp = Timestamp(1_760_000_000_000);
const UPGRADE: &str = "anvil-1.5.1-to-1.7.1";

struct Env {
    store: Arc<dyn Store>,
    service: RolloutService,
    org: OrgId,
    _guard: Box<dyn std::any::Any>,
}

async fn env_on(store: Arc<dyn Store>, guard: Box<dyn std::any::Any>) -> Env {
    store.migrate().await.unwrap();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: T0,
    };
    store.create_org(&org).await.unwrap();
    let service = RolloutService::new(
        store.clone(),
        store.clone(),
        store.clone(),
        store.clone(),
        Arc::new(ChainCatalog::builtin().unwrap()),
    );
    Env {
        store,
        service,
        org: org.id,
        _guard: guard,
    }
}

async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = hood_store::connect(&hood_testkit::sqlite_url(&dir))
        .await
        .unwrap();
    env_on(store, Box::new(dir)).await
}

async fn postgres(test: &str) -> Option<Env> {
    let db = hood_testkit::PgDatabase::create(test).await?;
    let store = hood_store::connect(&db.url).await.unwrap();
    Some(env_on(store, Box::new(db)).await)
}

async fn artifact(store: &dyn Store, version: &str) {
    store
        .record_artifact(&ArtifactRecord {
            name: "anvil-linux-amd64".into(),
            version: version.into(),
            sha256: "b".repeat(64),
            size: 1,
            object_key: format!("blobs/sha256/{}", "b".repeat(64)),
            content_type: "application/octet-stream".into(),
            created_at: T0,
            created_by: None,
        })
        .await
        .unwrap();
}

/// An anvil node in `state` (through the node machine from provisioning).
async fn node(env: &Env, name: &str, state: NodeState) -> NodeId {
    let n = Node {
        id: NodeId::from_uuid(uuid::Uuid::now_v7()),
        org_id: env.org,
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
        binary_version: Some("1.5.1".into()),
        failure_reason: None,
        version: 0,
        created_at: T0,
        updated_at: T0,
    };
    env.store.create_node(&n).await.unwrap();
    // A node reaches any serving state through healthy.
    let path: &[NodeState] = match state {
        NodeState::Provisioning => &[],
        NodeState::Healthy => &[NodeState::Healthy],
        _ => &[NodeState::Healthy, state],
    };
    for (version, to) in path.iter().enumerate() {
        let change = NodeChange {
            state: Some(*to),
            message: "test".into(),
            ..Default::default()
        };
        env.store
            .update_node(n.id, version as i64, &change, T0)
            .await
            .unwrap();
    }
    n.id
}

fn by_manifest() -> CreateRollout {
    CreateRollout {
        chain: "ethereum-anvil".into(),
        upgrade_id: Some(UPGRADE.into()),
        canary: Some(1),
        batch_size: Some(2),
        ..CreateRollout::default()
    }
}

fn invalid_field(r: Result<impl std::fmt::Debug, AppError>) -> String {
    match r {
        Err(AppError::Invalid(f)) => f[0].field.to_string(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

async fn targets_and_batches_are_planned_and_refusals_store_nothing(env: Env) {
    let mut serving = vec![];
    for i in 0..4 {
        serving.push(node(&env, &format!("s{i}"), NodeState::Healthy).await);
    }
    node(&env, "young", NodeState::Provisioning).await;
    let upgraded = node(&env, "done", NodeState::Healthy).await;
    env.store
        .pin_node_binary(
            upgraded,
            &PinnedBinary {
                binary: "anvil".into(),
                artifact: "anvil-linux-amd64".into(),
                version: "1.7.1".into(),
            },
            T0,
        )
        .await
        .unwrap();
    // The target is not in the artifact store: refused, with the command.
    match env.service.create(by_manifest(), "test").await {
        Err(AppError::Conflict(m)) => assert!(m.contains("import-anvil --version 1.7.1"), "{m}"),
        other => panic!("{other:?}"),
    }
    artifact(env.store.as_ref(), "1.7.1").await;
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        upgrade_id: Some("anvil-9-to-10".into()),
                        ..by_manifest()
                    },
                    "test"
                )
                .await
        ),
        "upgrade_id"
    );
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        batch_percent: Some(50),
                        ..by_manifest()
                    },
                    "test"
                )
                .await
        ),
        "batch_percent"
    );
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        canary: Some(3),
                        max_unavailable: Some(2),
                        ..by_manifest()
                    },
                    "test"
                )
                .await
        ),
        "canary"
    );
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        chain: "ethereum-anvil".into(),
                        version: Some("1.5.1".into()),
                        ..CreateRollout::default()
                    },
                    "test"
                )
                .await
        ),
        "version"
    );
    assert!(
        env.service.list(10).await.unwrap().is_empty(),
        "nothing stored"
    );

    let d = env.service.create(by_manifest(), "user x").await.unwrap();
    assert_eq!(d.rollout.state, RolloutState::Pending);
    assert_eq!(d.rollout.target.version, "1.7.1");
    assert!(
        !d.rollout.target.forward_only,
        "the manifest says compatible"
    );
    let mut sorted = serving.clone();
    sorted.sort();
    let planned: Vec<(u32, NodeId)> = d.nodes.iter().map(|n| (n.batch, n.node_id)).collect();
    assert_eq!(
        planned,
        [
            (0, sorted[0]),
            (1, sorted[1]),
            (1, sorted[2]),
            (2, sorted[3])
        ],
        "serving nodes on 1.5.1 only, a canary then batches of two"
    );
    assert!(
        env.store
            .get_workflow(&rollout_workflow_id(d.rollout.id))
            .await
            .unwrap()
            .is_none(),
        "not started"
    );
    // A node is in one live rollout at a time.
    match env.service.create(by_manifest(), "user x").await {
        Err(AppError::Conflict(m)) => assert!(m.contains("has not finished"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Only given nodes; one that is not a target is named.
    env.service.abort(d.rollout.id).await.unwrap();
    let only = env
        .service
        .create(
            CreateRollout {
                nodes: vec![serving[1]],
                ..by_manifest()
            },
            "user x",
        )
        .await
        .unwrap();
    assert_eq!(only.nodes.len(), 1);
    env.service.abort(only.rollout.id).await.unwrap();
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        nodes: vec![upgraded],
                        ..by_manifest()
                    },
                    "user x"
                )
                .await
        ),
        "nodes"
    );
}

async fn operators_start_pause_resume_approve_and_abort(env: Env) {
    for i in 0..3 {
        node(&env, &format!("s{i}"), NodeState::Healthy).await;
    }
    artifact(env.store.as_ref(), "1.7.1").await;
    let d = env
        .service
        .create(
            CreateRollout {
                require_approval: Some(true),
                ..by_manifest()
            },
            "user x",
        )
        .await
        .unwrap();
    let id = d.rollout.id;
    // Pausing what has not started is refused.
    assert!(matches!(
        env.service.pause(id).await,
        Err(AppError::Conflict(_))
    ));
    env.service.start(id).await.unwrap();
    env.service.start(id).await.unwrap();
    let run = env
        .store
        .get_workflow(&rollout_workflow_id(id))
        .await
        .unwrap()
        .expect("the rollout's run");
    assert_eq!((run.name.as_str(), run.version), ROLLOUT);
    // The workflow moves it to running; here the store does.
    env.store
        .set_rollout_state(
            id,
            &[RolloutState::Pending],
            RolloutState::Running,
            None,
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        env.service.pause(id).await.unwrap().rollout.state,
        RolloutState::Paused
    );
    assert_eq!(
        env.service.pause(id).await.unwrap().rollout.state,
        RolloutState::Paused
    );
    assert_eq!(
        env.service.resume(id).await.unwrap().rollout.state,
        RolloutState::Running
    );
    // The first batch after the canary is the one approved.
    assert_eq!(
        env.service
            .approve(id)
            .await
            .unwrap()
            .rollout
            .approved_through,
        1
    );
    assert_eq!(
        env.service.abort(id).await.unwrap().rollout.state,
        RolloutState::Aborted
    );
    assert!(matches!(
        env.service.resume(id).await,
        Err(AppError::Conflict(_))
    ));
    assert!(matches!(
        env.service.approve(id).await,
        Err(AppError::Conflict(_))
    ));
    assert!(matches!(
        env.service.start(id).await,
        Err(AppError::Conflict(_))
    ));
}

async fn labels(env: &Env, node: NodeId, pairs: &[(&str, &str)]) {
    let l: Labels = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.store.set_node_labels(node, &l).await.unwrap();
}

async fn a_selector_narrows_the_targets(env: Env) {
    let eu1 = node(&env, "eu1", NodeState::Healthy).await;
    let eu2 = node(&env, "eu2", NodeState::Healthy).await;
    let eu_canary = node(&env, "eu3", NodeState::Healthy).await;
    let us = node(&env, "us1", NodeState::Healthy).await;
    node(&env, "bare", NodeState::Healthy).await;
    labels(&env, eu1, &[("region", "eu")]).await;
    labels(&env, eu2, &[("region", "eu"), ("tier", "main")]).await;
    labels(&env, eu_canary, &[("region", "eu"), ("tier", "canary")]).await;
    labels(&env, us, &[("region", "us")]).await;
    artifact(env.store.as_ref(), "1.7.1").await;
    let d = env
        .service
        .create(
            CreateRollout {
                selector: Some("region=eu, tier!=canary".into()),
                ..by_manifest()
            },
            "user x",
        )
        .await
        .unwrap();
    let mut want = vec![eu1, eu2];
    want.sort();
    let mut got: Vec<NodeId> = d.nodes.iter().map(|n| n.node_id).collect();
    got.sort();
    assert_eq!(got, want, "eu nodes outside the canary tier, nothing else");
    assert_eq!(
        d.rollout.selector.as_deref(),
        Some("region=eu,tier!=canary"),
        "stored as parsed"
    );
    env.service.abort(d.rollout.id).await.unwrap();
    // A selector nothing matches plans nothing; a bad one says why.
    assert!(env
        .service
        .create(
            CreateRollout {
                selector: Some("region=ap".into()),
                ..by_manifest()
            },
            "user x",
        )
        .await
        .is_err());
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        selector: Some("region in eu".into()),
                        ..by_manifest()
                    },
                    "user x"
                )
                .await
        ),
        "selector"
    );
}

async fn a_recipe_rolls_out_to_every_serving_node(env: Env) {
    let a = node(&env, "a", NodeState::Healthy).await;
    let b = node(&env, "b", NodeState::Degraded).await;
    let pinned = node(&env, "pinned", NodeState::Healthy).await;
    node(&env, "young", NodeState::Provisioning).await;
    env.store
        .pin_node_binary(
            pinned,
            &PinnedBinary {
                binary: "anvil".into(),
                artifact: "anvil-linux-amd64".into(),
                version: "1.7.1".into(),
            },
            T0,
        )
        .await
        .unwrap();
    // No artifact needed: nothing is installed.
    let d = env
        .service
        .create(
            CreateRollout {
                chain: "ethereum-anvil".into(),
                kind: RolloutKind::Reconfigure,
                batch_size: Some(2),
                ..CreateRollout::default()
            },
            "user x",
        )
        .await
        .unwrap();
    assert_eq!(d.rollout.kind, RolloutKind::Reconfigure);
    let mut got: Vec<(NodeId, String)> = d
        .nodes
        .iter()
        .map(|n| (n.node_id, n.from_version.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        (a, "1.5.1".to_owned()),
        (b, "1.5.1".to_owned()),
        (pinned, "1.7.1".to_owned()),
    ];
    want.sort();
    assert_eq!(got, want, "every serving node, whatever its version");
    env.service.abort(d.rollout.id).await.unwrap();
    // A version with a reconfigure is a contradiction.
    assert_eq!(
        invalid_field(
            env.service
                .create(
                    CreateRollout {
                        chain: "ethereum-anvil".into(),
                        kind: RolloutKind::Reconfigure,
                        version: Some("1.7.1".into()),
                        ..CreateRollout::default()
                    },
                    "user x"
                )
                .await
        ),
        "kind"
    );
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(env) = super::postgres(concat!("app::", stringify!($name))).await {
                    super::$name(env).await;
                }
            }
        }
    )*};
}

both_backends!(
    targets_and_batches_are_planned_and_refusals_store_nothing,
    operators_start_pause_resume_approve_and_abort,
    a_selector_narrows_the_targets,
    a_recipe_rolls_out_to_every_serving_node,
);
