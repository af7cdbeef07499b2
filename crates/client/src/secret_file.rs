//! Small TOML files of secrets (`name = "text"`): written with mode 0600
//! from their creation, refused when others can read them.

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

/// Why a secrets file could not be read or written.
#[derive(Debug, Error)]
pub enum SecretFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is malformed.
    #[error("{path} is not valid TOML of `name = \"text\"` lines: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file can be read by others.
    #[error("{path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`")]
    Exposed {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
}

/// Reads `path`; a missing file is empty.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, SecretFileError> {
    let shown = path.display().to_string();
    let io = |source| SecretFileError::Io {
        path: shown.clone(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Exposed { path: shown, mode });
        }
    }
    toml::from_str(&text).map_err(|e| SecretFileError::Invalid {
        path: shown,
        message: e.message().to_owned(),
    })
}

/// Writes `entries` to `path` with mode 0600.
pub fn save(path: &Path, entries: &BTreeMap<String, String>) -> Result<(), SecretFileError> {
    let text = toml::to_string(entries).map_err(|e| SecretFileError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    crate::write_atomically(path, &text, true).map_err(|source| SecretFileError::Io {
        path: path.display().to_string(),
        source,
    })
}
