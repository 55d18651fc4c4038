//! Route groups. Each role serves a subset; `hood up` serves them all.

pub mod allocations;
pub mod artifacts;
pub mod billing;
pub mod budgets;
pub mod chains;
pub mod containers;
pub mod corrections;
pub mod credits;
pub mod edge;
pub mod fleet;
pub mod health;
pub mod identity;
pub mod ingress;
pub mod invoicing;
pub mod keys;
pub mod ledger;
pub mod nodes;
pub mod notifications;
pub mod ops;
pub mod rollouts;
pub mod service_accounts;
pub mod snapshots;
pub mod ssh_keys;
pub mod storage;
pub mod storage_uploads;
pub mod terminal;
