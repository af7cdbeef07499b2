//! The storage suite (`cairn_interop::storage_suite`) on every metadata
//! backend there is: the in-memory store the engine's tests use, and
//! SQLite, and PostgreSQL (on a throwaway server). A new backend joins here.
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

#[test]
fn postgres_passes_the_storage_suite() {
    use cairn_postgres::{PgOptions, PgStore};
    use cairn_registry::Leadership;

    let Some(pg) = cairn_interop::postgres::Postgres::start("postgres_passes_the_storage_suite")
    else {
        return;
    };
    // A database per case: each starts empty, with its own lead.
    let made = std::sync::atomic::AtomicUsize::new(0);
    storage_suite::run(&|| {
        let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        pg.psql(&format!("CREATE DATABASE suite_{n}"));
        let url = format!("postgres://postgres@127.0.0.1:{}/suite_{n}", pg.port);
        let store = PgStore::connect(&url, PgOptions::default()).expect("connect");
        assert!(store.try_lead("http://127.0.0.1:1").expect("lead"));
        Arc::new(store) as Arc<dyn Backend>
    });
}
