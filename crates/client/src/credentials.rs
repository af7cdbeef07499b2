//! API tokens per registry URL, in a file of mode 0600 (what `cairn login`
//! writes), or one token from the environment (`CAIRN_TOKEN`, read by the
//! caller and passed in).

use std::path::Path;

use thiserror::Error;

use crate::secret_file::{self, SecretFileError};

/// Why a token could not be stored or found.
#[derive(Debug, Error)]
pub enum CredentialError {
    /// The credentials file could not be read or written.
    #[error(transparent)]
    File(#[from] SecretFileError),
    /// An empty token, or one with spaces or control characters.
    #[error("the token is empty or contains whitespace: pass exactly the token `cairn token create` printed")]
    BadToken,
}

fn check(token: &str) -> Result<&str, CredentialError> {
    let token = token.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CredentialError::BadToken);
    }
    Ok(token)
}

/// Stores `token` for `registry` (a checked URL) in `file`.
pub fn store(file: &Path, registry: &str, token: &str) -> Result<(), CredentialError> {
    let token = check(token)?;
    let mut entries = secret_file::load(file)?;
    entries.insert(registry.to_owned(), token.to_owned());
    Ok(secret_file::save(file, &entries)?)
}

/// Removes the token of `registry`; whether there was one.
pub fn forget(file: &Path, registry: &str) -> Result<bool, CredentialError> {
    let mut entries = secret_file::load(file)?;
    let removed = entries.remove(registry).is_some();
    if removed {
        secret_file::save(file, &entries)?;
    }
    Ok(removed)
}

/// The token to send to `registry`: `env` (the text of `CAIRN_TOKEN`) when
/// set, else the stored one, else none.
pub fn token_for(
    env: Option<&str>,
    file: &Path,
    registry: &str,
) -> Result<Option<String>, CredentialError> {
    if let Some(token) = env.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(check(token)?.to_owned()));
    }
    Ok(secret_file::load(file)?.remove(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_per_registry() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("credentials.toml");
        assert_eq!(token_for(None, &file, "http://a").expect("none"), None);
        store(&file, "http://a", " cairn_abc\n").expect("store");
        store(&file, "https://b", "cairn_def").expect("store");
        assert_eq!(
            token_for(None, &file, "http://a").expect("a").as_deref(),
            Some("cairn_abc")
        );
        assert_eq!(
            token_for(Some("cairn_env"), &file, "http://a")
                .expect("env")
                .as_deref(),
            Some("cairn_env")
        );
        assert!(matches!(
            store(&file, "http://a", "two words"),
            Err(CredentialError::BadToken)
        ));
        assert!(forget(&file, "http://a").expect("forget"));
        assert!(!forget(&file, "http://a").expect("gone"));
        assert_eq!(token_for(None, &file, "http://a").expect("none"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
