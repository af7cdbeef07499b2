//! [`TiledLog`]: the registry log with only the top of the tree in memory.
//!
//! The leaves are cut into chunks of [`CHUNK_LEAVES`] (256). A complete
//! chunk is a balanced subtree of height [`CHUNK_HEIGHT`] (8); the log keeps
//! the hash of every complete chunk and of every node above them, and every
//! node of the last, incomplete chunk. That is about one hash per 128
//! leaves (0.25 bytes per leaf) instead of two per leaf.
//!
//! A node below height 8 inside a complete chunk is not kept: it is
//! rebuilt from the chunk's 256 leaf hashes, which a [`ChunkSource`] hands
//! out (a store reading the chunk's leaves, or the leaves in memory). The
//! rebuilt chunk must hash to the chunk hash the log holds, so a source
//! that hands out wrong leaves makes a hash missing, never a wrong proof.
//!
//! Node numbering, roots and proofs are those of [`VecLog`]: for any log,
//! [`TiledLog::with_source`] answers every node exactly as a `VecLog` of the
//! same leaves does.

use std::cell::RefCell;

use super::{fold_broots, ConsistencyProof, InclusionProof, LogData, Node, ProofError, VecLog};
use crate::hash::{hash_branch, Hash};
use crate::lanes::hash_branches;

/// Height of a chunk: a complete chunk is a balanced subtree of this height.
pub const CHUNK_HEIGHT: u32 = 8;

/// Leaves per chunk (`2^CHUNK_HEIGHT`).
pub const CHUNK_LEAVES: u64 = 1 << CHUNK_HEIGHT;

/// In-order node indexes per chunk: a chunk's subtree takes `2 * 256 - 1`
/// of them, and the next index is the node above.
const CHUNK_SPAN: u64 = 2 * CHUNK_LEAVES;

/// Nodes of a complete chunk's subtree, numbered in-order within it.
const CHUNK_NODES: usize = 2 * CHUNK_LEAVES as usize - 1;

/// Hands out the leaf hashes of complete chunks.
pub trait ChunkSource {
    /// The [`CHUNK_LEAVES`] leaf hashes of chunk `index` (leaves
    /// `256 * index` to `256 * index + 255`), in order; `None` when they
    /// cannot be had.
    fn chunk(&self, index: u64) -> Option<Vec<Hash>>;
}

/// A source of no chunks: for callers that only need nodes the log holds
/// in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoChunks;

impl ChunkSource for NoChunks {
    fn chunk(&self, _index: u64) -> Option<Vec<Hash>> {
        None
    }
}

impl<S: ChunkSource + ?Sized> ChunkSource for &S {
    fn chunk(&self, index: u64) -> Option<Vec<Hash>> {
        (**self).chunk(index)
    }
}

/// An append-only Merkle log that keeps only the nodes of height
/// [`CHUNK_HEIGHT`] and above, plus the last incomplete chunk, in memory.
/// As a [`LogData`] it answers those nodes only; [`TiledLog::with_source`]
/// answers every node.
#[derive(Clone, Debug, Default)]
pub struct TiledLog {
    /// The chunk hashes as the leaves of a log: node `u` of height `g`
    /// there is node `((u + 1) << 8) - 1`, of height `g + 8`, here.
    chunks: VecLog,
    /// The nodes of the incomplete last chunk, numbered in-order within it.
    tail: Vec<Hash>,
    /// The number of leaves in the incomplete last chunk (under 256).
    tail_length: u64,
}

/// Where a node's hash is found.
enum Place {
    /// Not in the log (yet).
    Absent,
    /// Height 8 or more: this node of the chunk log.
    Upper(Node),
    /// In the incomplete last chunk, at this node of it.
    Tail(Node),
    /// Below height 8 in complete chunk `.0`, at node `.1` of it.
    Chunk(u64, Node),
}

/// Appends `leaf` as leaf `length` of the in-order `nodes` of a log (as
/// [`VecLog::push`] does).
fn append(nodes: &mut Vec<Hash>, length: u64, leaf: Hash) {
    let mut node = Node::leaf(length);
    let at = node.index() as usize;
    nodes.resize(at + 1, Hash::default());
    nodes[at] = leaf;
    let mut hash = leaf;
    while !node.is_left() {
        hash = hash_branch(&nodes[node.sibling().index() as usize], &hash);
        node = node.parent();
        let at = node.index() as usize;
        if nodes.len() <= at {
            nodes.resize(at + 1, Hash::default());
        }
        nodes[at] = hash;
    }
}

/// Every node of a complete chunk, in-order, from its 256 leaf hashes; the
/// chunk's hash is node 255. Hashes two branches at a time.
fn build_chunk(leaves: &[Hash]) -> Vec<Hash> {
    let mut nodes = vec![Hash::default(); CHUNK_NODES];
    for (i, leaf) in leaves.iter().enumerate() {
        nodes[2 * i] = *leaf;
    }
    for height in 1..=CHUNK_HEIGHT {
        // Node k of this height is at k * 2^(h+1) + 2^h - 1; its children
        // are 2^(h-1) either side.
        let (step, first, half) = (
            1usize << (height + 1),
            (1usize << height) - 1,
            1usize << (height - 1),
        );
        let count = CHUNK_LEAVES as usize >> height;
        let mut k = 0;
        while k + 1 < count {
            let (a, b) = (first + k * step, first + (k + 1) * step);
            let [ha, hb] = hash_branches(
                [&nodes[a - half], &nodes[b - half]],
                [&nodes[a + half], &nodes[b + half]],
            );
            nodes[a] = ha;
            nodes[b] = hb;
            k += 2;
        }
        if k < count {
            let a = first + k * step;
            nodes[a] = hash_branch(&nodes[a - half], &nodes[a + half]);
        }
    }
    nodes
}

/// The root of `data` at `length`, from its balanced roots.
fn root_of(data: &impl LogData, length: u64) -> Option<Hash> {
    let broots = Node::broots(length)
        .into_iter()
        .map(|node| data.hash_for(node))
        .collect::<Option<Vec<_>>>()?;
    Some(fold_broots(broots.into_iter()))
}

impl TiledLog {
    /// An empty log.
    pub fn new() -> TiledLog {
        TiledLog::default()
    }

    /// A log of `roots.len() * 256` leaves, from the hashes of its chunks
    /// in order (as [`TiledLog::chunk_roots`] gives them); push the leaves
    /// after them to go on.
    pub fn from_chunks(roots: impl IntoIterator<Item = Hash>) -> TiledLog {
        let mut chunks = VecLog::new();
        for root in roots {
            chunks.push(root);
        }
        TiledLog {
            chunks,
            tail: Vec::new(),
            tail_length: 0,
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.chunks.len() * CHUNK_LEAVES + self.tail_length
    }

    /// True when no leaf was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of complete chunks (the leaves of the first
    /// `complete_chunks() * 256` are summed up by chunk hashes).
    pub fn complete_chunks(&self) -> u64 {
        self.chunks.len()
    }

    /// The hashes of the complete chunks among the first `upto` leaves
    /// (`upto / 256` of them, at most every complete chunk), in order: what
    /// [`TiledLog::from_chunks`] rebuilds the log from.
    pub fn chunk_roots(&self, upto: u64) -> Vec<Hash> {
        let count = (upto / CHUNK_LEAVES).min(self.chunks.len());
        (0..count)
            .filter_map(|i| self.chunks.hash_for(Node::leaf(i)))
            .collect()
    }

    /// Appends a leaf by its leaf hash and returns its node.
    pub fn push(&mut self, leaf_hash: Hash) -> Node {
        let leaf = Node::leaf(self.len());
        append(&mut self.tail, self.tail_length, leaf_hash);
        self.tail_length += 1;
        if self.tail_length == CHUNK_LEAVES {
            // Node 255 is the root of the first 256 leaves.
            let root = self.tail[(CHUNK_LEAVES - 1) as usize];
            self.chunks.push(root);
            self.tail.clear();
            self.tail_length = 0;
        }
        leaf
    }

    /// The root of the whole log (from memory alone).
    pub fn root(&self) -> Hash {
        root_of(self, self.len()).unwrap_or_else(super::empty_root)
    }

    /// The root the log had when it was `length` leaves long, from memory
    /// alone: `None` when `length` is beyond the log, or when it ends
    /// inside a complete chunk ([`TiledLog::root_chunk`]); then
    /// [`Sourced::root_at`] answers.
    pub fn root_at(&self, length: u64) -> Option<Hash> {
        if length > self.len() {
            return None;
        }
        root_of(self, length)
    }

    /// The complete chunk whose leaves the root at `length` needs: the one
    /// `length` ends inside, if it is complete (no chunk when `length` is a
    /// multiple of 256, or in the last, incomplete chunk).
    pub fn root_chunk(&self, length: u64) -> Option<u64> {
        let chunk = length / CHUNK_LEAVES;
        (!length.is_multiple_of(CHUNK_LEAVES) && chunk < self.chunks.len() && length <= self.len())
            .then_some(chunk)
    }

    /// The complete chunks whose leaves answering `nodes` needs, ascending,
    /// each once.
    pub fn chunks_for(&self, nodes: impl IntoIterator<Item = Node>) -> Vec<u64> {
        let mut chunks: Vec<u64> = nodes
            .into_iter()
            .filter_map(|node| match self.place(node) {
                Place::Chunk(chunk, _) => Some(chunk),
                _ => None,
            })
            .collect();
        chunks.sort_unstable();
        chunks.dedup();
        chunks
    }

    /// The complete chunks whose leaves evaluating or bundling these proofs
    /// needs (every node [`super::LogProofBundle::bundle`] asks for),
    /// ascending, each once: a caller can fetch them before it proves.
    pub fn chunks_for_proofs(
        &self,
        consistency: &[ConsistencyProof],
        inclusion: &[InclusionProof],
    ) -> Result<Vec<u64>, ProofError> {
        let mut nodes = Vec::new();
        for proof in consistency {
            for inner in proof.inclusions()? {
                nodes.extend(inner.nodes()?);
                nodes.push(inner.node);
            }
        }
        for proof in inclusion {
            nodes.extend(proof.nodes()?);
        }
        Ok(self.chunks_for(nodes))
    }

    /// Every node of the log: those below height 8 in complete chunks are
    /// rebuilt from the leaf hashes `source` gives.
    pub fn with_source<'a, S: ChunkSource + ?Sized>(&'a self, source: &'a S) -> Sourced<'a, S> {
        Sourced {
            log: self,
            source,
            rebuilt: RefCell::new(Vec::new()),
        }
    }

    /// Bytes of heap memory the log holds (its vectors' capacity).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.heap_bytes() + self.tail.capacity() * std::mem::size_of::<Hash>()
    }

    fn place(&self, node: Node) -> Place {
        if !node.exists_at_length(self.len()) {
            return Place::Absent;
        }
        let index = node.index();
        if node.height() >= CHUNK_HEIGHT {
            return Place::Upper(Node(((index + 1) >> CHUNK_HEIGHT) - 1));
        }
        let chunk = index / CHUNK_SPAN;
        let inner = Node(index % CHUNK_SPAN);
        if chunk < self.chunks.len() {
            Place::Chunk(chunk, inner)
        } else {
            Place::Tail(inner)
        }
    }

    /// The hash of complete chunk `chunk`.
    fn chunk_hash(&self, chunk: u64) -> Option<Hash> {
        self.chunks.hash_for(Node::leaf(chunk))
    }
}

impl LogData for TiledLog {
    /// The hash of `node` if the log holds it in memory (`None` below
    /// height 8 in complete chunks: see [`TiledLog::with_source`]).
    fn hash_for(&self, node: Node) -> Option<Hash> {
        match self.place(node) {
            Place::Upper(upper) => self.chunks.hash_for(upper),
            Place::Tail(inner) => self.tail.get(inner.index() as usize).copied(),
            Place::Absent | Place::Chunk(..) => None,
        }
    }
}

/// Chunks rebuilt by one [`Sourced`], at most this many at once (proofs
/// ask for their nodes in order, so they rarely go back to a chunk).
const REBUILT: usize = 4;

/// A [`TiledLog`] with a [`ChunkSource`]: a [`LogData`] of every node.
/// Keeps the last few chunks it rebuilt; make one per proof or batch of
/// proofs.
pub struct Sourced<'a, S: ?Sized> {
    log: &'a TiledLog,
    source: &'a S,
    /// Recently rebuilt chunks (`None`: the source had no good leaves).
    rebuilt: RefCell<Vec<(u64, Option<Vec<Hash>>)>>,
}

impl<S: ChunkSource + ?Sized> Sourced<'_, S> {
    /// The root the log had when it was `length` leaves long.
    pub fn root_at(&self, length: u64) -> Option<Hash> {
        if length > self.log.len() {
            return None;
        }
        root_of(self, length)
    }

    /// Node `inner` of complete chunk `chunk`, rebuilt from the source's
    /// leaves if they hash to the chunk's hash.
    fn chunk_node(&self, chunk: u64, inner: Node) -> Option<Hash> {
        let at = inner.index() as usize;
        let mut rebuilt = self.rebuilt.borrow_mut();
        if let Some((_, nodes)) = rebuilt.iter().find(|(c, _)| *c == chunk) {
            return nodes.as_ref().and_then(|n| n.get(at).copied());
        }
        let nodes = self
            .source
            .chunk(chunk)
            .filter(|leaves| leaves.len() as u64 == CHUNK_LEAVES)
            .map(|leaves| build_chunk(&leaves))
            .filter(|nodes| Some(nodes[(CHUNK_LEAVES - 1) as usize]) == self.log.chunk_hash(chunk));
        let hash = nodes.as_ref().and_then(|n| n.get(at).copied());
        if rebuilt.len() == REBUILT {
            rebuilt.remove(0);
        }
        rebuilt.push((chunk, nodes));
        hash
    }
}

impl<S: ChunkSource + ?Sized> LogData for Sourced<'_, S> {
    fn hash_for(&self, node: Node) -> Option<Hash> {
        match self.log.place(node) {
            Place::Chunk(chunk, inner) => self.chunk_node(chunk, inner),
            _ => self.log.hash_for(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::LogProofBundle;

    /// Every leaf hash, as a store would hand them out.
    struct Leaves(Vec<Hash>);

    impl ChunkSource for Leaves {
        fn chunk(&self, index: u64) -> Option<Vec<Hash>> {
            let start = usize::try_from(index * CHUNK_LEAVES).ok()?;
            self.0
                .get(start..start + CHUNK_LEAVES as usize)
                .map(<[Hash]>::to_vec)
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| hash_leaf(&i.to_le_bytes())).collect()
    }

    fn logs(leaves: &[Hash]) -> (VecLog, TiledLog) {
        let (mut vec, mut tiled) = (VecLog::new(), TiledLog::new());
        for leaf in leaves {
            assert_eq!(vec.push(*leaf), tiled.push(*leaf));
        }
        (vec, tiled)
    }

    #[test]
    fn chunks_hold_a_balanced_subtree() {
        let leaves = leaves(256);
        let built = build_chunk(&leaves);
        let mut nodes = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            append(&mut nodes, i as u64, *leaf);
        }
        assert_eq!(built, nodes);
        let (vec, tiled) = logs(&leaves);
        assert_eq!(tiled.root(), vec.root());
        assert_eq!(tiled.complete_chunks(), 1);
        assert_eq!(tiled.chunk_roots(256), vec![vec.root()]);
        assert_eq!(tiled.chunk_roots(255), Vec::<Hash>::new());
    }

    #[test]
    fn every_node_matches_the_vec_log_around_chunk_boundaries() {
        for n in [
            0u64, 1, 2, 255, 256, 257, 511, 512, 513, 767, 768, 1024, 1025, 1300,
        ] {
            let leaves = leaves(n);
            let (vec, tiled) = logs(&leaves);
            let source = Leaves(leaves.clone());
            let sourced = tiled.with_source(&source);
            assert_eq!(tiled.len(), n);
            assert_eq!(tiled.root(), vec.root(), "length {n}");
            for index in 0..(2 * n + 2) {
                let node = Node(index);
                assert_eq!(
                    sourced.hash_for(node),
                    vec.hash_for(node),
                    "node {index} of {n}"
                );
                let memory = tiled.hash_for(node);
                assert!(memory.is_none() || memory == vec.hash_for(node));
            }
            for length in 0..=n + 1 {
                assert_eq!(
                    sourced.root_at(length),
                    vec.root_at(length),
                    "root at {length}"
                );
                match tiled.root_chunk(length) {
                    Some(chunk) => {
                        assert_eq!(chunk, length / CHUNK_LEAVES);
                        assert_eq!(tiled.root_at(length), None);
                        assert_eq!(tiled.with_source(&NoChunks).root_at(length), None);
                    }
                    None => assert_eq!(tiled.root_at(length), vec.root_at(length)),
                }
            }
        }
    }

    #[test]
    fn memory_holds_a_hash_per_128_leaves() {
        let (_, tiled) = logs(&leaves(256 * 64 + 10));
        // 64 chunk hashes (2 per chunk in the chunk log: 128 slots) and
        // the tail's at most 511 nodes, whatever the length.
        assert!(
            tiled.heap_bytes() <= (128 + 512) * 32,
            "{}",
            tiled.heap_bytes()
        );
    }

    #[test]
    fn a_source_with_wrong_leaves_makes_hashes_missing() {
        let mut leaves = leaves(600);
        let (vec, tiled) = logs(&leaves);
        leaves[300] = hash_leaf(b"not the leaf");
        let wrong = Leaves(leaves);
        let sourced = tiled.with_source(&wrong);
        // Chunk 1 (leaves 256..512) is wrong, chunk 0 is right.
        assert_eq!(sourced.hash_for(Node::leaf(300)), None);
        assert_eq!(sourced.hash_for(Node::leaf(301)), None);
        assert_eq!(sourced.hash_for(Node::leaf(3)), vec.hash_for(Node::leaf(3)));
        assert_eq!(sourced.root_at(400), None);
        assert_eq!(
            InclusionProof::for_leaf(300, 600)
                .evaluate(&sourced, vec.hash_for(Node::leaf(300)).unwrap()),
            Err(ProofError::MissingHash(Node::leaf(301).index()))
        );
        let short = Leaves(vec![Hash::default(); 100]);
        assert_eq!(tiled.with_source(&short).hash_for(Node::leaf(0)), None);
    }

    #[test]
    fn chunks_for_proofs_names_the_chunks_they_touch() {
        let (_, tiled) = logs(&leaves(1000));
        let inclusion = [
            InclusionProof::for_leaf(3, 1000),
            InclusionProof::for_leaf(990, 1000),
        ];
        // Leaf 990 is in the tail (chunk 3 is incomplete).
        assert_eq!(tiled.chunks_for_proofs(&[], &inclusion), Ok(vec![0]));
        let consistency = [ConsistencyProof {
            old_length: 300,
            new_length: 700,
        }];
        // Old roots: leaves 0..256 (chunk hash) and 256..300 (chunk 1);
        // new length 700 ends inside chunk 2.
        assert_eq!(tiled.chunks_for_proofs(&consistency, &[]), Ok(vec![1, 2]));
        assert_eq!(tiled.chunks_for([Node(255), Node(511)]), Vec::<u64>::new());
    }

    /// A log of `n` leaves; (leaf, length) to prove inclusion at; (old,
    /// new) lengths to prove consistency between; a length to save chunk
    /// hashes up to.
    type Case = (u64, Vec<(u64, u64)>, Vec<(u64, u64)>, u64);

    /// Cases, with lengths often at chunk boundaries and next to them.
    fn cases() -> impl Strategy<Value = Case> {
        (1u64..2200).prop_flat_map(|n| {
            let length = prop_oneof![
                1..=n,
                (1..=n / CHUNK_LEAVES + 1).prop_map(move |c| (c * CHUNK_LEAVES).min(n)),
                (0..=n / CHUNK_LEAVES).prop_map(move |c| (c * CHUNK_LEAVES + 1).min(n)),
                (1..=n / CHUNK_LEAVES + 1).prop_map(move |c| (c * CHUNK_LEAVES - 1).clamp(1, n)),
            ];
            let inclusion = length.clone().prop_flat_map(|len| (0..len, Just(len)));
            let consistency =
                (length.clone(), length.clone()).prop_map(|(a, b)| (a.min(b), a.max(b)));
            (
                Just(n),
                prop::collection::vec(inclusion, 1..8),
                prop::collection::vec(consistency, 1..8),
                0..=n,
            )
        })
    }

    proptest! {
        #[test]
        fn roots_and_proofs_equal_the_vec_logs(
            (n, inclusion, consistency, upto) in cases()
        ) {
            let leaves = leaves(n);
            let (vec, tiled) = logs(&leaves);
            let source = Leaves(leaves.clone());
            let sourced = tiled.with_source(&source);
            for &(leaf, length) in &inclusion {
                prop_assert_eq!(sourced.root_at(length), vec.root_at(length));
                let proof = InclusionProof::for_leaf(leaf, length);
                prop_assert_eq!(
                    proof.evaluate(&sourced, leaves[leaf as usize]),
                    proof.evaluate(&vec, leaves[leaf as usize])
                );
                prop_assert_eq!(
                    LogProofBundle::bundle(&[], &[proof], &sourced),
                    LogProofBundle::bundle(&[], &[proof], &vec)
                );
            }
            for &(old, new) in &consistency {
                let proof = ConsistencyProof { old_length: old, new_length: new };
                prop_assert_eq!(proof.evaluate(&sourced), proof.evaluate(&vec));
                prop_assert_eq!(
                    LogProofBundle::bundle(&[proof], &[], &sourced),
                    LogProofBundle::bundle(&[proof], &[], &vec)
                );
                // Fetching only the chunks named beforehand is enough.
                let needed = tiled.chunks_for_proofs(&[proof], &[]).unwrap();
                let only = Only(needed, &source);
                prop_assert_eq!(
                    LogProofBundle::bundle(&[proof], &[], &tiled.with_source(&only)),
                    LogProofBundle::bundle(&[proof], &[], &vec)
                );
            }
            // A log rebuilt from saved chunk hashes and the leaves after
            // them is the same log.
            let roots = tiled.chunk_roots(upto);
            let from = roots.len() as u64 * CHUNK_LEAVES;
            prop_assert!(from <= upto);
            let mut rebuilt = TiledLog::from_chunks(roots);
            for leaf in &leaves[from as usize..] {
                rebuilt.push(*leaf);
            }
            prop_assert_eq!(rebuilt.len(), n);
            prop_assert_eq!(rebuilt.root(), vec.root());
            prop_assert_eq!(rebuilt.chunk_roots(n), tiled.chunk_roots(n));
            let resourced = rebuilt.with_source(&source);
            for &(leaf, length) in &inclusion {
                let proof = InclusionProof::for_leaf(leaf, length);
                prop_assert_eq!(
                    LogProofBundle::bundle(&[], &[proof], &resourced),
                    LogProofBundle::bundle(&[], &[proof], &vec)
                );
            }
        }
    }

    /// A source that hands out only the chunks listed.
    struct Only<'a>(Vec<u64>, &'a Leaves);

    impl ChunkSource for Only<'_> {
        fn chunk(&self, index: u64) -> Option<Vec<Hash>> {
            if self.0.contains(&index) {
                self.1.chunk(index)
            } else {
                None
            }
        }
    }
}
