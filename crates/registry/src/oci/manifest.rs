//! OCI manifests and indexes: parsing what clients push, and the artifact
//! Cairn builds for a release published through the Warg face.

use std::collections::BTreeMap;

use cairn_protocol::{PackageName, Timestamp, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::{Algorithm, Digest};

/// OCI image manifest.
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The config of a Wasm artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The layer of a Wasm artifact.
pub const WASM_LAYER: &str = "application/wasm";
/// The artifact type of a release's offline proof, a referrer of its
/// manifest.
pub const TLOG_PROOF_ARTIFACT: &str = "application/vnd.cairn.tlog-proof.v1";
/// The media type of the proof's one layer: a `c2sp.org/tlog-proof@v1` text.
pub const TLOG_PROOF_LAYER: &str = "application/vnd.cairn.tlog-proof.v1+text";
/// The empty config of an artifact with no config (`{}`).
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// Largest manifest accepted, in bytes (the distribution spec's suggestion).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type, for descriptors of manifests.
    pub artifact_type: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Whether a manifest lists blobs or other manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest: a config and layers (blobs).
    Image,
    /// An index: other manifests.
    Index,
}

/// A parsed manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Its media type.
    pub media_type: String,
    /// Image manifest or index.
    pub kind: Kind,
    /// The config (image manifests).
    pub config: Option<Descriptor>,
    /// Layers (image manifests).
    pub layers: Vec<Descriptor>,
    /// Manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    pub subject: Option<Descriptor>,
    /// `artifactType`, if set.
    pub artifact_type: Option<String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON, or not an object of the expected shape.
    #[error("manifest is not valid JSON of a manifest: {0}")]
    Json(String),
    /// `schemaVersion` is not 2.
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    /// A media type this registry does not store.
    #[error("manifest media type `{0}` is not supported (use {IMAGE_MANIFEST} or {IMAGE_INDEX})")]
    MediaType(String),
    /// The body's `mediaType` and the `Content-Type` header disagree.
    #[error("manifest mediaType `{body}` does not match Content-Type `{header}`")]
    MediaTypeMismatch {
        /// In the body.
        body: String,
        /// In the header.
        header: String,
    },
    /// A field is missing or malformed.
    #[error("manifest {0}")]
    Field(String),
    /// Too large.
    #[error("manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

fn descriptor(raw: RawDescriptor, what: &str) -> Result<Descriptor, ManifestError> {
    let media_type = raw
        .media_type
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ManifestError::Field(format!("{what} has no mediaType")))?;
    let digest = raw
        .digest
        .ok_or_else(|| ManifestError::Field(format!("{what} has no digest")))?;
    let digest = digest
        .parse()
        .map_err(|e| ManifestError::Field(format!("{what}: {e}")))?;
    let size = raw
        .size
        .ok_or_else(|| ManifestError::Field(format!("{what} has no size")))?;
    let size = u64::try_from(size)
        .map_err(|_| ManifestError::Field(format!("{what} has a negative size")))?;
    Ok(Descriptor {
        media_type,
        digest,
        size,
        artifact_type: raw.artifact_type,
        annotations: raw.annotations.unwrap_or_default(),
    })
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        IMAGE_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        IMAGE_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        _ => None,
    }
}

impl Manifest {
    /// Parses `bytes` pushed with `content_type` (the `Content-Type` header).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::SchemaVersion);
        }
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| kind_of(c).is_some());
        let media_type = match (&raw.media_type, header) {
            (Some(body), Some(header)) if body != header => {
                return Err(ManifestError::MediaTypeMismatch {
                    body: body.clone(),
                    header: header.to_owned(),
                })
            }
            (Some(body), _) => body.clone(),
            (None, Some(header)) => header.to_owned(),
            // Without either, the shape decides.
            (None, None) if raw.manifests.is_some() => IMAGE_INDEX.to_owned(),
            (None, None) => IMAGE_MANIFEST.to_owned(),
        };
        let kind =
            kind_of(&media_type).ok_or_else(|| ManifestError::MediaType(media_type.clone()))?;
        let (config, layers, manifests) = match kind {
            Kind::Image => {
                let config = raw
                    .config
                    .ok_or_else(|| ManifestError::Field("has no config".into()))?;
                let layers = raw
                    .layers
                    .ok_or_else(|| ManifestError::Field("has no layers".into()))?;
                let layers = layers
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| descriptor(l, &format!("layer {i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                (Some(descriptor(config, "config")?), layers, Vec::new())
            }
            Kind::Index => {
                let manifests = raw
                    .manifests
                    .ok_or_else(|| ManifestError::Field("index has no manifests".into()))?;
                let manifests = manifests
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| descriptor(m, &format!("manifests[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                (None, Vec::new(), manifests)
            }
        };
        let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;
        Ok(Manifest {
            media_type,
            kind,
            config,
            layers,
            manifests,
            subject,
            artifact_type: raw.artifact_type,
            annotations: raw.annotations.unwrap_or_default(),
        })
    }

    /// The artifact type shown in referrers: `artifactType`, else the
    /// config's media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// Whether this is a Wasm artifact (a Wasm config or a Wasm layer).
    pub fn is_wasm(&self) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.media_type == WASM_CONFIG)
            || self.layers.iter().any(|l| l.media_type == WASM_LAYER)
    }

    /// The Wasm layer of a Wasm artifact in the layout wkg reads: a Wasm
    /// config and exactly one `application/wasm` layer.
    pub fn wasm_layer(&self) -> Result<&Descriptor, String> {
        let config = self.config.as_ref().map(|c| c.media_type.as_str());
        if config != Some(WASM_CONFIG) {
            return Err(format!(
                "a Wasm artifact needs config media type {WASM_CONFIG}, not {}",
                config.unwrap_or("none")
            ));
        }
        match self.layers.as_slice() {
            [layer] if layer.media_type == WASM_LAYER => Ok(layer),
            _ => Err(format!(
                "a Wasm artifact has exactly one layer of media type {WASM_LAYER} \
                 (found {} layers)",
                self.layers.len()
            )),
        }
    }
}

/// Formats a timestamp as RFC 3339 in UTC (`2026-11-23T08:00:45Z`, with
/// nanoseconds when present).
pub fn rfc3339(timestamp: &Timestamp) -> String {
    let secs = timestamp.seconds();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let nanos = timestamp.nanos();
    if nanos > 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// What the artifact of a release is built from.
pub struct ReleaseArtifact<'a> {
    /// The package.
    pub name: &'a PackageName,
    /// The version.
    pub version: &'a Version,
    /// The content (the Wasm layer) digest.
    pub content: &'a Digest,
    /// The content size.
    pub size: u64,
    /// The release record's timestamp (the config's `created`).
    pub created: &'a Timestamp,
    /// Whether the content is a component (else a core module).
    pub component: bool,
    /// Annotations read from the content's metadata sections
    /// ([`metadata_annotations`]).
    pub annotations: &'a BTreeMap<String, String>,
}

/// The OCI annotations the top-level metadata custom sections of Wasm
/// bytes stand for, as `wkg publish` writes them: `authors`,
/// `description`, `licenses`, `source` and `homepage` (as
/// `org.opencontainers.image.url`). Sections of nested modules and
/// components, and payloads that are not UTF-8, are ignored.
pub fn metadata_annotations(wasm: &[u8]) -> BTreeMap<String, String> {
    const FIELDS: [(&str, &str); 5] = [
        ("authors", "org.opencontainers.image.authors"),
        ("description", "org.opencontainers.image.description"),
        ("licenses", "org.opencontainers.image.licenses"),
        ("source", "org.opencontainers.image.source"),
        ("homepage", "org.opencontainers.image.url"),
    ];
    let mut annotations = BTreeMap::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { break };
        match payload {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(section) if depth == 1 => {
                let annotation = FIELDS
                    .iter()
                    .find(|(name, _)| *name == section.name())
                    .map(|(_, key)| *key);
                if let (Some(key), Ok(text)) = (annotation, std::str::from_utf8(section.data())) {
                    if !text.trim().is_empty() {
                        annotations.insert(key.to_owned(), text.trim().to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    annotations
}

/// A built artifact: manifest and config bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltArtifact {
    /// The manifest (media type [`IMAGE_MANIFEST`]).
    pub manifest: Vec<u8>,
    /// The config blob (media type [`WASM_CONFIG`]).
    pub config: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: String,
    author: Option<&'a str>,
    architecture: &'a str,
    os: &'a str,
    layer_digests: Vec<String>,
}

impl ReleaseArtifact<'_> {
    /// The manifest and config in the layout wkg 0.16 reads. The bytes are
    /// a function of the release alone, so building twice gives the same
    /// digests.
    pub fn build(&self) -> BuiltArtifact {
        let config = WasmConfig {
            created: rfc3339(self.created),
            author: None,
            architecture: "wasm",
            os: if self.component { "wasip2" } else { "wasip1" },
            layer_digests: vec![self.content.to_string()],
        };
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config_digest = Digest::of(Algorithm::Sha256, &config);
        let title = format!("{}.wasm", self.name.name());
        let mut annotations = self.annotations.clone();
        annotations.insert(
            "org.opencontainers.image.version".into(),
            self.version.to_string(),
        );
        annotations.insert(
            "org.opencontainers.image.created".into(),
            rfc3339(self.created),
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": {
                "mediaType": WASM_CONFIG,
                "digest": config_digest.to_string(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": WASM_LAYER,
                "digest": self.content.to_string(),
                "size": self.size,
                "annotations": { "org.opencontainers.image.title": title },
            }],
            "annotations": annotations,
        });
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        BuiltArtifact { manifest, config }
    }
}

/// A JSON value's compact bytes (for index answers).
pub fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> String {
        Digest::of(Algorithm::Sha256, &[n]).to_string()
    }

    #[test]
    fn image_manifests_and_indexes_parse() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": {"mediaType": WASM_CONFIG, "digest": digest(1), "size": 3},
            "layers": [{"mediaType": WASM_LAYER, "digest": digest(2), "size": 8}],
            "subject": {"mediaType": IMAGE_MANIFEST, "digest": digest(3), "size": 100},
        });
        let m = Manifest::parse(Some(IMAGE_MANIFEST), &to_bytes(&body)).expect("parses");
        assert!(m.is_wasm());
        assert_eq!(m.wasm_layer().expect("layer").size, 8);
        assert_eq!(m.effective_artifact_type(), Some(WASM_CONFIG));
        assert_eq!(m.subject.as_ref().map(|s| s.size), Some(100));

        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": IMAGE_MANIFEST, "digest": digest(1), "size": 3}],
        });
        let m = Manifest::parse(None, &to_bytes(&index)).expect("parses");
        assert_eq!(m.kind, Kind::Index);
    }

    #[test]
    fn malformed_manifests_are_refused_with_reasons() {
        let cases = [
            (serde_json::json!({"schemaVersion": 1}), "schemaVersion"),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"}),
                "not supported",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": IMAGE_MANIFEST, "layers": []}),
                "no config",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:1", "size": 1}, "layers": []}),
                "config: digest",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "x", "digest": digest(1), "size": -1}, "layers": []}),
                "negative size",
            ),
        ];
        for (body, needle) in cases {
            let error = Manifest::parse(None, &to_bytes(&body)).expect_err("refused");
            assert!(error.to_string().contains(needle), "{error} vs {needle}");
        }
        let error = Manifest::parse(None, b"{nope").expect_err("refused");
        assert!(matches!(error, ManifestError::Json(_)));
        let body =
            serde_json::json!({"schemaVersion": 2, "mediaType": IMAGE_INDEX, "manifests": []});
        let error = Manifest::parse(Some(IMAGE_MANIFEST), &to_bytes(&body)).expect_err("refused");
        assert!(matches!(error, ManifestError::MediaTypeMismatch { .. }));
    }

    #[test]
    fn metadata_sections_become_annotations() {
        fn custom(name: &str, data: &[u8]) -> Vec<u8> {
            let mut payload = vec![name.len() as u8];
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(data);
            let mut section = vec![0, payload.len() as u8];
            section.extend(payload);
            section
        }
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend(custom("description", b"A greeter"));
        wasm.extend(custom("licenses", b"Apache-2.0"));
        wasm.extend(custom("homepage", b"https://acme.test"));
        wasm.extend(custom("revision", b"abc123"));
        wasm.extend(custom("authors", b"\xff\xfe"));
        let annotations = metadata_annotations(&wasm);
        assert_eq!(
            annotations,
            BTreeMap::from([
                (
                    "org.opencontainers.image.description".to_owned(),
                    "A greeter".to_owned()
                ),
                (
                    "org.opencontainers.image.licenses".to_owned(),
                    "Apache-2.0".to_owned()
                ),
                (
                    "org.opencontainers.image.url".to_owned(),
                    "https://acme.test".to_owned()
                ),
            ]),
            "revision is not mapped and non-UTF-8 is skipped"
        );
        assert!(metadata_annotations(b"not wasm").is_empty());
    }

    #[test]
    fn release_artifacts_are_deterministic_and_in_wkg_layout() {
        let name: PackageName = "acme:greeter".parse().expect("name");
        let version: Version = "1.2.3".parse().expect("version");
        let content = Digest::of(Algorithm::Sha256, b"\0asm\x01\0\0\0");
        let created = Timestamp::new(1_795_420_845, 0);
        let artifact = ReleaseArtifact {
            name: &name,
            version: &version,
            content: &content,
            size: 8,
            created: &created,
            component: false,
            annotations: &BTreeMap::new(),
        };
        let built = artifact.build();
        assert_eq!(built, artifact.build());
        let manifest = Manifest::parse(Some(IMAGE_MANIFEST), &built.manifest).expect("parses");
        assert_eq!(manifest.wasm_layer().expect("layer").digest, content);
        let config: Value = serde_json::from_slice(&built.config).expect("config");
        assert_eq!(config["created"], "2026-11-23T08:00:45Z");
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip1");
        assert_eq!(config["layerDigests"][0], content.to_string());
        assert_eq!(
            manifest.annotations["org.opencontainers.image.version"],
            "1.2.3"
        );
    }

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(&Timestamp::new(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(&Timestamp::new(951_782_400, 5)),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(rfc3339(&Timestamp::new(-86_400, 0)), "1969-12-31T00:00:00Z");
    }
}
