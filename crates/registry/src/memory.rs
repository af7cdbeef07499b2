//! In-memory storage beside each of the engine's storage traits (as
//! `VecLog` sits beside `LogData`): for tests of the engine and the
//! sequencer, and to show what a backend must do. Nothing here is durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};

use crate::auth::{AuthStore, TokenEntry, TokenInfo};
use crate::oci::{
    Account, BlobStore, Digest, Digester, Finished, ManifestWrite, OciStore, SessionWriter,
    StoredManifest, TrustedKey, UploadSession,
};
use crate::policy::PublishPolicy;
use crate::storage::{
    AdminRequest, Batch, ByteReader, ContentStore, Loaded, MetaStore, PendingContent, RecordState,
    SnapshotWriter, StoreError, StoredRecord,
};

/// Bytes shared with the store, read through a cursor without a copy.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[derive(Default)]
struct Oci {
    blobs: BTreeSet<(String, Digest)>,
    manifests: BTreeMap<(String, Digest), StoredManifest>,
    tags: BTreeMap<(String, String), Digest>,
    uploads: BTreeMap<String, UploadSession>,
    policy: HashMap<String, bool>,
    /// By (namespace, package or "", key id).
    trusted: BTreeMap<(String, String, String), TrustedKey>,
}

impl Oci {
    fn put(&mut self, write: &ManifestWrite) {
        let repo = write.repository.clone();
        self.manifests
            .entry((repo.clone(), write.manifest.digest.clone()))
            .or_insert_with(|| write.manifest.clone());
        if let Some(tag) = &write.tag {
            self.tags
                .insert((repo.clone(), tag.clone()), write.manifest.digest.clone());
        }
        for digest in &write.links {
            self.blobs.insert((repo.clone(), digest.clone()));
        }
    }
}

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
    snapshot: Option<(u64, Arc<Vec<u8>>)>,
    manifests: Vec<ManifestWrite>,
    oci: Oci,
    accounts: BTreeMap<String, Account>,
    tokens: HashMap<[u8; 32], TokenEntry>,
    publish_policies: HashMap<String, PublishPolicy>,
}

/// Records, leaves, checkpoints and names, OCI metadata, accounts and
/// tokens in memory (one store, as in SQLite, so a record and the manifest
/// it carries commit together).
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
    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError> {
        let meta = self.lock();
        let from = usize::try_from(leaves_from)
            .unwrap_or(usize::MAX)
            .min(meta.leaves.len());
        Ok(Loaded {
            log_length: meta.leaves.len() as u64,
            leaves: meta.leaves[from..].to_vec(),
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
        for write in &batch.manifests {
            meta.oci.put(write);
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

    fn publish_policy(&self, namespace: &str) -> Result<PublishPolicy, StoreError> {
        Ok(self
            .lock()
            .publish_policies
            .get(namespace)
            .cloned()
            .unwrap_or_default())
    }
    fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        if let Some(tag) = if_tag {
            let now = state
                .publish_policies
                .get(namespace)
                .cloned()
                .unwrap_or_default();
            if now.tag() != tag {
                return Ok(false);
            }
        }
        state
            .publish_policies
            .insert(namespace.to_owned(), policy.clone());
        Ok(true)
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

    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        Ok(MemoryMeta::request_define_namespace(self, namespace))
    }

    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.lock().admin.iter_mut().find(|(r, _)| r.id == id) {
            entry.1 = Some(outcome.to_owned());
        }
        Ok(())
    }

    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError> {
        let mut bytes = Vec::new();
        write(&mut bytes).map_err(|e| StoreError::io("map snapshot", &e))?;
        self.lock().snapshot = Some((log_length, Arc::new(bytes)));
        Ok(())
    }

    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError> {
        Ok(self.lock().snapshot.clone().map(|(length, bytes)| {
            let reader: ByteReader = Box::new(Cursor::new(SharedBytes(bytes)));
            (length, reader)
        }))
    }
}

/// Release content in memory.
#[derive(Clone, Default)]
pub struct MemoryContent {
    files: Arc<Mutex<HashMap<Hash, Arc<Vec<u8>>>>>,
    tiles: Arc<Mutex<HashMap<String, Vec<u8>>>>,
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
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tiles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned())
    }

    fn put_tile(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.tiles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_owned(), bytes.to_vec());
        Ok(())
    }

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
        Ok(Some(slice(&bytes, start, len)))
    }

    fn remove(&self, digest: &Hash) -> Result<(), StoreError> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
        Ok(())
    }
}

impl OciStore for MemoryMeta {
    fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let meta = self.lock();
        let oci = &meta.oci;
        let names: BTreeSet<&String> = oci
            .blobs
            .iter()
            .map(|(r, _)| r)
            .chain(oci.manifests.keys().map(|(r, _)| r))
            .chain(oci.tags.keys().map(|(r, _)| r))
            .filter(|r| last.is_none_or(|l| r.as_str() > l))
            .collect();
        Ok(names.into_iter().take(limit).cloned().collect())
    }

    fn repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        let meta = self.lock();
        Ok(meta.oci.blobs.iter().any(|(r, _)| r == repository)
            || meta.oci.manifests.keys().any(|(r, _)| r == repository))
    }

    fn link_blob(&self, repository: &str, digest: &Digest) -> Result<(), StoreError> {
        self.lock()
            .oci
            .blobs
            .insert((repository.to_owned(), digest.clone()));
        Ok(())
    }

    fn blob_linked(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .oci
            .blobs
            .contains(&(repository.to_owned(), digest.clone())))
    }

    fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .oci
            .blobs
            .remove(&(repository.to_owned(), digest.clone())))
    }

    fn put_manifest(&self, write: &ManifestWrite) -> Result<(), StoreError> {
        self.lock().oci.put(write);
        Ok(())
    }

    fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StoreError> {
        Ok(self
            .lock()
            .oci
            .manifests
            .get(&(repository.to_owned(), digest.clone()))
            .cloned())
    }

    fn tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        Ok(self
            .lock()
            .oci
            .tags
            .get(&(repository.to_owned(), tag.to_owned()))
            .cloned())
    }

    fn tags(&self, repository: &str) -> Result<Vec<(String, Digest)>, StoreError> {
        Ok(self
            .lock()
            .oci
            .tags
            .iter()
            .filter(|((r, _), _)| r == repository)
            .map(|((_, t), d)| (t.clone(), d.clone()))
            .collect())
    }

    fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let mut meta = self.lock();
        let existed = meta
            .oci
            .manifests
            .remove(&(repository.to_owned(), digest.clone()))
            .is_some();
        meta.oci
            .tags
            .retain(|(r, _), d| !(r == repository && d == digest));
        Ok(existed)
    }

    fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .oci
            .tags
            .remove(&(repository.to_owned(), tag.to_owned()))
            .is_some())
    }

    fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        Ok(self
            .lock()
            .oci
            .manifests
            .iter()
            .filter(|((r, _), m)| r == repository && m.subject.as_ref() == Some(subject))
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.lock()
            .oci
            .uploads
            .insert(session.id.clone(), session.clone());
        Ok(())
    }

    fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError> {
        Ok(self.lock().oci.uploads.get(id).cloned())
    }

    fn touch_upload(&self, id: &str, now: u64) -> Result<(), StoreError> {
        if let Some(session) = self.lock().oci.uploads.get_mut(id) {
            session.updated = now;
        }
        Ok(())
    }

    fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        self.lock().oci.uploads.remove(id);
        Ok(())
    }

    fn stale_uploads(&self, before: u64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .lock()
            .oci
            .uploads
            .values()
            .filter(|s| s.updated < before)
            .map(|s| s.id.clone())
            .collect())
    }

    fn count_uploads(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let state = self.lock();
        let n = match account {
            Some(account) => state
                .oci
                .uploads
                .values()
                .filter(|s| s.account == account)
                .count(),
            None => state.oci.uploads.len(),
        };
        Ok(n as u64)
    }

    fn oci_create_allowed(&self, namespace: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .oci
            .policy
            .get(namespace)
            .copied()
            .unwrap_or(true))
    }

    fn trusted_keys(&self, namespace: &str) -> Result<Vec<TrustedKey>, StoreError> {
        Ok(self
            .lock()
            .oci
            .trusted
            .iter()
            .filter(|((ns, _, _), _)| ns == namespace)
            .map(|(_, key)| key.clone())
            .collect())
    }

    fn trust_key(&self, key: &TrustedKey) -> Result<(), StoreError> {
        let at = (
            key.namespace.clone(),
            key.package.clone().unwrap_or_default(),
            key.key_id.clone(),
        );
        self.lock().oci.trusted.insert(at, key.clone());
        Ok(())
    }

    fn untrust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let at = (
            namespace.to_owned(),
            package.unwrap_or_default().to_owned(),
            key_id.to_owned(),
        );
        Ok(self.lock().oci.trusted.remove(&at).is_some())
    }
}

impl MemoryMeta {
    /// Sets whether packages may be created in `namespace` by an OCI push.
    pub fn set_oci_create(&self, namespace: &str, allowed: bool) {
        self.lock().oci.policy.insert(namespace.to_owned(), allowed);
    }
}

impl AuthStore for MemoryMeta {
    fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
        let mut meta = self.lock();
        let account = meta
            .accounts
            .entry(name.to_owned())
            .or_insert_with(|| Account {
                name: name.to_owned(),
                custodial_key: cairn_protocol::PrivateKey::generate(),
            });
        Ok(account.clone())
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.lock().accounts.get(name).cloned())
    }

    fn has_accounts(&self) -> Result<bool, StoreError> {
        Ok(!self.lock().accounts.is_empty())
    }

    fn add_token(&self, hash: &[u8; 32], info: &TokenInfo, note: &str) -> Result<(), StoreError> {
        let mut meta = self.lock();
        let created = meta.tokens.len() as u64;
        meta.tokens.insert(
            *hash,
            TokenEntry {
                hash: *hash,
                info: info.clone(),
                note: note.to_owned(),
                created,
            },
        );
        Ok(())
    }

    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        Ok(self.lock().tokens.get(hash).map(|t| t.info.clone()))
    }

    fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        let mut tokens: Vec<TokenEntry> = self.lock().tokens.values().cloned().collect();
        tokens.sort_by_key(|t| t.created);
        Ok(tokens)
    }

    fn revoke_token(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.lock().tokens.remove(hash).is_some())
    }

    fn purge_tokens(&self, now: u64) -> Result<usize, StoreError> {
        let mut meta = self.lock();
        let before = meta.tokens.len();
        meta.tokens.retain(|_, token| !token.info.expired(now));
        Ok(before - meta.tokens.len())
    }
}

type Shared = Arc<Mutex<Vec<u8>>>;

/// OCI blobs and upload sessions in memory.
#[derive(Clone, Default)]
pub struct MemoryBlobs {
    blobs: Arc<Mutex<HashMap<Digest, Arc<Vec<u8>>>>>,
    sessions: Arc<Mutex<HashMap<String, Shared>>>,
}

struct MemorySession(Shared);

impl SessionWriter for MemorySession {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<u64, StoreError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).len() as u64)
    }
}

impl MemoryBlobs {
    fn session(&self, id: &str) -> Option<Shared> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

fn missing_session(id: &str) -> StoreError {
    StoreError::Backend(format!("no upload session `{id}`"))
}

impl BlobStore for MemoryBlobs {
    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
        Ok(())
    }

    fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        Ok(self
            .blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .map(|b| b.len() as u64))
    }

    fn read(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError> {
        let found = self
            .blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .cloned();
        Ok(found.map(|bytes| slice(&bytes, start, len)))
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.clone(), Arc::new(bytes.to_vec()));
        Ok(())
    }

    fn create_session(&self, id: &str) -> Result<(), StoreError> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), Shared::default());
        Ok(())
    }

    fn session_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .session(id)
            .map(|b| b.lock().unwrap_or_else(|e| e.into_inner()).len() as u64))
    }

    fn append_session(&self, id: &str) -> Result<Box<dyn SessionWriter>, StoreError> {
        let bytes = self.session(id).ok_or_else(|| missing_session(id))?;
        Ok(Box::new(MemorySession(bytes)))
    }

    fn finish_session(&self, id: &str, digest: &Digest) -> Result<Finished, StoreError> {
        let bytes = self.session(id).ok_or_else(|| missing_session(id))?;
        let bytes = bytes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut digester = Digester::new(digest.algorithm());
        digester.update(&bytes);
        let found = digester.finish();
        if &found != digest {
            return Ok(Finished::Mismatch { found });
        }
        let size = bytes.len() as u64;
        self.put(digest, &bytes)?;
        self.delete_session(id)?;
        Ok(Finished::Stored { size })
    }

    fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect())
    }
}

/// `len` bytes of `bytes` from `start`, as a reader.
fn slice(bytes: &[u8], start: u64, len: u64) -> ByteReader {
    let start = usize::try_from(start)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start
        .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        .min(bytes.len());
    Box::new(Cursor::new(bytes[start..end].to_vec()))
}

/// Who holds the lead among [`SharedMemory`] handles, and the latest
/// checkpoint committed through any of them.
#[derive(Default)]
struct LeadState {
    holder: Option<(u64, String)>,
    checkpoint: u64,
    handles: u64,
    secret: [u8; 32],
}

#[derive(Default)]
struct LeadCell {
    state: Mutex<LeadState>,
    changed: std::sync::Condvar,
}

/// One process's handle on a [`MemoryMeta`] that several registries in a
/// test share as replicas would share a database: it implements
/// [`Leadership`](crate::Leadership) (one handle leads at a time) and
/// fences [`MetaStore::commit`] (refused unless this handle leads), as the
/// PostgreSQL store does with its session. [`SharedMemory::lose_lead`]
/// plays the leader's database session ending.
pub struct SharedMemory {
    meta: Arc<MemoryMeta>,
    cell: Arc<LeadCell>,
    id: u64,
}

impl SharedMemory {
    /// The first handle on `meta`.
    pub fn new(meta: Arc<MemoryMeta>) -> SharedMemory {
        let cell = Arc::new(LeadCell::default());
        cell.state.lock().unwrap_or_else(|e| e.into_inner()).secret = [7; 32];
        SharedMemory::handle(meta, cell)
    }

    fn handle(meta: Arc<MemoryMeta>, cell: Arc<LeadCell>) -> SharedMemory {
        let id = {
            let mut state = cell.state.lock().unwrap_or_else(|e| e.into_inner());
            state.handles += 1;
            state.handles
        };
        SharedMemory { meta, cell, id }
    }

    /// Another process's handle on the same store.
    pub fn another(&self) -> SharedMemory {
        SharedMemory::handle(self.meta.clone(), self.cell.clone())
    }

    fn state(&self) -> MutexGuard<'_, LeadState> {
        self.cell.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops this handle's lead, as if its session with the store ended.
    pub fn lose_lead(&self) {
        let mut state = self.state();
        if state.holder.as_ref().is_some_and(|(id, _)| *id == self.id) {
            state.holder = None;
        }
    }
}

impl crate::storage::Leadership for SharedMemory {
    fn try_lead(&self, url: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        match &state.holder {
            Some((id, _)) => Ok(*id == self.id),
            None => {
                state.holder = Some((self.id, url.to_owned()));
                Ok(true)
            }
        }
    }

    fn leading(&self) -> bool {
        self.state()
            .holder
            .as_ref()
            .is_some_and(|(id, _)| *id == self.id)
    }

    fn resign(&self) {
        self.lose_lead();
    }

    fn leader_url(&self) -> Result<Option<String>, StoreError> {
        Ok(self.state().holder.as_ref().map(|(_, url)| url.clone()))
    }

    fn wait_checkpoint(&self, known: u64, timeout: std::time::Duration) -> Result<u64, StoreError> {
        let state = self.state();
        let (state, _) = self
            .cell
            .changed
            .wait_timeout_while(state, timeout, |s| s.checkpoint <= known)
            .unwrap_or_else(|e| e.into_inner());
        Ok(state.checkpoint)
    }

    fn replica_secret(&self) -> Result<[u8; 32], StoreError> {
        Ok(self.state().secret)
    }
}

impl MetaStore for SharedMemory {
    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError> {
        self.meta.load(leaves_from)
    }
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.holder.as_ref().is_none_or(|(id, _)| *id != self.id) {
            return Err(StoreError::Backend(
                "this process does not lead: commit refused".into(),
            ));
        }
        self.meta.commit(batch)?;
        if let Some(cp) = &batch.checkpoint {
            state.checkpoint = state.checkpoint.max(cp.contents.checkpoint.log_length);
            self.cell.changed.notify_all();
        }
        Ok(())
    }
    fn record(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.meta.record(log_id, record_id)
    }
    fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.meta.log_records(log_id, after, before, limit)
    }
    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.meta.checkpoint(log_length)
    }
    fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError> {
        self.meta.package_names(log_ids)
    }
    fn package_list(&self) -> Result<Vec<PackageName>, StoreError> {
        self.meta.package_list()
    }
    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError> {
        self.meta.leaves_at(indexes)
    }
    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError> {
        self.meta.leaves(start, limit)
    }
    fn publish_policy(&self, namespace: &str) -> Result<PublishPolicy, StoreError> {
        self.meta.publish_policy(namespace)
    }
    fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.meta.set_publish_policy(namespace, policy, if_tag)
    }
    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError> {
        self.meta.admin_requests()
    }
    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        MetaStore::request_define_namespace(self.meta.as_ref(), namespace)
    }
    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        self.meta.finish_admin_request(id, outcome)
    }
    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError> {
        self.meta.save_map_snapshot(log_length, write)
    }
    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError> {
        self.meta.load_map_snapshot()
    }
}
