//! `cairn.lock`: for each package, the release a resolution picked and the
//! record that released it, so the same bytes come back later and a
//! registry that rewrote its history is caught.
//!
//! ```toml
//! version = 1
//!
//! [[package]]
//! name = "acme:hello"
//! registry = "https://registry.example"
//! requirement = "^1"
//! version = "1.2.0"
//! content = "sha256:…"
//! record = "sha256:…"
//! ```

use std::path::Path;

use cairn_protocol::{Hash, PackageName, RecordId, Version};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lock file format version this crate writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// The default lock file name.
pub const LOCK_FILE: &str = "cairn.lock";

/// One locked package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locked {
    /// The package.
    pub name: String,
    /// The registry it was resolved on.
    pub registry: String,
    /// What was asked for (a version or a requirement).
    pub requirement: String,
    /// The version picked.
    pub version: String,
    /// The content digest of the release.
    pub content: String,
    /// The record that released it.
    pub record: String,
}

impl Locked {
    /// The package name, parsed.
    pub fn package(&self) -> Result<PackageName> {
        self.name.parse().map_err(|e| bad(&self.name, "name", e))
    }

    /// The version, parsed.
    pub fn version(&self) -> Result<Version> {
        self.version
            .parse()
            .map_err(|e| bad(&self.name, "version", e))
    }

    /// The content digest, parsed.
    pub fn content(&self) -> Result<Hash> {
        self.content
            .parse()
            .map_err(|e| bad(&self.name, "content", e))
    }

    /// The record id, parsed.
    pub fn record(&self) -> Result<RecordId> {
        self.record
            .parse()
            .map_err(|e| bad(&self.name, "record", e))
    }
}

fn bad(name: &str, field: &str, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!(
        "lock file entry `{name}`: invalid {field} ({e}); fix it or run `cairn lock` again"
    ))
}

/// A whole lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// The packages, sorted by name.
    #[serde(default, rename = "package")]
    pub packages: Vec<Locked>,
}

impl LockFile {
    /// Reads `path`; an absent file is an empty lock.
    pub fn load(path: &Path) -> Result<LockFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LockFile {
                    version: LOCK_VERSION,
                    packages: Vec::new(),
                })
            }
            Err(e) => return Err(Error::io(path)(e)),
        };
        let lock: LockFile = toml::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "{}: not a cairn lock file ({e}); fix it or delete it and run `cairn lock`",
                path.display()
            ))
        })?;
        if lock.version != LOCK_VERSION {
            return Err(Error::Usage(format!(
                "{}: lock file version {} is not supported (this cairn reads version {LOCK_VERSION})",
                path.display(),
                lock.version
            )));
        }
        Ok(lock)
    }

    /// Writes the lock to `path`, packages sorted by name.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.version = LOCK_VERSION;
        self.packages.sort_by(|a, b| a.name.cmp(&b.name));
        let text = toml::to_string(self).map_err(|e| Error::Usage(e.to_string()))?;
        let text =
            format!("# Written by `cairn lock`; `cairn get --locked` checks against it.\n{text}");
        crate::write_atomically(path, &text, false).map_err(Error::io(path))
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&Locked> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// Adds or replaces the entry for `locked.name`.
    pub fn put(&mut self, locked: Locked) {
        self.packages.retain(|p| p.name != locked.name);
        self.packages.push(locked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let mut lock = LockFile::load(&path).unwrap();
        assert!(lock.packages.is_empty());
        let digest = Hash::of(b"x").to_string();
        lock.put(Locked {
            name: "b:pkg".into(),
            registry: "http://127.0.0.1:1".into(),
            requirement: "^1".into(),
            version: "1.0.0".into(),
            content: digest.clone(),
            record: digest.clone(),
        });
        lock.put(Locked {
            name: "a:pkg".into(),
            registry: "http://127.0.0.1:1".into(),
            requirement: "1.0.0".into(),
            version: "1.0.0".into(),
            content: digest.clone(),
            record: digest,
        });
        lock.save(&path).unwrap();
        let again = LockFile::load(&path).unwrap();
        assert_eq!(again.packages[0].name, "a:pkg");
        assert_eq!(again, lock);
        std::fs::write(&path, "version = 9\n").unwrap();
        let e = LockFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("version 9 is not supported"), "{e}");
        std::fs::write(&path, "nonsense = [").unwrap();
        let e = LockFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("not a cairn lock file"), "{e}");
    }
}
