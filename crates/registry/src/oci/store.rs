//! The OCI face's storage, as traits: metadata (repositories, blob links,
//! manifests, tags, upload sessions, namespace policy) and blob bytes.

use cairn_protocol::package::PackageState;
use cairn_protocol::{Hash, LogId, PackageName, PrivateKey};

use super::digest::Digest;
use crate::storage::{ByteReader, StoreError};

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

/// A manifest to store together with the record that publishes it, in the
/// same commit ([`crate::Batch::manifests`]): it appears (with its tag and
/// blob links) exactly when the record is accepted, never before and never
/// for a refused record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestWrite {
    /// The repository.
    pub repository: String,
    /// The manifest.
    pub manifest: StoredManifest,
    /// The tag to point at it, if any.
    pub tag: Option<String>,
    /// Blobs to link into the repository.
    pub links: Vec<Digest>,
}

/// An upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    /// Its id.
    pub id: String,
    /// The repository it uploads to.
    pub repository: String,
    /// The account that started it.
    pub account: String,
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
    /// Stores a manifest and, if given, points its tag at it, and links its
    /// blobs, atomically.
    fn put_manifest(&self, write: &ManifestWrite) -> Result<(), StoreError>;
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
    /// How many upload sessions are open: of `account`, or in all.
    fn count_uploads(&self, account: Option<&str>) -> Result<u64, StoreError>;
    /// Whether packages may be created in `namespace` by an OCI push.
    fn oci_create_allowed(&self, namespace: &str) -> Result<bool, StoreError>;
    /// The keys trusted for signatures in `namespace`: namespace-wide ones
    /// and those of its packages, ordered by package, then key id.
    fn trusted_keys(&self, namespace: &str) -> Result<Vec<TrustedKey>, StoreError>;
    /// Trusts a key (replacing the label of one trusted already for the
    /// same namespace and package).
    fn trust_key(&self, key: &TrustedKey) -> Result<(), StoreError>;
    /// Stops trusting the key `key_id` for `namespace` (namespace-wide when
    /// `package` is `None`); whether it was trusted.
    fn untrust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        key_id: &str,
    ) -> Result<bool, StoreError>;
}

/// A public key the operator trusts for signatures and attestations in a
/// namespace, or in one package of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The namespace.
    pub namespace: String,
    /// The package's name within the namespace (without `ns:`), or `None`
    /// for every package of the namespace.
    pub package: Option<String>,
    /// The key's id: `sha256:<hex>` of its DER SubjectPublicKeyInfo.
    pub key_id: String,
    /// The operator's label for it.
    pub label: String,
    /// The key, PEM `PUBLIC KEY`.
    pub pem: String,
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

/// OCI blob bytes by digest, and the bytes of upload sessions. These are
/// any artifact's bytes; release content lives apart, in the
/// [`crate::ContentStore`], and a blob becomes release content only through
/// the content door.
pub trait BlobStore: Send + Sync + 'static {
    /// The size of a blob, if stored.
    fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;
    /// `len` bytes of a blob from `start` (within its size), if stored.
    fn read(&self, digest: &Digest, start: u64, len: u64)
        -> Result<Option<ByteReader>, StoreError>;
    /// Stores a small blob whose digest the caller computed.
    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError>;
    /// Removes a blob's bytes (a purge after a take-down); removing a blob
    /// not stored is not an error.
    fn remove(&self, digest: &Digest) -> Result<(), StoreError>;
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
    /// The ids of every session that has bytes stored.
    fn sessions(&self) -> Result<Vec<String>, StoreError>;
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

/// Packages of another registry that this one serves from a verified copy
/// (a mirror): the OCI face shows them beside its own, and their content
/// comes from the copy (fetched from the origin, and checked, when it is
/// not held yet). Implemented outside the engine, where the copy is kept.
pub trait Mirrored: Send + Sync + 'static {
    /// The name of the package held with log `log_id`, if one is.
    fn name_of(&self, log_id: &LogId) -> Option<PackageName>;
    /// The verified state of `name`, if it is mirrored here. Blocking.
    fn package(&self, name: &PackageName) -> Result<Option<PackageState>, StoreError>;
    /// The size of the mirrored release content `digest`, if it can be
    /// had. Blocking.
    fn content_size(&self, digest: &Hash) -> Result<Option<u64>, StoreError>;
    /// `len` bytes of the mirrored release content `digest` from `start`.
    /// Blocking.
    fn read_content(
        &self,
        digest: &Hash,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError>;
    /// The origin's offline proof (`c2sp.org/tlog-proof@v1`) of `version`
    /// of the mirrored `name`, if it can be had and proves the release the
    /// mirror verified. Blocking.
    fn release_proof(
        &self,
        name: &PackageName,
        version: &cairn_protocol::Version,
    ) -> Result<Option<String>, StoreError>;
    /// What the origin took down that names content `digest`, and why
    /// (its verified notice log): the copy is not served either.
    fn taken_down(&self, digest: &Hash) -> Option<(String, String)>;
    /// What a fork of mirrored `namespace` (or only of `package`, in it)
    /// takes: the origin, its verified checkpoint, and every package's (or
    /// that package's) verified records. Blocking.
    fn fork_source(
        &self,
        namespace: &str,
        package: Option<&PackageName>,
    ) -> Result<Option<ForkSource>, StoreError>;
    /// Stops following the origin of `namespace` (or only of `package`):
    /// it was forked.
    fn stop(&self, namespace: &str, package: Option<&PackageName>);
    /// How each mirror stands.
    fn reports(&self) -> Vec<MirrorReport>;
}

/// How one mirror stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorReport {
    /// The origin registry.
    pub origin: String,
    /// The namespace mirrored.
    pub namespace: String,
    /// Which of its packages (a glob), if not all.
    pub packages: Option<String>,
    /// Whether all content is fetched ahead (else on demand).
    pub content_all: bool,
    /// The log length of the origin's latest verified checkpoint.
    pub checkpoint_length: Option<u64>,
    /// When the origin was last reached and verified (Unix seconds).
    pub last_success: Option<u64>,
    /// Packages held.
    pub packages_held: u64,
    /// The last failure to reach the origin, if the latest round failed.
    pub error: Option<String>,
    /// Set when the origin was caught answering inconsistently: the mirror
    /// stopped updating; what was proven false, and the evidence file.
    pub stopped: Option<String>,
}

/// The history a fork takes over, as a mirror verified it.
pub struct ForkSource {
    /// The origin registry.
    pub origin: String,
    /// The length of the origin's verified checkpoint.
    pub log_length: u64,
    /// Its log root.
    pub log_root: Hash,
    /// Every mirrored package with its records, oldest first.
    pub packages: Vec<(
        PackageName,
        Vec<cairn_protocol::Envelope<cairn_protocol::package::PackageRecord>>,
    )>,
}
