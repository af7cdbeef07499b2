//! What readers see, kept in memory by the writer: the registry log's
//! upper hashes (a [`TiledLog`]: the nodes inside complete chunks are
//! rebuilt from leaves read from the store, see `chunks.rs`), the recent
//! checkpoints with their maps, the operator log, the status of recent
//! records and the checkpointed length (which waiters watch). Readers take
//! short read locks; nothing here does IO.

use std::collections::VecDeque;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use cairn_protocol::LogLeaf;
use cairn_protocol::{PublicKey, SignedCheckpoint};
use cairn_transparency::log::TiledLog;
use cairn_transparency::map::Map;
use tokio::sync::watch;

use crate::cache::Generations;
use crate::registry::RecordStatus;
use crate::sequencer::RecordKey;
use crate::storage::{Batch, StoredRecord};

/// The operator log as readers need it.
#[derive(Default)]
pub(crate) struct OperatorView {
    /// Keys that may sign checkpoints (the first signs them).
    pub keys: Vec<PublicKey>,
    /// The operator log's records with their registry indexes: short, and
    /// part of nearly every fetch, so served from memory.
    pub records: Vec<(u64, StoredRecord)>,
    /// The namespaces the operator log names, in order, each with the
    /// registry it is imported from (`None`: defined here).
    pub namespaces: Vec<(String, Option<String>)>,
}

/// How many recent maps the view keeps (see [`View::add_checkpoint`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keep {
    /// Most maps.
    pub count: usize,
    /// Most nodes the maps older than the latest keep alive.
    pub nodes: usize,
}

impl Keep {
    /// The limits of `config`.
    pub fn of(config: &crate::Config) -> Keep {
        Keep {
            count: config.recent_checkpoints.max(1),
            nodes: config.recent_map_nodes,
        }
    }
}

/// The readers' view.
pub(crate) struct View {
    log: RwLock<TiledLog>,
    /// Recent checkpoints with the map at each, oldest first.
    recent: RwLock<VecDeque<(SignedCheckpoint, Map)>>,
    operator: RwLock<OperatorView>,
    /// Where recently decided records stand (`Processing` with its index
    /// once sequenced; readers turn it into `Published` by the
    /// checkpointed length). A miss means: ask the store.
    statuses: RwLock<Generations<RecordKey, RecordStatus>>,
    /// The log length of the latest checkpoint.
    checkpointed: watch::Sender<u64>,
    /// One past the registry index of the newest notice record known
    /// (0: none): readers read the notice log again only when it may hold
    /// records they have not read.
    last_notice: std::sync::atomic::AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl View {
    /// A view of `log`, the latest checkpoint (if any) with its map, and the
    /// operator log.
    pub fn new(
        log: TiledLog,
        latest: Option<(SignedCheckpoint, Map)>,
        operator: OperatorView,
        status_generation: usize,
    ) -> View {
        let length = latest
            .as_ref()
            .map_or(0, |(cp, _)| cp.contents.checkpoint.log_length);
        View {
            log: RwLock::new(log),
            recent: RwLock::new(latest.into_iter().collect()),
            operator: RwLock::new(operator),
            statuses: RwLock::new(Generations::new(status_generation)),
            checkpointed: watch::Sender::new(length),
            last_notice: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Notes the leaves `leaves`, the first at registry index `first`:
    /// where the notice log grew.
    pub fn note_leaves<'a>(&self, first: u64, leaves: impl IntoIterator<Item = &'a LogLeaf>) {
        let notices = cairn_protocol::LogId::notices();
        for (i, leaf) in leaves.into_iter().enumerate() {
            if leaf.log_id == notices {
                self.note_notice(first + i as u64);
            }
        }
    }

    /// Notes a notice record at registry index `index`.
    pub fn note_notice(&self, index: u64) {
        self.last_notice
            .fetch_max(index + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One past the index of the newest notice record known (0: none).
    pub fn last_notice(&self) -> u64 {
        self.last_notice.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The registry log (the hashes it keeps in memory).
    pub fn log(&self) -> RwLockReadGuard<'_, TiledLog> {
        read(&self.log)
    }

    /// The recent checkpoints, oldest first.
    pub fn recent(&self) -> RwLockReadGuard<'_, VecDeque<(SignedCheckpoint, Map)>> {
        read(&self.recent)
    }

    /// The operator log.
    pub fn operator(&self) -> RwLockReadGuard<'_, OperatorView> {
        read(&self.operator)
    }

    /// The latest checkpoint.
    pub fn latest(&self) -> Option<SignedCheckpoint> {
        self.recent().back().map(|(cp, _)| cp.clone())
    }

    /// The log length of the latest checkpoint.
    pub fn checkpointed_length(&self) -> u64 {
        *self.checkpointed.borrow()
    }

    /// A receiver of the checkpointed length, for waiters.
    pub fn watch_checkpointed(&self) -> watch::Receiver<u64> {
        self.checkpointed.subscribe()
    }

    /// Where a recently decided record stands, if the view knows it.
    pub fn status(&self, key: &RecordKey) -> Option<RecordStatus> {
        let status = read(&self.statuses).peek(key).cloned()?;
        Some(self.published(status))
    }

    /// `status`, published if the latest checkpoint covers it.
    pub fn published(&self, status: RecordStatus) -> RecordStatus {
        match status {
            RecordStatus::Processing { index } if index < self.checkpointed_length() => {
                RecordStatus::Published { index }
            }
            other => other,
        }
    }

    /// Appends committed leaves' hashes to the log.
    pub fn push_leaves(&self, hashes: impl IntoIterator<Item = cairn_protocol::Hash>) {
        let mut log = write(&self.log);
        for hash in hashes {
            log.push(hash);
        }
    }

    /// Replaces the log with `log`, which extends it (a replica that took
    /// the lead loaded every committed leaf afresh).
    pub fn replace_log(&self, log: TiledLog) {
        *write(&self.log) = log;
    }

    /// Replaces the operator view.
    pub fn set_operator(&self, operator: OperatorView) {
        *write(&self.operator) = operator;
    }

    /// Records where the records of a committed batch stand.
    pub fn remember(&self, batch: &Batch) {
        let mut statuses = write(&self.statuses);
        for r in &batch.records {
            statuses.insert((r.log_id, r.record_id), RecordStatus::of(&r.state));
        }
        for (log_id, record_id, index) in &batch.sequenced {
            statuses.insert(
                (*log_id, *record_id),
                RecordStatus::Processing { index: *index },
            );
        }
        for (log_id, record_id, reason) in &batch.rejected {
            statuses.insert(
                (*log_id, *record_id),
                RecordStatus::Rejected {
                    reason: reason.clone(),
                },
            );
        }
        for (log_id, record_id, missing) in &batch.still_missing {
            statuses.insert(
                (*log_id, *record_id),
                RecordStatus::Sourcing {
                    missing: missing.clone(),
                },
            );
        }
    }

    /// Adds operator records to the operator view and sets its keys.
    pub fn extend_operator(
        &self,
        keys: Vec<PublicKey>,
        namespaces: Vec<(String, Option<String>)>,
        records: Vec<(u64, StoredRecord)>,
    ) {
        let mut operator = write(&self.operator);
        operator.keys = keys;
        operator.namespaces = namespaces;
        operator.records.extend(records);
    }

    /// Adds a committed checkpoint and wakes those waiting for it. Keeps
    /// at most `keep.count` recent maps, fewer when the older ones hold
    /// more than `keep.nodes` nodes that newer ones replaced (but then
    /// still the latest two).
    pub fn add_checkpoint(&self, checkpoint: SignedCheckpoint, map: Map, keep: Keep) {
        let length = checkpoint.contents.checkpoint.log_length;
        {
            let mut recent = write(&self.recent);
            recent.push_back((checkpoint, map));
            // What keeping the oldest alive costs: the nodes every later
            // version replaced.
            let mut held: usize = recent.iter().skip(1).map(|(_, m)| m.created_nodes()).sum();
            while recent.len() > keep.count || (recent.len() > 2 && held > keep.nodes) {
                recent.pop_front();
                held -= recent.front().map_or(0, |(_, m)| m.created_nodes());
            }
        }
        self.checkpointed.send_replace(length);
    }
}

#[cfg(test)]
mod tests {
    use cairn_protocol::{Checkpoint, Hash, PrivateKey, TimestampedCheckpoint};

    use super::*;

    fn checkpoint(key: &PrivateKey, length: u64, map: &Map) -> SignedCheckpoint {
        TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root: Hash::of(length.to_le_bytes()),
                log_length: length,
                map_root: map.root(),
            },
            timestamp: length,
        }
        .sign(key)
    }

    #[test]
    fn old_maps_are_dropped_by_count_or_by_the_nodes_they_keep_alive() {
        let key = PrivateKey::generate();
        let view = View::new(TiledLog::new(), None, OperatorView::default(), 16);
        let mut map =
            Map::new().apply((0u64..1000).map(|i| (Hash::of(i.to_le_bytes()), Hash::of([1]))));
        let keep = Keep {
            count: 8,
            nodes: 3_000,
        };
        // Small changes: the count bounds.
        for length in 1..=20u64 {
            map = map.apply([(Hash::of(length.to_le_bytes()), Hash::of([2]))]);
            view.add_checkpoint(checkpoint(&key, length, &map), map.clone(), keep);
        }
        assert_eq!(view.recent().len(), 8);
        assert_eq!(view.checkpointed_length(), 20);
        // Large changes: the nodes bound, but the latest two stay.
        for length in 21..=30u64 {
            map = map.apply(
                (0u64..1000).map(|i| (Hash::of(i.to_le_bytes()), Hash::of(length.to_le_bytes()))),
            );
            assert!(map.created_nodes() > 1000);
            view.add_checkpoint(checkpoint(&key, length, &map), map.clone(), keep);
            let recent = view.recent();
            let held: usize = recent.iter().skip(1).map(|(_, m)| m.created_nodes()).sum();
            assert!(
                recent.len() == 2 || held <= keep.nodes,
                "{} maps hold {held}",
                recent.len()
            );
        }
        let recent = view.recent();
        assert_eq!(recent.len(), 2, "each map replaced most of the last one");
        assert_eq!(
            recent
                .back()
                .map(|(cp, _)| cp.contents.checkpoint.log_length),
            Some(30)
        );
    }
}
