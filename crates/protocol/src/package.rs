//! Package logs: records (init, grant, revoke, release, yank) and the state
//! machine that validates them.

use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use prost::Message;
use semver::{Version, VersionReq};

use crate::ids::{HashAlgorithm, RecordId};
use crate::keys::{KeyId, PublicKey};
use crate::proto::{self, package_entry::Contents};
use crate::record::{DecodeError, EntryError, Envelope, Record, SignatureChecked};
use crate::time::Timestamp;
use crate::validation::{check_chain, AnyPermission, Authorities, Head, Rule, ValidationError};
use crate::Hash;

/// The package record protocol version this crate speaks.
pub const PACKAGE_RECORD_VERSION: u32 = 0;

/// A permission on a package log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// May append `release` entries.
    Release,
    /// May append `yank` entries.
    Yank,
}

impl Permission {
    /// Every package permission (what `init` grants its key).
    pub const ALL: [Permission; 2] = [Permission::Release, Permission::Yank];

    fn from_proto(value: i32) -> Result<Self, EntryError> {
        match proto::PackagePermission::try_from(value) {
            Ok(proto::PackagePermission::Release) => Ok(Permission::Release),
            Ok(proto::PackagePermission::Yank) => Ok(Permission::Yank),
            _ => Err(EntryError::Permission(value)),
        }
    }

    fn to_proto(self) -> i32 {
        match self {
            Permission::Release => proto::PackagePermission::Release as i32,
            Permission::Yank => proto::PackagePermission::Yank as i32,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Release => "release",
            Permission::Yank => "yank",
        })
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "release" => Ok(Permission::Release),
            "yank" => Ok(Permission::Yank),
            other => Err(format!(
                "unknown package permission `{other}` (expected `release` or `yank`)"
            )),
        }
    }
}

/// One entry of a package record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageEntry {
    /// Starts the log; names the owner key, which gets every permission.
    Init {
        /// The hash algorithm linking the log.
        hash_algorithm: HashAlgorithm,
        /// The owner key (must be the signing key).
        key: PublicKey,
    },
    /// Gives `key` permissions the signer holds.
    Grant {
        /// The key receiving the permissions.
        key: PublicKey,
        /// The permissions.
        permissions: Vec<Permission>,
    },
    /// Takes permissions away from a key; the signer must hold them too.
    Revoke {
        /// The key losing the permissions.
        key_id: KeyId,
        /// The permissions.
        permissions: Vec<Permission>,
    },
    /// Releases a version with the content of the given digest.
    Release {
        /// The version, released at most once.
        version: Version,
        /// SHA-256 of the content.
        content: Hash,
    },
    /// Marks a released version as yanked.
    Yank {
        /// The version.
        version: Version,
    },
}

impl PackageEntry {
    fn required_permission(&self) -> Option<Permission> {
        match self {
            PackageEntry::Release { .. } => Some(Permission::Release),
            PackageEntry::Yank { .. } => Some(Permission::Yank),
            _ => None,
        }
    }

    fn from_proto(entry: proto::PackageEntry) -> Result<Self, EntryError> {
        let permissions = |values: Vec<i32>| {
            values
                .into_iter()
                .map(Permission::from_proto)
                .collect::<Result<Vec<_>, _>>()
        };
        let version = |text: String| {
            text.parse::<Version>()
                .map_err(|error| EntryError::Version { text, error })
        };
        Ok(match entry.contents.ok_or(EntryError::Empty)? {
            Contents::Init(init) => PackageEntry::Init {
                hash_algorithm: init.hash_algorithm.parse()?,
                key: init.key.parse()?,
            },
            Contents::GrantFlat(grant) => PackageEntry::Grant {
                key: grant.key.parse()?,
                permissions: permissions(grant.permissions)?,
            },
            Contents::RevokeFlat(revoke) => PackageEntry::Revoke {
                key_id: revoke.key_id.parse().map_err(EntryError::KeyId)?,
                permissions: permissions(revoke.permissions)?,
            },
            Contents::Release(release) => PackageEntry::Release {
                version: version(release.version)?,
                content: release
                    .content_hash
                    .parse()
                    .map_err(EntryError::ContentHash)?,
            },
            Contents::Yank(yank) => PackageEntry::Yank {
                version: version(yank.version)?,
            },
        })
    }

    fn to_proto(&self) -> proto::PackageEntry {
        let permissions = |ps: &[Permission]| ps.iter().map(|p| p.to_proto()).collect();
        let contents = match self {
            PackageEntry::Init {
                hash_algorithm,
                key,
            } => Contents::Init(proto::PackageInit {
                key: key.to_string(),
                hash_algorithm: hash_algorithm.to_string(),
            }),
            PackageEntry::Grant {
                key,
                permissions: p,
            } => Contents::GrantFlat(proto::PackageGrantFlat {
                key: key.to_string(),
                permissions: permissions(p),
            }),
            PackageEntry::Revoke {
                key_id,
                permissions: p,
            } => Contents::RevokeFlat(proto::PackageRevokeFlat {
                key_id: key_id.to_string(),
                permissions: permissions(p),
            }),
            PackageEntry::Release { version, content } => {
                Contents::Release(proto::PackageRelease {
                    version: version.to_string(),
                    content_hash: content.to_string(),
                })
            }
            PackageEntry::Yank { version } => Contents::Yank(proto::PackageYank {
                version: version.to_string(),
            }),
        };
        proto::PackageEntry {
            contents: Some(contents),
        }
    }
}

/// A package record: entries published together by one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRecord {
    /// The previous record of the log (none for the first).
    pub prev: Option<RecordId>,
    /// Protocol version, [`PACKAGE_RECORD_VERSION`].
    pub version: u32,
    /// When the publisher made the record.
    pub timestamp: Timestamp,
    /// The entries.
    pub entries: Vec<PackageEntry>,
}

impl Record for PackageRecord {
    const SIGNATURE_PREFIX: &'static [u8] = b"WARG-PACKAGE-RECORD-SIGNATURE-V0";

    fn encode(&self) -> Vec<u8> {
        proto::PackageRecord {
            prev: self.prev.map(|id| id.to_string()),
            version: self.version,
            time: Some(self.timestamp.into()),
            entries: self.entries.iter().map(PackageEntry::to_proto).collect(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let record = proto::PackageRecord::decode(bytes)?;
        let prev = record
            .prev
            .map(|text| text.parse())
            .transpose()
            .map_err(DecodeError::Prev)?;
        let timestamp = record.time.ok_or(DecodeError::MissingTimestamp)?.into();
        let entries = record
            .entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                PackageEntry::from_proto(entry).map_err(|error| DecodeError::Entry { index, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(PackageRecord {
            prev,
            version: record.version,
            timestamp,
            entries,
        })
    }

    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::package_record(content_bytes)
    }
}

/// A yank of a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Yank {
    /// The key that yanked.
    pub by: KeyId,
    /// The yank record's timestamp.
    pub timestamp: Timestamp,
}

/// A released version. Yanked releases keep their content digest: a yanked
/// version stays fetchable by exact version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The record that released it.
    pub record_id: RecordId,
    /// The version.
    pub version: Version,
    /// The releasing key.
    pub by: KeyId,
    /// The release record's timestamp.
    pub timestamp: Timestamp,
    /// SHA-256 of the content.
    pub content: Hash,
    /// Set once yanked.
    pub yanked: Option<Yank>,
}

/// How a record's signature is treated during validation.
#[derive(Clone, Copy)]
enum Signature<'a> {
    /// Verified, unless the proof shows it was already.
    Verify(Option<&'a SignatureChecked>),
    /// Not verified: the record comes from the caller's trusted storage.
    Trusted,
}

/// The state of a package log after validating its records in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageState {
    algorithm: Option<HashAlgorithm>,
    head: Option<Head>,
    authorities: Authorities<Permission>,
    releases: IndexMap<Version, Release>,
}

impl PackageState {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest record, if any.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Keys and permissions.
    pub fn authorities(&self) -> &Authorities<Permission> {
        &self.authorities
    }

    /// Every release (yanked too), in release order.
    pub fn releases(&self) -> impl Iterator<Item = &Release> {
        self.releases.values()
    }

    /// The release of exactly `version`, yanked or not.
    pub fn release(&self, version: &Version) -> Option<&Release> {
        self.releases.get(version)
    }

    /// The newest non-yanked release matching `req`.
    pub fn latest_matching(&self, req: &VersionReq) -> Option<&Release> {
        self.releases
            .values()
            .filter(|r| r.yanked.is_none() && req.matches(&r.version))
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// Validates `envelope` as the next record and applies it. On error the
    /// state is unchanged.
    pub fn apply(&mut self, envelope: &Envelope<PackageRecord>) -> Result<(), ValidationError> {
        let mut next = self.clone();
        next.apply_in_place(envelope, Signature::Verify(None))?;
        *self = next;
        Ok(())
    }

    /// Validates `records` in order on top of this state and returns the
    /// result. Each record may come with proof that its signature was
    /// checked ahead of time (see [`Envelope::check_signature`]); the others
    /// are checked here. Unlike calling [`PackageState::validate`] per
    /// record, nothing is copied per record, so a long log replays in time
    /// linear in its length.
    pub fn replay<'a>(
        mut self,
        records: impl IntoIterator<Item = (&'a Envelope<PackageRecord>, Option<&'a SignatureChecked>)>,
    ) -> Result<Self, ValidationError> {
        for (envelope, checked) in records {
            self.apply_in_place(envelope, Signature::Verify(checked))?;
        }
        Ok(self)
    }

    /// Rebuilds the state of a log that the caller validated earlier, with
    /// signatures, and kept in storage only it writes (a client's trusted
    /// state): every rule is applied again except the signature checks.
    /// Never use it on records read from the network.
    pub fn restore_trusted<'a>(
        records: impl IntoIterator<Item = &'a Envelope<PackageRecord>>,
    ) -> Result<Self, ValidationError> {
        PackageState::new().replay_trusted(records)
    }

    /// Like [`PackageState::restore_trusted`], on top of this state: for
    /// more records from the same trusted storage.
    pub fn replay_trusted<'a>(
        mut self,
        records: impl IntoIterator<Item = &'a Envelope<PackageRecord>>,
    ) -> Result<Self, ValidationError> {
        for envelope in records {
            self.apply_in_place(envelope, Signature::Trusted)?;
        }
        Ok(self)
    }

    /// The record that follows this log's head, made at `now` with
    /// `entries`: `prev` is the head, the timestamp never goes back. Every
    /// builder of package records (the client, the OCI face's custodial
    /// records) uses this one function.
    pub fn next_record(&self, now: Timestamp, entries: Vec<PackageEntry>) -> PackageRecord {
        let (prev, timestamp) = Head::next(self.head(), now);
        PackageRecord {
            prev,
            version: PACKAGE_RECORD_VERSION,
            timestamp,
            entries,
        }
    }

    /// Like [`PackageState::apply`] but returns the new state.
    pub fn validate(&self, envelope: &Envelope<PackageRecord>) -> Result<Self, ValidationError> {
        self.validate_checked(envelope, None)
    }

    /// Like [`PackageState::validate`], but the signature check is skipped
    /// when `checked` proves it was done with the key this state holds for
    /// the signer.
    pub fn validate_checked(
        &self,
        envelope: &Envelope<PackageRecord>,
        checked: Option<&SignatureChecked>,
    ) -> Result<Self, ValidationError> {
        let mut next = self.clone();
        next.apply_in_place(envelope, Signature::Verify(checked))?;
        Ok(next)
    }

    fn apply_in_place(
        &mut self,
        envelope: &Envelope<PackageRecord>,
        signature: Signature<'_>,
    ) -> Result<(), ValidationError> {
        let record_id = envelope.record_id();
        let fail = |entry: Option<usize>, rule: Rule| ValidationError {
            record_id,
            entry,
            rule,
        };
        let record = envelope.contents();
        let signer = *envelope.key_id();
        check_chain(
            self.head.as_ref(),
            record.prev.as_ref(),
            record.version,
            record.timestamp,
        )
        .map_err(|rule| fail(None, rule))?;

        for (index, entry) in record.entries.iter().enumerate() {
            self.apply_entry(&record_id, &signer, record.timestamp, entry)
                .map_err(|rule| fail(Some(index), rule))?;
        }
        if self.algorithm.is_none() {
            return Err(fail(None, Rule::EmptyFirstRecord));
        }
        let key = self
            .authorities
            .key(&signer)
            .ok_or_else(|| fail(None, Rule::UnknownKey { key_id: signer }))?;
        let verify = match signature {
            Signature::Verify(checked) => !envelope.is_checked(key, checked),
            Signature::Trusted => false,
        };
        if verify {
            envelope
                .verify_signature(key)
                .map_err(|_| fail(None, Rule::BadSignature { key_id: signer }))?;
        }
        self.head = Some(Head {
            record_id,
            timestamp: record.timestamp,
        });
        Ok(())
    }

    fn require(&self, signer: &KeyId, needed: &[Permission]) -> Result<(), Rule> {
        match self.authorities.first_missing(signer, needed) {
            Some(permission) => Err(Rule::MissingPermission {
                key_id: *signer,
                permission: AnyPermission::Package(permission),
            }),
            None => Ok(()),
        }
    }

    fn apply_entry(
        &mut self,
        record_id: &RecordId,
        signer: &KeyId,
        timestamp: Timestamp,
        entry: &PackageEntry,
    ) -> Result<(), Rule> {
        if let Some(permission) = entry.required_permission() {
            self.require(signer, &[permission])?;
        }
        if let PackageEntry::Init {
            hash_algorithm,
            key,
        } = entry
        {
            if self.algorithm.is_some() {
                return Err(Rule::SecondInit);
            }
            if key.id() != *signer {
                return Err(Rule::InitSignerMismatch {
                    signer: *signer,
                    init_key: key.id(),
                });
            }
            self.algorithm = Some(*hash_algorithm);
            self.authorities.grant(key, &Permission::ALL);
            return Ok(());
        }
        if self.algorithm.is_none() {
            return Err(Rule::FirstEntryNotInit);
        }
        match entry {
            PackageEntry::Init { .. } => Ok(()),
            PackageEntry::Grant { key, permissions } => {
                self.require(signer, permissions)?;
                self.authorities.grant(key, permissions);
                Ok(())
            }
            PackageEntry::Revoke {
                key_id,
                permissions,
            } => {
                self.require(signer, permissions)?;
                self.authorities
                    .revoke(key_id, permissions)
                    .map_err(|permission| Rule::RevokeOfMissingPermission {
                        key_id: *key_id,
                        permission: AnyPermission::Package(permission),
                    })
            }
            PackageEntry::Release { version, content } => {
                if self.releases.contains_key(version) {
                    return Err(Rule::VersionAlreadyReleased {
                        version: version.clone(),
                    });
                }
                self.releases.insert(
                    version.clone(),
                    Release {
                        record_id: *record_id,
                        version: version.clone(),
                        by: *signer,
                        timestamp,
                        content: *content,
                        yanked: None,
                    },
                );
                Ok(())
            }
            PackageEntry::Yank { version } => {
                let release =
                    self.releases
                        .get_mut(version)
                        .ok_or_else(|| Rule::YankOfUnreleased {
                            version: version.clone(),
                        })?;
                if release.yanked.is_some() {
                    return Err(Rule::YankOfYanked {
                        version: version.clone(),
                    });
                }
                release.yanked = Some(Yank {
                    by: *signer,
                    timestamp,
                });
                Ok(())
            }
        }
    }
}
