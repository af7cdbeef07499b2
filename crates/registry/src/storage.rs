//! The storage the engine needs, as traits, and what crosses them. Bytes
//! cross as streams (readers and writers), never as file paths, so any
//! backend (files, an object store) fits. `cairn-store` implements them on
//! SQLite and the filesystem; [`crate::memory`] has in-memory ones for
//! tests.

use std::io::{Read, Write};
use std::time::Duration;

use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};
use thiserror::Error;

use crate::oci::ManifestWrite;

/// A storage failure. The engine never retries: it reports the failure to the
/// caller and keeps its in-memory state as it was before the failed commit.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The backend failed (IO, SQL, ...).
    #[error("storage failed: {0}")]
    Backend(String),
    /// Stored data does not parse or does not agree with itself.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The storage has no room left (a full disk or quota).
    #[error("storage is full: {0}")]
    Full(String),
}

impl StoreError {
    /// An IO failure while doing `what`: [`StoreError::Full`] when the
    /// disk or quota is full, else [`StoreError::Backend`].
    pub fn io(what: impl std::fmt::Display, e: &std::io::Error) -> StoreError {
        // ENOSPC and EDQUOT on Linux.
        let full = e.kind() == std::io::ErrorKind::StorageFull
            || e.kind() == std::io::ErrorKind::QuotaExceeded
            || matches!(e.raw_os_error(), Some(28) | Some(122));
        if full {
            StoreError::Full(format!("{what}: {e}"))
        } else {
            StoreError::Backend(format!("{what}: {e}"))
        }
    }

    /// Whether this is [`StoreError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }
}

/// A record as stored: its wire parts and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record id (hash of `content_bytes`).
    pub record_id: RecordId,
    /// The log it belongs to.
    pub log_id: LogId,
    /// The signed protobuf bytes of the record.
    pub content_bytes: Vec<u8>,
    /// The signing key id, `sha256:<hex>`.
    pub key_id: String,
    /// The signature, `ecdsa-p256:<base64>`.
    pub signature: String,
    /// Where the record stands.
    pub state: RecordState,
}

/// The life of a record in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordState {
    /// Accepted; waiting for the content it releases.
    Sourcing {
        /// Digests not uploaded yet.
        missing: Vec<Hash>,
        /// When it was accepted (seconds since the epoch).
        since: u64,
    },
    /// In the registry log at `index` (published once a checkpoint covers it).
    Sequenced {
        /// The registry index.
        index: u64,
    },
    /// Refused after it was accepted (content never arrived, or no longer valid).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// What the engine reads once at startup.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The number of leaves in the registry log.
    pub log_length: u64,
    /// The leaves at the registry index asked for and after, in registry
    /// order (the first is leaf `leaves_from`; none when `leaves_from` is
    /// the log length or more).
    pub leaves: Vec<LogLeaf>,
    /// The latest checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
    /// Records still waiting for content.
    pub sourcing: Vec<StoredRecord>,
}

/// One atomic write: everything in it becomes durable together, or nothing.
#[derive(Debug, Default)]
pub struct Batch {
    /// New records.
    pub records: Vec<StoredRecord>,
    /// Sourcing records whose content arrived: now in the log at this index.
    pub sequenced: Vec<(LogId, RecordId, u64)>,
    /// Sourcing records refused, with the reason.
    pub rejected: Vec<(LogId, RecordId, String)>,
    /// Sourcing records whose missing list shrank.
    pub still_missing: Vec<(LogId, RecordId, Vec<Hash>)>,
    /// Package names first seen in this batch.
    pub names: Vec<(LogId, PackageName)>,
    /// OCI manifests (and tags) that appear with the records that carry
    /// them: a Wasm push's release, a referrer's attestation.
    pub manifests: Vec<ManifestWrite>,
    /// A new checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.sequenced.is_empty()
            && self.rejected.is_empty()
            && self.still_missing.is_empty()
            && self.names.is_empty()
            && self.manifests.is_empty()
            && self.checkpoint.is_none()
    }
}

/// A request left in the store by an admin command for the running server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRequest {
    /// Its id.
    pub id: i64,
    /// A namespace to define.
    pub define_namespace: String,
}

/// Records, logs, checkpoints and indexes.
pub trait MetaStore: Send + Sync + 'static {
    /// What the engine reads at startup, in one consistent read: the log
    /// length, the latest checkpoint, the records waiting for content, and
    /// the leaves at index `leaves_from` and after (the engine rebuilds the
    /// log before them from a snapshot, or reads it in pieces with
    /// [`MetaStore::leaves`]; `u64::MAX` asks for no leaf).
    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError>;
    /// Writes `batch` atomically and durably.
    fn commit(&self, batch: &Batch) -> Result<(), StoreError>;
    /// A record of `log_id` by id. Record ids are unique within a log only:
    /// two packages may start with byte-identical `init` records.
    fn record(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<Option<StoredRecord>, StoreError>;
    /// Sequenced records of `log_id` with `after < index < before`, oldest
    /// first, at most `limit`.
    fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError>;
    /// Records by key (`None` where absent), read for the sequencer thread:
    /// a store may answer on its write connection, whose cache the
    /// sequencer thread's own commits keep warm. By default, [`MetaStore::record`].
    fn writer_records(
        &self,
        keys: &[(LogId, RecordId)],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError> {
        keys.iter().map(|(l, r)| self.record(l, r)).collect()
    }
    /// Every sequenced record of `log_id`, read for the sequencer thread
    /// (see [`MetaStore::writer_records`]). By default,
    /// [`MetaStore::log_records`].
    fn writer_log(&self, log_id: &LogId) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.log_records(log_id, None, u64::MAX, usize::MAX)
    }
    /// The checkpoint at `log_length`, if one was made.
    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError>;
    /// The names of the given package logs.
    fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError>;
    /// The names of every package, in name order.
    fn package_list(&self) -> Result<Vec<PackageName>, StoreError>;
    /// The log leaves at the given registry indexes (`None` when absent).
    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError>;
    /// Up to `limit` leaves from `start`, in order.
    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError>;
    /// Admin requests not yet done.
    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError>;
    /// Leaves a request to define `namespace` for the process that
    /// sequences (which runs admin requests as it keeps house); its id.
    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError>;
    /// Marks an admin request done, with its outcome.
    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError>;
    /// Saves a snapshot of the map at `log_length`, replacing the previous
    /// one once all of it is saved: `write` writes the bytes (opaque to the
    /// store) to the writer it is given, as it makes them, so a snapshot
    /// of a large map is never held whole in memory. An error from `write`
    /// leaves the previous snapshot in place.
    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError>;
    /// The latest map snapshot: the log length it is at, and its bytes as
    /// a stream.
    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError>;
    /// The publish policy of `namespace` (the default, asking nothing,
    /// where none was set). A store that keeps none answers the default.
    fn publish_policy(&self, namespace: &str) -> Result<crate::policy::PublishPolicy, StoreError> {
        let _ = namespace;
        Ok(crate::policy::PublishPolicy::default())
    }
    /// Sets the publish policy of `namespace`; with `if_tag`, only if its
    /// policy now has that [`PublishPolicy::tag`](crate::policy::PublishPolicy::tag)
    /// (compared and set atomically). Answers whether it was set
    /// (`false`: another edit came first, nothing changed).
    fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &crate::policy::PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _ = (namespace, policy, if_tag);
        Err(StoreError::Backend(
            "this store keeps no publish policies".into(),
        ))
    }
    /// Whether reads are answered from this machine's disk or memory (in
    /// microseconds), so that a small one may run on an async worker; a
    /// store across the network says no, and its reads go to the blocking
    /// pool.
    fn local(&self) -> bool {
        true
    }
}

/// A stream of stored bytes.
pub type ByteReader = Box<dyn Read + Send>;

/// What writes a map snapshot's bytes into the writer a store gives it
/// ([`MetaStore::save_map_snapshot`]).
pub type SnapshotWriter<'a> = &'a mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>;

/// Release content: bytes that passed the content door ([`crate::Admission`]),
/// by SHA-256 digest. Bytes become visible only through
/// [`PendingContent::commit`]; an upload dropped before that leaves nothing.
pub trait ContentStore: Send + Sync + 'static {
    /// Starts writing new content.
    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError>;
    /// The size of the content with `digest`, if stored.
    fn size(&self, digest: &Hash) -> Result<Option<u64>, StoreError>;
    /// `len` bytes of the content from `start` (within its size), if stored.
    fn read(&self, digest: &Hash, start: u64, len: u64) -> Result<Option<ByteReader>, StoreError>;
    /// Removes the content's bytes (a purge after a take-down); removing
    /// content not stored is not an error.
    fn remove(&self, digest: &Hash) -> Result<(), StoreError>;
    /// A full tile of the log (`tile/<L>/<N>` or `tile/entries/<N>`, the
    /// C2SP path), if kept: full tiles never change, so they are served
    /// from here rather than made from the log again.
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keeps a full tile under its path (writing the same bytes again is
    /// harmless).
    fn put_tile(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// A URL the content can be downloaded from directly, valid for at
    /// least `valid_for` (an object store's presigned URL), when the store
    /// is configured to hand them out; `None` means: serve the bytes.
    fn download_url(
        &self,
        digest: &Hash,
        valid_for: Duration,
    ) -> Result<Option<String>, StoreError> {
        let _ = (digest, valid_for);
        Ok(None)
    }
}

/// Content being written.
pub trait PendingContent: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Makes the bytes durable and visible under `digest` (the caller has
    /// checked the digest).
    fn commit(self: Box<Self>, digest: &Hash) -> Result<(), StoreError>;
}

/// The lead among registry processes that share one store (PostgreSQL).
/// One process leads at a time: it alone sequences and commits batches
/// ([`MetaStore::commit`]). The lead is held by a session of the store
/// (an advisory lock), and commits go through that same session, so a
/// leader that lost its session can no longer commit: commits are fenced,
/// and two processes never both write the log.
pub trait Leadership: Send + Sync + 'static {
    /// Tries to take the lead, advertising `url` as where this process
    /// accepts writes forwarded by the others. `Ok(true)` once held (and
    /// while it is still held).
    fn try_lead(&self, url: &str) -> Result<bool, StoreError>;
    /// Whether this process holds the lead now (false once the session
    /// that held it is lost: then [`MetaStore::commit`] fails).
    fn leading(&self) -> bool;
    /// Gives up the lead, if held (at shutdown).
    fn resign(&self);
    /// The URL the process that leads now advertised, if one leads.
    fn leader_url(&self) -> Result<Option<String>, StoreError>;
    /// Waits until a checkpoint of a log longer than `known` is stored, or
    /// `timeout` passes; returns the log length of the latest stored
    /// checkpoint (`0` when there is none). Wakes promptly when the leader
    /// commits a checkpoint (a notification), without polling the store
    /// more than once per `timeout`.
    fn wait_checkpoint(&self, known: u64, timeout: Duration) -> Result<u64, StoreError>;
    /// A secret the processes sharing the store know (made once and kept
    /// in the store): proves a forwarded request comes from one of them.
    fn replica_secret(&self) -> Result<[u8; 32], StoreError>;
}
