//! A mixed load against `cairn serve` (in a child process, so its memory
//! is its own), and the same OCI reads against Debian's `docker-registry`
//! 2.8.2 in the same run.
//!
//! Phases, each with hundreds of requests in flight:
//! 1. **mixed** (60 s): `fetch/logs` of a random package, content
//!    downloads, OCI manifest and blob reads, and Warg publishes (init and
//!    release, content uploaded) all at once;
//! 2. **OCI reads** (20 s): manifest and blob reads only, on Cairn;
//! 3. the same OCI reads on docker-registry.
//!
//! For each operation: throughput and p50/p99/p999 latency; the server's
//! RSS sampled every second (it must stay flat). Any answer other than
//! success or 429 fails the run. `cargo bench -p cairn-interop --bench
//! load`; `CAIRN_BENCH_SMOKE=1` (or `-- --test`) for 3-second phases.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_interop::docker::DockerRegistry;
use cairn_interop::report::{self, thousands};
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::tools::{self, Tool};
use cairn_protocol::{Hash, LogId, PackageName, PrivateKey};
use serde_json::json;
use sha2::{Digest, Sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Sizes {
    mixed: Duration,
    reads: Duration,
    readers: usize,
    publishers: usize,
    packages: usize,
    repos: usize,
    content: usize,
    blob: usize,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A Wasm module of about `len` bytes, distinct per `tag`.
fn wasm(tag: &str, len: usize) -> Vec<u8> {
    let mut payload = vec![1u8, b't'];
    payload.extend_from_slice(tag.as_bytes());
    payload.resize(len.max(payload.len()), b'x');
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&payload);
    bytes
}

/// Current RSS of a process in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `--serve-child <dir>`: a Cairn server without rate limits (the load
/// comes from one address), serving until stdin closes.
fn serve_child(dir: &str) {
    let server = TestServer::start_options(Path::new(dir), &["bench"], TestOptions::for_load());
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {}", server.url, server.admin_token).expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    server.stop();
}

struct CairnChild {
    child: Child,
    url: String,
    token: String,
}

impl CairnChild {
    fn start(dir: &Path) -> CairnChild {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("--serve-child")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server child");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("server address");
        let (url, token) = line.trim().split_once(' ').expect("url and token");
        CairnChild {
            url: url.to_owned(),
            token: token.to_owned(),
            child,
        }
    }
}

impl Drop for CairnChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One registry's address and credentials.
#[derive(Clone)]
struct Target {
    url: String,
    bearer: Option<String>,
    client: reqwest::Client,
}

impl Target {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.url));
        match &self.bearer {
            Some(b) => request.header("authorization", b),
            None => request,
        }
    }

    async fn ok(&self, what: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request.send().await.expect(what);
        let status = response.status();
        assert!(
            status.is_success(),
            "{what}: {status}: {}",
            response.text().await.unwrap_or_default()
        );
        response
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let started = self
            .ok(
                "start upload",
                self.request(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/")),
            )
            .await;
        let location = started
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with("http") {
            format!("{location}{sep}digest={digest}")
        } else {
            format!("{}{location}{sep}digest={digest}", self.url)
        };
        let mut put = self.client.put(url).body(bytes.to_vec());
        if let Some(b) = &self.bearer {
            put = put.header("authorization", b);
        }
        self.ok("finish upload", put).await;
        digest
    }

    /// A Wasm artifact at `repo:1.0.0`; returns the layer digest.
    async fn push_artifact(&self, repo: &str, layer: &[u8]) -> String {
        let layer_digest = self.push_blob(repo, layer).await;
        let config =
            json!({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer_digest]})
                .to_string();
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        self.ok(
            "push manifest",
            self.request(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/1.0.0"))
                .header("content-type", MANIFEST)
                .body(manifest),
        )
        .await;
        layer_digest
    }
}

/// A Warg publish with its upload; the statuses of both steps.
async fn publish(target: &Target, key: &PrivateKey, name: &PackageName, content: &[u8]) -> u16 {
    cairn_interop::publish::publish(
        &target.client,
        &target.url,
        target.bearer.as_deref(),
        key,
        name,
        content,
    )
    .await
}

/// What one operation saw.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// Status (0: no answer) and how often, for answers that were not 2xx.
    failures: BTreeMap<u16, usize>,
}

type Recorded = Arc<Mutex<BTreeMap<&'static str, Samples>>>;

fn record(recorded: &Recorded, op: &'static str, took: Duration, status: u16) {
    let mut all = recorded.lock().expect("lock");
    let samples = all.entry(op).or_default();
    if (200..300).contains(&status) {
        samples.latencies.push(took);
    } else {
        *samples.failures.entry(status).or_default() += 1;
    }
}

/// Data the readers pick from.
#[derive(Clone)]
struct Catalog {
    /// A checkpointed log length covering every preloaded package.
    log_length: u64,
    packages: Vec<PackageName>,
    contents: Vec<String>,
    repos: Vec<(String, String)>,
}

async fn read_once(
    target: &Target,
    catalog: &Catalog,
    op: usize,
    pick: usize,
) -> (&'static str, u16) {
    let (name, request) = match op {
        0 => {
            let name = &catalog.packages[pick % catalog.packages.len()];
            let body = json!({
                "logLength": catalog.log_length,
                "packages": { LogId::package(name).to_string(): null },
            });
            (
                "fetch/logs",
                target
                    .request(reqwest::Method::POST, "/v1/fetch/logs")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
        }
        1 => {
            let digest = &catalog.contents[pick % catalog.contents.len()];
            (
                "content download",
                target.request(
                    reqwest::Method::GET,
                    &format!("/content/{}", digest.replacen(':', "-", 1)),
                ),
            )
        }
        2 => {
            let (repo, _) = &catalog.repos[pick % catalog.repos.len()];
            (
                "OCI manifest",
                target
                    .request(reqwest::Method::GET, &format!("/v2/{repo}/manifests/1.0.0"))
                    .header("accept", MANIFEST),
            )
        }
        _ => {
            let (repo, layer) = &catalog.repos[pick % catalog.repos.len()];
            (
                "OCI blob",
                target.request(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{layer}")),
            )
        }
    };
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(_) => (name, status),
                Err(_) => (name, 0),
            }
        }
        Err(_) => (name, 0),
    }
}

/// Runs `readers` reading tasks (cycling through `ops`) and `publishers`
/// publishing tasks for `length`, sampling `pid`'s RSS every second.
async fn phase(
    target: &Target,
    catalog: &Catalog,
    ops: &'static [usize],
    readers: usize,
    publishers: usize,
    length: Duration,
    pid: u32,
) -> (BTreeMap<&'static str, Samples>, Vec<f64>) {
    let recorded: Recorded = Arc::default();
    let end = Instant::now() + length;
    let next_package = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for r in 0..readers {
        let (target, catalog, recorded) = (target.clone(), catalog.clone(), recorded.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = r;
            while Instant::now() < end {
                let op = ops[i % ops.len()];
                let started = Instant::now();
                let (name, status) = read_once(&target, &catalog, op, i.wrapping_mul(7919)).await;
                record(&recorded, name, started.elapsed(), status);
                i += 1;
            }
        }));
    }
    for p in 0..publishers {
        let (target, recorded, next) = (target.clone(), recorded.clone(), next_package.clone());
        tasks.push(tokio::spawn(async move {
            let key = PrivateKey::generate();
            while Instant::now() < end {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let name: PackageName = format!("bench:load-p{p}-n{n}").parse().expect("name");
                let content = wasm(&format!("load {n}"), 4096);
                let started = Instant::now();
                let status = publish(&target, &key, &name, &content).await;
                record(&recorded, "Warg publish", started.elapsed(), status);
            }
        }));
    }
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        while Instant::now() < end {
            samples.push(rss_mib(pid));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples.push(rss_mib(pid));
        samples
    });
    for task in tasks {
        task.await.expect("task");
    }
    let rss = sampler.await.expect("sampler");
    let recorded = std::mem::take(&mut *recorded.lock().expect("lock"));
    (recorded, rss)
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * per_mille / 1000).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Prints a phase; returns the failures that are not rate limiting.
fn report_phase(
    side: &str,
    phase: &str,
    length: Duration,
    results: &mut BTreeMap<&'static str, Samples>,
    rss: &[f64],
) -> Vec<String> {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (op, samples) in results.iter_mut() {
        samples.latencies.sort();
        let l = &samples.latencies;
        let limited = samples.failures.get(&429).copied().unwrap_or(0);
        for (status, count) in &samples.failures {
            if *status != 429 {
                bad.push(format!(
                    "{side} {phase} {op}: {count} answers with status {status}"
                ));
            }
        }
        rows.push(vec![
            op.to_string(),
            thousands(l.len() as f64),
            format!("{}/s", thousands(report::per_second(l.len(), length))),
            ms(percentile(l, 500)),
            ms(percentile(l, 990)),
            ms(percentile(l, 999)),
            limited.to_string(),
        ]);
    }
    println!("\n{side}, {phase} ({:.0} s):", length.as_secs_f64());
    report::print_grid(
        &["operation", "ok", "throughput", "p50", "p99", "p999", "429"],
        &rows,
    );
    if !rss.is_empty() {
        let max = rss.iter().copied().fold(0.0, f64::max);
        let every: Vec<String> = rss
            .iter()
            .step_by((rss.len() / 12).max(1))
            .map(|r| format!("{r:.0}"))
            .collect();
        println!(
            "  server RSS MiB over time: {} (first {:.0}, last {:.0}, max {max:.0})",
            every.join(" "),
            rss[0],
            rss[rss.len() - 1]
        );
    }
    bad
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-child") {
        serve_child(args.get(1).expect("--serve-child <dir>"));
        return;
    }
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let sizes = if smoke {
        Sizes {
            mixed: Duration::from_secs(3),
            reads: Duration::from_secs(2),
            readers: 64,
            publishers: 8,
            packages: 20,
            repos: 10,
            content: 16 * 1024,
            blob: 256 * 1024,
        }
    } else {
        Sizes {
            mixed: Duration::from_secs(60),
            reads: Duration::from_secs(20),
            readers: 512,
            publishers: 64,
            packages: 500,
            repos: 100,
            content: 64 * 1024,
            blob: 1 << 20,
        }
    };
    let docker_binary = tools::require(
        "bench load: the docker-registry baseline",
        Tool::DOCKER_REGISTRY,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let scratch = tempfile::Builder::new()
        .prefix("load-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch");
    let cairn = CairnChild::start(&scratch.path().join("cairn"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(sizes.readers + sizes.publishers)
        .build()
        .expect("client");
    let target = Target {
        url: cairn.url.clone(),
        bearer: Some(format!("Bearer {}", cairn.token)),
        client: client.clone(),
    };
    println!(
        "load: {} readers and {} publishers in flight; {} packages, {} OCI repositories \
         ({} KiB layers); server in its own process{}",
        sizes.readers,
        sizes.publishers,
        sizes.packages,
        sizes.repos,
        sizes.blob / 1024,
        if smoke { " (smoke sizes)" } else { "" }
    );
    let mut bad = Vec::new();
    runtime.block_on(async {
        // Preload both registries with the same data.
        let key = PrivateKey::generate();
        let mut catalog = Catalog {
            log_length: 0,
            packages: Vec::new(),
            contents: Vec::new(),
            repos: Vec::new(),
        };
        for i in 0..sizes.packages {
            let name: PackageName = format!("bench:pkg-p{i}").parse().expect("name");
            let content = wasm(&format!("preload {i}"), sizes.content);
            assert_eq!(
                publish(&target, &key, &name, &content).await,
                201,
                "preload {name}"
            );
            catalog.contents.push(Hash::of(&content).to_string());
            catalog.packages.push(name);
        }
        for i in 0..sizes.repos {
            let repo = format!("bench/oci-r{i}");
            let layer = wasm(&format!("layer {i}"), sizes.blob);
            let digest = target.push_artifact(&repo, &layer).await;
            catalog.repos.push((repo, digest));
        }
        // A checkpoint that covers the preload.
        let checkpoint: serde_json::Value = target
            .ok(
                "checkpoint",
                target.request(reqwest::Method::GET, "/v1/fetch/checkpoint"),
            )
            .await
            .json()
            .await
            .expect("checkpoint");
        catalog.log_length = checkpoint["contents"]["logLength"]
            .as_u64()
            .expect("log length");
        let pid = cairn.child.id();
        let (mut mixed, rss) = phase(
            &target,
            &catalog,
            &[0, 1, 2, 3],
            sizes.readers,
            sizes.publishers,
            sizes.mixed,
            pid,
        )
        .await;
        bad.extend(report_phase(
            "Cairn",
            "mixed load",
            sizes.mixed,
            &mut mixed,
            &rss,
        ));
        let (mut reads, rss) = phase(
            &target,
            &catalog,
            &[2, 3],
            sizes.readers,
            0,
            sizes.reads,
            pid,
        )
        .await;
        bad.extend(report_phase(
            "Cairn",
            "OCI reads",
            sizes.reads,
            &mut reads,
            &rss,
        ));

        if let Some(binary) = &docker_binary {
            let dir = scratch.path().join("docker");
            std::fs::create_dir_all(&dir).expect("dir");
            let docker = DockerRegistry::start(binary, &dir);
            let baseline = Target {
                url: docker.url.clone(),
                bearer: None,
                client: client.clone(),
            };
            docker.wait_ready().await;
            for (i, (repo, _)) in catalog.repos.iter().enumerate() {
                let layer = wasm(&format!("layer {i}"), sizes.blob);
                baseline.push_artifact(repo, &layer).await;
            }
            let (mut reads, rss) = phase(
                &baseline,
                &catalog,
                &[2, 3],
                sizes.readers,
                0,
                sizes.reads,
                docker.child.id(),
            )
            .await;
            bad.extend(report_phase(
                "docker-registry 2.8.2",
                "OCI reads",
                sizes.reads,
                &mut reads,
                &rss,
            ));
        } else {
            println!("\ndocker-registry not found: Cairn measured alone");
        }
    });
    assert!(
        bad.is_empty(),
        "error answers other than 429:\n{}",
        bad.join("\n")
    );
}
