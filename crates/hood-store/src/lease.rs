//! Leader leases: one row per role that elects a leader (`health`), taken
//! and renewed by whichever replica holds it. `generation` rises at every
//! change of holder, and leader-gated writes are fenced by it.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::Timestamp;

/// A held leader lease. `generation` rises at every change of holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub generation: i64,
    pub expires_at: Timestamp,
}

/// Leader election over a lease row.
#[async_trait]
pub trait LeaderLeaseStore: Send + Sync {
    /// Takes or renews the lease `name` for `holder`. `None` while another
    /// holder's lease is unexpired. A new holder gets a higher generation.
    async fn acquire_leader_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>>;
    /// Gives the lease up at once (graceful shutdown) so a standby need not
    /// wait for it to expire.
    async fn release_leader_lease(&self, lease: &Lease) -> StoreResult<()>;
    /// The lease `name` as stored (held or expired), for operators and
    /// tests asking who leads.
    async fn leader_lease(&self, name: &str) -> StoreResult<Option<Lease>>;
}
