#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The ledger under concurrent writers on PostgreSQL: eight stores on one
//! database send seeded random batches (linked chains, holds posted in full
//! or in part, voided or left to expire, balancing transfers, limits, a few
//! hot accounts every writer touches and many cold ones). Afterwards every
//! limit holds, debits equal credits per ledger, the log replays to exactly
//! the stored balances, and its head is the Merkle root of its leaves. Any
//! store error (a deadlock, a serialization failure) fails the test.

use hood_domain::ledger::{
    encoding, replay, Account, AccountFlags, CreateTransferResult as TR, NewTransfer, TransferFlags,
};
use hood_domain::{AccountId, TransferId};
use hood_store::ledger::{AccountQuery, LedgerStore, LogRecord, TransferQuery};
use hood_testkit::ledger::{account, aid, ledgers, tid, with, CU, USD};
use hood_testkit::PgDatabase;
use hood_tlog::{leaf_hash, merkle_tree_hash};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const WRITERS: u64 = 8;
/// Transfers each writer must see recorded (`ok`): 8 × 2,600 > 20,000.
const OK_PER_WRITER: usize = 2_600;
/// A writer that has not got there after this many batches fails the test.
const MAX_BATCHES: usize = 80;

/// USD: hot 1, 2 (no limits) and 3 (a shared wallet that cannot be
/// overdrawn); many cold ones from 100.
const USD_HOT: [u128; 3] = [1, 2, 3];
const USD_MANY: std::ops::Range<u128> = 100..700;
/// CU: hot 11 (no limit) and 12 (credits capped by debits); cold from 1,000.
const CU_HOT: [u128; 2] = [11, 12];
const CU_MANY: std::ops::Range<u128> = 1_000..1_200;

/// Cold accounts: a quarter may not be overdrawn, a quarter may not be
/// over-credited.
fn flags_of(n: u128) -> u16 {
    match n {
        3 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        12 => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        n if n >= 100 && n % 4 == 0 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        n if n >= 100 && n % 4 == 1 => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        _ => 0,
    }
}

fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// Holds any writer may settle: id and amount.
type Holds = Arc<Mutex<Vec<(TransferId, u64)>>>;

struct Writer {
    rng: StdRng,
    id: u64,
    next: u64,
    holds: Holds,
}

impl Writer {
    fn tid(&mut self) -> TransferId {
        self.next += 1;
        tid((u128::from(self.id + 1) << 64) | u128::from(self.next))
    }

    /// Two different accounts of one ledger (a hot one a third of the
    /// time on each side), and the ledger.
    fn pair(&mut self) -> (u128, u128, u32) {
        let (hot, many, ledger): (&[u128], std::ops::Range<u128>, u32) = if self.rng.gen_bool(0.8) {
            (&USD_HOT, USD_MANY, USD)
        } else {
            (&CU_HOT, CU_MANY, CU)
        };
        let pick = |rng: &mut StdRng| {
            if rng.gen_bool(0.35) {
                hot[rng.gen_range(0..hot.len())]
            } else {
                rng.gen_range(many.clone())
            }
        };
        let debit = pick(&mut self.rng);
        let mut credit = pick(&mut self.rng);
        while credit == debit {
            credit = pick(&mut self.rng);
        }
        (debit, credit, ledger)
    }

    fn plain(&mut self) -> NewTransfer {
        let (d, c, ledger) = self.pair();
        let amount = self.rng.gen_range(1..1_000);
        NewTransfer {
            ledger,
            ..hood_testkit::ledger::transfer(0, d, c, amount)
        }
        .with_id(self.tid())
    }

    /// An account of `ledger` carrying `flag`, hot or cold.
    fn flagged(&mut self, flag: u16) -> (u128, u32) {
        loop {
            let (d, _, ledger) = self.pair();
            if flags_of(d) == flag {
                return (d, ledger);
            }
        }
    }

    /// One item of a batch: a single transfer or a whole linked chain.
    fn item(&mut self, out: &mut Vec<NewTransfer>) {
        match self.rng.gen_range(0..100) {
            // A plain transfer.
            0..=39 => {
                let t = self.plain();
                out.push(t);
            }
            // A linked chain of 2 to 4, one in five broken on purpose (a
            // member across ledgers): the whole chain then fails.
            40..=54 => {
                let len = self.rng.gen_range(2..=4);
                let broken = self.rng.gen_bool(0.2).then(|| self.rng.gen_range(0..len));
                for i in 0..len {
                    let mut t = self.plain();
                    if broken == Some(i) {
                        t.debit_account_id = Some(aid(USD_HOT[0]));
                        t.credit_account_id = Some(aid(CU_HOT[0]));
                    }
                    if i + 1 < len {
                        t = with(t, TransferFlags::LINKED);
                    }
                    out.push(t);
                }
            }
            // A hold, one in five expiring after a second.
            55..=72 => {
                let mut t = with(self.plain(), TransferFlags::PENDING);
                if self.rng.gen_bool(0.2) {
                    t.timeout = 1;
                }
                out.push(t);
            }
            // Settle a hold of any writer: post all, post part, or void.
            // One in five stays in the pool, so writers race to settle it.
            73..=89 => {
                let picked = {
                    let mut holds = self.holds.lock().unwrap();
                    if holds.is_empty() {
                        None
                    } else {
                        let i = self.rng.gen_range(0..holds.len());
                        Some(if self.rng.gen_bool(0.2) {
                            holds[i]
                        } else {
                            holds.swap_remove(i)
                        })
                    }
                };
                let Some((pending, held)) = picked else {
                    let t = self.plain();
                    out.push(t);
                    return;
                };
                let (flag, amount) = match self.rng.gen_range(0..3) {
                    0 => (TransferFlags::POST_PENDING_TRANSFER, 0),
                    1 => (TransferFlags::POST_PENDING_TRANSFER, (held / 2).max(1)),
                    _ => (TransferFlags::VOID_PENDING_TRANSFER, 0),
                };
                let id = self.tid();
                out.push(NewTransfer {
                    id,
                    debit_account_id: None,
                    credit_account_id: None,
                    amount,
                    pending_id: Some(pending),
                    ledger: 0,
                    code: 0,
                    flags: TransferFlags(flag),
                    ..hood_testkit::ledger::transfer(0, 0, 0, 0)
                });
            }
            // Balancing: drain what a limited account allows.
            _ => {
                let (mut t, flag) = if self.rng.gen_bool(0.5) {
                    let (d, ledger) = self.flagged(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
                    let mut t = self.plain();
                    t.debit_account_id = Some(aid(d));
                    t.ledger = ledger;
                    (t, TransferFlags::BALANCING_DEBIT)
                } else {
                    let (c, ledger) = self.flagged(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
                    let mut t = self.plain();
                    t.credit_account_id = Some(aid(c));
                    t.ledger = ledger;
                    (t, TransferFlags::BALANCING_CREDIT)
                };
                // The other side on the same ledger, never the same account.
                let other = if t.ledger == USD { 2 } else { 11 };
                if flag == TransferFlags::BALANCING_DEBIT {
                    t.credit_account_id = Some(aid(other));
                } else {
                    t.debit_account_id = Some(aid(other));
                }
                t.amount = self.rng.gen_range(1..5_000);
                out.push(with(t, flag));
            }
        }
    }
}

trait WithId {
    fn with_id(self, id: TransferId) -> Self;
}

impl WithId for NewTransfer {
    fn with_id(mut self, id: TransferId) -> Self {
        self.id = id;
        self
    }
}

#[derive(Debug, Default)]
struct Tally {
    attempts: usize,
    ok: usize,
    expired: usize,
    batches: usize,
    outcomes: BTreeMap<&'static str, usize>,
}

async fn write(store: Arc<dyn LedgerStore>, id: u64, holds: Holds) -> Tally {
    let mut w = Writer {
        rng: StdRng::seed_from_u64(0x1ed9_e700 + id),
        id,
        next: 0,
        holds,
    };
    let mut tally = Tally::default();
    while tally.ok < OK_PER_WRITER {
        assert!(
            tally.batches < MAX_BATCHES,
            "writer {id}: only {} of {OK_PER_WRITER} recorded after {MAX_BATCHES} batches: {:?}",
            tally.ok,
            tally.outcomes
        );
        // Mostly large batches; one in four small, so PostgreSQL's
        // one-statement write (small batches) races the per-table one.
        let size = if w.rng.gen_bool(0.25) {
            w.rng.gen_range(1..=40)
        } else {
            w.rng.gen_range(200..=400)
        };
        let mut batch = Vec::with_capacity(size + 4);
        while batch.len() < size {
            w.item(&mut batch);
        }
        let results = store
            .create_transfers(&batch, now_ns())
            .await
            .unwrap_or_else(|e| panic!("writer {id}, batch {}: {e}", tally.batches));
        assert_eq!(results.len(), batch.len());
        tally.batches += 1;
        tally.attempts += batch.len();
        let mut new_holds = Vec::new();
        for (t, r) in batch.iter().zip(&results) {
            *tally.outcomes.entry(r.as_str()).or_default() += 1;
            if *r == TR::Ok {
                tally.ok += 1;
                if t.flags.has(TransferFlags::PENDING) {
                    new_holds.push((t.id, t.amount));
                }
            }
        }
        w.holds.lock().unwrap().extend(new_holds);
        if tally.batches.is_multiple_of(4) {
            tally.expired += store
                .expire_pending_transfers(now_ns(), 100)
                .await
                .unwrap_or_else(|e| panic!("writer {id}, expiring: {e}"));
        }
    }
    tally
}

async fn all_accounts(store: &dyn LedgerStore) -> Vec<Account> {
    let mut out: Vec<Account> = Vec::new();
    loop {
        let page = store
            .list_accounts(&AccountQuery {
                after_timestamp: out.last().map(|a| a.timestamp),
                limit: 1_000,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

async fn count_transfers(store: &dyn LedgerStore) -> usize {
    let (mut n, mut after) = (0, None);
    loop {
        let page = store
            .list_transfers(&TransferQuery {
                after_timestamp: after,
                limit: 5_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else {
            return n;
        };
        after = Some(last.timestamp);
        n += page.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_the_ledger_balanced_and_its_log_exact() {
    let Some(db) = PgDatabase::create("ledger_concurrency").await else {
        return;
    };
    let setup = hood_store::connect(&db.url).await.unwrap();
    hood_store::Store::migrate(setup.as_ref()).await.unwrap();
    for l in ledgers() {
        setup.ensure_ledger(&l, hood_clock::now()).await.unwrap();
    }
    let mut opening = Vec::new();
    for n in USD_HOT.into_iter().chain(USD_MANY) {
        opening.push(account(n, USD, flags_of(n)));
    }
    for n in CU_HOT.into_iter().chain(CU_MANY) {
        opening.push(account(n, CU, flags_of(n)));
    }
    let results = setup.create_accounts(&opening, now_ns()).await.unwrap();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");

    // Eight writers, each with its own store (and pool) on the database.
    let started = Instant::now();
    let holds: Holds = Arc::default();
    let mut tasks = Vec::new();
    for id in 0..WRITERS {
        let store: Arc<dyn LedgerStore> = hood_store::connect(&db.url).await.unwrap();
        tasks.push(tokio::spawn(write(store, id, holds.clone())));
    }
    let mut tallies = Vec::new();
    for t in tasks {
        tallies.push(t.await.expect("a writer failed"));
    }
    let took = started.elapsed();
    let attempts: usize = tallies.iter().map(|t| t.attempts).sum();
    let ok: usize = tallies.iter().map(|t| t.ok).sum();
    let expired: usize = tallies.iter().map(|t| t.expired).sum();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tallies {
        for (k, v) in &t.outcomes {
            *outcomes.entry(k).or_default() += v;
        }
    }
    eprintln!(
        "{attempts} attempts, {ok} recorded, {expired} holds expired, in {:.1} s: {outcomes:?}",
        took.as_secs_f64()
    );
    assert!(ok >= 20_000, "only {ok} transfers recorded");
    for kind in [
        "linked_event_failed",
        "exceeds_credits",
        "pending_transfer_already_posted",
    ] {
        assert!(
            outcomes.contains_key(kind),
            "no `{kind}` outcome: {outcomes:?}"
        );
    }

    // What the tables hold: every recorded transfer exactly once (the
    // writers' own and the voids of expired holds).
    let store: &dyn LedgerStore = setup.as_ref();
    let accounts = all_accounts(store).await;
    assert_eq!(accounts.len(), opening.len());
    let transfers = count_transfers(store).await;
    assert_eq!(transfers, ok + expired, "recorded transfers");

    // Every limit holds.
    for a in &accounts {
        if a.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            assert!(
                a.debits_pending + a.debits_posted <= a.credits_posted,
                "overdrawn: {a:?}"
            );
        }
        if a.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            assert!(
                a.credits_pending + a.credits_posted <= a.debits_posted,
                "over-credited: {a:?}"
            );
        }
    }
    // Σ debits = Σ credits per ledger, pending and posted apart.
    let mut sums: BTreeMap<u32, [u128; 4]> = BTreeMap::new();
    for a in &accounts {
        let s = sums.entry(a.ledger).or_default();
        s[0] += u128::from(a.debits_pending);
        s[1] += u128::from(a.credits_pending);
        s[2] += u128::from(a.debits_posted);
        s[3] += u128::from(a.credits_posted);
    }
    for (ledger, [dp, cp, dpo, cpo]) in &sums {
        assert_eq!(dp, cp, "ledger {ledger}: pending debits vs credits");
        assert_eq!(dpo, cpo, "ledger {ledger}: posted debits vs credits");
        assert!(*dpo > 0, "ledger {ledger} moved nothing");
    }

    // The log, in leaf order: every leaf's record is there and hashes to
    // it; replaying it gives every stored balance exactly.
    let head = store.ledger_head().await.unwrap();
    let (mut logged_accounts, mut logged_transfers, mut hashes) =
        (Vec::new(), Vec::new(), Vec::new());
    loop {
        let page = store.log_entries(hashes.len() as u64, 5_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            assert_eq!(e.index, hashes.len() as u64);
            assert_eq!(e.record_leaf, Some(e.index), "leaf {}", e.index);
            let bytes = match &e.record {
                LogRecord::Account(a) => {
                    logged_accounts.push(a.clone());
                    encoding::account_bytes(a)
                }
                LogRecord::Transfer(t) => {
                    logged_transfers.push(t.clone());
                    encoding::transfer_bytes(t)
                }
                LogRecord::Missing => panic!("leaf {} lost its record", e.index),
            };
            assert_eq!(leaf_hash(&bytes), e.hash, "leaf {}", e.index);
            hashes.push(e.hash);
        }
    }
    assert_eq!(head.tree_size, hashes.len() as u64);
    assert_eq!(
        head.tree_size,
        (accounts.len() + transfers) as u64,
        "one leaf per account and per transfer"
    );
    assert_eq!(logged_transfers.len(), transfers);
    assert_eq!(head.root, merkle_tree_hash(&hashes), "head root");
    let replayed = replay(&logged_accounts, &logged_transfers).expect("the log replays");
    let stored: HashMap<AccountId, &Account> = accounts.iter().map(|a| (a.id, a)).collect();
    assert_eq!(replayed.len(), stored.len());
    for (id, r) in &replayed {
        let s = stored[id];
        assert_eq!(
            (
                r.debits_pending,
                r.debits_posted,
                r.credits_pending,
                r.credits_posted
            ),
            (
                s.debits_pending,
                s.debits_posted,
                s.credits_pending,
                s.credits_posted
            ),
            "account {id}: replayed vs stored balances"
        );
    }
    eprintln!(
        "checked {} leaves ({} accounts, {transfers} transfers) in {:.1} s in all",
        head.tree_size,
        accounts.len(),
        started.elapsed().as_secs_f64()
    );
}
