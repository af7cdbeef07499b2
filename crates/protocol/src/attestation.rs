//! Cairn's attestation logs (not part of Warg v1). Every OCI artifact that
//! refers to a package's manifest through `subject` (a signature, an SBOM,
//! a review) is recorded in that package's attestation log, a hash chain of
//! records signed by the operator. Its leaves go into the same registry log
//! and map as package records, so an attestation cannot be removed or
//! rewritten without breaking the log's consistency proofs.
//!
//! The log id, record id and signature prefixes are Cairn's own
//! (`CAIRN-ATTESTATION-...`), so no attestation record can be taken for a
//! Warg package or operator record.

use prost::Message;
use thiserror::Error;

use crate::ids::{prefixed_hash, RecordId};
use crate::keys::{BadSignature, PublicKey};
use crate::record::{DecodeError, Envelope, Record};
use crate::time::Timestamp;
use crate::validation::{check_chain, Head, Rule};

/// What was attached, and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    /// The OCI digest of the manifest referred to (`sha256:<hex>`).
    pub subject: String,
    /// The OCI digest of the referring manifest.
    pub referrer: String,
    /// The referrer's artifact type (its `artifactType`, else its config's
    /// media type).
    pub artifact_type: String,
    /// The referrer's manifest media type.
    pub media_type: String,
    /// The referrer manifest's size in bytes.
    pub size: u64,
    /// The account that pushed it.
    pub account: String,
    /// For a signature or attestation the registry recognised (cosign,
    /// in-toto/DSSE), how it checked out; `None` for other artifacts and
    /// for records written before signatures were checked.
    pub signature: Option<SignatureCheck>,
}

/// How a recognised signature or attestation checked out at push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureCheck {
    /// `cosign` (a keyed signature) or `dsse` (an in-toto attestation).
    pub kind: String,
    /// `verified` (by a key the operator trusts) or `unverified`.
    pub verdict: String,
    /// The id of the trusted key that verified it (`sha256:<hex>` of its
    /// SubjectPublicKeyInfo); empty when unverified.
    pub key_id: String,
    /// That key's label, as the operator named it.
    pub key_label: String,
    /// An attestation's in-toto predicate type.
    pub predicate_type: String,
    /// Which digest the signed payload named: `manifest` or `layer`.
    pub matched: String,
}

/// One record of an attestation log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationRecord {
    /// The previous record of the log, `None` for the first.
    pub prev: Option<RecordId>,
    /// When the registry recorded it.
    pub timestamp: Timestamp,
    /// What it records.
    pub attestation: Attestation,
}

/// The protobuf form (Cairn's own message; field numbers fixed here).
#[derive(Clone, PartialEq, prost::Message)]
struct Proto {
    #[prost(string, optional, tag = "1")]
    prev: Option<String>,
    #[prost(uint32, tag = "2")]
    version: u32,
    #[prost(message, optional, tag = "3")]
    time: Option<prost_types::Timestamp>,
    #[prost(string, tag = "4")]
    subject: String,
    #[prost(string, tag = "5")]
    referrer: String,
    #[prost(string, tag = "6")]
    artifact_type: String,
    #[prost(string, tag = "7")]
    media_type: String,
    #[prost(uint64, tag = "8")]
    size: u64,
    #[prost(string, tag = "9")]
    account: String,
    // Added with signature checks: absent (empty) in older records, which
    // still decode and keep their record ids.
    #[prost(string, tag = "10")]
    signature_kind: String,
    #[prost(string, tag = "11")]
    verdict: String,
    #[prost(string, tag = "12")]
    key_id: String,
    #[prost(string, tag = "13")]
    key_label: String,
    #[prost(string, tag = "14")]
    predicate_type: String,
    #[prost(string, tag = "15")]
    matched: String,
}

impl Record for AttestationRecord {
    const SIGNATURE_PREFIX: &'static [u8] = b"CAIRN-ATTESTATION-RECORD-SIGNATURE-V0";

    fn encode(&self) -> Vec<u8> {
        let a = &self.attestation;
        let check = a.signature.clone().unwrap_or_default();
        Proto {
            prev: self.prev.map(|id| id.to_string()),
            version: 0,
            time: Some(self.timestamp.into()),
            subject: a.subject.clone(),
            referrer: a.referrer.clone(),
            artifact_type: a.artifact_type.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
            account: a.account.clone(),
            signature_kind: check.kind,
            verdict: check.verdict,
            key_id: check.key_id,
            key_label: check.key_label,
            predicate_type: check.predicate_type,
            matched: check.matched,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let p = Proto::decode(bytes)?;
        let prev = p
            .prev
            .map(|text| text.parse())
            .transpose()
            .map_err(DecodeError::Prev)?;
        let timestamp = p.time.ok_or(DecodeError::MissingTimestamp)?.into();
        let signature = (!p.signature_kind.is_empty()).then_some(SignatureCheck {
            kind: p.signature_kind,
            verdict: p.verdict,
            key_id: p.key_id,
            key_label: p.key_label,
            predicate_type: p.predicate_type,
            matched: p.matched,
        });
        Ok(AttestationRecord {
            prev,
            timestamp,
            attestation: Attestation {
                subject: p.subject,
                referrer: p.referrer,
                artifact_type: p.artifact_type,
                media_type: p.media_type,
                size: p.size,
                account: p.account,
                signature,
            },
        })
    }

    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::from(prefixed_hash(
            b"CAIRN-ATTESTATION-LOG-RECORD-V0:",
            content_bytes,
        ))
    }
}

/// Why an attestation record does not extend a log.
#[derive(Debug, Error)]
pub enum AttestationError {
    /// The hash chain or timestamps are broken.
    #[error(transparent)]
    Chain(#[from] Rule),
    /// Not signed by the operator's key.
    #[error("the attestation is not signed by the operator: {0}")]
    Signature(#[from] BadSignature),
}

/// An attestation log's state: its head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationLog {
    head: Option<Head>,
}

impl AttestationLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest record, if any.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The log after `envelope`, if it extends this one and `operator`
    /// signed it.
    pub fn validate(
        &self,
        envelope: &Envelope<AttestationRecord>,
        operator: &PublicKey,
    ) -> Result<AttestationLog, AttestationError> {
        envelope.check_signature(operator)?;
        let record = envelope.contents();
        check_chain(
            self.head.as_ref(),
            record.prev.as_ref(),
            0,
            record.timestamp,
        )?;
        Ok(AttestationLog {
            head: Some(Head {
                record_id: envelope.record_id(),
                timestamp: record.timestamp,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    fn record(prev: Option<RecordId>, seconds: i64, referrer: &str) -> AttestationRecord {
        AttestationRecord {
            prev,
            timestamp: Timestamp::new(seconds, 0),
            attestation: Attestation {
                subject: format!("sha256:{}", "a".repeat(64)),
                referrer: referrer.into(),
                artifact_type: "application/vnd.example.signature".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 321,
                account: "ci".into(),
                signature: None,
            },
        }
    }

    #[test]
    fn signature_checks_round_trip_and_old_records_decode() {
        let mut signed = record(None, 10, "sha256:r1");
        signed.attestation.signature = Some(SignatureCheck {
            kind: "cosign".into(),
            verdict: "verified".into(),
            key_id: "sha256:abcd".into(),
            key_label: "ci".into(),
            predicate_type: String::new(),
            matched: "manifest".into(),
        });
        assert_eq!(AttestationRecord::decode(&signed.encode()).unwrap(), signed);
        // A record without a check encodes exactly as before the fields
        // existed (proto3 leaves empty strings out), so old ids hold.
        let plain = record(None, 10, "sha256:r1");
        let bytes = plain.encode();
        assert!(!bytes.windows(6).any(|w| w == b"cosign"));
        assert_eq!(
            AttestationRecord::decode(&bytes)
                .unwrap()
                .attestation
                .signature,
            None
        );
    }

    #[test]
    fn records_round_trip_and_chain() {
        let operator = PrivateKey::generate();
        let first = Envelope::sign(&operator, record(None, 10, "sha256:r1"));
        let decoded = Envelope::<AttestationRecord>::from_parts(
            first.content_bytes().to_vec(),
            &first.key_id().to_string(),
            &first.signature().to_string(),
        )
        .expect("decodes");
        assert_eq!(decoded.contents(), first.contents());
        assert_ne!(
            first.record_id(),
            RecordId::package_record(first.content_bytes()),
            "its own record id domain"
        );
        let log = AttestationLog::new()
            .validate(&first, operator.public_key())
            .expect("first record");
        let second = Envelope::sign(&operator, record(Some(first.record_id()), 11, "sha256:r2"));
        let log = log
            .validate(&second, operator.public_key())
            .expect("second record");
        assert_eq!(log.head().map(|h| h.record_id), Some(second.record_id()));

        // A fork, a record back in time and a foreign signer are refused.
        let fork = Envelope::sign(&operator, record(Some(first.record_id()), 12, "x"));
        assert!(log.validate(&fork, operator.public_key()).is_err());
        let early = Envelope::sign(&operator, record(Some(second.record_id()), 5, "x"));
        assert!(log.validate(&early, operator.public_key()).is_err());
        let other = PrivateKey::generate();
        let foreign = Envelope::sign(&other, record(Some(second.record_id()), 12, "x"));
        assert!(log.validate(&foreign, operator.public_key()).is_err());
    }
}
