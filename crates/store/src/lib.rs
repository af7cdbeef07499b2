//! Storage for the Cairn engine: [`SqliteStore`] (records, logs,
//! checkpoints, indexes in SQLite, WAL mode) and [`FsContentStore`] (content
//! files addressed by digest), plus the layout of the embedded default's
//! data directory ([`DataDir`]).

mod auth;
mod datadir;
mod files;
mod oci;
mod sqlite;

pub use datadir::{DataDir, DirLock, KeySource};
pub use files::FsContentStore;
pub use sqlite::SqliteStore;
