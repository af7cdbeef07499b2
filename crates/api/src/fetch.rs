//! `POST /v1/fetch/logs` and `POST /v1/fetch/names`, and records as the
//! registry serves them.
//!
//! Cairn's fetch tokens are registry indexes written as decimal text
//! ([`fetch_token`], [`token_index`]); to a client they are opaque.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::{Envelope, LogId, PackageName, Record};
use serde::{Deserialize, Serialize};

use crate::{parse_field, WireError};

/// The fetch token of the record at registry index `index`.
pub fn fetch_token(index: u64) -> String {
    index.to_string()
}

/// The registry index a Cairn fetch token stands for; `None` for a token
/// Cairn never gave out.
pub fn token_index(token: &str) -> Option<u64> {
    token.parse().ok()
}

fn decode_envelope<R: Record>(
    bytes_field: &'static str,
    field: &'static str,
    content_bytes: &str,
    key_id: &str,
    signature: &str,
) -> Result<Envelope<R>, WireError> {
    let bytes = STANDARD
        .decode(content_bytes.as_bytes())
        .map_err(|source| WireError::Base64 {
            field: bytes_field,
            source,
        })?;
    Envelope::from_parts(bytes, key_id, signature)
        .map_err(|source| WireError::Envelope { field, source })
}

/// A signed record as sent to the registry (the reference's
/// `ProtoEnvelopeBody`): `{"contentBytes", "keyId", "signature"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeBody {
    /// The record's protobuf bytes, base64.
    pub content_bytes: String,
    /// The signing key's id, `sha256:<hex>`.
    pub key_id: String,
    /// The signature, `ecdsa-p256:<base64>`.
    pub signature: String,
}

impl EnvelopeBody {
    /// The wire form of `envelope`.
    pub fn new<R: Record>(envelope: &Envelope<R>) -> EnvelopeBody {
        EnvelopeBody {
            content_bytes: STANDARD.encode(envelope.content_bytes()),
            key_id: envelope.key_id().to_string(),
            signature: envelope.signature().to_string(),
        }
    }

    /// The envelope, if its parts decode (the signature is not checked).
    /// Errors name the fields as they sit in a publish request (`record`).
    pub fn envelope<R: Record>(&self) -> Result<Envelope<R>, WireError> {
        decode_envelope(
            "record.contentBytes",
            "record",
            &self.content_bytes,
            &self.key_id,
            &self.signature,
        )
    }
}

/// A record as the registry publishes it (the reference's
/// `PublishedRecord`): the signed envelope, its index in the registry log
/// and the fetch token to page on from it. The client keeps records in
/// this shape in its trusted state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    /// The record's protobuf bytes, base64.
    pub content_bytes: String,
    /// The signing key's id.
    pub key_id: String,
    /// The signature.
    pub signature: String,
    /// Its index in the registry log.
    pub registry_index: u64,
    /// The fetch token for the records after it. Cairn always sends it
    /// (the reference client requires it); absent from trusted-state files
    /// written before the client kept it, and then left out again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_token: Option<String>,
}

impl PublishedRecord {
    /// The wire form of `envelope` at registry index `index`.
    pub fn new<R: Record>(envelope: &Envelope<R>, index: u64) -> PublishedRecord {
        PublishedRecord::from_parts(
            envelope.content_bytes(),
            &envelope.key_id().to_string(),
            &envelope.signature().to_string(),
            index,
        )
    }

    /// The wire form of a stored record's parts (not decoded again).
    pub fn from_parts(
        content_bytes: &[u8],
        key_id: &str,
        signature: &str,
        index: u64,
    ) -> PublishedRecord {
        PublishedRecord {
            content_bytes: STANDARD.encode(content_bytes),
            key_id: key_id.to_owned(),
            signature: signature.to_owned(),
            registry_index: index,
            fetch_token: Some(fetch_token(index)),
        }
    }

    /// The envelope, if its parts decode (the signature is not checked).
    pub fn envelope<R: Record>(&self) -> Result<Envelope<R>, WireError> {
        decode_envelope(
            "contentBytes",
            "record",
            &self.content_bytes,
            &self.key_id,
            &self.signature,
        )
    }
}

/// The body of `POST /v1/fetch/logs`: the records after the given fetch
/// tokens, up to the checkpoint at `logLength`.
///
/// Unknown fields are refused. `operator` is written even when `null` and
/// `packages` even when empty (as Cairn's client always sent them);
/// `limit` only when set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchLogsRequest {
    /// The length of the checkpoint to fetch up to.
    pub log_length: u64,
    /// The most records to answer with (the registry may answer fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u16>,
    /// The fetch token of the last operator record known; `None` for all.
    #[serde(default)]
    pub operator: Option<String>,
    /// Per package log id, the fetch token of the last record known.
    #[serde(default)]
    pub packages: BTreeMap<String, Option<String>>,
}

impl FetchLogsRequest {
    /// A request for the records after the given registry indexes (`None`:
    /// from the start) up to `log_length`.
    pub fn after(
        log_length: u64,
        operator: Option<u64>,
        packages: &[(LogId, Option<u64>)],
    ) -> FetchLogsRequest {
        FetchLogsRequest {
            log_length,
            limit: None,
            operator: operator.map(fetch_token),
            packages: packages
                .iter()
                .map(|(id, after)| (id.to_string(), after.map(fetch_token)))
                .collect(),
        }
    }

    /// A request for records after the given fetch tokens (as the
    /// registry handed them out: opaque to a client).
    pub fn after_tokens(
        log_length: u64,
        operator: Option<String>,
        packages: &[(LogId, Option<String>)],
    ) -> FetchLogsRequest {
        FetchLogsRequest {
            log_length,
            limit: None,
            operator,
            packages: packages
                .iter()
                .map(|(id, token)| (id.to_string(), token.clone()))
                .collect(),
        }
    }

    /// The package logs asked for, each with its fetch token.
    pub fn package_logs(&self) -> Result<Vec<(LogId, Option<&str>)>, WireError> {
        self.packages
            .iter()
            .map(|(id, token)| Ok((parse_field("packages", "log id", id)?, token.as_deref())))
            .collect()
    }
}

/// A warning in a fetch answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchWarning {
    /// What to tell the user.
    pub message: String,
}

/// The answer of `POST /v1/fetch/logs` (one page).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchLogsResponse {
    /// Whether more records are waiting (ask again from the last tokens).
    #[serde(default)]
    pub more: bool,
    /// Operator-log records.
    #[serde(default)]
    pub operator: Vec<PublishedRecord>,
    /// Package-log records by log id.
    #[serde(default)]
    pub packages: BTreeMap<String, Vec<PublishedRecord>>,
    /// Warnings (Cairn sends none; left out when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FetchWarning>,
}

/// The body of `POST /v1/fetch/names`: the log ids whose package names are
/// wanted. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchPackageNamesRequest {
    /// Package log ids.
    pub packages: Vec<String>,
}

impl FetchPackageNamesRequest {
    /// A request for the names of `ids`.
    pub fn new(ids: &[LogId]) -> FetchPackageNamesRequest {
        FetchPackageNamesRequest {
            packages: ids.iter().map(LogId::to_string).collect(),
        }
    }

    /// The log ids asked for.
    pub fn log_ids(&self) -> Result<Vec<LogId>, WireError> {
        self.packages
            .iter()
            .map(|id| parse_field("packages", "log id", id))
            .collect()
    }
}

/// The answer of `POST /v1/fetch/names`: each log id asked for, with its
/// package name or `null` when the registry does not know it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchPackageNamesResponse {
    /// Package name (or `null`) by log id.
    pub packages: BTreeMap<String, Option<String>>,
}

impl FetchPackageNamesResponse {
    /// The answer for these log ids and names.
    pub fn new<'a>(
        names: impl IntoIterator<Item = (&'a LogId, Option<&'a PackageName>)>,
    ) -> FetchPackageNamesResponse {
        FetchPackageNamesResponse {
            packages: names
                .into_iter()
                .map(|(id, name)| (id.to_string(), name.map(|n| n.to_string())))
                .collect(),
        }
    }
}
