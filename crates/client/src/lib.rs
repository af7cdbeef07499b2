//! Cairn's client library: where the client's configuration and signing
//! keys live and how they are read, with no prompts and no desktop keyring.
//! Every path is given by the caller ([`Paths`]), so nothing here reads the
//! environment on its own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod credentials;
pub mod keys;
pub mod secret_file;

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
}

impl Paths {
    /// The default locations under the XDG base directories:
    /// `config.toml`, `keys.toml` and `credentials.toml` in `<config home>/cairn/`,
    /// where the config home is `$XDG_CONFIG_HOME` or `$HOME/.config`.
    /// `None` when neither variable is set.
    pub fn xdg(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<Paths> {
        let base = xdg_config_home
            .filter(|p| p.is_absolute())
            .or_else(|| home.map(|h| h.join(".config")))?
            .join("cairn");
        Some(Paths {
            config: base.join("config.toml"),
            keys: base.join("keys.toml"),
            credentials: base.join("credentials.toml"),
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
    let tmp = path.with_extension("tmp");
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
