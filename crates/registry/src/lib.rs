//! The Cairn registry engine.
//!
//! [`Registry`] accepts package records, checks them against the package
//! log's rules and the operator log's namespaces, waits for the content they
//! release (checked against its digest and for being Wasm), sequences them in
//! arrival order into the registry log and signs checkpoints. One writer
//! thread does all of that; readers answer from memory and the store.
//!
//! Storage is behind [`MetaStore`] and [`ContentStore`]; `cairn-store` has
//! the SQLite and filesystem implementations.

pub mod auth;
mod content;
mod engine;
pub mod oci;
mod storage;

pub use content::{check_wasm, Upload, UploadError};
pub use engine::{
    Attested, Config, FetchRequest, FetchResponse, OpenError, QueryError, RecordStatus, Registry,
    SubmitError,
};
pub use storage::{
    AdminRequest, Batch, ContentLocation, ContentStore, Loaded, MetaStore, PendingContent,
    RecordState, StoreError, StoredRecord,
};
