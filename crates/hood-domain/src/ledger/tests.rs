#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::{AccountId, OrgId, TransferId};
use proptest::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

const USD: u32 = 1;
const CU: u32 = 2;
const T0: LedgerTimestamp = 1_700_000_000_000_000_000;
const SECOND: u64 = 1_000_000_000;

fn aid(n: u128) -> AccountId {
    AccountId::from_uuid(Uuid::from_u128(n))
}

fn tid(n: u128) -> TransferId {
    TransferId::from_uuid(Uuid::from_u128(n))
}

fn state() -> LedgerState {
    LedgerState {
        ledgers: [USD, CU].into_iter().collect(),
        ..LedgerState::default()
    }
}

fn account(n: u128, ledger: u32, flags: u16) -> NewAccount {
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

fn transfer(n: u128, debit: u128, credit: u128, amount: Amount) -> NewTransfer {
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
        flags: TransferFlags(0),
    }
}

fn with(mut t: NewTransfer, flags: u16) -> NewTransfer {
    t.flags = TransferFlags(t.flags.0 | flags);
    t
}

fn settle(n: u128, pending: u128, flag: u16, amount: Amount) -> NewTransfer {
    NewTransfer {
        debit_account_id: None,
        credit_account_id: None,
        pending_id: Some(tid(pending)),
        ledger: 0,
        code: 0,
        ..with(transfer(n, 0, 0, amount), flag)
    }
}

/// A state with accounts 1 (customer credits: debits must not exceed
/// credits), 2 (platform cash), 3 (revenue), all USD, and 9 on CU.
fn funded() -> LedgerState {
    let mut s = state();
    let (r, _) = create_accounts(
        &mut s,
        &[
            account(1, USD, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            account(2, USD, 0),
            account(3, USD, 0),
            account(9, CU, 0),
        ],
        T0,
    );
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
    // 100 credited to the customer from cash.
    let (r, _) = create_transfers(&mut s, &[transfer(100, 2, 1, 100)], T0);
    assert_eq!(r, [CreateTransferResult::Ok]);
    s
}

fn balances(s: &LedgerState, n: u128) -> (Amount, Amount, Amount, Amount) {
    let a = &s.accounts[&aid(n)];
    (
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    )
}

use CreateAccountResult as AR;
use CreateTransferResult as TR;

// -- accounts --

#[test]
fn accounts_are_created_once_and_compared_field_by_field() {
    let mut s = state();
    let (r, changes) = create_accounts(&mut s, &[account(1, USD, 0)], T0);
    assert_eq!(r, [AR::Ok]);
    assert_eq!(changes.accounts_created, [aid(1)]);
    assert_eq!(s.accounts[&aid(1)].timestamp, T0);
    let (r, changes) = create_accounts(&mut s, &[account(1, USD, 0)], T0 + 5);
    assert_eq!(r, [AR::Exists]);
    assert!(changes.is_empty());
    let cases = [
        (account(1, CU, 0), AR::ExistsWithDifferentLedger),
        (
            account(1, USD, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
            AR::ExistsWithDifferentFlags,
        ),
        (
            NewAccount {
                code: 7,
                ..account(1, USD, 0)
            },
            AR::ExistsWithDifferentCode,
        ),
        (
            NewAccount {
                user_data_64: 3,
                ..account(1, USD, 0)
            },
            AR::ExistsWithDifferentUserData64,
        ),
        (
            NewAccount {
                org_id: Some(OrgId::from_uuid(Uuid::from_u128(5))),
                ..account(1, USD, 0)
            },
            AR::ExistsWithDifferentOrg,
        ),
    ];
    for (a, want) in cases {
        assert_eq!(create_accounts(&mut s, &[a], T0).0, [want]);
    }
}

#[test]
fn account_requests_are_validated() {
    let mut s = state();
    let cases = [
        (account(0, USD, 0), AR::IdMustNotBeZero),
        (account(u128::MAX, USD, 0), AR::IdMustNotBeIntMax),
        (account(1, USD, 1 << 9), AR::ReservedFlag),
        (
            account(
                1,
                USD,
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                    | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            ),
            AR::FlagsAreMutuallyExclusive,
        ),
        (account(1, 0, 0), AR::LedgerMustNotBeZero),
        (account(1, 77, 0), AR::LedgerNotFound),
        (
            NewAccount {
                code: 0,
                ..account(1, USD, 0)
            },
            AR::CodeMustNotBeZero,
        ),
    ];
    for (a, want) in cases {
        assert_eq!(create_accounts(&mut s, &[a], T0).0, [want]);
    }
    assert!(s.accounts.is_empty());
}

#[test]
fn a_linked_account_chain_is_all_or_nothing() {
    let mut s = state();
    let (r, changes) = create_accounts(
        &mut s,
        &[
            account(1, USD, AccountFlags::LINKED),
            account(2, 77, AccountFlags::LINKED),
            account(3, USD, 0),
            account(4, USD, 0),
            account(5, USD, AccountFlags::LINKED),
        ],
        T0,
    );
    assert_eq!(
        r,
        [
            AR::LinkedEventFailed,
            AR::LedgerNotFound,
            AR::LinkedEventFailed,
            AR::Ok,
            AR::LinkedEventChainOpen
        ]
    );
    assert_eq!(changes.accounts_created, [aid(4)]);
    assert_eq!(s.accounts.keys().copied().collect::<Vec<_>>(), [aid(4)]);
    assert!(!s.accounts[&aid(4)].flags.has(AccountFlags::LINKED));
}

// -- single-phase transfers --

#[test]
fn a_transfer_moves_posted_balances_and_respects_limits() {
    let mut s = funded();
    assert_eq!(balances(&s, 1), (0, 0, 0, 100));
    assert_eq!(balances(&s, 2), (0, 100, 0, 0));
    // The customer spends 60, then cannot spend 41 more.
    assert_eq!(
        create_transfers(&mut s, &[transfer(101, 1, 3, 60)], T0).0,
        [TR::Ok]
    );
    assert_eq!(
        create_transfers(&mut s, &[transfer(102, 1, 3, 41)], T0).0,
        [TR::ExceedsCredits]
    );
    assert_eq!(balances(&s, 1), (0, 60, 0, 100));
    assert_eq!(
        create_transfers(&mut s, &[transfer(103, 1, 3, 40)], T0).0,
        [TR::Ok]
    );
    assert_eq!(balances(&s, 1), (0, 100, 0, 100));
    // credits_must_not_exceed_debits, the other side.
    create_accounts(
        &mut s,
        &[account(
            4,
            USD,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        )],
        T0,
    );
    assert_eq!(
        create_transfers(&mut s, &[transfer(104, 2, 4, 1)], T0).0,
        [TR::ExceedsDebits]
    );
}

#[test]
fn transfer_requests_are_validated_before_anything_moves() {
    let mut s = funded();
    let before = s.accounts.clone();
    let cases = [
        (transfer(0, 1, 3, 1), TR::IdMustNotBeZero),
        (transfer(u128::MAX, 1, 3, 1), TR::IdMustNotBeIntMax),
        (with(transfer(200, 1, 3, 1), 1 << 12), TR::ReservedFlag),
        (transfer(201, 1, 1, 1), TR::AccountsMustBeDifferent),
        (
            NewTransfer {
                debit_account_id: None,
                ..transfer(202, 1, 3, 1)
            },
            TR::DebitAccountIdMustNotBeZero,
        ),
        (
            NewTransfer {
                ledger: 0,
                ..transfer(203, 1, 3, 1)
            },
            TR::LedgerMustNotBeZero,
        ),
        (
            NewTransfer {
                code: 0,
                ..transfer(204, 1, 3, 1)
            },
            TR::CodeMustNotBeZero,
        ),
        (transfer(205, 1, 42, 1), TR::CreditAccountNotFound),
        (transfer(206, 42, 1, 1), TR::DebitAccountNotFound),
        (transfer(207, 1, 9, 1), TR::AccountsMustHaveTheSameLedger),
        (
            NewTransfer {
                ledger: CU,
                ..transfer(208, 1, 3, 1)
            },
            TR::TransferMustHaveTheSameLedgerAsAccounts,
        ),
        (
            NewTransfer {
                timeout: 5,
                ..transfer(209, 1, 3, 1)
            },
            TR::TimeoutReservedForPendingTransfer,
        ),
        (
            NewTransfer {
                pending_id: Some(tid(100)),
                ..transfer(210, 1, 3, 1)
            },
            TR::PendingIdMustBeZero,
        ),
        (
            with(
                transfer(211, 1, 3, 1),
                TransferFlags::PENDING | TransferFlags::POST_PENDING_TRANSFER,
            ),
            TR::FlagsAreMutuallyExclusive,
        ),
        (
            with(transfer(212, 1, 3, 1), TransferFlags::CLOSING_DEBIT),
            TR::FlagsAreMutuallyExclusive,
        ),
        (
            transfer(213, 2, 3, AMOUNT_MAX + 1),
            TR::AmountMustNotExceedMax,
        ),
        (
            settle(214, 100, TransferFlags::POST_PENDING_TRANSFER, 0),
            TR::PendingTransferNotPending,
        ),
        (
            settle(215, 999, TransferFlags::VOID_PENDING_TRANSFER, 0),
            TR::PendingTransferNotFound,
        ),
        (
            settle(216, 216, TransferFlags::VOID_PENDING_TRANSFER, 0),
            TR::PendingIdMustBeDifferent,
        ),
    ];
    for (t, want) in cases {
        let (r, changes) = create_transfers(&mut s, std::slice::from_ref(&t), T0);
        assert_eq!(r, [want], "{t:?}");
        assert!(changes.is_empty());
    }
    assert_eq!(s.accounts, before);
}

#[test]
fn overflow_is_refused_not_wrapped() {
    let mut s = state();
    create_accounts(&mut s, &[account(1, USD, 0), account(2, USD, 0)], T0);
    assert_eq!(
        create_transfers(&mut s, &[transfer(1, 1, 2, AMOUNT_MAX)], T0).0,
        [TR::Ok]
    );
    assert_eq!(
        create_transfers(&mut s, &[transfer(2, 1, 2, 1)], T0).0,
        [TR::OverflowsDebitsPosted]
    );
    assert_eq!(
        create_transfers(
            &mut s,
            &[with(transfer(3, 1, 2, 1), TransferFlags::PENDING)],
            T0
        )
        .0,
        [TR::OverflowsDebits]
    );
}

#[test]
fn ids_are_idempotent_and_conflicts_are_named() {
    let mut s = funded();
    let t = NewTransfer {
        user_data_128: 7,
        ..transfer(300, 1, 3, 10)
    };
    assert_eq!(
        create_transfers(&mut s, std::slice::from_ref(&t), T0).0,
        [TR::Ok]
    );
    let after = s.accounts.clone();
    let (r, changes) = create_transfers(&mut s, std::slice::from_ref(&t), T0 + 9);
    assert_eq!(r, [TR::Exists]);
    assert!(changes.is_empty());
    assert_eq!(s.accounts, after, "a retry moves nothing");
    let cases = [
        (
            NewTransfer {
                amount: 11,
                ..t.clone()
            },
            TR::ExistsWithDifferentAmount,
        ),
        (
            transfer(300, 2, 3, 10),
            TR::ExistsWithDifferentDebitAccountId,
        ),
        (
            NewTransfer {
                user_data_128: 8,
                ..t.clone()
            },
            TR::ExistsWithDifferentUserData128,
        ),
        (
            with(t.clone(), TransferFlags::PENDING),
            TR::ExistsWithDifferentFlags,
        ),
        (
            NewTransfer {
                code: 2,
                ..t.clone()
            },
            TR::ExistsWithDifferentCode,
        ),
    ];
    for (t, want) in cases {
        assert_eq!(create_transfers(&mut s, &[t], T0).0, [want]);
    }
}

// -- two-phase transfers --

#[test]
fn a_hold_is_posted_in_part_and_releases_the_rest() {
    let mut s = funded();
    let hold = with(transfer(400, 1, 3, 70), TransferFlags::PENDING);
    assert_eq!(create_transfers(&mut s, &[hold], T0).0, [TR::Ok]);
    assert_eq!(balances(&s, 1), (70, 0, 0, 100));
    assert_eq!(balances(&s, 3), (0, 0, 70, 0));
    // The hold counts against the limit.
    assert_eq!(
        create_transfers(&mut s, &[transfer(401, 1, 3, 31)], T0).0,
        [TR::ExceedsCredits]
    );
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(402, 400, TransferFlags::POST_PENDING_TRANSFER, 71)],
            T0
        )
        .0,
        [TR::ExceedsPendingTransferAmount]
    );
    let (r, changes) = create_transfers(
        &mut s,
        &[settle(403, 400, TransferFlags::POST_PENDING_TRANSFER, 50)],
        T0,
    );
    assert_eq!(r, [TR::Ok]);
    assert_eq!(changes.pending_changed[&tid(400)], PendingStatus::Posted);
    assert_eq!(balances(&s, 1), (0, 50, 0, 100));
    assert_eq!(balances(&s, 3), (0, 0, 0, 50));
    let post = &s.transfers[&tid(403)];
    assert_eq!(
        (post.debit_account_id, post.credit_account_id, post.amount),
        (aid(1), aid(3), 50)
    );
    // Settled once only.
    for (n, flag, want) in [
        (
            404,
            TransferFlags::POST_PENDING_TRANSFER,
            TR::PendingTransferAlreadyPosted,
        ),
        (
            405,
            TransferFlags::VOID_PENDING_TRANSFER,
            TR::PendingTransferAlreadyPosted,
        ),
    ] {
        assert_eq!(
            create_transfers(&mut s, &[settle(n, 400, flag, 0)], T0).0,
            [want]
        );
    }
}

#[test]
fn a_voided_hold_moves_nothing_and_cannot_be_posted() {
    let mut s = funded();
    create_transfers(
        &mut s,
        &[with(transfer(500, 1, 3, 30), TransferFlags::PENDING)],
        T0,
    );
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(501, 500, TransferFlags::VOID_PENDING_TRANSFER, 29)],
            T0
        )
        .0,
        [TR::PendingTransferHasDifferentAmount]
    );
    let void = NewTransfer {
        debit_account_id: Some(aid(2)),
        ..settle(502, 500, TransferFlags::VOID_PENDING_TRANSFER, 0)
    };
    assert_eq!(
        create_transfers(&mut s, &[void], T0).0,
        [TR::PendingTransferHasDifferentDebitAccountId]
    );
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(503, 500, TransferFlags::VOID_PENDING_TRANSFER, 30)],
            T0
        )
        .0,
        [TR::Ok]
    );
    assert_eq!(balances(&s, 1), (0, 0, 0, 100));
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(504, 500, TransferFlags::POST_PENDING_TRANSFER, 0)],
            T0
        )
        .0,
        [TR::PendingTransferAlreadyVoided]
    );
}

#[test]
fn an_expired_hold_is_voided_by_the_ledger_and_never_posted() {
    let mut s = funded();
    let hold = NewTransfer {
        timeout: 60,
        ..with(transfer(600, 1, 3, 40), TransferFlags::PENDING)
    };
    create_transfers(&mut s, &[hold], T0);
    let recorded = s.transfers[&tid(600)].clone();
    let expires = recorded.expires_at().unwrap();
    assert_eq!(expires, recorded.timestamp + 60 * SECOND);
    // Before the loop runs, a post after the deadline is already refused.
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(601, 600, TransferFlags::POST_PENDING_TRANSFER, 0)],
            expires
        )
        .0,
        [TR::PendingTransferExpired]
    );
    // Too early for the loop.
    let (voids, changes) = expire_pending(&mut s, &[tid(600)], expires - 1);
    assert!(voids.is_empty() && changes.is_empty());
    let (voids, changes) = expire_pending(&mut s, &[tid(600)], expires);
    assert_eq!(voids, [expiry_id(tid(600))]);
    assert_eq!(changes.pending_changed[&tid(600)], PendingStatus::Expired);
    assert_eq!(balances(&s, 1), (0, 0, 0, 100), "the hold is released");
    // Twice is once.
    let (voids, _) = expire_pending(&mut s, &[tid(600)], expires + 5);
    assert!(voids.is_empty());
    assert_eq!(
        create_transfers(
            &mut s,
            &[settle(602, 600, TransferFlags::VOID_PENDING_TRANSFER, 0)],
            expires + 6
        )
        .0,
        [TR::PendingTransferExpired]
    );
}

#[test]
fn balancing_moves_at_most_what_the_account_allows() {
    let mut s = funded();
    // Ask for 1,000, get the 100 the customer has.
    let t = with(transfer(700, 1, 3, 1_000), TransferFlags::BALANCING_DEBIT);
    assert_eq!(
        create_transfers(&mut s, std::slice::from_ref(&t), T0).0,
        [TR::Ok]
    );
    assert_eq!(s.transfers[&tid(700)].amount, 100);
    assert_eq!(balances(&s, 1), (0, 100, 0, 100));
    // Nothing left: a zero-amount balancing transfer is still recorded.
    let t2 = with(transfer(701, 1, 3, 0), TransferFlags::BALANCING_DEBIT);
    assert_eq!(create_transfers(&mut s, &[t2], T0).0, [TR::Ok]);
    assert_eq!(s.transfers[&tid(701)].amount, 0);
    // Retried with its bound: exists.
    assert_eq!(create_transfers(&mut s, &[t], T0).0, [TR::Exists]);
}

#[test]
fn a_closing_hold_closes_the_account_until_voided() {
    let mut s = funded();
    let close = with(
        transfer(800, 2, 3, 0),
        TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT,
    );
    assert_eq!(create_transfers(&mut s, &[close], T0).0, [TR::Ok]);
    assert!(s.accounts[&aid(2)].flags.has(AccountFlags::CLOSED));
    assert_eq!(
        create_transfers(&mut s, &[transfer(801, 2, 3, 1)], T0).0,
        [TR::DebitAccountAlreadyClosed]
    );
    assert_eq!(
        create_transfers(&mut s, &[transfer(802, 3, 2, 1)], T0).0,
        [TR::CreditAccountAlreadyClosed]
    );
    create_transfers(
        &mut s,
        &[settle(803, 800, TransferFlags::VOID_PENDING_TRANSFER, 0)],
        T0,
    );
    assert!(!s.accounts[&aid(2)].flags.has(AccountFlags::CLOSED));
    assert_eq!(
        create_transfers(&mut s, &[transfer(804, 2, 3, 1)], T0).0,
        [TR::Ok]
    );
}

#[test]
fn a_linked_chain_with_one_bad_member_changes_nothing() {
    let mut s = funded();
    let before = s.clone();
    let (r, changes) = create_transfers(
        &mut s,
        &[
            with(transfer(900, 1, 3, 10), TransferFlags::LINKED),
            with(transfer(901, 1, 3, 20), TransferFlags::LINKED),
            transfer(902, 1, 3, 500),
            transfer(903, 1, 3, 5),
            with(transfer(904, 1, 3, 5), TransferFlags::LINKED),
        ],
        T0,
    );
    assert_eq!(
        r,
        [
            TR::LinkedEventFailed,
            TR::LinkedEventFailed,
            TR::ExceedsCredits,
            TR::Ok,
            TR::LinkedEventChainOpen
        ]
    );
    assert_eq!(changes.transfers_created, [tid(903)]);
    assert_eq!(balances(&s, 1), (0, 5, 0, 100));
    assert!(!s.transfers.contains_key(&tid(900)));
    assert_eq!(s.last_timestamp, before.last_timestamp + 1);
}

#[test]
fn timestamps_strictly_increase_even_when_the_clock_does_not() {
    let mut s = funded();
    let batch: Vec<NewTransfer> = (0..5).map(|i| transfer(1000 + i, 2, 3, 1)).collect();
    create_transfers(&mut s, &batch, T0 - 1_000);
    let stamps: Vec<LedgerTimestamp> = (0..5)
        .map(|i| s.transfers[&tid(1000 + i)].timestamp)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    assert!(stamps[0] > T0, "never behind the last one assigned");
}

#[test]
fn replay_rebuilds_every_balance_from_the_log() {
    let mut s = funded();
    create_transfers(
        &mut s,
        &[
            with(transfer(1100, 1, 3, 30), TransferFlags::PENDING),
            transfer(1101, 2, 1, 5),
            settle(1102, 1100, TransferFlags::POST_PENDING_TRANSFER, 10),
        ],
        T0,
    );
    let mut log: Vec<&Transfer> = s.transfers.values().collect();
    log.sort_by_key(|t| t.timestamp);
    let replayed = replay(s.accounts.values(), log.iter().copied()).unwrap();
    for (id, a) in &s.accounts {
        let r = &replayed[id];
        assert_eq!(
            (
                r.debits_pending,
                r.debits_posted,
                r.credits_pending,
                r.credits_posted
            ),
            (
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted
            ),
            "{id}"
        );
    }
    // A post of an unknown hold does not replay.
    let mut bad = s.transfers[&tid(1102)].clone();
    bad.pending_id = Some(tid(4242));
    assert!(matches!(
        replay(s.accounts.values(), [&bad]),
        Err(engine::ReplayError::UnknownPending { .. })
    ));
}

#[test]
fn leaves_have_a_fixed_layout() {
    let s = funded();
    let a = encoding::account_bytes(&s.accounts[&aid(1)]);
    let t = encoding::transfer_bytes(&s.transfers[&tid(100)]);
    assert_eq!(a.len(), 77);
    assert_eq!(t.len(), 121);
    assert_eq!(
        (a[0], t[0]),
        (encoding::ACCOUNT_LEAF, encoding::TRANSFER_LEAF)
    );
    // The amount sits after the kind byte and three ids.
    assert_eq!(&t[49..57], &100u64.to_be_bytes());
    // Balances are not in an account's leaf: they change, the leaf never.
    let mut moved = s.accounts[&aid(1)].clone();
    moved.credits_posted += 1;
    assert_eq!(encoding::account_bytes(&moved), a);
}

// -- properties --

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Transfer {
        debit: u8,
        credit: u8,
        amount: u16,
        flags: u16,
        timeout: u8,
    },
    Settle {
        pending: u8,
        post: bool,
        amount: u16,
    },
    Expire {
        advance_s: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..6, 0u16..500, 0u16..64, 0u8..3).prop_map(|(debit, credit, amount, flags, timeout)| Op::Transfer { debit, credit, amount, flags, timeout }),
        2 => (0u8..40, any::<bool>(), 0u16..300).prop_map(|(pending, post, amount)| Op::Settle { pending, post, amount }),
        1 => (0u8..90).prop_map(|advance_s| Op::Expire { advance_s }),
    ]
}

/// Accounts 1–6 on USD: 1 and 2 may not be overdrawn, 3 may not be
/// over-credited, 4–6 are free; 7 is on CU. Account 4 starts with credit.
fn prop_state() -> LedgerState {
    let mut s = state();
    let flags = [
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        0,
        0,
        0,
    ];
    let mut batch: Vec<NewAccount> = flags
        .iter()
        .enumerate()
        .map(|(i, f)| account(i as u128 + 1, USD, *f))
        .collect();
    batch.push(account(7, CU, 0));
    create_accounts(&mut s, &batch, T0);
    s
}

fn check_invariants(s: &LedgerState, log: &[TransferId]) -> Result<(), TestCaseError> {
    let mut per_ledger: HashMap<u32, (u128, u128, u128, u128)> = HashMap::new();
    for a in s.accounts.values() {
        if a.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            prop_assert!(
                a.debits_pending + a.debits_posted <= a.credits_posted,
                "{a:?}"
            );
        }
        if a.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            prop_assert!(
                a.credits_pending + a.credits_posted <= a.debits_posted,
                "{a:?}"
            );
        }
        let e = per_ledger.entry(a.ledger).or_default();
        e.0 += u128::from(a.debits_pending);
        e.1 += u128::from(a.debits_posted);
        e.2 += u128::from(a.credits_pending);
        e.3 += u128::from(a.credits_posted);
    }
    for (ledger, (dp, dpo, cp, cpo)) in per_ledger {
        prop_assert_eq!(dp, cp, "pending debits = credits on ledger {}", ledger);
        prop_assert_eq!(dpo, cpo, "posted debits = credits on ledger {}", ledger);
    }
    let transfers: Vec<&Transfer> = log.iter().map(|id| &s.transfers[id]).collect();
    prop_assert!(transfers
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp));
    let replayed =
        replay(s.accounts.values(), transfers).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (id, a) in &s.accounts {
        let r = &replayed[id];
        prop_assert_eq!(
            (
                r.debits_pending,
                r.debits_posted,
                r.credits_pending,
                r.credits_posted
            ),
            (
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted
            )
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random batches with every flag: limits hold, debits equal credits,
    /// replay reproduces the balances, retries are idempotent.
    #[test]
    fn random_workloads_keep_every_invariant(batches in prop::collection::vec(prop::collection::vec(op(), 1..12), 1..12)) {
        let mut s = prop_state();
        // Fund account 4 so there is something to move.
        create_transfers(&mut s, &[transfer(1, 5, 4, 2_000)], T0);
        let mut log = vec![tid(1)];
        let mut now = T0;
        let mut next = 10u128;
        let mut requests: Vec<NewTransfer> = Vec::new();
        for batch in batches {
            now += SECOND;
            let mut items = Vec::new();
            let mut expiries = Vec::new();
            for op in batch {
                match op {
                    Op::Transfer { debit, credit, amount, flags, timeout } => {
                        let pending = flags & TransferFlags::PENDING != 0;
                        items.push(NewTransfer {
                            timeout: if pending { u32::from(timeout) * 2 } else { 0 },
                            ..with(transfer(next, u128::from(debit) + 1, u128::from(credit) + 1, u64::from(amount)),
                                   flags & !(TransferFlags::POST_PENDING_TRANSFER | TransferFlags::VOID_PENDING_TRANSFER))
                        });
                    }
                    Op::Settle { pending, post, amount } => {
                        let flag = if post { TransferFlags::POST_PENDING_TRANSFER } else { TransferFlags::VOID_PENDING_TRANSFER };
                        items.push(settle(next, u128::from(pending) + 10, flag, u64::from(amount)));
                    }
                    Op::Expire { advance_s } => {
                        now += u64::from(advance_s) * SECOND;
                        expiries.extend(s.pending.iter().filter(|(_, st)| **st == PendingStatus::Pending).map(|(id, _)| *id));
                    }
                }
                next += 1;
            }
            let before = s.clone();
            let (results, changes) = create_transfers(&mut s, &items, now);
            // Nothing that failed left a trace; every success is in the log.
            for (t, r) in items.iter().zip(&results) {
                prop_assert_eq!(r.is_ok(), s.transfers.contains_key(&t.id) && !before.transfers.contains_key(&t.id));
            }
            log.extend(changes.transfers_created.iter().copied());
            requests.extend(items.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(t, _)| t.clone()));
            expiries.sort();
            let (_, changes) = expire_pending(&mut s, &expiries, now);
            log.extend(changes.transfers_created.iter().copied());
            check_invariants(&s, &log)?;
        }
        // Every recorded request, sent again, answers `exists` and moves
        // nothing; changed, it answers a conflict.
        let settled = s.clone();
        // (A linked transfer is retried with its chain; alone it would be an
        // open chain.)
        for t in requests.iter().filter(|t| !t.flags.has(TransferFlags::LINKED)) {
            let (r, changes) = create_transfers(&mut s, std::slice::from_ref(t), now);
            prop_assert_eq!(r, vec![TR::Exists]);
            prop_assert!(changes.is_empty());
            let mut other = t.clone();
            other.user_data_32 = 99;
            let (r, _) = create_transfers(&mut s, &[other], now);
            prop_assert_eq!(r, vec![TR::ExistsWithDifferentUserData32]);
        }
        prop_assert_eq!(s.accounts, settled.accounts);
    }

    /// A linked chain with one bad member changes nothing at all.
    #[test]
    fn a_chain_with_a_bad_member_changes_nothing(good in prop::collection::vec((3u8..6, 3u8..6, 1u16..100), 1..6), at in 0usize..6) {
        let mut s = prop_state();
        create_transfers(&mut s, &[transfer(1, 5, 4, 2_000)], T0);
        let before = s.clone();
        let mut chain: Vec<NewTransfer> = good
            .iter()
            .enumerate()
            .map(|(i, (d, c, a))| {
                let (d, c) = if d == c { (4, 5) } else { (*d, *c) };
                with(transfer(100 + i as u128, u128::from(d) + 1, u128::from(c) + 1, u64::from(*a)), TransferFlags::LINKED)
            })
            .collect();
        // The bad one: overdraws account 1, which has nothing.
        let at = at.min(chain.len());
        chain.insert(at, with(transfer(99, 1, 4, 1), TransferFlags::LINKED));
        if let Some(last) = chain.last_mut() {
            last.flags = TransferFlags(last.flags.0 & !TransferFlags::LINKED);
        }
        let (results, changes) = create_transfers(&mut s, &chain, T0 + SECOND);
        prop_assert!(results.iter().all(|r| !r.is_ok()));
        prop_assert_eq!(results[at], TR::ExceedsCredits);
        prop_assert!(changes.is_empty());
        prop_assert_eq!(s.accounts, before.accounts);
        prop_assert_eq!(s.transfers.len(), before.transfers.len());
        prop_assert_eq!(s.last_timestamp, before.last_timestamp);
    }
}
