//! Hood's domain core.
//!
//! Pure Rust: no I/O, no async runtime, no SQL. Everything here is a value, a
//! rule or a state machine that the outer layers (store, engines, services)
//! call into. Keeping it pure is what lets it be tested exhaustively.

pub mod agent;
pub mod allocation;
pub mod artifact;
pub mod audit;
pub mod backoff;
pub mod billing;
pub mod container;
pub mod event;
pub mod feed;
pub mod gcra;
pub mod health;
pub mod host;
pub mod host_metrics;
pub mod identity;
pub mod ids;
pub mod incident;
pub mod label;
pub mod ledger;
pub mod lifecycle;
pub mod machine;
pub mod net;
pub mod node;
pub mod node_workflows;
pub mod notification;
pub mod placement;
pub mod retention;
pub mod rollout;
pub mod rpc;
pub mod scope;
pub mod sku;
pub mod snapshot;
pub mod ssh_key;
pub mod storage;
pub mod time;
pub mod usage;
pub mod validate;
pub mod workflow;
pub mod workload;

pub use ids::*;
pub use time::Timestamp;
