//! In-memory storage beside each of the engine's storage traits (as
//! `VecLog` sits beside `LogData`): for tests of the engine and the
//! sequencer, and to show what a backend must do. Nothing here is durable.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};

use crate::oci::ManifestWrite;
use crate::storage::{
    AdminRequest, Batch, ByteReader, ContentStore, Loaded, MetaStore, PendingContent, RecordState,
    StoreError, StoredRecord,
};

#[derive(Default)]
struct Meta {
    /// Every record, in insertion order.
    records: Vec<StoredRecord>,
    /// Where each record is in `records`.
    by_key: HashMap<(LogId, RecordId), usize>,
    leaves: Vec<LogLeaf>,
    checkpoints: BTreeMap<u64, SignedCheckpoint>,
    names: BTreeMap<LogId, PackageName>,
    admin: Vec<(AdminRequest, Option<String>)>,
    snapshot: Option<(u64, Vec<u8>)>,
    manifests: Vec<ManifestWrite>,
}

/// Records, leaves, checkpoints and names in memory.
#[derive(Default)]
pub struct MemoryMeta {
    inner: Mutex<Meta>,
    fail_commits: AtomicBool,
}

impl MemoryMeta {
    fn lock(&self) -> MutexGuard<'_, Meta> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every commit fail (or succeed again), as a full disk would.
    pub fn fail_commits(&self, fail: bool) {
        self.fail_commits.store(fail, Ordering::SeqCst);
    }

    /// The manifests committed with records, in commit order.
    pub fn manifests(&self) -> Vec<ManifestWrite> {
        self.lock().manifests.clone()
    }

    /// Leaves a request to define `namespace` for the running registry.
    pub fn request_define_namespace(&self, namespace: &str) -> i64 {
        let mut meta = self.lock();
        let id = meta.admin.len() as i64 + 1;
        meta.admin.push((
            AdminRequest {
                id,
                define_namespace: namespace.to_owned(),
            },
            None,
        ));
        id
    }

    /// The outcome of an admin request, once done.
    pub fn admin_outcome(&self, id: i64) -> Option<String> {
        self.lock()
            .admin
            .iter()
            .find(|(r, _)| r.id == id)
            .and_then(|(_, outcome)| outcome.clone())
    }
}

fn sequenced_index(record: &StoredRecord) -> Option<u64> {
    match record.state {
        RecordState::Sequenced { index } => Some(index),
        _ => None,
    }
}

impl MetaStore for MemoryMeta {
    fn load(&self) -> Result<Loaded, StoreError> {
        let meta = self.lock();
        Ok(Loaded {
            leaves: meta.leaves.clone(),
            checkpoint: meta.checkpoints.values().next_back().cloned(),
            sourcing: meta
                .records
                .iter()
                .filter(|r| matches!(r.state, RecordState::Sourcing { .. }))
                .cloned()
                .collect(),
        })
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if self.fail_commits.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("commits fail (test)".into()));
        }
        let mut meta = self.lock();
        // Check everything first: a commit is all or nothing.
        for (log_id, record_id, _) in &batch.sequenced {
            let sourcing = meta
                .by_key
                .get(&(*log_id, *record_id))
                .is_some_and(|i| matches!(meta.records[*i].state, RecordState::Sourcing { .. }));
            if !sourcing {
                return Err(StoreError::Corrupt(format!(
                    "record {record_id} of log {log_id} is not sourcing"
                )));
            }
        }
        let mut leaves: Vec<(u64, LogLeaf)> = batch
            .records
            .iter()
            .filter_map(|r| {
                sequenced_index(r).map(|i| {
                    let leaf = LogLeaf {
                        log_id: r.log_id,
                        record_id: r.record_id,
                    };
                    (i, leaf)
                })
            })
            .chain(batch.sequenced.iter().map(|(log_id, record_id, i)| {
                let leaf = LogLeaf {
                    log_id: *log_id,
                    record_id: *record_id,
                };
                (*i, leaf)
            }))
            .collect();
        leaves.sort_unstable_by_key(|(index, _)| *index);
        for (n, (index, _)) in leaves.iter().enumerate() {
            if *index != (meta.leaves.len() + n) as u64 {
                return Err(StoreError::Corrupt(format!(
                    "leaf {index} does not follow the log's {} leaves",
                    meta.leaves.len() + n
                )));
            }
        }
        for record in &batch.records {
            let at = meta.records.len();
            meta.by_key.insert((record.log_id, record.record_id), at);
            meta.records.push(record.clone());
        }
        for (log_id, record_id, index) in &batch.sequenced {
            if let Some(&i) = meta.by_key.get(&(*log_id, *record_id)) {
                meta.records[i].state = RecordState::Sequenced { index: *index };
            }
        }
        meta.leaves.extend(leaves.into_iter().map(|(_, leaf)| leaf));
        for (log_id, record_id, reason) in &batch.rejected {
            if let Some(&i) = meta.by_key.get(&(*log_id, *record_id)) {
                meta.records[i].state = RecordState::Rejected {
                    reason: reason.clone(),
                };
            }
        }
        for (log_id, record_id, missing) in &batch.still_missing {
            if let Some(&i) = meta.by_key.get(&(*log_id, *record_id)) {
                if let RecordState::Sourcing { since, .. } = meta.records[i].state {
                    meta.records[i].state = RecordState::Sourcing {
                        missing: missing.clone(),
                        since,
                    };
                }
            }
        }
        for (log_id, name) in &batch.names {
            meta.names.entry(*log_id).or_insert_with(|| name.clone());
        }
        meta.manifests.extend(batch.manifests.iter().cloned());
        if let Some(cp) = &batch.checkpoint {
            meta.checkpoints
                .insert(cp.contents.checkpoint.log_length, cp.clone());
        }
        Ok(())
    }

    fn record(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let meta = self.lock();
        Ok(meta
            .by_key
            .get(&(*log_id, *record_id))
            .map(|i| meta.records[*i].clone()))
    }

    fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        let meta = self.lock();
        let mut found: Vec<(u64, StoredRecord)> = meta
            .records
            .iter()
            .filter(|r| r.log_id == *log_id)
            .filter_map(|r| sequenced_index(r).map(|i| (i, r.clone())))
            .filter(|(i, _)| after.is_none_or(|a| *i > a) && *i < before)
            .collect();
        found.sort_by_key(|(i, _)| *i);
        found.truncate(limit);
        Ok(found)
    }

    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(&log_length).cloned())
    }

    fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError> {
        let meta = self.lock();
        Ok(log_ids.iter().map(|l| meta.names.get(l).cloned()).collect())
    }

    fn package_list(&self) -> Result<Vec<PackageName>, StoreError> {
        let meta = self.lock();
        let mut names: Vec<PackageName> = meta
            .names
            .iter()
            .filter(|(log_id, _)| {
                meta.records
                    .iter()
                    .any(|r| r.log_id == **log_id && sequenced_index(r).is_some())
            })
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        Ok(names)
    }

    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError> {
        let meta = self.lock();
        Ok(indexes
            .iter()
            .map(|i| {
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| meta.leaves.get(i))
                    .copied()
            })
            .collect())
    }

    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError> {
        let meta = self.lock();
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        Ok(meta
            .leaves
            .iter()
            .skip(start)
            .take(limit)
            .copied()
            .collect())
    }

    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError> {
        Ok(self
            .lock()
            .admin
            .iter()
            .filter(|(_, outcome)| outcome.is_none())
            .map(|(r, _)| r.clone())
            .collect())
    }

    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.lock().admin.iter_mut().find(|(r, _)| r.id == id) {
            entry.1 = Some(outcome.to_owned());
        }
        Ok(())
    }

    fn save_map_snapshot(&self, log_length: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.lock().snapshot = Some((log_length, bytes.to_vec()));
        Ok(())
    }

    fn load_map_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self.lock().snapshot.clone())
    }
}

/// Release content in memory.
#[derive(Clone, Default)]
pub struct MemoryContent {
    files: Arc<Mutex<HashMap<Hash, Arc<Vec<u8>>>>>,
}

impl MemoryContent {
    /// The size of the content with `digest`, if stored.
    pub fn size_of(&self, digest: &Hash) -> Option<u64> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .map(|b| b.len() as u64)
    }
}

struct MemoryPending {
    bytes: Vec<u8>,
    files: Arc<Mutex<HashMap<Hash, Arc<Vec<u8>>>>>,
}

impl PendingContent for MemoryPending {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn commit(self: Box<Self>, digest: &Hash) -> Result<(), StoreError> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*digest, Arc::new(self.bytes));
        Ok(())
    }
}

impl ContentStore for MemoryContent {
    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError> {
        Ok(Box::new(MemoryPending {
            bytes: Vec::new(),
            files: self.files.clone(),
        }))
    }

    fn size(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        Ok(self.size_of(digest))
    }

    fn read(&self, digest: &Hash, start: u64, len: u64) -> Result<Option<ByteReader>, StoreError> {
        let Some(bytes) = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned()
        else {
            return Ok(None);
        };
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(bytes.len());
        Ok(Some(Box::new(Cursor::new(bytes[start..end].to_vec()))))
    }
}
