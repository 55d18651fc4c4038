//! What the log's arithmetic refuses.

use crate::hash::NodeId;

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
