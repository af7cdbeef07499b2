//! Verified mirrors: `cairn mirror add URL --namespace acme` records, in
//! the data directory's `mirrors.toml`, that this registry keeps a copy of
//! another registry's namespace; `cairn serve` then follows the origin's
//! checkpoints with the verifying client (every record against its log's
//! rules, every log head proven in the checkpoint, every checkpoint proven
//! consistent with the last one, content checked against its digest) and
//! serves the packages on its OCI face. When the origin is down the copy
//! is served as it is, and `/cairn/v1/mirrors` says since when; when the
//! origin is caught answering inconsistently the mirror stops updating and
//! keeps the evidence. The namespace is imported from the origin in the
//! operator log, so Warg clients are sent to the origin, and verify
//! against its keys.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_client::api::NoProgress;
use cairn_client::config::check_url;
use cairn_client::Client;
use cairn_protocol::package::PackageState;
use cairn_protocol::release_proof::ReleaseRecord;
use cairn_protocol::{Hash, LogId, PackageName};
use cairn_registry::oci::{ForkSource, MirrorReport, Mirrored};
use cairn_registry::{ByteReader, Clock, StoreError, SystemClock};
use cairn_transparency::tlog_proof::TlogProof;
use serde::{Deserialize, Serialize};

/// The most packages remembered as absent from an origin.
const MAX_ABSENT: usize = 10_000;

/// The file, in the data directory, listing the mirrors.
pub const MIRRORS_FILE: &str = "mirrors.toml";

/// Whether content is fetched ahead or when asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ContentMode {
    /// Every release's content, as soon as its record is verified.
    All,
    /// Content when a client asks for it (pull-through).
    OnDemand,
}

/// One mirror, as `mirrors.toml` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// The origin registry's URL.
    pub origin: String,
    /// The namespace mirrored.
    pub namespace: String,
    /// Only the packages matching this (`*` matches any run of
    /// characters), e.g. `acme:http*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<String>,
    /// Content ahead or on demand.
    pub content: ContentMode,
    /// Seconds between looks at the origin.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

#[derive(Default, Serialize, Deserialize)]
struct MirrorsFile {
    #[serde(default)]
    mirror: Vec<MirrorSpec>,
}

/// The mirrors of a data directory.
pub fn load(data_dir: &Path) -> Result<Vec<MirrorSpec>> {
    let path = data_dir.join(MIRRORS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(toml::from_str::<MirrorsFile>(&text)
            .with_context(|| format!("{} is not a mirrors file", path.display()))?
            .mirror),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// `cairn mirror`.
#[derive(clap::Subcommand)]
pub enum MirrorCommand {
    /// Keep a verified copy of another registry's namespace and serve it
    /// (taken up when `cairn serve` starts).
    Add {
        /// The origin registry's URL.
        origin: String,
        /// The namespace to mirror.
        #[arg(long)]
        namespace: String,
        /// Only packages matching this pattern (`*` for any characters),
        /// e.g. `acme:http*`.
        #[arg(long, value_name = "PATTERN")]
        packages: Option<String>,
        /// Fetch every release's content ahead, or only when asked for.
        #[arg(long, value_enum, default_value_t = ContentMode::OnDemand)]
        content: ContentMode,
        /// Seconds between looks at the origin.
        #[arg(long, default_value_t = default_interval())]
        interval: u64,
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
    },
    /// List the mirrors of a data directory.
    List {
        /// The registry's data directory.
        #[arg(long, env = "CAIRN_DATA_DIR", default_value = "./cairn-data")]
        data_dir: PathBuf,
    },
}

/// Runs a `cairn mirror` command.
pub fn command(command: MirrorCommand) -> Result<()> {
    match command {
        MirrorCommand::Add {
            origin,
            namespace,
            packages,
            content,
            interval,
            data_dir,
        } => {
            let origin = check_url(&origin)?;
            if let Err(e) = cairn_protocol::validate_namespace(&namespace) {
                bail!("`{namespace}` is not a valid namespace: {e}");
            }
            if let Some(pattern) = &packages {
                if !pattern.starts_with(&format!("{namespace}:")) {
                    bail!("--packages `{pattern}` must start with `{namespace}:`");
                }
            }
            if interval == 0 || interval > 86_400 {
                bail!("--interval is 1 to 86,400 seconds");
            }
            if !data_dir.is_dir() {
                bail!(
                    "{} is not a registry's data directory: start `cairn serve --data-dir {}` once first",
                    data_dir.display(),
                    data_dir.display()
                );
            }
            let mut file = MirrorsFile {
                mirror: load(&data_dir)?,
            };
            if file.mirror.iter().any(|m| m.namespace == namespace) {
                bail!("namespace `{namespace}` is mirrored already (see {MIRRORS_FILE})");
            }
            file.mirror.push(MirrorSpec {
                origin: origin.clone(),
                namespace: namespace.clone(),
                packages,
                content,
                interval,
            });
            let path = data_dir.join(MIRRORS_FILE);
            let text = toml::to_string(&file).context("cannot write the mirrors file")?;
            let temporary = data_dir.join(format!(".{MIRRORS_FILE}.tmp"));
            std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "namespace `{namespace}` of {origin} is mirrored into {} from the next start of \
                 `cairn serve`",
                data_dir.display()
            );
            Ok(())
        }
        MirrorCommand::List { data_dir } => {
            for m in load(&data_dir)? {
                println!(
                    "{} {} packages={} content={:?} every {} s",
                    m.namespace,
                    m.origin,
                    m.packages.as_deref().unwrap_or("*"),
                    m.content,
                    m.interval
                );
            }
            Ok(())
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters.
fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// One mirror at work.
struct Running {
    spec: MirrorSpec,
    client: Mutex<Client>,
    cache: PathBuf,
    state: Mutex<State>,
    /// Where its progress is kept across restarts.
    progress_file: PathBuf,
}

/// A mirror's progress, kept across restarts: the origin's ledger read up
/// to, and the packages held (all verified in the client's state).
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Progress {
    replayed_to: u64,
    names: Vec<String>,
    /// Packages forked into this registry, no longer followed.
    #[serde(default)]
    forked: Vec<String>,
}

#[derive(Default)]
struct State {
    names: BTreeSet<PackageName>,
    /// The packages held, by log id (Warg clients ask by id).
    ids: std::collections::HashMap<LogId, PackageName>,
    /// Packages forked into this registry: no longer followed.
    forked: BTreeSet<PackageName>,
    /// Packages asked for that the origin does not have, and when.
    absent: std::collections::HashMap<PackageName, u64>,
    /// Content the origin took down (in the namespace mirrored): what, and
    /// why.
    taken_down: std::collections::HashMap<Hash, (String, String)>,
    replayed_to: u64,
    report: MirrorReport,
}

impl State {
    fn hold(&mut self, name: PackageName) {
        self.ids.insert(LogId::package(&name), name.clone());
        self.names.insert(name);
    }
}

impl Running {
    fn wants(&self, name: &PackageName) -> bool {
        name.namespace() == self.spec.namespace
            && self
                .spec
                .packages
                .as_deref()
                .is_none_or(|p| matches(p, name.as_str()))
            && !self.lock_state().forked.contains(name)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One look at the origin: new records of the packages mirrored (and
    /// new packages), verified; content fetched ahead if asked.
    fn sync(&self) {
        if self.lock_state().report.stopped.is_some() {
            return;
        }
        let outcome = self.sync_once();
        let mut state = self.lock_state();
        match outcome {
            Ok(()) => {
                state.report.error = None;
                state.report.last_success = Some(SystemClock.now_seconds());
            }
            Err(e) if e.is_verification() => {
                tracing::error!(origin = %self.spec.origin, "mirror stopped: {e}");
                state.report.stopped = Some(e.to_string());
            }
            Err(e) => {
                tracing::warn!(origin = %self.spec.origin, "mirror not updated: {e}");
                state.report.error = Some(e.to_string());
            }
        }
    }

    fn sync_once(&self) -> cairn_client::Result<()> {
        // The client is locked a step at a time, so that reads of what is
        // held (the OCI face) wait at most for one step.
        // The checkpoint first: signed, consistent with the last one.
        self.lock_client().update(&[], false)?;
        // Then only the packages with records since the last look (from
        // the ledger): catching up costs what is new.
        let from = self.lock_state().replayed_to;
        let (found, to) = self.lock_client().packages_since(from)?;
        let changed: Vec<PackageName> = found.into_iter().filter(|n| self.wants(n)).collect();
        for chunk in changed.chunks(100) {
            self.lock_client().update(chunk, false)?;
        }
        // The origin's take-downs (its verified notice log) are followed.
        let notices = self.lock_client().notices()?;
        let taken_down: std::collections::HashMap<Hash, (String, String)> = notices
            .taken_down()
            .filter(|(scope, _)| self.wants(&scope.package))
            .flat_map(|(scope, down)| {
                down.content
                    .iter()
                    .map(move |d| (*d, (scope.to_string(), down.reason.clone())))
            })
            .collect();
        self.lock_state().taken_down = taken_down.clone();
        // No copy of what the origin took down is kept here either (a
        // restore there brings it back: fetched again when asked for).
        for digest in taken_down.keys() {
            let cached = self.cached(digest);
            if let Err(e) = std::fs::remove_file(&cached) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove {}: {e}", cached.display());
                }
            }
        }
        if self.spec.content == ContentMode::All {
            for name in &changed {
                let mut client = self.lock_client();
                let releases: Vec<(Hash, cairn_protocol::RecordId)> = client
                    .package(name)?
                    .map(|log| {
                        log.state
                            .releases()
                            .map(|r| (r.content, r.record_id))
                            .collect()
                    })
                    .unwrap_or_default();
                for (digest, record) in releases {
                    if !taken_down.contains_key(&digest) && !self.cached(&digest).exists() {
                        client.content(&digest, &record)?;
                    }
                }
            }
        }
        let checkpoint = self
            .lock_client()
            .checkpoint()
            .map(|cp| cp.contents.checkpoint.log_length);
        let mut state = self.lock_state();
        for name in changed {
            state.hold(name);
        }
        state.report.packages_held = state.names.len() as u64;
        state.replayed_to = to;
        state.report.checkpoint_length = checkpoint;
        drop(state);
        self.keep_progress();
        Ok(())
    }

    /// Keeps the progress so that a restart goes on from here (best
    /// effort: without it the ledger is read again from the start).
    fn keep_progress(&self) {
        let state = self.lock_state();
        let progress = Progress {
            replayed_to: state.replayed_to,
            names: state.names.iter().map(|n| n.to_string()).collect(),
            forked: state.forked.iter().map(|n| n.to_string()).collect(),
        };
        drop(state);
        if let Ok(text) = serde_json::to_vec(&progress) {
            let temporary = self.progress_file.with_extension("tmp");
            if let Err(e) = std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &self.progress_file))
            {
                tracing::warn!("cannot keep the mirror's progress: {e}");
            }
        }
    }

    /// Where verified content lies (the client's cache: a file appears
    /// there only once its digest was checked).
    fn cached(&self, digest: &Hash) -> PathBuf {
        let text = digest.to_string();
        let hex = text.split_once(':').map_or(text.as_str(), |(_, h)| h);
        self.cache.join("sha256").join(hex)
    }

    /// The verified state of `name`; a package not seen yet is asked of
    /// the origin (pull-through).
    fn package(&self, name: &PackageName) -> cairn_client::Result<Option<PackageState>> {
        let known = self.lock_state().names.contains(name);
        let stopped = self.lock_state().report.stopped.is_some();
        let now = SystemClock.now_seconds();
        // A package the origin did not have is not asked for again until
        // the next interval (at most MAX_ABSENT remembered).
        let absent = self
            .lock_state()
            .absent
            .get(name)
            .is_some_and(|at| now.saturating_sub(*at) < self.spec.interval.max(1));
        let mut client = self.lock_client();
        if !known && !stopped && !absent {
            match client.update(std::slice::from_ref(name), false) {
                Ok(()) => {}
                // The origin is down: nothing to show.
                Err(e) if !e.is_verification() => return Ok(None),
                Err(e) => return Err(e),
            }
            let held = client.package(name)?.is_some();
            let mut state = self.lock_state();
            if held {
                state.hold(name.clone());
            } else {
                if state.absent.len() >= MAX_ABSENT {
                    state.absent.clear();
                }
                state.absent.insert(name.clone(), now);
            }
        }
        Ok(client.package(name)?.map(|log| log.state.clone()))
    }

    /// The path of content `digest` of a mirrored release, fetched (and
    /// checked) first if it is not held.
    fn content(&self, digest: &Hash) -> cairn_client::Result<Option<PathBuf>> {
        let path = self.cached(digest);
        if path.exists() {
            return Ok(Some(path));
        }
        if self.lock_state().report.stopped.is_some() {
            return Ok(None);
        }
        let names: Vec<PackageName> = self.lock_state().names.iter().cloned().collect();
        let mut client = self.lock_client();
        let mut record = None;
        for name in &names {
            if let Some(log) = client.package(name)? {
                if let Some(r) = log.state.releases().find(|r| r.content == *digest) {
                    record = Some(r.record_id);
                    break;
                }
            }
        }
        let Some(record) = record else {
            return Ok(None);
        };
        Ok(Some(client.content(digest, &record)?))
    }
}

/// Every mirror of a registry.
pub struct Mirrors {
    running: Vec<Arc<Running>>,
}

fn store_error(e: cairn_client::Error) -> StoreError {
    StoreError::Backend(format!("the mirror: {e}"))
}

impl Mirrors {
    /// Opens the mirrors of `specs`, their state under `data_dir/mirrors`.
    pub fn open(data_dir: &Path, specs: Vec<MirrorSpec>) -> Result<Mirrors> {
        let root = data_dir.join("mirrors");
        let limits = cairn_client::Limits::from_env(|k| std::env::var_os(k))?;
        let mut running = Vec::new();
        for spec in specs {
            let origin = check_url(&spec.origin)?;
            let cache = root.join("content");
            let client = Client::open_with(
                &origin,
                None,
                &root.join("state"),
                &cache,
                Arc::new(NoProgress),
                limits.clone(),
            )
            .with_context(|| format!("cannot keep the mirror of {origin}"))?;
            let progress_file = root.join(format!("{}.progress.json", spec.namespace));
            let progress: Progress = std::fs::read(&progress_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            let names: BTreeSet<PackageName> = progress
                .names
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            let report = MirrorReport {
                origin: origin.clone(),
                namespace: spec.namespace.clone(),
                packages: spec.packages.clone(),
                content_all: spec.content == ContentMode::All,
                packages_held: names.len() as u64,
                ..MirrorReport::default()
            };
            running.push(Arc::new(Running {
                spec,
                client: Mutex::new(client),
                cache,
                state: Mutex::new(State {
                    report,
                    ids: names
                        .iter()
                        .map(|n| (LogId::package(n), n.clone()))
                        .collect(),
                    names,
                    forked: progress
                        .forked
                        .iter()
                        .filter_map(|n| n.parse().ok())
                        .collect(),
                    replayed_to: progress.replayed_to,
                    ..State::default()
                }),
                progress_file,
            }));
        }
        Ok(Mirrors { running })
    }

    /// The namespaces mirrored, with their origins.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        self.running
            .iter()
            .map(|r| (r.spec.namespace.clone(), r.spec.origin.clone()))
            .collect()
    }

    /// Starts a thread per mirror that looks at its origin every interval.
    pub fn start(&self) {
        for running in &self.running {
            let running = running.clone();
            std::thread::spawn(move || loop {
                running.sync();
                std::thread::sleep(Duration::from_secs(running.spec.interval.max(1)));
            });
        }
    }

    fn for_name(&self, name: &PackageName) -> Option<&Arc<Running>> {
        self.running.iter().find(|r| r.wants(name))
    }

    fn content_path(&self, digest: &Hash) -> Result<Option<PathBuf>, StoreError> {
        for running in &self.running {
            if let Some(path) = running.content(digest).map_err(store_error)? {
                return Ok(Some(path));
            }
        }
        Ok(None)
    }
}

impl Mirrored for Mirrors {
    fn name_of(&self, log_id: &LogId) -> Option<PackageName> {
        self.running
            .iter()
            .find_map(|r| r.lock_state().ids.get(log_id).cloned())
    }

    fn package(&self, name: &PackageName) -> Result<Option<PackageState>, StoreError> {
        match self.for_name(name) {
            Some(running) => running.package(name).map_err(store_error),
            None => Ok(None),
        }
    }

    fn content_size(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        match self.content_path(digest)? {
            Some(path) => Ok(Some(
                std::fs::metadata(&path)
                    .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?
                    .len(),
            )),
            None => Ok(None),
        }
    }

    fn read_content(
        &self,
        digest: &Hash,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError> {
        let Some(path) = self.content_path(digest)? else {
            return Ok(None);
        };
        let failed = |e: std::io::Error| StoreError::Backend(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(&path).map_err(failed)?;
        file.seek(SeekFrom::Start(start)).map_err(failed)?;
        Ok(Some(Box::new(file.take(len))))
    }

    fn release_proof(
        &self,
        name: &PackageName,
        version: &cairn_protocol::Version,
    ) -> Result<Option<String>, StoreError> {
        let Some(running) = self.for_name(name) else {
            return Ok(None);
        };
        let mut client = running.lock_client();
        let verified = client
            .package(name)
            .map_err(store_error)?
            .and_then(|log| log.state.release(version).map(|r| r.record_id));
        let Some(record_id) = verified else {
            return Ok(None);
        };
        // The origin down or without C2SP proofs: none for now.
        let Ok(bytes) = client.tlog_proof(name, version) else {
            return Ok(None);
        };
        // Served only if it proves the very record the mirror verified
        // (clients check the rest against the origin's keys).
        let proves = TlogProof::parse(&bytes).ok().and_then(|proof| {
            let release = ReleaseRecord::from_extra(proof.extra.as_deref()?).ok()?;
            Some(release.package == *name && release.envelope.record_id() == record_id)
        });
        if proves != Some(true) {
            tracing::warn!(origin = %running.spec.origin, "the origin's proof of {name}@{version} is not of the record verified");
            return Ok(None);
        }
        Ok(String::from_utf8(bytes).ok())
    }

    fn taken_down(&self, digest: &Hash) -> Option<(String, String)> {
        self.running
            .iter()
            .find_map(|r| r.lock_state().taken_down.get(digest).cloned())
    }

    fn fork_source(
        &self,
        namespace: &str,
        package: Option<&PackageName>,
    ) -> Result<Option<ForkSource>, StoreError> {
        let Some(running) = self.running.iter().find(|r| r.spec.namespace == namespace) else {
            return Ok(None);
        };
        if let Some(package) = package {
            if package.namespace() != namespace || !running.wants(package) {
                return Ok(None);
            }
            // Held, or fetched (and verified) now.
            if running.package(package).map_err(store_error)?.is_none() {
                return Ok(None);
            }
        }
        // Everything the mirror holds, brought up to the origin's latest
        // first when it answers.
        running.sync();
        if let Some(why) = running.lock_state().report.stopped.clone() {
            return Err(StoreError::Backend(format!(
                "the mirror of `{namespace}` stopped ({why}); a fork takes only a verified history"
            )));
        }
        let names: Vec<PackageName> = match package {
            Some(package) => vec![package.clone()],
            None => running.lock_state().names.iter().cloned().collect(),
        };
        let mut client = running.lock_client();
        let Some(checkpoint) = client.checkpoint().cloned() else {
            return Ok(None);
        };
        let mut packages = Vec::with_capacity(names.len());
        for name in names {
            if let Some(log) = client.package(&name).map_err(store_error)? {
                packages.push((name, log.envelopes.clone()));
            }
        }
        let c = &checkpoint.contents.checkpoint;
        Ok(Some(ForkSource {
            origin: running.spec.origin.clone(),
            log_length: c.log_length,
            log_root: c.log_root,
            packages,
        }))
    }

    fn stop(&self, namespace: &str, package: Option<&PackageName>) {
        for running in self
            .running
            .iter()
            .filter(|r| r.spec.namespace == namespace)
        {
            let mut state = running.lock_state();
            match package {
                // That package is this registry's now: no longer followed,
                // held or counted.
                Some(package) => {
                    state.forked.insert(package.clone());
                    state.names.remove(package);
                    state.ids.remove(&LogId::package(package));
                    state.report.packages_held = state.names.len() as u64;
                }
                None => state.report.stopped = Some("forked into this registry".into()),
            }
            drop(state);
            running.keep_progress();
        }
    }

    fn reports(&self) -> Vec<MirrorReport> {
        self.running
            .iter()
            .map(|r| r.lock_state().report.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_as_globs() {
        assert!(matches("acme:http*", "acme:http-client"));
        assert!(matches("acme:http*", "acme:http"));
        assert!(!matches("acme:http*", "acme:other"));
        assert!(matches("acme:*-x", "acme:a-x"));
        assert!(!matches("acme:*-x", "acme:a-y"));
        assert!(matches("acme:a*b*c", "acme:aXbYc"));
        assert!(matches("acme:exact", "acme:exact"));
        assert!(!matches("acme:exact", "acme:exactly"));
    }
}
