//! The sequencer thread, the one writer (`SequencerThread`). It takes commands off a channel
//! in batches, fetches the facts the [`Sequencer`] needs, hands them over
//! with the time, commits the staged change in one transaction, applies it
//! to the sequencer and the readers' view, and only then answers (group
//! commit). It also makes checkpoints, snapshots, and runs housekeeping.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_protocol::{LogId, PrivateKey};

use crate::answer;
use crate::codec;
use crate::error::OpenError;
use crate::error::SubmitError;
use crate::registry::{namespaces_of, operator_keys, Attested, RecordStatus, Shared, State};
use crate::sequencer::{Facts, Input, Needs, Outcome, Sequencer, Settings, Staged};
use crate::snapshot;
use crate::storage::{Leadership, MetaStore, RecordState, StoreError};
use cairn_transparency::map::Map;

/// Where the answer to an [`Input`] goes.
pub(crate) enum Reply {
    /// A record's status.
    Record(answer::Reply<RecordStatus>),
    /// Namespaces defined.
    Defined(answer::Reply<Vec<String>>),
    /// An attestation recorded.
    Attested(answer::Reply<Attested>),
}

/// What the registry's handles send the sequencer thread.
pub(crate) enum Command {
    /// Something to decide, and where its answer goes.
    Input(Input, Reply),
    /// Run housekeeping now.
    Housekeeping(answer::Reply<()>),
    /// Checkpoint everything and stop.
    Stop(answer::Reply<()>),
}

/// How often housekeeping runs, and how long the thread sleeps when idle.
const TICK: Duration = Duration::from_millis(500);

/// The sequencer thread's state.
pub(crate) struct SequencerThread {
    pub shared: Arc<Shared>,
    pub sequencer: Sequencer,
    /// The log length of the last map snapshot saved (or being saved).
    pub snapshot_length: u64,
    /// The background snapshot being saved, if any.
    pub snapshot: Option<JoinHandle<()>>,
    /// The lead this thread sequences under, when processes share the store.
    pub lead: Option<Arc<dyn Leadership>>,
}

/// Why [`SequencerThread::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Asked to stop, or every handle is gone.
    Stopped,
    /// The lead was lost: another process may sequence now.
    LostLead,
}

fn answer_with<T>(reply: answer::Reply<T>, result: Result<T, SubmitError>) {
    let _ = reply.send(result);
}

impl SequencerThread {
    /// A sequencer thread starting from `state`: initialises the operator
    /// log on first start, defines the `namespaces` not defined yet, and
    /// checkpoints what the last one left uncheckpointed.
    pub fn start(
        shared: Arc<Shared>,
        key: PrivateKey,
        state: State,
        namespaces: &[String],
        lead: Option<Arc<dyn Leadership>>,
    ) -> Result<SequencerThread, OpenError> {
        let config = &shared.config;
        let sequencer = Sequencer::new(
            key,
            Settings {
                checkpoint_every: config.checkpoint_every,
                checkpoint_max_delay: config.checkpoint_max_delay,
                content_timeout: config.content_timeout,
                cache_generation: config.cache_generation,
            },
            state.operator,
            state.checkpoint,
            state.map,
            state.log_length,
            state.uncheckpointed,
            state.sourcing,
        )
        .with_notices(state.notices);
        let mut thread = SequencerThread {
            shared,
            sequencer,
            snapshot_length: state.snapshot_length,
            snapshot: None,
            lead,
        };
        let to_define: Vec<String> = namespaces
            .iter()
            .filter(|ns| thread.sequencer.operator().namespace(ns).is_none())
            .cloned()
            .collect();
        if thread.sequencer.operator().head().is_none() || !to_define.is_empty() {
            thread
                .define_now(to_define)
                .map_err(|e| OpenError::Invalid(e.to_string()))?;
        }
        thread.checkpoint_logged();
        thread.maybe_snapshot();
        Ok(thread)
    }

    /// Whether the lead this thread sequences under was lost.
    fn lost_lead(&self) -> bool {
        self.lead.as_ref().is_some_and(|l| !l.leading())
    }

    /// Runs until stopped, or until the lead is lost.
    pub fn run(mut self, rx: &Receiver<Command>) -> Exit {
        let mut last_housekeeping = Instant::now();
        loop {
            let wait = if self.sequencer.has_uncheckpointed() {
                self.shared.config.checkpoint_quiet
            } else {
                TICK
            };
            match rx.recv_timeout(wait) {
                Ok(first) => {
                    let mut inputs = Vec::new();
                    let mut replies = Vec::new();
                    let mut stop = None;
                    let mut housekeeping = Vec::new();
                    let mut next = Some(first);
                    while let Some(command) = next.take() {
                        match command {
                            Command::Input(input, reply) => {
                                inputs.push(input);
                                replies.push(reply);
                            }
                            Command::Housekeeping(reply) => housekeeping.push(reply),
                            Command::Stop(reply) => {
                                stop = Some(reply);
                                break;
                            }
                        }
                        if inputs.len() < self.shared.config.batch_max {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !inputs.is_empty() {
                        self.process(inputs, replies);
                    }
                    if self
                        .sequencer
                        .checkpoint_due(self.shared.config.clock.now())
                    {
                        self.checkpoint_logged();
                    }
                    if !housekeeping.is_empty() {
                        self.housekeeping();
                        last_housekeeping = Instant::now();
                        for reply in housekeeping {
                            answer_with(reply, Ok(()));
                        }
                    }
                    if let Some(reply) = stop {
                        self.stop();
                        answer_with(reply, Ok(()));
                        return Exit::Stopped;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.checkpoint_logged(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop();
                    return Exit::Stopped;
                }
            }
            if self.lost_lead() {
                tracing::error!(
                    "this replica lost the lead (its database session ended); it stops \
                     sequencing and follows whichever replica leads now"
                );
                self.wait_for_snapshot();
                return Exit::LostLead;
            }
            if last_housekeeping.elapsed() >= TICK {
                last_housekeeping = Instant::now();
                self.housekeeping();
            }
        }
    }

    fn stop(&mut self) {
        self.checkpoint_logged();
        self.final_snapshot();
    }

    /// Decides and commits a batch, then answers every input.
    fn process(&mut self, inputs: Vec<Input>, replies: Vec<Reply>) {
        let needs = self.sequencer.needs(&inputs);
        let facts = match self.fetch(&needs) {
            Ok(facts) => facts,
            Err(e) => {
                tracing::error!("cannot read what a batch needs: {e}");
                for reply in replies {
                    fail(reply, &e);
                }
                return;
            }
        };
        let now = self.shared.config.clock.now();
        let (staged, outcomes) = self.sequencer.decide(inputs, facts, now);
        let committed = self.commit(staged);
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            match (&committed, reply, outcome) {
                (Err(e), reply, outcome) if outcome.is_ok() => fail(reply, e),
                (_, Reply::Record(reply), Outcome::Record(result)) => {
                    answer_with(reply, result.map(|s| self.shared.view.published(s)))
                }
                (_, Reply::Defined(reply), Outcome::Defined(result)) => answer_with(reply, result),
                (
                    _,
                    Reply::Attested(reply),
                    Outcome::Attested(result) | Outcome::Noticed(result),
                ) => answer_with(reply, result),
                // A reply of another kind than its input: cannot happen;
                // dropping the reply answers `Stopped`.
                _ => tracing::error!("a reply did not match its input"),
            }
        }
    }

    /// Reads what `needs` lists.
    fn fetch(&self, needs: &Needs) -> Result<Facts, StoreError> {
        let meta = &self.shared.meta;
        let mut facts = Facts::default();
        for (key, record) in needs
            .records
            .iter()
            .zip(meta.writer_records(&needs.records)?)
        {
            if let Some(record) = record {
                facts.records.insert(*key, record.state);
            }
        }
        for log_id in &needs.packages {
            let records = meta.writer_log(log_id)?;
            let state = codec::package_state(records.iter().map(|(_, r)| r))?;
            self.shared.remember_keys([&state]);
            facts.packages.insert(*log_id, state);
        }
        let operator = self.shared.view.operator().keys.first().cloned();
        for log_id in &needs.attestations {
            let records = meta.writer_log(log_id)?;
            let operator = operator
                .as_ref()
                .ok_or_else(|| StoreError::Corrupt("the operator log has no key".into()))?;
            let log = codec::attestation_log(records.iter().map(|(_, r)| r), operator)?;
            facts.attestations.insert(*log_id, log);
        }
        for digest in &needs.content {
            if self.shared.content.size(digest)?.is_some() {
                facts.content.insert(*digest);
            }
        }
        Ok(facts)
    }

    /// Commits `staged`; on success applies it to the sequencer and the view.
    fn commit(&mut self, staged: Staged) -> Result<(), StoreError> {
        if staged.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.shared.meta.commit(&staged.batch) {
            tracing::error!("commit failed, batch dropped: {e}");
            return Err(e);
        }
        let view = &self.shared.view;
        self.shared.remember_keys(staged.package_states());
        if let Some(operator) = staged.operator() {
            let operator_log = LogId::operator();
            let records = staged
                .batch
                .records
                .iter()
                .filter_map(|r| match r.state {
                    RecordState::Sequenced { index } if r.log_id == operator_log => {
                        Some((index, r.clone()))
                    }
                    _ => None,
                })
                .collect();
            view.extend_operator(operator_keys(operator), namespaces_of(operator), records);
        }
        view.note_leaves(view.log().len(), &staged.leaves);
        view.push_leaves(staged.leaves.iter().map(|l| l.leaf_hash()));
        view.remember(&staged.batch);
        self.sequencer.apply(staged, self.shared.config.clock.now());
        Ok(())
    }

    /// Defines namespaces outside a batch (at open and for admin requests).
    pub fn define_now(&mut self, namespaces: Vec<String>) -> Result<Vec<String>, SubmitError> {
        let now = self.shared.config.clock.now();
        let (staged, mut outcomes) =
            self.sequencer
                .decide(vec![Input::Define(namespaces)], Facts::default(), now);
        let defined = match outcomes.pop() {
            Some(Outcome::Defined(result)) => result?,
            _ => return Err(SubmitError::Invalid("no answer to a definition".into())),
        };
        self.commit(staged)?;
        Ok(defined)
    }

    /// Makes a checkpoint of every committed leaf, if one is missing.
    pub fn checkpoint_logged(&mut self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!("checkpoint failed: {e}");
        }
        self.maybe_snapshot();
    }

    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let length = self.sequencer.log_length();
        let Some(root) = self.shared.log_root_at(length)? else {
            return Ok(());
        };
        let now = self.shared.config.clock.now();
        let Some(staged) = self.sequencer.stage_checkpoint(root, now) else {
            return Ok(());
        };
        self.shared.meta.commit(&crate::storage::Batch {
            checkpoint: Some(staged.checkpoint.clone()),
            ..Default::default()
        })?;
        self.shared.view.add_checkpoint(
            staged.checkpoint.clone(),
            staged.map.clone(),
            crate::view::Keep::of(&self.shared.config),
        );
        self.sequencer.checkpointed(staged);
        Ok(())
    }

    /// Saves a snapshot (the map and the log's chunk hashes, see
    /// `snapshot.rs`) in the background once the log grew enough.
    pub fn maybe_snapshot(&mut self) {
        let length = self.shared.view.checkpointed_length();
        if length < self.snapshot_length + self.shared.config.snapshot_every
            || self.snapshot.as_ref().is_some_and(|s| !s.is_finished())
        {
            return;
        }
        self.wait_for_snapshot();
        self.snapshot_length = length;
        let (map, meta) = (self.sequencer.map().clone(), self.shared.meta.clone());
        let chunk_roots = self.shared.view.log().chunk_roots(length);
        let spawned = std::thread::Builder::new()
            .name("cairn-map-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                match save_snapshot(meta.as_ref(), length, &map, &chunk_roots) {
                    Ok(bytes) => tracing::info!(
                        "saved a map snapshot at log length {length} ({} MB) in {:.2?}",
                        bytes / 1_000_000,
                        started.elapsed()
                    ),
                    Err(e) => tracing::error!("cannot save a map snapshot: {e}"),
                }
            });
        match spawned {
            Ok(handle) => self.snapshot = Some(handle),
            Err(e) => tracing::error!("cannot start saving a map snapshot: {e}"),
        }
    }

    /// Waits for the background snapshot, if one is being saved.
    fn wait_for_snapshot(&mut self) {
        if let Some(handle) = self.snapshot.take() {
            if handle.join().is_err() {
                tracing::error!("saving a map snapshot panicked");
            }
        }
    }

    /// At shutdown: a snapshot of the final map and log, so the next start
    /// is quick.
    fn final_snapshot(&mut self) {
        self.wait_for_snapshot();
        let length = self.shared.view.checkpointed_length();
        if length > self.snapshot_length {
            let chunk_roots = self.shared.view.log().chunk_roots(length);
            let map = self.sequencer.map();
            if let Err(e) = save_snapshot(self.shared.meta.as_ref(), length, map, &chunk_roots) {
                tracing::error!("cannot save a map snapshot: {e}");
            }
            self.snapshot_length = length;
        }
    }

    /// Rejects records whose content never came; runs admin requests.
    fn housekeeping(&mut self) {
        let expired = self.sequencer.expire(self.shared.config.clock.now());
        if let Err(e) = self.commit(expired) {
            tracing::error!("cannot reject expired records: {e}");
        }
        match self.shared.meta.admin_requests() {
            Ok(requests) => {
                for request in requests {
                    let outcome = match self.define_now(vec![request.define_namespace.clone()]) {
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
}

impl Outcome {
    fn is_ok(&self) -> bool {
        match self {
            Outcome::Record(r) => r.is_ok(),
            Outcome::Defined(r) => r.is_ok(),
            Outcome::Attested(r) | Outcome::Noticed(r) => r.is_ok(),
        }
    }
}

/// Saves the snapshot of `map` and the log's `chunk_roots` at `length`,
/// streamed into the store; the number of bytes saved.
fn save_snapshot(
    meta: &dyn MetaStore,
    length: u64,
    map: &Map,
    chunk_roots: &[cairn_protocol::Hash],
) -> Result<u64, StoreError> {
    let mut size = 0;
    meta.save_map_snapshot(length, &mut |out| {
        let mut counted = Counted {
            inner: out,
            bytes: 0,
        };
        snapshot::encode(&mut counted, map, chunk_roots)?;
        size = counted.bytes;
        Ok(())
    })?;
    Ok(size)
}

/// A writer that counts what passes.
struct Counted<'a> {
    inner: &'a mut dyn std::io::Write,
    bytes: u64,
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Answers `reply` with a storage failure.
fn fail(reply: Reply, e: &StoreError) {
    let error = || SubmitError::Store(StoreError::Backend(e.to_string()));
    match reply {
        Reply::Record(r) => answer_with(r, Err(error())),
        Reply::Defined(r) => answer_with(r, Err(error())),
        Reply::Attested(r) => answer_with(r, Err(error())),
    }
}
