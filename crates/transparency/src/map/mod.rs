//! The registry map: a sparse Merkle tree of 256 levels from a log id to the
//! leaf hash of that log's latest record, as Warg v1 defines it.
//!
//! A key's path is the SHA-256 of its 32 bytes, read from the most
//! significant bit (`1` = right). An absent subtree of height `h` hashes to
//! [`empty_subtree`]`(h)`. The tree is stored path-compressed: a node exists
//! only where two keys part (plus the leaves), and every node keeps its hash
//! at the depth it hangs from, so unchanged subtrees never need rehashing.
//! Maps are persistent: [`Map::apply`] returns a new map sharing all
//! untouched nodes with the old one, and cloning is O(1).

mod proof;
mod snapshot;

pub use proof::{MapProof, MapProofBundle, MapProofError};
pub use snapshot::SnapshotError;

use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::hash::{empty_subtree, hash_branch, hash_with_sibling, Hash};
use crate::lanes::{hash_with_siblings, LANES};

/// Below this many updates a subtree is rebuilt on the current thread.
const PARALLEL_THRESHOLD: usize = 256;

/// From this many updates on, a batch first plans which leaves it creates,
/// hashes them all in lanes and in parallel, then builds the tree.
const PLAN_THRESHOLD: usize = 16;

/// A persistent sparse Merkle map from 32-byte keys to leaf hashes.
#[derive(Clone)]
pub struct Map {
    top: Option<Child>,
    root: Hash,
    len: usize,
    /// Nodes this version made that the version it was made from lacks.
    created: usize,
}

#[derive(Clone)]
enum Child {
    Leaf(Arc<Leaf>),
    Branch(Arc<Branch>),
}

struct Leaf {
    /// SHA-256 of the key.
    path: Hash,
    /// The leaf hash stored under the key.
    value: Hash,
    /// Hash of the subtree rooted at `depth` that holds only this leaf.
    hash: Hash,
    depth: u16,
}

struct Branch {
    /// Hash of this subtree at `hang`, the depth it hangs from.
    hash: Hash,
    left: Child,
    right: Child,
    /// The bit (= depth) at which the keys below part.
    bit: u8,
    hang: u8,
}

/// One key's update: (path, leaf hash).
type Update = (Hash, Hash);

impl Child {
    fn hash(&self) -> &Hash {
        match self {
            Child::Leaf(leaf) => &leaf.hash,
            Child::Branch(branch) => &branch.hash,
        }
    }

    fn hang(&self) -> usize {
        match self {
            Child::Leaf(leaf) => usize::from(leaf.depth),
            Child::Branch(branch) => usize::from(branch.hang),
        }
    }

    /// The path of the leftmost leaf below: it carries the subtree's prefix.
    fn some_path(&self) -> &Hash {
        let mut node = self;
        loop {
            match node {
                Child::Leaf(leaf) => return &leaf.path,
                Child::Branch(branch) => node = &branch.left,
            }
        }
    }
}

/// Hashes a node at `from` depth up to `to` depth (`to <= from`) through
/// levels whose other side is empty; `path` gives the side at each level.
fn chain(mut hash: Hash, path: &Hash, from: usize, to: usize) -> Hash {
    for depth in (to + 1..=from).rev() {
        hash = hash_with_sibling(&hash, empty_subtree(256 - depth), path.bit(depth - 1));
    }
    hash
}

/// A leaf the rebuild needs: its hash is `chain(value, path, 256, depth)`.
#[derive(Clone, Copy)]
struct LeafJob {
    path: Hash,
    value: Hash,
    depth: usize,
}

/// Where a rebuild gets leaf hashes from.
trait Leaves: Sync {
    /// False for a planning pass, which only records the leaves it needs
    /// and leaves every hash zero.
    const HASHING: bool;
    fn leaf_hash(&self, job: LeafJob) -> Hash;
}

/// Hashes each leaf when asked (small batches).
struct Direct;

impl Leaves for Direct {
    const HASHING: bool = true;
    fn leaf_hash(&self, job: LeafJob) -> Hash {
        chain(job.value, &job.path, 256, job.depth)
    }
}

/// Records the leaves a rebuild will need.
struct Plan(Mutex<Vec<LeafJob>>);

impl Leaves for Plan {
    const HASHING: bool = false;
    fn leaf_hash(&self, job: LeafJob) -> Hash {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(job);
        Hash::default()
    }
}

/// Leaf hashes computed ahead, sorted by path.
struct Ready(Vec<(LeafJob, Hash)>);

impl Ready {
    fn hash(mut jobs: Vec<LeafJob>) -> Ready {
        // A parallel planning pass records leaves in any order.
        jobs.par_sort_unstable_by_key(|job| job.path);
        let hashes: Vec<Hash> = jobs
            .par_chunks(LANES * 64)
            .flat_map_iter(|chunk| chunk.chunks(LANES).flat_map(chain_lanes))
            .collect();
        Ready(jobs.into_iter().zip(hashes).collect())
    }
}

impl Leaves for Ready {
    const HASHING: bool = true;
    fn leaf_hash(&self, job: LeafJob) -> Hash {
        match self.0.binary_search_by(|(j, _)| j.path.cmp(&job.path)) {
            Ok(i) if self.0[i].0.value == job.value && self.0[i].0.depth == job.depth => {
                self.0[i].1
            }
            _ => {
                // The planning pass makes the same calls, so this is only a
                // safety net; tests (debug builds) insist it is never used.
                debug_assert!(false, "leaf {:?} was not planned", job.path);
                Direct.leaf_hash(job)
            }
        }
    }
}

/// Leaf hashes of up to [`LANES`] jobs, their chains hashed side by side.
fn chain_lanes(jobs: &[LeafJob]) -> Vec<Hash> {
    let Ok(lanes) = <&[LeafJob; LANES]>::try_from(jobs) else {
        return jobs.iter().map(|&job| Direct.leaf_hash(job)).collect();
    };
    let common = lanes.iter().map(|j| 256 - j.depth).min().unwrap_or(0);
    let mut hashes: [Hash; LANES] = std::array::from_fn(|i| lanes[i].value);
    for height in 0..common {
        let right = std::array::from_fn(|i| lanes[i].path.bit(255 - height));
        hashes = hash_with_siblings(&hashes, [empty_subtree(height); LANES], right);
    }
    lanes
        .iter()
        .zip(hashes)
        .map(|(job, hash)| chain(hash, &job.path, 256 - common, job.depth))
        .collect()
}

/// The depth a leaf hangs from when built at `depth`: the root always
/// forks (as in Warg v1), so a leaf hangs at depth 1 or below.
fn leaf_depth(depth: usize) -> usize {
    depth.max(1)
}

fn new_leaf<L: Leaves>(leaves: &L, path: Hash, value: Hash, depth: usize) -> Child {
    let depth = leaf_depth(depth);
    Child::Leaf(Arc::new(Leaf {
        path,
        value,
        hash: leaves.leaf_hash(LeafJob { path, value, depth }),
        depth: depth as u16,
    }))
}

fn new_branch<L: Leaves>(
    bit: usize,
    left: Child,
    right: Child,
    hang: usize,
    prefix: &Hash,
) -> Child {
    debug_assert!(left.hang() == bit + 1 && right.hang() == bit + 1);
    let hash = if L::HASHING {
        chain(hash_branch(left.hash(), right.hash()), prefix, bit, hang)
    } else {
        Hash::default()
    };
    Child::Branch(Arc::new(Branch {
        hash,
        left,
        right,
        bit: bit as u8,
        hang: hang as u8,
    }))
}

/// The nodes of a freshly built tree that no other tree shares: those
/// only their new parent holds (the old tree, alive meanwhile, holds every
/// node it shares with the new one).
fn fresh_nodes(top: &Child) -> usize {
    let mut count = 0;
    let mut stack = vec![top];
    while let Some(node) = stack.pop() {
        match node {
            Child::Leaf(leaf) => count += usize::from(Arc::strong_count(leaf) == 1),
            Child::Branch(branch) if Arc::strong_count(branch) == 1 => {
                count += 1;
                stack.push(&branch.left);
                stack.push(&branch.right);
            }
            Child::Branch(_) => {}
        }
    }
    count
}

fn join<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Builds a subtree hanging at `depth` from sorted, distinct updates that
/// share their first `depth` bits.
fn build_new<L: Leaves>(leaves: &L, updates: &[Update], depth: usize) -> Child {
    if let [(path, value)] = updates {
        return new_leaf(leaves, *path, *value, depth);
    }
    let first = &updates[0].0;
    let last = &updates[updates.len() - 1].0;
    let bit = first.common_prefix_bits(last);
    let split = updates.partition_point(|(path, _)| !path.bit(bit));
    let (lo, hi) = updates.split_at(split);
    let (left, right) = join(
        updates.len() >= PARALLEL_THRESHOLD,
        || build_new(leaves, lo, bit + 1),
        || build_new(leaves, hi, bit + 1),
    );
    new_branch::<L>(bit, left, right, depth, first)
}

/// Applies sorted, distinct updates to the subtree `existing` (which hangs
/// at or below `depth`); returns the new subtree hanging at `depth` and the
/// number of keys added.
fn build<L: Leaves>(
    leaves: &L,
    existing: Option<&Child>,
    updates: &[Update],
    depth: usize,
) -> (Child, usize) {
    let Some(existing) = existing else {
        return (build_new(leaves, updates, depth), updates.len());
    };
    let hang = match existing {
        Child::Leaf(_) => leaf_depth(depth),
        Child::Branch(_) => depth,
    };
    if updates.is_empty() && existing.hang() == hang {
        return (existing.clone(), 0);
    }
    match existing {
        Child::Leaf(leaf) => match updates.binary_search_by(|(path, _)| path.cmp(&leaf.path)) {
            Ok(_) if updates.len() == 1 => {
                if updates[0].1 == leaf.value && existing.hang() == hang {
                    (existing.clone(), 0)
                } else {
                    (new_leaf(leaves, leaf.path, updates[0].1, depth), 0)
                }
            }
            Ok(_) => (build_new(leaves, updates, depth), updates.len() - 1),
            Err(at) => {
                let mut merged = Vec::with_capacity(updates.len() + 1);
                merged.extend_from_slice(&updates[..at]);
                merged.push((leaf.path, leaf.value));
                merged.extend_from_slice(&updates[at..]);
                (build_new(leaves, &merged, depth), updates.len())
            }
        },
        Child::Branch(branch) => {
            let bit = usize::from(branch.bit);
            // The subtree's prefix matters only where it is compressed.
            let prefix = if bit > depth {
                *existing.some_path()
            } else {
                Hash::default()
            };
            // First bit at which some update leaves this subtree's prefix.
            let parts = match (updates.first(), updates.last()) {
                (Some((first, _)), Some((last, _))) if bit > depth => prefix
                    .common_prefix_bits(first)
                    .min(prefix.common_prefix_bits(last)),
                _ => 256,
            };
            if parts >= bit {
                let split = updates.partition_point(|(path, _)| !path.bit(bit));
                let (lo, hi) = updates.split_at(split);
                let ((left, added_left), (right, added_right)) = join(
                    updates.len() >= PARALLEL_THRESHOLD,
                    || build(leaves, Some(&branch.left), lo, bit + 1),
                    || build(leaves, Some(&branch.right), hi, bit + 1),
                );
                let node = new_branch::<L>(bit, left, right, depth, &prefix);
                (node, added_left + added_right)
            } else {
                // Some updates part from this subtree above its own fork:
                // a new fork at `parts` takes the old subtree on one side.
                let old_side = prefix.bit(parts);
                let split = updates.partition_point(|(path, _)| !path.bit(parts));
                let (lo, hi) = updates.split_at(split);
                let (with_old, fresh) = if old_side { (hi, lo) } else { (lo, hi) };
                let ((moved, added_old), new) = join(
                    updates.len() >= PARALLEL_THRESHOLD,
                    || build(leaves, Some(existing), with_old, parts + 1),
                    || build_new(leaves, fresh, parts + 1),
                );
                let (left, right) = if old_side { (new, moved) } else { (moved, new) };
                let node = new_branch::<L>(parts, left, right, depth, &prefix);
                (node, added_old + fresh.len())
            }
        }
    }
}

impl Default for Map {
    fn default() -> Self {
        Map {
            top: None,
            root: *empty_subtree(256),
            len: 0,
            created: 0,
        }
    }
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("root", &self.root)
            .field("len", &self.len)
            .finish()
    }
}

impl Map {
    /// The empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the map has no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The leaf hash stored under `key`.
    pub fn get(&self, key: &Hash) -> Option<Hash> {
        let path = Hash::of(key.as_bytes());
        let mut node = self.top.as_ref()?;
        loop {
            match node {
                Child::Leaf(leaf) => return (leaf.path == path).then_some(leaf.value),
                Child::Branch(branch) => {
                    node = if path.bit(usize::from(branch.bit)) {
                        &branch.right
                    } else {
                        &branch.left
                    };
                }
            }
        }
    }

    /// A new map with every `(key, leaf hash)` of `updates` set (a later
    /// update of the same key wins). Work on shared path prefixes is done
    /// once, and large batches are hashed in parallel.
    pub fn apply(&self, updates: impl IntoIterator<Item = (Hash, Hash)>) -> Map {
        let mut batch: Vec<(Hash, usize, Hash)> = updates
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| (Hash::of(key.as_bytes()), i, value))
            .collect();
        if batch.is_empty() {
            return Map {
                created: 0,
                ..self.clone()
            };
        }
        batch.sort_unstable_by_key(|&(path, i, _)| (path, i));
        let mut sorted: Vec<Update> = Vec::with_capacity(batch.len());
        for (path, _, value) in batch {
            match sorted.last_mut() {
                Some(last) if last.0 == path => last.1 = value,
                _ => sorted.push((path, value)),
            }
        }
        let (top, added) = if sorted.len() < PLAN_THRESHOLD {
            build(&Direct, self.top.as_ref(), &sorted, 0)
        } else {
            // Plan (no hashing), hash every new leaf in lanes and in
            // parallel, then build for real with those hashes.
            let plan = Plan(Mutex::new(Vec::with_capacity(sorted.len() * 2)));
            drop(build(&plan, self.top.as_ref(), &sorted, 0));
            let jobs = plan.0.into_inner().unwrap_or_else(|p| p.into_inner());
            build(&Ready::hash(jobs), self.top.as_ref(), &sorted, 0)
        };
        let root = chain(*top.hash(), top.some_path(), top.hang(), 0);
        let created = fresh_nodes(&top);
        Map {
            top: Some(top),
            root,
            len: self.len + added,
            created,
        }
    }

    /// How many nodes this map made that the map it was applied to does
    /// not share (for a map read from a snapshot: all of them). Keeping an
    /// older version alive beside a newer one costs about the newer one's
    /// count of nodes (the ones it replaced), so this is how a holder of
    /// several versions bounds their memory.
    pub fn created_nodes(&self) -> usize {
        self.created
    }

    /// A new map with one key set.
    pub fn insert(&self, key: Hash, leaf: Hash) -> Map {
        self.apply([(key, leaf)])
    }

    /// Proof that `key` maps to its current leaf hash, or `None` when the
    /// key is absent.
    pub fn prove(&self, key: &Hash) -> Option<MapProof> {
        let path = Hash::of(key.as_bytes());
        let mut node = self.top.as_ref()?;
        // Sibling hashes from depth 1 down to the leaf.
        let mut peers = Vec::with_capacity(48);
        let empties = |peers: &mut Vec<Option<Hash>>, from: usize, to: usize| {
            for depth in from + 1..=to {
                peers.push(Some(*empty_subtree(256 - depth)));
            }
        };
        empties(&mut peers, 0, node.hang());
        loop {
            match node {
                Child::Leaf(leaf) => {
                    if leaf.path != path {
                        return None;
                    }
                    peers.reverse();
                    return Some(MapProof { peers });
                }
                Child::Branch(branch) => {
                    let bit = usize::from(branch.bit);
                    empties(&mut peers, usize::from(branch.hang), bit);
                    let (next, other) = if path.bit(bit) {
                        (&branch.right, &branch.left)
                    } else {
                        (&branch.left, &branch.right)
                    };
                    peers.push(Some(*other.hash()));
                    node = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
