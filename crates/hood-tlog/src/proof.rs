//! Inclusion and consistency proofs (RFC 6962 §2.1.1–2.1.2 to build them,
//! RFC 9162 §2.1.3.2 and §2.1.4.2 to check them).
//!
//! Building a proof is split in two so a log can fetch what it needs in one
//! query: a [`ProofPlan`] names, for each proof element, the stored perfect
//! subtrees that tile it; [`ProofPlan::assemble`] folds their hashes.

use crate::error::TlogError;
use crate::hash::{fold_right, largest_power_of_two_below, node_hash, Hash, NodeId};
use std::collections::BTreeSet;

/// The stored nodes behind each element of a proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    elements: Vec<Vec<NodeId>>,
}

impl ProofPlan {
    /// Every node the proof needs, each once.
    pub fn nodes(&self) -> Vec<NodeId> {
        let set: BTreeSet<NodeId> = self.elements.iter().flatten().copied().collect();
        set.into_iter().collect()
    }

    /// The number of hashes in the proof.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The proof, from the hashes of [`ProofPlan::nodes`].
    pub fn assemble(
        &self,
        lookup: impl Fn(NodeId) -> Option<Hash>,
    ) -> Result<Vec<Hash>, TlogError> {
        self.elements
            .iter()
            .map(|tiles| {
                let hashes = tiles
                    .iter()
                    .map(|n| lookup(*n).ok_or(TlogError::MissingNode(*n)))
                    .collect::<Result<Vec<Hash>, TlogError>>()?;
                fold_right(&hashes).ok_or(TlogError::BadProof("empty proof element"))
            })
            .collect()
    }
}

/// The plan of `PATH(index, D[size])`: the audit path of one leaf.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, TlogError> {
    if index >= size {
        return Err(TlogError::LeafOutOfRange { index, size });
    }
    let mut elements = Vec::new();
    path(index, 0, size, &mut elements);
    Ok(ProofPlan { elements })
}

/// RFC 6962 `PATH(m, D[lo..lo+n])`, elements appended leaf-side first.
fn path(m: u64, lo: u64, n: u64, out: &mut Vec<Vec<NodeId>>) {
    if n <= 1 {
        return;
    }
    let k = largest_power_of_two_below(n);
    if m < k {
        path(m, lo, k, out);
        out.push(NodeId::tiling(lo + k, lo + n));
    } else {
        path(m - k, lo + k, n - k, out);
        out.push(NodeId::tiling(lo, lo + k));
    }
}

/// The plan of `PROOF(first, D[second])`: that the tree of `second`
/// leaves extends the tree of `first`. Empty when `first` is 0 or equal.
pub fn consistency_plan(first: u64, second: u64) -> Result<ProofPlan, TlogError> {
    if first > second {
        return Err(TlogError::SizesOutOfOrder { first, second });
    }
    let mut elements = Vec::new();
    if first > 0 && first < second {
        subproof(first, 0, second, true, &mut elements);
    }
    Ok(ProofPlan { elements })
}

/// RFC 6962 `SUBPROOF(m, D[lo..lo+n], b)`.
fn subproof(m: u64, lo: u64, n: u64, whole: bool, out: &mut Vec<Vec<NodeId>>) {
    if m == n {
        if !whole {
            out.push(NodeId::tiling(lo, lo + n));
        }
        return;
    }
    let k = largest_power_of_two_below(n);
    if m <= k {
        subproof(m, lo, k, whole, out);
        out.push(NodeId::tiling(lo + k, lo + n));
    } else {
        subproof(m - k, lo + k, n - k, false, out);
        out.push(NodeId::tiling(lo, lo + k));
    }
}

/// The root that an audit path leads to from a leaf (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, TlogError> {
    if index >= size {
        return Err(TlogError::LeafOutOfRange { index, size });
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(TlogError::BadProof("inclusion proof too long"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(TlogError::BadProof("inclusion proof too short"));
    }
    Ok(r)
}

/// Checks that `leaf` is leaf `index` of the tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TlogError> {
    if root_from_inclusion_proof(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(TlogError::BadProof("inclusion proof leads to another root"))
    }
}

/// Checks that the tree of `second` leaves (root `second_root`) extends the
/// tree of `first` leaves (root `first_root`) (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), TlogError> {
    if first > second {
        return Err(TlogError::SizesOutOfOrder { first, second });
    }
    if first == second || first == 0 {
        if !proof.is_empty() {
            return Err(TlogError::BadProof("consistency proof should be empty"));
        }
        if first == second && first_root != second_root {
            return Err(TlogError::BadProof("same size, different roots"));
        }
        if first == 0 && *first_root != crate::hash::empty_root() {
            return Err(TlogError::BadProof("an empty tree has the empty root"));
        }
        return Ok(());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((head, rest)) = path.split_first() else {
        return Err(TlogError::BadProof("consistency proof is empty"));
    };
    let mut f = first - 1;
    let mut s = second - 1;
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = *head;
    let mut sr = *head;
    for c in rest {
        if s == 0 {
            return Err(TlogError::BadProof("consistency proof too long"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(TlogError::BadProof("consistency proof too short"));
    }
    if fr != *first_root {
        return Err(TlogError::BadProof(
            "consistency proof misses the first root",
        ));
    }
    if sr != *second_root {
        return Err(TlogError::BadProof(
            "consistency proof misses the second root",
        ));
    }
    Ok(())
}
