//! `POST /v1/proof/consistency` and `POST /v1/proof/inclusion`: requests
//! and the proof bundles (protobuf, base64 on the wire).

use serde::{Deserialize, Serialize};

/// The body of a consistency proof request. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistencyRequest {
    /// The shorter log length.
    pub from: u64,
    /// The longer log length.
    pub to: u64,
}

/// The answer of a consistency proof request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyResponse {
    /// The `LogProofBundle` bytes.
    #[serde(with = "crate::base64_bytes")]
    pub proof: Vec<u8>,
}

/// The body of an inclusion proof request. Unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionRequest {
    /// The length of the checkpoint to prove against.
    pub log_length: u64,
    /// The registry indexes of the leaves (each the latest record of its
    /// log at that checkpoint).
    pub leafs: Vec<u64>,
}

/// The answer of an inclusion proof request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionResponse {
    /// The `LogProofBundle` bytes (leaves in the registry log).
    #[serde(with = "crate::base64_bytes")]
    pub log: Vec<u8>,
    /// The `MapProofBundle` bytes (each log's head in the map).
    #[serde(with = "crate::base64_bytes")]
    pub map: Vec<u8>,
}
