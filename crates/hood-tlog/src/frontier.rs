//! The right edge of a growing tree: all an appender needs.

use crate::error::TlogError;
use crate::hash::{empty_root, fold_right, node_hash, Hash, NodeId};

/// The hashes of the perfect subtrees that tile a tree of `size` leaves,
/// largest first: one per set bit of `size`. Appending a leaf completes
/// zero or more larger subtrees (a binary carry); the root is their fold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subtrees a frontier of `size` holds, largest first.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        NodeId::tiling(0, size)
    }

    /// Rebuilds a frontier from its size and hashes (as stored).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, TlogError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(TlogError::FrontierShape {
                size,
                expected: size.count_ones(),
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's subtrees and their hashes, largest first.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        Self::node_ids(self.size)
            .into_iter()
            .zip(self.hashes.iter().copied())
    }

    /// Appends a leaf hash. Returns the interior nodes (level ≥ 1) this
    /// append completed, smallest first: a log stores them for proofs.
    pub fn append(&mut self, leaf: Hash) -> Result<Vec<(NodeId, Hash)>, TlogError> {
        let index = self.size;
        let size = index.checked_add(1).ok_or(TlogError::Full)?;
        let mut completed = Vec::new();
        let mut carry = (NodeId::leaf(index), leaf);
        // Each trailing one bit of the old size is a subtree of the same
        // width as the carry, just to its left: merge them.
        let mut bits = index;
        while bits & 1 == 1 {
            // The frontier holds one hash per set bit, so this pop succeeds.
            let Some(left) = self.hashes.pop() else {
                return Err(TlogError::FrontierShape {
                    size: self.size,
                    expected: self.size.count_ones(),
                    got: 0,
                });
            };
            let (node, right) = carry;
            let parent = NodeId::new(node.level() + 1, node.index() / 2);
            let hash = node_hash(&left, &right);
            completed.push((parent, hash));
            carry = (parent, hash);
            bits >>= 1;
        }
        self.hashes.push(carry.1);
        self.size = size;
        Ok(completed)
    }

    /// The tree's root hash (RFC 6962 `MTH`).
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes).unwrap_or_else(empty_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{leaf_hash, merkle_tree_hash};

    #[test]
    fn appending_matches_the_reference_root_at_every_size() {
        let mut f = Frontier::new();
        let mut leaves = Vec::new();
        assert_eq!(f.root(), empty_root());
        for i in 0..100u32 {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            f.append(l).unwrap();
            assert_eq!(f.size(), leaves.len() as u64);
            assert_eq!(f.root(), merkle_tree_hash(&leaves), "size {}", leaves.len());
        }
    }

    #[test]
    fn completed_nodes_are_the_perfect_subtrees() {
        let mut f = Frontier::new();
        let leaves: Vec<Hash> = (0..8u8).map(|i| leaf_hash(&[i])).collect();
        let mut all = Vec::new();
        for l in &leaves {
            all.extend(f.append(*l).unwrap());
        }
        // 4 + 2 + 1 interior nodes of an 8-leaf tree.
        assert_eq!(all.len(), 7);
        for (node, hash) in all {
            let first = node.first_leaf() as usize;
            let width = node.width() as usize;
            assert_eq!(hash, merkle_tree_hash(&leaves[first..first + width]));
        }
    }

    #[test]
    fn a_frontier_survives_its_stored_form() {
        let mut f = Frontier::new();
        for i in 0..13u8 {
            f.append(leaf_hash(&[i])).unwrap();
        }
        let ids: Vec<NodeId> = f.nodes().map(|(n, _)| n).collect();
        assert_eq!(ids, Frontier::node_ids(13));
        let hashes = f.nodes().map(|(_, h)| h).collect();
        let back = Frontier::from_parts(13, hashes).unwrap();
        assert_eq!(back, f);
        assert!(Frontier::from_parts(13, vec![[0; 32]]).is_err());
    }
}
