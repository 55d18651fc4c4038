//! The ledger's store: accounts, transfers, the Merkle log of both, signed
//! checkpoints and the checkpoint key.
//!
//! Every write takes the log head's row lock first, so batches commit one
//! after another in log order; then it locks the accounts it touches in id
//! order. One batch is one transaction: the accounts' balances, the new
//! transfers, the pending statuses, the log's leaves and tree nodes and the
//! head move together or not at all.

use crate::clock::DatabaseClock;
use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::ledger::{
    Account, CreateAccountResult, CreateTransferResult, Ledger, LedgerTimestamp, NewAccount,
    NewTransfer, PendingStatus, Transfer,
};
use hood_domain::{AccountId, OrgId, Timestamp, TransferId};
use hood_tlog::{Hash, NodeId};

/// The log as the last commit left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerHead {
    pub tree_size: u64,
    pub root: Hash,
    pub last_timestamp: LedgerTimestamp,
}

/// What a leaf of the log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    Account,
    Transfer,
}

impl LeafKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LeafKind::Account => "account",
            LeafKind::Transfer => "transfer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "account" => Some(LeafKind::Account),
            "transfer" => Some(LeafKind::Transfer),
            _ => None,
        }
    }
}

/// One leaf of the log with the record it stands for, as stored now: a
/// verifier recomputes the hash from the record and compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    /// The leaf index the record's own row claims (`None`: no record); a
    /// verifier checks it is `index`.
    pub record_leaf: Option<u64>,
    pub kind: LeafKind,
    /// The account or transfer id the leaf names.
    pub ref_id: String,
    pub hash: Hash,
    pub record: LogRecord,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    Account(Account),
    Transfer(Transfer),
    /// The leaf names a record the tables no longer hold.
    Missing,
}

/// Accounts to list, oldest first, after a timestamp cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountQuery {
    /// Only this organization's accounts; `None`: every account.
    pub org_id: Option<OrgId>,
    /// Only the platform's own accounts (no organization).
    pub platform_only: bool,
    pub ledger: Option<u32>,
    pub after_timestamp: Option<LedgerTimestamp>,
    pub limit: i64,
}

/// Transfers to list, oldest first, after a timestamp cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferQuery {
    /// Only transfers debiting or crediting this account.
    pub account_id: Option<AccountId>,
    /// Only transfers touching an account of this organization.
    pub org_id: Option<OrgId>,
    pub after_timestamp: Option<LedgerTimestamp>,
    pub limit: i64,
}

/// A signed checkpoint of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: u64,
    pub root_hash: Hash,
    /// The C2SP signed note: checkpoint body and signature lines.
    pub signed_note: String,
    pub created_at: Timestamp,
}

/// The checkpoint signing key: public half, and the Ed25519 seed sealed
/// under the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSigningKey {
    pub name: String,
    pub public_key: [u8; 32],
    pub sealed_seed: Vec<u8>,
    pub created_at: Timestamp,
}

/// The ledger's store.
#[async_trait]
pub trait LedgerStore: DatabaseClock + Send + Sync {
    /// The configured ledgers (assets).
    async fn ledgers(&self) -> StoreResult<Vec<Ledger>>;
    /// Configures a ledger unless it exists; one of the same id with another
    /// asset or scale is `Conflict("ledger")`.
    async fn ensure_ledger(&self, ledger: &Ledger, now: Timestamp) -> StoreResult<()>;

    /// Creates accounts (one transaction); a result per item.
    async fn create_accounts(
        &self,
        batch: &[NewAccount],
        now: LedgerTimestamp,
    ) -> StoreResult<Vec<CreateAccountResult>>;
    /// Creates transfers (one transaction); a result per item.
    async fn create_transfers(
        &self,
        batch: &[NewTransfer],
        now: LedgerTimestamp,
    ) -> StoreResult<Vec<CreateTransferResult>>;
    /// Voids up to `limit` pending transfers expired at `now` (a void
    /// transfer each, recorded in the log); returns how many.
    async fn expire_pending_transfers(
        &self,
        now: LedgerTimestamp,
        limit: i64,
    ) -> StoreResult<usize>;

    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>>;
    async fn list_accounts(&self, q: &AccountQuery) -> StoreResult<Vec<Account>>;
    /// A transfer and, if pending, what became of it.
    async fn get_transfer(
        &self,
        id: TransferId,
    ) -> StoreResult<Option<(Transfer, Option<PendingStatus>)>>;
    async fn list_transfers(&self, q: &TransferQuery) -> StoreResult<Vec<Transfer>>;

    /// The log's size, root and clock.
    async fn ledger_head(&self) -> StoreResult<LedgerHead>;
    /// The leaf index of an account's or transfer's record.
    async fn leaf_index(&self, kind: LeafKind, id: &str) -> StoreResult<Option<u64>>;
    /// Hashes of tree nodes (level 0: leaves; above: stored perfect
    /// subtrees), in the order asked; `None` for a node not stored.
    async fn tree_nodes(&self, nodes: &[NodeId]) -> StoreResult<Vec<Option<Hash>>>;
    /// Leaves `from..` with their records, at most `limit`.
    async fn log_entries(&self, from: u64, limit: i64) -> StoreResult<Vec<LogEntry>>;

    /// Records a checkpoint; `false` when one of that size exists.
    async fn insert_checkpoint(&self, checkpoint: &StoredCheckpoint) -> StoreResult<bool>;
    /// Checkpoints, newest first, at most `limit`.
    async fn list_checkpoints(&self, limit: i64) -> StoreResult<Vec<StoredCheckpoint>>;
    async fn get_checkpoint(&self, tree_size: u64) -> StoreResult<Option<StoredCheckpoint>>;
    /// The signing key, if created.
    async fn ledger_signing_key(&self) -> StoreResult<Option<LedgerSigningKey>>;
    /// Stores the signing key unless one exists; returns the one stored
    /// (of two replicas creating at once, both end with the first).
    async fn insert_ledger_signing_key_if_absent(
        &self,
        key: &LedgerSigningKey,
    ) -> StoreResult<LedgerSigningKey>;
}
