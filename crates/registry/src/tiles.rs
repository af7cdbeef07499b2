//! The registry log as C2SP tiles (`c2sp.org/tlog-tiles`): the same tree
//! the Warg checkpoints sign, in immutable files a CDN can cache. Tiles of
//! level 1 and above come from the view's log in memory; level-0 tiles and
//! entry bundles (the Warg log leaves' bytes) from the leaves of a chunk,
//! read from the store once and checked against the chunk hash the log
//! holds, then kept: full ones in the content store, partial ones (the
//! right edge) in a bounded cache in memory.

use cairn_protocol::package::PackageRecord;
use cairn_protocol::release_proof::ReleaseRecord;
use cairn_protocol::{Hash, LogId, PackageName, Version};
use cairn_transparency::log::rfc9162::{self, RfcProofError};
use cairn_transparency::log::{
    bundle_bytes, tile_bytes, LogData, Node, Sourced, Tile, TileKind, CHUNK_LEAVES, TILE_WIDTH,
};

use crate::chunks::Fetched;
use crate::codec;

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
        // Level 0 and entry bundles come from the leaves: a full one is
        // made once and kept in storage, then served from there; a partial
        // one (the right edge) is kept in memory.
        let full = tile.width == TILE_WIDTH;
        let path = tile.path();
        if full {
            if let Some(bytes) = shared.content.tile(&path)? {
                return Ok(Some(bytes));
            }
        } else {
            let mut kept = shared
                .partial_tiles
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(bytes) = kept.get(&path) {
                return Ok(Some(bytes.as_ref().clone()));
            }
        }
        let made = self.make_leaf_tile(tile)?;
        if let Some(bytes) = &made {
            if full {
                if let Err(e) = shared.content.put_tile(&path, bytes) {
                    tracing::warn!("cannot keep tile {path}: {e}");
                }
            } else {
                shared
                    .partial_tiles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(path, std::sync::Arc::new(bytes.clone()));
            }
        }
        Ok(made)
    }

    /// A level-0 tile or an entry bundle, from the leaves of the log.
    fn make_leaf_tile(&self, tile: &Tile) -> Result<Option<Vec<u8>>, QueryError> {
        let shared = &self.shared;
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
        self.rfc_proof(|log| rfc9162::consistency_proof(log, old, new))
    }

    /// The RFC 9162 inclusion path of leaf `index` in the log of `size`
    /// leaves (at most the latest checkpoint's length), as a C2SP
    /// `tlog-proof` carries it.
    pub fn rfc_inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, QueryError> {
        if size > self.shared.view.checkpointed_length() {
            return Err(QueryError::CheckpointNotFound(size));
        }
        if index >= size {
            return Err(QueryError::LeafNotFound(index));
        }
        self.rfc_proof(|log| rfc9162::inclusion_proof(log, index, size))
    }

    /// Makes a proof from the log in memory, reading the chunks it finds
    /// missing from the store until it has them all.
    fn rfc_proof(
        &self,
        prove: impl Fn(&Sourced<'_, Fetched>) -> Result<Vec<Hash>, RfcProofError>,
    ) -> Result<Vec<Hash>, QueryError> {
        let mut chunks: Vec<u64> = Vec::new();
        loop {
            let wanted = chunks.clone();
            let proof = self.shared.with_chunks(move |_| wanted.clone(), &prove)?;
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

    /// The record that released `version` of `name` (covered by the latest
    /// checkpoint), with its index in the registry log.
    pub fn release_record(
        &self,
        name: &PackageName,
        version: &Version,
    ) -> Result<Option<(u64, ReleaseRecord)>, QueryError> {
        let published = self.log_length();
        let records =
            self.shared
                .meta
                .log_records(&LogId::package(name), None, published, usize::MAX)?;
        for (index, stored) in records {
            let envelope = codec::decode::<PackageRecord>(&stored)?;
            let release = ReleaseRecord {
                package: name.clone(),
                envelope,
            };
            if release.releases().any(|(v, _)| v == version) {
                return Ok(Some((index, release)));
            }
        }
        Ok(None)
    }
}
