//! The full audit: from the database (`verify_store`) or from a directory
//! of daily exports (`verify_export`), and one transfer's proof offline
//! (`verify_proof`). Each stops at the first failure and names the row.
//!
//! What is checked: every leaf hash against its record's canonical bytes,
//! leaves contiguous and each record at the leaf it claims, the stored
//! subtree hashes against the recomputed tree, every checkpoint's signature
//! and root, consistency between consecutive checkpoints, the head, and
//! that every account's balances equal the replay of its transfers (with
//! Σ debits = Σ credits per ledger).

use crate::error::{LedgerError, LedgerResult};
use crate::wire::{parse_hash, InclusionProof, LeafRecord, Record, TransferRecord};
use hood_domain::ledger::{encoding, replay, Account, Transfer};
use hood_domain::{AccountId, TransferId};
use hood_store::ledger::{AccountQuery, LedgerStore, LogRecord, StoredCheckpoint, TransferQuery};
use hood_tlog::{
    consistency_plan, leaf_hash, verify_consistency, verify_inclusion, Checkpoint, Frontier, Hash,
    NodeId, NoteVerifier,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// What a passing audit covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub leaves: u64,
    pub accounts: usize,
    pub transfers: usize,
    pub checkpoints: usize,
    pub root: Hash,
}

fn fail(msg: impl Into<String>) -> LedgerError {
    LedgerError::Verification(msg.into())
}

/// Rebuilds the tree from leaves in order and keeps what the balance check
/// needs.
struct Auditor {
    frontier: Frontier,
    /// Roots wanted at these sizes (the checkpoints'), and found.
    wanted: HashSet<u64>,
    roots: HashMap<u64, Hash>,
    /// Nodes the appends completed, to compare with the stored ones.
    completed: Vec<(NodeId, Hash)>,
    accounts: Vec<Account>,
    transfers: Vec<Transfer>,
    /// The last leaf's timestamp: the ledger's clock only moves forward.
    last_timestamp: u64,
}

impl Auditor {
    fn new(checkpoint_sizes: impl IntoIterator<Item = u64>) -> Self {
        let wanted: HashSet<u64> = checkpoint_sizes.into_iter().collect();
        let mut roots = HashMap::new();
        if wanted.contains(&0) {
            roots.insert(0, hood_tlog::empty_root());
        }
        Self {
            frontier: Frontier::new(),
            wanted,
            roots,
            completed: Vec::new(),
            accounts: Vec::new(),
            transfers: Vec::new(),
            last_timestamp: 0,
        }
    }

    /// Takes leaf `index` with its stored hash and record.
    fn leaf(&mut self, index: u64, stored: &Hash, record: Record2) -> LedgerResult<()> {
        let expected = self.frontier.size();
        if index != expected {
            return Err(fail(format!(
                "leaf {expected} is missing (the next leaf stored is {index})"
            )));
        }
        let (bytes, what, timestamp) = match &record {
            Record2::Account(a) => (
                encoding::account_bytes(a),
                format!("account {}", a.id),
                a.timestamp,
            ),
            Record2::Transfer(t) => (
                encoding::transfer_bytes(t),
                format!("transfer {}", t.id),
                t.timestamp,
            ),
        };
        if leaf_hash(&bytes) != *stored {
            return Err(fail(format!(
                "leaf {index} ({what}): the record no longer hashes to its leaf \
                 (changed after it was logged)"
            )));
        }
        if timestamp <= self.last_timestamp {
            return Err(fail(format!(
                "leaf {index} ({what}): its timestamp {timestamp} is not after the previous \
                 leaf's {} (records were reordered)",
                self.last_timestamp
            )));
        }
        self.last_timestamp = timestamp;
        let done = self.frontier.append(*stored)?;
        self.completed.extend(done);
        let size = self.frontier.size();
        if self.wanted.contains(&size) {
            self.roots.insert(size, self.frontier.root());
        }
        match record {
            Record2::Account(a) => self.accounts.push(a),
            Record2::Transfer(t) => self.transfers.push(t),
        }
        Ok(())
    }

    /// Checks each checkpoint against the recomputed roots, in size order,
    /// and consistency between consecutive ones with `proof_for`.
    fn checkpoints(
        &self,
        checkpoints: &[(u64, Hash)],
        mut proof_for: impl FnMut(u64, u64) -> LedgerResult<Vec<Hash>>,
    ) -> LedgerResult<()> {
        let mut previous: Option<(u64, Hash)> = None;
        for (size, root) in checkpoints {
            let Some(recomputed) = self.roots.get(size) else {
                return Err(fail(format!(
                    "checkpoint {size}: the log has only {} leaves",
                    self.frontier.size()
                )));
            };
            if recomputed != root {
                return Err(fail(format!(
                    "checkpoint {size}: its signed root is not the root of the log's first \
                     {size} leaves (the log was rewritten)"
                )));
            }
            if let Some((first, first_root)) = previous {
                let proof = proof_for(first, *size)?;
                verify_consistency(first, *size, &first_root, root, &proof).map_err(|e| {
                    fail(format!("checkpoints {first} → {size}: not consistent: {e}"))
                })?;
            }
            previous = Some((*size, *root));
        }
        Ok(())
    }

    /// Replays the transfers: every account's balances, and Σ debits =
    /// Σ credits per ledger. Returns the replayed accounts.
    fn replay(&self) -> LedgerResult<HashMap<AccountId, Account>> {
        let balances = replay(&self.accounts, &self.transfers)
            .map_err(|e| fail(format!("the log does not replay: {e}")))?;
        let mut sums: BTreeMap<u32, [u128; 4]> = BTreeMap::new();
        for a in balances.values() {
            let s = sums.entry(a.ledger).or_default();
            s[0] += u128::from(a.debits_pending);
            s[1] += u128::from(a.debits_posted);
            s[2] += u128::from(a.credits_pending);
            s[3] += u128::from(a.credits_posted);
        }
        for (ledger, [dp, dpo, cp, cpo]) in sums {
            if dp != cp || dpo != cpo {
                return Err(fail(format!(
                    "ledger {ledger}: debits ({dp} pending, {dpo} posted) do not equal credits \
                     ({cp} pending, {cpo} posted)"
                )));
            }
        }
        Ok(balances)
    }
}

/// A record read back (from the database or an export).
enum Record2 {
    Account(Account),
    Transfer(Transfer),
}

/// The verifier of the store's own checkpoint key.
pub async fn stored_verifier(store: &dyn LedgerStore) -> LedgerResult<Option<NoteVerifier>> {
    Ok(match store.ledger_signing_key().await? {
        Some(k) => Some(NoteVerifier::new(&k.name, &k.public_key)?),
        None => None,
    })
}

fn open_checkpoint(c: &StoredCheckpoint, verifier: &NoteVerifier) -> LedgerResult<()> {
    let size = c.tree_size;
    let parsed = Checkpoint::open(&c.signed_note, verifier).map_err(|e| {
        fail(format!(
            "checkpoint {size}: the signature does not verify: {e}"
        ))
    })?;
    if parsed.size != size || parsed.root != c.root_hash {
        return Err(fail(format!(
            "checkpoint {size}: the signed note and the row disagree"
        )));
    }
    Ok(())
}

const PAGE: i64 = 5_000;

/// Audits the ledger in a database. `verifier` pins the public key (the
/// store's own key otherwise).
pub async fn verify_store(
    store: &dyn LedgerStore,
    verifier: Option<&NoteVerifier>,
) -> LedgerResult<VerifyReport> {
    let own = stored_verifier(store).await?;
    let mut checkpoints = store.list_checkpoints(i64::MAX).await?;
    checkpoints.sort_by_key(|c| c.tree_size);
    if !checkpoints.is_empty() {
        let verifier = verifier.or(own.as_ref()).ok_or_else(|| {
            fail("checkpoints exist but no checkpoint key does: the key was removed")
        })?;
        for c in &checkpoints {
            open_checkpoint(c, verifier)?;
        }
    }
    let mut audit = Auditor::new(checkpoints.iter().map(|c| c.tree_size));
    let mut logged_accounts: HashSet<AccountId> = HashSet::new();
    let mut logged_transfers: HashSet<TransferId> = HashSet::new();
    let mut from = 0u64;
    loop {
        let page = store.log_entries(from, PAGE).await?;
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        for e in page {
            let what = format!("{} {}", e.kind.as_str(), e.ref_id);
            let record = match e.record {
                LogRecord::Missing => {
                    return Err(fail(format!(
                        "leaf {} names {what}, which the database no longer holds",
                        e.index
                    )))
                }
                LogRecord::Account(a) => {
                    logged_accounts.insert(a.id);
                    Record2::Account(a)
                }
                LogRecord::Transfer(t) => {
                    logged_transfers.insert(t.id);
                    Record2::Transfer(t)
                }
            };
            if e.record_leaf != Some(e.index) {
                return Err(fail(format!(
                    "leaf {} names {what}, whose row claims leaf {} (rows were reordered)",
                    e.index,
                    e.record_leaf.map_or("none".into(), |l| l.to_string())
                )));
            }
            audit.leaf(e.index, &e.hash, record)?;
        }
        // The subtrees this page completed, against the stored ones.
        let completed = std::mem::take(&mut audit.completed);
        for chunk in completed.chunks(1_000) {
            let ids: Vec<NodeId> = chunk.iter().map(|(n, _)| *n).collect();
            let stored = store.tree_nodes(&ids).await?;
            for ((node, hash), stored) in chunk.iter().zip(stored) {
                if stored.as_ref() != Some(hash) {
                    return Err(fail(format!(
                        "tree node at level {} over leaves {}..{} does not match its leaves \
                         (leaves were changed or reordered)",
                        node.level(),
                        node.first_leaf(),
                        node.first_leaf() + node.width()
                    )));
                }
            }
        }
    }
    let head = store.ledger_head().await?;
    if head.tree_size != audit.frontier.size() || head.root != audit.frontier.root() {
        return Err(fail(format!(
            "the head says {} leaves with root {}, the leaves give {} with root {}",
            head.tree_size,
            hex::encode(head.root),
            audit.frontier.size(),
            hex::encode(audit.frontier.root())
        )));
    }
    // Consistency proofs from the stored nodes (checked equal above).
    let sizes: Vec<(u64, Hash)> = checkpoints
        .iter()
        .map(|c| (c.tree_size, c.root_hash))
        .collect();
    let mut proofs = Vec::new();
    for pair in sizes.windows(2) {
        let plan = consistency_plan(pair[0].0, pair[1].0)?;
        let ids = plan.nodes();
        let found: HashMap<NodeId, Hash> = ids
            .iter()
            .zip(store.tree_nodes(&ids).await?)
            .filter_map(|(id, h)| h.map(|h| (*id, h)))
            .collect();
        proofs.push(plan.assemble(|n| found.get(&n).copied())?);
    }
    let mut proofs = proofs.into_iter();
    audit.checkpoints(&sizes, |_, _| {
        proofs
            .next()
            .ok_or_else(|| fail("a consistency proof is missing"))
    })?;

    let balances = audit.replay()?;
    let mut seen = 0usize;
    let mut cursor = None;
    loop {
        let page = store
            .list_accounts(&AccountQuery {
                after_timestamp: cursor,
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.timestamp);
        for a in &page {
            seen += 1;
            let Some(derived) = balances
                .get(&a.id)
                .filter(|_| logged_accounts.contains(&a.id))
            else {
                return Err(fail(format!("account {} is not in the log", a.id)));
            };
            for (name, table, log) in [
                ("debits_pending", a.debits_pending, derived.debits_pending),
                ("debits_posted", a.debits_posted, derived.debits_posted),
                (
                    "credits_pending",
                    a.credits_pending,
                    derived.credits_pending,
                ),
                ("credits_posted", a.credits_posted, derived.credits_posted),
            ] {
                if table != log {
                    return Err(fail(format!(
                        "account {}: {name} is {table} in the database but {log} by its transfers",
                        a.id
                    )));
                }
            }
        }
    }
    if seen != audit.accounts.len() {
        return Err(fail(format!(
            "the log created {} accounts, the database holds {seen}",
            audit.accounts.len()
        )));
    }
    let mut transfers_seen = 0usize;
    let mut cursor = None;
    loop {
        let page = store
            .list_transfers(&TransferQuery {
                after_timestamp: cursor,
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.timestamp);
        for t in &page {
            transfers_seen += 1;
            if !logged_transfers.contains(&t.id) {
                return Err(fail(format!("transfer {} is not in the log", t.id)));
            }
        }
    }
    if transfers_seen != audit.transfers.len() {
        return Err(fail(format!(
            "the log recorded {} transfers, the database holds {transfers_seen}",
            audit.transfers.len()
        )));
    }
    Ok(VerifyReport {
        leaves: audit.frontier.size(),
        accounts: audit.accounts.len(),
        transfers: audit.transfers.len(),
        checkpoints: checkpoints.len(),
        root: audit.frontier.root(),
    })
}

/// The files of one day's export, under `<day>/` of the export prefix.
pub const EXPORT_LEAVES: &str = "leaves.jsonl";
pub const EXPORT_CHECKPOINT: &str = "checkpoint";
/// The verifier key, beside the days (for convenience: pin your own copy
/// with `--public-key`).
pub const EXPORT_PUBLIC_KEY: &str = "public-key";

/// Audits a directory of daily exports (`<YYYY-MM-DD>/leaves.jsonl` and
/// `<YYYY-MM-DD>/checkpoint`): the leaves, each day's signed checkpoint,
/// consistency between days, and that the transfers replay.
pub fn verify_export(dir: &Path, verifier: &NoteVerifier) -> LedgerResult<VerifyReport> {
    let mut days: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("{}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join(EXPORT_CHECKPOINT).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    days.sort();
    if days.is_empty() {
        return Err(fail(format!("{}: no daily exports", dir.display())));
    }
    let mut checkpoints = Vec::new();
    let mut notes = Vec::new();
    for day in &days {
        let note = std::fs::read_to_string(dir.join(day).join(EXPORT_CHECKPOINT))
            .map_err(|e| fail(format!("{day}/{EXPORT_CHECKPOINT}: {e}")))?;
        let c = Checkpoint::open(&note, verifier).map_err(|e| {
            fail(format!(
                "{day}/{EXPORT_CHECKPOINT}: the signature does not verify: {e}"
            ))
        })?;
        checkpoints.push((c.size, c.root));
        notes.push(note);
    }
    let mut audit = Auditor::new(checkpoints.iter().map(|(s, _)| *s));
    let mut nodes: HashMap<NodeId, Hash> = HashMap::new();
    for day in &days {
        let path = dir.join(day).join(EXPORT_LEAVES);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| fail(format!("{day}/{EXPORT_LEAVES}: {e}")))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let at = || format!("{day}/{EXPORT_LEAVES} line {}", n + 1);
            let leaf: LeafRecord =
                serde_json::from_str(line).map_err(|e| fail(format!("{}: {e}", at())))?;
            let hash =
                parse_hash("hash", &leaf.hash).map_err(|e| fail(format!("{}: {e}", at())))?;
            let record = match &leaf.record {
                Record::Account(a) => Record2::Account(
                    Account::try_from(a).map_err(|e| fail(format!("{}: {e}", at())))?,
                ),
                Record::Transfer(t) => Record2::Transfer(
                    Transfer::try_from(t).map_err(|e| fail(format!("{}: {e}", at())))?,
                ),
            };
            nodes.insert(NodeId::leaf(leaf.index), hash);
            audit
                .leaf(leaf.index, &hash, record)
                .map_err(|e| fail(format!("{}: {e}", at())))?;
            nodes.extend(audit.completed.drain(..));
        }
    }
    audit.checkpoints(&checkpoints, |first, second| {
        Ok(consistency_plan(first, second)?.assemble(|n| nodes.get(&n).copied())?)
    })?;
    audit.replay()?;
    Ok(VerifyReport {
        leaves: audit.frontier.size(),
        accounts: audit.accounts.len(),
        transfers: audit.transfers.len(),
        checkpoints: checkpoints.len(),
        root: audit.frontier.root(),
    })
}

/// Checks one transfer's inclusion proof against its signed checkpoint
/// with only the public key: what a customer runs on their own copy.
/// Returns the checkpoint the transfer is proved in.
pub fn verify_proof(proof: &InclusionProof, verifier: &NoteVerifier) -> LedgerResult<Checkpoint> {
    let checkpoint = Checkpoint::open(&proof.checkpoint, verifier)
        .map_err(|e| fail(format!("the checkpoint's signature does not verify: {e}")))?;
    if checkpoint.size != proof.tree_size {
        return Err(fail(format!(
            "the proof is for size {}, the checkpoint is of size {}",
            proof.tree_size, checkpoint.size
        )));
    }
    // The leaf is rebuilt from the transfer as shown, never taken on trust.
    let transfer = Transfer::try_from(&proof.transfer).map_err(fail)?;
    let leaf = leaf_hash(&encoding::transfer_bytes(&transfer));
    let path = proof
        .proof
        .iter()
        .map(|h| parse_hash("proof", h))
        .collect::<Result<Vec<Hash>, String>>()
        .map_err(fail)?;
    verify_inclusion(
        proof.leaf_index,
        checkpoint.size,
        &leaf,
        &path,
        &checkpoint.root,
    )
    .map_err(|e| {
        fail(format!(
            "transfer {} is not leaf {} of the signed log: {e}",
            proof.transfer.id, proof.leaf_index
        ))
    })?;
    Ok(checkpoint)
}

/// The record a leaf stands for, for exports.
pub(crate) fn leaf_record(index: u64, hash: &Hash, record: &LogRecord) -> Option<LeafRecord> {
    let record = match record {
        LogRecord::Account(a) => Record::Account(a.into()),
        LogRecord::Transfer(t) => Record::Transfer(TransferRecord::from(t)),
        LogRecord::Missing => return None,
    };
    Some(LeafRecord {
        index,
        hash: hex::encode(hash),
        record,
    })
}
