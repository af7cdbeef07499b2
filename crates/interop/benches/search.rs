//! The search index at scale: 100,000 packages with realistic metadata and
//! worlds (descriptions from a vocabulary, SPDX licenses, authors, 2 to 8
//! imports and 1 to 3 exports from 60 WASI-like interfaces at several
//! versions), indexed in batches as the indexer applies them, then
//! searched: text (one and two words), WIT exports with a version
//! requirement, imports, `only-imports`, and text with filters. Prints
//! indexing throughput, p50/p99 per kind of query, the index's size on
//! disk and peak RSS.
//!
//! `cargo bench -p cairn-interop --bench search` (CAIRN_BENCH_SMOKE=1: 2,000
//! packages; CAIRN_BENCH_PACKAGES=N: N).

use std::time::{Duration, Instant};

use cairn_index::index::{ImportPattern, Index, InterfaceReq, PackageUpdate, Query};
use cairn_interop::synthetic::{package, Rng, INTERFACES, PACKAGES, WORDS};

/// A requirement on a random interface, with `suffix` (`""` or `@<req>`).
fn any_interface(rng: &mut Rng, suffix: &str) -> InterfaceReq {
    InterfaceReq::parse(&format!(
        "{}/{}{suffix}",
        rng.pick(PACKAGES),
        rng.pick(INTERFACES)
    ))
    .expect("req")
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    let at = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[at.min(times.len() - 1)]
}

fn measure(index: &Index, label: &str, runs: usize, mut make: impl FnMut(&mut Rng) -> Query) {
    let mut rng = Rng(0x5eed_cafe);
    let mut times = Vec::with_capacity(runs);
    let mut hits = 0usize;
    for _ in 0..runs {
        let query = make(&mut rng);
        let start = Instant::now();
        let page = index.search(&query).expect("search");
        times.push(start.elapsed());
        hits += page.total;
    }
    let p50 = percentile(&mut times, 0.50);
    let p99 = percentile(&mut times, 0.99);
    println!(
        "{label:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  (mean {} hits)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        hits / runs.max(1)
    );
}

fn main() {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let packages: usize = std::env::var("CAIRN_BENCH_PACKAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if smoke { 2_000 } else { 100_000 });
    let runs = if smoke { 20 } else { 300 };
    let dir = tempfile::tempdir().expect("scratch");
    // CAIRN_BENCH_DIR keeps the index there, to look at afterwards.
    let kept = std::env::var_os("CAIRN_BENCH_DIR").map(std::path::PathBuf::from);
    let root = kept.as_deref().unwrap_or(dir.path());
    let path = root.join("index.sqlite3");
    let index = Index::open(&path).expect("index");
    let mut rng = Rng(0x1234_5678);
    let updates: Vec<PackageUpdate> = (0..packages)
        .map(|i| package(i, &mut rng, Some(i as u64 * 2)))
        .collect();
    let start = Instant::now();
    let mut at = 0u64;
    for batch in updates.chunks(1_000) {
        at += batch.len() as u64 * 2;
        index.apply(batch, at).expect("apply");
    }
    let took = start.elapsed();
    index.checkpoint().expect("checkpoint");
    let size: u64 = std::fs::read_dir(root)
        .expect("dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "indexed {packages} packages in {:.1} s: {:.0} packages/s (batches of 1,000); index {:.1} MB on disk",
        took.as_secs_f64(),
        packages as f64 / took.as_secs_f64(),
        size as f64 / 1e6
    );
    let per_page = |q: Query| Query {
        per_page: 20,
        page: 1,
        ..q
    };
    measure(&index, "text, one word", runs, |rng| {
        per_page(Query {
            text: Some((*rng.pick(WORDS)).to_owned()),
            ..Query::default()
        })
    });
    measure(&index, "text, two words", runs, |rng| {
        per_page(Query {
            text: Some(format!("{} {}", rng.pick(WORDS), rng.pick(WORDS))),
            ..Query::default()
        })
    });
    measure(&index, "text + license + namespace", runs, |rng| {
        per_page(Query {
            text: Some((*rng.pick(WORDS)).to_owned()),
            license: Some((*rng.pick(&["MIT", "Apache-2.0", "ISC"])).to_owned()),
            namespace: Some(format!("ns{}", rng.below(500))),
            ..Query::default()
        })
    });
    measure(&index, "exports (no version)", runs, |rng| {
        per_page(Query {
            exports: vec![any_interface(rng, "")],
            ..Query::default()
        })
    });
    measure(&index, "exports@^0.2.1", runs, |rng| {
        per_page(Query {
            exports: vec![any_interface(rng, "@^0.2.1")],
            ..Query::default()
        })
    });
    measure(&index, "exports + imports", runs, |rng| {
        per_page(Query {
            exports: vec![
                InterfaceReq::parse(&format!("wasi:http/{}", rng.pick(INTERFACES))).expect("req"),
            ],
            imports: vec![
                InterfaceReq::parse(&format!("wasi:io/{}", rng.pick(INTERFACES))).expect("req"),
            ],
            ..Query::default()
        })
    });
    measure(&index, "exports + only-imports (3 packages)", runs, |rng| {
        per_page(Query {
            exports: vec![any_interface(rng, "")],
            only_imports: Some(
                (0..3)
                    .map(|_| ImportPattern::parse(&format!("{}/*", rng.pick(PACKAGES))).expect("p"))
                    .collect(),
            ),
            ..Query::default()
        })
    });
    measure(&index, "text + exports, page 5", runs, |rng| Query {
        text: Some((*rng.pick(WORDS)).to_owned()),
        exports: vec![any_interface(rng, "")],
        page: 5,
        per_page: 20,
        ..Query::default()
    });
    println!(
        "peak RSS {:.1} MiB",
        cairn_interop::report::peak_rss_mib(None)
    );
}
