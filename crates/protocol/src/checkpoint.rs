//! Checkpoints (log root, log length, map root), their operator signatures,
//! and the leaves of the registry log and map.

use crate::encoding::PrefixEncoder;
use crate::ids::{LogId, RecordId};
use crate::keys::{BadSignature, KeyId, PrivateKey, PublicKey, Signature};
use crate::record::signing_message;
use crate::Hash;

/// The registry's state at one log length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Root of the registry log.
    pub log_root: Hash,
    /// Number of leaves in the registry log.
    pub log_length: u64,
    /// Root of the map from log id to latest record.
    pub map_root: Hash,
}

impl Checkpoint {
    /// The prefix encoding Warg hashes a checkpoint as.
    pub fn encode(&self) -> Vec<u8> {
        PrefixEncoder::new("WARG-CHECKPOINT-V0")
            .unsigned(self.log_length)
            .str(&self.log_root.to_string())
            .str(&self.map_root.to_string())
            .finish()
    }
}

/// A checkpoint with the operator's timestamp (seconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimestampedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

impl TimestampedCheckpoint {
    /// Prefix for checkpoint signatures.
    pub const SIGNATURE_PREFIX: &'static [u8] = b"WARG-CHECKPOINT-SIGNATURE-V0";

    /// The bytes that are signed (after the prefix).
    pub fn encode(&self) -> Vec<u8> {
        PrefixEncoder::new("WARG-TIMESTAMPED-CHECKPOINT-V0")
            .unsigned(self.checkpoint.log_length)
            .str(&self.checkpoint.log_root.to_string())
            .str(&self.checkpoint.map_root.to_string())
            .unsigned(self.timestamp)
            .finish()
    }

    /// Signs with the operator key.
    pub fn sign(self, key: &PrivateKey) -> SignedCheckpoint {
        let signature = key.sign(&signing_message(Self::SIGNATURE_PREFIX, &self.encode()));
        SignedCheckpoint {
            contents: self,
            key_id: key.public_key().id(),
            signature,
        }
    }
}

/// A timestamped checkpoint signed by an operator key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub contents: TimestampedCheckpoint,
    /// The signing key's id.
    pub key_id: KeyId,
    /// The signature.
    pub signature: Signature,
}

impl SignedCheckpoint {
    /// Checks the signature with `key` (which must be the key `key_id` names;
    /// whether that key may sign checkpoints is the operator log's business).
    pub fn verify(&self, key: &PublicKey) -> Result<(), BadSignature> {
        if key.id() != self.key_id {
            return Err(BadSignature);
        }
        key.verify(
            &signing_message(
                TimestampedCheckpoint::SIGNATURE_PREFIX,
                &self.contents.encode(),
            ),
            &self.signature,
        )
    }
}

/// A leaf of the registry log: one record of one log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogLeaf {
    /// The log the record belongs to.
    pub log_id: LogId,
    /// The record.
    pub record_id: RecordId,
}

impl LogLeaf {
    /// The leaf's bytes.
    pub fn encode(&self) -> Vec<u8> {
        PrefixEncoder::new("WARG-LOG-LEAF-V0")
            .str(&self.log_id.to_string())
            .str(&self.record_id.to_string())
            .finish()
    }

    /// The leaf's hash in the registry log.
    pub fn leaf_hash(&self) -> Hash {
        cairn_transparency::hash_leaf(&self.encode())
    }
}

/// A leaf of the registry map: the latest record of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapLeaf {
    /// The log's latest record.
    pub record_id: RecordId,
}

impl MapLeaf {
    /// The leaf's bytes.
    pub fn encode(&self) -> Vec<u8> {
        PrefixEncoder::new("WARG-MAP-LEAF-V0")
            .str(&self.record_id.to_string())
            .finish()
    }

    /// The leaf's hash in the registry map.
    pub fn leaf_hash(&self) -> Hash {
        cairn_transparency::hash_leaf(&self.encode())
    }
}
