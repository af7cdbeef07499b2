//! The OCI face's model: repositories, blobs, upload sessions, manifests,
//! tags and referrers, over the same packages and history as the Warg face.
//!
//! A Warg package `ns:name` is the repository `ns/name`; each release is the
//! tag `<version>`, whose manifest is built from the release record the
//! first time it is asked for and then stored, so its digest never changes.
//! A push of a Wasm artifact to a version tag is a publish: its layer passes
//! the content door, a release record is signed with the pushing account's
//! custodial key, and the manifest and tag are committed together with the
//! record (never before, never for a refused record). Everything here is
//! blocking except waiting for a push to be published
//! ([`PendingPush::finish`]); the HTTP layer calls it off its async workers.

mod digest;
mod error;
mod manifest;
mod names;
mod push;
mod releases;
mod signed;
mod store;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use cairn_protocol::package::PackageState;
use cairn_protocol::{LogId, PackageName};

pub use digest::{Algorithm, Digest, DigestError, Digester};
pub use error::{ErrorCode, Hint, OciError};
pub use manifest::{
    metadata_annotations, rfc3339, BuiltArtifact, Descriptor, Kind, Manifest, ManifestError,
    ReleaseArtifact, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, IMAGE_INDEX, IMAGE_MANIFEST,
    MAX_MANIFEST_BYTES, TLOG_PROOF_ARTIFACT, TLOG_PROOF_LAYER, WASM_CONFIG, WASM_LAYER,
};
pub use names::{check_repository, check_tag, package_of, repository_of, Reference};
pub use push::{PendingPush, PushStep, Pushed};
pub use releases::Blob;
pub use signed::{find_trusted, trusted_key, TrustError, MAX_KEY_PEM};
pub use store::{
    Account, BlobStore, Finished, ForkSource, ManifestWrite, MirrorReport, Mirrored, OciStore,
    SessionWriter, StoredManifest, TrustedKey, UploadSession,
};
pub use uploads::Chunk;

use crate::registry::Registry;

/// Settings of the OCI face.
#[derive(Clone, Debug)]
pub struct OciConfig {
    /// An upload session not written to for this long is removed.
    pub upload_expiry: Duration,
    /// How long a push waits for its release to be published.
    pub publish_wait: Duration,
    /// The largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// Most upload sessions one account may hold open.
    pub max_uploads_per_account: u64,
    /// Most upload sessions open in all.
    pub max_uploads: u64,
}

impl Default for OciConfig {
    fn default() -> Self {
        OciConfig {
            upload_expiry: Duration::from_secs(3600),
            publish_wait: Duration::from_secs(30),
            max_blob_bytes: 1 << 30,
            max_uploads_per_account: 256,
            max_uploads: 10_000,
        }
    }
}

/// The OCI face over a registry.
pub struct Oci {
    registry: Arc<Registry>,
    store: Arc<dyn OciStore>,
    blobs: Arc<dyn BlobStore>,
    config: OciConfig,
    busy: uploads::Busy,
    /// Held while an upload session is counted and created, so that the
    /// limits hold against parallel starts.
    starting: std::sync::Mutex<()>,
    /// Held while a release's proof is made and attached, so that it is
    /// attached once.
    proving: std::sync::Mutex<()>,
    /// Another registry's packages served from a verified copy.
    mirrored: Option<Arc<dyn Mirrored>>,
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
            busy: uploads::Busy::default(),
            starting: std::sync::Mutex::new(()),
            proving: std::sync::Mutex::new(()),
            mirrored: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &OciConfig {
        &self.config
    }

    /// The registry's clock, in seconds.
    fn now(&self) -> u64 {
        self.registry.config().clock.now_seconds()
    }

    /// The published state of the package a repository shows.
    fn package(&self, repository: &str) -> Result<Option<(PackageName, PackageState)>, OciError> {
        let Some(name) = package_of(repository) else {
            return Ok(None);
        };
        let mut state = self.registry.published_package(&LogId::package(&name))?;
        if state.is_none() {
            if let Some(mirrored) = &self.mirrored {
                state = mirrored.package(&name)?;
            }
        }
        Ok(state.map(|s| (name, s)))
    }

    /// The origin's offline proof of a mirrored release, if any.
    pub fn mirrored_release_proof(
        &self,
        name: &PackageName,
        version: &cairn_protocol::Version,
    ) -> Result<Option<String>, OciError> {
        match &self.mirrored {
            Some(mirrored) => Ok(mirrored.release_proof(name, version)?),
            None => Ok(None),
        }
    }

    /// Forks mirrored `namespace` (or only `package` of it): records in
    /// the notice log that this registry takes it over from its origin at
    /// the mirror's verified checkpoint, then replays every mirrored record
    /// of it into this registry's log (the publishers' signed records as
    /// they are), with their content from the mirror, and stops the mirror
    /// following it. Blocking; answers the origin's checkpoint length and
    /// the packages and records replayed. A record already here is passed
    /// over, so a fork that stopped half-way can be finished.
    pub fn fork_mirrored(
        &self,
        namespace: &str,
        package: Option<&PackageName>,
    ) -> Result<(u64, usize, usize), OciError> {
        let refused = |e: crate::SubmitError| OciError::new(ErrorCode::Denied, e.to_string());
        let what = match package {
            Some(package) => format!("package `{package}`"),
            None => format!("namespace `{namespace}`"),
        };
        let not_mirrored = || {
            OciError::new(
                ErrorCode::NameUnknown,
                format!("{what} is not mirrored here"),
            )
        };
        let mirrored = self.mirrored.as_ref().ok_or_else(not_mirrored)?;
        let source = mirrored
            .fork_source(namespace, package)?
            .ok_or_else(not_mirrored)?;
        let notices = self.registry.notices()?;
        let forked = match package {
            Some(package) => notices.forked_package(package).is_some(),
            None => notices.forked(namespace).is_some(),
        };
        if !forked {
            self.registry
                .fork(
                    namespace,
                    package,
                    &source.origin,
                    source.log_length,
                    source.log_root,
                )?
                .wait()
                .map_err(refused)?;
        }
        let mut records = 0;
        for (name, envelopes) in &source.packages {
            let log_id = LogId::package(name);
            for envelope in envelopes {
                let record_id = envelope.record_id();
                let status = self
                    .registry
                    .submit(name.clone(), log_id, envelope.clone())
                    .wait()
                    .map_err(refused)?;
                if let crate::RecordStatus::Sourcing { missing } = status {
                    for digest in missing {
                        self.replay_content(mirrored.as_ref(), &log_id, &record_id, &digest)?;
                    }
                }
                records += 1;
            }
        }
        mirrored.stop(namespace, package);
        Ok((source.log_length, source.packages.len(), records))
    }

    /// Uploads mirrored content `digest` for the sourcing record through
    /// the content door, and waits for the record to be sequenced.
    fn replay_content(
        &self,
        mirrored: &dyn Mirrored,
        log_id: &LogId,
        record_id: &cairn_protocol::RecordId,
        digest: &cairn_protocol::Hash,
    ) -> Result<(), OciError> {
        let missing = || {
            OciError::new(
                ErrorCode::BlobUnknown,
                format!("content {digest} is not held by the mirror; fetch it first"),
            )
        };
        let size = mirrored.content_size(digest)?.ok_or_else(missing)?;
        let mut reader = mirrored
            .read_content(digest, 0, size)?
            .ok_or_else(missing)?;
        let mut upload = self.registry.begin_upload(log_id, record_id, digest)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| {
                OciError::new(ErrorCode::Internal, format!("reading {digest}: {e}"))
            })?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n])?;
        }
        self.registry
            .finish_upload(upload)?
            .wait()
            .map_err(|e| OciError::new(ErrorCode::Denied, e.to_string()))?;
        Ok(())
    }

    /// How the mirrors this face serves from stand.
    pub fn mirror_reports(&self) -> Vec<MirrorReport> {
        self.mirrored
            .as_ref()
            .map_or_else(Vec::new, |m| m.reports())
    }

    /// Removes the bytes of content taken down (`digests`, each named by a
    /// take-down in force) from the content store and the blob store, so
    /// that no copy is left to serve. Blocking.
    pub fn purge(&self, digests: &[cairn_protocol::Hash]) -> Result<(), OciError> {
        for digest in digests {
            self.registry.purge_content(digest)?;
            self.blobs.remove(&Digest::from(digest))?;
        }
        Ok(())
    }

    /// The verified copy of other registries' packages this face serves,
    /// if any.
    pub fn mirrored(&self) -> Option<&Arc<dyn Mirrored>> {
        self.mirrored.as_ref()
    }

    /// The same face, also serving another registry's packages from a
    /// verified copy.
    pub fn with_mirrored(mut self, mirrored: Arc<dyn Mirrored>) -> Oci {
        self.mirrored = Some(mirrored);
        self
    }

    /// The size of release content: this registry's, else a mirrored one's.
    fn content_size(&self, digest: &cairn_protocol::Hash) -> Result<Option<u64>, OciError> {
        if let Some(size) = self.registry.content_size(digest)? {
            return Ok(Some(size));
        }
        match &self.mirrored {
            Some(mirrored) => Ok(mirrored.content_size(digest)?),
            None => Ok(None),
        }
    }
}
