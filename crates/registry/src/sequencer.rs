//! The sequencer's decisions, and nothing else: no store, no clock, no
//! thread, no IO. The sequencer thread ([`crate::thread`]) asks it what facts a
//! batch of inputs needs ([`Sequencer::needs`]), fetches them from storage,
//! and hands them over with the time ([`Sequencer::decide`]); the sequencer
//! answers with the staged change (records, leaves, states) and one outcome
//! per input. Only once that thread has committed the change durably does it
//! [`Sequencer::apply`] it; a failed commit leaves the sequencer as it was.
//! Checkpoints and expiry work the same way. (rustls's sans-IO state
//! machines are the model.)

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_protocol::attestation::{Attestation, AttestationLog, AttestationRecord};
use cairn_protocol::notice::{Notice, NoticeLog, NoticeRecord};
use cairn_protocol::operator::{NamespaceState, OperatorEntry, OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState};
use cairn_protocol::{
    Checkpoint, Envelope, Hash, HashAlgorithm, Head, LogId, LogLeaf, MapLeaf, PackageName,
    PrivateKey, RecordId, SignatureChecked, SignedCheckpoint, Timestamp, TimestampedCheckpoint,
};
use cairn_transparency::map::Map;

use crate::cache::Generations;
use crate::codec::stored;
use crate::error::SubmitError;
use crate::oci::ManifestWrite;
use crate::registry::{Attested, RecordStatus};
use crate::storage::{Batch, RecordState, StoreError};

/// A record and the log it names.
pub(crate) type RecordKey = (LogId, RecordId);

/// A package record to sequence.
pub(crate) struct Submission {
    /// The package it claims to belong to.
    pub name: PackageName,
    /// The log id it was sent to.
    pub log_id: LogId,
    /// The signed record.
    pub envelope: Envelope<PackageRecord>,
    /// Its id.
    pub record_id: RecordId,
    /// Proof that its signature was checked ahead, if it was.
    pub checked: Option<SignatureChecked>,
    /// Written with the record if, and only if, the record is sequenced
    /// (an OCI push's manifest and tag).
    pub manifest: Option<ManifestWrite>,
}

/// An attestation to record.
pub(crate) struct Attesting {
    /// The package.
    pub name: PackageName,
    /// What was attached to it.
    pub attestation: Attestation,
    /// Written with the record (the referrer's manifest).
    pub manifest: Option<ManifestWrite>,
}

/// One thing the sequencer is asked to do.
pub(crate) enum Input {
    /// Sequence a package record (or hold it until its content arrives).
    Submit(Box<Submission>),
    /// Define namespaces (initialising the operator log if needed).
    Define(Vec<String>),
    /// Import a namespace from another registry (its URL or domain).
    Import(String, String),
    /// Append an operator-signed record to a package's attestation log.
    Attest(Box<Attesting>),
    /// Append an operator-signed notice (a take-down or a restore) to the
    /// registry's notice log.
    Notice(Box<Notice>),
    /// Content a sourcing record waits for was stored.
    ContentArrived {
        /// The record's log.
        log_id: LogId,
        /// The record.
        record_id: RecordId,
        /// The digest stored.
        digest: Hash,
    },
    /// Content a sourcing record waits for arrived whole, with the right
    /// digest, and is not valid: the record can never be completed, so it
    /// is rejected now rather than at the content timeout.
    ContentRefused {
        /// The record's log.
        log_id: LogId,
        /// The record.
        record_id: RecordId,
        /// Why the content was refused.
        reason: String,
    },
}

/// The answer to one [`Input`].
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Where a submitted record (or one whose content arrived) stands.
    Record(Result<RecordStatus, SubmitError>),
    /// The namespaces newly defined.
    Defined(Result<Vec<String>, SubmitError>),
    /// Where an attestation was recorded.
    Attested(Result<Attested, SubmitError>),
    /// Where a notice was recorded.
    Noticed(Result<Attested, SubmitError>),
}

/// What the sequencer thread must read from storage before a batch can be decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// Records whose stored state matters (a record sent again).
    pub records: Vec<RecordKey>,
    /// Package logs whose state is not in memory.
    pub packages: Vec<LogId>,
    /// Attestation logs whose state is not in memory.
    pub attestations: Vec<LogId>,
    /// Release content whose presence matters.
    pub content: Vec<Hash>,
}

/// What the sequencer thread read for [`Needs`].
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// The stored state of the records asked for that exist.
    pub records: HashMap<RecordKey, RecordState>,
    /// The committed state of every package log asked for.
    pub packages: HashMap<LogId, PackageState>,
    /// The committed state of every attestation log asked for.
    pub attestations: HashMap<LogId, AttestationLog>,
    /// The content asked for that is stored.
    pub content: HashSet<Hash>,
}

/// A record waiting for its content.
#[derive(Clone, Debug)]
pub(crate) struct Sourcing {
    /// Digests still missing.
    pub missing: Vec<Hash>,
    /// When it was accepted (seconds since the epoch).
    pub since: u64,
    /// The record.
    pub envelope: Envelope<PackageRecord>,
}

/// The change one batch makes, applied to the sequencer only after the
/// sequencer thread committed `batch`.
#[derive(Default)]
pub(crate) struct Staged {
    /// What to write, atomically.
    pub batch: Batch,
    /// New leaves of the registry log, in order.
    pub leaves: Vec<LogLeaf>,
    packages: HashMap<LogId, PackageState>,
    operator: Option<OperatorState>,
    /// The notice log this batch makes, if it changes it.
    notices: Option<NoticeLog>,
    attestations: HashMap<LogId, AttestationLog>,
    new_sourcing: HashMap<RecordKey, Sourcing>,
    still_missing: HashMap<RecordKey, Vec<Hash>>,
    done_sourcing: HashSet<RecordKey>,
    /// Records decided in this batch, with their new state.
    decided: HashMap<RecordKey, RecordStatus>,
}

impl Staged {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The package states this batch makes.
    pub fn package_states(&self) -> impl Iterator<Item = &PackageState> {
        self.packages.values()
    }

    /// The operator state this batch makes, if it changes it.
    pub fn operator(&self) -> Option<&OperatorState> {
        self.operator.as_ref()
    }
}

/// A checkpoint made but not yet committed.
pub(crate) struct StagedCheckpoint {
    /// The signed checkpoint.
    pub checkpoint: SignedCheckpoint,
    /// The map it commits to.
    pub map: Map,
    /// How many leaves it newly covers.
    covered: usize,
}

/// The sequencer's settings.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// A checkpoint is due once this many leaves wait for one...
    pub checkpoint_every: usize,
    /// ...or once the oldest has waited this long.
    pub checkpoint_max_delay: Duration,
    /// A sourcing record is rejected after this long.
    pub content_timeout: Duration,
    /// Entries per generation of the state caches.
    pub cache_generation: usize,
}

/// Everything the sequencer knows: the committed state it decides on.
pub(crate) struct Sequencer {
    key: PrivateKey,
    settings: Settings,
    operator: OperatorState,
    /// The notice log's state (take-downs in force).
    notices: NoticeLog,
    /// Committed package states recently used (a miss is a fact to fetch).
    packages: Generations<LogId, PackageState>,
    /// Committed attestation logs recently used.
    attestations: Generations<LogId, AttestationLog>,
    sourcing: HashMap<RecordKey, Sourcing>,
    /// The sourcing record of each log (at most one).
    sourcing_by_log: HashMap<LogId, RecordId>,
    /// The map of the latest checkpoint.
    map: Map,
    /// The latest checkpoint.
    checkpoint: Option<SignedCheckpoint>,
    /// Committed leaves (the next registry index).
    log_length: u64,
    /// Committed leaves no checkpoint covers yet, and their logs.
    uncheckpointed: Vec<LogLeaf>,
    uncheckpointed_logs: HashSet<LogId>,
    /// When the oldest of them was committed.
    uncheckpointed_since: Option<SystemTime>,
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Sequencer {
    /// A sequencer over the committed state: the operator log's state, the
    /// latest checkpoint and its map, every leaf after it, and the records
    /// still waiting for content.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: PrivateKey,
        settings: Settings,
        operator: OperatorState,
        checkpoint: Option<SignedCheckpoint>,
        map: Map,
        log_length: u64,
        uncheckpointed: Vec<LogLeaf>,
        sourcing: HashMap<RecordKey, Sourcing>,
    ) -> Sequencer {
        let generation = settings.cache_generation;
        let uncheckpointed_logs = uncheckpointed.iter().map(|l| l.log_id).collect();
        let sourcing_by_log = sourcing.keys().map(|(l, r)| (*l, *r)).collect();
        Sequencer {
            key,
            settings,
            operator,
            notices: NoticeLog::new(),
            packages: Generations::new(generation),
            attestations: Generations::new(generation),
            sourcing,
            sourcing_by_log,
            map,
            checkpoint,
            log_length,
            uncheckpointed_since: None,
            uncheckpointed,
            uncheckpointed_logs,
        }
    }

    /// The same sequencer over the notice log's committed state.
    pub fn with_notices(mut self, notices: NoticeLog) -> Sequencer {
        self.notices = notices;
        self
    }

    /// The operator log's state.
    pub fn operator(&self) -> &OperatorState {
        &self.operator
    }

    /// The map of the latest checkpoint.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// The number of committed leaves.
    pub fn log_length(&self) -> u64 {
        self.log_length
    }

    /// Whether committed leaves wait for a checkpoint.
    pub fn has_uncheckpointed(&self) -> bool {
        !self.uncheckpointed.is_empty()
    }

    /// Whether `log_id` may have sequenced records: it is in the map or
    /// has leaves after the latest checkpoint. Otherwise its state is the
    /// empty state, with no need to ask storage.
    fn may_exist(&self, log_id: &LogId) -> bool {
        self.uncheckpointed_logs.contains(log_id) || self.map.get(log_id.digest()).is_some()
    }

    /// The facts `inputs` need that are not in memory.
    pub fn needs(&self, inputs: &[Input]) -> Needs {
        let mut needs = Needs::default();
        let mut packages = HashSet::new();
        let mut need_package = |log_id: &LogId, needs: &mut Needs| {
            if self.packages.peek(log_id).is_none()
                && self.may_exist(log_id)
                && packages.insert(*log_id)
            {
                needs.packages.push(*log_id);
            }
        };
        for input in inputs {
            match input {
                Input::Submit(s) => {
                    let key = (s.log_id, s.record_id);
                    if !self.sourcing.contains_key(&key) {
                        needs.records.push(key);
                    }
                    need_package(&s.log_id, &mut needs);
                    for entry in &s.envelope.contents().entries {
                        if let PackageEntry::Release { content, .. } = entry {
                            needs.content.push(*content);
                        }
                    }
                }
                Input::ContentArrived {
                    log_id,
                    record_id,
                    digest,
                } => match self.sourcing.get(&(*log_id, *record_id)) {
                    Some(entry) => {
                        need_package(log_id, &mut needs);
                        needs
                            .content
                            .extend(entry.missing.iter().filter(|d| *d != digest).copied());
                    }
                    None => needs.records.push((*log_id, *record_id)),
                },
                Input::ContentRefused {
                    log_id, record_id, ..
                } => {
                    if !self.sourcing.contains_key(&(*log_id, *record_id)) {
                        needs.records.push((*log_id, *record_id));
                    }
                }
                Input::Attest(attesting) => {
                    let log_id = LogId::attestations(&attesting.name);
                    if self.attestations.peek(&log_id).is_none()
                        && self.may_exist(&log_id)
                        && !needs.attestations.contains(&log_id)
                    {
                        needs.attestations.push(log_id);
                    }
                }
                Input::Define(_) | Input::Import(..) | Input::Notice(_) => {}
            }
        }
        needs.records.sort_unstable();
        needs.records.dedup();
        needs.content.sort_unstable();
        needs.content.dedup();
        needs
    }

    /// Decides `inputs` in order, on the committed state plus `facts`, at
    /// `now`. Returns the staged change and one outcome per input.
    pub fn decide(
        &mut self,
        inputs: Vec<Input>,
        facts: Facts,
        now: SystemTime,
    ) -> (Staged, Vec<Outcome>) {
        let mut facts = facts;
        // Fetched states are committed states: keep them.
        for (log_id, state) in facts.packages.drain() {
            self.packages.insert(log_id, state);
        }
        for (log_id, log) in facts.attestations.drain() {
            self.attestations.insert(log_id, log);
        }
        let mut staged = Staged::default();
        let outcomes = inputs
            .into_iter()
            .map(|input| match input {
                Input::Submit(submission) => {
                    Outcome::Record(self.submit(&mut staged, *submission, &facts, now))
                }
                Input::Define(namespaces) => {
                    Outcome::Defined(self.define(&mut staged, &namespaces, now))
                }
                Input::Import(namespace, registry) => {
                    Outcome::Defined(self.import(&mut staged, namespace, registry, now))
                }
                Input::Attest(attesting) => {
                    let Attesting {
                        name,
                        attestation,
                        manifest,
                    } = *attesting;
                    Outcome::Attested(self.attest(&mut staged, &name, attestation, manifest, now))
                }
                Input::Notice(notice) => Outcome::Noticed(self.notice(&mut staged, *notice, now)),
                Input::ContentArrived {
                    log_id,
                    record_id,
                    digest,
                } => Outcome::Record(self.content_arrived(
                    &mut staged,
                    (log_id, record_id),
                    digest,
                    &facts,
                )),
                Input::ContentRefused {
                    log_id,
                    record_id,
                    reason,
                } => Outcome::Record(self.content_refused(
                    &mut staged,
                    (log_id, record_id),
                    reason,
                    &facts,
                )),
            })
            .collect();
        (staged, outcomes)
    }

    /// Applies a committed batch.
    pub fn apply(&mut self, staged: Staged, now: SystemTime) {
        for (log_id, state) in staged.packages {
            self.packages.insert(log_id, state);
        }
        for (log_id, log) in staged.attestations {
            self.attestations.insert(log_id, log);
        }
        if let Some(operator) = staged.operator {
            self.operator = operator;
        }
        if let Some(notices) = staged.notices {
            self.notices = notices;
        }
        for key in &staged.done_sourcing {
            self.sourcing.remove(key);
            self.sourcing_by_log.remove(&key.0);
        }
        for (key, missing) in staged.still_missing {
            if let Some(entry) = self.sourcing.get_mut(&key) {
                entry.missing = missing;
            }
        }
        for (key, entry) in staged.new_sourcing {
            self.sourcing_by_log.insert(key.0, key.1);
            self.sourcing.insert(key, entry);
        }
        if !staged.leaves.is_empty() {
            self.uncheckpointed_since.get_or_insert(now);
            self.log_length += staged.leaves.len() as u64;
            for leaf in staged.leaves {
                self.uncheckpointed_logs.insert(leaf.log_id);
                self.uncheckpointed.push(leaf);
            }
        }
    }

    /// The package state as of this batch: staged, cached, fetched, or
    /// known to be empty.
    fn package_state(
        &mut self,
        staged: &Staged,
        log_id: &LogId,
    ) -> Result<PackageState, StoreError> {
        if let Some(state) = staged.packages.get(log_id) {
            return Ok(state.clone());
        }
        if let Some(state) = self.packages.get(log_id) {
            return Ok(state.clone());
        }
        if !self.may_exist(log_id) {
            return Ok(PackageState::new());
        }
        Err(StoreError::Backend(format!(
            "the state of log {log_id} was not fetched"
        )))
    }

    fn next_index(&self, staged: &Staged) -> u64 {
        self.log_length + staged.leaves.len() as u64
    }

    /// Stages `envelope` as a new record of `log_id` at the next registry
    /// index, and its leaf; returns the index.
    fn stage_sequenced<R: cairn_protocol::Record>(
        &self,
        staged: &mut Staged,
        log_id: LogId,
        envelope: &Envelope<R>,
    ) -> u64 {
        let index = self.next_index(staged);
        staged
            .batch
            .records
            .push(stored(log_id, envelope, RecordState::Sequenced { index }));
        staged.leaves.push(LogLeaf {
            log_id,
            record_id: envelope.record_id(),
        });
        index
    }

    /// Whether a record of `log_id` waits for content, in memory or in
    /// this batch.
    /// The refusal of a record while `pending` waits for its content: what
    /// it waits for, and when it will be rejected if nothing arrives.
    fn conflict(&self, staged: &Staged, pending: RecordKey, now: SystemTime) -> SubmitError {
        let timeout = self.settings.content_timeout.as_secs();
        let (missing, since) = match self.sourcing.get(&pending) {
            Some(entry) => (
                staged
                    .still_missing
                    .get(&pending)
                    .unwrap_or(&entry.missing)
                    .clone(),
                entry.since,
            ),
            None => (
                staged
                    .new_sourcing
                    .get(&pending)
                    .map(|e| e.missing.clone())
                    .unwrap_or_default(),
                seconds(now),
            ),
        };
        SubmitError::ConflictPending {
            record: pending.1,
            missing,
            retry_in: (since + timeout).saturating_sub(seconds(now)).max(1),
        }
    }

    fn pending_in(&self, staged: &Staged, log_id: &LogId) -> Option<RecordId> {
        if let Some(record) = self.sourcing_by_log.get(log_id) {
            if !staged.done_sourcing.contains(&(*log_id, *record)) {
                return Some(*record);
            }
        }
        staged
            .new_sourcing
            .keys()
            .find(|(l, _)| l == log_id)
            .map(|(_, r)| *r)
    }

    fn submit(
        &mut self,
        staged: &mut Staged,
        submission: Submission,
        facts: &Facts,
        now: SystemTime,
    ) -> Result<RecordStatus, SubmitError> {
        let Submission {
            name,
            log_id,
            envelope,
            record_id,
            checked,
            manifest,
        } = submission;
        let expected = LogId::package(&name);
        if expected != log_id {
            return Err(SubmitError::LogIdMismatch {
                name,
                expected,
                found: log_id,
            });
        }
        let operator = staged.operator.as_ref().unwrap_or(&self.operator);
        let notices = staged.notices.as_ref().unwrap_or(&self.notices);
        match operator.namespace(name.namespace()) {
            None => return Err(SubmitError::NamespaceNotDefined(name.namespace().into())),
            // A namespace (or package) imported and then forked is this
            // registry's.
            Some(NamespaceState::Imported { .. }) if notices.forked_package(&name).is_none() => {
                return Err(SubmitError::NamespaceImported(name.namespace().into()))
            }
            Some(_) => {}
        }
        if let Some(down) = notices.package_down(&name) {
            return Err(SubmitError::TakenDown {
                name,
                reason: down.reason.clone(),
            });
        }
        let key = (log_id, record_id);
        if staged.decided.contains_key(&key) {
            return Err(SubmitError::Invalid(format!(
                "record `{record_id}` was submitted twice in one batch"
            )));
        }
        // A record sent again: where it stands.
        if let Some(entry) = self.sourcing.get(&key) {
            return Ok(RecordStatus::Sourcing {
                missing: entry.missing.clone(),
            });
        }
        if let Some(state) = facts.records.get(&key) {
            return Ok(RecordStatus::of(state));
        }
        if let Some(pending) = self.pending_in(staged, &log_id) {
            return Err(self.conflict(staged, (log_id, pending), now));
        }
        let state = self.package_state(staged, &log_id)?;
        let next = state
            .validate_checked(&envelope, checked.as_ref())
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let mut missing = Vec::new();
        for entry in &envelope.contents().entries {
            if let PackageEntry::Release { content, .. } = entry {
                if !facts.content.contains(content) && !missing.contains(content) {
                    missing.push(*content);
                }
            }
        }
        if manifest.is_some() && !missing.is_empty() {
            return Err(SubmitError::Invalid(format!(
                "the content the record releases is not stored: {}",
                list(&missing)
            )));
        }
        if state.head().is_none() && !staged.batch.names.iter().any(|(l, _)| *l == log_id) {
            staged.batch.names.push((log_id, name));
        }
        let status = if missing.is_empty() {
            let index = self.stage_sequenced(staged, log_id, &envelope);
            staged.packages.insert(log_id, next);
            staged.batch.manifests.extend(manifest);
            RecordStatus::Processing { index }
        } else {
            let since = seconds(now);
            staged.batch.records.push(stored(
                log_id,
                &envelope,
                RecordState::Sourcing {
                    missing: missing.clone(),
                    since,
                },
            ));
            staged.new_sourcing.insert(
                key,
                Sourcing {
                    missing: missing.clone(),
                    since,
                    envelope,
                },
            );
            RecordStatus::Sourcing { missing }
        };
        staged.decided.insert(key, status.clone());
        Ok(status)
    }

    /// Rejects a sourcing record whose content proved invalid.
    fn content_refused(
        &mut self,
        staged: &mut Staged,
        key: RecordKey,
        reason: String,
        facts: &Facts,
    ) -> Result<RecordStatus, SubmitError> {
        if let Some(status) = staged.decided.get(&key) {
            return Ok(status.clone());
        }
        if !self.sourcing.contains_key(&key) || staged.done_sourcing.contains(&key) {
            return match facts.records.get(&key) {
                Some(state) => Ok(RecordStatus::of(state)),
                None => Err(StoreError::Corrupt(format!("record {} is not stored", key.1)).into()),
            };
        }
        staged.batch.rejected.push((key.0, key.1, reason.clone()));
        staged.done_sourcing.insert(key);
        let status = RecordStatus::Rejected { reason };
        staged.decided.insert(key, status.clone());
        Ok(status)
    }

    fn content_arrived(
        &mut self,
        staged: &mut Staged,
        key: RecordKey,
        digest: Hash,
        facts: &Facts,
    ) -> Result<RecordStatus, SubmitError> {
        let (log_id, record_id) = key;
        if let Some(status) = staged.decided.get(&key) {
            return Ok(status.clone());
        }
        let Some(entry) = self.sourcing.get(&key) else {
            return match facts.records.get(&key) {
                Some(state) => Ok(RecordStatus::of(state)),
                None => {
                    Err(StoreError::Corrupt(format!("record {record_id} is not stored")).into())
                }
            };
        };
        let missing: Vec<Hash> = staged
            .still_missing
            .get(&key)
            .unwrap_or(&entry.missing)
            .iter()
            .filter(|d| **d != digest && !facts.content.contains(d))
            .copied()
            .collect();
        if !missing.is_empty() {
            staged
                .batch
                .still_missing
                .push((log_id, record_id, missing.clone()));
            staged.still_missing.insert(key, missing.clone());
            return Ok(RecordStatus::Sourcing { missing });
        }
        let envelope = entry.envelope.clone();
        staged.done_sourcing.insert(key);
        let state = self.package_state(staged, &log_id)?;
        let status = match state.validate(&envelope) {
            Ok(next) => {
                let index = self.next_index(staged);
                staged.batch.sequenced.push((log_id, record_id, index));
                staged.leaves.push(LogLeaf { log_id, record_id });
                staged.packages.insert(log_id, next);
                RecordStatus::Processing { index }
            }
            Err(e) => {
                let reason = e.to_string();
                staged
                    .batch
                    .rejected
                    .push((log_id, record_id, reason.clone()));
                RecordStatus::Rejected { reason }
            }
        };
        staged.decided.insert(key, status.clone());
        Ok(status)
    }

    /// Appends a record of `attestation` to `name`'s attestation log,
    /// signed by the operator.
    fn attest(
        &mut self,
        staged: &mut Staged,
        name: &PackageName,
        attestation: Attestation,
        manifest: Option<ManifestWrite>,
        now: SystemTime,
    ) -> Result<Attested, SubmitError> {
        let log_id = LogId::attestations(name);
        let cached = match staged.attestations.get(&log_id) {
            Some(log) => Some(log.clone()),
            None => self.attestations.get(&log_id).cloned(),
        };
        let log = match cached {
            Some(log) => log,
            None if !self.may_exist(&log_id) => AttestationLog::new(),
            None => {
                return Err(StoreError::Backend(format!(
                    "the attestation log {log_id} was not fetched"
                ))
                .into())
            }
        };
        let (prev, timestamp) = Head::next(log.head(), Timestamp::from_system_time(now));
        let envelope = Envelope::sign(
            &self.key,
            AttestationRecord {
                prev,
                timestamp,
                attestation,
            },
        );
        let next = log
            .validate(&envelope, self.key.public_key())
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let index = self.stage_sequenced(staged, log_id, &envelope);
        let record_id = envelope.record_id();
        staged.attestations.insert(log_id, next);
        staged.batch.manifests.extend(manifest);
        Ok(Attested {
            log_id,
            record_id,
            index,
        })
    }

    /// Appends `notice` to the notice log, signed by the operator.
    fn notice(
        &mut self,
        staged: &mut Staged,
        notice: Notice,
        now: SystemTime,
    ) -> Result<Attested, SubmitError> {
        let log = staged
            .notices
            .clone()
            .unwrap_or_else(|| self.notices.clone());
        let (prev, timestamp) = Head::next(log.head(), Timestamp::from_system_time(now));
        let envelope = Envelope::sign(
            &self.key,
            NoticeRecord {
                prev,
                timestamp,
                notice,
            },
        );
        let next = log
            .validate(&envelope, self.key.public_key())
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let log_id = LogId::notices();
        let index = self.stage_sequenced(staged, log_id, &envelope);
        staged.notices = Some(next);
        Ok(Attested {
            log_id,
            record_id: envelope.record_id(),
            index,
        })
    }

    /// Defines `namespaces` (and initialises the operator log) in one
    /// operator record; answers with those newly defined.
    fn define(
        &mut self,
        staged: &mut Staged,
        namespaces: &[String],
        now: SystemTime,
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
        self.stage_operator(staged, &state, entries, now)?;
        Ok(defined)
    }

    /// Signs and stages an operator record of `entries` after `state`.
    fn stage_operator(
        &mut self,
        staged: &mut Staged,
        state: &OperatorState,
        entries: Vec<OperatorEntry>,
        now: SystemTime,
    ) -> Result<(), SubmitError> {
        let (prev, timestamp) = Head::next(state.head(), Timestamp::from_system_time(now));
        let envelope = Envelope::sign(
            &self.key,
            OperatorRecord {
                prev,
                version: 0,
                timestamp,
                entries,
            },
        );
        let next = state
            .validate(&envelope)
            .map_err(|e| SubmitError::Invalid(e.to_string()))?;
        self.stage_sequenced(staged, LogId::operator(), &envelope);
        staged.operator = Some(next);
        Ok(())
    }

    /// Imports `namespace` from `registry` in one operator record (the
    /// operator log is initialised first if it is not); answers with the
    /// namespace if newly imported. A namespace defined here, or imported
    /// from another registry, is refused.
    fn import(
        &mut self,
        staged: &mut Staged,
        namespace: String,
        registry: String,
        now: SystemTime,
    ) -> Result<Vec<String>, SubmitError> {
        cairn_protocol::validate_namespace(&namespace)
            .map_err(|e| SubmitError::Invalid(format!("namespace `{namespace}`: {e}")))?;
        let state = staged
            .operator
            .clone()
            .unwrap_or_else(|| self.operator.clone());
        match state.namespace(&namespace) {
            Some(NamespaceState::Imported { registry: from }) if *from == registry => {
                return Ok(Vec::new())
            }
            Some(NamespaceState::Imported { registry: from }) => {
                return Err(SubmitError::Invalid(format!(
                    "namespace `{namespace}` is imported from {from} already"
                )))
            }
            Some(NamespaceState::Defined) => {
                return Err(SubmitError::Invalid(format!(
                    "namespace `{namespace}` is defined by this registry; it cannot be imported"
                )))
            }
            None => {}
        }
        let mut entries = Vec::new();
        if state.head().is_none() {
            entries.push(OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: self.key.public_key().clone(),
            });
        }
        entries.push(OperatorEntry::ImportNamespace {
            namespace: namespace.clone(),
            registry,
        });
        self.stage_operator(staged, &state, entries, now)?;
        Ok(vec![namespace])
    }

    /// Rejects the records that waited for content longer than the
    /// timeout at `now`.
    pub fn expire(&self, now: SystemTime) -> Staged {
        let timeout = self.settings.content_timeout.as_secs();
        let now = seconds(now);
        let mut staged = Staged::default();
        for (key, entry) in &self.sourcing {
            if now.saturating_sub(entry.since) < timeout {
                continue;
            }
            let reason = format!(
                "content {} was not uploaded within {timeout} seconds",
                list(&entry.missing)
            );
            staged.batch.rejected.push((key.0, key.1, reason.clone()));
            staged.done_sourcing.insert(*key);
            staged
                .decided
                .insert(*key, RecordStatus::Rejected { reason });
        }
        staged
    }

    /// Whether a checkpoint is due at `now` without waiting for a quiet
    /// moment: enough leaves wait, or the oldest waited long enough.
    pub fn checkpoint_due(&self, now: SystemTime) -> bool {
        self.uncheckpointed.len() >= self.settings.checkpoint_every
            || self.uncheckpointed_since.is_some_and(|since| {
                now.duration_since(since).unwrap_or_default() >= self.settings.checkpoint_max_delay
            })
    }

    /// A checkpoint of every committed leaf, whose log root is `log_root`,
    /// at `now` (never before the latest checkpoint's time). `None` if
    /// every leaf is covered already.
    pub fn stage_checkpoint(&self, log_root: Hash, now: SystemTime) -> Option<StagedCheckpoint> {
        if self.uncheckpointed.is_empty() {
            return None;
        }
        let mut latest: HashMap<LogId, RecordId> =
            HashMap::with_capacity(self.uncheckpointed.len());
        for leaf in &self.uncheckpointed {
            latest.insert(leaf.log_id, leaf.record_id);
        }
        let map = self.map.apply(
            latest
                .into_iter()
                .map(|(l, r)| (*l.digest(), MapLeaf { record_id: r }.leaf_hash())),
        );
        let timestamp = self
            .checkpoint
            .as_ref()
            .map_or(0, |cp| cp.contents.timestamp)
            .max(seconds(now));
        let checkpoint = TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root,
                log_length: self.log_length,
                map_root: map.root(),
            },
            timestamp,
        }
        .sign(&self.key);
        Some(StagedCheckpoint {
            checkpoint,
            map,
            covered: self.uncheckpointed.len(),
        })
    }

    /// Applies a committed checkpoint.
    pub fn checkpointed(&mut self, staged: StagedCheckpoint) {
        self.map = staged.map;
        self.checkpoint = Some(staged.checkpoint);
        self.uncheckpointed.drain(..staged.covered);
        self.uncheckpointed_logs = self.uncheckpointed.iter().map(|l| l.log_id).collect();
        if self.uncheckpointed.is_empty() {
            self.uncheckpointed_since = None;
        }
    }
}

impl RecordStatus {
    /// The status of a stored record, before any checkpoint is considered.
    pub(crate) fn of(state: &RecordState) -> RecordStatus {
        match state {
            RecordState::Sourcing { missing, .. } => RecordStatus::Sourcing {
                missing: missing.clone(),
            },
            RecordState::Sequenced { index } => RecordStatus::Processing { index: *index },
            RecordState::Rejected { reason } => RecordStatus::Rejected {
                reason: reason.clone(),
            },
        }
    }
}

fn list(digests: &[Hash]) -> String {
    digests
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    //! The sequencer alone: facts in, decisions out, time passed in. No
    //! store, no thread, no sleep.

    use super::*;
    use cairn_protocol::package::PackageRecord;

    const T0: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn sequencer() -> Sequencer {
        let mut s = Sequencer::new(
            PrivateKey::generate(),
            Settings {
                checkpoint_every: 3,
                checkpoint_max_delay: Duration::from_millis(200),
                content_timeout: Duration::from_secs(600),
                cache_generation: 4,
            },
            OperatorState::new(),
            None,
            Map::new(),
            0,
            Vec::new(),
            HashMap::new(),
        );
        let (staged, outcomes) = s.decide(
            vec![Input::Define(vec!["acme".into()])],
            Facts::default(),
            at(T0),
        );
        assert!(matches!(&outcomes[..], [Outcome::Defined(Ok(d))] if d == &["acme"]));
        s.apply(staged, at(T0));
        s
    }

    fn name(text: &str) -> PackageName {
        text.parse().expect("name")
    }

    fn submission(
        package: &str,
        key: &PrivateKey,
        prev: Option<RecordId>,
        entries: Vec<PackageEntry>,
    ) -> Input {
        let name = name(package);
        let envelope = Envelope::sign(
            key,
            PackageRecord {
                prev,
                version: 0,
                timestamp: Timestamp::new(T0 as i64, 0),
                entries,
            },
        );
        Input::Submit(Box::new(Submission {
            log_id: LogId::package(&name),
            record_id: envelope.record_id(),
            name,
            envelope,
            checked: None,
            manifest: None,
        }))
    }

    fn init(key: &PrivateKey) -> PackageEntry {
        PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        }
    }

    fn release(version: &str, content: Hash) -> PackageEntry {
        PackageEntry::Release {
            version: version.parse().expect("version"),
            content,
        }
    }

    fn record_of(input: &Input) -> RecordKey {
        match input {
            Input::Submit(s) => (s.log_id, s.record_id),
            _ => unreachable!(),
        }
    }

    fn status(outcome: &Outcome) -> &RecordStatus {
        match outcome {
            Outcome::Record(Ok(status)) => status,
            other => panic!("not a record status: {other:?}"),
        }
    }

    /// Decides `inputs` with the facts a perfect store would give for an
    /// empty registry plus `content`, applies, and returns the outcomes.
    fn run(s: &mut Sequencer, inputs: Vec<Input>, content: &[Hash], now: u64) -> Vec<Outcome> {
        let needs = s.needs(&inputs);
        let facts = Facts {
            content: needs
                .content
                .iter()
                .filter(|d| content.contains(d))
                .copied()
                .collect(),
            ..Facts::default()
        };
        let (staged, outcomes) = s.decide(inputs, facts, at(now));
        s.apply(staged, at(now));
        outcomes
    }

    #[test]
    fn a_new_package_needs_no_state_from_storage() {
        let s = sequencer();
        let key = PrivateKey::generate();
        let content = Hash::of(b"wasm");
        let input = submission(
            "acme:new",
            &key,
            None,
            vec![init(&key), release("1.0.0", content)],
        );
        let needs = s.needs(std::slice::from_ref(&input));
        // The log is in neither the map nor the uncheckpointed leaves: its
        // state is known to be empty. Only the record (sent again?) and the
        // content's presence are asked for.
        assert_eq!(
            needs,
            Needs {
                records: vec![record_of(&input)],
                packages: Vec::new(),
                attestations: Vec::new(),
                content: vec![content],
            }
        );
    }

    #[test]
    fn records_are_sequenced_in_order_and_wait_for_content() {
        let mut s = sequencer();
        let key = PrivateKey::generate();
        let wasm = Hash::of(b"wasm");
        let first = submission("acme:a", &key, None, vec![init(&key)]);
        let (log_a, id_a) = record_of(&first);
        let second = submission(
            "acme:b",
            &key,
            None,
            vec![init(&key), release("1.0.0", wasm)],
        );
        let (log_b, id_b) = record_of(&second);
        let outcomes = run(&mut s, vec![first, second], &[], T0);
        assert_eq!(status(&outcomes[0]), &RecordStatus::Processing { index: 1 });
        assert_eq!(
            status(&outcomes[1]),
            &RecordStatus::Sourcing {
                missing: vec![wasm]
            }
        );
        assert_eq!(s.log_length(), 2);
        // Another record of `acme:b` conflicts while the first waits.
        let next = submission("acme:b", &key, Some(id_b), vec![release("1.1.0", wasm)]);
        let outcomes = run(&mut s, vec![next], &[], T0);
        assert!(matches!(
            &outcomes[0],
            Outcome::Record(Err(SubmitError::ConflictPending { record, .. })) if *record == id_b
        ));
        // The content arrives: the record is sequenced after the others.
        let arrived = Input::ContentArrived {
            log_id: log_b,
            record_id: id_b,
            digest: wasm,
        };
        let needs = s.needs(std::slice::from_ref(&arrived));
        assert!(needs.records.is_empty() && needs.content.is_empty());
        let outcomes = run(&mut s, vec![arrived], &[wasm], T0);
        assert_eq!(status(&outcomes[0]), &RecordStatus::Processing { index: 2 });
        // Sent again, a record reports where it stands (here: a fact the
        // sequencer thread read from storage).
        let again = submission("acme:a", &key, None, vec![init(&key)]);
        let (staged, outcomes) = s.decide(
            vec![again],
            Facts {
                records: HashMap::from([((log_a, id_a), RecordState::Sequenced { index: 1 })]),
                ..Facts::default()
            },
            at(T0),
        );
        assert!(staged.is_empty());
        assert_eq!(status(&outcomes[0]), &RecordStatus::Processing { index: 1 });
    }

    #[test]
    fn refusals_stage_nothing() {
        let mut s = sequencer();
        let key = PrivateKey::generate();
        let mut undefined = submission("other:x", &key, None, vec![init(&key)]);
        let wrong_log = match submission("acme:x", &key, None, vec![init(&key)]) {
            Input::Submit(mut sub) => {
                sub.log_id = LogId::package(&name("acme:y"));
                Input::Submit(sub)
            }
            _ => unreachable!(),
        };
        let bad_prev = submission("acme:z", &key, Some(RecordId::from(Hash::of(b"x"))), vec![]);
        let (staged, outcomes) = s.decide(
            vec![
                std::mem::replace(&mut undefined, Input::Define(Vec::new())),
                wrong_log,
                bad_prev,
            ],
            Facts::default(),
            at(T0),
        );
        assert!(staged.is_empty(), "nothing to write");
        assert!(matches!(
            &outcomes[0],
            Outcome::Record(Err(SubmitError::NamespaceNotDefined(ns))) if ns == "other"
        ));
        assert!(matches!(
            &outcomes[1],
            Outcome::Record(Err(SubmitError::LogIdMismatch { .. }))
        ));
        assert!(matches!(
            &outcomes[2],
            Outcome::Record(Err(SubmitError::Invalid(_)))
        ));
        assert_eq!(s.log_length(), 1, "only the operator record");
    }

    #[test]
    fn a_batch_that_is_not_committed_changes_nothing() {
        let mut s = sequencer();
        let key = PrivateKey::generate();
        let input = submission("acme:a", &key, None, vec![init(&key)]);
        let (staged, outcomes) = s.decide(vec![input], Facts::default(), at(T0));
        assert_eq!(status(&outcomes[0]), &RecordStatus::Processing { index: 1 });
        drop(staged); // the commit failed: never applied
        assert_eq!(s.log_length(), 1);
        // The same record decides the same way again.
        let input = submission("acme:a", &key, None, vec![init(&key)]);
        let outcomes = run(&mut s, vec![input], &[], T0);
        assert_eq!(status(&outcomes[0]), &RecordStatus::Processing { index: 1 });
    }

    #[test]
    fn checkpoints_are_due_by_count_or_age_and_time_never_goes_back() {
        let mut s = sequencer();
        let root = Hash::of(b"root");
        assert!(!s.checkpoint_due(at(T0)), "one leaf, just now");
        assert!(
            s.checkpoint_due(at(T0 + 1)),
            "the oldest leaf waited too long"
        );
        let first = s.stage_checkpoint(root, at(T0 + 5)).expect("a checkpoint");
        assert_eq!(first.checkpoint.contents.checkpoint.log_length, 1);
        assert_eq!(first.checkpoint.contents.timestamp, T0 + 5);
        s.checkpointed(first);
        assert!(!s.checkpoint_due(at(T0 + 100)));
        assert!(
            s.stage_checkpoint(root, at(T0 + 100)).is_none(),
            "nothing new"
        );
        let key = PrivateKey::generate();
        let inputs = (0..3)
            .map(|i| submission(&format!("acme:p{i}"), &key, None, vec![init(&key)]))
            .collect();
        run(&mut s, inputs, &[], T0 + 6);
        assert!(s.checkpoint_due(at(T0 + 6)), "three leaves wait");
        // A clock that went back does not take the checkpoint's time back.
        let second = s.stage_checkpoint(root, at(T0)).expect("a checkpoint");
        assert_eq!(second.checkpoint.contents.timestamp, T0 + 5);
        assert_eq!(second.checkpoint.contents.checkpoint.log_length, 4);
        assert_eq!(second.map.len(), 4, "three packages and the operator log");
    }

    #[test]
    fn overdue_content_is_rejected_by_the_time_given() {
        let mut s = sequencer();
        let key = PrivateKey::generate();
        let wasm = Hash::of(b"late");
        let input = submission(
            "acme:late",
            &key,
            None,
            vec![init(&key), release("1.0.0", wasm)],
        );
        let key_of = record_of(&input);
        run(&mut s, vec![input], &[], T0);
        assert!(s.expire(at(T0 + 599)).is_empty(), "not yet");
        let expired = s.expire(at(T0 + 600));
        assert_eq!(expired.batch.rejected.len(), 1);
        assert_eq!(expired.batch.rejected[0].0, key_of.0);
        assert!(expired.batch.rejected[0]
            .2
            .contains("was not uploaded within 600 seconds"));
        s.apply(expired, at(T0 + 600));
        assert!(s.expire(at(T0 + 10_000)).is_empty(), "rejected once");
        // The package may start over now.
        let again = submission("acme:late", &key, None, vec![init(&key)]);
        let outcomes = run(&mut s, vec![again], &[], T0 + 601);
        assert!(matches!(
            status(&outcomes[0]),
            RecordStatus::Processing { .. }
        ));
    }

    #[test]
    fn a_manifest_rides_only_with_a_sequenced_record() {
        use crate::oci::{Algorithm, Digest, ManifestWrite, StoredManifest};
        let mut s = sequencer();
        let key = PrivateKey::generate();
        let wasm = Hash::of(b"wasm");
        let manifest = ManifestWrite {
            repository: "acme/app".into(),
            manifest: StoredManifest {
                digest: Digest::of(Algorithm::Sha256, b"{}"),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                bytes: b"{}".to_vec(),
                subject: None,
            },
            tag: Some("1.0.0".into()),
            links: Vec::new(),
        };
        let with = |input: Input| match input {
            Input::Submit(mut sub) => {
                sub.manifest = Some(manifest.clone());
                Input::Submit(sub)
            }
            other => other,
        };
        // Content missing: refused, and the manifest is not staged.
        let missing = with(submission(
            "acme:app",
            &key,
            None,
            vec![init(&key), release("1.0.0", wasm)],
        ));
        let (staged, outcomes) = s.decide(vec![missing], Facts::default(), at(T0));
        assert!(matches!(
            &outcomes[0],
            Outcome::Record(Err(SubmitError::Invalid(_)))
        ));
        assert!(staged.batch.manifests.is_empty() && staged.batch.records.is_empty());
        // Refused by the log's rules (a second init): not staged either.
        let bad = with(submission("acme:app", &key, None, vec![]));
        let (staged, _) = s.decide(vec![bad], Facts::default(), at(T0));
        assert!(staged.batch.manifests.is_empty());
        // Accepted: the manifest is in the same batch as the record.
        let good = with(submission(
            "acme:app",
            &key,
            None,
            vec![init(&key), release("1.0.0", wasm)],
        ));
        let facts = Facts {
            content: HashSet::from([wasm]),
            ..Facts::default()
        };
        let (staged, outcomes) = s.decide(vec![good], facts, at(T0));
        assert!(matches!(
            status(&outcomes[0]),
            RecordStatus::Processing { .. }
        ));
        assert_eq!(staged.batch.manifests, vec![manifest.clone()]);
        assert_eq!(staged.batch.records.len(), 1);
    }
}
