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

mod error;
mod frontier;
mod hash;
mod note;
mod proof;

pub use error::TlogError;
pub use frontier::Frontier;
pub use hash::{empty_root, leaf_hash, merkle_tree_hash, node_hash, Hash, NodeId, HASH_LEN};
pub use note::{Checkpoint, NoteSignature, NoteSigner, NoteVerifier};
pub use proof::{
    consistency_plan, inclusion_plan, root_from_inclusion_proof, verify_consistency,
    verify_inclusion, ProofPlan,
};
