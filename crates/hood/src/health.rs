//! Wiring of the health role and the event bus: `hood up` runs both in
//! process (in-process bus); `hood serve --role health` uses NATS JetStream.

use anyhow::{Context, Result};
use hood_bus::{EventBus, OutboxRelay, RelayConfig, RelayHandle};
use hood_chains::ChainCatalog;
use hood_domain::health::HealthRules;
use hood_domain::retention::RetentionPolicy;
use hood_health::{HealthConfig, HealthDeps, HealthService, HealthServiceHandle};
use hood_identity::master_key::MasterKey;
use hood_orchestrator::Orchestrator;
use hood_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Health and bus settings (every interval configurable so tests run fast).
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub bus: crate::bus::BusArgs,
    /// Health evaluation period, ms.
    #[arg(long, env = "HOOD_HEALTH_INTERVAL_MS", default_value_t = 30_000)]
    pub health_interval_ms: u64,
    /// A heartbeat older than this is a miss, ms.
    #[arg(long, env = "HOOD_HEARTBEAT_TIMEOUT_MS", default_value_t = 45_000)]
    pub heartbeat_timeout_ms: u64,
    /// A down node waits this long before it is migrated, ms.
    #[arg(long, env = "HOOD_MIGRATION_GRACE_MS", default_value_t = 120_000)]
    pub migration_grace_ms: u64,
    /// Minimum time between two migrations of a node, ms.
    #[arg(long, env = "HOOD_MIGRATION_COOLDOWN_MS", default_value_t = 1_800_000)]
    pub migration_cooldown_ms: u64,
    /// Unacknowledged incidents escalate after this long, ms.
    #[arg(long, env = "HOOD_ESCALATE_AFTER_MS", default_value_t = 900_000)]
    pub escalate_after_ms: u64,
    /// Uptime materialization period, ms.
    #[arg(long, env = "HOOD_UPTIME_INTERVAL_MS", default_value_t = 300_000)]
    pub uptime_interval_ms: u64,
    /// Cleanup period, ms.
    #[arg(long, env = "HOOD_CLEANUP_INTERVAL_MS", default_value_t = 300_000)]
    pub cleanup_interval_ms: u64,
    /// First retry of a failed notification, ms (doubling).
    #[arg(long, env = "HOOD_NOTIFY_BACKOFF_MS", default_value_t = 5_000)]
    pub notify_backoff_ms: u64,
    /// Telegram Bot API base URL (tests point it at a local receiver).
    #[arg(long, env = "HOOD_TELEGRAM_API_BASE")]
    pub telegram_api_base: Option<String>,
    /// Networks notifications may reach although they are not public
    /// (loopback, private, link-local, …): comma-separated CIDRs, e.g.
    /// `127.0.0.0/8,10.0.0.0/8`. Unset: public addresses only.
    #[arg(long, env = "HOOD_NOTIFY_ALLOW_NETWORKS")]
    pub notify_allow_networks: Option<String>,
    /// Lag reference per chain: `chain=http://rpc,chain2=http://…`.
    #[arg(long, env = "HOOD_REFERENCE_RPC", value_delimiter = ',')]
    pub reference_rpc: Vec<String>,
    /// Days raw usage events are kept (rollups are kept for ever); 0 keeps
    /// them for ever.
    #[arg(long, env = "HOOD_RETENTION_USAGE_EVENTS_DAYS", default_value_t = 90)]
    pub retention_usage_events_days: u32,
    /// Days finished (completed, failed, abandoned) workflows are kept with
    /// their journal; 0 keeps them for ever.
    #[arg(long, env = "HOOD_RETENTION_WORKFLOWS_DAYS", default_value_t = 30)]
    pub retention_workflows_days: u32,
    /// Days step execution logs are kept; 0 keeps them for ever.
    #[arg(long, env = "HOOD_RETENTION_EXECUTION_LOGS_DAYS", default_value_t = 14)]
    pub retention_execution_logs_days: u32,
    /// Days agent events are kept; 0 keeps them for ever.
    #[arg(long, env = "HOOD_RETENTION_AGENT_EVENTS_DAYS", default_value_t = 14)]
    pub retention_agent_events_days: u32,
    /// Days published outbox rows are kept; 0 keeps them for ever.
    #[arg(long, env = "HOOD_RETENTION_OUTBOX_DAYS", default_value_t = 7)]
    pub retention_outbox_days: u32,
    /// Days finished agent commands are kept (from their deadline); 0
    /// keeps them for ever.
    #[arg(long, env = "HOOD_RETENTION_AGENT_COMMANDS_DAYS", default_value_t = 7)]
    pub retention_agent_commands_days: u32,
    /// Days users' notifications are kept, read or not; 0 keeps them for
    /// ever.
    #[arg(long, env = "HOOD_RETENTION_NOTIFICATIONS_DAYS", default_value_t = 30)]
    pub retention_notifications_days: u32,
    /// Days the cluster monitor's host samples are kept; 0 keeps them for
    /// ever.
    #[arg(long, env = "HOOD_RETENTION_HOST_METRICS_DAYS", default_value_t = 7)]
    pub retention_host_metrics_days: u32,
}

impl HealthArgs {
    pub fn config(&self) -> Result<HealthConfig> {
        let ms = Duration::from_millis;
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let rules = HealthRules {
            heartbeat_timeout_ms: to_i64(self.heartbeat_timeout_ms),
            migration_grace_ms: to_i64(self.migration_grace_ms),
            migration_cooldown_ms: to_i64(self.migration_cooldown_ms),
            escalate_after_ms: to_i64(self.escalate_after_ms),
            ..HealthRules::default()
        };
        let mut reference_rpc = std::collections::BTreeMap::new();
        for pair in &self.reference_rpc {
            let (chain, url) = pair
                .split_once('=')
                .with_context(|| format!("HOOD_REFERENCE_RPC entry `{pair}` is not chain=url"))?;
            reference_rpc.insert(chain.trim().to_owned(), url.trim().to_owned());
        }
        let mut config = HealthConfig {
            rules,
            evaluate_every: ms(self.health_interval_ms.max(50)),
            uptime_every: ms(self.uptime_interval_ms.max(50)),
            cleanup_every: ms(self.cleanup_interval_ms.max(50)),
            reference_rpc,
            retention: self.retention(),
            ..HealthConfig::default()
        };
        config.delivery.initial_backoff = ms(self.notify_backoff_ms.max(1));
        config.delivery.poll = ms(self.health_interval_ms.clamp(50, 1_000));
        Ok(config)
    }

    /// Retention in days; 0 means "keep for ever".
    pub fn retention(&self) -> RetentionPolicy {
        let days = |d: u32| (d > 0).then_some(d);
        RetentionPolicy {
            usage_events_days: days(self.retention_usage_events_days),
            finished_workflows_days: days(self.retention_workflows_days),
            step_executions_days: days(self.retention_execution_logs_days),
            agent_events_days: days(self.retention_agent_events_days),
            published_outbox_days: days(self.retention_outbox_days),
            finished_agent_commands_days: days(self.retention_agent_commands_days),
            feed_items_days: days(self.retention_notifications_days),
            host_metrics_days: days(self.retention_host_metrics_days),
        }
    }

    /// How notifications are sent, shared by the health role and the API's
    /// channel routes (creation checks, test sends).
    pub fn notifier_config(&self) -> Result<hood_notify::NotifierConfig> {
        let destinations = match &self.notify_allow_networks {
            Some(list) => {
                hood_notify::DestinationPolicy::parse(list).context("HOOD_NOTIFY_ALLOW_NETWORKS")?
            }
            None => hood_notify::DestinationPolicy::default(),
        };
        Ok(hood_notify::NotifierConfig {
            telegram_api_base: self.telegram_api_base.clone(),
            destinations,
            ..hood_notify::NotifierConfig::default()
        })
    }
}

/// The relay and the health loops of one process.
pub struct HealthRole {
    relay: RelayHandle,
    health: HealthServiceHandle,
}

impl HealthRole {
    pub async fn start(
        args: &HealthArgs,
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        chains: Arc<ChainCatalog>,
        master: &MasterKey,
        orchestrator: Orchestrator,
    ) -> Result<Self> {
        let config = args.config()?;
        let relay = OutboxRelay::new(store.clone(), bus.clone(), RelayConfig::default()).spawn();
        let notifier_config = args.notifier_config()?;
        let allowed = notifier_config.destinations.allowed_networks();
        if !allowed.is_empty() {
            let allowed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            tracing::info!(
                networks = %allowed.join(","),
                "notifications may reach these non-public networks"
            );
        }
        let notifier =
            hood_notify::Notifier::new(notifier_config).context("configuring notifications")?;
        tracing::info!(
            bus = bus.kind(),
            interval_ms = args.health_interval_ms,
            "health role starting"
        );
        let health = HealthService::spawn(
            config,
            HealthDeps {
                clock: store.clock(),
                store,
                bus,
                chains,
                master: master.clone(),
                notifier,
                recovery: Some(Arc::new(orchestrator)),
            },
        );
        Ok(Self { relay, health })
    }

    pub async fn shutdown(self) {
        self.health.shutdown().await;
        self.relay.shutdown().await;
    }
}
