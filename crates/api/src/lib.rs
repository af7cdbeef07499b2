//! The Warg v1 JSON API as Cairn serves it: the serde types of every
//! request and answer, the paths, and the error bodies; the server and the
//! client both speak through this crate, so the two cannot drift apart.
//!
//! The shapes and names are those of the reference `warg-api` 0.10 crate
//! (camelCase fields, base64 bytes, records tagged by `state`), plus Cairn's
//! own `/v1/attestations/{package}` answer and the
//! `/.well-known/wasm-pkg/registry.json` document. `crates/interop` proves
//! that `warg-api` 0.10 reads what these types write and the reverse.
//!
//! Ids, digests, keys and signatures travel as text, as on the wire; each
//! type that carries them converts to and from the protocol's types
//! (`SignedCheckpoint`, `Envelope<R>`, `Hash`, `LogId`, ...), and a field
//! that does not parse is a [`WireError`] naming it. No IO: no HTTP, no
//! async, no files.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attestation;
mod base64_bytes;
pub mod checkpoint;
pub mod content;
pub mod error;
pub mod fetch;
pub mod ledger;
pub mod monitor;
pub mod package;
pub mod paths;
pub mod proof;
pub mod well_known;

pub use checkpoint::{SignedCheckpointJson, TimestampedCheckpointJson};
pub use error::{EntityId, EntityType, ErrorBody};
pub use fetch::{EnvelopeBody, PublishedRecord};

use cairn_protocol::DecodeError;
use thiserror::Error;

/// A field of a wire type that does not hold what it should.
#[derive(Debug, Error)]
pub enum WireError {
    /// Text that does not parse as the id, digest, key or name it carries.
    #[error("invalid {what} `{text}` in `{field}`: {reason}")]
    Invalid {
        /// The JSON field (`contents.logRoot`, `packages`, ...).
        field: &'static str,
        /// What it should hold (`log id`, `digest`, ...).
        what: &'static str,
        /// The text found.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Bytes that are not standard base64.
    #[error("`{field}` is not base64: {source}")]
    Base64 {
        /// The JSON field.
        field: &'static str,
        /// What the decoder said.
        source: base64::DecodeError,
    },
    /// A signed envelope whose parts do not decode.
    #[error("`{field}` does not decode: {source}")]
    Envelope {
        /// The JSON field (or object) holding the envelope.
        field: &'static str,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// A required element that is absent (an upload endpoint, a source).
    #[error("`{field}` has no {what}")]
    Missing {
        /// The JSON field.
        field: &'static str,
        /// What is missing from it.
        what: &'static str,
    },
}

/// Parses `text` as a `T`, or says which field held what.
pub(crate) fn parse_field<T>(
    field: &'static str,
    what: &'static str,
    text: &str,
) -> Result<T, WireError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| WireError::Invalid {
        field,
        what,
        text: text.to_owned(),
        reason: e.to_string(),
    })
}
