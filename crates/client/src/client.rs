//! The verifying registry client: every answer is checked against the
//! trusted state before it is used or kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cairn_protocol::operator::OperatorRecord;
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState, Release};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, KeyId, LogId, PackageName, PrivateKey, PublicKey, RecordId,
    SignatureChecked, SignedCheckpoint, Timestamp, Version, VersionReq,
};
use cairn_transparency::note::Note;
use cairn_transparency::witness::Policy;
use rayon::prelude::*;
use serde_json::json;

use cairn_api::package::PackageRecordState;
use cairn_api::{PublishedRecord, SignedCheckpointJson};

use crate::api::{Api, Progress};
use crate::error::{Error, Result, VerificationFailure};
use crate::limits::Limits;
use crate::state::{PackageLog, Trusted};
use crate::verify::{self, Inclusion};

/// Most leaves asked for in one inclusion proof.
const INCLUSION_BATCH: usize = 1000;
/// Most logs asked for in one `fetch/logs` request (Cairn's default bound).
const FETCH_LOGS_BATCH: usize = 10_000;

/// How a download's temporary file in the cache is named: removed on any
/// failure, renamed into place once its digest is checked.
const PARTIAL_PREFIX: &str = ".cairn-partial-";
/// How old a temporary file left in the cache (by a killed process) must
/// be before the next client removes it; one still being written is
/// younger, as every write touches it.
const STALE_PARTIAL: Duration = Duration::from_secs(3600);

/// How long a publish waits for the registry to take the record into a
/// checkpoint.
const PUBLISH_WAIT: Duration = Duration::from_secs(120);

/// Which release of a package is wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Exactly this version, yanked or not.
    Exact(Version),
    /// The newest non-yanked version matching.
    Matching(VersionReq),
}

impl Wanted {
    /// Reads `1.2.3` (exact) or a semver requirement (`^1.2`, `>=1, <2`,
    /// `=1.2.3`, `*`).
    pub fn parse(text: &str) -> Result<Wanted, String> {
        if let Ok(version) = Version::parse(text) {
            return Ok(Wanted::Exact(version));
        }
        VersionReq::parse(text)
            .map(Wanted::Matching)
            .map_err(|e| format!("`{text}` is neither a version nor a version requirement: {e}"))
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanted::Exact(v) => write!(f, "{v}"),
            Wanted::Matching(r) => write!(f, "{r}"),
        }
    }
}

/// A record the registry took into its log.
#[derive(Clone, Debug)]
pub struct Published {
    /// The record.
    pub record_id: RecordId,
    /// Its registry index.
    pub index: u64,
    /// The verified checkpoint that contains it.
    pub checkpoint: SignedCheckpoint,
    /// The content it released, if any.
    pub content: Option<Hash>,
}

/// What `verify` checked.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The checkpoint everything was checked against.
    pub checkpoint: SignedCheckpoint,
    /// The checkpoint trusted before, if any.
    pub previous: Option<SignedCheckpoint>,
    /// Packages whose logs were re-validated.
    pub packages: usize,
    /// Records proven included (operator and package logs).
    pub records: usize,
}

/// A client of one registry.
pub struct Client {
    api: Api,
    trusted: Trusted,
    /// Witnesses whose quorum must have cosigned (a checkpoint the one
    /// used extends) before anything is trusted.
    policy: Option<Policy>,
    cache_dir: PathBuf,
    progress: Arc<dyn Progress>,
    /// Whether stale temporary files were swept from the cache.
    swept: AtomicBool,
}

/// Where a package lives, as a registry's verified logs say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceHome {
    /// Here (its namespace is defined here, or named nowhere).
    Here,
    /// On the registry its namespace is imported from.
    Imported(String),
    /// Here: its namespace was imported, then it (or the whole namespace)
    /// was forked from the origin.
    Forked(cairn_protocol::notice::Fork),
}

/// Where a log is known up to: the last record's registry index and the
/// fetch token to ask for the records after it.
type After = Option<(u64, String)>;

/// The fetch token of `record`: the registry's, else (trusted state kept
/// before tokens were) the index in Cairn's form.
fn token_of(record: &PublishedRecord) -> String {
    record
        .fetch_token
        .clone()
        .unwrap_or_else(|| cairn_api::fetch::fetch_token(record.registry_index))
}

#[derive(Default)]
/// Records fetched for one update, not yet verified.
struct Fetched {
    operator: Vec<PublishedRecord>,
    packages: BTreeMap<LogId, Vec<PublishedRecord>>,
    absent: Vec<LogId>,
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Records of a log with their registry indexes, oldest first.
pub type Indexed<R> = Vec<(u64, Envelope<R>)>;

impl Client {
    /// A client of `registry` keeping trusted state under `state_dir` and
    /// downloaded content under `cache_dir`, within the default
    /// [`Limits`].
    pub fn open(
        registry: &str,
        token: Option<String>,
        state_dir: &Path,
        cache_dir: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<Client> {
        Client::open_with(
            registry,
            token,
            state_dir,
            cache_dir,
            progress,
            Limits::default(),
        )
    }

    /// A client (see [`Client::open`]) within `limits`: its timeouts and
    /// size bounds (e.g. [`Limits::from_env`]).
    pub fn open_with(
        registry: &str,
        token: Option<String>,
        state_dir: &Path,
        cache_dir: &Path,
        progress: Arc<dyn Progress>,
        limits: Limits,
    ) -> Result<Client> {
        Ok(Client {
            api: Api::with_limits(registry, token, limits)?,
            trusted: Trusted::load(state_dir, registry)?,
            cache_dir: cache_dir.to_owned(),
            progress,
            swept: AtomicBool::new(false),
            policy: None,
        })
    }

    /// The same client, trusting the registry's checkpoints only when
    /// they extend one that the log of `policy` signed and its witnesses'
    /// quorum cosigned (`c2sp.org/tlog-policy`).
    pub fn with_witness_policy(mut self, policy: Policy) -> Client {
        self.policy = Some(policy);
        self
    }

    /// Checks the registry's C2SP checkpoint against the witness policy,
    /// and that the Warg checkpoint `cp` is it or extends it.
    fn witnessed(&self, cp: &SignedCheckpoint, cp_json: &SignedCheckpointJson) -> Result<()> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let bytes = self.api.tlog_checkpoint()?;
        let note_text = String::from_utf8_lossy(&bytes).into_owned();
        let unwitnessed = |why: String| {
            self.fail(
                why,
                "unwitnessed-checkpoint",
                json!({ "note": note_text, "checkpoint": cp_json }),
            )
        };
        let note = Note::parse(&bytes).map_err(|e| {
            unwitnessed(format!("the registry's C2SP checkpoint is malformed: {e}"))
        })?;
        let (witnessed, _) = policy.check(&note).map_err(|e| {
            unwitnessed(format!(
                "the registry's checkpoint does not meet the witness policy: {e}"
            ))
        })?;
        let c = &cp.contents.checkpoint;
        if witnessed.size > c.log_length {
            return Err(unwitnessed(format!(
                "the witnessed checkpoint ({} records) is newer than the one the registry \
                 serves ({}); try again in a moment",
                witnessed.size, c.log_length
            )));
        }
        if witnessed.size == c.log_length {
            if witnessed.root != c.log_root {
                return Err(unwitnessed(format!(
                    "the witnesses cosigned another root at {} records: a split view",
                    c.log_length
                )));
            }
            return Ok(());
        }
        let bundle = self.api.prove_consistency(witnessed.size, c.log_length)?;
        verify::log_consistency(
            (witnessed.size, &witnessed.root),
            (c.log_length, &c.log_root),
            &bundle,
        )
        .map_err(|e| {
            unwitnessed(format!(
                "the checkpoint does not extend the witnessed one: {e}"
            ))
        })
    }

    /// The registry.
    pub fn registry(&self) -> &str {
        self.api.base()
    }

    /// The verified checkpoint, if any.
    pub fn checkpoint(&self) -> Option<&SignedCheckpoint> {
        self.trusted.checkpoint.as_ref()
    }

    /// The verified log of `name`, as of the last update.
    pub fn package(&mut self, name: &PackageName) -> Result<Option<&PackageLog>> {
        self.trusted.package(name)
    }

    fn fail(&self, what: String, kind: &str, evidence: serde_json::Value) -> Error {
        let evidence = self.trusted.keep_evidence(kind, &evidence);
        Error::Verification(Box::new(VerificationFailure {
            registry: self.api.base().to_owned(),
            what,
            evidence,
        }))
    }

    /// Brings the trusted state up to the registry's latest checkpoint for
    /// the packages named: the checkpoint is verified against the operator
    /// log and the trusted checkpoint, new records against their logs'
    /// rules, and each log's latest record against the checkpoint. With
    /// `force`, the proofs are asked for even when nothing changed.
    pub fn update(&mut self, names: &[PackageName], force: bool) -> Result<()> {
        let (cp, cp_json) = self.api.checkpoint()?;
        let length = cp.contents.checkpoint.log_length;
        // Nothing to do when the checkpoint is the trusted one and every
        // package was last proven at it (one proven at an older checkpoint
        // may have records the trusted checkpoint covers).
        let mut current = !force && self.trusted.checkpoint.as_ref() == Some(&cp);
        for name in names {
            current &= self
                .trusted
                .package(name)?
                .is_some_and(|log| log.checked_at == length);
        }
        if current {
            return Ok(());
        }
        let mut asked = Vec::with_capacity(names.len());
        for name in names {
            let after = self.trusted.package(name)?.and_then(|log| {
                let last = log.records.last()?;
                Some((last.registry_index, token_of(last)))
            });
            asked.push((LogId::package(name), after));
        }
        // A checkpoint signed by a key the trusted operator log already
        // allows is checked before anything else is asked, and so is its
        // consistency with the trusted checkpoint: a forked registry is
        // caught on its checkpoint, whatever it serves next.
        let signature = |operator: &cairn_protocol::operator::OperatorState| {
            verify::checkpoint_signature(operator, &cp).map_err(|e| {
                self.fail(
                    e.to_string(),
                    "checkpoint-signature",
                    json!({ "checkpoint": cp_json }),
                )
            })
        };
        if self.trusted.operator.may_sign_checkpoints(&cp.key_id) {
            signature(&self.trusted.operator)?;
        }
        self.witnessed(&cp, &cp_json)?;
        if let Some(old) = &self.trusted.checkpoint {
            let old_length = old.contents.checkpoint.log_length;
            let bundle = if length > old_length {
                Some(self.api.prove_consistency(old_length, length)?)
            } else {
                None
            };
            verify::consistency(old, &cp, bundle.as_deref()).map_err(|e| {
                self.fail(
                    e.to_string(),
                    "inconsistent-checkpoints",
                    json!({
                        "trustedCheckpoint": SignedCheckpointJson::from(old),
                        "servedCheckpoint": cp_json,
                        "consistencyProof": bundle.as_ref().map(|b| {
                            use base64::Engine;
                            base64::engine::general_purpose::STANDARD.encode(b)
                        }),
                    }),
                )
            })?;
        }
        let fetched = self.fetch_all(length, &asked)?;

        // The operator log up to the checkpoint decides which keys may sign it.
        let mut operator = self.trusted.operator.clone();
        let mut operator_records = self.trusted.operator_records.clone();
        for record in &fetched.operator {
            let envelope: Envelope<OperatorRecord> = record.envelope().map_err(|e| {
                self.fail(
                    format!("served a malformed operator record: {e}"),
                    "operator-record",
                    json!({ "record": record }),
                )
            })?;
            operator.apply(&envelope).map_err(|e| {
                self.fail(
                    format!("served an operator record that breaks the log's rules: {e}"),
                    "operator-record",
                    json!({ "record": record, "checkpoint": cp_json }),
                )
            })?;
            operator_records.push(record.clone());
        }
        signature(&operator)?;

        // New package records must extend their logs by the rules.
        let mut updated = Vec::new();
        for name in names {
            let log_id = LogId::package(name);
            if fetched.absent.contains(&log_id) {
                continue;
            }
            let new = fetched.packages.get(&log_id).cloned().unwrap_or_default();
            let log = match self.trusted.package(name)? {
                Some(log) => log.clone(),
                None => PackageLog::empty(name),
            };
            updated.push(self.extend(log, new, &cp_json)?);
        }

        // Every log's latest record is the one the checkpoint's map holds.
        let mut proofs = Vec::new();
        if let (Some(last), Some(head)) = (
            operator_records.last(),
            operator.head().map(|h| h.record_id),
        ) {
            proofs.push(Inclusion {
                index: last.registry_index,
                log_id: LogId::operator(),
                record_id: head,
                head,
            });
        }
        for log in &updated {
            if let (Some(last), Some(head)) = (log.records.last(), log.state.head()) {
                proofs.push(Inclusion {
                    index: last.registry_index,
                    log_id: LogId::package(&log.name),
                    record_id: head.record_id,
                    head: head.record_id,
                });
            }
        }
        self.prove(&cp, &cp_json, &proofs)?;

        self.trusted.checkpoint = Some(cp);
        self.trusted.operator = operator;
        self.trusted.operator_records = operator_records;
        self.trusted.store_registry()?;
        for mut log in updated {
            log.checked_at = length;
            self.trusted.store_package(log)?;
        }
        Ok(())
    }

    fn prove(
        &self,
        cp: &SignedCheckpoint,
        cp_json: &SignedCheckpointJson,
        proofs: &[Inclusion],
    ) -> Result<()> {
        let length = cp.contents.checkpoint.log_length;
        for batch in proofs.chunks(INCLUSION_BATCH) {
            let leafs: Vec<u64> = batch.iter().map(|p| p.index).collect();
            let (log, map) = self.api.prove_inclusion(length, &leafs)?;
            verify::inclusion(cp, batch, &log, &map).map_err(|e| {
                use base64::Engine;
                let b64 = &base64::engine::general_purpose::STANDARD;
                self.fail(
                    e.to_string(),
                    "not-included",
                    json!({
                        "checkpoint": cp_json,
                        "records": batch.iter().map(|p| json!({
                            "registryIndex": p.index,
                            "logId": p.log_id.to_string(),
                            "recordId": p.record_id.to_string(),
                            "head": p.head.to_string(),
                        })).collect::<Vec<_>>(),
                        "logProof": b64.encode(&log),
                        "mapProof": b64.encode(&map),
                    }),
                )
            })?;
        }
        Ok(())
    }

    /// Validates `new` records on top of `log`; signatures are checked in
    /// parallel first, then the rules in order.
    fn extend(
        &self,
        mut log: PackageLog,
        new: Vec<PublishedRecord>,
        cp_json: &SignedCheckpointJson,
    ) -> Result<PackageLog> {
        if new.is_empty() {
            return Ok(log);
        }
        let mut envelopes = Vec::with_capacity(new.len());
        for record in &new {
            let envelope: Envelope<PackageRecord> = record.envelope().map_err(|e| {
                self.fail(
                    format!("served a malformed record of {}: {e}", log.name),
                    "package-record",
                    json!({ "package": log.name.as_str(), "record": record }),
                )
            })?;
            envelopes.push(envelope);
        }
        // Every key the log could hold by the end, so signatures can be
        // checked before the records are applied one by one.
        let mut keys: BTreeMap<KeyId, PublicKey> = log
            .state
            .authorities()
            .keys()
            .map(|k| (k.id(), k.clone()))
            .collect();
        for envelope in &envelopes {
            for entry in &envelope.contents().entries {
                if let PackageEntry::Init { key, .. } | PackageEntry::Grant { key, .. } = entry {
                    keys.insert(key.id(), key.clone());
                }
            }
        }
        let checked: Vec<Option<SignatureChecked>> = envelopes
            .par_iter()
            .map(|e| {
                keys.get(e.key_id())
                    .and_then(|key| e.check_signature(key).ok())
            })
            .collect();
        let state = std::mem::take(&mut log.state)
            .replay(envelopes.iter().zip(checked.iter().map(Option::as_ref)))
            .map_err(|e| {
                let bad = new
                    .iter()
                    .zip(&envelopes)
                    .find(|(_, env)| env.record_id() == e.record_id)
                    .map(|(r, _)| r.clone());
                self.fail(
                    format!(
                        "served a record of {} that breaks the log's rules: {e}",
                        log.name
                    ),
                    "package-record",
                    json!({
                        "package": log.name.as_str(),
                        "checkpoint": cp_json,
                        "record": bad,
                        "trustedHead": log.state.head().map(|h| h.record_id.to_string()),
                    }),
                )
            })?;
        log.state = state;
        log.records.extend(new);
        log.envelopes.extend(envelopes);
        Ok(log)
    }

    /// Records of the asked logs up to `length`, in requests of at most
    /// [`FETCH_LOGS_BATCH`] logs (a registry bounds how many one request
    /// may name).
    fn fetch_all(&self, length: u64, asked: &[(LogId, After)]) -> Result<Fetched> {
        let mut batches = asked.chunks(FETCH_LOGS_BATCH);
        // The first request (also when no package log is asked for) brings
        // the new operator records; the others would bring them again.
        let mut fetched = self.fetch_batch(length, batches.next().unwrap_or_default())?;
        for batch in batches {
            let page = self.fetch_batch(length, batch)?;
            fetched.packages.extend(page.packages);
            fetched.absent.extend(page.absent);
        }
        Ok(fetched)
    }

    fn fetch_batch(&self, length: u64, asked: &[(LogId, After)]) -> Result<Fetched> {
        match self.fetch_pages(length, asked) {
            Err(Error::Refused { status: 404, .. }) if asked.iter().any(|(_, a)| a.is_none()) => {
                // Some never-seen log does not exist: find which, one by one.
                let mut fetched = Fetched::default();
                let (new, old): (Vec<_>, Vec<_>) =
                    asked.iter().cloned().partition(|(_, a)| a.is_none());
                let first = self.fetch_pages(length, &old)?;
                fetched.operator = first.operator;
                fetched.packages = first.packages;
                for one in new {
                    match self.fetch_pages(length, std::slice::from_ref(&one)) {
                        Ok(page) => {
                            fetched.packages.extend(page.packages);
                        }
                        Err(Error::Refused { status: 404, .. }) => fetched.absent.push(one.0),
                        Err(e) => return Err(e),
                    }
                }
                Ok(fetched)
            }
            other => other,
        }
    }

    fn fetch_pages(&self, length: u64, asked: &[(LogId, After)]) -> Result<Fetched> {
        let mut fetched = Fetched::default();
        // Records are asked for after the fetch token the registry gave
        // with the last one known (opaque: Cairn's are registry indexes,
        // warg-server's record ids); the index keeps the order checked.
        let mut operator: After = self
            .trusted
            .operator_records
            .last()
            .map(|r| (r.registry_index, token_of(r)));
        let mut after: Vec<(LogId, After)> = asked.to_vec();
        loop {
            let tokens: Vec<(LogId, Option<String>)> = after
                .iter()
                .map(|(id, a)| (*id, a.as_ref().map(|(_, t)| t.clone())))
                .collect();
            let page =
                self.api
                    .fetch_logs(length, operator.as_ref().map(|(_, t)| t.clone()), &tokens)?;
            let operator_after = operator.as_ref().map(|(i, _)| *i);
            let mut progressed = false;
            let check = |previous: Option<u64>, record: &PublishedRecord| {
                if record.registry_index >= length
                    || previous.is_some_and(|p| record.registry_index <= p)
                {
                    Err(self.fail(
                        format!(
                            "served a record at registry index {} out of order (after {:?}, checkpoint length {length})",
                            record.registry_index, previous
                        ),
                        "out-of-order",
                        json!({ "record": record, "logLength": length }),
                    ))
                } else {
                    Ok(())
                }
            };
            let mut operator_after = operator_after;
            for record in page.operator {
                check(operator_after, &record)?;
                operator_after = Some(record.registry_index);
                operator = Some((record.registry_index, token_of(&record)));
                fetched.operator.push(record);
                progressed = true;
            }
            for (id, records) in page.packages {
                let log_id: LogId = id.parse().map_err(|e| Error::Transport {
                    url: format!("{}/v1/fetch/logs", self.api.base()),
                    message: format!("malformed answer: log id `{id}`: {e}"),
                })?;
                let Some(slot) = after.iter_mut().find(|(l, _)| *l == log_id) else {
                    continue;
                };
                for record in records {
                    check(slot.1.as_ref().map(|(i, _)| *i), &record)?;
                    slot.1 = Some((record.registry_index, token_of(&record)));
                    fetched.packages.entry(log_id).or_default().push(record);
                    progressed = true;
                }
            }
            if !page.more {
                return Ok(fetched);
            }
            if !progressed {
                return Err(Error::Transport {
                    url: format!("{}/v1/fetch/logs", self.api.base()),
                    message: "malformed answer: `more` is set but no records came".into(),
                });
            }
        }
    }

    fn not_found(&self, name: &PackageName) -> Error {
        let ns = name.namespace();
        let hint = match self.trusted.operator.namespace(ns) {
            Some(_) => format!("publish it with `cairn publish <file.wasm> --package {name} --version <v>`"),
            None => format!(
                "namespace `{ns}` is not defined there either; if it lives on another registry, map it: \
                 `cairn config --namespace-registry {ns}=<URL>`"
            ),
        };
        Error::Usage(format!(
            "package `{name}` does not exist on {}; {hint}",
            self.api.base()
        ))
    }

    /// The packages whose logs have leaves from registry index `from` up
    /// to the trusted checkpoint (read from the ledger, named by
    /// `fetch/names`; each name checked against its log id); with the
    /// index to read from next time.
    pub fn packages_since(&self, from: u64) -> Result<(Vec<PackageName>, u64)> {
        let length = self
            .trusted
            .checkpoint
            .as_ref()
            .map_or(0, |cp| cp.contents.checkpoint.log_length);
        let mut ids: Vec<LogId> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut at = from;
        while at < length {
            let page = self.api.ledger_page(at)?;
            if page.is_empty() {
                break;
            }
            for (log_id, _) in page.iter().take((length - at) as usize) {
                if seen.insert(*log_id) {
                    ids.push(*log_id);
                }
            }
            at += page.len() as u64;
        }
        // The operator log is no package; Cairn's own logs (attestations,
        // notices) are named `null`, but a warg-server refuses the whole
        // request over a log it does not know as a package's: then each
        // is asked alone, and those refused are left out.
        ids.retain(|id| *id != LogId::operator() && *id != LogId::notices());
        let mut names = Vec::new();
        for chunk in ids.chunks(1000) {
            match self.api.fetch_names(chunk) {
                Ok(found) => names.extend(found.into_iter().flatten()),
                Err(Error::Refused { status: 404, .. }) => {
                    for id in chunk {
                        match self.api.fetch_names(std::slice::from_ref(id)) {
                            Ok(found) => names.extend(found.into_iter().flatten()),
                            Err(Error::Refused { status: 404, .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok((names, at.min(length)))
    }

    /// Checks a checkpoint of this registry that someone else saw (another
    /// monitor, a witness's peer): if the registry's operator signed it, it
    /// must be the same history as the trusted checkpoint, equal at equal
    /// lengths, else proven consistent by the registry. Two signed
    /// checkpoints that are not is a split view: a verification error
    /// whose evidence holds both. A checkpoint the operator did not sign
    /// proves nothing: a usage error.
    pub fn check_gossip(&mut self, theirs: &SignedCheckpoint, from: &str) -> Result<()> {
        let ours =
            self.trusted.checkpoint.clone().ok_or_else(|| {
                Error::Usage("no checkpoint of the registry is trusted yet".into())
            })?;
        verify::checkpoint_signature(&self.trusted.operator, theirs).map_err(|e| {
            Error::Usage(format!(
                "the checkpoint {from} reports is not signed by the registry's operator: {e}"
            ))
        })?;
        let (o, t) = (
            ours.contents.checkpoint.log_length,
            theirs.contents.checkpoint.log_length,
        );
        let (old, new) = if o <= t {
            (&ours, theirs)
        } else {
            (theirs, &ours)
        };
        let bundle = if o == t {
            None
        } else {
            Some(self.api.prove_consistency(
                old.contents.checkpoint.log_length,
                new.contents.checkpoint.log_length,
            )?)
        };
        verify::consistency(old, new, bundle.as_deref()).map_err(|e| {
            self.fail(
                format!("a split view: the checkpoint {from} saw is not the history this client trusts: {e}"),
                "split-view",
                json!({
                    "ours": SignedCheckpointJson::from(&ours),
                    "theirs": SignedCheckpointJson::from(theirs),
                    "from": from,
                }),
            )
        })
    }

    /// The registry's notice log (its take-downs) at the trusted
    /// checkpoint, verified: every record signed by a key the operator log
    /// lets sign checkpoints, chained, and proven in the checkpoint. Empty
    /// when the registry has none (or keeps no notice log).
    pub fn notices(&self) -> Result<cairn_protocol::notice::NoticeLog> {
        use cairn_protocol::notice::{NoticeLog, NoticeRecord};
        let (log, _) = self.operator_signed_log::<NoticeRecord, _>(
            LogId::notices(),
            "notice record",
            "notice",
            NoticeLog::new(),
            |log, envelope, key| log.validate(envelope, key).map_err(|e| e.to_string()),
        )?;
        Ok(log)
    }

    /// `name`'s attestation log (signatures and other artifacts attached to
    /// its releases, with the registry's verdicts) at the trusted
    /// checkpoint, verified like the notice log: every record signed by a
    /// key the operator log lets sign checkpoints, chained, and proven in
    /// the checkpoint. Registry indexes with the records, oldest first;
    /// empty when the package has none.
    pub fn attestations(
        &self,
        name: &PackageName,
    ) -> Result<Indexed<cairn_protocol::attestation::AttestationRecord>> {
        use cairn_protocol::attestation::{AttestationLog, AttestationRecord};
        let (_, records) = self.operator_signed_log::<AttestationRecord, _>(
            LogId::attestations(name),
            &format!("attestation record of {name}"),
            "attestation",
            AttestationLog::new(),
            |log, envelope, key| log.validate(envelope, key).map_err(|e| e.to_string()),
        )?;
        Ok(records)
    }

    /// The records of a log only the operator signs (the notice log, a
    /// package's attestation log) at the trusted checkpoint, verified: each
    /// signed by a key the operator log lets sign checkpoints, taken onto
    /// `log` by `extend` (which checks the chain and the signature), and all
    /// proven in the checkpoint. `what` names a record in errors, `kind`
    /// the failure. With the records, their registry indexes, oldest
    /// first; nothing when the registry has no such log.
    fn operator_signed_log<R: cairn_protocol::Record, L>(
        &self,
        log_id: LogId,
        what: &str,
        kind: &'static str,
        mut log: L,
        extend: impl Fn(L, &Envelope<R>, &PublicKey) -> std::result::Result<L, String>,
    ) -> Result<(L, Indexed<R>)> {
        let Some(cp) = self.trusted.checkpoint.clone() else {
            return Ok((log, Vec::new()));
        };
        let length = cp.contents.checkpoint.log_length;
        let cp_json = SignedCheckpointJson::from(&cp);
        let fetched = match self.fetch_pages(length, &[(log_id, None)]) {
            Ok(fetched) => fetched,
            Err(Error::Refused { status: 404, .. }) => return Ok((log, Vec::new())),
            Err(e) => return Err(e),
        };
        let records = fetched.packages.get(&log_id).cloned().unwrap_or_default();
        let mut out = Vec::with_capacity(records.len());
        for record in &records {
            let bad = |problem: String| {
                self.fail(
                    format!(
                        "{what} at registry index {}: {problem}",
                        record.registry_index
                    ),
                    kind,
                    json!({ "checkpoint": cp_json, "record": record }),
                )
            };
            let envelope: Envelope<R> = record.envelope().map_err(|e| bad(e.to_string()))?;
            let key = self
                .trusted
                .operator
                .authorities()
                .keys()
                .find(|k| k.id() == *envelope.key_id())
                .filter(|k| self.trusted.operator.may_sign_checkpoints(&k.id()))
                .cloned()
                .ok_or_else(|| bad("not signed by an operator key".into()))?;
            log = extend(log, &envelope, &key).map_err(bad)?;
            out.push((record.registry_index, envelope));
        }
        if let Some((_, last)) = out.last() {
            let head = last.record_id();
            let inclusions: Vec<Inclusion> = out
                .iter()
                .map(|(index, envelope)| Inclusion {
                    index: *index,
                    log_id,
                    record_id: envelope.record_id(),
                    head,
                })
                .collect();
            self.prove(&cp, &cp_json, &inclusions)?;
        }
        Ok((log, out))
    }

    /// The registry's offline proof of `version` of `name`
    /// (`c2sp.org/tlog-proof@v1`), unverified.
    pub fn tlog_proof(
        &self,
        name: &PackageName,
        version: &cairn_protocol::Version,
    ) -> Result<Vec<u8>> {
        self.api.tlog_proof(name, version)
    }

    /// Where package `name` lives, by this registry's verified operator
    /// log (brought up to date first if it does not name the namespace)
    /// and, for an imported namespace, its verified notice log (a fork of
    /// the namespace, or of the package, takes it back).
    pub fn package_home(&mut self, name: &PackageName) -> Result<NamespaceHome> {
        let namespace = name.namespace();
        if self.trusted.operator.namespace(namespace).is_none() {
            self.update(&[], false)?;
        }
        let imported = match self.trusted.operator.namespace(namespace) {
            Some(cairn_protocol::operator::NamespaceState::Imported { registry }) => {
                registry.clone()
            }
            _ => return Ok(NamespaceHome::Here),
        };
        Ok(match self.notices()?.forked_package(name) {
            Some(fork) => NamespaceHome::Forked(fork.clone()),
            None => NamespaceHome::Imported(imported),
        })
    }

    /// Updates `name` and returns its verified log.
    pub fn fetch_package(&mut self, name: &PackageName) -> Result<PackageLog> {
        self.update(std::slice::from_ref(name), false)?;
        match self.trusted.package(name)? {
            Some(log) => Ok(log.clone()),
            None => Err(self.not_found(name)),
        }
    }

    /// The release of `name` that `wanted` picks, from a freshly verified log.
    pub fn resolve(&mut self, name: &PackageName, wanted: &Wanted) -> Result<Release> {
        let log = self.fetch_package(name)?;
        let found = match wanted {
            Wanted::Exact(v) => log.state.release(v),
            Wanted::Matching(req) => log.state.latest_matching(req),
        };
        found.cloned().ok_or_else(|| {
            let available: Vec<String> = log
                .state
                .releases()
                .map(|r| {
                    if r.yanked.is_some() {
                        format!("{} (yanked)", r.version)
                    } else {
                        r.version.to_string()
                    }
                })
                .collect();
            Error::Usage(format!(
                "no release of `{name}` matches `{wanted}` (released: {}); run `cairn info {name}` to see them",
                if available.is_empty() { "none".to_owned() } else { available.join(", ") }
            ))
        })
    }

    /// The locked release of a package, from a freshly verified log: the
    /// version must still be released by the same record with the same
    /// content, or the registry rewrote its history (a verification
    /// failure, with the lock entry and what the registry now says kept
    /// as evidence).
    pub fn check_locked(&mut self, locked: &crate::lock::Locked) -> Result<Release> {
        let name = locked.package()?;
        let version = locked.version()?;
        let (content, record) = (locked.content()?, locked.record()?);
        let log = self.fetch_package(&name)?;
        let release = log.state.release(&version).cloned();
        let problem = match &release {
            None => Some(format!("no longer has a release {version} of `{name}`")),
            Some(r) if r.record_id != record => Some(format!(
                "released `{name}` {version} in record {}, but the lock file says record {record}",
                r.record_id
            )),
            Some(r) if r.content != content => Some(format!(
                "released `{name}` {version} with content {}, but the lock file says {content}",
                r.content
            )),
            Some(_) => None,
        };
        match (problem, release) {
            (None, Some(release)) => Ok(release),
            (problem, release) => Err(self.fail(
                problem.unwrap_or_default(),
                "lock-mismatch",
                json!({
                    "locked": locked,
                    "served": release.map(|r| json!({
                        "version": r.version.to_string(),
                        "content": r.content.to_string(),
                        "recordId": r.record_id.to_string(),
                    })),
                    "checkpoint": self.trusted.checkpoint.as_ref().map(SignedCheckpointJson::from),
                }),
            )),
        }
    }

    /// The content with `digest`, downloaded once into the cache and checked
    /// against the digest every time it is used. `record` names the record
    /// that released it (for the evidence). The download goes to a
    /// temporary file beside its place, removed on any failure and renamed
    /// into place only once the digest is checked; it stops as soon as
    /// more bytes come than the content source said or than
    /// [`Limits::max_download_bytes`].
    pub fn content(&self, digest: &Hash, record: &RecordId) -> Result<PathBuf> {
        let hex = digest.to_string();
        let hex = hex
            .split_once(':')
            .map(|(_, h)| h)
            .unwrap_or(&hex)
            .to_owned();
        let dir = self.cache_dir.join("sha256");
        if !self.swept.swap(true, Ordering::Relaxed) {
            sweep_partials(&dir, SystemTime::now());
        }
        let path = dir.join(&hex);
        if path.exists() {
            if hash_file(&path)? == *digest {
                return Ok(path);
            }
            // Damaged cache: fetch again.
            let _ = std::fs::remove_file(&path);
        }
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let (url, expected) = self.api.content_source(digest)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(PARTIAL_PREFIX);
        // The mode `File::create` gives (the umask decides; tempfile's own
        // is 0600): `cairn download` copies it to its output.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        // Removed when dropped: on every failure below.
        let mut tmp = builder.tempfile_in(&dir).map_err(Error::io(&dir))?;
        let (got, size) =
            self.api
                .download(&url, tmp.as_file_mut(), self.progress.as_ref(), expected)?;
        if got != *digest {
            return Err(self.fail(
                format!(
                    "served {size} bytes with digest {got} for content {digest} (released by record {record})"
                ),
                "wrong-content",
                json!({
                    "url": url,
                    "recordId": record.to_string(),
                    "expectedDigest": digest.to_string(),
                    "servedDigest": got.to_string(),
                    "servedSize": size,
                }),
            ));
        }
        tmp.as_file().sync_all().map_err(Error::io(tmp.path()))?;
        tmp.persist(&path).map_err(|e| Error::io(&path)(e.error))?;
        Ok(path)
    }

    /// Signs `entries` as the next record of `name`'s log with `key`,
    /// publishes it, uploads `content` if the registry asks for it, and
    /// waits until a verified checkpoint contains it.
    pub fn submit(
        &mut self,
        name: &PackageName,
        key: &PrivateKey,
        entries: Vec<PackageEntry>,
        content: Option<(&Hash, &Path)>,
    ) -> Result<Published> {
        let log = self.trusted.package(name)?.cloned();
        let state = log.as_ref().map(|l| l.state.clone()).unwrap_or_default();
        let envelope = Envelope::sign(key, state.next_record(now(), entries));
        state
            .validate(&envelope)
            .map_err(|e| Error::Usage(explain_rule(name, &state, key, &e)))?;
        let record_id = envelope.record_id();
        let log_id = LogId::package(name);
        let mut answer = self.api.publish(name, &envelope)?;
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut uploaded = false;
        let mut pause = Duration::from_millis(10);
        let index = loop {
            match &answer.state {
                PackageRecordState::Published { registry_index } => break *registry_index,
                PackageRecordState::Rejected { reason } => {
                    return Err(Error::Usage(format!(
                        "the registry rejected record {record_id}: {reason}"
                    )))
                }
                PackageRecordState::Sourcing { .. } if !uploaded => {
                    let missing = answer.missing_content().map_err(|e| {
                        crate::api::malformed(self.api.base(), format!("record {record_id}: {e}"))
                    })?;
                    for (digest, url) in missing {
                        let Some((_, path)) = content.filter(|(d, _)| **d == digest) else {
                            return Err(Error::Usage(format!(
                                "the registry asks for content {digest}, which this record does not release"
                            )));
                        };
                        let size = std::fs::metadata(path).map_err(Error::io(path))?.len();
                        self.api.upload(url, path, size, &self.progress)?;
                    }
                    uploaded = true;
                }
                _ => {
                    if Instant::now() > deadline {
                        return Err(Error::Usage(format!(
                            "record {record_id} was accepted but not published within {}s; \
                             check later with `cairn info {name}`",
                            PUBLISH_WAIT.as_secs()
                        )));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
            }
            answer = self.api.record_status(&log_id, &record_id)?;
        };
        self.update(std::slice::from_ref(name), false)?;
        let Some(log) = self.trusted.package(name)?.cloned() else {
            return Err(self.not_found(name));
        };
        let holds = log
            .records
            .iter()
            .zip(&log.envelopes)
            .any(|(r, e)| r.registry_index == index && e.record_id() == record_id);
        if !holds {
            let cp = self
                .trusted
                .checkpoint
                .as_ref()
                .map(SignedCheckpointJson::from);
            return Err(self.fail(
                format!("said record {record_id} is published at index {index}, but its log does not hold it there"),
                "missing-record",
                json!({ "recordId": record_id.to_string(), "registryIndex": index, "checkpoint": cp }),
            ));
        }
        let checkpoint = self
            .trusted
            .checkpoint
            .clone()
            .ok_or_else(|| Error::Usage("no checkpoint after publishing".into()))?;
        Ok(Published {
            record_id,
            index,
            checkpoint,
            content: content.map(|(digest, _)| *digest),
        })
    }

    /// Releases `version` of `name` with the content at `file` (initialising
    /// the log on first publish).
    pub fn publish(
        &mut self,
        name: &PackageName,
        version: Version,
        file: &Path,
        key: &PrivateKey,
    ) -> Result<Published> {
        let digest = hash_file(file)?;
        self.update(std::slice::from_ref(name), false)?;
        let exists = self.trusted.package(name)?.is_some();
        if !exists && self.trusted.operator.namespace(name.namespace()).is_none() {
            return Err(Error::Usage(format!(
                "namespace `{}` is not defined on {}; ask its operator to define it \
                 (`cairn namespace define {}`), or map the namespace to its registry: \
                 `cairn config --namespace-registry {}=<URL>`",
                name.namespace(),
                self.api.base(),
                name.namespace(),
                name.namespace()
            )));
        }
        let mut entries = Vec::new();
        if !exists {
            entries.push(PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            });
        }
        entries.push(PackageEntry::Release {
            version,
            content: digest,
        });
        self.submit(name, key, entries, Some((&digest, file)))
    }

    /// Re-verifies everything trusted about this registry: a consistency
    /// proof from the trusted checkpoint to the latest, every stored log
    /// validated again with signatures, and every known record proven
    /// included in the latest checkpoint.
    pub fn verify_all(&mut self) -> Result<VerifyReport> {
        let previous = self.trusted.checkpoint.clone();
        let names = self.trusted.known_packages()?;
        self.update(&names, true)?;
        let cp = self
            .trusted
            .checkpoint
            .clone()
            .ok_or_else(|| Error::Usage("the registry has no checkpoint".into()))?;
        let cp_json = SignedCheckpointJson::from(&cp);
        // The operator log was validated, signatures too, when this client
        // loaded it and as it grew; here each record is proven.
        let mut inclusions = Vec::new();
        if let Some(head) = self.trusted.operator.head().map(|h| h.record_id) {
            for record in &self.trusted.operator_records {
                let envelope: Envelope<OperatorRecord> = record.envelope().map_err(|e| {
                    self.fail(
                        e.to_string(),
                        "operator-record",
                        json!({ "record": record }),
                    )
                })?;
                inclusions.push(Inclusion {
                    index: record.registry_index,
                    log_id: LogId::operator(),
                    record_id: envelope.record_id(),
                    head,
                });
            }
        }
        for name in &names {
            let Some(log) = self.trusted.package(name)?.cloned() else {
                continue;
            };
            let again = self.extend(PackageLog::empty(name), log.records.clone(), &cp_json)?;
            let Some(head) = again.state.head().map(|h| h.record_id) else {
                continue;
            };
            for (record, envelope) in log.records.iter().zip(&log.envelopes) {
                inclusions.push(Inclusion {
                    index: record.registry_index,
                    log_id: LogId::package(name),
                    record_id: envelope.record_id(),
                    head,
                });
            }
        }
        self.prove(&cp, &cp_json, &inclusions)?;
        Ok(VerifyReport {
            checkpoint: cp,
            previous,
            packages: names.len(),
            records: inclusions.len(),
        })
    }
}

/// The SHA-256 of a file's bytes.
pub fn hash_file(path: &Path) -> Result<Hash> {
    use crate::api::CopyError;
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    crate::api::copy_hashing(file, &mut std::io::sink(), &crate::api::NoProgress, None)
        .map(|(digest, _)| digest)
        .map_err(|e| match e {
            CopyError::Read(e) | CopyError::Write(e) => Error::io(path)(e),
            CopyError::TooLarge => Error::io(path)(std::io::ErrorKind::FileTooLarge.into()),
        })
}

/// Removes the temporary files of downloads a killed process left in
/// `dir` (this client's, and the `.*.part` of earlier versions) once they
/// are older than [`STALE_PARTIAL`]. Best effort: a file that cannot be
/// looked at or removed stays.
fn sweep_partials(dir: &Path, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let partial =
            name.starts_with(PARTIAL_PREFIX) || (name.starts_with('.') && name.ends_with(".part"));
        let stale = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_PARTIAL)
        };
        if partial && stale() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A validation error of the user's own record, with what to do about it.
fn explain_rule(
    name: &PackageName,
    state: &PackageState,
    key: &PrivateKey,
    error: &cairn_protocol::ValidationError,
) -> String {
    use cairn_protocol::{AnyPermission, Rule};
    let key_id = key.public_key().id();
    match &error.rule {
        Rule::MissingPermission {
            permission: AnyPermission::Package(permission),
            ..
        } => {
            let holders: Vec<String> = state
                .authorities()
                .keys()
                .filter(|k| state.authorities().holds(&k.id(), *permission))
                .map(|k| k.id().to_string())
                .collect();
            format!(
                "key {key_id} may not {permission} in `{name}`; keys holding `{permission}`: {}. \
                 Ask a holder to run `cairn grant {name} --key {} --permission {permission}`, \
                 or sign with a key that holds it (`--key-name`)",
                if holders.is_empty() { "none".into() } else { holders.join(", ") },
                key.public_key()
            )
        }
        Rule::UnknownKey { .. } => format!(
            "key {key_id} holds no permission in `{name}`; ask an owner to run \
             `cairn grant {name} --key {} --permission release`",
            key.public_key()
        ),
        Rule::VersionAlreadyReleased { version } => format!(
            "`{name}` {version} is already released, and versions are immutable; publish a new version"
        ),
        Rule::YankOfUnreleased { version } => {
            format!("`{name}` has no release {version} to yank; run `cairn info {name}`")
        }
        Rule::YankOfYanked { version } => format!("`{name}` {version} is already yanked"),
        _ => format!("this record would break the rules of `{name}`'s log: {error}"),
    }
}
