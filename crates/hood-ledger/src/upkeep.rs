//! The ledger's singleton loop, run by whichever replica holds the
//! `ledger-upkeep` lease: voids expired holds, signs a checkpoint when the
//! last one is older than the interval and the log has grown, and writes
//! the daily exports. Each step is idempotent (an expiry's void has an id
//! derived from its hold; a checkpoint is keyed by its size; an export by
//! its day), so a replica that loses the lease mid-step does no harm.

use crate::error::LedgerResult;
use crate::export::Exporter;
use crate::log::LedgerLog;
use hood_domain::ledger::LedgerTimestamp;
use hood_leader::{LeaderElector, LeaderHandle};
use hood_store::lease::LeaderLeaseStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The lease that elects the replica running the upkeep.
pub const UPKEEP_LEASE: &str = "ledger-upkeep";
/// Holds voided per statement.
const EXPIRY_BATCH: i64 = 1_000;

#[derive(Debug, Clone)]
pub struct UpkeepConfig {
    /// How often the leader looks for expired holds.
    pub tick: Duration,
    /// How often a checkpoint is signed (when the log has grown).
    pub checkpoint_every: Duration,
}

impl Default for UpkeepConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(86_400),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpkeepPass {
    pub expired: usize,
    pub checkpoint: Option<u64>,
    pub exported_days: usize,
}

/// The ledger's clock in nanoseconds, from the log's (database-aligned)
/// clock.
pub fn ledger_now(log: &LedgerLog) -> LedgerTimestamp {
    u64::try_from(log.clock().now().millis())
        .unwrap_or(0)
        .saturating_mul(1_000_000)
}

/// One pass of the upkeep (what the leader runs every tick).
pub async fn upkeep_once(
    log: &LedgerLog,
    exporter: Option<&Exporter>,
    config: &UpkeepConfig,
) -> LedgerResult<UpkeepPass> {
    let mut pass = UpkeepPass::default();
    let now = ledger_now(log);
    loop {
        let n = log
            .store()
            .expire_pending_transfers(now, EXPIRY_BATCH)
            .await?;
        pass.expired += n;
        if n < EXPIRY_BATCH as usize {
            break;
        }
    }
    if pass.expired > 0 {
        tracing::info!(expired = pass.expired, "voided expired ledger holds");
    }
    let head = log.store().ledger_head().await?;
    let last = log.store().list_checkpoints(1).await?.into_iter().next();
    let due = match &last {
        None => head.tree_size > 0,
        Some(c) => {
            let age_ms = log.clock().now().millis() - c.created_at.millis();
            c.tree_size < head.tree_size
                && age_ms >= i64::try_from(config.checkpoint_every.as_millis()).unwrap_or(i64::MAX)
        }
    };
    if due {
        pass.checkpoint = Some(log.checkpoint().await?.tree_size);
    }
    if let Some(exporter) = exporter {
        pass.exported_days = exporter.export_due(now).await?.len();
    }
    Ok(pass)
}

/// The running upkeep.
pub struct Upkeep {
    leader: LeaderHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Upkeep {
    /// Competes for the lease as `holder` and runs the upkeep while leading.
    pub fn spawn(
        log: LedgerLog,
        exporter: Option<Exporter>,
        leases: Arc<dyn LeaderLeaseStore>,
        holder: &str,
        config: UpkeepConfig,
    ) -> Self {
        let leader = LeaderElector::new(
            leases,
            Arc::clone(log.clock()),
            UPKEEP_LEASE,
            holder,
            Duration::from_secs(15),
            Duration::from_secs(5),
        )
        .spawn();
        let mut leading = leader.watch();
        let clock = Arc::clone(log.clock());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Run at once on taking the lease, not a tick later.
            let mut elector_gone = false;
            loop {
                let leads = leading
                    .borrow()
                    .as_ref()
                    .is_some_and(|l| l.expires_at > clock.now());
                if leads {
                    if let Err(e) = upkeep_once(&log, exporter.as_ref(), &config).await {
                        tracing::warn!(error = %e, "ledger upkeep failed; retrying next tick");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(config.tick) => {}
                    changed = leading.changed(), if !elector_gone => {
                        elector_gone = changed.is_err();
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Self { leader, stop, task }
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.leader.shutdown().await;
    }
}
