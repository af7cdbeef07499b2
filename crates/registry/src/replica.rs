//! Replicas: several registry processes on one shared store. The one that
//! holds the lead ([`Leadership`]) runs the sequencer thread; the others
//! follow: they wait for the leader's checkpoints (a notification from the
//! store), read the new leaves, rebuild the log and map up to each
//! checkpoint and check both roots before readers see it. When the lead
//! is free (the leader's session ended), a follower takes it, loads the
//! log afresh (everything committed, checkpointed or not) and sequences.
//!
//! Nothing here decides a record: the sequencer does, on the leader only;
//! a follower's doors answer [`SubmitError::NotLeader`] (the server
//! forwards writes to the leader before they reach them).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::{LogId, LogLeaf, PrivateKey};
use rayon::prelude::*;

use crate::error::SubmitError;
use crate::registry::{apply_latest, load_operator, namespaces_of, operator_keys, Shared, State};
use crate::storage::{Leadership, StoreError};
use crate::thread::{Command, Exit, Reply, SequencerThread};
use crate::view::OperatorView;

/// How long a follower waits for a checkpoint before it checks its
/// commands and tries the lead again.
const FOLLOW_WAIT: Duration = Duration::from_millis(250);

/// How long a follower trusts the leader URL it read.
const LEADER_URL_TTL: Duration = Duration::from_millis(500);

/// How long a replica that lost the lead waits before it tries to take it
/// again: the others, whose sessions did not fail, go first.
const BACK_OFF: Duration = Duration::from_secs(1);

/// Leaves read from the store at once while following.
const LEAVES_PER_READ: u64 = 100_000;

/// This process's place among the replicas.
pub(crate) struct Replica {
    lead: Arc<dyn Leadership>,
    url: String,
    secret: [u8; 32],
    leading: AtomicBool,
    leader: Mutex<Option<(Instant, Option<String>)>>,
}

impl Replica {
    pub fn new(lead: Arc<dyn Leadership>, url: String, secret: [u8; 32]) -> Replica {
        Replica {
            lead,
            url,
            secret,
            leading: AtomicBool::new(false),
            leader: Mutex::new(None),
        }
    }

    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// Whether this process sequences now (or is about to, once it has
    /// loaded the log: writes sent meanwhile wait for it).
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    pub fn secret(&self) -> [u8; 32] {
        self.secret
    }

    /// Where the leader accepts forwarded writes (read from the store at
    /// most every [`LEADER_URL_TTL`]).
    pub fn leader_url(&self) -> Option<String> {
        let mut cached = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, url)) = cached.as_ref() {
            if at.elapsed() < LEADER_URL_TTL {
                return url.clone();
            }
        }
        let url = match self.lead.leader_url() {
            Ok(url) => url.filter(|u| *u != self.url),
            Err(e) => {
                tracing::warn!("cannot read which replica leads: {e}");
                None
            }
        };
        *cached = Some((Instant::now(), url.clone()));
        url
    }
}

/// The replica thread: follows, or sequences while it leads.
pub(crate) struct Follower {
    pub shared: Arc<Shared>,
    pub replica: Arc<Replica>,
    pub key: PrivateKey,
    pub namespaces: Vec<String>,
}

impl Follower {
    /// Runs until stopped: sequences with `leader` if it already leads,
    /// else follows until it can take the lead.
    pub fn run(self, mut leader: Option<SequencerThread>, rx: Receiver<Command>) {
        let mut lost = None;
        loop {
            if let Some(thread) = leader.take() {
                self.replica.set_leading(true);
                let exit = thread.run(&rx);
                self.replica.set_leading(false);
                if exit == Exit::Stopped {
                    self.replica.lead.resign();
                    return;
                }
                lost = Some(Instant::now());
            }
            match self.follow(&rx, lost) {
                Some(thread) => leader = Some(thread),
                None => {
                    self.replica.lead.resign();
                    return;
                }
            }
        }
    }

    /// Follows the leader's checkpoints until this process takes the lead
    /// (returning its sequencer thread) or is stopped (`None`).
    fn follow(&self, rx: &Receiver<Command>, lost: Option<Instant>) -> Option<SequencerThread> {
        let mut last_error: Option<Instant> = None;
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Command::Stop(reply)) => {
                        let _ = reply.send(Ok(()));
                        return None;
                    }
                    Ok(Command::Housekeeping(reply)) => {
                        let _ = reply.send(Ok(()));
                    }
                    Ok(Command::Input(_, reply)) => not_leader(reply),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return None,
                }
            }
            let backing_off = lost.is_some_and(|t| t.elapsed() < BACK_OFF);
            let tried = if backing_off {
                Ok(false)
            } else {
                self.replica.lead.try_lead(&self.replica.url)
            };
            match tried {
                Ok(true) => {
                    self.replica.set_leading(true);
                    match self.take_over() {
                        Ok(thread) => return Some(thread),
                        Err(e) => {
                            tracing::error!("took the lead but cannot start sequencing: {e}");
                            self.replica.set_leading(false);
                            self.replica.lead.resign();
                            std::thread::sleep(FOLLOW_WAIT);
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("cannot try the lead: {e}");
                        last_error = Some(Instant::now());
                    }
                }
            }
            let known = self.shared.view.checkpointed_length();
            match self.replica.lead.wait_checkpoint(known, FOLLOW_WAIT) {
                Ok(latest) if latest > known => {
                    if let Err(e) = catch_up(&self.shared, latest) {
                        tracing::error!(
                            "cannot follow the leader to checkpoint {latest}: {e}; readers keep \
                             checkpoint {known}"
                        );
                        std::thread::sleep(FOLLOW_WAIT);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("cannot wait for checkpoints: {e}");
                        last_error = Some(Instant::now());
                    }
                    std::thread::sleep(FOLLOW_WAIT);
                }
            }
        }
    }

    /// Loads everything the last leader committed and starts sequencing.
    fn take_over(&self) -> Result<SequencerThread, crate::error::OpenError> {
        let started = Instant::now();
        let mut state = State::load(self.shared.meta.as_ref(), &self.key)?;
        let view = &self.shared.view;
        view.replace_log(std::mem::take(&mut state.log));
        view.set_operator(state.operator_view());
        if let Some(cp) = &state.checkpoint {
            if cp.contents.checkpoint.log_length > view.checkpointed_length() {
                view.add_checkpoint(
                    cp.clone(),
                    state.map.clone(),
                    crate::view::Keep::of(&self.shared.config),
                );
            }
        }
        let length = state.log_length;
        let thread = SequencerThread::start(
            self.shared.clone(),
            self.key.clone(),
            state,
            &self.namespaces,
            Some(self.replica.lead.clone()),
        )?;
        tracing::info!(
            "this replica took the lead: log length {length}, loaded in {:.2?}",
            started.elapsed()
        );
        Ok(thread)
    }
}

fn not_leader(reply: Reply) {
    match reply {
        Reply::Record(r) => {
            let _ = r.send(Err(SubmitError::NotLeader));
        }
        Reply::Defined(r) => {
            let _ = r.send(Err(SubmitError::NotLeader));
        }
        Reply::Attested(r) => {
            let _ = r.send(Err(SubmitError::NotLeader));
        }
    }
}

/// Brings the readers' view up to the stored checkpoint at `latest`: reads
/// the leaves since the view's checkpoint, extends the log, applies each
/// touched log's latest record to the map, and shows the checkpoint only
/// if both its roots are reproduced.
pub(crate) fn catch_up(shared: &Shared, latest: u64) -> Result<(), StoreError> {
    let view = &shared.view;
    let from = view.checkpointed_length();
    if latest <= from {
        return Ok(());
    }
    let meta = shared.meta.as_ref();
    let checkpoint = meta.checkpoint(latest)?.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the store announced checkpoint {latest} but has none"
        ))
    })?;
    let mut leaves: Vec<LogLeaf> = Vec::new();
    while (from + leaves.len() as u64) < latest {
        let at = from + leaves.len() as u64;
        let limit = (latest - at).min(LEAVES_PER_READ);
        let read = meta.leaves(at, limit as usize)?;
        if read.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "checkpoint {latest} but the log ends at {at}"
            )));
        }
        leaves.extend(read);
    }
    leaves.truncate((latest - from) as usize);
    let known = view.log().len();
    let skip = usize::try_from(known.saturating_sub(from)).unwrap_or(usize::MAX);
    let hashes: Vec<_> = leaves
        .par_iter()
        .skip(skip)
        .map(LogLeaf::leaf_hash)
        .collect();
    view.push_leaves(hashes);
    let base = view
        .recent()
        .back()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let map = apply_latest(base, &leaves);
    let expected = &checkpoint.contents.checkpoint;
    if shared.log_root_at(latest)? != Some(expected.log_root) || map.root() != expected.map_root {
        return Err(StoreError::Corrupt(format!(
            "the stored leaves do not reproduce the roots of checkpoint {latest}"
        )));
    }
    view.note_leaves(from, &leaves);
    let operator = LogId::operator();
    if leaves.iter().any(|l| l.log_id == operator) {
        let (state, records) = load_operator(meta)?;
        view.set_operator(OperatorView {
            keys: operator_keys(&state),
            namespaces: namespaces_of(&state),
            records,
        });
    }
    view.add_checkpoint(checkpoint, map, crate::view::Keep::of(&shared.config));
    Ok(())
}
