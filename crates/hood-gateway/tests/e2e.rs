//! The agent protocol end to end: a real gateway (TLS on loopback) and real
//! agents, on SQLite and on PostgreSQL (`HOOD_TEST_POSTGRES_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use bytes::Bytes;
use hood_agent::{
    gateway_channel, Agent, AgentConfig, AgentError, BuiltinHandler, CommandContext, CommandError,
    CommandHandler, Workload,
};
use hood_agent_proto::v1::agent_gateway_client::AgentGatewayClient;
use hood_agent_proto::v1::agent_message::Body as Up;
use hood_agent_proto::v1::gateway_message::Body as Down;
use hood_agent_proto::v1::{AgentMessage, EnrollRequest, Hello, RenewRequest};
use hood_domain::lifecycle::{CommandState, HostState};
use hood_domain::{CommandId, HostId, NodeId, Timestamp};
use hood_gateway::{
    ArtifactSource, ArtifactSourceError, ArtifactStream, CommandOutcome, DataKey, Fleet, Gateway,
    GatewayConfig, NodeKeyError, NodeKeySource,
};
use hood_identity::tasks::TaskSigner;
use hood_pki::{Ca, HostKey, PeerIdentity};
use hood_store::fleet::Host;
use hood_store::Store;
use sha2::Digest as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

// -- environment --

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] hood_testkit::PgDatabase),
}

/// A database, a CA, and a gateway that can be stopped and restarted on
/// the same address.
struct Env {
    store: Arc<dyn Store>,
    url: String,
    ca: Arc<Ca>,
    fleet: Fleet,
    config: GatewayConfig,
    addr: Option<SocketAddr>,
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    artifacts: Option<Arc<dyn ArtifactSource>>,
    node_keys: Option<Arc<dyn NodeKeySource>>,
    /// Signs tasks; agents pin its public key at enrollment.
    signer: TaskSigner,
    _guard: Guard,
}

fn now() -> Timestamp {
    Timestamp(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    )
}

fn test_config() -> GatewayConfig {
    GatewayConfig {
        heartbeat_interval: Duration::from_secs(1),
        expiry_sweep: Duration::from_millis(200),
        hello_timeout: Duration::from_secs(5),
        ..GatewayConfig::default()
    }
}

impl Env {
    async fn sqlite() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = hood_testkit::sqlite_url(&dir);
        Env::with(url, Guard::Sqlite(dir)).await
    }

    async fn postgres(test: &str) -> Option<Env> {
        let db = hood_testkit::PgDatabase::create(test).await?;
        let url = db.url.clone();
        Some(Env::with(url, Guard::Postgres(db)).await)
    }

    async fn with(url: String, guard: Guard) -> Env {
        let store = hood_store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        let master = hood_identity::master_key::MasterKey::generate();
        let ca = Arc::new(
            hood_gateway::load_or_create_ca(&*store, &master, now())
                .await
                .unwrap(),
        );
        let signer = TaskSigner::from_master(&master);
        Env {
            fleet: Fleet::new(store.clone()),
            store,
            url,
            ca,
            config: GatewayConfig {
                task_public_key: Some(signer.public_key_base64()),
                ..test_config()
            },
            signer,
            addr: None,
            running: None,
            artifacts: None,
            node_keys: None,
            _guard: guard,
        }
    }

    async fn start(&mut self) {
        let listener = match self.addr {
            Some(addr) => tokio::net::TcpListener::bind(addr).await.unwrap(),
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        self.addr = Some(listener.local_addr().unwrap());
        let mut gateway =
            Gateway::new(self.fleet.clone(), self.ca.clone(), self.config.clone()).unwrap();
        if let Some(a) = &self.artifacts {
            gateway = gateway.with_artifacts(a.clone());
        }
        if let Some(k) = &self.node_keys {
            gateway = gateway.with_node_keys(k.clone());
        }
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            gateway
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((tx, task));
    }

    async fn stop(&mut self) {
        let (tx, task) = self.running.take().unwrap();
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("gateway stops")
            .unwrap();
    }

    /// A brand-new gateway process on the same database and address: new
    /// store connection, new `Fleet` (no shared memory with the old one).
    async fn restart_fresh(&mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        self.store = hood_store::connect(&self.url).await.unwrap();
        self.fleet = Fleet::new(self.store.clone());
        self.start().await;
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr.unwrap())
    }

    async fn enrolling_host(&self) -> HostId {
        let t = now();
        let host = Host {
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
            created_at: t,
            updated_at: t,
        };
        self.store.create_host(&host).await.unwrap();
        for s in [HostState::Provisioning, HostState::Enrolling] {
            self.store.transition_host(host.id, s, t).await.unwrap();
        }
        host.id
    }

    /// Agent configuration with a token file for `host`.
    async fn agent_config(&self, dir: &Path, host: HostId) -> AgentConfig {
        let token = self
            .fleet
            .issue_enrollment_token(host, Duration::from_secs(600))
            .await
            .unwrap();
        let token_file = dir.join("enroll.token");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&token_file, token).unwrap();
        self.agent_config_with(dir, Some(token_file))
    }

    fn agent_config_with(&self, dir: &Path, token_file: Option<std::path::PathBuf>) -> AgentConfig {
        let mut config = AgentConfig::new(self.url(), dir.join("agent"));
        config.ca_pem = Some(self.ca.cert_pem().to_owned());
        config.token_file = token_file;
        config.hostname = "test-box".into();
        config.heartbeat_interval = Some(Duration::from_millis(300));
        config.reconnect_min = Duration::from_millis(50);
        config.reconnect_max = Duration::from_millis(400);
        config
    }

    /// A raw protocol client: `identity` is (cert PEM, key PEM).
    fn client(
        &self,
        ca_pem: &str,
        identity: Option<(&str, &str)>,
    ) -> AgentGatewayClient<tonic::transport::Channel> {
        let config = AgentConfig::new(self.url(), "/nonexistent");
        AgentGatewayClient::new(gateway_channel(&config, ca_pem, identity).unwrap())
    }

    /// Enrolls by hand (no agent): returns (cert PEM, key PEM).
    async fn enroll_raw(&self, host: HostId) -> (String, String) {
        let token = self
            .fleet
            .issue_enrollment_token(host, Duration::from_secs(600))
            .await
            .unwrap();
        let key = HostKey::generate().unwrap();
        let response = self
            .client(self.ca.cert_pem(), None)
            .enroll(EnrollRequest {
                token,
                csr_pem: key.csr_pem("raw").unwrap(),
                agent_version: "raw".into(),
                hostname: "raw".into(),
            })
            .await
            .unwrap()
            .into_inner();
        (response.certificate_pem, key.private_key_pem())
    }
}

/// Runs an agent in the background until the returned sender fires.
fn spawn_agent(
    agent: Agent,
    handler: Arc<dyn CommandHandler>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), AgentError>>,
) {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(handler, async {
        let _ = rx.await;
    }));
    (tx, task)
}

async fn stop_agent(
    running: (
        oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), AgentError>>,
    ),
) {
    let (tx, task) = running;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("agent stops")
        .unwrap()
        .unwrap();
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts executions per command id; answers like `ping`.
#[derive(Default)]
struct Counting {
    runs: Mutex<HashMap<CommandId, u32>>,
}

impl Counting {
    fn runs(&self, id: CommandId) -> u32 {
        self.runs.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl CommandHandler for Counting {
    async fn handle(
        &self,
        kind: &str,
        payload: serde_json::Value,
        ctx: &CommandContext,
    ) -> Result<serde_json::Value, CommandError> {
        *self.runs.lock().unwrap().entry(ctx.command_id).or_default() += 1;
        ctx.progress(50, "half way");
        match kind {
            "fail" => Err("asked to fail".into()),
            "signed" => {
                let task: serde_json::Value = ctx.verified(payload, kind)?;
                Ok(serde_json::json!({ "ran": kind, "task": task }))
            }
            _ => Ok(serde_json::json!({ "ran": kind, "payload": payload })),
        }
    }

    async fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            workload_id: "node-a".into(),
            state: "running".into(),
            pid: Some(4242),
            restarts: 0,
            observation: serde_json::json!({"head": 1}),
        }]
    }
}

async fn connected(env: &Env, host: HostId) {
    let fleet = env.fleet.clone();
    eventually("agent connected", Duration::from_secs(15), || {
        let fleet = fleet.clone();
        async move { fleet.host_connected(host).await.unwrap() }
    })
    .await;
}

// -- tests --

async fn enroll_session_and_command_round_trip(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let dir = tempfile::tempdir().unwrap();
    let config = env.agent_config(dir.path(), host).await;
    let token_file = config.token_file.clone().unwrap();
    let agent = Agent::new(config).unwrap();
    let handle = agent.handle();
    let counting = Arc::new(Counting::default());
    let running = spawn_agent(agent, counting.clone());
    connected(env, host).await;

    assert_eq!(handle.host_id(), Some(host));
    let h = env.store.get_host(host).await.unwrap().unwrap();
    assert_eq!(h.state, HostState::Ready, "enrollment moves the host on");
    assert_eq!(h.hostname.as_deref(), Some("test-box"));
    assert!(!token_file.exists(), "the spent token file is removed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("agent/identity.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A command enqueued after connect arrives well under a second; the
    // bound here is only a sanity check.
    let started = Instant::now();
    let id = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!({"x": 1}),
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let outcome = env
        .fleet
        .wait_command(id, Duration::from_secs(10))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("command round trip: {elapsed:?}");
    assert_eq!(
        outcome,
        CommandOutcome::Succeeded(serde_json::json!({"ran": "ping", "payload": {"x": 1}}))
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "round trip took {elapsed:?}"
    );
    let row = env.store.get_agent_command(id).await.unwrap().unwrap();
    assert_eq!(row.state, CommandState::Succeeded);
    assert!(row.acked_at.is_some());
    assert_eq!(counting.runs(id), 1);

    // Another process (cluster mode) enqueues: nothing pokes this
    // gateway's session, its short database poll picks the command up.
    let other = Fleet::new(hood_store::connect(&env.url).await.unwrap());
    assert!(
        other.host_connected(host).await.unwrap(),
        "connection is visible to other processes"
    );
    let started = Instant::now();
    let remote = other
        .enqueue_command(
            host,
            "ping",
            serde_json::json!("remote"),
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(matches!(
        other
            .wait_command(remote, Duration::from_secs(10))
            .await
            .unwrap(),
        CommandOutcome::Succeeded(_)
    ));
    let elapsed = started.elapsed();
    eprintln!("cross-process command round trip: {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "cross-process round trip took {elapsed:?}"
    );

    // Failure is reported as such.
    let failing = env
        .fleet
        .enqueue_command(
            host,
            "fail",
            serde_json::json!(null),
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        env.fleet
            .wait_command(failing, Duration::from_secs(10))
            .await
            .unwrap(),
        CommandOutcome::Failed("asked to fail".into())
    );

    // Heartbeats carry workload statuses; events are stored.
    handle.emit_event(
        "workload_started",
        Some("node-a"),
        "started",
        serde_json::json!({"pid": 4242}),
    );
    let store = env.store.clone();
    eventually(
        "workloads and event recorded",
        Duration::from_secs(10),
        || {
            let store = store.clone();
            async move {
                let workloads = store.list_host_workloads(host).await.unwrap();
                let events = store.list_agent_events(host, 0, 10).await.unwrap();
                workloads.len() == 1
                    && workloads[0].pid == Some(4242)
                    && events.iter().any(|e| e.kind == "workload_started")
            }
        },
    )
    .await;

    // Idempotent enqueue through the service API.
    let a = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!(1),
            Some("k-1"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let b = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!(1),
            Some("k-1"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(a, b);
    env.fleet
        .wait_command(a, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(counting.runs(a), 1);

    stop_agent(running).await;
    let fleet = env.fleet.clone();
    eventually("session closed", Duration::from_secs(10), || {
        let fleet = fleet.clone();
        async move { !fleet.host_connected(host).await.unwrap() }
    })
    .await;
    env.stop().await;
}

/// Signed task kinds run only with a signature from the key the agent
/// pinned at enrollment, for its host and kind, before they expire.
async fn signed_tasks_run_only_when_they_verify(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let dir = tempfile::tempdir().unwrap();
    let config = env.agent_config(dir.path(), host).await;
    let agent = Agent::new(config).unwrap();
    let running = spawn_agent(agent, Arc::new(Counting::default()));
    connected(env, host).await;
    let pinned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("agent/identity.json")).unwrap())
            .unwrap();
    assert_eq!(pinned["task_key"], env.signer.public_key_base64().as_str());

    let later = now().plus_secs(600);
    let run = |payload: serde_json::Value| {
        let fleet = env.fleet.clone();
        async move {
            let id = fleet
                .enqueue_command(host, "signed", payload, None, Duration::from_secs(30))
                .await
                .unwrap();
            fleet
                .wait_command(id, Duration::from_secs(10))
                .await
                .unwrap()
        }
    };
    let task = serde_json::json!({"command": ["true"]});
    let good = env.signer.sign(host, "signed", later, &task).unwrap();
    assert_eq!(
        run(serde_json::to_value(&good).unwrap()).await,
        CommandOutcome::Succeeded(serde_json::json!({"ran": "signed", "task": task}))
    );
    let refused = |outcome: CommandOutcome, why: &str| match outcome {
        CommandOutcome::Failed(m) => assert!(m.contains(why), "{m}"),
        other => panic!("ran: {other:?}"),
    };
    // Unsigned, tampered, for another host, kind or key, or expired: none
    // of them runs.
    refused(run(task.clone()).await, "not signed");
    let mut tampered = good.clone();
    tampered.body = tampered.body.replace("true", "evil");
    refused(
        run(serde_json::to_value(&tampered).unwrap()).await,
        "does not verify",
    );
    let elsewhere = env
        .signer
        .sign(
            HostId::from_uuid(uuid::Uuid::now_v7()),
            "signed",
            later,
            &task,
        )
        .unwrap();
    refused(
        run(serde_json::to_value(&elsewhere).unwrap()).await,
        "is for host",
    );
    let other_kind = env.signer.sign(host, "other", later, &task).unwrap();
    refused(
        run(serde_json::to_value(&other_kind).unwrap()).await,
        "not this command",
    );
    let forged = TaskSigner::from_master(&hood_identity::master_key::MasterKey::generate())
        .sign(host, "signed", later, &task)
        .unwrap();
    refused(
        run(serde_json::to_value(&forged).unwrap()).await,
        "does not verify",
    );
    let stale = env
        .signer
        .sign(host, "signed", now().plus_secs(-1), &task)
        .unwrap();
    refused(run(serde_json::to_value(&stale).unwrap()).await, "expired");
    stop_agent(running).await;
    env.stop().await;
}

async fn enrollment_token_is_single_use(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let token = env
        .fleet
        .issue_enrollment_token(host, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(token.starts_with(hood_gateway::ENROLLMENT_TOKEN_PREFIX));
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [&first, &second] {
        std::fs::write(dir.path().join("t"), &token).unwrap();
    }
    let a = Agent::new(env.agent_config_with(first.path(), Some(first.path().join("t")))).unwrap();
    assert_eq!(a.enroll().await.unwrap(), host);
    let b =
        Agent::new(env.agent_config_with(second.path(), Some(second.path().join("t")))).unwrap();
    assert!(matches!(
        b.enroll().await,
        Err(AgentError::EnrollmentRefused(_))
    ));
    assert!(b.host_id().is_none());

    // A bogus token, and a token for a host that already enrolled.
    let key = HostKey::generate().unwrap();
    let mut client = env.client(env.ca.cert_pem(), None);
    let bogus = client
        .enroll(EnrollRequest {
            token: "hood_enroll_nope".into(),
            csr_pem: key.csr_pem("x").unwrap(),
            ..EnrollRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bogus.code(), tonic::Code::Unauthenticated);
    let again = env
        .fleet
        .issue_enrollment_token(host, Duration::from_secs(600))
        .await
        .unwrap();
    let ready = client
        .enroll(EnrollRequest {
            token: again,
            csr_pem: key.csr_pem("x").unwrap(),
            ..EnrollRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ready.code(), tonic::Code::FailedPrecondition);
    env.stop().await;
}

/// The control plane can die after spending a token but before the agent
/// hears the answer. The same key asking again gets a certificate again;
/// any other key is still refused.
async fn lost_enrollment_answer_is_reissued_to_the_same_key_only(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let token = env
        .fleet
        .issue_enrollment_token(host, Duration::from_secs(600))
        .await
        .unwrap();
    let key = HostKey::generate().unwrap();
    let mut client = env.client(env.ca.cert_pem(), None);
    let enroll = |token: String, csr: String| EnrollRequest {
        token,
        csr_pem: csr,
        ..EnrollRequest::default()
    };
    let first = client
        .enroll(enroll(token.clone(), key.csr_pem("x").unwrap()))
        .await
        .unwrap()
        .into_inner();
    // "Lost": the same key retries with the same token.
    let again = client
        .enroll(enroll(token.clone(), key.csr_pem("x").unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.host_id, first.host_id);
    let (a, b) = (
        PeerIdentity::from_pem(&first.certificate_pem).unwrap(),
        PeerIdentity::from_pem(&again.certificate_pem).unwrap(),
    );
    assert_eq!(a.host_id, host);
    assert_ne!(a.serial, b.serial, "a fresh certificate, recorded");
    assert!(env
        .store
        .get_host_certificate(&b.serial)
        .await
        .unwrap()
        .is_some());
    // Someone else with the spent token gets nothing.
    let thief = HostKey::generate().unwrap();
    let refused = client
        .enroll(enroll(token, thief.csr_pem("x").unwrap()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    env.stop().await;
}

async fn calls_without_a_certificate_are_refused(env: &mut Env) {
    env.start().await;
    let mut client = env.client(env.ca.cert_pem(), None);
    let (tx, rx) = mpsc::channel::<AgentMessage>(4);
    tx.send(AgentMessage {
        body: Some(Up::Hello(Hello::default())),
    })
    .await
    .unwrap();
    let status = client.session(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = client
        .renew(RenewRequest {
            csr_pem: HostKey::generate().unwrap().csr_pem("x").unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    env.stop().await;
}

/// Opens a raw session; returns the first gateway message's body or the
/// error status.
async fn raw_session(
    env: &Env,
    identity: (&str, &str),
) -> Result<
    (
        Down,
        mpsc::Sender<AgentMessage>,
        tonic::Streaming<hood_agent_proto::v1::GatewayMessage>,
    ),
    tonic::Status,
> {
    let mut client = env.client(env.ca.cert_pem(), Some(identity));
    let (tx, rx) = mpsc::channel::<AgentMessage>(4);
    tx.send(AgentMessage {
        body: Some(Up::Hello(Hello {
            agent_version: "raw".into(),
            workloads: vec![],
            inventory: None,
        })),
    })
    .await
    .unwrap();
    let mut down = client.session(ReceiverStream::new(rx)).await?.into_inner();
    let first = down.message().await?.and_then(|m| m.body);
    first
        .map(|body| (body, tx, down))
        .ok_or_else(|| tonic::Status::unknown("stream ended"))
}

async fn certificate_from_another_ca_is_refused(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    // A certificate that names the right host, signed by a stranger.
    let other_ca = Ca::generate(now()).unwrap();
    let key = HostKey::generate().unwrap();
    let forged = other_ca
        .sign_host_csr(
            host,
            &key.csr_pem("x").unwrap(),
            Duration::from_secs(3600),
            now(),
        )
        .unwrap();
    let err = raw_session(env, (&forged.cert_pem, &key.private_key_pem()))
        .await
        .expect_err("refused");
    // Refused by the TLS layer: the request never reached a handler (which
    // would answer Unauthenticated or PermissionDenied).
    assert!(
        !matches!(
            err.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied | tonic::Code::Ok
        ),
        "{err:?}"
    );

    // And at the raw TLS level: the server aborts the connection.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let tls = hood_pki::client_config(
        env.ca.cert_pem(),
        Some((&forged.cert_pem, &key.private_key_pem())),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(env.addr.unwrap())
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let server_name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let refused = match connector.connect(server_name, tcp).await {
        Err(_) => true,
        Ok(mut stream) => {
            let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
            let mut buf = [0u8; 64];
            !matches!(stream.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(
        refused,
        "a certificate of another CA must not get a working TLS session"
    );

    // The gateway's own CA is the one the agent must trust, too.
    let stranger = env.client(other_ca.cert_pem(), None);
    let mut stranger = stranger;
    assert!(stranger.enroll(EnrollRequest::default()).await.is_err());
    env.stop().await;
}

async fn expired_revoked_and_deleted_are_refused(env: &mut Env) {
    env.start().await;

    // Revoked: refused at the next call, and an open session is closed.
    let host = env.enrolling_host().await;
    let (cert, key) = env.enroll_raw(host).await;
    let (first, tx, mut down) = raw_session(env, (&cert, &key)).await.unwrap();
    assert!(matches!(first, Down::Welcome(_)));
    env.fleet.revoke_host(host).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), down.message())
        .await
        .expect("session closed after revocation");
    assert!(end.is_err() || matches!(end, Ok(None)), "{end:?}");
    drop(tx);
    let err = raw_session(env, (&cert, &key)).await.expect_err("revoked");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "certificate revoked");

    // Deleted host: refused even with a live certificate.
    let gone = env.enrolling_host().await;
    let (cert2, key2) = env.enroll_raw(gone).await;
    for s in [HostState::Draining, HostState::Deleting, HostState::Deleted] {
        env.store.transition_host(gone, s, now()).await.unwrap();
    }
    let err = raw_session(env, (&cert2, &key2))
        .await
        .expect_err("deleted");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);

    // Expired: a genuine certificate of this CA, recorded for the host,
    // that lives a few seconds (enough for a loaded machine to use it once).
    // Accepted at first, refused once it expired.
    let host3 = env.enrolling_host().await;
    env.enroll_raw(host3).await;
    let key3 = HostKey::generate().unwrap();
    let short = env
        .ca
        .sign_host_csr(
            host3,
            &key3.csr_pem("x").unwrap(),
            Duration::from_secs(4),
            now(),
        )
        .unwrap();
    env.store
        .insert_host_certificate(&hood_gateway::certificate_record(&short, now()))
        .await
        .unwrap();
    let key3 = key3.private_key_pem();
    assert!(raw_session(env, (&short.cert_pem, &key3)).await.is_ok());
    let wait = u64::try_from(short.not_after.millis() - now().millis()).unwrap_or(0) + 1500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let err = raw_session(env, (&short.cert_pem, &key3))
        .await
        .expect_err("expired");
    assert!(
        !matches!(err.code(), tonic::Code::Ok),
        "expired certificate must be refused: {err:?}"
    );
    env.stop().await;
}

async fn commands_queued_offline_are_delivered_on_connect(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(env.agent_config(dir.path(), host).await).unwrap();
    agent.enroll().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            env.fleet
                .enqueue_command(
                    host,
                    "ping",
                    serde_json::json!({"i": i}),
                    None,
                    Duration::from_secs(60),
                )
                .await
                .unwrap(),
        );
    }
    for id in &ids {
        assert_eq!(
            env.store
                .get_agent_command(*id)
                .await
                .unwrap()
                .unwrap()
                .state,
            CommandState::Queued
        );
    }
    let counting = Arc::new(Counting::default());
    let running = spawn_agent(agent, counting.clone());
    for id in &ids {
        assert!(matches!(
            env.fleet
                .wait_command(*id, Duration::from_secs(10))
                .await
                .unwrap(),
            CommandOutcome::Succeeded(_)
        ));
        assert_eq!(counting.runs(*id), 1);
    }
    stop_agent(running).await;

    // No agent at all: the command expires, and the caller hears it.
    let orphan = env.enrolling_host().await;
    let id = env
        .fleet
        .enqueue_command(
            orphan,
            "ping",
            serde_json::json!(null),
            None,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert_eq!(
        env.fleet
            .wait_command(id, Duration::from_secs(10))
            .await
            .unwrap(),
        CommandOutcome::Expired { maybe_ran: false }
    );
    assert!(!env.fleet.host_connected(orphan).await.unwrap());
    env.stop().await;
}

async fn unacked_command_is_redelivered_after_restart_and_runs_once(env: &mut Env) {
    env.start().await;
    let host = env.enrolling_host().await;
    let dir = tempfile::tempdir().unwrap();
    let config = env.agent_config(dir.path(), host).await;
    let counting = Arc::new(Counting::default());
    let running = spawn_agent(Agent::new(config.clone()).unwrap(), counting.clone());
    connected(env, host).await;
    let ran = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!("first"),
            None,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(matches!(
        env.fleet
            .wait_command(ran, Duration::from_secs(10))
            .await
            .unwrap(),
        CommandOutcome::Succeeded(_)
    ));
    assert_eq!(counting.runs(ran), 1);

    // Gateway and agent both go down.
    stop_agent(running).await;
    env.stop().await;

    // The command the agent executed looks dispatched-but-never-acked (its
    // ack and result were lost with the gateway), and another one was
    // marked dispatched just before the crash but never reached the agent.
    let sql = format!(
        "UPDATE agent_commands SET state = 'dispatched', acked_at = NULL, finished_at = NULL, \
         result = NULL WHERE id = '{ran}'"
    );
    match env.store.backend() {
        hood_store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&env.url).await.unwrap();
            sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        hood_store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env.url).await.unwrap();
            sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let lost = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!("second"),
            None,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(env
        .store
        .mark_agent_command_dispatched(lost, now())
        .await
        .unwrap());

    // A new gateway on the same database, a restarted agent on the same
    // data directory.
    env.restart_fresh().await;
    let running = spawn_agent(Agent::new(config).unwrap(), counting.clone());
    for id in [ran, lost] {
        assert!(matches!(
            env.fleet
                .wait_command(id, Duration::from_secs(15))
                .await
                .unwrap(),
            CommandOutcome::Succeeded(_)
        ));
    }
    assert_eq!(
        counting.runs(ran),
        1,
        "redelivered command was answered from the agent's log"
    );
    assert_eq!(counting.runs(lost), 1);
    assert_eq!(
        env.store
            .get_agent_command(ran)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );
    stop_agent(running).await;
    env.stop().await;
}

async fn renewal_yields_a_new_certificate_that_works(env: &mut Env) {
    env.config.leaf_validity = Duration::from_secs(4);
    env.start().await;
    let host = env.enrolling_host().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = env.agent_config(dir.path(), host).await;
    config.renew_at = 0.5;
    let agent = Agent::new(config).unwrap();
    let handle = agent.handle();
    let running = spawn_agent(agent, Arc::new(BuiltinHandler));
    connected(env, host).await;
    let first = handle.stored_identity().unwrap();
    eventually("certificate renewed", Duration::from_secs(15), || {
        let handle = handle.clone();
        let serial = first.serial.clone();
        async move { handle.stored_identity().unwrap().serial != serial }
    })
    .await;
    let renewed = handle.stored_identity().unwrap();
    assert!(env
        .store
        .get_host_certificate(&renewed.serial)
        .await
        .unwrap()
        .is_some());
    // Wait until the first certificate has expired: only the new one can
    // be carrying the session now.
    let wait = u64::try_from(first.not_after_ms - now().millis()).unwrap_or(0) + 500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let id = env
        .fleet
        .enqueue_command(
            host,
            "ping",
            serde_json::json!(null),
            None,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(matches!(
        env.fleet
            .wait_command(id, Duration::from_secs(10))
            .await
            .unwrap(),
        CommandOutcome::Succeeded(_)
    ));
    let events = env.store.list_agent_events(host, 0, 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "cert_renewed"));
    stop_agent(running).await;
    env.stop().await;
}

/// Serves fixed artifacts; `liar` declares a checksum its bytes do not
/// have, `gone` has lost its object, `down` sits in a store that fails, and
/// `rotten` turns out damaged mid-stream.
struct Artifacts;

#[async_trait]
impl ArtifactSource for Artifacts {
    async fn open(&self, name: &str, version: &str) -> Result<ArtifactStream, ArtifactSourceError> {
        let body: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let sha = hex::encode(sha2::Sha256::digest(&body));
        let sha256 = match name {
            "good" | "rotten" => sha,
            "liar" => hex::encode(sha2::Sha256::digest(b"something else")),
            "gone" => {
                return Err(ArtifactSourceError::ObjectMissing {
                    name: name.into(),
                    version: version.into(),
                    sha256: sha,
                })
            }
            "down" => {
                return Err(ArtifactSourceError::Unavailable(
                    "disk /srv/secret-path failed".into(),
                ))
            }
            _ => {
                return Err(ArtifactSourceError::NotFound {
                    name: name.into(),
                    version: version.into(),
                })
            }
        };
        let mut chunks: Vec<Result<Bytes, ArtifactSourceError>> = body
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if name == "rotten" {
            chunks.truncate(2);
            chunks.push(Err(ArtifactSourceError::Damaged {
                name: name.into(),
                version: version.into(),
            }));
        }
        Ok(ArtifactStream {
            sha256,
            size: body.len() as u64,
            body: Box::pin(futures::stream::iter(chunks)),
        })
    }
}

/// Node keys: node -> (host it is placed on, key).
struct Keys(HashMap<NodeId, (HostId, Vec<u8>)>);

#[async_trait]
impl NodeKeySource for Keys {
    async fn data_key(&self, host: HostId, node: NodeId) -> Result<Option<DataKey>, NodeKeyError> {
        Ok(self
            .0
            .get(&node)
            .filter(|(placed, _)| *placed == host)
            .map(|(_, key)| DataKey::new(key.clone())))
    }
}

async fn artifacts_are_verified_and_node_keys_scoped(env: &mut Env) {
    let host = env.enrolling_host().await;
    let elsewhere = env.enrolling_host().await;
    let mine = NodeId::from_uuid(uuid::Uuid::now_v7());
    let theirs = NodeId::from_uuid(uuid::Uuid::now_v7());
    env.artifacts = Some(Arc::new(Artifacts));
    env.node_keys = Some(Arc::new(Keys(HashMap::from([
        (mine, (host, vec![7u8; 32])),
        (theirs, (elsewhere, vec![9u8; 32])),
    ]))));
    env.start().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::new(env.agent_config(dir.path(), host).await).unwrap();
    agent.enroll().await.unwrap();
    let handle = agent.handle();

    let path = handle.fetch_artifact("good", "1.0.0", None).await.unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 600_000);
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    assert_eq!(path.file_name().unwrap().to_str().unwrap(), sha);
    // Cached: a second fetch with the expected hash needs no download.
    assert_eq!(
        handle
            .fetch_artifact("good", "1.0.0", Some(&sha))
            .await
            .unwrap(),
        path
    );

    let err = handle
        .fetch_artifact("liar", "1.0.0", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AgentError::ArtifactMismatch { .. }),
        "{err:?}"
    );
    let wrong_expectation = handle
        .fetch_artifact("good", "2.0.0", Some(&"0".repeat(64)))
        .await
        .unwrap_err();
    assert!(matches!(
        wrong_expectation,
        AgentError::ArtifactMismatch { .. }
    ));
    let cached: Vec<_> = std::fs::read_dir(handle.artifact_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        cached,
        vec![sha.clone()],
        "nothing but verified artifacts is kept"
    );
    // What the gateway cannot serve, the agent reports in the gateway's
    // words: the artifact, its checksum, what to do.
    let missing = handle.fetch_artifact("nope", "1", None).await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        "artifact nope 1 is not in the artifact catalog; push it with `hood artifact push nope 1 FILE`"
    );
    let gone = handle
        .fetch_artifact("gone", "1.5.1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&gone, AgentError::ArtifactNotServed { name, .. } if name == "gone"),
        "{gone:?}"
    );
    assert_eq!(
        gone.to_string(),
        format!(
            "artifact object gone 1.5.1 (sha256 {sha}) missing in the artifact store; \
             push it again with `hood artifact push gone 1.5.1 FILE` to restore it"
        )
    );
    let rotten = handle
        .fetch_artifact("rotten", "1", None)
        .await
        .unwrap_err();
    assert_eq!(
        rotten.to_string(),
        "artifact rotten 1 is damaged in the artifact store"
    );
    // A failing store is worth a retry, and says which part failed without
    // its internals.
    let down = handle.fetch_artifact("down", "1", None).await.unwrap_err();
    match &down {
        AgentError::Rpc { code, message } => {
            assert_eq!(*code, tonic::Code::Unavailable);
            assert_eq!(
                message,
                "artifact store unavailable (see the agent gateway's log)"
            );
        }
        other => panic!("{other:?}"),
    }
    let cached: Vec<_> = std::fs::read_dir(handle.artifact_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        cached.len(),
        1,
        "failed downloads leave nothing: {cached:?}"
    );

    let key = handle.node_key(mine).await.unwrap();
    assert_eq!(key.expose(), &[7u8; 32]);
    assert_eq!(format!("{key:?}"), "DataKey(..)");
    let refused = handle.node_key(theirs).await.unwrap_err();
    assert!(matches!(
        refused,
        AgentError::Rpc {
            code: tonic::Code::NotFound,
            ..
        }
    ));
    handle.forget_node_key(mine);
    env.stop().await;
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let mut env = super::Env::sqlite().await;
                    super::$name(&mut env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(mut env) = super::Env::postgres(concat!("gateway::", stringify!($name))).await else {
                        return;
                    };
                    super::$name(&mut env).await;
                }
            )*
        }
    };
}

both!(
    enroll_session_and_command_round_trip,
    signed_tasks_run_only_when_they_verify,
    enrollment_token_is_single_use,
    lost_enrollment_answer_is_reissued_to_the_same_key_only,
    calls_without_a_certificate_are_refused,
    certificate_from_another_ca_is_refused,
    expired_revoked_and_deleted_are_refused,
    commands_queued_offline_are_delivered_on_connect,
    unacked_command_is_redelivered_after_restart_and_runs_once,
    renewal_yields_a_new_certificate_that_works,
    artifacts_are_verified_and_node_keys_scoped,
);
