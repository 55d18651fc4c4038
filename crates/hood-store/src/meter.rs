//! Billing's meter events: ingest, de-duplicated by the producer's id, and
//! a meter's events over a period.

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::billing::MeterEvent;
use hood_domain::{OrgId, Timestamp};

/// What one ingest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events stored now.
    pub accepted: u64,
    /// Events whose id the organization had sent before (kept as first
    /// stored, whatever this copy says).
    pub duplicates: u64,
}

#[async_trait]
pub trait MeterStore: Send + Sync {
    /// Stores `events` of `org` in one transaction; an id already stored
    /// (or repeated within the batch) is a duplicate, not an error.
    async fn insert_meter_events(
        &self,
        org: OrgId,
        events: &[MeterEvent],
        now: Timestamp,
    ) -> StoreResult<IngestOutcome>;
    /// The events of one meter with `from <= at < to`, oldest first (ties
    /// by id).
    async fn meter_events(
        &self,
        org: OrgId,
        meter: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<MeterEvent>>;
}
