//! Inclusion and consistency proofs as RFC 9162 (RFC 6962's successor)
//! writes them: a list of hashes, deepest first. This is the form the C2SP
//! formats carry (a witness's `add-checkpoint` request, an offline
//! `tlog-proof`), where Warg's bundles carry nodes by index. The tree is the
//! same; proofs are made from any [`LogData`] that answers the nodes they
//! need and checked with no log at all.

use thiserror::Error;

use super::{fold_broots, LogData, Node};
use crate::hash::{hash_branch, Hash};

/// Why a proof could not be made or did not verify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RfcProofError {
    /// The sizes or index do not make a proof (an index past the tree, a
    /// smaller new tree, an old tree of no leaves).
    #[error("no such proof: {0}")]
    Arguments(&'static str),
    /// The log lacks a node the proof needs.
    #[error("the log lacks node {0}")]
    MissingNode(u64),
    /// The proof's hashes do not lead to the roots.
    #[error("the proof does not verify: {0}")]
    Invalid(&'static str),
}

/// The node over the `2^height` leaves from `start` (a multiple of it).
fn node_at(start: u64, height: u32) -> Node {
    Node(2 * start + (1u64 << height) - 1)
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The root of the leaves `start..start + len`, where `start` is a multiple
/// of the largest power of two not above `len` (as every range of a proof
/// is): its balanced subtrees, folded.
fn range_root(data: &impl LogData, start: u64, len: u64) -> Result<Hash, RfcProofError> {
    let mut hashes = Vec::new();
    let mut at = start;
    for height in (0..64).rev() {
        if len & (1u64 << height) != 0 {
            let node = node_at(at, height);
            hashes.push(
                data.hash_for(node)
                    .ok_or(RfcProofError::MissingNode(node.index()))?,
            );
            at += 1u64 << height;
        }
    }
    Ok(fold_broots(hashes.into_iter()))
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1, `PATH`).
pub fn inclusion_proof(
    data: &impl LogData,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, RfcProofError> {
    if index >= size {
        return Err(RfcProofError::Arguments("the index is past the tree"));
    }
    let mut path = Vec::new();
    let (mut start, mut len, mut m) = (0u64, size, index);
    // Walk down from the root, noting the sibling range at each split;
    // the proof lists them from the leaf up.
    while len > 1 {
        let k = split(len);
        if m < k {
            path.push(range_root(data, start + k, len - k)?);
            len = k;
        } else {
            path.push(range_root(data, start, k)?);
            start += k;
            len -= k;
            m -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof from the tree of `old` leaves to that of `new`
/// (RFC 9162 §2.1.4.1, `PROOF`); empty when they are equal.
pub fn consistency_proof(
    data: &impl LogData,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, RfcProofError> {
    if old == 0 || old > new {
        return Err(RfcProofError::Arguments(
            "consistency needs 0 < old size <= new size",
        ));
    }
    let mut proof = Vec::new();
    let (mut start, mut len, mut m, mut whole) = (0u64, new, old, true);
    loop {
        if m == len {
            if !whole {
                proof.push(range_root(data, start, len)?);
            }
            break;
        }
        let k = split(len);
        if m <= k {
            proof.push(range_root(data, start + k, len - k)?);
            len = k;
        } else {
            proof.push(range_root(data, start, k)?);
            start += k;
            len -= k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// One step of an inclusion proof's walk from the leaf to the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InclusionStep {
    /// The sibling hash the proof gives.
    pub sibling: Hash,
    /// Whether the sibling is on the left.
    pub sibling_left: bool,
    /// The hash of the node above both.
    pub result: Hash,
}

/// Walks the inclusion proof of leaf `index` of the tree of `size` leaves
/// from `leaf` (a leaf hash), as RFC 9162 §2.1.3.2 does: each step, the
/// last of which gives the root (no step: the leaf is the root).
pub fn inclusion_steps(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Vec<InclusionStep>, RfcProofError> {
    if index >= size {
        return Err(RfcProofError::Arguments("the index is past the tree"));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    let mut steps = Vec::with_capacity(proof.len());
    for p in proof {
        if s == 0 {
            return Err(RfcProofError::Invalid("the proof is too long"));
        }
        let sibling_left = f & 1 == 1 || f == s;
        if sibling_left {
            r = hash_branch(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = hash_branch(&r, p);
        }
        f >>= 1;
        s >>= 1;
        steps.push(InclusionStep {
            sibling: *p,
            sibling_left,
            result: r,
        });
    }
    if s != 0 {
        return Err(RfcProofError::Invalid("the proof is too short"));
    }
    Ok(steps)
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    root: &Hash,
    proof: &[Hash],
) -> Result<(), RfcProofError> {
    let steps = inclusion_steps(index, size, leaf, proof)?;
    if steps.last().map_or(*leaf, |s| s.result) != *root {
        return Err(RfcProofError::Invalid("it leads to another root"));
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of
/// the tree of `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), RfcProofError> {
    if old == 0 || old > new {
        return Err(RfcProofError::Arguments(
            "consistency needs 0 < old size <= new size",
        ));
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(RfcProofError::Invalid(
                "equal sizes need equal roots and no hashes",
            ))
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(RfcProofError::Invalid("the proof is empty"));
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return Err(RfcProofError::Invalid("the proof is too long"));
        }
        if f & 1 == 1 || f == s {
            fr = hash_branch(c, &fr);
            sr = hash_branch(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = hash_branch(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(RfcProofError::Invalid("the proof is too short"));
    }
    if fr != *old_root || sr != *new_root {
        return Err(RfcProofError::Invalid("it leads to other roots"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::{TiledLog, VecLog};

    fn log(n: u64) -> (VecLog, Vec<Hash>) {
        let mut log = VecLog::new();
        let mut roots = vec![Hash::default()];
        for i in 0..n {
            log.push(hash_leaf(&i.to_le_bytes()));
            roots.push(log.root());
        }
        (log, roots)
    }

    #[test]
    fn every_inclusion_and_consistency_proof_of_small_trees_verifies() {
        let (log, roots) = log(70);
        for size in 1..=70u64 {
            for index in 0..size {
                let proof = inclusion_proof(&log, index, size).expect("proof");
                let leaf = hash_leaf(&index.to_le_bytes());
                verify_inclusion(index, size, &leaf, &roots[size as usize], &proof)
                    .expect("verifies");
                // Another leaf, root, index or a changed hash fails.
                let other = hash_leaf(b"other");
                assert!(
                    verify_inclusion(index, size, &other, &roots[size as usize], &proof).is_err()
                );
                if size > 1 {
                    assert!(verify_inclusion(
                        (index + 1) % size,
                        size,
                        &leaf,
                        &roots[size as usize],
                        &proof
                    )
                    .is_err());
                }
            }
            for old in 1..=size {
                let proof = consistency_proof(&log, old, size).expect("proof");
                verify_consistency(
                    old,
                    size,
                    &roots[old as usize],
                    &roots[size as usize],
                    &proof,
                )
                .expect("verifies");
                if old < size {
                    let wrong = roots[old as usize - 1];
                    assert!(
                        verify_consistency(old, size, &wrong, &roots[size as usize], &proof)
                            .is_err()
                    );
                    let mut bent = proof.clone();
                    if let Some(h) = bent.last_mut() {
                        *h = hash_leaf(b"bent");
                    }
                    assert!(verify_consistency(
                        old,
                        size,
                        &roots[old as usize],
                        &roots[size as usize],
                        &bent
                    )
                    .is_err());
                    assert!(verify_consistency(
                        old,
                        size,
                        &roots[old as usize],
                        &roots[size as usize],
                        &proof[..proof.len() - 1]
                    )
                    .is_err());
                }
            }
        }
        assert!(consistency_proof(&log, 0, 5).is_err());
        assert!(consistency_proof(&log, 6, 5).is_err());
        assert!(inclusion_proof(&log, 5, 5).is_err());
    }

    #[test]
    fn proofs_over_a_tiled_log_need_only_its_upper_nodes_at_chunk_edges() {
        let (full, roots) = log(1_000);
        let mut tiled = TiledLog::new();
        for i in 0..1_000u64 {
            tiled.push(hash_leaf(&i.to_le_bytes()));
        }
        // Sizes on chunk boundaries need no chunk's leaves.
        let proof = consistency_proof(&tiled, 512, 768).expect("from memory");
        assert_eq!(proof, consistency_proof(&full, 512, 768).expect("proof"));
        verify_consistency(512, 768, &roots[512], &roots[768], &proof).expect("verifies");
        // Elsewhere, a missing node is named.
        assert!(matches!(
            consistency_proof(&tiled, 3, 768),
            Err(RfcProofError::MissingNode(_))
        ));
    }
}
