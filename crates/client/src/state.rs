//! What the client trusts about one registry, kept on disk between runs:
//! the last verified checkpoint, the operator log, and every package log it
//! has verified, each as the signed records the registry served.
//!
//! Layout under the state directory:
//!
//! ```text
//! registries/<registry>/registry.json        checkpoint and operator log
//! registries/<registry>/packages/<log>.json  one package log each
//! registries/<registry>/evidence/*.json      what a lying registry served
//! ```
//!
//! Only this module writes these files, and only after verification, so
//! package logs are restored without checking their signatures again
//! (`cairn verify` does check them again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_api::{PublishedRecord, SignedCheckpointJson};
use cairn_protocol::operator::{OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageRecord, PackageState};
use cairn_protocol::{Envelope, LogId, PackageName, SignedCheckpoint};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A verified package log.
#[derive(Clone, Debug)]
pub struct PackageLog {
    /// The package.
    pub name: PackageName,
    /// Its records in order, as served.
    pub records: Vec<PublishedRecord>,
    /// The envelopes of `records`.
    pub envelopes: Vec<Envelope<PackageRecord>>,
    /// The validated state.
    pub state: PackageState,
    /// The checkpoint length at which its latest record was last proven
    /// to be the log's head.
    pub checked_at: u64,
}

impl PackageLog {
    /// A log with no records yet.
    pub fn empty(name: &PackageName) -> PackageLog {
        PackageLog {
            name: name.clone(),
            records: Vec::new(),
            envelopes: Vec::new(),
            state: PackageState::new(),
            checked_at: 0,
        }
    }

    /// The registry index of the latest record.
    pub fn last_index(&self) -> Option<u64> {
        self.records.last().map(|r| r.registry_index)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryFile {
    registry: String,
    checkpoint: Option<SignedCheckpointJson>,
    operator: Vec<PublishedRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageFile {
    name: String,
    checked_at: u64,
    records: Vec<PublishedRecord>,
}

/// The trusted state of one registry.
pub struct Trusted {
    dir: PathBuf,
    registry: String,
    /// The last verified checkpoint.
    pub checkpoint: Option<SignedCheckpoint>,
    /// The operator log's records.
    pub operator_records: Vec<PublishedRecord>,
    /// The operator log's state.
    pub operator: OperatorState,
    packages: BTreeMap<LogId, PackageLog>,
}

/// The directory name for a registry URL: its scheme, host, port and path
/// with anything but letters, digits, `.` and `-` replaced by `_`.
pub fn registry_dir_name(registry: &str) -> String {
    registry
        .trim_end_matches('/')
        .replace("://", "_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn corrupt(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "{}: the trusted state is damaged ({why}); move the file away to start over \
         (the next command re-fetches and re-verifies it)",
        path.display()
    ))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| corrupt(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path)(e)),
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| Error::Usage(e.to_string()))?;
    crate::write_atomically(path, &text, false).map_err(Error::io(path))
}

/// What [`Trusted::forget`] dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forgotten {
    /// The directory removed.
    pub dir: PathBuf,
    /// The log length of the checkpoint that was trusted, if any.
    pub log_length: Option<u64>,
    /// How many package logs were kept.
    pub packages: usize,
}

impl Trusted {
    /// What is trusted about `registry` in `state_dir`, without changing
    /// it; `None` if nothing is.
    pub fn describe(state_dir: &Path, registry: &str) -> Result<Option<Forgotten>> {
        let dir = state_dir
            .join("registries")
            .join(registry_dir_name(registry));
        if !dir.exists() {
            return Ok(None);
        }
        let file: Option<RegistryFile> = read_json(&dir.join("registry.json")).unwrap_or(None);
        let log_length = file
            .and_then(|f| f.checkpoint)
            .and_then(|c| c.parse().ok())
            .map(|c| c.contents.checkpoint.log_length);
        let packages = std::fs::read_dir(dir.join("packages")).map_or(0, |d| d.count());
        Ok(Some(Forgotten {
            dir,
            log_length,
            packages,
        }))
    }

    /// Drops everything trusted about `registry` (its checkpoint and the
    /// logs verified against it), so that the next command starts over as
    /// a new user would. For a development registry that was wiped on
    /// purpose; a registry that went back otherwise is evidence, not a
    /// nuisance. Returns what was dropped; `None` if nothing was trusted.
    pub fn forget(state_dir: &Path, registry: &str) -> Result<Option<Forgotten>> {
        let Some(forgotten) = Trusted::describe(state_dir, registry)? else {
            return Ok(None);
        };
        std::fs::remove_dir_all(&forgotten.dir).map_err(Error::io(&forgotten.dir))?;
        Ok(Some(forgotten))
    }

    /// Loads the state of `registry` from `state_dir` (empty if none yet).
    pub fn load(state_dir: &Path, registry: &str) -> Result<Trusted> {
        let dir = state_dir
            .join("registries")
            .join(registry_dir_name(registry));
        let path = dir.join("registry.json");
        let file: Option<RegistryFile> = read_json(&path)?;
        let mut trusted = Trusted {
            dir,
            registry: registry.to_owned(),
            checkpoint: None,
            operator_records: Vec::new(),
            operator: OperatorState::new(),
            packages: BTreeMap::new(),
        };
        let Some(file) = file else {
            return Ok(trusted);
        };
        trusted.checkpoint = file
            .checkpoint
            .map(|c| c.parse())
            .transpose()
            .map_err(|e| corrupt(&path, e))?;
        for record in &file.operator {
            let envelope: Envelope<OperatorRecord> =
                record.envelope().map_err(|e| corrupt(&path, e))?;
            trusted
                .operator
                .apply(&envelope)
                .map_err(|e| corrupt(&path, e))?;
        }
        trusted.operator_records = file.operator;
        Ok(trusted)
    }

    fn package_path(&self, log_id: &LogId) -> PathBuf {
        let hex = log_id.to_string();
        let hex = hex
            .split_once(':')
            .map(|(_, h)| h)
            .unwrap_or(&hex)
            .to_owned();
        self.dir.join("packages").join(format!("{hex}.json"))
    }

    /// Reads the package log file at `path` (`None` if absent) and keeps
    /// it in memory.
    fn load_package(&mut self, path: &Path) -> Result<Option<&PackageLog>> {
        let Some(file) = read_json::<PackageFile>(path)? else {
            return Ok(None);
        };
        let name: PackageName = file.name.parse().map_err(|e| corrupt(path, e))?;
        let log_id = LogId::package(&name);
        if self.package_path(&log_id) != path {
            return Err(corrupt(path, format!("it holds `{name}`")));
        }
        let envelopes = file
            .records
            .iter()
            .map(PublishedRecord::envelope)
            .collect::<Result<Vec<Envelope<PackageRecord>>, _>>()
            .map_err(|e| corrupt(path, e))?;
        let state = PackageState::restore_trusted(&envelopes).map_err(|e| corrupt(path, e))?;
        let log = PackageLog {
            name,
            records: file.records,
            envelopes,
            state,
            checked_at: file.checked_at,
        };
        Ok(Some(self.packages.entry(log_id).or_insert(log)))
    }

    /// The verified log of `name`, loaded from disk on first use; `None` if
    /// the client has never verified it.
    pub fn package(&mut self, name: &PackageName) -> Result<Option<&PackageLog>> {
        let log_id = LogId::package(name);
        if !self.packages.contains_key(&log_id) {
            let path = self.package_path(&log_id);
            return self.load_package(&path);
        }
        Ok(self.packages.get(&log_id))
    }

    /// Every package whose log was ever verified, by name (each loaded).
    pub fn known_packages(&mut self) -> Result<Vec<PackageName>> {
        let dir = self.dir.join("packages");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let path = entry.map_err(Error::io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(log) = self.load_package(&path)? {
                    names.push(log.name.clone());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Replaces the log of a package with a newly verified one and writes it.
    pub fn store_package(&mut self, log: PackageLog) -> Result<()> {
        let log_id = LogId::package(&log.name);
        write_json(
            &self.package_path(&log_id),
            &PackageFile {
                name: log.name.to_string(),
                checked_at: log.checked_at,
                records: log.records.clone(),
            },
        )?;
        self.packages.insert(log_id, log);
        Ok(())
    }

    /// Writes the checkpoint and operator log.
    pub fn store_registry(&self) -> Result<()> {
        write_json(
            &self.dir.join("registry.json"),
            &RegistryFile {
                registry: self.registry.clone(),
                checkpoint: self.checkpoint.as_ref().map(SignedCheckpointJson::from),
                operator: self.operator_records.clone(),
            },
        )
    }

    /// Keeps what a registry was caught serving, and says where.
    pub fn keep_evidence(&self, kind: &str, evidence: &serde_json::Value) -> Option<PathBuf> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let path = self.dir.join("evidence").join(format!("{now}-{kind}.json"));
        let text = serde_json::to_string_pretty(evidence).ok()?;
        crate::write_atomically(&path, &text, false).ok()?;
        Some(path)
    }
}
