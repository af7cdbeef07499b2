//! Offline proofs of releases: a C2SP `tlog-proof` whose extra data is the
//! package's name and the signed record that released the content, so that
//! anyone holding the file, the proof and a trust policy can check, with no
//! network, that the registry's log holds a release of exactly these bytes.
//!
//! The extra data is `cairn-release/v1`, a newline, the package name, a
//! newline, then the record's protobuf `Envelope` (content bytes, key id,
//! signature). The leaf the proof proves is the Warg log leaf of the
//! package's log id and the record's id, both computed here from the extra
//! data: nothing in it is trusted until the inclusion path binds that leaf
//! to a checkpoint the policy trusts.

use cairn_transparency::tlog_proof::{ProofError, TlogProof};
use cairn_transparency::witness::Policy;
use cairn_transparency::{hash_leaf, Hash};
use thiserror::Error;

use crate::checkpoint::LogLeaf;
use crate::ids::{LogId, PackageName};
use crate::package::{PackageEntry, PackageRecord};
use crate::record::{DecodeError, Envelope};
use crate::time::Timestamp;
use crate::KeyId;
use semver::Version;

const TAG: &str = "cairn-release/v1";

/// Why a release proof was refused.
#[derive(Debug, Error)]
pub enum ReleaseProofError {
    /// The proof carries no release (no extra data, or not Cairn's).
    #[error("the proof carries no Cairn release record: {0}")]
    Extra(&'static str),
    /// The package name in it is not a package name.
    #[error("the proof names no valid package: {0}")]
    Name(#[from] crate::ids::NameError),
    /// The record in it does not decode.
    #[error("the proof's record does not decode: {0}")]
    Record(#[from] DecodeError),
    /// The record releases no such content.
    #[error("the proof's record releases no content with digest {0}")]
    NotReleased(Hash),
    /// The record releases the content, but not as the version expected.
    #[error("the content was released as {found}, not {expected}")]
    OtherVersion {
        /// The version asked for.
        expected: Version,
        /// The version the record released.
        found: Version,
    },
    /// The package is another than the one expected.
    #[error("the proof is for package {found}, not {expected}")]
    OtherPackage {
        /// The package asked for.
        expected: PackageName,
        /// The package the proof names.
        found: PackageName,
    },
    /// The proof itself did not verify.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// The release a proof carries: the package and its signed record.
#[derive(Clone)]
pub struct ReleaseRecord {
    /// The package.
    pub package: PackageName,
    /// The record that releases the content.
    pub envelope: Envelope<PackageRecord>,
}

impl ReleaseRecord {
    /// The proof's extra data for this release.
    pub fn extra(&self) -> Vec<u8> {
        let mut out = format!("{TAG}\n{}\n", self.package).into_bytes();
        out.extend_from_slice(&self.envelope.encode());
        out
    }

    /// Reads a release from a proof's extra data.
    pub fn from_extra(extra: &[u8]) -> Result<ReleaseRecord, ReleaseProofError> {
        let rest = extra
            .strip_prefix(TAG.as_bytes())
            .and_then(|r| r.strip_prefix(b"\n"))
            .ok_or(ReleaseProofError::Extra(
                "it does not start with cairn-release/v1",
            ))?;
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(ReleaseProofError::Extra("no package name"))?;
        let name = std::str::from_utf8(&rest[..end])
            .map_err(|_| ReleaseProofError::Extra("the package name is not UTF-8"))?;
        let package = PackageName::new(name)?;
        let envelope = Envelope::<PackageRecord>::decode(&rest[end + 1..])?;
        Ok(ReleaseRecord { package, envelope })
    }

    /// The log leaf of this record.
    pub fn leaf(&self) -> LogLeaf {
        LogLeaf {
            log_id: LogId::package(&self.package),
            record_id: self.envelope.record_id(),
        }
    }

    /// The versions this record releases, with their content digests.
    pub fn releases(&self) -> impl Iterator<Item = (&Version, &Hash)> {
        self.envelope
            .contents()
            .entries
            .iter()
            .filter_map(|entry| match entry {
                PackageEntry::Release { version, content } => Some((version, content)),
                _ => None,
            })
    }
}

/// What a verified release proof establishes.
#[derive(Clone, Debug)]
pub struct VerifiedRelease {
    /// The package.
    pub package: PackageName,
    /// The version the content was released as.
    pub version: Version,
    /// The content's digest.
    pub content: Hash,
    /// The record's index in the registry log.
    pub index: u64,
    /// The log's origin (the registry's C2SP name).
    pub origin: String,
    /// The size of the checkpoint the proof leads to.
    pub checkpoint_size: u64,
    /// The witnesses of the policy that cosigned it.
    pub witnesses: Vec<String>,
    /// The key that signed the release record.
    pub signer: KeyId,
    /// When the publisher signed it.
    pub timestamp: Timestamp,
}

/// Makes the offline proof of a release from its parts.
pub fn release_proof(
    release: &ReleaseRecord,
    index: u64,
    path: Vec<Hash>,
    checkpoint: cairn_transparency::note::Note,
) -> TlogProof {
    TlogProof {
        extra: Some(release.extra()),
        index,
        path,
        checkpoint,
    }
}

/// Checks that `proof` shows a release of the content `content` in a log
/// `policy` trusts (and, if given, of that package and version).
///
/// This proves the registry logged the record; that the record was
/// allowed by its package's history (the key held the release permission)
/// is what the registry checked before logging it, and what monitors
/// replaying the log check after.
pub fn verify_release(
    proof: &TlogProof,
    policy: &Policy,
    content: &Hash,
    expected: Option<(&PackageName, Option<&Version>)>,
) -> Result<VerifiedRelease, ReleaseProofError> {
    let extra = proof
        .extra
        .as_deref()
        .ok_or(ReleaseProofError::Extra("the proof has no extra data"))?;
    let release = ReleaseRecord::from_extra(extra)?;
    let version = release
        .releases()
        .find(|(_, c)| *c == content)
        .map(|(v, _)| v.clone())
        .ok_or(ReleaseProofError::NotReleased(*content))?;
    if let Some((package, wanted)) = expected {
        if *package != release.package {
            return Err(ReleaseProofError::OtherPackage {
                expected: package.clone(),
                found: release.package,
            });
        }
        if let Some(wanted) = wanted.filter(|w| **w != version) {
            return Err(ReleaseProofError::OtherVersion {
                expected: wanted.clone(),
                found: version,
            });
        }
    }
    let leaf = hash_leaf(&release.leaf().encode());
    let (checkpoint, witnesses) = proof.verify(&leaf, policy)?;
    Ok(VerifiedRelease {
        version,
        content: *content,
        index: proof.index,
        origin: checkpoint.origin,
        checkpoint_size: checkpoint.size,
        witnesses,
        signer: *release.envelope.key_id(),
        timestamp: release.envelope.contents().timestamp,
        package: release.package,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::HashAlgorithm;
    use crate::keys::PrivateKey;
    use cairn_transparency::log::{rfc9162, VecLog};
    use cairn_transparency::note::{Checkpoint, Note, Signer, ED25519};

    fn record(key: &PrivateKey, content: Hash) -> Envelope<PackageRecord> {
        Envelope::sign(
            key,
            PackageRecord {
                prev: None,
                version: crate::package::PACKAGE_RECORD_VERSION,
                timestamp: Timestamp::new(1_700_000_000, 0),
                entries: vec![
                    PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    },
                    PackageEntry::Release {
                        version: Version::new(1, 2, 3),
                        content,
                    },
                ],
            },
        )
    }

    #[test]
    fn a_release_proof_binds_the_file_to_the_log() {
        let key = PrivateKey::generate();
        let content = Hash::of(b"the component's bytes");
        let release = ReleaseRecord {
            package: PackageName::new("acme:greeter").unwrap(),
            envelope: record(&key, content),
        };
        let mut log = VecLog::new();
        for i in 0..9u8 {
            log.push(hash_leaf(&[i]));
        }
        let index = log.len();
        log.push(hash_leaf(&release.leaf().encode()));
        log.push(hash_leaf(b"after"));
        let size = log.len();
        let signer = Signer::from_seed("registry.example", ED25519, [3; 32]).unwrap();
        let text = Checkpoint {
            origin: "registry.example".into(),
            size,
            root: log.root(),
            extensions: Vec::new(),
        }
        .text();
        let note = Note {
            signatures: vec![signer.sign(&text)],
            text,
        };
        let path = rfc9162::inclusion_proof(&log, index, size).unwrap();
        let proof = release_proof(&release, index, path, note);
        let parsed = TlogProof::parse(proof.text().as_bytes()).unwrap();
        let policy = Policy::parse(&format!("log {}\nquorum none\n", signer.verifier())).unwrap();

        let name = PackageName::new("acme:greeter").unwrap();
        let verified = verify_release(&parsed, &policy, &content, Some((&name, None))).unwrap();
        assert_eq!(verified.version, Version::new(1, 2, 3));
        assert_eq!((verified.index, verified.checkpoint_size), (index, size));
        assert_eq!(verified.signer, key.public_key().id());

        // Other bytes, another package or version, or a tampered record fail.
        let other = Hash::of(b"other bytes");
        assert!(matches!(
            verify_release(&parsed, &policy, &other, None),
            Err(ReleaseProofError::NotReleased(_))
        ));
        let stranger = PackageName::new("evil:greeter").unwrap();
        assert!(verify_release(&parsed, &policy, &content, Some((&stranger, None))).is_err());
        let v2 = Version::new(2, 0, 0);
        assert!(verify_release(&parsed, &policy, &content, Some((&name, Some(&v2)))).is_err());
        let forged = ReleaseRecord {
            package: name.clone(),
            envelope: record(&PrivateKey::generate(), content),
        };
        let mut swapped = parsed.clone();
        swapped.extra = Some(forged.extra());
        assert!(matches!(
            verify_release(&swapped, &policy, &content, None),
            Err(ReleaseProofError::Proof(_))
        ));
        swapped.extra = Some(b"cairn-release/v1\nacme:greeter\n\xff\xff".to_vec());
        assert!(verify_release(&swapped, &policy, &content, None).is_err());
        swapped.extra = None;
        assert!(verify_release(&swapped, &policy, &content, None).is_err());
    }
}
