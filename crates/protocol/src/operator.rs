//! The operator log: the registry's own keys, and which namespaces it defines
//! or imports from other registries.

use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use prost::Message;

use crate::ids::{validate_namespace, HashAlgorithm, RecordId};
use crate::keys::{KeyId, PublicKey};
use crate::proto::{self, operator_entry::Contents};
use crate::record::{DecodeError, EntryError, Envelope, Record};
use crate::time::Timestamp;
use crate::validation::{check_chain, AnyPermission, Authorities, Head, Rule, ValidationError};

/// The operator record protocol version this crate speaks.
pub const OPERATOR_RECORD_VERSION: u32 = 0;

/// A permission on the operator log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// May sign checkpoints and grant or revoke operator permissions.
    Commit,
    /// May define namespaces.
    DefineNamespace,
    /// May import namespaces from other registries.
    ImportNamespace,
}

impl Permission {
    /// Every operator permission (what `init` grants).
    pub const ALL: [Permission; 3] = [
        Permission::Commit,
        Permission::DefineNamespace,
        Permission::ImportNamespace,
    ];

    fn from_proto(value: i32) -> Result<Self, EntryError> {
        match proto::OperatorPermission::try_from(value) {
            Ok(proto::OperatorPermission::Commit) => Ok(Permission::Commit),
            Ok(proto::OperatorPermission::DefineNamespace) => Ok(Permission::DefineNamespace),
            Ok(proto::OperatorPermission::ImportNamespace) => Ok(Permission::ImportNamespace),
            _ => Err(EntryError::Permission(value)),
        }
    }

    fn to_proto(self) -> i32 {
        (match self {
            Permission::Commit => proto::OperatorPermission::Commit,
            Permission::DefineNamespace => proto::OperatorPermission::DefineNamespace,
            Permission::ImportNamespace => proto::OperatorPermission::ImportNamespace,
        }) as i32
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Commit => "commit",
            Permission::DefineNamespace => "defineNamespace",
            Permission::ImportNamespace => "importNamespace",
        })
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.to_string() == s)
            .ok_or_else(|| {
                format!("unknown operator permission `{s}` (expected commit, defineNamespace or importNamespace)")
            })
    }
}

/// One entry of an operator record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperatorEntry {
    /// Starts the log. As in Warg v1, the signer receives every permission
    /// and the named key becomes known.
    Init {
        /// The hash algorithm linking the log.
        hash_algorithm: HashAlgorithm,
        /// The operator key.
        key: PublicKey,
    },
    /// Gives `key` permissions (needs `commit` and the permissions themselves).
    Grant {
        /// The key receiving the permissions.
        key: PublicKey,
        /// The permissions.
        permissions: Vec<Permission>,
    },
    /// Takes permissions away (needs `commit` and the permissions themselves).
    Revoke {
        /// The key losing them.
        key_id: KeyId,
        /// The permissions.
        permissions: Vec<Permission>,
    },
    /// Defines a namespace owned by this registry.
    DefineNamespace {
        /// The namespace.
        namespace: String,
    },
    /// Imports a namespace from another registry.
    ImportNamespace {
        /// The namespace.
        namespace: String,
        /// The registry it comes from.
        registry: String,
    },
}

impl OperatorEntry {
    fn required_permission(&self) -> Option<Permission> {
        match self {
            OperatorEntry::Init { .. } => None,
            OperatorEntry::Grant { .. } | OperatorEntry::Revoke { .. } => Some(Permission::Commit),
            OperatorEntry::DefineNamespace { .. } => Some(Permission::DefineNamespace),
            OperatorEntry::ImportNamespace { .. } => Some(Permission::ImportNamespace),
        }
    }

    fn from_proto(entry: proto::OperatorEntry) -> Result<Self, EntryError> {
        let permissions = |values: Vec<i32>| {
            values
                .into_iter()
                .map(Permission::from_proto)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match entry.contents.ok_or(EntryError::Empty)? {
            Contents::Init(init) => OperatorEntry::Init {
                hash_algorithm: init.hash_algorithm.parse()?,
                key: init.key.parse()?,
            },
            Contents::GrantFlat(grant) => OperatorEntry::Grant {
                key: grant.key.parse()?,
                permissions: permissions(grant.permissions)?,
            },
            Contents::RevokeFlat(revoke) => OperatorEntry::Revoke {
                key_id: revoke.key_id.parse().map_err(EntryError::KeyId)?,
                permissions: permissions(revoke.permissions)?,
            },
            Contents::DefineNamespace(define) => OperatorEntry::DefineNamespace {
                namespace: define.namespace,
            },
            Contents::ImportNamespace(import) => OperatorEntry::ImportNamespace {
                namespace: import.namespace,
                registry: import.registry,
            },
        })
    }

    fn to_proto(&self) -> proto::OperatorEntry {
        let permissions = |ps: &[Permission]| ps.iter().map(|p| p.to_proto()).collect();
        let contents = match self {
            OperatorEntry::Init {
                hash_algorithm,
                key,
            } => Contents::Init(proto::OperatorInit {
                hash_algorithm: hash_algorithm.to_string(),
                key: key.to_string(),
            }),
            OperatorEntry::Grant {
                key,
                permissions: p,
            } => Contents::GrantFlat(proto::OperatorGrantFlat {
                key: key.to_string(),
                permissions: permissions(p),
            }),
            OperatorEntry::Revoke {
                key_id,
                permissions: p,
            } => Contents::RevokeFlat(proto::OperatorRevokeFlat {
                key_id: key_id.to_string(),
                permissions: permissions(p),
            }),
            OperatorEntry::DefineNamespace { namespace } => {
                Contents::DefineNamespace(proto::OperatorDefineNamespace {
                    namespace: namespace.clone(),
                })
            }
            OperatorEntry::ImportNamespace {
                namespace,
                registry,
            } => Contents::ImportNamespace(proto::OperatorImportNamespace {
                namespace: namespace.clone(),
                registry: registry.clone(),
            }),
        };
        proto::OperatorEntry {
            contents: Some(contents),
        }
    }
}

/// An operator record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRecord {
    /// The previous record (none for the first).
    pub prev: Option<RecordId>,
    /// Protocol version, [`OPERATOR_RECORD_VERSION`].
    pub version: u32,
    /// When the operator made the record.
    pub timestamp: Timestamp,
    /// The entries.
    pub entries: Vec<OperatorEntry>,
}

impl Record for OperatorRecord {
    const SIGNATURE_PREFIX: &'static [u8] = b"WARG-OPERATOR-RECORD-SIGNATURE-V0";

    fn encode(&self) -> Vec<u8> {
        proto::OperatorRecord {
            prev: self.prev.map(|id| id.to_string()),
            version: self.version,
            time: Some(self.timestamp.into()),
            entries: self.entries.iter().map(OperatorEntry::to_proto).collect(),
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let record = proto::OperatorRecord::decode(bytes)?;
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
                OperatorEntry::from_proto(entry)
                    .map_err(|error| DecodeError::Entry { index, error })
            })
            .collect::<Result<_, _>>()?;
        Ok(OperatorRecord {
            prev,
            version: record.version,
            timestamp,
            entries,
        })
    }

    fn record_id(content_bytes: &[u8]) -> RecordId {
        RecordId::operator_record(content_bytes)
    }
}

/// Whether a namespace belongs to this registry or is imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    /// Defined by this registry.
    Defined,
    /// Imported from another registry.
    Imported {
        /// The registry it comes from.
        registry: String,
    },
}

/// The state of the operator log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorState {
    algorithm: Option<HashAlgorithm>,
    head: Option<Head>,
    authorities: Authorities<Permission>,
    namespaces: IndexMap<String, NamespaceState>,
}

impl OperatorState {
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

    /// Whether `key_id` may sign checkpoints.
    pub fn may_sign_checkpoints(&self, key_id: &KeyId) -> bool {
        self.authorities.holds(key_id, Permission::Commit)
    }

    /// The state of `namespace`, if defined or imported.
    pub fn namespace(&self, namespace: &str) -> Option<&NamespaceState> {
        self.namespaces.get(namespace)
    }

    /// Every namespace, in definition order.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &NamespaceState)> {
        self.namespaces.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Validates `envelope` as the next record and applies it. On error the
    /// state is unchanged.
    pub fn apply(&mut self, envelope: &Envelope<OperatorRecord>) -> Result<(), ValidationError> {
        let mut next = self.clone();
        next.apply_in_place(envelope)?;
        *self = next;
        Ok(())
    }

    /// Like [`OperatorState::apply`] but returns the new state.
    pub fn validate(&self, envelope: &Envelope<OperatorRecord>) -> Result<Self, ValidationError> {
        let mut next = self.clone();
        next.apply_in_place(envelope)?;
        Ok(next)
    }

    fn apply_in_place(
        &mut self,
        envelope: &Envelope<OperatorRecord>,
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
            self.apply_entry(&signer, entry)
                .map_err(|rule| fail(Some(index), rule))?;
        }
        if self.algorithm.is_none() {
            return Err(fail(None, Rule::EmptyFirstRecord));
        }
        let key = self
            .authorities
            .key(&signer)
            .ok_or_else(|| fail(None, Rule::UnknownKey { key_id: signer }))?;
        envelope
            .verify_signature(key)
            .map_err(|_| fail(None, Rule::BadSignature { key_id: signer }))?;
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
                permission: AnyPermission::Operator(permission),
            }),
            None => Ok(()),
        }
    }

    fn apply_entry(&mut self, signer: &KeyId, entry: &OperatorEntry) -> Result<(), Rule> {
        if let Some(permission) = entry.required_permission() {
            self.require(signer, &[permission])?;
        }
        if let OperatorEntry::Init {
            hash_algorithm,
            key,
        } = entry
        {
            if self.algorithm.is_some() {
                return Err(Rule::SecondInit);
            }
            self.algorithm = Some(*hash_algorithm);
            self.authorities.grant_to_id(*signer, &Permission::ALL);
            self.authorities.learn_key(key);
            return Ok(());
        }
        if self.algorithm.is_none() {
            return Err(Rule::FirstEntryNotInit);
        }
        match entry {
            OperatorEntry::Init { .. } => Ok(()),
            OperatorEntry::Grant { key, permissions } => {
                self.require(signer, permissions)?;
                self.authorities.grant(key, permissions);
                Ok(())
            }
            OperatorEntry::Revoke {
                key_id,
                permissions,
            } => {
                self.require(signer, permissions)?;
                self.authorities
                    .revoke(key_id, permissions)
                    .map_err(|permission| Rule::RevokeOfMissingPermission {
                        key_id: *key_id,
                        permission: AnyPermission::Operator(permission),
                    })
            }
            OperatorEntry::DefineNamespace { namespace } => {
                self.add_namespace(namespace, NamespaceState::Defined)
            }
            OperatorEntry::ImportNamespace {
                namespace,
                registry,
            } => self.add_namespace(
                namespace,
                NamespaceState::Imported {
                    registry: registry.clone(),
                },
            ),
        }
    }

    fn add_namespace(&mut self, namespace: &str, state: NamespaceState) -> Result<(), Rule> {
        validate_namespace(namespace).map_err(Rule::InvalidNamespace)?;
        if self.namespaces.contains_key(namespace) {
            return Err(Rule::NamespaceAlreadyDefined {
                namespace: namespace.to_owned(),
            });
        }
        self.namespaces.insert(namespace.to_owned(), state);
        Ok(())
    }
}
