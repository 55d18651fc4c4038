//! The ledger's services (design §8), over the store's `LedgerStore`.
//!
//! * [`log::LedgerLog`]: the checkpoint signing key (Ed25519, its seed
//!   sealed under the master key), signed C2SP checkpoints, inclusion and
//!   consistency proofs assembled from the stored subtrees.
//! * [`verify`]: the full audit of a database or of a directory of exports,
//!   and one proof checked offline with only the public key.
//! * [`export::Exporter`]: daily exports to the object store.
//! * [`upkeep::Upkeep`]: the leader-gated loop (expiry, scheduled
//!   checkpoints, exports).
//! * [`wire`]: the records as the API, the exports and the CLI show them.
//!
//! The ledger's rules live in `hood_domain::ledger`; its tables and
//! transactions in `hood-store`; the tree's arithmetic in `hood-tlog`.

pub mod error;
pub mod export;
pub mod log;
pub mod upkeep;
pub mod verify;
pub mod wire;

pub use error::{LedgerError, LedgerResult};
pub use export::Exporter;
pub use log::{LedgerLog, DEFAULT_ORIGIN};
pub use upkeep::{Upkeep, UpkeepConfig};
pub use verify::{verify_export, verify_proof, verify_store, VerifyReport};
