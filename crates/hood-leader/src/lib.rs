//! Leader election over a lease row (design §1: singleton loops are
//! leader-elected with fencing). On PostgreSQL several replicas compete; on
//! SQLite the one embedded process always wins the lease.

use hood_clock::Clock;
use hood_store::health::Lease;
use hood_store::lease::LeaderLeaseStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Competes for one lease until shut down.
pub struct LeaderElector {
    store: Arc<dyn LeaderLeaseStore>,
    clock: Arc<dyn Clock>,
    name: String,
    holder: String,
    ttl: Duration,
    renew_every: Duration,
}

/// The running election: who leads, as seen by this replica.
pub struct LeaderHandle {
    lease: watch::Receiver<Option<Lease>>,
    clock: Arc<dyn Clock>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LeaderElector {
    /// `clock` judges the lease: the database's, where replicas share one.
    pub fn new(
        store: Arc<dyn LeaderLeaseStore>,
        clock: Arc<dyn Clock>,
        name: &str,
        holder: &str,
        ttl: Duration,
        renew_every: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
            renew_every,
        }
    }

    pub fn spawn(self) -> LeaderHandle {
        let (lease_tx, lease) = watch::channel(None);
        let clock = Arc::clone(&self.clock);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
            loop {
                let now = self.clock.now();
                let held = match self
                    .store
                    .acquire_leader_lease(&self.name, &self.holder, ttl_ms, now)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "lease renewal failed; standing down");
                        None
                    }
                };
                let was = lease_tx.borrow().as_ref().map(|l: &Lease| l.generation);
                let is = held.as_ref().map(|l| l.generation);
                if was != is {
                    match &held {
                        Some(l) => {
                            tracing::info!(lease = %self.name, holder = %self.holder, generation = l.generation, "leading")
                        }
                        None => {
                            tracing::info!(lease = %self.name, holder = %self.holder, "standing by")
                        }
                    }
                }
                lease_tx.send_replace(held);
                tokio::select! {
                    _ = tokio::time::sleep(self.renew_every) => {}
                    _ = stopped.changed() => break,
                }
            }
            let last = lease_tx.send_replace(None);
            if let Some(l) = last {
                if let Err(e) = self.store.release_leader_lease(&l).await {
                    tracing::warn!(lease = %self.name, error = %e, "could not release lease");
                }
            }
        });
        LeaderHandle {
            lease,
            clock,
            stop,
            task,
        }
    }
}

impl LeaderHandle {
    /// The lease this replica holds, if it leads and the lease has not run
    /// out by its own clock. Every leader-gated write carries it, and the
    /// store refuses it once another replica has taken over.
    pub fn current(&self) -> Option<Lease> {
        let lease = self.lease.borrow().clone()?;
        (lease.expires_at > self.clock.now()).then_some(lease)
    }

    /// Waits until this replica leads (tests, and loops that idle).
    pub async fn changed(&mut self) {
        let _ = self.lease.changed().await;
    }

    /// A receiver for loops that need to watch leadership.
    pub fn watch(&self) -> watch::Receiver<Option<Lease>> {
        self.lease.clone()
    }

    /// Stops competing and gives the lease up so a standby takes over now.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
