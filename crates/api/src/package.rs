//! `POST /v1/package/{logId}/record` (publish), `GET
//! /v1/package/{logId}/record/{recordId}` (where a record stands) and the
//! content upload the registry asks for while a record is sourcing.

use std::collections::BTreeMap;

use cairn_protocol::{Envelope, Hash, LogId, PackageName, Record, RecordId};
use serde::{Deserialize, Serialize};

use crate::content::ContentSource;
use crate::fetch::EnvelopeBody;
use crate::{parse_field, paths, WireError};

/// The body of a publish: the package, its signed record, and (unused by
/// Cairn, which sources content itself) content sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRecordRequest {
    /// The package name, `namespace:name`.
    pub package_name: String,
    /// The signed record.
    pub record: EnvelopeBody,
    /// Where the record's content can be fetched, by digest (left out when
    /// empty; Cairn ignores it and asks for uploads instead).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub content_sources: BTreeMap<String, Vec<ContentSource>>,
}

impl PublishRecordRequest {
    /// A publish of `envelope` to `name`'s log.
    pub fn new<R: Record>(name: &PackageName, envelope: &Envelope<R>) -> PublishRecordRequest {
        PublishRecordRequest {
            package_name: name.to_string(),
            record: EnvelopeBody::new(envelope),
            content_sources: BTreeMap::new(),
        }
    }

    /// The package name, if valid.
    pub fn package_name(&self) -> Result<PackageName, WireError> {
        parse_field("packageName", "package name", &self.package_name)
    }
}

/// An endpoint to upload missing content to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UploadEndpoint {
    /// An HTTP request with the bytes as its body.
    #[serde(rename_all = "camelCase")]
    Http {
        /// `POST` or `PUT`.
        method: String,
        /// Where (a path on the registry, or a full URL).
        url: String,
        /// Headers to send (`authorization`, `content-type`); left out when
        /// empty.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

/// How to provide one missing piece of content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingContent {
    /// Endpoints that take the upload.
    pub upload: Vec<UploadEndpoint>,
}

impl MissingContent {
    /// The URL of the first HTTP upload endpoint.
    pub fn upload_url(&self) -> Option<&str> {
        self.upload.first().map(|endpoint| match endpoint {
            UploadEndpoint::Http { url, .. } => url.as_str(),
        })
    }
}

/// Where a record stands, tagged by `state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum PackageRecordState {
    /// Accepted; waiting for content, keyed by digest.
    #[serde(rename_all = "camelCase")]
    Sourcing {
        /// What to upload, and where, by digest.
        missing_content: BTreeMap<String, MissingContent>,
    },
    /// In the registry log, not yet covered by a checkpoint.
    Processing,
    /// Refused after it was accepted.
    #[serde(rename_all = "camelCase")]
    Rejected {
        /// Why.
        reason: String,
    },
    /// Covered by a checkpoint.
    #[serde(rename_all = "camelCase")]
    Published {
        /// Its index in the registry log.
        registry_index: u64,
    },
}

/// The answer of a publish (202) and of a record's status: the record id
/// and its state, `{"recordId": ..., "state": ..., ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageRecord {
    /// The record.
    pub record_id: String,
    /// Where it stands.
    #[serde(flatten)]
    pub state: PackageRecordState,
}

impl PackageRecord {
    /// A record waiting for `missing` content: each digest gets one upload
    /// endpoint, `POST` to [`paths::content_upload`].
    pub fn sourcing<'a>(
        log_id: &LogId,
        record_id: &RecordId,
        missing: impl IntoIterator<Item = &'a Hash>,
    ) -> PackageRecord {
        let missing_content = missing
            .into_iter()
            .map(|digest| {
                let endpoint = UploadEndpoint::Http {
                    method: "POST".to_owned(),
                    url: paths::content_upload(log_id, record_id, digest),
                    headers: BTreeMap::new(),
                };
                (
                    digest.to_string(),
                    MissingContent {
                        upload: vec![endpoint],
                    },
                )
            })
            .collect();
        PackageRecord::new(record_id, PackageRecordState::Sourcing { missing_content })
    }

    /// A record in the log, not yet checkpointed.
    pub fn processing(record_id: &RecordId) -> PackageRecord {
        PackageRecord::new(record_id, PackageRecordState::Processing)
    }

    /// A record covered by a checkpoint, at `registry_index`.
    pub fn published(record_id: &RecordId, registry_index: u64) -> PackageRecord {
        PackageRecord::new(record_id, PackageRecordState::Published { registry_index })
    }

    /// A record refused after acceptance.
    pub fn rejected(record_id: &RecordId, reason: impl Into<String>) -> PackageRecord {
        PackageRecord::new(
            record_id,
            PackageRecordState::Rejected {
                reason: reason.into(),
            },
        )
    }

    fn new(record_id: &RecordId, state: PackageRecordState) -> PackageRecord {
        PackageRecord {
            record_id: record_id.to_string(),
            state,
        }
    }

    /// The record id, if valid.
    pub fn record_id(&self) -> Result<RecordId, WireError> {
        parse_field("recordId", "record id", &self.record_id)
    }

    /// The missing content (empty unless sourcing): each digest with the
    /// URL of its first HTTP upload endpoint.
    pub fn missing_content(&self) -> Result<Vec<(Hash, &str)>, WireError> {
        let PackageRecordState::Sourcing { missing_content } = &self.state else {
            return Ok(Vec::new());
        };
        missing_content
            .iter()
            .map(|(digest, missing)| {
                let digest = parse_field("missingContent", "digest", digest)?;
                let url = missing.upload_url().ok_or(WireError::Missing {
                    field: "missingContent",
                    what: "HTTP upload endpoint",
                })?;
                Ok((digest, url))
            })
            .collect()
    }
}

/// The answer of a content upload (201): the digest stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedContent {
    /// The digest of the bytes received, `sha256:<hex>`.
    pub digest: String,
}

impl UploadedContent {
    /// The answer for `digest`.
    pub fn new(digest: &Hash) -> UploadedContent {
        UploadedContent {
            digest: digest.to_string(),
        }
    }
}
