//! The allocation worker against a real store (SQLite, and PostgreSQL when
//! `HOOD_TEST_POSTGRES_URL` is set), playing the agent's side by finishing
//! the commands it enqueues: tasks are signed for their host and carry a
//! lease; leases are renewed per host; a sandbox the host reports ended is
//! released with the reason; a stop the agent fails is asked again with a
//! fresh command until it succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_domain::agent::{CommandFinish, WorkloadReport};
use hood_domain::allocation::{Allocation, AllocationSpec, CapacitySource};
use hood_domain::audit::AuditContext;
use hood_domain::identity::Organization;
use hood_domain::lifecycle::{AllocationState, HostState};
use hood_domain::machine::StateMachine as _;
use hood_domain::placement::{GpuShape, HostCapacity, Reservation, Shape};
use hood_domain::workload::{kinds, AllocationLeases, AllocationTask};
use hood_domain::{AllocationId, HostId, OrgId};
use hood_gateway::Fleet;
use hood_identity::master_key::MasterKey;
use hood_identity::tasks::{SignedTask, TaskSigner, TaskVerifier};
use hood_orchestrator::AllocationWorker;
use hood_store::allocation::Placed;
use hood_store::Store;
use std::sync::Arc;

struct Env {
    store: Arc<dyn Store>,
    worker: AllocationWorker,
    verifier: TaskVerifier,
    host: HostId,
    org: OrgId,
    _guard: Box<dyn std::any::Any>,
}

async fn env_on(store: Arc<dyn Store>, guard: Box<dyn std::any::Any>) -> Env {
    store.migrate().await.unwrap();
    let now = hood_clock::now();
    let org = Organization {
        id: OrgId::from_uuid(uuid::Uuid::now_v7()),
        slug: "acme".into(),
        name: "Acme".into(),
        created_at: now,
    };
    store.create_org(&org).await.unwrap();
    let host = hood_store::fleet::Host {
        id: HostId::from_uuid(uuid::Uuid::now_v7()),
        org_id: None,
        provider: "local".into(),
        region: "local".into(),
        state: HostState::Requested,
        address: None,
        provider_ref: serde_json::json!({}),
        hostname: None,
        agent_version: None,
        last_seen_at: None,
        connected_at: None,
        created_at: now,
        updated_at: now,
    };
    store.create_host(&host).await.unwrap();
    for state in [
        HostState::Provisioning,
        HostState::Enrolling,
        HostState::Ready,
    ] {
        store.transition_host(host.id, state, now).await.unwrap();
    }
    let capacity = HostCapacity {
        cores: 4,
        memory_mib: 4096,
        disk_mib: 10_240,
        gpus: vec![],
    };
    store
        .set_host_capacity(host.id, CapacitySource::Declared, &capacity, now, None)
        .await
        .unwrap();
    let signer = TaskSigner::from_master(&MasterKey::generate());
    let verifier = TaskVerifier::from_base64(&signer.public_key_base64()).unwrap();
    let worker = AllocationWorker::new(store.clone(), Fleet::new(store.clone()), signer)
        .with_lease(std::time::Duration::from_secs(60));
    Env {
        store,
        worker,
        verifier,
        host: host.id,
        org: org.id,
        _guard: guard,
    }
}

impl Env {
    async fn allocate(&self) -> Allocation {
        let now = hood_clock::now();
        let draft = Allocation {
            id: AllocationId::from_uuid(uuid::Uuid::now_v7()),
            org_id: self.org,
            host_id: HostId::from_uuid(uuid::Uuid::nil()),
            sku: "cpu.1c".into(),
            price_per_minute_minor: 1,
            currency: hood_domain::billing::Currency::usd(),
            spec: AllocationSpec {
                command: vec!["sleep".into(), "600".into()],
                ..AllocationSpec::default()
            },
            state: AllocationState::Requested,
            reservation: Reservation {
                cores: vec![],
                memory_mib: 0,
                disk_mib: 0,
                gpus: vec![],
            },
            idempotency_key: None,
            expires_at: None,
            error: None,
            active_since: None,
            active_until: None,
            idle_since: None,
            ports: Default::default(),
            created_at: now,
            updated_at: now,
        };
        let shape = Shape {
            cores: 1,
            memory_mib: 256,
            disk_mib: 1024,
            gpu: GpuShape::None,
        };
        match self
            .store
            .create_allocation(&draft, &shape, &[self.host], &AuditContext::system("test"))
            .await
            .unwrap()
        {
            Placed::Created(a) => a,
            other => panic!("{other:?}"),
        }
    }

    async fn get(&self, id: AllocationId) -> Allocation {
        self.store.find_allocation(id).await.unwrap().unwrap()
    }

    /// The host's unfinished commands of `kind`, oldest first.
    async fn open_commands(&self, kind: &str) -> Vec<hood_domain::agent::AgentCommand> {
        let mut open: Vec<_> = self
            .store
            .list_agent_commands(self.host, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.kind == kind && !c.state.is_terminal())
            .collect();
        open.reverse();
        open
    }

    /// Plays the agent: answers a command.
    async fn finish(&self, id: hood_domain::CommandId, outcome: CommandFinish) {
        let now = hood_clock::now();
        assert!(self
            .store
            .mark_agent_command_dispatched(id, now)
            .await
            .unwrap());
        self.store
            .finish_agent_command(self.host, id, &outcome, now)
            .await
            .unwrap();
    }

    async fn report(&self, workload: &str, state: &str) {
        self.store
            .record_heartbeat(
                self.host,
                &[WorkloadReport {
                    workload_id: workload.into(),
                    state: state.into(),
                    pid: None,
                    restarts: 0,
                    observation: serde_json::Value::Null,
                    updated_at: hood_clock::now(),
                }],
                hood_clock::now(),
            )
            .await
            .unwrap();
    }

    /// Provisions `a` through the worker, the agent answering the start.
    async fn activate(&self, a: &Allocation) {
        self.worker.pass().await.unwrap();
        assert_eq!(self.get(a.id).await.state, AllocationState::Provisioning);
        let start = self
            .open_commands(kinds::START_ALLOCATION)
            .await
            .into_iter()
            .find(|c| c.idempotency_key == format!("alloc-start-{}", a.id))
            .expect("a start command");
        self.finish(start.id, CommandFinish::Succeeded(serde_json::json!({})))
            .await;
        self.worker.pass().await.unwrap();
        assert_eq!(self.get(a.id).await.state, AllocationState::Active);
    }
}

async fn start_tasks_are_signed_for_their_host_with_a_lease(env: Env) {
    let a = env.allocate().await;
    env.worker.pass().await.unwrap();
    let start = env.open_commands(kinds::START_ALLOCATION).await;
    assert_eq!(start.len(), 1);
    let signed: SignedTask = serde_json::from_value(start[0].payload.clone()).unwrap();
    let task: AllocationTask = env
        .verifier
        .verify(
            &signed,
            env.host,
            kinds::START_ALLOCATION,
            hood_clock::now(),
        )
        .unwrap();
    assert_eq!(task.allocation_id, a.id);
    assert_eq!(task.cores.len(), 1);
    assert_eq!(task.command, ["sleep", "600"]);
    let lease = task.lease_until_ms.expect("a lease") - hood_clock::now().millis();
    assert!((50_000..=60_000).contains(&lease), "{lease} ms");
    // Signed for this host only.
    assert!(env
        .verifier
        .verify::<AllocationTask>(
            &signed,
            HostId::from_uuid(uuid::Uuid::now_v7()),
            kinds::START_ALLOCATION,
            hood_clock::now()
        )
        .is_err());
    env.finish(start[0].id, CommandFinish::Succeeded(serde_json::json!({})))
        .await;
    env.worker.pass().await.unwrap();
    let active = env.get(a.id).await;
    assert_eq!(active.state, AllocationState::Active);
    assert!(active.active_since.is_some());

    // Leases: one signed renewal per host, naming its live allocations.
    let b = env.allocate().await;
    env.activate(&b).await;
    assert_eq!(env.worker.renew_leases().await.unwrap(), 1);
    let renewals = env.open_commands(kinds::RENEW_ALLOCATION_LEASES).await;
    assert_eq!(renewals.len(), 1);
    let signed: SignedTask = serde_json::from_value(renewals[0].payload.clone()).unwrap();
    let leases: AllocationLeases = env
        .verifier
        .verify(
            &signed,
            env.host,
            kinds::RENEW_ALLOCATION_LEASES,
            hood_clock::now(),
        )
        .unwrap();
    let mut renewed: Vec<_> = leases.leases.iter().map(|l| l.allocation_id).collect();
    renewed.sort();
    let mut both = vec![a.id, b.id];
    both.sort();
    assert_eq!(renewed, both);
}

async fn an_ended_sandbox_is_released_and_a_failed_stop_is_asked_again(env: Env) {
    let a = env.allocate().await;
    env.activate(&a).await;
    // Still running: nothing to reap. Reported stopped: released with the
    // reason, through `releasing` (the agent cleans up).
    let workload = hood_domain::workload::allocation_workload_id(a.id);
    env.report(&workload, "running").await;
    assert_eq!(env.worker.reap_exited().await.unwrap(), 0);
    env.report(&workload, "failed").await;
    assert_eq!(env.worker.reap_exited().await.unwrap(), 1);
    let ended = env.get(a.id).await;
    assert_eq!(ended.state, AllocationState::Releasing);
    assert!(ended.error.unwrap().contains("ended on its own (failed)"));
    assert!(ended.active_until.is_some());

    // The agent fails the stop twice; each failure is asked again with a
    // fresh command; the third succeeds and the allocation is released.
    for round in 0..2 {
        env.worker.pass().await.unwrap();
        let stops = env.open_commands(kinds::STOP_ALLOCATION).await;
        assert_eq!(stops.len(), 1, "round {round}: one stop at a time");
        env.finish(stops[0].id, CommandFinish::Failed("device busy".into()))
            .await;
        assert_eq!(env.get(a.id).await.state, AllocationState::Releasing);
    }
    env.worker.pass().await.unwrap();
    let stops = env.open_commands(kinds::STOP_ALLOCATION).await;
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].idempotency_key, format!("alloc-stop-{}-2", a.id));
    env.finish(stops[0].id, CommandFinish::Succeeded(serde_json::json!({})))
        .await;
    env.worker.pass().await.unwrap();
    assert_eq!(env.get(a.id).await.state, AllocationState::Released);
    // Released: nothing more is asked of the host.
    env.worker.pass().await.unwrap();
    assert!(env.open_commands(kinds::STOP_ALLOCATION).await.is_empty());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = hood_store::connect(&hood_testkit::sqlite_url(&dir)).await.unwrap();
                    super::$name(super::env_on(store, Box::new(dir)).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = hood_testkit::PgDatabase::create(
                        concat!("alloc_worker::", stringify!($name))).await else {
                        return;
                    };
                    let store = hood_store::connect(&db.url).await.unwrap();
                    super::$name(super::env_on(store, Box::new(db)).await).await;
                }
            )*
        }
    };
}

both!(
    start_tasks_are_signed_for_their_host_with_a_lease,
    an_ended_sandbox_is_released_and_a_failed_stop_is_asked_again,
);
