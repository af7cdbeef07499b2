//! The registry engine: one writer thread sequences records and signs
//! checkpoints; any number of readers answer from the in-memory log and the
//! recent checkpoint maps, and from the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_protocol::attestation::{Attestation, AttestationLog, AttestationRecord};
use cairn_protocol::operator::{OperatorEntry, OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState};
use cairn_protocol::{
    Checkpoint, Envelope, Hash, HashAlgorithm, Head, KeyId, LogId, LogLeaf, MapLeaf, PackageName,
    PrivateKey, PublicKey, RecordId, SignatureChecked, SignedCheckpoint, Timestamp,
    TimestampedCheckpoint,
};
use cairn_transparency::log::{ConsistencyProof, InclusionProof, LogProofBundle, VecLog};
use cairn_transparency::map::{Map, MapProofBundle};
use rayon::prelude::*;
use sha2::Digest;
use thiserror::Error;

use crate::content::{Upload, UploadError};
use crate::storage::{
    Batch, ContentLocation, ContentStore, MetaStore, RecordState, StoreError, StoredRecord,
};

/// Tuning knobs. The defaults suit a small registry on one machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest content upload accepted, in bytes.
    pub max_content_bytes: u64,
    /// A checkpoint is made once no record arrived for this long...
    pub checkpoint_quiet: Duration,
    /// ...or once this many records wait for one...
    pub checkpoint_every: usize,
    /// ...or once the oldest waiting record is this old.
    pub checkpoint_max_delay: Duration,
    /// A record whose content is not uploaded within this time is rejected.
    pub content_timeout: Duration,
    /// How many recent checkpoints keep their map for inclusion proofs.
    pub recent_checkpoints: usize,
    /// Most records committed in one transaction.
    pub batch_max: usize,
    /// Most records per log in one `fetch/logs` answer.
    pub fetch_limit_max: usize,
    /// A snapshot of the map is saved (in the background) whenever the log
    /// grew by this many records since the last one, and at shutdown, so a
    /// restart does not rehash the whole map.
    pub snapshot_every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_content_bytes: 100 * 1024 * 1024,
            checkpoint_quiet: Duration::from_millis(10),
            checkpoint_every: 1000,
            checkpoint_max_delay: Duration::from_millis(200),
            content_timeout: Duration::from_secs(600),
            recent_checkpoints: 256,
            batch_max: 2048,
            fetch_limit_max: 1000,
            snapshot_every: 100_000,
        }
    }
}

/// Where a record stands, as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordStatus {
    /// Waiting for the listed content.
    Sourcing {
        /// Digests to upload.
        missing: Vec<Hash>,
    },
    /// In the log, not yet covered by a checkpoint.
    Processing,
    /// Covered by a checkpoint.
    Published {
        /// Its registry index.
        index: u64,
    },
    /// Refused after acceptance.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// Why a record was refused at submission. Nothing of it is stored.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The package's namespace is not defined by the operator log.
    #[error("namespace `{0}` is not defined on the registry")]
    NamespaceNotDefined(String),
    /// The namespace belongs to another registry.
    #[error("namespace `{0}` is an imported namespace from another registry")]
    NamespaceImported(String),
    /// The log id in the path is not the package's.
    #[error("log id `{found}` is not the log id of package `{name}` (expected `{expected}`)")]
    LogIdMismatch {
        /// The package.
        name: PackageName,
        /// Its log id.
        expected: LogId,
        /// The id given.
        found: LogId,
    },
    /// Another record of the package is still waiting for content.
    #[error("the package conflicts with pending publish of record `{0}`")]
    ConflictPending(RecordId),
    /// The package log's rules refuse the record.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed; the record was not accepted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry is shutting down.
    #[error("the registry is shutting down")]
    Stopped,
}

/// Why a read was refused.
#[derive(Debug, Error)]
pub enum QueryError {
    /// No checkpoint at that length.
    #[error("checkpoint log length `{0}` was not found")]
    CheckpointNotFound(u64),
    /// No leaf at that index.
    #[error("log leaf `{0}` was not found")]
    LeafNotFound(u64),
    /// No such log.
    #[error("log `{0}` was not found")]
    LogNotFound(LogId),
    /// No such record in that log.
    #[error("record `{0}` was not found")]
    RecordNotFound(RecordId),
    /// The request makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the registry could not open.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Storage failed or is inconsistent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key given is not the operator key of this registry.
    #[error("the operator key {given} is not the key that initialised this registry ({expected}); start with the original key")]
    WrongOperatorKey {
        /// The key that initialised the log.
        expected: String,
        /// The key given.
        given: String,
    },
    /// A namespace to define is not a valid name, or a stored record is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Logs to fetch: `None` means from the start; `Some(i)` means after index `i`.
#[derive(Clone, Debug, Default)]
pub struct FetchRequest {
    /// The checkpoint's log length.
    pub log_length: u64,
    /// Records per log, at most.
    pub limit: Option<usize>,
    /// The operator log, if wanted.
    pub operator: Option<Option<u64>>,
    /// Package logs.
    pub packages: Vec<(LogId, Option<u64>)>,
}

/// The answer to a [`FetchRequest`].
#[derive(Clone, Debug, Default)]
pub struct FetchResponse {
    /// Whether some log has more records before the checkpoint.
    pub more: bool,
    /// Operator records.
    pub operator: Vec<(u64, StoredRecord)>,
    /// Package records, per log, in request order.
    pub packages: Vec<(LogId, Vec<(u64, StoredRecord)>)>,
}

type Reply<T> = Box<dyn FnOnce(T) + Send>;

enum Command {
    Submit {
        name: PackageName,
        log_id: LogId,
        envelope: Box<Envelope<PackageRecord>>,
        checked: Option<SignatureChecked>,
        reply: Reply<Result<RecordStatus, SubmitError>>,
    },
    DefineNamespaces {
        namespaces: Vec<String>,
        reply: Reply<Result<Vec<String>, SubmitError>>,
    },
    Attest {
        name: PackageName,
        attestation: Attestation,
        reply: Reply<Result<Attested, SubmitError>>,
    },
    ContentArrived {
        log_id: LogId,
        record_id: RecordId,
        digest: Hash,
        reply: Reply<()>,
    },
    Stop {
        reply: Reply<()>,
    },
}

/// Where an attestation was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    /// The attestation log's id.
    pub log_id: LogId,
    /// The record's id.
    pub record_id: RecordId,
    /// Its index in the registry log.
    pub index: u64,
}

/// What readers see.
struct View {
    log: VecLog,
    /// Recent checkpoints with the map at each, oldest first.
    recent: VecDeque<(SignedCheckpoint, Map)>,
    operator_keys: Vec<PublicKey>,
    /// The operator log's records with their registry indexes: short, and
    /// part of nearly every fetch, so served from memory.
    operator_records: Vec<(u64, StoredRecord)>,
}

struct Shared {
    meta: Arc<dyn MetaStore>,
    content: Arc<dyn ContentStore>,
    config: Config,
    view: RwLock<View>,
    /// Keys seen in package logs, by id: lets a submitter check a record's
    /// signature on its own thread, off the sequencer's. Key ids are
    /// digests of the keys, so an entry is never wrong, only missing;
    /// permissions are still checked by the sequencer.
    keys: RwLock<HashMap<KeyId, PublicKey>>,
    /// Published package states for readers (the OCI face), each with the
    /// registry index of the last record applied.
    published: Mutex<HashMap<LogId, (u64, PackageState)>>,
}

/// The published-state cache is cleared when it grows beyond this many logs.
const PUBLISHED_CACHE_MAX: usize = 1 << 16;

/// The key cache is cleared when it grows beyond this many keys.
const KEY_CACHE_MAX: usize = 1 << 20;

/// A running registry.
pub struct Registry {
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Registry {
    /// Opens the registry on `meta` and `content`: loads the log, rebuilds
    /// the map of the latest checkpoint (checking both roots against it),
    /// initialises the operator log on first start and defines `namespaces`
    /// that are not defined yet. Then starts the writer thread.
    pub fn open(
        meta: Arc<dyn MetaStore>,
        content: Arc<dyn ContentStore>,
        key: PrivateKey,
        namespaces: &[String],
        config: Config,
    ) -> Result<Arc<Registry>, OpenError> {
        for ns in namespaces {
            cairn_protocol::validate_namespace(ns)
                .map_err(|e| OpenError::Invalid(format!("namespace `{ns}`: {e}")))?;
        }
        let started = Instant::now();
        let loaded = meta.load()?;
        let loaded_in = started.elapsed();
        let mut log = VecLog::new();
        let hashes: Vec<Hash> = loaded.leaves.par_iter().map(LogLeaf::leaf_hash).collect();
        for hash in hashes {
            log.push(hash);
        }
        let (map, checkpointed, snapshot_length) = match &loaded.checkpoint {
            None => (Map::new(), 0, 0),
            Some(cp) => {
                let length = cp.contents.checkpoint.log_length;
                let len = usize::try_from(length)
                    .ok()
                    .filter(|l| *l <= loaded.leaves.len())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "checkpoint at length {length} but the log has {} leaves",
                            loaded.leaves.len()
                        ))
                    })?;
                let (base, from) = usable_snapshot(meta.as_ref(), length)?;
                let mut latest: HashMap<LogId, RecordId> = HashMap::new();
                for leaf in &loaded.leaves[from as usize..len] {
                    latest.insert(leaf.log_id, leaf.record_id);
                }
                let map = base.apply(
                    latest
                        .into_iter()
                        .map(|(l, r)| (*l.digest(), MapLeaf { record_id: r }.leaf_hash())),
                );
                if log.root_at(length) != Some(cp.contents.checkpoint.log_root)
                    || map.root() != cp.contents.checkpoint.map_root
                {
                    return Err(StoreError::Corrupt(format!(
                        "the stored log does not reproduce the roots of checkpoint {length}"
                    ))
                    .into());
                }
                (map, len, from)
            }
        };
        tracing::info!(
            leaves = loaded.leaves.len(),
            keys = map.len(),
            from_snapshot = snapshot_length,
            "loaded the log in {loaded_in:.2?}, log and map rebuilt and checked in {:.2?}",
            started.elapsed() - loaded_in
        );
        let unchecked = loaded.leaves[checkpointed..].to_vec();

        // The operator log, replayed (it is short).
        let mut operator = OperatorState::new();
        let operator_records = meta.log_records(&LogId::operator(), None, u64::MAX, usize::MAX)?;
        for (_, rec) in &operator_records {
            let envelope = decode_stored::<OperatorRecord>(rec)?;
            operator
                .apply(&envelope)
                .map_err(|e| StoreError::Corrupt(format!("stored operator record: {e}")))?;
        }
        if operator.head().is_some() {
            let holds = operator.authorities().holds(
                &key.public_key().id(),
                cairn_protocol::operator::Permission::Commit,
            );
            if !holds {
                let expected = operator
                    .authorities()
                    .keys()
                    .next()
                    .map(|k| k.id().to_string())
                    .unwrap_or_default();
                return Err(OpenError::WrongOperatorKey {
                    expected,
                    given: key.public_key().id().to_string(),
                });
            }
        }

        let mut recent = VecDeque::new();
        if let Some(cp) = loaded.checkpoint.clone() {
            recent.push_back((cp, map.clone()));
        }
        let shared = Arc::new(Shared {
            meta,
            content,
            view: RwLock::new(View {
                log,
                recent,
                operator_keys: operator_keys(&operator),
                operator_records,
            }),
            config,
            keys: RwLock::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
        });
        let mut sourcing = HashMap::new();
        for rec in loaded.sourcing {
            if let RecordState::Sourcing { missing, since } = &rec.state {
                let envelope = decode_stored::<PackageRecord>(&rec)?;
                sourcing.insert(
                    (rec.log_id, rec.record_id),
                    Sourcing {
                        missing: missing.clone(),
                        since: *since,
                        envelope,
                    },
                );
            }
        }
        let first_unchecked = (!unchecked.is_empty()).then(Instant::now);
        let mut writer = Writer {
            shared: shared.clone(),
            key,
            states: HashMap::new(),
            map,
            unchecked,
            first_unchecked,
            operator,
            sourcing,
            attestations: HashMap::new(),
            snapshot_length,
            snapshot_busy: Arc::new(AtomicBool::new(false)),
        };
        let mut to_define = Vec::new();
        for ns in namespaces {
            if writer.operator.namespace(ns).is_none() && !to_define.contains(ns) {
                to_define.push(ns.clone());
            }
        }
        if writer.operator.head().is_none() || !to_define.is_empty() {
            writer
                .define_namespaces_now(&to_define)
                .map_err(|e| OpenError::Invalid(e.to_string()))?;
        }
        if !writer.unchecked.is_empty() {
            writer.checkpoint()?;
        }
        writer.maybe_snapshot();
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("cairn-sequencer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the sequencer: {e}")))?;
        Ok(Arc::new(Registry {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        }))
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Hands a command to the writer; gives it back when the writer is gone.
    fn send(&self, command: Command) -> Result<(), Box<Command>> {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(command).map_err(|e| Box::new(e.0)),
            None => Err(Box::new(command)),
        }
    }

    /// Submits a package record. `reply` is called once the record is durably
    /// accepted (or refused), from the sequencer thread.
    pub fn submit(
        &self,
        name: PackageName,
        log_id: LogId,
        envelope: Envelope<PackageRecord>,
        reply: impl FnOnce(Result<RecordStatus, SubmitError>) + Send + 'static,
    ) {
        let checked = self.check_signature(&envelope);
        let command = Command::Submit {
            name,
            log_id,
            envelope: Box::new(envelope),
            checked,
            reply: Box::new(reply),
        };
        if let Err(refused) = self.send(command) {
            if let Command::Submit { reply, .. } = *refused {
                reply(Err(SubmitError::Stopped));
            }
        }
    }

    /// Checks the signature here, on the caller's thread, when the signing
    /// key is known: the key of an init entry in the record itself, or one
    /// seen before. The sequencer then skips the check.
    fn check_signature(&self, envelope: &Envelope<PackageRecord>) -> Option<SignatureChecked> {
        let signer = envelope.key_id();
        let own = envelope.contents().entries.iter().find_map(|e| match e {
            PackageEntry::Init { key, .. } if key.id() == *signer => Some(key.clone()),
            _ => None,
        });
        let key = own.or_else(|| {
            self.shared
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(signer)
                .cloned()
        })?;
        envelope.check_signature(&key).ok()
    }

    /// Records in `name`'s attestation log that `attestation` was attached
    /// to one of its manifests. `reply` is called once the record is
    /// durably sequenced.
    pub fn attest(
        &self,
        name: PackageName,
        attestation: Attestation,
        reply: impl FnOnce(Result<Attested, SubmitError>) + Send + 'static,
    ) {
        let command = Command::Attest {
            name,
            attestation,
            reply: Box::new(reply),
        };
        if let Err(refused) = self.send(command) {
            if let Command::Attest { reply, .. } = *refused {
                reply(Err(SubmitError::Stopped));
            }
        }
    }

    /// `name`'s attestation log, oldest first, with registry log indexes.
    pub fn attestations(
        &self,
        name: &PackageName,
    ) -> Result<Vec<(u64, Envelope<AttestationRecord>)>, QueryError> {
        let records =
            self.shared
                .meta
                .log_records(&LogId::attestations(name), None, u64::MAX, usize::MAX)?;
        records
            .iter()
            .map(|(index, rec)| Ok((*index, decode_stored::<AttestationRecord>(rec)?)))
            .collect()
    }

    /// Defines namespaces through a new operator record; replies with those
    /// that were newly defined.
    pub fn define_namespaces(
        &self,
        namespaces: Vec<String>,
        reply: impl FnOnce(Result<Vec<String>, SubmitError>) + Send + 'static,
    ) {
        let command = Command::DefineNamespaces {
            namespaces,
            reply: Box::new(reply),
        };
        if let Err(refused) = self.send(command) {
            if let Command::DefineNamespaces { reply, .. } = *refused {
                reply(Err(SubmitError::Stopped));
            }
        }
    }

    /// Stops the writer after it made a checkpoint of everything sequenced.
    pub fn shutdown(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        let sent = self.send(Command::Stop {
            reply: Box::new(move |()| {
                let _ = done_tx.send(());
            }),
        });
        if sent.is_ok() {
            let _ = done_rx.recv();
        }
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.shared.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The keys the operator log holds (the first signs checkpoints).
    pub fn operator_keys(&self) -> Vec<PublicKey> {
        self.view().operator_keys.clone()
    }

    /// The latest checkpoint.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.view().recent.back().map(|(cp, _)| cp.clone())
    }

    /// The checkpoint at `log_length`.
    pub fn checkpoint_at(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, QueryError> {
        if let Some(found) = self
            .view()
            .recent
            .iter()
            .find(|(cp, _)| cp.contents.checkpoint.log_length == log_length)
        {
            return Ok(Some(found.0.clone()));
        }
        Ok(self.shared.meta.checkpoint(log_length)?)
    }

    fn published_length(&self) -> u64 {
        self.view()
            .recent
            .back()
            .map(|(cp, _)| cp.contents.checkpoint.log_length)
            .unwrap_or(0)
    }

    /// The status of a record of `log_id`.
    pub fn record_status(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<RecordStatus, QueryError> {
        let record = self
            .shared
            .meta
            .record(log_id, record_id)?
            .ok_or(QueryError::RecordNotFound(*record_id))?;
        Ok(match record.state {
            RecordState::Sourcing { missing, .. } => RecordStatus::Sourcing { missing },
            RecordState::Rejected { reason } => RecordStatus::Rejected { reason },
            RecordState::Sequenced { index } => {
                if index < self.published_length() {
                    RecordStatus::Published { index }
                } else {
                    RecordStatus::Processing
                }
            }
        })
    }

    /// Records of the requested logs up to the checkpoint `log_length`.
    pub fn fetch_logs(&self, request: &FetchRequest) -> Result<FetchResponse, QueryError> {
        let length = request.log_length;
        if self.checkpoint_at(length)?.is_none() {
            return Err(QueryError::CheckpointNotFound(length));
        }
        let max = self.shared.config.fetch_limit_max;
        let limit = request.limit.unwrap_or(max).clamp(1, max);
        let mut response = FetchResponse::default();
        if let Some(after) = request.operator {
            let view = self.view();
            let mut records: Vec<(u64, StoredRecord)> = view
                .operator_records
                .iter()
                .filter(|(i, _)| after.is_none_or(|a| *i > a) && *i < length)
                .take(limit + 1)
                .cloned()
                .collect();
            drop(view);
            if records.len() > limit {
                records.truncate(limit);
                response.more = true;
            }
            response.operator = records;
        }
        let mut fetch = |log_id: &LogId, after: Option<u64>| -> Result<_, QueryError> {
            let mut records = self
                .shared
                .meta
                .log_records(log_id, after, length, limit + 1)?;
            if records.len() > limit {
                records.truncate(limit);
                response.more = true;
            }
            Ok(records)
        };
        let mut packages = Vec::with_capacity(request.packages.len());
        for (log_id, after) in &request.packages {
            let records = fetch(log_id, *after)?;
            if records.is_empty() && after.is_none() {
                return Err(QueryError::LogNotFound(*log_id));
            }
            packages.push((*log_id, records));
        }
        response.packages = packages;
        Ok(response)
    }

    /// The state of a package log as published (every record a checkpoint
    /// covers), or `None` if it has none. Records are replayed once and
    /// cached; later calls apply only newer records.
    pub fn published_package(&self, log_id: &LogId) -> Result<Option<PackageState>, QueryError> {
        let published = self.published_length();
        let cached = self
            .shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(log_id)
            .cloned();
        let (mut after, mut state) = match cached {
            Some((last, state)) if last < published => (Some(last), state),
            // Cached past what this reader may see (cannot happen unless
            // checkpoints went backwards): start over.
            _ => (None, PackageState::new()),
        };
        let records = self
            .shared
            .meta
            .log_records(log_id, after, published, usize::MAX)?;
        if records.is_empty() && after.is_some() {
            return Ok(Some(state));
        }
        state = replay_stored(state, records.iter().map(|(_, r)| r))?;
        if let Some((index, _)) = records.last() {
            after = Some(*index);
        }
        let Some(last) = after else {
            return Ok(None);
        };
        let mut cache = self
            .shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= PUBLISHED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(*log_id, (last, state.clone()));
        Ok(Some(state))
    }

    /// The names of every package, in name order.
    pub fn package_list(&self) -> Result<Vec<PackageName>, QueryError> {
        Ok(self.shared.meta.package_list()?)
    }

    /// The names of package logs (`None` for unknown ones).
    pub fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, QueryError> {
        Ok(self.shared.meta.package_names(log_ids)?)
    }

    /// Log inclusion proofs of the leaves at `indexes` and map proofs of
    /// their logs, both against the checkpoint at `log_length`; encoded as
    /// Warg `LogProofBundle` and `MapProofBundle`.
    pub fn prove_inclusion(
        &self,
        log_length: u64,
        indexes: &[u64],
    ) -> Result<(Vec<u8>, Vec<u8>), QueryError> {
        let map = {
            let view = self.view();
            view.recent
                .iter()
                .find(|(cp, _)| cp.contents.checkpoint.log_length == log_length)
                .map(|(_, map)| map.clone())
        };
        let map = map.ok_or(QueryError::CheckpointNotFound(log_length))?;
        if let Some(bad) = indexes.iter().find(|i| **i >= log_length) {
            return Err(QueryError::LeafNotFound(*bad));
        }
        let leaves = self.shared.meta.leaves_at(indexes)?;
        let mut map_proofs = Vec::with_capacity(indexes.len());
        for (index, leaf) in indexes.iter().zip(&leaves) {
            let leaf = leaf.ok_or(QueryError::LeafNotFound(*index))?;
            let proof = map
                .prove(leaf.log_id.digest())
                .ok_or(QueryError::LeafNotFound(*index))?;
            map_proofs.push(proof);
        }
        let inclusions: Vec<InclusionProof> = indexes
            .iter()
            .map(|i| InclusionProof::for_leaf(*i, log_length))
            .collect();
        let view = self.view();
        let bundle = LogProofBundle::bundle(&[], &inclusions, &view.log)
            .and_then(|b| b.encode())
            .map_err(|e| QueryError::BadRequest(format!("cannot bundle proofs: {e}")))?;
        drop(view);
        let map_bundle = MapProofBundle { proofs: map_proofs }.encode();
        Ok((bundle, map_bundle))
    }

    /// A consistency proof from `from` to `to`, as a Warg `LogProofBundle`.
    pub fn prove_consistency(&self, from: u64, to: u64) -> Result<Vec<u8>, QueryError> {
        let published = self.published_length();
        if to > published {
            return Err(QueryError::CheckpointNotFound(to));
        }
        if from == 0 || from > to {
            return Err(QueryError::BadRequest(format!(
                "cannot prove consistency from log length {from} to {to}: need 0 < from <= to"
            )));
        }
        let proof = ConsistencyProof {
            old_length: from,
            new_length: to,
        };
        let view = self.view();
        LogProofBundle::bundle(&[proof], &[], &view.log)
            .and_then(|b| b.encode())
            .map_err(|e| QueryError::BadRequest(format!("cannot bundle proofs: {e}")))
    }

    /// Whether `checkpoint` is one this registry made (same roots, length and
    /// timestamp), and whether its signature verifies with an operator key.
    pub fn verify_checkpoint(
        &self,
        checkpoint: &SignedCheckpoint,
    ) -> Result<(bool, bool), QueryError> {
        let ours = self.checkpoint_at(checkpoint.contents.checkpoint.log_length)?;
        let same = ours.is_some_and(|c| c.contents == checkpoint.contents);
        let signed = self
            .view()
            .operator_keys
            .iter()
            .any(|k| checkpoint.verify(k).is_ok());
        Ok((same, signed))
    }

    /// Where content is stored.
    pub fn content(&self, digest: &Hash) -> Result<Option<ContentLocation>, QueryError> {
        Ok(self.shared.content.locate(digest)?)
    }

    /// Starts an upload of `digest` for the sourcing record `record_id`.
    pub fn begin_upload(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
        digest: &Hash,
    ) -> Result<Upload, UploadError> {
        let record = self
            .shared
            .meta
            .record(log_id, record_id)?
            .ok_or(UploadError::RecordNotFound(*record_id))?;
        let RecordState::Sourcing { missing, .. } = record.state else {
            return Err(UploadError::NotSourcing(*record_id));
        };
        if !missing.contains(digest) {
            return Err(UploadError::NotMissing {
                record: *record_id,
                digest: *digest,
            });
        }
        Ok(Upload {
            log_id: *log_id,
            record_id: *record_id,
            expected: *digest,
            limit: self.shared.config.max_content_bytes,
            written: 0,
            hasher: sha2::Sha256::new(),
            pending: self.shared.content.begin()?,
        })
    }

    /// Checks and stores an upload, then tells the sequencer. Blocking.
    pub fn finish_upload(&self, upload: Upload) -> Result<Hash, UploadError> {
        let (log_id, record_id) = (upload.log_id, upload.record_id);
        let digest = upload.check_and_commit()?;
        // Wait until the writer has moved the record on from `sourcing`, so
        // a client that asks right after its upload (as the reference
        // client does) sees `processing` or `published`.
        let (done_tx, done_rx) = mpsc::channel();
        let sent = self.send(Command::ContentArrived {
            log_id,
            record_id,
            digest,
            reply: Box::new(move |()| {
                let _ = done_tx.send(());
            }),
        });
        if sent.is_ok() {
            let _ = done_rx.recv();
        }
        Ok(digest)
    }

    /// Up to `limit` log leaves from `start`.
    pub fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, QueryError> {
        let published = self.published_length();
        if start >= published {
            return Ok(Vec::new());
        }
        let limit = limit.min(usize::try_from(published - start).unwrap_or(usize::MAX));
        Ok(self.shared.meta.leaves(start, limit)?)
    }

    /// The log length of the latest checkpoint.
    pub fn log_length(&self) -> u64 {
        self.published_length()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The stored map snapshot if it is usable for a checkpoint at `length`: it
/// must be at a checkpointed length not beyond `length`, and decode to that
/// checkpoint's map root. Otherwise (none, stale, damaged) an empty map from 0.
fn usable_snapshot(meta: &dyn MetaStore, length: u64) -> Result<(Map, u64), StoreError> {
    let (at, bytes) = match meta.load_map_snapshot() {
        Ok(Some(found)) => found,
        Ok(None) => return Ok((Map::new(), 0)),
        Err(e) => {
            tracing::warn!("ignoring the map snapshot: {e}");
            return Ok((Map::new(), 0));
        }
    };
    let checkpoint = if at <= length {
        meta.checkpoint(at)?
    } else {
        None
    };
    let Some(checkpoint) = checkpoint else {
        tracing::warn!("ignoring the map snapshot at log length {at}: no such checkpoint");
        return Ok((Map::new(), 0));
    };
    match Map::from_snapshot(&bytes) {
        Ok(map) if map.root() == checkpoint.contents.checkpoint.map_root => Ok((map, at)),
        Ok(_) => {
            tracing::warn!("ignoring the map snapshot at log length {at}: its root differs from the checkpoint's");
            Ok((Map::new(), 0))
        }
        Err(e) => {
            tracing::warn!("ignoring the map snapshot at log length {at}: {e}");
            Ok((Map::new(), 0))
        }
    }
}

fn operator_keys(state: &OperatorState) -> Vec<PublicKey> {
    state
        .authorities()
        .keys()
        .filter(|k| state.may_sign_checkpoints(&k.id()))
        .cloned()
        .collect()
}

fn decode_stored<R: cairn_protocol::Record>(rec: &StoredRecord) -> Result<Envelope<R>, StoreError> {
    Envelope::<R>::from_parts(rec.content_bytes.clone(), &rec.key_id, &rec.signature)
        .map_err(|e| StoreError::Corrupt(format!("stored record {}: {e}", rec.record_id)))
}

/// Validates stored package records on top of `state` in one pass
/// ([`PackageState::replay`]: no copy of the state per record, which made
/// loading a long log quadratic).
fn replay_stored<'a>(
    state: PackageState,
    records: impl IntoIterator<Item = &'a StoredRecord>,
) -> Result<PackageState, StoreError> {
    let envelopes = records
        .into_iter()
        .map(decode_stored::<PackageRecord>)
        .collect::<Result<Vec<_>, _>>()?;
    state
        .replay(envelopes.iter().map(|e| (e, None)))
        .map_err(|e| StoreError::Corrupt(format!("stored package record: {e}")))
}

fn stored<R: cairn_protocol::Record>(
    log_id: LogId,
    envelope: &Envelope<R>,
    state: RecordState,
) -> StoredRecord {
    StoredRecord {
        record_id: envelope.record_id(),
        log_id,
        content_bytes: envelope.content_bytes().to_vec(),
        key_id: envelope.key_id().to_string(),
        signature: envelope.signature().to_string(),
        state,
    }
}

/// The timestamp of a record the registry signs after `head`: now, but
/// never before the head (a log's timestamps do not go back).
fn next_timestamp(head: Option<&Head>) -> Timestamp {
    let now = Timestamp::from_system_time(SystemTime::now());
    head.map_or(now, |h| now.max(h.timestamp))
}

struct Sourcing {
    missing: Vec<Hash>,
    since: u64,
    envelope: Envelope<PackageRecord>,
}

/// The sequencer: owns the package states, the map and the operator key.
struct Writer {
    shared: Arc<Shared>,
    key: PrivateKey,
    states: HashMap<LogId, PackageState>,
    map: Map,
    unchecked: Vec<LogLeaf>,
    first_unchecked: Option<Instant>,
    operator: OperatorState,
    sourcing: HashMap<(LogId, RecordId), Sourcing>,
    /// Attestation logs touched since start, by log id.
    attestations: HashMap<LogId, AttestationLog>,
    /// The log length of the last map snapshot saved (or being saved).
    snapshot_length: u64,
    snapshot_busy: Arc<AtomicBool>,
}

/// Changes of one batch, applied to the writer only after the commit.
#[derive(Default)]
struct Staged {
    batch: Batch,
    states: HashMap<LogId, PackageState>,
    leaves: Vec<LogLeaf>,
    operator: Option<OperatorState>,
    new_sourcing: Vec<((LogId, RecordId), Sourcing)>,
    done_sourcing: Vec<(LogId, RecordId)>,
    names: HashMap<LogId, PackageName>,
    attestations: HashMap<LogId, AttestationLog>,
}

enum Outcome {
    Submit(
        Reply<Result<RecordStatus, SubmitError>>,
        Result<RecordStatus, SubmitError>,
    ),
    Define(
        Reply<Result<Vec<String>, SubmitError>>,
        Result<Vec<String>, SubmitError>,
    ),
    Arrived(Reply<()>),
    Attest(
        Reply<Result<Attested, SubmitError>>,
        Result<Attested, SubmitError>,
    ),
}

impl Writer {
    fn run(mut self, rx: Receiver<Command>) {
        let tick = Duration::from_millis(500);
        let mut last_housekeeping = Instant::now();
        loop {
            let wait = if self.unchecked.is_empty() {
                tick
            } else {
                self.shared.config.checkpoint_quiet
            };
            match rx.recv_timeout(wait) {
                Ok(Command::Stop { reply }) => {
                    self.checkpoint_logged();
                    self.final_snapshot();
                    reply(());
                    return;
                }
                Ok(first) => {
                    let mut commands = vec![first];
                    let mut stop = None;
                    while commands.len() < self.shared.config.batch_max {
                        match rx.try_recv() {
                            Ok(Command::Stop { reply }) => {
                                stop = Some(reply);
                                break;
                            }
                            Ok(c) => commands.push(c),
                            Err(_) => break,
                        }
                    }
                    self.process(commands);
                    let due = self.unchecked.len() >= self.shared.config.checkpoint_every
                        || self.first_unchecked.is_some_and(|t| {
                            t.elapsed() >= self.shared.config.checkpoint_max_delay
                        });
                    if due {
                        self.checkpoint_logged();
                    }
                    if let Some(reply) = stop {
                        self.checkpoint_logged();
                        self.final_snapshot();
                        reply(());
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.checkpoint_logged(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.checkpoint_logged();
                    self.final_snapshot();
                    return;
                }
            }
            if last_housekeeping.elapsed() >= tick {
                last_housekeeping = Instant::now();
                self.housekeeping();
            }
        }
    }

    fn checkpoint_logged(&mut self) {
        if self.unchecked.is_empty() {
            return;
        }
        if let Err(e) = self.checkpoint() {
            tracing::error!("checkpoint failed: {e}");
        }
        self.maybe_snapshot();
    }

    fn checkpointed_length(&self) -> u64 {
        self.shared
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .recent
            .back()
            .map(|(cp, _)| cp.contents.checkpoint.log_length)
            .unwrap_or(0)
    }

    /// Saves a map snapshot in the background once the log grew enough.
    fn maybe_snapshot(&mut self) {
        let length = self.checkpointed_length();
        if length < self.snapshot_length + self.shared.config.snapshot_every
            || self.snapshot_busy.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.snapshot_length = length;
        let (map, meta, busy) = (
            self.map.clone(),
            self.shared.meta.clone(),
            self.snapshot_busy.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("cairn-map-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let bytes = map.snapshot();
                match meta.save_map_snapshot(length, &bytes) {
                    Ok(()) => tracing::info!(
                        "saved a map snapshot at log length {length} ({} MB) in {:.2?}",
                        bytes.len() / 1_000_000,
                        started.elapsed()
                    ),
                    Err(e) => tracing::error!("cannot save a map snapshot: {e}"),
                }
                busy.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.snapshot_busy.store(false, Ordering::Release);
        }
    }

    /// At shutdown: a snapshot of the final map, so the next start is quick.
    fn final_snapshot(&mut self) {
        while self.snapshot_busy.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let length = self.checkpointed_length();
        if length > self.snapshot_length {
            if let Err(e) = self
                .shared
                .meta
                .save_map_snapshot(length, &self.map.snapshot())
            {
                tracing::error!("cannot save a map snapshot: {e}");
            }
            self.snapshot_length = length;
        }
    }

    /// Rejects records whose content never came; runs admin requests.
    fn housekeeping(&mut self) {
        let timeout = self.shared.config.content_timeout.as_secs();
        let now = now_seconds();
        let expired: Vec<(LogId, RecordId)> = self
            .sourcing
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.since) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        if !expired.is_empty() {
            let mut staged = Staged::default();
            for id in &expired {
                let missing = &self.sourcing[id].missing;
                let list: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
                staged.batch.rejected.push((
                    id.0,
                    id.1,
                    format!(
                        "content {} was not uploaded within {timeout} seconds",
                        list.join(", ")
                    ),
                ));
                staged.done_sourcing.push(*id);
            }
            if let Err(e) = self.commit(staged) {
                tracing::error!("cannot reject expired records: {e}");
            }
        }
        match self.shared.meta.admin_requests() {
            Ok(requests) => {
                for request in requests {
                    let outcome = match self
                        .define_namespaces_now(std::slice::from_ref(&request.define_namespace))
                    {
                        Ok(defined) if defined.is_empty() => "already defined".to_string(),
                        Ok(_) => "defined".to_string(),
                        Err(e) => format!("error: {e}"),
                    };
                    self.checkpoint_logged();
                    if let Err(e) = self.shared.meta.finish_admin_request(request.id, &outcome) {
                        tracing::error!("cannot finish admin request: {e}");
                    }
                }
            }
            Err(e) => tracing::error!("cannot read admin requests: {e}"),
        }
    }

    fn process(&mut self, commands: Vec<Command>) {
        let mut staged = Staged::default();
        let mut outcomes = Vec::with_capacity(commands.len());
        for command in commands {
            match command {
                Command::Submit {
                    name,
                    log_id,
                    envelope,
                    checked,
                    reply,
                } => {
                    let result =
                        self.submit(&mut staged, name, log_id, *envelope, checked.as_ref());
                    outcomes.push(Outcome::Submit(reply, result));
                }
                Command::DefineNamespaces { namespaces, reply } => {
                    let result = self.stage_define(&mut staged, &namespaces);
                    outcomes.push(Outcome::Define(reply, result));
                }
                Command::ContentArrived {
                    log_id,
                    record_id,
                    digest,
                    reply,
                } => {
                    self.content_arrived(&mut staged, (log_id, record_id), digest);
                    outcomes.push(Outcome::Arrived(reply));
                }
                Command::Attest {
                    name,
                    attestation,
                    reply,
                } => {
                    let result = self.stage_attestation(&mut staged, &name, attestation);
                    outcomes.push(Outcome::Attest(reply, result));
                }
                Command::Stop { reply } => reply(()),
            }
        }
        let committed = self.commit(staged);
        for outcome in outcomes {
            match outcome {
                Outcome::Submit(reply, result) => reply(match (&committed, result) {
                    (Err(e), Ok(_)) => Err(SubmitError::Store(StoreError::Backend(e.to_string()))),
                    (_, result) => result,
                }),
                Outcome::Define(reply, result) => reply(match (&committed, result) {
                    (Err(e), Ok(_)) => Err(SubmitError::Store(StoreError::Backend(e.to_string()))),
                    (_, result) => result,
                }),
                Outcome::Attest(reply, result) => reply(match (&committed, result) {
                    (Err(e), Ok(_)) => Err(SubmitError::Store(StoreError::Backend(e.to_string()))),
                    (_, result) => result,
                }),
                Outcome::Arrived(reply) => reply(()),
            }
        }
    }

    fn commit(&mut self, staged: Staged) -> Result<(), StoreError> {
        if staged.batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.shared.meta.commit(&staged.batch) {
            tracing::error!("commit failed, batch dropped: {e}");
            return Err(e);
        }
        self.remember_keys(staged.states.values());
        self.states.extend(staged.states);
        if let Some(op) = staged.operator {
            self.operator = op;
            let keys = operator_keys(&self.operator);
            let operator_log = LogId::operator();
            let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
            view.operator_keys = keys;
            for record in &staged.batch.records {
                if let (true, RecordState::Sequenced { index }) =
                    (record.log_id == operator_log, &record.state)
                {
                    view.operator_records.push((*index, record.clone()));
                }
            }
        }
        self.attestations.extend(staged.attestations);
        for id in staged.done_sourcing {
            self.sourcing.remove(&id);
        }
        self.sourcing.extend(staged.new_sourcing);
        if !staged.leaves.is_empty() {
            if self.first_unchecked.is_none() {
                self.first_unchecked = Some(Instant::now());
            }
            let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
            for leaf in &staged.leaves {
                view.log.push(leaf.leaf_hash());
            }
            drop(view);
            self.unchecked.extend(staged.leaves);
        }
        Ok(())
    }

    fn next_index(&self, staged: &Staged) -> u64 {
        let view = self.shared.view.read().unwrap_or_else(|e| e.into_inner());
        view.log.len() + staged.leaves.len() as u64
    }

    /// Adds the keys of `states` to the shared key cache.
    fn remember_keys<'a>(&self, states: impl IntoIterator<Item = &'a PackageState>) {
        let mut keys = self.shared.keys.write().unwrap_or_else(|e| e.into_inner());
        for state in states {
            for key in state.authorities().keys() {
                if !keys.contains_key(&key.id()) {
                    if keys.len() >= KEY_CACHE_MAX {
                        keys.clear();
                    }
                    keys.insert(key.id(), key.clone());
                }
            }
        }
    }

    fn package_state(
        &mut self,
        staged: &Staged,
        log_id: &LogId,
    ) -> Result<PackageState, StoreError> {
        if let Some(state) = staged.states.get(log_id) {
            return Ok(state.clone());
        }
        if let Some(state) = self.states.get(log_id) {
            return Ok(state.clone());
        }
        let records = self
            .shared
            .meta
            .log_records(log_id, None, u64::MAX, usize::MAX)?;
        let state = replay_stored(PackageState::new(), records.iter().map(|(_, r)| r))?;
        self.remember_keys([&state]);
        self.states.insert(*log_id, state.clone());
        Ok(state)
    }

    fn submit(
        &mut self,
        staged: &mut Staged,
        name: PackageName,
        log_id: LogId,
        envelope: Envelope<PackageRecord>,
        checked: Option<&SignatureChecked>,
    ) -> Result<RecordStatus, SubmitError> {
        let expected = LogId::package(&name);
        if expected != log_id {
            return Err(SubmitError::LogIdMismatch {
                name,
                expected,
                found: log_id,
            });
        }
        let operator = staged.operator.as_ref().unwrap_or(&self.operator);
        match operator.namespace(name.namespace()) {
            None => return Err(SubmitError::NamespaceNotDefined(name.namespace().into())),
            Some(cairn_protocol::operator::NamespaceState::Imported { .. }) => {
                return Err(SubmitError::NamespaceImported(name.namespace().into()))
            }
            Some(cairn_protocol::operator::NamespaceState::Defined) => {}
        }
        let record_id = envelope.record_id();
        // A record sent again: report where it stands.
        if staged
            .batch
            .records
            .iter()
            .any(|r| r.record_id == record_id && r.log_id == log_id)
        {
            return Err(SubmitError::Invalid(format!(
                "record `{record_id}` was submitted twice in one batch"
            )));
        }
        if let Some(existing) = self.shared.meta.record(&log_id, &record_id)? {
            {
                return Ok(match existing.state {
                    RecordState::Sourcing { missing, .. } => RecordStatus::Sourcing { missing },
                    RecordState::Sequenced { .. } => RecordStatus::Processing,
                    RecordState::Rejected { reason } => RecordStatus::Rejected { reason },
                });
            }
        }
        let pending = self
            .sourcing
            .keys()
            .chain(staged.new_sourcing.iter().map(|(key, _)| key))
            .find(|key| key.0 == log_id && !staged.done_sourcing.contains(key));
        if let Some((_, pending)) = pending {
            return Err(SubmitError::ConflictPending(*pending));
        }
        let state = self.package_state(staged, &log_id)?;
        let next = state
            .validate_checked(&envelope, checked)
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let mut missing = Vec::new();
        for entry in &envelope.contents().entries {
            if let PackageEntry::Release { content, .. } = entry {
                if self.shared.content.locate(content)?.is_none() && !missing.contains(content) {
                    missing.push(*content);
                }
            }
        }
        if state.head().is_none() && !staged.names.contains_key(&log_id) {
            staged.names.insert(log_id, name.clone());
            staged.batch.names.push((log_id, name));
        }
        if !missing.is_empty() {
            let since = now_seconds();
            staged.batch.records.push(stored(
                log_id,
                &envelope,
                RecordState::Sourcing {
                    missing: missing.clone(),
                    since,
                },
            ));
            staged.new_sourcing.push((
                (log_id, record_id),
                Sourcing {
                    missing: missing.clone(),
                    since,
                    envelope,
                },
            ));
            return Ok(RecordStatus::Sourcing { missing });
        }
        let index = self.next_index(staged);
        staged
            .batch
            .records
            .push(stored(log_id, &envelope, RecordState::Sequenced { index }));
        staged.leaves.push(LogLeaf { log_id, record_id });
        staged.states.insert(log_id, next);
        Ok(RecordStatus::Processing)
    }

    fn content_arrived(&mut self, staged: &mut Staged, key: (LogId, RecordId), digest: Hash) {
        let (log_id, record_id) = key;
        let Some(entry) = self.sourcing.get(&key) else {
            return;
        };
        if staged.done_sourcing.contains(&key) {
            return;
        }
        let mut missing: Vec<Hash> = entry.missing.clone();
        missing.retain(|d| *d != digest);
        // Other digests may have arrived meanwhile (several uploads).
        let mut still = Vec::new();
        for d in missing {
            match self.shared.content.locate(&d) {
                Ok(Some(_)) => {}
                _ => still.push(d),
            }
        }
        if !still.is_empty() {
            staged
                .batch
                .still_missing
                .push((log_id, record_id, still.clone()));
            if let Some(e) = self.sourcing.get_mut(&key) {
                e.missing = still;
            }
            return;
        }
        let envelope = entry.envelope.clone();
        staged.done_sourcing.push(key);
        let state = match self.package_state(staged, &log_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot load package state: {e}");
                return;
            }
        };
        match state.validate(&envelope) {
            Ok(next) => {
                let index = self.next_index(staged);
                staged.batch.sequenced.push((log_id, record_id, index));
                staged.leaves.push(LogLeaf { log_id, record_id });
                staged.states.insert(log_id, next);
            }
            Err(e) => staged
                .batch
                .rejected
                .push((log_id, record_id, e.to_string())),
        }
    }

    fn operator_record(
        &self,
        state: &OperatorState,
        entries: Vec<OperatorEntry>,
    ) -> Envelope<OperatorRecord> {
        Envelope::sign(
            &self.key,
            OperatorRecord {
                prev: state.head().map(|h| h.record_id),
                version: 0,
                timestamp: next_timestamp(state.head()),
                entries,
            },
        )
    }

    /// An attestation log as of this batch: staged, cached, or replayed
    /// from the store.
    fn attestation_log(
        &self,
        staged: &Staged,
        log_id: &LogId,
    ) -> Result<AttestationLog, SubmitError> {
        if let Some(log) = staged
            .attestations
            .get(log_id)
            .or_else(|| self.attestations.get(log_id))
        {
            return Ok(log.clone());
        }
        let operator = self.key.public_key();
        let mut log = AttestationLog::new();
        for (_, rec) in self
            .shared
            .meta
            .log_records(log_id, None, u64::MAX, usize::MAX)?
        {
            let envelope = decode_stored::<AttestationRecord>(&rec)?;
            log = log.validate(&envelope, operator).map_err(|e| {
                StoreError::Corrupt(format!("stored attestation {}: {e}", rec.record_id))
            })?;
        }
        Ok(log)
    }

    /// Appends a record of `attestation` to `name`'s attestation log,
    /// signed by the operator.
    fn stage_attestation(
        &mut self,
        staged: &mut Staged,
        name: &PackageName,
        attestation: Attestation,
    ) -> Result<Attested, SubmitError> {
        let log_id = LogId::attestations(name);
        let log = self.attestation_log(staged, &log_id)?;
        let envelope = Envelope::sign(
            &self.key,
            AttestationRecord {
                prev: log.head().map(|h| h.record_id),
                timestamp: next_timestamp(log.head()),
                attestation,
            },
        );
        let next = log
            .validate(&envelope, self.key.public_key())
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let index = self.next_index(staged);
        let record_id = envelope.record_id();
        staged
            .batch
            .records
            .push(stored(log_id, &envelope, RecordState::Sequenced { index }));
        staged.leaves.push(LogLeaf { log_id, record_id });
        staged.attestations.insert(log_id, next);
        Ok(Attested {
            log_id,
            record_id,
            index,
        })
    }

    fn stage_define(
        &mut self,
        staged: &mut Staged,
        namespaces: &[String],
    ) -> Result<Vec<String>, SubmitError> {
        let state = staged
            .operator
            .clone()
            .unwrap_or_else(|| self.operator.clone());
        let mut entries = Vec::new();
        let mut defined = Vec::new();
        if state.head().is_none() {
            entries.push(OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: self.key.public_key().clone(),
            });
        }
        for ns in namespaces {
            cairn_protocol::validate_namespace(ns)
                .map_err(|e| SubmitError::Invalid(format!("namespace `{ns}`: {e}")))?;
            if state.namespace(ns).is_none() && !defined.contains(ns) {
                entries.push(OperatorEntry::DefineNamespace {
                    namespace: ns.clone(),
                });
                defined.push(ns.clone());
            }
        }
        if entries.is_empty() {
            return Ok(defined);
        }
        let envelope = self.operator_record(&state, entries);
        let next = state
            .validate(&envelope)
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let index = self.next_index(staged);
        let log_id = LogId::operator();
        staged
            .batch
            .records
            .push(stored(log_id, &envelope, RecordState::Sequenced { index }));
        staged.leaves.push(LogLeaf {
            log_id,
            record_id: envelope.record_id(),
        });
        staged.operator = Some(next);
        Ok(defined)
    }

    /// Defines namespaces (and initialises the operator log) outside a batch.
    fn define_namespaces_now(&mut self, namespaces: &[String]) -> Result<Vec<String>, SubmitError> {
        let mut staged = Staged::default();
        let defined = self.stage_define(&mut staged, namespaces)?;
        self.commit(staged)?;
        Ok(defined)
    }

    /// Updates the map with the latest record of every log touched since the
    /// last checkpoint, signs a checkpoint of the whole log and stores it.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.unchecked.is_empty() {
            return Ok(());
        }
        let mut latest: HashMap<LogId, RecordId> = HashMap::with_capacity(self.unchecked.len());
        for leaf in &self.unchecked {
            latest.insert(leaf.log_id, leaf.record_id);
        }
        let map = self.map.apply(
            latest
                .into_iter()
                .map(|(l, r)| (*l.digest(), MapLeaf { record_id: r }.leaf_hash())),
        );
        let (log_root, log_length) = {
            let view = self.shared.view.read().unwrap_or_else(|e| e.into_inner());
            (view.log.root(), view.log.len())
        };
        let mut timestamp = now_seconds();
        if let Some((last, _)) = self
            .shared
            .view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .recent
            .back()
        {
            timestamp = timestamp.max(last.contents.timestamp);
        }
        let signed = TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root,
                log_length,
                map_root: map.root(),
            },
            timestamp,
        }
        .sign(&self.key);
        self.shared.meta.commit(&Batch {
            checkpoint: Some(signed.clone()),
            ..Batch::default()
        })?;
        self.map = map.clone();
        self.unchecked.clear();
        self.first_unchecked = None;
        let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
        view.recent.push_back((signed, map));
        while view.recent.len() > self.shared.config.recent_checkpoints.max(1) {
            view.recent.pop_front();
        }
        Ok(())
    }
}
