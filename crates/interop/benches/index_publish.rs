//! What keeping the search index costs publishing (issue 18: indexing
//! must not lower publish throughput by more than 10%).
//!
//! The same bulk publish runs against an in-process `cairn serve` on
//! SQLite (2 tokio workers) without search and with the indexer following
//! the log, alternating A, B, A, B (after one uncounted warm-up run) so
//! that drift of the machine hits both:
//! `--in-flight` publishers (default 256) each publish fresh packages over
//! the Warg face (a signed init and release, then the content upload)
//! until `--packages` (default 4,000) are published. Every package is a
//! distinct real component (a WIT world of WASI imports and exports, and
//! metadata sections: description, license, source, authors), so the
//! indexer extracts and indexes what a real registry would. Reported per
//! run: packages/s; for runs with the indexer, how long after the last
//! publish the index had caught up with the log; the ratio of the means;
//! and the process's peak RSS.
//!
//! `cargo bench -p cairn-interop --bench index_publish`;
//! `CAIRN_BENCH_SMOKE=1` (or `-- --test`) for a tiny run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_index::index::Index;
use cairn_interop::components::{component, Meta};
use cairn_interop::server::{TestOptions, TestServer};
use cairn_protocol::{PackageName, PrivateKey};
use wasm_metadata::{AddMetadata, AddMetadataField, Description};

const HTTP: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }
interface types { resource request; }";
const IO: &str = "package wasi:io@0.2.0;
interface streams { read: func(n: u64) -> list<u8>; }";
const CLI: &str = "package wasi:cli@0.2.0;
interface environment { get-arguments: func() -> list<string>; }";

const WORDS: &[&str] = &[
    "http", "proxy", "router", "cache", "json", "parser", "image", "resize", "auth", "token",
    "crypto", "hash", "sql", "query", "queue", "stream", "log", "metrics", "markdown", "render",
];

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// `count` distinct components: one world, per-package metadata.
fn components(count: usize) -> Vec<Vec<u8>> {
    let base = component(
        &[HTTP, IO, CLI],
        "package bench:app@1.0.0; world app {
            import wasi:http/outgoing-handler@0.2.0;
            import wasi:io/streams@0.2.0;
            import wasi:cli/environment@0.2.0;
            export wasi:http/incoming-handler@0.2.0; }",
        &Meta {
            license: Some("Apache-2.0"),
            source: Some("https://git.example.test/bench"),
            authors: Some("Bench <bench@example.test>"),
            ..Meta::default()
        },
    );
    (0..count)
        .map(|i| {
            let mut add = AddMetadata::default();
            add.description = AddMetadataField::Set(Description::new(format!(
                "A {} {} component number {i} that does {} for {}",
                WORDS[i % WORDS.len()],
                WORDS[(i / 7) % WORDS.len()],
                WORDS[(i / 3) % WORDS.len()],
                WORDS[(i / 11) % WORDS.len()],
            )));
            add.to_wasm(&base).expect("metadata")
        })
        .collect()
}

struct Run {
    rate: f64,
    caught_up: Option<Duration>,
    /// The process's CPU time (every thread: publishers, server, indexer)
    /// while publishing, per package.
    cpu_per_package: Option<Duration>,
    /// The indexer thread's CPU time over the run, per package.
    indexer_per_package: Option<Duration>,
    /// The run's files, removed when the bench ends: removing thousands
    /// of files between runs made the next run's file creation slow
    /// (ext4 steps around recently freed inodes), a cost of the bench
    /// that no server pays.
    scratch: tempfile::TempDir,
}

fn run(
    runtime: &tokio::runtime::Runtime,
    round: usize,
    indexed: bool,
    contents: &Arc<Vec<Vec<u8>>>,
    in_flight: usize,
) -> Run {
    let scratch = tempfile::Builder::new()
        .prefix("index-publish-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch");
    let data = scratch.path().join("data");
    let mut options = TestOptions::for_load();
    let index = indexed
        .then(|| Arc::new(Index::open(&scratch.path().join("index.sqlite3")).expect("index")));
    options.server.search = index.clone();
    let server = TestServer::start_options(&data, &["bench"], options);
    let indexer = index.as_ref().map(|index| {
        cairn_server::search::Indexer::start(
            server.registry.clone(),
            Some(server.oci.clone()),
            index.clone(),
        )
        .expect("indexer")
    });
    let token = server.token("bench", &["publish:bench/*"], None);
    let bearer = format!("Bearer {token}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(in_flight)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let cpu_before = cairn_interop::report::process_cpu("self");
    let start = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let (client, url, bearer) = (client.clone(), server.url.clone(), bearer.clone());
            let (next, failed, contents) = (next.clone(), failed.clone(), contents.clone());
            tasks.push(tokio::spawn(async move {
                let key = PrivateKey::generate();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(content) = contents.get(i) else {
                        break;
                    };
                    let name: PackageName = format!("bench:r{round}-p{i}").parse().expect("name");
                    let status = cairn_interop::publish::publish(
                        &client,
                        &url,
                        Some(&bearer),
                        &key,
                        &name,
                        content,
                    )
                    .await;
                    if status != 201 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("publisher");
        }
    });
    let took = start.elapsed();
    let cpu = cairn_interop::report::process_cpu("self")
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let failures = failed.load(Ordering::Relaxed);
    assert_eq!(failures, 0, "{failures} publishes failed");
    let published = contents.len();
    let caught_up = index.as_ref().map(|index| {
        let target = server.registry.committed_length();
        let waited = Instant::now();
        while index.indexed_to().unwrap_or(0) < target {
            assert!(
                waited.elapsed() < Duration::from_secs(300),
                "the index did not catch up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let hits = index
            .search(&cairn_index::index::Query {
                per_page: 1,
                page: 1,
                ..Default::default()
            })
            .expect("search");
        assert_eq!(hits.total, published, "every package indexed");
        waited.elapsed()
    });
    let indexer_cpu = indexer
        .as_ref()
        .and_then(|_| cairn_interop::report::thread_cpu("cairn-indexer"));
    drop(indexer);
    server.stop();
    Run {
        rate: published as f64 / took.as_secs_f64(),
        caught_up,
        cpu_per_package: cpu.map(|c| c / published as u32),
        indexer_per_package: indexer_cpu.map(|c| c / published as u32),
        scratch,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let packages = arg(&args, "--packages").unwrap_or(if smoke { 60 } else { 4_000 });
    let in_flight = arg(&args, "--in-flight").unwrap_or(if smoke { 16 } else { 256 });
    let rounds = arg(&args, "--rounds").unwrap_or(if smoke { 1 } else { 2 });
    let made = Instant::now();
    let contents = Arc::new(components(packages));
    println!(
        "index_publish: {packages} packages per run ({} KiB components, made in {:.1} s), \
         {in_flight} publishers in flight, server on 2 workers, SQLite; A = no search, \
         B = indexer following the log",
        contents[0].len() / 1024,
        made.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Every run's files stay until the end (see `Run::scratch`).
    let mut kept = Vec::new();
    // One run first, not counted: it warms the page cache and the
    // allocator for both kinds of run.
    if !smoke {
        let warm = run(&runtime, usize::MAX, false, &contents, in_flight);
        println!("  warm-up (not counted): {:>8.0} packages/s", warm.rate);
        kept.push(warm.scratch);
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut indexer_cpu = Vec::new();
    for round in 0..rounds {
        for indexed in [false, true] {
            let r = run(
                &runtime,
                round * 2 + indexed as usize,
                indexed,
                &contents,
                in_flight,
            );
            let micros = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
            match r.caught_up {
                Some(lag) => println!(
                    "  round {round} B: {:>6.0} packages/s, CPU {:>5.0} µs/package (the indexer \
                     {:.0} µs); index caught up {:.2} s after the last publish",
                    r.rate,
                    micros(r.cpu_per_package),
                    micros(r.indexer_per_package),
                    lag.as_secs_f64()
                ),
                None => println!(
                    "  round {round} A: {:>6.0} packages/s, CPU {:>5.0} µs/package",
                    r.rate,
                    micros(r.cpu_per_package)
                ),
            }
            if let Some(indexer) = r.indexer_per_package {
                indexer_cpu.push(indexer.as_secs_f64() * 1e6);
            }
            if indexed {
                with.push(r.rate);
            } else {
                without.push(r.rate);
            }
            kept.push(r.scratch);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (a, b) = (mean(&without), mean(&with));
    println!(
        "publish throughput: without search {a:.0}/s, with the indexer {b:.0}/s: {:.1}% of it \
         ({:+.1}%)",
        100.0 * b / a,
        100.0 * (b - a) / a
    );
    println!(
        "the indexer's CPU: {:.0} µs per package (mean of the B runs)",
        mean(&indexer_cpu)
    );
    println!(
        "peak RSS {:.1} MiB",
        cairn_interop::report::peak_rss_mib(None)
    );
}
