//! Proofs that travel with files (issue 17, item 3): a release's offline
//! proof (`c2sp.org/tlog-proof@v1`) from `/tlog/proof/...`, from `cairn
//! proof`, and as an OCI referrer of the release's manifest; `cairn
//! verify-file` checks a file against it (offline) or against the registry;
//! `cairn audit` checks every component a `wkg.lock` pins, and again with
//! no network from the proofs it saved.

mod common;

use std::process::Stdio;

use cairn_interop::warg::wasm;
use cairn_protocol::Hash;
use common::{free_addr, get, publish_token, start, User};
use serde_json::Value;

#[test]
fn release_proofs_verify_files_offline_and_audit_a_wkg_lock() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let mut server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let alice = User::new(
        scratch.path(),
        "alice",
        &url,
        Some(&publish_token(&data, "publish:example/*")),
    );
    let carol = User::new(scratch.path(), "carol", &url, None);
    alice.ok(&["key", "new"]);
    let v1 = wasm("1.0.0");
    let v2 = wasm("2.0.0");
    alice.write("v1.wasm", &v1);
    alice.write("v2.wasm", &v2);
    let published = alice.publish("v1.wasm", "example:hello", "1.0.0");
    let index = published["registryIndex"].as_u64().expect("index");
    alice.publish("v2.wasm", "example:hello", "2.0.0");

    // The log's key, pinned once.
    let key = get(addr, "/tlog/key");
    assert_eq!(key.status, 200);
    let vkey = String::from_utf8(key.body).expect("text").trim().to_owned();

    // Nothing trusted: the error names both ways to say what to trust.
    carol.write("v1.wasm", &v1);
    carol.fails(
        &["verify-file", "v1.wasm", "--package", "example:hello@1.0.0"],
        2,
        "--log-key",
    );

    // `cairn proof` checks and saves it; `verify-file` uses it with no
    // registry at all (CAIRN_REGISTRY points nowhere).
    let saved = carol.json(&[
        "proof",
        "example:hello@1.0.0",
        "--log-key",
        &vkey,
        "-o",
        "v1.tlog-proof",
    ]);
    assert_eq!(saved["registryIndex"].as_u64(), Some(index));
    let text = String::from_utf8(carol.read("v1.tlog-proof")).expect("text");
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains(&format!("\nindex {index}\n")), "{text}");
    let offline = User::new(scratch.path(), "carol", "http://127.0.0.1:9", None);
    let verified = offline.json(&[
        "verify-file",
        "v1.wasm",
        "--proof",
        "v1.tlog-proof",
        "--log-key",
        &vkey,
    ]);
    assert_eq!(verified["package"], "example:hello");
    assert_eq!(verified["version"], "1.0.0");
    assert_eq!(verified["digest"], Hash::of(&v1).to_string());
    // Other bytes, another expected release, another log key: refused
    // with exit code 3.
    offline.write("v2.wasm", &v2);
    offline.fails(
        &[
            "verify-file",
            "v2.wasm",
            "--proof",
            "v1.tlog-proof",
            "--log-key",
            &vkey,
        ],
        3,
        "releases no content with digest",
    );
    offline.fails(
        &[
            "verify-file",
            "v1.wasm",
            "--proof",
            "v1.tlog-proof",
            "--package",
            "example:hello@2.0.0",
            "--log-key",
            &vkey,
        ],
        3,
        "released as 1.0.0, not 2.0.0",
    );
    let stranger = cairn_transparency::note::Signer::from_seed(
        vkey.split('+').next().expect("origin"),
        cairn_transparency::note::ED25519,
        [5; 32],
    )
    .expect("signer");
    offline.fails(
        &[
            "verify-file",
            "v1.wasm",
            "--proof",
            "v1.tlog-proof",
            "--log-key",
            &stranger.verifier().to_string(),
        ],
        3,
        "not trusted",
    );
    // A proof whose path was changed does not verify.
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("index "))
        .expect("index line");
    let forged_hash = base64_of(&[7u8; 32]);
    if lines[at + 1].is_empty() {
        lines.insert(at + 1, &forged_hash);
    } else {
        lines[at + 1] = &forged_hash;
    }
    offline.write(
        "forged.tlog-proof",
        format!("{}\n", lines.join("\n")).as_bytes(),
    );
    offline.fails(
        &[
            "verify-file",
            "v1.wasm",
            "--proof",
            "forged.tlog-proof",
            "--log-key",
            &vkey,
        ],
        3,
        "not in the checkpointed log",
    );

    // Online: the proof is fetched for the release named.
    let online = carol.json(&[
        "verify-file",
        "v2.wasm",
        "--package",
        "example:hello@2.0.0",
        "--log-key",
        &vkey,
    ]);
    assert_eq!(online["version"], "2.0.0");
    let missing = carol.fails(
        &[
            "verify-file",
            "v2.wasm",
            "--package",
            "example:hello@3.0.0",
            "--log-key",
            &vkey,
        ],
        1,
        "has no release 3.0.0",
    );
    assert!(missing.contains("404"), "{missing}");

    // The HTTP face: 400 for nonsense, 404 for what is not there.
    assert_eq!(get(addr, "/tlog/proof/example:hello/nope").status, 400);
    assert_eq!(get(addr, "/tlog/proof/not-a-name/1.0.0").status, 400);
    assert_eq!(get(addr, "/tlog/proof/example:nothing/1.0.0").status, 404);

    // The OCI face: the release's manifest has the proof as a referrer,
    // attached once.
    let manifest = get(addr, "/v2/example/hello/manifests/1.0.0");
    assert_eq!(manifest.status, 200);
    let subject = manifest
        .header("docker-content-digest")
        .expect("digest")
        .to_owned();
    let referrers = |addr| -> Value {
        let answer = get(addr, &format!("/v2/example/hello/referrers/{subject}"));
        assert_eq!(answer.status, 200);
        serde_json::from_slice(&answer.body).expect("index")
    };
    let index_json = referrers(addr);
    let proofs: Vec<&Value> = index_json["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["artifactType"] == "application/vnd.cairn.tlog-proof.v1")
        .collect();
    assert_eq!(proofs.len(), 1, "{index_json}");
    let proof_digest = proofs[0]["digest"].as_str().expect("digest").to_owned();
    let again = referrers(addr);
    assert_eq!(again, index_json, "attached once");
    // Asked for by many at once, a release's proof is still attached once.
    let v2_subject = get(addr, "/v2/example/hello/manifests/2.0.0")
        .header("docker-content-digest")
        .expect("digest")
        .to_owned();
    let path = format!("/v2/example/hello/referrers/{v2_subject}");
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| assert_eq!(get(addr, &path).status, 200));
        }
    });
    let listed: Value = serde_json::from_slice(&get(addr, &path).body).expect("index");
    let v2_proofs = listed["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["artifactType"] == "application/vnd.cairn.tlog-proof.v1")
        .count();
    assert_eq!(v2_proofs, 1, "{listed}");
    let proof_manifest = get(addr, &format!("/v2/example/hello/manifests/{proof_digest}"));
    assert_eq!(proof_manifest.status, 200);
    let proof_manifest: Value = serde_json::from_slice(&proof_manifest.body).expect("json");
    assert_eq!(proof_manifest["subject"]["digest"], subject.as_str());
    let layer = proof_manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_owned();
    let blob = get(addr, &format!("/v2/example/hello/blobs/{layer}"));
    assert_eq!(blob.status, 200);
    offline.write("oci.tlog-proof", &blob.body);
    offline.ok(&[
        "verify-file",
        "v1.wasm",
        "--proof",
        "oci.tlog-proof",
        "--package",
        "example:hello@1.0.0",
        "--log-key",
        &vkey,
    ]);

    // `cairn audit wkg.lock`: every pinned digest checked; one wrong
    // digest fails the audit (exit code 3) and names the component.
    let lock = |digest2: &str| {
        format!(
            "version = 1\n\n[[packages]]\nname = \"example:hello\"\nregistry = \"{addr}\"\n\n\
             [[packages.versions]]\nrequirement = \"=1.0.0\"\nversion = \"1.0.0\"\ndigest = \"{}\"\n\n\
             [[packages.versions]]\nrequirement = \"^2\"\nversion = \"2.0.0\"\ndigest = \"{digest2}\"\n",
            Hash::of(&v1)
        )
    };
    carol.write(
        "wkg.lock",
        lock(&Hash::of(b"not v2").to_string()).as_bytes(),
    );
    let failed = carol.run(&["audit", "--log-key", &vkey, "--proofs", "proofs"]);
    assert_eq!(failed.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(stdout.contains("ok      example:hello@1.0.0"), "{stdout}");
    assert!(stdout.contains("FAILED  example:hello@2.0.0"), "{stdout}");
    carol.write("wkg.lock", lock(&Hash::of(&v2).to_string()).as_bytes());
    let audit = carol.json(&["audit", "--log-key", &vkey, "--proofs", "proofs"]);
    assert_eq!(audit["failed"], 0, "{audit}");
    assert_eq!(audit["results"].as_array().map(Vec::len), Some(2));

    // With the registry gone, the saved proofs still audit the lock.
    let _ = server.kill();
    let _ = server.wait();
    let audit = carol.json(&[
        "audit",
        "--log-key",
        &vkey,
        "--proofs",
        "proofs",
        "--offline",
    ]);
    assert_eq!(audit["failed"], 0, "{audit}");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_witnessed_registry_serves_proofs_its_quorum_cosigned() {
    use cairn_interop::witness::RunningWitness;
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let (log_key, _) = cairn_store::DataDir::create(&data)
        .expect("data dir")
        .log_key(None, || "proofs.test/tlog".into())
        .expect("log key");
    let log_vkey = log_key.verifier().to_string();
    let witnesses: Vec<RunningWitness> = [[127, 0, 0, 2], [127, 0, 0, 3]]
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            RunningWitness::start(
                *ip,
                0,
                &scratch.path().join(format!("w{i}")),
                &format!("witness.test/w{i}"),
                &log_vkey,
            )
        })
        .collect();
    let witness_lines: Vec<String> = witnesses
        .iter()
        .enumerate()
        .map(|(i, w)| format!("witness w{i} {} {}", w.key, w.url))
        .collect();
    let policy = format!(
        "log {log_vkey}\n{}\ngroup both all w0 w1\nquorum both\n",
        witness_lines.join("\n")
    );
    let policy_path = scratch.path().join("policy.txt");
    std::fs::write(&policy_path, &policy).expect("policy");
    let addr = free_addr();
    let mut server = start(
        &data,
        addr,
        &["--witness-policy", policy_path.to_str().expect("path")],
        Stdio::null(),
    );
    let url = format!("http://{addr}");
    let alice = User::new(
        scratch.path(),
        "alice",
        &url,
        Some(&publish_token(&data, "publish:example/*")),
    );
    alice.ok(&["key", "new"]);
    alice.write("v1.wasm", &wasm("1.0.0"));
    alice.publish("v1.wasm", "example:hello", "1.0.0");

    // Until the witnesses cosigned a checkpoint holding it: 503, retry.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let proof = loop {
        let answer = get(addr, "/tlog/proof/example:hello/1.0.0");
        if answer.status == 200 {
            break answer.body;
        }
        assert_eq!(
            answer.status,
            503,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.header("retry-after").is_some());
        assert!(std::time::Instant::now() < deadline, "never cosigned");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    alice.write("v1.tlog-proof", &proof);
    let verified = alice.json(&[
        "verify-file",
        "v1.wasm",
        "--proof",
        "v1.tlog-proof",
        "--policy",
        policy_path.to_str().expect("path"),
    ]);
    assert_eq!(verified["witnesses"], serde_json::json!(["w0", "w1"]));

    // A policy asking for a witness that never saw the log refuses it.
    let third = cairn_transparency::note::Signer::from_seed(
        "witness.test/w9",
        cairn_transparency::note::COSIGNATURE,
        [9; 32],
    )
    .expect("signer");
    let strict = format!(
        "log {log_vkey}\n{}\nwitness w9 {}\ngroup all3 all w0 w1 w9\nquorum all3\n",
        witness_lines.join("\n"),
        third.verifier()
    );
    alice.write("strict.txt", strict.as_bytes());
    alice.fails(
        &[
            "verify-file",
            "v1.wasm",
            "--proof",
            "v1.tlog-proof",
            "--policy",
            "strict.txt",
        ],
        3,
        "quorum",
    );
    let _ = server.kill();
    let _ = server.wait();
}
