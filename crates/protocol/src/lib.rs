//! The Warg v1 protocol as pure Rust: keys and signatures, identifiers,
//! records in signed envelopes, and the package and operator log state
//! machines. No IO, no async, no clock: callers pass time in.
//!
//! Byte layouts, hashes, ids and signature prefixes are those of Warg v1, so
//! the reference crates accept what this crate produces and the reverse
//! (proven by `crates/interop`). Where Cairn is stricter than the reference
//! (content digests and key ids must be well-formed SHA-256 digests), the
//! stricter rule is documented on the type that applies it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation;
mod checkpoint;
mod encoding;
mod ids;
mod keys;
pub mod notice;
pub mod operator;
pub mod package;
pub mod proto;
mod record;
pub mod release_proof;
mod time;
mod validation;

pub use cairn_transparency::{Hash, HashParseError};
pub use checkpoint::{Checkpoint, LogLeaf, MapLeaf, SignedCheckpoint, TimestampedCheckpoint};
pub use ids::{
    check_kebab, validate_namespace, HashAlgorithm, LogId, NameError, PackageName, RecordId,
    UnsupportedHashAlgorithm,
};
pub use keys::{BadSignature, KeyId, KeyParseError, PrivateKey, PublicKey, Signature, ECDSA_P256};
pub use record::{signing_message, DecodeError, EntryError, Envelope, Record, SignatureChecked};
pub use semver::{Version, VersionReq};
pub use time::Timestamp;
pub use validation::{AnyPermission, Authorities, Head, Rule, ValidationError};
