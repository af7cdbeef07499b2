//! Records, leaves, checkpoints, names, admin requests and the map
//! snapshot: [`MetaStore`] on PostgreSQL, with the SQLite store's
//! semantics. A commit is one transaction on the writer's session, its
//! rows sent as arrays (`UNNEST`), so a batch costs a handful of round
//! trips however many records it holds.

use std::collections::{HashMap, HashSet};

use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};
use cairn_registry::{
    AdminRequest, Batch, ByteReader, Loaded, MetaStore, RecordState, SnapshotWriter, StoreError,
    StoredRecord,
};
use futures_util::TryStreamExt;
use tokio_postgres::{Client, Row, Statement};

use crate::lead::{prepared, Writer};
use crate::oci::{write_manifests, ManifestRows};
use crate::{failed, hash_from, index_of, sql_count, sql_index, PgStore, Shared};

use cairn_store::row::{missing_text, RawRecord, StoredParts, REJECTED, SOURCING};

/// A sequenced record's columns, in [`RawRecord`]'s order (`records` is
/// `r`, its log's id `$log`).
macro_rules! sequenced_columns {
    ($log:literal) => {
        concat!(
            $log,
            ", r.record_id, r.content, r.key_id, r.signature, 1, r.idx, NULL::text, NULL::int8, \
             NULL::text"
        )
    };
}

/// A pending record's columns, in [`RawRecord`]'s order (`pending` is `p`).
const PENDING_COLUMNS: &str = "p.log_id, p.record_id, p.content, p.key_id, p.signature, \
     p.state, NULL::int8, p.missing, p.since, p.reason";

const SELECT_RECORD: &str = concat!(
    "SELECT ",
    sequenced_columns!("l.log_id"),
    " FROM records r JOIN logs l ON l.id = r.log WHERE l.log_id = $1 AND r.record_id = $2 \
     UNION ALL SELECT p.log_id, p.record_id, p.content, p.key_id, p.signature, p.state, \
     NULL::int8, p.missing, p.since, p.reason FROM pending p \
     WHERE p.log_id = $1 AND p.record_id = $2"
);

const SELECT_RECORDS: &str = concat!(
    "SELECT ",
    sequenced_columns!("l.log_id"),
    " FROM UNNEST($1::bytea[], $2::bytea[]) AS k (log_id, record_id) \
     JOIN logs l ON l.log_id = k.log_id JOIN records r ON r.log = l.id AND r.record_id = k.record_id \
     UNION ALL SELECT p.log_id, p.record_id, p.content, p.key_id, p.signature, p.state, \
     NULL::int8, p.missing, p.since, p.reason FROM pending p \
     JOIN UNNEST($1::bytea[], $2::bytea[]) AS k (log_id, record_id) \
     ON p.log_id = k.log_id AND p.record_id = k.record_id"
);

const SELECT_LOG: &str = concat!(
    "SELECT ",
    sequenced_columns!("$1::bytea"),
    " FROM records r WHERE r.log = (SELECT id FROM logs WHERE log_id = $1) \
     AND r.idx > $2 AND r.idx < $3 ORDER BY r.idx LIMIT $4"
);

/// The leaves (index, log id, record id): the log's records with their
/// logs' ids.
const SELECT_LEAVES: &str =
    "SELECT r.idx, l.log_id, r.record_id FROM records r JOIN logs l ON l.id = r.log";

const SELECT_CHECKPOINT: &str =
    "SELECT log_length, log_root, map_root, timestamp, key_id, signature FROM checkpoints";

/// A record's row (the columns of [`PENDING_COLUMNS`] and the selects
/// above, in order).
fn raw_record(row: &Row) -> Result<RawRecord, StoreError> {
    let what = "read a record";
    let get = failed(what);
    Ok(RawRecord {
        log_id: row.try_get(0).map_err(&get)?,
        record_id: row.try_get(1).map_err(&get)?,
        content: row.try_get(2).map_err(&get)?,
        key_id: row.try_get(3).map_err(&get)?,
        signature: row.try_get(4).map_err(&get)?,
        state: i64::from(row.try_get::<_, i32>(5).map_err(&get)?),
        registry_index: row.try_get(6).map_err(&get)?,
        missing: row.try_get(7).map_err(&get)?,
        since: row.try_get(8).map_err(&get)?,
        reason: row.try_get(9).map_err(&get)?,
    })
}

fn id_bytes(hash: &Hash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

fn leaf_of(log_id: &[u8], record_id: &[u8]) -> Result<LogLeaf, StoreError> {
    Ok(LogLeaf {
        log_id: LogId::from(hash_from(log_id, "log id")?),
        record_id: RecordId::from(hash_from(record_id, "record id")?),
    })
}

fn checkpoint_of(row: &Row) -> Result<SignedCheckpoint, StoreError> {
    let get = failed("read a checkpoint");
    cairn_store::row::to_checkpoint((
        row.try_get(0).map_err(&get)?,
        row.try_get(1).map_err(&get)?,
        row.try_get(2).map_err(&get)?,
        row.try_get(3).map_err(&get)?,
        row.try_get(4).map_err(&get)?,
        row.try_get(5).map_err(&get)?,
    ))
}

fn package_name(name: String) -> Result<PackageName, StoreError> {
    PackageName::new(name).map_err(|e| StoreError::Corrupt(format!("stored package name: {e}")))
}

/// Sequenced records of a log (`statement` is [`SELECT_LOG`]).
async fn query_log(
    client: &Client,
    statement: &Statement,
    log_id: Vec<u8>,
    after: Option<u64>,
    before: u64,
    limit: usize,
) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
    let what = "read a log";
    let after = after.map(sql_index).unwrap_or(-1);
    let rows = client
        .query(
            statement,
            &[&log_id, &after, &sql_index(before), &sql_count(limit)],
        )
        .await
        .map_err(failed(what))?;
    rows.iter()
        .map(|row| {
            let stored = raw_record(row)?.into_stored()?;
            match stored.state {
                RecordState::Sequenced { index } => Ok((index, stored)),
                _ => Err(StoreError::Corrupt("indexed record not sequenced".into())),
            }
        })
        .collect()
}

/// Records by key (`statement` is [`SELECT_RECORDS`]), in the keys' order.
async fn query_records(
    client: &Client,
    statement: &Statement,
    keys: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<Option<StoredRecord>>, StoreError> {
    let logs: Vec<&[u8]> = keys.iter().map(|(l, _)| l.as_slice()).collect();
    let ids: Vec<&[u8]> = keys.iter().map(|(_, r)| r.as_slice()).collect();
    let rows = client
        .query(statement, &[&logs, &ids])
        .await
        .map_err(failed("read records"))?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let raw = raw_record(row)?;
        found.insert((raw.log_id.clone(), raw.record_id.clone()), raw);
    }
    keys.iter()
        .map(|key| found.remove(key).map(RawRecord::into_stored).transpose())
        .collect()
}

/// A batch as the arrays its statements take, made on the caller's thread
/// (the commit runs on the store's runtime and needs owned values).
#[derive(Default)]
pub(crate) struct CommitRows {
    // Names first seen: log, name.
    name_log: Vec<Vec<u8>>,
    name_name: Vec<String>,
    // Logs the log's new records are in (numbered if new).
    logs: Vec<Vec<u8>>,
    // New records in the log.
    append_index: Vec<i64>,
    append_log: Vec<Vec<u8>>,
    append_record: Vec<Vec<u8>>,
    append_content: Vec<Vec<u8>>,
    append_key: Vec<Vec<u8>>,
    append_signature: Vec<Vec<u8>>,
    // New records not in the log: waiting for content, or rejected.
    pend_log: Vec<Vec<u8>>,
    pend_record: Vec<Vec<u8>>,
    pend_content: Vec<Vec<u8>>,
    pend_key: Vec<Vec<u8>>,
    pend_signature: Vec<Vec<u8>>,
    pend_state: Vec<i32>,
    pend_missing: Vec<Option<String>>,
    pend_since: Vec<Option<i64>>,
    pend_reason: Vec<Option<String>>,
    // Sourcing records sequenced now: log, record, index.
    sequenced_log: Vec<Vec<u8>>,
    sequenced_record: Vec<Vec<u8>>,
    sequenced_index: Vec<i64>,
    // Rejected: log, record, reason.
    rejected_log: Vec<Vec<u8>>,
    rejected_record: Vec<Vec<u8>>,
    rejected_reason: Vec<String>,
    // Still missing: log, record, digests.
    still_log: Vec<Vec<u8>>,
    still_record: Vec<Vec<u8>>,
    still_missing: Vec<String>,
    manifests: ManifestRows,
    checkpoint: Option<CheckpointRow>,
}

/// A `checkpoints` row.
struct CheckpointRow {
    log_length: i64,
    log_root: Vec<u8>,
    map_root: Vec<u8>,
    timestamp: i64,
    key_id: String,
    signature: String,
}

impl CommitRows {
    pub(crate) fn of(batch: &Batch) -> CommitRows {
        let mut rows = CommitRows::default();
        for (log_id, package) in &batch.names {
            rows.name_log.push(id_bytes(log_id.digest()));
            rows.name_name.push(package.as_str().to_owned());
        }
        let mut logs = HashSet::new();
        for r in &batch.records {
            let parts = StoredParts::of(r);
            let log_id = id_bytes(r.log_id.digest());
            let record_id = id_bytes(r.record_id.digest());
            let (state, missing, since, reason) = match &r.state {
                RecordState::Sequenced { index } => {
                    logs.insert(log_id.clone());
                    rows.append_index.push(sql_index(*index));
                    rows.append_log.push(log_id);
                    rows.append_record.push(record_id);
                    rows.append_content.push(parts.content);
                    rows.append_key.push(parts.key_id);
                    rows.append_signature.push(parts.signature);
                    continue;
                }
                RecordState::Sourcing { missing, since } => (
                    SOURCING,
                    Some(missing_text(missing)),
                    Some(sql_index(*since)),
                    None,
                ),
                RecordState::Rejected { reason } => (REJECTED, None, None, Some(reason.clone())),
            };
            rows.pend_log.push(log_id);
            rows.pend_record.push(record_id);
            rows.pend_content.push(parts.content);
            rows.pend_key.push(parts.key_id);
            rows.pend_signature.push(parts.signature);
            // The states are 0 and 2 (`INTEGER` column).
            rows.pend_state.push(state as i32);
            rows.pend_missing.push(missing);
            rows.pend_since.push(since);
            rows.pend_reason.push(reason);
        }
        for (log_id, record_id, index) in &batch.sequenced {
            let log_id = id_bytes(log_id.digest());
            logs.insert(log_id.clone());
            rows.sequenced_log.push(log_id);
            rows.sequenced_record.push(id_bytes(record_id.digest()));
            rows.sequenced_index.push(sql_index(*index));
        }
        rows.logs = logs.into_iter().collect();
        // Numbers in the order the log id sorts: any order would do, one
        // order spares concurrent batches a deadlock.
        rows.logs.sort_unstable();
        for (log_id, record_id, reason) in &batch.rejected {
            rows.rejected_log.push(id_bytes(log_id.digest()));
            rows.rejected_record.push(id_bytes(record_id.digest()));
            rows.rejected_reason.push(reason.clone());
        }
        for (log_id, record_id, missing) in &batch.still_missing {
            rows.still_log.push(id_bytes(log_id.digest()));
            rows.still_record.push(id_bytes(record_id.digest()));
            rows.still_missing.push(missing_text(missing));
        }
        rows.manifests = ManifestRows::of(&batch.manifests);
        rows.checkpoint = batch.checkpoint.as_ref().map(|cp| {
            let c = &cp.contents;
            CheckpointRow {
                log_length: sql_index(c.checkpoint.log_length),
                log_root: c.checkpoint.log_root.as_bytes().to_vec(),
                map_root: c.checkpoint.map_root.as_bytes().to_vec(),
                timestamp: sql_index(c.timestamp),
                key_id: cp.key_id.to_string(),
                signature: cp.signature.to_string(),
            }
        });
        rows
    }

    /// The checkpoint's log length, if the batch has one.
    pub(crate) fn checkpoint_length(&self) -> Option<u64> {
        self.checkpoint
            .as_ref()
            .and_then(|c| u64::try_from(c.log_length).ok())
    }
}

const NAME_LOGS: &str = "INSERT INTO logs (log_id, name) \
     SELECT * FROM UNNEST($1::bytea[], $2::text[]) \
     ON CONFLICT (log_id) DO UPDATE SET name = excluded.name WHERE logs.name IS NULL";

const NUMBER_LOGS: &str = "INSERT INTO logs (log_id) SELECT * FROM UNNEST($1::bytea[]) \
     ON CONFLICT (log_id) DO NOTHING";

const APPEND: &str = "INSERT INTO records (idx, log, record_id, content, key_id, signature) \
     SELECT u.idx, l.id, u.record_id, u.content, u.key_id, u.signature \
     FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[]) \
     AS u (idx, log_id, record_id, content, key_id, signature) \
     JOIN logs l ON l.log_id = u.log_id";

const PEND: &str = "INSERT INTO pending (log_id, record_id, content, key_id, signature, state, \
     missing, since, reason) \
     SELECT log_id, record_id, content, key_id, signature, state, missing, since, reason \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::int4[], \
     $7::text[], $8::int8[], $9::text[]) WITH ORDINALITY \
     AS u (log_id, record_id, content, key_id, signature, state, missing, since, reason, n) \
     ORDER BY n";

/// Sourcing records whose content came move from `pending` into the log;
/// returns the registry index of each one moved.
const SEQUENCE: &str = "WITH moved AS ( \
     DELETE FROM pending p USING UNNEST($1::bytea[], $2::bytea[], $3::int8[]) \
     AS u (log_id, record_id, idx) \
     WHERE p.log_id = u.log_id AND p.record_id = u.record_id AND p.state = 0 \
     RETURNING u.idx, p.log_id, p.record_id, p.content, p.key_id, p.signature) \
     INSERT INTO records (idx, log, record_id, content, key_id, signature) \
     SELECT m.idx, l.id, m.record_id, m.content, m.key_id, m.signature \
     FROM moved m JOIN logs l ON l.log_id = m.log_id RETURNING idx";

const REJECT: &str = "UPDATE pending p SET state = 2, reason = u.reason, missing = NULL \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::text[]) AS u (log_id, record_id, reason) \
     WHERE p.log_id = u.log_id AND p.record_id = u.record_id";

const STILL_MISSING: &str = "UPDATE pending p SET missing = u.missing \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::text[]) AS u (log_id, record_id, missing) \
     WHERE p.log_id = u.log_id AND p.record_id = u.record_id";

const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints \
     (log_length, log_root, map_root, timestamp, key_id, signature) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const NOTIFY_CHECKPOINT: &str = "SELECT pg_notify('cairn_checkpoint', $1)";

/// Writes the names, log numbers and new records of `rows` in `tx`.
pub(crate) async fn write_records(
    tx: &tokio_postgres::Transaction<'_>,
    statements: &mut HashMap<&'static str, Statement>,
    rows: &CommitRows,
) -> Result<(), StoreError> {
    let fail = failed("write records");
    if !rows.name_log.is_empty() {
        let name = prepared(statements, tx.client(), NAME_LOGS).await?;
        tx.execute(&name, &[&rows.name_log, &rows.name_name])
            .await
            .map_err(&fail)?;
    }
    if !rows.logs.is_empty() {
        let number = prepared(statements, tx.client(), NUMBER_LOGS).await?;
        tx.execute(&number, &[&rows.logs]).await.map_err(&fail)?;
    }
    if !rows.append_index.is_empty() {
        let append = prepared(statements, tx.client(), APPEND).await?;
        let added = tx
            .execute(
                &append,
                &[
                    &rows.append_index,
                    &rows.append_log,
                    &rows.append_record,
                    &rows.append_content,
                    &rows.append_key,
                    &rows.append_signature,
                ],
            )
            .await
            .map_err(&fail)?;
        if added != rows.append_index.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "{added} of {} records were added to the log: a log has no number",
                rows.append_index.len()
            )));
        }
    }
    if !rows.pend_log.is_empty() {
        let pend = prepared(statements, tx.client(), PEND).await?;
        tx.execute(
            &pend,
            &[
                &rows.pend_log,
                &rows.pend_record,
                &rows.pend_content,
                &rows.pend_key,
                &rows.pend_signature,
                &rows.pend_state,
                &rows.pend_missing,
                &rows.pend_since,
                &rows.pend_reason,
            ],
        )
        .await
        .map_err(&fail)?;
    }
    Ok(())
}

/// Writes `rows` in one transaction on the writer's session.
pub(crate) async fn commit_rows(writer: &mut Writer, rows: &CommitRows) -> Result<(), StoreError> {
    let what = "commit";
    let fail = failed(what);
    let statements = &mut writer.statements;
    let tx = writer.client.transaction().await.map_err(&fail)?;
    write_records(&tx, statements, rows).await?;
    if !rows.sequenced_index.is_empty() {
        let sequence = prepared(statements, tx.client(), SEQUENCE).await?;
        let moved = tx
            .query(
                &sequence,
                &[
                    &rows.sequenced_log,
                    &rows.sequenced_record,
                    &rows.sequenced_index,
                ],
            )
            .await
            .map_err(&fail)?;
        if moved.len() != rows.sequenced_index.len() {
            let mut done = HashSet::new();
            for row in &moved {
                done.insert(row.try_get::<_, i64>(0).map_err(&fail)?);
            }
            // The first not sequenced now (or, if every one was, one named twice).
            let culprit = (0..rows.sequenced_index.len())
                .find(|&i| !done.remove(&rows.sequenced_index[i]))
                .unwrap_or(0);
            let (log, id) = match (
                rows.sequenced_log.get(culprit),
                rows.sequenced_record.get(culprit),
            ) {
                (Some(l), Some(r)) => (leaf_of(l, r)?.log_id, leaf_of(l, r)?.record_id),
                _ => return Err(StoreError::Corrupt("a record is not sourcing".into())),
            };
            return Err(StoreError::Corrupt(format!(
                "record {id} of log {log} is not sourcing"
            )));
        }
    }
    if !rows.rejected_log.is_empty() {
        let reject = prepared(statements, tx.client(), REJECT).await?;
        tx.execute(
            &reject,
            &[
                &rows.rejected_log,
                &rows.rejected_record,
                &rows.rejected_reason,
            ],
        )
        .await
        .map_err(&fail)?;
    }
    if !rows.still_log.is_empty() {
        let still = prepared(statements, tx.client(), STILL_MISSING).await?;
        tx.execute(
            &still,
            &[&rows.still_log, &rows.still_record, &rows.still_missing],
        )
        .await
        .map_err(&fail)?;
    }
    if !rows.manifests.is_empty() {
        let statements = crate::oci::ManifestStatements {
            manifests: prepared(statements, tx.client(), crate::oci::INSERT_MANIFESTS).await?,
            tags: prepared(statements, tx.client(), crate::oci::UPSERT_TAGS).await?,
            links: prepared(statements, tx.client(), crate::oci::INSERT_LINKS).await?,
        };
        write_manifests(&tx, &statements, &rows.manifests).await?;
    }
    if let Some(c) = &rows.checkpoint {
        let insert = prepared(statements, tx.client(), INSERT_CHECKPOINT).await?;
        tx.execute(
            &insert,
            &[
                &c.log_length,
                &c.log_root,
                &c.map_root,
                &c.timestamp,
                &c.key_id,
                &c.signature,
            ],
        )
        .await
        .map_err(&fail)?;
        // Delivered to every listener when (and only if) this commits.
        let notify = prepared(statements, tx.client(), NOTIFY_CHECKPOINT).await?;
        tx.execute(&notify, &[&c.log_length.to_string()])
            .await
            .map_err(&fail)?;
    }
    tx.commit().await.map_err(&fail)
}

/// Everything [`MetaStore::load`] returns, read in one snapshot.
async fn load(shared: &Shared, leaves_from: u64) -> Result<Loaded, StoreError> {
    let what = "load the log";
    let fail = failed(what);
    let mut conn = shared.conn(what).await?;
    let tx = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(&fail)?;
    // The leaves since the engine's snapshot at once: as long as that
    // takes (every leaf, when asked from 0).
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(&fail)?;
    let length: i64 = tx
        .query_one("SELECT COALESCE(MAX(idx) + 1, 0) FROM records", &[])
        .await
        .map_err(&fail)?
        .try_get(0)
        .map_err(&fail)?;
    let mut loaded = Loaded {
        log_length: index_of(length)?,
        ..Loaded::default()
    };
    let from = leaves_from.min(loaded.log_length);
    let leaves = tx
        .query_raw(
            &format!("{SELECT_LEAVES} WHERE r.idx >= $1 ORDER BY r.idx"),
            [sql_index(from)],
        )
        .await
        .map_err(&fail)?;
    let mut leaves = std::pin::pin!(leaves);
    while let Some(row) = leaves.try_next().await.map_err(&fail)? {
        let idx: i64 = row.try_get(0).map_err(&fail)?;
        if index_of(idx)? != from + loaded.leaves.len() as u64 {
            return Err(StoreError::Corrupt(format!("log leaf {idx} out of order")));
        }
        let log_id: &[u8] = row.try_get(1).map_err(&fail)?;
        let record_id: &[u8] = row.try_get(2).map_err(&fail)?;
        loaded.leaves.push(leaf_of(log_id, record_id)?);
    }
    loaded.checkpoint = tx
        .query_opt(
            &format!("{SELECT_CHECKPOINT} ORDER BY log_length DESC LIMIT 1"),
            &[],
        )
        .await
        .map_err(&fail)?
        .map(|row| checkpoint_of(&row))
        .transpose()?;
    let sourcing = tx
        .query(
            &format!("SELECT {PENDING_COLUMNS} FROM pending p WHERE p.state = 0 ORDER BY p.seq"),
            &[],
        )
        .await
        .map_err(&fail)?;
    for row in &sourcing {
        loaded.sourcing.push(raw_record(row)?.into_stored()?);
    }
    tx.commit().await.map_err(&fail)?;
    Ok(loaded)
}

impl PgStore {
    /// Leaves an admin request for the running server (as
    /// `SqliteStore::request_define_namespace`); its id.
    pub fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        let namespace = namespace.to_owned();
        self.run("leave an admin request", |shared| async move {
            let what = "leave an admin request";
            let conn = shared.conn(what).await?;
            conn.query_one(
                "INSERT INTO admin_requests (define_namespace) VALUES ($1) RETURNING id",
                &[&namespace],
            )
            .await
            .map_err(failed(what))?
            .try_get(0)
            .map_err(failed(what))
        })
    }

    /// The outcome of an admin request, once done.
    pub fn admin_outcome(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.run("read an admin request", |shared| async move {
            let what = "read an admin request";
            let conn = shared.conn(what).await?;
            let row = conn
                .query_opt("SELECT outcome FROM admin_requests WHERE id = $1", &[&id])
                .await
                .map_err(failed(what))?;
            Ok(row
                .map(|r| r.try_get::<_, Option<String>>(0))
                .transpose()
                .map_err(failed(what))?
                .flatten())
        })
    }
}

impl MetaStore for PgStore {
    fn local(&self) -> bool {
        false
    }

    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError> {
        self.run("load the log", |shared| async move {
            load(&shared, leaves_from).await
        })
    }

    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if !self.shared.leading() {
            return Err(crate::lead::not_leading());
        }
        let rows = CommitRows::of(batch);
        self.run("commit", |shared| async move {
            let length = rows.checkpoint_length();
            crate::lead::on_writer(&shared, "commit", |writer| {
                Box::pin(async move { commit_rows(writer, &rows).await })
            })
            .await?;
            if let Some(length) = length {
                shared.saw_checkpoint(length);
            }
            Ok(())
        })
    }

    fn record(
        &self,
        log_id: &LogId,
        record_id: &RecordId,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let (log_id, record_id) = (id_bytes(log_id.digest()), id_bytes(record_id.digest()));
        self.run("read a record", |shared| async move {
            let what = "read a record";
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(SELECT_RECORD)
                .await
                .map_err(failed(what))?;
            conn.query_opt(&statement, &[&log_id, &record_id])
                .await
                .map_err(failed(what))?
                .map(|row| raw_record(&row)?.into_stored())
                .transpose()
        })
    }

    fn log_records(
        &self,
        log_id: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        let log_id = id_bytes(log_id.digest());
        self.run("read a log", |shared| async move {
            let conn = shared.conn("read a log").await?;
            let statement = conn
                .prepare_cached(SELECT_LOG)
                .await
                .map_err(failed("read a log"))?;
            query_log(&conn, &statement, log_id, after, before, limit).await
        })
    }

    fn writer_records(
        &self,
        keys: &[(LogId, RecordId)],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError> {
        if !self.shared.leading() {
            return Err(crate::lead::not_leading());
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(Vec<u8>, Vec<u8>)> = keys
            .iter()
            .map(|(l, r)| (id_bytes(l.digest()), id_bytes(r.digest())))
            .collect();
        self.run("read records", |shared| async move {
            crate::lead::on_writer(&shared, "read records", |writer| {
                Box::pin(async move {
                    let statement =
                        prepared(&mut writer.statements, &writer.client, SELECT_RECORDS).await?;
                    query_records(&writer.client, &statement, &keys).await
                })
            })
            .await
        })
    }

    fn writer_log(&self, log_id: &LogId) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        if !self.shared.leading() {
            return Err(crate::lead::not_leading());
        }
        let log_id = id_bytes(log_id.digest());
        self.run("read a log", |shared| async move {
            crate::lead::on_writer(&shared, "read a log", |writer| {
                Box::pin(async move {
                    let statement =
                        prepared(&mut writer.statements, &writer.client, SELECT_LOG).await?;
                    query_log(
                        &writer.client,
                        &statement,
                        log_id,
                        None,
                        u64::MAX,
                        usize::MAX,
                    )
                    .await
                })
            })
            .await
        })
    }

    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.run("read a checkpoint", |shared| async move {
            let what = "read a checkpoint";
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(&format!("{SELECT_CHECKPOINT} WHERE log_length = $1"))
                .await
                .map_err(failed(what))?;
            conn.query_opt(&statement, &[&sql_index(log_length)])
                .await
                .map_err(failed(what))?
                .map(|row| checkpoint_of(&row))
                .transpose()
        })
    }

    fn package_names(&self, log_ids: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError> {
        if log_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Vec<u8>> = log_ids.iter().map(|l| id_bytes(l.digest())).collect();
        self.run("read package names", |shared| async move {
            let what = "read package names";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(
                    "SELECT log_id, name FROM logs WHERE log_id = ANY($1) AND name IS NOT NULL",
                )
                .await
                .map_err(&fail)?;
            let rows = conn.query(&statement, &[&ids]).await.map_err(&fail)?;
            let mut names = HashMap::with_capacity(rows.len());
            for row in &rows {
                let log: Vec<u8> = row.try_get(0).map_err(&fail)?;
                let name: String = row.try_get(1).map_err(&fail)?;
                names.insert(log, name);
            }
            ids.iter()
                .map(|id| names.get(id).cloned().map(package_name).transpose())
                .collect()
        })
    }

    fn package_list(&self) -> Result<Vec<PackageName>, StoreError> {
        self.run("list packages", |shared| async move {
            let what = "list packages";
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(
                    "SELECT name FROM logs l WHERE name IS NOT NULL \
                     AND EXISTS (SELECT 1 FROM records r WHERE r.log = l.id) ORDER BY name",
                )
                .await
                .map_err(failed(what))?;
            let rows = conn.query(&statement, &[]).await.map_err(failed(what))?;
            rows.iter()
                .map(|row| package_name(row.try_get(0).map_err(failed(what))?))
                .collect()
        })
    }

    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError> {
        if indexes.is_empty() {
            return Ok(Vec::new());
        }
        let indexes: Vec<i64> = indexes.iter().map(|i| sql_index(*i)).collect();
        self.run("read leaves", |shared| async move {
            let what = "read leaves";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(&format!("{SELECT_LEAVES} WHERE r.idx = ANY($1)"))
                .await
                .map_err(&fail)?;
            let rows = conn.query(&statement, &[&indexes]).await.map_err(&fail)?;
            let mut found = HashMap::with_capacity(rows.len());
            for row in &rows {
                let idx: i64 = row.try_get(0).map_err(&fail)?;
                let log_id: &[u8] = row.try_get(1).map_err(&fail)?;
                let record_id: &[u8] = row.try_get(2).map_err(&fail)?;
                found.insert(idx, leaf_of(log_id, record_id)?);
            }
            Ok(indexes.iter().map(|i| found.get(i).copied()).collect())
        })
    }

    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError> {
        self.run("read leaves", |shared| async move {
            let what = "read leaves";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(&format!(
                    "{SELECT_LEAVES} WHERE r.idx >= $1 ORDER BY r.idx LIMIT $2"
                ))
                .await
                .map_err(&fail)?;
            let rows = conn
                .query(&statement, &[&sql_index(start), &sql_count(limit)])
                .await
                .map_err(&fail)?;
            rows.iter()
                .enumerate()
                .map(|(i, row)| {
                    let idx: i64 = row.try_get(0).map_err(&fail)?;
                    if index_of(idx)? != start + i as u64 {
                        return Err(StoreError::Corrupt(format!(
                            "log leaf {} is missing (found {idx})",
                            start + i as u64
                        )));
                    }
                    let log_id: &[u8] = row.try_get(1).map_err(&fail)?;
                    let record_id: &[u8] = row.try_get(2).map_err(&fail)?;
                    leaf_of(log_id, record_id)
                })
                .collect()
        })
    }

    fn publish_policy(
        &self,
        namespace: &str,
    ) -> Result<cairn_registry::policy::PublishPolicy, StoreError> {
        let namespace = namespace.to_owned();
        self.run("read a publish policy", |shared| async move {
            let what = "read a publish policy";
            let conn = shared.conn(what).await?;
            policy_of(&**conn, &namespace, what).await
        })
    }

    fn set_publish_policy(
        &self,
        namespace: &str,
        policy: &cairn_registry::policy::PublishPolicy,
        if_tag: Option<&str>,
    ) -> Result<bool, StoreError> {
        let namespace = namespace.to_owned();
        let text = serde_json::to_string(policy)
            .map_err(|e| StoreError::Backend(format!("cannot encode a publish policy: {e}")))?;
        let if_tag = if_tag.map(str::to_owned);
        self.run("set a publish policy", |shared| async move {
            let what = "set a publish policy";
            let fail = failed(what);
            let mut conn = shared.conn(what).await?;
            let tx = conn.transaction().await.map_err(&fail)?;
            if let Some(tag) = if_tag {
                // Edits of policies wait for each other (they are rare): a
                // row lock alone would not cover a namespace without one.
                tx.execute("LOCK TABLE publish_policy IN SHARE ROW EXCLUSIVE MODE", &[])
                    .await
                    .map_err(&fail)?;
                if policy_of(&*tx, &namespace, what).await?.tag() != tag {
                    return Ok(false);
                }
            }
            tx.execute(
                "INSERT INTO publish_policy (namespace, policy) VALUES ($1, $2) \
                 ON CONFLICT (namespace) DO UPDATE SET policy = excluded.policy",
                &[&namespace, &text],
            )
            .await
            .map_err(&fail)?;
            tx.commit().await.map_err(&fail)?;
            Ok(true)
        })
    }

    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError> {
        self.run("read admin requests", |shared| async move {
            let what = "read admin requests";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let rows = conn
                .query(
                    "SELECT id, define_namespace FROM admin_requests WHERE outcome IS NULL \
                     ORDER BY id",
                    &[],
                )
                .await
                .map_err(&fail)?;
            rows.iter()
                .map(|row| {
                    Ok(AdminRequest {
                        id: row.try_get(0).map_err(&fail)?,
                        define_namespace: row.try_get(1).map_err(&fail)?,
                    })
                })
                .collect()
        })
    }

    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        PgStore::request_define_namespace(self, namespace)
    }

    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        let outcome = outcome.to_owned();
        self.run("finish an admin request", |shared| async move {
            let what = "finish an admin request";
            let conn = shared.conn(what).await?;
            conn.execute(
                "UPDATE admin_requests SET outcome = $2 WHERE id = $1",
                &[&id, &outcome],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError> {
        let what = "save the map snapshot";
        let generation: i64 = self.run(what, |shared| async move {
            let conn = shared.conn(what).await?;
            conn.query_one("SELECT nextval('map_snapshot_generation')", &[])
                .await
                .map_err(failed(what))?
                .try_get(0)
                .map_err(failed(what))
        })?;
        let mut out = ChunkWriter {
            store: self,
            generation,
            chunks: 0,
            buffer: Vec::with_capacity(SNAPSHOT_CHUNK),
            failed: None,
        };
        let written = write(&mut out).and_then(|()| out.send());
        if let Some(e) = out.failed.take() {
            return Err(e);
        }
        written.map_err(|e| StoreError::io(what, &e))?;
        let chunks = out.chunks;
        // The new generation replaces the old (and any a failed save left).
        self.run(what, |shared| async move {
            let fail = failed(what);
            let mut conn = shared.conn(what).await?;
            let tx = conn.transaction().await.map_err(&fail)?;
            tx.execute(
                "INSERT INTO map_snapshot (id, log_length, generation, chunks) \
                 VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
                 log_length = excluded.log_length, generation = excluded.generation, \
                 chunks = excluded.chunks",
                &[&sql_index(log_length), &generation, &chunks],
            )
            .await
            .map_err(&fail)?;
            tx.execute(
                "DELETE FROM map_snapshot_chunks WHERE generation <> $1",
                &[&generation],
            )
            .await
            .map_err(&fail)?;
            tx.commit().await.map_err(&fail)
        })
    }

    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError> {
        let what = "load the map snapshot";
        let found = self.run(what, |shared| async move {
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let Some(row) = conn
                .query_opt(
                    "SELECT log_length, generation, chunks FROM map_snapshot WHERE id = 1",
                    &[],
                )
                .await
                .map_err(&fail)?
            else {
                return Ok(None);
            };
            let length: i64 = row.try_get(0).map_err(&fail)?;
            let generation: i64 = row.try_get(1).map_err(&fail)?;
            let chunks: i32 = row.try_get(2).map_err(&fail)?;
            Ok(Some((index_of(length)?, generation, chunks)))
        })?;
        let Some((length, generation, chunks)) = found else {
            return Ok(None);
        };
        let reader = ChunkReader {
            runtime: self.handle()?,
            shared: self.shared.clone(),
            generation,
            next: 0,
            chunks,
            current: std::io::Cursor::new(Vec::new()),
        };
        Ok(Some((length, Box::new(reader))))
    }
}

/// The size of a stored piece of a map snapshot.
const SNAPSHOT_CHUNK: usize = 4 << 20;

/// Saves a map snapshot as it is written, a chunk of
/// [`SNAPSHOT_CHUNK`] bytes at a time, under its generation.
struct ChunkWriter<'a> {
    store: &'a PgStore,
    generation: i64,
    chunks: i32,
    buffer: Vec<u8>,
    /// The store's error, if saving a chunk failed.
    failed: Option<StoreError>,
}

impl ChunkWriter<'_> {
    /// Saves what is buffered as the next chunk.
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::replace(&mut self.buffer, Vec::with_capacity(SNAPSHOT_CHUNK));
        let (generation, seq) = (self.generation, self.chunks);
        let what = "save a piece of the map snapshot";
        let saved = self.store.run(what, |shared| async move {
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO map_snapshot_chunks (generation, seq, bytes) VALUES ($1, $2, $3)",
                &[&generation, &seq, &bytes],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        });
        match saved {
            Ok(()) => {
                self.chunks += 1;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.failed = Some(e);
                Err(std::io::Error::other(message))
            }
        }
    }
}

impl std::io::Write for ChunkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(SNAPSHOT_CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == SNAPSHOT_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads a saved map snapshot a chunk at a time.
struct ChunkReader {
    runtime: tokio::runtime::Handle,
    shared: std::sync::Arc<Shared>,
    generation: i64,
    next: i32,
    chunks: i32,
    current: std::io::Cursor<Vec<u8>>,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() || self.next >= self.chunks {
                return Ok(n);
            }
            let (generation, seq) = (self.generation, self.next);
            let what = "load a piece of the map snapshot";
            let read = crate::run_on(
                &self.runtime,
                self.shared.clone(),
                what,
                |shared| async move {
                    let conn = shared.conn(what).await?;
                    let row = conn
                    .query_opt(
                        "SELECT bytes FROM map_snapshot_chunks WHERE generation = $1 AND seq = $2",
                        &[&generation, &seq],
                    )
                    .await
                    .map_err(failed(what))?;
                    row.map(|r| r.try_get::<_, Vec<u8>>(0).map_err(failed(what)))
                        .transpose()
                },
            );
            match read {
                Ok(Some(bytes)) => {
                    self.current = std::io::Cursor::new(bytes);
                    self.next += 1;
                }
                // A newer snapshot replaced this one while it was read.
                Ok(None) => {
                    return Err(std::io::Error::other(
                        "a piece of the map snapshot is gone (a newer one replaced it)",
                    ))
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    }
}

/// The publish policy of `namespace` as `client` (a connection, or a
/// transaction on one) sees it; the default where none was set.
async fn policy_of(
    client: &impl tokio_postgres::GenericClient,
    namespace: &str,
    what: &'static str,
) -> Result<cairn_registry::policy::PublishPolicy, StoreError> {
    let row = client
        .query_opt(
            "SELECT policy FROM publish_policy WHERE namespace = $1",
            &[&namespace],
        )
        .await
        .map_err(failed(what))?;
    match row {
        None => Ok(Default::default()),
        Some(row) => {
            let text: String = row.try_get(0).map_err(failed(what))?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("publish policy of `{namespace}`: {e}")))
        }
    }
}
