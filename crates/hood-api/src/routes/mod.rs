//! Route groups. Each role serves a subset; `hood up` serves them all.

pub mod chains;
pub mod identity;
pub mod ops;
