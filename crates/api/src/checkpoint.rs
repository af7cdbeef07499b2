//! Signed checkpoints: the answer of `GET /v1/fetch/checkpoint` and the body
//! of `POST /v1/verify/checkpoint` (the reference's
//! `SerdeEnvelope<TimestampedCheckpoint>`). The client keeps the same shape
//! in its trusted state.

use cairn_protocol::{Checkpoint, SignedCheckpoint, TimestampedCheckpoint};
use serde::{Deserialize, Serialize};

use crate::{parse_field, WireError};

/// A signed checkpoint: `{"contents": {...}, "keyId": ..., "signature": ...}`.
///
/// Unknown fields are refused (the server always refused them in
/// `verify/checkpoint` bodies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedCheckpointJson {
    /// What was signed.
    pub contents: TimestampedCheckpointJson,
    /// The signing key's id, `sha256:<hex>`.
    pub key_id: String,
    /// The signature, `ecdsa-p256:<base64>`.
    pub signature: String,
}

/// The signed contents of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimestampedCheckpointJson {
    /// The registry log's root, `sha256:<hex>`.
    pub log_root: String,
    /// The registry log's length.
    pub log_length: u64,
    /// The registry map's root, `sha256:<hex>`.
    pub map_root: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

impl From<&SignedCheckpoint> for SignedCheckpointJson {
    fn from(cp: &SignedCheckpoint) -> SignedCheckpointJson {
        let c = &cp.contents;
        SignedCheckpointJson {
            contents: TimestampedCheckpointJson {
                log_root: c.checkpoint.log_root.to_string(),
                log_length: c.checkpoint.log_length,
                map_root: c.checkpoint.map_root.to_string(),
                timestamp: c.timestamp,
            },
            key_id: cp.key_id.to_string(),
            signature: cp.signature.to_string(),
        }
    }
}

impl SignedCheckpointJson {
    /// The checkpoint, if every field parses (the signature is not checked).
    pub fn parse(&self) -> Result<SignedCheckpoint, WireError> {
        let c = &self.contents;
        Ok(SignedCheckpoint {
            contents: TimestampedCheckpoint {
                checkpoint: Checkpoint {
                    log_root: parse_field("contents.logRoot", "log root", &c.log_root)?,
                    log_length: c.log_length,
                    map_root: parse_field("contents.mapRoot", "map root", &c.map_root)?,
                },
                timestamp: c.timestamp,
            },
            key_id: parse_field("keyId", "key id", &self.key_id)?,
            signature: parse_field("signature", "signature", &self.signature)?,
        })
    }
}
