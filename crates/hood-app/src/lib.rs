//! Hood's use cases.
//!
//! Each public method of a service here is one thing a user or an operator
//! asks for ("create a node", "terminate a node"). It validates what can be
//! known early, applies the domain's rules, and owns the transaction
//! boundary: everything the request changes commits together (a node and
//! the workflow that provisions it are one transaction), so a crash never
//! leaves half of a request behind. Transports (the HTTP layer, later
//! others) authenticate the caller, resolve its organization and
//! permission, call a use case, and render its answer; they hold no
//! business rules. Each service takes only the narrow store traits it uses.
//!
//! Modelled on omicron's `nexus/src/app`, between its HTTP entry points and
//! its datastore.

pub mod allocations;
pub mod billing;
pub mod containers;
pub mod error;
pub mod ledger;
pub mod nodes;
pub mod rollouts;
pub mod snapshots;
pub mod ssh;
pub mod terminals;

pub use allocations::{
    AllocationAccepted, AllocationService, BudgetStatus, CreateAllocation, HostUsage,
};
pub use billing::{BillingService, BillingStores, CreateSubscription};
pub use containers::{ContainerService, ContainerStatus, CreateContainer};
pub use error::{AppError, AppResult};
pub use ledger::{LedgerService, Viewer};
pub use nodes::{CreateNode, KeyExport, NodeAccepted, NodeService};
pub use rollouts::{CreateRollout, RolloutDetail, RolloutService};
pub use snapshots::{BackupSchedule, ScheduleReport, SnapshotAccepted, SnapshotService};
pub use ssh::{SshAccess, SshTarget};
pub use terminals::TerminalService;
