//! The engine over the SQLite and file stores: restarts, timeouts, admin
//! requests, corruption and partial uploads.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp,
};
use cairn_registry::{
    Config, ManualClock, OpenError, RecordStatus, Registry, StoreError, SubmitError,
};
use cairn_store::{DataDir, SqliteStore};

const WASM: &[u8] = b"\0asm\x01\0\0\0";

fn open(dir: &Path, config: Config) -> Result<Arc<Registry>, OpenError> {
    let data = DataDir::create(dir).expect("data dir");
    let (key, _) = data.operator_key(None).expect("key");
    let stores = data.open_stores().expect("stores");
    Registry::open(
        stores.meta,
        stores.content,
        key,
        &["example".to_owned()],
        config,
    )
}

fn submit(
    registry: &Registry,
    name: &PackageName,
    envelope: Envelope<PackageRecord>,
) -> Result<RecordStatus, SubmitError> {
    registry
        .submit(name.clone(), LogId::package(name), envelope)
        .wait()
}

fn record(
    key: &PrivateKey,
    prev: Option<RecordId>,
    seconds: i64,
    entries: Vec<PackageEntry>,
) -> Envelope<PackageRecord> {
    Envelope::sign(
        key,
        PackageRecord {
            prev,
            version: 0,
            timestamp: Timestamp::new(seconds, 0),
            entries,
        },
    )
}

/// Waits (with the engine's primitive, no polling) until a checkpoint
/// covers the sequenced record `id`; returns its index.
fn published(registry: &Registry, name: &PackageName, id: &RecordId) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    registry
        .wait_published(&LogId::package(name), id, deadline)
        .expect("published")
}

fn upload(registry: &Registry, name: &PackageName, id: &RecordId, bytes: &[u8]) {
    let digest = Hash::of(bytes);
    let mut upload = registry
        .begin_upload(&LogId::package(name), id, &digest)
        .expect("begin upload");
    upload.write(bytes).expect("write");
    registry
        .finish_upload(upload)
        .expect("finish upload")
        .wait()
        .expect("content arrived");
}

/// Init, then a release whose content arrives; both published.
fn publish_two(registry: &Registry, key: &PrivateKey, name: &PackageName) -> (RecordId, RecordId) {
    let init = record(
        key,
        None,
        1,
        vec![PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        }],
    );
    let init_id = init.record_id();
    assert!(matches!(
        submit(registry, name, init).expect("init"),
        RecordStatus::Processing { .. }
    ));
    let release = record(
        key,
        Some(init_id),
        2,
        vec![PackageEntry::Release {
            version: "1.0.0".parse().expect("version"),
            content: Hash::of(WASM),
        }],
    );
    let release_id = release.record_id();
    match submit(registry, name, release).expect("release") {
        RecordStatus::Sourcing { missing } => {
            assert_eq!(missing, vec![Hash::of(WASM)]);
            upload(registry, name, &release_id, WASM);
        }
        // The content is already stored (an earlier package released it).
        RecordStatus::Processing { .. } => {}
        other => panic!("expected sourcing, got {other:?}"),
    }
    published(registry, name, &release_id);
    (init_id, release_id)
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let name: PackageName = "example:one".parse().expect("name");
    let registry = open(dir.path(), Config::default()).expect("open");
    let (init_id, release_id) = publish_two(&registry, &key, &name);
    let checkpoint = registry.latest_checkpoint().expect("checkpoint");
    assert_eq!(checkpoint.contents.checkpoint.log_length, 3);
    registry.shutdown();
    drop(registry);

    let registry = open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(registry.latest_checkpoint(), Some(checkpoint));
    for id in [init_id, release_id] {
        assert!(matches!(
            registry
                .record_status(&LogId::package(&name), &id)
                .expect("status"),
            RecordStatus::Published { .. }
        ));
    }
    // The package state is rebuilt from storage: the version is taken.
    let again = record(
        &key,
        Some(release_id),
        3,
        vec![PackageEntry::Release {
            version: "1.0.0".parse().expect("version"),
            content: Hash::of(WASM),
        }],
    );
    let error = submit(&registry, &name, again).expect_err("reused version");
    assert!(error.to_string().contains("already released"), "{error}");
    // And the chain continues.
    let next = record(
        &key,
        Some(release_id),
        3,
        vec![PackageEntry::Yank {
            version: "1.0.0".parse().expect("version"),
        }],
    );
    let next_id = next.record_id();
    submit(&registry, &name, next).expect("yank");
    assert_eq!(published(&registry, &name, &next_id), 3);
    // Inclusion and consistency proofs across the restart.
    let length = registry.log_length();
    registry
        .prove_inclusion(length, &[0, 1, 2, 3])
        .expect("inclusion");
    registry.prove_consistency(3, length).expect("consistency");
}

#[test]
fn content_that_never_arrives_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let name: PackageName = "example:late".parse().expect("name");
    let clock = Arc::new(ManualClock::at(1_800_000_000));
    let config = Config {
        clock: clock.clone(),
        content_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let registry = open(dir.path(), config).expect("open");
    let init = record(
        &key,
        None,
        1,
        vec![
            PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            },
            PackageEntry::Release {
                version: "1.0.0".parse().expect("version"),
                content: Hash::of(b"never uploaded"),
            },
        ],
    );
    let id = init.record_id();
    assert!(matches!(
        submit(&registry, &name, init).expect("accepted"),
        RecordStatus::Sourcing { .. }
    ));
    clock.advance(Duration::from_secs(60));
    registry.housekeeping().wait().expect("housekeeping");
    let status = registry
        .record_status(&LogId::package(&name), &id)
        .expect("status");
    let RecordStatus::Rejected { reason } = status else {
        panic!("not rejected: {status:?}")
    };
    assert!(
        reason.contains("was not uploaded within 60 seconds"),
        "{reason}"
    );
    // Nothing of it entered the log, and the rejection is durable.
    assert_eq!(registry.log_length(), 1);
    registry.shutdown();
    drop(registry);
    let registry = open(dir.path(), Config::default()).expect("reopen");
    assert!(matches!(
        registry.record_status(&LogId::package(&name), &id),
        Ok(RecordStatus::Rejected { .. })
    ));
}

#[test]
fn a_partial_upload_never_becomes_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let name: PackageName = "example:partial".parse().expect("name");
    let registry = open(dir.path(), Config::default()).expect("open");
    let init = record(
        &key,
        None,
        1,
        vec![
            PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            },
            PackageEntry::Release {
                version: "1.0.0".parse().expect("version"),
                content: Hash::of(WASM),
            },
        ],
    );
    let id = init.record_id();
    submit(&registry, &name, init).expect("accepted");
    let mut partial = registry
        .begin_upload(&LogId::package(&name), &id, &Hash::of(WASM))
        .expect("begin");
    partial.write(&WASM[..4]).expect("write");
    drop(partial);
    assert_eq!(
        registry.content_size(&Hash::of(WASM)).expect("content"),
        None
    );
    let tmp = std::fs::read_dir(dir.path().join("content/tmp")).expect("tmp dir");
    assert_eq!(tmp.count(), 0, "upload leftovers");
    // A complete upload then publishes.
    upload(&registry, &name, &id, WASM);
    published(&registry, &name, &id);
}

#[test]
fn a_tampered_log_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let name: PackageName = "example:tamper".parse().expect("name");
    let registry = open(dir.path(), Config::default()).expect("open");
    publish_two(&registry, &key, &name);
    registry.shutdown();
    drop(registry);
    let conn = rusqlite::Connection::open(dir.path().join("cairn.sqlite3")).expect("sqlite");
    conn.execute(
        "UPDATE records SET record_id = ?1 WHERE idx = 1",
        [Hash::of(b"forged").as_bytes().as_slice()],
    )
    .expect("tamper");
    drop(conn);
    match open(dir.path(), Config::default()) {
        Err(OpenError::Store(StoreError::Corrupt(message))) => {
            assert!(message.contains("does not reproduce"), "{message}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a tampered log was accepted"),
    }
}

#[test]
fn another_operator_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path(), Config::default()).expect("open");
    registry.shutdown();
    drop(registry);
    let data = DataDir::create(dir.path()).expect("data dir");
    let stores = data.open_stores().expect("stores");
    let other = PrivateKey::generate();
    match Registry::open(stores.meta, stores.content, other, &[], Config::default()) {
        Err(OpenError::WrongOperatorKey { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("another key was accepted"),
    }
}

#[test]
fn a_running_registry_defines_requested_namespaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path(), Config::default()).expect("open");
    let store = SqliteStore::open(&dir.path().join("cairn.sqlite3")).expect("store");
    let id = store.request_define_namespace("late").expect("request");
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        if let Some(outcome) = store.admin_outcome(id).expect("outcome") {
            break outcome;
        }
        assert!(Instant::now() < deadline, "request not picked up");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(outcome, "defined");
    let key = PrivateKey::generate();
    let name: PackageName = "late:pkg".parse().expect("name");
    let init = record(
        &key,
        None,
        1,
        vec![PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        }],
    );
    submit(&registry, &name, init).expect("namespace now defined");
}

#[test]
fn a_damaged_or_stale_map_snapshot_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let registry = open(dir.path(), Config::default()).expect("open");
    publish_two(&registry, &key, &"example:a".parse().expect("name"));
    registry.shutdown();
    drop(registry);
    let snapshot = dir.path().join("cairn.sqlite3.map-snapshot");
    let good = std::fs::read(&snapshot).expect("a snapshot is saved at shutdown");

    // Records after the snapshot are applied on top of it.
    let registry = open(dir.path(), Config::default()).expect("reopen");
    publish_two(&registry, &key, &"example:b".parse().expect("name"));
    let checkpoint = registry.latest_checkpoint();
    registry.shutdown();
    drop(registry);
    std::fs::write(&snapshot, &good).expect("put back the older snapshot");
    let registry = open(dir.path(), Config::default()).expect("open on an older snapshot");
    assert_eq!(registry.latest_checkpoint(), checkpoint);
    registry.shutdown();
    drop(registry);

    // Damaged: rebuilt from the log instead.
    let mut bad = good;
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&snapshot, &bad).expect("damage");
    let registry = open(dir.path(), Config::default()).expect("open on a damaged snapshot");
    assert_eq!(registry.latest_checkpoint(), checkpoint);
    registry.shutdown();
    drop(registry);
    std::fs::write(&snapshot, b"garbage").expect("garbage");
    let registry = open(dir.path(), Config::default()).expect("open on garbage");
    assert_eq!(registry.latest_checkpoint(), checkpoint);
}

/// Rewrites the database at `path` into schema 3: every record in one
/// table with its state and its signed parts as text, the package's name
/// on the first row of its log, the leaves in a table of their own.
fn downgrade_to_schema_3(path: &Path) {
    use cairn_store::compact::{decode_content, decode_key_id, decode_signature};
    let mut conn = rusqlite::Connection::open(path).expect("open database");
    let tx = conn.transaction().expect("transaction");
    tx.execute_batch(
        "CREATE TABLE records_v3 (
             record_id BLOB NOT NULL, log_id BLOB NOT NULL, content_bytes BLOB NOT NULL,
             key_id TEXT NOT NULL, signature TEXT NOT NULL, state INTEGER NOT NULL,
             registry_index INTEGER UNIQUE, missing TEXT, since INTEGER, reason TEXT,
             name TEXT);
         CREATE TABLE leaves (idx INTEGER PRIMARY KEY, log_id BLOB NOT NULL,
                              record_id BLOB NOT NULL);",
    )
    .expect("v3 tables");
    type Row = (
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        i64,
        Option<i64>,
    );
    let text = |bytes: Vec<u8>, decode: fn(&[u8]) -> Result<String, StoreError>| {
        decode(&bytes).expect("decodes")
    };
    // Missing digests, since, reason.
    type Pending = (Option<String>, Option<i64>, Option<String>);
    let rows: Vec<(Row, Pending)> = {
        let mut stmt = tx
            .prepare(
                "SELECT r.record_id, l.log_id, r.content, r.key_id, r.signature, 1, r.idx,
                        NULL, NULL, NULL
                 FROM records r JOIN logs l ON l.id = r.log
                 UNION ALL
                 SELECT record_id, log_id, content, key_id, signature, state, NULL,
                        missing, since, reason FROM pending",
            )
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ),
                (r.get(7)?, r.get(8)?, r.get(9)?),
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    };
    for ((record_id, log_id, content, key_id, signature, state, index), (missing, since, reason)) in
        rows
    {
        tx.execute(
            "INSERT INTO records_v3 (record_id, log_id, content_bytes, key_id, signature, state,
                                     registry_index, missing, since, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                record_id,
                log_id,
                decode_content(&content).expect("content decodes"),
                text(key_id, decode_key_id),
                text(signature, decode_signature),
                state,
                index,
                missing,
                since,
                reason
            ],
        )
        .expect("insert record");
        if let Some(index) = index {
            tx.execute(
                "INSERT INTO leaves (idx, log_id, record_id) VALUES (?1, ?2, ?3)",
                rusqlite::params![index, log_id, record_id],
            )
            .expect("insert leaf");
        }
    }
    tx.execute_batch(
        "UPDATE records_v3 SET name = (SELECT name FROM logs WHERE logs.log_id = records_v3.log_id)
             WHERE rowid IN (SELECT MIN(rowid) FROM records_v3 GROUP BY log_id);
         DROP TABLE records;
         DROP TABLE pending;
         DROP TABLE logs;
         ALTER TABLE records_v3 RENAME TO records;
         CREATE INDEX records_by_log ON records (log_id, registry_index);
         CREATE INDEX records_sourcing ON records (state) WHERE state = 0;
         PRAGMA user_version = 3;",
    )
    .expect("v3");
    tx.commit().expect("commit");
}

/// Rewrites the database at `path` into the first schema (records keyed by
/// log and record id, names in a `packages` table, no user_version).
fn downgrade_to_schema_1(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("open database");
    conn.execute_batch(
        "BEGIN;
         CREATE TABLE packages (log_id BLOB PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
         INSERT INTO packages SELECT log_id, name FROM records WHERE name IS NOT NULL;
         CREATE TABLE old (
             record_id BLOB NOT NULL, log_id BLOB NOT NULL, content_bytes BLOB NOT NULL,
             key_id TEXT NOT NULL, signature TEXT NOT NULL, state INTEGER NOT NULL,
             registry_index INTEGER UNIQUE, missing TEXT, since INTEGER, reason TEXT,
             PRIMARY KEY (log_id, record_id));
         INSERT INTO old SELECT record_id, log_id, content_bytes, key_id, signature, state,
             registry_index, missing, since, reason FROM records ORDER BY rowid;
         DROP TABLE records;
         ALTER TABLE old RENAME TO records;
         CREATE INDEX records_by_log ON records (log_id, registry_index);
         CREATE INDEX records_sourcing ON records (state) WHERE state = 0;
         PRAGMA user_version = 0;
         COMMIT;",
    )
    .expect("downgrade");
}

#[test]
fn a_database_of_the_first_schema_is_migrated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let names: Vec<PackageName> = ["example:one", "example:two"]
        .iter()
        .map(|n| n.parse().expect("name"))
        .collect();
    let registry = open(dir.path(), Config::default()).expect("open");
    let mut ids = Vec::new();
    for name in &names {
        ids.push(publish_two(&registry, &key, name));
    }
    let checkpoint = registry.latest_checkpoint().expect("checkpoint");
    registry.shutdown();
    drop(registry);
    let database = DataDir::create(dir.path()).expect("data dir").database();
    downgrade_to_schema_3(&database);
    downgrade_to_schema_1(&database);

    let registry = open(dir.path(), Config::default()).expect("reopen after migration");
    assert_eq!(registry.latest_checkpoint(), Some(checkpoint));
    let log_ids: Vec<LogId> = names.iter().map(LogId::package).collect();
    let found = registry.package_names(&log_ids).expect("names");
    assert_eq!(
        found,
        names.iter().cloned().map(Some).collect::<Vec<_>>(),
        "names survive the migration"
    );
    for (name, (init_id, release_id)) in names.iter().zip(&ids) {
        for id in [init_id, release_id] {
            assert!(matches!(
                registry
                    .record_status(&LogId::package(name), id)
                    .expect("status"),
                RecordStatus::Published { .. }
            ));
        }
    }
    registry.shutdown();
    drop(registry);
    let conn = rusqlite::Connection::open(&database).expect("open database");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    let upload_account: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('oci_uploads') WHERE name = 'account')",
            [],
            |r| r.get(0),
        )
        .expect("columns");
    assert!(upload_account, "upload sessions know their account");
    let packages: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'packages'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(packages, 0, "the packages table is gone");
}

#[test]
fn a_database_of_schema_3_is_migrated_with_its_waiting_and_rejected_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let clock = Arc::new(ManualClock::at(1_800_000_000));
    let config = || Config {
        clock: clock.clone(),
        content_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    let registry = open(dir.path(), config()).expect("open");
    let done: PackageName = "example:done".parse().expect("name");
    let (init_id, release_id) = publish_two(&registry, &key, &done);
    // One waits for its content, one was rejected.
    let init_with = |name: &PackageName, content: &[u8]| {
        let envelope = record(
            &key,
            None,
            1,
            vec![
                PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                },
                PackageEntry::Release {
                    version: "1.0.0".parse().expect("version"),
                    content: Hash::of(content),
                },
            ],
        );
        let id = envelope.record_id();
        assert!(matches!(
            submit(&registry, name, envelope).expect("accepted"),
            RecordStatus::Sourcing { .. }
        ));
        id
    };
    let lost: PackageName = "example:lost".parse().expect("name");
    let lost_id = init_with(&lost, b"never uploaded");
    clock.advance(Duration::from_secs(61));
    registry.housekeeping().wait().expect("housekeeping");
    let waiting: PackageName = "example:waiting".parse().expect("name");
    let other = b"\0asm\x01\0\0\0\0\x02\x01x";
    let waiting_id = init_with(&waiting, other);
    let checkpoint = registry.latest_checkpoint().expect("checkpoint");
    registry.shutdown();
    drop(registry);
    let database = DataDir::create(dir.path()).expect("data dir").database();
    downgrade_to_schema_3(&database);

    let registry = open(dir.path(), config()).expect("reopen after migration");
    assert_eq!(registry.latest_checkpoint(), Some(checkpoint));
    for id in [init_id, release_id] {
        assert!(matches!(
            registry.record_status(&LogId::package(&done), &id),
            Ok(RecordStatus::Published { .. })
        ));
    }
    assert!(matches!(
        registry.record_status(&LogId::package(&lost), &lost_id),
        Ok(RecordStatus::Rejected { .. })
    ));
    assert!(matches!(
        registry.record_status(&LogId::package(&waiting), &waiting_id),
        Ok(RecordStatus::Sourcing { .. })
    ));
    let names = registry
        .package_names(&[LogId::package(&done), LogId::package(&waiting)])
        .expect("names");
    assert_eq!(names, vec![Some(done.clone()), Some(waiting.clone())]);
    // The waiting record completes after the migration.
    upload(&registry, &waiting, &waiting_id, other);
    published(&registry, &waiting, &waiting_id);
    let fetched = registry
        .fetch_logs(&cairn_registry::FetchRequest {
            log_length: registry.log_length(),
            operator: None,
            packages: vec![(LogId::package(&done), None)],
            limit: None,
        })
        .expect("fetch");
    assert_eq!(fetched.packages[0].1.len(), 2, "{fetched:?}");
    registry.shutdown();
    drop(registry);
    let conn = rusqlite::Connection::open(&database).expect("open database");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 5);
    let old: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('leaves', 'records_v3')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(old, 0, "the tables of version 3 are gone");
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = open(dir.path(), Config::default()).expect("open");
    registry.shutdown();
    drop(registry);
    let database = DataDir::create(dir.path()).expect("data dir").database();
    rusqlite::Connection::open(&database)
        .expect("open database")
        .execute_batch("PRAGMA user_version = 99")
        .expect("set version");
    let error = SqliteStore::open(&database)
        .err()
        .expect("a newer schema is refused");
    assert!(error.to_string().contains("schema version 99"), "{error}");
}

#[test]
fn a_data_directory_of_the_first_layout_is_moved_apart() {
    use cairn_registry::oci::{Algorithm, BlobStore, Digest};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let name: PackageName = "example:moved".parse().expect("name");
    let registry = open(dir.path(), Config::default()).expect("open");
    publish_two(&registry, &key, &name);
    registry.shutdown();
    drop(registry);
    // The first layout: every byte under content/, no blobs/ and no marker.
    let content = dir.path().join("content");
    let blob = b"an OCI blob, not Wasm";
    let blob_digest = Digest::of(Algorithm::Sha256, blob);
    let long = Digest::of(Algorithm::Sha512, b"long");
    std::fs::remove_dir_all(dir.path().join("blobs")).expect("remove blobs");
    std::fs::remove_file(dir.path().join("layout")).expect("remove marker");
    std::fs::write(content.join("sha256").join(blob_digest.hex()), blob).expect("blob");
    std::fs::create_dir_all(content.join("sha512")).expect("sha512");
    std::fs::write(content.join("sha512").join(long.hex()), b"long").expect("sha512 blob");
    std::fs::create_dir_all(content.join("uploads")).expect("uploads");
    std::fs::write(content.join("uploads").join("abcd"), b"partial").expect("session");

    let stores = DataDir::create(dir.path())
        .expect("data dir")
        .open_stores()
        .expect("stores");
    let wasm = Digest::of(Algorithm::Sha256, WASM);
    // Release content stays release content; the blob is only a blob.
    let release = Hash::of(WASM);
    assert_eq!(
        cairn_registry::ContentStore::size(stores.content.as_ref(), &release).expect("size"),
        Some(WASM.len() as u64)
    );
    assert_eq!(
        cairn_registry::ContentStore::size(stores.content.as_ref(), &Hash::of(blob)).expect("size"),
        None
    );
    for (digest, size) in [(&wasm, WASM.len()), (&blob_digest, blob.len()), (&long, 4)] {
        assert_eq!(
            stores.blobs.size(digest).expect("size"),
            Some(size as u64),
            "{digest}"
        );
    }
    assert_eq!(stores.blobs.session_size("abcd").expect("session"), Some(7));
    assert!(!content.join("sha512").exists() && !content.join("uploads").exists());
    assert!(dir.path().join("layout").exists());
    // And the registry still opens on it.
    drop(stores);
    let registry = open(dir.path(), Config::default()).expect("reopen");
    assert_eq!(
        registry.content_size(&release).expect("size"),
        Some(WASM.len() as u64)
    );
    assert_eq!(registry.content_size(&Hash::of(blob)).expect("size"), None);
}

/// The data directory holds the operator key, tokens and every account's
/// custodial key: only its owner may read it, and every file in it is
/// private too (the database's WAL and shared memory included).
#[cfg(unix)]
#[test]
fn every_file_of_a_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data");
    let key = PrivateKey::generate();
    let name: PackageName = "example:private".parse().expect("name");
    let registry = open(&root, Config::default()).expect("open");
    publish_two(&registry, &key, &name);
    let store = SqliteStore::open(&root.join("cairn.sqlite3")).expect("store");
    cairn_registry::auth::AuthStore::ensure_account(&store, "someone").expect("account");
    let data = DataDir::create(&root).expect("data dir");
    data.write_admin_token("secret").expect("admin token");
    let _lock = data.try_lock().expect("lock");
    let blobs = data.open_stores().expect("stores").blobs;
    cairn_registry::oci::BlobStore::create_session(blobs.as_ref(), "abcd").expect("session");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&root), 0o700, "the data directory");
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for expected in [
        "cairn.sqlite3",
        "cairn.sqlite3-wal",
        "operator.key",
        "admin.token",
        "lock",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(expected)),
            "{expected} in {files:?}"
        );
    }
    for file in &files {
        assert_eq!(
            mode(file) & 0o077,
            0,
            "{} is readable by others",
            file.display()
        );
    }
}

/// Seconds are u64 and SQLite's integers i64: `u64::MAX` ("every session")
/// once became -1 and matched nothing, so a sweep took every live upload
/// for an orphan.
#[test]
fn upload_sessions_older_than_the_largest_time_are_all_of_them() {
    use cairn_registry::oci::{OciStore, UploadSession};
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&dir.path().join("db.sqlite3")).expect("open");
    for (id, updated) in [("aa", 10), ("bb", 4_000_000_000)] {
        store
            .create_upload(&UploadSession {
                id: id.into(),
                repository: "acme/x".into(),
                account: "alice".into(),
                updated,
            })
            .expect("create");
    }
    let mut all = store.stale_uploads(u64::MAX).expect("stale");
    all.sort();
    assert_eq!(all, ["aa", "bb"]);
    assert_eq!(store.stale_uploads(11).expect("stale"), ["aa"]);
    assert_eq!(store.count_uploads(Some("alice")).expect("count"), 2);
    assert_eq!(store.count_uploads(Some("bob")).expect("count"), 0);
}
