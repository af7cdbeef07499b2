//! Why the engine refused something. Typed reasons only: the faces map
//! them to HTTP statuses and the CLI words them.

use cairn_protocol::{Hash, LogId, PackageName, RecordId};
use thiserror::Error;

use crate::storage::StoreError;
use crate::wasm::WasmError;

/// Why a record was refused at submission. Nothing of it is stored.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The package's namespace is not defined by the operator log.
    #[error("namespace `{0}` is not defined on the registry")]
    NamespaceNotDefined(String),
    /// The namespace belongs to another registry.
    #[error("namespace `{0}` is an imported namespace from another registry")]
    NamespaceImported(String),
    /// The log id given is not the package's.
    #[error("log id `{found}` is not the log id of package `{name}` (expected `{expected}`)")]
    LogIdMismatch {
        /// The package.
        name: PackageName,
        /// Its log id.
        expected: LogId,
        /// The id given.
        found: LogId,
    },
    /// Another record of the package is still waiting for content.
    #[error(
        "the package conflicts with pending publish of record `{record}`: it waits for content \
         {}; a new record can be published once that content is uploaded, or after the record \
         is rejected for want of it in {retry_in} s",
        missing.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
    )]
    ConflictPending {
        /// The waiting record.
        record: RecordId,
        /// The content it waits for.
        missing: Vec<Hash>,
        /// Seconds until it is rejected if the content does not arrive.
        retry_in: u64,
    },
    /// The package was taken down by the operator: it takes no records.
    #[error("package `{name}` was taken down by the registry operator: {reason}")]
    TakenDown {
        /// The package.
        name: PackageName,
        /// The operator's reason.
        reason: String,
    },
    /// The log's rules refuse the record.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed; nothing was accepted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry is shutting down.
    #[error("the registry is shutting down")]
    Stopped,
    /// Another replica sequences; writes go there.
    #[error("this replica does not sequence records; send writes to the one that leads")]
    NotLeader,
}

/// Why a read was refused.
#[derive(Debug, Error)]
pub enum QueryError {
    /// No checkpoint at that length.
    #[error("checkpoint log length `{0}` was not found")]
    CheckpointNotFound(u64),
    /// No leaf at that index.
    #[error("log leaf `{0}` was not found")]
    LeafNotFound(u64),
    /// No such log.
    #[error("log `{0}` was not found")]
    LogNotFound(LogId),
    /// No such record in that log.
    #[error("record `{0}` was not found")]
    RecordNotFound(RecordId),
    /// The request makes no sense.
    #[error("{0}")]
    Invalid(String),
    /// The request names more items than one request may.
    #[error("the request names {asked} {what}; at most {max} may be asked for at once: split it")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were asked for.
        asked: usize,
        /// The most allowed.
        max: usize,
    },
    /// The content was taken down by the operator (its records stay).
    #[error("content {digest} of {scope} was taken down by the registry operator: {reason}")]
    TakenDown {
        /// The content's digest.
        digest: Hash,
        /// The release or package taken down.
        scope: String,
        /// The operator's reason.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the registry could not open.
#[derive(Debug, Error)]
pub enum OpenError {
    /// Storage failed or is inconsistent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key given is not the operator key of this registry.
    #[error("the operator key {given} is not the key that initialised this registry ({expected}); start with the original key")]
    WrongOperatorKey {
        /// The key that initialised the log.
        expected: String,
        /// The key given.
        given: String,
    },
    /// A namespace to define is not a valid name, or a stored record is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Why bytes were not admitted as release content. Nothing of them is kept.
#[derive(Debug, Error)]
pub enum ContentError {
    /// No such record.
    #[error("record `{0}` was not found")]
    RecordNotFound(RecordId),
    /// The record is not waiting for content.
    #[error("record `{0}` is not waiting for content")]
    NotSourcing(RecordId),
    /// The record does not release content with this digest, or it is already here.
    #[error("record `{record}` is not waiting for content `{digest}`")]
    NotMissing {
        /// The record.
        record: RecordId,
        /// The digest uploaded to.
        digest: Hash,
    },
    /// More bytes than the configured limit.
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The bytes hash to another digest.
    #[error("content bytes have digest `{found}`, not `{expected}`")]
    DigestMismatch {
        /// The digest expected.
        expected: Hash,
        /// The digest of the bytes.
        found: Hash,
    },
    /// The bytes are not a valid Wasm module or component.
    #[error("content is not a valid WebAssembly module or component: {0}")]
    NotWasm(#[from] WasmError),
    /// Too much content is being validated at once; retry shortly.
    #[error(
        "the registry is validating more large WebAssembly sections at once than its memory \
         budget ({budget} bytes) allows; retry in a few seconds"
    )]
    Busy {
        /// The budget.
        budget: u64,
    },
    /// The release is refused by its namespace's publish policy.
    #[error(transparent)]
    Policy(Box<crate::policy::PolicyRefusal>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::policy::PolicyRefusal> for ContentError {
    fn from(e: crate::policy::PolicyRefusal) -> ContentError {
        ContentError::Policy(Box::new(e))
    }
}

impl From<Box<crate::policy::PolicyRefusal>> for ContentError {
    fn from(e: Box<crate::policy::PolicyRefusal>) -> ContentError {
        ContentError::Policy(e)
    }
}
