//! `POST /v1/verify/checkpoint`: whether a checkpoint is one the registry
//! signed. The request body is a [`crate::SignedCheckpointJson`].

use serde::{Deserialize, Serialize};

/// A verdict on one aspect of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VerificationState {
    /// Not decided (yet).
    Unverified,
    /// Checked and good.
    Verified,
    /// Checked and bad.
    Invalid,
}

impl VerificationState {
    /// `Verified` when `ok`, else `Invalid`.
    pub fn of(ok: bool) -> VerificationState {
        if ok {
            VerificationState::Verified
        } else {
            VerificationState::Invalid
        }
    }
}

/// The answer of `POST /v1/verify/checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointVerificationResponse {
    /// Whether the checkpoint is the registry's at that length.
    pub checkpoint: VerificationState,
    /// Whether its signature is valid.
    pub signature: VerificationState,
    /// Ask again after this many seconds (Cairn never sets it; left out
    /// when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u16>,
}
