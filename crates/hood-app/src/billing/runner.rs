//! The billing role's loop: while this replica leads (a lease, fenced on
//! every invoice write), charge prepaid credits every tick, and every
//! interval close the periods that ended, chase unpaid invoices and post
//! to the ledger whatever it has not confirmed yet.

use super::BillingService;
use hood_leader::{LeaderElector, LeaderHandle};
use hood_store::lease::LeaderLeaseStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The lease the billing replicas compete for.
pub const BILLING_LEASE: &str = "billing";
/// Records posted per pass.
const POST_BATCH: i64 = 500;

/// One pass: close, then post.
pub async fn billing_once(
    billing: &BillingService,
    lease: &hood_store::lease::Lease,
) -> crate::AppResult<()> {
    let report = billing.close_periods(None, Some(lease)).await?;
    if !report.issued.is_empty() || !report.failed.is_empty() {
        tracing::info!(
            issued = report.issued.len(),
            failed = report.failed.len(),
            "billing period close"
        );
    }
    let dunning = billing.dunning().await?;
    if dunning != super::dunning::DunningReport::default() {
        tracing::info!(?dunning, "billing dunning");
    }
    let posted = billing.post_pending(POST_BATCH).await?;
    if posted > 0 {
        tracing::info!(posted, "billing records posted to the ledger");
    }
    let opened = billing.retry_checkouts(POST_BATCH).await?;
    if opened > 0 {
        tracing::info!(opened, "queued checkouts opened");
    }
    let budgets = billing.check_budgets().await?;
    if budgets.alerts + budgets.capped + budgets.lifted > 0 {
        tracing::info!(?budgets, "billing budgets");
    }
    Ok(())
}

/// How often the loop works, and how long its lease lasts.
#[derive(Debug, Clone, Copy)]
pub struct RunnerTiming {
    /// Period close, dunning, ledger postings, queued checkouts, budgets.
    pub interval: Duration,
    /// Prepaid credit accrual.
    pub credits_tick: Duration,
    pub lease_ttl: Duration,
}

/// The running loop.
pub struct BillingRunner {
    leader: LeaderHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BillingRunner {
    /// Competes for the billing lease (held for `timing.lease_ttl`,
    /// renewed every third of it) as `holder`; while leading, accrues
    /// credits every `timing.credits_tick` and runs a full pass every
    /// `timing.interval` (and at once on taking the lease).
    pub fn spawn(
        billing: BillingService,
        leases: Arc<dyn LeaderLeaseStore>,
        holder: &str,
        timing: RunnerTiming,
    ) -> Self {
        let RunnerTiming {
            interval,
            credits_tick,
            lease_ttl,
        } = timing;
        let clock = Arc::clone(billing.clock());
        let leader = LeaderElector::new(
            leases,
            Arc::clone(&clock),
            BILLING_LEASE,
            holder,
            lease_ttl,
            lease_ttl / 3,
        )
        .spawn();
        let mut leading = leader.watch();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut elector_gone = false;
            let mut last_full: Option<std::time::Instant> = None;
            loop {
                let lease = leading
                    .borrow()
                    .clone()
                    .filter(|l| l.expires_at > clock.now());
                if let Some(lease) = lease {
                    match billing.accrue_credits().await {
                        Ok(r) if r.stopped + r.resumed > 0 => {
                            tracing::info!(
                                stopped = r.stopped,
                                resumed = r.resumed,
                                "credit accrual"
                            );
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "credit accrual failed"),
                    }
                    if last_full.is_none_or(|t| t.elapsed() >= interval) {
                        last_full = Some(std::time::Instant::now());
                        if let Err(e) = billing_once(&billing, &lease).await {
                            tracing::warn!(error = %e, "billing pass failed; retrying next tick");
                        }
                    }
                } else {
                    last_full = None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval.min(credits_tick)) => {}
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
