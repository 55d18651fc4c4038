//! The database's clock. Where replicas share a database, leases and due
//! times are judged by its clock, not by each replica's own: a replica
//! whose clock runs ahead would otherwise take a lease that is still held.
//! Every store keeps a `hood_clock::AlignedClock` aligned to it
//! ([`DatabaseClock::clock`]); services judge time by that.

use crate::StoreResult;
use async_trait::async_trait;
use hood_clock::{AlignedClock, Clock};
use hood_domain::Timestamp;
use std::sync::Arc;

/// Reads the database server's clock.
#[async_trait]
pub trait DatabaseClock: Send + Sync {
    /// The database's time now, in Unix milliseconds (one round trip).
    async fn database_now(&self) -> StoreResult<Timestamp>;
    /// The database's time as this process keeps it without a round trip:
    /// the local clock plus a measured offset, kept aligned in the
    /// background where the database is shared (PostgreSQL). Judge leases
    /// and due times by it.
    fn clock(&self) -> Arc<dyn Clock>;
}

/// Measures the offset of `clock` to the database once.
pub async fn align_clock(db: &dyn DatabaseClock, clock: &AlignedClock) -> StoreResult<()> {
    let sent = clock.local_now();
    let reference = db.database_now().await?;
    clock.align(reference, sent);
    Ok(())
}
