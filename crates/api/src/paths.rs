//! The paths of the API as Cairn serves it, absolute on the registry's
//! URL. The constants and functions give concrete paths; [`route`] gives
//! the same paths as templates with named segments (`{log_id}`) for a
//! router.

use cairn_protocol::{Hash, LogId, PackageName, RecordId};

/// `GET`: the latest signed checkpoint.
pub const FETCH_CHECKPOINT: &str = "/v1/fetch/checkpoint";
/// `POST`: records of logs after fetch tokens.
pub const FETCH_LOGS: &str = "/v1/fetch/logs";
/// `POST`: package names of log ids.
pub const FETCH_NAMES: &str = "/v1/fetch/names";
/// `POST`: a consistency proof between two log lengths.
pub const PROVE_CONSISTENCY: &str = "/v1/proof/consistency";
/// `POST`: inclusion proofs of leaves in a checkpoint.
pub const PROVE_INCLUSION: &str = "/v1/proof/inclusion";
/// `POST`: whether a checkpoint is the registry's.
pub const VERIFY_CHECKPOINT: &str = "/v1/verify/checkpoint";
/// `GET`: the pages of the ledger.
pub const LEDGER_SOURCES: &str = "/v1/ledger";
/// `GET`: the discovery document.
pub const WELL_KNOWN: &str = "/.well-known/wasm-pkg/registry.json";

/// `POST`: publish a record to `log_id`.
pub fn publish_package_record(log_id: &LogId) -> String {
    format!("/v1/package/{log_id}/record")
}

/// `GET`: where a record stands.
pub fn package_record(log_id: &LogId, record_id: &RecordId) -> String {
    format!("/v1/package/{log_id}/record/{record_id}")
}

/// `POST`: upload the content `digest` a sourcing record waits for (the
/// URL of its upload endpoint).
pub fn content_upload(log_id: &LogId, record_id: &RecordId, digest: &Hash) -> String {
    format!("/v1/package/{log_id}/record/{record_id}/content/{digest}")
}

/// `GET`: where the content `digest` can be downloaded.
pub fn content_sources(digest: &Hash) -> String {
    format!("/v1/content/{digest}")
}

/// `GET`: the bytes of `digest` (`/content/sha256-<hex>`), the URL
/// [`content_sources`] gives.
pub fn content_file(digest: &Hash) -> String {
    format!("/content/{}", digest.to_string().replacen(':', "-", 1))
}

/// The digest text a [`content_file`] name (`sha256-<hex>`) stands for
/// (`sha256:<hex>`), to be parsed as a `Hash`.
pub fn content_file_digest(name: &str) -> String {
    name.replacen('-', ":", 1)
}

/// `GET`: the page of packed ledger leaves from registry index `start`.
pub fn ledger_records(start: u64) -> String {
    format!("/v1/ledger/records/{start}")
}

/// `GET`: the attestation log of a package (Cairn's own).
pub fn attestations(name: &PackageName) -> String {
    format!("/v1/attestations/{name}")
}

/// The parametrised paths as router templates; segment names in braces.
pub mod route {
    /// [`super::publish_package_record`].
    pub const PUBLISH_PACKAGE_RECORD: &str = "/v1/package/{log_id}/record";
    /// [`super::package_record`].
    pub const PACKAGE_RECORD: &str = "/v1/package/{log_id}/record/{record_id}";
    /// [`super::content_upload`].
    pub const CONTENT_UPLOAD: &str = "/v1/package/{log_id}/record/{record_id}/content/{digest}";
    /// [`super::content_sources`].
    pub const CONTENT_SOURCES: &str = "/v1/content/{digest}";
    /// [`super::content_file`] (`name` is `sha256-<hex>`).
    pub const CONTENT_FILE: &str = "/content/{name}";
    /// [`super::ledger_records`].
    pub const LEDGER_RECORDS: &str = "/v1/ledger/records/{start}";
    /// [`super::attestations`].
    pub const ATTESTATIONS: &str = "/v1/attestations/{package}";
}
