//! The lower nodes of the registry log, from the store. The view keeps a
//! [`TiledLog`]: nodes below height 8 inside complete 256-leaf chunks are
//! rebuilt from the chunk's leaves, which are read from the store
//! ([`MetaStore::leaves`]) and hashed here, behind a small bounded cache.
//!
//! Chunks are read before the view's log is locked, so a slow store never
//! holds up the sequencer thread's appends; the proof is then made under
//! the lock from what was read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_protocol::{Hash, LogLeaf};
use cairn_transparency::log::{
    BundleError, ChunkSource, LogProofBundle, Sourced, TiledLog, CHUNK_LEAVES,
};

use crate::cache::Generations;
use crate::error::QueryError;
use crate::registry::Shared;
use crate::storage::{MetaStore, StoreError};

/// Chunks per cache generation: at most twice this many (1,024 chunks,
/// 8 MiB of leaf hashes) are cached.
const CACHED_CHUNKS: usize = 512;

/// Leaf hashes of recently read chunks.
pub(crate) struct ChunkCache {
    chunks: Mutex<Generations<u64, Arc<[Hash]>>>,
}

impl Default for ChunkCache {
    fn default() -> ChunkCache {
        ChunkCache {
            chunks: Mutex::new(Generations::new(CACHED_CHUNKS)),
        }
    }
}

/// Chunks read for one proof (or one root), by index.
#[derive(Default)]
pub(crate) struct Fetched(HashMap<u64, Arc<[Hash]>>);

impl ChunkSource for Fetched {
    fn chunk(&self, index: u64) -> Option<Vec<Hash>> {
        self.0.get(&index).map(|leaves| leaves.to_vec())
    }
}

impl ChunkCache {
    /// Adds the leaf hashes of `chunks` to `fetched`, from the cache or
    /// the store.
    pub fn fetch(
        &self,
        meta: &dyn MetaStore,
        chunks: &[u64],
        fetched: &mut Fetched,
    ) -> Result<(), StoreError> {
        for &chunk in chunks {
            if fetched.0.contains_key(&chunk) {
                continue;
            }
            let cached = self
                .chunks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&chunk)
                .cloned();
            let leaves = match cached {
                Some(leaves) => leaves,
                None => {
                    let leaves = read_chunk(meta, chunk)?;
                    self.chunks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(chunk, leaves.clone());
                    leaves
                }
            };
            fetched.0.insert(chunk, leaves);
        }
        Ok(())
    }
}

/// The leaf hashes of chunk `chunk`, read from the store.
fn read_chunk(meta: &dyn MetaStore, chunk: u64) -> Result<Arc<[Hash]>, StoreError> {
    let start = chunk * CHUNK_LEAVES;
    let leaves = meta.leaves(start, CHUNK_LEAVES as usize)?;
    if leaves.len() as u64 != CHUNK_LEAVES {
        return Err(StoreError::Corrupt(format!(
            "the log's chunk of leaves {start} to {} has {} leaves stored",
            start + CHUNK_LEAVES - 1,
            leaves.len()
        )));
    }
    Ok(leaves.iter().map(LogLeaf::leaf_hash).collect())
}

impl Shared {
    /// Runs `with` on the view's log with every chunk `wanted` names for
    /// it read first, outside the log's lock (read again if the log
    /// completed a chunk meanwhile).
    pub(crate) fn with_chunks<T>(
        &self,
        wanted: impl Fn(&TiledLog) -> Vec<u64>,
        with: impl FnOnce(&Sourced<'_, Fetched>) -> T,
    ) -> Result<T, StoreError> {
        let mut fetched = Fetched::default();
        loop {
            let missing: Vec<u64> = {
                let log = self.view.log();
                let missing: Vec<u64> = wanted(&log)
                    .into_iter()
                    .filter(|c| !fetched.0.contains_key(c))
                    .collect();
                if missing.is_empty() {
                    return Ok(with(&log.with_source(&fetched)));
                }
                missing
            };
            self.chunks
                .fetch(self.meta.as_ref(), &missing, &mut fetched)?;
        }
    }

    /// The view's log root at `length` (`None` past its end), reading the
    /// chunk it ends in from the store when it is needed.
    pub(crate) fn log_root_at(&self, length: u64) -> Result<Option<Hash>, StoreError> {
        let root = self.with_chunks(
            |log| log.root_chunk(length).into_iter().collect(),
            |log| log.root_at(length),
        )?;
        if root.is_none() && length <= self.view.log().len() {
            return Err(mismatch());
        }
        Ok(root)
    }

    /// A log proof bundle of `consistency` and `inclusion` from the view's
    /// log, with the chunks they need read from the store.
    pub(crate) fn bundle(
        &self,
        consistency: &[cairn_transparency::log::ConsistencyProof],
        inclusion: &[cairn_transparency::log::InclusionProof],
    ) -> Result<Vec<u8>, QueryError> {
        let bundle = self.with_chunks(
            |log| {
                // A malformed proof needs no chunk: bundling says why.
                log.chunks_for_proofs(consistency, inclusion)
                    .unwrap_or_default()
            },
            |log| LogProofBundle::bundle(consistency, inclusion, log),
        )?;
        match bundle.and_then(|b| b.encode()) {
            Ok(bytes) => Ok(bytes),
            // Every chunk was read: a missing hash means stored leaves that
            // do not hash to the chunk's hash.
            Err(BundleError::MissingHash(_)) => Err(mismatch().into()),
            Err(e) => Err(QueryError::Invalid(format!("cannot bundle proofs: {e}"))),
        }
    }
}

fn mismatch() -> StoreError {
    StoreError::Corrupt("the stored leaves of a chunk do not hash to the log's chunk hash".into())
}

#[cfg(test)]
mod tests {
    use cairn_protocol::{LogId, RecordId};

    use super::*;
    use crate::memory::MemoryMeta;
    use crate::storage::{Batch, RecordState, StoredRecord};

    fn store(leaves: u64) -> MemoryMeta {
        let meta = MemoryMeta::default();
        let records = (0..leaves)
            .map(|i| StoredRecord {
                record_id: RecordId::from(Hash::of(i.to_le_bytes())),
                log_id: LogId::from(Hash::of(b"log")),
                content_bytes: Vec::new(),
                key_id: String::new(),
                signature: String::new(),
                state: RecordState::Sequenced { index: i },
            })
            .collect();
        meta.commit(&Batch {
            records,
            ..Batch::default()
        })
        .unwrap();
        meta
    }

    #[test]
    fn chunks_are_read_once_and_short_ones_are_refused() {
        let meta = store(600);
        let cache = ChunkCache::default();
        let mut fetched = Fetched::default();
        cache.fetch(&meta, &[0, 1], &mut fetched).unwrap();
        let leaves = meta.leaves(256, 256).unwrap();
        let hashes: Vec<Hash> = leaves.iter().map(LogLeaf::leaf_hash).collect();
        assert_eq!(fetched.chunk(1), Some(hashes));
        assert_eq!(fetched.chunk(2), None);
        // Chunk 2 (leaves 512..768) is not all stored.
        let mut more = Fetched::default();
        let error = cache.fetch(&meta, &[1, 2], &mut more).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
    }
}
