//! Storage for the Cairn engine: [`SqliteStore`] (records, logs,
//! checkpoints, indexes, OCI metadata, accounts and tokens in SQLite, WAL
//! mode), [`FsContentStore`] (release content files addressed by digest)
//! and [`FsBlobStore`] (OCI blobs and upload sessions), plus the layout of
//! the embedded default's data directory ([`DataDir`]).

mod auth;
pub mod compact;
mod datadir;
mod files;
mod layout;
mod oci;
pub mod row;
pub mod seal;
mod sqlite;
mod witness;

pub use datadir::{DataDir, DirLock, KeySource, Stores};
pub use files::{FsBlobStore, FsContentStore};
pub use seal::Sealer;
pub use sqlite::{default_readers, SqliteStore};
pub use witness::{Held, WitnessState};
