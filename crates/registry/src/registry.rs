//! [`Registry`]: the engine's doors. Writes go to the sequencer thread and
//! come back as [`Answer`]s; reads are answered from the in-memory view,
//! and from the store when the view does not hold the answer.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use cairn_protocol::attestation::{Attestation, AttestationRecord};
use cairn_protocol::notice::NoticeLog;
use cairn_protocol::operator::{NamespaceState, OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState};
use cairn_protocol::{
    Envelope, Hash, KeyId, LogId, LogLeaf, MapLeaf, PackageName, PrivateKey, PublicKey, RecordId,
    SignatureChecked, SignedCheckpoint, Version,
};
use cairn_transparency::log::{ConsistencyProof, InclusionProof, TiledLog, CHUNK_LEAVES};
use cairn_transparency::map::{Map, MapProofBundle};
use rayon::prelude::*;

use crate::answer::{self, Answer};
use crate::cache::Generations;
use crate::chunks::ChunkCache;
use crate::codec;
use crate::config::Config;
use crate::content::Admission;
use crate::error::{ContentError, OpenError, QueryError};
use crate::oci::ManifestWrite;
use crate::policy::{self as publish, Candidate, PolicyRefusal, PublishPolicy};
use crate::sequencer::{Attesting, Input, Sourcing, Submission};
use crate::snapshot;
use crate::storage::{
    ByteReader, ContentStore, Leadership, Loaded, MetaStore, RecordState, StoreError, StoredRecord,
};
use crate::thread::{Command, Reply, SequencerThread};
use crate::view::{OperatorView, View};

/// Where a record stands, as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordStatus {
    /// Waiting for the listed content.
    Sourcing {
        /// Digests to upload.
        missing: Vec<Hash>,
    },
    /// In the log at `index`, not yet covered by a checkpoint.
    Processing {
        /// Its registry index.
        index: u64,
    },
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

/// What readers and the sequencer thread share.
pub(crate) struct Shared {
    pub meta: Arc<dyn MetaStore>,
    pub content: Arc<dyn ContentStore>,
    pub config: Config,
    pub view: View,
    /// Keys seen in package logs, by id: lets a submitter check a record's
    /// signature on its own thread, off the sequencer's. Key ids are
    /// digests of the keys, so an entry is never wrong, only missing;
    /// permissions are still checked by the sequencer.
    pub keys: RwLock<Generations<KeyId, PublicKey>>,
    /// Published package states for readers (the OCI face), each with the
    /// registry index of the last record applied.
    published: Mutex<Generations<LogId, (u64, PackageState)>>,
    /// The memory uploads may hold while their Wasm is validated.
    pub budget: crate::content::Budget,
    /// Leaf hashes of chunks of the log read for proofs.
    pub chunks: ChunkCache,
    /// The notice log as readers see it.
    pub notices: Mutex<crate::takedown::Notices>,
    /// Partial level-0 tiles and entry bundles (the log's right edge),
    /// made once from the store and then served from here: like full
    /// tiles they never change, and every client of the latest checkpoint
    /// asks for the same few.
    pub partial_tiles: Mutex<Generations<String, Arc<Vec<u8>>>>,
    /// Publish policies read lately, by namespace, with when: a change
    /// made by another process shows within [`POLICY_FRESH`].
    pub policies: Mutex<HashMap<String, (Instant, PublishPolicy)>>,
}

/// How long a publish policy read from the store is trusted.
const POLICY_FRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Publish policies kept at most (the map is emptied when full).
const POLICIES_KEPT: usize = 4096;

/// A query's failure where content is being admitted: storage, in words.
fn query_store(e: QueryError) -> ContentError {
    match e {
        QueryError::Store(e) => e.into(),
        e => StoreError::Backend(e.to_string()).into(),
    }
}

/// Partial tiles kept in memory per generation (at most 256 leaves each:
/// an entry bundle of typical records is some tens of KiB).
const PARTIAL_TILES: usize = 32;

impl Shared {
    /// What readers and the sequencer thread share, starting from `state`.
    pub fn new(
        meta: Arc<dyn MetaStore>,
        content: Arc<dyn ContentStore>,
        config: Config,
        state: &mut State,
    ) -> Arc<Shared> {
        let generation = config.cache_generation;
        let view = View::new(
            std::mem::take(&mut state.log),
            state.checkpoint.clone().map(|cp| (cp, state.map.clone())),
            state.operator_view(),
            generation,
        );
        if let Some(index) = state.last_notice {
            view.note_notice(index);
        }
        Arc::new(Shared {
            budget: crate::content::Budget::new(config.validation_memory),
            meta,
            content,
            view,
            config,
            keys: RwLock::new(Generations::new(generation)),
            published: Mutex::new(Generations::new(generation)),
            notices: Mutex::new(crate::takedown::Notices::default()),
            chunks: ChunkCache::default(),
            partial_tiles: Mutex::new(Generations::new(PARTIAL_TILES)),
            policies: Mutex::new(HashMap::new()),
        })
    }

    /// Adds the keys of `states` to the key cache.
    pub fn remember_keys<'a>(&self, states: impl IntoIterator<Item = &'a PackageState>) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        for state in states {
            for key in state.authorities().keys() {
                if keys.peek(&key.id()).is_none() {
                    keys.insert(key.id(), key.clone());
                }
            }
        }
    }
}

/// A running registry.
pub struct Registry {
    pub(crate) shared: Arc<Shared>,
    tx: Sender<Command>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Set when this is one of several processes sharing a store.
    replica: Option<Arc<crate::replica::Replica>>,
}

/// Whether a process sequences, or follows the one that does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// It sequences: writes are decided here.
    Leader,
    /// Another replica sequences: writes go there.
    Follower {
        /// Where the leader accepts forwarded writes, if one leads now.
        leader: Option<String>,
    },
}

/// An upload of one digest for one sourcing record (the Warg face). Feed
/// it with [`Upload::write`], then [`Registry::finish_upload`]; dropping it
/// discards the bytes.
pub struct Upload {
    log_id: LogId,
    record_id: RecordId,
    admission: Admission,
}

impl Upload {
    /// Appends bytes; refuses once the limit is passed or the bytes cannot
    /// be Wasm.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        self.admission.write(bytes)
    }

    /// The record this upload is for.
    pub fn record_id(&self) -> &RecordId {
        &self.record_id
    }
}

/// A stored snapshot that can be started from: its log length, the map
/// there, and the chunk hashes of the log up to there with the log root
/// they must lead to (none in a map-only snapshot).
struct Snapshot {
    at: u64,
    map: Map,
    chunks: Option<(Vec<Hash>, Hash)>,
}

/// The stored snapshot, if it is usable: at a checkpointed length, and
/// decoding to that checkpoint's map root. Otherwise (none, damaged, or
/// another checkpoint's) `None`, and the log is read from the start.
fn usable_snapshot(meta: &dyn MetaStore) -> Result<Option<Snapshot>, StoreError> {
    let (at, mut bytes) = match meta.load_map_snapshot() {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!("ignoring the snapshot: {e}");
            return Ok(None);
        }
    };
    let Some(checkpoint) = meta.checkpoint(at)? else {
        tracing::warn!("ignoring the snapshot at log length {at}: no such checkpoint");
        return Ok(None);
    };
    let checkpoint = &checkpoint.contents.checkpoint;
    let decoded = match snapshot::decode(&mut bytes) {
        Ok(decoded) => decoded,
        Err(e) => {
            tracing::warn!("ignoring the snapshot at log length {at}: {e}");
            return Ok(None);
        }
    };
    if decoded.map.root() != checkpoint.map_root {
        tracing::warn!(
            "ignoring the snapshot at log length {at}: its map root differs from the checkpoint's"
        );
        return Ok(None);
    }
    let chunks = match decoded.chunk_roots {
        Some(roots) if roots.len() as u64 <= at / CHUNK_LEAVES => {
            Some((roots, checkpoint.log_root))
        }
        Some(roots) => {
            tracing::warn!(
                "ignoring the log chunks of the snapshot at log length {at}: {} chunks is too many",
                roots.len()
            );
            None
        }
        None => None,
    };
    Ok(Some(Snapshot {
        at,
        map: decoded.map,
        chunks,
    }))
}

/// Leaves read at once when the log is read in pieces.
const LEAVES_PER_READ: u64 = 1 << 20;

/// The log and the map of a checkpoint, rebuilt from leaves fed in order.
struct Rebuild {
    log: TiledLog,
    /// The map, from the snapshot's (or empty) to the checkpoint's.
    map: Map,
    /// The first leaf the map lacks.
    map_from: u64,
    /// The checkpoint's length, and the log root there once the log passed it.
    checkpointed: u64,
    root: Option<Hash>,
    /// The snapshot's length and the log root its chunk hashes must give
    /// there; then whether they did.
    check: Option<(u64, Hash)>,
    checked: Option<bool>,
    /// Leaves after the checkpoint.
    uncheckpointed: Vec<LogLeaf>,
}

impl Rebuild {
    fn new(log: TiledLog, map: Map, map_from: u64, checkpointed: u64) -> Rebuild {
        let mut rebuild = Rebuild {
            log,
            map,
            map_from,
            checkpointed,
            root: None,
            check: None,
            checked: None,
            uncheckpointed: Vec::new(),
        };
        rebuild.note();
        rebuild
    }

    /// Takes the roots the log has now, if it is at a length they are due.
    fn note(&mut self) {
        let length = self.log.len();
        if length == self.checkpointed {
            self.root = Some(self.log.root());
        }
        if let Some((at, root)) = self.check {
            if at == length {
                self.checked = Some(self.log.root() == root);
            }
        }
    }

    /// Appends `leaves`, the next of the log.
    fn feed(&mut self, leaves: &[LogLeaf]) {
        let start = self.log.len();
        let hashes: Vec<Hash> = leaves.par_iter().map(LogLeaf::leaf_hash).collect();
        for hash in hashes {
            self.log.push(hash);
            self.note();
        }
        let offset = |index: u64| (index.saturating_sub(start) as usize).min(leaves.len());
        let (from, to) = (offset(self.map_from), offset(self.checkpointed));
        if from < to {
            self.map = apply_latest(std::mem::take(&mut self.map), &leaves[from..to]);
        }
        self.uncheckpointed.extend_from_slice(&leaves[to..]);
    }

    /// Reads the leaves from the log's length to `end` from the store, a
    /// piece at a time.
    fn stream(&mut self, meta: &dyn MetaStore, end: u64) -> Result<(), StoreError> {
        while self.log.len() < end {
            let at = self.log.len();
            let limit = (end - at).min(LEAVES_PER_READ);
            let mut piece = meta.leaves(at, limit as usize)?;
            if piece.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "the log has {end} leaves but ends at {at}"
                )));
            }
            piece.truncate(limit as usize);
            self.feed(&piece);
        }
        Ok(())
    }
}

/// Rebuilds the log (every leaf) and the map of the checkpoint at
/// `checkpointed`: from `snapshot` and `loaded`'s leaves (those from its
/// last chunk on) when its chunk hashes lead to its checkpoint's root,
/// otherwise by reading every leaf in pieces (with the snapshot's map, if
/// there is one).
fn rebuild(
    meta: &dyn MetaStore,
    snapshot: Option<Snapshot>,
    loaded: &mut Loaded,
    checkpointed: u64,
) -> Result<(Rebuild, u64), StoreError> {
    let length = loaded.log_length;
    let (map, at, chunks) = match snapshot {
        Some(s) => (s.map, s.at, s.chunks),
        None => (Map::new(), 0, None),
    };
    if let Some((roots, root)) = chunks {
        let from = roots.len() as u64 * CHUNK_LEAVES;
        let leaves = std::mem::take(&mut loaded.leaves);
        if leaves.len() as u64 == length.saturating_sub(from) {
            let mut rebuild =
                Rebuild::new(TiledLog::from_chunks(roots), map.clone(), at, checkpointed);
            rebuild.check = Some((at, root));
            rebuild.note();
            rebuild.feed(&leaves);
            if rebuild.checked == Some(true) {
                return Ok((rebuild, at));
            }
            tracing::warn!(
                "ignoring the log chunks of the snapshot at log length {at}: they do not lead to \
                 its checkpoint's log root; reading every leaf"
            );
        } else {
            tracing::warn!(
                "the store returned {} leaves from {from}, not {}; reading every leaf",
                leaves.len(),
                length.saturating_sub(from)
            );
        }
    }
    // No chunk hashes saved (or none to trust): every leaf, in pieces. The
    // snapshot's map was checked against its checkpoint, so it stays; the
    // next snapshot (due at once) saves the chunk hashes.
    let mut rebuild = Rebuild::new(TiledLog::new(), map, at, checkpointed);
    rebuild.stream(meta, length)?;
    Ok((rebuild, 0))
}

/// Checks namespace names given on the command line.
fn check_namespaces(namespaces: &[String]) -> Result<(), OpenError> {
    for ns in namespaces {
        cairn_protocol::validate_namespace(ns)
            .map_err(|e| OpenError::Invalid(format!("namespace `{ns}`: {e}")))?;
    }
    Ok(())
}

/// What the sequencer and the view start from, loaded from the store: at
/// open, and when a replica takes the lead.
pub(crate) struct State {
    /// The registry log of every committed leaf (taken by the view).
    pub log: TiledLog,
    /// The number of committed leaves.
    pub log_length: u64,
    /// The map of the latest checkpoint.
    pub map: Map,
    /// The latest checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
    /// The log length of the snapshot the log and map were rebuilt from
    /// (0 when it lacked the log's chunk hashes, so that the next one is
    /// saved at once).
    pub snapshot_length: u64,
    /// Leaves not covered by the latest checkpoint.
    pub uncheckpointed: Vec<LogLeaf>,
    /// The operator log, replayed.
    pub operator: OperatorState,
    /// Its records with their registry indexes.
    pub operator_records: Vec<(u64, StoredRecord)>,
    /// Records waiting for content.
    pub sourcing: HashMap<(LogId, RecordId), Sourcing>,
    /// The notice log (take-downs), replayed.
    pub notices: NoticeLog,
    /// The registry index of its last record.
    pub last_notice: Option<u64>,
}

impl State {
    /// Loads the log, rebuilds the map of the latest checkpoint (from the
    /// snapshot when one matches) and refuses unless both roots equal the
    /// checkpoint's; replays the operator log and checks that `key` may
    /// sign checkpoints.
    ///
    /// With a usable snapshot, only the leaves from its last saved chunk on
    /// are read; without one, every leaf is read in pieces of
    /// [`LEAVES_PER_READ`] and none is kept beyond the checkpoint's.
    pub fn load(meta: &dyn MetaStore, key: &PrivateKey) -> Result<State, OpenError> {
        let started = Instant::now();
        let snapshot = usable_snapshot(meta)?;
        let from = match &snapshot {
            Some(Snapshot {
                chunks: Some((roots, _)),
                ..
            }) => roots.len() as u64 * CHUNK_LEAVES,
            _ => u64::MAX,
        };
        let mut loaded = meta.load(from)?;
        let loaded_in = started.elapsed();
        let checkpointed = loaded
            .checkpoint
            .as_ref()
            .map_or(0, |cp| cp.contents.checkpoint.log_length);
        if checkpointed > loaded.log_length {
            return Err(StoreError::Corrupt(format!(
                "checkpoint at length {checkpointed} but the log has {} leaves",
                loaded.log_length
            ))
            .into());
        }
        let snapshot = snapshot.filter(|s| {
            let usable = s.at <= checkpointed;
            if !usable {
                tracing::warn!(
                    "ignoring the snapshot at log length {}: past the latest checkpoint",
                    s.at
                );
            }
            usable
        });
        let read = loaded.leaves.len();
        let (rebuilt, snapshot_length) = rebuild(meta, snapshot, &mut loaded, checkpointed)?;
        if let Some(cp) = &loaded.checkpoint {
            if rebuilt.root != Some(cp.contents.checkpoint.log_root)
                || rebuilt.map.root() != cp.contents.checkpoint.map_root
            {
                return Err(StoreError::Corrupt(format!(
                    "the stored log does not reproduce the roots of checkpoint {checkpointed}"
                ))
                .into());
            }
        }
        let Rebuild {
            log,
            map,
            uncheckpointed,
            ..
        } = rebuilt;
        tracing::info!(
            leaves = log.len(),
            keys = map.len(),
            from_snapshot = snapshot_length,
            leaves_loaded = if snapshot_length > 0 {
                read as u64
            } else {
                log.len()
            },
            "loaded the log in {loaded_in:.2?}, log and map rebuilt and checked in {:.2?}",
            started.elapsed() - loaded_in
        );
        let (operator, operator_records) = load_operator(meta)?;
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
        let (notices, last_notice) =
            crate::takedown::load_notices(meta, NoticeLog::new(), None, u64::MAX)?;
        let mut sourcing = HashMap::new();
        for rec in loaded.sourcing {
            if let RecordState::Sourcing { missing, since } = &rec.state {
                let envelope = codec::decode::<PackageRecord>(&rec)?;
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
        Ok(State {
            log_length: log.len(),
            log,
            map,
            checkpoint: loaded.checkpoint,
            snapshot_length,
            uncheckpointed,
            operator,
            operator_records,
            sourcing,
            notices,
            last_notice,
        })
    }

    /// The operator log as readers see it.
    pub fn operator_view(&self) -> OperatorView {
        OperatorView {
            keys: operator_keys(&self.operator),
            namespaces: namespaces_of(&self.operator),
            records: self.operator_records.clone(),
        }
    }
}

/// The operator log, replayed from the store (it is short).
pub(crate) fn load_operator(
    meta: &dyn MetaStore,
) -> Result<(OperatorState, Vec<(u64, StoredRecord)>), StoreError> {
    let mut operator = OperatorState::new();
    let records = meta.log_records(&LogId::operator(), None, u64::MAX, usize::MAX)?;
    for (_, rec) in &records {
        let envelope = codec::decode::<OperatorRecord>(rec)?;
        operator
            .apply(&envelope)
            .map_err(|e| StoreError::Corrupt(format!("stored operator record: {e}")))?;
    }
    Ok((operator, records))
}

/// `map` with the latest record of each log that `leaves` touch.
pub(crate) fn apply_latest(map: Map, leaves: &[LogLeaf]) -> Map {
    let mut latest: HashMap<LogId, RecordId> = HashMap::new();
    for leaf in leaves {
        latest.insert(leaf.log_id, leaf.record_id);
    }
    map.apply(
        latest
            .into_iter()
            .map(|(l, r)| (*l.digest(), MapLeaf { record_id: r }.leaf_hash())),
    )
}

/// The namespaces an operator log names, each with the registry it is
/// imported from (`None`: defined by this registry).
pub(crate) fn namespaces_of(state: &OperatorState) -> Vec<(String, Option<String>)> {
    state
        .namespaces()
        .map(|(ns, how)| {
            let from = match how {
                NamespaceState::Defined => None,
                NamespaceState::Imported { registry } => Some(registry.clone()),
            };
            (ns.to_owned(), from)
        })
        .collect()
}

/// The keys that may sign checkpoints.
pub(crate) fn operator_keys(state: &OperatorState) -> Vec<PublicKey> {
    state
        .authorities()
        .keys()
        .filter(|k| state.may_sign_checkpoints(&k.id()))
        .cloned()
        .collect()
}

impl Registry {
    /// Opens the registry on `meta` and `content`: loads the log, rebuilds
    /// the map of the latest checkpoint (checking both roots against it),
    /// initialises the operator log on first start and defines `namespaces`
    /// that are not defined yet. Then starts the sequencer thread.
    pub fn open(
        meta: Arc<dyn MetaStore>,
        content: Arc<dyn ContentStore>,
        key: PrivateKey,
        namespaces: &[String],
        config: Config,
    ) -> Result<Arc<Registry>, OpenError> {
        check_namespaces(namespaces)?;
        let mut state = State::load(meta.as_ref(), &key)?;
        let shared = Shared::new(meta, content, config, &mut state);
        let thread = SequencerThread::start(shared.clone(), key, state, namespaces, None)?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("cairn-sequencer".into())
            .spawn(move || {
                thread.run(&rx);
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the sequencer: {e}")))?;
        Ok(Arc::new(Registry {
            shared,
            tx,
            writer: Mutex::new(Some(handle)),
            replica: None,
        }))
    }

    /// Opens one of several registry processes that share `meta` and
    /// `content` (a replica): the one that holds the lead (`lead`)
    /// sequences, as [`Registry::open`] does; the others serve reads from
    /// a view they keep up to date as the leader commits checkpoints, and
    /// take over (loading the log afresh) when the leader's session ends.
    /// `url` is where this process accepts writes the others forward to it
    /// while it leads. [`Registry::role`] says which it is now.
    pub fn open_replica(
        meta: Arc<dyn MetaStore>,
        content: Arc<dyn ContentStore>,
        key: PrivateKey,
        namespaces: &[String],
        config: Config,
        lead: Arc<dyn Leadership>,
        url: String,
    ) -> Result<Arc<Registry>, OpenError> {
        check_namespaces(namespaces)?;
        let leads = lead.try_lead(&url)?;
        let mut state = State::load(meta.as_ref(), &key)?;
        let shared = Shared::new(meta, content, config, &mut state);
        let replica = Arc::new(crate::replica::Replica::new(
            lead.clone(),
            url,
            lead.replica_secret()?,
        ));
        let thread = if leads {
            replica.set_leading(true);
            Some(SequencerThread::start(
                shared.clone(),
                key.clone(),
                state,
                namespaces,
                Some(lead),
            )?)
        } else {
            tracing::info!(
                "another replica leads; following its checkpoints (log length {})",
                shared.view.checkpointed_length()
            );
            // Namespaces this replica was given that the log lacks are
            // defined by whichever replica sequences, from the store's
            // admin requests.
            let named: Vec<String> = shared
                .view
                .operator()
                .namespaces
                .iter()
                .map(|(ns, _)| ns.clone())
                .collect();
            for namespace in namespaces.iter().filter(|n| !named.contains(n)) {
                match shared.meta.request_define_namespace(namespace) {
                    Ok(_) => tracing::info!(
                        "asked the replica that leads to define namespace `{namespace}`"
                    ),
                    Err(e) => tracing::warn!(
                        "cannot ask the replica that leads to define namespace `{namespace}`: {e}"
                    ),
                }
            }
            None
        };
        let (tx, rx) = mpsc::channel();
        let follower = crate::replica::Follower {
            shared: shared.clone(),
            replica: replica.clone(),
            key,
            namespaces: namespaces.to_vec(),
        };
        let handle = std::thread::Builder::new()
            .name("cairn-replica".into())
            .spawn(move || follower.run(thread, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the replica thread: {e}")))?;
        Ok(Arc::new(Registry {
            shared,
            tx,
            writer: Mutex::new(Some(handle)),
            replica: Some(replica),
        }))
    }

    /// Whether this process sequences (it leads, or it is the only one),
    /// or follows another that does.
    pub fn role(&self) -> Role {
        match &self.replica {
            None => Role::Leader,
            Some(replica) if replica.is_leading() => Role::Leader,
            Some(replica) => Role::Follower {
                leader: replica.leader_url(),
            },
        }
    }

    /// The secret the replicas sharing this registry's store know (see
    /// [`Leadership::replica_secret`]); `None` for a single process.
    pub fn replica_secret(&self) -> Option<[u8; 32]> {
        self.replica.as_ref().map(|r| r.secret())
    }

    /// The engine's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(crate) fn send<T>(
        &self,
        command: impl FnOnce(crate::answer::Reply<T>) -> Command,
    ) -> Answer<T> {
        let (reply, answer) = Answer::new();
        // A send fails only once the sequencer stopped; the reply inside
        // is dropped with the command, and the answer says so.
        let _ = self.tx.send(command(reply));
        answer
    }

    /// Submits a package record. The answer comes once the record is
    /// durably accepted (sequenced, or waiting for content) or refused.
    pub fn submit(
        &self,
        name: PackageName,
        log_id: LogId,
        envelope: Envelope<PackageRecord>,
    ) -> Answer<RecordStatus> {
        self.submit_with(name, log_id, envelope, None)
    }

    /// Submits a package record that carries an OCI manifest to store with
    /// it, in the same commit, if and only if the record is sequenced.
    pub(crate) fn submit_with(
        &self,
        name: PackageName,
        log_id: LogId,
        envelope: Envelope<PackageRecord>,
        manifest: Option<ManifestWrite>,
    ) -> Answer<RecordStatus> {
        let checked = self.check_signature(&envelope);
        let record_id = envelope.record_id();
        let input = Input::Submit(Box::new(Submission {
            name,
            log_id,
            envelope,
            record_id,
            checked,
            manifest,
        }));
        self.send(|reply| Command::Input(input, Reply::Record(reply)))
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
                .peek(signer)
                .cloned()
        })?;
        envelope.check_signature(&key).ok()
    }

    /// Records in `name`'s attestation log that `attestation` was attached
    /// to one of its manifests, storing `manifest` in the same commit. The
    /// answer comes once the record is durably sequenced.
    pub(crate) fn attest_with(
        &self,
        name: PackageName,
        attestation: Attestation,
        manifest: Option<ManifestWrite>,
    ) -> Answer<Attested> {
        let input = Input::Attest(Box::new(Attesting {
            name,
            attestation,
            manifest,
        }));
        self.send(|reply| Command::Input(input, Reply::Attested(reply)))
    }

    /// Defines namespaces through a new operator record; answers with those
    /// that were newly defined.
    pub fn define_namespaces(&self, namespaces: Vec<String>) -> Answer<Vec<String>> {
        self.send(|reply| Command::Input(Input::Define(namespaces), Reply::Defined(reply)))
    }

    /// Rejects records whose content is overdue and runs waiting admin
    /// requests now, rather than at the next periodic run.
    pub fn housekeeping(&self) -> Answer<()> {
        self.send(Command::Housekeeping)
    }

    /// Waits until a checkpoint covers the record at `index` (it is
    /// published). Resolves to `false` if the registry stops first.
    pub fn checkpointed(&self, index: u64) -> impl Future<Output = bool> + Send + 'static {
        answer::checkpointed(self.shared.view.watch_checkpointed(), index)
    }

    /// Waits from a blocking thread, until `deadline`, for a checkpoint to
    /// cover the sequenced record `record_id` of `log_id`; returns its
    /// registry index. An error if the record is not sequenced (sourcing,
    /// rejected, unknown) or the deadline passes.
    pub fn wait_published(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
        deadline: Instant,
    ) -> Result<u64, QueryError> {
        let index = match self.record_status(log_id, record_id)? {
            RecordStatus::Processing { index } | RecordStatus::Published { index } => index,
            other => {
                return Err(QueryError::Invalid(format!(
                    "record {record_id} is not sequenced: {other:?}"
                )))
            }
        };
        match wait_until(self.checkpointed(index), deadline) {
            Some(true) => Ok(index),
            Some(false) => Err(QueryError::Invalid("the registry stopped".into())),
            None => Err(QueryError::Invalid(format!(
                "record {record_id} was not published in time"
            ))),
        }
    }

    /// Stops the sequencer after it made a checkpoint of everything sequenced.
    pub fn shutdown(&self) {
        let stopped = self.send(Command::Stop);
        let _ = stopped.wait();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }

    fn view(&self) -> &View {
        &self.shared.view
    }

    /// The namespaces this registry defines.
    pub fn namespaces(&self) -> Vec<String> {
        self.view()
            .operator()
            .namespaces
            .iter()
            .filter(|(_, from)| from.is_none())
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// The namespaces this registry imports (and has not forked), each
    /// with the registry it comes from, as its import record names it.
    pub fn imports(&self) -> Vec<(String, String)> {
        let imported: Vec<(String, String)> = self
            .view()
            .operator()
            .namespaces
            .iter()
            .filter_map(|(ns, from)| Some((ns.clone(), from.clone()?)))
            .collect();
        if imported.is_empty() {
            return imported;
        }
        let notices = self.notices().ok();
        imported
            .into_iter()
            .filter(|(ns, _)| notices.as_ref().is_none_or(|n| n.forked(ns).is_none()))
            .collect()
    }

    /// Whether this registry imports (and has not forked) a namespace from
    /// `registry`, named as its import records name it.
    pub fn imports_from(&self, registry: &str) -> bool {
        self.imports().iter().any(|(_, from)| from == registry)
    }

    /// The registry `namespace` is imported from, if it is (and was not
    /// forked since).
    pub fn imported_from(&self, namespace: &str) -> Option<String> {
        let from = self
            .view()
            .operator()
            .namespaces
            .iter()
            .find(|(ns, _)| ns == namespace)
            .and_then(|(_, from)| from.clone())?;
        let forked = self
            .notices()
            .map(|n| n.forked(namespace).is_some())
            .unwrap_or(false);
        (!forked).then_some(from)
    }

    /// Imports `namespace` from `registry` (its URL or domain) through a
    /// new operator record: its packages are another registry's, and
    /// clients asking for them here are told where they live. Answers
    /// with the namespace if newly imported, nothing if it already was.
    pub fn import_namespace(&self, namespace: String, registry: String) -> Answer<Vec<String>> {
        self.send(|reply| Command::Input(Input::Import(namespace, registry), Reply::Defined(reply)))
    }

    /// The keys the operator log holds (the first signs checkpoints).
    pub fn operator_keys(&self) -> Vec<PublicKey> {
        self.view().operator().keys.clone()
    }

    /// The latest checkpoint.
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.view().latest()
    }

    /// The recent checkpoints the registry keeps in memory, oldest first
    /// (the latest last).
    pub fn recent_checkpoints(&self) -> Vec<SignedCheckpoint> {
        self.view()
            .recent()
            .iter()
            .map(|(cp, _)| cp.clone())
            .collect()
    }

    /// The checkpoint at `log_length`.
    pub fn checkpoint_at(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, QueryError> {
        if let Some(found) = self
            .view()
            .recent()
            .iter()
            .find(|(cp, _)| cp.contents.checkpoint.log_length == log_length)
        {
            return Ok(Some(found.0.clone()));
        }
        Ok(self.shared.meta.checkpoint(log_length)?)
    }

    /// The number of records durably in the log (some maybe not yet in a
    /// checkpoint).
    pub fn committed_length(&self) -> u64 {
        self.view().log().len()
    }

    /// The log length of the latest checkpoint.
    pub fn log_length(&self) -> u64 {
        self.view().checkpointed_length()
    }

    /// Where a record stands, if the engine remembers it: no IO. A record
    /// decided since the start is usually remembered; `None` means ask
    /// [`Registry::record_status`].
    pub fn remembered_status(&self, log_id: &LogId, record_id: &RecordId) -> Option<RecordStatus> {
        self.view().status(&(*log_id, *record_id))
    }

    /// Where a record of `log_id` stands.
    pub fn record_status(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<RecordStatus, QueryError> {
        if let Some(status) = self.remembered_status(log_id, record_id) {
            return Ok(status);
        }
        let record = self
            .shared
            .meta
            .record(log_id, record_id)?
            .ok_or(QueryError::RecordNotFound(*record_id))?;
        Ok(self.view().published(RecordStatus::of(&record.state)))
    }

    /// Refuses a request that names more than `max_request_items` `what`.
    fn bounded(&self, what: &'static str, asked: usize) -> Result<(), QueryError> {
        let max = self.shared.config.max_request_items;
        if asked > max {
            return Err(QueryError::TooMany { what, asked, max });
        }
        Ok(())
    }

    /// Records of the requested logs up to the checkpoint `log_length`: at
    /// most `fetch_limit_max` per log and `fetch_records_max` in all (then
    /// `more` is set, and logs not reached are left out for the next page).
    pub fn fetch_logs(&self, request: &FetchRequest) -> Result<FetchResponse, QueryError> {
        self.bounded("logs", request.packages.len())?;
        let length = request.log_length;
        if self.checkpoint_at(length)?.is_none() {
            return Err(QueryError::CheckpointNotFound(length));
        }
        let max = self.shared.config.fetch_limit_max;
        let limit = request.limit.unwrap_or(max).clamp(1, max);
        let mut response = FetchResponse::default();
        if let Some(after) = request.operator {
            let mut records: Vec<(u64, StoredRecord)> = self
                .view()
                .operator()
                .records
                .iter()
                .filter(|(i, _)| after.is_none_or(|a| *i > a) && *i < length)
                .take(limit + 1)
                .cloned()
                .collect();
            if records.len() > limit {
                records.truncate(limit);
                response.more = true;
            }
            response.operator = records;
        }
        let mut budget = self
            .shared
            .config
            .fetch_records_max
            .saturating_sub(response.operator.len());
        let mut packages = Vec::with_capacity(request.packages.len());
        for (log_id, after) in &request.packages {
            if budget == 0 {
                response.more = true;
                break;
            }
            let limit = limit.min(budget);
            let mut records = self
                .shared
                .meta
                .log_records(log_id, *after, length, limit + 1)?;
            if records.len() > limit {
                records.truncate(limit);
                response.more = true;
            }
            if records.is_empty() && after.is_none() {
                return Err(QueryError::LogNotFound(*log_id));
            }
            budget -= records.len();
            packages.push((*log_id, records));
        }
        response.packages = packages;
        Ok(response)
    }

    /// The state of a package log as published (every record a checkpoint
    /// covers), or `None` if it has none. Records are replayed once and
    /// cached; later calls apply only newer records.
    pub fn published_package(&self, log_id: &LogId) -> Result<Option<PackageState>, QueryError> {
        let published = self.log_length();
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
        state = codec::extend_package_state(state, records.iter().map(|(_, r)| r))?;
        if let Some((index, _)) = records.last() {
            after = Some(*index);
        }
        let Some(last) = after else {
            return Ok(None);
        };
        self.shared
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*log_id, (last, state.clone()));
        Ok(Some(state))
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
            .map(|(index, rec)| Ok((*index, codec::decode::<AttestationRecord>(rec)?)))
            .collect()
    }

    /// The names of every package, in name order.
    pub fn package_list(&self) -> Result<Vec<PackageName>, QueryError> {
        Ok(self.shared.meta.package_list()?)
    }

    /// The names of package logs (`None` for unknown ones).
    pub fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, QueryError> {
        self.bounded("log ids", log_ids.len())?;
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
        let map = self
            .view()
            .recent()
            .iter()
            .find(|(cp, _)| cp.contents.checkpoint.log_length == log_length)
            .map(|(_, map)| map.clone());
        let map = map.ok_or(QueryError::CheckpointNotFound(log_length))?;
        self.bounded("leaves", indexes.len())?;
        if let Some(bad) = indexes.iter().find(|i| **i >= log_length) {
            return Err(QueryError::LeafNotFound(*bad));
        }
        let mut distinct = indexes.to_vec();
        distinct.sort_unstable();
        if let Some(twice) = distinct.windows(2).find(|w| w[0] == w[1]) {
            return Err(QueryError::Invalid(format!(
                "leaf {} is asked for twice; ask for each leaf once",
                twice[0]
            )));
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
        let bundle = self.shared.bundle(&[], &inclusions)?;
        let map_bundle = MapProofBundle { proofs: map_proofs }.encode();
        Ok((bundle, map_bundle))
    }

    /// A consistency proof from `from` to `to`, as a Warg `LogProofBundle`.
    pub fn prove_consistency(&self, from: u64, to: u64) -> Result<Vec<u8>, QueryError> {
        if to > self.log_length() {
            return Err(QueryError::CheckpointNotFound(to));
        }
        if from == 0 || from > to {
            return Err(QueryError::Invalid(format!(
                "cannot prove consistency from log length {from} to {to}: need 0 < from <= to"
            )));
        }
        let proof = ConsistencyProof {
            old_length: from,
            new_length: to,
        };
        self.shared.bundle(&[proof], &[])
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
            .operator()
            .keys
            .iter()
            .any(|k| checkpoint.verify(k).is_ok());
        Ok((same, signed))
    }

    /// Whether the metadata store answers reads locally (see
    /// [`MetaStore::local`]): a small read may then run on an async worker.
    pub fn local_reads(&self) -> bool {
        self.shared.meta.local()
    }

    /// The size of the release content with `digest`, if stored.
    pub fn content_size(&self, digest: &Hash) -> Result<Option<u64>, QueryError> {
        self.check_not_taken_down(digest)?;
        Ok(self.shared.content.size(digest)?)
    }

    /// A URL the release content with `digest` downloads from directly,
    /// valid for at least `valid_for`, when the content store hands them
    /// out (an object store's presigned URL); `None`: serve the bytes.
    pub fn content_download_url(
        &self,
        digest: &Hash,
        valid_for: std::time::Duration,
    ) -> Result<Option<String>, QueryError> {
        self.check_not_taken_down(digest)?;
        Ok(self.shared.content.download_url(digest, valid_for)?)
    }

    /// `len` bytes of the release content with `digest` from `start`.
    pub fn read_content(
        &self,
        digest: &Hash,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, QueryError> {
        self.check_not_taken_down(digest)?;
        Ok(self.shared.content.read(digest, start, len)?)
    }

    /// Starts an upload of `digest` for the sourcing record `record_id`
    /// (the Warg face's content upload). Blocking.
    pub fn begin_upload(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
        digest: &Hash,
    ) -> Result<Upload, ContentError> {
        let status = match self.record_status(log_id, record_id) {
            Ok(status) => status,
            Err(QueryError::RecordNotFound(_)) => {
                return Err(ContentError::RecordNotFound(*record_id))
            }
            Err(QueryError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(StoreError::Backend(e.to_string()).into()),
        };
        let RecordStatus::Sourcing { missing } = status else {
            return Err(ContentError::NotSourcing(*record_id));
        };
        if !missing.contains(digest) {
            return Err(ContentError::NotMissing {
                record: *record_id,
                digest: *digest,
            });
        }
        Ok(Upload {
            log_id: *log_id,
            record_id: *record_id,
            admission: Admission::begin(
                self.shared.content.as_ref(),
                *digest,
                self.shared.config.max_content_bytes,
                &self.shared.budget,
            )?,
        })
    }

    /// Checks and stores an upload (blocking), then tells the sequencer;
    /// the answer says where the record stands once it has moved on.
    ///
    /// Content that has the record's digest but is not valid Wasm proves
    /// the record can never be completed: it is rejected at once (so the
    /// package is free for a corrected publish) and the error says why.
    /// Bytes of another digest change nothing: anyone may call the upload
    /// URL, so they must not be able to fail someone else's record.
    pub fn finish_upload(&self, upload: Upload) -> Result<Answer<RecordStatus>, ContentError> {
        let Upload {
            log_id,
            record_id,
            admission,
        } = upload;
        let expected = admission.expected();
        let digest = match admission.finish() {
            Ok(digest) => digest,
            Err(ContentError::NotWasm(e)) => {
                let input = Input::ContentRefused {
                    log_id,
                    record_id,
                    reason: format!("content `{expected}` is not valid WebAssembly: {e}"),
                };
                let answer = self.send(|reply| Command::Input(input, Reply::Record(reply)));
                if let Err(refusal) = answer.wait() {
                    tracing::warn!(%record_id, error = %refusal, "cannot reject a record whose content is invalid");
                }
                return Err(ContentError::NotWasm(e));
            }
            Err(e) => return Err(e),
        };
        // The releases this content is for meet their namespace's policy,
        // or the record is rejected and the bytes go again.
        if let Err(refusal) = self.check_uploaded(&log_id, &record_id, &digest) {
            if let ContentError::Policy(policy) = &refusal {
                let input = Input::ContentRefused {
                    log_id,
                    record_id,
                    reason: policy.to_string(),
                };
                let answer = self.send(|reply| Command::Input(input, Reply::Record(reply)));
                if let Err(e) = answer.wait() {
                    tracing::warn!(%record_id, error = %e, "cannot reject a record refused by policy");
                }
                self.forget_content(&digest);
            }
            return Err(refusal);
        }
        let input = Input::ContentArrived {
            log_id,
            record_id,
            digest,
        };
        Ok(self.send(|reply| Command::Input(input, Reply::Record(reply))))
    }

    /// Removes content admitted for a release that was then refused.
    pub(crate) fn forget_content(&self, digest: &Hash) {
        if let Err(e) = self.shared.content.remove(digest) {
            tracing::warn!(%digest, error = %e, "cannot remove content refused by policy");
        }
    }

    /// Checks the releases of the sourcing record `record_id` that
    /// `digest` is the content of against their namespace's policy.
    fn check_uploaded(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
        digest: &Hash,
    ) -> Result<(), ContentError> {
        let Some(name) = self
            .shared
            .meta
            .package_names(std::slice::from_ref(log_id))?
            .into_iter()
            .next()
            .flatten()
        else {
            return Ok(());
        };
        if self.publish_policy(name.namespace())?.is_open() {
            return Ok(());
        }
        let Some(stored) = self.shared.meta.record(log_id, record_id)? else {
            return Ok(());
        };
        let envelope = codec::decode::<PackageRecord>(&stored)?;
        for entry in &envelope.contents().entries {
            if let PackageEntry::Release { version, content } = entry {
                if content == digest {
                    self.check_release(&name, version, content, false)?;
                }
            }
        }
        Ok(())
    }

    /// Makes the bytes `source` yields the release content `digest`, through
    /// the content door (size limit, digest, Wasm), unless it is release
    /// content already. Blocking.
    pub(crate) fn admit(&self, digest: &Hash, source: &mut dyn Read) -> Result<(), ContentError> {
        if self.shared.content.size(digest)?.is_some() {
            return Ok(());
        }
        let mut admission = Admission::begin(
            self.shared.content.as_ref(),
            *digest,
            self.shared.config.max_content_bytes,
            &self.shared.budget,
        )?;
        admission.copy_from(source)?;
        admission.finish()?;
        Ok(())
    }

    /// The publish policy of `namespace`, as read from the store at most
    /// two seconds ago. Blocking.
    pub fn publish_policy(&self, namespace: &str) -> Result<PublishPolicy, StoreError> {
        let now = Instant::now();
        {
            let cached = self
                .shared
                .policies
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((at, policy)) = cached.get(namespace) {
                if now.duration_since(*at) < POLICY_FRESH {
                    return Ok(policy.clone());
                }
            }
        }
        let policy = self.shared.meta.publish_policy(namespace)?;
        let mut cached = self
            .shared
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cached.len() >= POLICIES_KEPT {
            cached.clear();
        }
        cached.insert(namespace.to_owned(), (now, policy.clone()));
        Ok(policy)
    }

    /// Whether `namespace`'s policy was read lately and asks nothing: then
    /// a publish need not go to a blocking thread to check it.
    pub fn policy_known_open(&self, namespace: &str) -> bool {
        let cached = self
            .shared
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cached
            .get(namespace)
            .is_some_and(|(at, p)| at.elapsed() < POLICY_FRESH && p.is_open())
    }

    /// Sets the publish policy of `namespace` (it applies at once here,
    /// within two seconds in other processes). Blocking.
    ///
    /// With `if_tag`, only if the namespace's policy now has that
    /// [`PublishPolicy::tag`] (compared in the store, not the cache, and
    /// set atomically there): answers whether it was set (`false`: another
    /// edit came first, nothing changed).
    pub fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let set = self
            .shared
            .meta
            .set_publish_policy(namespace, policy, if_tag)?;
        self.shared
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(namespace);
        Ok(set)
    }

    /// Checks the releases of `envelope` whose content is already here
    /// against their namespace's publish policy, before the record is
    /// submitted; a release whose content is missing is checked when its
    /// content arrives ([`Registry::finish_upload`]). Blocking.
    pub fn check_submission(
        &self,
        name: &PackageName,
        envelope: &Envelope<PackageRecord>,
    ) -> Result<(), ContentError> {
        let releases: Vec<(&Version, &Hash)> = envelope
            .contents()
            .entries
            .iter()
            .filter_map(|e| match e {
                PackageEntry::Release { version, content } => Some((version, content)),
                _ => None,
            })
            .collect();
        if releases.is_empty() || self.publish_policy(name.namespace())?.is_open() {
            return Ok(());
        }
        for (version, content) in releases {
            if self.shared.content.size(content)?.is_some() {
                self.check_release(name, version, content, false)?;
            }
        }
        Ok(())
    }

    /// Checks the release `name@version` of `content` (stored here)
    /// against its namespace's publish policy: the one door both faces
    /// pass before a release record is submitted. Blocking.
    pub(crate) fn check_release(
        &self,
        name: &PackageName,
        version: &Version,
        content: &Hash,
        marked_break: bool,
    ) -> Result<(), ContentError> {
        let policy = self.publish_policy(name.namespace())?;
        if policy.is_open() {
            return Ok(());
        }
        let (_held, bytes) = self.policy_bytes(name, version, content)?;
        let state = self
            .published_package(&LogId::package(name))
            .map_err(query_store)?;
        let previous = if policy.semver_gate {
            let released = state.iter().flat_map(|s| {
                s.releases()
                    .filter(|r| r.yanked.is_none())
                    .map(|r| &r.version)
            });
            match publish::previous_in_series(version, released) {
                Some(previous) => {
                    let digest = state
                        .as_ref()
                        .and_then(|s| s.release(previous))
                        .map(|r| r.content);
                    match digest {
                        Some(digest) => Some((
                            previous.clone(),
                            self.policy_bytes(name, previous, &digest)?,
                        )),
                        None => None,
                    }
                }
                None => None,
            }
        } else {
            None
        };
        let candidate = Candidate {
            name,
            version,
            bytes: &bytes,
            marked_break,
        };
        publish::check_release(
            &policy,
            &candidate,
            previous.as_ref().map(|(v, (_, b))| (v, b.as_slice())),
        )?;
        Ok(())
    }

    /// The bytes of a release the policy reads, bounded.
    /// Held of the validation budget while they are, so that many
    /// publishes at once cannot each hold 64 MiB of content.
    fn policy_bytes(
        &self,
        name: &PackageName,
        version: &Version,
        content: &Hash,
    ) -> Result<(crate::content::Held, Vec<u8>), ContentError> {
        let size = self.shared.content.size(content)?.unwrap_or(0);
        if size > publish::POLICY_READ_LIMIT {
            return Err(PolicyRefusal::TooLarge {
                namespace: name.namespace().to_owned(),
                name: name.clone(),
                version: version.clone(),
                size,
                limit: publish::POLICY_READ_LIMIT,
            }
            .into());
        }
        let held = self.shared.budget.reserve(size)?;
        let mut bytes = Vec::with_capacity(size as usize);
        if let Some(mut reader) = self.shared.content.read(content, 0, size)? {
            reader
                .read_to_end(&mut bytes)
                .map_err(|e| StoreError::Backend(format!("cannot read content {content}: {e}")))?;
        }
        Ok((held, bytes))
    }

    /// Up to `limit` log leaves from `start`.
    pub fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, QueryError> {
        let published = self.log_length();
        if start >= published {
            return Ok(Vec::new());
        }
        let limit = limit.min(usize::try_from(published - start).unwrap_or(usize::MAX));
        Ok(self.shared.meta.leaves(start, limit)?)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Waits on `answer` from a blocking thread, giving up at `deadline`.
pub fn wait_until<T>(answer: impl Future<Output = T>, deadline: Instant) -> Option<T> {
    answer::block_on(answer, Some(deadline))
}
