//! The OCI distribution API over real HTTP on 127.0.0.1: uploads
//! (monolithic, chunked, out of order, mounted, cancelled, expired), blobs
//! with ranges, manifests by tag and digest (sha256 and sha512), tags with
//! paging, referrers, catalog, deletes, the spec's error codes; and one
//! history with the Warg face: a Warg release is an OCI artifact in the
//! layout wkg reads, its manifest digest stable, a yanked version leaves the
//! tag list but stays fetchable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_interop::http::{Http, Reply as Answer};
use cairn_interop::keys;
use cairn_interop::server::TestServer;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, LogId, PackageName, RecordId, Timestamp};
use cairn_registry::oci::{Algorithm, Digest, OciConfig};
use cairn_registry::{Config, ManualClock, RecordStatus};
use cairn_server::ServerOptions;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Fixture {
    server: TestServer,
    http: Http,
    _dir: tempfile::TempDir,
}

/// Checks on OCI error answers.
trait OciAnswer {
    /// Asserts an OCI error with `code` and a message containing `needle`.
    fn error(&self, status: u16, code: &str, needle: &str);
    /// Asserts a Warg-face error whose `message` contains `needle`.
    fn error_json(&self, status: u16, needle: &str);
}

impl OciAnswer for Answer {
    #[track_caller]
    fn error(&self, status: u16, code: &str, needle: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["errors"][0]["code"], code, "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "message `{message}` should mention `{needle}`"
        );
    }

    #[track_caller]
    fn error_json(&self, status: u16, needle: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "message `{message}` should mention `{needle}`"
        );
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(OciConfig::default())
    }

    fn with(oci: OciConfig) -> Fixture {
        Fixture::with_options(oci, ServerOptions::default())
    }

    fn with_options(oci: OciConfig, options: ServerOptions) -> Fixture {
        Fixture::with_all(Config::default(), oci, options)
    }

    fn with_all(config: Config, oci: OciConfig, options: ServerOptions) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestServer::start_full(dir.path(), &["acme"], config, oci, options, None);
        let http = Http::new(&server.url);
        Fixture {
            server,
            http,
            _dir: dir,
        }
    }

    /// Sends with the admin token.
    fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let bearer = format!("Bearer {}", self.server.admin_token);
        let mut all = headers.to_vec();
        all.push(("authorization", &bearer));
        self.send_as(method, path, &all, body)
    }

    /// Sends with exactly `headers` (no credentials unless given).
    fn send_as(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        self.http.send(method, path, headers, body)
    }

    fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Vec::new())
    }

    /// Starts an upload session in `repo`; returns its location.
    fn start_upload(&self, repo: &str) -> String {
        let started = self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Vec::new(),
        );
        assert_eq!(started.status, StatusCode::ACCEPTED);
        started.header("location")
    }

    /// Pushes a blob in one request; returns its digest.
    fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(Algorithm::Sha256, bytes);
        let answer = self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("content-type", "application/octet-stream")],
            bytes.to_vec(),
        );
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.header("location"),
            format!("/v2/{repo}/blobs/{digest}")
        );
        assert_eq!(answer.header("docker-content-digest"), digest.to_string());
        digest
    }

    /// Pushes the blobs of a minimal Wasm artifact (an empty core module
    /// and its config) to `repo`; returns its manifest and layer digest.
    fn push_wasm_artifact(&self, repo: &str) -> (Value, Digest) {
        let wasm = b"\0asm\x01\0\0\0";
        let config = br#"{"created":"2026-11-25T00:00:00Z","architecture":"wasm","os":"wasip1","layerDigests":[]}"#;
        let config_digest = self.push_blob(repo, config);
        let layer = self.push_blob(repo, wasm);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": descriptor("application/vnd.wasm.config.v0+json", &config_digest, config.len()),
            "layers": [descriptor("application/wasm", &layer, wasm.len())],
        });
        (manifest, layer)
    }

    fn push_manifest(&self, repo: &str, reference: &str, manifest: &Value) -> Answer {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", MANIFEST)],
            serde_json::to_vec(manifest).expect("json"),
        )
    }
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> Value {
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

/// A small artifact (not Wasm) in `repo`: returns the manifest.
fn artifact(f: &Fixture, repo: &str, payload: &[u8]) -> Value {
    let config = b"{}";
    let config_digest = f.push_blob(repo, config);
    let layer_digest = f.push_blob(repo, payload);
    json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": descriptor("application/vnd.oci.empty.v1+json", &config_digest, config.len()),
        "layers": [descriptor("application/octet-stream", &layer_digest, payload.len())],
    })
}

#[test]
fn the_base_endpoint_answers() {
    let f = Fixture::new();
    let answer = f.get("/v2/");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[test]
fn monolithic_and_chunked_uploads_and_ranges() {
    let f = Fixture::new();
    let repo = "misc/blobs";
    let small = b"hello blob".to_vec();
    let digest = f.push_blob(repo, &small);
    let got = f.get(&format!("/v2/{repo}/blobs/{digest}"));
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, small);
    assert_eq!(got.header("docker-content-digest"), digest.to_string());
    let head = f.send(
        Method::HEAD,
        &format!("/v2/{repo}/blobs/{digest}"),
        &[],
        Vec::new(),
    );
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), small.len().to_string());
    assert!(head.body.is_empty());
    let part = f.send(
        Method::GET,
        &format!("/v2/{repo}/blobs/{digest}"),
        &[("range", "bytes=2-4")],
        Vec::new(),
    );
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, b"llo");
    assert_eq!(
        part.header("content-range"),
        format!("bytes 2-4/{}", small.len())
    );
    f.send(
        Method::GET,
        &format!("/v2/{repo}/blobs/{digest}"),
        &[("range", "bytes=50-60")],
        Vec::new(),
    )
    .error(416, "RANGE_INVALID", "cannot be served");

    // Chunked: POST, PATCH in order, an out-of-order PATCH refused, status,
    // PUT with the digest.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let location = f.start_upload(repo);
    assert!(
        location.starts_with(&format!("/v2/{repo}/blobs/uploads/")),
        "{location}"
    );
    let mut offset = 0;
    for chunk in big.chunks(128 * 1024) {
        let range = format!("{}-{}", offset, offset + chunk.len() - 1);
        let answer = f.send(
            Method::PATCH,
            &location,
            &[
                ("content-range", &range),
                ("content-type", "application/octet-stream"),
            ],
            chunk.to_vec(),
        );
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{range}");
        offset += chunk.len();
        assert_eq!(answer.header("range"), format!("0-{}", offset - 1));
    }
    f.send(
        Method::PATCH,
        &location,
        &[("content-range", "5-9")],
        b"xxxxx".to_vec(),
    )
    .error(416, "RANGE_INVALID", "holds 300000 bytes");
    let status = f.get(&location);
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), format!("0-{}", big.len() - 1));
    let digest = Digest::of(Algorithm::Sha256, &big);
    let done = f.send(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        Vec::new(),
    );
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(f.get(&format!("/v2/{repo}/blobs/{digest}")).body, big);
    // The session is gone once complete.
    f.get(&location)
        .error(404, "BLOB_UPLOAD_UNKNOWN", "is not known");

    // A wrong digest: refused, nothing stored, the session ends.
    let location = f.start_upload(repo);
    let wrong = Digest::of(Algorithm::Sha256, b"something else");
    f.send(
        Method::PUT,
        &format!("{location}?digest={wrong}"),
        &[],
        b"the bytes".to_vec(),
    )
    .error(400, "DIGEST_INVALID", "not `sha256:");
    f.get(&format!("/v2/{repo}/blobs/{wrong}"))
        .error(404, "BLOB_UNKNOWN", "is not in repository");
    f.get(&location)
        .error(404, "BLOB_UPLOAD_UNKNOWN", "is not known");
    // A completion without a digest, and malformed digests.
    let location = f.start_upload(repo);
    f.send(Method::PUT, &location, &[], Vec::new())
        .error(400, "DIGEST_INVALID", "?digest=");
    f.get(&format!("/v2/{repo}/blobs/sha256:abc")).error(
        400,
        "DIGEST_INVALID",
        "64 lower-case hex",
    );
    f.get(&format!("/v2/{repo}/blobs/md5:abc"))
        .error(400, "DIGEST_INVALID", "not supported");
    // Cancel.
    let cancelled = f.send(Method::DELETE, &location, &[], Vec::new());
    assert_eq!(cancelled.status, StatusCode::NO_CONTENT);
    f.get(&location)
        .error(404, "BLOB_UPLOAD_UNKNOWN", "is not known");
    // sha512 blobs.
    let digest = Digest::of(Algorithm::Sha512, b"long digest");
    let answer = f.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        b"long digest".to_vec(),
    );
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        f.get(&format!("/v2/{repo}/blobs/{digest}")).body,
        b"long digest"
    );
}

#[test]
fn abandoned_uploads_expire_with_their_bytes() {
    let clock = Arc::new(ManualClock::at(1_800_000_000));
    let f = Fixture::with_all(
        Config {
            clock: clock.clone(),
            ..Config::default()
        },
        OciConfig {
            upload_expiry: Duration::from_secs(60),
            ..OciConfig::default()
        },
        ServerOptions::default(),
    );
    let location = f.start_upload("misc/x");
    f.send(Method::PATCH, &location, &[], vec![1u8; 1000]);
    let uploads = f.server.data_dir.join("blobs").join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).expect("uploads").count(), 1);
    clock.advance(Duration::from_secs(59));
    assert_eq!(f.server.oci.expire_uploads().expect("expire"), 0);
    assert_eq!(std::fs::read_dir(&uploads).expect("uploads").count(), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(f.server.oci.expire_uploads().expect("expire"), 1);
    assert_eq!(std::fs::read_dir(&uploads).expect("uploads").count(), 0);
    f.get(&location)
        .error(404, "BLOB_UPLOAD_UNKNOWN", "is not known");
}

#[test]
fn manifests_tags_referrers_catalog_and_deletes() {
    let f = Fixture::new();
    let repo = "misc/thing";
    let manifest = artifact(&f, repo, b"payload one");
    let pushed = f.push_manifest(repo, "v1", &manifest);
    assert_eq!(pushed.status, StatusCode::CREATED);
    let digest = pushed.header("docker-content-digest");
    let bytes = serde_json::to_vec(&manifest).expect("json");
    assert_eq!(digest, Digest::of(Algorithm::Sha256, &bytes).to_string());
    for reference in ["v1", digest.as_str()] {
        let got = f.get(&format!("/v2/{repo}/manifests/{reference}"));
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, bytes);
        assert_eq!(got.header("content-type"), MANIFEST);
        assert_eq!(got.header("docker-content-digest"), digest);
        let head = f.send(
            Method::HEAD,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[],
            Vec::new(),
        );
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("content-length"), bytes.len().to_string());
    }
    // Pushed by sha512 digest.
    let other = artifact(&f, repo, b"payload two");
    let other_bytes = serde_json::to_vec(&other).expect("json");
    let long = Digest::of(Algorithm::Sha512, &other_bytes);
    let answer = f.push_manifest(repo, &long.to_string(), &other);
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.header("docker-content-digest"), long.to_string());
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/{long}")).body,
        other_bytes
    );
    // A digest reference that does not match the bytes.
    f.push_manifest(
        repo,
        &Digest::of(Algorithm::Sha256, b"x").to_string(),
        &other,
    )
    .error(400, "DIGEST_INVALID", "manifest bytes have digest");
    // Missing blobs, bad JSON, bad tags.
    let mut missing = manifest.clone();
    missing["layers"][0]["digest"] = json!(Digest::of(Algorithm::Sha256, b"absent").to_string());
    f.push_manifest(repo, "v2", &missing)
        .error(400, "MANIFEST_BLOB_UNKNOWN", "push it first");
    f.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/v2"),
        &[("content-type", MANIFEST)],
        b"{not json".to_vec(),
    )
    .error(400, "MANIFEST_INVALID", "not valid JSON");
    f.push_manifest(repo, "-bad", &manifest)
        .error(400, "MANIFEST_INVALID", "invalid tag");
    f.push_manifest("Bad/Name", "v1", &manifest).error(
        400,
        "NAME_INVALID",
        "invalid repository name",
    );

    // Tags, with paging.
    for tag in ["a", "b", "c"] {
        assert_eq!(
            f.push_manifest(repo, tag, &manifest).status,
            StatusCode::CREATED
        );
    }
    let all = f.get(&format!("/v2/{repo}/tags/list"));
    assert_eq!(
        all.json(),
        json!({"name": repo, "tags": ["a", "b", "c", "v1"]})
    );
    let page = f.get(&format!("/v2/{repo}/tags/list?n=2"));
    assert_eq!(page.json()["tags"], json!(["a", "b"]));
    assert_eq!(
        page.header("link"),
        format!("</v2/{repo}/tags/list?n=2&last=b>; rel=\"next\"")
    );
    let next = f.get(&format!("/v2/{repo}/tags/list?n=2&last=b"));
    assert_eq!(next.json()["tags"], json!(["c", "v1"]));
    f.get("/v2/misc/unknown/tags/list")
        .error(404, "NAME_UNKNOWN", "is not known");
    f.get(&format!("/v2/{repo}/manifests/nope")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );

    // Referrers: a signature-like artifact with a subject.
    let signature = {
        let mut m = artifact(&f, repo, b"a signature");
        m["artifactType"] = json!("application/vnd.example.signature");
        m["subject"] = descriptor(MANIFEST, &digest.parse().expect("digest"), bytes.len());
        m
    };
    let sig_bytes = serde_json::to_vec(&signature).expect("json");
    let sig_digest = Digest::of(Algorithm::Sha256, &sig_bytes);
    let pushed = f.push_manifest(repo, &sig_digest.to_string(), &signature);
    assert_eq!(pushed.status, StatusCode::CREATED);
    assert_eq!(pushed.header("oci-subject"), digest);
    let referrers = f.get(&format!("/v2/{repo}/referrers/{digest}"));
    assert_eq!(referrers.status, StatusCode::OK);
    let index = referrers.json();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][0]["digest"], sig_digest.to_string());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/vnd.example.signature"
    );
    let filtered = f.get(&format!(
        "/v2/{repo}/referrers/{digest}?artifactType=application/vnd.example.other"
    ));
    assert_eq!(filtered.json()["manifests"], json!([]));
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");

    // Cross-repository mount, and a mount that falls back to an upload.
    let layer = Digest::of(Algorithm::Sha256, b"payload one");
    let mounted = f.send(
        Method::POST,
        &format!("/v2/misc/copy/blobs/uploads/?mount={layer}&from={repo}"),
        &[],
        Vec::new(),
    );
    assert_eq!(mounted.status, StatusCode::CREATED);
    assert_eq!(
        f.get(&format!("/v2/misc/copy/blobs/{layer}")).body,
        b"payload one"
    );
    let fallback = f.send(
        Method::POST,
        &format!("/v2/misc/copy2/blobs/uploads/?mount={layer}&from=misc/nowhere"),
        &[],
        Vec::new(),
    );
    assert_eq!(fallback.status, StatusCode::ACCEPTED);

    // Catalog.
    let catalog = f.get("/v2/_catalog").json();
    assert_eq!(catalog["repositories"], json!(["misc/copy", "misc/thing"]));

    // Deletes: a tag, a manifest, a blob.
    assert_eq!(
        f.send(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/a"),
            &[],
            Vec::new()
        )
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        f.get(&format!("/v2/{repo}/tags/list")).json()["tags"],
        json!(["b", "c", "v1"])
    );
    assert_eq!(
        f.send(
            Method::DELETE,
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            Vec::new()
        )
        .status,
        StatusCode::ACCEPTED
    );
    f.get(&format!("/v2/{repo}/manifests/{digest}")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );
    assert_eq!(
        f.get(&format!("/v2/{repo}/tags/list")).json()["tags"],
        json!([])
    );
    assert_eq!(
        f.send(
            Method::DELETE,
            &format!("/v2/misc/copy/blobs/{layer}"),
            &[],
            Vec::new()
        )
        .status,
        StatusCode::ACCEPTED
    );
    f.get(&format!("/v2/misc/copy/blobs/{layer}")).error(
        404,
        "BLOB_UNKNOWN",
        "is not in repository",
    );
}

fn submit(f: &Fixture, name: &PackageName, envelope: Envelope<PackageRecord>) -> RecordId {
    let id = envelope.record_id();
    f.server
        .registry
        .submit(name.clone(), LogId::package(name), envelope)
        .wait()
        .expect("accepted");
    id
}

/// Waits, with the engine's primitive, until a checkpoint covers the
/// sequenced record `id`.
fn wait_published(f: &Fixture, name: &PackageName, id: &RecordId) {
    let deadline = Instant::now() + Duration::from_secs(10);
    f.server
        .registry
        .wait_published(&LogId::package(name), id, deadline)
        .expect("published");
}

fn upload(f: &Fixture, name: &PackageName, id: &RecordId, bytes: &[u8]) {
    let digest = Hash::of(bytes);
    let mut upload = f
        .server
        .registry
        .begin_upload(&LogId::package(name), id, &digest)
        .expect("begin");
    upload.write(bytes).expect("write");
    f.server
        .registry
        .finish_upload(upload)
        .expect("finish")
        .wait()
        .expect("sequenced");
}

#[test]
fn warg_releases_are_oci_artifacts_in_the_wkg_layout() {
    let f = Fixture::new();
    let key = &keys()[0];
    let name: PackageName = "acme:greeter".parse().expect("name");
    let wasm = b"\0asm\x01\0\0\0".to_vec();
    let component = b"\0asm\x0d\0\x01\0".to_vec();
    let init = Envelope::sign(
        key,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_795_420_845, 0),
            entries: vec![
                PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                },
                PackageEntry::Release {
                    version: "1.0.0".parse().expect("version"),
                    content: Hash::of(&wasm),
                },
            ],
        },
    );
    let first = submit(&f, &name, init);
    upload(&f, &name, &first, &wasm);
    let second = submit(
        &f,
        &name,
        Envelope::sign(
            key,
            PackageRecord {
                prev: Some(first),
                version: 0,
                timestamp: Timestamp::new(1_795_420_900, 0),
                entries: vec![PackageEntry::Release {
                    version: "1.1.0".parse().expect("version"),
                    content: Hash::of(&component),
                }],
            },
        ),
    );
    upload(&f, &name, &second, &component);
    wait_published(&f, &name, &second);

    let repo = "acme/greeter";
    assert_eq!(
        f.get(&format!("/v2/{repo}/tags/list")).json(),
        json!({"name": repo, "tags": ["1.0.0", "1.1.0"]})
    );
    let got = f.get(&format!("/v2/{repo}/manifests/1.1.0"));
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), MANIFEST);
    let manifest_digest = got.header("docker-content-digest");
    let manifest: Value = got.json();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    let layer = Digest::from(&Hash::of(&component));
    assert_eq!(manifest["layers"][0]["digest"], layer.to_string());
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.1.0"
    );
    // The layer is the Warg content, byte for byte; the config is in wkg's shape.
    assert_eq!(f.get(&format!("/v2/{repo}/blobs/{layer}")).body, component);
    let config_digest = manifest["config"]["digest"].as_str().expect("digest");
    let config = f.get(&format!("/v2/{repo}/blobs/{config_digest}")).json();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["created"], "2026-11-23T08:01:40Z");
    assert_eq!(config["layerDigests"], json!([layer.to_string()]));
    // The digest never changes, and the manifest is reachable by digest.
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/1.1.0"))
            .header("docker-content-digest"),
        manifest_digest
    );
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/{manifest_digest}"))
            .status,
        StatusCode::OK
    );
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/1.0.0")).json()["layers"][0]["digest"],
        Digest::from(&Hash::of(&wasm)).to_string()
    );
    assert!(f.get("/v2/_catalog").json()["repositories"]
        .as_array()
        .expect("list")
        .contains(&json!(repo)));

    // Versions are immutable on the OCI face too.
    f.send(
        Method::DELETE,
        &format!("/v2/{repo}/manifests/1.0.0"),
        &[],
        Vec::new(),
    )
    .error(405, "UNSUPPORTED", "yank it instead");
    let other = artifact(&f, repo, b"other");
    f.push_manifest(repo, "1.0.0", &other)
        .error(409, "DENIED", "already released");

    // A yank: the version leaves the tag list, and stays fetchable.
    let yank = submit(
        &f,
        &name,
        Envelope::sign(
            key,
            PackageRecord {
                prev: Some(second),
                version: 0,
                timestamp: Timestamp::new(1_795_421_000, 0),
                entries: vec![PackageEntry::Yank {
                    version: "1.0.0".parse().expect("version"),
                }],
            },
        ),
    );
    wait_published(&f, &name, &yank);
    assert_eq!(
        f.get(&format!("/v2/{repo}/tags/list")).json()["tags"],
        json!(["1.1.0"])
    );
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/1.0.0")).status,
        StatusCode::OK
    );
}

#[test]
fn wasm_pushes_need_a_version_tag_and_a_token_and_publish() {
    let f = Fixture::new();
    let repo = "acme/pushed";
    let (manifest, layer) = f.push_wasm_artifact(repo);
    f.push_manifest(repo, "latest", &manifest)
        .error(400, "MANIFEST_INVALID", "wasm-pkg-tools#69");
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let anonymous = f.send_as(
        Method::PUT,
        &format!("/v2/{repo}/manifests/1.0.0"),
        &[("content-type", MANIFEST)],
        bytes.clone(),
    );
    anonymous.error(401, "UNAUTHORIZED", "needs a token");
    assert!(anonymous
        .header("www-authenticate")
        .contains("scope=\"repository:acme/pushed:pull,push\""));
    f.get(&format!("/v2/{repo}/manifests/1.0.0")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );

    // With a token: a publish, signed with the account's custodial key.
    let pushed = f.push_manifest(repo, "1.0.0", &manifest);
    assert_eq!(
        pushed.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&pushed.body)
    );
    let digest = Digest::of(Algorithm::Sha256, &bytes);
    assert_eq!(pushed.header("docker-content-digest"), digest.to_string());
    let name: PackageName = "acme:pushed".parse().expect("name");
    let state = f
        .server
        .registry
        .published_package(&LogId::package(&name))
        .expect("state")
        .expect("the package exists");
    let release = state
        .release(&"1.0.0".parse().expect("version"))
        .expect("released");
    assert_eq!(Digest::from(&release.content), layer);
    let admin = f
        .server
        .auth
        .account("admin")
        .expect("account")
        .expect("admin exists");
    assert_eq!(release.by, admin.custodial_key.public_key().id());
    // The manifest is served as pushed, by tag and digest.
    assert_eq!(f.get(&format!("/v2/{repo}/manifests/1.0.0")).body, bytes);
    assert_eq!(f.get(&format!("/v2/{repo}/manifests/{digest}")).body, bytes);
    assert_eq!(
        f.get(&format!("/v2/{repo}/tags/list")).json()["tags"],
        json!(["1.0.0"])
    );
    // The same push again is fine; other content for the version is not.
    assert_eq!(
        f.push_manifest(repo, "1.0.0", &manifest).status,
        StatusCode::CREATED
    );
    let mut changed = manifest.clone();
    changed["annotations"] = json!({"x": "y"});
    f.push_manifest(repo, "1.0.0", &changed)
        .error(409, "DENIED", "already released");
    // Content that is not Wasm is refused and nothing is published.
    let junk = f.push_blob(repo, b"not wasm at all");
    let mut bad = manifest.clone();
    bad["layers"][0] = descriptor("application/wasm", &junk, 15);
    f.push_manifest(repo, "2.0.0", &bad)
        .error(400, "MANIFEST_INVALID", "not a valid WebAssembly");
    f.get(&format!("/v2/{repo}/manifests/2.0.0")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );
    // A namespace that is not defined.
    let other = "elsewhere/pkg";
    let (m, _) = f.push_wasm_artifact(other);
    f.push_manifest(other, "1.0.0", &m).error(
        404,
        "NAME_UNKNOWN",
        "namespace `elsewhere` is not defined",
    );
    f.get(&format!("/v2/{other}/manifests/1.0.0")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );
    let refused = Digest::of(Algorithm::Sha256, &serde_json::to_vec(&m).expect("json"));
    f.get(&format!("/v2/{other}/manifests/{refused}")).error(
        404,
        "MANIFEST_UNKNOWN",
        "is not in repository",
    );
}

#[test]
fn tokens_challenges_and_scopes() {
    use base64::Engine;
    let f = Fixture::new();
    // No credentials: /v2/ answers with the Bearer challenge.
    let ping = f.send_as(Method::GET, "/v2/", &[], Vec::new());
    ping.error(401, "UNAUTHORIZED", "authentication required");
    let challenge = ping.header("www-authenticate");
    let realm = format!("{}/auth/token", f.server.url);
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\",service=\"127.0.0.1:")),
        "{challenge}"
    );
    // The token endpoint: anonymous, then with Basic credentials.
    let anonymous = f.send_as(
        Method::GET,
        "/auth/token?scope=repository:misc/x:pull",
        &[],
        Vec::new(),
    );
    assert_eq!(anonymous.status, StatusCode::OK);
    let anonymous_token = anonymous.json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let bearer = format!("Bearer {anonymous_token}");
    assert_eq!(
        f.send_as(
            Method::GET,
            "/v2/",
            &[("authorization", &bearer)],
            Vec::new()
        )
        .status,
        StatusCode::OK
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", f.server.admin_token))
    );
    let minted = f.send_as(
        Method::GET,
        "/auth/token?service=x&scope=repository:misc/x:pull,push",
        &[("authorization", &basic)],
        Vec::new(),
    );
    assert_eq!(minted.status, StatusCode::OK);
    let minted = minted.json();
    assert_eq!(minted["token"], minted["access_token"]);
    assert!(minted["expires_in"].as_u64().expect("expiry") <= 300);
    let bearer = format!("Bearer {}", minted["token"].as_str().expect("token"));
    let abc = Digest::of(Algorithm::Sha256, b"abc");
    let pushed = f.send_as(
        Method::POST,
        &format!("/v2/misc/x/blobs/uploads/?digest={abc}"),
        &[("authorization", &bearer)],
        b"abc".to_vec(),
    );
    assert_eq!(pushed.status, StatusCode::CREATED);
    // Basic credentials straight on a request work too.
    let pushed = f.send_as(
        Method::POST,
        &format!("/v2/misc/y/blobs/uploads/?digest={abc}"),
        &[("authorization", &basic)],
        b"abc".to_vec(),
    );
    assert_eq!(pushed.status, StatusCode::CREATED);
    // Unknown tokens and bad Basic passwords are refused.
    f.send_as(
        Method::GET,
        "/v2/",
        &[("authorization", "Bearer cairn_nope")],
        Vec::new(),
    )
    .error(401, "UNAUTHORIZED", "not known");
    f.send_as(
        Method::GET,
        "/auth/token",
        &[("authorization", "Basic YWRtaW46bm9wZQ==")],
        Vec::new(),
    )
    .error(401, "UNAUTHORIZED", "not known");
    // A token whose scopes do not cover the repository.
    let limited = f.server.token("ci", &["publish:acme/*"], None);
    let bearer = format!("Bearer {limited}");
    f.send_as(
        Method::POST,
        "/v2/misc/z/blobs/uploads/",
        &[("authorization", &bearer)],
        Vec::new(),
    )
    .error(403, "DENIED", "may not push to `misc/z`");
    assert_eq!(
        f.send_as(
            Method::POST,
            "/v2/acme/z/blobs/uploads/",
            &[("authorization", &bearer)],
            Vec::new()
        )
        .status,
        StatusCode::ACCEPTED
    );
    // An expired token.
    let expired = f.server.token("ci", &["admin"], Some(1));
    f.send_as(
        Method::GET,
        "/v2/",
        &[("authorization", &format!("Bearer {expired}"))],
        Vec::new(),
    )
    .error(401, "UNAUTHORIZED", "expired");
    // Anonymous reads work by default.
    let tags = f.send_as(Method::GET, "/v2/misc/x/tags/list", &[], Vec::new());
    assert_eq!(tags.json(), json!({"name": "misc/x", "tags": []}));
    assert_eq!(
        f.send_as(
            Method::GET,
            &format!("/v2/misc/x/blobs/{abc}"),
            &[],
            Vec::new()
        )
        .body,
        b"abc"
    );
}

#[test]
fn anonymous_pull_can_be_turned_off_on_both_faces() {
    let f = Fixture::with_options(
        OciConfig::default(),
        ServerOptions {
            anonymous_pull: false,
            ..ServerOptions::default()
        },
    );
    let digest = f.push_blob("acme/private", b"secret bytes");
    let reader = f.server.token("reader", &["pull"], None);
    let bearer = format!("Bearer {reader}");
    // The OCI face: a challenge without credentials, the bytes with a token.
    let refused = f.send_as(
        Method::GET,
        &format!("/v2/acme/private/blobs/{digest}"),
        &[],
        Vec::new(),
    );
    assert!(
        refused
            .header("www-authenticate")
            .starts_with("Bearer realm="),
        "challenge: {}",
        refused.header("www-authenticate")
    );
    refused.error(401, "UNAUTHORIZED", "anonymous pull");
    let read = f.send_as(
        Method::GET,
        &format!("/v2/acme/private/blobs/{digest}"),
        &[("authorization", &bearer)],
        Vec::new(),
    );
    assert_eq!(read.body, b"secret bytes");
    // The token endpoint gives no anonymous token.
    f.send_as(Method::GET, "/auth/token", &[], Vec::new())
        .error(401, "UNAUTHORIZED", "anonymous");
    // The Warg face: reads need a token too; discovery stays open.
    for (method, path) in [
        (Method::GET, "/v1/fetch/checkpoint"),
        (Method::POST, "/v1/fetch/logs"),
        (Method::GET, "/v1/ledger"),
    ] {
        let refused = f.send_as(method.clone(), path, &[], b"{}".to_vec());
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}");
        let message = refused.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("anonymous reads"), "{path}: {message}");
        let unknown = f.send_as(
            method,
            path,
            &[("authorization", "Bearer cairn_unknown")],
            b"{}".to_vec(),
        );
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let checkpoint = f.send_as(
        Method::GET,
        "/v1/fetch/checkpoint",
        &[("authorization", &bearer)],
        Vec::new(),
    );
    assert_eq!(checkpoint.status, StatusCode::OK);
    let discovery = f.send_as(
        Method::GET,
        "/.well-known/wasm-pkg/registry.json",
        &[],
        Vec::new(),
    );
    assert_eq!(discovery.status, StatusCode::OK);
}

#[test]
fn referrers_of_a_release_are_recorded_in_the_transparency_log() {
    use base64::Engine;
    use cairn_protocol::attestation::AttestationRecord;

    let f = Fixture::new();
    let repo = "acme/signed";
    let (release, _) = f.push_wasm_artifact(repo);
    let release_bytes = serde_json::to_vec(&release).expect("json");
    assert_eq!(
        f.push_manifest(repo, "1.0.0", &release).status,
        StatusCode::CREATED
    );
    let release_digest = Digest::of(Algorithm::Sha256, &release_bytes);

    // A signature of the release, pushed by digest.
    let mut signature = artifact(&f, repo, b"a signature");
    signature["subject"] = descriptor(MANIFEST, &release_digest, release_bytes.len());
    let signature_bytes = serde_json::to_vec(&signature).expect("json");
    let signature_digest = Digest::of(Algorithm::Sha256, &signature_bytes);
    let pushed = f.push_manifest(repo, &signature_digest.to_string(), &signature);
    assert_eq!(pushed.status, StatusCode::CREATED);
    let recorded = pushed.header("cairn-attestation-record");
    let name: PackageName = "acme:signed".parse().expect("name");
    let log_id = LogId::attestations(&name);
    assert!(
        recorded.starts_with(&log_id.to_string()),
        "the push says where it was recorded: {recorded}"
    );
    // Version tags of a package are releases: a signature may not take one.
    f.push_manifest(repo, "2.0.0", &signature)
        .error(400, "MANIFEST_INVALID", "is a version");
    // A co-tenant who may push to the namespace but holds no permission in
    // the package's log may not attach anything to it (issue 14, item 15).
    let mallory = f.server.token("mallory", &["publish:acme/*"], None);
    let mut forged = artifact(&f, repo, b"a co-tenant's claim");
    forged["subject"] = descriptor(MANIFEST, &release_digest, release_bytes.len());
    let forged_bytes = serde_json::to_vec(&forged).expect("json");
    let forged_digest = Digest::of(Algorithm::Sha256, &forged_bytes);
    f.send_as(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{forged_digest}"),
        &[
            ("content-type", MANIFEST),
            ("authorization", &format!("Bearer {mallory}")),
        ],
        forged_bytes,
    )
    .error(403, "DENIED", "only maintainers of `acme:signed`");
    assert_eq!(
        f.get(&format!("/v2/{repo}/manifests/{forged_digest}"))
            .status,
        StatusCode::NOT_FOUND
    );

    // The attestation log lists it, signed by the operator.
    let log = f.get("/v1/attestations/acme:signed").json();
    assert_eq!(log["logId"], log_id.to_string());
    let records = log["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{log}");
    let record = &records[0];
    assert_eq!(record["subject"], release_digest.to_string());
    assert_eq!(record["referrer"], signature_digest.to_string());
    assert_eq!(record["artifactType"], "application/vnd.example.thing");
    assert_eq!(record["account"], "admin");
    assert_eq!(
        recorded,
        format!("{log_id}/{}", record["recordId"].as_str().expect("id"))
    );
    let content = base64::engine::general_purpose::STANDARD
        .decode(record["contentBytes"].as_str().expect("content bytes"))
        .expect("base64");
    let envelope = Envelope::<AttestationRecord>::from_parts(
        content,
        record["keyId"].as_str().expect("key id"),
        record["signature"].as_str().expect("signature"),
    )
    .expect("a valid envelope");
    assert_eq!(envelope.record_id().to_string(), record["recordId"]);
    let operator = f.server.registry.operator_keys();
    envelope
        .check_signature(&operator[0])
        .expect("signed by the operator");

    // It is a leaf of the registry log: once checkpointed, its inclusion
    // is proven like any record's.
    let index = record["index"].as_u64().expect("index");
    let deadline = Instant::now() + Duration::from_secs(10);
    let length = loop {
        let cp = f.get("/v1/fetch/checkpoint").json();
        let length = cp["contents"]["logLength"].as_u64().unwrap_or(0);
        if length > index {
            break length;
        }
        assert!(Instant::now() < deadline, "no checkpoint covers {index}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let proof = f.send(
        Method::POST,
        "/v1/proof/inclusion",
        &[("content-type", "application/json")],
        json!({ "logLength": length, "leafs": [index] })
            .to_string()
            .into_bytes(),
    );
    assert_eq!(
        proof.status,
        StatusCode::OK,
        "inclusion at {length}: {}",
        String::from_utf8_lossy(&proof.body)
    );

    // The ledger has the leaf (log id, record id) at that index.
    let ledger = f.get(&format!("/v1/ledger/records/{index}"));
    assert_eq!(&ledger.body[..32], log_id.digest().as_bytes());
    assert_eq!(
        &ledger.body[32..64],
        envelope.record_id().digest().as_bytes()
    );

    // A recorded signature cannot be deleted (405, like a release): the
    // log says it exists, so the registry keeps serving it.
    let refused = f.send(
        Method::DELETE,
        &format!("/v2/{repo}/manifests/{signature_digest}"),
        &[],
        Vec::new(),
    );
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(String::from_utf8_lossy(&refused.body).contains("permanent"));
    let referrers = f
        .get(&format!("/v2/{repo}/referrers/{release_digest}"))
        .json();
    let mut kinds: Vec<&Value> = referrers["manifests"]
        .as_array()
        .map(|m| m.iter().map(|m| &m["artifactType"]).collect())
        .unwrap_or_default();
    kinds.sort_by_key(|k| k.to_string());
    assert_eq!(
        kinds.len(),
        2,
        "the signature and the release's offline proof"
    );
    let log = f.get("/v1/attestations/acme:signed").json();
    assert_eq!(log["records"].as_array().map(Vec::len), Some(1));

    // Referrers in repositories that are no package are stored, not logged.
    let mut loose = artifact(&f, "misc/loose", b"another signature");
    loose["subject"] = descriptor(MANIFEST, &release_digest, release_bytes.len());
    let pushed = f.push_manifest("misc/loose", "sig", &loose);
    assert_eq!(pushed.status, StatusCode::CREATED);
    assert_eq!(pushed.header("cairn-attestation-record"), "");
    // Unknown packages have an empty log; bad names are refused.
    let empty = f.get("/v1/attestations/acme:nothing").json();
    assert_eq!(empty["records"], json!([]));
    let bad = f.get("/v1/attestations/not-a-name");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[test]
fn blobs_over_the_size_limit_are_refused_and_not_kept() {
    let f = Fixture::with(OciConfig {
        max_blob_bytes: 1000,
        ..OciConfig::default()
    });
    let repo = "misc/limited";
    let big = vec![7u8; 1001];
    let digest = Digest::of(Algorithm::Sha256, &big);
    // Monolithic.
    f.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[],
        big.clone(),
    )
    .error(413, "SIZE_INVALID", "limit of 1000 bytes");
    // Chunked: the chunk that crosses the limit ends the session.
    let location = f.start_upload(repo);
    let first = f.send(
        Method::PATCH,
        &location,
        &[("content-range", "0-599")],
        big[..600].to_vec(),
    );
    assert_eq!(first.status, StatusCode::ACCEPTED);
    f.send(
        Method::PATCH,
        &location,
        &[("content-range", "600-1000")],
        big[600..].to_vec(),
    )
    .error(413, "SIZE_INVALID", "--max-blob-bytes");
    f.get(&location)
        .error(404, "BLOB_UPLOAD_UNKNOWN", "not known");
    f.get(&format!("/v2/{repo}/blobs/{digest}"))
        .error(404, "BLOB_UNKNOWN", "");
    // At the limit is fine.
    f.push_blob(repo, &big[..1000]);
    let uploads = f.server.data_dir.join("blobs/uploads");
    let left = std::fs::read_dir(&uploads).expect("uploads").count();
    assert_eq!(
        left,
        0,
        "no upload bytes left behind in {}",
        uploads.display()
    );
}

// ---- One door for content and for pushes: regressions ----

/// A Warg release naming the digest of a blob pushed through OCI is not
/// release content until those bytes pass the content door; bytes that are
/// not Wasm never do, and neither face serves them as content.
#[test]
fn a_warg_release_naming_an_oci_blob_of_non_wasm_bytes_is_refused() {
    let f = Fixture::new();
    let bytes = b"an OCI blob that is not Wasm".to_vec();
    let digest = f.push_blob("misc/blobs", &bytes);
    let hash = Hash::of(&bytes);
    let key = &keys()[0];
    let name: PackageName = "acme:borrowed".parse().expect("name");
    let envelope = cairn_interop::publish::first_release(key, &bytes);
    let id = envelope.record_id();
    let status = f
        .server
        .registry
        .submit(name.clone(), LogId::package(&name), envelope)
        .wait()
        .expect("accepted");
    // Not sequenced as if its content had been checked: it waits for it.
    assert_eq!(
        status,
        RecordStatus::Sourcing {
            missing: vec![hash]
        }
    );
    // And the bytes are refused at the door.
    let mut upload = f
        .server
        .registry
        .begin_upload(&LogId::package(&name), &id, &hash)
        .expect("begin");
    upload.write(&bytes).expect("hashed, not stored");
    let refused = f
        .server
        .registry
        .finish_upload(upload)
        .err()
        .map(|e| e.to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("not a valid WebAssembly")),
        "{refused:?}"
    );
    f.get(&format!("/v1/content/{hash}"))
        .error_json(404, "was not found");
    let file = format!("/content/sha256-{}", digest.hex());
    assert_eq!(f.get(&file).status, StatusCode::NOT_FOUND);
    assert!(matches!(
        f.server
            .registry
            .record_status(&LogId::package(&name), &id)
            .expect("status"),
        RecordStatus::Rejected { .. }
    ));
}

/// `/v1/content` serves release content only: a blob pushed through OCI,
/// even valid Wasm, is served there only once a release made it content.
#[test]
fn the_warg_content_urls_never_serve_a_blob_that_is_not_release_content() {
    let f = Fixture::new();
    let repo = "acme/later";
    let (manifest, layer) = f.push_wasm_artifact(repo);
    let hash = layer.to_hash().expect("sha256");
    f.get(&format!("/v1/content/{hash}"))
        .error_json(404, "was not found");
    let file = format!("/content/sha256-{}", layer.hex());
    assert_eq!(f.get(&file).status, StatusCode::NOT_FOUND);
    // Released through OCI: the layer passed the door and is content now.
    let pushed = f.push_manifest(repo, "1.0.0", &manifest);
    assert_eq!(pushed.status, StatusCode::CREATED);
    assert_eq!(f.get(&format!("/v1/content/{hash}")).status, StatusCode::OK);
    assert_eq!(f.get(&file).body, b"\0asm\x01\0\0\0");
}

/// Parallel chunks to one upload session cannot pass the size limit
/// together: the session has one writer at a time.
#[test]
fn parallel_patches_cannot_exceed_the_blob_limit() {
    const LIMIT: u64 = 1 << 20;
    let f = Fixture::with(OciConfig {
        max_blob_bytes: LIMIT,
        ..OciConfig::default()
    });
    let location = f.start_upload("misc/race");
    let chunk = vec![9u8; (LIMIT * 9 / 10) as usize];
    let start = std::sync::Barrier::new(4);
    let statuses: Vec<StatusCode> = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..4)
            .map(|_| {
                let (chunk, location, start) = (chunk.clone(), location.clone(), &start);
                let (url, token) = (f.server.url.clone(), f.server.admin_token.clone());
                scope.spawn(move || {
                    let http = Http::new(&url);
                    start.wait();
                    let bearer = format!("Bearer {token}");
                    http.send(
                        Method::PATCH,
                        &location,
                        &[("authorization", &bearer)],
                        chunk,
                    )
                    .status
                })
            })
            .collect();
        sent.into_iter()
            .map(|s| s.join().expect("request"))
            .collect()
    });
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    assert!(accepted <= 1, "{statuses:?}");
    for status in &statuses {
        assert!(
            [
                StatusCode::ACCEPTED,
                StatusCode::CONFLICT,
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::NOT_FOUND
            ]
            .contains(status),
            "{statuses:?}"
        );
    }
    // Whatever the session holds (if it still exists) is within the limit.
    let uploads = f.server.data_dir.join("blobs/uploads");
    for entry in std::fs::read_dir(&uploads).expect("uploads") {
        let size = entry.expect("entry").metadata().expect("metadata").len();
        assert!(size <= LIMIT, "an upload holds {size} bytes");
    }
}

/// A Wasm push that the log refuses leaves no tag and no manifest behind,
/// at any moment: a reader polling all the while never sees them.
#[test]
fn a_push_refused_by_the_log_never_shows_a_tag() {
    let f = Fixture::new();
    let repo = "acme/owned";
    // The package belongs to a Warg key; the OCI account's custodial key
    // holds no permission on it.
    let owner = &keys()[0];
    let name: PackageName = "acme:owned".parse().expect("name");
    let init = Envelope::sign(
        owner,
        PackageRecord {
            prev: None,
            version: 0,
            timestamp: Timestamp::new(1_800_000_000, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: owner.public_key().clone(),
            }],
        },
    );
    let id = submit(&f, &name, init);
    wait_published(&f, &name, &id);
    let (manifest, _) = f.push_wasm_artifact(repo);
    let digest = Digest::of(
        Algorithm::Sha256,
        &serde_json::to_vec(&manifest).expect("json"),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let http = Http::new(&f.server.url);
            let mut seen = Vec::new();
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads < 10 {
                reads += 1;
                let by_tag = http.send(
                    Method::GET,
                    &format!("/v2/{repo}/manifests/1.0.0"),
                    &[],
                    Vec::new(),
                );
                if by_tag.status != StatusCode::NOT_FOUND {
                    seen.push(format!("manifest by tag: {}", by_tag.status));
                }
                let by_digest = http.send(
                    Method::GET,
                    &format!("/v2/{repo}/manifests/{digest}"),
                    &[],
                    Vec::new(),
                );
                if by_digest.status != StatusCode::NOT_FOUND {
                    seen.push(format!("manifest by digest: {}", by_digest.status));
                }
                let tags = http.send(
                    Method::GET,
                    &format!("/v2/{repo}/tags/list"),
                    &[],
                    Vec::new(),
                );
                if tags.json()["tags"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty())
                {
                    seen.push(format!("tags: {}", String::from_utf8_lossy(&tags.body)));
                }
            }
            seen
        });
        for _ in 0..10 {
            f.push_manifest(repo, "1.0.0", &manifest)
                .error(403, "DENIED", "was refused");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().expect("reader")
    });
    let first: Vec<&String> = seen.iter().take(3).collect();
    assert!(
        seen.is_empty(),
        "a refused push was visible {} times, first: {first:?}",
        seen.len()
    );
}

/// The `Host` header is the client's to choose: only a plain `host[:port]`
/// from it goes into the URLs the registry hands out.
#[test]
fn a_host_header_that_is_not_a_host_is_not_echoed() {
    let f = Fixture::new();
    let listen = f.server.addr.to_string();
    for host in ["evil.example/phish?", "a\"b", "user@evil.example"] {
        let answer = f.send_as(Method::GET, "/v2/", &[("host", host)], Vec::new());
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let challenge = answer.header("www-authenticate");
        assert!(
            challenge.starts_with(&format!("Bearer realm=\"http://{listen}/auth/token\"")),
            "{host}: {challenge}"
        );
        let discovery = f
            .send_as(
                Method::GET,
                "/.well-known/wasm-pkg/registry.json",
                &[("host", host)],
                Vec::new(),
            )
            .json();
        assert_eq!(
            discovery["warg"]["url"],
            format!("http://{listen}"),
            "{host}"
        );
    }
    // A plain host name is taken, as a registry behind a proxy needs.
    let answer = f.send_as(
        Method::GET,
        "/v2/",
        &[("host", "registry.example:8443")],
        Vec::new(),
    );
    assert!(answer
        .header("www-authenticate")
        .contains("realm=\"http://registry.example:8443/auth/token\""));
}

/// The distribution spec's conformance: a last chunk sent with the closing
/// `PUT` out of order gets 416 and the session stays (issue 14).
#[test]
fn an_out_of_order_final_chunk_gets_416_and_keeps_the_session() {
    let f = Fixture::new();
    let repo = "misc/chunks";
    let bytes: Vec<u8> = (0..20u8).collect();
    let digest = Digest::of(Algorithm::Sha256, &bytes);
    let location = f.start_upload(repo);
    let first = f.send(
        Method::PATCH,
        &location,
        &[("content-range", "0-9")],
        bytes[..10].to_vec(),
    );
    assert_eq!(first.status, StatusCode::ACCEPTED);
    f.send(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[("content-range", "15-24")],
        bytes[10..].to_vec(),
    )
    .error(416, "RANGE_INVALID", "holds 10 bytes");
    let status = f.get(&location);
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-9");
    let done = f.send(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[("content-range", "10-19")],
        bytes[10..].to_vec(),
    );
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(f.get(&format!("/v2/{repo}/blobs/{digest}")).body, bytes);
}

/// OCI 1.1: a manifest pushed by digest takes the tags of `?tag=`.
#[test]
fn a_manifest_pushed_by_digest_takes_the_tags_in_its_query() {
    let f = Fixture::new();
    let repo = "misc/tagged";
    let manifest = artifact(&f, repo, b"tag me");
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let digest = Digest::of(Algorithm::Sha256, &bytes);
    let pushed = f.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{digest}?tag=latest&tag=stable"),
        &[("content-type", MANIFEST)],
        bytes.clone(),
    );
    assert_eq!(pushed.status, StatusCode::CREATED);
    let applied: Vec<&str> = pushed
        .headers
        .get_all("oci-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(applied, ["latest", "stable"]);
    let tags = f.get(&format!("/v2/{repo}/tags/list")).json();
    assert_eq!(tags["tags"], json!(["latest", "stable"]));
    assert_eq!(f.get(&format!("/v2/{repo}/manifests/stable")).body, bytes);
    // A bad tag is refused before anything is stored.
    f.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{digest}?tag=no%20spaces"),
        &[("content-type", MANIFEST)],
        bytes,
    )
    .error(400, "MANIFEST_INVALID", "invalid tag");
}
