//! Ledger use cases: write batches (platform only), read accounts and
//! transfers within the caller's tenancy, checkpoints and proofs.
//!
//! Tenancy: an organization sees only its own accounts and the transfers
//! that touch them; anything else answers `NotFound` (never "forbidden",
//! so ids of other tenants do not leak). The platform (administrators and
//! the billing role) sees and writes everything.

use crate::{AppError, AppResult};
use hood_domain::ledger::{
    Account, CreateAccountResult, CreateTransferResult, NewAccount, NewTransfer, PendingStatus,
    Transfer,
};
use hood_domain::validate::FieldError;
use hood_domain::{AccountId, OrgId, TransferId};
use hood_ledger::upkeep::ledger_now;
use hood_ledger::wire::{ConsistencyProof, InclusionProof};
use hood_ledger::{LedgerError, LedgerLog};
use hood_store::ledger::{AccountQuery, LedgerHead, LedgerStore, StoredCheckpoint, TransferQuery};
use std::sync::Arc;

/// Events per batch: TigerBeetle's limit, and a bound on one transaction.
pub const MAX_BATCH: usize = 8_190;
/// Items per page when the caller does not say.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1_000;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// A member of one organization: its accounts only.
    Org(OrgId),
    /// A platform administrator (or the billing role): everything.
    Platform,
}

impl Viewer {
    fn sees(&self, a: &Account) -> bool {
        match self {
            Viewer::Platform => true,
            Viewer::Org(org) => a.org_id == Some(*org),
        }
    }
}

impl From<LedgerError> for AppError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(what) => AppError::NotFound(what),
            LedgerError::Invalid(m) => AppError::Conflict(m),
            LedgerError::Store(e) => AppError::Store(e),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// The ledger's use cases.
#[derive(Clone)]
pub struct LedgerService {
    log: LedgerLog,
}

impl LedgerService {
    pub fn new(log: LedgerLog) -> Self {
        Self { log }
    }

    pub fn log(&self) -> &LedgerLog {
        &self.log
    }

    fn store(&self) -> &Arc<dyn LedgerStore> {
        self.log.store()
    }

    fn check_batch(len: usize) -> AppResult<()> {
        if len == 0 || len > MAX_BATCH {
            return Err(AppError::Invalid(vec![FieldError::new(
                "items",
                format!("a batch holds 1 to {MAX_BATCH} items, not {len}"),
            )]));
        }
        Ok(())
    }

    /// Creates accounts; one result per item (platform only).
    pub async fn create_accounts(
        &self,
        batch: &[NewAccount],
    ) -> AppResult<Vec<CreateAccountResult>> {
        Self::check_batch(batch.len())?;
        Ok(self
            .store()
            .create_accounts(batch, ledger_now(&self.log))
            .await?)
    }

    /// Creates transfers; one result per item (platform only).
    pub async fn create_transfers(
        &self,
        batch: &[NewTransfer],
    ) -> AppResult<Vec<CreateTransferResult>> {
        Self::check_batch(batch.len())?;
        Ok(self
            .store()
            .create_transfers(batch, ledger_now(&self.log))
            .await?)
    }

    pub async fn list_accounts(
        &self,
        viewer: Viewer,
        ledger: Option<u32>,
        after: Option<u64>,
        limit: i64,
    ) -> AppResult<Vec<Account>> {
        let org_id = match viewer {
            Viewer::Org(org) => Some(org),
            Viewer::Platform => None,
        };
        Ok(self
            .store()
            .list_accounts(&AccountQuery {
                org_id,
                platform_only: false,
                ledger,
                after_timestamp: after,
                limit: limit.clamp(1, MAX_PAGE),
            })
            .await?)
    }

    pub async fn get_account(&self, viewer: Viewer, id: AccountId) -> AppResult<Account> {
        self.store()
            .get_account(id)
            .await?
            .filter(|a| viewer.sees(a))
            .ok_or(AppError::NotFound("account"))
    }

    /// Transfers, oldest first: of one account (which the viewer must
    /// see), or all the viewer may see.
    pub async fn list_transfers(
        &self,
        viewer: Viewer,
        account: Option<AccountId>,
        after: Option<u64>,
        limit: i64,
    ) -> AppResult<Vec<Transfer>> {
        if let Some(id) = account {
            self.get_account(viewer, id).await?;
        }
        let org_id = match (viewer, account) {
            (Viewer::Org(org), None) => Some(org),
            _ => None,
        };
        Ok(self
            .store()
            .list_transfers(&TransferQuery {
                account_id: account,
                org_id,
                after_timestamp: after,
                limit: limit.clamp(1, MAX_PAGE),
            })
            .await?)
    }

    /// A transfer the viewer may see (one of its accounts is theirs).
    pub async fn get_transfer(
        &self,
        viewer: Viewer,
        id: TransferId,
    ) -> AppResult<(Transfer, Option<PendingStatus>)> {
        let (t, status) = self
            .store()
            .get_transfer(id)
            .await?
            .ok_or(AppError::NotFound("transfer"))?;
        if let Viewer::Org(_) = viewer {
            let mut visible = false;
            for account in [t.debit_account_id, t.credit_account_id] {
                if let Some(a) = self.store().get_account(account).await? {
                    visible |= viewer.sees(&a);
                }
            }
            if !visible {
                return Err(AppError::NotFound("transfer"));
            }
        }
        Ok((t, status))
    }

    /// The inclusion proof of a transfer the viewer may see.
    pub async fn transfer_proof(
        &self,
        viewer: Viewer,
        id: TransferId,
        at: Option<u64>,
    ) -> AppResult<InclusionProof> {
        self.get_transfer(viewer, id).await?;
        Ok(self.log.transfer_proof(id, at).await?)
    }

    /// The configured ledgers (assets).
    pub async fn ledgers(&self) -> AppResult<Vec<hood_domain::ledger::Ledger>> {
        Ok(self.store().ledgers().await?)
    }

    pub async fn head(&self) -> AppResult<LedgerHead> {
        Ok(self.store().ledger_head().await?)
    }

    /// Signed checkpoints, newest first.
    pub async fn checkpoints(&self, limit: i64) -> AppResult<Vec<StoredCheckpoint>> {
        Ok(self
            .store()
            .list_checkpoints(limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// Signs a checkpoint of the log as it is now (platform only).
    pub async fn checkpoint_now(&self) -> AppResult<StoredCheckpoint> {
        Ok(self.log.checkpoint().await?)
    }

    pub async fn consistency(&self, from: u64, to: u64) -> AppResult<ConsistencyProof> {
        Ok(self.log.consistency_proof(from, to).await?)
    }
}
