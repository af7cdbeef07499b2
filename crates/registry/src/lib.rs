//! The Cairn registry engine.
//!
//! [`Registry`] accepts package records, checks them against the package
//! log's rules and the operator log's namespaces, waits for the content they
//! release, sequences them in arrival order into the registry log and signs
//! checkpoints. Every action has one door, whichever face it came from:
//! [`Registry::submit`] (an [`Answer`] to await or wait for),
//! [`Registry::checkpointed`] (wait until a record is published), the
//! content door ([`Admission`]: size, digest and Wasm checked while the
//! bytes stream), and [`oci::Oci::put_manifest`] for OCI pushes.
//!
//! Inside, the sequencer (a pure state machine) decides and the sequencer
//! thread does the IO around it; readers answer from an in-memory view.
//! Storage is behind [`MetaStore`] and [`ContentStore`] (and the OCI face's
//! [`oci::OciStore`] and [`oci::BlobStore`]); `cairn-store` has the SQLite
//! and filesystem implementations, [`memory`] in-memory ones for tests.
//!
//! Invariants: this crate never calls `std::fs` or reads the wall clock
//! (time comes from the [`Clock`] in [`Config`]); the sequencer does no IO;
//! errors are typed reasons, never HTTP statuses or CLI commands.

mod answer;
pub mod auth;
mod cache;
mod chunks;
mod clock;
mod codec;
mod config;
mod content;
mod error;
pub mod memory;
pub mod oci;
pub mod policy;
mod registry;
mod replica;
mod sequencer;
pub mod signatures;
mod snapshot;
mod storage;
mod takedown;
mod thread;
mod tiles;
mod view;
mod wasm;

pub use answer::{block_on, Answer};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;
pub use content::Admission;
pub use error::{ContentError, OpenError, QueryError, SubmitError};
pub use registry::{
    wait_until, Attested, FetchRequest, FetchResponse, RecordStatus, Registry, Role, Upload,
};
pub use storage::{
    AdminRequest, Batch, ByteReader, ContentStore, Leadership, Loaded, MetaStore, PendingContent,
    RecordState, SnapshotWriter, StoreError, StoredRecord,
};
pub use wasm::{WasmError, WasmStream};
