//! Cairn's OCI face beside Debian's `docker-registry` 2.8.2 (CNCF
//! distribution), one after the other in one run, with the same client code
//! and requests:
//!
//! 1. push of one large blob in 4 MiB chunks (`POST`, one `PATCH` per chunk
//!    with `Content-Range`, `PUT ?digest=`), MiB/s, best of three;
//! 2. pull of that blob, streamed and counted, MiB/s, best of three, and
//!    Cairn's pull beside `cat <file> > /dev/null` of the same bytes;
//! 3. small-artifact pull cycles (manifest, config, layer) of a Wasm
//!    artifact from 4 concurrent clients: cycles/s and cycle p50/p99;
//! 4. memory: the bench process's peak RSS (Cairn runs in-process; the
//!    client streams) after a 10 MiB blob and after the large one, and
//!    docker-registry's peak RSS.
//!
//! `cargo bench -p cairn-interop --bench oci` uses a 100 MiB blob and 1,000
//! cycles; `CAIRN_BENCH_SMOKE=1` or `--test` runs tiny sizes. The registry
//! binary is `$CAIRN_DOCKER_REGISTRY` or `/usr/bin/docker-registry`; without
//! it the bench fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run` runs it) and
//! otherwise says so loudly and reports Cairn only
//! ([`cairn_interop::tools::require`]).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_interop::docker::DockerRegistry;
use cairn_interop::report::{self, duration_text};
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::tools::{self, Tool};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Clone, Copy)]
struct Sizes {
    blob: u64,
    chunk: u64,
    cycles: usize,
    clients: usize,
}

/// Deterministic bytes: chunk `index` of a blob, `len` bytes (xorshift).
fn chunk_bytes(seed: u64, index: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The chunks of a blob of `size` bytes.
fn chunks(size: u64, chunk: u64) -> impl Iterator<Item = (u64, usize)> {
    (0..size.div_ceil(chunk)).map(move |i| (i, (size - i * chunk).min(chunk) as usize))
}

fn blob_digest(seed: u64, sizes: &Sizes, size: u64) -> String {
    let mut hasher = Sha256::new();
    for (i, len) in chunks(size, sizes.chunk) {
        hasher.update(chunk_bytes(seed, i, len));
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Peak and current RSS of a process, in MiB, from `/proc/<pid>/status`.
fn rss(pid: &str) -> (f64, f64) {
    let pid = pid.parse().ok();
    (
        cairn_interop::report::peak_rss_mib(pid),
        cairn_interop::report::status_mib(pid, "VmRSS:"),
    )
}

/// One registry under test.
struct Side {
    name: &'static str,
    url: String,
    bearer: Option<String>,
}

impl Side {
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
    ) -> reqwest::RequestBuilder {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.url)
        };
        let request = client.request(method, url);
        match &self.bearer {
            Some(b) => request.header("authorization", b),
            None => request,
        }
    }

    async fn expect(
        &self,
        step: &str,
        response: reqwest::Response,
        want: StatusCode,
    ) -> reqwest::Response {
        if response.status() != want {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            panic!(
                "{}: {step} answered {status}, not {want}: {body}",
                self.name
            );
        }
        response
    }

    fn location(response: &reqwest::Response) -> String {
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("a Location header")
            .to_owned()
    }

    /// `POST /v2/<repo>/blobs/uploads/`: the new session's location.
    async fn start_upload(&self, client: &reqwest::Client, repo: &str) -> String {
        let started = self
            .request(
                client,
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/"),
            )
            .header("content-length", "0")
            .send()
            .await
            .expect("start upload");
        Self::location(
            &self
                .expect("POST upload", started, StatusCode::ACCEPTED)
                .await,
        )
    }

    /// `PUT <location>?digest=` with the last bytes (none after chunks).
    async fn finish_upload(
        &self,
        client: &reqwest::Client,
        location: &str,
        digest: &str,
        body: Vec<u8>,
    ) {
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .request(
                client,
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("PUT ?digest");
        self.expect("PUT ?digest", done, StatusCode::CREATED).await;
    }

    /// Pushes the blob in chunks; returns the time taken.
    async fn push_chunked(
        &self,
        client: &reqwest::Client,
        repo: &str,
        seed: u64,
        size: u64,
        sizes: &Sizes,
        digest: &str,
    ) -> Duration {
        let start = Instant::now();
        let mut location = self.start_upload(client, repo).await;
        for (i, len) in chunks(size, sizes.chunk) {
            let first = i * sizes.chunk;
            let body = chunk_bytes(seed, i, len);
            let answer = self
                .request(client, reqwest::Method::PATCH, &location)
                .header(
                    "content-range",
                    format!("{first}-{}", first + len as u64 - 1),
                )
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .expect("PATCH chunk");
            location = Self::location(&self.expect("PATCH", answer, StatusCode::ACCEPTED).await);
        }
        self.finish_upload(client, &location, digest, Vec::new())
            .await;
        start.elapsed()
    }

    /// `GET /v2/<repo>/blobs/<digest>`, required to answer 200.
    async fn get_blob(
        &self,
        client: &reqwest::Client,
        repo: &str,
        digest: &str,
    ) -> reqwest::Response {
        let response = self
            .request(
                client,
                reqwest::Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
            )
            .send()
            .await
            .expect("GET blob");
        self.expect("GET blob", response, StatusCode::OK).await
    }

    /// Pulls a blob, counting its bytes; returns the time taken.
    async fn pull(
        &self,
        client: &reqwest::Client,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Duration {
        let start = Instant::now();
        let response = self.get_blob(client, repo, digest).await;
        let mut stream = response.bytes_stream();
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            got += chunk.expect("blob bytes").len() as u64;
        }
        assert_eq!(got, size, "{}: pulled bytes", self.name);
        start.elapsed()
    }

    /// Pushes a small blob: `POST`, then `PUT ?digest=` with the bytes
    /// (the monolithic form both registries take).
    async fn push_small(&self, client: &reqwest::Client, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let location = self.start_upload(client, repo).await;
        self.finish_upload(client, &location, &digest, bytes.to_vec())
            .await;
        digest
    }

    /// Pushes a small Wasm artifact to `repo:1.0.0`.
    async fn push_artifact(&self, client: &reqwest::Client, repo: &str) {
        // A module with one 1,000-byte custom section `bench`.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.extend_from_slice(&[0, 0xe8, 0x07, 5]);
        wasm.extend_from_slice(b"bench");
        wasm.extend_from_slice(&[b'x'; 994]);
        let layer = self.push_small(client, repo, &wasm).await;
        let config = json!({
            "created": "2026-01-01T00:00:00Z", "author": null, "architecture": "wasm",
            "os": "wasip1", "layerDigests": [layer],
        })
        .to_string();
        let config_digest = self.push_small(client, repo, config.as_bytes()).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": layer, "size": wasm.len()}],
        })
        .to_string();
        let answer = self
            .request(
                client,
                reqwest::Method::PUT,
                &format!("/v2/{repo}/manifests/1.0.0"),
            )
            .header("content-type", MANIFEST)
            .body(manifest)
            .send()
            .await
            .expect("PUT manifest");
        self.expect("PUT manifest", answer, StatusCode::CREATED)
            .await;
    }

    /// One pull cycle: manifest, then config and layer.
    async fn cycle(&self, client: &reqwest::Client, repo: &str) -> Duration {
        let start = Instant::now();
        let answer = self
            .request(
                client,
                reqwest::Method::GET,
                &format!("/v2/{repo}/manifests/1.0.0"),
            )
            .header("accept", MANIFEST)
            .send()
            .await
            .expect("GET manifest");
        let manifest: serde_json::Value = self
            .expect("GET manifest", answer, StatusCode::OK)
            .await
            .json()
            .await
            .expect("manifest JSON");
        for digest in [
            &manifest["config"]["digest"],
            &manifest["layers"][0]["digest"],
        ] {
            let digest = digest.as_str().expect("digest");
            self.get_blob(client, repo, digest)
                .await
                .bytes()
                .await
                .expect("blob");
        }
        start.elapsed()
    }
}

/// What one side measured.
struct Figures {
    push_mib_s: f64,
    pull_mib_s: f64,
    pull_best: Duration,
    cycles_s: f64,
    p50: Duration,
    p99: Duration,
}

fn mib_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn measure(side: &Side, sizes: Sizes, seed: u64, digest: &str) -> Figures {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(sizes.clients)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("HTTP client");
    let mut push_best = Duration::MAX;
    let mut pull_best = Duration::MAX;
    for run in 0..3 {
        let repo = format!("bench/big{run}");
        push_best = push_best.min(
            side.push_chunked(&client, &repo, seed, sizes.blob, &sizes, digest)
                .await,
        );
        pull_best = pull_best.min(side.pull(&client, &repo, digest, sizes.blob).await);
    }
    side.push_artifact(&client, "bench/small").await;
    for _ in 0..sizes.clients * 5 {
        side.cycle(&client, "bench/small").await;
    }
    let side = Arc::new(Side {
        name: side.name,
        url: side.url.clone(),
        bearer: None,
    });
    let start = Instant::now();
    let per_client = sizes.cycles / sizes.clients;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sizes.clients {
        let (side, client) = (side.clone(), client.clone());
        tasks.spawn(async move {
            let mut times = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                times.push(side.cycle(&client, "bench/small").await);
            }
            times
        });
    }
    let mut times = Vec::new();
    while let Some(done) = tasks.join_next().await {
        times.extend(done.expect("cycle client"));
    }
    let elapsed = start.elapsed();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Figures {
        push_mib_s: mib_s(sizes.blob, push_best),
        pull_mib_s: mib_s(sizes.blob, pull_best),
        pull_best,
        cycles_s: times.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn scratch() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tempfile::Builder::new()
        .prefix("oci-bench-")
        .tempdir_in(base)
        .expect("scratch dir")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke =
        std::env::var_os("CAIRN_BENCH_SMOKE").is_some() || args.iter().any(|a| a == "--test");
    let sizes = if smoke {
        Sizes {
            blob: 8 * MIB,
            chunk: 2 * MIB,
            cycles: 20,
            clients: 4,
        }
    } else {
        Sizes {
            blob: 100 * MIB,
            chunk: 4 * MIB,
            cycles: 1000,
            clients: 4,
        }
    };
    // Looked up first: where the baseline is required, fail before measuring.
    let docker_registry = tools::require(
        "bench oci: the docker-registry baseline",
        Tool::DOCKER_REGISTRY,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let seed = 0x0c1_b0b;
    let digest = blob_digest(seed, &sizes, sizes.blob);
    let small = Sizes {
        blob: 10 * MIB,
        ..sizes
    };
    let small_digest = blob_digest(seed + 1, &small, small.blob);
    println!(
        "OCI bench: {} MiB blob in {} MiB chunks, {} pull cycles from {} clients{}",
        sizes.blob / MIB,
        sizes.chunk / MIB,
        sizes.cycles,
        sizes.clients,
        if smoke { " (smoke sizes)" } else { "" }
    );

    // Cairn, in-process; its memory is this process's.
    let dir = scratch();
    let server = TestServer::start_options(dir.path(), &["bench"], TestOptions::for_load());
    let cairn = Side {
        name: "Cairn",
        url: server.url.clone(),
        bearer: Some(format!("Bearer {}", server.admin_token)),
    };
    let mut memory = Vec::new();
    let (before, _) = rss("self");
    let cairn_figures = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        cairn
            .push_chunked(
                &client,
                "bench/ten",
                seed + 1,
                small.blob,
                &small,
                &small_digest,
            )
            .await;
        cairn
            .pull(&client, "bench/ten", &small_digest, small.blob)
            .await;
        memory.push((
            format!("after a {} MiB blob", small.blob / MIB),
            rss("self").0,
        ));
        measure(&cairn, sizes, seed, &digest).await
    });
    memory.push((
        format!("after {} MiB blobs", sizes.blob / MIB),
        rss("self").0,
    ));
    server.stop();

    // cat of the same bytes, from the page cache like Cairn's pull.
    let file = dir.path().join("blob");
    {
        use std::io::Write;
        let mut out = std::fs::File::create(&file).expect("blob file");
        for (i, len) in chunks(sizes.blob, sizes.chunk) {
            out.write_all(&chunk_bytes(seed, i, len))
                .expect("write blob file");
        }
    }
    let cat = (0..3)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!("cat '{}' > /dev/null", file.display()))
                .status()
                .expect("run cat");
            assert!(status.success(), "cat failed");
            start.elapsed()
        })
        .min()
        .expect("three runs");

    let docker = docker_registry.map(|binary| {
        let dir = scratch();
        let registry = DockerRegistry::start(&binary, dir.path());
        let side = Side {
            name: "docker-registry",
            url: registry.url.clone(),
            bearer: None,
        };
        let figures = runtime.block_on(async {
            registry.wait_ready().await;
            measure(&side, sizes, seed, &digest).await
        });
        let peak = rss(&registry.child.id().to_string()).0;
        (figures, peak)
    });

    let cell =
        |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    let ratio = |c: f64, d: Option<f64>| d.map_or("-".to_owned(), |d| format!("{:.2}x", c / d));
    let c = &cairn_figures;
    let d = docker.as_ref().map(|(f, _)| f);
    let rows = [
        [
            format!("blob push, {} MiB chunked (MiB/s)", sizes.blob / MIB),
            format!("{:.0}", c.push_mib_s),
            cell(d.map(|d| d.push_mib_s), 0),
            ratio(c.push_mib_s, d.map(|d| d.push_mib_s)),
        ],
        [
            format!("blob pull, {} MiB (MiB/s)", sizes.blob / MIB),
            format!("{:.0}", c.pull_mib_s),
            cell(d.map(|d| d.pull_mib_s), 0),
            ratio(c.pull_mib_s, d.map(|d| d.pull_mib_s)),
        ],
        [
            "small-artifact pull cycles (cycles/s)".to_owned(),
            format!("{:.0}", c.cycles_s),
            cell(d.map(|d| d.cycles_s), 0),
            ratio(c.cycles_s, d.map(|d| d.cycles_s)),
        ],
        [
            "cycle p50 (ms)".to_owned(),
            format!("{:.2}", c.p50.as_secs_f64() * 1e3),
            cell(d.map(|d| d.p50.as_secs_f64() * 1e3), 2),
            "lower is better".to_owned(),
        ],
        [
            "cycle p99 (ms)".to_owned(),
            format!("{:.2}", c.p99.as_secs_f64() * 1e3),
            cell(d.map(|d| d.p99.as_secs_f64() * 1e3), 2),
            "lower is better".to_owned(),
        ],
    ];
    println!();
    report::print_table(
        [
            "figure (best of 3 for blobs)",
            "Cairn",
            "docker-registry",
            "Cairn / docker",
        ],
        &rows,
    );
    println!(
        "\nlarge-blob pull: Cairn {} vs `cat > /dev/null` {} ({:.2}x cat's time; goal within 2x)",
        duration_text(c.pull_best),
        duration_text(cat),
        c.pull_best.as_secs_f64() / cat.as_secs_f64().max(1e-9)
    );
    println!("memory: bench process (Cairn in-process + streaming client) peak RSS {before:.0} MiB at start");
    for (when, peak) in memory {
        println!("  {when}: peak RSS {peak:.0} MiB");
    }
    if let Some((_, peak)) = docker {
        println!("  docker-registry process peak RSS {peak:.0} MiB");
    }
}
