//! How a record is kept in a table row, for every SQL backend (SQLite
//! here, PostgreSQL in `cairn-postgres`): the state as a small integer,
//! missing digests as text, indexes as signed 64-bit integers, hashes as
//! 32 bytes, the signed parts in their compact forms ([`crate::compact`]);
//! and the conversions back, which refuse what does not parse.

use cairn_protocol::{Checkpoint, Hash, LogId, RecordId, SignedCheckpoint, TimestampedCheckpoint};
use cairn_registry::auth::Scope;
use cairn_registry::{RecordState, StoreError, StoredRecord};

use crate::compact;

/// `state` of a record waiting for content.
pub const SOURCING: i64 = 0;
/// `state` of a record in the log.
pub const SEQUENCED: i64 = 1;
/// `state` of a record refused after it was accepted.
pub const REJECTED: i64 = 2;

/// A record's signed parts as stored: content, key id and signature in
/// their compact forms.
pub struct StoredParts {
    /// [`compact::encode_content`] of the content bytes.
    pub content: Vec<u8>,
    /// [`compact::encode_key_id`] of the key id.
    pub key_id: Vec<u8>,
    /// [`compact::encode_signature`] of the signature.
    pub signature: Vec<u8>,
}

impl StoredParts {
    /// The stored forms of `record`'s signed parts.
    pub fn of(record: &StoredRecord) -> StoredParts {
        StoredParts {
            content: compact::encode_content(&record.content_bytes),
            key_id: compact::encode_key_id(&record.key_id),
            signature: compact::encode_signature(&record.signature),
        }
    }
}

/// A record's row as read.
pub struct RawRecord {
    /// The record id (32 bytes).
    pub record_id: Vec<u8>,
    /// The log id (32 bytes).
    pub log_id: Vec<u8>,
    /// The signed protobuf bytes, stored ([`compact::encode_content`]).
    pub content: Vec<u8>,
    /// The signing key id, stored ([`compact::encode_key_id`]).
    pub key_id: Vec<u8>,
    /// The signature, stored ([`compact::encode_signature`]).
    pub signature: Vec<u8>,
    /// [`SOURCING`], [`SEQUENCED`] or [`REJECTED`].
    pub state: i64,
    /// The registry index, when sequenced.
    pub registry_index: Option<i64>,
    /// Missing digests, space-separated, when sourcing.
    pub missing: Option<String>,
    /// When it was accepted, when sourcing.
    pub since: Option<i64>,
    /// Why, when rejected.
    pub reason: Option<String>,
}

impl RawRecord {
    /// The record, or why the row is corrupt.
    pub fn into_stored(self) -> Result<StoredRecord, StoreError> {
        Ok(StoredRecord {
            record_id: RecordId::from(hash_from(&self.record_id, "record id")?),
            log_id: LogId::from(hash_from(&self.log_id, "log id")?),
            content_bytes: compact::decode_content(&self.content)?,
            key_id: compact::decode_key_id(&self.key_id)?,
            signature: compact::decode_signature(&self.signature)?,
            state: record_state(
                self.state,
                self.registry_index,
                self.missing,
                self.since,
                self.reason,
            )?,
        })
    }
}

/// A record's state from its row's columns: `state` ([`SOURCING`],
/// [`SEQUENCED`] or [`REJECTED`]), the registry index, the missing digests,
/// since when, and the reason.
pub fn record_state(
    state: i64,
    registry_index: Option<i64>,
    missing: Option<String>,
    since: Option<i64>,
    reason: Option<String>,
) -> Result<RecordState, StoreError> {
    Ok(match state {
        SOURCING => RecordState::Sourcing {
            missing: missing
                .unwrap_or_default()
                .split_whitespace()
                .map(|d| {
                    d.parse()
                        .map_err(|_| StoreError::Corrupt(format!("bad digest `{d}`")))
                })
                .collect::<Result<_, _>>()?,
            since: since.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        },
        SEQUENCED => RecordState::Sequenced {
            index: index_of(
                registry_index
                    .ok_or_else(|| StoreError::Corrupt("sequenced record without index".into()))?,
            )?,
        },
        REJECTED => RecordState::Rejected {
            reason: reason.unwrap_or_default(),
        },
        other => return Err(StoreError::Corrupt(format!("unknown record state {other}"))),
    })
}

/// Missing digests as stored: space-separated text.
pub fn missing_text(missing: &[Hash]) -> String {
    missing
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stored 32-byte hash.
pub fn hash_from(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    Hash::try_from(bytes).map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// A stored index, length or time (a signed 64-bit integer) as the
/// engine's `u64`.
pub fn index_of(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative index {v}")))
}

/// An index, length or time as a signed 64-bit integer (past `i64::MAX`:
/// the largest).
pub fn sql_index(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A checkpoint's row: log length, log root, map root, timestamp, key id,
/// signature.
pub type CheckpointRow = (i64, Vec<u8>, Vec<u8>, i64, String, String);

/// The checkpoint of a row, or why the row is corrupt.
pub fn to_checkpoint(
    (len, log_root, map_root, ts, key_id, signature): CheckpointRow,
) -> Result<SignedCheckpoint, StoreError> {
    Ok(SignedCheckpoint {
        contents: TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root: hash_from(&log_root, "log root")?,
                log_length: index_of(len)?,
                map_root: hash_from(&map_root, "map root")?,
            },
            timestamp: index_of(ts)?,
        },
        key_id: key_id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bad key id `{key_id}`")))?,
        signature: signature
            .parse()
            .map_err(|_| StoreError::Corrupt("bad checkpoint signature".into()))?,
    })
}

/// A token's stored scopes (space-separated).
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, StoreError> {
    text.split_whitespace()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| StoreError::Corrupt(format!("stored token scope: {e}")))
        })
        .collect()
}
