//! The storage suite (`cairn_interop::storage_suite`) on every metadata
//! backend there is: the in-memory store the engine's tests use, and
//! SQLite. A new backend joins here.
//! (In `cairn-interop`, which depends on every store crate.)

use std::sync::Arc;

use cairn_interop::storage_suite::{self, Backend};
use cairn_registry::memory::MemoryMeta;
use cairn_store::SqliteStore;

#[test]
fn the_in_memory_store_passes_the_storage_suite() {
    storage_suite::run(&|| Arc::new(MemoryMeta::default()) as Arc<dyn Backend>);
}

#[test]
fn sqlite_passes_the_storage_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    storage_suite::run(&|| {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("cairn.sqlite3")).expect("open");
        dirs.lock().expect("dirs").push(dir);
        Arc::new(store) as Arc<dyn Backend>
    });
}
