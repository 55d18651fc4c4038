//! The health role as a set of loops: leader election; evaluation, uptime
//! and cleanup while leading; notification consumer and sender always.

use crate::cleanup::{cleanup_once, CleanupPolicy};
use crate::config::HealthConfig;
use crate::evaluator::{CycleReport, Evaluator};
use crate::notify::NotificationDispatcher;
use crate::uptime::materialize_uptime;
use crate::NodeRecovery;
use hood_bus::EventBus;
use hood_chains::ChainCatalog;
use hood_clock::Clock;
use hood_identity::master_key::MasterKey;
use hood_leader::{LeaderElector, LeaderHandle};
use hood_notify::Notifier;
use hood_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the health role is built from.
pub struct HealthDeps {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub chains: Arc<ChainCatalog>,
    pub master: MasterKey,
    pub notifier: Notifier,
    /// `None` in a process that cannot start workflows (then nothing
    /// migrates from here; tests of evaluation alone).
    pub recovery: Option<Arc<dyn NodeRecovery>>,
    /// Judges leases, heartbeats and retries: the database's clock where
    /// replicas share one (`hood_store::clock`).
    pub clock: Arc<dyn Clock>,
}

/// The health role of one replica.
pub struct HealthService;

/// The running loops.
pub struct HealthServiceHandle {
    leader: LeaderHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    cycles: watch::Receiver<Option<CycleReport>>,
}

impl HealthService {
    pub fn spawn(config: HealthConfig, deps: HealthDeps) -> HealthServiceHandle {
        let leader = LeaderElector::new(
            deps.store.clone(),
            Arc::clone(&deps.clock),
            crate::leases::HEALTH,
            &config.replica,
            config.lease_ttl(),
            config.lease_renew_every(),
        )
        .spawn();
        let (stop, stopped) = watch::channel(false);
        let (cycle_tx, cycles) = watch::channel(None);
        let evaluator = Evaluator::new(
            deps.store.clone(),
            &deps.chains,
            config.rules,
            deps.recovery.clone(),
            config.reference_rpc.clone(),
        )
        .with_clock(Arc::clone(&deps.clock));
        let mut tasks = Vec::new();

        // Evaluation: every interval, when leading.
        {
            let lease = leader.watch();
            let mut stopped = stopped.clone();
            let every = config.evaluate_every;
            let clock = Arc::clone(&deps.clock);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    let Some(held) = live(&lease, clock.as_ref()) else {
                        continue;
                    };
                    match evaluator.run_cycle(&held).await {
                        Ok(report) => {
                            if report.transitions > 0
                                || report.incidents_opened > 0
                                || report.migrations_started > 0
                            {
                                tracing::info!(
                                    nodes = report.nodes,
                                    transitions = report.transitions,
                                    incidents_opened = report.incidents_opened,
                                    incidents_updated = report.incidents_updated,
                                    migrations = report.migrations_started,
                                    "health cycle"
                                );
                            } else {
                                tracing::debug!(
                                    nodes = report.nodes,
                                    read_ms = report.read_ms,
                                    "health cycle"
                                );
                            }
                            cycle_tx.send_replace(Some(report));
                        }
                        Err(StoreError::Fenced(_)) => {
                            tracing::info!("lost the health lease mid-cycle; nothing written")
                        }
                        Err(e) => tracing::warn!(error = %e, "health cycle failed"),
                    }
                }
            }));
        }

        // Uptime materialization and cleanup, when leading.
        {
            let lease = leader.watch();
            let mut stopped = stopped.clone();
            let store = Arc::clone(&deps.store);
            let recovery = deps.recovery.clone();
            let clock = Arc::clone(&deps.clock);
            let (uptime_every, cleanup_every) = (config.uptime_every, config.cleanup_every);
            let policy = CleanupPolicy {
                orphan_after: config.orphan_host_after,
                maintenance_max: config.maintenance_max,
                retention: config.retention,
            };
            tasks.push(tokio::spawn(async move {
                let mut uptime = tokio::time::interval(uptime_every);
                let mut cleanup = tokio::time::interval(cleanup_every);
                uptime.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                cleanup.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = uptime.tick() => {
                            let Some(held) = live(&lease, clock.as_ref()) else { continue };
                            match materialize_uptime(store.as_ref(), &held, clock.now()).await {
                                Ok(n) if n > 0 => tracing::debug!(hours = n, "uptime materialized"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "uptime materialization failed"),
                            }
                        }
                        _ = cleanup.tick() => {
                            if live(&lease, clock.as_ref()).is_none() { continue }
                            match cleanup_once(store.as_ref(), store.as_ref(), store.as_ref(), recovery.as_deref(), &policy, clock.now()).await {
                                Ok(r) => tracing::debug!(tokens = r.tokens_deleted, hosts = r.hosts_reaped, maintenance = r.maintenance_released, usage_events = r.pruned.usage_events, workflows = r.pruned.finished_workflows, step_executions = r.pruned.step_executions, agent_events = r.pruned.agent_events, outbox = r.pruned.published_outbox, agent_commands = r.pruned.finished_agent_commands, notifications = r.pruned.feed_items, host_samples = r.pruned.host_samples, "cleanup pass"),
                                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
                            }
                        }
                        _ = stopped.changed() => return,
                    }
                }
            }));
        }

        // Notifications: not leader-gated.
        let dispatcher = NotificationDispatcher::new(
            deps.store.clone(),
            deps.store.clone(),
            deps.master.clone(),
            deps.notifier.clone(),
            config.delivery.clone(),
        )
        .with_clock(Arc::clone(&deps.clock));
        tasks.push(tokio::spawn(
            dispatcher
                .clone()
                .consume(Arc::clone(&deps.bus), stopped.clone()),
        ));
        tasks.push(tokio::spawn(dispatcher.send_loop(stopped)));

        HealthServiceHandle {
            leader,
            stop,
            tasks,
            cycles,
        }
    }
}

/// The lease if this replica holds a live one.
fn live(
    lease: &watch::Receiver<Option<hood_store::health::Lease>>,
    clock: &dyn Clock,
) -> Option<hood_store::health::Lease> {
    let held = lease.borrow().clone()?;
    (held.expires_at > clock.now()).then_some(held)
}

impl HealthServiceHandle {
    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        self.leader.current().is_some()
    }

    /// The latest cycle this replica ran.
    pub fn last_cycle(&self) -> Option<CycleReport> {
        self.cycles.borrow().clone()
    }

    /// Stops every loop and releases the lease.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.leader.shutdown().await;
    }
}
