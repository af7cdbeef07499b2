//! The client configuration: the default registry and per-namespace
//! registries (like wkg's `namespace_registries`), in a TOML file.
//!
//! ```toml
//! registry = "http://127.0.0.1:8090"
//! [namespace_registries]
//! wasi = "https://registry.example"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why the configuration could not be read or written.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("{path} is not a valid Cairn configuration: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A registry URL that is not `http://` or `https://`.
    #[error("`{0}` is not a registry URL: use http://host[:port] or https://host[:port]")]
    BadUrl(String),
    /// No registry is configured for a namespace.
    #[error(
        "no registry is configured for namespace `{0}`: set a default with \
         `cairn config --registry <url>` or map the namespace with \
         `cairn config --namespace-registry {0}=<url>`"
    )]
    NoRegistry(String),
}

/// The configuration file's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The default registry's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Registries for particular namespaces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_registries: BTreeMap<String, String>,
    /// A C2SP witness policy file: registries' checkpoints are trusted
    /// only when they extend one the policy's witnesses cosigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_policy: Option<PathBuf>,
}

/// Checks a registry URL and returns it without a trailing `/`.
pub fn check_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(trimmed.to_owned())
        }
        _ => Err(ConfigError::BadUrl(url.to_owned())),
    }
}

impl Config {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.message().to_owned(),
        })
    }

    /// Writes the configuration to `path`.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string(self).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::write_atomically(path, &text, false).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The registry serving `namespace`: its mapping, else the default.
    pub fn registry_for(&self, namespace: &str) -> Result<&str, ConfigError> {
        self.namespace_registries
            .get(namespace)
            .or(self.registry.as_ref())
            .map(String::as_str)
            .ok_or_else(|| ConfigError::NoRegistry(namespace.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_resolves_namespaces() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cairn/config.toml");
        assert_eq!(
            Config::load(&path).expect("missing is empty"),
            Config::default()
        );
        let mut config = Config {
            registry: Some(check_url("http://127.0.0.1:8090/").expect("url")),
            ..Config::default()
        };
        config
            .namespace_registries
            .insert("wasi".into(), "https://wasi.example".into());
        config.save(&path).expect("save");
        let loaded = Config::load(&path).expect("load");
        assert_eq!(loaded, config);
        assert_eq!(
            loaded.registry_for("wasi").expect("mapped"),
            "https://wasi.example"
        );
        assert_eq!(
            loaded.registry_for("acme").expect("default"),
            "http://127.0.0.1:8090"
        );
        let message = Config::default()
            .registry_for("acme")
            .expect_err("none")
            .to_string();
        assert!(message.contains("cairn config --registry"), "{message}");
    }

    #[test]
    fn bad_files_and_urls_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "registy = \"x\"\n").expect("write");
        let message = Config::load(&path).expect_err("unknown key").to_string();
        assert!(message.contains("registy"), "{message}");
        for bad in ["127.0.0.1:8090", "ftp://x", "http://", "http://a b"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
