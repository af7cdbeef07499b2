//! `GET /v1/attestations/{package}` (Cairn's own, not Warg v1): a package's
//! attestation log, oldest first, each record with its signed bytes so
//! anyone can check the operator's signature, recompute the record id and
//! ask `/v1/proof/inclusion` for the leaf `(logId, recordId)`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::attestation::AttestationRecord;
use cairn_protocol::{Envelope, LogId, PackageName};
use serde::{Deserialize, Serialize};

use crate::WireError;

/// The answer of `GET /v1/attestations/{package}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationsResponse {
    /// The package, `namespace:name`.
    pub package: String,
    /// Its attestation log's id.
    pub log_id: String,
    /// The records, oldest first.
    pub records: Vec<PublishedAttestation>,
}

impl AttestationsResponse {
    /// The answer for `name` with these records.
    pub fn new(name: &PackageName, records: Vec<PublishedAttestation>) -> AttestationsResponse {
        AttestationsResponse {
            package: name.to_string(),
            log_id: LogId::attestations(name).to_string(),
            records,
        }
    }
}

/// One attestation record: what it says, for reading, and the signed
/// envelope it says it in, for checking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedAttestation {
    /// Its registry index.
    pub index: u64,
    /// Its record id.
    pub record_id: String,
    /// The previous record's id; `null` for the first.
    pub prev: Option<String>,
    /// When the registry recorded it, RFC 3339.
    pub timestamp: String,
    /// The OCI digest of the manifest referred to.
    pub subject: String,
    /// The OCI digest of the referring manifest.
    pub referrer: String,
    /// The referrer's artifact type.
    pub artifact_type: String,
    /// The referrer's manifest media type.
    pub media_type: String,
    /// The referrer manifest's size in bytes.
    pub size: u64,
    /// The account that pushed it.
    pub account: String,
    /// The record's protobuf bytes, base64.
    pub content_bytes: String,
    /// The signing (operator) key's id.
    pub key_id: String,
    /// The signature.
    pub signature: String,
    /// For a cosign signature or an in-toto/DSSE attestation, how it
    /// checked out against the keys the operator trusts; absent for other
    /// artifacts (and for records made before signatures were checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// How a recognised signature or attestation checked out at push.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// `cosign` (a keyed signature) or `dsse` (an in-toto attestation).
    pub kind: String,
    /// `verified` or `unverified`.
    pub verdict: String,
    /// The trusted key that verified it (`sha256:<hex>` of its
    /// SubjectPublicKeyInfo), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// That key's label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// An attestation's in-toto predicate type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// Which digest the signed payload named: `manifest` or `layer`.
    pub matched: String,
}

impl PublishedAttestation {
    /// The wire form of `envelope` at registry index `index`;
    /// `timestamp` is the record's time as RFC 3339 text.
    pub fn new(
        index: u64,
        envelope: &Envelope<AttestationRecord>,
        timestamp: String,
    ) -> PublishedAttestation {
        let record = envelope.contents();
        let a = &record.attestation;
        PublishedAttestation {
            index,
            record_id: envelope.record_id().to_string(),
            prev: record.prev.map(|p| p.to_string()),
            timestamp,
            subject: a.subject.clone(),
            referrer: a.referrer.clone(),
            artifact_type: a.artifact_type.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
            account: a.account.clone(),
            content_bytes: STANDARD.encode(envelope.content_bytes()),
            key_id: envelope.key_id().to_string(),
            signature: envelope.signature().to_string(),
            verification: a.signature.as_ref().map(|c| {
                let some = |text: &String| (!text.is_empty()).then(|| text.clone());
                Verification {
                    kind: c.kind.clone(),
                    verdict: c.verdict.clone(),
                    key_id: some(&c.key_id),
                    key_label: some(&c.key_label),
                    predicate_type: some(&c.predicate_type),
                    matched: c.matched.clone(),
                }
            }),
        }
    }

    /// The signed envelope, if its parts decode (the signature is not
    /// checked, nor that the readable fields agree with it).
    pub fn envelope(&self) -> Result<Envelope<AttestationRecord>, WireError> {
        let bytes = STANDARD
            .decode(self.content_bytes.as_bytes())
            .map_err(|source| WireError::Base64 {
                field: "contentBytes",
                source,
            })?;
        Envelope::from_parts(bytes, &self.key_id, &self.signature).map_err(|source| {
            WireError::Envelope {
                field: "record",
                source,
            }
        })
    }
}
