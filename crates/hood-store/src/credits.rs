//! Prepaid credits: each organization's accrual cursor, current hold and
//! cut-off state (the balance itself is the ledger's).

use crate::StoreResult;
use async_trait::async_trait;
use hood_domain::billing::credits::CreditAccount;
use hood_domain::OrgId;

#[async_trait]
pub trait CreditStore: Send + Sync {
    /// `Conflict("credit account")` if the organization has one.
    async fn insert_credit_account(&self, account: &CreditAccount) -> StoreResult<()>;
    async fn get_credit_account(&self, org: OrgId) -> StoreResult<Option<CreditAccount>>;
    async fn list_credit_accounts(&self) -> StoreResult<Vec<CreditAccount>>;
    /// Writes `account` if its stored version is still `version - 1`;
    /// `false` when another writer moved it first.
    async fn update_credit_account(&self, account: &CreditAccount) -> StoreResult<bool>;
    /// Organizations whose spending is stopped, with why: prepaid credits
    /// exhausted, or a subscription's budget reached under a hard cap.
    /// What the edge refuses with 402.
    async fn spending_stops(&self) -> StoreResult<Vec<(OrgId, String)>>;
}
