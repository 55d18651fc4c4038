//! A transparency log's arithmetic, with no storage of its own.
//!
//! The tree is RFC 6962's (and RFC 9162's): leaves hash as
//! `SHA-256(0x00 ‖ data)`, interior nodes as `SHA-256(0x01 ‖ left ‖ right)`,
//! and a tree of any size splits at the largest power of two below it. A
//! log stores the hash of every *perfect* subtree once it is complete
//! ([`NodeId`]); any proof, for any tree size, is then a fold over stored
//! nodes ([`ProofPlan`]). Appending needs only the [`Frontier`]: one hash per
//! set bit of the size.
//!
//! Checkpoints follow C2SP's `tlog-checkpoint` and travel as C2SP signed
//! notes with Ed25519 keys, so the Go tooling of the Certificate
//! Transparency ecosystem (and a few lines of any Ed25519 library) can
//! check them with nothing but the verifier key.

mod frontier;
mod hash;
mod note;
mod proof;

pub use frontier::Frontier;
pub use hash::{empty_root, leaf_hash, merkle_tree_hash, node_hash, Hash, NodeId, HASH_LEN};
pub use note::{Checkpoint, NoteSignature, NoteSigner, NoteVerifier};
pub use proof::{
    consistency_plan, inclusion_plan, root_from_inclusion_proof, verify_consistency,
    verify_inclusion, ProofPlan,
};

/// What the log's arithmetic refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogError {
    #[error("leaf {index} is not in a tree of size {size}")]
    LeafOutOfRange { index: u64, size: u64 },
    #[error("tree size {first} is larger than {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("a frontier of size {size} holds {expected} hashes, not {got}")]
    FrontierShape {
        size: u64,
        expected: u32,
        got: usize,
    },
    #[error("the log is full")]
    Full,
    #[error("node {0:?} is missing")]
    MissingNode(NodeId),
    #[error("the proof does not verify: {0}")]
    BadProof(&'static str),
    #[error("malformed note: {0}")]
    MalformedNote(String),
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("no valid signature by {0}")]
    Unsigned(String),
}
