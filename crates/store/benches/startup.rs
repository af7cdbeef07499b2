//! Startup time of the engine on a data directory with many records.
//!
//! Fills a data directory with N packages (one signed `init` record each,
//! written through the store in large batches), lets the engine make the
//! first checkpoint, then measures how long `Registry::open` takes on the
//! full directory: it loads the log, rebuilds the map of the latest
//! checkpoint and checks both roots against it; package states are loaded
//! lazily, so nothing is replayed.
//!
//! `cargo bench -p cairn-store --bench startup` (1,000,000 records);
//! `CAIRN_BENCH_SMOKE=1` for 10,000.

use std::time::{Duration, Instant};

use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::{Batch, Config, MetaStore, RecordState, Registry, StoredRecord};
use cairn_store::DataDir;
use rayon::prelude::*;

fn main() {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let n: u64 = if smoke { 10_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::create(dir.path()).expect("data dir");
    let (operator, _) = data.operator_key(None).expect("operator key");

    // Operator log first (namespace `bench`), through the engine.
    let stores = data.open_stores().expect("stores");
    let (meta, content) = (stores.meta, stores.content);
    let registry = Registry::open(
        meta.clone(),
        content.clone(),
        operator.clone(),
        &["bench".to_owned()],
        Config::default(),
    )
    .expect("open");
    registry.shutdown();
    drop(registry);

    let key = PrivateKey::generate();
    let started = Instant::now();
    let chunk = 50_000u64;
    let mut index = 1u64;
    for start in (0..n).step_by(chunk as usize) {
        let end = (start + chunk).min(n);
        let records: Vec<(PackageName, StoredRecord)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let name: PackageName = format!("bench:p{i}").parse().expect("name");
                let envelope = Envelope::sign(
                    &key,
                    PackageRecord {
                        prev: None,
                        version: 0,
                        timestamp: Timestamp::new(1_700_000_000 + i as i64, 0),
                        entries: vec![PackageEntry::Init {
                            hash_algorithm: HashAlgorithm::Sha256,
                            key: key.public_key().clone(),
                        }],
                    },
                );
                let log_id = LogId::package(&name);
                let record = StoredRecord {
                    record_id: envelope.record_id(),
                    log_id,
                    content_bytes: envelope.content_bytes().to_vec(),
                    key_id: envelope.key_id().to_string(),
                    signature: envelope.signature().to_string(),
                    state: RecordState::Sequenced { index: 0 },
                };
                (name, record)
            })
            .collect();
        let mut batch = Batch::default();
        for (name, mut record) in records {
            record.state = RecordState::Sequenced { index };
            index += 1;
            batch.names.push((record.log_id, name));
            batch.records.push(record);
        }
        meta.commit(&batch).expect("commit");
    }
    let filled = started.elapsed();
    drop((meta, content));

    // First open: checkpoints the records written behind its back.
    let open = || {
        let stores = data.open_stores().expect("stores");
        let (meta, content) = (stores.meta, stores.content);
        let t = Instant::now();
        let registry =
            Registry::open(meta, content, operator.clone(), &[], Config::default()).expect("open");
        let took = t.elapsed();
        let length = registry.log_length();
        registry.shutdown();
        (took, length)
    };
    let (first, length) = open();
    assert_eq!(length, n + 1);
    let mut times: Vec<Duration> = (0..3).map(|_| open().0).collect();
    times.sort();
    let size: u64 = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("startup of the engine on {n} package records (log length {length})");
    println!("  fill (sign + commit in batches of {chunk}): {filled:.2?}");
    println!("  first open (checkpoints them):             {first:.2?}");
    println!(
        "  open of the full data directory, 3 runs:   {:.2?} / {:.2?} / {:.2?}",
        times[0], times[1], times[2]
    );
    println!("  data directory size: {} MB", size / 1_000_000);
}
