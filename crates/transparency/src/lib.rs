//! Warg v1 transparency structures, pure (no IO, no async, no clock):
//!
//! - [`struct@Hash`]: SHA-256 digests and the leaf/branch hashes of Warg v1;
//! - [`log`]: the registry's append-only Merkle log, inclusion and
//!   consistency proofs, and `LogProofBundle`s;
//! - [`map`]: the sparse Merkle map from log id to latest record, inclusion
//!   proofs and `MapProofBundle`s;
//! - [`note`]: the C2SP formats beside Warg's: signed notes, checkpoints
//!   and cosignatures (the log as tiles is in [`log`]);
//! - [`witness`]: a C2SP witness's decision on `add-checkpoint`, and
//!   trust policies (which logs and witnesses, and how many).
#![warn(missing_docs)]

mod hash;
mod lanes;
pub mod log;
pub mod map;
pub mod note;
mod proto;
pub mod tlog_proof;
pub mod witness;

pub use hash::{empty_subtree, hash_branch, hash_leaf, Hash, HashParseError};
pub use lanes::{hash_branches, LANES};
