//! Bad input to the Warg v1 API, over real HTTP to a server on 127.0.0.1:
//! every case gets a 4xx with a JSON body that names the problem, and none
//! of them leaves anything behind (no log entry, no record, no content, no
//! partial upload file).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_interop::http::Http;
use cairn_interop::keys;
use cairn_interop::server::TestServer;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{
    Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp, Version,
};
use cairn_registry::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A valid Wasm module: the header and a custom section named `t` holding
/// `payload`.
fn wasm(payload: &[u8]) -> Vec<u8> {
    let mut section = vec![1, b't'];
    section.extend_from_slice(payload);
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&section);
    bytes
}

fn record(prev: Option<RecordId>, version: u32, entries: Vec<PackageEntry>) -> PackageRecord {
    PackageRecord {
        prev,
        version,
        timestamp: Timestamp::new(1_700_000_000, 0),
        entries,
    }
}

fn init(key: &PrivateKey) -> PackageEntry {
    PackageEntry::Init {
        hash_algorithm: HashAlgorithm::Sha256,
        key: key.public_key().clone(),
    }
}

fn release(version: &str, content: &[u8]) -> PackageEntry {
    PackageEntry::Release {
        version: version.parse::<Version>().expect("version"),
        content: Hash::of(content),
    }
}

fn publish_body(name: &str, content_bytes: &[u8], key_id: &str, signature: &str) -> Value {
    json!({
        "packageName": name,
        "record": {
            "contentBytes": STANDARD.encode(content_bytes),
            "keyId": key_id,
            "signature": signature,
        },
    })
}

fn envelope_body(name: &str, envelope: &Envelope<PackageRecord>) -> Value {
    publish_body(
        name,
        envelope.content_bytes(),
        &envelope.key_id().to_string(),
        &envelope.signature().to_string(),
    )
}

struct Fixture {
    server: TestServer,
    http: Http,
    _dir: tempfile::TempDir,
}

/// An answer: status and JSON body.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    /// Asserts a client error whose JSON body has a `message` containing
    /// `needle` (case-insensitive) and the status in the body too.
    #[track_caller]
    fn refused(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert!(self.status.is_client_error());
        assert_eq!(self.body["status"], json!(status.as_u16()), "{}", self.body);
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(
            message.to_lowercase().contains(&needle.to_lowercase()),
            "message `{message}` should mention `{needle}`"
        );
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(Config::default())
    }

    fn with_config(config: Config) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestServer::start_with(dir.path(), &["good"], config, None);
        let http = Http::new(&server.url);
        let fixture = Fixture {
            server,
            http,
            _dir: dir,
        };
        // The operator log's first checkpoint.
        fixture.wait_for(|f| f.checkpoint_length() > 0);
        fixture
    }

    fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let reply = self.http.send(method, path, headers, body);
        Answer {
            status: reply.status,
            body: reply.json(),
            headers: reply.headers,
        }
    }

    fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Vec::new())
    }

    fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, body.to_string().into_bytes())
    }

    /// Posts with the admin token.
    fn post_raw(&self, path: &str, body: Vec<u8>) -> Answer {
        let bearer = format!("Bearer {}", self.server.admin_token);
        self.post_as(path, body, Some(&bearer))
    }

    /// Posts with `authorization` as the only credentials.
    fn post_as(&self, path: &str, body: Vec<u8>, authorization: Option<&str>) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        self.send(Method::POST, path, &headers, body)
    }

    fn publish(&self, name: &str, body: &Value) -> Answer {
        let log_id = LogId::package(&PackageName::new(name).expect("name"));
        self.post_json(&format!("/v1/package/{log_id}/record"), body)
    }

    fn checkpoint_length(&self) -> u64 {
        let answer = self.get("/v1/fetch/checkpoint");
        answer.body["contents"]["logLength"].as_u64().unwrap_or(0)
    }

    fn wait_for(&self, done: impl Fn(&Fixture) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn record_state(&self, name: &str, record_id: &RecordId) -> Answer {
        let log_id = LogId::package(&PackageName::new(name).expect("name"));
        self.get(&format!("/v1/package/{log_id}/record/{record_id}"))
    }

    /// Publishes `envelope` and waits until it is in a checkpoint
    /// (`published` says a checkpoint covers it).
    fn publish_ok(&self, name: &str, envelope: &Envelope<PackageRecord>) {
        let answer = self.publish(name, &envelope_body(name, envelope));
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        self.wait_for(|f| f.record_state(name, &envelope.record_id()).body["state"] == "published");
    }

    fn upload(&self, name: &str, record_id: &RecordId, content: &Hash, bytes: Vec<u8>) -> Answer {
        let log_id = LogId::package(&PackageName::new(name).expect("name"));
        self.send(
            Method::POST,
            &format!("/v1/package/{log_id}/record/{record_id}/content/{content}"),
            &[],
            bytes,
        )
    }

    /// What is stored, to compare before and after a refused request.
    fn stored(&self) -> Stored {
        Stored {
            checkpoint: self.checkpoint_length(),
            content_files: files_under(&self.server.data_dir.join("content")),
        }
    }
}

#[derive(Debug, PartialEq)]
struct Stored {
    checkpoint: u64,
    content_files: Vec<String>,
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(
                    path.strip_prefix(dir)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Asserts the record was not stored: its status is unknown.
#[track_caller]
fn assert_unknown_record(f: &Fixture, name: &str, record_id: &RecordId) {
    f.record_state(name, record_id)
        .refused(StatusCode::NOT_FOUND, "not found");
}

#[test]
fn malformed_json_is_refused() {
    let f = Fixture::new();
    let before = f.stored();
    let log_id = LogId::package(&PackageName::new("good:pkg").expect("name"));
    let path = format!("/v1/package/{log_id}/record");
    for body in [
        &b"{\"packageName\": "[..],
        b"not json at all",
        b"",
        b"[1, 2, 3]",
        b"{\"packageName\": \"good:pkg\"}",
        b"{\"packageName\": 7, \"record\": {}}",
    ] {
        f.post_raw(&path, body.to_vec())
            .refused(StatusCode::BAD_REQUEST, "invalid JSON body");
    }
    // Other JSON endpoints, with wrong types and unknown fields.
    f.post_json("/v1/fetch/logs", &json!({ "logLength": "one" }))
        .refused(StatusCode::BAD_REQUEST, "invalid JSON body");
    f.post_json("/v1/fetch/logs", &json!({ "logLength": 1, "bogus": true }))
        .refused(StatusCode::BAD_REQUEST, "unknown field `bogus`");
    f.post_json("/v1/fetch/names", &json!({ "packages": "good:pkg" }))
        .refused(StatusCode::BAD_REQUEST, "invalid JSON body");
    f.post_json("/v1/proof/consistency", &json!({ "from": -1, "to": 1 }))
        .refused(StatusCode::BAD_REQUEST, "invalid JSON body");
    f.post_json("/v1/proof/inclusion", &json!({ "logLength": 1 }))
        .refused(StatusCode::BAD_REQUEST, "missing field `leafs`");
    f.post_json("/v1/verify/checkpoint", &json!({ "contents": {} }))
        .refused(StatusCode::BAD_REQUEST, "invalid JSON body");
    // A package name longer than any OCI repository name.
    let long = format!("good:{}", "p".repeat(300));
    f.post_json(
        &path,
        &json!({
            "packageName": long,
            "record": { "contentBytes": "", "keyId": "sha256:00", "signature": "ecdsa-p256:AA" },
        }),
    )
    .refused(StatusCode::BAD_REQUEST, "at most 255 bytes");
    assert_eq!(f.stored(), before);
}

#[test]
fn malformed_protobuf_base64_and_ids_are_refused() {
    let f = Fixture::new();
    let before = f.stored();
    let key = &keys()[0];
    let good = Envelope::sign(key, record(None, 0, vec![init(key)]));
    let key_id = good.key_id().to_string();
    let signature = good.signature().to_string();

    // Bytes that are not a PackageRecord message.
    f.publish(
        "good:pkg",
        &publish_body("good:pkg", &[0xff, 0xff, 0xff, 0x0f], &key_id, &signature),
    )
    .refused(StatusCode::BAD_REQUEST, "invalid package record");
    // A well-formed message with an entry the protocol does not allow
    // (a release of a version that is not semver).
    let mut bytes = good.content_bytes().to_vec();
    bytes.extend_from_slice(&[0x22, 0x03, 0x0a, 0x01, 0x00]);
    f.publish(
        "good:pkg",
        &publish_body("good:pkg", &bytes, &key_id, &signature),
    )
    .refused(StatusCode::BAD_REQUEST, "invalid package record");
    // contentBytes that are not base64.
    let mut body = envelope_body("good:pkg", &good);
    body["record"]["contentBytes"] = json!("%%% not base64 %%%");
    f.publish("good:pkg", &body)
        .refused(StatusCode::BAD_REQUEST, "not base64");
    // A key id and a signature that do not parse.
    let mut body = envelope_body("good:pkg", &good);
    body["record"]["keyId"] = json!("md5:1234");
    f.publish("good:pkg", &body)
        .refused(StatusCode::BAD_REQUEST, "invalid package record");
    let mut body = envelope_body("good:pkg", &good);
    body["record"]["signature"] = json!("ecdsa-p256:AAAA");
    f.publish("good:pkg", &body)
        .refused(StatusCode::BAD_REQUEST, "invalid package record");
    // A package name that is not `namespace:name`.
    f.post_json(
        &format!(
            "/v1/package/{}/record",
            LogId::package(&PackageName::new("good:pkg").expect("name"))
        ),
        &envelope_body("no-colon", &good),
    )
    .refused(StatusCode::BAD_REQUEST, "invalid package name");
    // A log id that is not the package's.
    let other = LogId::package(&PackageName::new("good:other").expect("name"));
    f.post_json(
        &format!("/v1/package/{other}/record"),
        &envelope_body("good:pkg", &good),
    )
    .refused(StatusCode::BAD_REQUEST, "is not the log id of package");
    // A log id that is not a digest.
    f.post_json("/v1/package/xyz/record", &envelope_body("good:pkg", &good))
        .refused(StatusCode::BAD_REQUEST, "invalid log id `xyz`");

    assert_unknown_record(&f, "good:pkg", &good.record_id());
    assert_eq!(f.stored(), before);
}

#[test]
fn publishing_needs_a_token_that_covers_the_package() {
    let f = Fixture::new();
    let before = f.stored();
    let key = &keys()[0];
    let good = Envelope::sign(key, record(None, 0, vec![init(key)]));
    let body = envelope_body("good:pkg", &good).to_string().into_bytes();
    let log_id = LogId::package(&PackageName::new("good:pkg").expect("name"));
    let path = format!("/v1/package/{log_id}/record");
    // No credentials, or unknown or expired ones: 401 naming the fix.
    let expired = f.server.token("ci", &["admin"], Some(1));
    for authorization in [
        None,
        Some("Bearer cairn_unknown".to_owned()),
        Some(format!("Bearer {expired}")),
    ] {
        f.post_as(&path, body.clone(), authorization.as_deref())
            .refused(StatusCode::UNAUTHORIZED, "cairn token create");
    }
    // Tokens whose scopes do not cover `good:pkg`: 403 naming the scopes.
    for scopes in [&["pull"][..], &["publish:other/*"], &["publish:good/other"]] {
        let token = f.server.token("ci", scopes, None);
        f.post_as(&path, body.clone(), Some(&format!("Bearer {token}")))
            .refused(StatusCode::FORBIDDEN, "may not publish `good:pkg`");
    }
    assert_unknown_record(&f, "good:pkg", &good.record_id());
    assert_eq!(f.stored(), before);
    // A token for the namespace, or for the package, may publish.
    let token = f.server.token("ci", &["publish:good/*"], None);
    let answer = f.post_as(&path, body, Some(&format!("Bearer {token}")));
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
}

#[test]
fn a_record_for_an_undefined_namespace_is_refused() {
    let f = Fixture::new();
    let before = f.stored();
    let key = &keys()[0];
    let envelope = Envelope::sign(key, record(None, 0, vec![init(key)]));
    let answer = f.publish("nowhere:pkg", &envelope_body("nowhere:pkg", &envelope));
    answer.refused(StatusCode::NOT_FOUND, "namespace `nowhere` is not defined");
    // The reference client reads this shape to say which namespace is missing.
    assert_eq!(answer.body["type"], "namespace");
    assert_eq!(answer.body["id"], "nowhere");
    assert_unknown_record(&f, "nowhere:pkg", &envelope.record_id());
    assert_eq!(f.stored(), before);
}

#[test]
fn a_bad_signature_is_refused() {
    let f = Fixture::new();
    let before = f.stored();
    let [owner, other, ..] = &keys()[..] else {
        unreachable!()
    };
    let envelope = Envelope::sign(owner, record(None, 0, vec![init(owner)]));
    // The signature of other contents by the same key.
    let decoy = Envelope::sign(
        owner,
        record(None, 0, vec![init(owner), release("1.0.0", b"x")]),
    );
    let body = publish_body(
        "good:pkg",
        envelope.content_bytes(),
        &envelope.key_id().to_string(),
        &decoy.signature().to_string(),
    );
    f.publish("good:pkg", &body)
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "signature");
    // A valid signature by another key than the one named.
    let forged = Envelope::sign(other, record(None, 0, vec![init(owner)]));
    let body = publish_body(
        "good:pkg",
        forged.content_bytes(),
        &owner.public_key().id().to_string(),
        &forged.signature().to_string(),
    );
    f.publish("good:pkg", &body)
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "signature");
    assert_unknown_record(&f, "good:pkg", &envelope.record_id());
    assert_eq!(f.stored(), before);

    // After the package exists, a record signed with a key the log knows
    // but a signature over other bytes is refused too.
    f.publish_ok("good:pkg", &envelope);
    let before = f.stored();
    let next = Envelope::sign(
        owner,
        record(
            Some(envelope.record_id()),
            0,
            vec![release("1.0.0", &wasm(b"next"))],
        ),
    );
    let body = publish_body(
        "good:pkg",
        next.content_bytes(),
        &next.key_id().to_string(),
        &decoy.signature().to_string(),
    );
    f.publish("good:pkg", &body)
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "signature");
    assert_unknown_record(&f, "good:pkg", &next.record_id());
    assert_eq!(f.stored(), before);
}

#[test]
fn a_key_without_permission_is_refused() {
    let f = Fixture::new();
    let [owner, stranger, ..] = &keys()[..] else {
        unreachable!()
    };
    let head = Envelope::sign(owner, record(None, 0, vec![init(owner)]));
    f.publish_ok("good:pkg", &head);
    let before = f.stored();
    let content = wasm(b"stranger");
    let attempt = Envelope::sign(
        stranger,
        record(Some(head.record_id()), 0, vec![release("1.0.0", &content)]),
    );
    f.publish("good:pkg", &envelope_body("good:pkg", &attempt))
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "release");
    // A grant by a key that holds nothing.
    let grant = Envelope::sign(
        stranger,
        record(
            Some(head.record_id()),
            0,
            vec![PackageEntry::Grant {
                key: stranger.public_key().clone(),
                permissions: vec![cairn_protocol::package::Permission::Release],
            }],
        ),
    );
    f.publish("good:pkg", &envelope_body("good:pkg", &grant))
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "permission");
    assert_unknown_record(&f, "good:pkg", &attempt.record_id());
    assert_unknown_record(&f, "good:pkg", &grant.record_id());
    assert_eq!(f.stored(), before);
}

#[test]
fn a_reused_version_is_refused() {
    let f = Fixture::new();
    let owner = &keys()[0];
    let first = wasm(b"first");
    let head = Envelope::sign(
        owner,
        record(None, 0, vec![init(owner), release("1.0.0", &first)]),
    );
    let answer = f.publish("good:pkg", &envelope_body("good:pkg", &head));
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body["state"], "sourcing");
    let uploaded = f.upload("good:pkg", &head.record_id(), &Hash::of(&first), first);
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    f.wait_for(|f| f.record_state("good:pkg", &head.record_id()).body["state"] == "published");
    let before = f.stored();

    // The same version with other content, and with the same content.
    for content in [wasm(b"second"), wasm(b"first")] {
        let again = Envelope::sign(
            owner,
            record(Some(head.record_id()), 0, vec![release("1.0.0", &content)]),
        );
        f.publish("good:pkg", &envelope_body("good:pkg", &again))
            .refused(StatusCode::UNPROCESSABLE_ENTITY, "1.0.0");
        assert_unknown_record(&f, "good:pkg", &again.record_id());
    }
    // Twice in one record.
    let twice = Envelope::sign(
        owner,
        record(
            Some(head.record_id()),
            0,
            vec![release("2.0.0", &wasm(b"a")), release("2.0.0", &wasm(b"b"))],
        ),
    );
    f.publish("good:pkg", &envelope_body("good:pkg", &twice))
        .refused(StatusCode::UNPROCESSABLE_ENTITY, "2.0.0");
    assert_unknown_record(&f, "good:pkg", &twice.record_id());
    assert_eq!(f.stored(), before);
}

/// Publishes a release of `declared` and returns its record, left waiting
/// for content.
fn sourcing_release(f: &Fixture, declared: &[u8]) -> Envelope<PackageRecord> {
    let owner = &keys()[0];
    let envelope = Envelope::sign(
        owner,
        record(None, 0, vec![init(owner), release("1.0.0", declared)]),
    );
    let answer = f.publish("good:pkg", &envelope_body("good:pkg", &envelope));
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body["state"], "sourcing");
    let digest = Hash::of(declared).to_string();
    assert!(
        answer.body["missingContent"][&digest]["upload"][0]["url"].is_string(),
        "{}",
        answer.body
    );
    envelope
}

/// Asserts the content is nowhere: no content sources, no download, no file,
/// and the record still waits for it.
#[track_caller]
fn assert_no_content(f: &Fixture, envelope: &Envelope<PackageRecord>, content: &[u8]) {
    let digest = Hash::of(content);
    f.get(&format!("/v1/content/{digest}"))
        .refused(StatusCode::NOT_FOUND, "was not found");
    f.get(&format!(
        "/content/{}",
        digest.to_string().replacen(':', "-", 1)
    ))
    .refused(StatusCode::NOT_FOUND, "was not found");
    assert_eq!(
        f.record_state("good:pkg", &envelope.record_id()).body["state"],
        "sourcing"
    );
    assert_eq!(
        files_under(&f.server.data_dir.join("content")),
        Vec::<String>::new(),
        "no content file and no partial upload may remain"
    );
}

#[test]
fn an_upload_whose_bytes_do_not_match_the_digest_is_refused() {
    let f = Fixture::new();
    let declared = wasm(b"declared");
    let envelope = sourcing_release(&f, &declared);
    let before = f.stored();
    let other = wasm(b"something else");
    f.upload(
        "good:pkg",
        &envelope.record_id(),
        &Hash::of(&declared),
        other,
    )
    .refused(StatusCode::BAD_REQUEST, "not `sha256:");
    // Uploading to a digest the record does not release.
    f.upload(
        "good:pkg",
        &envelope.record_id(),
        &Hash::of(b"unrelated"),
        b"unrelated".to_vec(),
    )
    .refused(StatusCode::CONFLICT, "is not waiting for content");
    // A digest that does not parse.
    let log_id = LogId::package(&PackageName::new("good:pkg").expect("name"));
    f.send(
        Method::POST,
        &format!(
            "/v1/package/{log_id}/record/{}/content/sha256:zz",
            envelope.record_id()
        ),
        &[],
        declared.clone(),
    )
    .refused(StatusCode::BAD_REQUEST, "invalid digest");
    assert_no_content(&f, &envelope, &declared);
    assert_eq!(f.stored(), before);
    // The right bytes are still welcome afterwards.
    let ok = f.upload(
        "good:pkg",
        &envelope.record_id(),
        &Hash::of(&declared),
        declared,
    );
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

#[test]
fn content_that_is_not_wasm_is_refused() {
    let f = Fixture::new();
    for (i, bytes) in [
        b"hello, world".to_vec(),
        // A Wasm header and a truncated section.
        b"\0asm\x01\0\0\0\x01\x05\x01".to_vec(),
        Vec::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let owner = &keys()[0];
        let name = format!("good:not-wasm{i}");
        let envelope = Envelope::sign(
            owner,
            record(None, 0, vec![init(owner), release("1.0.0", &bytes)]),
        );
        let answer = f.publish(&name, &envelope_body(&name, &envelope));
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        let before = f.stored();
        f.upload(
            &name,
            &envelope.record_id(),
            &Hash::of(&bytes),
            bytes.clone(),
        )
        .refused(
            StatusCode::BAD_REQUEST,
            "not a valid WebAssembly module or component",
        );
        f.get(&format!("/v1/content/{}", Hash::of(&bytes)))
            .refused(StatusCode::NOT_FOUND, "was not found");
        // The bytes are the record's content and are not Wasm: the record
        // can never be completed, so it is rejected at once, and the
        // package is free for a corrected publish (issue 14, item 7).
        let state = f.record_state(&name, &envelope.record_id()).body;
        assert_eq!(state["state"], "rejected", "{state}");
        assert!(
            state["reason"]
                .as_str()
                .is_some_and(|r| r.contains("is not valid WebAssembly")),
            "{state}"
        );
        assert_eq!(f.stored(), before);
        let good = wasm(format!("fixed {i}").as_bytes());
        let fixed = Envelope::sign(
            owner,
            record(None, 0, vec![init(owner), release("1.0.0", &good)]),
        );
        let answer = f.publish(&name, &envelope_body(&name, &fixed));
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        let ok = f.upload(&name, &fixed.record_id(), &Hash::of(&good), good);
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
        // In a checkpoint before the next round measures what is stored.
        f.wait_for(|f| f.record_state(&name, &fixed.record_id()).body["state"] == "published");
    }
}

#[test]
fn a_publish_while_another_waits_for_content_says_what_it_waits_for() {
    let f = Fixture::new();
    let declared = wasm(b"declared");
    let envelope = sourcing_release(&f, &declared);
    // Bytes of another digest (anyone may call the upload URL) do not fail
    // the waiting record.
    f.upload(
        "good:pkg",
        &envelope.record_id(),
        &Hash::of(&declared),
        b"not even wasm".to_vec(),
    )
    .refused(StatusCode::BAD_REQUEST, "not `sha256:");
    assert_eq!(
        f.record_state("good:pkg", &envelope.record_id()).body["state"],
        "sourcing"
    );
    let owner = &keys()[0];
    let other = Envelope::sign(
        owner,
        record(None, 0, vec![init(owner), release("2.0.0", &wasm(b"x"))]),
    );
    let refused = f.publish("good:pkg", &envelope_body("good:pkg", &other));
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    let message = refused.body["message"].as_str().expect("message");
    assert!(
        message.contains(&Hash::of(&declared).to_string()) && message.contains(" s"),
        "{message}"
    );
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("Retry-After");
    assert!((1..=600).contains(&retry), "{retry}");
}

#[test]
fn an_oversized_upload_is_refused() {
    let f = Fixture::with_config(Config {
        max_content_bytes: 1024,
        ..Config::default()
    });
    let big = wasm(&[7u8; 4096]);
    let envelope = sourcing_release(&f, &big);
    let before = f.stored();
    f.upload(
        "good:pkg",
        &envelope.record_id(),
        &Hash::of(&big),
        big.clone(),
    )
    .refused(StatusCode::PAYLOAD_TOO_LARGE, "limit of 1024 bytes");
    assert_no_content(&f, &envelope, &big);
    assert_eq!(f.stored(), before);
    // Within the limit, content is accepted.
    let small = wasm(&[1u8; 512]);
    let owner = &keys()[0];
    let fits = Envelope::sign(
        owner,
        record(None, 0, vec![init(owner), release("1.0.0", &small)]),
    );
    f.publish("good:small", &envelope_body("good:small", &fits));
    let ok = f.upload("good:small", &fits.record_id(), &Hash::of(&small), small);
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

#[test]
fn unknown_log_ids_record_ids_and_positions_are_refused() {
    let f = Fixture::new();
    let owner = &keys()[0];
    let head = Envelope::sign(owner, record(None, 0, vec![init(owner)]));
    f.publish_ok("good:pkg", &head);
    let before = f.stored();
    let known = LogId::package(&PackageName::new("good:pkg").expect("name"));
    let unknown = LogId::package(&PackageName::new("good:unknown").expect("name"));
    let stranger = Envelope::sign(owner, record(None, 0, vec![init(&keys()[1])])).record_id();

    // Record status.
    let answer = f.get(&format!("/v1/package/{known}/record/{stranger}"));
    answer.refused(StatusCode::NOT_FOUND, "was not found");
    assert_eq!(answer.body["type"], "record");
    f.get(&format!(
        "/v1/package/{unknown}/record/{}",
        head.record_id()
    ))
    .refused(StatusCode::NOT_FOUND, "was not found");
    f.get(&format!("/v1/package/{known}/record/not-a-digest"))
        .refused(StatusCode::BAD_REQUEST, "invalid record id");
    f.get("/v1/package/sha256:00/record/sha256:00")
        .refused(StatusCode::BAD_REQUEST, "invalid log id");

    // Fetching an unknown log, and fetching past the latest checkpoint.
    let length = f.checkpoint_length();
    let mut packages = serde_json::Map::new();
    packages.insert(unknown.to_string(), Value::Null);
    let answer = f.post_json(
        "/v1/fetch/logs",
        &json!({ "logLength": length, "packages": packages }),
    );
    answer.refused(StatusCode::NOT_FOUND, "was not found");
    assert_eq!(answer.body["type"], "log");
    assert_eq!(answer.body["id"], unknown.to_string());
    let answer = f.post_json("/v1/fetch/logs", &json!({ "logLength": length + 100 }));
    answer.refused(StatusCode::NOT_FOUND, "not found");
    assert_eq!(answer.body["type"], "logLength");
    f.post_json(
        "/v1/fetch/logs",
        &json!({ "logLength": length, "operator": "not-a-token" }),
    )
    .refused(StatusCode::NOT_FOUND, "fetch token");
    f.post_json("/v1/fetch/names", &json!({ "packages": ["good:pkg"] }))
        .refused(StatusCode::BAD_REQUEST, "invalid log id");

    // Uploads to records that do not exist.
    let content = wasm(b"orphan");
    f.upload("good:pkg", &stranger, &Hash::of(&content), content.clone())
        .refused(StatusCode::NOT_FOUND, "was not found");
    // ... or that are not waiting for content.
    f.upload("good:pkg", &head.record_id(), &Hash::of(&content), content)
        .refused(StatusCode::METHOD_NOT_ALLOWED, "not waiting for content");

    // Content and proofs.
    f.get("/v1/content/sha256:nothex")
        .refused(StatusCode::BAD_REQUEST, "invalid digest");
    f.get(&format!("/v1/content/{}", Hash::of(b"none")))
        .refused(StatusCode::NOT_FOUND, "was not found");
    f.get("/content/sha256-0000")
        .refused(StatusCode::BAD_REQUEST, "invalid content name");
    f.post_json(
        "/v1/proof/consistency",
        &json!({ "from": 1, "to": length + 5 }),
    )
    .refused(StatusCode::NOT_FOUND, "not found");
    f.post_json("/v1/proof/consistency", &json!({ "from": length, "to": 1 }))
        .refused(StatusCode::BAD_REQUEST, "");
    f.post_json(
        "/v1/proof/inclusion",
        &json!({ "logLength": length + 5, "leafs": [0] }),
    )
    .refused(StatusCode::NOT_FOUND, "not found");
    let answer = f.post_json(
        "/v1/proof/inclusion",
        &json!({ "logLength": length, "leafs": [length + 3] }),
    );
    answer.refused(StatusCode::NOT_FOUND, "was not found");
    assert_eq!(answer.body["type"], "leaf");
    f.get("/v1/ledger/records/x")
        .refused(StatusCode::BAD_REQUEST, "invalid registry index");
    // Unknown paths and methods.
    f.get("/v1/nothing")
        .refused(StatusCode::NOT_FOUND, "/v1/nothing");
    f.send(Method::DELETE, "/v1/fetch/checkpoint", &[], Vec::new())
        .refused(StatusCode::METHOD_NOT_ALLOWED, "DELETE");

    assert_eq!(f.stored(), before);
}

/// One small anonymous request cannot make the registry build a huge
/// answer: an inclusion proof request repeating one leaf 700,000 times
/// (2 MiB that once made a 239 MB answer), and lists longer than a request
/// may name, are refused with 413 or 400 at once.
#[test]
fn read_requests_that_would_amplify_are_refused() {
    let f = Fixture::new();
    let length = f.get("/v1/fetch/checkpoint").body["contents"]["logLength"]
        .as_u64()
        .expect("a checkpoint");
    let mut body = format!("{{\"logLength\":{length},\"leafs\":[");
    body.push_str(&vec!["0"; 700_000].join(","));
    body.push_str("]}");
    f.post_raw("/v1/proof/inclusion", body.into_bytes())
        .refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 10000 may be asked for",
        );
    f.post_json(
        "/v1/proof/inclusion",
        &json!({ "logLength": length, "leafs": [0, 0] }),
    )
    .refused(StatusCode::BAD_REQUEST, "asked for twice");
    let ids: Vec<String> = (0..10_001u32)
        .map(|i| LogId::from(Hash::of(i.to_le_bytes())).to_string())
        .collect();
    f.post_json("/v1/fetch/names", &json!({ "packages": ids }))
        .refused(StatusCode::PAYLOAD_TOO_LARGE, "10001 log ids");
    let packages: serde_json::Map<String, Value> =
        ids.iter().map(|id| (id.clone(), Value::Null)).collect();
    f.post_json(
        "/v1/fetch/logs",
        &json!({ "logLength": length, "packages": packages }),
    )
    .refused(StatusCode::PAYLOAD_TOO_LARGE, "10001 logs");
}

/// The Warg upload streams into storage as it arrives: a body half sent is
/// already on disk, not held in memory (so N parallel uploads do not cost
/// N times the content in RAM; issue 14, item 11). The upload URL needs
/// no token, but only the digest of a record waiting for it is accepted.
#[test]
fn a_warg_upload_streams_to_disk_as_it_arrives() {
    use std::io::{Read, Write};
    let f = Fixture::new();
    // 4 MiB of Wasm in 64 KiB custom sections (the validator holds one
    // section at most).
    let mut content = b"\0asm\x01\0\0\0".to_vec();
    for i in 0..64u8 {
        let piece = wasm(&vec![i; 64 * 1024 - 16]);
        content.extend_from_slice(&piece[8..]);
    }
    let envelope = sourcing_release(&f, &content);
    let log_id = LogId::package(&PackageName::new("good:pkg").expect("name"));
    let path = format!(
        "/v1/package/{log_id}/record/{}/content/{}",
        envelope.record_id(),
        Hash::of(&content)
    );
    let mut stream = std::net::TcpStream::connect(f.server.addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )
    .expect("head");
    let half = content.len() / 2;
    stream.write_all(&content[..half]).expect("first half");
    let pending = f.server.data_dir.join("content").join("tmp");
    let on_disk = || -> u64 {
        std::fs::read_dir(&pending)
            .map(|d| {
                d.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while on_disk() < (half as u64) / 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "half the body is sent but only {} bytes are on disk",
            on_disk()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stream.write_all(&content[half..]).expect("second half");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}
