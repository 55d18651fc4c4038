//! What the ledger's services can answer besides success.

use hood_store::StoreError;
use hood_tlog::TlogError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request cannot be answered as asked (a size past the log's end).
    #[error("{0}")]
    Invalid(String),
    /// An audit found the ledger or a proof wrong; the message names where.
    #[error("{0}")]
    Verification(String),
    /// The checkpoint key is missing, sealed under another master key, or
    /// damaged.
    #[error("ledger signing key: {0}")]
    Key(String),
    #[error("ledger export: {0}")]
    Export(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] TlogError),
}

pub type LedgerResult<T> = Result<T, LedgerError>;
