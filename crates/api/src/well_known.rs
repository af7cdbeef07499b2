//! `GET /.well-known/wasm-pkg/registry.json`: the discovery document in the
//! layout wkg 0.16 reads. It has no flat `wargUrl` key (that key breaks wkg
//! 0.16); the reference `warg-api` 0.10 `WellKnownConfig` reads it as a
//! document with none of its fields set.

use serde::{Deserialize, Serialize};

/// The discovery document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryMetadata {
    /// The protocol clients should prefer (`oci`).
    pub preferred_protocol: String,
    /// Where the OCI face is.
    pub oci: OciMetadata,
    /// Where the Warg face is.
    pub warg: WargMetadata,
}

/// The OCI face of a registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciMetadata {
    /// The OCI registry's host (and port).
    pub registry: String,
    /// Prepended to `namespace/name` to form repository names.
    pub namespace_prefix: String,
}

/// The Warg face of a registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WargMetadata {
    /// The registry's URL.
    pub url: String,
}

impl RegistryMetadata {
    /// The document of a registry at `base` (`http(s)://host[:port]`),
    /// preferring OCI, with no namespace prefix.
    pub fn new(base: &str) -> RegistryMetadata {
        let host = base
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(base)
            .trim_end_matches('/')
            .to_owned();
        RegistryMetadata {
            preferred_protocol: "oci".to_owned(),
            oci: OciMetadata {
                registry: host,
                namespace_prefix: String::new(),
            },
            warg: WargMetadata {
                url: base.to_owned(),
            },
        }
    }
}
