//! Records, leaves, checkpoints, names, admin requests and the map
//! snapshot: [`MetaStore`] on PostgreSQL, with the SQLite store's
//! semantics. A commit is one transaction on the writer's session, its
//! rows sent as arrays (`UNNEST`), so a batch costs a handful of round
//! trips however many records it holds.

use std::collections::{HashMap, HashSet};

use cairn_protocol::{Hash, LogId, LogLeaf, PackageName, RecordId, SignedCheckpoint};
use cairn_registry::{
    AdminRequest, Batch, Loaded, MetaStore, RecordState, StoreError, StoredRecord,
};
use futures_util::TryStreamExt;
use tokio_postgres::{Client, Row, Statement};

use crate::lead::{prepared, Writer};
use crate::oci::{write_manifests, ManifestRows};
use crate::{failed, hash_from, index_of, sql_count, sql_index, PgStore, Shared};

use cairn_store::row::{missing_text, RawRecord, REJECTED, SEQUENCED, SOURCING};

/// The columns of a record, in [`RawRecord`]'s order (`records` is `r`).
const RECORD_COLUMNS: &str = "r.record_id, r.log_id, r.content_bytes, r.key_id, r.signature, \
                              r.state, r.registry_index, r.missing, r.since, r.reason";

const SELECT_RECORD: &str = "SELECT r.record_id, r.log_id, r.content_bytes, r.key_id, \
     r.signature, r.state, r.registry_index, r.missing, r.since, r.reason \
     FROM records r WHERE r.log_id = $1 AND r.record_id = $2";

const SELECT_RECORDS: &str = "SELECT r.record_id, r.log_id, r.content_bytes, r.key_id, \
     r.signature, r.state, r.registry_index, r.missing, r.since, r.reason \
     FROM records r JOIN UNNEST($1::bytea[], $2::bytea[]) AS k (log_id, record_id) \
     ON r.log_id = k.log_id AND r.record_id = k.record_id";

const SELECT_LOG: &str = "SELECT r.record_id, r.log_id, r.content_bytes, r.key_id, \
     r.signature, r.state, r.registry_index, r.missing, r.since, r.reason \
     FROM records r WHERE r.log_id = $1 AND r.registry_index > $2 AND r.registry_index < $3 \
     ORDER BY r.registry_index LIMIT $4";

const SELECT_CHECKPOINT: &str =
    "SELECT log_length, log_root, map_root, timestamp, key_id, signature FROM checkpoints";

/// A record's row (the columns of [`RECORD_COLUMNS`]-like selects, in order).
fn raw_record(row: &Row) -> Result<RawRecord, StoreError> {
    let what = "read a record";
    let get = failed(what);
    Ok(RawRecord {
        record_id: row.try_get(0).map_err(&get)?,
        log_id: row.try_get(1).map_err(&get)?,
        content_bytes: row.try_get(2).map_err(&get)?,
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
        .map(|key| match found.get(key) {
            Some(raw) => RawRecord {
                record_id: raw.record_id.clone(),
                log_id: raw.log_id.clone(),
                content_bytes: raw.content_bytes.clone(),
                key_id: raw.key_id.clone(),
                signature: raw.signature.clone(),
                state: raw.state,
                registry_index: raw.registry_index,
                missing: raw.missing.clone(),
                since: raw.since,
                reason: raw.reason.clone(),
            }
            .into_stored()
            .map(Some),
            None => Ok(None),
        })
        .collect()
}

/// A batch as the arrays its statements take, made on the caller's thread
/// (the commit runs on the store's runtime and needs owned values).
#[derive(Default)]
pub(crate) struct CommitRows {
    // New records.
    record_id: Vec<Vec<u8>>,
    log_id: Vec<Vec<u8>>,
    content_bytes: Vec<Vec<u8>>,
    key_id: Vec<String>,
    signature: Vec<String>,
    state: Vec<i32>,
    registry_index: Vec<Option<i64>>,
    missing: Vec<Option<String>>,
    since: Vec<Option<i64>>,
    reason: Vec<Option<String>>,
    name: Vec<Option<String>>,
    // New leaves: of new sequenced records, and of sequenced sourcing ones.
    leaf_index: Vec<i64>,
    leaf_log: Vec<Vec<u8>>,
    leaf_record: Vec<Vec<u8>>,
    // Sourcing records sequenced now.
    sequenced: Vec<(Vec<u8>, Vec<u8>, i64)>,
    // Rejected: log, record, reason.
    rejected_log: Vec<Vec<u8>>,
    rejected_record: Vec<Vec<u8>>,
    rejected_reason: Vec<String>,
    // Still missing: log, record, digests.
    still_log: Vec<Vec<u8>>,
    still_record: Vec<Vec<u8>>,
    still_missing: Vec<String>,
    // Names of logs with no new row in this batch.
    name_log: Vec<Vec<u8>>,
    name_name: Vec<String>,
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
        // A package's name goes on the first row of its log.
        let mut names: HashMap<&LogId, &PackageName> =
            batch.names.iter().map(|(id, name)| (id, name)).collect();
        for r in &batch.records {
            let (state, index, missing, since, reason) = match &r.state {
                RecordState::Sourcing { missing, since } => (
                    SOURCING,
                    None,
                    Some(missing_text(missing)),
                    Some(sql_index(*since)),
                    None,
                ),
                RecordState::Sequenced { index } => {
                    (SEQUENCED, Some(sql_index(*index)), None, None, None)
                }
                RecordState::Rejected { reason } => {
                    (REJECTED, None, None, None, Some(reason.clone()))
                }
            };
            let log_id = id_bytes(r.log_id.digest());
            let record_id = id_bytes(r.record_id.digest());
            if let Some(index) = index {
                rows.leaf_index.push(index);
                rows.leaf_log.push(log_id.clone());
                rows.leaf_record.push(record_id.clone());
            }
            rows.record_id.push(record_id);
            rows.log_id.push(log_id);
            rows.content_bytes.push(r.content_bytes.clone());
            rows.key_id.push(r.key_id.clone());
            rows.signature.push(r.signature.clone());
            // The states are 0, 1 and 2 (`INTEGER` column).
            rows.state.push(state as i32);
            rows.registry_index.push(index);
            rows.missing.push(missing);
            rows.since.push(since);
            rows.reason.push(reason);
            rows.name
                .push(names.remove(&r.log_id).map(|n| n.as_str().to_owned()));
        }
        for (log_id, record_id, index) in &batch.sequenced {
            let (log_id, record_id) = (id_bytes(log_id.digest()), id_bytes(record_id.digest()));
            rows.leaf_index.push(sql_index(*index));
            rows.leaf_log.push(log_id.clone());
            rows.leaf_record.push(record_id.clone());
            rows.sequenced.push((log_id, record_id, sql_index(*index)));
        }
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
        // A name whose log has no new row here goes on its first row.
        for (log_id, package) in names {
            rows.name_log.push(id_bytes(log_id.digest()));
            rows.name_name.push(package.as_str().to_owned());
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

const INSERT_RECORDS: &str = "INSERT INTO records (record_id, log_id, content_bytes, key_id, \
     signature, state, registry_index, missing, since, reason, name) \
     SELECT record_id, log_id, content_bytes, key_id, signature, state, registry_index, \
     missing, since, reason, name FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::text[], $5::text[], \
     $6::int4[], $7::int8[], $8::text[], $9::int8[], $10::text[], $11::text[]) \
     WITH ORDINALITY AS u (record_id, log_id, content_bytes, key_id, signature, state, \
     registry_index, missing, since, reason, name, n) ORDER BY n";

const SEQUENCE: &str = "UPDATE records r SET state = 1, registry_index = u.idx, missing = NULL \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::int8[]) AS u (log_id, record_id, idx) \
     WHERE r.log_id = u.log_id AND r.record_id = u.record_id AND r.state = 0 \
     RETURNING r.log_id, r.record_id";

const REJECT: &str = "UPDATE records r SET state = 2, reason = u.reason, missing = NULL \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::text[]) AS u (log_id, record_id, reason) \
     WHERE r.log_id = u.log_id AND r.record_id = u.record_id";

const STILL_MISSING: &str = "UPDATE records r SET missing = u.missing \
     FROM UNNEST($1::bytea[], $2::bytea[], $3::text[]) AS u (log_id, record_id, missing) \
     WHERE r.log_id = u.log_id AND r.record_id = u.record_id";

const NAME_FIRST_ROWS: &str = "UPDATE records r SET name = u.name \
     FROM UNNEST($1::bytea[], $2::text[]) AS u (log_id, name) \
     WHERE r.seq = (SELECT min(f.seq) FROM records f WHERE f.log_id = u.log_id) \
     AND r.name IS NULL";

const INSERT_LEAVES: &str = "INSERT INTO leaves (idx, log_id, record_id) \
     SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[])";

const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints \
     (log_length, log_root, map_root, timestamp, key_id, signature) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const NOTIFY_CHECKPOINT: &str = "SELECT pg_notify('cairn_checkpoint', $1)";

/// Writes `rows` in one transaction on the writer's session.
pub(crate) async fn commit_rows(writer: &mut Writer, rows: &CommitRows) -> Result<(), StoreError> {
    let what = "commit";
    let fail = failed(what);
    let statements = &mut writer.statements;
    let tx = writer.client.transaction().await.map_err(&fail)?;
    if !rows.record_id.is_empty() {
        let insert = prepared(statements, tx.client(), INSERT_RECORDS).await?;
        tx.execute(
            &insert,
            &[
                &rows.record_id,
                &rows.log_id,
                &rows.content_bytes,
                &rows.key_id,
                &rows.signature,
                &rows.state,
                &rows.registry_index,
                &rows.missing,
                &rows.since,
                &rows.reason,
                &rows.name,
            ],
        )
        .await
        .map_err(&fail)?;
    }
    if !rows.sequenced.is_empty() {
        let sequence = prepared(statements, tx.client(), SEQUENCE).await?;
        let logs: Vec<&[u8]> = rows.sequenced.iter().map(|s| s.0.as_slice()).collect();
        let ids: Vec<&[u8]> = rows.sequenced.iter().map(|s| s.1.as_slice()).collect();
        let indexes: Vec<i64> = rows.sequenced.iter().map(|s| s.2).collect();
        let changed = tx
            .query(&sequence, &[&logs, &ids, &indexes])
            .await
            .map_err(&fail)?;
        if changed.len() != rows.sequenced.len() {
            let mut done = HashSet::new();
            for row in &changed {
                let log: Vec<u8> = row.try_get(0).map_err(&fail)?;
                let id: Vec<u8> = row.try_get(1).map_err(&fail)?;
                done.insert((log, id));
            }
            // The first not sequenced now (or, if every one was, one named twice).
            let culprit = rows
                .sequenced
                .iter()
                .find(|(l, r, _)| !done.remove(&(l.clone(), r.clone())))
                .or(rows.sequenced.first());
            let (log, id) = match culprit {
                Some((l, r, _)) => (leaf_of(l, r)?.log_id, leaf_of(l, r)?.record_id),
                None => return Err(StoreError::Corrupt("a record is not sourcing".into())),
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
    if !rows.name_log.is_empty() {
        let name = prepared(statements, tx.client(), NAME_FIRST_ROWS).await?;
        tx.execute(&name, &[&rows.name_log, &rows.name_name])
            .await
            .map_err(&fail)?;
    }
    if !rows.leaf_index.is_empty() {
        let leaves = prepared(statements, tx.client(), INSERT_LEAVES).await?;
        tx.execute(
            &leaves,
            &[&rows.leaf_index, &rows.leaf_log, &rows.leaf_record],
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
        .query_one("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves", &[])
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
            "SELECT idx, log_id, record_id FROM leaves WHERE idx >= $1 ORDER BY idx",
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
            &format!("SELECT {RECORD_COLUMNS} FROM records r WHERE r.state = 0 ORDER BY r.seq"),
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
                    "SELECT DISTINCT ON (log_id) log_id, name FROM records \
                     WHERE log_id = ANY($1) AND name IS NOT NULL ORDER BY log_id, seq",
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
                    "SELECT DISTINCT name FROM records WHERE name IS NOT NULL AND state = 1 \
                     ORDER BY name",
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
                .prepare_cached("SELECT idx, log_id, record_id FROM leaves WHERE idx = ANY($1)")
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
                .prepare_cached(
                    "SELECT log_id, record_id FROM leaves WHERE idx >= $1 ORDER BY idx LIMIT $2",
                )
                .await
                .map_err(&fail)?;
            let rows = conn
                .query(&statement, &[&sql_index(start), &sql_count(limit)])
                .await
                .map_err(&fail)?;
            rows.iter()
                .map(|row| {
                    let log_id: &[u8] = row.try_get(0).map_err(&fail)?;
                    let record_id: &[u8] = row.try_get(1).map_err(&fail)?;
                    leaf_of(log_id, record_id)
                })
                .collect()
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

    fn save_map_snapshot(&self, log_length: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let bytes = bytes.to_vec();
        self.run("save the map snapshot", |shared| async move {
            let what = "save the map snapshot";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO map_snapshot (id, log_length, bytes) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET log_length = excluded.log_length, \
                 bytes = excluded.bytes",
                &[&sql_index(log_length), &bytes],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    fn load_map_snapshot(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.run("load the map snapshot", |shared| async move {
            let what = "load the map snapshot";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let Some(row) = conn
                .query_opt(
                    "SELECT log_length, bytes FROM map_snapshot WHERE id = 1",
                    &[],
                )
                .await
                .map_err(&fail)?
            else {
                return Ok(None);
            };
            let length: i64 = row.try_get(0).map_err(&fail)?;
            let bytes: Vec<u8> = row.try_get(1).map_err(&fail)?;
            Ok(Some((index_of(length)?, bytes)))
        })
    }
}
