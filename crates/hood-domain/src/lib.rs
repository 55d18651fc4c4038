//! Hood's domain core.
//!
//! Pure Rust: no I/O, no async runtime, no SQL. Everything here is a value, a
//! rule or a state machine that the outer layers (store, engines, services)
//! call into. Keeping it pure is what lets it be tested exhaustively.

pub mod backoff;
pub mod event;
pub mod gcra;
pub mod health;
pub mod identity;
pub mod ids;
pub mod lifecycle;
pub mod machine;
pub mod net;
pub mod node;
pub mod node_workflows;
pub mod rpc;
pub mod time;
pub mod validate;
pub mod workload;

pub use ids::*;
pub use time::Timestamp;
