//! Checking uploaded content: size limit, digest, and that it is Wasm.

use cairn_protocol::Hash;
use sha2::{Digest, Sha256};
use thiserror::Error;
use wasmparser::{Validator, WasmFeatures};

use crate::storage::{PendingContent, StoreError};

/// Why an upload was refused. Nothing of a refused upload is kept.
#[derive(Debug, Error)]
pub enum UploadError {
    /// No such record.
    #[error("record `{0}` was not found")]
    RecordNotFound(cairn_protocol::RecordId),
    /// The record is not waiting for content.
    #[error("record `{0}` is not waiting for content")]
    NotSourcing(cairn_protocol::RecordId),
    /// The record does not release content with this digest, or it is already here.
    #[error("record `{record}` is not waiting for content `{digest}`")]
    NotMissing {
        /// The record.
        record: cairn_protocol::RecordId,
        /// The digest uploaded to.
        digest: Hash,
    },
    /// More bytes than the configured limit.
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The bytes hash to another digest.
    #[error("uploaded bytes have digest `{found}`, not `{expected}`")]
    DigestMismatch {
        /// The digest the record names.
        expected: Hash,
        /// The digest of the bytes.
        found: Hash,
    },
    /// The bytes are not a valid Wasm module or component.
    #[error("uploaded content is not a valid WebAssembly module or component: {0}")]
    NotWasm(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An upload of one digest for one sourcing record. Feed it with
/// [`Upload::write`], then [`Registry::finish_upload`](crate::Registry::finish_upload);
/// dropping it discards the bytes.
pub struct Upload {
    pub(crate) log_id: cairn_protocol::LogId,
    pub(crate) record_id: cairn_protocol::RecordId,
    pub(crate) expected: Hash,
    pub(crate) limit: u64,
    pub(crate) written: u64,
    pub(crate) hasher: Sha256,
    pub(crate) pending: Box<dyn PendingContent>,
}

impl Upload {
    /// Appends bytes; refuses once the limit is passed.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), UploadError> {
        self.written += bytes.len() as u64;
        if self.written > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        self.hasher.update(bytes);
        self.pending.write(bytes)?;
        Ok(())
    }

    /// The record this upload is for.
    pub fn record_id(&self) -> &cairn_protocol::RecordId {
        &self.record_id
    }

    /// Checks digest and Wasm validity, then stores the bytes durably.
    pub(crate) fn check_and_commit(mut self) -> Result<Hash, UploadError> {
        let found = Hash::from_bytes(self.hasher.finalize().into());
        if found != self.expected {
            return Err(UploadError::DigestMismatch {
                expected: self.expected,
                found,
            });
        }
        let bytes = self.pending.read_back()?;
        check_wasm(&bytes)?;
        self.pending.commit(&self.expected)?;
        Ok(self.expected)
    }
}

/// Accepts any valid core module or component, with every proposal wasmparser knows.
pub fn check_wasm(bytes: &[u8]) -> Result<(), UploadError> {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .map(|_| ())
        .map_err(|e| UploadError::NotWasm(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_check() {
        assert!(check_wasm(b"\0asm\x01\0\0\0").is_ok());
        assert!(check_wasm(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(check_wasm(b"not wasm").is_err());
        assert!(check_wasm(b"").is_err());
    }
}
