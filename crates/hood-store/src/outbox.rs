//! The transactional outbox: events written in the same transaction as the
//! change they announce, read by the relay that publishes them to the bus.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::event::DomainEvent;
use hood_domain::{EventId, Timestamp};

/// A row of the transactional outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: EventId,
    /// Monotonic sequence assigned by the store; publish order.
    pub seq: i64,
    pub event: DomainEvent,
    pub created_at: Timestamp,
    pub published_at: Option<Timestamp>,
}

/// The transactional outbox, read by the relay that publishes to the bus.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Unpublished events in `seq` order, at most `limit`.
    async fn outbox_pending(&self, limit: i64) -> StoreResult<Vec<OutboxRecord>>;
    /// Marks events published (idempotent).
    async fn outbox_mark_published(&self, ids: &[EventId], now: Timestamp) -> StoreResult<()>;
    /// Locks up to `limit` unpublished rows for this relay, oldest first.
    /// PostgreSQL: a transaction holding the rows `FOR UPDATE SKIP LOCKED`,
    /// so several relays never publish the same row concurrently. SQLite: a
    /// plain read (embedded mode runs one relay).
    async fn outbox_lock_batch(&self, limit: i64) -> StoreResult<Box<dyn OutboxBatch>>;
}

/// Rows of the outbox held by one relay between publishing and marking.
#[async_trait]
pub trait OutboxBatch: Send {
    fn records(&self) -> &[OutboxRecord];
    /// Marks `published` (ids of [`Self::records`]; others are ignored)
    /// published at `now` and releases the batch (commits). Dropping a
    /// batch without calling this releases its rows unpublished.
    async fn finish(self: Box<Self>, published: &[EventId], now: Timestamp) -> StoreResult<()>;
}
