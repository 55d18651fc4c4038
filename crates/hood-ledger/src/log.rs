//! The ledger's log as a service: its signing key, signed checkpoints, and
//! the proofs a customer checks them with.

use crate::error::{LedgerError, LedgerResult};
use crate::wire::{hex_hash, ConsistencyProof, InclusionProof, TransferRecord};
use hood_clock::Clock;
use hood_domain::ledger::encoding;
use hood_domain::TransferId;
use hood_identity::master_key::MasterKey;
use hood_store::ledger::{LeafKind, LedgerSigningKey, LedgerStore, StoredCheckpoint};
use hood_tlog::{
    consistency_plan, inclusion_plan, Checkpoint, Frontier, Hash, NodeId, NoteSigner, NoteVerifier,
    ProofPlan,
};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Arc;

/// Associated data of the sealed checkpoint key: a sealed blob of another
/// purpose never opens as this one.
const KEY_AAD: &[u8] = b"hood ledger checkpoint signing key v1";

/// The log's origin (and key name) unless the operator names one.
pub const DEFAULT_ORIGIN: &str = "hood.local/ledger";

/// Signs checkpoints of the ledger's log and builds its proofs.
#[derive(Clone)]
pub struct LedgerLog {
    store: Arc<dyn LedgerStore>,
    signer: Arc<NoteSigner>,
    clock: Arc<dyn Clock>,
}

impl LedgerLog {
    /// Opens the log's signing key, creating it (sealed under `master`) the
    /// first time. Of two replicas creating it at once, both end with the
    /// first one stored. The key's name, fixed at creation, is the log's
    /// origin.
    pub async fn open(
        store: Arc<dyn LedgerStore>,
        master: &MasterKey,
        origin: &str,
    ) -> LedgerResult<Self> {
        let stored = match store.ledger_signing_key().await? {
            Some(k) => k,
            None => {
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                let signer = NoteSigner::from_seed(origin, &seed)?;
                let sealed_seed = master
                    .seal(&seed, KEY_AAD)
                    .map_err(|e| LedgerError::Key(e.to_string()))?;
                let key = LedgerSigningKey {
                    name: origin.to_owned(),
                    public_key: signer.verifier().public_key(),
                    sealed_seed,
                    created_at: hood_clock::now(),
                };
                let kept = store.insert_ledger_signing_key_if_absent(&key).await?;
                if kept.public_key == key.public_key {
                    tracing::info!(origin, "created the ledger's checkpoint signing key");
                }
                kept
            }
        };
        if stored.name != origin {
            tracing::warn!(
                configured = origin,
                key = %stored.name,
                "the ledger's origin is fixed by its key; keeping the key's"
            );
        }
        let seed = master
            .open(&stored.sealed_seed, KEY_AAD)
            .map_err(|e| LedgerError::Key(format!("the checkpoint key does not open: {e}")))?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| LedgerError::Key("the checkpoint key is not 32 bytes".into()))?;
        let signer = NoteSigner::from_seed(&stored.name, &seed)?;
        if signer.verifier().public_key() != stored.public_key {
            return Err(LedgerError::Key(
                "the sealed checkpoint key does not match its public key".into(),
            ));
        }
        let clock = store.clock();
        Ok(Self {
            store,
            signer: Arc::new(signer),
            clock,
        })
    }

    pub fn store(&self) -> &Arc<dyn LedgerStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The public key, as a C2SP verifier key string.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// A signed checkpoint of the log as it is now (the one stored at that
    /// size if there is one).
    pub async fn checkpoint(&self) -> LedgerResult<StoredCheckpoint> {
        let head = self.store.ledger_head().await?;
        if let Some(c) = self.store.get_checkpoint(head.tree_size).await? {
            return Ok(c);
        }
        self.sign(head.tree_size, head.root).await
    }

    /// A signed checkpoint at an earlier size (exports close a day there).
    pub async fn checkpoint_at(&self, size: u64) -> LedgerResult<StoredCheckpoint> {
        if let Some(c) = self.store.get_checkpoint(size).await? {
            return Ok(c);
        }
        let root = self.root_at(size).await?;
        self.sign(size, root).await
    }

    async fn sign(&self, size: u64, root: Hash) -> LedgerResult<StoredCheckpoint> {
        let note = Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
        .sign(&self.signer)?;
        let stored = StoredCheckpoint {
            tree_size: size,
            root_hash: root,
            signed_note: note,
            created_at: self.clock.now(),
        };
        if self.store.insert_checkpoint(&stored).await? {
            tracing::info!(tree_size = size, root = %hex_hash(&root), "signed a ledger checkpoint");
            return Ok(stored);
        }
        // Another replica signed this size first: theirs stands.
        self.store
            .get_checkpoint(size)
            .await?
            .ok_or(LedgerError::NotFound("checkpoint"))
    }

    /// The root of the tree of the first `size` leaves, from stored nodes.
    pub async fn root_at(&self, size: u64) -> LedgerResult<Hash> {
        let head = self.store.ledger_head().await?;
        if size > head.tree_size {
            return Err(LedgerError::Invalid(format!(
                "the log has {} leaves, not {size}",
                head.tree_size
            )));
        }
        if size == head.tree_size {
            return Ok(head.root);
        }
        let ids = Frontier::node_ids(size);
        let hashes = self.fetch(&ids).await?;
        let hashes = ids
            .iter()
            .map(|n| {
                hashes
                    .get(n)
                    .copied()
                    .ok_or(hood_tlog::TlogError::MissingNode(*n))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        Ok(Frontier::from_parts(size, hashes)?.root())
    }

    async fn fetch(&self, ids: &[NodeId]) -> LedgerResult<HashMap<NodeId, Hash>> {
        let hashes = self.store.tree_nodes(ids).await?;
        Ok(ids
            .iter()
            .zip(hashes)
            .filter_map(|(id, h)| h.map(|h| (*id, h)))
            .collect())
    }

    async fn assemble(&self, plan: &ProofPlan) -> LedgerResult<Vec<Hash>> {
        let found = self.fetch(&plan.nodes()).await?;
        Ok(plan.assemble(|n| found.get(&n).copied())?)
    }

    /// The inclusion proof of a transfer against the checkpoint of size
    /// `at`, or against the newest checkpoint that holds it (signing one
    /// now if none does yet).
    pub async fn transfer_proof(
        &self,
        id: TransferId,
        at: Option<u64>,
    ) -> LedgerResult<InclusionProof> {
        let (transfer, _) = self
            .store
            .get_transfer(id)
            .await?
            .ok_or(LedgerError::NotFound("transfer"))?;
        let leaf = self
            .store
            .leaf_index(LeafKind::Transfer, &id.to_string())
            .await?
            .ok_or(LedgerError::NotFound("transfer"))?;
        let checkpoint = match at {
            Some(size) => self
                .store
                .get_checkpoint(size)
                .await?
                .ok_or(LedgerError::NotFound("checkpoint"))?,
            None => match self.store.list_checkpoints(1).await?.into_iter().next() {
                Some(c) if c.tree_size > leaf => c,
                _ => self.checkpoint().await?,
            },
        };
        if checkpoint.tree_size <= leaf {
            return Err(LedgerError::Invalid(format!(
                "the checkpoint of size {} was signed before this transfer (leaf {leaf})",
                checkpoint.tree_size
            )));
        }
        let proof = self
            .assemble(&inclusion_plan(leaf, checkpoint.tree_size)?)
            .await?;
        let bytes = encoding::transfer_bytes(&transfer);
        Ok(InclusionProof {
            leaf_index: leaf,
            tree_size: checkpoint.tree_size,
            transfer: TransferRecord::from(&transfer),
            leaf_hash: hex_hash(&hood_tlog::leaf_hash(&bytes)),
            leaf_bytes: hex::encode(bytes),
            proof: proof.iter().map(hex_hash).collect(),
            checkpoint: checkpoint.signed_note,
        })
    }

    /// That the tree of `to` leaves extends the tree of `from` leaves.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> LedgerResult<ConsistencyProof> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "`from` ({from}) must not be larger than `to` ({to})"
            )));
        }
        let from_root = self.root_at(from).await?;
        let to_root = self.root_at(to).await?;
        let proof = self.assemble(&consistency_plan(from, to)?).await?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: hex_hash(&from_root),
            to_root: hex_hash(&to_root),
            proof: proof.iter().map(hex_hash).collect(),
        })
    }
}
