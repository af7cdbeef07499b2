//! The web UI's pages at scale: a registry of 20,000 packages
//! published in-process (init and release of real components with
//! metadata, one package with 40 releases, 5 of them yanked), indexed by
//! the server's own indexer, beside 100,000 synthetic packages with
//! realistic metadata and worlds in the same search index. Then each page
//! is fetched over loopback HTTP (keep-alive; the round trip bounds the
//! server time from above): `/`, `/search?q=`, `/search?exports=`,
//! `/packages/X`, `/namespaces/N`, `/log`, `/log/{i}`. Prints p50/p99 per
//! page and peak RSS.
//!
//! `cargo bench -p cairn-interop --bench pages` (CAIRN_BENCH_SMOKE=1: 2,000
//! indexed packages and 50 in the registry; CAIRN_BENCH_PACKAGES=N and
//! CAIRN_BENCH_REGISTRY=N: other sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_index::index::{Index, PackageUpdate};
use cairn_interop::components::{component, Meta};
use cairn_interop::http::Http;
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::synthetic::{package, Rng, INTERFACES, LICENSES, PACKAGES, WORDS};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::{RecordStatus, Registry};
use reqwest::Method;

const HTTP_WIT: &str = "package wasi:http@0.2.0;
interface incoming-handler { handle: func(); }
interface outgoing-handler { send: func(); }";

/// Signs and submits `entries` as the next record of `name`, uploads
/// `content` if the registry asks for it, and waits until it is in the
/// log. Answers the record id.
fn publish(
    registry: &Registry,
    key: &PrivateKey,
    name: &PackageName,
    prev: Option<cairn_protocol::RecordId>,
    entries: Vec<PackageEntry>,
    content: Option<&[u8]>,
) -> cairn_protocol::RecordId {
    let envelope = Envelope::sign(
        key,
        PackageRecord {
            prev,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, 0),
            entries,
        },
    );
    let id = envelope.record_id();
    let log_id = LogId::package(name);
    let status = registry
        .submit(name.clone(), log_id, envelope)
        .wait()
        .expect("submit");
    if let (RecordStatus::Sourcing { missing }, Some(bytes)) = (&status, content) {
        for digest in missing {
            let mut upload = registry
                .begin_upload(&log_id, &id, digest)
                .expect("begin upload");
            upload.write(bytes).expect("upload");
            registry
                .finish_upload(upload)
                .expect("finish upload")
                .wait()
                .expect("sequenced");
        }
    }
    id
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    let at = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[at.min(times.len() - 1)]
}

fn measure(http: &Http, label: &str, runs: usize, mut path: impl FnMut(&mut Rng) -> String) {
    let mut rng = Rng(0x5eed_cafe);
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0usize;
    for _ in 0..runs {
        let path = path(&mut rng);
        let start = Instant::now();
        let reply = http.send(Method::GET, &path, &[], Vec::new());
        times.push(start.elapsed());
        assert_eq!(
            reply.status.as_u16(),
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        bytes += reply.body.len();
    }
    let p50 = percentile(&mut times, 0.50);
    let p99 = percentile(&mut times, 0.99);
    println!(
        "{label:<36} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} KiB a page)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        bytes / runs.max(1) / 1024
    );
}

fn main() {
    let smoke = std::env::var_os("CAIRN_BENCH_SMOKE").is_some();
    let size = |var: &str, full: usize, small: usize| {
        std::env::var(var)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(if smoke { small } else { full })
    };
    let indexed = size("CAIRN_BENCH_PACKAGES", 100_000, 2_000);
    let in_registry = size("CAIRN_BENCH_REGISTRY", 20_000, 50);
    let runs = if smoke { 20 } else { 300 };

    let dir = tempfile::tempdir().expect("scratch");
    let index = Arc::new(Index::open(&dir.path().join("index.sqlite3")).expect("index"));
    let mut options = TestOptions::for_load();
    options.server.search = Some(index.clone());
    let server = TestServer::start_options(&dir.path().join("data"), &["acme"], options);
    let registry = server.registry.clone();

    // The registry's packages: real components, a few distinct ones.
    let started = Instant::now();
    let contents: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            component(
                &[HTTP_WIT],
                "package acme:app@1.0.0; world app {
                    import wasi:http/outgoing-handler@0.2.0;
                    export wasi:http/incoming-handler@0.2.0; }",
                &Meta {
                    description: Some(&format!("An HTTP app, flavour {i}")),
                    license: Some(LICENSES[i % LICENSES.len()]),
                    authors: Some("Acme <dev@acme.test>"),
                    source: Some("https://git.acme.test/app"),
                    ..Meta::default()
                },
            )
        })
        .collect();
    let threads = 8;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let registry = &registry;
            let contents = &contents;
            scope.spawn(move || {
                let key = PrivateKey::generate();
                for i in (t..in_registry).step_by(threads) {
                    let name: PackageName = format!("acme:app{i}").parse().expect("name");
                    let content = &contents[i % contents.len()];
                    publish(
                        registry,
                        &key,
                        &name,
                        None,
                        vec![
                            PackageEntry::Init {
                                hash_algorithm: HashAlgorithm::Sha256,
                                key: key.public_key().clone(),
                            },
                            PackageEntry::Release {
                                version: "1.0.0".parse().expect("version"),
                                content: Hash::of(content),
                            },
                        ],
                        Some(content),
                    );
                }
            });
        }
    });
    // One package with a long history: 40 releases, 5 yanked.
    let key = PrivateKey::generate();
    let big: PackageName = "acme:big".parse().expect("name");
    let mut prev = Some(publish(
        &registry,
        &key,
        &big,
        None,
        vec![PackageEntry::Init {
            hash_algorithm: HashAlgorithm::Sha256,
            key: key.public_key().clone(),
        }],
        None,
    ));
    for v in 0..40u64 {
        let content = &contents[v as usize % contents.len()];
        prev = Some(publish(
            &registry,
            &key,
            &big,
            prev,
            vec![PackageEntry::Release {
                version: semver::Version::new(1, v, 0),
                content: Hash::of(content),
            }],
            Some(content),
        ));
    }
    for v in 0..5u64 {
        prev = Some(publish(
            &registry,
            &key,
            &big,
            prev,
            vec![PackageEntry::Yank {
                version: semver::Version::new(1, v, 0),
            }],
            None,
        ));
    }
    let committed = registry.committed_length();
    let deadline = Instant::now() + Duration::from_secs(60);
    while registry.log_length() < committed {
        assert!(Instant::now() < deadline, "no checkpoint of every record");
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "published {} packages ({} records) in the registry in {:.1} s",
        in_registry + 1,
        committed,
        started.elapsed().as_secs_f64()
    );
    // The server's indexer, round by round, then the synthetic packages
    // (their index position left at the log's length).
    while cairn_server::search::index_round(&registry, None, &index).expect("index round") > 0 {}
    let started = Instant::now();
    let mut rng = Rng(0x1234_5678);
    let to = index.indexed_to().expect("position");
    let updates: Vec<PackageUpdate> = (0..indexed).map(|i| package(i, &mut rng, None)).collect();
    for batch in updates.chunks(1_000) {
        index.apply(batch, to).expect("apply");
    }
    index.checkpoint().expect("checkpoint");
    println!(
        "indexed {indexed} synthetic packages in {:.1} s ({} in the index in all)",
        started.elapsed().as_secs_f64(),
        indexed + in_registry + 1
    );

    let http = Http::new(&server.url);
    let length = registry.log_length();
    // Warm the connection and the caches once.
    http.send(Method::GET, "/", &[], Vec::new());
    println!("page (loopback round trip, {runs} runs each)");
    measure(&http, "/", runs, |_| "/".to_owned());
    measure(&http, "/search?q=<word>", runs, |rng| {
        format!("/search?q={}", rng.pick(WORDS))
    });
    measure(&http, "/search?exports=<interface>", runs, |rng| {
        format!(
            "/search?exports={}/{}",
            rng.pick(PACKAGES),
            rng.pick(INTERFACES)
        )
    });
    measure(&http, "/packages/acme:appN", runs, |rng| {
        format!("/packages/acme:app{}", rng.below(in_registry as u64))
    });
    measure(&http, "/packages/acme:big (46 records)", runs, |_| {
        "/packages/acme:big".to_owned()
    });
    measure(&http, "/namespaces/nsN", runs, |rng| {
        format!("/namespaces/ns{}?page={}", rng.below(500), 1 + rng.below(4))
    });
    measure(&http, "/namespaces/acme", runs, |_| {
        "/namespaces/acme".to_owned()
    });
    measure(&http, "/log", runs, |_| "/log".to_owned());
    measure(&http, "/log/{i}", runs, |rng| {
        format!("/log/{}", rng.below(length))
    });
    println!(
        "peak RSS {:.1} MiB (this process: registry, server, index and client)",
        cairn_interop::report::peak_rss_mib(None)
    );
    server.stop();
}
