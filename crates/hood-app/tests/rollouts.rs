//! The rollout use cases on a real store, SQLite and PostgreSQL: which
//! nodes a rollout targets and in which batches, what it refuses before
//! storing anything, and how operators move it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_app::{AppError, CreateRollout, RolloutService};
use hood_chains::ChainCatalog;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::rollout::RolloutState;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::node_workflows::{rollout_workflow_id, ROLLOUT};
use hood_domain::rollout::PinnedBinary;
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
    if state != NodeState::Provisioning {
        let change = NodeChange {
            state: Some(state),
            message: "test".into(),
            ..Default::default()
        };
        env.store.update_node(n.id, 0, &change, T0).await.unwrap();
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
);
