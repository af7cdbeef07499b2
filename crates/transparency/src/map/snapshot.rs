//! A byte image of a whole map, hashes included, so a registry can reopen a
//! large map without rehashing it.
//!
//! Layout: the magic `CAIRN-MAP-1`, the key count (u64 LE), then the nodes
//! in pre-order: a leaf is `0`, depth (u16 LE), path, value, hash; a branch
//! is `1`, hang, bit, then its left and right subtrees. Decoding checks the
//! shape (depths, the side each path takes at each branch), recomputes every
//! branch hash from its children and the root from the top node; leaf
//! hashes (a chain of up to 256 hashes each) are taken as stored.

use std::io::{Read, Write};
use std::sync::Arc;

use thiserror::Error;

use super::{chain, fresh_nodes, Branch, Child, Leaf, Map};
use crate::hash::{hash_branch, Hash};

const MAGIC: &[u8] = b"CAIRN-MAP-1";

/// Why a snapshot could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a map snapshot, or cut short.
    #[error("map snapshot is truncated or has a bad header")]
    Truncated,
    /// The nodes do not form a valid map.
    #[error("map snapshot is malformed: {0}")]
    Malformed(&'static str),
    /// The bytes could not be read.
    #[error("map snapshot could not be read: {0}")]
    Read(String),
}

impl Map {
    /// The snapshot bytes of this map.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + self.len * 102);
        // Writing to memory cannot fail.
        match self.write_snapshot(&mut out) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Writes the snapshot to `out` as it walks the tree, so a large map
    /// needs no buffer of its size (give a buffered writer).
    pub fn write_snapshot(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&(self.len as u64).to_le_bytes())?;
        let Some(top) = &self.top else {
            return Ok(());
        };
        // Iterative pre-order: depth is at most 257, but keep the stack explicit.
        let mut stack = vec![top];
        while let Some(node) = stack.pop() {
            match node {
                Child::Leaf(leaf) => {
                    out.write_all(&[0])?;
                    out.write_all(&leaf.depth.to_le_bytes())?;
                    out.write_all(leaf.path.as_bytes())?;
                    out.write_all(leaf.value.as_bytes())?;
                    out.write_all(leaf.hash.as_bytes())?;
                }
                Child::Branch(branch) => {
                    out.write_all(&[1, branch.hang, branch.bit])?;
                    stack.push(&branch.right);
                    stack.push(&branch.left);
                }
            }
        }
        Ok(())
    }

    /// Reads a snapshot made by [`Map::snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Map, SnapshotError> {
        let mut input = bytes;
        let map = Map::read_snapshot(&mut input)?;
        if !input.is_empty() {
            return Err(SnapshotError::Malformed("bytes after the last node"));
        }
        Ok(map)
    }

    /// Reads a snapshot made by [`Map::write_snapshot`] from `input` as it
    /// builds the tree, up to its last node (give a buffered reader).
    pub fn read_snapshot(input: &mut impl Read) -> Result<Map, SnapshotError> {
        let mut reader = Reader { input };
        let magic: [u8; 11] = reader.array()?;
        if magic != MAGIC {
            return Err(SnapshotError::Truncated);
        }
        let len = u64::from_le_bytes(reader.array()?);
        let len = usize::try_from(len).map_err(|_| SnapshotError::Malformed("key count"))?;
        if len == 0 {
            return Ok(Map::new());
        }
        let mut count = 0usize;
        let top = read_node(&mut reader, None, &mut count)?;
        if count != len {
            return Err(SnapshotError::Malformed(
                "key count does not match the leaves",
            ));
        }
        let root = chain(*top.hash(), top.some_path(), top.hang(), 0);
        let created = fresh_nodes(&top);
        Ok(Map {
            top: Some(top),
            root,
            len,
            created,
        })
    }
}

struct Reader<'a, R> {
    input: &'a mut R,
}

impl<R: Read> Reader<'_, R> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        self.input.read_exact(&mut out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SnapshotError::Truncated
            } else {
                SnapshotError::Read(e.to_string())
            }
        })?;
        Ok(out)
    }

    fn hash(&mut self) -> Result<Hash, SnapshotError> {
        Ok(Hash::from_bytes(self.array()?))
    }
}

/// Reads one subtree; `expect_hang` is the depth it must hang from (none for
/// the top). Recursion depth is bounded by the 256 levels of the tree.
fn read_node<R: Read>(
    reader: &mut Reader<'_, R>,
    expect_hang: Option<usize>,
    count: &mut usize,
) -> Result<Child, SnapshotError> {
    let [tag] = reader.array()?;
    match tag {
        0 => {
            let depth = u16::from_le_bytes(reader.array()?);
            if depth > 256 || expect_hang.is_some_and(|h| h != usize::from(depth)) {
                return Err(SnapshotError::Malformed("leaf depth"));
            }
            let path = reader.hash()?;
            let value = reader.hash()?;
            let hash = reader.hash()?;
            *count += 1;
            Ok(Child::Leaf(Arc::new(Leaf {
                path,
                value,
                hash,
                depth,
            })))
        }
        1 => {
            let [hang, bit] = reader.array()?;
            let (hang, bit_at) = (usize::from(hang), usize::from(bit));
            if bit_at < hang || expect_hang.is_some_and(|h| h != hang) {
                return Err(SnapshotError::Malformed("branch depth"));
            }
            let left = read_node(reader, Some(bit_at + 1), count)?;
            let right = read_node(reader, Some(bit_at + 1), count)?;
            let (lp, rp) = (left.some_path(), right.some_path());
            if lp.bit(bit_at) || !rp.bit(bit_at) || lp.common_prefix_bits(rp) != bit_at {
                return Err(SnapshotError::Malformed(
                    "keys on the wrong side of a branch",
                ));
            }
            let hash = chain(hash_branch(left.hash(), right.hash()), lp, bit_at, hang);
            Ok(Child::Branch(Arc::new(Branch {
                hash,
                left,
                right,
                bit,
                hang: hang as u8,
            })))
        }
        _ => Err(SnapshotError::Malformed("unknown node tag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Hash {
        Hash::of(i.to_le_bytes())
    }

    #[test]
    fn round_trip() {
        for n in [0u32, 1, 2, 3, 17, 1000] {
            let map = Map::new().apply((0..n).map(|i| (key(i), key(i + 1_000_000))));
            let back = Map::from_snapshot(&map.snapshot()).expect("decode");
            assert_eq!(back.root(), map.root(), "n = {n}");
            assert_eq!(back.len(), map.len());
            let next = back.apply([(key(7), key(8)), (key(5000), key(1))]);
            let direct = map.apply([(key(7), key(8)), (key(5000), key(1))]);
            assert_eq!(next.root(), direct.root());
            if n > 0 {
                assert_eq!(back.prove(&key(0)), map.prove(&key(0)));
            }
        }
    }

    #[test]
    fn damage_is_detected() {
        let map = Map::new().apply((0..100).map(|i| (key(i), key(i + 1))));
        let bytes = map.snapshot();
        for cut in [0, 5, MAGIC.len() + 3, bytes.len() - 1] {
            assert!(Map::from_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A changed value leaves the stored leaf hash, so the root is
        // unchanged; a changed leaf hash changes the recomputed root.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let damaged = Map::from_snapshot(&flipped).expect("well-formed");
        assert_ne!(damaged.root(), map.root());
        let mut tag = bytes;
        tag[MAGIC.len() + 8] = 7;
        assert!(Map::from_snapshot(&tag).is_err());
    }
}
