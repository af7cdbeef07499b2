//! The OCI face's model: repositories, blobs, upload sessions, manifests,
//! tags and referrers, over the same packages and bytes as the Warg face.
//!
//! A Warg package `ns:name` is the repository `ns/name`; each release is the
//! tag `<version>`, whose manifest is built from the release record the
//! first time it is asked for and then stored, so its digest never changes.
//! A push of a Wasm artifact to a version tag is a publish: a release record
//! signed with the pushing account's custodial key. Everything here is
//! blocking; the HTTP layer calls it off its async workers.

mod digest;
mod manifest;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState};
use cairn_protocol::{
    Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp, Version,
};
use serde_json::json;

pub use digest::{Algorithm, Digest, DigestError, Digester};
pub use manifest::{
    metadata_annotations, rfc3339, BuiltArtifact, Descriptor, Kind, Manifest, ManifestError,
    ReleaseArtifact, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_INDEX, IMAGE_MANIFEST,
    MAX_MANIFEST_BYTES, WASM_CONFIG, WASM_LAYER,
};

use crate::engine::{Attested, RecordStatus, Registry, SubmitError};
use crate::storage::{ContentLocation, StoreError};
use cairn_protocol::attestation::Attestation;

/// A stored manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its digest (of `bytes`).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The bytes as pushed (or as built for a Warg release).
    pub bytes: Vec<u8>,
    /// The manifest it refers to.
    pub subject: Option<Digest>,
}

/// An upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    /// Its id.
    pub id: String,
    /// The repository it uploads to.
    pub repository: String,
    /// Seconds since the epoch of the last write.
    pub updated: u64,
}

/// OCI metadata: repositories, blob links, manifests, tags, upload sessions.
pub trait OciStore: Send + Sync + 'static {
    /// Repositories after `last` (in order), at most `limit`.
    fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError>;
    /// Whether the repository has any blob, manifest or tag.
    fn repository_exists(&self, repository: &str) -> Result<bool, StoreError>;
    /// Makes a stored blob part of a repository.
    fn link_blob(&self, repository: &str, digest: &Digest) -> Result<(), StoreError>;
    /// Whether a blob is part of a repository.
    fn blob_linked(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError>;
    /// Removes a blob from a repository; whether it was there.
    fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError>;
    /// Stores a manifest and, if given, points `tag` at it (atomically).
    fn put_manifest(
        &self,
        repository: &str,
        manifest: &StoredManifest,
        tag: Option<&str>,
    ) -> Result<(), StoreError>;
    /// A manifest by digest.
    fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StoreError>;
    /// What a tag points at.
    fn tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>, StoreError>;
    /// Every tag of a repository with its digest.
    fn tags(&self, repository: &str) -> Result<Vec<(String, Digest)>, StoreError>;
    /// Deletes a manifest and the tags pointing at it; whether it existed.
    fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError>;
    /// Deletes a tag; whether it existed.
    fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError>;
    /// Manifests whose subject is `subject`.
    fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<StoredManifest>, StoreError>;
    /// Records a new upload session.
    fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError>;
    /// An upload session by id.
    fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError>;
    /// Marks a session written to at `now`.
    fn touch_upload(&self, id: &str, now: u64) -> Result<(), StoreError>;
    /// Forgets a session.
    fn delete_upload(&self, id: &str) -> Result<(), StoreError>;
    /// Sessions last written before `before`.
    fn stale_uploads(&self, before: u64) -> Result<Vec<String>, StoreError>;
    /// Whether packages may be created in `namespace` by an OCI push.
    fn oci_create_allowed(&self, namespace: &str) -> Result<bool, StoreError>;
}

/// Appends to an upload session's bytes.
pub trait SessionWriter: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError>;
    /// Makes what was written durable; returns the session's size.
    fn flush(&mut self) -> Result<u64, StoreError>;
}

/// How finishing a session went.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// The bytes have the digest and are stored under it.
    Stored {
        /// Their size.
        size: u64,
    },
    /// The bytes have another digest; nothing was stored.
    Mismatch {
        /// The digest of the bytes.
        found: Digest,
    },
}

/// Blob bytes by digest (sha256 blobs are the Warg face's content too) and
/// the bytes of upload sessions.
pub trait BlobStore: Send + Sync + 'static {
    /// Where a blob is, if stored.
    fn locate(&self, digest: &Digest) -> Result<Option<ContentLocation>, StoreError>;
    /// Stores a small blob whose digest the caller computed.
    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError>;
    /// Creates the (empty) bytes of a session.
    fn create_session(&self, id: &str) -> Result<(), StoreError>;
    /// The size of a session's bytes, if it has any.
    fn session_size(&self, id: &str) -> Result<Option<u64>, StoreError>;
    /// Opens a session for appending.
    fn append_session(&self, id: &str) -> Result<Box<dyn SessionWriter>, StoreError>;
    /// Hashes a session's bytes and, if they have `digest`, stores them as
    /// that blob and removes the session's bytes.
    fn finish_session(&self, id: &str, digest: &Digest) -> Result<Finished, StoreError>;
    /// Removes a session's bytes.
    fn delete_session(&self, id: &str) -> Result<(), StoreError>;
}

/// An account as the OCI face sees it: who pushes, and the custodial key
/// that signs the records its pushes make.
#[derive(Clone, Debug)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// The key the registry keeps for it.
    pub custodial_key: PrivateKey,
}

/// The distribution spec's error codes (plus `RANGE_INVALID` for 416).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Blob unknown to the registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown.
    BlobUploadUnknown,
    /// Provided digest did not match, or is malformed.
    DigestInvalid,
    /// A blob the manifest references is unknown.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known.
    NameUnknown,
    /// Content does not match its length.
    SizeInvalid,
    /// Content larger than the registry accepts (413).
    TooLarge,
    /// Authentication required.
    Unauthorized,
    /// Access denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// A chunk out of order.
    RangeInvalid,
    /// A refused change to something immutable.
    Conflict,
    /// A failure of the registry itself.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid | ErrorCode::TooLarge => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::Conflict => "DENIED",
            ErrorCode::Internal => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::RangeInvalid => 416,
            ErrorCode::TooLarge => 413,
            ErrorCode::Conflict => 409,
            ErrorCode::Internal => 500,
        }
    }
}

/// An OCI error: a code and a message naming the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OciError {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl OciError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OciError {
        OciError {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for OciError {
    fn from(e: StoreError) -> OciError {
        OciError::new(ErrorCode::Internal, e.to_string())
    }
}

impl From<crate::engine::QueryError> for OciError {
    fn from(e: crate::engine::QueryError) -> OciError {
        OciError::new(ErrorCode::Internal, e.to_string())
    }
}

/// Checks a repository name against the distribution spec's grammar.
pub fn check_repository(name: &str) -> Result<(), OciError> {
    let bad = |why: &str| {
        Err(OciError::new(
            ErrorCode::NameInvalid,
            format!("invalid repository name `{name}`: {why}"),
        ))
    };
    if name.is_empty() || name.len() > 255 {
        return bad("it must be 1 to 255 characters");
    }
    for component in name.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return bad("each path component starts and ends with [a-z0-9]");
        }
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if alnum(b) {
                i += 1;
                continue;
            }
            // Separators: `.`, `_`, `__`, or a run of `-`.
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return bad("components are [a-z0-9] separated by `.`, `_`, `__` or `-`");
            }
        }
    }
    Ok(())
}

/// Checks a tag against the distribution spec's grammar.
pub fn check_tag(tag: &str) -> Result<(), OciError> {
    let bytes = tag.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(OciError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid tag `{tag}`: tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
        ))
    }
}

/// The package a repository shows, if it is of the form `<ns>/<name>`.
pub fn package_of(repository: &str) -> Option<PackageName> {
    let (ns, name) = repository.split_once('/')?;
    PackageName::new(format!("{ns}:{name}")).ok()
}

/// The repository of a package.
pub fn repository_of(name: &PackageName) -> String {
    format!("{}/{}", name.namespace(), name.name())
}

/// In a package's repository, version tags are its releases: a manifest
/// that is not a Wasm release may not take one (wkg would read it as a
/// version it cannot fetch).
fn refuse_version_tag(repository: &str, tag: &str) -> Result<(), OciError> {
    if package_of(repository).is_some() && tag.parse::<Version>().is_ok() {
        return Err(OciError::new(
            ErrorCode::ManifestInvalid,
            format!(
                "tag `{tag}` is a version, and versions of `{repository}` are Wasm releases \
                 (one `application/wasm` layer, config `application/vnd.wasm.config.v0+json`); \
                 push other artifacts by digest or to a tag that is not a version"
            ),
        ));
    }
    Ok(())
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parses a reference from a URL path segment.
    pub fn parse(text: &str) -> Result<Reference, OciError> {
        if text.contains(':') {
            text.parse()
                .map(Reference::Digest)
                .map_err(|e: DigestError| OciError::new(ErrorCode::DigestInvalid, e.to_string()))
        } else {
            check_tag(text)?;
            Ok(Reference::Tag(text.to_owned()))
        }
    }
}

/// Settings of the OCI face.
#[derive(Clone, Debug)]
pub struct OciConfig {
    /// An upload session not written to for this long is removed.
    pub upload_expiry: Duration,
    /// How long a push waits for its release to be published.
    pub publish_wait: Duration,
    /// The largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
}

impl Default for OciConfig {
    fn default() -> Self {
        OciConfig {
            upload_expiry: Duration::from_secs(3600),
            publish_wait: Duration::from_secs(30),
            max_blob_bytes: 1 << 30,
        }
    }
}

/// What a manifest push did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its subject, if any.
    pub subject: Option<Digest>,
    /// The record that released the version, for a Wasm push to a new
    /// version.
    pub released: Option<RecordId>,
    /// Where a referrer was recorded in its package's attestation log.
    pub attested: Option<Attested>,
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A repository's package (if it shows one) and tags, with every release's
/// artifact built.
struct Releases {
    package: Option<(PackageName, PackageState)>,
    tags: BTreeMap<String, Digest>,
}

/// The OCI face over a registry.
pub struct Oci {
    registry: Arc<Registry>,
    store: Arc<dyn OciStore>,
    blobs: Arc<dyn BlobStore>,
    config: OciConfig,
}

impl Oci {
    /// The OCI face of `registry`.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn OciStore>,
        blobs: Arc<dyn BlobStore>,
        config: OciConfig,
    ) -> Oci {
        Oci {
            registry,
            store,
            blobs,
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &OciConfig {
        &self.config
    }

    /// The published state of the package a repository shows.
    fn package(&self, repository: &str) -> Result<Option<(PackageName, PackageState)>, OciError> {
        let Some(name) = package_of(repository) else {
            return Ok(None);
        };
        let state = self.registry.published_package(&LogId::package(&name))?;
        Ok(state.map(|s| (name, s)))
    }

    /// Where a blob of a repository is.
    pub fn blob(&self, repository: &str, digest: &Digest) -> Result<ContentLocation, OciError> {
        check_repository(repository)?;
        let unknown = || {
            OciError::new(
                ErrorCode::BlobUnknown,
                format!("blob `{digest}` is not in repository `{repository}`"),
            )
        };
        let visible = self.store.blob_linked(repository, digest)?
            || self.package(repository)?.is_some_and(|(_, state)| {
                state
                    .releases()
                    .any(|r| Some(r.content) == digest.to_hash())
            });
        if !visible {
            return Err(unknown());
        }
        self.blobs.locate(digest)?.ok_or_else(unknown)
    }

    /// Removes a blob from a repository.
    pub fn delete_blob(&self, repository: &str, digest: &Digest) -> Result<(), OciError> {
        check_repository(repository)?;
        if let Some((name, state)) = self.package(repository)? {
            if state
                .releases()
                .any(|r| Some(r.content) == digest.to_hash())
            {
                return Err(OciError::new(
                    ErrorCode::Denied,
                    format!(
                        "blob `{digest}` is the content of a release of `{name}`; \
                         released content is immutable"
                    ),
                ));
            }
        }
        if self.store.unlink_blob(repository, digest)? {
            Ok(())
        } else {
            Err(OciError::new(
                ErrorCode::BlobUnknown,
                format!("blob `{digest}` is not in repository `{repository}`"),
            ))
        }
    }

    /// Mounts a blob of `from` into `repository`; `false` if `from` does not
    /// have it (the caller then starts an ordinary upload).
    pub fn mount(&self, repository: &str, from: &str, digest: &Digest) -> Result<bool, OciError> {
        check_repository(repository)?;
        if check_repository(from).is_err() || self.blob(from, digest).is_err() {
            return Ok(false);
        }
        self.store.link_blob(repository, digest)?;
        Ok(true)
    }

    /// Starts an upload session; returns its id.
    pub fn start_upload(&self, repository: &str) -> Result<String, OciError> {
        check_repository(repository)?;
        let id = new_session_id();
        self.blobs.create_session(&id)?;
        self.store.create_upload(&UploadSession {
            id: id.clone(),
            repository: repository.to_owned(),
            updated: now_seconds(),
        })?;
        Ok(id)
    }

    fn session(&self, repository: &str, id: &str) -> Result<UploadSession, OciError> {
        match self.store.upload(id)? {
            Some(s) if s.repository == repository => Ok(s),
            _ => Err(OciError::new(
                ErrorCode::BlobUploadUnknown,
                format!(
                    "upload `{id}` is not known in repository `{repository}` (it may have expired)"
                ),
            )),
        }
    }

    /// The number of bytes an upload session holds.
    pub fn upload_size(&self, repository: &str, id: &str) -> Result<u64, OciError> {
        self.session(repository, id)?;
        self.blobs.session_size(id)?.ok_or_else(|| {
            OciError::new(
                ErrorCode::BlobUploadUnknown,
                format!("upload `{id}` has no data (it may have expired)"),
            )
        })
    }

    /// Opens a session to append a chunk starting at `start` (from
    /// `Content-Range`, if given): it must start where the bytes end.
    pub fn open_chunk(
        &self,
        repository: &str,
        id: &str,
        start: Option<u64>,
    ) -> Result<(Box<dyn SessionWriter>, u64), OciError> {
        let size = self.upload_size(repository, id)?;
        if let Some(start) = start {
            if start != size {
                return Err(OciError::new(
                    ErrorCode::RangeInvalid,
                    format!("chunk starts at byte {start}, but the upload holds {size} bytes"),
                ));
            }
        }
        Ok((self.blobs.append_session(id)?, size))
    }

    /// The largest blob accepted, in bytes.
    pub fn max_blob_bytes(&self) -> u64 {
        self.config.max_blob_bytes
    }

    /// Notes that a session was written to.
    pub fn touch_upload(&self, id: &str) -> Result<(), OciError> {
        Ok(self.store.touch_upload(id, now_seconds())?)
    }

    /// Completes an upload: the bytes must have `digest`. The session ends
    /// either way.
    pub fn complete_upload(
        &self,
        repository: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64, OciError> {
        self.session(repository, id)?;
        let finished = self.blobs.finish_session(id, digest);
        let end = |e| {
            let _ = self.blobs.delete_session(id);
            let _ = self.store.delete_upload(id);
            e
        };
        match finished.map_err(|e| end(OciError::from(e)))? {
            Finished::Stored { size } => {
                self.store.link_blob(repository, digest)?;
                self.store.delete_upload(id)?;
                Ok(size)
            }
            Finished::Mismatch { found } => Err(end(OciError::new(
                ErrorCode::DigestInvalid,
                format!("uploaded bytes have digest `{found}`, not `{digest}`"),
            ))),
        }
    }

    /// Cancels an upload session.
    pub fn cancel_upload(&self, repository: &str, id: &str) -> Result<(), OciError> {
        self.session(repository, id)?;
        self.blobs.delete_session(id)?;
        self.store.delete_upload(id)?;
        Ok(())
    }

    /// Removes sessions not written to within the expiry; returns how many.
    pub fn expire_uploads(&self) -> Result<usize, OciError> {
        let before = now_seconds().saturating_sub(self.config.upload_expiry.as_secs());
        let stale = self.store.stale_uploads(before)?;
        for id in &stale {
            self.blobs.delete_session(id)?;
            self.store.delete_upload(id)?;
        }
        Ok(stale.len())
    }

    /// Builds and stores the artifact of every release of the package a
    /// repository shows that has none yet. Returns the package state.
    /// Returns the package state and every tag of the repository.
    fn ensure_release_artifacts(&self, repository: &str) -> Result<Releases, OciError> {
        let mut tags: BTreeMap<String, Digest> = self.store.tags(repository)?.into_iter().collect();
        let Some((name, state)) = self.package(repository)? else {
            return Ok(Releases {
                package: None,
                tags,
            });
        };
        for release in state.releases() {
            let tag = release.version.to_string();
            if tags.contains_key(&tag) || check_tag(&tag).is_err() {
                continue;
            }
            let content = Digest::from(&release.content);
            let Some(location) = self.blobs.locate(&content)? else {
                continue;
            };
            let (component, annotations) = wasm_facts(&location);
            let built = ReleaseArtifact {
                name: &name,
                version: &release.version,
                content: &content,
                size: location.size(),
                created: &release.timestamp,
                component,
                annotations: &annotations,
            }
            .build();
            let config_digest = Digest::of(Algorithm::Sha256, &built.config);
            self.blobs.put(&config_digest, &built.config)?;
            self.store.link_blob(repository, &config_digest)?;
            self.store.link_blob(repository, &content)?;
            let manifest = StoredManifest {
                digest: Digest::of(Algorithm::Sha256, &built.manifest),
                media_type: IMAGE_MANIFEST.to_owned(),
                bytes: built.manifest,
                subject: None,
            };
            self.store.put_manifest(repository, &manifest, Some(&tag))?;
            tags.insert(tag, manifest.digest);
        }
        Ok(Releases {
            package: Some((name, state)),
            tags,
        })
    }

    /// A manifest by tag or digest.
    pub fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<StoredManifest, OciError> {
        check_repository(repository)?;
        let unknown = || {
            OciError::new(
                ErrorCode::ManifestUnknown,
                format!(
                    "manifest `{}` is not in repository `{repository}`",
                    match reference {
                        Reference::Tag(t) => t.clone(),
                        Reference::Digest(d) => d.to_string(),
                    }
                ),
            )
        };
        let find = |this: &Oci| -> Result<Option<StoredManifest>, OciError> {
            let digest = match reference {
                Reference::Tag(tag) => match this.store.tag(repository, tag)? {
                    Some(d) => d,
                    None => return Ok(None),
                },
                Reference::Digest(d) => d.clone(),
            };
            Ok(this.store.manifest(repository, &digest)?)
        };
        if let Some(found) = find(self)? {
            return Ok(found);
        }
        if self.ensure_release_artifacts(repository)?.package.is_none() {
            if !self.store.repository_exists(repository)? {
                return Err(OciError::new(
                    ErrorCode::NameUnknown,
                    format!("repository `{repository}` is not known to this registry"),
                ));
            }
            return Err(unknown());
        }
        find(self)?.ok_or_else(unknown)
    }

    /// Tags in lexical order after `last`, at most `n` (all if `None`).
    /// Yanked versions are left out (they stay fetchable by tag).
    pub fn tags(
        &self,
        repository: &str,
        last: Option<&str>,
        n: Option<usize>,
    ) -> Result<Vec<String>, OciError> {
        check_repository(repository)?;
        let Releases { package, tags } = self.ensure_release_artifacts(repository)?;
        if package.is_none() && !self.store.repository_exists(repository)? {
            return Err(OciError::new(
                ErrorCode::NameUnknown,
                format!("repository `{repository}` is not known to this registry"),
            ));
        }
        let yanked: BTreeSet<String> = package
            .iter()
            .flat_map(|(_, state)| state.releases())
            .filter(|r| r.yanked.is_some())
            .map(|r| r.version.to_string())
            .collect();
        // The map is in lexical order already.
        Ok(tags
            .into_keys()
            .filter(|t| !yanked.contains(t))
            .filter(|t| last.is_none_or(|l| t.as_str() > l))
            .take(n.unwrap_or(usize::MAX))
            .collect())
    }

    /// Repositories in lexical order after `last`, at most `n`: those with
    /// OCI content and every package.
    pub fn catalog(&self, last: Option<&str>, n: Option<usize>) -> Result<Vec<String>, OciError> {
        let n = n.unwrap_or(usize::MAX);
        let mut names: BTreeSet<String> = self.store.repositories(last, n)?.into_iter().collect();
        for name in self.registry.package_list()? {
            let repo = repository_of(&name);
            if last.is_none_or(|l| repo.as_str() > l) {
                names.insert(repo);
            }
        }
        Ok(names.into_iter().take(n).collect())
    }

    /// The referrers of `subject` as an image index, optionally only those
    /// of `artifact_type`.
    pub fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<u8>, OciError> {
        check_repository(repository)?;
        let mut manifests = Vec::new();
        for stored in self.store.referrers(repository, subject)? {
            let Ok(parsed) = Manifest::parse(Some(&stored.media_type), &stored.bytes) else {
                continue;
            };
            let kind = parsed.effective_artifact_type().map(str::to_owned);
            if artifact_type.is_some_and(|want| kind.as_deref() != Some(want)) {
                continue;
            }
            let mut descriptor = json!({
                "mediaType": stored.media_type,
                "digest": stored.digest.to_string(),
                "size": stored.bytes.len(),
            });
            if let Some(kind) = kind {
                descriptor["artifactType"] = json!(kind);
            }
            if !parsed.annotations.is_empty() {
                descriptor["annotations"] = json!(parsed.annotations);
            }
            manifests.push(descriptor);
        }
        Ok(manifest::to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_INDEX,
            "manifests": manifests,
        })))
    }

    /// Stores a pushed manifest under `reference`. A Wasm artifact pushed
    /// to a version tag publishes that version through `account`'s
    /// custodial key.
    pub fn put_manifest(
        &self,
        repository: &str,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: &[u8],
        account: Option<&Account>,
    ) -> Result<Pushed, OciError> {
        check_repository(repository)?;
        let parsed = Manifest::parse(content_type, bytes)
            .map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
        let digest = match reference {
            Reference::Digest(given) => {
                let actual = Digest::of(given.algorithm(), bytes);
                if &actual != given {
                    return Err(OciError::new(
                        ErrorCode::DigestInvalid,
                        format!("manifest bytes have digest `{actual}`, not `{given}`"),
                    ));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, bytes),
        };
        // Everything the manifest lists must be here.
        let mut locations = BTreeMap::new();
        for blob in parsed.config.iter().chain(&parsed.layers) {
            let location = self.blob(repository, &blob.digest).map_err(|_| {
                OciError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "blob `{}` ({}) is not in repository `{repository}`: push it first",
                        blob.digest, blob.media_type
                    ),
                )
            })?;
            locations.insert(blob.digest.clone(), location);
        }
        for child in &parsed.manifests {
            if self.store.manifest(repository, &child.digest)?.is_none() {
                return Err(OciError::new(
                    ErrorCode::ManifestBlobUnknown,
                    format!(
                        "manifest `{}` listed by the index is not in repository `{repository}`: push it first",
                        child.digest
                    ),
                ));
            }
        }
        let stored = StoredManifest {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            bytes: bytes.to_vec(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
        };
        let pushed = |released| Pushed {
            digest: digest.clone(),
            subject: stored.subject.clone(),
            released,
            attested: None,
        };
        // An artifact that refers to another (a signature, an SBOM) is
        // recorded in the package's attestation log.
        if let (Some(subject), false) = (&parsed.subject, parsed.is_wasm()) {
            let tag = match reference {
                Reference::Tag(tag) => Some(tag.as_str()),
                Reference::Digest(_) => None,
            };
            if let Some(tag) = tag {
                refuse_version_tag(repository, tag)?;
            }
            let existed = self.store.manifest(repository, &digest)?.is_some();
            self.store.put_manifest(repository, &stored, tag)?;
            // Recorded when it refers into a package that exists (other
            // repositories are plain OCI storage).
            let package = match package_of(repository) {
                Some(name) if !existed => self
                    .registry
                    .published_package(&LogId::package(&name))?
                    .map(|_| name),
                _ => None,
            };
            let attested = match package {
                Some(name) => {
                    let attestation = Attestation {
                        subject: subject.digest.to_string(),
                        referrer: digest.to_string(),
                        artifact_type: parsed
                            .effective_artifact_type()
                            .unwrap_or_default()
                            .to_owned(),
                        media_type: parsed.media_type.clone(),
                        size: bytes.len() as u64,
                        account: account.map(|a| a.name.clone()).unwrap_or_default(),
                    };
                    match self.attest(name, attestation) {
                        Ok(attested) => Some(attested),
                        Err(e) => {
                            self.store.delete_manifest(repository, &digest)?;
                            return Err(e);
                        }
                    }
                }
                _ => None,
            };
            return Ok(Pushed {
                attested,
                ..pushed(None)
            });
        }
        let tag = match reference {
            Reference::Tag(tag) => tag,
            Reference::Digest(_) => {
                self.store.put_manifest(repository, &stored, None)?;
                return Ok(pushed(None));
            }
        };
        let Releases { package, tags } = self.ensure_release_artifacts(repository)?;
        let version: Option<Version> = tag.parse().ok();
        // A version that exists keeps its manifest.
        if let (Some((name, state)), Some(version)) = (&package, &version) {
            if let Some(release) = state.release(version) {
                if tags.get(tag) == Some(&digest) {
                    return Ok(pushed(None));
                }
                return Err(OciError::new(
                    ErrorCode::Conflict,
                    format!(
                        "version {version} of `{name}` is already released (content `{}`); \
                         versions are immutable: publish a new version",
                        Digest::from(&release.content)
                    ),
                ));
            }
        }
        if !parsed.is_wasm() {
            refuse_version_tag(repository, tag)?;
            self.store.put_manifest(repository, &stored, Some(tag))?;
            return Ok(pushed(None));
        }
        // A Wasm artifact: a publish.
        let Some(version) = version else {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "tag `{tag}` is not a semantic version: a Wasm package is published by version \
                     (push to a tag such as `1.0.0`; see wasm-pkg-tools#69)"
                ),
            ));
        };
        let Some(name) = package_of(repository) else {
            return Err(OciError::new(
                ErrorCode::NameInvalid,
                format!(
                    "repository `{repository}` does not name a package: Wasm packages live at \
                     `<namespace>/<name>` (kebab-case)"
                ),
            ));
        };
        let layer = parsed
            .wasm_layer()
            .map_err(|e| OciError::new(ErrorCode::ManifestInvalid, e))?;
        let Some(content) = layer.digest.to_hash() else {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                "the Wasm layer of a package release must have a sha256 digest",
            ));
        };
        let location = locations
            .remove(&layer.digest)
            .ok_or_else(|| OciError::new(ErrorCode::Internal, "the layer was not located"))?;
        if location.size() != layer.size {
            return Err(OciError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "the Wasm layer is {} bytes, but the manifest says {}",
                    location.size(),
                    layer.size
                ),
            ));
        }
        if location.size() > self.registry.config().max_content_bytes {
            return Err(OciError::new(
                ErrorCode::SizeInvalid,
                format!(
                    "the Wasm layer is larger than the limit of {} bytes",
                    self.registry.config().max_content_bytes
                ),
            ));
        }
        let ContentLocation::File { path, .. } = &location;
        let wasm = std::fs::read(path)
            .map_err(|e| OciError::new(ErrorCode::Internal, format!("cannot read layer: {e}")))?;
        crate::check_wasm(&wasm).map_err(|e| {
            OciError::new(ErrorCode::ManifestInvalid, format!("the Wasm layer: {e}"))
        })?;
        let Some(account) = account else {
            return Err(OciError::new(
                ErrorCode::Unauthorized,
                "publishing a Wasm package needs an account: authenticate with a token",
            ));
        };
        let key = &account.custodial_key;
        let mut entries = Vec::new();
        let prev = match &package {
            Some((_, state)) => state.head().map(|h| h.record_id),
            None => {
                if !self.store.oci_create_allowed(name.namespace())? {
                    return Err(OciError::new(
                        ErrorCode::Denied,
                        format!(
                            "package `{name}` does not exist and namespace `{}` does not allow \
                             creating packages by OCI push; create it with a Warg client first, \
                             or allow it with `cairn namespace policy {} --oci-create`",
                            name.namespace(),
                            name.namespace()
                        ),
                    ));
                }
                entries.push(PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                });
                None
            }
        };
        entries.push(PackageEntry::Release {
            version: version.clone(),
            content,
        });
        let envelope = Envelope::sign(
            key,
            PackageRecord {
                prev,
                version: 0,
                timestamp: Timestamp::from_system_time(SystemTime::now()),
                entries,
            },
        );
        let record_id = envelope.record_id();
        // The manifest goes in first, so the release never shows a built
        // manifest in its place; it is taken back if the record is refused.
        let existed = self.store.manifest(repository, &digest)?.is_some();
        self.store.put_manifest(repository, &stored, Some(tag))?;
        if let Err(e) = self.publish(&name, envelope, account) {
            if existed {
                self.store.delete_tag(repository, tag)?;
            } else {
                self.store.delete_manifest(repository, &digest)?;
            }
            return Err(e);
        }
        Ok(pushed(Some(record_id)))
    }

    /// Records an attestation and waits until it is durably sequenced.
    fn attest(&self, name: PackageName, attestation: Attestation) -> Result<Attested, OciError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.registry.attest(name, attestation, move |result| {
            let _ = tx.send(result);
        });
        rx.recv()
            .map_err(|_| OciError::new(ErrorCode::Internal, "the registry stopped"))?
            .map_err(|e| {
                OciError::new(
                    ErrorCode::Internal,
                    format!("cannot record the referrer: {e}"),
                )
            })
    }

    /// Submits a custodial record and waits until a checkpoint covers it.
    fn publish(
        &self,
        name: &PackageName,
        envelope: Envelope<PackageRecord>,
        account: &Account,
    ) -> Result<(), OciError> {
        let log_id = LogId::package(name);
        let record_id = envelope.record_id();
        let (tx, rx) = std::sync::mpsc::channel();
        self.registry
            .submit(name.clone(), log_id, envelope, move |result| {
                let _ = tx.send(result);
            });
        let status = rx
            .recv()
            .map_err(|_| OciError::new(ErrorCode::Internal, "the registry stopped"))?;
        let key_id = account.custodial_key.public_key().id();
        match status {
            Ok(_) => {}
            Err(SubmitError::NamespaceNotDefined(ns)) => {
                return Err(OciError::new(
                    ErrorCode::NameUnknown,
                    format!("namespace `{ns}` is not defined on this registry"),
                ))
            }
            Err(SubmitError::Invalid(reason)) => {
                return Err(OciError::new(
                    ErrorCode::Denied,
                    format!(
                        "the release record signed with account `{}`'s custodial key {key_id} \
                         was refused: {reason}. An owner of `{name}` can grant that key release \
                         permission (warg publish grant / cairn grant --key {key_id})",
                        account.name
                    ),
                ))
            }
            Err(SubmitError::ConflictPending(id)) => {
                return Err(OciError::new(
                    ErrorCode::Conflict,
                    format!("another publish of `{name}` (record {id}) is waiting for content"),
                ))
            }
            Err(e) => return Err(OciError::new(ErrorCode::Internal, e.to_string())),
        }
        let deadline = Instant::now() + self.config.publish_wait;
        loop {
            match self.registry.record_status(&log_id, &record_id)? {
                RecordStatus::Published { .. } => return Ok(()),
                RecordStatus::Rejected { reason } => {
                    return Err(OciError::new(ErrorCode::Denied, reason))
                }
                _ if Instant::now() > deadline => {
                    return Err(OciError::new(
                        ErrorCode::Internal,
                        format!("record {record_id} was not published in time"),
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Deletes a tag or a manifest. Versions of packages are immutable.
    pub fn delete_manifest(&self, repository: &str, reference: &Reference) -> Result<(), OciError> {
        check_repository(repository)?;
        let package = self.package(repository)?;
        let versions: BTreeSet<String> = package
            .iter()
            .flat_map(|(_, s)| s.releases())
            .map(|r| r.version.to_string())
            .collect();
        let immutable = |what: String| {
            Err(OciError::new(
                ErrorCode::Denied,
                format!("{what} is a released version and cannot be deleted; yank it instead"),
            ))
        };
        match reference {
            Reference::Tag(tag) => {
                if versions.contains(tag) {
                    return immutable(format!("tag `{tag}`"));
                }
                if !self.store.delete_tag(repository, tag)? {
                    return Err(OciError::new(
                        ErrorCode::ManifestUnknown,
                        format!("tag `{tag}` is not in repository `{repository}`"),
                    ));
                }
            }
            Reference::Digest(digest) => {
                for (tag, d) in self.store.tags(repository)? {
                    if &d == digest && versions.contains(&tag) {
                        return immutable(format!("manifest `{digest}` (tag `{tag}`)"));
                    }
                }
                if !self.store.delete_manifest(repository, digest)? {
                    return Err(OciError::new(
                        ErrorCode::ManifestUnknown,
                        format!("manifest `{digest}` is not in repository `{repository}`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether stored Wasm is a component (layer 1) rather than a core module,
/// and the annotations its metadata sections stand for. Unreadable content
/// counts as a module without metadata.
fn wasm_facts(location: &ContentLocation) -> (bool, BTreeMap<String, String>) {
    let ContentLocation::File { path, .. } = location;
    match std::fs::read(path) {
        Ok(bytes) => (
            wasmparser::Parser::is_component(&bytes),
            metadata_annotations(&bytes),
        ),
        Err(_) => (false, BTreeMap::new()),
    }
}

/// A fresh upload session id: 128 random bits, hex.
fn new_session_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
