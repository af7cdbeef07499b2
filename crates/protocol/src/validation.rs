//! The parts of log validation shared by package and operator logs: the hash
//! chain, timestamps and which key holds which permission.

use std::fmt;
use std::hash::Hash as StdHash;

use indexmap::{IndexMap, IndexSet};
use thiserror::Error;

use crate::ids::{NameError, RecordId};
use crate::keys::{KeyId, PublicKey};
use crate::time::Timestamp;

/// A permission of either log, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnyPermission {
    /// A package-log permission.
    Package(crate::package::Permission),
    /// An operator-log permission.
    Operator(crate::operator::Permission),
}

impl fmt::Display for AnyPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyPermission::Package(p) => p.fmt(f),
            AnyPermission::Operator(p) => p.fmt(f),
        }
    }
}

/// The rule a rejected record broke. Every rule of Warg v1 has its own variant.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The first record names a previous record.
    #[error("the first record of a log must not name a previous record")]
    PrevOnFirstRecord,
    /// A later record names no previous record.
    #[error("every record after the first must name the previous record")]
    MissingPrev,
    /// `prev` is not the log's head.
    #[error("`prev` is {found} but the log's head is {expected}")]
    PrevMismatch {
        /// The log's head.
        expected: RecordId,
        /// What the record named.
        found: RecordId,
    },
    /// An unknown protocol version.
    #[error("protocol version {version} is not supported (expected 0)")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The timestamp goes back in time.
    #[error("timestamp {found} is earlier than the previous record's {previous}")]
    TimestampBeforePrevious {
        /// The head's timestamp.
        previous: Timestamp,
        /// This record's timestamp.
        found: Timestamp,
    },
    /// The first record has no entries.
    #[error("the first record has no entries; it must start with `init`")]
    EmptyFirstRecord,
    /// The first entry of the log is not `init`.
    #[error("the first entry of a log must be `init`")]
    FirstEntryNotInit,
    /// A second `init`.
    #[error("the log is already initialised; `init` may only appear once")]
    SecondInit,
    /// A package `init` signed by a key other than the one it names.
    #[error("`init` names key {init_key} but the record is signed by {signer}")]
    InitSignerMismatch {
        /// The signing key.
        signer: KeyId,
        /// The key `init` names.
        init_key: KeyId,
    },
    /// The signing key is not known to the log.
    #[error("key {key_id} is not known to this log")]
    UnknownKey {
        /// The signing key id.
        key_id: KeyId,
    },
    /// The signing key lacks a permission.
    #[error("key {key_id} does not hold the `{permission}` permission")]
    MissingPermission {
        /// The signing key id.
        key_id: KeyId,
        /// The permission needed.
        permission: AnyPermission,
    },
    /// Revoking a permission the key does not hold.
    #[error("cannot revoke `{permission}` from key {key_id}: it does not hold it")]
    RevokeOfMissingPermission {
        /// The key named in the revoke entry.
        key_id: KeyId,
        /// The permission.
        permission: AnyPermission,
    },
    /// Releasing a version twice.
    #[error("version {version} is already released; versions are immutable")]
    VersionAlreadyReleased {
        /// The version.
        version: semver::Version,
    },
    /// Yanking a version never released.
    #[error("cannot yank version {version}: it was never released")]
    YankOfUnreleased {
        /// The version.
        version: semver::Version,
    },
    /// Yanking a version twice.
    #[error("version {version} is already yanked")]
    YankOfYanked {
        /// The version.
        version: semver::Version,
    },
    /// The signature does not verify.
    #[error("the signature does not verify with key {key_id}")]
    BadSignature {
        /// The signing key id.
        key_id: KeyId,
    },
    /// A namespace that is not lowercase kebab-case.
    #[error("invalid namespace: {0}")]
    InvalidNamespace(NameError),
    /// Defining or importing a namespace twice.
    #[error("namespace `{namespace}` is already defined")]
    NamespaceAlreadyDefined {
        /// The namespace.
        namespace: String,
    },
}

/// A record a log refused: which record, which entry (if one), which rule.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("record {record_id}{}: {rule}", entry.map(|i| format!(" entry {i}")).unwrap_or_default())]
pub struct ValidationError {
    /// The refused record.
    pub record_id: RecordId,
    /// The entry at fault, when the rule concerns one entry.
    pub entry: Option<usize>,
    /// The rule broken.
    pub rule: Rule,
}

/// The latest record of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Its id.
    pub record_id: RecordId,
    /// Its timestamp.
    pub timestamp: Timestamp,
}

impl Head {
    /// The `prev` and timestamp of the record that follows `head` in its
    /// log, made at `now`: a log's timestamps never go back, so a clock
    /// behind the head's gives the head's timestamp.
    pub fn next(head: Option<&Head>, now: Timestamp) -> (Option<RecordId>, Timestamp) {
        match head {
            Some(h) => (Some(h.record_id), now.max(h.timestamp)),
            None => (None, now),
        }
    }
}

/// Checks `prev`, protocol version and timestamp of a record against the head.
pub(crate) fn check_chain(
    head: Option<&Head>,
    prev: Option<&RecordId>,
    version: u32,
    timestamp: Timestamp,
) -> Result<(), Rule> {
    match (head, prev) {
        (None, Some(_)) => return Err(Rule::PrevOnFirstRecord),
        (Some(_), None) => return Err(Rule::MissingPrev),
        (Some(head), Some(prev)) if head.record_id != *prev => {
            return Err(Rule::PrevMismatch {
                expected: head.record_id,
                found: *prev,
            })
        }
        _ => {}
    }
    if version != 0 {
        return Err(Rule::UnsupportedVersion { version });
    }
    if let Some(head) = head {
        if timestamp < head.timestamp {
            return Err(Rule::TimestampBeforePrevious {
                previous: head.timestamp,
                found: timestamp,
            });
        }
    }
    Ok(())
}

/// Which keys a log knows and which permissions each holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorities<P: Copy + Eq + StdHash> {
    keys: IndexMap<KeyId, PublicKey>,
    permissions: IndexMap<KeyId, IndexSet<P>>,
}

impl<P: Copy + Eq + StdHash> Default for Authorities<P> {
    fn default() -> Self {
        Authorities {
            keys: IndexMap::new(),
            permissions: IndexMap::new(),
        }
    }
}

impl<P: Copy + Eq + StdHash> Authorities<P> {
    /// The public key with this id, if the log knows it.
    pub fn key(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    /// Every key the log knows, in the order it learned them.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }

    /// The permissions `id` holds (empty if none).
    pub fn permissions(&self, id: &KeyId) -> impl Iterator<Item = P> + '_ {
        self.permissions.get(id).into_iter().flatten().copied()
    }

    /// Whether `id` holds `permission`.
    pub fn holds(&self, id: &KeyId, permission: P) -> bool {
        self.permissions
            .get(id)
            .is_some_and(|held| held.contains(&permission))
    }

    pub(crate) fn learn_key(&mut self, key: &PublicKey) {
        self.keys.insert(key.id(), key.clone());
    }

    pub(crate) fn first_missing(&self, id: &KeyId, needed: &[P]) -> Option<P> {
        needed.iter().copied().find(|p| !self.holds(id, *p))
    }

    pub(crate) fn grant(&mut self, key: &PublicKey, permissions: &[P]) {
        self.learn_key(key);
        self.permissions
            .entry(key.id())
            .or_default()
            .extend(permissions.iter().copied());
    }

    pub(crate) fn grant_to_id(&mut self, id: KeyId, permissions: &[P]) {
        self.permissions
            .entry(id)
            .or_default()
            .extend(permissions.iter().copied());
    }

    /// Removes each permission in turn; returns the first one not held.
    pub(crate) fn revoke(&mut self, id: &KeyId, permissions: &[P]) -> Result<(), P> {
        for permission in permissions {
            let removed = self
                .permissions
                .get_mut(id)
                .is_some_and(|held| held.shift_remove(permission));
            if !removed {
                return Err(*permission);
            }
        }
        Ok(())
    }
}
