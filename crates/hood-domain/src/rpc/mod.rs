//! The RPC edge's rules (design §7; seed 002 "HoodRun"), one concept per
//! module:
//!
//! * `plan`: plans priced in compute units, as GCRA quotas.
//! * `pricing`: per-method CU prices.
//! * `scope`: RPC key scopes (chains, methods, client IPs, browser
//!   origins), over `method` patterns, `cidr` blocks and `origin`s.
//! * `key`: an RPC key's stored record.
//! * `usage`: usage events, their statuses and rollup buckets.
//! * `cache`: the finality-aware cache rule.
//! * `retry`: which calls may be sent to another upstream again.
//! * `error`: configuration errors.
//!
//! Everything is a pure function of its inputs: the edge does the I/O
//! (secrets, counters, sockets, the cache itself) and asks these rules.
//! Every item is re-exported here, so callers write `hood_domain::rpc::X`.
//!
//! # Compute units
//!
//! A request costs the CU price of its method ([`CuPricing`]); a JSON-RPC
//! batch costs the sum of its items; each message pushed on a WebSocket
//! subscription costs [`SUBSCRIPTION_MESSAGE_CU`]. A plan ([`Plan`]) allows a
//! sustained number of CU per minute with a burst, enforced by GCRA
//! ([`crate::gcra`]) with the request's CU as its cost. HoodRun sold plans
//! in requests per minute; they are expressed here in CU at
//! [`BASELINE_CU`], the price of a cheap call such as `eth_blockNumber`.

mod cache;
mod cidr;
mod error;
mod key;
mod method;
mod origin;
mod plan;
mod pricing;
mod retry;
mod scope;
mod usage;

pub use cache::{cacheability, parse_quantity, Cacheability};
pub use cidr::Cidr;
pub use error::{RpcConfigError, UnknownVariant};
pub use key::RpcKey;
pub use method::{method_matches, MAX_METHOD_LEN};
pub use plan::{Plan, PlanCatalog, BASELINE_CU};
pub use pricing::{CuPricing, SUBSCRIPTION_MESSAGE_CU};
pub use retry::{may_resend, may_resend_all};
pub use scope::{KeyScope, MAX_SCOPE_ENTRIES};
pub use usage::{Granularity, UsageEvent, UsageStatus};

/// Helpers shared by the tests of several rules.
#[cfg(test)]
mod test_support {
    pub(super) fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }
}
