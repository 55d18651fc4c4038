//! The snapshot use cases on a real store, SQLite and PostgreSQL: what a
//! request starts and refuses, and the backup schedule (one snapshot per
//! node per period whatever the passes, retention keeping the newest).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use hood_app::snapshots::{scheduled_name, SCHEDULED};
use hood_app::{AppError, BackupSchedule, NodeService, SnapshotService};
use hood_chains::ChainCatalog;
use hood_clock::ManualClock;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{ApplicationHealth, NodeState, SyncStatus};
use hood_domain::node::Node;
use hood_domain::node_workflows::{restore_id, snapshot_id, SnapshotNodeInput, SNAPSHOT_NODE};
use hood_domain::snapshot::{NodeSnapshot, SnapshotState};
use hood_domain::{NodeId, OrgId, Timestamp};
use hood_ports::{NodeOperations, PortError};
use hood_store::node::NodeChange;
use hood_store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: Timestamp = Timestamp(1_760_000_000_000);
const HOUR: i64 = 3_600;

/// The orchestrator's side: deleting a snapshot forgets its record (the
/// object store's part is the orchestrator's, tested end to end).
struct Orchestrator {
    store: Arc<dyn Store>,
    deleted: Mutex<Vec<(NodeId, String)>>,
}

#[async_trait]
impl NodeOperations for Orchestrator {
    fn providers(&self) -> Vec<String> {
        vec!["local".into()]
    }
    fn workflows_due(&self) {}
    async fn retry_workflow(&self, _: &str) -> Result<(), PortError> {
        Err(PortError::Conflict("not stuck".into()))
    }
    async fn abandon_workflow(&self, _: &str, _: &str) -> Result<(), PortError> {
        Err(PortError::Conflict("not stuck".into()))
    }
    async fn node_logs(&self, _: &Node, _: u32) -> Result<serde_json::Value, PortError> {
        Err(PortError::Unavailable("no agent".into()))
    }
    async fn delete_snapshot(&self, node: NodeId, name: &str) -> Result<(), PortError> {
        self.store
            .delete_snapshot(node, name)
            .await
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        self.deleted.lock().unwrap().push((node, name.to_owned()));
        Ok(())
    }
}

struct Env {
    store: Arc<dyn Store>,
    service: SnapshotService,
    clock: Arc<ManualClock>,
    orchestrator: Arc<Orchestrator>,
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
    let clock = ManualClock::at(T0);
    let orchestrator = Arc::new(Orchestrator {
        store: store.clone(),
        deleted: Mutex::default(),
    });
    let nodes = NodeService::new(
        store.clone(),
        store.clone(),
        store.clone(),
        Arc::new(ChainCatalog::builtin().unwrap()),
    )
    .with_operations(orchestrator.clone())
    .with_clock(clock.clone());
    let service = SnapshotService::new(nodes, store.clone(), store.clone());
    Env {
        store,
        service,
        clock,
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
        binary_version: None,
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

fn now(env: &Env) -> Timestamp {
    hood_clock::Clock::now(env.clock.as_ref())
}

/// What the snapshot run would have recorded by its end.
async fn completed(env: &Env, node: NodeId, name: &str, reason: &str) {
    let mut s = env
        .store
        .get_snapshot(node, name)
        .await
        .unwrap()
        .unwrap_or(NodeSnapshot {
            node_id: node,
            name: name.into(),
            state: SnapshotState::Uploading,
            reason: reason.into(),
            head_height: Some(1),
            files: 1,
            raw_bytes: 1,
            compressed_bytes: 1,
            chunks_total: 1,
            chunks_done: 0,
            error: None,
            created_at: now(env),
            completed_at: None,
        });
    env.store.create_snapshot(&s).await.unwrap();
    s.state = SnapshotState::Complete;
    s.chunks_done = 1;
    s.completed_at = Some(now(env));
    env.store.update_snapshot(&s).await.unwrap();
}

async fn a_snapshot_is_asked_of_a_serving_node_only(env: Env) {
    let up = node(&env, "up", NodeState::Healthy).await;
    let away = node(&env, "away", NodeState::Provisioning).await;
    let taken = env
        .service
        .take(env.org, up, Some("first".into()), "manual")
        .await
        .unwrap();
    assert_eq!(taken.workflow_id, snapshot_id(up, "first"));
    let run = env
        .store
        .get_workflow(&taken.workflow_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.name.as_str(), run.version), SNAPSHOT_NODE);
    let input: SnapshotNodeInput = serde_json::from_value(run.input).unwrap();
    assert_eq!(
        (input.node_id, input.name.as_str(), input.reason.as_str()),
        (up, "first", "manual")
    );
    // Asked again: the same run.
    let again = env
        .service
        .take(env.org, up, Some("first".into()), "manual")
        .await
        .unwrap();
    assert_eq!(again.workflow_id, taken.workflow_id);

    let default = env.service.take(env.org, up, None, "manual").await.unwrap();
    assert_eq!(default.name, format!("manual-{}", T0.millis()));
    assert!(matches!(
        env.service
            .take(env.org, up, Some("a/b".into()), "manual")
            .await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        env.service.take(env.org, away, None, "manual").await,
        Err(AppError::Conflict(_))
    ));
    let stranger = OrgId::from_uuid(uuid::Uuid::now_v7());
    assert!(matches!(
        env.service.take(stranger, up, None, "manual").await,
        Err(AppError::NotFound(_))
    ));

    // Restore: only a complete snapshot.
    assert!(matches!(
        env.service.restore(env.org, up, "never").await,
        Err(AppError::NotFound(_))
    ));
    env.store
        .create_snapshot(&NodeSnapshot {
            node_id: up,
            name: "first".into(),
            state: SnapshotState::Uploading,
            reason: "manual".into(),
            head_height: None,
            files: 0,
            raw_bytes: 0,
            compressed_bytes: 0,
            chunks_total: 0,
            chunks_done: 0,
            error: None,
            created_at: T0,
            completed_at: None,
        })
        .await
        .unwrap();
    assert!(matches!(
        env.service.restore(env.org, up, "first").await,
        Err(AppError::Conflict(_))
    ));
    completed(&env, up, "first", "manual").await;
    let restore = env.service.restore(env.org, up, "first").await.unwrap();
    assert_eq!(restore.workflow_id, restore_id(up, "first", 1));
    let listed = env.service.list(env.org, up).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SnapshotState::Complete);
}

async fn the_schedule_takes_one_per_period_and_keeps_the_newest(env: Env) {
    let schedule = BackupSchedule {
        every_s: HOUR,
        keep: 2,
    };
    let a = node(&env, "a", NodeState::Healthy).await;
    let b = node(&env, "b", NodeState::Healthy).await;
    let _down = node(&env, "c", NodeState::Syncing).await;

    let mut names = Vec::new();
    for period in 0..4 {
        let report = env.service.run_schedule(schedule).await.unwrap();
        assert_eq!(report.started, 2, "one per healthy node, period {period}");
        let name = scheduled_name(now(&env).millis() / 1000, HOUR);
        for n in [a, b] {
            let run = env
                .store
                .get_workflow(&snapshot_id(n, &name))
                .await
                .unwrap();
            assert!(run.is_some(), "{name} of {n}");
            // The run takes and completes it.
            completed(&env, n, &name, SCHEDULED).await;
        }
        // A second pass in the same period starts nothing.
        env.clock.advance(Duration::from_secs(60));
        let again = env.service.run_schedule(schedule).await.unwrap();
        assert_eq!(again.started, 0, "period {period}");
        names.push(name);
        env.clock.advance(Duration::from_secs(HOUR as u64));
    }
    // Retention ran at every pass: the newest two of each node remain.
    let kept: Vec<String> = env
        .service
        .list(env.org, a)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(kept, [names[3].clone(), names[2].clone()]);
    let deleted = env.orchestrator.deleted.lock().unwrap().clone();
    assert_eq!(deleted.len(), 4, "{deleted:?}");
    assert!(deleted.contains(&(b, names[0].clone())));
    // A manual snapshot is never the schedule's to delete.
    completed(&env, a, "keep-me", "manual").await;
    env.clock.advance(Duration::from_secs(10 * HOUR as u64));
    env.service.run_schedule(schedule).await.unwrap();
    assert!(env
        .store
        .get_snapshot(a, "keep-me")
        .await
        .unwrap()
        .is_some());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(env) = super::postgres(concat!("app_snapshots::", stringify!($name))).await else {
                        return;
                    };
                    super::$name(env).await;
                }
            )*
        }
    };
}

both!(
    a_snapshot_is_asked_of_a_serving_node_only,
    the_schedule_takes_one_per_period_and_keeps_the_newest,
);
