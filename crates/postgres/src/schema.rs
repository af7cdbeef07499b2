//! The schema and its version. The tables mirror the SQLite store's
//! (version 4), with PostgreSQL's types: hashes and bytes as `BYTEA`,
//! indexes, lengths and times as `BIGINT`, names compared bytewise
//! (`COLLATE "C"`, as SQLite does) so that listings page the same way.
//! What SQLite keeps beside its database (the map snapshot) is a table
//! here, and the lead has two small tables of its own.

use cairn_registry::StoreError;

use crate::{failed, Shared};

/// The schema version this Cairn writes and reads: the SQLite store's
/// logical version (the log is the `records` table, logs are numbered,
/// signed parts compact).
pub const SCHEMA_VERSION: i32 = 5;

/// The key of the transaction-level advisory lock schema changes run under.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00_0002;

/// What version 5 adds to version 4: namespaces' publish policies.
const MIGRATE_4_TO_5: &str = r#"
CREATE TABLE IF NOT EXISTS publish_policy (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    policy TEXT NOT NULL
);
"#;

/// Every table and index of version 4 but the records' ([`RECORD_TABLES`]);
/// a new database gains the later tables as an older one does
/// ([`MIGRATE_4_TO_5`], [`ADDED_TABLES`]).
///
/// As in SQLite: `records` is the registry log, one row per sequenced
/// record keyed by its registry index, naming its log by number
/// (`logs.id`); `logs` holds each log's id and package name once; records
/// accepted but not in the log (waiting for content, or rejected) are in
/// `pending` (`seq` orders them as they came). Signed parts are kept in
/// their compact forms (`cairn_store::compact`).
const SCHEMA: &str = r#"
CREATE TABLE checkpoints (
    log_length BIGINT PRIMARY KEY,
    log_root BYTEA NOT NULL,
    map_root BYTEA NOT NULL,
    timestamp BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE oci_blobs (
    repo TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE TABLE oci_manifests (
    repo TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    media_type TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    subject TEXT COLLATE "C",
    PRIMARY KEY (repo, digest)
);
CREATE INDEX oci_manifests_by_subject
    ON oci_manifests (repo, subject) WHERE subject IS NOT NULL;
CREATE TABLE oci_tags (
    repo TEXT COLLATE "C" NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repo, tag)
);
CREATE TABLE oci_uploads (
    id TEXT PRIMARY KEY,
    repo TEXT NOT NULL,
    updated BIGINT NOT NULL,
    account TEXT NOT NULL DEFAULT ''
);
CREATE INDEX oci_uploads_by_account ON oci_uploads (account);
CREATE TABLE namespace_policy (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    oci_create BOOLEAN NOT NULL
);
CREATE TABLE accounts (
    name TEXT COLLATE "C" PRIMARY KEY,
    custodial_key TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE tokens (
    hash BYTEA PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    account TEXT NOT NULL,
    scopes TEXT NOT NULL,
    expires BIGINT,
    note TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE TABLE admin_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    define_namespace TEXT NOT NULL,
    outcome TEXT
);
CREATE TABLE cairn_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE cairn_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    secret BYTEA NOT NULL
);
"#;

/// Version 3's records step aside (with their indexes and constraints,
/// whose names version 4 reuses) for [`migrate_3_to_4`]; its map
/// snapshot, one value, goes (the next start reads the log and saves one
/// in chunks).
const MIGRATE_3_TO_4_ASIDE: &str = "
ALTER TABLE records RENAME TO records_v3;
DROP INDEX records_by_log;
DROP INDEX records_sourcing;
DROP INDEX records_named;
ALTER TABLE records_v3 DROP CONSTRAINT records_pkey;
ALTER TABLE records_v3 DROP CONSTRAINT records_registry_index_key;
DROP TABLE map_snapshot;
";

/// The tables of the records and logs, and of the map snapshot (kept in
/// chunks, so that none is near PostgreSQL's 1 GB limit on a value): new
/// in version 4.
const RECORD_TABLES: &str = r#"
CREATE TABLE logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    log_id BYTEA NOT NULL UNIQUE,
    name TEXT COLLATE "C"
);
CREATE TABLE records (
    idx BIGINT PRIMARY KEY,
    log BIGINT NOT NULL,
    record_id BYTEA NOT NULL,
    content BYTEA NOT NULL,
    key_id BYTEA NOT NULL,
    signature BYTEA NOT NULL
);
CREATE INDEX records_by_log ON records (log, idx);
CREATE TABLE pending (
    log_id BYTEA NOT NULL,
    record_id BYTEA NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    content BYTEA NOT NULL,
    key_id BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    state INTEGER NOT NULL,
    missing TEXT,
    since BIGINT,
    reason TEXT,
    PRIMARY KEY (log_id, record_id)
);
CREATE INDEX pending_sourcing ON pending (state) WHERE state = 0;
CREATE SEQUENCE map_snapshot_generation;
CREATE TABLE map_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    log_length BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    chunks INTEGER NOT NULL
);
CREATE TABLE map_snapshot_chunks (
    generation BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (generation, seq)
);
"#;

/// Rows read and written at a time by [`migrate_3_to_4`].
const MIGRATE_PAGE: i32 = 10_000;

/// Moves version 3's records into version 4's tables, as the SQLite store
/// does: logs numbered in the order they began, with their names; the
/// log's records by registry index; the others into `pending`, in the
/// order they came; signed parts in their compact forms. The leaves table
/// goes (the log is `records`).
async fn migrate_3_to_4(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    use cairn_protocol::{LogId, RecordId};
    use cairn_registry::{Batch, StoredRecord};
    use cairn_store::row::{hash_from, record_state};
    let what = "migrate the records to schema 4";
    let fail = failed(what);
    tx.batch_execute(MIGRATE_3_TO_4_ASIDE)
        .await
        .map_err(&fail)?;
    tx.batch_execute(RECORD_TABLES).await.map_err(&fail)?;
    tx.batch_execute(
        "INSERT INTO logs (log_id, name)
             SELECT log_id, max(name) FROM records_v3 GROUP BY log_id ORDER BY min(seq)",
    )
    .await
    .map_err(&fail)?;
    let read = tx
        .prepare(
            "SELECT record_id, log_id, content_bytes, key_id, signature, state, registry_index, \
             missing, since, reason FROM records_v3 \
             ORDER BY state <> 1, registry_index, seq",
        )
        .await
        .map_err(&fail)?;
    let portal = tx.bind(&read, &[]).await.map_err(&fail)?;
    let mut statements = std::collections::HashMap::new();
    loop {
        let rows = tx
            .query_portal(&portal, MIGRATE_PAGE)
            .await
            .map_err(&fail)?;
        if rows.is_empty() {
            break;
        }
        let mut batch = Batch::default();
        for row in &rows {
            batch.records.push(StoredRecord {
                record_id: RecordId::from(hash_from(row.try_get(0).map_err(&fail)?, "record id")?),
                log_id: LogId::from(hash_from(row.try_get(1).map_err(&fail)?, "log id")?),
                content_bytes: row.try_get(2).map_err(&fail)?,
                key_id: row.try_get(3).map_err(&fail)?,
                signature: row.try_get(4).map_err(&fail)?,
                state: record_state(
                    i64::from(row.try_get::<_, i32>(5).map_err(&fail)?),
                    row.try_get(6).map_err(&fail)?,
                    row.try_get(7).map_err(&fail)?,
                    row.try_get(8).map_err(&fail)?,
                    row.try_get(9).map_err(&fail)?,
                )?,
            });
        }
        let rows = crate::meta::CommitRows::of(&batch);
        crate::meta::write_records(tx, &mut statements, &rows).await?;
    }
    // The portal holds the old table until it is closed.
    drop(portal);
    drop(read);
    tx.batch_execute("DROP TABLE records_v3; DROP TABLE leaves;")
        .await
        .map_err(&fail)
}

/// The schema version recorded, if the version table exists.
async fn version(client: &tokio_postgres::Client) -> Result<Option<i32>, StoreError> {
    let what = "read the schema version";
    let exists: bool = client
        .query_one("SELECT to_regclass('cairn_schema') IS NOT NULL", &[])
        .await
        .map_err(failed(what))?
        .try_get(0)
        .map_err(failed(what))?;
    if !exists {
        return Ok(None);
    }
    client
        .query_opt("SELECT version FROM cairn_schema WHERE id = 1", &[])
        .await
        .map_err(failed(what))?
        .map(|row| row.try_get(0).map_err(failed(what)))
        .transpose()
}

fn newer(version: i32) -> StoreError {
    StoreError::Backend(format!(
        "the database has schema version {version}, newer than this Cairn's \
         {SCHEMA_VERSION}: run a newer Cairn on this database"
    ))
}

/// Tables added without a version of their own (each made where it is missing, so a
/// database made before them gains them; one that has them is not
/// written to).
const ADDED_TABLES: &[(&str, &str)] = &[(
    "trusted_keys",
    r#"CREATE TABLE IF NOT EXISTS trusted_keys (
        namespace TEXT COLLATE "C" NOT NULL,
        package TEXT COLLATE "C" NOT NULL,
        key_id TEXT COLLATE "C" NOT NULL,
        label TEXT NOT NULL,
        pem TEXT NOT NULL,
        PRIMARY KEY (namespace, package, key_id)
    )"#,
)];

async fn add_tables(conn: &tokio_postgres::Client) -> Result<(), StoreError> {
    let what = "add the tables of this version";
    for (table, sql) in ADDED_TABLES {
        let missing: bool = conn
            .query_one("SELECT to_regclass($1) IS NULL", &[table])
            .await
            .map_err(failed(what))?
            .try_get(0)
            .map_err(failed(what))?;
        if missing {
            conn.batch_execute(sql).await.map_err(failed(what))?;
        }
    }
    Ok(())
}

/// Creates the schema in an empty database, or checks it; refuses a
/// database from a newer Cairn. A database already at this version is not
/// written to (a server can start on a full disk).
pub(crate) async fn prepare(shared: &Shared) -> Result<(), StoreError> {
    let what = "prepare the schema";
    let mut conn = shared.conn(what).await?;
    match version(&conn).await? {
        Some(SCHEMA_VERSION) => return add_tables(&conn).await,
        Some(v) if v > SCHEMA_VERSION => return Err(newer(v)),
        _ => {}
    }
    let tx = conn.transaction().await.map_err(failed(what))?;
    // Replicas starting together: one creates, the others wait here and
    // then find the schema made.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed(what))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS cairn_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )",
    )
    .await
    .map_err(failed(what))?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM cairn_schema WHERE id = 1", &[])
        .await
        .map_err(failed(what))?
        .map(|row| row.try_get(0).map_err(failed(what)))
        .transpose()?;
    match found {
        Some(SCHEMA_VERSION) => {
            tx.commit().await.map_err(failed(what))?;
            return add_tables(&conn).await;
        }
        Some(v) if v > SCHEMA_VERSION => return Err(newer(v)),
        Some(v @ (3 | 4)) => {
            if v == 3 {
                migrate_3_to_4(&tx).await?;
            }
            tx.batch_execute(MIGRATE_4_TO_5)
                .await
                .map_err(failed(what))?;
            tx.execute(
                "UPDATE cairn_schema SET version = $1 WHERE id = 1",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(failed(what))?;
            tx.commit().await.map_err(failed(what))?;
            return add_tables(&conn).await;
        }
        Some(v) => {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {v}, which no Cairn wrote on PostgreSQL"
            )))
        }
        None => {}
    }
    let stray: bool = tx
        .query_one("SELECT to_regclass('records') IS NOT NULL", &[])
        .await
        .map_err(failed(what))?
        .try_get(0)
        .map_err(failed(what))?;
    if stray {
        return Err(StoreError::Corrupt(
            "the database has Cairn's tables but no schema version: is it another program's?"
                .into(),
        ));
    }
    tx.batch_execute(RECORD_TABLES)
        .await
        .map_err(failed(what))?;
    tx.batch_execute(SCHEMA).await.map_err(failed(what))?;
    // The tables added since version 4, made as an older database gains
    // them (one definition each).
    tx.batch_execute(MIGRATE_4_TO_5)
        .await
        .map_err(failed(what))?;
    for (_, sql) in ADDED_TABLES {
        tx.batch_execute(sql).await.map_err(failed(what))?;
    }
    tx.execute(
        "INSERT INTO cairn_schema (id, version) VALUES (1, $1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(failed(what))?;
    tx.commit().await.map_err(failed(what))
}
