//! The registry log as C2SP tiles (`c2sp.org/tlog-tiles`): the same tree
//! the Warg checkpoints sign, in immutable files a CDN can cache. Tiles of
//! level 1 and above come from the view's log in memory; level-0 tiles and
//! entry bundles (the Warg log leaves' bytes) from the leaves of a chunk,
//! read from the store and checked against the chunk hash the log holds.

use cairn_protocol::Hash;
use cairn_transparency::log::rfc9162::{self, RfcProofError};
use cairn_transparency::log::{
    bundle_bytes, tile_bytes, LogData, Node, Tile, TileKind, CHUNK_LEAVES,
};

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

impl Registry {
    /// The RFC 9162 consistency proof from the log of `old` leaves to that
    /// of `new` (both at most the latest checkpoint's length), as a C2SP
    /// witness takes it; the chunks it needs are read from the store.
    pub fn rfc_consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, QueryError> {
        if new > self.shared.view.checkpointed_length() {
            return Err(QueryError::CheckpointNotFound(new));
        }
        let mut chunks: Vec<u64> = Vec::new();
        loop {
            let wanted = chunks.clone();
            let proof = self.shared.with_chunks(
                move |_| wanted.clone(),
                |log| rfc9162::consistency_proof(log, old, new),
            )?;
            match proof {
                Ok(proof) => return Ok(proof),
                // A node inside a complete chunk: read it, and again.
                Err(RfcProofError::MissingNode(node)) => {
                    let chunk = node / (2 * CHUNK_LEAVES);
                    if chunks.contains(&chunk) {
                        return Err(mismatch());
                    }
                    chunks.push(chunk);
                }
                Err(e) => return Err(QueryError::Invalid(e.to_string())),
            }
        }
    }
}
