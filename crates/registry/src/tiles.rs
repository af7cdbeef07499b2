//! The registry log as C2SP tiles (`c2sp.org/tlog-tiles`): the same tree
//! the Warg checkpoints sign, in immutable files a CDN can cache. Tiles of
//! level 1 and above come from the view's log in memory; level-0 tiles and
//! entry bundles (the Warg log leaves' bytes) from the leaves of a chunk,
//! read from the store and checked against the chunk hash the log holds.

use cairn_protocol::Hash;
use cairn_transparency::log::{bundle_bytes, tile_bytes, LogData, Node, Tile, TileKind};

use crate::error::QueryError;
use crate::registry::Registry;
use crate::storage::StoreError;

fn mismatch() -> QueryError {
    QueryError::Store(StoreError::Corrupt(
        "the stored leaves do not hash to the log's hashes".into(),
    ))
}

impl Registry {
    /// The bytes of `tile`, or `None` when the latest checkpoint's log does
    /// not hold it (yet). Every tile served is of a checkpointed size, so
    /// it never changes.
    pub fn tile(&self, tile: &Tile) -> Result<Option<Vec<u8>>, QueryError> {
        let shared = &self.shared;
        let checkpointed = shared.view.checkpointed_length();
        if tile.needs_length().is_none_or(|n| n > checkpointed) {
            return Ok(None);
        }
        if let TileKind::Hashes(level) = tile.kind {
            if level > 0 {
                return Ok(shared.view.log().tile_hashes(tile).map(|h| tile_bytes(&h)));
            }
        }
        let Some((first, count)) = shared.view.log().tile_leaves(tile) else {
            return Ok(None);
        };
        let leaves = first..first + count;
        let hashes: Option<Vec<Hash>> = shared.with_chunks(
            |log| log.chunks_for(leaves.clone().map(Node::leaf)),
            |log| {
                leaves
                    .clone()
                    .map(|i| log.hash_for(Node::leaf(i)))
                    .collect()
            },
        )?;
        let hashes = hashes.ok_or_else(mismatch)?;
        if tile.kind != TileKind::Entries {
            return Ok(Some(tile_bytes(&hashes)));
        }
        let stored = shared.meta.leaves(first, count as usize)?;
        if stored.len() != hashes.len()
            || stored.iter().zip(&hashes).any(|(l, h)| l.leaf_hash() != *h)
        {
            return Err(mismatch());
        }
        let entries: Vec<Vec<u8>> = stored.iter().map(|l| l.encode()).collect();
        bundle_bytes(entries.iter().map(Vec::as_slice))
            .map(Some)
            .ok_or_else(|| QueryError::Invalid("a log leaf is longer than 65,535 bytes".into()))
    }
}
