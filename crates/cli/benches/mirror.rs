//! Mirroring and proof figures (issue 17, item 10), in one run:
//!
//! - a registry A (`cairn serve` on 127.0.0.2) with `--packages` packages
//!   (default 10,000; each an init and a release of one shared Wasm
//!   module) and a mirror B (`cairn serve` on 127.0.0.3) of the whole
//!   namespace with all content, reaching A through a counting proxy on
//!   127.0.0.5: the time and bytes (both ways) until B holds every package
//!   verified, B's mirror state on disk and B's peak RSS;
//! - then `--new` records (default 1,000: new releases of as many
//!   packages) on A, and a tenth as many: the time and bytes for B to catch
//!   up with each (the goal: proportional to the new records);
//! - the bytes and requests to verify one record's inclusion with the Warg
//!   API (`/v1/proof/inclusion`), with an offline proof
//!   (`/tlog/proof/...`, `c2sp.org/tlog-proof@v1`), and from C2SP tiles
//!   (the leaf's tile and the right edge's at each level, no cache).
//!
//! `cargo bench -p cairn-cli --bench mirror -- [--packages N] [--new M]`;
//! `CAIRN_BENCH_SMOKE=1` runs 300 packages and 50 new records.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp, Version,
};
use rayon::prelude::*;
use serde_json::{json, Value};

use common::{cairn, request, wait_ready};

struct Options {
    packages: usize,
    new: usize,
}

fn options() -> Options {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let mut options = Options {
        packages: if smoke { 300 } else { 10_000 },
        new: if smoke { 50 } else { 1_000 },
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--packages" => options.packages = pair[1].parse().expect("--packages N"),
            "--new" => options.new = pair[1].parse().expect("--new M"),
            _ => {}
        }
    }
    options
}

fn free_on(ip: [u8; 4]) -> SocketAddr {
    TcpListener::bind(SocketAddr::from((ip, 0)))
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn serve(data: &Path, addr: SocketAddr, extra: &[&str]) -> Child {
    let mut child = cairn()
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .args(extra)
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_OPERATOR_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn serve");
    wait_ready(&mut child, addr);
    child
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A TCP proxy to `upstream` counting the bytes each way.
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicU64>,
    up: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 5], 0))).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (down, up) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (d, u) = (down.clone(), up.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            count.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(client, server, u.clone());
                pipe(s2, c2, d.clone());
            }
        });
        Proxy { addr, down, up }
    }

    fn take(&self) -> (u64, u64) {
        (
            self.down.swap(0, Ordering::Relaxed),
            self.up.swap(0, Ordering::Relaxed),
        )
    }
}

fn record_body(name: &PackageName, envelope: &Envelope<PackageRecord>) -> String {
    json!({
        "packageName": name.to_string(),
        "record": {
            "contentBytes": STANDARD.encode(envelope.content_bytes()),
            "keyId": envelope.key_id().to_string(),
            "signature": envelope.signature().to_string(),
        }
    })
    .to_string()
}

fn sign(
    key: &PrivateKey,
    prev: Option<RecordId>,
    version: Version,
    content: Hash,
    seconds: i64,
) -> Envelope<PackageRecord> {
    let mut entries = Vec::new();
    if prev.is_none() {
        entries.push(PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        });
    }
    entries.push(PackageEntry::Release { version, content });
    Envelope::sign(
        key,
        PackageRecord {
            prev,
            version: 0,
            timestamp: Timestamp::new(seconds, 0),
            entries,
        },
    )
}

/// Publishes records (content already stored) from 32 threads; panics on
/// a refusal.
fn publish_all(addr: SocketAddr, bearer: &str, records: &[(PackageName, Envelope<PackageRecord>)]) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(32)
        .build()
        .expect("pool");
    pool.install(|| {
        records.par_iter().for_each(|(name, envelope)| {
            let body = record_body(name, envelope);
            let path = format!("/v1/package/{}/record", LogId::package(name));
            let headers = [
                ("authorization", bearer),
                ("content-type", "application/json"),
            ];
            let answer = request(addr, "POST", &path, &headers, body.as_bytes()).expect("publish");
            assert_eq!(
                answer.status,
                202,
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
        });
    });
}

fn checkpoint_length(addr: SocketAddr) -> u64 {
    let answer = request(addr, "GET", "/v1/fetch/checkpoint", &[], b"").expect("checkpoint");
    serde_json::from_slice::<Value>(&answer.body).expect("json")["contents"]["logLength"]
        .as_u64()
        .expect("length")
}

fn mirror_status(addr: SocketAddr) -> Value {
    request(addr, "GET", "/cairn/v1/mirrors", &[], b"")
        .ok()
        .and_then(|a| serde_json::from_slice::<Value>(&a.body).ok())
        .map(|v| v["mirrors"][0].clone())
        .unwrap_or(Value::Null)
}

/// Waits until B's mirror verified A's checkpoint of `length` and holds
/// `packages`; the time it took.
fn wait_mirrored(b: SocketAddr, length: u64, packages: u64, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let status = mirror_status(b);
        if status["checkpointLength"].as_u64() >= Some(length)
            && status["packagesHeld"].as_u64() >= Some(packages)
        {
            return since.elapsed();
        }
        assert!(status["stopped"].is_null(), "the mirror stopped: {status}");
        assert!(
            Instant::now() < deadline,
            "the mirror did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

/// The tiles a client with no cache reads to prove leaf `index` in a tree
/// of `size` leaves: at each level, the tile holding the leaf's ancestor
/// and the right edge's (partial) tile; as tile paths.
fn tiles_for(index: u64, size: u64) -> Vec<String> {
    let mut paths = Vec::new();
    let mut level = 0u32;
    loop {
        let stored = size >> (8 * level);
        if stored == 0 {
            break;
        }
        let tile_of = |n: u64| {
            let number = n / 256;
            let width = (stored - number * 256).min(256);
            let mut digits = format!("{number:03}");
            // x-prefixed groups of three digits, as tlog-tiles writes them.
            let mut parts = Vec::new();
            while digits.len() > 3 {
                let split = digits.len() - 3;
                parts.insert(0, digits[split..].to_owned());
                digits.truncate(split);
            }
            parts.insert(0, format!("{digits:0>3}"));
            let last = parts.len() - 1;
            let joined: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if i == last {
                        p.clone()
                    } else {
                        format!("x{p}")
                    }
                })
                .collect();
            let path = format!("tile/{level}/{}", joined.join("/"));
            if width < 256 {
                format!("{path}.p/{width}")
            } else {
                path
            }
        };
        let own = tile_of(index >> (8 * level));
        let edge = tile_of(stored - 1);
        paths.push(own.clone());
        if edge != own {
            paths.push(edge);
        }
        if stored <= 256 {
            break;
        }
        level += 1;
    }
    paths
}

fn main() {
    let options = options();
    let scratch = tempfile::tempdir().expect("scratch");
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let (addr_a, addr_b) = (free_on([127, 0, 0, 2]), free_on([127, 0, 0, 3]));
    // No rate limits on A: the bench publishes from one token as fast as
    // it can (a mirror's own requests are few).
    let a = serve(
        &data_a,
        addr_a,
        &[
            "--namespace",
            "bench",
            "--rate-limit-ip",
            "0",
            "--rate-limit-token",
            "0",
        ],
    );
    let token = {
        let output = cairn()
            .args([
                "token",
                "create",
                "--account",
                "bench",
                "--scope",
                "publish:bench/*",
            ])
            .arg("--data-dir")
            .arg(&data_a)
            .output()
            .expect("token");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let bearer = format!("Bearer {token}");
    let key = PrivateKey::generate();
    let module = cairn_interop::warg::wasm("cairn mirror bench");
    let digest = Hash::of(&module);
    let names: Vec<PackageName> = (0..options.packages)
        .map(|i| PackageName::new(format!("bench:p{i}")).expect("name"))
        .collect();

    // A: the first package uploads the content; the rest name it.
    let started = Instant::now();
    let firsts: Vec<Envelope<PackageRecord>> = names
        .par_iter()
        .map(|_| sign(&key, None, Version::new(1, 0, 0), digest, 1_800_000_000))
        .collect();
    let first = (names[0].clone(), firsts[0].clone());
    publish_all(addr_a, &bearer, std::slice::from_ref(&first));
    let log = LogId::package(&names[0]);
    let uploaded = request(
        addr_a,
        "POST",
        &format!(
            "/v1/package/{log}/record/{}/content/{digest}",
            firsts[0].record_id()
        ),
        &[],
        &module,
    )
    .expect("upload");
    assert_eq!(uploaded.status, 201);
    let rest: Vec<(PackageName, Envelope<PackageRecord>)> = names[1..]
        .iter()
        .cloned()
        .zip(firsts[1..].iter().cloned())
        .collect();
    publish_all(addr_a, &bearer, &rest);
    let deadline = Instant::now() + Duration::from_secs(600);
    while checkpoint_length(addr_a) < options.packages as u64 + 1 {
        assert!(Instant::now() < deadline, "A did not checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    let length = checkpoint_length(addr_a);
    println!(
        "origin: {} packages ({} records) published in {:.1} s",
        options.packages,
        length,
        started.elapsed().as_secs_f64()
    );

    // B mirrors the namespace through the counting proxy.
    let proxy = Proxy::start(addr_a);
    cairn_store::DataDir::create(&data_b).expect("data dir");
    let added = cairn()
        .args(["mirror", "add", &format!("http://{}", proxy.addr)])
        .args([
            "--namespace",
            "bench",
            "--content",
            "all",
            "--interval",
            "1",
        ])
        .arg("--data-dir")
        .arg(&data_b)
        .output()
        .expect("mirror add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let since = Instant::now();
    let b = serve(&data_b, addr_b, &[]);
    let full = wait_mirrored(addr_b, length, options.packages as u64, since);
    let (down, up) = proxy.take();
    println!(
        "full mirror of {} packages: {:.2} s, {:.0} KiB from the origin ({:.0} B/package), \
         {:.0} KiB to it; mirror state on disk {:.0} KiB; B peak RSS {:.0} MiB",
        options.packages,
        full.as_secs_f64(),
        kib(down),
        down as f64 / options.packages as f64,
        kib(up),
        kib(dir_bytes(&data_b.join("mirrors"))),
        cairn_interop::report::peak_rss_mib(Some(b.id()))
    );

    // Catch-up after `new` records, then after a tenth as many.
    let mut next = 1u64;
    let mut heads: Vec<RecordId> = firsts.iter().map(Envelope::record_id).collect();
    let catch_up = |count: usize, heads: &mut Vec<RecordId>, next: &mut u64| {
        let records: Vec<(PackageName, Envelope<PackageRecord>)> = (0..count)
            .into_par_iter()
            .map(|i| {
                let envelope = sign(
                    &key,
                    Some(heads[i]),
                    Version::new(1, 0, *next),
                    digest,
                    1_800_000_000 + *next as i64,
                );
                (names[i].clone(), envelope)
            })
            .collect();
        for (i, (_, envelope)) in records.iter().enumerate() {
            heads[i] = envelope.record_id();
        }
        *next += 1;
        let target = checkpoint_length(addr_a) + count as u64;
        proxy.take();
        let since = Instant::now();
        publish_all(addr_a, &bearer, &records);
        while checkpoint_length(addr_a) < target {
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = wait_mirrored(addr_b, target, options.packages as u64, since);
        let (down, up) = proxy.take();
        println!(
            "catch-up after {count} new records: {:.2} s from the first publish, \
             {:.0} KiB from the origin ({:.0} B/record), {:.0} KiB to it",
            took.as_secs_f64(),
            kib(down),
            down as f64 / count as f64,
            kib(up)
        );
    };
    catch_up(options.new, &mut heads, &mut next);
    catch_up((options.new / 10).max(1), &mut heads, &mut next);

    // Proof sizes for one record, three ways.
    let size = checkpoint_length(addr_a);
    let index = size / 2;
    let warg = request(
        addr_a,
        "POST",
        "/v1/proof/inclusion",
        &[("content-type", "application/json")],
        json!({ "logLength": size, "leafs": [index] })
            .to_string()
            .as_bytes(),
    )
    .expect("inclusion");
    assert_eq!(warg.status, 200);
    let checkpoint = request(addr_a, "GET", "/v1/fetch/checkpoint", &[], b"").expect("checkpoint");
    let proof = request(
        addr_a,
        "GET",
        &format!("/tlog/proof/{}/1.0.0", names[0]),
        &[],
        b"",
    )
    .expect("proof");
    assert_eq!(proof.status, 200);
    let note = request(addr_a, "GET", "/tlog/checkpoint", &[], b"").expect("note");
    let mut tile_bytes = 0usize;
    let tiles = tiles_for(index, size);
    for tile in &tiles {
        let answer = request(addr_a, "GET", &format!("/tlog/{tile}"), &[], b"").expect("tile");
        assert_eq!(answer.status, 200, "{tile}");
        tile_bytes += answer.body.len();
    }
    println!(
        "inclusion of record {index} of {size}: Warg API {} B in 2 requests (checkpoint {} B + \
         proof {} B, with the map proof); offline tlog-proof {} B (0 requests once it travels \
         with the file; 1 to fetch it); C2SP tiles {} B in {} requests (note {} B + {} tiles, \
         no cache)",
        checkpoint.body.len() + warg.body.len(),
        checkpoint.body.len(),
        warg.body.len(),
        proof.body.len(),
        note.body.len() + tile_bytes,
        tiles.len() + 1,
        note.body.len(),
        tiles.len()
    );
    stop(b);
    stop(a);
}
