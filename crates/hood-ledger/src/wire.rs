//! The ledger's records as they travel: the API's answers, the exports'
//! lines, what a customer's verifier reads. Field names are TigerBeetle's;
//! amounts, balances and the 64/128-bit user data are decimal strings (they
//! can pass a JSON number's safe range); timestamps are nanoseconds, also
//! as strings.

use hood_domain::ledger::{Account, AccountFlags, Transfer, TransferFlags};
use hood_domain::{AccountId, OrgId, TransferId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An unsigned decimal string (no sign, no leading zeros but `0`).
pub fn parse_decimal<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, String> {
    let ok = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && !(s.len() > 1 && s.starts_with('0'));
    if !ok {
        return Err(format!(
            "{field}: expected a decimal string of digits, got {s:?}"
        ));
    }
    s.parse()
        .map_err(|_| format!("{field}: {s} is out of range"))
}

/// An account and its four balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountRecord {
    #[schema(value_type = String, format = Uuid)]
    pub id: AccountId,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub ledger: u32,
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub code: u16,
    /// TigerBeetle's account flag bits: 2 `debits_must_not_exceed_credits`,
    /// 4 `credits_must_not_exceed_debits`, 32 `closed`.
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub flags: u16,
    /// The organization whose account it is (none: the platform's).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub org_id: Option<OrgId>,
    /// Decimal string of a u128.
    #[schema(pattern = "^(0|[1-9][0-9]{0,38})$")]
    pub user_data_128: String,
    /// Decimal string of a u64.
    #[schema(pattern = "^(0|[1-9][0-9]{0,19})$")]
    pub user_data_64: String,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub user_data_32: u32,
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub debits_pending: String,
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub debits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub credits_pending: String,
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub credits_posted: String,
    /// When the ledger created it: nanoseconds since the Unix epoch.
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub timestamp: String,
}

impl From<&Account> for AccountRecord {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            ledger: a.ledger,
            code: a.code,
            flags: a.flags.0,
            org_id: a.org_id,
            user_data_128: a.user_data_128.to_string(),
            user_data_64: a.user_data_64.to_string(),
            user_data_32: a.user_data_32,
            debits_pending: a.debits_pending.to_string(),
            debits_posted: a.debits_posted.to_string(),
            credits_pending: a.credits_pending.to_string(),
            credits_posted: a.credits_posted.to_string(),
            timestamp: a.timestamp.to_string(),
        }
    }
}

impl TryFrom<&AccountRecord> for Account {
    type Error = String;
    fn try_from(r: &AccountRecord) -> Result<Self, String> {
        Ok(Account {
            id: r.id,
            ledger: r.ledger,
            code: r.code,
            flags: AccountFlags(r.flags),
            org_id: r.org_id,
            user_data_128: parse_decimal("user_data_128", &r.user_data_128)?,
            user_data_64: parse_decimal("user_data_64", &r.user_data_64)?,
            user_data_32: r.user_data_32,
            debits_pending: parse_decimal("debits_pending", &r.debits_pending)?,
            debits_posted: parse_decimal("debits_posted", &r.debits_posted)?,
            credits_pending: parse_decimal("credits_pending", &r.credits_pending)?,
            credits_posted: parse_decimal("credits_posted", &r.credits_posted)?,
            timestamp: parse_decimal("timestamp", &r.timestamp)?,
        })
    }
}

/// A recorded transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferRecord {
    #[schema(value_type = String, format = Uuid)]
    pub id: TransferId,
    #[schema(value_type = String, format = Uuid)]
    pub debit_account_id: AccountId,
    #[schema(value_type = String, format = Uuid)]
    pub credit_account_id: AccountId,
    /// Minor units, as a decimal string.
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub amount: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub pending_id: Option<TransferId>,
    #[schema(pattern = "^(0|[1-9][0-9]{0,38})$")]
    pub user_data_128: String,
    #[schema(pattern = "^(0|[1-9][0-9]{0,19})$")]
    pub user_data_64: String,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub user_data_32: u32,
    /// Seconds a pending transfer may wait (0: never expires).
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub timeout: u32,
    #[schema(value_type = i64, minimum = 0, maximum = 4294967295_i64)]
    pub ledger: u32,
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub code: u16,
    /// TigerBeetle's transfer flag bits: 1 `linked`, 2 `pending`, 4
    /// `post_pending_transfer`, 8 `void_pending_transfer`, 16
    /// `balancing_debit`, 32 `balancing_credit`, 64 `closing_debit`, 128
    /// `closing_credit`.
    #[schema(value_type = i32, minimum = 0, maximum = 65535)]
    pub flags: u16,
    /// Nanoseconds since the Unix epoch, assigned by the ledger.
    #[schema(pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub timestamp: String,
}

impl From<&Transfer> for TransferRecord {
    fn from(t: &Transfer) -> Self {
        Self {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount.to_string(),
            pending_id: t.pending_id,
            user_data_128: t.user_data_128.to_string(),
            user_data_64: t.user_data_64.to_string(),
            user_data_32: t.user_data_32,
            timeout: t.timeout,
            ledger: t.ledger,
            code: t.code,
            flags: t.flags.0,
            timestamp: t.timestamp.to_string(),
        }
    }
}

impl TryFrom<&TransferRecord> for Transfer {
    type Error = String;
    fn try_from(r: &TransferRecord) -> Result<Self, String> {
        Ok(Transfer {
            id: r.id,
            debit_account_id: r.debit_account_id,
            credit_account_id: r.credit_account_id,
            amount: parse_decimal("amount", &r.amount)?,
            pending_id: r.pending_id,
            user_data_128: parse_decimal("user_data_128", &r.user_data_128)?,
            user_data_64: parse_decimal("user_data_64", &r.user_data_64)?,
            user_data_32: r.user_data_32,
            timeout: r.timeout,
            ledger: r.ledger,
            code: r.code,
            flags: TransferFlags(r.flags),
            timestamp: parse_decimal("timestamp", &r.timestamp)?,
        })
    }
}

/// One leaf of the log with the record it stands for: a line of an
/// export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeafRecord {
    pub index: u64,
    /// Hex SHA-256 leaf hash (`SHA-256(0x00 ‖ canonical bytes)`).
    pub hash: String,
    #[serde(flatten)]
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    Account(AccountRecord),
    Transfer(TransferRecord),
}

/// An inclusion proof of one record, against a signed checkpoint: all a
/// customer needs, with the public key, to check it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The record the leaf stands for.
    pub transfer: TransferRecord,
    /// Hex of the canonical bytes the leaf hashes.
    pub leaf_bytes: String,
    /// Hex leaf hash.
    pub leaf_hash: String,
    /// Hex hashes of the audit path, leaf side first (RFC 6962 `PATH`).
    pub proof: Vec<String>,
    /// The C2SP signed note of the checkpoint at `tree_size`.
    pub checkpoint: String,
}

/// A consistency proof between two tree sizes (RFC 6962 `PROOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// Hex root hashes of the two trees.
    pub from_root: String,
    pub to_root: String,
    pub proof: Vec<String>,
}

/// Hex of a hash.
pub fn hex_hash(h: &hood_tlog::Hash) -> String {
    hex::encode(h)
}

/// A hash from hex.
pub fn parse_hash(field: &str, s: &str) -> Result<hood_tlog::Hash, String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <hood_tlog::Hash>::try_from(b).ok())
        .ok_or_else(|| format!("{field}: not a hex SHA-256 hash"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_strict() {
        assert_eq!(parse_decimal::<u64>("a", "0"), Ok(0));
        assert_eq!(
            parse_decimal::<u64>("a", "18446744073709551615"),
            Ok(u64::MAX)
        );
        for bad in ["", "-1", "01", "1.5", " 1", "18446744073709551616"] {
            assert!(parse_decimal::<u64>("a", bad).is_err(), "{bad:?}");
        }
    }
}
