//! Server-side wiring: `hood up`, `hood serve`, `hood migrate`.

use anyhow::{bail, Context, Result};
use hood_api::bootstrap::{bootstrap_admin, ensure_signing_keys};
use hood_api::state::{ApiConfig, AppState};
use hood_api::HttpRole;
use hood_chains::ChainCatalog;
use hood_identity::master_key::MasterKey;
use hood_identity::oidc::{OidcConfig, OidcVerifier};
use hood_identity::tokens::{TokenConfig, TokenIssuer};
use hood_store::{redact_url, Store};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Settings shared by `up` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerOpts {
    /// Data directory: SQLite database, master key, admin key.
    #[arg(long, env = "HOOD_HOME", default_value = ".hood")]
    pub home: PathBuf,
    /// Chain definitions to load instead of the built-in ones.
    #[arg(long, env = "HOOD_CHAINS_DIR")]
    pub chains_dir: Option<PathBuf>,
    /// External OIDC issuer whose tokens are accepted (users matched by verified e-mail).
    #[arg(long, env = "HOOD_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Audience expected in external OIDC tokens.
    #[arg(long, env = "HOOD_OIDC_AUDIENCE", default_value = "hood")]
    pub oidc_audience: String,
    /// Containers' HTTP ingress: `{name}.{org}.{domain}` (the organization
    /// by its slug) is served from the container's first exposed port. The
    /// path form `/ingress/{org}/{name}/…` works without it.
    #[arg(long, env = "HOOD_INGRESS_DOMAIN")]
    pub ingress_domain: Option<String>,
    /// JWKS URL of the OIDC issuer (default: discovered from the issuer).
    #[arg(long, env = "HOOD_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// Login attempts admitted per client IP per minute.
    #[arg(long, env = "HOOD_LOGIN_RATE_PER_MINUTE", default_value_t = 20)]
    pub login_rate_per_minute: u64,
    /// Password of the first administrator (only read on the first start).
    #[arg(long, env = "HOOD_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// A JSON array of SKUs to offer instead of the built-in ones, each
    /// `{name, cores, memory_mib, disk_mib, gpu: {kind: none|whole|mig,
    /// count|profile}, price_per_minute_minor, currency}`.
    #[arg(long, env = "HOOD_SKU_FILE")]
    pub sku_file: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: crate::ledger::LedgerArgs,
    #[command(flatten)]
    pub console: crate::console::ConsoleArgs,
    #[command(flatten)]
    pub billing: crate::billing::BillingArgs,
    #[command(flatten)]
    pub backups: crate::backups::BackupArgs,
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
}

/// Where `hood up` listens.
pub struct UpAddrs {
    pub api: SocketAddr,
    pub auth: SocketAddr,
    pub gateway: SocketAddr,
    /// `None`: the SSH gateway's default, skipped when taken.
    pub ssh: Option<SocketAddr>,
}

/// The SSH gateway's default address in `hood up`.
const DEFAULT_SSH_ADDR: &str = "127.0.0.1:2222";

/// `hood up`: every role in one process on SQLite under `$HOOD_HOME`.
pub async fn up(
    opts: ServerOpts,
    addrs: UpAddrs,
    health_args: crate::health::HealthArgs,
    edge_args: crate::edge::EdgeArgs,
) -> Result<()> {
    let UpAddrs {
        api: api_addr,
        auth: auth_addr,
        gateway: gateway_addr,
        ssh: ssh_addr,
    } = addrs;
    std::fs::create_dir_all(&opts.home)
        .with_context(|| format!("creating {}", opts.home.display()))?;
    let db_path = opts.home.join("hood.db");
    let url = format!("sqlite://{}", db_path.display());
    let store = hood_store::connect(&url)
        .await
        .context("opening the embedded database")?;
    let applied = store
        .migrate()
        .await
        .context("migrating the embedded database")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    let (master, created) = MasterKey::load_or_create(&opts.home.join("master.key"))
        .context("loading the master key")?;
    if created {
        tracing::info!(path = %opts.home.join("master.key").display(), "created the installation master key");
    }
    let state = build_state(store.clone(), &master, &opts)
        .await?
        .with_plans(edge_args.config(&opts.home)?.plans);
    let report =
        bootstrap_admin(store.as_ref(), &opts.home, opts.admin_password.as_deref()).await?;
    let gateway_listener = crate::listen::bind(gateway_addr, crate::listen::UP_GATEWAY).await?;
    let mut fleet = crate::fleet::FleetRoles::embedded(
        store.clone(),
        &master,
        state.chains.clone(),
        &opts.home,
        gateway_listener,
    )
    .await?;
    let ledger = crate::ledger::LedgerRole::start(
        &opts.ledger,
        store.clone(),
        &master,
        fleet
            .artifacts
            .as_ref()
            .map(|a| Arc::clone(a.object_store())),
    )
    .await?;
    let state = fleet
        .serve_terminals(state)
        .with_node_operations(Arc::new(fleet.orchestrator.clone()))
        .with_allocation_operations(Arc::new(fleet.orchestrator.clone()))
        .with_master_key(master.clone())
        .with_ledger(ledger.service.clone())
        .with_notifier_config(health_args.notifier_config()?);
    let billing = crate::billing::service(&opts.billing, store.clone(), ledger.service.clone())?
        .with_node_service(state.nodes.clone())
        .with_allocation_service(state.allocations.clone());
    let billing_runner =
        crate::billing::start_runner(&opts.billing, billing.clone(), store.clone());
    let _backups = crate::backups::start(&opts.backups, state.snapshots.clone());
    let mut state = state.with_billing(billing);
    let mut s3 = None;
    if let Some(storage) =
        crate::storage::start(&opts.storage, Some(&opts.home), store.clone(), &master)?
    {
        s3 = Some(
            crate::storage::S3Endpoint::bind(
                &opts.storage,
                storage.clone(),
                store.clone(),
                &master,
            )
            .await?,
        );
        state = state.with_storage(storage);
    }
    let _containers = start_container_reconciler(state.containers());
    let ssh = start_ssh_gateway(ssh_addr, &opts.home, &state, store.clone()).await?;
    let bus = health_args.bus.connect().await?;
    // Every cached credential of this process (API keys, S3 keys) is
    // evicted on the changes heard here.
    let credentials = tokio::spawn(hood_bus::follow_credential_events(
        std::iter::once(state.credential_cache())
            .chain(
                s3.as_ref()
                    .map(crate::storage::S3Endpoint::credential_cache),
            )
            .collect(),
        bus.clone(),
    ));
    // Users' notification feeds, from the same bus.
    let feed = tokio::spawn(hood_bus::follow_feed_events(store.clone(), bus.clone()));
    let console_bus = bus.clone();
    let health = crate::health::HealthRole::start(
        &health_args,
        store.clone(),
        bus.clone(),
        state.chains.clone(),
        &master,
        fleet.orchestrator.clone(),
    )
    .await?;
    let edge = crate::edge::start(
        &edge_args,
        &opts.home,
        store.clone(),
        bus,
        &state.chains,
        crate::edge::UsageSink::Store,
    )
    .await?;

    let api_listener = crate::listen::bind(api_addr, crate::listen::UP_API).await?;
    let auth_listener = crate::listen::bind(auth_addr, crate::listen::UP_AUTH).await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let auth_url = format!("http://{}", auth_listener.local_addr()?);
    // These lines are the interface for scripts and tests: keep them stable.
    println!(
        "hood is up (embedded mode, data in {})",
        opts.home.display()
    );
    println!("api:  {api_url}");
    println!("auth: {auth_url}");
    println!("agent gateway: {}", fleet.gateway_url);
    println!("edge: http://{}", edge.addr);
    if let Some(s3) = &s3 {
        println!("s3: {}", s3.url()?);
    }
    if let Some((addr, _)) = &ssh {
        println!("ssh: ssh://{addr}");
    }
    println!("openapi: {api_url}/openapi.json");
    println!("console: {api_url}/console");
    println!("status page: {api_url}/status");
    if let Some(r) = &report {
        println!(
            "admin: {} (org `{}`), API key written to {}",
            r.email,
            r.org_slug,
            r.key_file.display()
        );
        if let Some(file) = &r.password_file {
            println!("console password of {}: in {}", r.email, file.display());
        }
    } else {
        println!(
            "admin key: {}",
            opts.home
                .join(hood_api::bootstrap::ADMIN_KEY_FILE)
                .display()
        );
    }
    println!("press Ctrl-C to stop");

    let shutdown = shutdown_signal();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let console = hood_console::Console::new(
        state.clone(),
        Some(console_bus),
        opts.console.config(
            Some(format!("http://{}", edge.addr)),
            opts.oidc_issuer
                .as_deref()
                .map(|i| (i, opts.oidc_audience.as_str())),
        ),
    );
    let mut api = hood_api::with_ingress(
        hood_console::router(console).merge(hood_api::router(
            state.clone(),
            &[HttpRole::Api, HttpRole::Auth],
        )),
        state.clone(),
    );
    if let Some(artifacts) = &fleet.artifacts {
        api = api.layer(axum::Extension(artifacts.clone()));
    }
    let auth = hood_api::router(state, &[HttpRole::Auth]);
    let mut rx3 = stop_tx.subscribe();
    let gateway_task = fleet.spawn_gateway(async move {
        let _ = rx3.recv().await;
    });
    let mut rx1 = stop_tx.subscribe();
    let mut rx2 = stop_tx.subscribe();
    let drain = Duration::from_secs(10);
    let api_task = tokio::spawn(hood_api::serve(
        api_listener,
        api,
        async move {
            let _ = rx1.recv().await;
        },
        drain,
    ));
    let auth_task = tokio::spawn(hood_api::serve(
        auth_listener,
        auth,
        async move {
            let _ = rx2.recv().await;
        },
        drain,
    ));
    let mut s3_task = None;
    if let Some(s3) = s3 {
        let mut rx = stop_tx.subscribe();
        s3_task = Some(s3.spawn(
            async move {
                let _ = rx.recv().await;
            },
            drain,
        ));
    }
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    for task in [api_task, auth_task].into_iter().chain(s3_task) {
        task.await.context("server task")?.context("server")?;
    }
    credentials.abort();
    feed.abort();
    if let Some(task) = gateway_task {
        task.await
            .context("gateway task")?
            .context("agent gateway")?;
    }
    let usage_written = edge.shutdown().await;
    tracing::info!(usage_written, "edge stopped");
    health.shutdown().await;
    billing_runner.shutdown().await;
    ledger.shutdown().await;
    fleet.shutdown().await;
    println!("hood stopped");
    Ok(())
}

/// `hood serve`: the given roles against a shared PostgreSQL database.
/// `listen`: the HTTP listener, if this process has one.
pub async fn serve(
    opts: ServerOpts,
    roles: Vec<HttpRole>,
    listen: Option<SocketAddr>,
    database_url: &str,
    fleet_args: FleetArgs,
    health_args: crate::health::HealthArgs,
    edge_args: crate::edge::EdgeArgs,
) -> Result<()> {
    let artifact_store = cluster_artifact_store(&roles, &fleet_args)?;
    // Bound first, so a taken address fails before anything else starts.
    let listener = match listen {
        Some(addr) => Some(crate::listen::bind(addr, crate::listen::SERVE_HTTP).await?),
        None => None,
    };
    let store = hood_store::connect(database_url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(database_url)))?;
    store
        .check_schema()
        .await
        .context("checking the database schema")?;
    let master = cluster_master_key(&opts.home)?;
    let state = build_state(store.clone(), &master, &opts)
        .await?
        .with_master_key(master.clone())
        .with_notifier_config(health_args.notifier_config()?)
        .with_plans(crate::edge::plans(&edge_args.edge_plans)?);
    if roles.contains(&HttpRole::Auth) {
        if let Some(r) =
            bootstrap_admin(store.as_ref(), &opts.home, opts.admin_password.as_deref()).await?
        {
            println!(
                "admin: {} (org `{}`), API key written to {}",
                r.email,
                r.org_slug,
                r.key_file.display()
            );
            if let Some(file) = &r.password_file {
                println!("console password of {}: in {}", r.email, file.display());
            }
        }
    }
    // The api role starts node workflows; the orchestrator runs them; the
    // gateway talks to agents. Any of them needs the fleet services.
    let mut fleet = None;
    let mut _backups = None;
    let mut state = state;
    if roles.contains(&HttpRole::Api)
        || fleet_args.orchestrator
        || fleet_args.agent_gateway
        || fleet_args.health
    {
        let hosts_dir = fleet_args
            .hosts_dir
            .clone()
            .unwrap_or_else(|| opts.home.join("hosts"));
        // Terminals cross processes over NATS: a gateway relays to the api
        // replica holding the session.
        let terminal_relay = match &health_args.bus.nats_url {
            Some(url) if roles.contains(&HttpRole::Api) || fleet_args.agent_gateway => Some(
                hood_terminal_relay::TerminalRelay::connect(
                    url,
                    &health_args.bus.nats_subject_prefix,
                    hood_terminal_relay::RelayConfig::default(),
                )
                .await?,
            ),
            _ => None,
        };
        let gateway = if fleet_args.agent_gateway {
            Some(
                crate::listen::bind(fleet_args.gateway_listen, crate::listen::SERVE_GATEWAY)
                    .await?,
            )
        } else {
            None
        };
        let f = crate::fleet::FleetRoles::start(
            store.clone(),
            &master,
            state.chains.clone(),
            crate::fleet::FleetOptions {
                hosts_dir,
                artifacts: artifact_store,
                gateway,
                gateway_url: fleet_args.gateway_url.clone(),
                run_worker: fleet_args.orchestrator,
                serve_terminals: roles.contains(&HttpRole::Api),
                terminal_relay,
            },
        )
        .await?;
        state = state
            .with_node_operations(Arc::new(f.orchestrator.clone()))
            .with_allocation_operations(Arc::new(f.orchestrator.clone()));
        if roles.contains(&HttpRole::Api) {
            state = f.serve_terminals(state);
            if let Some(storage) =
                crate::storage::start(&opts.storage, None, store.clone(), &master)?
            {
                state = state.with_storage(storage);
            }
        }
        if fleet_args.orchestrator {
            _backups = crate::backups::start(&opts.backups, state.snapshots.clone());
        }
        fleet = Some(f);
    }
    // The api role serves the ledger and runs its upkeep (leader-gated
    // across replicas).
    let mut ledger = None;
    if roles.contains(&HttpRole::Api) {
        let objects = fleet
            .as_ref()
            .and_then(|f| f.artifacts.as_ref())
            .map(|a| Arc::clone(a.object_store()));
        let role =
            crate::ledger::LedgerRole::start(&opts.ledger, store.clone(), &master, objects).await?;
        let billing = crate::billing::service(&opts.billing, store.clone(), role.service.clone())?
            .with_node_service(state.nodes.clone())
            .with_allocation_service(state.allocations.clone());
        state = state
            .with_ledger(role.service.clone())
            .with_billing(billing);
        ledger = Some(role);
    }
    // The billing role: its own ledger handle when the api role does not
    // run here (no upkeep: that is the api role's).
    let mut billing_runner = None;
    if fleet_args.billing {
        let billing = match &state.billing {
            Some(b) => b.clone(),
            None => {
                let service =
                    crate::ledger::open_service(&opts.ledger, store.clone(), &master).await?;
                crate::billing::service(&opts.billing, store.clone(), service)?
                    .with_node_service(state.nodes.clone())
                    .with_allocation_service(state.allocations.clone())
            }
        };
        billing_runner = Some(crate::billing::start_runner(
            &opts.billing,
            billing,
            store.clone(),
        ));
    }
    let mut health = None;
    if let (true, Some(f)) = (fleet_args.health, fleet.as_ref()) {
        if health_args.bus.nats_url.is_none() {
            bail!("the health role in cluster mode needs the event bus: set HOOD_NATS_URL (NATS with JetStream)");
        }
        let bus = health_args.bus.connect().await?;
        health = Some(
            crate::health::HealthRole::start(
                &health_args,
                store.clone(),
                bus,
                state.chains.clone(),
                &master,
                f.orchestrator.clone(),
            )
            .await?,
        );
    }
    // The edge and the relay that feeds the bus from the outbox (the api
    // role writes key changes; the health role runs its own relay).
    let mut edge = None;
    let mut relay = None;
    let (ingest_stop, ingest_stopped) = tokio::sync::watch::channel(false);
    let mut ingest = None;
    if health_args.bus.nats_url.is_some() || fleet_args.edge {
        if health_args.bus.nats_url.is_none() {
            bail!("the edge role in cluster mode needs the event bus: set HOOD_NATS_URL (NATS with JetStream)");
        }
        let bus = health_args.bus.connect().await?;
        if roles.contains(&HttpRole::Api) && health.is_none() {
            relay = Some(
                hood_bus::OutboxRelay::new(
                    store.clone(),
                    bus.clone(),
                    hood_bus::RelayConfig::default(),
                )
                .spawn(),
            );
        }
        if fleet_args.edge {
            let handle = crate::edge::start(
                &edge_args,
                &opts.home,
                store.clone(),
                bus.clone(),
                &state.chains,
                crate::edge::UsageSink::Bus,
            )
            .await?;
            ingest = Some(tokio::spawn(hood_edge::meter::run_ingest(
                bus.clone(),
                store.clone(),
                ingest_stopped,
            )));
            edge = Some(handle);
        }
    }
    let mut names: Vec<&str> = roles
        .iter()
        .map(|r| match r {
            HttpRole::Api => "api",
            HttpRole::Auth => "auth",
        })
        .collect();
    if fleet_args.orchestrator {
        names.push("orchestrator");
    }
    if health.is_some() {
        names.push("health");
    }
    if billing_runner.is_some() {
        names.push("billing");
    }
    if let Some(f) = fleet.as_ref().filter(|_| fleet_args.agent_gateway) {
        names.push("agent-gateway");
        println!("agent gateway: {}", f.gateway_url);
    }
    if let Some(e) = &edge {
        names.push("edge");
        println!("edge: http://{}", e.addr);
    }
    let mut s3 = None;
    if fleet_args.storage {
        let storage = match &state.storage {
            Some(s) => s.clone(),
            None => crate::storage::start(&opts.storage, None, store.clone(), &master)?.context(
                "the storage role needs the storage object store: set HOOD_STORAGE_URL \
                     (s3://BUCKET/PREFIX?endpoint=… or file:///PATH), the same on every api \
                     and storage replica",
            )?,
        };
        let endpoint =
            crate::storage::S3Endpoint::bind(&opts.storage, storage, store.clone(), &master)
                .await?;
        names.push("storage");
        println!("s3: {}", endpoint.url()?);
        s3 = Some(endpoint);
    }
    // This line is the interface for scripts and tests: keep it stable.
    match &listener {
        Some(l) => println!(
            "serving roles {} on http://{}",
            names.join(","),
            l.local_addr()?
        ),
        None => println!(
            "serving roles {} (no HTTP listener: --listen ADDR serves /healthz, /readyz and /metrics)",
            names.join(",")
        ),
    }
    // Cached credentials (the api role's API keys, the storage role's S3
    // keys) are evicted on changes heard over the bus; without one, they
    // are re-read every second instead.
    let mut credentials = None;
    if health_args.bus.nats_url.is_some() {
        let caches: Vec<_> = roles
            .contains(&HttpRole::Api)
            .then(|| state.credential_cache())
            .into_iter()
            .chain(
                s3.as_ref()
                    .map(crate::storage::S3Endpoint::credential_cache),
            )
            .collect();
        if !caches.is_empty() {
            let bus = health_args.bus.connect().await?;
            credentials = Some(tokio::spawn(hood_bus::follow_credential_events(
                caches, bus,
            )));
        }
    }
    // The api role feeds users' notifications (one durable consumer,
    // shared by its replicas); without a bus there are no events to feed.
    let mut feed = None;
    if roles.contains(&HttpRole::Api) && health_args.bus.nats_url.is_some() {
        let bus = health_args.bus.connect().await?;
        feed = Some(tokio::spawn(hood_bus::follow_feed_events(
            store.clone(),
            bus,
        )));
    }
    let _containers = roles
        .contains(&HttpRole::Api)
        .then(|| start_container_reconciler(state.containers()));
    let mut router = hood_api::router(state.clone(), &roles);
    if roles.contains(&HttpRole::Api) {
        // The console's live updates watch the bus when there is one.
        let bus = match health_args.bus.nats_url {
            Some(_) => Some(health_args.bus.connect().await?),
            None => None,
        };
        let local_edge = edge.as_ref().map(|e| format!("http://{}", e.addr));
        let oidc = opts
            .oidc_issuer
            .as_deref()
            .map(|i| (i, opts.oidc_audience.as_str()));
        let console =
            hood_console::Console::new(state.clone(), bus, opts.console.config(local_edge, oidc));
        router = hood_api::with_ingress(hood_console::router(console).merge(router), state);
    }
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let s3_task = s3.map(|endpoint| {
        let mut rx = stop_tx.subscribe();
        endpoint.spawn(
            async move {
                let _ = rx.recv().await;
            },
            Duration::from_secs(10),
        )
    });
    let mut gateway_task = None;
    if let Some(f) = fleet.as_mut() {
        if let Some(artifacts) = &f.artifacts {
            router = router.layer(axum::Extension(artifacts.clone()));
        }
        let mut rx = stop_tx.subscribe();
        gateway_task = f.spawn_gateway(async move {
            let _ = rx.recv().await;
        });
    }
    match listener {
        Some(l) => {
            hood_api::serve(l, router, shutdown_signal(), Duration::from_secs(10)).await?;
        }
        None => shutdown_signal().await,
    }
    let _ = stop_tx.send(());
    if let Some(task) = gateway_task {
        task.await
            .context("gateway task")?
            .context("agent gateway")?;
    }
    if let Some(task) = s3_task {
        task.await.context("s3 task")?.context("s3 endpoint")?;
    }
    if let Some(task) = credentials {
        task.abort();
    }
    if let Some(task) = feed {
        task.abort();
    }
    if let Some(e) = edge {
        // Usage is on the bus once this returns; ingestion (here or on any
        // other replica) stores it.
        let usage_written = e.shutdown().await;
        tracing::info!(usage_written, "edge stopped");
    }
    let _ = ingest_stop.send(true);
    if let Some(task) = ingest {
        let _ = task.await;
    }
    if let Some(r) = relay {
        r.shutdown().await;
    }
    if let Some(h) = health {
        h.shutdown().await;
    }
    if let Some(b) = billing_runner {
        b.shutdown().await;
    }
    if let Some(l) = ledger {
        l.shutdown().await;
    }
    if let Some(f) = fleet.as_mut() {
        f.shutdown().await;
    }
    println!("hood stopped");
    Ok(())
}

/// Where the fleet roles of a cluster process find their shared state.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// `agent-gateway` listen address.
    #[arg(long, env = "HOOD_GATEWAY_LISTEN", default_value = "127.0.0.1:9090")]
    pub gateway_listen: SocketAddr,
    /// The agent gateway URL handed to new hosts (`https://HOST:9090`).
    #[arg(long, env = "HOOD_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Sandboxes of the `local` provider, shared by orchestrator replicas.
    #[arg(long, env = "HOOD_HOSTS_DIR")]
    pub hosts_dir: Option<PathBuf>,
    /// Artifact store URL: `file:///PATH` or `s3://BUCKET/PREFIX?endpoint=…`.
    /// Required by the api, agent-gateway and orchestrator roles, the same
    /// on every replica.
    #[arg(long, env = "HOOD_ARTIFACT_STORE")]
    pub artifact_store: Option<String>,
    #[arg(skip)]
    pub orchestrator: bool,
    #[arg(skip)]
    pub agent_gateway: bool,
    #[arg(skip)]
    pub health: bool,
    #[arg(skip)]
    pub edge: bool,
    #[arg(skip)]
    pub billing: bool,
    #[arg(skip)]
    pub storage: bool,
}

/// The shared artifact store of a cluster process: required, and never a
/// silent local default, for the roles that push, serve or start the
/// download of artifacts (api, agent-gateway, orchestrator), so a replica
/// started before `HOOD_ARTIFACT_STORE` was set cannot store a push where
/// the gateway will never look. `None` for processes that need none.
fn cluster_artifact_store(
    roles: &[HttpRole],
    fleet: &FleetArgs,
) -> Result<Option<hood_artifacts::StoreLocation>> {
    let mut needing = Vec::new();
    if roles.contains(&HttpRole::Api) {
        needing.push("api");
    }
    if fleet.agent_gateway {
        needing.push("agent-gateway");
    }
    if fleet.orchestrator {
        needing.push("orchestrator");
    }
    match &fleet.artifact_store {
        Some(url) => hood_artifacts::StoreLocation::parse(url)
            .map(Some)
            .context("HOOD_ARTIFACT_STORE"),
        None if needing.is_empty() => Ok(None),
        None => bail!(
            "the {} role{} in cluster mode need{} the shared artifact store: set \
             HOOD_ARTIFACT_STORE (or --artifact-store) to the same URL on every api, \
             agent-gateway and orchestrator replica (file:///PATH for a directory they all \
             reach, or s3://BUCKET/PREFIX?endpoint=…), so that what `hood artifact push` \
             stores is what hosts download. There is no default in cluster mode; `hood up` \
             keeps $HOOD_HOME/artifacts",
            needing.join(" and "),
            if needing.len() == 1 { "" } else { "s" },
            if needing.len() == 1 { "s" } else { "" },
        ),
    }
}

/// `hood migrate`: applies the schema as its own step.
pub async fn migrate(database_url: &str) -> Result<()> {
    let store = hood_store::connect(database_url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(database_url)))?;
    let applied = store.migrate().await.context("applying migrations")?;
    if applied.is_empty() {
        println!("schema is up to date");
    } else {
        let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!("applied migrations: {}", list.join(", "));
    }
    Ok(())
}

/// Cluster replicas must share one master key: from `HOOD_MASTER_KEY`, or
/// a `master.key` file under `$HOOD_HOME` placed there by the operator.
fn cluster_master_key(home: &Path) -> Result<MasterKey> {
    if let Ok(b64) = std::env::var("HOOD_MASTER_KEY") {
        return MasterKey::from_base64(b64.trim())
            .context("HOOD_MASTER_KEY is not a base64 32-byte key");
    }
    let path = home.join("master.key");
    if path.exists() {
        return Ok(MasterKey::load_or_create(&path)
            .context("loading the master key")?
            .0);
    }
    bail!(
        "cluster mode needs the installation master key shared by every replica: set HOOD_MASTER_KEY \
         (base64 of 32 random bytes, e.g. `head -c32 /dev/urandom | base64`) or place it in {}",
        path.display()
    )
}

async fn build_state(
    store: Arc<dyn Store>,
    master: &MasterKey,
    opts: &ServerOpts,
) -> Result<AppState> {
    let chains = match &opts.chains_dir {
        Some(dir) => ChainCatalog::load_dir(dir).map_err(|report| {
            anyhow::anyhow!(
                "chain definitions in {} are invalid:\n{report}",
                dir.display()
            )
        })?,
        None => ChainCatalog::builtin().map_err(|report| {
            anyhow::anyhow!("built-in chain definitions are invalid:\n{report}")
        })?,
    };
    let keys = ensure_signing_keys(store.as_ref(), master).await?;
    let tokens =
        TokenIssuer::new(&keys, master, TokenConfig::default()).context("loading signing keys")?;
    let oidc = opts.oidc_issuer.as_ref().map(|issuer| {
        OidcVerifier::new(
            OidcConfig {
                issuer: issuer.clone(),
                audience: opts.oidc_audience.clone(),
                jwks_url: opts.oidc_jwks_url.clone(),
                cache_ttl: Duration::from_secs(300),
            },
            reqwest::Client::new(),
        )
    });
    let config = ApiConfig {
        login_attempts_per_minute: opts.login_rate_per_minute,
    };
    let state = AppState::new(store, tokens, oidc, Arc::new(chains), &config)
        .with_ingress_domain(opts.ingress_domain.clone());
    Ok(match &opts.sku_file {
        Some(path) => state.with_skus(load_skus(path)?),
        None => state,
    })
}

/// The operator's SKUs: a JSON array, each checked (names, shapes, MIG
/// profiles), names unique.
fn load_skus(path: &Path) -> Result<hood_domain::sku::SkuCatalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the SKU file {}", path.display()))?;
    let skus: Vec<hood_domain::sku::Sku> = serde_json::from_str(&text).with_context(|| {
        format!(
            "the SKU file {} is not a JSON array of SKUs",
            path.display()
        )
    })?;
    hood_domain::sku::SkuCatalog::new(skus)
        .with_context(|| format!("the SKU file {} is invalid", path.display()))
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Every 2 s, places the containers wanted running whose current start has
/// no allocation yet (a crash between storing a container and placing it,
/// a restart waiting for its old allocation's room). Replicas may race:
/// each start's allocation has one idempotency key.
fn start_container_reconciler(
    containers: hood_app::ContainerService,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            match containers.reconcile().await {
                Ok(0) => {}
                Ok(placed) => tracing::info!(placed, "placed pending containers"),
                Err(e) => tracing::warn!(error = %e, "placing pending containers failed"),
            }
        }
    })
}

/// The SSH gateway of `hood up` (its host key kept under `home`): on
/// `addr` when given (which must be free), else on the default address
/// unless something else holds it.
async fn start_ssh_gateway(
    addr: Option<SocketAddr>,
    home: &std::path::Path,
    state: &AppState,
    store: Arc<hood_store::SqlStore>,
) -> Result<Option<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)>> {
    let Some(terminals) = state.terminals.clone() else {
        return Ok(None);
    };
    let listener = match addr {
        Some(addr) => crate::listen::bind(addr, crate::listen::UP_SSH).await?,
        None => match tokio::net::TcpListener::bind(DEFAULT_SSH_ADDR).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(addr = DEFAULT_SSH_ADDR, error = %e,
                    "the SSH gateway is off: its default address is taken (set HOOD_SSH_ADDR)");
                return Ok(None);
            }
        },
    };
    let key = hood_ssh::host_key(&home.join("ssh_host_ed25519_key"))?;
    let access = hood_app::SshAccess::new(store, state.containers(), terminals);
    let bound = listener.local_addr()?;
    Ok(Some((bound, hood_ssh::serve(listener, key, access))))
}
