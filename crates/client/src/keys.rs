//! Signing keys in a file of mode 0600 (TOML, `name = "ecdsa-p256:..."`),
//! or one key from the environment (`CAIRN_SIGNING_KEY`, read by the
//! caller and passed in). No keyring, no prompt.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_protocol::PrivateKey;
use thiserror::Error;

use crate::secret_file::{self, SecretFileError};

/// The name of the key commands use when none is given.
pub const DEFAULT_KEY: &str = "default";

/// Why a key could not be found, read or stored.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The keys file could not be read or written.
    #[error(transparent)]
    File(#[from] SecretFileError),
    /// No key of that name.
    #[error(
        "there is no key `{0}`: make one with `cairn key new --name {0}`, or set CAIRN_SIGNING_KEY"
    )]
    Missing(String),
    /// A key of that name exists already.
    #[error("a key `{0}` exists already: choose another --name")]
    Exists(String),
    /// Key text that does not parse.
    #[error("invalid signing key{context}: {message}")]
    BadKey {
        /// Where it came from.
        context: String,
        /// Why it does not parse.
        message: String,
    },
}

/// The keys file.
#[derive(Debug, Default)]
pub struct KeyFile {
    keys: BTreeMap<String, PrivateKey>,
}

fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadKey {
            context: format!(" name `{name}`"),
            message: "key names are letters, digits, `-` and `_`".into(),
        })
    }
}

impl KeyFile {
    /// Reads `path`; a missing file has no keys. Refuses a file others
    /// can read.
    pub fn load(path: &Path) -> Result<KeyFile, KeyError> {
        let mut keys = BTreeMap::new();
        for (name, text) in secret_file::load(path)? {
            let key = PrivateKey::decode(&text).map_err(|e| KeyError::BadKey {
                context: format!(" `{name}` in {}", path.display()),
                message: e.to_string(),
            })?;
            keys.insert(name, key);
        }
        Ok(KeyFile { keys })
    }

    /// Writes the file with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let raw = self
            .keys
            .iter()
            .map(|(name, key)| (name.clone(), key.encode()))
            .collect();
        Ok(secret_file::save(path, &raw)?)
    }

    /// Adds a fresh key named `name`.
    pub fn generate(&mut self, name: &str) -> Result<&PrivateKey, KeyError> {
        check_name(name)?;
        if self.keys.contains_key(name) {
            return Err(KeyError::Exists(name.to_owned()));
        }
        Ok(self
            .keys
            .entry(name.to_owned())
            .or_insert_with(PrivateKey::generate))
    }

    /// The keys by name.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &PrivateKey)> {
        self.keys.iter().map(|(n, k)| (n.as_str(), k))
    }

    /// The key named `name`.
    pub fn get(&self, name: &str) -> Result<&PrivateKey, KeyError> {
        self.keys
            .get(name)
            .ok_or_else(|| KeyError::Missing(name.to_owned()))
    }
}

/// The signing key to use: `env` (the text of `CAIRN_SIGNING_KEY`) when set,
/// else `name` from the keys file.
pub fn signing_key(env: Option<&str>, file: &Path, name: &str) -> Result<PrivateKey, KeyError> {
    if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
        return PrivateKey::decode(text.trim()).map_err(|e| KeyError::BadKey {
            context: " in CAIRN_SIGNING_KEY".into(),
            message: e.to_string(),
        });
    }
    Ok(KeyFile::load(file)?.get(name)?.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_private_and_found_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cairn/keys.toml");
        let mut file = KeyFile::load(&path).expect("missing is empty");
        let public = file.generate("default").expect("new").public_key().clone();
        assert!(matches!(file.generate("default"), Err(KeyError::Exists(_))));
        assert!(file.generate("bad name").is_err());
        file.save(&path).expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let message = KeyFile::load(&path).expect_err("exposed").to_string();
            assert!(message.contains("chmod 600"), "{message}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let key = signing_key(None, &path, "default").expect("from file");
        assert_eq!(key.public_key(), &public);
        let message = signing_key(None, &path, "ci")
            .expect_err("missing")
            .to_string();
        assert!(message.contains("cairn key new --name ci"), "{message}");
        let other = PrivateKey::generate();
        let from_env = signing_key(Some(&other.encode()), &path, "default").expect("env");
        assert_eq!(from_env.public_key(), other.public_key());
        assert!(signing_key(Some("nope"), &path, "default").is_err());
    }
}
