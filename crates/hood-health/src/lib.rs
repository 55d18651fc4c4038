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
mod notify;
mod observe;
mod service;
mod uptime;

pub use config::{DeliveryPolicy, HealthConfig};
pub use evaluator::{CycleReport, Evaluator};
pub use hood_leader::{LeaderElector, LeaderHandle};
pub use notify::{channel_aad, NotificationDispatcher, NOTIFY_CONSUMER};
pub use service::{HealthDeps, HealthService, HealthServiceHandle};
pub use uptime::{materialize_uptime, uptime_report, UptimeReport};

/// What the health role asks of the orchestrator (a port: implemented
/// there, wired by the binary).
pub use hood_ports::NodeRecovery;

/// Lease names of the singleton loops.
pub mod leases {
    pub const HEALTH: &str = "health";
}
