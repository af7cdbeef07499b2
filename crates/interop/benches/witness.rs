//! Publish → cosigned checkpoint: how long after a record is accepted does
//! `/tlog/checkpoint` serve a checkpoint that covers it, cosigned by a
//! quorum (2 of 3) of witnesses on their own loopback addresses
//! (127.0.0.2-4)? Issue 17's goal: p99 ≤ 1.5 s.
//!
//! Two cells, one after the other, on one registry (SQLite, the embedded
//! default) and three `cairn witness` services:
//! - **alone**: `--probes` (200) publishes one at a time, each a new
//!   package's `init` record through the engine's door; the clock runs from
//!   the submit to the first `/tlog/checkpoint` (polled every 2 ms) that
//!   covers it with the quorum's cosignatures;
//! - **under load**: the same probes while `--load` (1,000) other
//!   publishes are kept in flight from two threads.
//!
//! Prints p50/p90/p99/max per cell, the checkpoints the witnesses cosigned
//! and the peak RSS of the process (registry, witnesses and load share
//! it). `CAIRN_BENCH_SMOKE=1` or `--test`: 20 probes, 100 in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_interop::http::Http;
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::witness::RunningWitness;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::{RecordStatus, Registry};
use cairn_server::TlogKey;
use cairn_store::DataDir;
use cairn_transparency::note::{Note, Signer};
use cairn_transparency::witness::Policy;
use reqwest::{Method, StatusCode};

fn arg(name: &str) -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn record(key: &PrivateKey, n: u64) -> (PackageName, Envelope<PackageRecord>) {
    let name: PackageName = format!("acme:b{n}").parse().expect("name");
    let envelope = Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, (n % 1_000_000_000) as i32),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    );
    (name, envelope)
}

fn submit(registry: &Registry, key: &PrivateKey, n: u64) -> u64 {
    let (name, envelope) = record(key, n);
    match registry
        .submit(name.clone(), LogId::package(&name), envelope)
        .wait()
        .expect("accepted")
    {
        RecordStatus::Processing { index } | RecordStatus::Published { index } => index,
        other => panic!("not sequenced: {other:?}"),
    }
}

/// Waits until the served checkpoint covers `index` with the quorum.
fn until_witnessed(http: &Http, policy: &Policy, index: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = http.send(Method::GET, "/tlog/checkpoint", &[], Vec::new());
        if reply.status == StatusCode::OK {
            if let Ok(note) = Note::parse(&reply.body) {
                if policy.check(&note).is_ok_and(|(cp, _)| cp.size > index) {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "record {index} was never witnessed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let i = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || std::env::args().any(|a| a == "--test");
    let probes = arg("--probes").unwrap_or(if smoke { 20 } else { 200 });
    let load = arg("--load").unwrap_or(if smoke { 100 } else { 1000 });
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("registry");
    let (log_key, _) = DataDir::create(&data)
        .expect("data dir")
        .log_key(None, || "registry.bench/tlog".into())
        .expect("log key");
    let log_vkey = log_key.verifier().to_string();
    let witnesses: Vec<RunningWitness> = (0..3u8)
        .map(|i| {
            RunningWitness::start(
                [127, 0, 0, 2 + i],
                0,
                &dir.path().join(format!("w{i}")),
                &format!("witness.bench/w{i}"),
                &log_vkey,
            )
        })
        .collect();
    let policy_text = format!(
        "log {log_vkey}\n{}\ngroup two 2 w0 w1 w2\nquorum two\n",
        witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| format!("witness w{i} {} {}", w.key, w.url))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let policy = Policy::parse(&policy_text).expect("policy");
    let mut options = TestOptions::for_load();
    options.server.tlog = Some(Arc::new(
        TlogKey::new(Signer::parse(&log_key.encode()).expect("key"))
            .with_witnesses(policy.clone())
            .expect("witnesses"),
    ));
    let server = TestServer::start_options(&data, &["acme"], options);
    let http = Http::new(&server.url);
    let key = PrivateKey::generate();
    let next = Arc::new(AtomicU64::new(0));

    println!(
        "publish → cosigned checkpoint: 3 witnesses (127.0.0.2-4), quorum 2, {} cores; {probes} probes per cell",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut lines = Vec::new();
    for (cell, in_flight) in [("alone", 0u64), ("under load", load)] {
        let stop = Arc::new(AtomicBool::new(false));
        let loaders: Vec<_> = (0..2)
            .filter(|_| in_flight > 0)
            .map(|_| {
                let (registry, key, next, stop) = (
                    server.registry.clone(),
                    key.clone(),
                    next.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    let mut pending = std::collections::VecDeque::new();
                    while !stop.load(Ordering::Relaxed) {
                        while pending.len() < (in_flight / 2) as usize {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            let (name, envelope) = record(&key, n);
                            pending.push_back(registry.submit(
                                name.clone(),
                                LogId::package(&name),
                                envelope,
                            ));
                        }
                        if let Some(answer) = pending.pop_front() {
                            let _ = answer.wait();
                        }
                    }
                    for answer in pending {
                        let _ = answer.wait();
                    }
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(probes as usize);
        for _ in 0..probes {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let index = submit(&server.registry, &key, n);
            until_witnessed(&http, &policy, index);
            latencies.push(started.elapsed());
        }
        stop.store(true, Ordering::Relaxed);
        for loader in loaders {
            loader.join().expect("loader");
        }
        latencies.sort();
        let line = format!(
            "| {cell} | {} in flight | {} | {} | {} | {} |",
            in_flight,
            ms(percentile(&latencies, 500)),
            ms(percentile(&latencies, 900)),
            ms(percentile(&latencies, 990)),
            ms(*latencies.last().expect("probes"))
        );
        println!("{line}");
        lines.push(line);
    }
    println!("\n| cell | load | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|");
    for line in &lines {
        println!("{line}");
    }
    println!(
        "records published: {}; peak RSS of the process (registry, witnesses, load): {:.0} MiB",
        next.load(Ordering::Relaxed),
        cairn_interop::report::peak_rss_mib(None)
    );
    server.stop();
    drop(witnesses);
}
