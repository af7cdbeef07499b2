//! Witnesses (issue 17): three `cairn witness` services on their own
//! loopback addresses cosign the registry's C2SP checkpoints as they come;
//! `/tlog/checkpoint` serves the latest one a quorum cosigned; a witness
//! refuses what is not consistent with what it cosigned (and keeps the
//! evidence), and keeps its state across a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_interop::http::Http;
use cairn_interop::server::{TestOptions, TestServer};
use cairn_interop::witness::RunningWitness;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, HashAlgorithm, LogId, PackageName, PrivateKey, Timestamp};
use cairn_registry::RecordStatus;
use cairn_server::TlogKey;
use cairn_store::DataDir;
use cairn_transparency::note::{Checkpoint, Note, Signer};
use cairn_transparency::witness::{AddCheckpoint, Policy};
use reqwest::{Method, StatusCode};

fn publish(server: &TestServer, from: u64, count: u64) -> u64 {
    let key = PrivateKey::generate();
    let answers: Vec<_> = (from..from + count)
        .map(|i| {
            let name: PackageName = format!("acme:w{i}").parse().expect("name");
            let record = Envelope::sign(
                &key,
                PackageRecord {
                    prev: None,
                    version: 0,
                    timestamp: Timestamp::new(1_800_000_000, i as i32),
                    entries: vec![PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    }],
                },
            );
            server
                .registry
                .submit(name.clone(), LogId::package(&name), record)
        })
        .collect();
    let mut last = 0;
    for answer in answers {
        match answer.wait().expect("accepted") {
            RecordStatus::Processing { index } | RecordStatus::Published { index } => {
                last = last.max(index)
            }
            other => panic!("not sequenced: {other:?}"),
        }
    }
    last
}

/// The served checkpoint once it is cosigned by the quorum and covers
/// `index`.
fn witnessed(http: &Http, policy: &Policy, index: u64) -> (Note, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = http.send(Method::GET, "/tlog/checkpoint", &[], Vec::new());
        if reply.status == StatusCode::OK {
            let note = Note::parse(&reply.body).expect("a note");
            if let Ok((checkpoint, by)) = policy.check(&note) {
                if checkpoint.size > index {
                    return (note, by);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint covering {index} was witnessed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_witnesses_cosign_the_registrys_checkpoints_and_refuse_a_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("registry");
    let (log_key, _) = DataDir::create(&data)
        .expect("data dir")
        .log_key(None, || "registry.test/tlog".into())
        .expect("log key");
    let log_vkey = log_key.verifier().to_string();
    let ips = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]];
    let mut witnesses: Vec<RunningWitness> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            RunningWitness::start(
                *ip,
                0,
                &dir.path().join(format!("w{i}")),
                &format!("witness.test/w{i}"),
                &log_vkey,
            )
        })
        .collect();
    let policy_text = format!(
        "log {log_vkey}\n{}\ngroup two 2 w0 w1 w2\nquorum two\n",
        witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| format!("witness w{i} {} {}", w.key, w.url))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let policy = Policy::parse(&policy_text).expect("policy");
    let mut options = TestOptions::default();
    let signer = Signer::parse(&log_key.encode()).expect("key");
    options.server.tlog = Some(Arc::new(
        TlogKey::new(signer)
            .with_witnesses(policy.clone())
            .expect("witnesses with URLs"),
    ));
    let server = TestServer::start_options(&data, &["acme"], options);
    let http = Http::new(&server.url);

    // Checkpoints are cosigned by all three as they come.
    for round in 0..3 {
        let index = publish(&server, round * 100, 100);
        let (note, by) = witnessed(&http, &policy, index);
        assert_eq!(by.len(), 3, "cosigned by {by:?}");
        let checkpoint = Checkpoint::parse(&note.text).expect("checkpoint");
        let warg = server
            .registry
            .checkpoint_at(checkpoint.size)
            .expect("read")
            .expect("a Warg checkpoint of that size");
        assert_eq!(warg.contents.checkpoint.log_root, checkpoint.root);
    }

    // One witness down: two still make the quorum.
    let down = witnesses.remove(2);
    let port = down.port();
    drop(down);
    let index = publish(&server, 300, 50);
    let (_, by) = witnessed(&http, &policy, index);
    assert_eq!(by, vec!["w0".to_owned(), "w1".to_owned()]);

    // The witness restarted on the same address holds what it held: the
    // registry learns its size from the conflict and catches it up.
    witnesses.push(RunningWitness::start(
        ips[2],
        port,
        &dir.path().join("w2"),
        "witness.test/w2",
        &log_vkey,
    ));
    let index = publish(&server, 350, 50);
    let (note, by) = witnessed(&http, &policy, index);
    assert_eq!(by.len(), 3, "the restarted witness caught up: {by:?}");
    let held = Checkpoint::parse(&note.text).expect("checkpoint");

    // The log lying: another root at a larger size, signed with its key.
    let w0 = Http::new(&witnesses[0].url);
    let fork = |old: u64, size: u64, root| {
        let text = Checkpoint {
            origin: "registry.test/tlog".into(),
            size,
            root,
            extensions: Vec::new(),
        }
        .text();
        let mut note = Note::new(text).expect("note");
        let signature = log_key.sign(&note.text);
        note.signatures.push(signature);
        let body = AddCheckpoint {
            old,
            proof: vec![held.root],
            note,
        }
        .body();
        w0.send(Method::POST, "/add-checkpoint", &[], body.into_bytes())
    };
    let refused = fork(
        held.size,
        held.size + 1,
        cairn_transparency::hash_leaf(b"fork"),
    );
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let evidence = std::fs::read_dir(dir.path().join("w0").join("evidence"))
        .expect("evidence dir")
        .count();
    assert_eq!(evidence, 1, "the witness kept the evidence");
    // A stale old size: 409, with the size held.
    let stale = fork(1, held.size + 1, held.root);
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.header("content-type"), "text/x.tlog.size");
    let now_held: u64 = String::from_utf8_lossy(&stale.body)
        .trim()
        .parse()
        .expect("size");
    assert!(now_held >= held.size);
    // Not signed by the log: 403; an unknown log: 404; nonsense: 400.
    let other = Signer::from_seed(
        "registry.test/tlog",
        cairn_transparency::note::ED25519,
        [5; 32],
    )
    .expect("key");
    let mut forged = Note::new(
        Checkpoint {
            origin: "registry.test/tlog".into(),
            size: now_held + 1,
            root: held.root,
            extensions: Vec::new(),
        }
        .text(),
    )
    .expect("note");
    forged.signatures.push(other.sign(&forged.text));
    let body = AddCheckpoint {
        old: now_held,
        proof: Vec::new(),
        note: forged.clone(),
    };
    let reply = w0.send(
        Method::POST,
        "/add-checkpoint",
        &[],
        body.body().into_bytes(),
    );
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let unknown = Signer::from_seed(
        "elsewhere.test/log",
        cairn_transparency::note::ED25519,
        [6; 32],
    )
    .expect("key");
    let mut stranger = Note::new(
        Checkpoint {
            origin: "elsewhere.test/log".into(),
            size: 1,
            root: held.root,
            extensions: Vec::new(),
        }
        .text(),
    )
    .expect("note");
    stranger.signatures.push(unknown.sign(&stranger.text));
    let reply = w0.send(
        Method::POST,
        "/add-checkpoint",
        &[],
        AddCheckpoint {
            old: 0,
            proof: Vec::new(),
            note: stranger,
        }
        .body()
        .into_bytes(),
    );
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = w0.send(Method::POST, "/add-checkpoint", &[], b"old x\n\n".to_vec());
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // The registry's own next checkpoint still goes through.
    let index = publish(&server, 400, 10);
    let (_, by) = witnessed(&http, &policy, index);
    assert_eq!(by.len(), 3);

    // A client with the policy trusts the registry; one whose policy asks
    // for a witness that never saw this log refuses it, and keeps why.
    let client_dir = dir.path().join("client");
    let client = |policy: Policy| {
        cairn_client::Client::open(
            &server.url,
            None,
            &client_dir.join("state"),
            &client_dir.join("cache"),
            Arc::new(cairn_client::api::NoProgress),
        )
        .expect("client")
        .with_witness_policy(policy)
    };
    let name: PackageName = "acme:w7".parse().expect("name");
    client(policy.clone())
        .update(std::slice::from_ref(&name), false)
        .expect("witnessed: trusted");
    let stranger = Signer::from_seed(
        "witness.test/never",
        cairn_transparency::note::COSIGNATURE,
        [8; 32],
    )
    .expect("key");
    let strict_text = format!(
        "{}witness never {}\ngroup with-never all two never\nquorum with-never\n",
        policy_text.replace("quorum two\n", ""),
        stranger.verifier()
    );
    let strict = Policy::parse(&strict_text).expect("policy");
    let refused = client(strict)
        .update(std::slice::from_ref(&name), true)
        .expect_err("a quorum not met is refused");
    assert!(refused.to_string().contains("witness policy"), "{refused}");
    server.stop();
}
