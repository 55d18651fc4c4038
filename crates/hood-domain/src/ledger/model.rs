//! Ledgers, accounts and transfers, with TigerBeetle's field names and
//! flag bits.

use crate::{AccountId, OrgId, TransferId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Minor units of a ledger's asset. Unsigned, never a float; at most
/// [`AMOUNT_MAX`] so every amount and balance fits a signed 64-bit column.
pub type Amount = u64;

/// The largest amount or balance.
pub const AMOUNT_MAX: Amount = i64::MAX as u64;

/// Nanoseconds since the Unix epoch, assigned by the ledger, strictly
/// increasing across all accounts and transfers.
pub type LedgerTimestamp = u64;

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// One asset: a currency at a fixed scale (USD in micro-dollars, scale 6)
/// or compute-unit credits (scale 0). Accounts and transfers name it by
/// `id`; a transfer moves value between accounts of one ledger only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub id: u32,
    /// Asset code: `USD`, `CU`.
    pub asset: String,
    /// Decimal places of one minor unit: an amount of 1 is 10^-scale of
    /// the asset.
    pub scale: u8,
}

/// Account flags (TigerBeetle's bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountFlags(pub u16);

impl AccountFlags {
    /// Only at creation: the account is created with the next one in the
    /// batch, or not at all.
    pub const LINKED: u16 = 1 << 0;
    /// Debits (pending and posted) may never exceed posted credits: an
    /// asset that cannot be overdrawn (a customer's prepaid balance).
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u16 = 1 << 1;
    /// Credits (pending and posted) may never exceed posted debits.
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u16 = 1 << 2;
    /// No transfer may touch the account. Set by a pending closing
    /// transfer (and cleared again if it is voided), or at creation.
    pub const CLOSED: u16 = 1 << 5;
    const KNOWN: u16 = Self::LINKED
        | Self::DEBITS_MUST_NOT_EXCEED_CREDITS
        | Self::CREDITS_MUST_NOT_EXCEED_DEBITS
        | Self::CLOSED;

    pub const fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    pub const fn with(self, bit: u16) -> Self {
        Self(self.0 | bit)
    }

    pub const fn without(self, bit: u16) -> Self {
        Self(self.0 & !bit)
    }

    /// Bits this ledger does not define.
    pub const fn reserved(self) -> u16 {
        self.0 & !Self::KNOWN
    }

    /// The flags that describe the account for ever (not `linked`, which
    /// only groups a request, nor `closed`, which transfers change).
    pub const fn stable(self) -> Self {
        Self(self.0 & (Self::DEBITS_MUST_NOT_EXCEED_CREDITS | Self::CREDITS_MUST_NOT_EXCEED_DEBITS))
    }
}

/// Transfer flags (TigerBeetle's bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransferFlags(pub u16);

impl TransferFlags {
    /// The transfer succeeds with the next one in the batch, or neither
    /// does: a chain ends at the first transfer without this flag.
    pub const LINKED: u16 = 1 << 0;
    /// Reserves the amount (a hold) until posted, voided or expired.
    pub const PENDING: u16 = 1 << 1;
    /// Posts (all or part of) the pending transfer `pending_id`.
    pub const POST_PENDING_TRANSFER: u16 = 1 << 2;
    /// Releases the pending transfer `pending_id`.
    pub const VOID_PENDING_TRANSFER: u16 = 1 << 3;
    /// Moves at most `amount`, clamped to what the debit account allows.
    pub const BALANCING_DEBIT: u16 = 1 << 4;
    /// Moves at most `amount`, clamped to what the credit account allows.
    pub const BALANCING_CREDIT: u16 = 1 << 5;
    /// Closes the debit account while pending (voiding reopens it).
    pub const CLOSING_DEBIT: u16 = 1 << 6;
    /// Closes the credit account while pending (voiding reopens it).
    pub const CLOSING_CREDIT: u16 = 1 << 7;
    const KNOWN: u16 = Self::LINKED
        | Self::PENDING
        | Self::POST_PENDING_TRANSFER
        | Self::VOID_PENDING_TRANSFER
        | Self::BALANCING_DEBIT
        | Self::BALANCING_CREDIT
        | Self::CLOSING_DEBIT
        | Self::CLOSING_CREDIT;

    pub const fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    pub const fn with(self, bit: u16) -> Self {
        Self(self.0 | bit)
    }

    pub const fn reserved(self) -> u16 {
        self.0 & !Self::KNOWN
    }

    /// Posting or voiding a pending transfer.
    pub const fn settles_pending(self) -> bool {
        self.has(Self::POST_PENDING_TRANSFER) || self.has(Self::VOID_PENDING_TRANSFER)
    }
}

/// An account and its four balances. The balances are derived: they always
/// equal the sums of the account's transfers (`super::replay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub ledger: u32,
    /// What the account is for (see [`AccountCode`]).
    pub code: u16,
    pub flags: AccountFlags,
    /// The organization whose account it is; `None` for the platform's own
    /// (revenue, cash, clearing).
    pub org_id: Option<OrgId>,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    pub debits_pending: Amount,
    pub debits_posted: Amount,
    pub credits_pending: Amount,
    pub credits_posted: Amount,
    pub timestamp: LedgerTimestamp,
}

/// Well-known account codes. Any non-zero code is allowed; these are the
/// ones Hood's own services use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum AccountCode {
    /// Money held by the platform (a payment provider's settlement).
    Cash = 1,
    /// What customers owe (postpaid usage).
    Receivable = 2,
    /// What the platform earned.
    Revenue = 3,
    /// A customer's prepaid credits (cannot go negative).
    PrepaidCredits = 4,
    /// Transit between ledgers or systems.
    Clearing = 5,
}

/// A request to create an account (balances start at zero; the ledger
/// assigns the timestamp).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: AccountId,
    pub ledger: u32,
    pub code: u16,
    pub flags: AccountFlags,
    pub org_id: Option<OrgId>,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
}

/// A request to create a transfer, as a client sends it. For posting or
/// voiding, the accounts, ledger and code may be left out (they are the
/// pending transfer's); an `amount` of 0 means "all of it" for posting,
/// voiding and balancing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransfer {
    pub id: TransferId,
    pub debit_account_id: Option<AccountId>,
    pub credit_account_id: Option<AccountId>,
    pub amount: Amount,
    pub pending_id: Option<TransferId>,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    /// Seconds a pending transfer may wait before it expires (0: never).
    pub timeout: u32,
    pub ledger: u32,
    pub code: u16,
    pub flags: TransferFlags,
}

/// A transfer as the ledger recorded it: every field resolved (a post's
/// accounts are its pending transfer's, a balancing amount is the amount
/// that moved). Immutable once recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub amount: Amount,
    pub pending_id: Option<TransferId>,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    pub timeout: u32,
    pub ledger: u32,
    pub code: u16,
    pub flags: TransferFlags,
    pub timestamp: LedgerTimestamp,
}

impl Transfer {
    /// When a pending transfer expires, if it can.
    pub fn expires_at(&self) -> Option<LedgerTimestamp> {
        (self.flags.has(TransferFlags::PENDING) && self.timeout > 0).then(|| {
            self.timestamp
                .saturating_add(u64::from(self.timeout).saturating_mul(NANOS_PER_SECOND))
        })
    }
}

/// What became of a pending transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingStatus {
    Pending,
    Posted,
    Voided,
    Expired,
}

impl PendingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Posted => "posted",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Posted, Self::Voided, Self::Expired]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The id of the void the ledger records when a pending transfer expires:
/// derived from it, so expiring twice records one void.
pub fn expiry_id(pending: TransferId) -> TransferId {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_2d65_7870_6972_792d_7631);
    TransferId::from_uuid(Uuid::new_v5(&NAMESPACE, pending.as_uuid().as_bytes()))
}

/// Ids are UUIDs; TigerBeetle reserves 0 and the largest value.
pub fn id_is_zero(id: &Uuid) -> bool {
    id.is_nil()
}

pub fn id_is_max(id: &Uuid) -> bool {
    id.as_u128() == u128::MAX
}
