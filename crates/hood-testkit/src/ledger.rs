//! Ledger fixtures: accounts and transfers named by small numbers, so a
//! test reads `transfer(7, 1, 2, 100)` (transfer 7 moves 100 from account 1
//! to account 2) instead of building UUIDs.

use hood_domain::ledger::{AccountFlags, Ledger, NewAccount, NewTransfer, TransferFlags};
use hood_domain::{AccountId, TransferId};
use uuid::Uuid;

/// USD in micro-dollars.
pub const USD: u32 = 1;
/// Compute-unit credits.
pub const CU: u32 = 2;

/// The two ledgers the fixtures use.
pub fn ledgers() -> [Ledger; 2] {
    [
        Ledger {
            id: USD,
            asset: "USD".into(),
            scale: 6,
        },
        Ledger {
            id: CU,
            asset: "CU".into(),
            scale: 0,
        },
    ]
}

pub fn aid(n: u128) -> AccountId {
    AccountId::from_uuid(Uuid::from_u128(
        0xa000_0000_0000_0000_0000_0000_0000_0000 | n,
    ))
}

pub fn tid(n: u128) -> TransferId {
    TransferId::from_uuid(Uuid::from_u128(
        0x7000_0000_0000_0000_0000_0000_0000_0000 | n,
    ))
}

/// Account `n` on `ledger` with `flags` (code 1, no organization).
pub fn account(n: u128, ledger: u32, flags: u16) -> NewAccount {
    NewAccount {
        id: aid(n),
        ledger,
        code: 1,
        flags: AccountFlags(flags),
        org_id: None,
        user_data_128: 0,
        user_data_64: 0,
        user_data_32: 0,
    }
}

/// Transfer `n`: `amount` from account `debit` to account `credit` on USD.
pub fn transfer(n: u128, debit: u128, credit: u128, amount: u64) -> NewTransfer {
    NewTransfer {
        id: tid(n),
        debit_account_id: Some(aid(debit)),
        credit_account_id: Some(aid(credit)),
        amount,
        pending_id: None,
        user_data_128: 0,
        user_data_64: 0,
        user_data_32: 0,
        timeout: 0,
        ledger: USD,
        code: 1,
        flags: TransferFlags::default(),
    }
}

/// `t` with `flags` added.
pub fn with(mut t: NewTransfer, flags: u16) -> NewTransfer {
    t.flags = TransferFlags(t.flags.0 | flags);
    t
}

/// Transfer `n` posting (`flag` = post) or voiding (`flag` = void) the
/// pending transfer `pending`; amount 0 means all of it.
pub fn settle(n: u128, pending: u128, flag: u16, amount: u64) -> NewTransfer {
    NewTransfer {
        debit_account_id: None,
        credit_account_id: None,
        pending_id: Some(tid(pending)),
        ledger: 0,
        code: 0,
        ..with(transfer(n, 0, 0, amount), flag)
    }
}
