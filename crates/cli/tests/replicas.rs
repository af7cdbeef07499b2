//! Three `cairn serve` replicas on one PostgreSQL database and one S3
//! bucket (moto): clients publish through all three at once (Warg and
//! OCI), the sequencing replica is killed with SIGKILL mid-load, another
//! takes over, and then:
//! - every acknowledged record is in the log exactly once, with no gap;
//! - no two checkpoints of one length differ, and every checkpoint any
//!   replica served is consistent with the last one and verifies;
//! - every acknowledged Warg release and OCI push, and its content, is
//!   readable from every replica (the killed one restarted as a follower);
//! - the `cairn` client and the reference `warg` client verify and
//!   download from followers.
//!
//! PostgreSQL 15 (`initdb`, `pg_ctl`) and moto's `moto_server` are
//! started by the test on 127.0.0.1; without them it skips with a banner,
//! and fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run` runs it).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_interop::postgres::Postgres;
use cairn_interop::s3::Moto;
use cairn_interop::tools::{self, Tool};
use cairn_interop::warg::{wasm, Warg};
use cairn_protocol::{Hash, LogId, PackageName, PrivateKey};
use common::publish::Publisher;
use common::{admin_token, cairn, free_addr, http, request, wait_ready, User};
use serde_json::{json, Value};

struct Replica {
    addr: SocketAddr,
    data: std::path::PathBuf,
    child: Option<Child>,
    /// More `cairn serve` arguments.
    extra: Vec<String>,
}

impl Replica {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn start(&mut self, pg: &Postgres, s3: &Moto) {
        let log = std::fs::File::create(self.data.with_extension("log")).expect("log");
        let mut child = cairn()
            .args(["serve", "--namespace", "acme", "--listen"])
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--database-url", &pg.url])
            .args(["--content-url", &s3.url("registry")])
            .args(["--rate-limit-ip", "0", "--rate-limit-token", "0"])
            .args(&self.extra)
            .envs(s3.env())
            .env("CAIRN_LOG", "info")
            .env_remove("CAIRN_OPERATOR_KEY")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn cairn serve");
        wait_ready(&mut child, self.addr);
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `/readyz`: the role, and the leader's URL on a follower.
    fn role(&self) -> Option<(String, Value)> {
        let (status, body) = http(self.addr, "GET", "/readyz", None).ok()?;
        (status == 200).then(|| {
            (
                body["role"].as_str().unwrap_or("").to_owned(),
                body["leader"].clone(),
            )
        })
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn eventually(what: &str, limit: Duration, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[derive(Default)]
struct Seen {
    /// Warg: package, record id, content.
    warg: Vec<(PackageName, String, Vec<u8>)>,
    /// OCI: repository, manifest digest, content.
    oci: Vec<(String, String, Vec<u8>)>,
    /// Checkpoints served by any replica.
    checkpoints: Vec<Value>,
}

#[test]
fn replicas_share_one_database_and_bucket_and_survive_the_leader_dying() {
    let test = "replicas_share_one_database_and_bucket_and_survive_the_leader_dying";
    let (Some(pg), Some(s3)) = (Postgres::start(test), Moto::start(test)) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica {
            addr: free_addr(),
            data: scratch.path().join(format!("replica-{i}")),
            child: None,
            extra: Vec::new(),
        })
        .collect();

    // The first replica makes the operator key and the key-encryption key;
    // the others get copies (as an operator would deploy them).
    replicas[0].start(&pg, &s3);
    for i in 1..3 {
        std::fs::create_dir_all(&replicas[i].data).expect("data dir");
        for file in ["operator.key", "custodial.key"] {
            std::fs::copy(replicas[0].data.join(file), replicas[i].data.join(file))
                .expect("copy key");
        }
        replicas[i].start(&pg, &s3);
    }
    let leader_url = replicas[0].url();
    assert_eq!(replicas[0].role().expect("ready").0, "leader");
    for replica in &replicas[1..] {
        let (role, leader) = replica.role().expect("ready");
        assert_eq!(role, "follower");
        assert_eq!(leader, json!(leader_url));
    }
    let bearer = format!("Bearer {}", admin_token(&replicas[0].data));

    // Clients publish through every replica at once.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let client = Publisher {
                addr: addrs[worker % 3],
                bearer: bearer.clone(),
                key: PrivateKey::generate(),
                observe: |_| {},
            };
            let (stop, seen, counter, addrs) =
                (stop.clone(), seen.clone(), counter.clone(), addrs.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let content = wasm(&format!("replicated {n}"));
                    if worker % 2 == 0 {
                        let name: PackageName = format!("acme:w{n}").parse().expect("name");
                        if let Some(id) = client.warg_publish(&name, &content) {
                            seen.lock().expect("lock").warg.push((name, id, content));
                        }
                    } else {
                        let repo = format!("acme/o{n}");
                        if let Some((manifest, _)) = client.oci_push(&repo, &content) {
                            seen.lock()
                                .expect("lock")
                                .oci
                                .push((repo, manifest, content));
                        }
                    }
                    let from = addrs[n % addrs.len()];
                    if let Ok((200, cp)) = http(from, "GET", "/v1/fetch/checkpoint", None) {
                        seen.lock().expect("lock").checkpoints.push(cp);
                    }
                }
            })
        })
        .collect();

    let acknowledged = || {
        let seen = seen.lock().expect("lock");
        seen.warg.len() + seen.oci.len()
    };
    eventually(
        "publishes through the first leader",
        Duration::from_secs(60),
        || acknowledged() >= 30,
    );
    let before_kill = acknowledged();
    replicas[0].kill();
    let killed_at = Instant::now();
    let takeover = eventually("a follower takes the lead", Duration::from_secs(30), || {
        replicas[1..]
            .iter()
            .any(|r| r.role().is_some_and(|(role, _)| role == "leader"))
    });
    eventually(
        "publishes through the new leader",
        Duration::from_secs(60),
        || acknowledged() >= before_kill + 30,
    );
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    eprintln!(
        "took over in {:.2?} after the kill; {} publishes acknowledged ({} before the kill), \
         {:.1?} of load after it",
        takeover,
        acknowledged(),
        before_kill,
        killed_at.elapsed()
    );

    // The killed replica comes back, as a follower.
    replicas[0].start(&pg, &s3);
    eventually(
        "the restarted replica follows",
        Duration::from_secs(30),
        || {
            replicas[0]
                .role()
                .is_some_and(|(role, _)| role == "follower")
        },
    );

    let seen = seen.lock().expect("lock");
    // Exactly once, no gap.
    let duplicates = pg.psql(
        "SELECT count(*) FROM (SELECT log, record_id FROM records \
         GROUP BY log, record_id HAVING count(*) > 1) d",
    );
    assert_eq!(duplicates.trim(), "0", "records twice in the log");
    let shape = pg.psql("SELECT count(*) || ' ' || coalesce(max(idx) + 1, 0) FROM records");
    let (count, next) = shape.trim().split_once(' ').expect("count and next index");
    assert_eq!(count, next, "the log has gaps");

    // Every acknowledged publish is published, and readable everywhere.
    let last = wait_for_checkpoint_covering(&replicas, count.parse().expect("count"));
    for (name, id, content) in &seen.warg {
        let log = LogId::package(name);
        let digest = Hash::of(content).to_string();
        let hex = digest.trim_start_matches("sha256:");
        for replica in &replicas {
            let (status, record) = http(
                replica.addr,
                "GET",
                &format!("/v1/package/{log}/record/{id}"),
                None,
            )
            .expect("record");
            assert_eq!(status, 200, "{name} on {}: {record}", replica.url());
            assert_eq!(
                record["state"],
                "published",
                "{name} on {}: {record}",
                replica.url()
            );
            let file = request(
                replica.addr,
                "GET",
                &format!("/content/sha256-{hex}"),
                &[],
                b"",
            )
            .expect("content");
            assert_eq!(file.status, 200, "{name}'s content on {}", replica.url());
            assert_eq!(&file.body, content, "{name}'s content on {}", replica.url());
        }
    }
    for (repo, manifest, content) in &seen.oci {
        let layer = Hash::of(content).to_string();
        for replica in &replicas {
            let tag = request(
                replica.addr,
                "GET",
                &format!("/v2/{repo}/manifests/1.0.0"),
                &[],
                b"",
            )
            .expect("manifest");
            assert_eq!(tag.status, 200, "{repo} on {}", replica.url());
            assert_eq!(
                tag.header("docker-content-digest"),
                Some(manifest.as_str()),
                "{repo} on {}",
                replica.url()
            );
            let blob = request(
                replica.addr,
                "GET",
                &format!("/v2/{repo}/blobs/{layer}"),
                &[],
                b"",
            )
            .expect("blob");
            assert_eq!(blob.status, 200, "{repo}'s layer on {}", replica.url());
            assert_eq!(&blob.body, content);
        }
    }

    // One chain of checkpoints.
    let mut by_length: BTreeMap<u64, Value> = BTreeMap::new();
    for cp in &seen.checkpoints {
        let length = cp["contents"]["logLength"].as_u64().expect("length");
        if let Some(other) = by_length.insert(length, cp.clone()) {
            assert_eq!(&other, cp, "two different checkpoints of length {length}");
        }
    }
    let checker = replicas[2].addr;
    for (from, cp) in &by_length {
        let (status, answer) = http(
            checker,
            "POST",
            "/v1/proof/consistency",
            Some(&json!({ "from": from, "to": last })),
        )
        .expect("consistency");
        assert_eq!(status, 200, "checkpoint at {from}: {answer}");
        let (status, answer) =
            http(checker, "POST", "/v1/verify/checkpoint", Some(cp)).expect("verify");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["checkpoint"], "verified");
    }
    eprintln!(
        "{} Warg and {} OCI publishes checked on 3 replicas; {} checkpoints (of {} reads) consistent with the last ({last})",
        seen.warg.len(),
        seen.oci.len(),
        by_length.len(),
        seen.checkpoints.len()
    );

    // The clients verify what followers serve.
    let (name, _, content) = seen.warg.last().expect("a Warg publish");
    let alice = User::new(scratch.path(), "alice", &replicas[1].url(), None);
    alice.ok(&["get", &name.to_string(), "--output", "got.wasm"]);
    assert_eq!(&alice.read("got.wasm"), content);
    let bob = User::new(scratch.path(), "bob", &replicas[0].url(), None);
    bob.ok(&["get", &name.to_string(), "--output", "got.wasm"]);
    assert_eq!(&bob.read("got.wasm"), content);
    if let (Some(binary), Some(_)) = (
        tools::require(test, Tool::WARG_CLI),
        tools::require(test, Tool::SCRIPT),
    ) {
        let home = scratch.path().join("warg-reader");
        std::fs::create_dir_all(&home).expect("home");
        let reader = Warg { binary, home };
        reader.ok(&["config", "--registry", &replicas[2].url(), "--overwrite"]);
        reader.ok(&["download", &name.to_string(), "--output", "got.wasm"]);
        assert_eq!(
            &std::fs::read(reader.home.join("got.wasm")).expect("read"),
            content
        );
        // Then the same client against another replica: its checkpoint
        // must be consistent with the one it trusts.
        reader.ok(&["config", "--registry", &replicas[0].url(), "--overwrite"]);
        reader.ok(&["download", &name.to_string(), "--output", "again.wasm"]);
    }
}

/// Waits until every replica serves a checkpoint covering `length`
/// leaves; returns the length of the first one's.
fn wait_for_checkpoint_covering(replicas: &[Replica], length: u64) -> u64 {
    let served = |addr| {
        http(addr, "GET", "/v1/fetch/checkpoint", None)
            .ok()
            .and_then(|(_, cp)| cp["contents"]["logLength"].as_u64())
            .unwrap_or(0)
    };
    eventually(
        "every replica checkpoints the whole log",
        Duration::from_secs(30),
        || replicas.iter().all(|r| served(r.addr) >= length),
    );
    served(replicas[0].addr)
}

/// One server (SQLite) with its content in a bucket that presigns: a
/// content download is a redirect to the bucket, and the `cairn` client
/// follows it and verifies the bytes.
#[test]
fn content_in_a_bucket_downloads_by_presigned_redirect() {
    let test = "content_in_a_bucket_downloads_by_presigned_redirect";
    let Some(s3) = Moto::start(test) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let mut child = cairn()
        .args(["serve", "--namespace", "acme", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data)
        .args(["--content-url", &s3.url("single")])
        .args(["--content-redirect-seconds", "300"])
        .envs(s3.env())
        .env_remove("CAIRN_OPERATOR_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn serve");
    wait_ready(&mut child, addr);
    let publisher = Publisher {
        addr,
        bearer: format!("Bearer {}", admin_token(&data)),
        key: PrivateKey::generate(),
        observe: |_| {},
    };
    let content = wasm("in a bucket");
    let name: PackageName = "acme:bucket".parse().expect("name");
    let id = publisher.warg_publish(&name, &content).expect("published");
    let log = LogId::package(&name);
    eventually("the release is published", Duration::from_secs(30), || {
        http(addr, "GET", &format!("/v1/package/{log}/record/{id}"), None)
            .is_ok_and(|(_, record)| record["state"] == "published")
    });
    let hex = Hash::of(&content).to_string().replace("sha256:", "");
    let answer = request(addr, "GET", &format!("/content/sha256-{hex}"), &[], b"").expect("get");
    assert_eq!(answer.status, 307);
    let location = answer.header("location").expect("location").to_owned();
    assert!(
        location.starts_with(&s3.endpoint) && location.contains("X-Amz-Signature"),
        "{location}"
    );
    let user = User::new(scratch.path(), "alice", &format!("http://{addr}"), None);
    user.ok(&["get", "acme:bucket", "--output", "got.wasm"]);
    assert_eq!(user.read("got.wasm"), content);
    let _ = child.kill();
    let _ = child.wait();
}

/// PostgreSQL over TLS: with `sslmode=require` the server's certificate is
/// verified against `--database-ca-file`; without that CA the start fails
/// naming the certificate.
#[test]
fn postgres_over_tls_is_verified() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let test = "postgres_over_tls_is_verified";
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca = ca.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let cert = leaf.signed_by(&key, &ca, &ca_key).expect("certificate");
    let Some(pg) = Postgres::start_tls(test, &cert.pem(), &key.serialize_pem()) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let ca_file = scratch.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write CA");
    let url = format!("{}?sslmode=require", pg.url);

    let refused = cairn()
        .args(["serve", "--listen"])
        .arg(free_addr().to_string())
        .arg("--data-dir")
        .arg(scratch.path().join("untrusting"))
        .args(["--database-url", &url])
        .env_remove("PGSSLROOTCERT")
        .stdin(Stdio::null())
        .output()
        .expect("run cairn serve");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    let addr = free_addr();
    let mut child = cairn()
        .args(["serve", "--namespace", "acme", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(scratch.path().join("trusting"))
        .args(["--database-url", &url])
        .arg("--database-ca-file")
        .arg(&ca_file)
        .env_remove("CAIRN_OPERATOR_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cairn serve");
    wait_ready(&mut child, addr);
    let encrypted = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE s.ssl AND a.application_name = 'cairn'",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        encrypted.trim().parse::<u32>().expect("count") > 0,
        "no TLS session from cairn: {encrypted}"
    );
}

/// Replicas that serve TLS forward writes over HTTPS: a follower trusting
/// the leader's CA (`--replica-ca-file`) passes a publish on; one that does
/// not refuses to (502), since the leader's certificate is verified.
#[test]
fn replicas_serving_tls_forward_over_verified_https() {
    let test = "replicas_serving_tls_forward_over_verified_https";
    let Some(pg) = Postgres::start(test) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let data: Vec<_> = (0..3)
        .map(|i| scratch.path().join(format!("replica-{i}")))
        .collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let start = |i: usize, extra: &[&str]| -> Child {
        let log = data[i].with_extension("log");
        let mut child = cairn()
            .args(["serve", "--tls-dev", "--namespace", "acme", "--listen"])
            .arg(addrs[i].to_string())
            .arg("--data-dir")
            .arg(&data[i])
            .args(["--database-url", &pg.url])
            .args(extra)
            .env("CAIRN_LOG", "info")
            .env_remove("CAIRN_OPERATOR_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn cairn serve");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on https://") {
                break;
            }
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                panic!("replica {i} did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let mut children = vec![start(0, &[])];
    // The others share the leader's keys and its development certificate
    // (the CA and a certificate for 127.0.0.1).
    let ca = data[0].join("tls").join("ca.pem");
    for i in 1..3 {
        std::fs::create_dir_all(data[i].join("tls")).expect("tls dir");
        for file in ["operator.key", "custodial.key"] {
            std::fs::copy(data[0].join(file), data[i].join(file)).expect("copy key");
        }
        for entry in std::fs::read_dir(data[0].join("tls")).expect("tls") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), data[i].join("tls").join(entry.file_name()))
                .expect("copy tls");
        }
    }
    children.push(start(1, &["--replica-ca-file", ca.to_str().expect("path")]));
    children.push(start(2, &[]));

    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("ca")).expect("pem"),
        )
        .build()
        .expect("client");
    let bearer = format!("Bearer {}", admin_token(&data[0]));
    let key = PrivateKey::generate();
    let publish = |i: usize, name: &str| {
        let (path, body) = common::publish::init_request(&key, &name.parse().expect("name"));
        client
            .post(format!("https://{}{path}", addrs[i]))
            .header("authorization", &bearer)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("answer")
    };
    let role = |i: usize| -> Value {
        client
            .get(format!("https://{}/readyz", addrs[i]))
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    };
    assert_eq!(role(1)["role"], "follower");
    assert_eq!(role(1)["leader"], json!(format!("https://{}", addrs[0])));
    let trusted = publish(1, "acme:through-tls");
    assert_eq!(trusted.status().as_u16(), 202, "{:?}", trusted.text());
    let untrusted = publish(2, "acme:not-through-tls");
    assert_eq!(untrusted.status().as_u16(), 502);
    let message = untrusted.text().expect("body");
    assert!(message.contains("leading replica"), "{message}");
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// With witnesses, a follower serves the checkpoint the leader's witnesses
/// cosigned (it reads it from the leader and checks it against the policy
/// and its own log), not its own note without cosignatures.
#[test]
fn followers_serve_the_checkpoint_the_leaders_witnesses_cosigned() {
    let test = "followers_serve_the_checkpoint_the_leaders_witnesses_cosigned";
    let (Some(pg), Some(s3)) = (Postgres::start(test), Moto::start(test)) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let data: Vec<std::path::PathBuf> = (0..2)
        .map(|i| scratch.path().join(format!("replica-{i}")))
        .collect();
    let (log_key, _) = cairn_store::DataDir::create(&data[0])
        .expect("data dir")
        .log_key(None, || "replicas.test/tlog".into())
        .expect("log key");
    let witness = cairn_interop::witness::RunningWitness::start(
        [127, 0, 0, 4],
        0,
        &scratch.path().join("w"),
        "witness.test/w",
        &log_key.verifier().to_string(),
    );
    let policy_text = format!(
        "log {}\nwitness w {} {}\nquorum w\n",
        log_key.verifier(),
        witness.key,
        witness.url
    );
    let policy_path = scratch.path().join("policy.txt");
    std::fs::write(&policy_path, &policy_text).expect("policy");
    let policy = cairn_transparency::witness::Policy::parse(&policy_text).expect("policy");
    let extra = vec![
        "--witness-policy".to_owned(),
        policy_path.to_str().expect("path").to_owned(),
    ];
    let mut replicas: Vec<Replica> = data
        .iter()
        .map(|d| Replica {
            addr: free_addr(),
            data: d.clone(),
            child: None,
            extra: extra.clone(),
        })
        .collect();
    replicas[0].start(&pg, &s3);
    std::fs::create_dir_all(&replicas[1].data).expect("data dir");
    for file in ["operator.key", "custodial.key", "log.key"] {
        std::fs::copy(replicas[0].data.join(file), replicas[1].data.join(file)).expect("copy key");
    }
    replicas[1].start(&pg, &s3);
    assert_eq!(replicas[1].role().expect("ready").0, "follower");

    // Records published through the leader: the follower's C2SP
    // checkpoint comes to carry the witness's cosignature.
    let publisher = Publisher {
        addr: replicas[0].addr,
        bearer: format!("Bearer {}", admin_token(&replicas[0].data)),
        key: PrivateKey::generate(),
        observe: |_| {},
    };
    for i in 0..5 {
        let name: PackageName = format!("acme:w{i}").parse().expect("name");
        publisher
            .warg_publish(&name, &wasm(&format!("w{i}")))
            .expect("published");
    }
    let length = http(replicas[0].addr, "GET", "/v1/fetch/checkpoint", None)
        .expect("checkpoint")
        .1["contents"]["logLength"]
        .as_u64()
        .expect("length");
    eventually(
        "the follower to serve a cosigned checkpoint",
        Duration::from_secs(30),
        || {
            let Ok(answer) = request(replicas[1].addr, "GET", "/tlog/checkpoint", &[], b"") else {
                return false;
            };
            let Ok(note) = cairn_transparency::note::Note::parse(&answer.body) else {
                return false;
            };
            policy
                .check(&note)
                .is_ok_and(|(cp, by)| cp.size >= length && by == ["w".to_owned()])
        },
    );
}
