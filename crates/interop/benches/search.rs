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

use cairn_index::index::{
    ImportPattern, Index, IndexedRelease, InterfaceReq, PackageUpdate, Query,
};
use cairn_index::metadata::{ComponentInfo, InterfaceName, World};

const WORDS: &[&str] = &[
    "http",
    "proxy",
    "router",
    "cache",
    "json",
    "parser",
    "image",
    "resize",
    "thumbnail",
    "auth",
    "token",
    "jwt",
    "crypto",
    "hash",
    "sql",
    "query",
    "kv",
    "store",
    "queue",
    "stream",
    "log",
    "metrics",
    "trace",
    "markdown",
    "render",
    "template",
    "compress",
    "zip",
    "csv",
    "yaml",
    "validate",
    "schema",
    "graphql",
    "grpc",
    "websocket",
    "email",
    "sms",
    "payment",
    "search",
    "index",
    "vector",
    "embedding",
    "ml",
    "inference",
    "audio",
    "video",
    "pdf",
    "font",
    "geo",
    "time",
    "cron",
    "scheduler",
    "workflow",
    "rules",
    "policy",
    "filter",
    "transform",
    "ssr",
];
const LICENSES: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "MIT OR Apache-2.0",
    "BSD-3-Clause",
    "MPL-2.0",
    "ISC",
];
const PACKAGES: &[&str] = &[
    "wasi:http",
    "wasi:io",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
    "wasi:clocks",
    "wasi:random",
    "wasi:keyvalue",
    "wasi:blobstore",
    "wasi:messaging",
    "wasi:config",
    "wasi:logging",
];
const INTERFACES: &[&str] = &["types", "handler", "store", "streams", "environment"];
const VERSIONS: &[(u64, u64, u64)] = &[(0, 2, 0), (0, 2, 1), (0, 2, 3), (0, 3, 0)];

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[(self.next() % list.len() as u64) as usize]
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn interface(rng: &mut Rng) -> InterfaceName {
    let (major, minor, patch) = *rng.pick(VERSIONS);
    InterfaceName {
        package: (*rng.pick(PACKAGES)).to_owned(),
        interface: (*rng.pick(INTERFACES)).to_owned(),
        version: Some(semver::Version::new(major, minor, patch)),
    }
}

fn release(i: usize, rng: &mut Rng) -> PackageUpdate {
    let words: Vec<&str> = (0..2 + rng.below(3)).map(|_| *rng.pick(WORDS)).collect();
    let package = format!("ns{}:{}-{i}", i % 500, words[..2].join("-"));
    let description = format!(
        "A {} component that does {} with {} for {}",
        words.join(" "),
        rng.pick(WORDS),
        rng.pick(WORDS),
        rng.pick(WORDS)
    );
    let mut imports: Vec<InterfaceName> = (0..2 + rng.below(7)).map(|_| interface(rng)).collect();
    imports.sort();
    imports.dedup_by(|a, b| a.unversioned() == b.unversioned());
    let mut exports: Vec<InterfaceName> = (0..1 + rng.below(3)).map(|_| interface(rng)).collect();
    exports.sort();
    exports.dedup_by(|a, b| a.unversioned() == b.unversioned());
    let info = ComponentInfo {
        description: Some(description),
        licenses: Some((*rng.pick(LICENSES)).to_owned()),
        authors: Some(format!("Author {} <a{}@example.test>", i % 3000, i % 3000)),
        source: Some(format!("https://git.example.test/{package}")),
        world: Some(World {
            imports,
            exports,
            ..World::default()
        }),
        ..ComponentInfo::default()
    };
    PackageUpdate {
        package: package.clone(),
        attestation_log: None,
        releases: vec![IndexedRelease {
            package,
            version: semver::Version::new(1, rng.below(10), 0),
            digest: format!("sha256:{:064x}", i),
            record_id: format!("sha256:{:064x}", i + 1),
            log_id: format!("sha256:{:064x}", i + 2),
            registry_index: Some(i as u64 * 2),
            published: 1_700_000_000 + i as i64,
            yanked: rng.below(50) == 0,
            signed: false,
            info: Some(info),
        }],
    }
}

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
    let updates: Vec<PackageUpdate> = (0..packages).map(|i| release(i, &mut rng)).collect();
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
