//! `cairn get` against `warg download` (warg-cli 0.10) in one run, on one
//! Cairn server: a package with 1,000 releases on a registry of 100,000
//! packages.
//!
//! - **cold**: a new user (empty trusted state and cache) downloads the
//!   newest release: checkpoint, operator and package logs, every
//!   signature, proofs, and the bytes;
//! - **warm**: the same user again, nothing changed on the registry;
//! - **warm, registry moved on**: the same, after another package got a
//!   new record (a new checkpoint: consistency and inclusion proofs again).
//!
//! Every figure is the wall time of the whole process, median of several
//! runs. `cargo bench -p cairn-cli --bench get`; `CAIRN_BENCH_SMOKE=1`
//! for 1,000 packages and 100 releases. The warg binary is found as in the
//! interop tests; without it the bench fails under `CAIRN_REQUIRE_TOOLS`
//! (as `.ci/run` runs it) and otherwise measures only Cairn (said loudly).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::tools::{self, Tool};
use cairn_interop::warg::Warg;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp, Version,
};
use cairn_registry::{Batch, Config, ContentStore, MetaStore, RecordState, Registry, StoredRecord};
use cairn_store::DataDir;
use rayon::prelude::*;

struct Sizes {
    packages: u64,
    releases: u64,
    content: usize,
    cold_runs: usize,
    warm_runs: usize,
}

fn stored(name: &PackageName, envelope: &Envelope<PackageRecord>, index: u64) -> StoredRecord {
    StoredRecord {
        record_id: envelope.record_id(),
        log_id: LogId::package(name),
        content_bytes: envelope.content_bytes().to_vec(),
        key_id: envelope.key_id().to_string(),
        signature: envelope.signature().to_string(),
        state: RecordState::Sequenced { index },
    }
}

/// Fills `dir` with `packages` one-record packages and `bench:big`, whose
/// `releases` releases are spread through the log; only the newest
/// release's content is stored (the one `get` picks). Returns its bytes.
fn fill(dir: &Path, sizes: &Sizes) -> Vec<u8> {
    let data = DataDir::create(dir).expect("data dir");
    let (operator, _) = data.operator_key(None).expect("operator key");
    let stores = data.open_stores().expect("stores");
    let (meta, content) = (stores.meta, stores.content);
    let registry = Registry::open(
        meta.clone(),
        content.clone(),
        operator,
        &["bench".to_owned()],
        Config::default(),
    )
    .expect("open");
    let mut index = registry.log_length();
    registry.shutdown();
    drop(registry);

    let key = PrivateKey::generate();
    let big: PackageName = "bench:big".parse().expect("name");
    let newest = big_wasm(sizes.content);
    let mut pending = content.begin().expect("content");
    pending.write(&newest).expect("write");
    pending.commit(&Hash::of(&newest)).expect("commit");

    // The big package's chain, signed in order.
    let mut chain = Vec::new();
    let mut prev: Option<RecordId> = None;
    for r in 0..=sizes.releases {
        let entry = if r == 0 {
            PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }
        } else {
            let digest = if r == sizes.releases {
                Hash::of(&newest)
            } else {
                Hash::of(format!("release {r}"))
            };
            PackageEntry::Release {
                version: Version::new(1, 0, r),
                content: digest,
            }
        };
        let envelope = Envelope::sign(
            &key,
            PackageRecord {
                prev,
                version: 0,
                timestamp: Timestamp::new(1_700_000_000 + r as i64, 0),
                entries: vec![entry],
            },
        );
        prev = Some(envelope.record_id());
        chain.push(envelope);
    }
    let every = (sizes.packages / (sizes.releases + 1)).max(1);
    let mut chain = chain.into_iter();
    let chunk = 20_000u64;
    for start in (0..sizes.packages).step_by(chunk as usize) {
        let end = (start + chunk).min(sizes.packages);
        let records: Vec<(PackageName, Envelope<PackageRecord>)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let name: PackageName = format!("bench:p{i}").parse().expect("name");
                (
                    name,
                    init(&key, Timestamp::new(1_700_000_000 + i as i64, 0)),
                )
            })
            .collect();
        let mut batch = Batch::default();
        for (offset, (name, envelope)) in records.into_iter().enumerate() {
            if (start + offset as u64).is_multiple_of(every) {
                if let Some(envelope) = chain.next() {
                    if batch.names.iter().all(|(_, n)| *n != big) {
                        batch.names.push((LogId::package(&big), big.clone()));
                    }
                    batch.records.push(stored(&big, &envelope, index));
                    index += 1;
                }
            }
            batch.names.push((LogId::package(&name), name.clone()));
            batch.records.push(stored(&name, &envelope, index));
            index += 1;
        }
        meta.commit(&batch).expect("commit");
    }
    let rest: Vec<_> = chain.collect();
    if !rest.is_empty() {
        let mut batch = Batch::default();
        batch.names.push((LogId::package(&big), big.clone()));
        for envelope in rest {
            batch.records.push(stored(&big, &envelope, index));
            index += 1;
        }
        meta.commit(&batch).expect("commit");
    }
    newest
}

/// A valid Wasm module of `size` bytes: one custom section holding the
/// rest (its length written as a 5-byte LEB128).
fn big_wasm(size: usize) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.push(0);
    let mut len = (size - 8 - 1 - 5) as u32;
    for i in 0..5 {
        let mut byte = (len & 0x7f) as u8;
        len >>= 7;
        if i < 4 {
            byte |= 0x80;
        }
        wasm.push(byte);
    }
    wasm.push(4);
    wasm.extend_from_slice(b"test");
    wasm.resize(size, 0x2a);
    wasm
}

/// A package's first record: `init` with `key` as owner.
fn init(key: &PrivateKey, timestamp: Timestamp) -> Envelope<PackageRecord> {
    Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp,
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    )
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn timed(mut command: Command) -> Duration {
    let started = Instant::now();
    let output = command.output().expect("run");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        tools::output_text(&output)
    );
    took
}

fn cairn_get(home: &Path, url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    tools::isolate(&mut command, home)
        .env("CAIRN_REGISTRY", url)
        .args(["get", "bench:big", "-o", "out.wasm"])
        .stdin(Stdio::null());
    command
}

/// Gives another package a new record and waits for the checkpoint.
fn move_on(server: &TestServer, n: u64) {
    let key = PrivateKey::generate();
    let name: PackageName = format!("bench:moved{n}").parse().expect("name");
    let envelope = init(
        &key,
        Timestamp::from_system_time(std::time::SystemTime::now()),
    );
    let before = server.registry.log_length();
    server
        .registry
        .submit(name.clone(), LogId::package(&name), envelope)
        .wait()
        .expect("submit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .registry
        .latest_checkpoint()
        .map(|c| c.contents.checkpoint.log_length)
        .unwrap_or(0)
        <= before
    {
        assert!(Instant::now() < deadline, "no new checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let sizes = if smoke {
        Sizes {
            packages: 1_000,
            releases: 100,
            content: 100 * 1024,
            cold_runs: 2,
            warm_runs: 3,
        }
    } else {
        Sizes {
            packages: 100_000,
            releases: 1_000,
            content: 100 * 1024,
            cold_runs: 5,
            warm_runs: 11,
        }
    };
    // Looked up first: where the baseline is required, fail before measuring.
    let warg_binary = tools::require("bench get: the warg download baseline", Tool::WARG_CLI);
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let started = Instant::now();
    let newest = fill(&data, &sizes);
    let filled = started.elapsed();
    let server = TestServer::start_options(&data, &["bench"], TestOptions::for_load());
    println!(
        "`cairn get` vs `warg download`: bench:big ({} releases) on a registry of {} packages \
         (log length {}), content {} KiB; filled in {filled:.1?}",
        sizes.releases,
        sizes.packages + 1,
        server.registry.log_length(),
        sizes.content / 1024
    );

    let homes = scratch.path().join("homes");
    let mut n = 0;
    let mut fresh_home = || {
        n += 1;
        let home = homes.join(format!("u{n}"));
        std::fs::create_dir_all(&home).expect("home");
        home
    };

    // cairn
    let mut cold = Vec::new();
    let mut last_home = PathBuf::new();
    for _ in 0..sizes.cold_runs {
        let home = fresh_home();
        cold.push(timed(cairn_get(&home, &server.url)));
        assert_eq!(std::fs::read(home.join("out.wasm")).expect("out"), newest);
        last_home = home;
    }
    let warm: Vec<_> = (0..sizes.warm_runs)
        .map(|_| timed(cairn_get(&last_home, &server.url)))
        .collect();
    let mut moved = Vec::new();
    for i in 0..sizes.warm_runs {
        move_on(&server, i as u64);
        moved.push(timed(cairn_get(&last_home, &server.url)));
    }
    let cairn = (median(cold), median(warm), median(moved));

    // warg
    let warg = warg_binary.map(|binary| {
        let mut cold = Vec::new();
        let mut last = None;
        for _ in 0..sizes.cold_runs {
            let user = Warg {
                binary: binary.clone(),
                home: fresh_home(),
            };
            user.ok(&["config", "--registry", &server.url, "--overwrite"]);
            cold.push(timed(user.command(&[
                "download",
                "bench:big",
                "--output",
                "out.wasm",
            ])));
            assert_eq!(
                std::fs::read(user.home.join("out.wasm")).expect("out"),
                newest
            );
            last = Some(user);
        }
        let user = last.expect("a warg run");
        let warm: Vec<_> = (0..sizes.warm_runs)
            .map(|_| timed(user.command(&["download", "bench:big", "--output", "out.wasm"])))
            .collect();
        let mut moved = Vec::new();
        for i in 0..sizes.warm_runs {
            move_on(&server, 1000 + i as u64);
            moved.push(timed(user.command(&[
                "download",
                "bench:big",
                "--output",
                "out.wasm",
            ])));
        }
        (median(cold), median(warm), median(moved))
    });

    println!(
        "{:<28} {:>12} {:>14} {:>8}",
        "median wall time", "cairn get", "warg download", "ratio"
    );
    let rows = [
        ("cold (empty state)", cairn.0, warg.map(|w| w.0)),
        ("warm (nothing changed)", cairn.1, warg.map(|w| w.1)),
        ("warm (registry moved on)", cairn.2, warg.map(|w| w.2)),
    ];
    for (label, ours, theirs) in rows {
        match theirs {
            Some(theirs) => println!(
                "{label:<28} {:>12} {:>14} {:>7.1}x",
                ms(ours),
                ms(theirs),
                theirs.as_secs_f64() / ours.as_secs_f64()
            ),
            None => println!("{label:<28} {:>12} {:>14}", ms(ours), "-"),
        }
    }
    if warg.is_none() {
        println!("warg download NOT MEASURED: no warg binary");
    }
    println!(
        "goals: cold at least 3x faster than warg download; warm under 50 ms (cairn warm: {})",
        ms(cairn.1)
    );
    server.stop();
}
