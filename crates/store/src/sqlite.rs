//! The metadata store on SQLite in WAL mode. One connection writes (the
//! engine has one writer); a small pool of connections reads.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use cairn_protocol::{LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};
use cairn_registry::policy::PublishPolicy;
use cairn_registry::{
    AdminRequest, Batch, ByteReader, Loaded, MetaStore, RecordState, SnapshotWriter, StoreError,
    StoredRecord,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// The schema, version [`SCHEMA_VERSION`].
///
/// The registry log is the table `records`: one row per sequenced record,
/// its row id the registry index, so the leaves are the rows in order and
/// a new record is appended at the table's end. A log (package or
/// operator) is a small number (`logs.id`) that rows name instead of its
/// 32-byte id; `logs` holds the id and the package's name once per log.
/// Record ids, key ids, signatures and content are kept in their compact
/// forms (`crate::compact`). Of the indexes written on a publish, only
/// `records_by_log` (a log's records in order) and a new log's entry in
/// `logs`' unique index take keys in random order. Records accepted but not
/// in the log (waiting for content, or rejected) are in `pending`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    log_id BLOB NOT NULL UNIQUE,
    name TEXT
);
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY,
    log INTEGER NOT NULL,
    record_id BLOB NOT NULL,
    content BLOB NOT NULL,
    key_id BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_log ON records (log);
CREATE TABLE IF NOT EXISTS pending (
    log_id BLOB NOT NULL,
    record_id BLOB NOT NULL,
    content BLOB NOT NULL,
    key_id BLOB NOT NULL,
    signature BLOB NOT NULL,
    state INTEGER NOT NULL,
    missing TEXT,
    since INTEGER,
    reason TEXT,
    PRIMARY KEY (log_id, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pending_sourcing ON pending (state) WHERE state = 0;
CREATE TABLE IF NOT EXISTS checkpoints (
    log_length INTEGER PRIMARY KEY,
    log_root BLOB NOT NULL,
    map_root BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oci_blobs (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oci_manifests (
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    subject TEXT,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX IF NOT EXISTS oci_manifests_by_subject
    ON oci_manifests (repo, subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS oci_tags (
    repo TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (repo, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oci_uploads (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    updated INTEGER NOT NULL,
    account TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS namespace_policy (
    namespace TEXT PRIMARY KEY,
    oci_create INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS publish_policy (
    namespace TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trusted_keys (
    namespace TEXT NOT NULL,
    package TEXT NOT NULL,
    key_id TEXT NOT NULL,
    label TEXT NOT NULL,
    pem TEXT NOT NULL,
    PRIMARY KEY (namespace, package, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    custodial_key TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    hash BLOB PRIMARY KEY,
    account TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires INTEGER,
    note TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    define_namespace TEXT NOT NULL,
    outcome TEXT
);
";

/// `PRAGMA user_version` of a database with [`SCHEMA`].
const SCHEMA_VERSION: i64 = 5;

/// The records of versions 2 and 3: every record in one table keyed by its
/// log and record id, with its state, the signed parts as text, and the
/// package's name on the first row of its log; the log's leaves in a table
/// of their own. A version 1 database passes through it on its way to 4.
const RECORDS_V3: &str = "
CREATE TABLE records (
    record_id BLOB NOT NULL,
    log_id BLOB NOT NULL,
    content_bytes BLOB NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    state INTEGER NOT NULL,
    registry_index INTEGER UNIQUE,
    missing TEXT,
    since INTEGER,
    reason TEXT,
    name TEXT
);
CREATE INDEX records_by_log ON records (log_id, registry_index);
CREATE INDEX records_sourcing ON records (state) WHERE state = 0;
CREATE TABLE IF NOT EXISTS leaves (
    idx INTEGER PRIMARY KEY,
    log_id BLOB NOT NULL,
    record_id BLOB NOT NULL
);
";

/// From version 2 to 3: upload sessions know their account.
const MIGRATE_2_TO_3: &str = "
ALTER TABLE oci_uploads ADD COLUMN account TEXT NOT NULL DEFAULT '';
";

/// Indexes on columns added by migrations, made once the columns exist.
const LATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS oci_uploads_by_account ON oci_uploads (account);
";

/// From version 1 (records keyed by log and record id, names in a
/// `packages` table) to 2: the old table steps aside, [`RECORDS_V3`]
/// creates the new one, then [`MIGRATE_1_TO_2_COPY`] moves the rows over.
const MIGRATE_1_TO_2_ASIDE: &str = "
ALTER TABLE records RENAME TO records_v1;
DROP INDEX IF EXISTS records_by_log;
DROP INDEX IF EXISTS records_sourcing;
";

/// See [`MIGRATE_1_TO_2_ASIDE`].
const MIGRATE_1_TO_2_COPY: &str = "
INSERT INTO records (record_id, log_id, content_bytes, key_id, signature, state,
                     registry_index, missing, since, reason)
    SELECT record_id, log_id, content_bytes, key_id, signature, state,
           registry_index, missing, since, reason
    FROM records_v1 ORDER BY rowid;
UPDATE records SET name = (SELECT name FROM packages WHERE packages.log_id = records.log_id)
    WHERE rowid IN (SELECT MIN(rowid) FROM records GROUP BY log_id);
DROP TABLE records_v1;
DROP TABLE packages;
";

/// From version 3 to 4, first step: the version 3 records step aside, so
/// that [`SCHEMA`] makes the new tables; [`migrate_3_to_4`] then moves the
/// rows over.
const MIGRATE_3_TO_4_ASIDE: &str = "
ALTER TABLE records RENAME TO records_v3;
DROP INDEX IF EXISTS records_by_log;
DROP INDEX IF EXISTS records_sourcing;
";

/// Moves version 3's records into version 4's tables: a log number for
/// every log in the order the logs began, the log's records in registry
/// order, the others into `pending`; the signed parts in their compact
/// forms. The leaves table goes: the log is `records` itself.
fn migrate_3_to_4(tx: &Connection) -> Result<(), StoreError> {
    tx.execute_batch(
        "INSERT INTO logs (log_id, name)
             SELECT log_id, MAX(name) FROM records_v3 GROUP BY log_id ORDER BY MIN(rowid);",
    )
    .map_err(backend)?;
    let mut read = tx
        .prepare(
            "SELECT record_id, log_id, content_bytes, key_id, signature, state, registry_index,
                    missing, since, reason
             FROM records_v3 ORDER BY state <> 1, registry_index, rowid",
        )
        .map_err(backend)?;
    let mut rows = read.query([]).map_err(backend)?;
    let mut sequenced = tx
        .prepare(
            "INSERT INTO records (idx, log, record_id, content, key_id, signature)
             VALUES (?1, (SELECT id FROM logs WHERE log_id = ?2), ?3, ?4, ?5, ?6)",
        )
        .map_err(backend)?;
    let mut pending = tx
        .prepare(
            "INSERT INTO pending (log_id, record_id, content, key_id, signature, state,
                                  missing, since, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let get = |e: rusqlite::Error| backend(e);
        let record_id: Vec<u8> = row.get(0).map_err(get)?;
        let log_id: Vec<u8> = row.get(1).map_err(get)?;
        let content: Vec<u8> = row.get(2).map_err(get)?;
        let key_id: String = row.get(3).map_err(get)?;
        let signature: String = row.get(4).map_err(get)?;
        let state: i64 = row.get(5).map_err(get)?;
        let parts = (
            compact::encode_content(&content),
            compact::encode_key_id(&key_id),
            compact::encode_signature(&signature),
        );
        match (state, row.get::<_, Option<i64>>(6).map_err(get)?) {
            (SEQUENCED, Some(index)) => sequenced
                .execute(params![index, log_id, record_id, parts.0, parts.1, parts.2])
                .map_err(backend)?,
            (SEQUENCED, None) => {
                return Err(StoreError::Corrupt("sequenced record without index".into()))
            }
            _ => pending
                .execute(params![
                    log_id,
                    record_id,
                    parts.0,
                    parts.1,
                    parts.2,
                    state,
                    row.get::<_, Option<String>>(7).map_err(get)?,
                    row.get::<_, Option<i64>>(8).map_err(get)?,
                    row.get::<_, Option<String>>(9).map_err(get)?
                ])
                .map_err(backend)?,
        };
    }
    drop(rows);
    drop(read);
    tx.execute_batch("DROP TABLE records_v3; DROP TABLE IF EXISTS leaves;")
        .map_err(backend)
}

use crate::compact;
use crate::row::{
    hash_from, index_of, missing_text, sql_index, to_checkpoint, CheckpointRow, RawRecord,
    StoredParts, REJECTED, SEQUENCED, SOURCING,
};
/// SQLite metadata store: one writer connection, and a fixed pool of
/// reader connections. A read waits for a free reader rather than opening
/// another connection, so the number of connections (and of threads
/// inside SQLite) never grows with the load.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    reader_free: Condvar,
    path: std::path::PathBuf,
    /// Seals custodial keys at rest, once set ([`SqliteStore::seal_custodial_keys`]).
    pub(crate) sealer: std::sync::OnceLock<crate::seal::Sealer>,
}

/// The default number of reader connections: one per core, at least 4.
pub fn default_readers() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .max(4)
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        return StoreError::Full(format!("sqlite: {e}"));
    }
    StoreError::Backend(format!("sqlite: {e}"))
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    // FULL: a commit is on disk (WAL fsynced) before it returns, so an
    // acknowledged publish survives power loss, not only a killed process.
    // A larger page cache spares the hot paths a read() per page; a larger
    // WAL before checkpointing writes a page rewritten by many commits back
    // to the database once.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=8192;",
    )
    .map_err(backend)?;
    Ok(conn)
}

/// Makes the database (and its WAL and shared-memory files, which SQLite
/// creates with the database's mode) readable by its owner only: it holds
/// tokens and custodial keys.
fn make_private(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| {
        StoreError::Backend(format!("cannot make {} private: {e}", path.display()))
    };
    if !path.exists() {
        crate::datadir::private_options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            if file.exists() {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
        }
    }
    Ok(())
}

/// A connection for queries. Pages are read into its page cache, not
/// through a memory map: a map's pages count in the process's RSS once per
/// connection that maps them (up to the map's size each, a GiB a
/// connection when it was on), where the kernel's page cache serves the
/// same reads without being charged to the registry; proofs and fetches
/// measured no slower (`cargo bench -p cairn-interop --bench scale`).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_connection(path)?;
    conn.execute_batch("PRAGMA mmap_size=0;").map_err(backend)?;
    Ok(conn)
}

/// Creates the schema in a new database, or brings an older one up to
/// [`SCHEMA_VERSION`]; refuses a database from a newer Cairn.
fn prepare_schema(conn: &mut Connection) -> Result<(), StoreError> {
    // A database already at this version is not written to at all, so
    // that a server can start (and serve reads) on a full disk.
    let current: bool = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version) = ?1
                AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'oci_uploads_by_account')",
            params![SCHEMA_VERSION],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if current {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let has_records: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records')",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    // Version 1 did not set user_version.
    let version = if version == 0 && has_records {
        1
    } else {
        version
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this Cairn's \
             {SCHEMA_VERSION}: run a newer Cairn on this data directory"
        )));
    }
    if version == 1 {
        tx.execute_batch(MIGRATE_1_TO_2_ASIDE).map_err(backend)?;
        tx.execute_batch(RECORDS_V3).map_err(backend)?;
        tx.execute_batch(MIGRATE_1_TO_2_COPY).map_err(backend)?;
    }
    if (1..=3).contains(&version) {
        // Made with the account by `SCHEMA` where it is missing.
        let lacks_account: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'oci_uploads')
                    AND NOT EXISTS (SELECT 1 FROM pragma_table_info('oci_uploads')
                                    WHERE name = 'account')",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if lacks_account {
            tx.execute_batch(MIGRATE_2_TO_3).map_err(backend)?;
        }
        tx.execute_batch(MIGRATE_3_TO_4_ASIDE).map_err(backend)?;
    }
    tx.execute_batch(SCHEMA).map_err(backend)?;
    if (1..=3).contains(&version) {
        migrate_3_to_4(&tx)?;
    }
    tx.execute_batch(LATE_INDEXES).map_err(backend)?;
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with
    /// [`default_readers`] reader connections.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_readers(path, default_readers())
    }

    /// Opens the database at `path` with `readers` reader connections (at
    /// least one).
    pub fn open_with_readers(path: &Path, readers: usize) -> Result<SqliteStore, StoreError> {
        make_private(path)?;
        let mut writer = open_connection(path)?;
        prepare_schema(&mut writer)?;
        let pool = (0..readers.max(1))
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers: Mutex::new(pool),
            reader_free: Condvar::new(),
            path: path.to_owned(),
            sealer: std::sync::OnceLock::new(),
        })
    }

    fn snapshot_path(&self) -> std::path::PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".map-snapshot");
        self.path.with_file_name(name)
    }

    /// Leaves an admin request for the running server (used by
    /// `cairn namespace define` while the server holds the data directory).
    pub fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT INTO admin_requests (define_namespace) VALUES (?1)",
            params![namespace],
        )
        .map_err(backend)?;
        Ok(conn.last_insert_rowid())
    }

    /// The outcome of an admin request, once done.
    pub fn admin_outcome(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT outcome FROM admin_requests WHERE id = ?1",
                params![id],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(|o| o.flatten())
            .map_err(backend)
        })
    }

    /// The signed parts of every sequenced record of a package log (for
    /// moving a data directory to a new layout).
    pub(crate) fn sequenced_package_records(
        &self,
    ) -> Result<Vec<(Vec<u8>, String, String)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT content, key_id, signature FROM records
                     WHERE log IN (SELECT id FROM logs WHERE name IS NOT NULL)",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|(content, key_id, signature)| {
                    Ok((
                        compact::decode_content(&content)?,
                        compact::decode_key_id(&key_id)?,
                        compact::decode_signature(&signature)?,
                    ))
                })
                .collect()
        })
    }

    /// Runs `f` on the writer connection.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        f(&conn)
    }

    /// Runs `f` on a reader connection, waiting for one to be free.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(conn) = pool.pop() {
                    break conn;
                }
                pool = self
                    .reader_free
                    .wait(pool)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        // Back in the pool even if `f` panics.
        struct Return<'a>(&'a SqliteStore, Option<Connection>);
        impl Drop for Return<'_> {
            fn drop(&mut self) {
                if let Some(conn) = self.1.take() {
                    self.0
                        .readers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(conn);
                    self.0.reader_free.notify_one();
                }
            }
        }
        let held = Return(self, Some(conn));
        match &held.1 {
            Some(conn) => f(conn),
            None => Err(StoreError::Backend("no reader connection".into())),
        }
    }
}

/// A `records` row (`SEQUENCED_COLUMNS`) of log `log_id`.
fn sequenced_from_row(row: &rusqlite::Row<'_>, log_id: &[u8]) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        registry_index: Some(row.get(0)?),
        record_id: row.get(1)?,
        log_id: log_id.to_vec(),
        content: row.get(2)?,
        key_id: row.get(3)?,
        signature: row.get(4)?,
        state: SEQUENCED,
        missing: None,
        since: None,
        reason: None,
    })
}

const SEQUENCED_COLUMNS: &str = "idx, record_id, content, key_id, signature";

/// A `pending` row (`PENDING_COLUMNS`).
fn pending_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        log_id: row.get(0)?,
        record_id: row.get(1)?,
        content: row.get(2)?,
        key_id: row.get(3)?,
        signature: row.get(4)?,
        state: row.get(5)?,
        missing: row.get(6)?,
        since: row.get(7)?,
        reason: row.get(8)?,
        registry_index: None,
    })
}

const PENDING_COLUMNS: &str =
    "log_id, record_id, content, key_id, signature, state, missing, since, reason";

/// The number of the log `log_id` (`logs.id`), `SQL` for a subquery.
const LOG_NUMBER: &str = "(SELECT id FROM logs WHERE log_id = ?1)";

/// A `checkpoints` row: length, log root, map root, timestamp, key id, signature.
fn checkpoint_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

/// A record of `log_id` by id: in the log, else pending.
fn query_record(
    conn: &Connection,
    log_id: &LogId,
    record_id: &RecordId,
) -> Result<Option<StoredRecord>, StoreError> {
    let log = log_id.digest().as_bytes().as_slice();
    let id = record_id.digest().as_bytes().as_slice();
    let sequenced = conn
        .prepare_cached(&format!(
            "SELECT {SEQUENCED_COLUMNS} FROM records WHERE log = {LOG_NUMBER} AND record_id = ?2"
        ))
        .map_err(backend)?
        .query_row(params![log, id], |row| sequenced_from_row(row, log))
        .optional()
        .map_err(backend)?;
    let raw = match sequenced {
        Some(raw) => Some(raw),
        None => conn
            .prepare_cached(&format!(
                "SELECT {PENDING_COLUMNS} FROM pending WHERE log_id = ?1 AND record_id = ?2"
            ))
            .map_err(backend)?
            .query_row(params![log, id], pending_from_row)
            .optional()
            .map_err(backend)?,
    };
    raw.map(RawRecord::into_stored).transpose()
}

/// Sequenced records of `log_id` with `after < index < before`, at most
/// `limit`.
fn query_log(
    conn: &Connection,
    log_id: &LogId,
    after: Option<u64>,
    before: u64,
    limit: usize,
) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
    let log = log_id.digest().as_bytes().as_slice();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SEQUENCED_COLUMNS} FROM records
             WHERE log = {LOG_NUMBER} AND idx > ?2 AND idx < ?3 ORDER BY idx"
        ))
        .map_err(backend)?;
    let after = after.map(sql_index).unwrap_or(-1);
    // The limit is applied by stepping no further: a bound `LIMIT ?`
    // makes SQLite re-prepare the statement on every run.
    let raws = stmt
        .query_map(params![log, after, sql_index(before)], |row| {
            sequenced_from_row(row, log)
        })
        .map_err(backend)?
        .take(limit)
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    raws.into_iter()
        .map(|raw| {
            let stored = raw.into_stored()?;
            match stored.state {
                RecordState::Sequenced { index } => Ok((index, stored)),
                _ => Err(StoreError::Corrupt("indexed record not sequenced".into())),
            }
        })
        .collect()
}

/// The leaves from `start` on, in order (at most `limit`): each record of
/// the log with its log's id.
const LEAVES_FROM: &str = "SELECT records.idx, logs.log_id, records.record_id
     FROM records JOIN logs ON logs.id = records.log
     WHERE records.idx >= ?1 ORDER BY records.idx";

/// A leaf of a `LEAVES_FROM` row, which must be at index `expected`.
fn leaf_of_row(row: &rusqlite::Row<'_>, expected: u64) -> Result<LogLeaf, StoreError> {
    let idx: i64 = row.get(0).map_err(backend)?;
    if index_of(idx)? != expected {
        return Err(StoreError::Corrupt(format!(
            "log leaf {expected} is missing (found {idx})"
        )));
    }
    let log_id: Vec<u8> = row.get(1).map_err(backend)?;
    let record_id: Vec<u8> = row.get(2).map_err(backend)?;
    Ok(LogLeaf {
        log_id: LogId::from(hash_from(&log_id, "log id")?),
        record_id: RecordId::from(hash_from(&record_id, "record id")?),
    })
}

/// What [`MetaStore::load`] reads, on `conn` (in one transaction).
fn load_in(conn: &Connection, leaves_from: u64) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded {
        log_length: conn
            .query_row("SELECT COALESCE(MAX(idx) + 1, 0) FROM records", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(backend)
            .and_then(index_of)?,
        ..Loaded::default()
    };
    let from = leaves_from.min(loaded.log_length);
    let mut stmt = conn.prepare(LEAVES_FROM).map_err(backend)?;
    let mut rows = stmt.query(params![sql_index(from)]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let expected = from + loaded.leaves.len() as u64;
        loaded.leaves.push(leaf_of_row(row, expected)?);
    }
    loaded.checkpoint = conn
        .query_row(
            "SELECT log_length, log_root, map_root, timestamp, key_id, signature
             FROM checkpoints ORDER BY log_length DESC LIMIT 1",
            [],
            checkpoint_from_row,
        )
        .optional()
        .map_err(backend)?
        .map(to_checkpoint)
        .transpose()?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {PENDING_COLUMNS} FROM pending WHERE state = 0"
        ))
        .map_err(backend)?;
    let raws = stmt
        .query_map([], pending_from_row)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    for raw in raws {
        loaded.sourcing.push(raw.into_stored()?);
    }
    Ok(loaded)
}

/// The number of log `log_id`, made if it has none yet.
fn log_number(tx: &Connection, log_id: &LogId) -> Result<i64, StoreError> {
    let id = log_id.digest().as_bytes().as_slice();
    let found = tx
        .prepare_cached("SELECT id FROM logs WHERE log_id = ?1")
        .map_err(backend)?
        .query_row(params![id], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    if let Some(number) = found {
        return Ok(number);
    }
    tx.prepare_cached("INSERT INTO logs (log_id) VALUES (?1)")
        .map_err(backend)?
        .execute(params![id])
        .map_err(backend)?;
    Ok(tx.last_insert_rowid())
}

/// The publish policy of `namespace` as `conn` sees it (the default where
/// none was set).
fn policy_of(conn: &Connection, namespace: &str) -> Result<PublishPolicy, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT policy FROM publish_policy WHERE namespace = ?1")
        .map_err(backend)?
        .query_row(params![namespace], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    match text {
        None => Ok(PublishPolicy::default()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("publish policy of `{namespace}`: {e}"))),
    }
}

impl MetaStore for SqliteStore {
    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError> {
        self.read(|conn| {
            // One read transaction: the length, leaves and checkpoint agree.
            let tx = conn.unchecked_transaction().map_err(backend)?;
            let loaded = load_in(&tx, leaves_from)?;
            tx.finish().map_err(backend)?;
            Ok(loaded)
        })
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(backend)?;
        {
            // Names first: a log gets its number (and its name) once.
            let mut name = tx
                .prepare_cached(
                    "INSERT INTO logs (log_id, name) VALUES (?1, ?2)
                     ON CONFLICT (log_id) DO UPDATE SET name = excluded.name WHERE name IS NULL",
                )
                .map_err(backend)?;
            for (log_id, package) in &batch.names {
                name.execute(params![
                    log_id.digest().as_bytes().as_slice(),
                    package.as_str()
                ])
                .map_err(backend)?;
            }
            let mut append = tx
                .prepare_cached(
                    "INSERT INTO records (idx, log, record_id, content, key_id, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(backend)?;
            let mut pend = tx
                .prepare_cached(&format!(
                    "INSERT INTO pending ({PENDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .map_err(backend)?;
            for r in &batch.records {
                let parts = StoredParts::of(r);
                let log_id = r.log_id.digest().as_bytes().as_slice();
                let record_id = r.record_id.digest().as_bytes().as_slice();
                let (state, missing, since, reason) = match &r.state {
                    RecordState::Sequenced { index } => {
                        append
                            .execute(params![
                                sql_index(*index),
                                log_number(&tx, &r.log_id)?,
                                record_id,
                                parts.content,
                                parts.key_id,
                                parts.signature
                            ])
                            .map_err(backend)?;
                        continue;
                    }
                    RecordState::Sourcing { missing, since } => (
                        SOURCING,
                        Some(missing_text(missing)),
                        Some(sql_index(*since)),
                        None,
                    ),
                    RecordState::Rejected { reason } => {
                        (REJECTED, None, None, Some(reason.as_str()))
                    }
                };
                pend.execute(params![
                    log_id,
                    record_id,
                    parts.content,
                    parts.key_id,
                    parts.signature,
                    state,
                    missing,
                    since,
                    reason
                ])
                .map_err(backend)?;
            }
            // Sourcing records whose content came move into the log.
            let mut sequence = tx
                .prepare_cached(
                    "INSERT INTO records (idx, log, record_id, content, key_id, signature)
                     SELECT ?3, ?4, record_id, content, key_id, signature FROM pending
                     WHERE log_id = ?1 AND record_id = ?2 AND state = 0",
                )
                .map_err(backend)?;
            let mut unpend = tx
                .prepare_cached("DELETE FROM pending WHERE log_id = ?1 AND record_id = ?2")
                .map_err(backend)?;
            for (log_id, record_id, index) in &batch.sequenced {
                let key = params![
                    log_id.digest().as_bytes().as_slice(),
                    record_id.digest().as_bytes().as_slice()
                ];
                let changed = sequence
                    .execute(params![
                        log_id.digest().as_bytes().as_slice(),
                        record_id.digest().as_bytes().as_slice(),
                        sql_index(*index),
                        log_number(&tx, log_id)?
                    ])
                    .map_err(backend)?;
                if changed != 1 {
                    return Err(StoreError::Corrupt(format!(
                        "record {record_id} of log {log_id} is not sourcing"
                    )));
                }
                unpend.execute(key).map_err(backend)?;
            }
            let mut reject = tx
                .prepare_cached(
                    "UPDATE pending SET state = 2, reason = ?3, missing = NULL
                     WHERE log_id = ?1 AND record_id = ?2",
                )
                .map_err(backend)?;
            for (log_id, record_id, reason) in &batch.rejected {
                reject
                    .execute(params![
                        log_id.digest().as_bytes().as_slice(),
                        record_id.digest().as_bytes().as_slice(),
                        reason
                    ])
                    .map_err(backend)?;
            }
            let mut still = tx
                .prepare_cached(
                    "UPDATE pending SET missing = ?3 WHERE log_id = ?1 AND record_id = ?2",
                )
                .map_err(backend)?;
            for (log_id, record_id, missing) in &batch.still_missing {
                still
                    .execute(params![
                        log_id.digest().as_bytes().as_slice(),
                        record_id.digest().as_bytes().as_slice(),
                        missing_text(missing)
                    ])
                    .map_err(backend)?;
            }
            for write in &batch.manifests {
                crate::oci::write_manifest(&tx, write)?;
            }
            if let Some(cp) = &batch.checkpoint {
                let c = &cp.contents;
                tx.execute(
                    "INSERT INTO checkpoints (log_length, log_root, map_root, timestamp, key_id, signature)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        sql_index(c.checkpoint.log_length),
                        c.checkpoint.log_root.as_bytes().as_slice(),
                        c.checkpoint.map_root.as_bytes().as_slice(),
                        sql_index(c.timestamp),
                        cp.key_id.to_string(),
                        cp.signature.to_string()
                    ],
                )
                .map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn record(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.read(|conn| query_record(conn, log_id, record_id))
    }

    fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.read(|conn| query_log(conn, log_id, after, before, limit))
    }

    // The writer's reads go to the write connection: its page cache is
    // kept warm by the writer's own commits, where a reader connection
    // would drop its cache after every commit.
    fn writer_records(
        &self,
        keys: &[(LogId, RecordId)],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError> {
        self.write(|conn| {
            keys.iter()
                .map(|(log_id, record_id)| query_record(conn, log_id, record_id))
                .collect()
        })
    }

    fn writer_log(&self, log_id: &LogId) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.write(|conn| query_log(conn, log_id, None, u64::MAX, usize::MAX))
    }

    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT log_length, log_root, map_root, timestamp, key_id, signature
                 FROM checkpoints WHERE log_length = ?1",
            )
            .map_err(backend)?
            .query_row(params![sql_index(log_length)], checkpoint_from_row)
            .optional()
            .map_err(backend)?
            .map(to_checkpoint)
            .transpose()
        })
    }

    fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name FROM logs WHERE log_id = ?1")
                .map_err(backend)?;
            log_ids
                .iter()
                .map(|id| {
                    let name: Option<String> = stmt
                        .query_row(params![id.digest().as_bytes().as_slice()], |r| r.get(0))
                        .optional()
                        .map_err(backend)?
                        .flatten();
                    name.map(|n| {
                        PackageName::new(n)
                            .map_err(|e| StoreError::Corrupt(format!("stored package name: {e}")))
                    })
                    .transpose()
                })
                .collect()
        })
    }

    fn package_list(&self) -> Result<Vec<PackageName>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name FROM logs WHERE name IS NOT NULL
                     AND EXISTS (SELECT 1 FROM records WHERE records.log = logs.id)
                     ORDER BY name",
                )
                .map_err(backend)?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            names
                .into_iter()
                .map(|n| {
                    PackageName::new(n)
                        .map_err(|e| StoreError::Corrupt(format!("stored package name: {e}")))
                })
                .collect()
        })
    }

    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT records.idx, logs.log_id, records.record_id
                     FROM records JOIN logs ON logs.id = records.log WHERE records.idx = ?1",
                )
                .map_err(backend)?;
            indexes
                .iter()
                .map(|&i| {
                    let mut rows = stmt.query(params![sql_index(i)]).map_err(backend)?;
                    match rows.next().map_err(backend)? {
                        Some(row) => leaf_of_row(row, i).map(Some),
                        None => Ok(None),
                    }
                })
                .collect()
        })
    }

    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(LEAVES_FROM).map_err(backend)?;
            let mut rows = stmt.query(params![sql_index(start)]).map_err(backend)?;
            let mut leaves = Vec::with_capacity(limit.min(1 << 20));
            while leaves.len() < limit {
                let Some(row) = rows.next().map_err(backend)? else {
                    break;
                };
                leaves.push(leaf_of_row(row, start + leaves.len() as u64)?);
            }
            Ok(leaves)
        })
    }

    fn publish_policy(&self, namespace: &str) -> Result<PublishPolicy, StoreError> {
        self.read(|conn| policy_of(conn, namespace))
    }

    fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let text = serde_json::to_string(policy)
            .map_err(|e| StoreError::Backend(format!("cannot encode a publish policy: {e}")))?;
        self.write(|conn| {
            // One write transaction, taken at once: no other edit (from
            // this process or another on the file) between the comparison
            // and the write.
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )
            .map_err(backend)?;
            if let Some(tag) = if_tag {
                if policy_of(&tx, namespace)?.tag() != tag {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT INTO publish_policy (namespace, policy) VALUES (?1, ?2)
                 ON CONFLICT (namespace) DO UPDATE SET policy = excluded.policy",
                params![namespace, text],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
    }

    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, define_namespace FROM admin_requests WHERE outcome IS NULL ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(AdminRequest {
                        id: r.get(0)?,
                        define_namespace: r.get(1)?,
                    })
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend);
            rows
        })
    }

    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError> {
        let path = self.snapshot_path();
        let dir = path.parent().unwrap_or(Path::new("."));
        let io = |e: std::io::Error| StoreError::io("map snapshot", &e);
        let file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        out.write_all(&log_length.to_le_bytes()).map_err(io)?;
        write(&mut out).map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.as_file().sync_all().map_err(io)?;
        file.persist(&path).map_err(|e| io(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError> {
        let file = match std::fs::File::open(self.snapshot_path()) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Backend(format!("map snapshot: {e}"))),
        };
        let mut input = std::io::BufReader::with_capacity(1 << 20, file);
        let mut head = [0u8; 8];
        input
            .read_exact(&mut head)
            .map_err(|_| StoreError::Corrupt("map snapshot is truncated".into()))?;
        Ok(Some((u64::from_le_bytes(head), Box::new(input))))
    }

    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        SqliteStore::request_define_namespace(self, namespace)
    }

    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "UPDATE admin_requests SET outcome = ?2 WHERE id = ?1",
            params![id, outcome],
        )
        .map_err(backend)?;
        Ok(())
    }
}
