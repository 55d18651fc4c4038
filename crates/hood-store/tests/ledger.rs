#![allow(clippy::expect_used, clippy::unwrap_used)]

//! The ledger's store on SQLite and PostgreSQL: batches with TigerBeetle's
//! results, limits that hold, holds that expire, and a Merkle log that
//! always matches the records and proves each of them.

#[macro_use]
mod support;

use hood_domain::ledger::{
    encoding, AccountFlags, CreateAccountResult as AR, CreateTransferResult as TR, PendingStatus,
    TransferFlags, NANOS_PER_SECOND,
};
use hood_store::ledger::{LeafKind, LedgerStore, LogRecord, TransferQuery};
use hood_testkit::ledger::*;
use hood_tlog::{inclusion_plan, leaf_hash, merkle_tree_hash, verify_inclusion, Frontier};
use support::Harness;

const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

/// Ledgers, then accounts 1 (customer credits: no overdraft), 2 (cash),
/// 3 (revenue) on USD and 9 on CU; 100 credited to 1 from cash.
async fn funded(store: &dyn LedgerStore) {
    for l in ledgers() {
        store.ensure_ledger(&l, hood_clock::now()).await.unwrap();
    }
    let r = store
        .create_accounts(
            &[
                account(1, USD, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
                account(2, USD, 0),
                account(3, USD, 0),
                account(9, CU, 0),
            ],
            T0,
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| *r == AR::Ok), "{r:?}");
    let r = store
        .create_transfers(&[transfer(100, 2, 1, 100)], T0 + 1)
        .await
        .unwrap();
    assert_eq!(r, [TR::Ok]);
}

async fn balances(store: &dyn LedgerStore, n: u128) -> (u64, u64, u64, u64) {
    let a = store.get_account(aid(n)).await.unwrap().expect("account");
    (
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
    )
}

async fn transfers_are_recorded_once_and_limits_hold(db: &Harness) {
    let store = db.migrated().await;
    funded(store).await;
    // Spend 60 of the 100, then try 50 more: refused, nothing moves.
    let r = store
        .create_transfers(&[transfer(1, 1, 3, 60), transfer(2, 1, 3, 50)], T0 + 10)
        .await
        .unwrap();
    assert_eq!(r, [TR::Ok, TR::ExceedsCredits]);
    assert_eq!(balances(store, 1).await, (0, 60, 0, 100));
    assert_eq!(balances(store, 3).await, (0, 0, 0, 60));
    // The same transfer again: exists; with another amount: a conflict.
    let r = store
        .create_transfers(&[transfer(1, 1, 3, 60), transfer(1, 1, 3, 61)], T0 + 20)
        .await
        .unwrap();
    assert_eq!(r, [TR::Exists, TR::ExistsWithDifferentAmount]);
    assert_eq!(balances(store, 1).await, (0, 60, 0, 100));
    // Across ledgers: refused.
    let r = store
        .create_transfers(&[transfer(3, 2, 9, 1)], T0 + 30)
        .await
        .unwrap();
    assert_eq!(r, [TR::AccountsMustHaveTheSameLedger]);
    // The account again: exists.
    let r = store
        .create_accounts(&[account(2, USD, 0)], T0 + 40)
        .await
        .unwrap();
    assert_eq!(r, [AR::Exists]);

    // Listing by account, oldest first; the timestamps strictly increase.
    let listed = store
        .list_transfers(&TransferQuery {
            account_id: Some(aid(1)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [tid(100), tid(1)]);
    assert!(listed[0].timestamp < listed[1].timestamp);
}

async fn a_linked_chain_with_one_bad_member_changes_nothing(db: &Harness) {
    let store = db.migrated().await;
    funded(store).await;
    let before = store.ledger_head().await.unwrap();
    let r = store
        .create_transfers(
            &[
                with(transfer(1, 1, 3, 30), TransferFlags::LINKED),
                with(transfer(2, 1, 3, 30), TransferFlags::LINKED),
                transfer(3, 1, 3, 50),
            ],
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        [
            TR::LinkedEventFailed,
            TR::LinkedEventFailed,
            TR::ExceedsCredits
        ]
    );
    assert_eq!(balances(store, 1).await, (0, 0, 0, 100));
    assert!(store.get_transfer(tid(1)).await.unwrap().is_none());
    let after = store.ledger_head().await.unwrap();
    assert_eq!(
        after.tree_size, before.tree_size,
        "no leaf for a failed chain"
    );
    assert_eq!(after.root, before.root);
}

async fn holds_post_void_and_expire(db: &Harness) {
    let store = db.migrated().await;
    funded(store).await;
    // Two holds of 40 with a 10-second timeout.
    let hold = |n, amount| hood_domain::ledger::NewTransfer {
        timeout: 10,
        ..with(transfer(n, 1, 3, amount), TransferFlags::PENDING)
    };
    let r = store
        .create_transfers(&[hold(1, 40), hold(2, 40)], T0 + 10)
        .await
        .unwrap();
    assert_eq!(r, [TR::Ok, TR::Ok]);
    assert_eq!(balances(store, 1).await, (80, 0, 0, 100));
    // A third would pass the limit with the holds counted.
    let r = store
        .create_transfers(&[hold(3, 40)], T0 + 20)
        .await
        .unwrap();
    assert_eq!(r, [TR::ExceedsCredits]);
    // Post 25 of the first; the rest of its hold is released.
    let r = store
        .create_transfers(
            &[settle(4, 1, TransferFlags::POST_PENDING_TRANSFER, 25)],
            T0 + 30,
        )
        .await
        .unwrap();
    assert_eq!(r, [TR::Ok]);
    assert_eq!(balances(store, 1).await, (40, 25, 0, 100));
    let (_, status) = store.get_transfer(tid(1)).await.unwrap().unwrap();
    assert_eq!(status, Some(PendingStatus::Posted));

    // Nothing has expired yet; eleven seconds on, the second hold has.
    assert_eq!(
        store.expire_pending_transfers(T0 + 40, 100).await.unwrap(),
        0
    );
    let later = T0 + 11 * NANOS_PER_SECOND + 10;
    assert_eq!(store.expire_pending_transfers(later, 100).await.unwrap(), 1);
    assert_eq!(store.expire_pending_transfers(later, 100).await.unwrap(), 0);
    assert_eq!(balances(store, 1).await, (0, 25, 0, 100));
    let (_, status) = store.get_transfer(tid(2)).await.unwrap().unwrap();
    assert_eq!(status, Some(PendingStatus::Expired));
    // An expired hold can never be posted.
    let r = store
        .create_transfers(
            &[settle(5, 2, TransferFlags::POST_PENDING_TRANSFER, 0)],
            later + 1,
        )
        .await
        .unwrap();
    assert_eq!(r, [TR::PendingTransferExpired]);
}

async fn the_log_matches_its_records_and_proves_each_of_them(db: &Harness) {
    let store = db.migrated().await;
    funded(store).await;
    for i in 0..20u128 {
        let r = store
            .create_transfers(
                &[transfer(1_000 + i, 2, 3, 1), transfer(2_000 + i, 3, 2, 1)],
                T0 + 100 + i as u64,
            )
            .await
            .unwrap();
        assert_eq!(r, [TR::Ok, TR::Ok]);
    }
    let head = store.ledger_head().await.unwrap();
    // 4 accounts, the funding transfer, 40 more.
    assert_eq!(head.tree_size, 45);
    let entries = store.log_entries(0, 1_000).await.unwrap();
    assert_eq!(entries.len(), 45);
    let mut leaves = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.index, i as u64);
        assert_eq!(e.record_leaf, Some(e.index));
        let bytes = match &e.record {
            LogRecord::Account(a) => encoding::account_bytes(a),
            LogRecord::Transfer(t) => encoding::transfer_bytes(t),
            LogRecord::Missing => panic!("leaf {i} lost its record"),
        };
        assert_eq!(leaf_hash(&bytes), e.hash, "leaf {i}");
        leaves.push(e.hash);
    }
    assert_eq!(entries[0].kind, LeafKind::Account);
    assert_eq!(entries[4].kind, LeafKind::Transfer);
    assert_eq!(head.root, merkle_tree_hash(&leaves));
    // Every leaf's inclusion proof, assembled from stored nodes, verifies
    // against the head (and against an older size).
    for size in [head.tree_size, 13] {
        let root = merkle_tree_hash(&leaves[..size as usize]);
        for index in 0..size {
            let plan = inclusion_plan(index, size).unwrap();
            let ids = plan.nodes();
            let hashes = store.tree_nodes(&ids).await.unwrap();
            let lookup: std::collections::HashMap<_, _> = ids
                .iter()
                .zip(hashes)
                .map(|(id, h)| (*id, h.expect("stored")))
                .collect();
            let proof = plan.assemble(|n| lookup.get(&n).copied()).unwrap();
            verify_inclusion(index, size, &leaves[index as usize], &proof, &root).unwrap();
        }
    }
    // The frontier the head keeps is the one rebuilt from the leaves.
    let mut f = Frontier::new();
    for l in &leaves {
        f.append(*l).unwrap();
    }
    assert_eq!(f.root(), head.root);
    assert_eq!(
        store
            .leaf_index(LeafKind::Transfer, &tid(100).to_string())
            .await
            .unwrap(),
        Some(4)
    );
}

async fn a_second_store_sees_one_log_and_one_signing_key(db: &Harness) {
    let store = db.migrated().await;
    funded(store).await;
    let other = db.reopen().await;
    let r = other
        .create_transfers(&[transfer(1, 2, 3, 5)], T0 + 50)
        .await
        .unwrap();
    assert_eq!(r, [TR::Ok]);
    assert_eq!(store.ledger_head().await.unwrap().tree_size, 6);
    let key = |seed: u8| hood_store::ledger::LedgerSigningKey {
        name: "hood-ledger".into(),
        public_key: [seed; 32],
        sealed_seed: vec![seed; 48],
        created_at: hood_clock::now(),
    };
    let first = store
        .insert_ledger_signing_key_if_absent(&key(1))
        .await
        .unwrap();
    let second = other
        .insert_ledger_signing_key_if_absent(&key(2))
        .await
        .unwrap();
    assert_eq!(first.public_key, [1; 32]);
    assert_eq!(second.public_key, [1; 32], "the first key stays");
}

conformance!(
    transfers_are_recorded_once_and_limits_hold,
    a_linked_chain_with_one_bad_member_changes_nothing,
    holds_post_void_and_expire,
    the_log_matches_its_records_and_proves_each_of_them,
    a_second_store_sees_one_log_and_one_signing_key,
);
