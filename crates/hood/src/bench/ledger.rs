//! `hood bench ledger`: ledger transfers per second, each figure anchored on
//! the store's bare insert rate measured in the same run, and what the
//! Merkle log's upkeep (hashing and proof nodes) costs.
//!
//! Four runs on the database the URL names, after it is migrated and given
//! one ledger, one hot pair of accounts and `--accounts` others:
//!
//! * `single/hot`, `single/many`: one transfer per `create_transfers` call
//!   (one transaction each), between the hot pair (every call touches the
//!   same two rows) or across the many accounts;
//! * `batched/hot`, `batched/many`: `--batch` transfers per call.
//!
//! The anchor of the single runs is `hood_store::bench::bare_insert_rate`
//! with one single-row insert per transaction, that of the batched runs one
//! multi-row insert of `--batch` rows per transaction: the same number of
//! rows, as wide as a transfer, into a scratch table of the same database.
//!
//! Then `batched/many` again on fresh scratch databases beside the first
//! (removed afterwards), alternately with the log kept and with the
//! benchmark-only `ConnectOptions { ledger_log: false }`, `--hashing-rounds`
//! times; the hashing share is `1 - off_time / on_time` of the medians.

use super::percentile;
use anyhow::{bail, Context, Result};
use hood_domain::ledger::{
    AccountFlags, CreateTransferResult, Ledger, NewAccount, NewTransfer, TransferFlags,
};
use hood_domain::{AccountId, TransferId};
use hood_store::bench::{bare_insert_rate, InsertRun, ScratchDatabase};
use hood_store::ledger::LedgerStore;
use hood_store::{ConnectOptions, SqlStore, Store};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Accounts created per call while seeding.
const SEED_BATCH: usize = 1_000;
const LEDGER_ID: u32 = 1;

#[derive(Debug, Clone, clap::Args)]
pub struct LedgerBenchArgs {
    /// Store to measure (`sqlite://…` or `postgres://…`); a fresh database
    /// (migrated by the benchmark, which writes into it). The hashing
    /// comparison creates two scratch databases beside it (a file in the
    /// same directory, or a database on the same server) and removes them.
    #[arg(long)]
    pub database_url: String,
    /// Transfers per batched run.
    #[arg(long, default_value_t = 20_000)]
    pub transfers: usize,
    /// Transfers per single run (one transfer per call).
    #[arg(long, default_value_t = 2_000)]
    pub single_transfers: usize,
    /// Transfers per call in the batched runs.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Accounts of the `many` runs (besides the hot pair).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Rounds of the hashing comparison (log on, then off, each on a fresh
    /// database); their medians are compared.
    #[arg(long, default_value_t = 3)]
    pub hashing_rounds: usize,
}

/// Which accounts a run's transfers move between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// The hot pair, back and forth.
    Hot,
    /// Pairs spread over all the many accounts.
    Many,
}

/// The ledger's accounts and the next transfer id.
struct Books {
    hot: [AccountId; 2],
    many: Vec<AccountId>,
    id_base: u128,
    next: u128,
}

impl Books {
    fn plan(accounts: usize) -> Self {
        // Ids of one run share a random 64-bit prefix and count up below it.
        let prefix = Uuid::new_v4().as_u128() & !u128::from(u64::MAX);
        let account = |i: u128| AccountId::from_uuid(Uuid::from_u128(prefix | i));
        Self {
            hot: [account(1), account(2)],
            many: (0..accounts as u128).map(|i| account(3 + i)).collect(),
            id_base: prefix | (1 << 63),
            next: 0,
        }
    }

    /// `n` plain transfers of `spread`.
    fn transfers(&mut self, spread: Spread, n: usize) -> Vec<NewTransfer> {
        (0..n)
            .map(|_| {
                let i = self.next;
                self.next += 1;
                let (debit, credit) = match spread {
                    Spread::Hot if i.is_multiple_of(2) => (self.hot[0], self.hot[1]),
                    Spread::Hot => (self.hot[1], self.hot[0]),
                    Spread::Many => {
                        let n = self.many.len() as u128;
                        let d = (i * 7_919) % n;
                        let c = (d + 1 + (i * 31) % (n - 1)) % n;
                        (self.many[d as usize], self.many[c as usize])
                    }
                };
                NewTransfer {
                    id: TransferId::from_uuid(Uuid::from_u128(self.id_base | i)),
                    debit_account_id: Some(debit),
                    credit_account_id: Some(credit),
                    amount: 1 + (i % 1_000) as u64,
                    pending_id: None,
                    user_data_128: 0,
                    user_data_64: 0,
                    user_data_32: 0,
                    timeout: 0,
                    ledger: LEDGER_ID,
                    code: 1,
                    flags: TransferFlags::default(),
                }
            })
            .collect()
    }
}

fn now_ns() -> Result<u64> {
    Ok(u64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos(),
    )?)
}

/// Migrates, checks the ledger is empty, configures the ledger and creates
/// the accounts (not measured).
async fn seed(store: &SqlStore, books: &Books) -> Result<()> {
    store.migrate().await.context("migrating")?;
    let head = store.ledger_head().await?;
    if head.tree_size != 0 {
        bail!(
            "the database is not fresh: its ledger log already holds {} entries",
            head.tree_size
        );
    }
    let ledger = Ledger {
        id: LEDGER_ID,
        asset: "USD".into(),
        scale: 6,
    };
    store
        .ensure_ledger(&ledger, hood_clock::now())
        .await
        .context("configuring the ledger")?;
    let all: Vec<NewAccount> = books
        .hot
        .iter()
        .chain(&books.many)
        .map(|&id| NewAccount {
            id,
            ledger: LEDGER_ID,
            code: 1,
            flags: AccountFlags::default(),
            org_id: None,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
        })
        .collect();
    for chunk in all.chunks(SEED_BATCH) {
        let results = store.create_accounts(chunk, now_ns()?).await?;
        if let Some(r) = results.iter().find(|r| !r.is_ok()) {
            bail!("creating the accounts: {r}");
        }
    }
    Ok(())
}

/// Sends `transfers` in calls of `batch`; every one must be recorded.
async fn send(store: &SqlStore, transfers: &[NewTransfer], batch: usize) -> Result<Duration> {
    let started = Instant::now();
    for chunk in transfers.chunks(batch) {
        let results = store.create_transfers(chunk, now_ns()?).await?;
        if let Some(r) = results.iter().find(|r| **r != CreateTransferResult::Ok) {
            bail!("a transfer was not recorded: {r}");
        }
    }
    Ok(started.elapsed())
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// One measured run and its anchor, printed as one line.
fn report(name: &str, transfers: usize, took: Duration, anchor: &InsertRun) {
    let rate = per_sec(transfers, took);
    let per_call = if anchor.batch == 1 {
        "one per call".to_owned()
    } else {
        format!("{} per call", anchor.batch)
    };
    let anchor_shape = if anchor.batch == 1 {
        "one single-row insert per transaction".to_owned()
    } else {
        format!("one {}-row insert per transaction", anchor.batch)
    };
    println!(
        "{name}: {rate:.1} transfers/s ({transfers} transfers, {per_call}); anchor {:.1} rows/s ({anchor_shape}); ratio {:.3}",
        anchor.per_sec(),
        rate / anchor.per_sec().max(1e-9)
    );
}

/// `batched/many` on a fresh scratch database, with the log kept or not.
async fn batched_many_on_scratch(args: &LedgerBenchArgs, ledger_log: bool) -> Result<Duration> {
    let scratch = ScratchDatabase::create(&args.database_url)
        .await
        .context("creating a scratch database")?;
    let measured = async {
        let store = hood_store::connect_with(scratch.url(), ConnectOptions { ledger_log })
            .await
            .context("connecting to the scratch database")?;
        let mut books = Books::plan(args.accounts);
        seed(&store, &books).await?;
        let transfers = books.transfers(Spread::Many, args.transfers);
        send(&store, &transfers, args.batch).await
    }
    .await;
    let removed = scratch.remove().await;
    let took = measured?;
    removed.context("removing the scratch database")?;
    Ok(took)
}

pub(super) async fn run(args: LedgerBenchArgs) -> Result<()> {
    for (name, value, least) in [
        ("--transfers", args.transfers, 1),
        ("--single-transfers", args.single_transfers, 1),
        ("--batch", args.batch, 1),
        ("--accounts", args.accounts, 2),
        ("--hashing-rounds", args.hashing_rounds, 1),
    ] {
        if value < least {
            bail!("{name} must be at least {least}");
        }
    }
    let url = args.database_url.as_str();
    if !["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        bail!(
            "unsupported --database-url {} (expected sqlite://… or postgres://…)",
            hood_store::redact_url(url)
        );
    }
    let store: Arc<SqlStore> = hood_store::connect(url).await.context("connecting")?;
    let backend = store.backend().as_str();
    let mut books = Books::plan(args.accounts);
    seed(&store, &books).await?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "ledger on {backend}: 1 hot pair + {} accounts, single runs of {} transfers, batched runs of {} in calls of {} ({profile} build)",
        args.accounts, args.single_transfers, args.transfers, args.batch
    );

    let (single, batched) = (args.single_transfers, args.transfers);
    let anchor = bare_insert_rate(&store, single, 1).await?;
    for (name, spread) in [("single/hot", Spread::Hot), ("single/many", Spread::Many)] {
        let transfers = books.transfers(spread, single);
        let took = send(&store, &transfers, 1).await.context(name)?;
        report(name, single, took, &anchor);
    }
    let anchor = bare_insert_rate(&store, batched, args.batch).await?;
    for (name, spread) in [("batched/hot", Spread::Hot), ("batched/many", Spread::Many)] {
        let transfers = books.transfers(spread, batched);
        let took = send(&store, &transfers, args.batch).await.context(name)?;
        report(name, batched, took, &anchor);
    }
    drop(store);

    // On and off alternate, each round on two fresh databases, so a
    // passing load on the machine hits both alike; the medians are compared.
    let rounds = args.hashing_rounds;
    let (mut ons, mut offs) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 1..=rounds {
        let on = batched_many_on_scratch(&args, true)
            .await
            .context("batched/many with the log")?;
        let off = batched_many_on_scratch(&args, false)
            .await
            .context("batched/many without the log")?;
        eprintln!(
            "  hashing round {round}/{rounds}: on {:.3} s, off {:.3} s",
            on.as_secs_f64(),
            off.as_secs_f64()
        );
        ons.push(on);
        offs.push(off);
    }
    ons.sort();
    offs.sort();
    let (on, off) = (percentile(&ons, 50.0), percentile(&offs, 50.0));
    println!(
        "hashing: on {:.1} transfers/s ({:.3} s), off {:.1} transfers/s ({:.3} s): batched/many, {batched} transfers, medians of {rounds} rounds, each run on a fresh database",
        per_sec(batched, on),
        on.as_secs_f64(),
        per_sec(batched, off),
        off.as_secs_f64()
    );
    let share = 1.0 - off.as_secs_f64() / on.as_secs_f64().max(1e-9);
    println!(
        "hashing share = 1 - off_time/on_time = {share:.3} (the Merkle log's leaves, nodes, frontier and hashing: {:.1}% of a batched transfer's time)",
        100.0 * share
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_never_move_between_one_account() {
        let mut books = Books::plan(7);
        let many = books.transfers(Spread::Many, 500);
        assert!(many
            .iter()
            .all(|t| t.debit_account_id != t.credit_account_id));
        let hot = books.transfers(Spread::Hot, 4);
        assert_eq!(hot[0].debit_account_id, hot[1].credit_account_id);
        let ids: std::collections::BTreeSet<_> = many.iter().chain(&hot).map(|t| t.id).collect();
        assert_eq!(ids.len(), 504, "ids are unique");
    }
}
