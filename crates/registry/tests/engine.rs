//! The engine over the in-memory stores, with a clock the tests move: no
//! sleeps. Waiting is done with the engine's own primitives (answers, and
//! `checkpointed`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::memory::{MemoryContent, MemoryMeta};
use cairn_registry::{
    wait_until, Config, ContentError, ManualClock, RecordStatus, Registry, SubmitError,
};

const T0: u64 = 1_800_000_000;
const WASM: &[u8] = b"\0asm\x01\0\0\0";

struct Engine {
    registry: Arc<Registry>,
    meta: Arc<MemoryMeta>,
    content: MemoryContent,
    clock: Arc<ManualClock>,
}

fn engine() -> Engine {
    let meta = Arc::new(MemoryMeta::default());
    let content = MemoryContent::default();
    let clock = Arc::new(ManualClock::at(T0));
    let registry = Registry::open(
        meta.clone(),
        Arc::new(content.clone()),
        PrivateKey::generate(),
        &["acme".to_owned()],
        Config {
            clock: clock.clone(),
            content_timeout: Duration::from_secs(600),
            ..Config::default()
        },
    )
    .expect("open");
    Engine {
        registry,
        meta,
        content,
        clock,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn record(key: &PrivateKey, entries: Vec<PackageEntry>) -> Envelope<PackageRecord> {
    Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(T0 as i64, 0),
            entries,
        },
    )
}

fn init(key: &PrivateKey) -> PackageEntry {
    PackageEntry::Init {
        hash_algorithm: HashAlgorithm::Sha256,
        key: key.public_key().clone(),
    }
}

fn release(bytes: &[u8]) -> PackageEntry {
    PackageEntry::Release {
        version: "1.0.0".parse().expect("version"),
        content: Hash::of(bytes),
    }
}

fn submit(
    e: &Engine,
    name: &str,
    envelope: Envelope<PackageRecord>,
) -> Result<RecordStatus, SubmitError> {
    let name: PackageName = name.parse().expect("name");
    e.registry
        .submit(name.clone(), LogId::package(&name), envelope)
        .wait()
}

#[test]
fn an_accepted_record_is_published_by_the_next_checkpoint() {
    let e = engine();
    let key = PrivateKey::generate();
    let envelope = record(&key, vec![init(&key)]);
    let id = envelope.record_id();
    let RecordStatus::Processing { index } = submit(&e, "acme:a", envelope).expect("accepted")
    else {
        panic!("not sequenced")
    };
    assert!(wait_until(e.registry.checkpointed(index), deadline()).expect("in time"));
    let log = LogId::package(&"acme:a".parse().expect("name"));
    assert_eq!(
        e.registry.record_status(&log, &id).expect("status"),
        RecordStatus::Published { index }
    );
    // Remembered, so no store read is needed to answer.
    assert_eq!(
        e.registry.remembered_status(&log, &id),
        Some(RecordStatus::Published { index })
    );
    let checkpoint = e.registry.latest_checkpoint().expect("checkpoint");
    assert_eq!(
        checkpoint.contents.timestamp, T0,
        "the clock given, not the system's"
    );
}

#[test]
fn overdue_content_is_rejected_when_the_clock_says_so() {
    let e = engine();
    let key = PrivateKey::generate();
    let envelope = record(&key, vec![init(&key), release(b"never uploaded")]);
    let id = envelope.record_id();
    let log = LogId::package(&"acme:late".parse().expect("name"));
    assert!(matches!(
        submit(&e, "acme:late", envelope).expect("accepted"),
        RecordStatus::Sourcing { .. }
    ));
    e.clock.advance(Duration::from_secs(599));
    e.registry.housekeeping().wait().expect("housekeeping");
    assert!(matches!(
        e.registry.record_status(&log, &id).expect("status"),
        RecordStatus::Sourcing { .. }
    ));
    e.clock.advance(Duration::from_secs(1));
    e.registry.housekeeping().wait().expect("housekeeping");
    let RecordStatus::Rejected { reason } = e.registry.record_status(&log, &id).expect("status")
    else {
        panic!("not rejected")
    };
    assert!(
        reason.contains("was not uploaded within 600 seconds"),
        "{reason}"
    );
}

#[test]
fn a_failed_commit_answers_an_error_and_leaves_no_trace() {
    let e = engine();
    let key = PrivateKey::generate();
    let length = e.registry.log_length();
    e.meta.fail_commits(true);
    let refused = submit(&e, "acme:disk", record(&key, vec![init(&key)]));
    assert!(matches!(refused, Err(SubmitError::Store(_))), "{refused:?}");
    e.meta.fail_commits(false);
    // The same record is accepted afterwards, at the index it would have had.
    let accepted = submit(&e, "acme:disk", record(&key, vec![init(&key)])).expect("accepted");
    assert_eq!(accepted, RecordStatus::Processing { index: length });
}

#[test]
fn content_enters_only_through_the_door() {
    let e = engine();
    let key = PrivateKey::generate();
    let not_wasm = b"hello, world";
    let envelope = record(&key, vec![init(&key), release(not_wasm)]);
    let id = envelope.record_id();
    let log = LogId::package(&"acme:door".parse().expect("name"));
    submit(&e, "acme:door", envelope).expect("accepted");
    // Bytes that are not Wasm are not stored; once they prove to be the
    // record's content, they are refused and the record is rejected at
    // once (it can never be completed).
    let mut upload = e
        .registry
        .begin_upload(&log, &id, &Hash::of(not_wasm))
        .expect("begin");
    upload.write(not_wasm).expect("only hashed");
    assert!(matches!(
        e.registry.finish_upload(upload),
        Err(ContentError::NotWasm(_))
    ));
    assert_eq!(e.content.size_of(&Hash::of(not_wasm)), None);
    assert!(matches!(
        e.registry.record_status(&log, &id),
        Ok(RecordStatus::Rejected { reason }) if reason.contains("is not valid WebAssembly")
    ));

    // Wasm of the right digest is admitted, and the record moves on.
    let envelope = record(&key, vec![init(&key), release(WASM)]);
    let id = envelope.record_id();
    let log = LogId::package(&"acme:good".parse().expect("name"));
    submit(&e, "acme:good", envelope).expect("accepted");
    let wrong = e.registry.begin_upload(&log, &id, &Hash::of(b"other"));
    assert!(matches!(wrong, Err(ContentError::NotMissing { .. })));
    let mut upload = e
        .registry
        .begin_upload(&log, &id, &Hash::of(WASM))
        .expect("begin");
    for byte in WASM.chunks(1) {
        upload.write(byte).expect("write");
    }
    let arrived = e.registry.finish_upload(upload).expect("admitted");
    let RecordStatus::Processing { index } = arrived.wait().expect("sequenced") else {
        panic!("not sequenced")
    };
    assert!(wait_until(e.registry.checkpointed(index), deadline()).expect("in time"));
    assert_eq!(e.content.size_of(&Hash::of(WASM)), Some(WASM.len() as u64));
}

#[test]
fn admin_requests_run_at_housekeeping() {
    let e = engine();
    let id = e.meta.request_define_namespace("later");
    e.registry.housekeeping().wait().expect("housekeeping");
    assert_eq!(e.meta.admin_outcome(id).as_deref(), Some("defined"));
    let key = PrivateKey::generate();
    submit(&e, "later:pkg", record(&key, vec![init(&key)])).expect("namespace defined");
}

#[test]
fn a_stopped_registry_answers_stopped() {
    let e = engine();
    e.registry.shutdown();
    let key = PrivateKey::generate();
    assert!(matches!(
        submit(&e, "acme:late", record(&key, vec![init(&key)])),
        Err(SubmitError::Stopped)
    ));
}

#[test]
fn read_requests_are_bounded() {
    use cairn_registry::{FetchRequest, QueryError};
    let meta = Arc::new(MemoryMeta::default());
    let registry = Registry::open(
        meta,
        Arc::new(MemoryContent::default()),
        PrivateKey::generate(),
        &["acme".to_owned()],
        Config {
            max_request_items: 3,
            fetch_records_max: 2,
            ..Config::default()
        },
    )
    .expect("open");
    let key = PrivateKey::generate();
    let mut logs = Vec::new();
    let mut last = 0;
    for i in 0..3 {
        let name: PackageName = format!("acme:p{i}").parse().expect("name");
        let status = registry
            .submit(
                name.clone(),
                LogId::package(&name),
                record(&key, vec![init(&key)]),
            )
            .wait()
            .expect("accepted");
        let RecordStatus::Processing { index } = status else {
            panic!("not sequenced")
        };
        last = index;
        logs.push(LogId::package(&name));
    }
    assert!(wait_until(registry.checkpointed(last), deadline()).expect("in time"));
    let length = registry.log_length();
    let four = [logs.clone(), vec![logs[0]]].concat();
    assert!(matches!(
        registry.package_names(&four),
        Err(QueryError::TooMany {
            what: "log ids",
            asked: 4,
            max: 3
        })
    ));
    assert!(matches!(
        registry.prove_inclusion(length, &[0, 1, 2, 3]),
        Err(QueryError::TooMany { what: "leaves", .. })
    ));
    assert!(matches!(
        registry.prove_inclusion(length, &[1, 1]),
        Err(QueryError::Invalid(message)) if message.contains("asked for twice")
    ));
    let fetch = |packages: &[LogId]| FetchRequest {
        log_length: length,
        limit: None,
        operator: None,
        packages: packages.iter().map(|l| (*l, None)).collect(),
    };
    assert!(matches!(
        registry.fetch_logs(&fetch(&four)),
        Err(QueryError::TooMany { what: "logs", .. })
    ));
    // Three logs of one record each, two records per answer at most: the
    // first page holds two and says there is more.
    let page = registry.fetch_logs(&fetch(&logs)).expect("page");
    let records: usize = page.packages.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(records, 2);
    assert!(page.more);
}

#[test]
fn snapshots_taken_in_the_background_reopen_to_the_same_roots() {
    let meta = Arc::new(MemoryMeta::default());
    let content = Arc::new(MemoryContent::default());
    let operator = PrivateKey::generate();
    let config = Config {
        snapshot_every: 1,
        ..Config::default()
    };
    let registry = Registry::open(
        meta.clone(),
        content.clone(),
        operator.clone(),
        &["acme".to_owned()],
        config.clone(),
    )
    .expect("open");
    let key = PrivateKey::generate();
    for i in 0..20 {
        let name: PackageName = format!("acme:s{i}").parse().expect("name");
        let status = registry
            .submit(
                name.clone(),
                LogId::package(&name),
                record(&key, vec![init(&key)]),
            )
            .wait()
            .expect("accepted");
        let RecordStatus::Processing { index } = status else {
            panic!("not sequenced")
        };
        // Each checkpoint starts a snapshot while the last may still run.
        assert!(wait_until(registry.checkpointed(index), deadline()).expect("in time"));
    }
    let before = registry.latest_checkpoint().expect("checkpoint");
    registry.shutdown();
    drop(registry);
    let reopened =
        Registry::open(meta, content, operator, &[], config).expect("reopen from the snapshot");
    assert_eq!(reopened.latest_checkpoint(), Some(before));
}

#[test]
fn two_uploads_of_the_same_content_at_once_sequence_the_record_once() {
    let e = engine();
    let key = PrivateKey::generate();
    let envelope = record(&key, vec![init(&key), release(WASM)]);
    let id = envelope.record_id();
    let name: PackageName = "acme:twice".parse().expect("name");
    let log = LogId::package(&name);
    submit(&e, "acme:twice", envelope).expect("accepted");
    let length = e.registry.log_length();
    let uploads: Vec<_> = (0..2)
        .map(|_| {
            let mut upload = e
                .registry
                .begin_upload(&log, &id, &Hash::of(WASM))
                .expect("both may start while the record waits");
            upload.write(WASM).expect("write");
            upload
        })
        .collect();
    let start = std::sync::Barrier::new(2);
    let statuses: Vec<RecordStatus> = std::thread::scope(|scope| {
        let done: Vec<_> = uploads
            .into_iter()
            .map(|upload| {
                let (registry, start) = (&e.registry, &start);
                scope.spawn(move || {
                    start.wait();
                    registry
                        .finish_upload(upload)
                        .expect("admitted")
                        .wait()
                        .expect("answered")
                })
            })
            .collect();
        done.into_iter()
            .map(|d| d.join().expect("upload"))
            .collect()
    });
    let indexes: Vec<u64> = statuses
        .iter()
        .map(|s| match s {
            RecordStatus::Processing { index } | RecordStatus::Published { index } => *index,
            other => panic!("not sequenced: {other:?}"),
        })
        .collect();
    assert_eq!(
        indexes[0], indexes[1],
        "one leaf, the same for both: {statuses:?}"
    );
    let index = e
        .registry
        .wait_published(&log, &id, deadline())
        .expect("published");
    assert_eq!(index, indexes[0]);
    assert_eq!(e.registry.log_length(), length + 1, "sequenced once");
    assert_eq!(e.content.size_of(&Hash::of(WASM)), Some(WASM.len() as u64));
}
