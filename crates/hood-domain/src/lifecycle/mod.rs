//! Lifecycles: the state machines of Hood's resources.
//!
//! Each machine is one enum and one transition table (see
//! [`crate::machine`]). The tables say which moves are *possible*; deciding
//! *when* to make one (heartbeat misses, hysteresis, grace periods, retry
//! budgets) belongs to the evaluators and engines that call them.
//!
//! Grouped by subject:
//! - [`node`]: [`NodeState`] plus the two observation axes [`SyncStatus`] and
//!   [`ApplicationHealth`] (seeds 000/001, design §6);
//! - [`host`]: [`HostState`] (design §4);
//! - [`command`]: [`CommandState`] for durable agent commands (design §4);
//! - [`workflow`]: [`WorkflowState`] and [`StepState`] for sagas (design §3);
//! - [`incident`]: [`IncidentState`] (design §6);
//! - [`subscription`]: [`SubscriptionState`] and [`invoice`]: [`InvoiceState`]
//!   (design §8);
//! - [`rollout`]: [`RolloutState`] and [`RolloutNodeState`] (design §5);
//! - [`allocation`]: [`AllocationState`] (design §11).

pub mod allocation;
pub mod command;
pub mod host;
pub mod incident;
pub mod invoice;
pub mod node;
pub mod rollout;
pub mod subscription;
pub mod workflow;

pub use allocation::AllocationState;
pub use command::CommandState;
pub use host::HostState;
pub use incident::IncidentState;
pub use invoice::InvoiceState;
pub use node::{ApplicationHealth, NodeState, SyncStatus};
pub use rollout::{RolloutNodeState, RolloutState};
pub use subscription::SubscriptionState;
pub use workflow::{StepState, WorkflowState};
