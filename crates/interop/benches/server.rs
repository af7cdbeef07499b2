//! Cairn's HTTP server against the reference `warg-server` 0.10, side by
//! side in one run and on the same load:
//!
//! 1. publish throughput, end to end over HTTP: many concurrent clients POST
//!    the signed init records of fresh packages `bench:p<N>` to
//!    `/v1/package/{logId}/record`; the clock stops once a checkpoint covers
//!    every record (`GET /v1/fetch/checkpoint` is polled). Cairn answers 202
//!    only after a durable commit (SQLite, `synchronous=FULL`);
//! 2. `POST /v1/fetch/logs` latency (p50, p99) for random packages of the
//!    registry just loaded, from a few concurrent clients.
//!
//! Both servers get the same records, the same request bodies, the same
//! concurrency and the same fetch sequence, one server after the other.
//! Cairn runs in-process ([`TestServer`], its data directory under the
//! target directory); `warg-server` runs as a subprocess on 127.0.0.1 with
//! its memory data store, found at `$CAIRN_WARG_SERVER` or else at
//! `$HOME/.cache/cairn-ci/warg-server-0.10.0/bin/warg-server`. Without it,
//! the bench fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run` runs it) and
//! otherwise says so loudly and reports Cairn only
//! ([`cairn_interop::tools::require`]).
//!
//! `cargo bench -p cairn-interop --bench server` loads 100,000 packages and
//! sends 20,000 fetches (after an untimed warm-up); `CAIRN_BENCH_SMOKE=1` or `--test` runs tiny sizes.
//! `--packages N`, `--fetches N`, `--publish-concurrency N`,
//! `--fetch-concurrency N` change the sizes; `--only cairn|warg` runs one
//! side (for profiling). Other arguments (`--bench`) are ignored.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_interop::keys;
use cairn_interop::report::{self, duration_text, per_second, thousands};
use cairn_interop::server::TestServer;
use cairn_interop::tools::{self, Tool};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use rayon::prelude::*;
use serde_json::{json, Value};

/// The goal on publish throughput: Cairn at least this many times warg-server.
const PUBLISH_GOAL: f64 = 5.0;

#[derive(Clone, Copy, Debug)]
struct Sizes {
    packages: usize,
    fetches: usize,
    publish_concurrency: usize,
    fetch_concurrency: usize,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        packages: 100_000,
        fetches: 20_000,
        publish_concurrency: 64,
        fetch_concurrency: 4,
    };
    const SMOKE: Sizes = Sizes {
        packages: 200,
        fetches: 100,
        publish_concurrency: 16,
        fetch_concurrency: 4,
    };
}

// ---- the load, identical for both servers ----

/// One package's publish request and what a fetch of its log must return.
struct Prepared {
    /// `/v1/package/{logId}/record`.
    path: String,
    /// The JSON body of the publish.
    body: String,
    /// The package's log id, as text.
    log_id: String,
    /// The record's content bytes, base64.
    content: String,
}

fn prepare(count: usize) -> Vec<Prepared> {
    let keys = keys();
    (0..count)
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
            Prepared {
                path: format!("/v1/package/{log_id}/record"),
                body,
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

struct Publish {
    /// Until every POST was answered 202.
    accepted: Duration,
    /// Until a checkpoint covered every record.
    published: Duration,
}

/// POSTs every record with `concurrency` requests in flight, then waits for
/// a checkpoint covering them all.
/// The token goes with every publish (warg-server ignores it).
async fn publish(url: &str, token: &str, load: Arc<Vec<Prepared>>, concurrency: usize) -> Publish {
    let client = client(concurrency);
    let base = checkpoint_length(&client, url)
        .await
        .expect("the server has a first checkpoint");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, load, next, url) =
            (client.clone(), load.clone(), next.clone(), url.to_owned());
        let bearer = format!("Bearer {token}");
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = load.get(i) else { break };
                let response = client
                    .post(format!("{url}{}", item.path))
                    .header("content-type", "application/json")
                    .header("authorization", &bearer)
                    .body(item.body.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{url}: publish of package {i}: {e}"));
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(
                    status == reqwest::StatusCode::ACCEPTED,
                    "{url}: publish of package {i} answered {status}: {text}"
                );
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("publish worker");
    }
    let accepted = start.elapsed();
    let target = base + load.len() as u64;
    wait_for_length(&client, url, target, Duration::from_secs(600)).await;
    Publish {
        accepted,
        published: start.elapsed(),
    }
}

struct Latencies {
    /// Sorted.
    samples: Vec<Duration>,
    wall: Duration,
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

/// Sends the fetches of `plan` from `concurrency` clients, each sending its
/// requests one after the other; returns every request's latency.
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

/// Fetches the logs of `plan`'s packages from `concurrency` clients, each
/// sending its requests one after the other.
async fn fetch_latencies(
    url: &str,
    load: Arc<Vec<Prepared>>,
    plan: Arc<Vec<usize>>,
    concurrency: usize,
) -> Latencies {
    let client = client(concurrency);
    let length = checkpoint_length(&client, url)
        .await
        .expect("the server has a checkpoint");
    // Warm up every connection and the server's caches (untimed), from as
    // many concurrent clients as the measured run uses.
    let warm: Vec<usize> = plan.iter().rev().take(concurrency * 50).copied().collect();
    run_fetches(&client, url, &load, Arc::new(warm), length, concurrency).await;
    let start = Instant::now();
    let samples = run_fetches(&client, url, &load, plan, length, concurrency).await;
    let wall = start.elapsed();
    let mut samples = samples;
    samples.sort_unstable();
    Latencies { samples, wall }
}

struct SideResult {
    publish: Publish,
    fetch: Latencies,
}

async fn run_side(
    name: &str,
    url: &str,
    token: &str,
    load: Arc<Vec<Prepared>>,
    plan: Arc<Vec<usize>>,
    sizes: Sizes,
) -> SideResult {
    eprintln!(
        "{name}: publishing {} records, {} in flight...",
        load.len(),
        sizes.publish_concurrency
    );
    let publish = publish(url, token, load.clone(), sizes.publish_concurrency).await;
    eprintln!(
        "  all 202 after {}, all in a checkpoint after {} ({} records/s)",
        duration_text(publish.accepted),
        duration_text(publish.published),
        thousands(per_second(load.len(), publish.published))
    );
    eprintln!(
        "{name}: {} fetch/logs from {} clients...",
        plan.len(),
        sizes.fetch_concurrency
    );
    let fetch = fetch_latencies(url, load, plan, sizes.fetch_concurrency).await;
    eprintln!(
        "  p50 {} p99 {} max {}",
        latency_text(fetch.percentile(50.0)),
        latency_text(fetch.percentile(99.0)),
        latency_text(fetch.percentile(100.0))
    );
    SideResult { publish, fetch }
}

// ---- the servers ----

fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    // Under the target directory: on the build's disk (not a tmpfs), so
    // Cairn's fsyncs cost what they cost.
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch directory")
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
        let child = Command::new(binary)
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

// ---- the table ----

fn latency_text(elapsed: Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1e3;
    if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

struct Row {
    name: String,
    cairn: String,
    warg: String,
    ratio: String,
}

fn print_table(rows: &[Row]) {
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.cairn.clone(),
                r.warg.clone(),
                r.ratio.clone(),
            ]
        })
        .collect();
    report::print_table(["row", "Cairn", "warg-server 0.10", "ratio"], &cells);
}

fn rows(sizes: Sizes, cairn: Option<&SideResult>, warg: Option<&SideResult>) -> Vec<Row> {
    let n = sizes.packages;
    let na = || "n/a".to_owned();
    let cell = |side: Option<&SideResult>, f: &dyn Fn(&SideResult) -> String| {
        side.map(f).unwrap_or_else(na)
    };
    let ratio = |f: &dyn Fn(&SideResult) -> f64| match (cairn, warg) {
        (Some(c), Some(w)) => format!("{:.2}x", f(c) / f(w)),
        _ => na(),
    };
    let rate = |d: Duration| per_second(n, d);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    vec![
        Row {
            name: format!("publish throughput, {n} records (until checkpointed)"),
            cairn: cell(cairn, &|s| {
                format!(
                    "{} rec/s ({})",
                    thousands(rate(s.publish.published)),
                    duration_text(s.publish.published)
                )
            }),
            warg: cell(warg, &|s| {
                format!(
                    "{} rec/s ({})",
                    thousands(rate(s.publish.published)),
                    duration_text(s.publish.published)
                )
            }),
            ratio: ratio(&|s| rate(s.publish.published)),
        },
        Row {
            name: format!("fetch/logs p50 ({} requests)", sizes.fetches),
            cairn: cell(cairn, &|s| latency_text(s.fetch.percentile(50.0))),
            warg: cell(warg, &|s| latency_text(s.fetch.percentile(50.0))),
            ratio: ratio(&|s| ms(s.fetch.percentile(50.0))),
        },
        Row {
            name: "fetch/logs p99".to_owned(),
            cairn: cell(cairn, &|s| latency_text(s.fetch.percentile(99.0))),
            warg: cell(warg, &|s| latency_text(s.fetch.percentile(99.0))),
            ratio: ratio(&|s| ms(s.fetch.percentile(99.0))),
        },
        Row {
            name: "(info) publish: all POSTs answered 202".to_owned(),
            cairn: cell(cairn, &|s| {
                format!(
                    "{} rec/s ({})",
                    thousands(rate(s.publish.accepted)),
                    duration_text(s.publish.accepted)
                )
            }),
            warg: cell(warg, &|s| {
                format!(
                    "{} rec/s ({})",
                    thousands(rate(s.publish.accepted)),
                    duration_text(s.publish.accepted)
                )
            }),
            ratio: ratio(&|s| rate(s.publish.accepted)),
        },
        Row {
            name: "(info) fetch/logs mean / max".to_owned(),
            cairn: cell(cairn, &|s| {
                format!(
                    "{} / {}",
                    latency_text(s.fetch.mean()),
                    latency_text(s.fetch.percentile(100.0))
                )
            }),
            warg: cell(warg, &|s| {
                format!(
                    "{} / {}",
                    latency_text(s.fetch.mean()),
                    latency_text(s.fetch.percentile(100.0))
                )
            }),
            ratio: ratio(&|s| ms(s.fetch.mean())),
        },
        Row {
            name: "(info) fetch/logs throughput".to_owned(),
            cairn: cell(cairn, &|s| {
                format!(
                    "{} req/s",
                    thousands(per_second(sizes.fetches, s.fetch.wall))
                )
            }),
            warg: cell(warg, &|s| {
                format!(
                    "{} req/s",
                    thousands(per_second(sizes.fetches, s.fetch.wall))
                )
            }),
            ratio: ratio(&|s| per_second(sizes.fetches, s.fetch.wall)),
        },
    ]
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
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let slot = match flag {
            "--packages" => &mut sizes.packages,
            "--fetches" => &mut sizes.fetches,
            "--publish-concurrency" => &mut sizes.publish_concurrency,
            "--fetch-concurrency" => &mut sizes.fetch_concurrency,
            "--only" => {
                let value = inline.or_else(|| rest.next().cloned());
                only = match value.as_deref() {
                    Some("cairn") => Only::Cairn,
                    Some("warg") => Only::Warg,
                    other => panic!("--only takes cairn or warg, not {other:?}"),
                };
                continue;
            }
            // `--bench`, `--test` and anything else cargo passes.
            _ => continue,
        };
        let value = inline.or_else(|| rest.next().cloned());
        *slot = value
            .and_then(|v| v.replace('_', "").parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| panic!("{flag} takes a positive number"));
    }
    only
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let mut sizes = if smoke { Sizes::SMOKE } else { Sizes::FULL };
    let only = parse_args(&args, &mut sizes);

    let warg_binary = if only == Only::Cairn {
        None
    } else {
        let found = tools::require("bench server: the warg-server baseline", Tool::WARG_SERVER);
        if found.is_none() {
            println!("warg-server 0.10.0 NOT FOUND: reporting Cairn only");
        }
        found
    };

    println!(
        "Cairn server vs warg-server 0.10 over HTTP ({}): {} packages, publish {} in flight, \
         {} fetch/logs from {} clients",
        if smoke { "smoke sizes" } else { "full sizes" },
        sizes.packages,
        sizes.publish_concurrency,
        sizes.fetches,
        sizes.fetch_concurrency,
    );
    eprintln!("signing {} records...", sizes.packages);
    let load = Arc::new(prepare(sizes.packages));
    let plan = Arc::new(fetch_plan(sizes.packages, sizes.fetches));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");

    let cairn = (only != Only::Warg).then(|| {
        let dir = scratch_dir("cairn-server-");
        let server = TestServer::start(dir.path(), &["bench"]);
        let url = server.url.clone();
        let result = runtime.block_on(run_side(
            "Cairn",
            &url,
            &server.admin_token,
            load.clone(),
            plan.clone(),
            sizes,
        ));
        server.stop();
        result
    });
    let warg = warg_binary.map(|binary| {
        let mut server = WargServer::start(&binary);
        runtime.block_on(async {
            server.wait_ready().await;
            let url = server.url.clone();
            run_side("warg-server", &url, "", load.clone(), plan.clone(), sizes).await
        })
    });

    println!();
    print_table(&rows(sizes, cairn.as_ref(), warg.as_ref()));
    println!();
    println!(
        "ratio = Cairn / warg-server (throughput: above 1 = Cairn faster; latency: below 1 = \
         Cairn faster). Publish: the clock stops when a checkpoint covers every record \
         (warg-server checkpoints every 5 s). Every fetch returned the package's record."
    );
    match (&cairn, &warg) {
        (Some(c), Some(w)) => {
            let throughput = per_second(sizes.packages, c.publish.published)
                / per_second(sizes.packages, w.publish.published);
            let (ours, theirs) = (c.fetch.percentile(99.0), w.fetch.percentile(99.0));
            let verdict = |met: bool| if met { "MET" } else { "NOT MET" };
            println!(
                "goal: Cairn publish throughput >= {PUBLISH_GOAL}x warg-server's: {} ({throughput:.2}x)",
                verdict(throughput >= PUBLISH_GOAL)
            );
            println!(
                "goal: Cairn fetch/logs p99 lower than warg-server's: {} ({} vs {})",
                verdict(ours < theirs),
                latency_text(ours),
                latency_text(theirs)
            );
        }
        _ => println!("goals: not checked (one side did not run)"),
    }
}
