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
pub const SCHEMA_VERSION: i32 = 4;

/// The key of the transaction-level advisory lock schema changes run under.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00_0002;

/// Every table and index of [`SCHEMA_VERSION`] but the records'
/// ([`RECORD_TABLES`]).
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
CREATE TABLE map_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    log_length BIGINT NOT NULL,
    bytes BYTEA NOT NULL
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
/// whose names version 4 reuses) for [`migrate_3_to_4`].
const MIGRATE_3_TO_4_ASIDE: &str = "
ALTER TABLE records RENAME TO records_v3;
DROP INDEX records_by_log;
DROP INDEX records_sourcing;
DROP INDEX records_named;
ALTER TABLE records_v3 DROP CONSTRAINT records_pkey;
ALTER TABLE records_v3 DROP CONSTRAINT records_registry_index_key;
";

/// The tables of the records and logs (new in version 4).
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
"#;

/// Rows read and written at a time by [`migrate_3_to_4`].
const MIGRATE_PAGE: i32 = 10_000;

/// Moves version 3's records into version 4's tables, as the SQLite store
/// does: logs numbered in the order they began, with their names; the
/// log's records by registry index; the others into `pending`, in the
/// order they came; signed parts in their compact forms. The leaves table
/// goes (the log is `records`).
async fn migrate_3_to_4(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    use cairn_store::compact;
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
    let append = tx
        .prepare(
            "INSERT INTO records (idx, log, record_id, content, key_id, signature) \
             SELECT u.idx, l.id, u.record_id, u.content, u.key_id, u.signature \
             FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], \
             $6::bytea[]) AS u (idx, log_id, record_id, content, key_id, signature) \
             JOIN logs l ON l.log_id = u.log_id",
        )
        .await
        .map_err(&fail)?;
    let pend = tx
        .prepare(
            "INSERT INTO pending (log_id, record_id, content, key_id, signature, state, \
             missing, since, reason) \
             SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], \
             $5::bytea[], $6::int4[], $7::text[], $8::int8[], $9::text[])",
        )
        .await
        .map_err(&fail)?;
    let portal = tx.bind(&read, &[]).await.map_err(&fail)?;
    loop {
        let rows = tx
            .query_portal(&portal, MIGRATE_PAGE)
            .await
            .map_err(&fail)?;
        if rows.is_empty() {
            break;
        }
        let mut log: (
            Vec<i64>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
        ) = Default::default();
        let mut waiting: (
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<Vec<u8>>,
            Vec<i32>,
            Vec<Option<String>>,
            Vec<Option<i64>>,
            Vec<Option<String>>,
        ) = Default::default();
        for row in &rows {
            let record_id: Vec<u8> = row.try_get(0).map_err(&fail)?;
            let log_id: Vec<u8> = row.try_get(1).map_err(&fail)?;
            let content: Vec<u8> = row.try_get(2).map_err(&fail)?;
            let key_id: String = row.try_get(3).map_err(&fail)?;
            let signature: String = row.try_get(4).map_err(&fail)?;
            let state: i32 = row.try_get(5).map_err(&fail)?;
            let index: Option<i64> = row.try_get(6).map_err(&fail)?;
            let (content, key_id, signature) = (
                compact::encode_content(&content),
                compact::encode_key_id(&key_id),
                compact::encode_signature(&signature),
            );
            if state == 1 {
                let index = index
                    .ok_or_else(|| StoreError::Corrupt("sequenced record without index".into()))?;
                log.0.push(index);
                log.1.push(log_id);
                log.2.push(record_id);
                log.3.push(content);
                log.4.push(key_id);
                log.5.push(signature);
            } else {
                waiting.0.push(log_id);
                waiting.1.push(record_id);
                waiting.2.push(content);
                waiting.3.push(key_id);
                waiting.4.push(signature);
                waiting.5.push(state);
                waiting.6.push(row.try_get(7).map_err(&fail)?);
                waiting.7.push(row.try_get(8).map_err(&fail)?);
                waiting.8.push(row.try_get(9).map_err(&fail)?);
            }
        }
        if !log.0.is_empty() {
            tx.execute(&append, &[&log.0, &log.1, &log.2, &log.3, &log.4, &log.5])
                .await
                .map_err(&fail)?;
        }
        if !waiting.0.is_empty() {
            tx.execute(
                &pend,
                &[
                    &waiting.0, &waiting.1, &waiting.2, &waiting.3, &waiting.4, &waiting.5,
                    &waiting.6, &waiting.7, &waiting.8,
                ],
            )
            .await
            .map_err(&fail)?;
        }
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

/// Creates the schema in an empty database, or checks it; refuses a
/// database from a newer Cairn. A database already at this version is not
/// written to (a server can start on a full disk).
pub(crate) async fn prepare(shared: &Shared) -> Result<(), StoreError> {
    let what = "prepare the schema";
    let mut conn = shared.conn(what).await?;
    match version(&conn).await? {
        Some(SCHEMA_VERSION) => return Ok(()),
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
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => return Err(newer(v)),
        Some(3) => {
            migrate_3_to_4(&tx).await?;
            tx.execute(
                "UPDATE cairn_schema SET version = $1 WHERE id = 1",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(failed(what))?;
            return tx.commit().await.map_err(failed(what));
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
    tx.execute(
        "INSERT INTO cairn_schema (id, version) VALUES (1, $1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(failed(what))?;
    tx.commit().await.map_err(failed(what))
}
