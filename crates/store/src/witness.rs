//! A witness's state on disk: the latest cosigned size and root of each
//! log, and the evidence of checkpoints it refused as inconsistent.
//!
//! The state is one file (`state`: a line per log, `<origin> <size>
//! <base64 root>`), replaced whole through a temporary file, fsynced and
//! renamed, so a crash leaves the old state or the new one. Deciding and
//! saving happen under one lock ([`WitnessState::update`]), so two requests
//! never both pass the check against the same old size.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_registry::StoreError;
use cairn_transparency::note::{Signer, COSIGNATURE};
use cairn_transparency::witness::Witnessed;
use cairn_transparency::Hash;

use crate::datadir::private_options;

fn io(what: String, e: std::io::Error) -> StoreError {
    StoreError::io(what, &e)
}

/// What a witness holds, per log origin.
pub type Held = BTreeMap<String, Witnessed>;

/// A witness's directory: its key (`witness.key`), its state and its
/// evidence (`evidence/`).
pub struct WitnessState {
    dir: PathBuf,
    held: Mutex<Held>,
}

impl WitnessState {
    /// Opens (creating, mode 0700) the witness directory `dir`.
    pub fn open(dir: &Path) -> Result<WitnessState, StoreError> {
        std::fs::create_dir_all(dir.join("evidence"))
            .map_err(|e| io(format!("cannot create {}", dir.display()), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(format!("cannot make {} private", dir.display()), e))?;
        }
        let path = dir.join("state");
        let held = match std::fs::read_to_string(&path) {
            Ok(text) => parse_state(&text)
                .map_err(|why| StoreError::Corrupt(format!("{}: {why}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Held::new(),
            Err(e) => return Err(io(format!("cannot read {}", path.display()), e)),
        };
        Ok(WitnessState {
            dir: dir.to_owned(),
            held: Mutex::new(held),
        })
    }

    /// The witness's cosigning key named `name`: the key file's, else a new
    /// one written there (mode 0600).
    pub fn key(&self, name: &str) -> Result<Signer, StoreError> {
        let path = self.dir.join("witness.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = Signer::parse(&text).map_err(|e| {
                    StoreError::Corrupt(format!("witness key file {}: {e}", path.display()))
                })?;
                if key.verifier().name() != name {
                    return Err(StoreError::Backend(format!(
                        "the witness key in {} is named `{}`, not `{name}`",
                        path.display(),
                        key.verifier().name()
                    )));
                }
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                    .map_err(|_| StoreError::Backend("no randomness for a new key".into()))?;
                let key = Signer::from_seed(name, COSIGNATURE, seed).map_err(|e| {
                    StoreError::Backend(format!("cannot make a witness key named `{name}`: {e}"))
                })?;
                let mut file = private_options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io(format!("cannot create {}", path.display()), e))?;
                file.write_all(format!("{}\n", key.encode()).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io(format!("cannot write {}", path.display()), e))?;
                Ok(key)
            }
            Err(e) => Err(io(format!("cannot read {}", path.display()), e)),
        }
    }

    /// What is held for `origin`.
    pub fn held(&self, origin: &str) -> Option<Witnessed> {
        self.lock().get(origin).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `decide` on what is held, under the lock; if it returns a new
    /// state for an origin, saves it durably before returning (a failed
    /// save changes nothing).
    pub fn update<T, E: From<StoreError>>(
        &self,
        decide: impl FnOnce(&Held) -> Result<(Option<(String, Witnessed)>, T), E>,
    ) -> Result<T, E> {
        let mut held = self.lock();
        let (change, answer) = decide(&held)?;
        if let Some((origin, witnessed)) = change {
            let mut next = held.clone();
            next.insert(origin, witnessed);
            self.save(&next)?;
            *held = next;
        }
        Ok(answer)
    }

    fn save(&self, held: &Held) -> Result<(), StoreError> {
        let path = self.dir.join("state");
        let what = |e| io(format!("cannot save {}", path.display()), e);
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(what)?;
        let mut text = String::new();
        for (origin, w) in held {
            text.push_str(&format!(
                "{origin} {} {}\n",
                w.size,
                STANDARD.encode(w.root.as_bytes())
            ));
        }
        file.write_all(text.as_bytes()).map_err(what)?;
        file.as_file().sync_all().map_err(what)?;
        file.persist(&path).map_err(|e| what(e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(what)?;
        Ok(())
    }

    /// Keeps a refused request as evidence (the request, why, and what was
    /// held), in `evidence/<seconds>-<n>.txt`; its path.
    pub fn keep_evidence(
        &self,
        now: u64,
        why: &str,
        request: &[u8],
    ) -> Result<PathBuf, StoreError> {
        let held = self.lock().clone();
        let dir = self.dir.join("evidence");
        for n in 0.. {
            let path = dir.join(format!("{now}-{n}.txt"));
            let mut file = match private_options().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(format!("cannot create {}", path.display()), e)),
            };
            let mut text = format!("refused at {now}: {why}\nheld:\n");
            for (origin, w) in &held {
                text.push_str(&format!(
                    "{origin} {} {}\n",
                    w.size,
                    STANDARD.encode(w.root.as_bytes())
                ));
            }
            text.push_str("request:\n");
            file.write_all(text.as_bytes())
                .and_then(|()| file.write_all(request))
                .and_then(|()| file.sync_all())
                .map_err(|e| io(format!("cannot write {}", path.display()), e))?;
            return Ok(path);
        }
        Err(StoreError::Backend("no name for the evidence file".into()))
    }
}

fn parse_state(text: &str) -> Result<Held, String> {
    let mut held = Held::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split(' ');
        let (Some(origin), Some(size), Some(root), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("a line is not `<origin> <size> <root>`: {line}"));
        };
        let size = size
            .parse::<u64>()
            .map_err(|_| format!("a size is not a number: {line}"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| format!("a root is not 32 bytes of base64: {line}"))?;
        held.insert(
            origin.to_owned(),
            Witnessed {
                size,
                root: Hash::from_bytes(root),
            },
        );
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_reopen_and_a_failed_decision_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = WitnessState::open(dir.path()).expect("open");
        let key = state.key("example.com/w").expect("key");
        assert_eq!(
            state.key("example.com/w").expect("again").verifier(),
            key.verifier()
        );
        assert!(state.key("example.com/other").is_err());
        let w = Witnessed {
            size: 7,
            root: Hash::of(b"r"),
        };
        state
            .update(|_| Ok::<_, StoreError>((Some(("log/a".to_owned(), w)), ())))
            .expect("update");
        let refused: Result<(), StoreError> =
            state.update(|_| Err(StoreError::Backend("refused".into())));
        assert!(refused.is_err());
        drop(state);
        let state = WitnessState::open(dir.path()).expect("reopen");
        assert_eq!(state.held("log/a"), Some(w));
        let path = state
            .keep_evidence(5, "a fork", b"old 7\n")
            .expect("evidence");
        let text = std::fs::read_to_string(path).expect("read");
        assert!(text.contains("a fork") && text.contains("log/a 7") && text.ends_with("old 7\n"));
        std::fs::write(dir.path().join("state"), "log/a seven x\n").expect("damage");
        assert!(WitnessState::open(dir.path()).is_err());
    }
}
