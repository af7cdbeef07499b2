//! Cairn's notice log (not part of Warg v1): the operator's take-downs, one
//! registry-wide hash chain of records signed by the operator. A take-down
//! names a package (all of it, or one version), the content digests whose
//! bytes the registry stops serving, and the reason; a restore undoes it.
//! Its leaves go into the same registry log and map as every other record,
//! so a take-down is as visible and as permanent as a release: the package
//! records and their proofs stay valid, and anyone can see what was removed
//! and why. A yank stays the publisher's act, in the package's own log.
//!
//! The log id, record id and signature prefixes are Cairn's own
//! (`CAIRN-NOTICE-...`).

use std::collections::BTreeMap;

use prost::Message;
use semver::Version;
use thiserror::Error;

use crate::ids::{prefixed_hash, LogId, PackageName, RecordId};
use crate::keys::{BadSignature, PublicKey};
use crate::record::{DecodeError, Envelope, Record};
use crate::time::Timestamp;
use crate::validation::{check_chain, Head, Rule};
use cairn_transparency::Hash;

/// The longest reason a notice may give, in bytes.
pub const MAX_REASON_BYTES: usize = 2048;
/// The most content digests one notice may name.
pub const MAX_NOTICE_DIGESTS: usize = 10_000;

/// What a take-down covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope {
    /// The package.
    pub package: PackageName,
    /// One version, or (`None`) the whole package: every release, and no
    /// new ones.
    pub version: Option<Version>,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.package),
            None => write!(f, "{}", self.package),
        }
    }
}

/// One notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The content of `scope` is no longer served, for `reason`.
    TakeDown {
        /// What is taken down.
        scope: Scope,
        /// The digests of the content removed.
        content: Vec<Hash>,
        /// Why, in the operator's words (shown with every refused download).
        reason: String,
    },
    /// A take-down of `scope` is lifted.
    Restore {
        /// What is restored.
        scope: Scope,
        /// Why.
        reason: String,
    },
    /// This registry takes over `namespace` (or only `package` of it)
    /// from the registry it was imported from, with that registry's
    /// history as of its checkpoint of `log_length` records and root
    /// `log_root`: the namespace's packages (or that package) are this
    /// registry's from here on.
    Fork {
        /// The namespace.
        namespace: String,
        /// The one package taken over (`None`: the whole namespace).
        package: Option<PackageName>,
        /// The registry it came from.
        origin: String,
        /// The length of the origin's checkpoint the history was taken at.
        log_length: u64,
        /// That checkpoint's log root.
        log_root: Hash,
    },
}

/// A fork in force: where a namespace's (or a package's) history came
/// from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fork {
    /// The namespace.
    pub namespace: String,
    /// The one package taken over (`None`: the whole namespace).
    pub package: Option<PackageName>,
    /// The registry it came from.
    pub origin: String,
    /// The length of the origin's checkpoint the history was taken at.
    pub log_length: u64,
    /// That checkpoint's log root.
    pub log_root: Hash,
    /// When.
    pub timestamp: Timestamp,
}

/// One record of the notice log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRecord {
    /// The previous record of the log, `None` for the first.
    pub prev: Option<RecordId>,
    /// When the registry recorded it.
    pub timestamp: Timestamp,
    /// The notice.
    pub notice: Notice,
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
    /// 1: take-down, 2: restore.
    #[prost(uint32, tag = "4")]
    kind: u32,
    #[prost(string, tag = "5")]
    package: String,
    #[prost(string, optional, tag = "6")]
    package_version: Option<String>,
    #[prost(string, repeated, tag = "7")]
    content: Vec<String>,
    #[prost(string, tag = "8")]
    reason: String,
    #[prost(string, tag = "9")]
    origin: String,
    #[prost(uint64, tag = "10")]
    log_length: u64,
    #[prost(string, tag = "11")]
    log_root: String,
    #[prost(string, tag = "12")]
    namespace: String,
}

const TAKE_DOWN: u32 = 1;
const RESTORE: u32 = 2;
const FORK: u32 = 3;

impl Record for NoticeRecord {
    const SIGNATURE_PREFIX: &'static [u8] = b"CAIRN-NOTICE-RECORD-SIGNATURE-V0";

    fn encode(&self) -> Vec<u8> {
        let mut proto = Proto {
            prev: self.prev.map(|id| id.to_string()),
            version: 0,
            time: Some(self.timestamp.into()),
            ..Proto::default()
        };
        match &self.notice {
            Notice::TakeDown {
                scope,
                content,
                reason,
            } => {
                proto.kind = TAKE_DOWN;
                proto.package = scope.package.to_string();
                proto.package_version = scope.version.as_ref().map(Version::to_string);
                proto.content = content.iter().map(Hash::to_string).collect();
                proto.reason = reason.clone();
            }
            Notice::Restore { scope, reason } => {
                proto.kind = RESTORE;
                proto.package = scope.package.to_string();
                proto.package_version = scope.version.as_ref().map(Version::to_string);
                proto.reason = reason.clone();
            }
            Notice::Fork {
                namespace,
                package,
                origin,
                log_length,
                log_root,
            } => {
                proto.kind = FORK;
                proto.namespace = namespace.clone();
                proto.package = package
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                proto.origin = origin.clone();
                proto.log_length = *log_length;
                proto.log_root = log_root.to_string();
            }
        }
        proto.encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let p = Proto::decode(bytes)?;
        let prev = p
            .prev
            .map(|text| text.parse())
            .transpose()
            .map_err(DecodeError::Prev)?;
        let timestamp = p.time.ok_or(DecodeError::MissingTimestamp)?.into();
        let bad = |what: String| DecodeError::Field(what);
        if p.kind == FORK {
            let log_root = p
                .log_root
                .parse()
                .map_err(|e| bad(format!("fork log root `{}`: {e}", p.log_root)))?;
            let package = if p.package.is_empty() {
                None
            } else {
                Some(
                    PackageName::new(&p.package)
                        .map_err(|e| bad(format!("fork package `{}`: {e}", p.package)))?,
                )
            };
            return Ok(NoticeRecord {
                prev,
                timestamp,
                notice: Notice::Fork {
                    namespace: p.namespace,
                    package,
                    origin: p.origin,
                    log_length: p.log_length,
                    log_root,
                },
            });
        }
        let package = PackageName::new(&p.package)
            .map_err(|e| bad(format!("notice package `{}`: {e}", p.package)))?;
        let version = p
            .package_version
            .map(|v| Version::parse(&v).map_err(|e| bad(format!("notice version `{v}`: {e}"))))
            .transpose()?;
        let scope = Scope { package, version };
        let notice = match p.kind {
            TAKE_DOWN => Notice::TakeDown {
                scope,
                content: p
                    .content
                    .iter()
                    .map(|d| {
                        d.parse()
                            .map_err(|e| bad(format!("notice digest `{d}`: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
                reason: p.reason,
            },
            RESTORE => Notice::Restore {
                scope,
                reason: p.reason,
            },
            other => return Err(bad(format!("unknown notice kind {other}"))),
        };
        Ok(NoticeRecord {
            prev,
            timestamp,
            notice,
        })
    }

    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::from(prefixed_hash(b"CAIRN-NOTICE-LOG-RECORD-V0:", content_bytes))
    }
}

/// Why a notice record does not extend the log.
#[derive(Debug, Error)]
pub enum NoticeError {
    /// The hash chain or timestamps are broken.
    #[error(transparent)]
    Chain(#[from] Rule),
    /// Not signed by the operator's key.
    #[error("the notice is not signed by the operator: {0}")]
    Signature(#[from] BadSignature),
    /// The reason is empty or too long.
    #[error("a notice gives a reason of 1 to {MAX_REASON_BYTES} bytes")]
    Reason,
    /// Too many digests.
    #[error("a notice names at most {MAX_NOTICE_DIGESTS} content digests")]
    TooMuch,
    /// `scope` is taken down already.
    #[error("{0} is taken down already")]
    AlreadyDown(Scope),
    /// `scope` is not taken down.
    #[error("{0} is not taken down")]
    NotDown(Scope),
    /// The namespace or package is forked already, or is not one.
    #[error("`{0}` cannot be forked: {1}")]
    Fork(String, &'static str),
}

/// A take-down in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenDown {
    /// The digests removed.
    pub content: Vec<Hash>,
    /// Why.
    pub reason: String,
    /// When.
    pub timestamp: Timestamp,
}

/// The notice log's state: its head and the take-downs in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeLog {
    head: Option<Head>,
    down: BTreeMap<Scope, TakenDown>,
    forks: BTreeMap<String, Fork>,
}

impl NoticeLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest record, if any.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The take-downs in force.
    pub fn taken_down(&self) -> impl Iterator<Item = (&Scope, &TakenDown)> {
        self.down.iter()
    }

    /// Why `version` of `package` may not be served (its own take-down, or
    /// its package's), if it may not.
    pub fn release_down(&self, package: &PackageName, version: &Version) -> Option<&TakenDown> {
        let whole = Scope {
            package: package.clone(),
            version: None,
        };
        let one = Scope {
            package: package.clone(),
            version: Some(version.clone()),
        };
        self.down.get(&whole).or_else(|| self.down.get(&one))
    }

    /// Where `namespace` was forked from, if it was (as a whole).
    pub fn forked(&self, namespace: &str) -> Option<&Fork> {
        self.forks.get(namespace)
    }

    /// Where `package` was forked from, if it was (its namespace as a
    /// whole, or the package alone).
    pub fn forked_package(&self, package: &PackageName) -> Option<&Fork> {
        self.forks
            .get(package.namespace())
            .or_else(|| self.forks.get(package.as_str()))
    }

    /// Every fork, by the namespace or package taken over.
    pub fn forks(&self) -> impl Iterator<Item = (&String, &Fork)> {
        self.forks.iter()
    }

    /// Whether the whole package is taken down (no new releases).
    pub fn package_down(&self, package: &PackageName) -> Option<&TakenDown> {
        self.down.get(&Scope {
            package: package.clone(),
            version: None,
        })
    }

    /// The log after `envelope`, if it extends this one, `operator` signed
    /// it and it makes sense here (no take-down twice, no restore of what
    /// is not down).
    pub fn validate(
        &self,
        envelope: &Envelope<NoticeRecord>,
        operator: &PublicKey,
    ) -> Result<NoticeLog, NoticeError> {
        envelope.check_signature(operator)?;
        self.apply(envelope)
    }

    /// The log after `envelope`, checked as [`NoticeLog::validate`] does
    /// but for the signature (for records read back from the log, whose
    /// signer may be an operator key since rotated).
    pub fn apply(&self, envelope: &Envelope<NoticeRecord>) -> Result<NoticeLog, NoticeError> {
        let record = envelope.contents();
        check_chain(
            self.head.as_ref(),
            record.prev.as_ref(),
            0,
            record.timestamp,
        )?;
        let mut next = self.clone();
        match &record.notice {
            Notice::TakeDown {
                scope,
                content,
                reason,
            } => {
                check_reason(reason)?;
                if content.len() > MAX_NOTICE_DIGESTS {
                    return Err(NoticeError::TooMuch);
                }
                if next.down.contains_key(scope) {
                    return Err(NoticeError::AlreadyDown(scope.clone()));
                }
                next.down.insert(
                    scope.clone(),
                    TakenDown {
                        content: content.clone(),
                        reason: reason.clone(),
                        timestamp: record.timestamp,
                    },
                );
            }
            Notice::Restore { scope, reason } => {
                check_reason(reason)?;
                if next.down.remove(scope).is_none() {
                    return Err(NoticeError::NotDown(scope.clone()));
                }
            }
            Notice::Fork {
                namespace,
                package,
                origin,
                log_length,
                log_root,
            } => {
                if crate::ids::validate_namespace(namespace).is_err() {
                    return Err(NoticeError::Fork(namespace.clone(), "not a namespace"));
                }
                if origin.is_empty() || origin.len() > 253 {
                    return Err(NoticeError::Fork(namespace.clone(), "no origin"));
                }
                if next.forks.contains_key(namespace) {
                    return Err(NoticeError::Fork(
                        namespace.clone(),
                        "its namespace is forked already",
                    ));
                }
                // A package fork is kept under the package's name, a
                // namespace fork under the namespace's (they cannot meet:
                // a package name has a `:`).
                let key = match package {
                    Some(package) if package.namespace() != namespace => {
                        return Err(NoticeError::Fork(
                            package.to_string(),
                            "the package is not in the namespace named",
                        ));
                    }
                    Some(package) if next.forks.contains_key(package.as_str()) => {
                        return Err(NoticeError::Fork(
                            package.to_string(),
                            "it is forked already",
                        ));
                    }
                    Some(package) => package.to_string(),
                    None => namespace.clone(),
                };
                next.forks.insert(
                    key,
                    Fork {
                        namespace: namespace.clone(),
                        package: package.clone(),
                        origin: origin.clone(),
                        log_length: *log_length,
                        log_root: *log_root,
                        timestamp: record.timestamp,
                    },
                );
            }
        }
        next.head = Some(Head {
            record_id: envelope.record_id(),
            timestamp: record.timestamp,
        });
        Ok(next)
    }
}

fn check_reason(reason: &str) -> Result<(), NoticeError> {
    if reason.trim().is_empty() || reason.len() > MAX_REASON_BYTES {
        return Err(NoticeError::Reason);
    }
    Ok(())
}

impl LogId {
    /// The id of the registry's notice log.
    pub fn notices() -> Self {
        LogId::from(Hash::of(b"CAIRN-NOTICE-LOG-ID-V0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;

    fn scope(version: Option<&str>) -> Scope {
        Scope {
            package: PackageName::new("acme:tool").unwrap(),
            version: version.map(|v| Version::parse(v).unwrap()),
        }
    }

    fn down(prev: Option<RecordId>, seconds: i64, version: Option<&str>) -> NoticeRecord {
        NoticeRecord {
            prev,
            timestamp: Timestamp::new(seconds, 0),
            notice: Notice::TakeDown {
                scope: scope(version),
                content: vec![Hash::of(b"bytes")],
                reason: "DMCA notice 2026-123".into(),
            },
        }
    }

    #[test]
    fn notices_round_trip_chain_and_track_take_downs() {
        let operator = PrivateKey::generate();
        let first = Envelope::sign(&operator, down(None, 10, Some("1.0.0")));
        let decoded = Envelope::<NoticeRecord>::from_parts(
            first.content_bytes().to_vec(),
            &first.key_id().to_string(),
            &first.signature().to_string(),
        )
        .expect("decodes");
        assert_eq!(decoded.contents(), first.contents());
        let log = NoticeLog::new()
            .validate(&first, operator.public_key())
            .expect("first");
        let name = PackageName::new("acme:tool").unwrap();
        let v1 = Version::new(1, 0, 0);
        assert_eq!(
            log.release_down(&name, &v1).map(|d| d.reason.as_str()),
            Some("DMCA notice 2026-123")
        );
        assert!(log.release_down(&name, &Version::new(2, 0, 0)).is_none());
        assert!(log.package_down(&name).is_none());

        // The same take-down twice is refused; a restore lifts it.
        let twice = Envelope::sign(&operator, down(Some(first.record_id()), 11, Some("1.0.0")));
        assert!(matches!(
            log.validate(&twice, operator.public_key()),
            Err(NoticeError::AlreadyDown(_))
        ));
        let restore = Envelope::sign(
            &operator,
            NoticeRecord {
                prev: Some(first.record_id()),
                timestamp: Timestamp::new(12, 0),
                notice: Notice::Restore {
                    scope: scope(Some("1.0.0")),
                    reason: "counter-notice accepted".into(),
                },
            },
        );
        let log = log
            .validate(&restore, operator.public_key())
            .expect("restore");
        assert!(log.release_down(&name, &v1).is_none());
        let again = Envelope::sign(
            &operator,
            NoticeRecord {
                prev: Some(restore.record_id()),
                timestamp: Timestamp::new(13, 0),
                notice: Notice::Restore {
                    scope: scope(Some("1.0.0")),
                    reason: "again".into(),
                },
            },
        );
        assert!(matches!(
            log.validate(&again, operator.public_key()),
            Err(NoticeError::NotDown(_))
        ));

        // A whole package covers every version.
        let all = Envelope::sign(&operator, down(Some(restore.record_id()), 14, None));
        let log = log.validate(&all, operator.public_key()).expect("package");
        assert!(log.release_down(&name, &Version::new(9, 9, 9)).is_some());
        assert!(log.package_down(&name).is_some());

        // No reason, a foreign signer or a broken chain: refused.
        let mut silent = down(Some(all.record_id()), 15, Some("2.0.0"));
        if let Notice::TakeDown { reason, .. } = &mut silent.notice {
            reason.clear();
        }
        let silent = Envelope::sign(&operator, silent);
        assert!(matches!(
            log.validate(&silent, operator.public_key()),
            Err(NoticeError::Reason)
        ));
        let other = PrivateKey::generate();
        let foreign = Envelope::sign(&other, down(Some(all.record_id()), 15, Some("2.0.0")));
        assert!(log.validate(&foreign, operator.public_key()).is_err());
        let forked = Envelope::sign(&operator, down(Some(first.record_id()), 15, Some("2.0.0")));
        assert!(log.validate(&forked, operator.public_key()).is_err());
        assert_ne!(LogId::notices(), LogId::operator());

        // A fork is recorded once, with where it came from: one package
        // first, then its namespace.
        let fork_of = |prev, seconds, package: Option<&str>| {
            Envelope::sign(
                &operator,
                NoticeRecord {
                    prev: Some(prev),
                    timestamp: Timestamp::new(seconds, 0),
                    notice: Notice::Fork {
                        namespace: "acme".into(),
                        package: package.map(|p| PackageName::new(p).expect("name")),
                        origin: "https://a.example".into(),
                        log_length: 42,
                        log_root: Hash::of(b"root"),
                    },
                },
            )
        };
        let tool = PackageName::new("acme:tool").expect("name");
        let one = fork_of(all.record_id(), 18, Some("acme:tool"));
        let decoded = Envelope::<NoticeRecord>::from_parts(
            one.content_bytes().to_vec(),
            &one.key_id().to_string(),
            &one.signature().to_string(),
        )
        .expect("decodes");
        assert_eq!(decoded.contents(), one.contents());
        let log = log.validate(&one, operator.public_key()).expect("fork");
        assert!(log.forked("acme").is_none());
        assert_eq!(log.forked_package(&tool).map(|f| f.log_length), Some(42));
        let other_package = PackageName::new("acme:other").expect("name");
        assert!(log.forked_package(&other_package).is_none());
        let twice = fork_of(one.record_id(), 19, Some("acme:tool"));
        assert!(matches!(
            log.validate(&twice, operator.public_key()),
            Err(NoticeError::Fork(..))
        ));
        let elsewhere = fork_of(one.record_id(), 19, Some("zeta:tool"));
        assert!(matches!(
            log.validate(&elsewhere, operator.public_key()),
            Err(NoticeError::Fork(..))
        ));
        let fork = |prev, seconds| fork_of(prev, seconds, None);
        let first_fork = fork(one.record_id(), 20);
        let decoded = Envelope::<NoticeRecord>::from_parts(
            first_fork.content_bytes().to_vec(),
            &first_fork.key_id().to_string(),
            &first_fork.signature().to_string(),
        )
        .expect("decodes");
        assert_eq!(decoded.contents(), first_fork.contents());
        let log = log
            .validate(&first_fork, operator.public_key())
            .expect("fork");
        assert_eq!(log.forked("acme").map(|f| f.log_length), Some(42));
        assert!(log.forked("other").is_none());
        assert!(log.forked_package(&other_package).is_some());
        let again = fork(first_fork.record_id(), 21);
        assert!(matches!(
            log.validate(&again, operator.public_key()),
            Err(NoticeError::Fork(..))
        ));
    }
}
