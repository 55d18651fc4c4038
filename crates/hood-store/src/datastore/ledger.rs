//! [`LedgerStore`] for [`SqlStore`]: a batch loads the part of the ledger it
//! touches, runs the domain's state machine on it, and writes back what
//! changed with the log's new leaves, in one transaction behind the head
//! row's lock.

use super::SqlStore;
use crate::db::{
    numbered_placeholders, query, query_as, query_scalar, Backend, PortableRow, QueryAs, Tx,
};
use crate::ledger::{
    AccountQuery, LeafKind, LedgerHead, LedgerSigningKey, LedgerStore, LogEntry, LogRecord,
    StoredCheckpoint, TransferQuery,
};
use crate::model::ledger::{
    amount, hex128, u64_bits, AccountRow, CheckpointRow, HeadRow, LeafRow, LedgerRow,
    SigningKeyRow, TransferRow, TransferWithStatus, ACCOUNT_COLUMNS, ACCOUNT_WIDTH,
    TRANSFER_COLUMNS, TRANSFER_WIDTH,
};
use crate::model::{all, one};
use crate::{StoreError, StoreResult};
use async_trait::async_trait;
use hood_domain::ledger::{
    self, encoding, Account, Changes, CreateAccountResult, CreateTransferResult, Ledger,
    LedgerState, LedgerTimestamp, NewAccount, NewTransfer, PendingStatus, Transfer,
};
use hood_domain::{AccountId, Timestamp, TransferId};
use hood_tlog::{Frontier, Hash, NodeId};
use std::collections::{BTreeSet, HashMap};

/// Ids per `IN (…)` list: well below both dialects' bind limits.
const ID_CHUNK: usize = 1_000;

/// Whether a statement built for `rows` rows is worth a prepared-statement
/// cache entry: the one- and two-row shapes of single transfers recur on
/// every call (an unprepared statement costs PostgreSQL an extra round
/// trip), the many shapes of large batches would only evict others.
fn cacheable(rows: usize) -> bool {
    rows <= 2
}

fn hash32(column: &str, bytes: &[u8]) -> StoreResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{column}: not a 32-byte hash")))
}

fn u64_of(column: &str, v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column}: negative {v}")))
}

/// The head row, locked until the transaction ends: every writer takes it
/// first, so commits (and leaf indexes) follow one order. Returns the log
/// ready for this batch's leaves (see [`LogAppend`]) and the ledger's clock.
async fn lock_head(
    tx: &mut Tx<'_>,
    backend: Backend,
    log: LogMode,
) -> StoreResult<(LogAppend, u64)> {
    let head = query_as::<HeadRow>(format!(
        "SELECT tree_size, last_timestamp, frontier FROM ledger_head WHERE id = 1{}",
        backend.for_update()
    ))
    .fetch_one(tx)
    .await?;
    let append = match log {
        LogMode::Kept => LogAppend::new(decode_frontier(&head)?),
        LogMode::Skipped => {
            LogAppend::counting_only(u64_of("ledger_head.tree_size", head.tree_size)?)
        }
    };
    Ok((
        append,
        u64_of("ledger_head.last_timestamp", head.last_timestamp)?,
    ))
}

fn decode_frontier(head: &HeadRow) -> StoreResult<Frontier> {
    let size = u64_of("ledger_head.tree_size", head.tree_size)?;
    let hashes = head
        .frontier
        .chunks(32)
        .map(|c| hash32("ledger_head.frontier", c))
        .collect::<StoreResult<Vec<Hash>>>()?;
    Frontier::from_parts(size, hashes)
        .map_err(|e| StoreError::Corrupt(format!("ledger_head.frontier: {e}")))
}

fn encode_frontier(frontier: &Frontier) -> Vec<u8> {
    frontier.nodes().flat_map(|(_, h)| h).collect()
}

/// Ledger ids configured (a small table, read per batch).
async fn ledger_ids(tx: &mut Tx<'_>) -> StoreResult<BTreeSet<u32>> {
    let ids = query_scalar::<i64>("SELECT id FROM ledger_ledgers")
        .fetch_all(tx)
        .await?;
    ids.into_iter()
        .map(|id| {
            u32::try_from(id).map_err(|_| StoreError::Corrupt(format!("ledger_ledgers.id {id}")))
        })
        .collect()
}

/// `{select} WHERE id IN (…){suffix}` for one chunk of ids; prepared when
/// the chunk is as small as a single transfer's.
fn rows_with_ids<'q, R: PortableRow>(
    select: &str,
    chunk: &'q [String],
    suffix: &str,
) -> QueryAs<'q, R> {
    let sql = format!(
        "{select} WHERE id IN ({}){suffix}",
        numbered_placeholders(1, chunk.len())
    );
    chunk.iter().fold(
        query_as::<R>(sql).persistent(cacheable(chunk.len())),
        |q, id| q.bind(id.as_str()),
    )
}

/// Loads accounts by id into `state`, locking them in id order.
async fn load_accounts(
    tx: &mut Tx<'_>,
    backend: Backend,
    ids: &BTreeSet<AccountId>,
    state: &mut LedgerState,
) -> StoreResult<()> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    for chunk in ids.chunks(ID_CHUNK) {
        let q = rows_with_ids::<AccountRow>(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts"),
            chunk,
            &format!(" ORDER BY id{}", backend.for_update()),
        );
        for row in q.fetch_all(&mut *tx).await? {
            let a = Account::try_from(row)?;
            state.accounts.insert(a.id, a);
        }
    }
    Ok(())
}

/// Loads transfers by id (and their pending status) into `state`.
async fn load_transfers(
    tx: &mut Tx<'_>,
    ids: &BTreeSet<TransferId>,
    state: &mut LedgerState,
) -> StoreResult<()> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    for chunk in ids.chunks(ID_CHUNK) {
        let q = rows_with_ids::<TransferRow>(
            &format!("SELECT {TRANSFER_COLUMNS} FROM ledger_transfers"),
            chunk,
            "",
        );
        for row in q.fetch_all(&mut *tx).await? {
            let t = TransferWithStatus::try_from(row)?;
            if let Some(s) = t.status {
                state.pending.insert(t.transfer.id, s);
            }
            state.transfers.insert(t.transfer.id, t.transfer);
        }
    }
    Ok(())
}

/// Whether a store keeps the Merkle log (always, but in a benchmark store
/// opened with [`crate::ConnectOptions::ledger_log`] off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogMode {
    Kept,
    /// Benchmark only: records get leaf indexes, but no leaf, tree node or
    /// frontier is computed or written (the head's frontier goes stale, so
    /// such a database has no usable log).
    Skipped,
}

/// Appends leaves to the log: their hashes, the perfect subtrees they
/// complete, and the new head.
struct LogAppend {
    /// `None`: the log is skipped (benchmark only); leaves are only counted.
    frontier: Option<Frontier>,
    size: u64,
    leaves: Vec<(u64, LeafKind, String, Hash)>,
    nodes: Vec<(NodeId, Hash)>,
}

impl LogAppend {
    fn new(frontier: Frontier) -> Self {
        Self {
            size: frontier.size(),
            frontier: Some(frontier),
            leaves: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// A log that only numbers its leaves (see [`LogMode::Skipped`]).
    fn counting_only(size: u64) -> Self {
        Self {
            frontier: None,
            size,
            leaves: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// Appends one record, whose canonical bytes `bytes` returns (not
    /// called when the log is skipped); returns its leaf index.
    fn push(
        &mut self,
        kind: LeafKind,
        id: String,
        bytes: impl FnOnce() -> Vec<u8>,
    ) -> StoreResult<u64> {
        let index = self.size;
        if let Some(frontier) = &mut self.frontier {
            let hash = hood_tlog::leaf_hash(&bytes());
            let completed = frontier
                .append(hash)
                .map_err(|e| StoreError::Corrupt(format!("ledger log: {e}")))?;
            self.nodes.extend(completed);
            self.leaves.push((index, kind, id, hash));
        }
        self.size += 1;
        Ok(index)
    }

    async fn write(
        self,
        tx: &mut Tx<'_>,
        backend: Backend,
        last_timestamp: u64,
    ) -> StoreResult<()> {
        let Some(frontier) = self.frontier else {
            query("UPDATE ledger_head SET tree_size = $1, last_timestamp = $2 WHERE id = 1")
                .bind(amount(self.size))
                .bind(amount(last_timestamp))
                .execute(tx)
                .await?;
            return Ok(());
        };
        for chunk in self.leaves.chunks(backend.rows_per_statement(4)) {
            let sql = format!(
                "INSERT INTO ledger_leaves (leaf_index, kind, ref_id, hash) VALUES {}",
                backend.values_list(chunk.len(), 4)
            );
            let mut q = query(sql).persistent(cacheable(chunk.len()));
            for (index, kind, id, hash) in chunk {
                q = q
                    .bind(amount(*index))
                    .bind(kind.as_str())
                    .bind(id.as_str())
                    .bind(hash.as_slice());
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in self.nodes.chunks(backend.rows_per_statement(3)) {
            let sql = format!(
                "INSERT INTO ledger_tree_nodes (level, idx, hash) VALUES {}",
                backend.values_list(chunk.len(), 3)
            );
            let mut q = query(sql).persistent(cacheable(chunk.len()));
            for (node, hash) in chunk {
                q = q
                    .bind(i64::from(node.level()))
                    .bind(amount(node.index()))
                    .bind(hash.as_slice());
            }
            q.execute(&mut *tx).await?;
        }
        query("UPDATE ledger_head SET tree_size = $1, last_timestamp = $2, frontier = $3 WHERE id = 1")
            .bind(amount(frontier.size()))
            .bind(amount(last_timestamp))
            .bind(encode_frontier(&frontier))
            .execute(tx)
            .await?;
        Ok(())
    }
}

fn bind_account<'q>(q: crate::db::Query<'q>, a: &'q Account, leaf: u64) -> crate::db::Query<'q> {
    q.bind(a.id.to_string())
        .bind(i64::from(a.ledger))
        .bind(i64::from(a.code))
        .bind(i64::from(a.flags.0))
        .bind(a.org_id.map(|o| o.to_string()))
        .bind(hex128(a.user_data_128))
        .bind(u64_bits(a.user_data_64))
        .bind(i64::from(a.user_data_32))
        .bind(amount(a.debits_pending))
        .bind(amount(a.debits_posted))
        .bind(amount(a.credits_pending))
        .bind(amount(a.credits_posted))
        .bind(amount(a.timestamp))
        .bind(amount(leaf))
}

fn bind_transfer<'q>(
    q: crate::db::Query<'q>,
    t: &'q Transfer,
    leaf: u64,
    status: Option<PendingStatus>,
) -> crate::db::Query<'q> {
    q.bind(t.id.to_string())
        .bind(t.debit_account_id.to_string())
        .bind(t.credit_account_id.to_string())
        .bind(amount(t.amount))
        .bind(t.pending_id.map(|p| p.to_string()))
        .bind(hex128(t.user_data_128))
        .bind(u64_bits(t.user_data_64))
        .bind(i64::from(t.user_data_32))
        .bind(i64::from(t.timeout))
        .bind(i64::from(t.ledger))
        .bind(i64::from(t.code))
        .bind(i64::from(t.flags.0))
        .bind(amount(t.timestamp))
        .bind(amount(leaf))
        .bind(status.map(|s| s.as_str()))
        .bind(t.expires_at().map(amount))
}

/// Writes what a batch changed, and its leaves, on the caller's
/// transaction.
async fn write_changes(
    tx: &mut Tx<'_>,
    backend: Backend,
    state: &LedgerState,
    changes: &Changes,
    mut log: LogAppend,
) -> StoreResult<()> {
    // New accounts, then new transfers, in log order.
    let mut created_accounts = Vec::with_capacity(changes.accounts_created.len());
    for id in &changes.accounts_created {
        let a = state
            .accounts
            .get(id)
            .ok_or_else(|| StoreError::Corrupt(format!("created account {id} vanished")))?;
        let leaf = log.push(LeafKind::Account, id.to_string(), || {
            encoding::account_bytes(a)
        })?;
        created_accounts.push((a, leaf));
    }
    let mut created_transfers = Vec::with_capacity(changes.transfers_created.len());
    for id in &changes.transfers_created {
        let t = state
            .transfers
            .get(id)
            .ok_or_else(|| StoreError::Corrupt(format!("created transfer {id} vanished")))?;
        let leaf = log.push(LeafKind::Transfer, id.to_string(), || {
            encoding::transfer_bytes(t)
        })?;
        created_transfers.push((t, leaf, state.pending.get(id).copied()));
    }
    // Balances and flags of the accounts that moved (created ones are
    // written as they are).
    let created: BTreeSet<&AccountId> = changes.accounts_created.iter().collect();
    let updated: Vec<&Account> = changes
        .accounts_updated
        .iter()
        .filter(|id| !created.contains(id))
        .filter_map(|id| state.accounts.get(id))
        .collect();
    // What became of earlier pending transfers (new ones carry theirs).
    let new: BTreeSet<&TransferId> = changes.transfers_created.iter().collect();
    let settled: Vec<(&TransferId, &PendingStatus)> = changes
        .pending_changed
        .iter()
        .filter(|(id, _)| !new.contains(id))
        .collect();
    let writes = Writes {
        accounts: created_accounts,
        transfers: created_transfers,
        updated,
        settled,
    };
    if backend == Backend::Postgres {
        let binds = writes.binds() + log.leaves.len() * 4 + log.nodes.len() * 3 + 3;
        if binds <= ONE_STATEMENT_BINDS {
            return write_in_one_statement(tx, &writes, log, state.last_timestamp).await;
        }
    }
    for chunk in writes
        .accounts
        .chunks(backend.rows_per_statement(ACCOUNT_WIDTH))
    {
        let sql = format!(
            "INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) VALUES {}",
            backend.values_list(chunk.len(), ACCOUNT_WIDTH)
        );
        let mut q = query(sql).persistent(cacheable(chunk.len()));
        for (a, leaf) in chunk {
            q = bind_account(q, a, *leaf);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| crate::codec::write_error(e, "ledger"))?;
    }
    for chunk in writes
        .transfers
        .chunks(backend.rows_per_statement(TRANSFER_WIDTH))
    {
        let sql = format!(
            "INSERT INTO ledger_transfers ({TRANSFER_COLUMNS}) VALUES {}",
            backend.values_list(chunk.len(), TRANSFER_WIDTH)
        );
        let mut q = query(sql).persistent(cacheable(chunk.len()));
        for (t, leaf, status) in chunk {
            q = bind_transfer(q, t, *leaf, *status);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in writes.updated.chunks(backend.rows_per_statement(6)) {
        let sql = format!(
            "WITH v (id, dp, dpo, cp, cpo, flags) AS (VALUES {}) {UPDATE_BALANCES}",
            backend.values_list(chunk.len(), 6)
        );
        let mut q = query(sql).persistent(cacheable(chunk.len()));
        for a in chunk {
            q = bind_balances(q, a);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in writes.settled.chunks(backend.rows_per_statement(2)) {
        let sql = format!(
            "WITH v (id, status) AS (VALUES {}) {UPDATE_PENDING_STATUS}",
            backend.values_list(chunk.len(), 2)
        );
        let mut q = query(sql).persistent(cacheable(chunk.len()));
        for (id, status) in chunk {
            q = q.bind(id.to_string()).bind(status.as_str());
        }
        q.execute(&mut *tx).await?;
    }
    log.write(tx, backend, state.last_timestamp).await
}

/// Binds up to which PostgreSQL gets a batch's writes as one statement.
/// Small batches gain a round trip per table; past a few thousand binds the
/// planner's work on one huge statement outweighs the round trips saved.
const ONE_STATEMENT_BINDS: usize = 4_096;

/// The rows a batch writes, besides its log.
struct Writes<'s> {
    accounts: Vec<(&'s Account, u64)>,
    transfers: Vec<(&'s Transfer, u64, Option<PendingStatus>)>,
    updated: Vec<&'s Account>,
    settled: Vec<(&'s TransferId, &'s PendingStatus)>,
}

impl Writes<'_> {
    fn binds(&self) -> usize {
        self.accounts.len() * ACCOUNT_WIDTH
            + self.transfers.len() * TRANSFER_WIDTH
            + self.updated.len() * 6
            + self.settled.len() * 2
    }
}

/// The balance update, over a relation `v (id, dp, dpo, cp, cpo, flags)`.
const UPDATE_BALANCES: &str = "UPDATE ledger_accounts SET debits_pending = v.dp, \
     debits_posted = v.dpo, credits_pending = v.cp, credits_posted = v.cpo, flags = v.flags \
     FROM v WHERE ledger_accounts.id = v.id";

/// The settlement update, over a relation `v (id, status)`.
const UPDATE_PENDING_STATUS: &str = "UPDATE ledger_transfers SET pending_status = v.status \
     FROM v WHERE ledger_transfers.id = v.id";

fn bind_balances<'q>(q: crate::db::Query<'q>, a: &Account) -> crate::db::Query<'q> {
    q.bind(a.id.to_string())
        .bind(amount(a.debits_pending))
        .bind(amount(a.debits_posted))
        .bind(amount(a.credits_pending))
        .bind(amount(a.credits_posted))
        .bind(i64::from(a.flags.0))
}

/// `($first, …, $first+width-1), …`: `rows` tuples numbered from `first`.
fn numbered_tuples(first: usize, rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", numbered_placeholders(first + r * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// PostgreSQL only: every write of a batch (records, balances, statuses,
/// leaves, subtrees, head) as one statement of data-modifying CTEs, so a
/// batch costs one round trip to write instead of six. Each part touches
/// rows no other part does, which is what such a statement requires.
async fn write_in_one_statement(
    tx: &mut Tx<'_>,
    writes: &Writes<'_>,
    log: LogAppend,
    last_timestamp: u64,
) -> StoreResult<()> {
    let mut next = 1;
    let mut tuples = |rows: usize, width: usize| {
        let s = numbered_tuples(next, rows, width);
        next += rows * width;
        s
    };
    let mut parts = Vec::new();
    if !writes.accounts.is_empty() {
        parts.push(format!(
            "a AS (INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}) VALUES {})",
            tuples(writes.accounts.len(), ACCOUNT_WIDTH)
        ));
    }
    if !writes.transfers.is_empty() {
        parts.push(format!(
            "t AS (INSERT INTO ledger_transfers ({TRANSFER_COLUMNS}) VALUES {})",
            tuples(writes.transfers.len(), TRANSFER_WIDTH)
        ));
    }
    if !writes.updated.is_empty() {
        parts.push(format!(
            "v (id, dp, dpo, cp, cpo, flags) AS (VALUES {}), u AS ({UPDATE_BALANCES})",
            tuples(writes.updated.len(), 6)
        ));
    }
    if !writes.settled.is_empty() {
        // Its own relation name: `v` is the balances'.
        parts.push(format!(
            "sv (id, status) AS (VALUES {}), s AS (UPDATE ledger_transfers \
             SET pending_status = sv.status FROM sv WHERE ledger_transfers.id = sv.id)",
            tuples(writes.settled.len(), 2)
        ));
    }
    if !log.leaves.is_empty() {
        parts.push(format!(
            "l AS (INSERT INTO ledger_leaves (leaf_index, kind, ref_id, hash) VALUES {})",
            tuples(log.leaves.len(), 4)
        ));
    }
    if !log.nodes.is_empty() {
        parts.push(format!(
            "n AS (INSERT INTO ledger_tree_nodes (level, idx, hash) VALUES {})",
            tuples(log.nodes.len(), 3)
        ));
    }
    let head = match &log.frontier {
        Some(_) => format!(
            "UPDATE ledger_head SET tree_size = ${}, last_timestamp = ${}, frontier = ${} \
             WHERE id = 1",
            next,
            next + 1,
            next + 2
        ),
        // The log skipped (benchmark only): size and clock.
        None => format!(
            "UPDATE ledger_head SET tree_size = ${}, last_timestamp = ${} WHERE id = 1",
            next,
            next + 1
        ),
    };
    let sql = if parts.is_empty() {
        head
    } else {
        format!("WITH {} {head}", parts.join(", "))
    };
    // Single transfers recur in a handful of shapes: keep those prepared.
    let recurring = writes.accounts.len() + writes.transfers.len() <= 2 && log.nodes.len() <= 3;
    let mut q = query(sql).persistent(recurring);
    for (a, leaf) in &writes.accounts {
        q = bind_account(q, a, *leaf);
    }
    for (t, leaf, status) in &writes.transfers {
        q = bind_transfer(q, t, *leaf, *status);
    }
    for a in &writes.updated {
        q = bind_balances(q, a);
    }
    for (id, status) in &writes.settled {
        q = q.bind(id.to_string()).bind(status.as_str());
    }
    for (index, kind, id, hash) in &log.leaves {
        q = q
            .bind(amount(*index))
            .bind(kind.as_str())
            .bind(id.as_str())
            .bind(hash.as_slice());
    }
    for (node, hash) in &log.nodes {
        q = q
            .bind(i64::from(node.level()))
            .bind(amount(node.index()))
            .bind(hash.as_slice());
    }
    q = q.bind(amount(log.size)).bind(amount(last_timestamp));
    if let Some(frontier) = &log.frontier {
        q = q.bind(encode_frontier(frontier));
    }
    q.execute(&mut *tx)
        .await
        .map_err(|e| crate::codec::write_error(e, "ledger"))?;
    Ok(())
}

#[async_trait]
impl LedgerStore for SqlStore {
    async fn ledgers(&self) -> StoreResult<Vec<Ledger>> {
        all(
            query_as::<LedgerRow>("SELECT id, asset, scale FROM ledger_ledgers ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn ensure_ledger(&self, ledger: &Ledger, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.pool.begin_write().await?;
        query(
            "INSERT INTO ledger_ledgers (id, asset, scale, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(i64::from(ledger.id))
        .bind(ledger.asset.as_str())
        .bind(i64::from(ledger.scale))
        .bind(now.millis())
        .execute(&mut tx)
        .await?;
        let stored = one::<_, Ledger>(
            query_as::<LedgerRow>("SELECT id, asset, scale FROM ledger_ledgers WHERE id = $1")
                .bind(i64::from(ledger.id))
                .fetch_optional(&mut tx)
                .await?,
        )?;
        tx.commit().await?;
        match stored {
            Some(s) if &s == ledger => Ok(()),
            _ => Err(StoreError::Conflict("ledger".into())),
        }
    }

    async fn create_accounts(
        &self,
        batch: &[NewAccount],
        now: LedgerTimestamp,
    ) -> StoreResult<Vec<CreateAccountResult>> {
        let backend = self.pool.backend();
        let mut tx = self.pool.begin_write().await?;
        let (log, last_timestamp) = lock_head(&mut tx, backend, self.ledger_log).await?;
        let mut state = LedgerState {
            ledgers: ledger_ids(&mut tx).await?,
            last_timestamp,
            ..LedgerState::default()
        };
        let ids: BTreeSet<AccountId> = batch.iter().map(|a| a.id).collect();
        load_accounts(&mut tx, backend, &ids, &mut state).await?;
        let (results, changes) = ledger::create_accounts(&mut state, batch, now);
        if changes.is_empty() {
            tx.rollback().await?;
        } else {
            write_changes(&mut tx, backend, &state, &changes, log).await?;
            tx.commit().await?;
        }
        Ok(results)
    }

    async fn create_transfers(
        &self,
        batch: &[NewTransfer],
        now: LedgerTimestamp,
    ) -> StoreResult<Vec<CreateTransferResult>> {
        let backend = self.pool.backend();
        let mut tx = self.pool.begin_write().await?;
        let (log, last_timestamp) = lock_head(&mut tx, backend, self.ledger_log).await?;
        // Transfers need no ledger list: their ledger must be their
        // accounts' (one round trip fewer per batch).
        let mut state = LedgerState {
            last_timestamp,
            ..LedgerState::default()
        };
        // What the batch may read: its own ids (idempotency), the pending
        // transfers it settles, and every account either names.
        let transfer_ids: BTreeSet<TransferId> = batch
            .iter()
            .flat_map(|t| std::iter::once(t.id).chain(t.pending_id))
            .collect();
        load_transfers(&mut tx, &transfer_ids, &mut state).await?;
        let mut account_ids: BTreeSet<AccountId> = batch
            .iter()
            .flat_map(|t| t.debit_account_id.into_iter().chain(t.credit_account_id))
            .collect();
        for t in state.transfers.values() {
            account_ids.insert(t.debit_account_id);
            account_ids.insert(t.credit_account_id);
        }
        load_accounts(&mut tx, backend, &account_ids, &mut state).await?;
        let (results, changes) = ledger::create_transfers(&mut state, batch, now);
        if changes.is_empty() {
            tx.rollback().await?;
        } else {
            write_changes(&mut tx, backend, &state, &changes, log).await?;
            tx.commit().await?;
        }
        Ok(results)
    }

    async fn expire_pending_transfers(
        &self,
        now: LedgerTimestamp,
        limit: i64,
    ) -> StoreResult<usize> {
        let backend = self.pool.backend();
        let mut tx = self.pool.begin_write().await?;
        let (log, last_timestamp) = lock_head(&mut tx, backend, self.ledger_log).await?;
        let due: Vec<String> = query_scalar::<String>(
            "SELECT id FROM ledger_transfers WHERE pending_status = 'pending' \
             AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2",
        )
        .bind(amount(now))
        .bind(limit.max(1))
        .fetch_all(&mut tx)
        .await?;
        if due.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let ids = due
            .iter()
            .map(|id| crate::codec::parse_id("ledger_transfers.id", id))
            .collect::<StoreResult<Vec<TransferId>>>()?;
        let mut state = LedgerState {
            last_timestamp,
            ..LedgerState::default()
        };
        load_transfers(&mut tx, &ids.iter().copied().collect(), &mut state).await?;
        let accounts: BTreeSet<AccountId> = state
            .transfers
            .values()
            .flat_map(|t| [t.debit_account_id, t.credit_account_id])
            .collect();
        load_accounts(&mut tx, backend, &accounts, &mut state).await?;
        let (voids, changes) = ledger::expire_pending(&mut state, &ids, now);
        write_changes(&mut tx, backend, &state, &changes, log).await?;
        tx.commit().await?;
        Ok(voids.len())
    }

    async fn get_account(&self, id: AccountId) -> StoreResult<Option<Account>> {
        one(query_as::<AccountRow>(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_accounts(&self, q: &AccountQuery) -> StoreResult<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts \
             WHERE ($1 IS NULL OR org_id = $1) AND ($2 = 0 OR org_id IS NULL) \
               AND ($3 IS NULL OR ledger = $3) AND timestamp > $4 \
             ORDER BY timestamp LIMIT $5"
        );
        all(query_as::<AccountRow>(sql)
            .bind(q.org_id.map(|o| o.to_string()))
            .bind(i64::from(q.platform_only))
            .bind(q.ledger.map(i64::from))
            .bind(q.after_timestamp.map_or(-1, amount))
            .bind(q.limit.max(0))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_transfer(
        &self,
        id: TransferId,
    ) -> StoreResult<Option<(Transfer, Option<PendingStatus>)>> {
        let row = query_as::<TransferRow>(format!(
            "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(one::<_, TransferWithStatus>(row)?.map(|t| (t.transfer, t.status)))
    }

    async fn list_transfers(&self, q: &TransferQuery) -> StoreResult<Vec<Transfer>> {
        let after = q.after_timestamp.map_or(-1, amount);
        let limit = q.limit.max(0);
        let rows = match (q.account_id, q.org_id) {
            (Some(account), _) => {
                // Two index range scans, merged: debits and credits.
                query_as::<TransferRow>(format!(
                    "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers \
                     WHERE (debit_account_id = $1 OR credit_account_id = $1) AND timestamp > $2 \
                     ORDER BY timestamp LIMIT $3"
                ))
                .bind(account.to_string())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            (None, Some(org)) => {
                query_as::<TransferRow>(format!(
                    "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers \
                     WHERE timestamp > $2 AND (\
                       debit_account_id IN (SELECT id FROM ledger_accounts WHERE org_id = $1) \
                       OR credit_account_id IN (SELECT id FROM ledger_accounts WHERE org_id = $1)) \
                     ORDER BY timestamp LIMIT $3"
                ))
                .bind(org.to_string())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            (None, None) => {
                query_as::<TransferRow>(format!(
                    "SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE timestamp > $1 \
                     ORDER BY timestamp LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        all(rows)
    }

    async fn ledger_head(&self) -> StoreResult<LedgerHead> {
        let head = query_as::<HeadRow>(
            "SELECT tree_size, last_timestamp, frontier FROM ledger_head WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        let frontier = decode_frontier(&head)?;
        Ok(LedgerHead {
            tree_size: frontier.size(),
            root: frontier.root(),
            last_timestamp: u64_of("ledger_head.last_timestamp", head.last_timestamp)?,
        })
    }

    async fn leaf_index(&self, kind: LeafKind, id: &str) -> StoreResult<Option<u64>> {
        let table = match kind {
            LeafKind::Account => "ledger_accounts",
            LeafKind::Transfer => "ledger_transfers",
        };
        query_scalar::<i64>(format!("SELECT leaf_index FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|i| u64_of("leaf_index", i))
            .transpose()
    }

    async fn tree_nodes(&self, nodes: &[NodeId]) -> StoreResult<Vec<Option<Hash>>> {
        let mut found: HashMap<(u8, u64), Hash> = HashMap::new();
        let leaves: Vec<u64> = nodes
            .iter()
            .filter(|n| n.level() == 0)
            .map(|n| n.index())
            .collect();
        for chunk in leaves.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT leaf_index, kind, ref_id, hash FROM ledger_leaves WHERE leaf_index IN ({})",
                numbered_placeholders(1, chunk.len())
            );
            let mut q = query_as::<LeafRow>(sql).persistent(false);
            for i in chunk {
                q = q.bind(amount(*i));
            }
            for row in q.fetch_all(&self.pool).await? {
                found.insert(
                    (0, u64_of("ledger_leaves.leaf_index", row.leaf_index)?),
                    hash32("ledger_leaves.hash", &row.hash)?,
                );
            }
        }
        let inner: Vec<&NodeId> = nodes.iter().filter(|n| n.level() > 0).collect();
        for chunk in inner.chunks(ID_CHUNK / 2) {
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT level, idx, hash FROM ledger_tree_nodes WHERE {}",
                pairs.join(" OR ")
            );
            let mut q = query_as::<(i64, i64, Vec<u8>)>(sql).persistent(false);
            for n in chunk {
                q = q.bind(i64::from(n.level())).bind(amount(n.index()));
            }
            for (level, idx, hash) in q.fetch_all(&self.pool).await? {
                let level = u8::try_from(level)
                    .map_err(|_| StoreError::Corrupt(format!("ledger_tree_nodes.level {level}")))?;
                found.insert(
                    (level, u64_of("ledger_tree_nodes.idx", idx)?),
                    hash32("ledger_tree_nodes.hash", &hash)?,
                );
            }
        }
        Ok(nodes
            .iter()
            .map(|n| found.get(&(n.level(), n.index())).copied())
            .collect())
    }

    async fn log_entries(&self, from: u64, limit: i64) -> StoreResult<Vec<LogEntry>> {
        let leaves = query_as::<LeafRow>(
            "SELECT leaf_index, kind, ref_id, hash FROM ledger_leaves \
             WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2",
        )
        .bind(amount(from))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        let (mut account_ids, mut transfer_ids) = (Vec::new(), Vec::new());
        for l in &leaves {
            match l.kind.as_str() {
                "account" => account_ids.push(l.ref_id.clone()),
                _ => transfer_ids.push(l.ref_id.clone()),
            }
        }
        // Each record with the leaf index its own row claims.
        let mut accounts: HashMap<String, (Account, i64)> = HashMap::new();
        for chunk in account_ids.chunks(ID_CHUNK) {
            let q = rows_with_ids::<AccountRow>(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts"),
                chunk,
                "",
            );
            for row in q.fetch_all(&self.pool).await? {
                let leaf = row.leaf_index;
                let a = Account::try_from(row)?;
                accounts.insert(a.id.to_string(), (a, leaf));
            }
        }
        let mut transfers: HashMap<String, (Transfer, i64)> = HashMap::new();
        for chunk in transfer_ids.chunks(ID_CHUNK) {
            let q = rows_with_ids::<TransferRow>(
                &format!("SELECT {TRANSFER_COLUMNS} FROM ledger_transfers"),
                chunk,
                "",
            );
            for row in q.fetch_all(&self.pool).await? {
                let leaf = row.leaf_index;
                let t = Transfer::try_from(row)?;
                transfers.insert(t.id.to_string(), (t, leaf));
            }
        }
        leaves
            .into_iter()
            .map(|l| {
                let kind = LeafKind::parse(&l.kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("ledger_leaves.kind: `{}`", l.kind))
                })?;
                let (record, record_leaf) = match kind {
                    LeafKind::Account => accounts
                        .remove(&l.ref_id)
                        .map_or((LogRecord::Missing, None), |(a, leaf)| {
                            (LogRecord::Account(a), Some(leaf))
                        }),
                    LeafKind::Transfer => transfers
                        .remove(&l.ref_id)
                        .map_or((LogRecord::Missing, None), |(t, leaf)| {
                            (LogRecord::Transfer(t), Some(leaf))
                        }),
                };
                Ok(LogEntry {
                    index: u64_of("ledger_leaves.leaf_index", l.leaf_index)?,
                    record_leaf: record_leaf.map(|i| u64_of("leaf_index", i)).transpose()?,
                    kind,
                    ref_id: l.ref_id,
                    hash: hash32("ledger_leaves.hash", &l.hash)?,
                    record,
                })
            })
            .collect()
    }

    async fn insert_checkpoint(&self, c: &StoredCheckpoint) -> StoreResult<bool> {
        let inserted = query(
            "INSERT INTO ledger_checkpoints (tree_size, root_hash, signed_note, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(amount(c.tree_size))
        .bind(c.root_hash.as_slice())
        .bind(c.signed_note.as_str())
        .bind(c.created_at.millis())
        .execute(&self.pool)
        .await?;
        Ok(inserted == 1)
    }

    async fn list_checkpoints(&self, limit: i64) -> StoreResult<Vec<StoredCheckpoint>> {
        query_as::<CheckpointRow>(
            "SELECT tree_size, root_hash, signed_note, created_at FROM ledger_checkpoints \
             ORDER BY tree_size DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(checkpoint)
        .collect()
    }

    async fn get_checkpoint(&self, tree_size: u64) -> StoreResult<Option<StoredCheckpoint>> {
        query_as::<CheckpointRow>(
            "SELECT tree_size, root_hash, signed_note, created_at FROM ledger_checkpoints \
             WHERE tree_size = $1",
        )
        .bind(amount(tree_size))
        .fetch_optional(&self.pool)
        .await?
        .map(checkpoint)
        .transpose()
    }

    async fn ledger_signing_key(&self) -> StoreResult<Option<LedgerSigningKey>> {
        query_as::<SigningKeyRow>(
            "SELECT name, public_key, sealed_seed, created_at FROM ledger_signing_keys \
             ORDER BY created_at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(signing_key)
        .transpose()
    }

    async fn insert_ledger_signing_key_if_absent(
        &self,
        key: &LedgerSigningKey,
    ) -> StoreResult<LedgerSigningKey> {
        let mut tx = self.pool.begin_write().await?;
        let existing = query_as::<SigningKeyRow>(format!(
            "SELECT name, public_key, sealed_seed, created_at FROM ledger_signing_keys \
             ORDER BY created_at LIMIT 1{}",
            self.pool.backend().for_update()
        ))
        .fetch_optional(&mut tx)
        .await?;
        if let Some(row) = existing {
            tx.rollback().await?;
            return signing_key(row);
        }
        query(
            "INSERT INTO ledger_signing_keys (name, public_key, sealed_seed, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(key.name.as_str())
        .bind(key.public_key.as_slice())
        .bind(key.sealed_seed.as_slice())
        .bind(key.created_at.millis())
        .execute(&mut tx)
        .await?;
        let stored = query_as::<SigningKeyRow>(
            "SELECT name, public_key, sealed_seed, created_at FROM ledger_signing_keys \
             ORDER BY created_at LIMIT 1",
        )
        .fetch_one(&mut tx)
        .await?;
        tx.commit().await?;
        signing_key(stored)
    }
}

fn checkpoint(r: CheckpointRow) -> StoreResult<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        tree_size: u64_of("ledger_checkpoints.tree_size", r.tree_size)?,
        root_hash: hash32("ledger_checkpoints.root_hash", &r.root_hash)?,
        signed_note: r.signed_note,
        created_at: Timestamp(r.created_at),
    })
}

fn signing_key(r: SigningKeyRow) -> StoreResult<LedgerSigningKey> {
    Ok(LedgerSigningKey {
        name: r.name,
        public_key: r
            .public_key
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("ledger_signing_keys.public_key".into()))?,
        sealed_seed: r.sealed_seed,
        created_at: Timestamp(r.created_at),
    })
}
