//! Domain events: what the transactional outbox announces. Each event is
//! written in the same transaction as the change it describes.

use serde::{Deserialize, Serialize};

/// An event to be published on the bus after its transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// Dotted subject, e.g. `identity.org.created`.
    pub subject: String,
    /// Aggregate type and id the event is about (`org`, uuid).
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// JSON payload (never contains a secret).
    pub payload: serde_json::Value,
}
