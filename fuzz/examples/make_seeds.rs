//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, from the
//! crates' own encoders and fixtures: `cargo run --example make_seeds`
//! (stable toolchain; run from `fuzz/`). Deterministic: running it again
//! rewrites the same bytes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use cairn_api::attestation::{AttestationsResponse, PublishedAttestation};
use cairn_api::content::ContentSourcesResponse;
use cairn_api::fetch::{FetchLogsRequest, FetchLogsResponse, FetchPackageNamesRequest};
use cairn_api::ledger::{LedgerSource, LedgerSourcesResponse};
use cairn_api::package::{PackageRecord as WireRecord, PublishRecordRequest};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::well_known::RegistryMetadata;
use cairn_api::{EntityType, ErrorBody, PublishedRecord, SignedCheckpointJson};
use cairn_fuzz::fixtures::{self, key, LOG_LEAVES};
use cairn_protocol::attestation::{Attestation, AttestationRecord};
use cairn_protocol::{
    Checkpoint, Envelope, Hash, LogId, PackageName, Record, Timestamp, TimestampedCheckpoint,
};
use cairn_registry::oci::{Algorithm, Digest, ReleaseArtifact};
use cairn_transparency::log::{ConsistencyProof, InclusionProof, LogProofBundle};
use cairn_transparency::map::{Map, MapProofBundle};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("seed dir");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("json")
}

fn attestation() -> Envelope<AttestationRecord> {
    Envelope::sign(
        key(0),
        AttestationRecord {
            prev: None,
            timestamp: Timestamp::new(fixtures::START, 5),
            attestation: Attestation {
                subject: Digest::of(Algorithm::Sha256, b"subject").to_string(),
                referrer: Digest::of(Algorithm::Sha256, b"referrer").to_string(),
                artifact_type: "application/vnd.example.signature".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 321,
                account: "ci".into(),
            },
        },
    )
}

fn log_bundle() -> Vec<u8> {
    let log = fixtures::reference_log();
    let consistency = [5, 17, 32].map(|old| ConsistencyProof {
        old_length: old,
        new_length: LOG_LEAVES,
    });
    let inclusion = [0, 1, 20, LOG_LEAVES - 1].map(|i| InclusionProof::for_leaf(i, LOG_LEAVES));
    LogProofBundle::bundle(&consistency, &inclusion, log)
        .expect("bundle")
        .encode()
        .expect("encode")
}

fn map_bundle() -> Vec<u8> {
    let map = fixtures::reference_map();
    MapProofBundle {
        proofs: (0..4)
            .map(|i| map.prove(&fixtures::map_key(i)).expect("a key of the map"))
            .collect(),
    }
    .encode()
}

fn records() {
    for (n, (_, envelopes)) in fixtures::package_logs().iter().enumerate() {
        for (i, envelope) in envelopes.iter().enumerate() {
            write(
                "package_record",
                &format!("envelope-{n}-{i}"),
                &envelope.encode(),
            );
            write(
                "package_record",
                &format!("contents-{n}-{i}"),
                envelope.content_bytes(),
            );
        }
    }
    let name: PackageName = "wasi:http".parse().expect("name");
    let text = [
        Hash::of(b"x").to_string(),
        key(1).public_key().to_string(),
        key(1).public_key().id().to_string(),
        fixtures::signature_text().to_owned(),
        key(2).encode(),
        name.to_string(),
        LogId::package(&name).to_string(),
        "1.2.3-rc.1+build.5".to_owned(),
        ">=1.0, <2".to_owned(),
        "sha256".to_owned(),
    ]
    .join("\n");
    write("package_record", "text", text.as_bytes());

    for (n, (_, envelopes)) in fixtures::operator_logs().iter().enumerate() {
        for (i, envelope) in envelopes.iter().enumerate() {
            write(
                "operator_record",
                &format!("envelope-{n}-{i}"),
                &envelope.encode(),
            );
            write(
                "operator_record",
                &format!("contents-{n}-{i}"),
                envelope.content_bytes(),
            );
        }
    }
    let attestation = attestation();
    write(
        "operator_record",
        "attestation-envelope",
        &attestation.encode(),
    );
    write(
        "operator_record",
        "attestation-contents",
        attestation.content_bytes(),
    );
}

fn proofs() {
    let tagged = |tag: u8, bytes: &[u8]| {
        let mut out = vec![tag];
        out.extend_from_slice(bytes);
        out
    };
    write("proofs", "log-bundle", &tagged(0, &log_bundle()));
    write("proofs", "map-bundle", &tagged(1, &map_bundle()));
    let small = Map::new().apply((0..3).map(|i| (fixtures::map_key(i), fixtures::map_value(i))));
    write("proofs", "snapshot-3", &tagged(2, &small.snapshot()));
    write("proofs", "snapshot-0", &tagged(2, &Map::new().snapshot()));
    write(
        "proofs",
        "snapshot-20",
        &tagged(2, &fixtures::reference_map().snapshot()),
    );
    let hashes: Vec<u8> = (0..4u8).flat_map(|i| *Hash::of([i]).as_bytes()).collect();
    write("proofs", "lanes", &tagged(3, &hashes));
}

fn oci() {
    let name: PackageName = "wasi:http".parse().expect("name");
    let content = Digest::of(Algorithm::Sha256, b"\0asm\x01\0\0\0");
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.description".to_owned(),
        "a test".to_owned(),
    )]);
    let built = ReleaseArtifact {
        name: &name,
        version: &fixtures::version("1.2.3"),
        content: &content,
        size: 8,
        created: &Timestamp::new(fixtures::START, 0),
        component: true,
        annotations: &annotations,
    }
    .build();
    // Content-type byte, 8 bytes of seconds, 2 of nanoseconds, then the body.
    let seed = |ct: u8, body: &[u8]| {
        let mut out = vec![ct];
        out.extend_from_slice(&fixtures::START.to_le_bytes());
        out.extend_from_slice(&[7, 0]);
        out.extend_from_slice(body);
        out
    };
    write("oci_manifest", "wasm-release", &seed(1, &built.manifest));
    write(
        "oci_manifest",
        "wasm-release-no-header",
        &seed(0, &built.manifest),
    );
    let manifest_digest = Digest::of(Algorithm::Sha256, &built.manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": cairn_registry::oci::IMAGE_INDEX,
        "manifests": [{
            "mediaType": cairn_registry::oci::IMAGE_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": built.manifest.len(),
            "platform": {"architecture": "wasm", "os": "wasip2"},
        }],
        "annotations": {"a": "b"},
    });
    write(
        "oci_manifest",
        "index",
        &seed(2, &serde_json::to_vec(&index).expect("json")),
    );
    let referrer = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": cairn_registry::oci::IMAGE_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::of(Algorithm::Sha256, b"{}").to_string(),
            "size": 2,
        },
        "layers": [{
            "mediaType": "application/vnd.example.signature",
            "digest": Digest::of(Algorithm::Sha512, b"sig").to_string(),
            "size": 3,
        }],
        "subject": {
            "mediaType": cairn_registry::oci::IMAGE_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": built.manifest.len(),
        },
    });
    write(
        "oci_manifest",
        "referrer",
        &seed(6, &serde_json::to_vec(&referrer).expect("json")),
    );
    write("oci_manifest", "repository", &seed(0, b"wasi/http"));
    write("oci_manifest", "tag", &seed(0, b"1.2.3"));
    write(
        "oci_manifest",
        "digest",
        &seed(0, manifest_digest.to_string().as_bytes()),
    );
}

fn api() {
    let name: PackageName = "wasi:http".parse().expect("name");
    let (_, envelopes) = &fixtures::package_logs()[2];
    let (_, operator) = &fixtures::operator_logs()[2];
    let log_id = LogId::package(&name);
    write(
        "api_json",
        "fetch-logs-request",
        &json(&FetchLogsRequest::after(9, Some(1), &[(log_id, Some(3))])),
    );
    write(
        "api_json",
        "fetch-names-request",
        &json(&FetchPackageNamesRequest::new(&[log_id, LogId::operator()])),
    );
    write(
        "api_json",
        "publish-request",
        &json(&PublishRecordRequest::new(&name, &envelopes[0])),
    );
    let checkpoint = TimestampedCheckpoint {
        checkpoint: Checkpoint {
            log_root: fixtures::reference_log().root(),
            log_length: LOG_LEAVES,
            map_root: fixtures::reference_map().root(),
        },
        timestamp: 1_700_000_123,
    }
    .sign(key(0));
    write(
        "api_json",
        "signed-checkpoint",
        &json(&SignedCheckpointJson::from(&checkpoint)),
    );
    write(
        "api_json",
        "consistency-request",
        &json(&ConsistencyRequest { from: 3, to: 9 }),
    );
    write(
        "api_json",
        "inclusion-request",
        &json(&InclusionRequest {
            log_length: 9,
            leafs: vec![0, 4, 8],
        }),
    );
    let response = FetchLogsResponse {
        more: true,
        operator: operator
            .iter()
            .enumerate()
            .map(|(i, e)| PublishedRecord::new(e, i as u64))
            .collect(),
        packages: BTreeMap::from([(
            log_id.to_string(),
            envelopes
                .iter()
                .enumerate()
                .map(|(i, e)| PublishedRecord::new(e, 2 + i as u64))
                .collect(),
        )]),
        warnings: Vec::new(),
    };
    write("api_json", "fetch-logs-response", &json(&response));
    let record_id = envelopes[0].record_id();
    write(
        "api_json",
        "record-sourcing",
        &json(&WireRecord::sourcing(
            &log_id,
            &record_id,
            [&Hash::of(b"a"), &Hash::of(b"b")],
        )),
    );
    write(
        "api_json",
        "record-published",
        &json(&WireRecord::published(&record_id, 7)),
    );
    write(
        "api_json",
        "record-rejected",
        &json(&WireRecord::rejected(&record_id, "no")),
    );
    write(
        "api_json",
        "consistency-response",
        &json(&ConsistencyResponse {
            proof: log_bundle(),
        }),
    );
    write(
        "api_json",
        "inclusion-response",
        &json(&InclusionResponse {
            log: log_bundle(),
            map: map_bundle(),
        }),
    );
    write(
        "api_json",
        "content-sources",
        &json(&ContentSourcesResponse::http_get(
            &Hash::of(b"a"),
            "https://registry.example/content/a".into(),
            10,
        )),
    );
    write(
        "api_json",
        "ledger",
        &json(&LedgerSourcesResponse {
            hash_algorithm: "sha256".into(),
            sources: vec![LedgerSource::packed(0, 999)],
        }),
    );
    write(
        "api_json",
        "error-entity",
        &json(&ErrorBody::entity(
            404,
            EntityType::Record,
            "sha256:00",
            "not found",
        )),
    );
    write(
        "api_json",
        "error-message",
        &json(&ErrorBody::message(400, "bad")),
    );
    let attestation = attestation();
    write(
        "api_json",
        "attestations",
        &json(&AttestationsResponse::new(
            &name,
            vec![PublishedAttestation::new(
                3,
                &attestation,
                "2023-11-14T22:13:20Z".into(),
            )],
        )),
    );
    write(
        "api_json",
        "well-known",
        &json(&RegistryMetadata::new("https://registry.example")),
    );
    let _ = record_id.to_string();
    let _ = operator[0].content_bytes().len();
    let _ = envelopes[0].contents().encode();
}

fn wasm() {
    let core = wat::parse_str(
        r#"(module
            (type $binop (func (param i32 i32) (result i32)))
            (import "env" "log" (func $log (param i32)))
            (memory (export "memory") 1)
            (global $counter (mut i32) (i32.const 0))
            (func $add (export "add") (type $binop)
                local.get 0 local.get 1 i32.add)
            (func $main (call $log (i32.const 42)))
            (start $main)
            (data (i32.const 16) "hello, world")
            (@custom "description" "a test module"))"#,
    )
    .expect("wat");
    let component = wat::parse_str(
        r#"(component
            (core module $m
                (memory (export "mem") 1)
                (func (export "answer") (result i32) i32.const 42))
            (core instance $i (instantiate $m))
            (component $inner
                (core module (func (export "id") (param i32) (result i32) local.get 0)))
            (instance (instantiate $inner))
            (type $answer-type (func (result u32)))
            (func $answer (type $answer-type) (canon lift (core func $i "answer")))
            (export "answer" (func $answer)))"#,
    )
    .expect("wat");
    let invalid = wat::parse_str("(module (func (result i32) i32.add))").expect("wat");
    // One piece size (7 bytes), then the Wasm; or three sizes with empty feeds.
    let seed = |sizes: &[u8], wasm: &[u8]| {
        let mut out = vec![sizes.len() as u8];
        out.extend_from_slice(sizes);
        out.extend_from_slice(wasm);
        out
    };
    write("wasm_stream", "core", &seed(&[6], &core));
    write("wasm_stream", "core-bytewise", &seed(&[0x80, 0, 1], &core));
    write(
        "wasm_stream",
        "component",
        &seed(&[3, 0x8f, 60], &component),
    );
    write(
        "wasm_stream",
        "empty-module",
        &seed(&[0], b"\0asm\x01\0\0\0"),
    );
    write(
        "wasm_stream",
        "empty-component",
        &seed(&[2], b"\0asm\x0d\0\x01\0"),
    );
    write("wasm_stream", "type-error", &seed(&[5], &invalid));
}

/// Encodes records in the byte layout `package_state` and
/// `operator_state` read: signer, prev (2 = the head), protocol version
/// (200 = 0), time step, nanoseconds, entry count, the entries, and the
/// signature (255 = good, 0 = signed by the next key).
struct Records(Vec<u8>);

impl Records {
    fn record(mut self, signer: u8, entries: &[&[u8]], signature: u8) -> Self {
        self.0
            .extend_from_slice(&[signer, 2, 200, 1, 0, entries.len() as u8]);
        for entry in entries {
            self.0.extend_from_slice(entry);
        }
        self.0.push(signature);
        self
    }
}

fn states() {
    // Package entries: 0 init (0 = the signer's key), 1 grant key n perms..,
    // 2 revoke key n perms.., 3 release version content, 4 yank version;
    // permissions 0 release, 1 yank.
    let log = Records(Vec::new())
        .record(0, &[&[0, 0], &[3, 0, 1]], 255)
        .record(0, &[&[1, 1, 2, 0, 1]], 255)
        .record(1, &[&[3, 1, 2], &[4, 0]], 255)
        .record(0, &[&[2, 1, 1, 1]], 255)
        .record(1, &[&[4, 1]], 255);
    write("package_state", "grant-release-yank-revoke", &log.0);
    let log = Records(Vec::new())
        .record(1, &[&[0, 0]], 0)
        .record(1, &[&[0, 0], &[3, 2, 9]], 255)
        .record(2, &[&[3, 3, 9]], 255)
        .record(1, &[&[3, 2, 9]], 255)
        .record(1, &[], 255);
    write("package_state", "refusals", &log.0);
    // Operator entries: 0 init, 1 grant, 2 revoke (permissions 0 commit,
    // 1 define, 2 import), 3 define namespace n, 4 import namespace n
    // registry r.
    let log = Records(Vec::new())
        .record(0, &[&[0, 0], &[3, 0]], 255)
        .record(0, &[&[1, 1, 1, 0], &[4, 1, 0], &[3, 4]], 255)
        .record(0, &[&[1, 1, 1, 0], &[4, 1, 0]], 255)
        .record(1, &[&[1, 2, 2, 0, 1]], 255)
        .record(2, &[&[3, 2]], 255)
        .record(0, &[&[2, 1, 1, 0]], 255)
        .record(1, &[&[1, 3, 1, 0]], 255);
    write("operator_state", "define-import-grant-revoke", &log.0);
    let log = Records(Vec::new())
        .record(0, &[&[0, 0]], 0)
        .record(0, &[&[0, 0]], 255)
        .record(0, &[&[3, 0], &[3, 0]], 255)
        .record(3, &[], 255);
    write("operator_state", "refusals", &log.0);
}

fn main() {
    records();
    proofs();
    oci();
    api();
    wasm();
    states();
}
