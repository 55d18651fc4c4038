//! [`SqlStore`]: the one implementation of every store trait, for SQLite
//! and PostgreSQL alike. One file per resource, each implementing that
//! resource's trait with queries written once against the dialect
//! abstraction (`crate::db`) and rows decoded through `crate::model`.
//!
//! Conventions: a method that writes more than one row (or reads before it
//! writes) runs in one [`Pool::begin_write`] transaction; helpers that work
//! on the caller's transaction take `&mut Tx<'_>` so use cases can compose
//! them (node creation with its workflow, a health cycle's writes).

use crate::db::Pool;
use crate::StoreResult;
use hood_clock::{AlignedClock, Clock};
use std::sync::Arc;
use std::time::Duration;

mod allocation;
mod artifact;
mod audit;
mod billing;
mod checkouts;
mod container;
mod corrections;
mod credits;
mod edge;
mod feed;
mod fleet;
mod health;
mod identity;
mod incident;
mod lease;
mod ledger;
mod meter;
mod node;
mod notification;
mod outbox;
mod retention;
mod rollout;
mod schema;
mod service_account;
mod snapshot;
mod ssh_key;
mod status_page;
mod storage;
mod uptime;
mod usage;
mod workflow;

/// The store over one database, SQLite (embedded mode) or PostgreSQL
/// (cluster mode). Implements [`crate::Store`] and so every resource
/// trait; share it as `Arc<SqlStore>` and coerce to the `Arc<dyn …>` a
/// service needs.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
    /// The database's clock as this process reads it (see
    /// [`crate::clock`]).
    clock: Arc<AlignedClock>,
    /// Keeps `clock` aligned (PostgreSQL); stops with the last clone of the
    /// store, so a dropped store leaves no task holding its connections.
    _alignment: Option<Arc<AbortOnDrop>>,
    /// Whether ledger writes keep the Merkle log: always, but in a
    /// benchmark store (see [`crate::ConnectOptions::ledger_log`]).
    ledger_log: ledger::LogMode,
}

/// Aborts a background task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often a PostgreSQL store re-measures its offset to the server's
/// clock.
const CLOCK_ALIGNMENT_EVERY: Duration = Duration::from_secs(10);

impl SqlStore {
    /// Opens a store from a URL: `sqlite://PATH` (created if missing) or
    /// `postgres://…`. Does not migrate: in cluster mode that is `hood
    /// migrate`'s job, never a server's.
    ///
    /// On PostgreSQL the store's clock is aligned to the server's at once
    /// and every 10 s after (replicas judge leases by it); SQLite is
    /// embedded, its clock is this machine's.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, crate::ConnectOptions::default()).await
    }

    /// [`Self::connect`] with options; only benchmarks pass other than the
    /// default (see [`crate::ConnectOptions`]).
    pub async fn connect_with(url: &str, options: crate::ConnectOptions) -> StoreResult<Self> {
        let mut store = Self {
            pool: Pool::open(url).await?,
            clock: AlignedClock::over(hood_clock::system()),
            _alignment: None,
            ledger_log: if options.ledger_log {
                ledger::LogMode::Kept
            } else {
                ledger::LogMode::Skipped
            },
        };
        if store.pool.backend() == crate::Backend::Postgres {
            crate::clock::align_clock(&store, &store.clock).await?;
            let clock = Arc::clone(&store.clock);
            let pool = store.pool.clone();
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(CLOCK_ALIGNMENT_EVERY).await;
                    let sent = clock.local_now();
                    match read_database_now(&pool).await {
                        Ok(now) => clock.align(now, sent),
                        Err(e) => tracing::warn!(
                            error = %e,
                            "reading the database clock failed; keeping the last offset"
                        ),
                    }
                }
            });
            store._alignment = Some(Arc::new(AbortOnDrop(task.abort_handle())));
        }
        Ok(store)
    }
}

impl SqlStore {
    /// The store's pool, for crate modules outside `datastore/` (the
    /// benchmark anchors in `crate::bench`).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

async fn read_database_now(pool: &Pool) -> StoreResult<hood_domain::Timestamp> {
    let sql = format!("SELECT {}", pool.backend().now_millis());
    let ms = crate::db::query_scalar::<i64>(sql).fetch_one(pool).await?;
    Ok(hood_domain::Timestamp::from_millis(ms))
}

#[async_trait::async_trait]
impl crate::clock::DatabaseClock for SqlStore {
    async fn database_now(&self) -> StoreResult<hood_domain::Timestamp> {
        read_database_now(&self.pool).await
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::artifact::ArtifactCatalog;
    use crate::edge::{EdgeStore, RpcKeyStore};
    use crate::fleet::{FleetStore, HostFilter};
    use crate::health::HealthStore;
    use crate::incident::IncidentStore;
    use crate::lease::LeaderLeaseStore;
    use crate::node::NodeStore;
    use crate::notification::NotificationStore;
    use crate::uptime::UptimeStore;
    use crate::usage::UsageStore;
    use crate::workflow::{WorkflowFilter, WorkflowStore};
    use crate::{IdentityStore, OutboxStore, Store};
    use hood_domain::{OrgId, RpcKeyId, Timestamp};
    use std::sync::Arc;

    /// What a service that takes one narrow trait gets: the concrete store
    /// coerces to each `Arc<dyn …>`, and every one answers on its own.
    #[tokio::test]
    async fn the_store_serves_each_resource_trait_as_its_own_object() {
        let store = crate::connect("sqlite::memory:").await.expect("open");
        let wiring: Arc<dyn Store> = store.clone();
        wiring.migrate().await.expect("migrate");
        let org = OrgId::from_uuid(uuid::Uuid::now_v7());

        let identity: Arc<dyn IdentityStore> = store.clone();
        assert_eq!(identity.count_users().await.expect("users"), 0);
        let outbox: Arc<dyn OutboxStore> = store.clone();
        assert!(outbox.outbox_pending(10).await.expect("outbox").is_empty());
        let workflows: Arc<dyn WorkflowStore> = store.clone();
        let all = WorkflowFilter::default();
        assert!(workflows
            .list_workflows(&all)
            .await
            .expect("runs")
            .is_empty());
        let fleet: Arc<dyn FleetStore> = store.clone();
        let hosts = HostFilter::default();
        assert!(fleet.list_hosts(&hosts).await.expect("hosts").is_empty());
        let artifacts: Arc<dyn ArtifactCatalog> = store.clone();
        assert!(artifacts
            .list_artifacts()
            .await
            .expect("artifacts")
            .is_empty());
        let nodes: Arc<dyn NodeStore> = store.clone();
        assert!(nodes.list_nodes(None).await.expect("nodes").is_empty());
        let health: Arc<dyn HealthStore> = store.clone();
        assert!(health.health_snapshot().await.expect("snapshot").is_empty());
        let leases: Arc<dyn LeaderLeaseStore> = store.clone();
        let lease = leases
            .acquire_leader_lease("health", "me", 1_000, Timestamp(1))
            .await
            .expect("lease");
        assert_eq!(lease.map(|l| l.generation), Some(1));
        let incidents: Arc<dyn IncidentStore> = store.clone();
        let filter = Default::default();
        assert!(incidents
            .list_incidents(org, &filter)
            .await
            .expect("incidents")
            .is_empty());
        let notifications: Arc<dyn NotificationStore> = store.clone();
        assert!(notifications
            .list_channels(org)
            .await
            .expect("channels")
            .is_empty());
        let uptime: Arc<dyn UptimeStore> = store.clone();
        assert!(uptime.uptime_cursors().await.expect("cursors").is_empty());
        let keys: Arc<dyn RpcKeyStore> = store.clone();
        assert!(keys.list_rpc_keys(org).await.expect("keys").is_empty());
        let usage: Arc<dyn UsageStore> = store.clone();
        let key = RpcKeyId::from_uuid(uuid::Uuid::now_v7());
        assert_eq!(usage.count_usage_events(key).await.expect("usage"), 0);
        let edge: Arc<dyn EdgeStore> = store;
        assert!(edge.serving_nodes().await.expect("serving").is_empty());
    }
}
