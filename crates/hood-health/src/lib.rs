//! The health role (design §6).
//!
//! Singleton loops (evaluation, uptime, cleanup) run only on the replica
//! that holds the leader lease, and every write they make is fenced by the
//! lease generation. The notification dispatcher and the outbox relay are
//! not singletons: they share work through the bus and `SKIP LOCKED`.
//!
//! The rules themselves are pure functions in `hood_domain::health`; this
//! crate reads a snapshot, applies them, and writes the outcome.

mod cleanup;
mod config;
mod evaluator;
mod incidents;
mod leader;
mod notify;
mod observe;
mod service;
mod uptime;

pub use config::{DeliveryPolicy, HealthConfig};
pub use evaluator::{CycleReport, Evaluator};
pub use leader::{LeaderElector, LeaderHandle};
pub use notify::{channel_aad, NotificationDispatcher, NOTIFY_CONSUMER};
pub use service::{HealthDeps, HealthService, HealthServiceHandle};
pub use uptime::{materialize_uptime, uptime_report, UptimeReport};

use async_trait::async_trait;
use hood_domain::{HostId, NodeId};

/// What the health role asks of the orchestrator (implemented there, wired
/// by the binary): the health role decides, workflows act.
#[async_trait]
pub trait NodeRecovery: Send + Sync {
    /// Starts (or finds) the migration of `node` down at `version`; the
    /// workflow id is derived from both, so every replica asking about the
    /// same outage starts the same run.
    async fn start_migration(&self, node: NodeId, version: i64) -> Result<String, String>;
    /// Deletes a host nothing runs on any more (orphaned, or quarantined
    /// and seen again).
    async fn reap_host(&self, host: HostId) -> Result<(), String>;
}

/// Lease names of the singleton loops.
pub mod leases {
    pub const HEALTH: &str = "health";
}
