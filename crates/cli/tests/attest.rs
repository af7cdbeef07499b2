//! Signatures and attestations people already make (issue 18, item 6):
//! cosign keyed signatures and in-toto/DSSE attestations pushed as OCI
//! referrers (or to cosign's `sha256-<hex>.sig` tag) are checked against the
//! keys the operator trusts per namespace or package, recorded with their
//! verdict, listed by `cairn info --attestations`, and cannot be deleted;
//! `cairn attest` makes them. Keys and signatures come from the `openssl`
//! command (an independent implementation), payloads are built here from
//! the documented formats.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_interop::warg::wasm;
use common::{admin_command, cairn, free_addr, http_as, publish_token, request, start, stop, User};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `openssl`, or `None` (skipping loudly) unless CAIRN_REQUIRE_TOOLS=1.
fn openssl() -> Option<()> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    assert!(
        std::env::var_os("CAIRN_REQUIRE_TOOLS").is_none(),
        "CAIRN_REQUIRE_TOOLS is set and `openssl` is missing: install it (Debian: openssl)"
    );
    eprintln!("SKIPPED: `openssl` is not installed (Debian: openssl)");
    None
}

#[track_caller]
fn run_openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key pair written by openssl: `<name>.pem` (PKCS#8) and
/// `<name>.pub.pem` (SubjectPublicKeyInfo).
fn key_pair(dir: &Path, name: &str) {
    let private = format!("{name}.pem");
    run_openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &private,
        ],
    );
    run_openssl(
        dir,
        &[
            "pkey",
            "-in",
            &private,
            "-pubout",
            "-out",
            &format!("{name}.pub.pem"),
        ],
    );
}

/// openssl's DER ECDSA-P256-SHA256 signature of `message` by `<key>.pem`.
fn sign(dir: &Path, key: &str, message: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("message.bin"), message).expect("write");
    run_openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-sign",
            &format!("{key}.pem"),
            "-out",
            "signature.der",
            "message.bin",
        ],
    );
    std::fs::read(dir.join("signature.der")).expect("signature")
}

/// cosign's simple signing payload about `digest`.
fn simple_signing(digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"registry.test/example/hello"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"creator":"a test"}}}}"#
    )
    .into_bytes()
}

struct Oci {
    addr: SocketAddr,
    token: String,
}

impl Oci {
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> common::Response {
        let bearer = format!("Bearer {}", self.token);
        let mut all = vec![("Authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        request(self.addr, method, path, &all, body).expect("request")
    }

    fn blob(&self, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let answer = self.send(
            "POST",
            &format!("/v2/example/hello/blobs/uploads/?digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        digest
    }

    /// Pushes an artifact whose one layer is `layer`; returns the answer
    /// and the manifest's digest. `subject`: an OCI 1.1 referrer of it;
    /// `tag`: pushed to that tag instead of by digest.
    fn push(
        &self,
        artifact_type: &str,
        layer_type: &str,
        layer: &[u8],
        annotations: Value,
        subject: Option<(&str, usize)>,
        tag: Option<&str>,
    ) -> (common::Response, String) {
        let config = self.blob(b"{}");
        let layer_digest = self.blob(layer);
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": artifact_type,
            "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2 },
            "layers": [{
                "mediaType": layer_type,
                "digest": layer_digest,
                "size": layer.len(),
                "annotations": annotations,
            }],
        });
        if let Some((digest, size)) = subject {
            manifest["subject"] = json!({ "mediaType": MANIFEST, "digest": digest, "size": size });
        }
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let digest = sha256(&bytes);
        let reference = tag.map_or(digest.clone(), str::to_owned);
        let answer = self.send(
            "PUT",
            &format!("/v2/example/hello/manifests/{reference}"),
            &[("Content-Type", MANIFEST)],
            &bytes,
        );
        (answer, digest)
    }

    fn cosign(
        &self,
        payload: &[u8],
        signature: &[u8],
        subject: Option<(&str, usize)>,
        tag: Option<&str>,
    ) -> (common::Response, String) {
        self.push(
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            COSIGN_LAYER,
            payload,
            json!({ "dev.cosignproject.cosign/signature": STANDARD.encode(signature) }),
            subject,
            tag,
        )
    }
}

/// The record a push the registry accepted (201) added: the attestation
/// log's last.
#[track_caller]
fn recorded(addr: SocketAddr, answer: &common::Response) -> Value {
    assert_eq!(
        answer.status,
        201,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    records(addr).pop().expect("a record")
}

/// The attestation log's records (`/v1/attestations/example:hello`).
fn records(addr: SocketAddr) -> Vec<Value> {
    let (status, body) =
        http_as(addr, "GET", "/v1/attestations/example:hello", None, None).expect("get");
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().cloned().unwrap_or_default()
}

#[test]
fn signatures_are_verified_against_trusted_keys_recorded_listed_and_permanent() {
    if openssl().is_none() {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let dir = scratch.path();
    let data = dir.join("data");
    let addr = free_addr();
    let mut server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let token = publish_token(&data, "publish:example/*");
    let alice = User::new(dir, "alice", &url, Some(&token));
    alice.ok(&["key", "new"]);
    // Published by an OCI push: alice's account (its custodial key) owns
    // the package, so it may attach signatures.
    let publisher = common::publish::Publisher {
        addr,
        bearer: format!("Bearer {token}"),
        key: cairn_protocol::PrivateKey::generate(),
        observe: |_| {},
    };
    publisher
        .oci_push("example/hello", &wasm("1.0.0"))
        .expect("published");
    key_pair(dir, "release");
    key_pair(dir, "stranger");
    let release_pub = dir.join("release.pub.pem");
    let release_pub = release_pub.to_str().expect("path");

    // Only an admin configures keys: not over the API with a publish
    // token, nor with the CLI given one.
    let pem = std::fs::read_to_string(dir.join("release.pub.pem")).expect("pem");
    let (status, body) = http_as(
        addr,
        "POST",
        "/cairn/v1/admin/namespaces/example/keys",
        Some(&json!({ "key": pem })),
        Some(&token),
    )
    .expect("post");
    assert_eq!(status, 403, "{body}");
    let refused = cairn()
        .args([
            "namespace",
            "trust-key",
            "example",
            "--key",
            release_pub,
            "--registry",
            &url,
        ])
        .env("CAIRN_ADMIN_TOKEN", &token)
        .output()
        .expect("cairn");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HTTP 403"));
    // A key that is not one is refused with the reason.
    let (status, body) = http_as(
        addr,
        "POST",
        "/cairn/v1/admin/namespaces/example/keys",
        Some(&json!({ "key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" })),
        Some(&common::admin_token(&data)),
    )
    .expect("post");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("public key"),
        "{body}"
    );

    // The admin trusts the release key for the namespace, on the running
    // registry.
    let out = admin_command(
        &[
            "namespace",
            "trust-key",
            "example",
            "--key",
            release_pub,
            "--name",
            "release-bot",
        ],
        &url,
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_command(&["namespace", "keys", "example", "--json"], &url, &data);
    let keys: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(keys["keys"][0]["name"], "release-bot", "{keys}");
    let key_id = keys["keys"][0]["keyId"]
        .as_str()
        .expect("key id")
        .to_owned();
    let der = Command::new("openssl")
        .args(["pkey", "-pubin", "-in", release_pub, "-outform", "DER"])
        .output()
        .expect("openssl");
    assert_eq!(
        key_id,
        sha256(&der.stdout),
        "the key id is the SPKI's digest"
    );

    // The release's manifest, as the OCI face serves it.
    let oci = Oci {
        addr,
        token: token.clone(),
    };
    let release = oci.send(
        "GET",
        "/v2/example/hello/manifests/1.0.0",
        &[("Accept", MANIFEST)],
        b"",
    );
    assert_eq!(release.status, 200);
    let subject = sha256(&release.body);
    let size = release.body.len();
    let wasm_layer: Value = serde_json::from_slice(&release.body).expect("manifest");
    let wasm_layer = wasm_layer["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_owned();

    // Nothing is signed yet: the search's `signed` filter finds nothing.
    let signed_hits = || {
        common::get_json(addr, "/cairn/v1/search?signed=true")["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    common::wait_for("the index to hold the package", || {
        common::get_json(addr, "/cairn/v1/search?q=hello")["total"] == 1
    });
    assert!(signed_hits().is_empty());

    // (1) A cosign signature by the trusted key: verified, by that key.
    let payload = simple_signing(&subject);
    let (answer, verified_digest) = oci.cosign(
        &payload,
        &sign(dir, "release", &payload),
        Some((&subject, size)),
        None,
    );
    let last = recorded(addr, &answer);
    assert_eq!(last["referrer"], verified_digest.as_str());
    assert_eq!(last["subject"], subject.as_str());
    assert_eq!(last["verification"]["kind"], "cosign", "{last}");
    assert_eq!(last["verification"]["verdict"], "verified", "{last}");
    assert_eq!(last["verification"]["keyId"], key_id.as_str());
    assert_eq!(last["verification"]["keyLabel"], "release-bot");
    // The index follows the attestation log: the release is signed now.
    common::wait_for("the index to see the signature", || {
        signed_hits().len() == 1
    });
    let hit = &signed_hits()[0];
    assert_eq!(hit["package"], "example:hello", "{hit}");
    assert_eq!(hit["signed"], true, "{hit}");
    let listed = alice.ok(&["search", "--signed"]);
    assert!(listed.contains("example:hello 1.0.0 (signed)"), "{listed}");

    // (2) By a key nobody trusts: recorded, unverified.
    let (answer, _) = oci.cosign(
        &payload,
        &sign(dir, "stranger", &payload),
        Some((&subject, size)),
        None,
    );
    assert_eq!(answer.status, 201);
    let last = records(addr).pop().expect("a record");
    assert_eq!(last["verification"]["verdict"], "unverified", "{last}");
    assert!(last["verification"].get("keyId").is_none());

    // (3) Tampered: a payload changed after signing is not verified; one
    // naming another manifest, or a signature that is not one, is refused
    // (400) and nothing is recorded or stored.
    let mut changed = payload.clone();
    changed.extend_from_slice(b" ");
    let (answer, _) = oci.cosign(
        &changed,
        &sign(dir, "release", &payload),
        Some((&subject, size)),
        None,
    );
    assert_eq!(answer.status, 201);
    assert_eq!(
        records(addr).pop().expect("record")["verification"]["verdict"],
        "unverified"
    );
    let before = records(addr).len();
    let elsewhere = simple_signing(&sha256(b"another manifest"));
    let (answer, refused_digest) = oci.cosign(
        &elsewhere,
        &sign(dir, "release", &elsewhere),
        Some((&subject, size)),
        None,
    );
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let message = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(
        message.contains("names sha256:") && message.contains(&subject),
        "{message}"
    );
    let (answer, _) = oci.cosign(&payload, b"not a signature", Some((&subject, size)), None);
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // A signature layer past 1 MiB is not read: refused.
    let mut large = payload.clone();
    large.resize(1024 * 1024 + 1, b' ');
    let (answer, _) = oci.cosign(
        &large,
        &sign(dir, "release", &large),
        Some((&subject, size)),
        None,
    );
    assert_eq!(
        answer.status,
        400,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(String::from_utf8_lossy(&answer.body).contains("1048576"));
    assert_eq!(records(addr).len(), before, "nothing recorded");
    let stored = oci.send(
        "GET",
        &format!("/v2/example/hello/manifests/{refused_digest}"),
        &[("Accept", MANIFEST)],
        b"",
    );
    assert_eq!(stored.status, 404, "nothing stored");

    // (4) cosign's classic scheme: no subject, tag `sha256-<hex>.sig`.
    let tag = format!("{}.sig", subject.replace(':', "-"));
    let tagged = simple_signing(&subject);
    let (answer, tagged_digest) =
        oci.cosign(&tagged, &sign(dir, "release", &tagged), None, Some(&tag));
    let last = recorded(addr, &answer);
    assert_eq!(last["referrer"], tagged_digest.as_str());
    assert_eq!(
        last["subject"],
        subject.as_str(),
        "the tag names the subject"
    );
    assert_eq!(last["verification"]["verdict"], "verified");

    // (5) An in-toto statement in a DSSE envelope, about the Wasm layer.
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "hello.wasm", "digest": { "sha256": wasm_layer.trim_start_matches("sha256:") } }],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": { "buildDefinition": { "buildType": "https://example.test/build" } },
    })
    .to_string();
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement.as_bytes());
    let envelope = json!({
        "payloadType": payload_type,
        "payload": STANDARD.encode(&statement),
        "signatures": [{ "keyid": "", "sig": STANDARD.encode(sign(dir, "release", &pae)) }],
    })
    .to_string();
    let (answer, _) = oci.push(
        DSSE_LAYER,
        DSSE_LAYER,
        envelope.as_bytes(),
        json!({ "predicateType": "https://slsa.dev/provenance/v1" }),
        Some((&subject, size)),
        None,
    );
    let last = recorded(addr, &answer);
    assert_eq!(last["verification"]["kind"], "dsse", "{last}");
    assert_eq!(last["verification"]["verdict"], "verified");
    assert_eq!(
        last["verification"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    assert_eq!(last["verification"]["matched"], "layer");
    // An Ed25519 key trusted for this one package (over the admin API)
    // verifies a statement about the manifest itself.
    run_openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", "ed.pem"]);
    run_openssl(
        dir,
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "ed.pub.pem"],
    );
    let (status, body) = http_as(
        addr,
        "POST",
        "/cairn/v1/admin/namespaces/example/keys",
        Some(&json!({
            "key": std::fs::read_to_string(dir.join("ed.pub.pem")).expect("pem"),
            "package": "example:hello",
            "name": "ed-bot",
        })),
        Some(&common::admin_token(&data)),
    )
    .expect("post");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["package"], "hello");
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": "example/hello", "digest": { "sha256": subject.trim_start_matches("sha256:") } }],
        "predicateType": "https://example.test/review/v1",
        "predicate": {},
    })
    .to_string();
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(statement.as_bytes());
    std::fs::write(dir.join("pae.bin"), &pae).expect("write");
    run_openssl(
        dir,
        &[
            "pkeyutl", "-sign", "-rawin", "-inkey", "ed.pem", "-in", "pae.bin", "-out", "ed.sig",
        ],
    );
    let envelope = json!({
        "payloadType": payload_type,
        "payload": STANDARD.encode(&statement),
        "signatures": [{ "sig": STANDARD.encode(std::fs::read(dir.join("ed.sig")).expect("sig")) }],
    })
    .to_string();
    let (answer, _) = oci.push(
        DSSE_LAYER,
        DSSE_LAYER,
        envelope.as_bytes(),
        json!({}),
        Some((&subject, size)),
        None,
    );
    let last = recorded(addr, &answer);
    assert_eq!(last["verification"]["verdict"], "verified", "{last}");
    assert_eq!(last["verification"]["keyLabel"], "ed-bot");
    assert_eq!(last["verification"]["matched"], "manifest");
    // A malformed envelope is refused.
    let (answer, _) = oci.push(
        DSSE_LAYER,
        DSSE_LAYER,
        b"{\"payloadType\":",
        json!({}),
        Some((&subject, size)),
        None,
    );
    assert_eq!(answer.status, 400);

    // (6) Removal: refused, by digest and by the classic tag; the record
    // stays.
    let count = records(addr).len();
    let answer = oci.send(
        "DELETE",
        &format!("/v2/example/hello/manifests/{verified_digest}"),
        &[],
        b"",
    );
    assert_eq!(
        answer.status,
        405,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(String::from_utf8_lossy(&answer.body).contains("permanent"));
    let answer = oci.send(
        "DELETE",
        &format!("/v2/example/hello/manifests/{tag}"),
        &[],
        b"",
    );
    assert_eq!(
        answer.status,
        405,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(records(addr).len(), count);
    let still = oci.send(
        "GET",
        &format!("/v2/example/hello/manifests/{verified_digest}"),
        &[("Accept", MANIFEST)],
        b"",
    );
    assert_eq!(still.status, 200);

    // (7) `cairn attest` makes both kinds with a key openssl wrote, and
    // `cairn info --attestations` lists them.
    let key = dir.join("release.pem");
    let key = key.to_str().expect("path");
    let out = alice.ok(&["attest", "example:hello@1.0.0", "--key", key]);
    assert!(
        out.contains("verified by trusted key `release-bot`"),
        "{out}"
    );
    alice.write("predicate.json", br#"{"reviewed": true}"#);
    let out = alice.ok(&[
        "attest",
        "example:hello@1.0.0",
        "--key",
        key,
        "--predicate",
        "predicate.json",
        "--type",
        "https://example.test/review/v1",
    ]);
    assert!(out.contains("attestation of example:hello@1.0.0"), "{out}");
    assert!(out.contains("verified"), "{out}");
    let out = alice.ok(&[
        "attest",
        "example:hello@1.0.0",
        "--key",
        dir.join("stranger.pem").to_str().expect("path"),
    ]);
    assert!(out.contains("unverified"), "{out}");
    alice.fails(
        &["attest", "example:hello@9.0.0", "--key", key],
        1,
        "no release 9.0.0",
    );
    let listed = alice.ok(&["info", "example:hello", "--attestations"]);
    assert!(
        listed.contains("attestation https://example.test/review/v1  verified  key release-bot"),
        "{listed}"
    );
    assert!(listed.contains("cosign signature  unverified"), "{listed}");
    let info = alice.json(&["info", "example:hello", "--attestations"]);
    let listed = info["attestations"].as_array().expect("attestations");
    assert_eq!(listed.len(), records(addr).len());
    assert!(listed
        .iter()
        .all(|a| a["index"].is_u64() && a["account"] == "alice"));
    assert_eq!(
        listed.iter().filter(|a| a["verdict"] == "verified").count(),
        6
    );

    // Untrusting over the admin API: an unknown key is a 404 naming the
    // fix; a known one (by label) goes.
    let out = admin_command(
        &["namespace", "untrust-key", "example", "nobody"],
        &url,
        &data,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("cairn namespace keys example"),
        "{stderr}"
    );
    let stranger_pub = dir.join("stranger.pub.pem");
    let stranger_pub = stranger_pub.to_str().expect("path");
    let out = admin_command(
        &[
            "namespace",
            "trust-key",
            "example",
            "--key",
            stranger_pub,
            "--name",
            "temporary",
        ],
        &url,
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_command(
        &["namespace", "untrust-key", "example", "temporary"],
        &url,
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, keys) =
        http_as(addr, "GET", "/cairn/v1/namespaces/example/keys", None, None).expect("get");
    assert!(!keys.to_string().contains("temporary"), "{keys}");

    // Keys on a stopped registry, in its data directory.
    stop(server);
    let on_disk = |args: &[&str]| {
        cairn()
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("cairn")
    };
    let out = on_disk(&["namespace", "untrust-key", "example", "release-bot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = on_disk(&[
        "namespace",
        "trust-key",
        "example",
        "--package",
        "example:hello",
        "--key",
        stranger_pub,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = on_disk(&["namespace", "keys", "example", "--json"]);
    let keys: Value = serde_json::from_slice(&out.stdout).expect("json");
    let labels: Vec<&str> = keys["keys"]
        .as_array()
        .map(|k| k.iter().filter_map(|k| k["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(labels.len(), 2, "{keys}");
    assert!(labels.contains(&"ed-bot"), "{keys}");
    assert!(!labels.contains(&"release-bot"), "{keys}");
    assert!(
        keys["keys"]
            .as_array()
            .is_some_and(|k| k.iter().all(|k| k["package"] == "hello")),
        "{keys}"
    );
    // After a restart, the stranger's key verifies (for this package), and
    // the release key no longer does. (New predicates: the same signature
    // again is the same referrer, recorded once.)
    server = start(&data, addr, &[], Stdio::null());
    alice.write("second.json", br#"{"round": 2}"#);
    let attest_with = |key: &str| {
        alice.ok(&[
            "attest",
            "example:hello@1.0.0",
            "--key",
            key,
            "--predicate",
            "second.json",
            "--type",
            "https://example.test/review/v1",
        ])
    };
    let out = attest_with(dir.join("stranger.pem").to_str().expect("path"));
    assert!(out.contains(": verified"), "{out}");
    let out = attest_with(key);
    assert!(out.contains("unverified"), "{out}");
    stop(server);
}

/// The oras-py side of [`a_cosign_signature_pushed_by_oras_to_the_classic_tag_is_verified`]:
/// pushes `payload.json` as a cosign signature layer to `tag`, its
/// signature in the layer annotation; prints the answer's status.
const ORAS_SCRIPT: &str = r#"
import json, sys
import oras.client
host, token, tag, signature = sys.argv[1:5]
json.dump({"payload.json": {"dev.cosignproject.cosign/signature": signature}},
          open("annotations.json", "w"))
c = oras.client.OrasClient(hostname=host, insecure=True)
c.login(username="alice", password=token, hostname=host)
r = c.push(target=f"{host}/example/hello:{tag}",
           files=["payload.json:application/vnd.dev.cosign.simplesigning.v1+json"],
           annotation_file="annotations.json")
print(json.dumps({"status": r.status_code, "digest": r.headers.get("Docker-Content-Digest")}))
"#;

#[test]
fn a_cosign_signature_pushed_by_oras_to_the_classic_tag_is_verified() {
    use cairn_interop::tools::{self, Tool};
    let test = "a_cosign_signature_pushed_by_oras_to_the_classic_tag_is_verified";
    let Some(python) = tools::require(test, Tool::ORAS_PY) else {
        return;
    };
    if openssl().is_none() {
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch");
    let dir = scratch.path();
    let data = dir.join("data");
    let addr = free_addr();
    let server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let token = publish_token(&data, "publish:example/*");
    let publisher = common::publish::Publisher {
        addr,
        bearer: format!("Bearer {token}"),
        key: cairn_protocol::PrivateKey::generate(),
        observe: |_| {},
    };
    let (manifest, _) = publisher
        .oci_push("example/hello", &wasm("1.0.0"))
        .expect("published");
    key_pair(dir, "release");
    let out = admin_command(
        &[
            "namespace",
            "trust-key",
            "example",
            "--key",
            dir.join("release.pub.pem").to_str().expect("path"),
            "--name",
            "release-bot",
        ],
        &url,
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let payload = simple_signing(&manifest);
    std::fs::write(dir.join("payload.json"), &payload).expect("payload");
    let signature = STANDARD.encode(sign(dir, "release", &payload));
    let tag = format!("{}.sig", manifest.replace(':', "-"));
    std::fs::write(dir.join("push.py"), ORAS_SCRIPT).expect("script");
    let output = Command::new(&python)
        .args(["push.py", &addr.to_string(), &token, &tag, &signature])
        .current_dir(dir)
        .env("HOME", dir)
        .output()
        .expect("run oras-py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "oras-py: {text}");
    let result: Value = serde_json::from_str(
        text.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("oras-py printed no result:\n{text}")),
    )
    .expect("result JSON");
    assert_eq!(result["status"], 201, "{result}");
    let last = records(addr).pop().expect("recorded");
    assert_eq!(last["referrer"], result["digest"], "{last}");
    assert_eq!(
        last["subject"],
        manifest.as_str(),
        "the tag names the subject"
    );
    assert_eq!(last["verification"]["kind"], "cosign");
    assert_eq!(last["verification"]["verdict"], "verified", "{last}");
    assert_eq!(last["verification"]["keyLabel"], "release-bot");
    stop(server);
}
