//! The ledger's rules (design §8): strict double entry on TigerBeetle's
//! model, pure.
//!
//! * [`model`]: ledgers (one per asset, fixed scale), accounts with limit
//!   flags and four balances, transfers with TigerBeetle's flags (`linked`,
//!   `pending`, `post_pending_transfer`, `void_pending_transfer`,
//!   `balancing_debit`/`credit`, `closing_debit`/`credit`), unsigned
//!   integer amounts of minor units, ledger-assigned timestamps.
//! * [`engine`]: batches applied to the part of the ledger they touch, one
//!   result per item ([`result`]); linked chains succeed or fail as one;
//!   expired holds are voided; [`engine::replay`] derives every balance from
//!   the log.
//! * [`encoding`]: the canonical bytes each log entry's Merkle leaf hashes.
//!
//! Invariants, proved by the property tests below: a flagged account never
//! passes its limit; Σ debits = Σ credits per ledger, pending and posted;
//! balances equal the replay of the transfers; an id recorded once answers
//! `exists` (same fields) or a conflict (different fields) for ever.

pub mod encoding;
pub mod engine;
pub mod model;
pub mod result;

pub use engine::{create_accounts, create_transfers, expire_pending, replay, Changes, LedgerState};
pub use model::*;
pub use result::{CreateAccountResult, CreateTransferResult};

#[cfg(test)]
mod tests;
