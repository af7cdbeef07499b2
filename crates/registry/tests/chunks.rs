//! The registry log keeps only the nodes above 256-leaf chunks in memory:
//! proofs that need lower nodes read the chunk's leaves from the store.
//! These tests make logs of several chunks, restart the engine from each
//! kind of snapshot (with chunk hashes, an older map-only one, damaged
//! chunk hashes, none), and check every proof against a log of every node
//! built from the stored leaves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, HashAlgorithm, LogId, LogLeaf, PackageName, PrivateKey, RecordId, SignedCheckpoint,
    Timestamp,
};
use cairn_registry::memory::{MemoryContent, MemoryMeta};
use cairn_registry::{
    wait_until, AdminRequest, Batch, ByteReader, Config, Loaded, MetaStore, QueryError,
    RecordStatus, Registry, SnapshotWriter, StoreError, StoredRecord,
};
use cairn_transparency::log::{LogProofBundle, VecLog};

/// A [`MemoryMeta`] whose leaf reads can be made to fail.
#[derive(Default)]
struct Flaky {
    inner: MemoryMeta,
    fail_leaves: AtomicBool,
}

impl MetaStore for Flaky {
    fn load(&self, leaves_from: u64) -> Result<Loaded, StoreError> {
        self.inner.load(leaves_from)
    }
    fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.commit(batch)
    }
    fn record(&self, log: &LogId, record: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.record(log, record)
    }
    fn log_records(
        &self,
        log: &LogId,
        after: Option<u64>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StoreError> {
        self.inner.log_records(log, after, before, limit)
    }
    fn checkpoint(&self, log_length: u64) -> Result<Option<SignedCheckpoint>, StoreError> {
        self.inner.checkpoint(log_length)
    }
    fn package_names(&self, logs: &[LogId]) -> Result<Vec<Option<PackageName>>, StoreError> {
        self.inner.package_names(logs)
    }
    fn package_list(&self) -> Result<Vec<PackageName>, StoreError> {
        self.inner.package_list()
    }
    fn leaves_at(&self, indexes: &[u64]) -> Result<Vec<Option<LogLeaf>>, StoreError> {
        self.inner.leaves_at(indexes)
    }
    fn leaves(&self, start: u64, limit: usize) -> Result<Vec<LogLeaf>, StoreError> {
        if self.fail_leaves.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("leaf reads fail (test)".into()));
        }
        self.inner.leaves(start, limit)
    }
    fn admin_requests(&self) -> Result<Vec<AdminRequest>, StoreError> {
        self.inner.admin_requests()
    }
    fn request_define_namespace(&self, namespace: &str) -> Result<i64, StoreError> {
        MetaStore::request_define_namespace(&self.inner, namespace)
    }
    fn finish_admin_request(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        self.inner.finish_admin_request(id, outcome)
    }
    fn save_map_snapshot(
        &self,
        log_length: u64,
        write: SnapshotWriter<'_>,
    ) -> Result<(), StoreError> {
        self.inner.save_map_snapshot(log_length, write)
    }
    fn load_map_snapshot(&self) -> Result<Option<(u64, ByteReader)>, StoreError> {
        self.inner.load_map_snapshot()
    }
}

/// The stored snapshot's length and bytes.
fn stored_snapshot(meta: &Flaky) -> (u64, Vec<u8>) {
    let (at, mut reader) = meta.load_map_snapshot().expect("read").expect("a snapshot");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut bytes).expect("read");
    (at, bytes)
}

/// Stores `bytes` as the snapshot at `at`.
fn store_snapshot(meta: &Flaky, at: u64, bytes: &[u8]) {
    meta.save_map_snapshot(at, &mut |out| out.write_all(bytes))
        .expect("save");
}

fn open(meta: &Arc<Flaky>, operator: &PrivateKey) -> Arc<Registry> {
    Registry::open(
        meta.clone(),
        Arc::new(MemoryContent::default()),
        operator.clone(),
        &["acme".to_owned()],
        Config {
            snapshot_every: 300,
            ..Config::default()
        },
    )
    .expect("open")
}

/// Publishes `count` new packages; returns the checkpointed length.
fn publish(registry: &Registry, from: usize, count: usize) -> u64 {
    let key = PrivateKey::generate();
    let mut last = 0;
    for i in from..from + count {
        let name: PackageName = format!("acme:p{i}").parse().expect("name");
        let envelope = Envelope::sign(
            &key,
            PackageRecord {
                prev: None,
                version: 0,
                timestamp: Timestamp::new(1_800_000_000, 0),
                entries: vec![PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                }],
            },
        );
        let status = registry
            .submit(name.clone(), LogId::package(&name), envelope)
            .wait()
            .expect("accepted");
        let RecordStatus::Processing { index } = status else {
            panic!("not sequenced: {status:?}")
        };
        last = index;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(wait_until(registry.checkpointed(last), deadline).expect("in time"));
    registry.log_length()
}

/// Every node, from the stored leaves.
fn reference(meta: &Flaky) -> VecLog {
    let mut log = VecLog::new();
    for leaf in meta.inner.leaves(0, usize::MAX).expect("leaves") {
        log.push(leaf.leaf_hash());
    }
    log
}

/// Proves inclusion of leaves all over the log and consistency from many
/// lengths, and checks each proof against the reference log.
fn check_proofs(registry: &Registry, meta: &Flaky) {
    let reference = reference(meta);
    let length = registry.log_length();
    let root = reference.root_at(length).expect("root");
    assert_eq!(
        registry
            .latest_checkpoint()
            .expect("checkpoint")
            .contents
            .checkpoint
            .log_root,
        root
    );
    let leaves: Vec<u64> = (0..length).step_by(37).chain([length - 1]).collect();
    let (bundle, _) = registry
        .prove_inclusion(length, &leaves)
        .expect("inclusion");
    let bundle = LogProofBundle::decode(&bundle).expect("bundle");
    let (data, _, inclusion) = bundle.unbundle();
    for (proof, leaf) in inclusion.iter().zip(&leaves) {
        let hash = meta.inner.leaves(*leaf, 1).expect("leaf")[0].leaf_hash();
        assert_eq!(proof.evaluate(&data, hash), Ok(root), "leaf {leaf}");
    }
    for old in (1..=length)
        .step_by(13)
        .chain([255, 256, 257, 511, 512, 513])
    {
        if old > length {
            continue;
        }
        let bundle = registry
            .prove_consistency(old, length)
            .expect("consistency");
        let (data, consistency, _) = LogProofBundle::decode(&bundle).expect("bundle").unbundle();
        assert_eq!(
            consistency[0].evaluate(&data),
            Ok((reference.root_at(old).expect("old root"), root)),
            "from {old}"
        );
    }
}

#[test]
fn proofs_over_chunks_hold_across_restarts_from_every_kind_of_snapshot() {
    let meta = Arc::new(Flaky::default());
    let operator = PrivateKey::generate();
    let registry = open(&meta, &operator);
    let mut published = 0;
    let mut length = 0;
    for count in [100, 200, 250, 150] {
        length = publish(&registry, published, count);
        published += count;
        check_proofs(&registry, &meta);
    }
    registry.shutdown();
    drop(registry);

    // From the snapshot saved at shutdown: chunk hashes and map.
    let (at, bytes) = stored_snapshot(&meta);
    assert_eq!(at, length);
    assert!(bytes.starts_with(b"CAIRN-SNAPSHOT"));
    let reopened = open(&meta, &operator);
    check_proofs(&reopened, &meta);
    publish(&reopened, published, 60);
    check_proofs(&reopened, &meta);
    reopened.shutdown();
    drop(reopened);

    // From an older engine's snapshot: the map alone.
    let (at, bytes) = stored_snapshot(&meta);
    let map = bytes
        .windows(11)
        .position(|w| w == b"CAIRN-MAP-1")
        .expect("the map inside");
    store_snapshot(&meta, at, &bytes[map..]);
    let reopened = open(&meta, &operator);
    check_proofs(&reopened, &meta);
    reopened.shutdown();
    drop(reopened);
    let (_, resaved) = stored_snapshot(&meta);
    assert!(
        resaved.starts_with(b"CAIRN-SNAPSHOT"),
        "the chunk hashes are saved again"
    );

    // Chunk hashes that do not lead to the checkpoint's root are ignored.
    let mut damaged = resaved.clone();
    damaged[14 + 2 + 8] ^= 1;
    store_snapshot(&meta, at, &damaged);
    let reopened = open(&meta, &operator);
    check_proofs(&reopened, &meta);
    reopened.shutdown();
    drop(reopened);

    // No usable snapshot: every leaf is read, in pieces.
    store_snapshot(&meta, at, b"not a snapshot");
    let reopened = open(&meta, &operator);

    // A store that fails while a proof reads a chunk (none is cached yet
    // after a start): an error, no panic.
    let length = reopened.log_length();
    meta.fail_leaves.store(true, Ordering::SeqCst);
    assert!(matches!(
        reopened.prove_inclusion(length, &[3]),
        Err(QueryError::Store(StoreError::Backend(_)))
    ));
    assert!(matches!(
        reopened.prove_consistency(4, length),
        Err(QueryError::Store(StoreError::Backend(_)))
    ));
    // Proofs that need no chunk are made from memory.
    reopened
        .prove_consistency(512, length)
        .expect("from memory alone");
    meta.fail_leaves.store(false, Ordering::SeqCst);
    check_proofs(&reopened, &meta);
}

/// The right edge's partial entry bundle is read from the store once and
/// then served from memory (every client of the latest checkpoint asks
/// for it): with leaf reads failing, it is still served, the same bytes.
#[test]
fn partial_entry_bundles_are_read_from_the_store_once() {
    let meta = Arc::new(Flaky::default());
    let operator = PrivateKey::generate();
    let registry = open(&meta, &operator);
    let length = publish(&registry, 0, 10);
    assert!(
        !length.is_multiple_of(256),
        "a partial bundle at the right edge"
    );
    let path = format!("tile/entries/000.p/{}", length % 256);
    let tile = cairn_transparency::log::Tile::parse(&path).expect("tile path");
    let first = registry.tile(&tile).expect("tile").expect("held");
    meta.fail_leaves.store(true, Ordering::SeqCst);
    let again = registry.tile(&tile).expect("from memory").expect("held");
    assert_eq!(first, again);
    meta.fail_leaves.store(false, Ordering::SeqCst);
}
