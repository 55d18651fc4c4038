//! The node use cases on a real store, SQLite and PostgreSQL: what a
//! request writes, in one transaction, and what it refuses early.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use hood_app::{AppError, CreateNode, NodeService};
use hood_chains::ChainCatalog;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{NodeState, WorkflowState};
use hood_domain::node::Node;
use hood_domain::node_workflows::{provision_id, terminate_id, PROVISION_NODE, TERMINATE_NODE};
use hood_domain::{OrgId, Timestamp};
use hood_ports::{NodeOperations, PortError};
use hood_store::artifact::ArtifactRecord;
use hood_store::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The orchestrator's side as the use cases see it: which providers exist,
/// and how often workers were woken.
#[derive(Default)]
struct Orchestrator {
    wakes: AtomicUsize,
}

#[async_trait]
impl NodeOperations for Orchestrator {
    fn providers(&self) -> Vec<String> {
        vec!["local".into()]
    }
    fn workflows_due(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
    async fn retry_workflow(&self, _: &str) -> Result<(), PortError> {
        Err(PortError::Conflict("not stuck".into()))
    }
    async fn abandon_workflow(&self, _: &str, _: &str) -> Result<(), PortError> {
        Err(PortError::Conflict("not stuck".into()))
    }
    async fn node_logs(&self, _: &Node, _: u32) -> Result<serde_json::Value, PortError> {
        Err(PortError::Unavailable("no agent".into()))
    }
    async fn delete_snapshot(&self, _: hood_domain::NodeId, _: &str) -> Result<(), PortError> {
        Err(PortError::Unavailable("no object store".into()))
    }
}

struct Env {
    store: Arc<dyn Store>,
    service: NodeService,
    orchestrator: Arc<Orchestrator>,
    org: OrgId,
    _guard: Box<dyn std::any::Any>,
}

async fn env_on(store: Arc<dyn Store>, guard: Box<dyn std::any::Any>) -> Env {
    store.migrate().await.unwrap();
    let now = Timestamp(1_760_000_000_000);
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: now,
    };
    store.create_org(&org).await.unwrap();
    let orchestrator = Arc::new(Orchestrator::default());
    let service = NodeService::new(
        store.clone(),
        store.clone(),
        store.clone(),
        Arc::new(ChainCatalog::builtin().unwrap()),
    )
    .with_operations(orchestrator.clone());
    Env {
        store,
        service,
        orchestrator,
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

/// Records anvil 1.5.1 as the built-in `ethereum-anvil` profile pins it.
async fn push_anvil(store: &dyn Store) {
    store
        .record_artifact(&ArtifactRecord {
            name: "anvil-linux-amd64".into(),
            version: "1.5.1".into(),
            sha256: "a".repeat(64),
            size: 1,
            object_key: format!("blobs/sha256/{}", "a".repeat(64)),
            content_type: "application/octet-stream".into(),
            created_at: Timestamp(1),
            created_by: None,
        })
        .await
        .unwrap();
}

fn anvil(name: &str) -> CreateNode {
    CreateNode {
        chain: "ethereum-anvil".into(),
        name: Some(name.into()),
        ..CreateNode::default()
    }
}

async fn node_and_workflow_commit_together(env: Env) {
    push_anvil(env.store.as_ref()).await;
    let accepted = env.service.create(env.org, anvil("n1")).await.unwrap();
    assert_eq!(accepted.node.state, NodeState::Provisioning);
    assert_eq!(accepted.workflow_id, provision_id(accepted.node.id));

    // Both rows exist, and the run is the provisioning one, due now.
    let stored = env
        .store
        .get_node(Some(env.org), accepted.node.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "n1");
    let run = env
        .store
        .get_workflow(&accepted.workflow_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.name.as_str(), run.version),
        (PROVISION_NODE.0, PROVISION_NODE.1)
    );
    assert_eq!(run.state, WorkflowState::Pending);
    assert_eq!(run.input["node_id"], accepted.node.id.to_string());
    assert_eq!(env.orchestrator.wakes.load(Ordering::SeqCst), 1);

    // A second node of the same name: refused, and no workflow is left
    // behind for it.
    let before = env.store.list_workflows(&Default::default()).await.unwrap();
    let err = env.service.create(env.org, anvil("n1")).await.unwrap_err();
    assert!(
        matches!(err, AppError::Store(hood_store::StoreError::Conflict(_))),
        "{err:?}"
    );
    let after = env.store.list_workflows(&Default::default()).await.unwrap();
    assert_eq!(before.len(), after.len());
    assert_eq!(env.store.list_nodes(Some(env.org)).await.unwrap().len(), 1);
}

async fn refuses_early_what_it_can_know(env: Env) {
    // Without the pinned binary in the artifact store: 409 naming the
    // command that fixes it, and nothing stored.
    let err = env.service.create(env.org, anvil("n1")).await.unwrap_err();
    let AppError::Conflict(message) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert!(message.contains("anvil-linux-amd64 1.5.1"), "{message}");
    assert!(
        message.contains("hood artifact import-anvil --version 1.5.1"),
        "{message}"
    );
    assert!(env.store.list_nodes(None).await.unwrap().is_empty());

    // Bad fields are named, all at once.
    let err = env
        .service
        .create(
            env.org,
            CreateNode {
                chain: "ethereum-anvil".into(),
                node_type: Some("archive-xl".into()),
                name: Some("Not A Slug".into()),
                provider: Some("hetzner".into()),
                region: None,
                from_snapshot: None,
                labels: [("Bad Key".to_owned(), "v".to_owned())].into(),
            },
        )
        .await
        .unwrap_err();
    let AppError::Invalid(fields) = err else {
        panic!("expected invalid fields, got {err:?}");
    };
    let mut names: Vec<&str> = fields.iter().map(|f| f.field).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, ["labels", "name", "node_type", "provider"]);
    let err = env
        .service
        .create(
            env.org,
            CreateNode {
                chain: "dogecoin".into(),
                ..CreateNode::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Invalid(ref f) if f[0].field == "chain"),
        "{err:?}"
    );
    assert!(env
        .store
        .list_workflows(&Default::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(env.orchestrator.wakes.load(Ordering::SeqCst), 0);
}

async fn terminate_is_idempotent_and_aborts_provisioning(env: Env) {
    push_anvil(env.store.as_ref()).await;
    let node = env.service.create(env.org, anvil("n1")).await.unwrap().node;
    let first = env.service.terminate(env.org, node.id).await.unwrap();
    let again = env.service.terminate(env.org, node.id).await.unwrap();
    assert_eq!(first.workflow_id, terminate_id(node.id));
    assert_eq!(again.workflow_id, first.workflow_id);
    let run = env
        .store
        .get_workflow(&first.workflow_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.name, TERMINATE_NODE.0);
    // The provisioning run was told to stop (one abort per request).
    let signals = env
        .store
        .pending_signals(&provision_id(node.id))
        .await
        .unwrap();
    assert_eq!(signals.len(), 2);
    assert!(signals.iter().all(|s| s.name == "abort"));

    // Another organization's node does not exist for this one.
    let stranger = OrgId::from_uuid(uuid::Uuid::now_v7());
    assert!(matches!(
        env.service.terminate(stranger, node.id).await,
        Err(AppError::NotFound("node"))
    ));
    assert!(matches!(
        env.service.events(env.org, node.id, 0, 0).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(
        env.service.events(env.org, node.id, 0, 10).await.unwrap()[0].kind,
        "created"
    );
    // Logs of a node with no host: a state conflict, not a call to the agent.
    assert!(matches!(
        env.service.logs(env.org, node.id, 10).await,
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
    node_and_workflow_commit_together,
    refuses_early_what_it_can_know,
    terminate_is_idempotent_and_aborts_provisioning,
);
