//! Cairn's client library: where the client's configuration, signing keys
//! and tokens live (no prompts, no desktop keyring), and a registry client
//! that verifies every answer against what it trusts ([`Client`]).
//! Every path is given by the caller ([`Paths`]), so nothing here reads the
//! environment on its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
mod client;
pub mod config;
pub mod credentials;
mod error;
pub mod keys;
pub mod limits;
pub mod lock;
pub mod secret_file;
pub mod state;
pub mod verify;

pub use client::{hash_file, Client, NamespaceHome, Published, VerifyReport, Wanted};
pub use error::{Error, Result, Unreachable, VerificationFailure};
pub use limits::Limits;

use std::path::PathBuf;

/// The files the client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// The configuration file (TOML).
    pub config: PathBuf,
    /// The signing keys file (TOML, mode 0600).
    pub keys: PathBuf,
    /// API tokens per registry (TOML, mode 0600).
    pub credentials: PathBuf,
    /// Trusted registry state (checkpoints and logs).
    pub state: PathBuf,
    /// Downloaded content, by digest.
    pub cache: PathBuf,
}

impl Paths {
    /// The default locations under the XDG base directories, reading the
    /// variables through `env`: `config.toml`, `keys.toml` and
    /// `credentials.toml` in `$XDG_CONFIG_HOME/cairn/` (else
    /// `~/.config/cairn/`), trusted state in `$XDG_DATA_HOME/cairn/state/`
    /// (else `~/.local/share/cairn/state/`) and content in
    /// `$XDG_CACHE_HOME/cairn/content/` (else `~/.cache/cairn/content/`).
    /// `None` when HOME is unset and an XDG variable is missing.
    pub fn xdg(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<Paths> {
        let home = env("HOME").map(PathBuf::from);
        let base = |var: &str, fallback: &str| {
            env(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| home.as_ref().map(|h| h.join(fallback)))
                .map(|p| p.join("cairn"))
        };
        let config = base("XDG_CONFIG_HOME", ".config")?;
        Some(Paths {
            keys: config.join("keys.toml"),
            credentials: config.join("credentials.toml"),
            config: config.join("config.toml"),
            state: base("XDG_DATA_HOME", ".local/share")?.join("state"),
            cache: base("XDG_CACHE_HOME", ".cache")?.join("content"),
        })
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so a
/// reader never sees half a file; with `private`, the file has mode 0600
/// from its creation.
pub(crate) fn write_atomically(
    path: &std::path::Path,
    text: &str,
    private: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
