//! The schema and its version. The tables mirror the SQLite store's
//! (version 3), with PostgreSQL's types: hashes and bytes as `BYTEA`,
//! indexes, lengths and times as `BIGINT`, names compared bytewise
//! (`COLLATE "C"`, as SQLite does) so that listings page the same way.
//! What SQLite keeps beside its database (the map snapshot) is a table
//! here, and the lead has two small tables of its own.

use cairn_registry::StoreError;

use crate::{failed, Shared};

/// The schema version this Cairn writes and reads: the SQLite store's
/// logical version (upload sessions know their account).
pub const SCHEMA_VERSION: i32 = 3;

/// The key of the transaction-level advisory lock schema changes run under.
const MIGRATION_LOCK: i64 = 0x6361_6972_6e00_0002;

/// Every table and index of [`SCHEMA_VERSION`].
///
/// `records`: a record is keyed by its log and id (record ids are unique
/// within a log only); `seq` orders rows as they were written, so a
/// package's name goes on the first row of its log as in SQLite.
const SCHEMA: &str = r#"
CREATE TABLE records (
    log_id BYTEA NOT NULL,
    record_id BYTEA NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    content_bytes BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    state INTEGER NOT NULL,
    registry_index BIGINT UNIQUE,
    missing TEXT,
    since BIGINT,
    reason TEXT,
    name TEXT COLLATE "C",
    PRIMARY KEY (log_id, record_id)
);
CREATE INDEX records_by_log ON records (log_id, registry_index);
CREATE INDEX records_sourcing ON records (state) WHERE state = 0;
CREATE INDEX records_named ON records (name) WHERE name IS NOT NULL;
CREATE TABLE leaves (
    idx BIGINT PRIMARY KEY,
    log_id BYTEA NOT NULL,
    record_id BYTEA NOT NULL
);
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
    tx.batch_execute(SCHEMA).await.map_err(failed(what))?;
    tx.execute(
        "INSERT INTO cairn_schema (id, version) VALUES (1, $1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(failed(what))?;
    tx.commit().await.map_err(failed(what))
}
