//! Cairn's core against the reference Warg crates (0.10), side by side in one
//! run: building the registry map, batches of updates and new keys, map
//! inclusion proofs, record signature checks and the resident memory of the
//! map. Both sides get the same inputs, and every row checks that they agree
//! (equal roots, valid proofs, accepted signatures): the bench panics if not.
//!
//! `cargo bench -p cairn-interop --bench core` runs N = 1,000,000 packages;
//! `--packages N` changes N; `--test` (as in `cargo bench -- --test`) or the
//! `CAIRN_BENCH_SMOKE` environment variable runs tiny sizes as a smoke test.
//! Memory is measured in child processes (`--memory-child cairn|reference N`)
//! that read `VmRSS` from `/proc/self/status` around building the map.

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_interop::report::{self, duration_text, per_second, thousands};
use cairn_interop::{any_hash, keys};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, Timestamp, Version};
use cairn_transparency::map::{Map as CairnMap, MapProof};
use cairn_transparency::Hash;
use rayon::prelude::*;
use warg_crypto::hash::Sha256;
use warg_crypto::signing as wsign;
use warg_crypto::Signable;
use warg_protocol::package as wpkg;
use warg_protocol::registry as wreg;
use warg_transparency::map as wmap;

type RefMap = wmap::Map<Sha256, wreg::LogId, wreg::MapLeaf>;
type CairnEntry = (Hash, Hash);
type RefEntry = (wreg::LogId, wreg::MapLeaf);

/// Timed runs of the small rows (the best is kept); the map build runs once.
const RUNS: usize = 3;

#[derive(Clone, Copy, Debug)]
struct Sizes {
    packages: usize,
    batch: usize,
    proofs: usize,
    sigs: usize,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        packages: 1_000_000,
        batch: 10_000,
        proofs: 1_000,
        sigs: 10_000,
    };
    const SMOKE: Sizes = Sizes {
        packages: 2_000,
        batch: 100,
        proofs: 50,
        sigs: 50,
    };
}

// ---- inputs, identical for both sides ----

/// The log id of package `i`.
fn key(i: usize) -> Hash {
    Hash::of(format!("pkg-{i}"))
}

/// The id of version `version` of package `i`'s latest record.
fn record(i: usize, version: usize) -> Hash {
    Hash::of(format!("record-{i}-{version}"))
}

fn cairn_entry(i: usize, version: usize) -> CairnEntry {
    let leaf = cairn_protocol::MapLeaf {
        record_id: cairn_protocol::RecordId::from(record(i, version)),
    };
    (key(i), leaf.leaf_hash())
}

fn ref_entry(i: usize, version: usize) -> RefEntry {
    (
        wreg::LogId::from(any_hash(&key(i))),
        wreg::MapLeaf {
            record_id: wreg::RecordId::from(any_hash(&record(i, version))),
        },
    )
}

fn cairn_entries(ids: &[usize], version: usize) -> Vec<CairnEntry> {
    ids.par_iter().map(|&i| cairn_entry(i, version)).collect()
}

fn ref_entries(ids: &[usize], version: usize) -> Vec<RefEntry> {
    ids.par_iter().map(|&i| ref_entry(i, version)).collect()
}

/// `count` distinct ids spread evenly over `0..n` (`count <= n`).
fn spread(n: usize, count: usize, offset: usize) -> Vec<usize> {
    (0..count).map(|k| (k * n / count + offset) % n).collect()
}

// ---- the map, built the same way in the bench and the memory children ----

fn build_cairn(entries: &[CairnEntry]) -> CairnMap {
    CairnMap::new().apply(entries.iter().copied())
}

fn build_reference(entries: &[RefEntry]) -> RefMap {
    RefMap::default().extend(entries.iter().cloned())
}

fn check_roots(what: &str, cairn: &CairnMap, reference: &RefMap) {
    let (ours, theirs) = (cairn.root(), reference.root());
    assert!(
        ours.as_bytes()[..] == theirs.bytes()[..],
        "{what}: the map roots differ: cairn {ours} reference {theirs}"
    );
    // Not compared: the reference's `len()` undercounts (a key that splits
    // a singleton subtree is not counted as new in warg-transparency 0.10).
}

// ---- timing ----

fn time<T>(run: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = black_box(run());
    (out, start.elapsed())
}

/// The result of the last run and the shortest time of `runs` runs.
fn best_of<T>(runs: usize, mut run: impl FnMut() -> T) -> (T, Duration) {
    let (mut out, mut best) = time(&mut run);
    for _ in 1..runs {
        let (next, elapsed) = time(&mut run);
        out = next;
        best = best.min(elapsed);
    }
    (out, best)
}

// ---- the table ----

struct Row {
    name: String,
    cairn: String,
    reference: String,
    ratio: f64,
}

/// A throughput row: `count` operations in each side's time.
fn rate_row(name: &str, unit: &str, count: usize, cairn: Duration, reference: Duration) -> Row {
    let (ours, theirs) = (per_second(count, cairn), per_second(count, reference));
    let cell = |rate: f64, elapsed: Duration| {
        format!("{} {unit}/s ({})", thousands(rate), duration_text(elapsed))
    };
    Row {
        name: name.to_owned(),
        cairn: cell(ours, cairn),
        reference: cell(theirs, reference),
        ratio: ours / theirs,
    }
}

fn print_table(rows: &[Row]) {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.cairn.clone(),
                r.reference.clone(),
                format!("{:.2}x", r.ratio),
            ]
        })
        .collect();
    report::print_table(
        ["row", "Cairn", "reference (warg 0.10)", "cairn/ref"],
        &cells,
    );
}

// ---- rows ----

fn bench_maps(sizes: Sizes, rows: &mut Vec<Row>) {
    let n = sizes.packages;
    assert!(
        sizes.batch <= n && sizes.proofs <= n,
        "the batch and the proofs must not exceed N"
    );
    eprintln!("generating {n} keys and values for each side...");
    let ids: Vec<usize> = (0..n).collect();
    let cairn_base = cairn_entries(&ids, 0);
    let ref_base = ref_entries(&ids, 0);

    // 1. Build the map with N keys.
    eprintln!("building the {n}-key map (cairn)...");
    let (cairn_map, cairn_time) = time(|| build_cairn(&cairn_base));
    eprintln!("  {}", duration_text(cairn_time));
    eprintln!("building the {n}-key map (reference, one insert at a time)...");
    let (ref_map, ref_time) = time(|| build_reference(&ref_base));
    eprintln!("  {}", duration_text(ref_time));
    check_roots("build", &cairn_map, &ref_map);
    assert_eq!(cairn_map.len(), n, "build: every key is in the map");
    rows.push(rate_row(
        &format!("build map, {n} keys"),
        "keys",
        n,
        cairn_time,
        ref_time,
    ));

    // Cairn's map takes leaf hashes; the reference hashes each `MapLeaf`
    // inside `extend`. Report what hashing the leaves costs Cairn's caller.
    let (leaf_hashes, leaf_time) = time(|| {
        ids.iter()
            .map(|&i| {
                cairn_protocol::MapLeaf {
                    record_id: cairn_protocol::RecordId::from(record(i, 0)),
                }
                .leaf_hash()
            })
            .collect::<Vec<_>>()
    });
    drop(leaf_hashes);
    let leaf_note = format!(
        "note: row 1's Cairn input is precomputed leaf hashes; computing {n} leaf hashes \
         from MapLeaf on one thread (record id formatting + hashing) takes {} \
         (the reference does this inside extend)",
        duration_text(leaf_time)
    );

    // 2. Update existing keys.
    let updated = spread(n, sizes.batch, 0);
    let (next, row) = bench_batch(
        &format!("apply {} updates (N keys) + root", sizes.batch),
        "updates",
        (&cairn_map, &ref_map),
        (cairn_entries(&updated, 1), ref_entries(&updated, 1)),
    );
    assert_eq!(next.len(), n, "updates: no key is added");
    assert_ne!(next.root(), cairn_map.root(), "updates change the root");
    rows.push(row);
    drop(next);

    // 3. Insert new keys.
    let added: Vec<usize> = (n..n + sizes.batch).collect();
    let (next, row) = bench_batch(
        &format!("insert {} new keys (N keys) + root", sizes.batch),
        "keys",
        (&cairn_map, &ref_map),
        (cairn_entries(&added, 0), ref_entries(&added, 0)),
    );
    assert_eq!(next.len(), n + sizes.batch, "inserts: every key is added");
    rows.push(row);
    drop(next);

    // 4. Inclusion proofs, produced and verified against the root.
    let proved = spread(n, sizes.proofs, n / sizes.proofs.max(1) / 2);
    let cairn_root = cairn_map.root();
    let ref_root = ref_map.root().clone();
    // Cairn verifies the proofs as a batch (`MapProof::evaluate_many`, what
    // a client does with a `MapProofBundle`): lanes and threads.
    let (_, cairn_time) = best_of(RUNS, || {
        let proofs: Vec<_> = proved
            .iter()
            .map(|&i| {
                let (key, _) = &cairn_base[i];
                cairn_map.prove(key).expect("cairn proves a present key")
            })
            .collect();
        let items: Vec<_> = proofs
            .iter()
            .zip(&proved)
            .map(|(proof, &i)| (proof, &cairn_base[i].0, &cairn_base[i].1))
            .collect();
        for (root, &i) in MapProof::evaluate_many(&items).into_iter().zip(&proved) {
            assert!(
                root.expect("cairn's proof evaluates") == cairn_root,
                "cairn's proof of key {i} gives another root"
            );
        }
    });
    let (_, ref_time) = best_of(RUNS, || {
        for &i in &proved {
            let (key, leaf) = &ref_base[i];
            let proof = ref_map
                .prove(key.clone())
                .expect("the reference proves a present key");
            let root = proof.evaluate(key, leaf);
            assert!(
                root == ref_root,
                "the reference's proof of key {i} gives another root"
            );
        }
    });
    // A proof does not verify another key's leaf.
    let (key, _) = &cairn_base[proved[0]];
    let other = if n > 1 {
        cairn_base[(proved[0] + 1) % n].1
    } else {
        Hash::of("other")
    };
    let proof = cairn_map.prove(key).expect("cairn proves a present key");
    assert!(
        proof.evaluate(key, &other).ok() != Some(cairn_root),
        "cairn's proof accepts a wrong leaf"
    );
    rows.push(rate_row(
        &format!("{} inclusion proofs, prove + verify", sizes.proofs),
        "proofs",
        sizes.proofs,
        cairn_time,
        ref_time,
    ));
    println!("{leaf_note}");
}

/// Applies one batch to each side's map (best of [`RUNS`]), checks that the
/// new roots agree and returns Cairn's new map and the row.
fn bench_batch(
    name: &str,
    unit: &str,
    (cairn_map, ref_map): (&CairnMap, &RefMap),
    (cairn_batch, ref_batch): (Vec<CairnEntry>, Vec<RefEntry>),
) -> (CairnMap, Row) {
    let (cairn_next, cairn_time) = best_of(RUNS, || {
        let map = cairn_map.apply(cairn_batch.iter().copied());
        black_box(map.root());
        map
    });
    let (ref_next, ref_time) = best_of(RUNS, || {
        let map = ref_map.extend(ref_batch.iter().cloned());
        black_box(map.root().clone());
        map
    });
    check_roots(name, &cairn_next, &ref_next);
    let row = rate_row(name, unit, cairn_batch.len(), cairn_time, ref_time);
    (cairn_next, row)
}

fn bench_signatures(sizes: Sizes, rows: &mut Vec<Row>) {
    let keys = keys();
    let version: Version = "1.0.0".parse().expect("valid version");
    eprintln!("signing {} records...", sizes.sigs);
    let envelopes: Vec<Envelope<PackageRecord>> = (0..sizes.sigs)
        .into_par_iter()
        .map(|i| {
            let key = &keys[i % keys.len()];
            let record = PackageRecord {
                prev: None,
                version: 0,
                timestamp: Timestamp::new(1_700_000_000 + i as i64, 0),
                entries: vec![
                    PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    },
                    PackageEntry::Release {
                        version: version.clone(),
                        content: Hash::of(format!("content-{i}")),
                    },
                ],
            };
            Envelope::sign(key, record)
        })
        .collect();
    // The reference gets the same keys and signatures through their text.
    let ref_keys: Vec<wsign::PublicKey> = keys
        .iter()
        .map(|key| {
            key.public_key()
                .to_string()
                .parse()
                .expect("the reference reads our public key")
        })
        .collect();
    let ref_signatures: Vec<wsign::Signature> = envelopes
        .iter()
        .map(|env| {
            env.signature()
                .to_string()
                .parse()
                .expect("the reference reads our signature")
        })
        .collect();

    let (_, cairn_time) = best_of(RUNS, || {
        for (i, env) in envelopes.iter().enumerate() {
            env.verify_signature(keys[i % keys.len()].public_key())
                .expect("cairn accepts the signature");
        }
    });
    let (_, ref_time) = best_of(RUNS, || {
        for (i, (env, signature)) in envelopes.iter().zip(&ref_signatures).enumerate() {
            <wpkg::PackageRecord as Signable>::verify(
                &ref_keys[i % ref_keys.len()],
                env.content_bytes(),
                signature,
            )
            .expect("the reference accepts the signature");
        }
    });
    // Neither side accepts a signature under the wrong key.
    let wrong = 1 % keys.len();
    if wrong != 0 {
        assert!(
            envelopes[0]
                .verify_signature(keys[wrong].public_key())
                .is_err(),
            "cairn accepts a signature under the wrong key"
        );
        assert!(
            <wpkg::PackageRecord as Signable>::verify(
                &ref_keys[wrong],
                envelopes[0].content_bytes(),
                &ref_signatures[0],
            )
            .is_err(),
            "the reference accepts a signature under the wrong key"
        );
    }
    rows.push(rate_row(
        &format!("verify {} record signatures", sizes.sigs),
        "sigs",
        sizes.sigs,
        cairn_time,
        ref_time,
    ));
}

// ---- memory, in child processes ----

/// Resident set size of this process, in bytes.
fn resident_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("/proc/self/status has VmRSS");
    let kib: i64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS is a number of kB");
    kib * 1024
}

/// Builds one side's N-key map and prints the growth of the resident set
/// and the root.
fn memory_child(side: &str, n: usize) {
    let ids: Vec<usize> = (0..n).collect();
    let (delta, root) = match side {
        "cairn" => {
            let entries = cairn_entries(&ids, 0);
            let before = resident_bytes();
            let map = build_cairn(&entries);
            let after = resident_bytes();
            let root = map.root().to_string();
            black_box(&map);
            (after - before, root)
        }
        "reference" => {
            let entries = ref_entries(&ids, 0);
            let before = resident_bytes();
            let map = build_reference(&entries);
            let after = resident_bytes();
            let root = map.root().to_string();
            black_box(&map);
            (after - before, root)
        }
        other => panic!("--memory-child takes cairn or reference, not {other:?}"),
    };
    println!("{delta} {root}");
}

fn measure_child(side: &str, n: usize) -> (i64, String) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let output = Command::new(exe)
        .args(["--memory-child", side, &n.to_string()])
        .output()
        .expect("run the memory child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the {side} memory child failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let mut words = stdout.split_whitespace();
    let delta = words
        .next()
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("the {side} memory child printed {stdout:?}"));
    let root = words
        .next()
        .unwrap_or_else(|| panic!("the {side} memory child printed no root: {stdout:?}"))
        .to_owned();
    (delta, root)
}

fn bench_memory(sizes: Sizes, rows: &mut Vec<Row>) {
    let n = sizes.packages;
    eprintln!("measuring the resident memory of the {n}-key maps in child processes...");
    let (cairn, cairn_root) = measure_child("cairn", n);
    let (reference, ref_root) = measure_child("reference", n);
    assert_eq!(
        cairn_root, ref_root,
        "memory children: the map roots differ"
    );
    let mb = |bytes: i64| bytes as f64 / 1e6;
    rows.push(Row {
        name: format!("resident memory of the {n}-key map"),
        cairn: format!("{:.1} MB", mb(cairn)),
        reference: format!("{:.1} MB", mb(reference)),
        ratio: cairn as f64 / (reference as f64).max(1.0),
    });
}

// ---- main ----

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory-child") {
        let side = args.get(1).expect("--memory-child takes a side");
        let n = args
            .get(2)
            .and_then(|n| n.parse().ok())
            .expect("--memory-child takes a number of packages");
        memory_child(side, n);
        return;
    }

    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let mut sizes = if smoke { Sizes::SMOKE } else { Sizes::FULL };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = if arg == "--packages" {
            rest.next().map(String::as_str)
        } else if let Some(value) = arg.strip_prefix("--packages=") {
            Some(value)
        } else {
            continue;
        };
        sizes.packages = value
            .and_then(|v| v.replace('_', "").parse().ok())
            .filter(|&n: &usize| n > 0)
            .expect("--packages takes a positive number");
    }
    sizes.batch = sizes.batch.min(sizes.packages);
    sizes.proofs = sizes.proofs.min(sizes.packages);

    let threads = rayon::current_num_threads();
    println!(
        "Cairn core vs reference warg 0.10 ({}): N = {} packages, batch = {}, proofs = {}, signatures = {}, rayon threads = {threads}",
        if smoke { "smoke sizes" } else { "full sizes" },
        sizes.packages,
        sizes.batch,
        sizes.proofs,
        sizes.sigs,
    );
    let mut rows = Vec::new();
    bench_maps(sizes, &mut rows);
    bench_signatures(sizes, &mut rows);
    bench_memory(sizes, &mut rows);
    println!();
    print_table(&rows);
    println!();
    println!(
        "cairn/ref: throughput ratio (above 1 = Cairn faster) except memory (below 1 = Cairn smaller). \
         Map build: one timed run; other rows: best of {RUNS}. Roots, proofs and signatures agreed on every row."
    );
}
