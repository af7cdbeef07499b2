//! Cairn's HTTP server against the reference `warg-server` 0.10 under real
//! publishing load, and `fetch/logs` latency on a loaded registry.
//!
//! 1. **Publish under load.** For each in-flight level (`--in-flight`,
//!    default 64, 500 and 2,000) against Cairn with each count of tokio
//!    worker threads (`--workers`, default 2, 4 and 16), and against
//!    `warg-server` at the same levels, that many publishers run at once.
//!    Each loops over its share of the cell's records: it POSTs the signed
//!    `init` record of a fresh package `bench:p<N>` to
//!    `/v1/package/{logId}/record` and, unless the answer already says
//!    `"state":"published"`, GETs `/v1/package/{logId}/record/{recordId}`
//!    every 20 ms until it does (the answer carries `registryIndex`). Every
//!    request carries `Authorization: Bearer <token>` (Cairn's admin token;
//!    warg-server ignores it) and has a 30 s timeout. A record's latency
//!    runs from its POST being sent until `published` is seen. A record
//!    whose POST or GET times out, or that is not published within 60 s of
//!    its POST, is a *timeout*; one whose request fails otherwise (no
//!    connection, an error status, `rejected`) is an *error*. The publisher
//!    then goes on with its next record: failures are counted, never fatal.
//!    A publisher starts no new record once the cell has run `--cell-limit`
//!    seconds (default 60, so a collapsing server cannot stall the run);
//!    records it never sent are reported as *not sent*.
//!
//!    Every cell gets records of its own (fresh package names, signed in
//!    parallel before its clock starts) and a fresh server: for Cairn a new
//!    data directory (under the target directory or `$CAIRN_BENCH_TMPDIR`,
//!    on disk: SQLite, `synchronous=FULL`; Cairn answers the POST only
//!    after a durable commit) and a new process, for warg-server a new
//!    process with its memory data store. Before the clock starts each
//!    publisher opens its connection (one untimed `GET /v1/fetch/checkpoint`),
//!    so the clock measures publishing, not a connection storm.
//!
//!    Per cell: **records/s** = records published / wall time from the first
//!    POST until the last publisher is done (its last record published, or
//!    given up on); **p50, p99** of publish → published over every record
//!    sent, a record that was never published ranking last (`failed` when
//!    the percentile falls on one); **timeouts + errors** (and records not
//!    sent); **peak server threads** (`Threads:` of `/proc/<pid>/status`)
//!    and **peak server RSS** (`VmHWM:`), sampled every 50 ms; Cairn's
//!    records/s over warg-server's at the same in-flight level; and, for
//!    information, the CPU time the server and the load generator used in
//!    the cell (`/proc/<pid>/stat`: did the generator, on the same cores,
//!    take the server's share?). Then the goals, MET or NOT MET: no
//!    timeouts (or errors) at the highest level; with the most workers at
//!    least the throughput of the fewest, at every level; at least 10,000
//!    durable records/s at the highest level (a goal for a 2-core server: the
//!    bench prints its core count); p99 at most 500 ms at the highest
//!    level; Cairn at least 5x warg-server at every level, for each worker
//!    count.
//!
//! 2. **`POST /v1/fetch/logs` latency** (p50, p99) for random packages of a
//!    registry just loaded, from a few concurrent clients, after an untimed
//!    warm-up: once on Cairn with 2 workers (the default; else the first
//!    count given), on the registry its first in-flight cell just loaded,
//!    and once on the largest registry a warg-server cell loaded, before
//!    those servers stop.
//!
//! `CAIRN_BENCH_SERVER_CORES=N` runs the servers on cores `0..N` and the
//! load generator on the others (as an operator pins a server with
//! `taskset`), so that records/s on N cores are the server's own; by
//! default all share the machine.
//!
//! The server under test runs in a process of its own, so that its threads
//! and memory are its own: for Cairn this binary runs itself again
//! (`--serve-child <data-dir> --workers N`, not for use by hand), starts a
//! [`TestServer`] (namespace `bench`, an admin token) on a runtime with N
//! workers, prints its URL and token on one line and serves until its stdin
//! closes. `warg-server` is found at `$CAIRN_WARG_SERVER` or else at
//! `$HOME/.cache/cairn-ci/warg-server-0.10.0/bin/warg-server`; without it,
//! the bench fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run` runs it) and
//! otherwise says so loudly and reports Cairn only
//! ([`cairn_interop::tools::require`]). The load generator is
//! this process: a tokio runtime with a worker per core and, per cell, one
//! reqwest client whose pool holds a connection per publisher; request
//! bodies and URLs are built before the clock starts. It shares the machine
//! with the server, as a real co-located client would. The bench raises its
//! soft limit on open files to the hard limit first (the servers inherit
//! it): 2,000 publishers need 2,000 connections on each side.
//!
//! warg-server says `published` only once a checkpoint covers a record, and
//! it checkpoints every 5 s (not configurable): each of its publishers does
//! one record per 5 s, its records/s is at most in-flight / 5 s, and its
//! cells are sized to match: `min(--warg-records, in-flight ×
//! --warg-rounds)` records.
//!
//! `cargo bench -p cairn-interop --bench server` (about 5 minutes on 2
//! cores): 20,000 records per Cairn cell; warg-server cells of at most
//! 10,000 records, 10 per publisher (50 s); 20,000 fetches.
//! `CAIRN_BENCH_SMOKE=1` or `--test`: 200 records, in flight 16 and 64,
//! 2 workers, one record per warg-server publisher, 100 fetches. Flags:
//! `--records N`, `--warg-records N`, `--warg-rounds N`,
//! `--in-flight A,B,..`, `--workers A,B,..`, `--cell-limit SECS`,
//! `--fetches N`, `--fetch-concurrency N`, `--only cairn|warg` (one side,
//! for profiling). `--bench` and `--test` (from cargo) are accepted; other
//! arguments are ignored with a warning.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use cairn_interop::keys;
use cairn_interop::report::{self, duration_text, per_second, thousands};
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::tools::{self, Tool};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use rayon::prelude::*;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde_json::{json, Value};

/// Goal: Cairn's records/s at least this many times warg-server's.
const RATIO_GOAL: f64 = 5.0;
/// Goal: durable records/s at the highest in-flight level (on a 2-core server).
const RATE_GOAL: f64 = 10_000.0;
/// Goal: p99 publish → published at the highest in-flight level.
const P99_GOAL: Duration = Duration::from_millis(500);
/// Every request's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A record not published this long after its POST is a timeout.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a publisher asks whether its record is published.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// How often the server's threads and RSS are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How long a server may take to stop once asked, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// The hidden argument that makes this binary a Cairn server.
const SERVE_CHILD: &str = "--serve-child";
/// The token sent to warg-server (which does not check it).
const WARG_TOKEN: &str = "warg-server-does-not-check-this-token";

#[derive(Clone, Debug)]
struct Sizes {
    /// Records per Cairn cell.
    records: usize,
    /// Records per warg-server cell, at most (see `warg_rounds`).
    warg_records: usize,
    /// A warg-server cell has at most this many records per publisher:
    /// warg-server publishes only at its checkpoints, every 5 s, so a
    /// publisher does one record per 5 s there.
    warg_rounds: usize,
    /// Publishers in flight, one cell each.
    in_flight: Vec<usize>,
    /// Cairn's tokio worker threads, one cell each.
    workers: Vec<usize>,
    /// Publishers start no new record after this long.
    cell_limit: Duration,
    fetches: usize,
    fetch_concurrency: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            records: 20_000,
            warg_records: 10_000,
            warg_rounds: 10,
            in_flight: vec![64, 500, 2_000],
            workers: vec![2, 4, 16],
            cell_limit: Duration::from_secs(60),
            fetches: 20_000,
            fetch_concurrency: 4,
        }
    }

    fn smoke() -> Sizes {
        Sizes {
            records: 200,
            warg_records: 200,
            warg_rounds: 1,
            in_flight: vec![16, 64],
            workers: vec![2],
            cell_limit: Duration::from_secs(60),
            fetches: 100,
            fetch_concurrency: 4,
        }
    }
}

// ---- the load: distinct signed records for every cell ----

/// One package's publish request and what a fetch of its log must return.
struct Prepared {
    /// `{url}/v1/package/{logId}/record`.
    post: Url,
    /// `{url}/v1/package/{logId}/record/{recordId}`.
    status: Url,
    /// The JSON body of the publish.
    body: Bytes,
    /// The package's log id, as text.
    log_id: String,
    /// The record's content bytes, base64.
    content: String,
}

/// Signs `count` init records of the packages `bench:p<first>`... (in
/// parallel) and builds their requests to the server at `url`.
fn prepare(url: &str, first: usize, count: usize) -> Vec<Prepared> {
    let keys = keys();
    (first..first + count)
        .into_par_iter()
        .map(|i| {
            let key: &PrivateKey = &keys[i % keys.len()];
            let name = PackageName::new(format!("bench:p{i}")).expect("valid package name");
            let log_id = LogId::package(&name).to_string();
            // Distinct timestamps make distinct records under a shared key.
            let envelope = Envelope::sign(
                key,
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
            let content = STANDARD.encode(envelope.content_bytes());
            let body = json!({
                "packageName": name.as_str(),
                "record": {
                    "contentBytes": content,
                    "keyId": envelope.key_id().to_string(),
                    "signature": envelope.signature().to_string(),
                },
            })
            .to_string();
            let record_id = envelope.record_id();
            let parse = |u: String| Url::parse(&u).expect("request URL");
            Prepared {
                post: parse(format!("{url}/v1/package/{log_id}/record")),
                status: parse(format!("{url}/v1/package/{log_id}/record/{record_id}")),
                body: Bytes::from(body),
                log_id,
                content,
            }
        })
        .collect()
}

/// A small deterministic generator (splitmix64) for the fetch sequence.
fn fetch_plan(packages: usize, count: usize) -> Vec<usize> {
    let mut state: u64 = 0x005e_edca_1e0f_b0a7;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z % packages as u64) as usize
        })
        .collect()
}

// ---- HTTP ----

fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

/// The latest checkpoint's log length, or `None` if the server has none yet
/// (or is not answering).
async fn checkpoint_length(client: &reqwest::Client, url: &str) -> Option<u64> {
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

/// Polls the checkpoint until its log length reaches `length`.
async fn wait_for_length(client: &reqwest::Client, url: &str, length: u64, deadline: Duration) {
    let start = Instant::now();
    loop {
        if checkpoint_length(client, url)
            .await
            .is_some_and(|l| l >= length)
        {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "{url}: no checkpoint reached log length {length} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---- publishing under load ----

/// How one record ended.
enum Outcome {
    /// Seen `published` this long after its POST was sent.
    Published(Duration),
    Timeout,
    Error(String),
    /// Not sent: the cell ran past its limit first.
    NotSent,
}

fn failure(error: reqwest::Error, what: &str) -> Outcome {
    if error.is_timeout() {
        Outcome::Timeout
    } else {
        Outcome::Error(format!("{what}: {error}"))
    }
}

/// The `state` of a record status answer.
enum State {
    Published,
    Pending,
    Rejected(String),
}

fn record_state(body: &[u8]) -> Result<State, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "answer is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    Ok(match answer["state"].as_str() {
        Some("published") if answer["registryIndex"].is_u64() => State::Published,
        Some("published") => return Err(format!("published without registryIndex: {answer}")),
        Some("rejected") => State::Rejected(answer["reason"].to_string()),
        Some(_) => State::Pending,
        None => return Err(format!("answer without a state: {answer}")),
    })
}

/// One request with the bearer token and a timeout; the answer read whole,
/// its status required to be a success.
async fn request(
    builder: reqwest::RequestBuilder,
    bearer: &HeaderValue,
    timeout: Duration,
    what: &str,
) -> Result<Bytes, Outcome> {
    let response = builder
        .header(AUTHORIZATION, bearer.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failure(e, what))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| failure(e, what))?;
    if !status.is_success() {
        return Err(Outcome::Error(format!(
            "{what} answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(body)
}

/// Publishes one record and waits until it is published.
async fn publish_one(client: &reqwest::Client, bearer: &HeaderValue, item: &Prepared) -> Outcome {
    let sent = Instant::now();
    let post = client
        .post(item.post.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(item.body.clone());
    let body = match request(post, bearer, REQUEST_TIMEOUT, "POST record").await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    let mut state = record_state(&body);
    loop {
        match state {
            Ok(State::Published) => return Outcome::Published(sent.elapsed()),
            Ok(State::Rejected(reason)) => return Outcome::Error(format!("rejected: {reason}")),
            Err(e) => return Outcome::Error(e),
            Ok(State::Pending) => {}
        }
        let left = PUBLISH_TIMEOUT.saturating_sub(sent.elapsed());
        if left <= POLL_EVERY {
            return Outcome::Timeout;
        }
        tokio::time::sleep(POLL_EVERY).await;
        let timeout = REQUEST_TIMEOUT.min(left - POLL_EVERY);
        let get = client.get(item.status.clone());
        state = match request(get, bearer, timeout, "GET record").await {
            Ok(body) => record_state(&body),
            Err(outcome) => return outcome,
        };
    }
}

/// A server process's peaks, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Default)]
struct Peaks {
    threads: u64,
    /// `VmHWM`, in KiB.
    rss_kib: u64,
}

impl Peaks {
    fn sample(&mut self, pid: u32) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        for line in status.lines() {
            let value = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let Some(threads) = value("Threads:") {
                self.threads = self.threads.max(threads);
            } else if let Some(rss) = value("VmHWM:") {
                self.rss_kib = self.rss_kib.max(rss);
            }
        }
    }
}

/// CPU time used between [`CpuClock::start`] and [`CpuClock::read`] by the
/// server and by this process (the load generator).
struct CpuClock {
    pid: String,
    server: Option<Duration>,
    generator: Option<Duration>,
}

impl CpuClock {
    fn start(pid: u32) -> CpuClock {
        let pid = pid.to_string();
        CpuClock {
            server: cairn_interop::report::process_cpu(&pid),
            generator: cairn_interop::report::process_cpu("self"),
            pid,
        }
    }

    /// (server, generator) so far.
    fn read(&self) -> (Option<Duration>, Option<Duration>) {
        let since = |start: Option<Duration>, pid: &str| {
            Some(cairn_interop::report::process_cpu(pid)?.saturating_sub(start?))
        };
        (since(self.server, &self.pid), since(self.generator, "self"))
    }
}

/// Samples a process's threads and peak RSS every [`SAMPLE_EVERY`] on a
/// thread of its own (the load generator's runtime is busy).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Peaks>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            while !flag.load(Ordering::Relaxed) {
                peaks.sample(pid);
                std::thread::sleep(SAMPLE_EVERY);
            }
            peaks.sample(pid);
            peaks
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Cairn { workers: usize },
    Warg,
}

impl Side {
    fn label(self) -> String {
        match self {
            Side::Cairn { workers } => format!("Cairn, {workers} workers"),
            Side::Warg => "warg-server 0.10".to_owned(),
        }
    }
}

/// One (server, workers, in-flight) cell's figures.
struct Cell {
    side: Side,
    in_flight: usize,
    records: usize,
    /// Latencies of the records published, sorted.
    published: Vec<Duration>,
    timeouts: usize,
    errors: usize,
    not_sent: usize,
    /// First POST until the last publisher was done.
    wall: Duration,
    peaks: Peaks,
    /// CPU time in the cell: the server's, the load generator's.
    cpu: (Option<Duration>, Option<Duration>),
    first_error: Option<String>,
    /// Indexes of the records published (for the fetches).
    published_items: Vec<usize>,
}

impl Cell {
    fn rate(&self) -> f64 {
        per_second(self.published.len(), self.wall)
    }

    fn sent(&self) -> usize {
        self.published.len() + self.timeouts + self.errors
    }

    /// The `p`th percentile of publish → published over every record sent;
    /// `None` where it falls on a record never published.
    fn percentile(&self, p: f64) -> Option<Duration> {
        let n = self.sent();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.published.get(rank.clamp(1, n) - 1).copied()
    }

    fn failed(&self) -> usize {
        self.timeouts + self.errors + self.not_sent
    }
}

/// Runs one cell: `in_flight` publishers over `load`, each its share.
async fn publish_cell(
    side: Side,
    url: &str,
    token: &str,
    pid: u32,
    load: Arc<Vec<Prepared>>,
    in_flight: usize,
    limit: Duration,
) -> Cell {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(in_flight)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client");
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
    let warm_url = Url::parse(&format!("{url}/v1/fetch/checkpoint")).expect("URL");
    let barrier = Arc::new(tokio::sync::Barrier::new(in_flight));
    let start = Arc::new(OnceLock::<Instant>::new());
    let sampler = Sampler::start(pid);
    let cpu = CpuClock::start(pid);
    let mut publishers = tokio::task::JoinSet::new();
    for j in 0..in_flight {
        let (client, bearer, warm_url, barrier, start, load) = (
            client.clone(),
            bearer.clone(),
            warm_url.clone(),
            barrier.clone(),
            start.clone(),
            load.clone(),
        );
        publishers.spawn(async move {
            // Open this publisher's connection (untimed, not counted).
            let _ = request(client.get(warm_url), &bearer, REQUEST_TIMEOUT, "warm-up").await;
            barrier.wait().await;
            // The first publisher to go sets the clock.
            let start = *start.get_or_init(Instant::now);
            let mut outcomes = Vec::new();
            for i in (j..load.len()).step_by(in_flight) {
                let outcome = if start.elapsed() >= limit {
                    Outcome::NotSent
                } else {
                    publish_one(&client, &bearer, &load[i]).await
                };
                outcomes.push((i, outcome));
            }
            (outcomes, Instant::now())
        });
    }
    let mut cell = Cell {
        side,
        in_flight,
        records: load.len(),
        published: Vec::with_capacity(load.len()),
        timeouts: 0,
        errors: 0,
        not_sent: 0,
        wall: Duration::ZERO,
        peaks: Peaks::default(),
        cpu: (None, None),
        first_error: None,
        published_items: Vec::with_capacity(load.len()),
    };
    let mut end: Option<Instant> = None;
    while let Some(done) = publishers.join_next().await {
        let (outcomes, done_at) = done.expect("publisher");
        end = Some(end.map_or(done_at, |e| e.max(done_at)));
        for (i, outcome) in outcomes {
            match outcome {
                Outcome::Published(latency) => {
                    cell.published.push(latency);
                    cell.published_items.push(i);
                }
                Outcome::Timeout => cell.timeouts += 1,
                Outcome::Error(e) => {
                    cell.errors += 1;
                    cell.first_error.get_or_insert(e);
                }
                Outcome::NotSent => cell.not_sent += 1,
            }
        }
    }
    cell.cpu = cpu.read();
    cell.peaks = sampler.finish();
    if let (Some(start), Some(end)) = (start.get(), end) {
        cell.wall = end.duration_since(*start);
    }
    cell.published.sort_unstable();
    cell.published_items.sort_unstable();
    cell
}

// ---- fetch/logs latency ----

struct Latencies {
    /// Sorted.
    samples: Vec<Duration>,
    wall: Duration,
    /// The packages in the registry fetched from.
    packages: usize,
}

impl Latencies {
    fn percentile(&self, p: f64) -> Duration {
        let n = self.samples.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.samples[rank.clamp(1, n) - 1]
    }

    fn mean(&self) -> Duration {
        let total: Duration = self.samples.iter().sum();
        total / self.samples.len().max(1) as u32
    }
}

/// Sends one `fetch/logs` for package `i` and returns the time to the last
/// byte of the answer; then checks that the answer has that package's record.
async fn fetch_one(client: &reqwest::Client, url: &str, length: u64, item: &Prepared) -> Duration {
    let body = format!(
        "{{\"logLength\":{length},\"packages\":{{\"{}\":null}}}}",
        item.log_id
    );
    let start = Instant::now();
    let response = client
        .post(format!("{url}/v1/fetch/logs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: fetch/logs: {e}"));
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{url}: fetch/logs body: {e}"));
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        status.is_success(),
        "{url}: fetch/logs of {} answered {status}: {text}",
        item.log_id
    );
    let answer: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{url}: fetch/logs answer is not JSON ({e}): {text}"));
    let records = answer["packages"][&item.log_id]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: fetch/logs answer lacks {}: {text}", item.log_id));
    assert!(
        records.len() == 1 && records[0]["contentBytes"].as_str() == Some(&item.content),
        "{url}: fetch/logs of {} does not return its one record: {text}",
        item.log_id
    );
    elapsed
}

/// Sends the fetches of `plan` (indexes into `load`) from `concurrency`
/// clients, each sending its requests one after the other; returns every
/// request's latency.
async fn run_fetches(
    client: &reqwest::Client,
    url: &str,
    load: &Arc<Vec<Prepared>>,
    plan: Arc<Vec<usize>>,
    length: u64,
    concurrency: usize,
) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, load, plan, next, url) = (
            client.clone(),
            load.clone(),
            plan.clone(),
            next.clone(),
            url.to_owned(),
        );
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = plan.get(k) else { break };
                samples.push(fetch_one(&client, &url, length, &load[i]).await);
            }
            samples
        });
    }
    let mut samples = Vec::with_capacity(plan.len());
    while let Some(done) = workers.join_next().await {
        samples.extend(done.expect("fetch worker"));
    }
    samples
}

/// Fetches the logs of `fetches` random packages among the cell's published
/// ones from `concurrency` clients, each sending its requests one after the
/// other, once a checkpoint covers them all.
async fn fetch_latencies(
    url: &str,
    load: Arc<Vec<Prepared>>,
    cell: &Cell,
    base: u64,
    fetches: usize,
    concurrency: usize,
) -> Option<Latencies> {
    let published = &cell.published_items;
    if published.is_empty() {
        eprintln!("  no record was published: no fetches");
        return None;
    }
    let client = client(concurrency);
    wait_for_length(
        &client,
        url,
        base + published.len() as u64,
        Duration::from_secs(120),
    )
    .await;
    let length = checkpoint_length(&client, url)
        .await
        .expect("the server has a checkpoint");
    let plan: Vec<usize> = fetch_plan(published.len(), fetches)
        .into_iter()
        .map(|k| published[k])
        .collect();
    // Warm up every connection and the server's caches (untimed), from as
    // many concurrent clients as the measured run uses.
    let warm: Vec<usize> = plan.iter().rev().take(concurrency * 50).copied().collect();
    run_fetches(&client, url, &load, Arc::new(warm), length, concurrency).await;
    let start = Instant::now();
    let samples = run_fetches(&client, url, &load, Arc::new(plan), length, concurrency).await;
    let wall = start.elapsed();
    let mut samples = samples;
    samples.sort_unstable();
    Some(Latencies {
        samples,
        wall,
        packages: published.len(),
    })
}

// ---- the servers ----

fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    // Under the target directory (or `$CAIRN_BENCH_TMPDIR`): on the build's
    // disk (not a tmpfs), so Cairn's fsyncs cost what they cost.
    let parent = std::env::var_os("CAIRN_BENCH_TMPDIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("scratch directory in {}: {e}", parent.display()))
}

/// Asks a server process to stop (its stdin closes) and waits
/// [`STOP_GRACE`] for it, then kills it. Returns how it went.
fn stop_process(child: &mut Child, stdin: Option<ChildStdin>) -> String {
    drop(stdin);
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                return format!("stopped in {}", duration_text(start.elapsed()))
            }
            Ok(Some(status)) => return format!("exited with {status}"),
            Ok(None) if start.elapsed() < STOP_GRACE => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return format!("did not stop within {}: killed", duration_text(STOP_GRACE));
            }
        }
    }
}

/// A Cairn server in a process of its own: this binary run with
/// [`SERVE_CHILD`]. Killed on drop.
struct CairnProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl CairnProcess {
    fn start(workers: usize) -> CairnProcess {
        let dir = scratch_dir("cairn-server-");
        let exe = std::env::current_exe().expect("this bench's path");
        let mut command = Command::new(exe);
        on_server_cores(&mut command);
        let mut child = command
            .arg(SERVE_CHILD)
            .arg(dir.path())
            .args(["--workers", &workers.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Cairn server process");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the Cairn server's first line");
        let Some((url, token)) = line.trim().split_once(' ') else {
            let _ = child.kill();
            panic!("the Cairn server process did not start (it said {line:?})");
        };
        CairnProcess {
            url: url.to_owned(),
            token: token.to_owned(),
            child,
            stdin,
            _dir: dir,
        }
    }

    fn stop(mut self) -> String {
        stop_process(&mut self.child, self.stdin.take())
    }
}

impl Drop for CairnProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `--serve-child <data-dir> --workers N`: serves until stdin closes.
fn serve_child(args: &[String]) {
    let dir = args.first().expect("--serve-child <data-dir>");
    let workers: usize = match args.get(1..3) {
        Some([flag, n]) if flag == "--workers" => n.parse().expect("--workers N"),
        _ => 2,
    };
    let mut options = TestOptions {
        worker_threads: Some(workers),
        ..TestOptions::for_load()
    };
    // For experiments: `CAIRN_BENCH_CPU_PERMITS=0` lifts the limit on
    // concurrent CPU-heavy request work (the server's default is one per core).
    if let Some(permits) = std::env::var("CAIRN_BENCH_CPU_PERMITS")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        options.server.cpu_permits = permits;
    }
    let server = TestServer::start_options(Path::new(dir), &["bench"], options);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {}", server.url, server.admin_token).expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    server.stop();
}

/// A `warg-server` subprocess, killed on drop.
struct WargServer {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WargServer {
    fn start(binary: &Path) -> WargServer {
        let dir = scratch_dir("warg-server-");
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).expect("content directory");
        let log = dir.path().join("warg-server.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        // A free port on 127.0.0.1 (released just before the server binds).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        on_server_cores(&mut command);
        let child = command
            .args(["--listen", &listen, "--content-dir"])
            .arg(&content)
            .args(["--namespace", "bench", "--data-store", "memory"])
            .env("WARG_OPERATOR_KEY", PrivateKey::generate().encode())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        WargServer {
            child,
            url: format!("http://{listen}"),
            log,
            _dir: dir,
        }
    }

    async fn wait_ready(&mut self) {
        let client = client(1);
        let start = Instant::now();
        while checkpoint_length(&client, &self.url).await.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "warg-server exited ({status}) before answering; its log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "warg-server did not answer within 30 s; its log is {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WargServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server under test, started for one cell.
enum Server {
    Cairn(CairnProcess),
    Warg(WargServer),
}

impl Server {
    fn url(&self) -> &str {
        match self {
            Server::Cairn(s) => &s.url,
            Server::Warg(s) => &s.url,
        }
    }

    fn token(&self) -> &str {
        match self {
            Server::Cairn(s) => &s.token,
            Server::Warg(_) => WARG_TOKEN,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Server::Cairn(s) => s.child.id(),
            Server::Warg(s) => s.child.id(),
        }
    }

    fn stop(self) -> String {
        match self {
            Server::Cairn(s) => s.stop(),
            // Its data is in memory: nothing to shut down cleanly.
            Server::Warg(s) => {
                drop(s);
                "killed (memory store)".to_owned()
            }
        }
    }
}

/// One cell on a fresh server: prepare, start, publish, then the fetches if
/// asked, then stop.
fn run_cell(
    runtime: &tokio::runtime::Runtime,
    side: Side,
    warg: Option<&Path>,
    in_flight: usize,
    packages: std::ops::Range<usize>,
    sizes: &Sizes,
    with_fetches: bool,
) -> (Cell, Option<Latencies>) {
    let records = packages.len();
    let server = match side {
        Side::Cairn { workers } => Server::Cairn(CairnProcess::start(workers)),
        Side::Warg => {
            let mut server = WargServer::start(warg.expect("warg-server binary"));
            runtime.block_on(server.wait_ready());
            Server::Warg(server)
        }
    };
    let url = server.url().to_owned();
    let signing = Instant::now();
    let load = Arc::new(prepare(&url, packages.start, records));
    eprintln!(
        "{}, {} in flight: {} records signed in {}; publishing...",
        side.label(),
        thousands(in_flight as f64),
        thousands(records as f64),
        duration_text(signing.elapsed())
    );
    let (cell, fetch) = runtime.block_on(async {
        let base = checkpoint_length(&client(1), &url)
            .await
            .expect("the server has a first checkpoint");
        let cell = publish_cell(
            side,
            &url,
            server.token(),
            server.pid(),
            load.clone(),
            in_flight,
            sizes.cell_limit,
        )
        .await;
        eprintln!(
            "  {} rec/s ({} published in {}), p50 {} p99 {}, {} timeouts + {} errors, \
             {} not sent; peak {} threads, {}",
            thousands(cell.rate()),
            thousands(cell.published.len() as f64),
            duration_text(cell.wall),
            percentile_text(cell.percentile(50.0)),
            percentile_text(cell.percentile(99.0)),
            cell.timeouts,
            cell.errors,
            cell.not_sent,
            cell.peaks.threads,
            rss_text(cell.peaks.rss_kib)
        );
        if let Some(e) = &cell.first_error {
            eprintln!("  first error: {e}");
        }
        let fetch = if with_fetches {
            eprintln!(
                "{}: {} fetch/logs from {} clients...",
                side.label(),
                thousands(sizes.fetches as f64),
                sizes.fetch_concurrency
            );
            let fetch = fetch_latencies(
                &url,
                load.clone(),
                &cell,
                base,
                sizes.fetches,
                sizes.fetch_concurrency,
            )
            .await;
            if let Some(f) = &fetch {
                eprintln!(
                    "  p50 {} p99 {} max {}",
                    latency_text(f.percentile(50.0)),
                    latency_text(f.percentile(99.0)),
                    latency_text(f.percentile(100.0))
                );
            }
            fetch
        } else {
            None
        };
        (cell, fetch)
    });
    eprintln!("  server {}", server.stop());
    (cell, fetch)
}

// ---- the tables ----

fn latency_text(elapsed: Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1e3;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1e3)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

fn percentile_text(p: Option<Duration>) -> String {
    p.map_or_else(|| "failed".to_owned(), latency_text)
}

fn rss_text(kib: u64) -> String {
    if kib == 0 {
        "n/a".to_owned()
    } else {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "NOT MET"
    }
}

/// The rows of the publish tables: one per server (and worker count), a
/// column per in-flight level.
fn sides(cells: &[Cell]) -> Vec<Side> {
    let mut sides: Vec<Side> = Vec::new();
    for cell in cells {
        if !sides.contains(&cell.side) {
            sides.push(cell.side);
        }
    }
    sides
}

fn find(cells: &[Cell], side: Side, in_flight: usize) -> Option<&Cell> {
    cells
        .iter()
        .find(|c| c.side == side && c.in_flight == in_flight)
}

fn publish_table(title: &str, sizes: &Sizes, cells: &[Cell], text: &dyn Fn(&Cell) -> String) {
    println!();
    println!("{title}");
    println!();
    let headers: Vec<String> = std::iter::once("server".to_owned())
        .chain(
            sizes
                .in_flight
                .iter()
                .map(|n| format!("{} in flight", thousands(*n as f64))),
        )
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = sides(cells)
        .into_iter()
        .map(|side| {
            std::iter::once(side.label())
                .chain(
                    sizes
                        .in_flight
                        .iter()
                        .map(|&n| find(cells, side, n).map_or_else(|| "n/a".to_owned(), text)),
                )
                .collect()
        })
        .collect();
    report::print_grid(&headers, &rows);
}

fn ratio_table(sizes: &Sizes, cells: &[Cell]) {
    println!();
    println!(
        "Cairn records/s / warg-server records/s, same in-flight level (goal >= {RATIO_GOAL}x)"
    );
    println!();
    let mut headers = vec!["server".to_owned()];
    headers.extend(
        sizes
            .in_flight
            .iter()
            .map(|n| format!("{} in flight", thousands(*n as f64))),
    );
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = sides(cells)
        .into_iter()
        .filter(|s| *s != Side::Warg)
        .map(|side| {
            std::iter::once(side.label())
                .chain(sizes.in_flight.iter().map(|&n| {
                    match (find(cells, side, n), find(cells, Side::Warg, n)) {
                        (Some(c), Some(w)) if w.rate() > 0.0 => {
                            format!("{:.2}x", c.rate() / w.rate())
                        }
                        _ => "n/a".to_owned(),
                    }
                }))
                .collect()
        })
        .collect();
    report::print_grid(&headers, &rows);
}

fn print_publish(sizes: &Sizes, cells: &[Cell]) {
    publish_table(
        "publish: records/s (records published / wall time, first POST to last publisher done)",
        sizes,
        cells,
        &|c| thousands(c.rate()),
    );
    publish_table(
        "publish -> published, p50 (over records sent; `failed` = falls on an unpublished one)",
        sizes,
        cells,
        &|c| percentile_text(c.percentile(50.0)),
    );
    publish_table("publish -> published, p99", sizes, cells, &|c| {
        percentile_text(c.percentile(99.0))
    });
    publish_table("records published / in the cell", sizes, cells, &|c| {
        format!(
            "{} / {}",
            thousands(c.published.len() as f64),
            thousands(c.records as f64)
        )
    });
    publish_table(
        "timeouts + errors (+ records not sent: the cell ran past --cell-limit)",
        sizes,
        cells,
        &|c| {
            let mut text = format!("{} + {}", thousands(c.timeouts as f64), c.errors);
            if c.not_sent > 0 {
                text.push_str(&format!(" (+{} not sent)", thousands(c.not_sent as f64)));
            }
            text
        },
    );
    publish_table("peak server threads", sizes, cells, &|c| {
        if c.peaks.threads == 0 {
            "n/a".to_owned()
        } else {
            c.peaks.threads.to_string()
        }
    });
    publish_table("peak server RSS (VmHWM)", sizes, cells, &|c| {
        rss_text(c.peaks.rss_kib)
    });
    publish_table(
        "(info) CPU time in the cell: server / load generator (this process)",
        sizes,
        cells,
        &|c| match c.cpu {
            (Some(server), Some(generator)) => {
                format!("{} / {}", duration_text(server), duration_text(generator))
            }
            _ => "n/a".to_owned(),
        },
    );
    if cells.iter().any(|c| c.side == Side::Warg) && cells.iter().any(|c| c.side != Side::Warg) {
        ratio_table(sizes, cells);
    }
}

fn print_goals(sizes: &Sizes, cells: &[Cell], cores: usize) {
    println!();
    let cairn: Vec<&Cell> = cells.iter().filter(|c| c.side != Side::Warg).collect();
    if cairn.is_empty() {
        println!("publish goals: not checked (Cairn did not run)");
        return;
    }
    let top = *sizes.in_flight.iter().max().expect("an in-flight level");
    let at_top: Vec<&&Cell> = cairn.iter().filter(|c| c.in_flight == top).collect();
    let failures: Vec<String> = at_top
        .iter()
        .map(|c| {
            format!(
                "{}: {} timeouts + {} errors + {} not sent",
                c.side.label(),
                thousands(c.timeouts as f64),
                thousands(c.errors as f64),
                thousands(c.not_sent as f64)
            )
        })
        .collect();
    println!(
        "goal: zero timeouts (and errors) at {} in flight: {} ({})",
        thousands(top as f64),
        verdict(at_top.iter().all(|c| c.failed() == 0)),
        failures.join("; ")
    );

    let (fewest, most) = (
        *sizes.workers.iter().min().expect("a worker count"),
        *sizes.workers.iter().max().expect("a worker count"),
    );
    if fewest == most {
        println!(
            "goal: throughput with {most} workers >= with {fewest}: not checked (one worker count)"
        );
    } else {
        let mut met = true;
        let mut detail = Vec::new();
        for &n in &sizes.in_flight {
            if let (Some(a), Some(b)) = (
                find(cells, Side::Cairn { workers: most }, n),
                find(cells, Side::Cairn { workers: fewest }, n),
            ) {
                met &= a.rate() >= b.rate();
                detail.push(format!(
                    "{} in flight: {} vs {}",
                    thousands(n as f64),
                    thousands(a.rate()),
                    thousands(b.rate())
                ));
            }
        }
        println!(
            "goal: throughput with {most} workers >= with {fewest}, at each level: {} ({})",
            verdict(met),
            detail.join("; ")
        );
    }

    // Capacity is measured where the load is: with few publishers in
    // flight, each waiting for its record to be published before sending
    // the next, records/s is in-flight / latency, not what the server can do.
    let server_cores = server_cores().unwrap_or(cores);
    if let Some(slowest) = at_top.iter().min_by(|a, b| a.rate().total_cmp(&b.rate())) {
        println!(
            "goal: >= {} durable records/s at {} in flight, every worker count (a goal for a \
             2-core server; this run's server had {server_cores} cores): {} (lowest {} rec/s: {})",
            thousands(RATE_GOAL),
            thousands(top as f64),
            verdict(slowest.rate() >= RATE_GOAL),
            thousands(slowest.rate()),
            slowest.side.label(),
        );
    }

    let p99s: Vec<String> = at_top
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c.side.label(),
                percentile_text(c.percentile(99.0))
            )
        })
        .collect();
    println!(
        "goal: p99 publish -> published <= {} at {} in flight: {} ({})",
        latency_text(P99_GOAL),
        thousands(top as f64),
        verdict(
            at_top
                .iter()
                .all(|c| c.percentile(99.0).is_some_and(|p| p <= P99_GOAL))
        ),
        p99s.join("; ")
    );

    if !cells.iter().any(|c| c.side == Side::Warg) {
        println!("goal: Cairn >= {RATIO_GOAL}x warg-server: not checked (warg-server did not run)");
        return;
    }
    for &workers in &sizes.workers {
        let side = Side::Cairn { workers };
        let mut met = true;
        let mut detail = Vec::new();
        for &n in &sizes.in_flight {
            match (find(cells, side, n), find(cells, Side::Warg, n)) {
                (Some(c), Some(w)) => {
                    let ratio = c.rate() / w.rate().max(1e-9);
                    met &= ratio >= RATIO_GOAL;
                    detail.push(format!("{}: {ratio:.2}x", thousands(n as f64)));
                }
                _ => {
                    met = false;
                    detail.push(format!("{}: n/a", thousands(n as f64)));
                }
            }
        }
        println!(
            "goal: Cairn ({workers} workers) >= {RATIO_GOAL}x warg-server at every in-flight \
             level: {} ({})",
            verdict(met),
            detail.join(", ")
        );
    }
}

fn print_fetches(sizes: &Sizes, cairn: Option<&Latencies>, warg: Option<&Latencies>) {
    let na = || "n/a".to_owned();
    let cell =
        |side: Option<&Latencies>, f: &dyn Fn(&Latencies) -> String| side.map(f).unwrap_or_else(na);
    let ratio = |f: &dyn Fn(&Latencies) -> f64| match (cairn, warg) {
        (Some(c), Some(w)) => format!("{:.2}x", f(c) / f(w)),
        _ => na(),
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rows: Vec<[String; 4]> = vec![
        [
            format!(
                "fetch/logs p50 ({} requests)",
                thousands(sizes.fetches as f64)
            ),
            cell(cairn, &|s| latency_text(s.percentile(50.0))),
            cell(warg, &|s| latency_text(s.percentile(50.0))),
            ratio(&|s| ms(s.percentile(50.0))),
        ],
        [
            "fetch/logs p99".to_owned(),
            cell(cairn, &|s| latency_text(s.percentile(99.0))),
            cell(warg, &|s| latency_text(s.percentile(99.0))),
            ratio(&|s| ms(s.percentile(99.0))),
        ],
        [
            "(info) fetch/logs mean / max".to_owned(),
            cell(cairn, &|s| {
                format!(
                    "{} / {}",
                    latency_text(s.mean()),
                    latency_text(s.percentile(100.0))
                )
            }),
            cell(warg, &|s| {
                format!(
                    "{} / {}",
                    latency_text(s.mean()),
                    latency_text(s.percentile(100.0))
                )
            }),
            ratio(&|s| ms(s.mean())),
        ],
        [
            "(info) fetch/logs throughput".to_owned(),
            cell(cairn, &|s| {
                format!("{} req/s", thousands(per_second(sizes.fetches, s.wall)))
            }),
            cell(warg, &|s| {
                format!("{} req/s", thousands(per_second(sizes.fetches, s.wall)))
            }),
            ratio(&|s| per_second(sizes.fetches, s.wall)),
        ],
    ];
    println!();
    let packages = |side: Option<&Latencies>| {
        side.map_or_else(
            || "not run".to_owned(),
            |s| format!("{} packages", thousands(s.packages as f64)),
        )
    };
    println!(
        "fetch/logs from {} clients on a registry a cell just loaded (Cairn: {}; warg-server: \
         {})",
        sizes.fetch_concurrency,
        packages(cairn),
        packages(warg)
    );
    println!();
    report::print_table(["row", "Cairn", "warg-server 0.10", "ratio"], &rows);
    println!();
    println!(
        "ratio = Cairn / warg-server (latency: below 1 = Cairn faster). Every fetch returned \
         the package's record."
    );
    match (cairn, warg) {
        (Some(c), Some(w)) => {
            let (ours, theirs) = (c.percentile(99.0), w.percentile(99.0));
            println!(
                "goal: Cairn fetch/logs p99 lower than warg-server's: {} ({} vs {})",
                verdict(ours < theirs),
                latency_text(ours),
                latency_text(theirs)
            );
        }
        _ => println!("fetch goal: not checked (one side did not run)"),
    }
}

// ---- main ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Both,
    Cairn,
    Warg,
}

fn parse_args(args: &[String], sizes: &mut Sizes) -> Only {
    let mut only = Only::Both;
    let mut warg_records = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let takes_value = matches!(
            flag,
            "--records"
                | "--warg-records"
                | "--warg-rounds"
                | "--in-flight"
                | "--workers"
                | "--cell-limit"
                | "--fetches"
                | "--fetch-concurrency"
                | "--only"
        );
        if !takes_value {
            if flag != "--bench" && flag != "--test" {
                eprintln!("warning: argument {arg:?} ignored");
            }
            continue;
        }
        let value = inline
            .or_else(|| rest.next().cloned())
            .unwrap_or_else(|| panic!("{flag} takes a value"));
        let number = |v: &str| {
            v.replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("{flag} takes positive numbers, not {value:?}"))
        };
        let list = || value.split(',').map(number).collect::<Vec<usize>>();
        match flag {
            "--records" => sizes.records = number(&value),
            "--warg-records" => warg_records = Some(number(&value)),
            "--warg-rounds" => sizes.warg_rounds = number(&value),
            "--in-flight" => sizes.in_flight = list(),
            "--workers" => sizes.workers = list(),
            "--cell-limit" => sizes.cell_limit = Duration::from_secs(number(&value) as u64),
            "--fetches" => sizes.fetches = number(&value),
            "--fetch-concurrency" => sizes.fetch_concurrency = number(&value),
            _ => {
                only = match value.as_str() {
                    "cairn" => Only::Cairn,
                    "warg" => Only::Warg,
                    other => panic!("--only takes cairn or warg, not {other:?}"),
                }
            }
        }
    }
    sizes.warg_records = warg_records.unwrap_or(sizes.warg_records.min(sizes.records));
    only
}

/// The records of a warg-server cell with `in_flight` publishers.
fn warg_cell_records(sizes: &Sizes, in_flight: usize) -> usize {
    sizes.warg_records.min(in_flight * sizes.warg_rounds)
}

/// Raises the soft limit on open files to the hard limit; returns the soft
/// limit in force.
#[cfg(unix)]
fn raise_open_files() -> Option<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            eprintln!(
                "warning: getrlimit(RLIMIT_NOFILE): {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                eprintln!(
                    "warning: cannot raise the open-files limit from {} to {}: {}",
                    limit.rlim_cur,
                    limit.rlim_max,
                    std::io::Error::last_os_error()
                );
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
        Some(limit.rlim_cur as u64)
    }
}

#[cfg(not(unix))]
fn raise_open_files() -> Option<u64> {
    eprintln!("warning: cannot raise the open-files limit on this platform");
    None
}

/// `CAIRN_BENCH_SERVER_CORES=N`: the servers run on cores `0..N` and the
/// load generator on the others, so "records/s on N cores" is the server's
/// alone (as an operator pins a server with `taskset`). Unset: all share.
fn server_cores() -> Option<usize> {
    let n: usize = std::env::var("CAIRN_BENCH_SERVER_CORES")
        .ok()?
        .parse()
        .ok()?;
    let all = std::thread::available_parallelism().map_or(1, |c| c.get());
    (n > 0 && n < all).then_some(n)
}

/// Pins the calling thread (and the threads it starts later) to `cores`.
#[cfg(target_os = "linux")]
fn pin_to(cores: std::ops::Range<usize>) -> std::io::Result<()> {
    // SAFETY: the set is a plain bit set initialised to zero, and
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for core in cores {
            libc::CPU_SET(core, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_: std::ops::Range<usize>) -> std::io::Result<()> {
    Err(std::io::Error::other("pinning to cores needs Linux"))
}

/// Makes a server process start on the server's cores.
fn on_server_cores(command: &mut Command) {
    #[cfg(target_os = "linux")]
    if let Some(n) = server_cores() {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one system call.
        unsafe {
            command.pre_exec(move || pin_to(0..n));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == SERVE_CHILD) {
        if let Some(n) = server_cores() {
            let all = std::thread::available_parallelism().map_or(1, |c| c.get());
            match pin_to(n..all) {
                Ok(()) => eprintln!("servers on cores 0..{n}, the load generator on {n}..{all}"),
                Err(e) => eprintln!("warning: cannot pin to cores: {e}"),
            }
        }
    }
    if let Some(at) = args.iter().position(|a| a == SERVE_CHILD) {
        serve_child(&args[at + 1..]);
        return;
    }
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let mut sizes = if smoke { Sizes::smoke() } else { Sizes::full() };
    let only = parse_args(&args, &mut sizes);
    let open_files = raise_open_files();
    let top = *sizes.in_flight.iter().max().expect("an in-flight level");
    if let Some(limit) = open_files {
        // Each connection is a descriptor here and one in the server.
        if limit < top as u64 + 256 {
            eprintln!(
                "warning: the open-files limit is {limit}: {top} connections may fail for want \
                 of descriptors"
            );
        }
    }

    let warg_binary = if only == Only::Cairn {
        None
    } else {
        let found = tools::require("bench server: the warg-server baseline", Tool::WARG_SERVER);
        if found.is_none() {
            println!("warg-server 0.10.0 NOT FOUND: reporting Cairn only");
        }
        found
    };

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "Cairn server vs warg-server 0.10 over HTTP ({}), publishing under load: {} records per \
         Cairn cell; in flight {:?}; Cairn tokio workers {:?}; new records stop after {} s per \
         cell",
        if smoke { "smoke sizes" } else { "full sizes" },
        thousands(sizes.records as f64),
        sizes.in_flight,
        sizes.workers,
        sizes.cell_limit.as_secs(),
    );
    if warg_binary.is_some() {
        println!(
            "warg-server cells: {} records at most, and {} per publisher at most \
             (--warg-records, --warg-rounds): warg-server says `published` only once a \
             checkpoint covers the record, every 5 s (fixed), so each of its publishers does \
             one record per 5 s and its records/s is at most in-flight / 5 s; rates compare, \
             record counts do not",
            thousands(sizes.warg_records as f64),
            sizes.warg_rounds
        );
    }
    println!(
        "bench machine: {cores} cores; load generator: this process, tokio runtime with {cores} \
         workers, one connection per publisher; open-files limit {}",
        open_files.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
    );

    let mut plan: Vec<(Side, usize, bool)> = Vec::new();
    if only != Only::Warg {
        let fetch_workers = if sizes.workers.contains(&2) {
            2
        } else {
            sizes.workers[0]
        };
        for &workers in &sizes.workers {
            for (k, &n) in sizes.in_flight.iter().enumerate() {
                let fetches = workers == fetch_workers && k == 0 && !plan.iter().any(|p| p.2);
                plan.push((Side::Cairn { workers }, n, fetches));
            }
        }
    }
    if warg_binary.is_some() {
        // The fetches run on its largest registry.
        let largest = (0..sizes.in_flight.len())
            .max_by_key(|&k| {
                (
                    warg_cell_records(&sizes, sizes.in_flight[k]),
                    usize::MAX - k,
                )
            })
            .expect("an in-flight level");
        for (k, &n) in sizes.in_flight.iter().enumerate() {
            plan.push((Side::Warg, n, k == largest));
        }
    }

    let mut cells = Vec::new();
    let (mut cairn_fetch, mut warg_fetch) = (None, None);
    let mut first = 0;
    for (side, in_flight, with_fetches) in plan {
        let records = if side == Side::Warg {
            warg_cell_records(&sizes, in_flight)
        } else {
            sizes.records
        };
        let (cell, fetch) = run_cell(
            &runtime,
            side,
            warg_binary.as_deref(),
            in_flight,
            first..first + records,
            &sizes,
            with_fetches,
        );
        first += records;
        match side {
            Side::Warg if fetch.is_some() => warg_fetch = fetch,
            Side::Cairn { .. } if fetch.is_some() => cairn_fetch = fetch,
            _ => {}
        }
        cells.push(cell);
    }

    print_publish(&sizes, &cells);
    print_goals(&sizes, &cells, cores);
    if cells.iter().any(|c| c.not_sent > 0) {
        println!(
            "note: some cells ran past --cell-limit ({} s) and left records unsent; their \
             records/s counts only what was published",
            sizes.cell_limit.as_secs()
        );
    }
    let records: usize = cells.iter().map(|c| c.records).sum();
    println!(
        "({} cells, {} records in all; every request carried a bearer token and had a {} s \
         timeout; a record unpublished {} s after its POST is a timeout)",
        cells.len(),
        thousands(records as f64),
        REQUEST_TIMEOUT.as_secs(),
        PUBLISH_TIMEOUT.as_secs()
    );
    print_fetches(&sizes, cairn_fetch.as_ref(), warg_fetch.as_ref());
}
