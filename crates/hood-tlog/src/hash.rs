//! RFC 6962 hashing, and the names of perfect subtrees.

use sha2::{Digest, Sha256};

pub const HASH_LEN: usize = 32;

/// A SHA-256 digest.
pub type Hash = [u8; HASH_LEN];

/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The root over leaf hashes, by RFC 6962's definition (recursive split at
/// the largest power of two below the size). The reference that the
/// incremental code is tested against, and what a full audit recomputes.
pub fn merkle_tree_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(
                &merkle_tree_hash(&leaves[..k]),
                &merkle_tree_hash(&leaves[k..]),
            )
        }
    }
}

/// The largest power of two strictly below `n` (`n >= 2`).
pub(crate) fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A perfect subtree: the `2^level` leaves from `index << level` on. Level 0
/// is a leaf. Its hash never changes once the log has grown past it, which
/// is why these (and only these) are what a log stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    level: u8,
    index: u64,
}

impl NodeId {
    /// `level` is at most 63.
    pub fn new(level: u8, index: u64) -> Self {
        debug_assert!(level < 64);
        Self { level, index }
    }

    pub fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// The first leaf it covers.
    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// The number of leaves it covers.
    pub fn width(&self) -> u64 {
        1 << self.level
    }

    /// Its two children (none for a leaf).
    pub fn children(&self) -> Option<(NodeId, NodeId)> {
        (self.level > 0).then(|| {
            (
                NodeId::new(self.level - 1, self.index * 2),
                NodeId::new(self.level - 1, self.index * 2 + 1),
            )
        })
    }

    /// The perfect subtrees that tile the leaves `[start, end)`, largest
    /// first. Exact when `start` is aligned to the largest power of two not
    /// above `end - start`, which every RFC 6962 decomposition guarantees.
    pub(crate) fn tiling(start: u64, end: u64) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let left = end - at;
            let mut level = 63 - left.leading_zeros();
            // Never cross an alignment boundary (only matters for callers
            // that pass unaligned ranges).
            while level > 0 && !at.is_multiple_of(1 << level) {
                level -= 1;
            }
            out.push(NodeId::new(level as u8, at >> level));
            at += 1 << level;
        }
        out
    }
}

/// The hash of a range that is tiled by `nodes` (largest first): the last
/// two fold right to left, as RFC 6962's recursion does for a right edge.
pub(crate) fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_power_below() {
        assert_eq!(largest_power_of_two_below(2), 1);
        assert_eq!(largest_power_of_two_below(3), 2);
        assert_eq!(largest_power_of_two_below(4), 2);
        assert_eq!(largest_power_of_two_below(5), 4);
        assert_eq!(largest_power_of_two_below(u64::MAX), 1 << 63);
    }

    #[test]
    fn tiling_follows_the_binary_digits_of_the_width() {
        assert_eq!(
            NodeId::tiling(0, 7),
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        assert_eq!(NodeId::tiling(8, 16), vec![NodeId::new(3, 1)]);
        assert_eq!(NodeId::tiling(4, 4), vec![]);
        // Unaligned: still a tiling, of smaller pieces.
        assert_eq!(
            NodeId::tiling(1, 4),
            vec![NodeId::new(0, 1), NodeId::new(1, 1)]
        );
    }

    #[test]
    fn a_node_covers_its_leaves() {
        let n = NodeId::new(3, 2);
        assert_eq!(n.first_leaf(), 16);
        assert_eq!(n.width(), 8);
        assert_eq!(n.children(), Some((NodeId::new(2, 4), NodeId::new(2, 5))));
        assert_eq!(NodeId::leaf(9).children(), None);
    }
}
