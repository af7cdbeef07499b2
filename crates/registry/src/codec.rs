//! Stored records to and from envelopes and states.

use cairn_protocol::attestation::{AttestationLog, AttestationRecord};
use cairn_protocol::package::{PackageRecord, PackageState};
use cairn_protocol::{Envelope, LogId, PublicKey, Record};

use crate::storage::{RecordState, StoreError, StoredRecord};

/// The envelope a stored record holds.
pub(crate) fn decode<R: Record>(rec: &StoredRecord) -> Result<Envelope<R>, StoreError> {
    Envelope::<R>::from_parts(rec.content_bytes.clone(), &rec.key_id, &rec.signature)
        .map_err(|e| StoreError::Corrupt(format!("stored record {}: {e}", rec.record_id)))
}

/// The stored form of `envelope` in `log_id`.
pub(crate) fn stored<R: Record>(
    log_id: LogId,
    envelope: &Envelope<R>,
    state: RecordState,
) -> StoredRecord {
    StoredRecord {
        record_id: envelope.record_id(),
        log_id,
        content_bytes: envelope.content_bytes().to_vec(),
        key_id: envelope.key_id().to_string(),
        signature: envelope.signature().to_string(),
        state,
    }
}

/// The state of a package log from its stored records, which this
/// registry validated (signatures included) before it stored them: every
/// rule is applied again except the signature checks.
pub(crate) fn package_state<'a>(
    records: impl IntoIterator<Item = &'a StoredRecord>,
) -> Result<PackageState, StoreError> {
    extend_package_state(PackageState::new(), records)
}

/// Applies more stored records of a package log to `state`.
pub(crate) fn extend_package_state<'a>(
    state: PackageState,
    records: impl IntoIterator<Item = &'a StoredRecord>,
) -> Result<PackageState, StoreError> {
    let envelopes = records
        .into_iter()
        .map(decode::<PackageRecord>)
        .collect::<Result<Vec<_>, _>>()?;
    state
        .replay_trusted(&envelopes)
        .map_err(|e| StoreError::Corrupt(format!("stored package record: {e}")))
}

/// An attestation log from its stored records.
pub(crate) fn attestation_log<'a>(
    records: impl IntoIterator<Item = &'a StoredRecord>,
    operator: &PublicKey,
) -> Result<AttestationLog, StoreError> {
    let mut log = AttestationLog::new();
    for rec in records {
        let envelope = decode::<AttestationRecord>(rec)?;
        log = log.validate(&envelope, operator).map_err(|e| {
            StoreError::Corrupt(format!("stored attestation {}: {e}", rec.record_id))
        })?;
    }
    Ok(log)
}
