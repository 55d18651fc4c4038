//! The published RFC 6962 test vectors (the Certificate Transparency
//! reference implementation's eight-leaf tree), and properties over logs
//! built the way a store builds them: leaves plus the nodes each append
//! completes, nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hood_tlog::{
    consistency_plan, empty_root, inclusion_plan, leaf_hash, merkle_tree_hash,
    root_from_inclusion_proof, verify_consistency, verify_inclusion, Frontier, Hash, NodeId,
};
use proptest::prelude::*;
use std::collections::HashMap;

const INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// A log as a store keeps it: every leaf and every completed node.
struct Log {
    frontier: Frontier,
    nodes: HashMap<NodeId, Hash>,
    roots: Vec<Hash>,
}

impl Log {
    fn new() -> Self {
        Self {
            frontier: Frontier::new(),
            nodes: HashMap::new(),
            roots: vec![empty_root()],
        }
    }

    fn append(&mut self, data: &[u8]) {
        let leaf = leaf_hash(data);
        self.nodes.insert(NodeId::leaf(self.frontier.size()), leaf);
        for (node, hash) in self.frontier.append(leaf).unwrap() {
            assert!(self.nodes.insert(node, hash).is_none(), "{node:?} twice");
        }
        self.roots.push(self.frontier.root());
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        inclusion_plan(index, size)
            .unwrap()
            .assemble(|n| self.nodes.get(&n).copied())
            .unwrap()
    }

    fn consistency(&self, first: u64, second: u64) -> Vec<Hash> {
        consistency_plan(first, second)
            .unwrap()
            .assemble(|n| self.nodes.get(&n).copied())
            .unwrap()
    }
}

fn reference_log() -> Log {
    let mut log = Log::new();
    for input in INPUTS {
        log.append(&hex::decode(input).unwrap());
    }
    log
}

#[test]
fn roots_match_the_published_vectors() {
    let log = reference_log();
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(log.roots[size + 1]), *root, "size {}", size + 1);
    }
}

#[test]
fn inclusion_proofs_match_the_published_vectors() {
    let log = reference_log();
    let cases: &[(u64, u64, &[&str])] = &[
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, want) in cases {
        let proof = log.inclusion(*index, *size);
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(proof, want, "leaf {index} of {size}");
        let leaf = leaf_hash(&hex::decode(INPUTS[*index as usize]).unwrap());
        verify_inclusion(*index, *size, &leaf, &proof, &h(ROOTS[*size as usize - 1])).unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_published_vectors() {
    let log = reference_log();
    let cases: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (first, second, want) in cases {
        let proof = log.consistency(*first, *second);
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(proof, want, "{first} → {second}");
        verify_consistency(
            *first,
            *second,
            &h(ROOTS[*first as usize - 1]),
            &h(ROOTS[*second as usize - 1]),
            &proof,
        )
        .unwrap();
    }
}

#[test]
fn out_of_range_requests_are_errors_not_panics() {
    assert!(inclusion_plan(3, 3).is_err());
    assert!(consistency_plan(4, 3).is_err());
    assert!(root_from_inclusion_proof(9, 8, &[0; 32], &[]).is_err());
    assert!(verify_consistency(0, 5, &empty_root(), &[1; 32], &[]).is_ok());
    assert!(verify_consistency(0, 5, &[1; 32], &[1; 32], &[]).is_err());
}

fn log_of(n: u64) -> Log {
    let mut log = Log::new();
    for i in 0..n {
        log.append(&i.to_be_bytes());
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_inclusion_proof_verifies_and_a_flipped_bit_does_not(
        size in 1u64..300, pick in any::<u64>(), flip in any::<(usize, u8)>()
    ) {
        let log = log_of(size);
        let index = pick % size;
        let root = log.roots[size as usize];
        let leaf = leaf_hash(&index.to_be_bytes());
        let mut proof = log.inclusion(index, size);
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_ok());
        // The same leaf claimed at another index fails.
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
        }
        if !proof.is_empty() {
            let (i, bit) = flip;
            let i = i % proof.len();
            proof[i][(bit % 32) as usize] ^= 1;
            prop_assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_err());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_rewritten_leaf_does_not(
        second in 1u64..300, pick in any::<u64>(), victim in any::<u64>()
    ) {
        let log = log_of(second);
        let first = pick % (second + 1);
        let proof = log.consistency(first, second);
        let (r1, r2) = (log.roots[first as usize], log.roots[second as usize]);
        prop_assert!(verify_consistency(first, second, &r1, &r2, &proof).is_ok());
        // A log that rewrote one of the first `first` leaves is caught.
        if first > 0 && first < second {
            let mut forged = Log::new();
            let bad = victim % first;
            for i in 0..second {
                if i == bad {
                    forged.append(b"rewritten");
                } else {
                    forged.append(&i.to_be_bytes());
                }
            }
            let forged_proof = forged.consistency(first, second);
            let forged_root = forged.roots[second as usize];
            prop_assert!(verify_consistency(first, second, &r1, &forged_root, &forged_proof).is_err());
        }
    }

    #[test]
    fn the_frontier_root_is_the_reference_root(leaves in proptest::collection::vec(any::<[u8; 8]>(), 0..200)) {
        let mut f = Frontier::new();
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        for h in &hashes {
            f.append(*h).unwrap();
        }
        prop_assert_eq!(f.root(), merkle_tree_hash(&hashes));
    }
}
