//! Rows of the ledger tables, and the column encodings of the ledger's
//! unsigned integers (u64 amounts fit BIGINT by the domain's bound; a
//! u64 user datum keeps its bits in a BIGINT; a u128 is 32 hex digits).

use crate::codec;
use crate::StoreError;
use hood_domain::ledger::{
    Account, AccountFlags, Amount, Ledger, PendingStatus, Transfer, TransferFlags,
};

pub(crate) const ACCOUNT_COLUMNS: &str = "id, ledger, code, flags, org_id, user_data_128, \
     user_data_64, user_data_32, debits_pending, debits_posted, credits_pending, credits_posted, \
     timestamp, leaf_index";
pub(crate) const ACCOUNT_WIDTH: usize = 14;

pub(crate) const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, \
     pending_id, user_data_128, user_data_64, user_data_32, timeout, ledger, code, flags, \
     timestamp, leaf_index, pending_status, expires_at";
pub(crate) const TRANSFER_WIDTH: usize = 16;

/// A u64 as a BIGINT, bit for bit.
pub(crate) fn u64_bits(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

pub(crate) fn from_u64_bits(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// An amount, balance or ledger timestamp (never above `i64::MAX`).
pub(crate) fn amount(v: Amount) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn hex128(v: u128) -> String {
    format!("{v:032x}")
}

fn parse_amount(column: &str, v: i64) -> Result<Amount, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column}: negative amount {v}")))
}

fn parse_hex128(column: &str, v: &str) -> Result<u128, StoreError> {
    u128::from_str_radix(v, 16)
        .map_err(|_| StoreError::Corrupt(format!("{column}: `{v}` is not 32 hex digits")))
}

fn parse_small<T: TryFrom<i64>>(column: &str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column}: {v} is out of range")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    id: i64,
    asset: String,
    scale: i64,
}

impl TryFrom<LedgerRow> for Ledger {
    type Error = StoreError;
    fn try_from(r: LedgerRow) -> Result<Self, StoreError> {
        Ok(Ledger {
            id: parse_small("ledger_ledgers.id", r.id)?,
            asset: r.asset,
            scale: parse_small("ledger_ledgers.scale", r.scale)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    ledger: i64,
    code: i64,
    flags: i64,
    org_id: Option<String>,
    user_data_128: String,
    user_data_64: i64,
    user_data_32: i64,
    debits_pending: i64,
    debits_posted: i64,
    credits_pending: i64,
    credits_posted: i64,
    timestamp: i64,
    pub(crate) leaf_index: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        const T: &str = "ledger_accounts";
        Ok(Account {
            id: codec::parse_id("ledger_accounts.id", &r.id)?,
            ledger: parse_small(T, r.ledger)?,
            code: parse_small(T, r.code)?,
            flags: AccountFlags(parse_small(T, r.flags)?),
            org_id: codec::parse_opt_id("ledger_accounts.org_id", r.org_id.as_deref())?,
            user_data_128: parse_hex128("ledger_accounts.user_data_128", &r.user_data_128)?,
            user_data_64: from_u64_bits(r.user_data_64),
            user_data_32: parse_small(T, r.user_data_32)?,
            debits_pending: parse_amount("ledger_accounts.debits_pending", r.debits_pending)?,
            debits_posted: parse_amount("ledger_accounts.debits_posted", r.debits_posted)?,
            credits_pending: parse_amount("ledger_accounts.credits_pending", r.credits_pending)?,
            credits_posted: parse_amount("ledger_accounts.credits_posted", r.credits_posted)?,
            timestamp: parse_amount("ledger_accounts.timestamp", r.timestamp)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TransferRow {
    id: String,
    debit_account_id: String,
    credit_account_id: String,
    amount: i64,
    pending_id: Option<String>,
    user_data_128: String,
    user_data_64: i64,
    user_data_32: i64,
    timeout: i64,
    ledger: i64,
    code: i64,
    flags: i64,
    timestamp: i64,
    pub(crate) leaf_index: i64,
    pending_status: Option<String>,
    #[allow(dead_code)] // selected with the row; the expiry loop reads it in SQL
    expires_at: Option<i64>,
}

/// A recorded transfer and, if it is pending, what became of it.
pub(crate) struct TransferWithStatus {
    pub transfer: Transfer,
    pub status: Option<PendingStatus>,
}

impl TryFrom<TransferRow> for TransferWithStatus {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> Result<Self, StoreError> {
        const T: &str = "ledger_transfers";
        let status = match r.pending_status.as_deref() {
            None => None,
            Some(s) => Some(PendingStatus::parse(s).ok_or_else(|| {
                StoreError::Corrupt(format!("ledger_transfers.pending_status: `{s}`"))
            })?),
        };
        Ok(TransferWithStatus {
            transfer: Transfer {
                id: codec::parse_id("ledger_transfers.id", &r.id)?,
                debit_account_id: codec::parse_id(
                    "ledger_transfers.debit_account_id",
                    &r.debit_account_id,
                )?,
                credit_account_id: codec::parse_id(
                    "ledger_transfers.credit_account_id",
                    &r.credit_account_id,
                )?,
                amount: parse_amount("ledger_transfers.amount", r.amount)?,
                pending_id: codec::parse_opt_id(
                    "ledger_transfers.pending_id",
                    r.pending_id.as_deref(),
                )?,
                user_data_128: parse_hex128("ledger_transfers.user_data_128", &r.user_data_128)?,
                user_data_64: from_u64_bits(r.user_data_64),
                user_data_32: parse_small(T, r.user_data_32)?,
                timeout: parse_small(T, r.timeout)?,
                ledger: parse_small(T, r.ledger)?,
                code: parse_small(T, r.code)?,
                flags: TransferFlags(parse_small(T, r.flags)?),
                timestamp: parse_amount("ledger_transfers.timestamp", r.timestamp)?,
            },
            status,
        })
    }
}

impl TryFrom<TransferRow> for Transfer {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> Result<Self, StoreError> {
        TransferWithStatus::try_from(r).map(|t| t.transfer)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LeafRow {
    pub leaf_index: i64,
    pub kind: String,
    pub ref_id: String,
    pub hash: Vec<u8>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub tree_size: i64,
    pub last_timestamp: i64,
    pub frontier: Vec<u8>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CheckpointRow {
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    pub signed_note: String,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    pub name: String,
    pub public_key: Vec<u8>,
    pub sealed_seed: Vec<u8>,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_encodings_round_trip() {
        for v in [0, 1, u64::MAX, u64::MAX / 2 + 1] {
            assert_eq!(from_u64_bits(u64_bits(v)), v);
        }
        for v in [0u128, 1, u128::MAX] {
            assert_eq!(parse_hex128("x", &hex128(v)).ok(), Some(v));
        }
        assert!(parse_hex128("x", "zz").is_err());
        assert!(parse_amount("x", -1).is_err());
    }
}
