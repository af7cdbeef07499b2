//! `cairn serve` killed with SIGKILL while clients publish: every record the
//! server acknowledged (202) is there after a restart and gets published, and
//! the log still verifies against the checkpoints made before the kill.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use serde_json::{json, Value};

use common::{admin_token, free_addr, http, http_as};

fn start(data: &std::path::Path, addr: std::net::SocketAddr) -> std::process::Child {
    common::start(data, addr, &[], Stdio::null())
}

fn init_body(key: &PrivateKey, name: &PackageName) -> Value {
    let envelope = Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_700_000_000, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    );
    json!({
        "packageName": name.to_string(),
        "record": {
            "contentBytes": STANDARD.encode(envelope.content_bytes()),
            "keyId": envelope.key_id().to_string(),
            "signature": envelope.signature().to_string(),
        }
    })
}

#[test]
fn acknowledged_publishes_survive_kill_9() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let key = PrivateKey::generate();
    // (package, record id) of every acknowledged publish.
    let acknowledged: Arc<Mutex<Vec<(PackageName, String)>>> = Arc::default();
    let mut next_package = 0usize;
    let mut checkpoints: Vec<Value> = Vec::new();
    for round in 0..3 {
        let mut server = start(data.path(), addr);
        if let Ok((200, cp)) = http(addr, "GET", "/v1/fetch/checkpoint", None) {
            checkpoints.push(cp);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let stop = stop.clone();
                let acknowledged = acknowledged.clone();
                let key = key.clone();
                let token = admin_token(data.path());
                let first = next_package + worker * 100_000;
                std::thread::spawn(move || {
                    let mut i = first;
                    while !stop.load(Ordering::Relaxed) {
                        let name: PackageName =
                            format!("example:r{round}-p{i}").parse().expect("name");
                        let path = format!("/v1/package/{}/record", LogId::package(&name));
                        let body = init_body(&key, &name);
                        match http_as(addr, "POST", &path, Some(&body), Some(&token)) {
                            Ok((202, answer)) => {
                                let id = answer["recordId"].as_str().expect("record id").to_owned();
                                acknowledged.lock().expect("lock").push((name, id));
                            }
                            Ok((status, answer)) => panic!("unexpected {status}: {answer}"),
                            // The server was killed mid-request: not acknowledged.
                            Err(_) => {}
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400 + 150 * round as u64));
        server.kill().expect("kill -9");
        server.wait().expect("reap");
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        next_package += 1_000_000;
    }

    let mut server = start(data.path(), addr);
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 20,
        "too few publishes to mean anything: {}",
        acknowledged.len()
    );
    let (_, latest) = http(addr, "GET", "/v1/fetch/checkpoint", None).expect("checkpoint");
    let length = latest["contents"]["logLength"].as_u64().expect("length");
    assert!(
        length > acknowledged.len() as u64,
        "log length {length} < {}",
        acknowledged.len()
    );
    for (name, id) in &acknowledged {
        let path = format!("/v1/package/{}/record/{id}", LogId::package(name));
        let (status, answer) = http(addr, "GET", &path, None).expect("status");
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["state"], "published", "{name}: {answer}");
    }
    // Every checkpoint seen before a kill is a prefix of today's log.
    for cp in checkpoints {
        let from = cp["contents"]["logLength"].as_u64().expect("length");
        let (status, answer) = http(
            addr,
            "POST",
            "/v1/proof/consistency",
            Some(&json!({ "from": from, "to": length })),
        )
        .expect("consistency");
        assert_eq!(status, 200, "{answer}");
        let (status, answer) =
            http(addr, "POST", "/v1/verify/checkpoint", Some(&cp)).expect("verify");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["checkpoint"], "verified");
        assert_eq!(answer["signature"], "verified");
    }
    server.kill().expect("kill");
    server.wait().expect("reap");
    eprintln!(
        "{} acknowledged publishes survived 3 kills; log length {length}",
        acknowledged.len()
    );
}
