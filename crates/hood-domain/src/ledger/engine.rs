//! The ledger's state machine: batches of account creations and transfers
//! applied to the part of the ledger they touch, deterministically, with
//! TigerBeetle's rules. The store loads that part ([`LedgerState`]), runs a
//! batch here, and writes back what [`Changes`] lists, in one transaction.

use super::model::*;
use super::result::{CreateAccountResult as AR, CreateTransferResult as TR};
use crate::{AccountId, TransferId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The accounts, transfers and pending statuses a batch may read, and the
/// ledger's clock. Loaded by the store; changed in place by a batch.
#[derive(Debug, Clone, Default)]
pub struct LedgerState {
    /// Configured ledgers (assets) by id.
    pub ledgers: BTreeSet<u32>,
    pub accounts: HashMap<AccountId, Account>,
    /// Transfers already recorded that the batch refers to (its own ids,
    /// for idempotency, and the pending transfers it posts or voids), and
    /// those it records.
    pub transfers: HashMap<TransferId, Transfer>,
    /// Status of each pending transfer in `transfers`.
    pub pending: HashMap<TransferId, PendingStatus>,
    /// The last timestamp the ledger assigned.
    pub last_timestamp: LedgerTimestamp,
}

/// What a batch changed: what the store must write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Created, in the order they were recorded (the log's order).
    pub accounts_created: Vec<AccountId>,
    pub transfers_created: Vec<TransferId>,
    /// Accounts whose balances or flags changed.
    pub accounts_updated: BTreeSet<AccountId>,
    /// Pending transfers whose status changed, with the new status.
    pub pending_changed: BTreeMap<TransferId, PendingStatus>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.accounts_created.is_empty()
            && self.transfers_created.is_empty()
            && self.accounts_updated.is_empty()
            && self.pending_changed.is_empty()
    }
}

/// A mutation to undo when a linked chain fails.
enum Undo {
    Account(AccountId, Option<Account>),
    Transfer(TransferId),
    Pending(TransferId, Option<PendingStatus>),
    Timestamp(LedgerTimestamp),
}

/// A batch being applied: the state, what changed, and the undo log of the
/// open linked chain.
struct Batch<'s> {
    state: &'s mut LedgerState,
    /// What the chains that succeeded changed.
    changes: Changes,
    /// What the open chain changed so far (kept only if it succeeds).
    chain: Changes,
    undo: Vec<Undo>,
    now: LedgerTimestamp,
}

impl<'s> Batch<'s> {
    fn new(state: &'s mut LedgerState, now: LedgerTimestamp) -> Self {
        Self {
            state,
            changes: Changes::default(),
            chain: Changes::default(),
            undo: Vec::new(),
            now,
        }
    }

    /// The next strictly increasing timestamp.
    fn tick(&mut self) -> LedgerTimestamp {
        self.undo.push(Undo::Timestamp(self.state.last_timestamp));
        let ts = self.now.max(self.state.last_timestamp.saturating_add(1));
        self.state.last_timestamp = ts;
        ts
    }

    /// Stores a new or changed account.
    fn put_account(&mut self, account: Account, created: bool) {
        if created {
            self.chain.accounts_created.push(account.id);
        } else {
            self.chain.accounts_updated.insert(account.id);
        }
        let previous = self.state.accounts.insert(account.id, account.clone());
        self.undo.push(Undo::Account(account.id, previous));
    }

    fn put_transfer(&mut self, transfer: Transfer) {
        self.chain.transfers_created.push(transfer.id);
        self.undo.push(Undo::Transfer(transfer.id));
        self.state.transfers.insert(transfer.id, transfer);
    }

    fn put_pending(&mut self, id: TransferId, status: PendingStatus) {
        self.chain.pending_changed.insert(id, status);
        let previous = self.state.pending.insert(id, status);
        self.undo.push(Undo::Pending(id, previous));
    }

    /// Keeps what the open chain did.
    fn commit(&mut self) {
        let chain = std::mem::take(&mut self.chain);
        self.changes.accounts_created.extend(chain.accounts_created);
        self.changes
            .transfers_created
            .extend(chain.transfers_created);
        self.changes.accounts_updated.extend(chain.accounts_updated);
        self.changes.pending_changed.extend(chain.pending_changed);
        self.undo.clear();
    }

    /// Rolls the open chain back.
    fn roll_back(&mut self) {
        self.chain = Changes::default();
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Account(id, Some(a)) => {
                    self.state.accounts.insert(id, a);
                }
                Undo::Account(id, None) => {
                    self.state.accounts.remove(&id);
                }
                Undo::Transfer(id) => {
                    self.state.transfers.remove(&id);
                }
                Undo::Pending(id, Some(s)) => {
                    self.state.pending.insert(id, s);
                }
                Undo::Pending(id, None) => {
                    self.state.pending.remove(&id);
                }
                Undo::Timestamp(ts) => self.state.last_timestamp = ts,
            }
        }
    }
}

/// Splits a batch into linked chains: `(start, end_exclusive, closed)`; a
/// chain is open when the batch ends on a linked item.
fn chains(linked: impl Iterator<Item = bool>) -> Vec<(usize, usize, bool)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut len = 0;
    for (i, is_linked) in linked.enumerate() {
        len = i + 1;
        if !is_linked {
            out.push((start, i + 1, true));
            start = i + 1;
        }
    }
    if start < len {
        out.push((start, len, false));
    }
    out
}

/// Runs `apply` on every item, chain by chain: a chain whose item fails is
/// rolled back and its other items answer `failed`; an open chain at the
/// end answers `open` on its last item.
fn run_chains<T, R: Copy>(
    batch: &mut Batch<'_>,
    items: &[T],
    linked: impl Fn(&T) -> bool,
    failed: R,
    open: R,
    mut apply: impl FnMut(&mut Batch<'_>, &T) -> Result<R, R>,
) -> Vec<R> {
    let mut results = vec![failed; items.len()];
    for (start, end, closed) in chains(items.iter().map(&linked)) {
        if !closed {
            // The whole chain fails; its last item says why.
            results[end - 1] = open;
            continue;
        }
        let mut failure = None;
        for (offset, item) in items[start..end].iter().enumerate() {
            match apply(batch, item) {
                Ok(r) => results[start + offset] = r,
                Err(r) => {
                    failure = Some((offset, r));
                    break;
                }
            }
        }
        match failure {
            Some((offset, r)) => {
                batch.roll_back();
                for result in &mut results[start..end] {
                    *result = failed;
                }
                results[start + offset] = r;
            }
            None => batch.commit(),
        }
    }
    results
}

// -- accounts --

/// Creates accounts: per item, `ok`, `exists` (an identical account was
/// created before) or why not.
pub fn create_accounts(
    state: &mut LedgerState,
    batch: &[NewAccount],
    now: LedgerTimestamp,
) -> (Vec<AR>, Changes) {
    let mut b = Batch::new(state, now);
    let results = run_chains(
        &mut b,
        batch,
        |a| a.flags.has(AccountFlags::LINKED),
        AR::LinkedEventFailed,
        AR::LinkedEventChainOpen,
        create_account,
    );
    (results, b.changes)
}

fn create_account(b: &mut Batch<'_>, a: &NewAccount) -> Result<AR, AR> {
    if a.flags.reserved() != 0 {
        return Err(AR::ReservedFlag);
    }
    if id_is_zero(a.id.as_uuid()) {
        return Err(AR::IdMustNotBeZero);
    }
    if id_is_max(a.id.as_uuid()) {
        return Err(AR::IdMustNotBeIntMax);
    }
    if a.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        && a.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
    {
        return Err(AR::FlagsAreMutuallyExclusive);
    }
    if a.ledger == 0 {
        return Err(AR::LedgerMustNotBeZero);
    }
    if a.code == 0 {
        return Err(AR::CodeMustNotBeZero);
    }
    if let Some(existing) = b.state.accounts.get(&a.id) {
        return Err(account_exists(existing, a));
    }
    if !b.state.ledgers.contains(&a.ledger) {
        return Err(AR::LedgerNotFound);
    }
    let timestamp = b.tick();
    b.put_account(
        Account {
            id: a.id,
            ledger: a.ledger,
            code: a.code,
            flags: a.flags.without(AccountFlags::LINKED),
            org_id: a.org_id,
            user_data_128: a.user_data_128,
            user_data_64: a.user_data_64,
            user_data_32: a.user_data_32,
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            timestamp,
        },
        true,
    );
    Ok(AR::Ok)
}

/// `exists` when the request describes the stored account, else the first
/// field that differs. An "error" for the chain: a chain that re-creates an
/// existing account does not apply its other items twice.
fn account_exists(existing: &Account, a: &NewAccount) -> AR {
    if existing.flags.stable() != a.flags.stable() {
        AR::ExistsWithDifferentFlags
    } else if existing.user_data_128 != a.user_data_128 {
        AR::ExistsWithDifferentUserData128
    } else if existing.user_data_64 != a.user_data_64 {
        AR::ExistsWithDifferentUserData64
    } else if existing.user_data_32 != a.user_data_32 {
        AR::ExistsWithDifferentUserData32
    } else if existing.ledger != a.ledger {
        AR::ExistsWithDifferentLedger
    } else if existing.code != a.code {
        AR::ExistsWithDifferentCode
    } else if existing.org_id != a.org_id {
        AR::ExistsWithDifferentOrg
    } else {
        AR::Exists
    }
}

// -- transfers --

/// Creates transfers: per item, `ok`, `exists` (an identical transfer was
/// recorded before) or why not. Nothing of a failed item (or of its
/// linked chain) changes the state.
pub fn create_transfers(
    state: &mut LedgerState,
    batch: &[NewTransfer],
    now: LedgerTimestamp,
) -> (Vec<TR>, Changes) {
    let mut b = Batch::new(state, now);
    let results = run_chains(
        &mut b,
        batch,
        |t| t.flags.has(TransferFlags::LINKED),
        TR::LinkedEventFailed,
        TR::LinkedEventChainOpen,
        create_transfer,
    );
    (results, b.changes)
}

fn create_transfer(b: &mut Batch<'_>, t: &NewTransfer) -> Result<TR, TR> {
    let f = t.flags;
    if f.reserved() != 0 {
        return Err(TR::ReservedFlag);
    }
    if id_is_zero(t.id.as_uuid()) {
        return Err(TR::IdMustNotBeZero);
    }
    if id_is_max(t.id.as_uuid()) {
        return Err(TR::IdMustNotBeIntMax);
    }
    let post = f.has(TransferFlags::POST_PENDING_TRANSFER);
    let void = f.has(TransferFlags::VOID_PENDING_TRANSFER);
    let pending = f.has(TransferFlags::PENDING);
    let balancing = f.has(TransferFlags::BALANCING_DEBIT) || f.has(TransferFlags::BALANCING_CREDIT);
    let closing = f.has(TransferFlags::CLOSING_DEBIT) || f.has(TransferFlags::CLOSING_CREDIT);
    if (post && void)
        || (pending && (post || void))
        || (balancing && (post || void))
        || (closing && !pending)
    {
        return Err(TR::FlagsAreMutuallyExclusive);
    }
    if post || void {
        match t.pending_id {
            None => return Err(TR::PendingIdMustNotBeZero),
            Some(p) if p == t.id => return Err(TR::PendingIdMustBeDifferent),
            Some(_) => {}
        }
        if t.timeout != 0 {
            return Err(TR::TimeoutReservedForPendingTransfer);
        }
    } else {
        if t.pending_id.is_some() {
            return Err(TR::PendingIdMustBeZero);
        }
        if t.timeout != 0 && !pending {
            return Err(TR::TimeoutReservedForPendingTransfer);
        }
        let (Some(debit), Some(credit)) = (t.debit_account_id, t.credit_account_id) else {
            return Err(if t.debit_account_id.is_none() {
                TR::DebitAccountIdMustNotBeZero
            } else {
                TR::CreditAccountIdMustNotBeZero
            });
        };
        if debit == credit {
            return Err(TR::AccountsMustBeDifferent);
        }
        if t.ledger == 0 {
            return Err(TR::LedgerMustNotBeZero);
        }
        if t.code == 0 {
            return Err(TR::CodeMustNotBeZero);
        }
    }
    if t.amount > AMOUNT_MAX {
        return Err(TR::AmountMustNotExceedMax);
    }
    if let Some(existing) = b.state.transfers.get(&t.id) {
        return Err(transfer_exists(existing, t));
    }
    if post || void {
        settle_pending(b, t)
    } else {
        single_phase(b, t)
    }
}

/// `exists` when the request describes the recorded transfer (fields the
/// request leaves to the ledger are not compared), else the first field
/// that differs.
fn transfer_exists(e: &Transfer, t: &NewTransfer) -> TR {
    let settles = t.flags.settles_pending();
    let balancing =
        t.flags.has(TransferFlags::BALANCING_DEBIT) || t.flags.has(TransferFlags::BALANCING_CREDIT);
    let amount_left_open = t.amount == 0 && (settles || balancing);
    if e.flags != t.flags {
        TR::ExistsWithDifferentFlags
    } else if e.pending_id != t.pending_id {
        TR::ExistsWithDifferentPendingId
    } else if e.timeout != t.timeout {
        TR::ExistsWithDifferentTimeout
    } else if t.debit_account_id.is_some_and(|d| d != e.debit_account_id) {
        TR::ExistsWithDifferentDebitAccountId
    } else if t
        .credit_account_id
        .is_some_and(|c| c != e.credit_account_id)
    {
        TR::ExistsWithDifferentCreditAccountId
    } else if !amount_left_open && !balancing && e.amount != t.amount {
        // A balancing amount is a bound and a left-open one the ledger's
        // choice: only an exact amount must match.
        TR::ExistsWithDifferentAmount
    } else if (t.user_data_128 != 0 || !settles) && e.user_data_128 != t.user_data_128 {
        TR::ExistsWithDifferentUserData128
    } else if (t.user_data_64 != 0 || !settles) && e.user_data_64 != t.user_data_64 {
        TR::ExistsWithDifferentUserData64
    } else if (t.user_data_32 != 0 || !settles) && e.user_data_32 != t.user_data_32 {
        TR::ExistsWithDifferentUserData32
    } else if (t.ledger != 0 || !settles) && e.ledger != t.ledger {
        TR::ExistsWithDifferentLedger
    } else if (t.code != 0 || !settles) && e.code != t.code {
        TR::ExistsWithDifferentCode
    } else {
        TR::Exists
    }
}

/// A transfer between two accounts, posted at once or held as pending.
fn single_phase(b: &mut Batch<'_>, t: &NewTransfer) -> Result<TR, TR> {
    let (Some(debit_id), Some(credit_id)) = (t.debit_account_id, t.credit_account_id) else {
        return Err(TR::DebitAccountIdMustNotBeZero);
    };
    let Some(debit) = b.state.accounts.get(&debit_id).cloned() else {
        return Err(TR::DebitAccountNotFound);
    };
    let Some(credit) = b.state.accounts.get(&credit_id).cloned() else {
        return Err(TR::CreditAccountNotFound);
    };
    if debit.ledger != credit.ledger {
        return Err(TR::AccountsMustHaveTheSameLedger);
    }
    if t.ledger != debit.ledger {
        return Err(TR::TransferMustHaveTheSameLedgerAsAccounts);
    }
    if debit.flags.has(AccountFlags::CLOSED) {
        return Err(TR::DebitAccountAlreadyClosed);
    }
    if credit.flags.has(AccountFlags::CLOSED) {
        return Err(TR::CreditAccountAlreadyClosed);
    }
    let f = t.flags;
    let pending = f.has(TransferFlags::PENDING);
    let mut amount = if t.amount == 0
        && (f.has(TransferFlags::BALANCING_DEBIT) || f.has(TransferFlags::BALANCING_CREDIT))
    {
        AMOUNT_MAX
    } else {
        t.amount
    };
    if f.has(TransferFlags::BALANCING_DEBIT) {
        let used = debit.debits_posted.saturating_add(debit.debits_pending);
        amount = amount.min(debit.credits_posted.saturating_sub(used));
    }
    if f.has(TransferFlags::BALANCING_CREDIT) {
        let used = credit.credits_posted.saturating_add(credit.credits_pending);
        amount = amount.min(credit.debits_posted.saturating_sub(used));
    }
    // Overflows: every balance, and the totals the limits compare.
    let add = |a: Amount, b: Amount| a.checked_add(b).filter(|s| *s <= AMOUNT_MAX);
    let (debits_pending, debits_posted, credits_pending, credits_posted) = if pending {
        (
            add(debit.debits_pending, amount).ok_or(TR::OverflowsDebitsPending)?,
            debit.debits_posted,
            add(credit.credits_pending, amount).ok_or(TR::OverflowsCreditsPending)?,
            credit.credits_posted,
        )
    } else {
        (
            debit.debits_pending,
            add(debit.debits_posted, amount).ok_or(TR::OverflowsDebitsPosted)?,
            credit.credits_pending,
            add(credit.credits_posted, amount).ok_or(TR::OverflowsCreditsPosted)?,
        )
    };
    let debit_total = add(debits_pending, debits_posted).ok_or(TR::OverflowsDebits)?;
    let credit_total = add(credits_pending, credits_posted).ok_or(TR::OverflowsCredits)?;
    if debit
        .flags
        .has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        && debit_total > debit.credits_posted
    {
        return Err(TR::ExceedsCredits);
    }
    if credit
        .flags
        .has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        && credit_total > credit.debits_posted
    {
        return Err(TR::ExceedsDebits);
    }
    let timestamp_next = b.now.max(b.state.last_timestamp.saturating_add(1));
    if pending
        && t.timeout > 0
        && timestamp_next
            .checked_add(u64::from(t.timeout).saturating_mul(1_000_000_000))
            .is_none()
    {
        return Err(TR::OverflowsTimeout);
    }
    let timestamp = b.tick();
    let mut debit = debit;
    let mut credit = credit;
    debit.debits_pending = debits_pending;
    debit.debits_posted = debits_posted;
    credit.credits_pending = credits_pending;
    credit.credits_posted = credits_posted;
    if f.has(TransferFlags::CLOSING_DEBIT) {
        debit.flags = debit.flags.with(AccountFlags::CLOSED);
    }
    if f.has(TransferFlags::CLOSING_CREDIT) {
        credit.flags = credit.flags.with(AccountFlags::CLOSED);
    }
    b.put_account(debit, false);
    b.put_account(credit, false);
    let transfer = Transfer {
        id: t.id,
        debit_account_id: debit_id,
        credit_account_id: credit_id,
        amount,
        pending_id: None,
        user_data_128: t.user_data_128,
        user_data_64: t.user_data_64,
        user_data_32: t.user_data_32,
        timeout: t.timeout,
        ledger: t.ledger,
        code: t.code,
        flags: f,
        timestamp,
    };
    if pending {
        b.put_pending(t.id, PendingStatus::Pending);
    }
    b.put_transfer(transfer);
    Ok(TR::Ok)
}

/// Posts (all or part of) or voids a pending transfer.
fn settle_pending(b: &mut Batch<'_>, t: &NewTransfer) -> Result<TR, TR> {
    let Some(pending_id) = t.pending_id else {
        return Err(TR::PendingIdMustNotBeZero);
    };
    let Some(p) = b.state.transfers.get(&pending_id).cloned() else {
        return Err(TR::PendingTransferNotFound);
    };
    if !p.flags.has(TransferFlags::PENDING) {
        return Err(TR::PendingTransferNotPending);
    }
    if t.debit_account_id.is_some_and(|d| d != p.debit_account_id) {
        return Err(TR::PendingTransferHasDifferentDebitAccountId);
    }
    if t.credit_account_id
        .is_some_and(|c| c != p.credit_account_id)
    {
        return Err(TR::PendingTransferHasDifferentCreditAccountId);
    }
    if t.ledger != 0 && t.ledger != p.ledger {
        return Err(TR::PendingTransferHasDifferentLedger);
    }
    if t.code != 0 && t.code != p.code {
        return Err(TR::PendingTransferHasDifferentCode);
    }
    let post = t.flags.has(TransferFlags::POST_PENDING_TRANSFER);
    let amount = if post {
        match t.amount {
            0 => p.amount,
            a if a > p.amount => return Err(TR::ExceedsPendingTransferAmount),
            a => a,
        }
    } else {
        match t.amount {
            0 => p.amount,
            a if a == p.amount => a,
            _ => return Err(TR::PendingTransferHasDifferentAmount),
        }
    };
    match b
        .state
        .pending
        .get(&pending_id)
        .copied()
        .unwrap_or(PendingStatus::Pending)
    {
        PendingStatus::Posted => return Err(TR::PendingTransferAlreadyPosted),
        PendingStatus::Voided => return Err(TR::PendingTransferAlreadyVoided),
        PendingStatus::Expired => return Err(TR::PendingTransferExpired),
        PendingStatus::Pending => {}
    }
    if p.expires_at().is_some_and(|at| at <= b.now) {
        return Err(TR::PendingTransferExpired);
    }
    let (Some(mut debit), Some(mut credit)) = (
        b.state.accounts.get(&p.debit_account_id).cloned(),
        b.state.accounts.get(&p.credit_account_id).cloned(),
    ) else {
        return Err(TR::DebitAccountNotFound);
    };
    debit.debits_pending = debit.debits_pending.saturating_sub(p.amount);
    credit.credits_pending = credit.credits_pending.saturating_sub(p.amount);
    if post {
        let add = |a: Amount, b: Amount| a.checked_add(b).filter(|s| *s <= AMOUNT_MAX);
        debit.debits_posted = add(debit.debits_posted, amount).ok_or(TR::OverflowsDebitsPosted)?;
        credit.credits_posted =
            add(credit.credits_posted, amount).ok_or(TR::OverflowsCreditsPosted)?;
    } else {
        // Voiding a closing transfer reopens what it closed.
        if p.flags.has(TransferFlags::CLOSING_DEBIT) {
            debit.flags = debit.flags.without(AccountFlags::CLOSED);
        }
        if p.flags.has(TransferFlags::CLOSING_CREDIT) {
            credit.flags = credit.flags.without(AccountFlags::CLOSED);
        }
    }
    let timestamp = b.tick();
    b.put_account(debit, false);
    b.put_account(credit, false);
    b.put_pending(
        pending_id,
        if post {
            PendingStatus::Posted
        } else {
            PendingStatus::Voided
        },
    );
    let inherit = |v: u128, from: u128| if v == 0 { from } else { v };
    b.put_transfer(Transfer {
        id: t.id,
        debit_account_id: p.debit_account_id,
        credit_account_id: p.credit_account_id,
        amount,
        pending_id: Some(pending_id),
        user_data_128: inherit(t.user_data_128, p.user_data_128),
        user_data_64: if t.user_data_64 == 0 {
            p.user_data_64
        } else {
            t.user_data_64
        },
        user_data_32: if t.user_data_32 == 0 {
            p.user_data_32
        } else {
            t.user_data_32
        },
        timeout: 0,
        ledger: p.ledger,
        code: p.code,
        flags: t.flags,
        timestamp,
    });
    Ok(TR::Ok)
}

/// Voids pending transfers whose timeout has passed at `now`: each gets a
/// void transfer with the id [`expiry_id`] and its status becomes
/// `expired`, so its hold is released and it can never be posted. Ids that
/// are not pending or not yet expired are skipped. Returns the voids
/// recorded.
pub fn expire_pending(
    state: &mut LedgerState,
    pending_ids: &[TransferId],
    now: LedgerTimestamp,
) -> (Vec<TransferId>, Changes) {
    let mut b = Batch::new(state, now);
    let mut voids = Vec::new();
    for &id in pending_ids {
        let Some(p) = b.state.transfers.get(&id).cloned() else {
            continue;
        };
        let due = p.expires_at().is_some_and(|at| at <= now);
        let still_pending = b.state.pending.get(&id).copied() == Some(PendingStatus::Pending);
        if !due || !still_pending {
            continue;
        }
        let (Some(mut debit), Some(mut credit)) = (
            b.state.accounts.get(&p.debit_account_id).cloned(),
            b.state.accounts.get(&p.credit_account_id).cloned(),
        ) else {
            continue;
        };
        debit.debits_pending = debit.debits_pending.saturating_sub(p.amount);
        credit.credits_pending = credit.credits_pending.saturating_sub(p.amount);
        if p.flags.has(TransferFlags::CLOSING_DEBIT) {
            debit.flags = debit.flags.without(AccountFlags::CLOSED);
        }
        if p.flags.has(TransferFlags::CLOSING_CREDIT) {
            credit.flags = credit.flags.without(AccountFlags::CLOSED);
        }
        let timestamp = b.tick();
        b.put_account(debit, false);
        b.put_account(credit, false);
        b.put_pending(id, PendingStatus::Expired);
        let void = Transfer {
            id: expiry_id(id),
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount: p.amount,
            pending_id: Some(id),
            user_data_128: p.user_data_128,
            user_data_64: p.user_data_64,
            user_data_32: p.user_data_32,
            timeout: 0,
            ledger: p.ledger,
            code: p.code,
            flags: TransferFlags(TransferFlags::VOID_PENDING_TRANSFER),
            timestamp,
        };
        voids.push(void.id);
        b.put_transfer(void);
        b.commit();
    }
    (voids, b.changes)
}

// -- replay --

/// Why a log does not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("transfer {transfer} refers to account {account}, which the log has not created")]
    UnknownAccount {
        transfer: TransferId,
        account: AccountId,
    },
    #[error("transfer {transfer} settles {pending}, which is not a pending transfer of the log")]
    UnknownPending {
        transfer: TransferId,
        pending: TransferId,
    },
    #[error("transfer {transfer} settles {pending}, which was already settled")]
    SettledTwice {
        transfer: TransferId,
        pending: TransferId,
    },
}

/// Balances derived from a log: the accounts as created (zero balances),
/// then every recorded transfer applied in order. What a verifier compares
/// with the balances the store keeps.
pub fn replay<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Result<HashMap<AccountId, Account>, ReplayError> {
    let mut balances: HashMap<AccountId, Account> = accounts
        .into_iter()
        .map(|a| {
            let mut a = a.clone();
            a.debits_pending = 0;
            a.debits_posted = 0;
            a.credits_pending = 0;
            a.credits_posted = 0;
            (a.id, a)
        })
        .collect();
    let mut pendings: HashMap<TransferId, (Amount, bool)> = HashMap::new();
    for t in transfers {
        for account in [t.debit_account_id, t.credit_account_id] {
            if !balances.contains_key(&account) {
                return Err(ReplayError::UnknownAccount {
                    transfer: t.id,
                    account,
                });
            }
        }
        let mut apply = |id: AccountId, f: &dyn Fn(&mut Account)| {
            if let Some(a) = balances.get_mut(&id) {
                f(a);
            }
        };
        let f = t.flags;
        if f.settles_pending() {
            let pending = t.pending_id.unwrap_or(t.id);
            let Some((held, settled)) = pendings.get_mut(&pending) else {
                return Err(ReplayError::UnknownPending {
                    transfer: t.id,
                    pending,
                });
            };
            if *settled {
                return Err(ReplayError::SettledTwice {
                    transfer: t.id,
                    pending,
                });
            }
            *settled = true;
            let held = *held;
            let posted = if f.has(TransferFlags::POST_PENDING_TRANSFER) {
                t.amount
            } else {
                0
            };
            apply(t.debit_account_id, &|a| {
                a.debits_pending = a.debits_pending.saturating_sub(held);
                a.debits_posted = a.debits_posted.saturating_add(posted);
            });
            apply(t.credit_account_id, &|a| {
                a.credits_pending = a.credits_pending.saturating_sub(held);
                a.credits_posted = a.credits_posted.saturating_add(posted);
            });
        } else if f.has(TransferFlags::PENDING) {
            pendings.insert(t.id, (t.amount, false));
            apply(t.debit_account_id, &|a| {
                a.debits_pending = a.debits_pending.saturating_add(t.amount)
            });
            apply(t.credit_account_id, &|a| {
                a.credits_pending = a.credits_pending.saturating_add(t.amount)
            });
        } else {
            apply(t.debit_account_id, &|a| {
                a.debits_posted = a.debits_posted.saturating_add(t.amount)
            });
            apply(t.credit_account_id, &|a| {
                a.credits_posted = a.credits_posted.saturating_add(t.amount)
            });
        }
    }
    Ok(balances)
}
