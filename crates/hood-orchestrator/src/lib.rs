//! The orchestrator role.
//!
//! Node lifecycles run as durable sagas (`hood-saga`): `provision-node`,
//! `migrate-node`, `terminate-node`, `suspend-node` / `resume-node`
//! (billing stops an unpaid node and starts it again after a top-up),
//! `upgrade-node` (one node to another version, compensated in reverse)
//! `rollout` (a fleet in health-gated batches of `upgrade-node`),
//! `reconfigure-node` (a node restarted on its recipe's current settings),
//! `snapshot-node` and `restore-node` (its data directory to and from the
//! object store). Each
//! step is idempotent (ids derived from the workflow id, create-if-absent
//! everywhere), so a crash at any point resumes from the journal without
//! duplicating a host or a process.

mod allocations;
mod checks;
mod keys;
mod migrate;
mod orchestrator;
mod plan;
mod provision;
mod reconfigure;
mod rollout;
mod seed;
mod services;
mod snapshot_store;
mod snapshots;
mod steps;
mod suspend;
mod terminate;
mod upgrade;

pub use allocations::{
    AllocationWorker, AllocationWorkerHandle, DEFAULT_LEASE as DEFAULT_ALLOCATION_LEASE,
};
pub use keys::NodeKeys;
pub use orchestrator::Orchestrator;
pub use plan::{required_artifacts, workload_plan, PlanError};
pub use services::{Services, Timings};
pub use snapshot_store::NodeSnapshots;

/// Workflow names, versions and run ids (the contracts live in the domain,
/// where the use cases that start the runs read them too).
pub mod workflows {
    pub use hood_domain::node_workflows::{
        migrate_id, provision_id, reconfigure_id, restore_id, resume_id, rollout_workflow_id,
        snapshot_id, suspend_id, terminate_id, upgrade_id, MIGRATE_NODE, MIGRATE_NODE_V1,
        MIGRATE_NODE_V2, PROVISION_NODE, PROVISION_NODE_V1, RECONFIGURE_NODE, RESTORE_NODE,
        RESUME_NODE, ROLLOUT, SNAPSHOT_NODE, SUSPEND_NODE, TERMINATE_NODE, UPGRADE_NODE,
    };
}
