//! The orchestrator role.
//!
//! Node lifecycles run as durable sagas (`hood-saga`): `provision-node`,
//! `migrate-node` and `terminate-node`. Each step is idempotent (ids derived from the workflow
//! id, create-if-absent everywhere), so a crash at any point resumes from
//! the journal without duplicating a host or a process.

mod keys;
mod migrate;
mod plan;
mod provision;
mod services;
mod steps;
mod terminate;

pub use keys::NodeKeys;
pub use plan::{required_artifacts, workload_plan, PlanError};
pub use services::{Orchestrator, Services, Timings};

/// Workflow names and versions. A journaled run of a version this binary
/// does not know is refused by the engine, never mis-replayed.
pub mod workflows {
    pub const PROVISION_NODE: (&str, i64) = ("provision-node", 1);
    pub const TERMINATE_NODE: (&str, i64) = ("terminate-node", 1);

    pub fn provision_id(node: hood_domain::NodeId) -> String {
        format!("provision-node-{node}")
    }

    pub fn terminate_id(node: hood_domain::NodeId) -> String {
        format!("terminate-node-{node}")
    }

    pub const MIGRATE_NODE: (&str, i64) = ("migrate-node", 1);

    /// One run per outage: the node version at which it was seen down.
    pub fn migrate_id(node: hood_domain::NodeId, version: i64) -> String {
        format!("migrate-node-{node}-{version}")
    }
}
