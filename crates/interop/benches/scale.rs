//! Cairn's engine at scale: synthetic signed records, up to 10,000,000
//! packages × 10 releases (100,000,000 records), into SQLite and into
//! PostgreSQL, with figures taken at milestones on the way.
//!
//! **The records.** Package `bench:p<N>` has ten records, each signed by
//! one key shared by every package (distinct timestamps make every record
//! distinct): the first `init` + release `1.0.0`, then releases `1.0.1` ..
//! `1.0.9`, one per record, each naming the previous record (`prev`). Every
//! release names the same small Wasm module, put into the content store
//! once before the run, so every release is sequenced at once. Records are
//! signed in parallel (rayon) one round of a wave at a time (every
//! package's record `r`), outside the ingest's clock, so memory holds one
//! round of envelopes, never the run.
//!
//! **The ingest.** Records go through the engine's door in-process
//! (`Registry::submit`, the door the HTTP faces call), with `--in-flight`
//! records (default 4,096) in flight from `--threads` submitter threads
//! (default: one per core); each thread waits for its oldest answer once
//! it has its share in flight. A wave is `--wave` packages (default the
//! engine's cache generation, 32,768, so the wave's package states stay
//! in the engine's caches): every package's first record, then every
//! package's second record, and so on; a round ends when every answer of
//! it came. An answer comes once the record is durably committed, so the
//! rate is of durable records. Anything but `processing`/`published` fails
//! the run.
//!
//! **Milestones** (`--milestones`, default 1M, 10M, 20M, 50M, 100M
//! records; the smoke run 5k, 20k): at each, with the engine quiet:
//! - ingest rate over the segment since the last milestone (records/s,
//!   signing excluded);
//! - publish → checkpoint latency, p50/p99 of `--probes` (200) single
//!   publishes one after another (a new package's init + release: submit,
//!   then await `Registry::checkpointed` of its index);
//! - `fetch_logs` p50/p99 of `--samples` (1,000) random packages (their
//!   whole log, ten records), and `prove_inclusion` p50/p99 of as many
//!   random leaves, both at the latest checkpoint, one at a time;
//! - disk per record, content excluded: the SQLite database with its WAL
//!   and shared-memory files, or `pg_database_size`;
//! - RSS now (after `malloc_trim`, so the bench's freed wave buffers do
//!   not count), of it the anonymous memory (`RssAnon`: the heap; the rest
//!   is mapped files: the binary and its libraries, SQLite reads its
//!   database into its own page caches), and the peak
//!   RSS since the backend started (`VmHWM`, reset per backend; it
//!   includes a round of pre-signed envelopes), from `/proc/self/status`;
//!   and, after the restart below, RSS and anonymous memory again (what a
//!   freshly opened registry holds);
//! - startup: `shutdown()`, drop, `Registry::open` on the same stores,
//!   timed; the run goes on with the reopened registry (so the RSS at a
//!   milestone is that of a registry opened at the previous one, which
//!   has ingested the segment since).
//!
//! The run stops early, and says why, when the disk holding the data has
//! less than 10% free (`--min-free-percent`; the smoke run 0.5%), when
//! `--budget-secs` (per backend) has run out, or at `--max-records`; it
//! then measures where it stopped. When it stopped before 100M records,
//! RSS (all, anonymous, and just after a restart), disk and startup time
//! are fitted (least squares, linear in records, over the last three
//! milestones) and printed at 100M, labelled extrapolated.
//!
//! **Backends** (`--backend sqlite,postgres`, the default both, one after
//! the other; `none` for the baseline alone): SQLite in a data directory (`DataDir`, WAL,
//! `synchronous=FULL`) under `--work-dir` (default `<out>/work`), removed
//! after unless `--keep`; PostgreSQL at `--database-url URL` (an empty
//! database), else a server of the bench's own with its data under the
//! work directory (binaries in /usr/lib/postgresql/15/bin, 16, 17,
//! /usr/local/bin, /usr/bin, or `$CAIRN_POSTGRES_BIN`): not the tests'
//! throwaway server, which runs with `fsync=off`, but `fsync=on`,
//! `synchronous_commit=on` (commits as durable as SQLite's), shared
//! buffers a quarter of the memory (at most 8 GiB), `max_wal_size=8GB`.
//! The store takes the lead (`Leadership::try_lead`) before the registry
//! opens. Without PostgreSQL the run skips it, loudly (fails under
//! `CAIRN_REQUIRE_TOOLS`).
//!
//! **warg-server 0.10 baseline** (`--warg-server`, and in the smoke run
//! when the binary is there; required under `CAIRN_REQUIRE_TOOLS`): the reference server (`$CAIRN_WARG_SERVER`
//! or `~/.cache/cairn-ci/warg-server-0.10.0/bin/warg-server`) with its
//! memory store, in a process of its own; `init` records of fresh packages
//! (one record each: a release would need its content uploaded), signed
//! by the publishers as they go and POSTed over HTTP (`--warg-in-flight`, 256 at once) up to
//! `--warg-records` (100,000) or `--warg-secs` (300), then the wait until
//! its checkpoint (every 5 s) covers them; its RSS per record.
//!
//! **Output**: a table on stdout, `scale.jsonl` (one JSON object for the
//! machine, then one per milestone, extrapolation and baseline, written as
//! they come) and `scale.svg` (plotters' SVG backend, text as SVG `<text>`,
//! no fonts needed: rate, RSS, p99s and startup against records, redrawn
//! after every milestone) in `--out DIR` (default the workspace's
//! `target/scale/`).
//!
//! `cargo bench -p cairn-interop --bench scale` runs the full sizes (the
//! binary from `cargo bench -p cairn-interop --bench scale --no-run` takes
//! the same flags); `CAIRN_BENCH_SMOKE=1` or `--test`: 20,000 records,
//! milestones 5k and 20k, 50 probes, 200 samples, SQLite and PostgreSQL
//! (where installed), the warg-server baseline at 1,000 records (where
//! installed), figures checked for sanity. Sizes take `k`/`M` suffixes
//! (`--milestones 100k,500k,1M`). Flags: `--milestones A,B,..`,
//! `--max-records N`, `--budget-secs S`, `--min-free-percent P`,
//! `--threads N`, `--in-flight N`, `--wave PACKAGES`, `--probes N`,
//! `--samples N`, `--backend sqlite,postgres`, `--database-url URL`,
//! `--out DIR`, `--work-dir DIR`, `--keep`, `--warg-server`,
//! `--no-warg-server`, `--warg-records N`, `--warg-secs S`,
//! `--warg-in-flight N`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_interop::report::{self, thousands};
use cairn_interop::tools::{self, Tool};
use cairn_postgres::{PgOptions, PgStore};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp, Version,
};
use cairn_registry::{
    wait_until, Config, ContentStore, FetchRequest, Leadership, MetaStore, RecordStatus, Registry,
};
use cairn_store::DataDir;
use rayon::prelude::*;
use serde_json::{json, Value};

/// Records per package: `init` + 1.0.0, then 1.0.1 .. 1.0.9.
const RECORDS_PER_PACKAGE: u64 = 10;
/// The size the extrapolation aims at.
const TARGET_RECORDS: u64 = 100_000_000;
/// Records' timestamps start here (seconds).
const T0: i64 = 1_700_000_000;
/// The namespace every package is in.
const NAMESPACE: &str = "bench";

// ---- arguments ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone, Debug)]
struct Args {
    smoke: bool,
    milestones: Vec<u64>,
    max_records: Option<u64>,
    budget: Option<Duration>,
    /// The run stops when the data's disk has less than this share free.
    min_free: f64,
    threads: usize,
    in_flight: usize,
    wave: u64,
    probes: usize,
    samples: usize,
    backends: Vec<Backend>,
    database_url: Option<String>,
    out: PathBuf,
    work_dir: Option<PathBuf>,
    keep: bool,
    warg_server: bool,
    warg_records: usize,
    warg_secs: u64,
    warg_in_flight: usize,
}

/// `20000`, `20_000`, `20k`, `1M`, `1.5M`.
fn parse_count(text: &str) -> Option<u64> {
    let text = text.trim().replace('_', "");
    let (number, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1e3),
        'm' | 'M' => (&text[..text.len() - 1], 1e6),
        'g' | 'G' | 'b' | 'B' => (&text[..text.len() - 1], 1e9),
        _ => (text.as_str(), 1.0),
    };
    let value = number.parse::<f64>().ok()? * scale;
    (value >= 1.0).then_some(value.round() as u64)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

const USAGE: &str = "flags: --milestones A,B,.. --max-records N --budget-secs S \
                     --min-free-percent P --threads N \
                     --in-flight N --wave PACKAGES --probes N --samples N \
                     --backend sqlite,postgres --database-url URL --out DIR --work-dir DIR \
                     --keep --warg-server --no-warg-server --warg-records N --warg-secs S \
                     --warg-in-flight N --test";

fn parse_args(raw: &[String]) -> Args {
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || raw.iter().any(|a| a == "--test");
    let default_out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target/scale"), |t| t.join("scale"));
    let mut args = Args {
        smoke,
        milestones: if smoke {
            vec![5_000, 20_000]
        } else {
            vec![1_000_000, 10_000_000, 20_000_000, 50_000_000, 100_000_000]
        },
        max_records: None,
        budget: None,
        // The smoke run writes a few megabytes: only a full disk stops it.
        min_free: if smoke { 0.005 } else { 0.10 },
        threads: cores(),
        in_flight: 4096,
        wave: Config::default().cache_generation as u64,
        probes: if smoke { 50 } else { 200 },
        samples: if smoke { 200 } else { 1000 },
        backends: vec![Backend::Sqlite, Backend::Postgres],
        database_url: None,
        out: default_out,
        work_dir: None,
        keep: false,
        warg_server: smoke,
        warg_records: if smoke { 1_000 } else { 100_000 },
        warg_secs: if smoke { 30 } else { 300 },
        warg_in_flight: if smoke { 64 } else { 256 },
    };
    let mut rest = raw.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> String {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .unwrap_or_else(|| panic!("{flag} takes {what}; {USAGE}"))
        };
        let count = |text: String| -> u64 {
            parse_count(&text).unwrap_or_else(|| panic!("{flag}: not a positive number: {text}"))
        };
        match flag {
            "--test" | "--bench" => {}
            "--milestones" => {
                let list = value("a list of record counts");
                args.milestones = list.split(',').map(|m| count(m.to_owned())).collect();
            }
            "--max-records" => args.max_records = Some(count(value("a record count"))),
            "--budget-secs" => {
                args.budget = Some(Duration::from_secs(count(value("seconds"))));
            }
            "--min-free-percent" => {
                let text = value("a percentage");
                args.min_free = text
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..100.0).contains(p))
                    .unwrap_or_else(|| panic!("--min-free-percent: not a percentage: {text}"))
                    / 100.0;
            }
            "--threads" => args.threads = count(value("a thread count")) as usize,
            "--in-flight" => args.in_flight = count(value("a record count")) as usize,
            "--wave" => args.wave = count(value("a package count")),
            "--probes" => args.probes = count(value("a count")) as usize,
            "--samples" => args.samples = count(value("a count")) as usize,
            "--backend" => {
                args.backends = value("sqlite, postgres, both or none")
                    .split(',')
                    .filter(|b| b.trim() != "none")
                    .map(|b| match b.trim() {
                        "sqlite" => Backend::Sqlite,
                        "postgres" | "postgresql" | "pg" => Backend::Postgres,
                        other => panic!("--backend: unknown backend {other}"),
                    })
                    .collect();
            }
            "--database-url" => args.database_url = Some(value("a postgres:// URL")),
            "--out" => args.out = PathBuf::from(value("a directory")),
            "--work-dir" => args.work_dir = Some(PathBuf::from(value("a directory"))),
            "--keep" => args.keep = true,
            "--warg-server" => args.warg_server = true,
            "--no-warg-server" => args.warg_server = false,
            "--warg-records" => args.warg_records = count(value("a record count")) as usize,
            "--warg-secs" => args.warg_secs = count(value("seconds")),
            "--warg-in-flight" => args.warg_in_flight = count(value("a count")) as usize,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => eprintln!("warning: ignoring unknown argument {other} ({USAGE})"),
        }
    }
    // Whole packages: every milestone a multiple of ten records.
    let whole = |n: u64| n.div_ceil(RECORDS_PER_PACKAGE) * RECORDS_PER_PACKAGE;
    args.milestones = args.milestones.iter().map(|&m| whole(m)).collect();
    args.max_records = args.max_records.map(whole);
    if let Some(max) = args.max_records {
        args.milestones.retain(|&m| m < max);
        args.milestones.push(max);
    }
    args.milestones.sort_unstable();
    args.milestones.dedup();
    assert!(!args.milestones.is_empty(), "no milestone to reach");
    args.threads = args.threads.max(1);
    args.in_flight = args.in_flight.max(args.threads);
    args.wave = args.wave.max(1);
    args
}

// ---- the machine ----

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Hands freed heap back to the system, so that RSS counts what is held.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+), so that each backend's
/// peak is its own; where that fails the peak counts from the start.
fn reset_peak_rss() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        eprintln!("warning: cannot reset the peak RSS; it counts from the start");
    }
}

fn mem_total_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / (1024.0 * 1024.0))
}

/// Free and total bytes of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only the struct it is given; the path is a
    // NUL-terminated string that outlives the call.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return None;
        }
        #[allow(clippy::unnecessary_cast)] // the field types differ per platform
        let block = stat.f_frsize as u64;
        #[allow(clippy::unnecessary_cast)]
        Some((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

// ---- the records ----

fn package_name(p: u64) -> PackageName {
    PackageName::new(format!("{NAMESPACE}:p{p}")).expect("valid package name")
}

/// A valid Wasm module (one custom section).
fn wasm_module() -> Vec<u8> {
    cairn_interop::warg::wasm("cairn scale bench")
}

/// The record `r` (0..10) of package `p`.
fn package_record(
    key: &PrivateKey,
    digest: Hash,
    p: u64,
    r: u64,
    prev: Option<cairn_protocol::RecordId>,
) -> Envelope<PackageRecord> {
    let mut entries = Vec::with_capacity(2);
    if r == 0 {
        entries.push(PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        });
    }
    entries.push(PackageEntry::Release {
        version: Version::new(1, 0, r),
        content: digest,
    });
    Envelope::sign(
        key,
        PackageRecord {
            prev,
            version: 0,
            timestamp: Timestamp::new(T0 + r as i64, (p % 1_000_000_000) as i32),
            entries,
        },
    )
}

/// The names and log ids of a wave's packages.
fn wave_names(packages: std::ops::Range<u64>) -> Vec<(PackageName, LogId)> {
    packages
        .map(|p| {
            let name = package_name(p);
            let log_id = LogId::package(&name);
            (name, log_id)
        })
        .collect()
}

/// Record `r` of each package of a wave starting at package `first`,
/// signed; `prev[i]` is the id of package `i`'s record `r - 1`, and
/// becomes that of its record `r`. One round at a time, so memory holds
/// one round of envelopes.
fn sign_round(
    key: &PrivateKey,
    digest: Hash,
    first: u64,
    r: u64,
    prev: &mut [Option<cairn_protocol::RecordId>],
) -> Vec<Envelope<PackageRecord>> {
    let round: Vec<_> = prev
        .par_iter()
        .enumerate()
        .map(|(i, prev)| package_record(key, digest, first + i as u64, r, *prev))
        .collect();
    for (prev, envelope) in prev.iter_mut().zip(&round) {
        *prev = Some(envelope.record_id());
    }
    round
}

// ---- the ingest ----

/// What a submitter saw.
#[derive(Default)]
struct Submitted {
    max_index: u64,
    errors: usize,
    first_error: Option<String>,
}

impl Submitted {
    fn settle(&mut self, answer: cairn_registry::Answer<RecordStatus>) {
        match answer.wait() {
            Ok(RecordStatus::Processing { index } | RecordStatus::Published { index }) => {
                self.max_index = self.max_index.max(index);
            }
            other => {
                self.errors += 1;
                self.first_error.get_or_insert(format!("{other:?}"));
            }
        }
    }

    fn merge(&mut self, other: Submitted) {
        self.max_index = self.max_index.max(other.max_index);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Submits one round of a wave from `threads` threads, each keeping its
/// share of `in_flight` answers outstanding; returns once all answered.
fn ingest_round(
    registry: &Registry,
    names: &[(PackageName, LogId)],
    mut round: Vec<Envelope<PackageRecord>>,
    threads: usize,
    in_flight: usize,
) -> Submitted {
    let per_thread = round.len().div_ceil(threads).max(1);
    let window = (in_flight / threads).max(1);
    let mut parts = Vec::new();
    while !round.is_empty() {
        let start = round.len().saturating_sub(per_thread);
        let start = start - start % per_thread;
        parts.push((start, round.split_off(start)));
    }
    let mut all = Submitted::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|(start, part)| {
                let names = &names[start..start + part.len()];
                scope.spawn(move || {
                    let mut seen = Submitted::default();
                    let mut pending = VecDeque::with_capacity(window);
                    for ((name, log_id), envelope) in names.iter().zip(part) {
                        if pending.len() >= window {
                            if let Some(answer) = pending.pop_front() {
                                seen.settle(answer);
                            }
                        }
                        pending.push_back(registry.submit(name.clone(), *log_id, envelope));
                    }
                    while let Some(answer) = pending.pop_front() {
                        seen.settle(answer);
                    }
                    seen
                })
            })
            .collect();
        for handle in handles {
            all.merge(handle.join().expect("submitter thread"));
        }
    });
    all
}

// ---- the stores ----

/// One backend's stores, and what keeps them alive.
struct Stores {
    meta: Arc<dyn MetaStore>,
    content: Arc<dyn ContentStore>,
    /// The PostgreSQL store (to take the lead) and its URL.
    pg: Option<(Arc<PgStore>, String)>,
    /// The SQLite database file, for its size.
    database: Option<PathBuf>,
    /// File systems whose free space the run watches.
    watch: Vec<PathBuf>,
    /// A throwaway PostgreSQL server, stopped on drop.
    _server: Option<PgServer>,
    /// The data directory (removed on drop unless kept).
    _dir: Option<tempfile::TempDir>,
    where_: String,
}

fn open_stores(backend: Backend, args: &Args, work: &Path) -> Option<Stores> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("scale-{}-", backend.name()))
        .tempdir_in(work)
        .expect("work directory");
    let data = DataDir::create(dir.path()).expect("data directory");
    let dir_path = dir.path().to_owned();
    let dir = if args.keep {
        let _ = dir.keep();
        None
    } else {
        Some(dir)
    };
    match backend {
        Backend::Sqlite => {
            let stores = data.open_stores().expect("open the SQLite stores");
            Some(Stores {
                meta: stores.meta,
                content: stores.content,
                pg: None,
                database: Some(data.database()),
                watch: vec![dir_path.clone()],
                _server: None,
                _dir: dir,
                where_: format!("SQLite in {}", dir_path.display()),
            })
        }
        Backend::Postgres => {
            let (server, url, where_) = match &args.database_url {
                Some(url) => (None, url.clone(), "PostgreSQL at --database-url".to_owned()),
                None => {
                    let server = PgServer::start(work)?;
                    let url = server.url.clone();
                    let where_ = format!("a PostgreSQL server of its own ({})", server.settings);
                    (Some(server), url, where_)
                }
            };
            let pg = Arc::new(PgStore::connect(&url, PgOptions::default()).expect("connect"));
            let (content, _) = data.open_files().expect("content store");
            let watch = vec![dir_path.clone()];
            Some(Stores {
                meta: pg.clone(),
                content: Arc::new(content),
                pg: Some((pg, url)),
                database: None,
                watch,
                _server: server,
                _dir: dir,
                where_: format!("{where_}; content in {}", dir_path.display()),
            })
        }
    }
}

/// Runs `sql` on `url` (simple query protocol, on a runtime of its own);
/// the first column of its first row, as text.
fn pg_query(url: &str, sql: &str) -> Result<Option<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let messages = client.simple_query(sql).await.map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        Ok(messages?.into_iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        }))
    })
}

/// PostgreSQL's server binaries: `$CAIRN_POSTGRES_BIN`, else the first of
/// the usual places that has them.
fn postgres_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    [
        "/usr/lib/postgresql/15/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/17/bin",
        "/usr/local/bin",
        "/usr/bin",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
}

/// A PostgreSQL server of the bench's own, its data under the work
/// directory, stopped and removed on drop. Not the tests' throwaway server
/// (`cairn_interop::postgres`), which runs with `fsync=off`: here commits
/// are flushed, as SQLite's are (`synchronous=FULL`), and the server is
/// given the memory an operator would give it.
struct PgServer {
    child: Child,
    url: String,
    settings: String,
    _dir: tempfile::TempDir,
}

impl PgServer {
    fn start(work: &Path) -> Option<PgServer> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os(tools::REQUIRE_TOOLS).is_none(),
                "bench scale: PostgreSQL (initdb, postgres) is required but not installed; \
                 install postgresql-15, set CAIRN_POSTGRES_BIN or pass --database-url"
            );
            eprintln!(
                "SKIPPED bench scale on PostgreSQL: it is not installed (set CAIRN_POSTGRES_BIN \
                 to its bin directory, or pass --database-url)"
            );
            return None;
        };
        // PostgreSQL refuses to run as root: then it runs as `postgres`.
        // SAFETY: geteuid reads the process's own credentials.
        let root = unsafe { libc::geteuid() } == 0;
        let command = |program: &str| {
            if root {
                let mut command = Command::new("runuser");
                command
                    .args(["-u", "postgres", "--"])
                    .arg(bin.join(program));
                command
            } else {
                Command::new(bin.join(program))
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("scale-pg-")
            .tempdir_in(work)
            .expect("PostgreSQL directory");
        let data = dir.path().join("data");
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "cannot give {} to postgres",
                dir.path().display()
            );
        }
        let initdb = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // A quarter of the memory for shared buffers, at most 8 GiB.
        let shared_mib = ((mem_total_gib() * 1024.0 / 4.0) as u64).clamp(128, 8192);
        let settings = [
            "fsync=on".to_owned(),
            "synchronous_commit=on".to_owned(),
            format!("shared_buffers={shared_mib}MB"),
            "max_wal_size=8GB".to_owned(),
            "max_connections=200".to_owned(),
        ];
        let mut server = command("postgres");
        server
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path());
        for setting in &settings {
            server.args(["-c", setting]);
        }
        let log = File::create(dir.path().join("server.log")).expect("server log");
        let child = server
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut server = PgServer {
            child,
            url: format!("postgres://postgres@127.0.0.1:{port}/cairn"),
            settings: settings.join(", "),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let created = Command::new(bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .arg("cairn")
                .stderr(Stdio::piped())
                .output()
                .expect("createdb");
            if created.status.success() {
                break;
            }
            assert!(
                server.child.try_wait().ok().flatten().is_none(),
                "postgres exited at start"
            );
            assert!(
                Instant::now() < deadline,
                "createdb failed: {}",
                String::from_utf8_lossy(&created.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGTERM (a smart shutdown; `runuser` passes it on), then a kill.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

impl Stores {
    /// Bytes of metadata on disk (content excluded), and of that the
    /// SQLite write-ahead log's.
    fn disk_bytes(&self) -> (u64, u64) {
        if let Some(db) = &self.database {
            let size = |suffix: &str| {
                let mut path = db.clone().into_os_string();
                path.push(suffix);
                std::fs::metadata(path).map_or(0, |m| m.len())
            };
            return (size("") + size("-wal") + size("-shm"), size("-wal"));
        }
        if let Some((_, url)) = &self.pg {
            let size = pg_query(url, "SELECT pg_database_size(current_database())")
                .expect("pg_database_size");
            return (size.and_then(|s| s.parse().ok()).unwrap_or(0), 0);
        }
        (0, 0)
    }

    /// The least free share of the watched file systems, and its text.
    fn free_space(&self) -> Option<(f64, String)> {
        self.watch
            .iter()
            .filter_map(|p| {
                let (free, total) = disk_space(p)?;
                let share = free as f64 / total.max(1) as f64;
                Some((
                    share,
                    format!(
                        "{} has {:.1} GiB free of {:.1} GiB ({:.1}%)",
                        p.display(),
                        gib(free),
                        gib(total),
                        share * 100.0
                    ),
                ))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn open_registry(&self, key: &PrivateKey) -> Arc<Registry> {
        if let Some((pg, _)) = &self.pg {
            assert!(
                pg.try_lead("http://127.0.0.1:1/scale-bench")
                    .expect("take the lead"),
                "another process leads this database"
            );
        }
        Registry::open(
            self.meta.clone(),
            self.content.clone(),
            key.clone(),
            &[NAMESPACE.to_owned()],
            Config::default(),
        )
        .expect("open the registry")
    }
}

// ---- measurements ----

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * per_mille / 1000).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A small deterministic generator (splitmix64).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % below.max(1)
    }
}

/// Publish → checkpoint, one at a time: `count` new packages (init +
/// release each), signed before the clock starts.
fn probe_publishes(
    registry: &Registry,
    key: &PrivateKey,
    digest: Hash,
    milestone: usize,
    count: usize,
) -> Vec<Duration> {
    let probes: Vec<(PackageName, Envelope<PackageRecord>)> = (0..count)
        .into_par_iter()
        .map(|i| {
            let name = PackageName::new(format!("{NAMESPACE}:probe-m{milestone}-n{i}"))
                .expect("valid package name");
            (name, package_record(key, digest, i as u64, 0, None))
        })
        .collect();
    let mut latencies: Vec<Duration> = probes
        .into_iter()
        .map(|(name, envelope)| {
            let log_id = LogId::package(&name);
            let started = Instant::now();
            let index = match registry.submit(name, log_id, envelope).wait() {
                Ok(RecordStatus::Processing { index } | RecordStatus::Published { index }) => index,
                other => panic!("a probe publish was not sequenced: {other:?}"),
            };
            let covered = wait_until(
                registry.checkpointed(index),
                Instant::now() + Duration::from_secs(60),
            );
            assert_eq!(covered, Some(true), "no checkpoint covered a probe in 60 s");
            started.elapsed()
        })
        .collect();
    latencies.sort_unstable();
    latencies
}

/// `fetch_logs` of random packages' whole logs at the latest checkpoint.
fn fetch_latencies(registry: &Registry, packages: u64, count: usize) -> Vec<Duration> {
    let length = registry.log_length();
    let mut random = SplitMix(0x5ca1_ab1e ^ packages);
    let picks: Vec<LogId> = (0..count)
        .map(|_| LogId::package(&package_name(random.next(packages))))
        .collect();
    let mut latencies: Vec<Duration> = picks
        .into_iter()
        .map(|log_id| {
            let request = FetchRequest {
                log_length: length,
                limit: None,
                operator: None,
                packages: vec![(log_id, None)],
            };
            let started = Instant::now();
            let response = registry.fetch_logs(&request).expect("fetch_logs");
            let took = started.elapsed();
            let records = response.packages.first().map_or(0, |(_, r)| r.len());
            assert_eq!(
                records as u64, RECORDS_PER_PACKAGE,
                "fetch_logs of {log_id} returned {records} records"
            );
            took
        })
        .collect();
    latencies.sort_unstable();
    latencies
}

/// `prove_inclusion` of random leaves at the latest checkpoint.
fn proof_latencies(registry: &Registry, count: usize) -> Vec<Duration> {
    let length = registry.log_length();
    let mut random = SplitMix(0x0dd_ba11 ^ length);
    let mut latencies: Vec<Duration> = (0..count)
        .map(|_| {
            let index = random.next(length);
            let started = Instant::now();
            let (log, map) = registry
                .prove_inclusion(length, &[index])
                .expect("prove_inclusion");
            let took = started.elapsed();
            assert!(!log.is_empty() && !map.is_empty(), "empty proof bundles");
            took
        })
        .collect();
    latencies.sort_unstable();
    latencies
}

/// The figures at one milestone.
#[derive(Clone, Debug)]
struct Milestone {
    backend: &'static str,
    records: u64,
    log_length: u64,
    /// Records of the probe packages in the log so far.
    probe_records: u64,
    segment_records: u64,
    segment_ingest: Duration,
    segment_signing: Duration,
    publish_p50: Duration,
    publish_p99: Duration,
    fetch_p50: Duration,
    fetch_p99: Duration,
    proof_p50: Duration,
    proof_p99: Duration,
    startup: Duration,
    disk_bytes: u64,
    wal_bytes: u64,
    rss_kib: u64,
    /// Of the RSS, anonymous memory (the heap): the RSS less file pages
    /// (SQLite maps its database: up to 1 GiB per connection, page cache
    /// the kernel can take back).
    anon_kib: u64,
    peak_rss_kib: u64,
    rss_after_restart_kib: u64,
    /// Of it, anonymous memory.
    anon_after_restart_kib: u64,
    stopped: Option<String>,
}

impl Milestone {
    fn rate(&self) -> f64 {
        report::per_second(self.segment_records as usize, self.segment_ingest)
    }

    fn disk_per_record(&self) -> f64 {
        self.disk_bytes as f64 / self.log_length.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "kind": "milestone",
            "backend": self.backend,
            "records": self.records,
            "log_length": self.log_length,
            "probe_records": self.probe_records,
            "segment_records": self.segment_records,
            "segment_ingest_secs": self.segment_ingest.as_secs_f64(),
            "segment_signing_secs": self.segment_signing.as_secs_f64(),
            "ingest_records_per_sec": self.rate(),
            "publish_checkpoint_p50_ms": ms(self.publish_p50),
            "publish_checkpoint_p99_ms": ms(self.publish_p99),
            "fetch_logs_p50_ms": ms(self.fetch_p50),
            "fetch_logs_p99_ms": ms(self.fetch_p99),
            "inclusion_proof_p50_ms": ms(self.proof_p50),
            "inclusion_proof_p99_ms": ms(self.proof_p99),
            "startup_secs": self.startup.as_secs_f64(),
            "disk_bytes": self.disk_bytes,
            "disk_wal_bytes": self.wal_bytes,
            "disk_bytes_per_record": self.disk_per_record(),
            "rss_mib": mib(self.rss_kib),
            "rss_anon_mib": mib(self.anon_kib),
            "peak_rss_mib": mib(self.peak_rss_kib),
            "rss_after_restart_mib": mib(self.rss_after_restart_kib),
            "rss_anon_after_restart_mib": mib(self.anon_after_restart_kib),
            "stopped": self.stopped,
        })
    }

    fn row(&self) -> Vec<String> {
        let latency = |p50: Duration, p99: Duration| format!("{:.2} / {:.2}", ms(p50), ms(p99));
        vec![
            self.backend.to_owned(),
            thousands(self.records as f64),
            format!("{}/s", thousands(self.rate())),
            latency(self.publish_p50, self.publish_p99),
            latency(self.fetch_p50, self.fetch_p99),
            latency(self.proof_p50, self.proof_p99),
            report::duration_text(self.startup),
            format!("{:.0} B", self.disk_per_record()),
            format!("{:.0} MiB", mib(self.rss_kib)),
            format!("{:.0} MiB", mib(self.anon_kib)),
            format!("{:.0} MiB", mib(self.peak_rss_kib)),
        ]
    }
}

const HEADERS: [&str; 11] = [
    "backend",
    "records",
    "ingest (durable)",
    "publish→checkpoint p50/p99 ms",
    "fetch_logs p50/p99 ms",
    "inclusion proof p50/p99 ms",
    "startup",
    "disk/record",
    "RSS",
    "anon",
    "peak RSS",
];

// ---- one backend's run ----

struct Run {
    backend: Backend,
    milestones: Vec<Milestone>,
    stopped: Option<String>,
}

fn run_backend(backend: Backend, args: &Args, work: &Path, output: &mut Output) -> Option<Run> {
    let Some(stores) = open_stores(backend, args, work) else {
        println!(
            "\n{}: not run (PostgreSQL is not installed)",
            backend.name()
        );
        return None;
    };
    println!("\n== {}: {}", backend.name(), stores.where_);
    reset_peak_rss();
    let started = Instant::now();
    let operator = PrivateKey::generate();
    let key = PrivateKey::generate();

    // The one release content every record names.
    let module = wasm_module();
    let digest = Hash::of(&module);
    let mut pending = stores.content.begin().expect("content writer");
    pending.write(&module).expect("write content");
    pending.commit(&digest).expect("commit content");

    let mut registry = stores.open_registry(&operator);
    let base_length = registry.log_length();
    if base_length > 8 {
        panic!(
            "the database is not empty (log length {base_length}): the scale bench needs an \
             empty one"
        );
    }
    let mut packages_done = 0u64;
    // Records the publish → checkpoint probes added to the log.
    let mut probes_done = 0u64;
    let mut milestones: Vec<Milestone> = Vec::new();
    let mut stopped = None;
    let mut segment = (0u64, Duration::ZERO, Duration::ZERO);
    let mut targets = args.milestones.iter().copied().peekable();
    while let Some(&target) = targets.peek() {
        let target_packages = target / RECORDS_PER_PACKAGE;
        // Why to stop before the next wave, if at all.
        if let Some((share, text)) = stores.free_space() {
            if share < args.min_free {
                stopped = Some(format!(
                    "less than {}% of the disk is free: {text}",
                    args.min_free * 100.0
                ));
            }
        }
        if let Some(budget) = args.budget {
            if started.elapsed() >= budget {
                stopped = Some(format!("the time budget of {} s ran out", budget.as_secs()));
            }
        }
        if stopped.is_none() && packages_done < target_packages {
            let end = (packages_done + args.wave).min(target_packages);
            let names = wave_names(packages_done..end);
            let mut prev = vec![None; names.len()];
            for r in 0..RECORDS_PER_PACKAGE {
                let signing = Instant::now();
                let round = sign_round(&key, digest, packages_done, r, &mut prev);
                segment.2 += signing.elapsed();
                let ingest = Instant::now();
                let seen = ingest_round(&registry, &names, round, args.threads, args.in_flight);
                segment.1 += ingest.elapsed();
                assert!(
                    seen.errors == 0,
                    "{}: {} records were not sequenced; the first: {}",
                    backend.name(),
                    seen.errors,
                    seen.first_error.unwrap_or_default()
                );
            }
            segment.0 += (end - packages_done) * RECORDS_PER_PACKAGE;
            packages_done = end;
            if packages_done < target_packages {
                continue;
            }
        }
        let records = packages_done * RECORDS_PER_PACKAGE;
        if records == 0 || milestones.last().is_some_and(|m| m.records == records) {
            break;
        }
        // A milestone (or where the run stopped).
        targets.next();
        let (m, reopened) = measure(
            backend,
            &stores,
            registry,
            &operator,
            &key,
            digest,
            records,
            &mut probes_done,
            args,
            milestones.len(),
            std::mem::take(&mut segment),
            packages_done,
            stopped.clone(),
        );
        registry = reopened;
        println!("{}", milestone_line(&m));
        output.milestone(&m);
        milestones.push(m);
        if stopped.is_some() {
            break;
        }
    }
    registry.shutdown();
    drop(registry);
    if let Some(why) = &stopped {
        println!("{}: stopped early: {why}", backend.name());
    }
    Some(Run {
        backend,
        milestones,
        stopped,
    })
}

/// The figures at a milestone; the registry is stopped and opened again
/// (timed), and the reopened one returned.
#[allow(clippy::too_many_arguments)]
fn measure(
    backend: Backend,
    stores: &Stores,
    registry: Arc<Registry>,
    operator: &PrivateKey,
    key: &PrivateKey,
    digest: Hash,
    records: u64,
    probes_done: &mut u64,
    args: &Args,
    index: usize,
    segment: (u64, Duration, Duration),
    packages: u64,
    stopped: Option<String>,
) -> (Milestone, Arc<Registry>) {
    let publish = probe_publishes(&registry, key, digest, index, args.probes);
    *probes_done += args.probes as u64;
    let probe_records = *probes_done;
    let fetches = fetch_latencies(&registry, packages, args.samples);
    let proofs = proof_latencies(&registry, args.samples);
    let log_length = registry.log_length();
    trim_heap();
    let rss_kib = status_kib(None, "VmRSS:");
    let anon_kib = status_kib(None, "RssAnon:");
    let peak_rss_kib = status_kib(None, "VmHWM:");
    let (disk_bytes, wal_bytes) = stores.disk_bytes();

    registry.shutdown();
    drop(registry);
    let started = Instant::now();
    let registry = stores.open_registry(operator);
    let startup = started.elapsed();
    assert_eq!(
        registry.log_length(),
        log_length,
        "the reopened registry's checkpoint is not the one it stopped at"
    );
    trim_heap();
    let rss_after_restart_kib = status_kib(None, "VmRSS:");
    let anon_after_restart_kib = status_kib(None, "RssAnon:");
    let m = Milestone {
        backend: backend.name(),
        records,
        log_length,
        probe_records,
        segment_records: segment.0,
        segment_ingest: segment.1,
        segment_signing: segment.2,
        publish_p50: percentile(&publish, 500),
        publish_p99: percentile(&publish, 990),
        fetch_p50: percentile(&fetches, 500),
        fetch_p99: percentile(&fetches, 990),
        proof_p50: percentile(&proofs, 500),
        proof_p99: percentile(&proofs, 990),
        startup,
        disk_bytes,
        wal_bytes,
        rss_kib,
        anon_kib,
        peak_rss_kib,
        rss_after_restart_kib,
        anon_after_restart_kib,
        stopped,
    };
    (m, registry)
}

fn milestone_line(m: &Milestone) -> String {
    format!(
        "  {} records: ingest {}/s ({} records in {:.1} s, signing {:.1} s apart); \
         publish→checkpoint p50 {:.2} ms p99 {:.2} ms; fetch_logs p99 {:.2} ms; inclusion \
         proof p99 {:.2} ms; startup {}; disk {:.0} B/record ({:.2} GiB, WAL {:.0} MiB); RSS \
         {:.0} MiB (anonymous {:.0} MiB), peak {:.0} MiB, after restart {:.0} MiB (anonymous \
         {:.0} MiB)",
        thousands(m.records as f64),
        thousands(m.rate()),
        thousands(m.segment_records as f64),
        m.segment_ingest.as_secs_f64(),
        m.segment_signing.as_secs_f64(),
        ms(m.publish_p50),
        ms(m.publish_p99),
        ms(m.fetch_p99),
        ms(m.proof_p99),
        report::duration_text(m.startup),
        m.disk_per_record(),
        gib(m.disk_bytes),
        m.wal_bytes as f64 / (1u64 << 20) as f64,
        mib(m.rss_kib),
        mib(m.anon_kib),
        mib(m.peak_rss_kib),
        mib(m.rss_after_restart_kib),
        mib(m.anon_after_restart_kib),
    )
}

// ---- extrapolation ----

/// Least squares `y = a + b x`; one point: through the origin.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    match points {
        [] => (0.0, 0.0),
        [(x, y)] => (0.0, y / x.max(1.0)),
        _ => {
            let n = points.len() as f64;
            let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
            let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
            let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
            let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
            let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            (mean_y - b * mean_x, b)
        }
    }
}

fn extrapolate(run: &[Milestone], output: &mut Output) {
    let Some(last) = run.last() else { return };
    if last.records >= TARGET_RECORDS {
        return;
    }
    let at = TARGET_RECORDS as f64;
    // The last three milestones: the growth at the largest sizes, once the
    // bounded caches (package states, SQLite's pages) have filled.
    let run = &run[run.len().saturating_sub(3)..];
    let points = |f: &dyn Fn(&Milestone) -> f64| -> Vec<(f64, f64)> {
        run.iter().map(|m| (m.records as f64, f(m))).collect()
    };
    // A quantity that grows with the log is never extrapolated below what
    // was measured (noise at small sizes can tilt the line down).
    let predict = |points: Vec<(f64, f64)>| {
        let (a, b) = fit(&points);
        let measured = points.last().map_or(0.0, |p| p.1);
        ((a + b * at).max(measured), b)
    };
    let (rss, rss_slope) = predict(points(&|m| m.rss_kib as f64 * 1024.0));
    let (anon, anon_slope) = predict(points(&|m| m.anon_kib as f64 * 1024.0));
    let (fresh, fresh_slope) = predict(points(&|m| m.anon_after_restart_kib as f64 * 1024.0));
    let (peak, _) = predict(points(&|m| m.peak_rss_kib as f64 * 1024.0));
    let (disk, disk_slope) = predict(points(&|m| m.disk_bytes as f64));
    let (startup, startup_slope) = predict(points(&|m| m.startup.as_secs_f64()));
    let how = if run.len() > 1 {
        format!(
            "least-squares line through the last {} milestones ({} .. {} records)",
            run.len(),
            thousands(run[0].records as f64),
            thousands(last.records as f64)
        )
    } else {
        "proportional to the one milestone".to_owned()
    };
    println!(
        "  EXTRAPOLATED to {} records ({}, {how}): RSS {:.1} GiB ({:.1} B/record), of it \
         anonymous {:.1} GiB ({:.1} B/record), anonymous just after a restart {:.1} GiB \
         ({:.1} B/record), peak RSS {:.1} GiB, disk {:.1} GiB ({:.0} B/record at the margin), startup {:.1} s ({:.2} µs per \
         record)",
        thousands(at),
        last.backend,
        rss / (1u64 << 30) as f64,
        rss_slope,
        anon / (1u64 << 30) as f64,
        anon_slope,
        fresh / (1u64 << 30) as f64,
        fresh_slope,
        peak / (1u64 << 30) as f64,
        disk / (1u64 << 30) as f64,
        disk_slope,
        startup,
        startup_slope * 1e6,
    );
    output.line(json!({
        "kind": "extrapolated",
        "backend": last.backend,
        "records": TARGET_RECORDS,
        "from_milestones": run.iter().map(|m| m.records).collect::<Vec<_>>(),
        "method": how,
        "rss_mib": rss / (1u64 << 20) as f64,
        "rss_bytes_per_record": rss_slope,
        "rss_anon_mib": anon / (1u64 << 20) as f64,
        "rss_anon_bytes_per_record": anon_slope,
        "rss_anon_after_restart_mib": fresh / (1u64 << 20) as f64,
        "rss_anon_after_restart_bytes_per_record": fresh_slope,
        "peak_rss_mib": peak / (1u64 << 20) as f64,
        "disk_bytes": disk,
        "disk_bytes_per_record_marginal": disk_slope,
        "startup_secs": startup,
        "startup_micros_per_record": startup_slope * 1e6,
    }));
}

// ---- warg-server baseline ----

impl WargFigures {
    /// RSS grown per record accepted, in bytes.
    fn rss_per_record(&self) -> f64 {
        (self.rss_end_kib.saturating_sub(self.rss_start_kib) * 1024) as f64
            / self.records.max(1) as f64
    }
}

struct WargFigures {
    records: usize,
    published: u64,
    wall: Duration,
    rss_start_kib: u64,
    rss_end_kib: u64,
    peak_kib: u64,
    stopped: String,
}

fn warg_baseline(args: &Args, work: &Path, output: &mut Output) -> Option<WargFigures> {
    let binary = tools::require("bench scale: the warg-server baseline", Tool::WARG_SERVER)?;
    let dir = tempfile::Builder::new()
        .prefix("scale-warg-")
        .tempdir_in(work)
        .expect("scratch");
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).expect("content directory");
    let log_path = dir.path().join("warg-server.log");
    let log = File::create(&log_path).expect("log file");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(&binary)
        .args(["--listen", &listen, "--content-dir"])
        .arg(&content)
        .args(["--namespace", NAMESPACE, "--data-store", "memory"])
        .env("WARG_OPERATOR_KEY", PrivateKey::generate().encode())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let mut server = KillOnDrop(child);
    let url = format!("http://{listen}");
    let pid = server.0.id();
    println!(
        "\n== warg-server 0.10 ({}), memory store: init records of fresh packages over HTTP, \
         {} in flight, up to {} records or {} s",
        binary.display(),
        args.warg_in_flight,
        thousands(args.warg_records as f64),
        args.warg_secs
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores().min(4))
        .enable_all()
        .build()
        .expect("runtime");
    let figures = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(args.warg_in_flight)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let ready = Instant::now();
        let base = loop {
            if let Some(length) = warg_length(&client, &url).await {
                break length;
            }
            if let Ok(Some(status)) = server.0.try_wait() {
                panic!(
                    "warg-server exited ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                ready.elapsed() < Duration::from_secs(30),
                "warg-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let rss_start_kib = status_kib(Some(pid), "VmRSS:");
        let key = PrivateKey::generate();
        let next = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let limit = Duration::from_secs(args.warg_secs);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..args.warg_in_flight {
            let (client, url, key, next, errors, first_error) = (
                client.clone(),
                url.clone(),
                key.clone(),
                next.clone(),
                errors.clone(),
                first_error.clone(),
            );
            let records = args.warg_records;
            tasks.spawn(async move {
                let mut sent = 0usize;
                loop {
                    if started.elapsed() >= limit {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= records {
                        break;
                    }
                    let name = package_name(i as u64);
                    let envelope = Envelope::sign(
                        &key,
                        PackageRecord {
                            prev: None,
                            version: 0,
                            timestamp: Timestamp::new(T0, (i % 1_000_000_000) as i32),
                            entries: vec![PackageEntry::Init {
                                hash_algorithm: HashAlgorithm::Sha256,
                                key: key.public_key().clone(),
                            }],
                        },
                    );
                    let body = json!({
                        "packageName": name.as_str(),
                        "record": {
                            "contentBytes": STANDARD.encode(envelope.content_bytes()),
                            "keyId": envelope.key_id().to_string(),
                            "signature": envelope.signature().to_string(),
                        },
                    })
                    .to_string();
                    let answer = client
                        .post(format!("{url}/v1/package/{}/record", LogId::package(&name)))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let failure = match answer {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            None
                        }
                        Ok(r) => Some(format!(
                            "{}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => Some(e.to_string()),
                    };
                    match failure {
                        None => sent += 1,
                        Some(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
                sent
            });
        }
        let mut accepted = 0usize;
        while let Some(sent) = tasks.join_next().await {
            accepted += sent.expect("publisher");
        }
        let errors = errors.load(Ordering::Relaxed);
        assert!(
            errors == 0,
            "warg-server refused {errors} records; the first: {}",
            first_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default()
        );
        let stopped = if accepted >= args.warg_records {
            format!("reached {} records", thousands(accepted as f64))
        } else {
            format!(
                "the time limit of {} s ran out at {} records",
                args.warg_secs,
                thousands(accepted as f64)
            )
        };
        // Its checkpoints come every 5 s: wait for one that covers them.
        let want = base + accepted as u64;
        let mut published = base;
        let deadline = Instant::now() + Duration::from_secs(120);
        while published < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            published = warg_length(&client, &url).await.unwrap_or(published);
        }
        let wall = started.elapsed();
        WargFigures {
            records: accepted,
            published: published - base,
            wall,
            rss_start_kib,
            rss_end_kib: status_kib(Some(pid), "VmRSS:"),
            peak_kib: status_kib(Some(pid), "VmHWM:"),
            stopped,
        }
    });
    drop(runtime);
    let per_record = figures.rss_per_record();
    println!(
        "  {} records accepted ({}), {} published within {:.1} s ({}/s to published); RSS {:.0} \
         MiB at start, {:.0} MiB after ({:.0} B per record), peak {:.0} MiB",
        thousands(figures.records as f64),
        figures.stopped,
        thousands(figures.published as f64),
        figures.wall.as_secs_f64(),
        thousands(report::per_second(figures.published as usize, figures.wall)),
        mib(figures.rss_start_kib),
        mib(figures.rss_end_kib),
        per_record,
        mib(figures.peak_kib),
    );
    output.line(json!({
        "kind": "warg-server",
        "records": figures.records,
        "published": figures.published,
        "wall_secs": figures.wall.as_secs_f64(),
        "records_per_sec_to_published": report::per_second(figures.published as usize, figures.wall),
        "rss_start_mib": mib(figures.rss_start_kib),
        "rss_end_mib": mib(figures.rss_end_kib),
        "peak_rss_mib": mib(figures.peak_kib),
        "rss_bytes_per_record": per_record,
        "stopped": figures.stopped,
    }));
    drop(server);
    Some(figures)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn warg_length(client: &reqwest::Client, url: &str) -> Option<u64> {
    let response = client
        .get(format!("{url}/v1/fetch/checkpoint"))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["contents"]["logLength"].as_u64()
}

// ---- output: JSON lines and the plot ----

struct Output {
    dir: PathBuf,
    jsonl: File,
    milestones: Vec<Milestone>,
    warg: Option<(u64, f64)>,
}

impl Output {
    fn create(dir: &Path) -> Output {
        std::fs::create_dir_all(dir).expect("output directory");
        let jsonl = File::create(dir.join("scale.jsonl")).expect("scale.jsonl");
        Output {
            dir: dir.to_owned(),
            jsonl,
            milestones: Vec::new(),
            warg: None,
        }
    }

    fn line(&mut self, value: Value) {
        writeln!(self.jsonl, "{value}").expect("write scale.jsonl");
        self.jsonl.flush().expect("write scale.jsonl");
    }

    fn milestone(&mut self, m: &Milestone) {
        self.line(m.json());
        self.milestones.push(m.clone());
        if let Err(e) = self.plot() {
            eprintln!("warning: cannot draw scale.svg: {e}");
        }
    }

    fn plot(&self) -> Result<(), Box<dyn std::error::Error>> {
        draw_plot(&self.dir.join("scale.svg"), &self.milestones, self.warg)
    }
}

/// `1.5M`, `20k`.
fn short_count(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", trim_float(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", trim_float(x / 1e3))
    } else {
        trim_float(x)
    }
}

/// An axis label: `1.5M`, `20k`, `250`, `2.5`, `0.25`.
fn axis_number(y: f64) -> String {
    if y.abs() >= 1e3 {
        short_count(y)
    } else if y.abs() >= 10.0 || y == 0.0 {
        format!("{y:.0}")
    } else {
        let text = format!("{y:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn trim_float(x: f64) -> String {
    let text = format!("{x:.1}");
    text.trim_end_matches(".0").to_owned()
}

type Series = (String, Vec<(f64, f64)>);

fn draw_plot(
    path: &Path,
    milestones: &[Milestone],
    warg: Option<(u64, f64)>,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let backends: Vec<&str> = {
        let mut seen: Vec<&str> = Vec::new();
        for m in milestones {
            if !seen.contains(&m.backend) {
                seen.push(m.backend);
            }
        }
        seen
    };
    let series = |label: &str, f: &dyn Fn(&Milestone) -> f64| -> Vec<Series> {
        backends
            .iter()
            .map(|b| {
                let points = milestones
                    .iter()
                    .filter(|m| m.backend == *b)
                    .map(|m| (m.records as f64, f(m)))
                    .collect();
                (format!("{b} {label}"), points)
            })
            .collect()
    };
    let mut rss = series("RSS", &|m| mib(m.rss_kib));
    rss.extend(series("RSS anonymous", &|m| mib(m.anon_kib)));
    rss.extend(series("anonymous after restart", &|m| {
        mib(m.anon_after_restart_kib)
    }));
    rss.extend(series("peak RSS", &|m| mib(m.peak_rss_kib)));
    if let Some((records, rss_mib)) = warg {
        rss.push((
            "warg-server 0.10 RSS".to_owned(),
            vec![(records as f64, rss_mib)],
        ));
    }
    let mut p99 = series("publish→checkpoint", &|m| ms(m.publish_p99));
    p99.extend(series("fetch_logs", &|m| ms(m.fetch_p99)));
    p99.extend(series("inclusion proof", &|m| ms(m.proof_p99)));
    // Title, unit, whether the y axis is logarithmic (latencies span
    // orders of magnitude), the lines.
    let panels: Vec<(&str, &str, bool, Vec<Series>)> = vec![
        (
            "ingest rate (durable records/s)",
            "records/s",
            false,
            series("", &|m| m.rate()),
        ),
        ("memory (MiB)", "MiB", false, rss),
        ("p99 latency (ms)", "ms (log scale)", true, p99),
        ("startup (ms)", "ms", false, series("", &|m| ms(m.startup))),
    ];

    let (x_min, x_max) = milestones
        .iter()
        .map(|m| m.records as f64)
        .chain(warg.map(|w| w.0 as f64))
        .fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x_min, x_max) = if x_min > x_max {
        (1.0, 10.0)
    } else {
        (x_min / 1.5, x_max * 1.5)
    };

    let root = SVGBackend::new(path, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Cairn engine at scale: figures against records ingested",
        ("sans-serif", 22),
    )?;
    // One panel; `$y` is the y range (linear, or log for latencies).
    macro_rules! panel {
        ($area:expr, $title:expr, $unit:expr, $lines:expr, $y:expr) => {{
            let mut chart = ChartBuilder::on($area)
                .caption($title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((x_min..x_max).log_scale(), $y)?;
            chart
                .configure_mesh()
                .x_desc("records (log scale)")
                .y_desc($unit)
                .x_label_formatter(&|x| short_count(*x))
                .y_label_formatter(&|y| axis_number(*y))
                .draw()?;
            for (i, (label, points)) in $lines.into_iter().enumerate() {
                if points.is_empty() {
                    continue;
                }
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(4))?
                    .label(label.trim().to_owned())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    for (area, (title, unit, log_y, lines)) in root.split_evenly((2, 2)).iter().zip(panels) {
        let values = || {
            lines
                .iter()
                .flat_map(|(_, points)| points.iter().map(|p| p.1))
        };
        let y_max = values().fold(0.0f64, f64::max);
        if log_y {
            let y_min = values().filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
            let (y_min, y_max) = if y_max > 0.0 {
                (y_min / 2.0, y_max * 2.0)
            } else {
                (0.01, 1.0)
            };
            panel!(area, title, unit, lines, (y_min..y_max).log_scale());
        } else {
            let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
            panel!(area, title, unit, lines, 0.0..y_max);
        }
    }
    root.present()?;
    Ok(())
}

// ---- main ----

fn sanity_check(run: &Run, args: &Args) {
    assert!(
        run.stopped.is_none(),
        "the smoke run stopped early: {:?}",
        run.stopped
    );
    let last = run.milestones.last().expect("a milestone was measured");
    assert_eq!(
        last.records,
        *args.milestones.last().expect("milestones"),
        "the smoke run did not reach its last milestone"
    );
    for m in &run.milestones {
        let what = format!("{} at {} records", m.backend, m.records);
        assert!(
            m.rate() > 100.0,
            "{what}: ingest rate {} records/s",
            m.rate()
        );
        assert!(
            m.log_length >= m.records + m.probe_records
                && m.log_length <= m.records + m.probe_records + 16,
            "{what}: log length {}",
            m.log_length
        );
        for (name, p50, p99) in [
            ("publish→checkpoint", m.publish_p50, m.publish_p99),
            ("fetch_logs", m.fetch_p50, m.fetch_p99),
            ("inclusion proof", m.proof_p50, m.proof_p99),
        ] {
            assert!(
                !p50.is_zero() && p50 <= p99 && p99 < Duration::from_secs(10),
                "{what}: {name} p50 {p50:?} p99 {p99:?}"
            );
        }
        assert!(
            m.startup > Duration::ZERO && m.startup < Duration::from_secs(60),
            "{what}: startup {:?}",
            m.startup
        );
        let per_record = m.disk_per_record();
        assert!(
            (50.0..100_000.0).contains(&per_record),
            "{what}: {per_record} bytes per record on disk"
        );
        assert!(
            m.rss_kib > 1024 && m.rss_kib <= m.peak_rss_kib,
            "{what}: RSS {} KiB, peak {} KiB",
            m.rss_kib,
            m.peak_rss_kib
        );
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&raw);
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| args.out.join("work"));
    std::fs::create_dir_all(&work).expect("work directory");
    let mut output = Output::create(&args.out);
    let free = disk_space(&work)
        .map(|(free, total)| format!("{:.1} GiB free of {:.1} GiB", gib(free), gib(total)))
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "Cairn scale bench{}: {} cores, {:.1} GiB memory; work directory {} ({free}); {} \
         submitter threads, {} records in flight, waves of {} packages × {} records; \
         milestones {}{}{}",
        if args.smoke { " (smoke sizes)" } else { "" },
        cores(),
        mem_total_gib(),
        work.display(),
        args.threads,
        thousands(args.in_flight as f64),
        thousands(args.wave as f64),
        RECORDS_PER_PACKAGE,
        args.milestones
            .iter()
            .map(|&m| short_count(m as f64))
            .collect::<Vec<_>>()
            .join(", "),
        args.budget
            .map(|b| format!("; budget {} s per backend", b.as_secs()))
            .unwrap_or_default(),
        if cfg!(debug_assertions) {
            "; WARNING: a debug build"
        } else {
            ""
        },
    );
    output.line(json!({
        "kind": "machine",
        "cores": cores(),
        "memory_gib": mem_total_gib(),
        "threads": args.threads,
        "in_flight": args.in_flight,
        "wave_packages": args.wave,
        "milestones": args.milestones,
        "smoke": args.smoke,
    }));

    let mut runs = Vec::new();
    for &backend in &args.backends {
        if let Some(run) = run_backend(backend, &args, &work, &mut output) {
            runs.push(run);
        }
    }
    let mut warg = None;
    if args.warg_server {
        if let Some(w) = warg_baseline(&args, &work, &mut output) {
            output.warg = Some((w.records as u64, mib(w.rss_end_kib)));
            if let Err(e) = output.plot() {
                eprintln!("warning: cannot draw scale.svg: {e}");
            }
            if args.smoke {
                assert!(
                    w.records > 0 && w.published > 0,
                    "warg-server published nothing"
                );
            }
            warg = Some(w);
        }
    }

    println!(
        "\nCairn engine at scale ({} cores, {:.1} GiB):",
        cores(),
        mem_total_gib()
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .flat_map(|r| r.milestones.iter().map(Milestone::row))
        .collect();
    if !rows.is_empty() {
        report::print_grid(&HEADERS, &rows);
        println!(
            "ingest: durable records/s over the segment since the previous milestone (signing \
             excluded); latencies one at a time at the latest checkpoint; disk: metadata only \
             (content excluded); RSS after malloc_trim, of the registry opened at the previous \
             milestone (anon: RssAnon, the heap; the rest is mapped files); peak = VmHWM since \
             the backend's start"
        );
    }
    if let Some(w) = &warg {
        println!(
            "warg-server 0.10 (memory store): {:.0} bytes of RSS per record at {} records",
            w.rss_per_record(),
            thousands(w.records as f64)
        );
    }
    for run in &runs {
        extrapolate(&run.milestones, &mut output);
        if let Some(why) = &run.stopped {
            println!("  {} stopped early: {why}", run.backend.name());
        }
    }
    println!(
        "output: {} and {}",
        args.out.join("scale.jsonl").display(),
        args.out.join("scale.svg").display()
    );
    if args.smoke {
        assert!(!runs.is_empty(), "no backend ran");
        for run in &runs {
            sanity_check(run, &args);
        }
        let svg = std::fs::read_to_string(args.out.join("scale.svg")).expect("scale.svg");
        assert!(
            svg.contains("<svg") && svg.contains("<text") && svg.contains("ingest rate"),
            "scale.svg lacks its charts"
        );
        println!("smoke run: the figures are sane");
    }
}
