//! Crash and fault runs: `cairn serve` killed with SIGKILL again and again
//! under mixed Warg and OCI publish load, then checked.
//!
//! Each cycle starts the server, lets 4 clients publish (a Warg init and
//! release with its content uploaded; an OCI push of a Wasm artifact to a
//! version tag) for a random 200–1000 ms (a push acknowledged over OCI waits for its checkpoint), and kills it. Optional faults in
//! some cycles: another process holds the database's write lock for a
//! while (`--lock`), or the data directory sits on a small tmpfs that fills
//! up (`--disk-full`, needs root to mount). After the last cycle a clean
//! start is checked:
//! - every acknowledged Warg publish is published, once, and its content
//!   downloads with its digest;
//! - every acknowledged OCI push has its tag, its blobs, and its release
//!   in the package log; no version tag exists without its release, and no
//!   OCI release without its tag (nothing half-present);
//! - every checkpoint seen before a kill is consistent with the last one
//!   and verifies;
//! - every content and blob file hashes to its name.
//!
//! `cargo bench -p cairn-cli --bench crash -- [--kills N] [--lock] [--disk-full]`
//! (200 kills by default; `.ci/run` runs 5 of each kind as a smoke test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_protocol::{Hash, LogId, PackageName, PrivateKey};
use serde_json::{json, Value};

use cairn_interop::warg::wasm;
use common::publish::Publisher;
use common::{admin_token, free_addr, http, request, Tmpfs};

/// Answers that said the disk is full (507).
static FULL: AtomicUsize = AtomicUsize::new(0);

/// Counts a 507.
fn count_full(answer: &common::Response) {
    if answer.status == 507 {
        FULL.fetch_add(1, Ordering::Relaxed);
    }
}

/// The load comes from one address: no rate limits.
const UNLIMITED: &[&str] = &["--rate-limit-ip", "0", "--rate-limit-token", "0"];

fn sha256(bytes: &[u8]) -> String {
    Hash::of(bytes).to_string()
}

/// What the clients saw acknowledged, and what they tried.
#[derive(Default)]
struct Seen {
    /// Warg: package, record id, content.
    warg: Vec<(PackageName, String, Vec<u8>)>,
    /// OCI: repository, manifest digest, layer digest.
    oci: Vec<(String, String, String)>,
    /// Every OCI repository a push was tried in.
    oci_tried: BTreeSet<String>,
    /// Checkpoints read before kills.
    checkpoints: Vec<Value>,
}

struct Options {
    kills: usize,
    lock: bool,
    disk_full: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let mut options = Options {
        kills: 200,
        lock: false,
        disk_full: false,
    };
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--kills" => {
                options.kills = args
                    .get(i + 1)
                    .and_then(|n| n.parse().ok())
                    .expect("--kills N");
                i += 1;
            }
            "--lock" => options.lock = true,
            "--disk-full" => options.disk_full = true,
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    options
}

fn main() {
    let options = options();
    let scratch = tempfile::tempdir().expect("scratch");
    let _tmpfs = if options.disk_full {
        match Tmpfs::mount(scratch.path(), "24m") {
            Some(t) => Some(t),
            None => {
                eprintln!("--disk-full needs root to mount a tmpfs; it cannot run here");
                std::process::exit(2);
            }
        }
    } else {
        None
    };
    let data = scratch.path().join("data");
    let addr = free_addr();
    let key = PrivateKey::generate();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let counter = Arc::new(AtomicUsize::new(0));
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move |below: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % below
    };
    let started = Instant::now();
    let mut refused_while_locked = 0usize;
    for cycle in 0..options.kills {
        let mut server = common::start(&data, addr, UNLIMITED, Stdio::null());
        if let Ok((200, cp)) = http(addr, "GET", "/v1/fetch/checkpoint", None) {
            seen.lock().expect("lock").checkpoints.push(cp);
        }
        let bearer = format!("Bearer {}", admin_token(&data));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let client = Publisher {
                    addr,
                    bearer: bearer.clone(),
                    key: key.clone(),
                    observe: count_full,
                };
                let (stop, seen, counter) = (stop.clone(), seen.clone(), counter.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let content = wasm(&format!("crash {n}"));
                        if worker % 2 == 0 {
                            let name: PackageName = format!("example:w{n}").parse().expect("name");
                            if let Some(id) = client.warg_publish(&name, &content) {
                                seen.lock().expect("lock").warg.push((name, id, content));
                            }
                        } else {
                            let repo = format!("example/o{n}");
                            seen.lock().expect("lock").oci_tried.insert(repo.clone());
                            if let Some((manifest, layer)) = client.oci_push(&repo, &content) {
                                seen.lock().expect("lock").oci.push((repo, manifest, layer));
                            }
                        }
                    }
                })
            })
            .collect();
        // Fault: another process holds the database's write lock.
        let locker = (options.lock && cycle % 2 == 1).then(|| {
            let conn = rusqlite::Connection::open(data.join("cairn.sqlite3")).expect("open");
            conn.execute_batch("BEGIN EXCLUSIVE").ok();
            conn
        });
        std::thread::sleep(Duration::from_millis(200 + random(800)));
        if let Some(conn) = locker {
            let answer = request(addr, "GET", "/readyz", &[], b"");
            if answer.is_ok_and(|a| a.status != 200) {
                refused_while_locked += 1;
            }
            drop(conn);
        }
        // No new requests from here; those in flight are cut by the kill.
        stop.store(true, Ordering::Relaxed);
        server.kill().expect("kill -9");
        server.wait().expect("reap");
        for w in workers {
            w.join().expect("worker");
        }
    }
    let loaded = started.elapsed();
    // The operator frees space (the tmpfs grows) before the final start, so
    // what waited for room can be checkpointed.
    if let Some(tmpfs) = &_tmpfs {
        assert!(tmpfs.grow("96m"), "cannot grow the tmpfs");
    }

    // The checks, on a clean start.
    let mut server = common::start(&data, addr, UNLIMITED, Stdio::null());
    let seen = seen.lock().expect("lock");
    let (_, latest) = http(addr, "GET", "/v1/fetch/checkpoint", None).expect("checkpoint");
    let length = latest["contents"]["logLength"].as_u64().expect("length");
    // Published records take a moment after a restart (content that had
    // arrived is sequenced): wait for a checkpoint that covers the log.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, id, content) in &seen.warg {
        let path = format!("/v1/package/{}/record/{id}", LogId::package(name));
        loop {
            let (status, answer) = http(addr, "GET", &path, None).expect("status");
            assert_eq!(status, 200, "acknowledged {name} is missing: {answer}");
            if answer["state"] == "published" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "acknowledged {name} is {answer}, not published"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let bytes = request(
            addr,
            "GET",
            &format!(
                "/content/sha256-{}",
                Hash::of(content).to_string().trim_start_matches("sha256:")
            ),
            &[],
            b"",
        )
        .expect("download");
        assert_eq!(bytes.status, 200);
        assert_eq!(bytes.body, *content, "{name}: content differs");
    }
    let acknowledged: BTreeMap<&str, (&str, &str)> = seen
        .oci
        .iter()
        .map(|(r, m, l)| (r.as_str(), (m.as_str(), l.as_str())))
        .collect();
    let mut half_present = Vec::new();
    for repo in &seen.oci_tried {
        let tag = request(
            addr,
            "GET",
            &format!("/v2/{repo}/manifests/1.0.0"),
            &[],
            b"",
        )
        .expect("manifest");
        let name: PackageName = repo.replacen('/', ":", 1).parse().expect("name");
        let (status, package) = http(
            addr,
            "POST",
            "/v1/fetch/logs",
            Some(&json!({
                "logLength": length,
                "packages": { LogId::package(&name).to_string(): null },
            })),
        )
        .expect("fetch");
        let released = status == 200
            && package["packages"][LogId::package(&name).to_string()]
                .as_array()
                .is_some_and(|records| !records.is_empty());
        match acknowledged.get(repo.as_str()) {
            Some((manifest, layer)) => {
                assert_eq!(tag.status, 200, "acknowledged push {repo} lost its tag");
                assert_eq!(sha256(&tag.body), *manifest, "{repo}: tag moved");
                let blob = request(addr, "GET", &format!("/v2/{repo}/blobs/{layer}"), &[], b"")
                    .expect("blob");
                assert_eq!(sha256(&blob.body), *layer, "{repo}: layer differs");
                assert!(
                    released,
                    "acknowledged push {repo} has no release in its log"
                );
            }
            None => {
                if (tag.status == 200) != released {
                    half_present.push(format!(
                        "{repo}: tag {} but release {}",
                        tag.status, released
                    ));
                }
            }
        }
    }
    assert!(
        half_present.is_empty(),
        "half-present pushes: {half_present:#?}"
    );
    for cp in &seen.checkpoints {
        let from = cp["contents"]["logLength"].as_u64().expect("length");
        let (status, answer) = http(
            addr,
            "POST",
            "/v1/proof/consistency",
            Some(&json!({ "from": from, "to": length })),
        )
        .expect("consistency");
        assert_eq!(status, 200, "checkpoint at {from}: {answer}");
        let (status, answer) =
            http(addr, "POST", "/v1/verify/checkpoint", Some(cp)).expect("verify");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["checkpoint"], "verified");
    }
    let mut files = 0;
    for dir in ["content/sha256", "blobs/sha256"] {
        let Ok(entries) = std::fs::read_dir(data.join(dir)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let bytes = std::fs::read(entry.path()).expect("read");
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(
                sha256(&bytes).trim_start_matches("sha256:"),
                name,
                "{dir}/{name} does not match its digest"
            );
            files += 1;
        }
    }
    server.kill().expect("kill");
    server.wait().expect("reap");
    println!(
        "crash: {} kills{}{} in {:.1?}: {} Warg publishes and {} OCI pushes acknowledged \
         (of {} tried), all present once; {} checkpoints consistent with the final one (log \
         length {length}); {files} content and blob files match their digests{}",
        options.kills,
        if options.lock {
            ", database locked by another process in half the cycles"
        } else {
            ""
        },
        if options.disk_full {
            format!(
                ", on a 24 MiB tmpfs ({} answers said the disk was full)",
                FULL.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        },
        loaded,
        seen.warg.len(),
        seen.oci.len(),
        counter.load(Ordering::Relaxed),
        seen.checkpoints.len(),
        if options.lock {
            format!("; /readyz said unready in {refused_while_locked} locked cycles")
        } else {
            String::new()
        },
    );
}
