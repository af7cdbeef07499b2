//! The registry log: an append-only Merkle log in Warg v1's in-order node
//! numbering, with inclusion and consistency proofs.
//!
//! Two logs in memory: [`VecLog`] holds every node (two hashes per leaf);
//! [`TiledLog`] holds only the nodes above 256-leaf chunks and the last
//! incomplete chunk, and rebuilds the rest from a [`ChunkSource`].

mod bundle;
mod node;
mod proof;
pub mod rfc9162;
mod tiled;
mod tiles;

pub use bundle::{BundleError, LogProofBundle, SparseLogData};
pub use node::{Node, MAX_LOG_LENGTH};
pub use proof::{ConsistencyProof, InclusionProof, ProofError};
pub use tiled::{ChunkSource, NoChunks, Sourced, TiledLog, CHUNK_HEIGHT, CHUNK_LEAVES};
pub use tiles::{
    bundle_bytes, format_index, tile_bytes, width_at, Tile, TileError, TileKind, MAX_LEVEL,
    TILE_WIDTH,
};

use crate::hash::{hash_branch, Hash};

/// Anything that can hand out the hashes of log nodes: an in-memory log, a
/// storage layer, or the hashes carried by a proof bundle.
pub trait LogData {
    /// The hash of `node`, if known.
    fn hash_for(&self, node: Node) -> Option<Hash>;
}

/// The root of an empty log: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Hash::of([])
}

/// Folds balanced-subtree roots (left to right) into a log root, as Warg v1
/// does: `b0 ⊕ (b1 ⊕ (b2 ⊕ …))`. An empty list gives [`empty_root`].
pub fn fold_broots(broots: impl DoubleEndedIterator<Item = Hash>) -> Hash {
    broots
        .rev()
        .reduce(|right, left| hash_branch(&left, &right))
        .unwrap_or_else(empty_root)
}

/// A log held in memory: one hash per in-order node (64 bytes per leaf;
/// see [`TiledLog`] for a log that keeps a fraction of that).
#[derive(Clone, Debug, Default)]
pub struct VecLog {
    hashes: Vec<Hash>,
    length: u64,
}

impl VecLog {
    /// An empty log.
    pub fn new() -> VecLog {
        VecLog::default()
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// True when no leaf was appended.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Appends a leaf by its leaf hash and returns its node.
    pub fn push(&mut self, leaf_hash: Hash) -> Node {
        let leaf = Node::leaf(self.length);
        self.length += 1;
        let end = leaf.index() as usize + 1;
        self.hashes.resize(end, Hash::default());
        self.hashes[leaf.index() as usize] = leaf_hash;
        let mut node = leaf;
        let mut hash = leaf_hash;
        while !node.is_left() {
            let left = self.hashes[node.sibling().index() as usize];
            hash = hash_branch(&left, &hash);
            node = node.parent();
            self.hashes[node.index() as usize] = hash;
        }
        leaf
    }

    /// Bytes of heap memory the log holds (its vector's capacity).
    pub fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * std::mem::size_of::<Hash>()
    }

    /// The root of the whole log.
    pub fn root(&self) -> Hash {
        self.root_at(self.length).unwrap_or_else(empty_root)
    }

    /// The root the log had when it was `length` leaves long.
    pub fn root_at(&self, length: u64) -> Option<Hash> {
        if length > self.length {
            return None;
        }
        Some(fold_broots(
            Node::broots(length)
                .into_iter()
                .map(|n| self.hashes[n.index() as usize]),
        ))
    }
}

impl LogData for VecLog {
    fn hash_for(&self, node: Node) -> Option<Hash> {
        if node.exists_at_length(self.length) {
            self.hashes
                .get(usize::try_from(node.index()).ok()?)
                .copied()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;

    fn reference_root(leaves: &[Hash]) -> Hash {
        // RFC 6962-style recursive definition over the largest power of two.
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                hash_branch(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition() {
        let mut log = VecLog::new();
        let mut leaves = Vec::new();
        assert_eq!(log.root(), empty_root());
        for i in 0..70u32 {
            let h = hash_leaf(&i.to_be_bytes());
            leaves.push(h);
            log.push(h);
            assert_eq!(log.root(), reference_root(&leaves), "length {}", i + 1);
        }
        for len in 0..=70 {
            assert_eq!(
                log.root_at(len),
                Some(reference_root(&leaves[..len as usize]))
            );
        }
        assert_eq!(log.root_at(71), None);
    }
}
