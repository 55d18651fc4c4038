//! Rows of the outbox.

use crate::codec::{self, opt_ts};
use crate::outbox::OutboxRecord;
use crate::StoreError;
use hood_domain::event::DomainEvent;
use hood_domain::Timestamp;

pub(crate) const OUTBOX_COLUMNS: &str =
    "seq, id, subject, aggregate_type, aggregate_id, payload, created_at, published_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    seq: i64,
    id: String,
    subject: String,
    aggregate_type: String,
    aggregate_id: String,
    payload: String,
    created_at: i64,
    published_at: Option<i64>,
}

impl TryFrom<OutboxRow> for OutboxRecord {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        Ok(OutboxRecord {
            id: codec::parse_id("outbox.id", &r.id)?,
            seq: r.seq,
            event: DomainEvent {
                subject: r.subject,
                aggregate_type: r.aggregate_type,
                aggregate_id: r.aggregate_id,
                payload: codec::parse_json("outbox.payload", &r.payload)?,
            },
            created_at: Timestamp(r.created_at),
            published_at: opt_ts(r.published_at),
        })
    }
}
