//! The exact JSON of every wire type against literal expected text (a
//! renamed, added or dropped field fails here), round trips through the
//! protocol's types, and the refusals the server relies on.

use std::collections::BTreeMap;
use std::fmt::Debug;

use cairn_api::attestation::{AttestationsResponse, PublishedAttestation};
use cairn_api::content::{ContentSource, ContentSourcesResponse};
use cairn_api::fetch::{
    FetchLogsRequest, FetchLogsResponse, FetchPackageNamesRequest, FetchPackageNamesResponse,
};
use cairn_api::ledger::{LedgerSource, LedgerSourcesResponse};
use cairn_api::monitor::{CheckpointVerificationResponse, VerificationState};
use cairn_api::package::{
    PackageRecord, PackageRecordState, PublishRecordRequest, UploadEndpoint, UploadedContent,
};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::well_known::RegistryMetadata;
use cairn_api::{
    paths, EntityType, EnvelopeBody, ErrorBody, PublishedRecord, SignedCheckpointJson, WireError,
};
use cairn_protocol::attestation::{Attestation, AttestationRecord};
use cairn_protocol::package::{PackageEntry, PackageRecord as Record, PACKAGE_RECORD_VERSION};
use cairn_protocol::{
    Checkpoint, Envelope, Hash, HashAlgorithm, LogId, PackageName, PrivateKey, RecordId, Timestamp,
    TimestampedCheckpoint,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` serializes to exactly `json`, and `json` reads back as `value`.
fn exact<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T, json: &str) {
    assert_eq!(serde_json::to_string(value).expect("serializes"), json);
    let back: T = serde_json::from_str(json).expect("reads back");
    assert_eq!(&back, value);
}

fn refused<T: DeserializeOwned + Debug>(json: &str, needle: &str) {
    let e = serde_json::from_str::<T>(json).expect_err("refused");
    assert!(
        e.to_string().contains(needle),
        "`{e}` should say `{needle}`"
    );
}

fn key() -> PrivateKey {
    PrivateKey::decode("ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=").expect("key")
}

fn name() -> PackageName {
    "example:hello".parse().expect("name")
}

fn envelope() -> Envelope<Record> {
    let key = key();
    Envelope::sign(
        &key,
        Record {
            prev: None,
            version: PACKAGE_RECORD_VERSION,
            timestamp: Timestamp::new(1_700_000_000, 0),
            entries: vec![PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key.public_key().clone(),
            }],
        },
    )
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn hash(text: &str) -> Hash {
    text.parse().expect("digest")
}

#[test]
fn signed_checkpoint() {
    let json = SignedCheckpointJson {
        contents: cairn_api::TimestampedCheckpointJson {
            log_root: D1.into(),
            log_length: 42,
            map_root: D2.into(),
            timestamp: 1_700_000_000,
        },
        key_id: D3.into(),
        signature: "ecdsa-p256:c2ln".into(),
    };
    exact(
        &json,
        &format!(
            r#"{{"contents":{{"logRoot":"{D1}","logLength":42,"mapRoot":"{D2}","timestamp":1700000000}},"keyId":"{D3}","signature":"ecdsa-p256:c2ln"}}"#
        ),
    );

    // A real one round-trips through the protocol type.
    let cp = TimestampedCheckpoint {
        checkpoint: Checkpoint {
            log_root: hash(D1),
            log_length: 42,
            map_root: hash(D2),
        },
        timestamp: 1_700_000_000,
    }
    .sign(&key());
    let wire = SignedCheckpointJson::from(&cp);
    assert_eq!(
        (
            wire.contents.log_root.as_str(),
            wire.contents.log_length,
            wire.contents.map_root.as_str(),
            wire.contents.timestamp,
        ),
        (D1, 42, D2, 1_700_000_000)
    );
    assert_eq!(wire.key_id, key().public_key().id().to_string());
    assert_eq!(wire.signature, cp.signature.to_string());
    assert_eq!(wire.parse().expect("parses"), cp);
    let text = serde_json::to_string(&wire).expect("json");
    let back: SignedCheckpointJson = serde_json::from_str(&text).expect("back");
    assert_eq!(back.parse().expect("parses"), cp);

    // A bad field is named.
    let mut bad = wire.clone();
    bad.contents.map_root = "sha256:00".into();
    let e = bad.parse().expect_err("bad map root");
    assert!(
        matches!(
            e,
            WireError::Invalid {
                field: "contents.mapRoot",
                ..
            }
        ),
        "{e}"
    );
    let mut bad = wire;
    bad.signature = "nope".into();
    assert!(matches!(
        bad.parse(),
        Err(WireError::Invalid {
            field: "signature",
            ..
        })
    ));

    // Strict, as the server's verify/checkpoint always was.
    refused::<SignedCheckpointJson>(
        &text.replacen('{', r#"{"extra":1,"#, 1),
        "unknown field `extra`",
    );
    refused::<SignedCheckpointJson>(r#"{"contents":{}}"#, "missing field");
}

#[test]
fn published_records() {
    let record = PublishedRecord::from_parts(&[1, 2, 3], D3, "ecdsa-p256:c2ln", 7);
    exact(
        &record,
        &format!(
            r#"{{"contentBytes":"AQID","keyId":"{D3}","signature":"ecdsa-p256:c2ln","registryIndex":7,"fetchToken":"7"}}"#
        ),
    );
    // Trusted-state files written before fetch tokens were kept.
    let old = format!(
        r#"{{"contentBytes":"AQID","keyId":"{D3}","signature":"ecdsa-p256:c2ln","registryIndex":7}}"#
    );
    let read: PublishedRecord = serde_json::from_str(&old).expect("old state");
    assert_eq!(read.fetch_token, None);
    assert_eq!(serde_json::to_string(&read).expect("json"), old);

    let envelope = envelope();
    let record = PublishedRecord::new(&envelope, 3);
    assert_eq!(record.fetch_token.as_deref(), Some("3"));
    let back: Envelope<Record> = record.envelope().expect("decodes");
    assert_eq!(back, envelope);

    let mut bad = record.clone();
    bad.content_bytes = "%%%".into();
    assert!(matches!(
        bad.envelope::<Record>(),
        Err(WireError::Base64 {
            field: "contentBytes",
            ..
        })
    ));
    let mut bad = record;
    bad.key_id = "md5:1".into();
    assert!(matches!(
        bad.envelope::<Record>(),
        Err(WireError::Envelope { .. })
    ));
}

#[test]
fn fetch_logs() {
    let a: LogId = hash(D1).into();
    let b: LogId = hash(D2).into();
    let request = FetchLogsRequest::after(5, None, &[(b, Some(3)), (a, None)]);
    exact(
        &request,
        &format!(r#"{{"logLength":5,"operator":null,"packages":{{"{D1}":null,"{D2}":"3"}}}}"#),
    );
    let logs = request.package_logs().expect("log ids");
    assert_eq!(logs, vec![(a, None), (b, Some("3"))]);
    let request = FetchLogsRequest {
        limit: Some(10),
        ..FetchLogsRequest::after(5, Some(2), &[])
    };
    exact(
        &request,
        r#"{"logLength":5,"limit":10,"operator":"2","packages":{}}"#,
    );
    // What the reference client sends: only what is set.
    let minimal: FetchLogsRequest = serde_json::from_str(r#"{"logLength":1}"#).expect("minimal");
    assert_eq!(minimal, FetchLogsRequest::after(1, None, &[]));
    refused::<FetchLogsRequest>(r#"{"logLength":1,"bogus":true}"#, "unknown field `bogus`");
    refused::<FetchLogsRequest>(r#"{"logLength":1,"limit":70000}"#, "invalid value");
    let bad: FetchLogsRequest =
        serde_json::from_str(r#"{"logLength":1,"packages":{"xyz":null}}"#).expect("json");
    assert!(matches!(
        bad.package_logs(),
        Err(WireError::Invalid {
            field: "packages",
            what: "log id",
            ..
        })
    ));
    assert_eq!(cairn_api::fetch::token_index("12"), Some(12));
    assert_eq!(cairn_api::fetch::token_index("not-a-token"), None);

    let record = PublishedRecord::from_parts(&[9], D3, "ecdsa-p256:c2ln", 0);
    let response = FetchLogsResponse {
        more: true,
        operator: vec![record.clone()],
        packages: BTreeMap::from([(D1.to_owned(), vec![record])]),
        warnings: Vec::new(),
    };
    let r = format!(
        r#"{{"contentBytes":"CQ==","keyId":"{D3}","signature":"ecdsa-p256:c2ln","registryIndex":0,"fetchToken":"0"}}"#
    );
    exact(
        &response,
        &format!(r#"{{"more":true,"operator":[{r}],"packages":{{"{D1}":[{r}]}}}}"#),
    );
    exact(
        &FetchLogsResponse::default(),
        r#"{"more":false,"operator":[],"packages":{}}"#,
    );
    let empty: FetchLogsResponse = serde_json::from_str("{}").expect("all defaults");
    assert_eq!(empty, FetchLogsResponse::default());
}

#[test]
fn fetch_names() {
    let a: LogId = hash(D1).into();
    let b: LogId = hash(D2).into();
    let request = FetchPackageNamesRequest::new(&[a, b]);
    exact(&request, &format!(r#"{{"packages":["{D1}","{D2}"]}}"#));
    assert_eq!(request.log_ids().expect("ids"), vec![a, b]);
    refused::<FetchPackageNamesRequest>(r#"{"packages":[],"more":1}"#, "unknown field");
    let bad = FetchPackageNamesRequest {
        packages: vec!["example:hello".into()],
    };
    assert!(bad
        .log_ids()
        .expect_err("not a log id")
        .to_string()
        .contains("invalid log id"));

    let name = name();
    let response = FetchPackageNamesResponse::new([(&a, Some(&name)), (&b, None)]);
    exact(
        &response,
        &format!(r#"{{"packages":{{"{D1}":"example:hello","{D2}":null}}}}"#),
    );
}

#[test]
fn publish_request() {
    let envelope = envelope();
    let request = PublishRecordRequest::new(&name(), &envelope);
    let body = serde_json::to_string(&request.record).expect("json");
    exact(
        &request,
        &format!(r#"{{"packageName":"example:hello","record":{body}}}"#),
    );
    assert_eq!(
        body,
        format!(
            r#"{{"contentBytes":"{}","keyId":"{}","signature":"{}"}}"#,
            request.record.content_bytes,
            envelope.key_id(),
            envelope.signature()
        )
    );
    assert_eq!(request.package_name().expect("name"), name());
    assert_eq!(
        request.record.envelope::<Record>().expect("decodes"),
        envelope
    );

    let mut sourced = request.clone();
    sourced.content_sources.insert(
        D1.into(),
        vec![ContentSource::HttpGet {
            url: "https://example.com/x".into(),
            accept_ranges: false,
            size: None,
        }],
    );
    exact(
        &sourced,
        &format!(
            r#"{{"packageName":"example:hello","record":{body},"contentSources":{{"{D1}":[{{"type":"httpGet","url":"https://example.com/x"}}]}}}}"#
        ),
    );

    let mut bad = request.clone();
    bad.package_name = "no-colon".into();
    assert!(bad
        .package_name()
        .expect_err("bad name")
        .to_string()
        .contains("invalid package name `no-colon`"));
    let bad = EnvelopeBody {
        content_bytes: "%%%".into(),
        ..request.record
    };
    let e = bad.envelope::<Record>().expect_err("not base64");
    assert!(e.to_string().contains("not base64"), "{e}");
    assert!(e.to_string().contains("record.contentBytes"), "{e}");
}

#[test]
fn package_record_states() {
    let log_id: LogId = hash(D1).into();
    let record_id: RecordId = hash(D2).into();
    let digest = hash(D3);
    let sourcing = PackageRecord::sourcing(&log_id, &record_id, [&digest]);
    exact(
        &sourcing,
        &format!(
            r#"{{"recordId":"{D2}","state":"sourcing","missingContent":{{"{D3}":{{"upload":[{{"type":"http","method":"POST","url":"/v1/package/{D1}/record/{D2}/content/{D3}"}}]}}}}}}"#
        ),
    );
    let url = paths::content_upload(&log_id, &record_id, &digest);
    assert_eq!(
        sourcing.missing_content().expect("missing"),
        vec![(digest, url.as_str())]
    );
    assert_eq!(sourcing.record_id().expect("id"), record_id);
    exact(
        &PackageRecord::processing(&record_id),
        &format!(r#"{{"recordId":"{D2}","state":"processing"}}"#),
    );
    let published = PackageRecord::published(&record_id, 12);
    exact(
        &published,
        &format!(r#"{{"recordId":"{D2}","state":"published","registryIndex":12}}"#),
    );
    assert!(published.missing_content().expect("none").is_empty());
    exact(
        &PackageRecord::rejected(&record_id, "content never arrived"),
        &format!(r#"{{"recordId":"{D2}","state":"rejected","reason":"content never arrived"}}"#),
    );
    // Upload headers appear only when set.
    let with_headers = PackageRecord {
        record_id: D2.into(),
        state: PackageRecordState::Sourcing {
            missing_content: BTreeMap::from([(
                D3.to_owned(),
                cairn_api::package::MissingContent {
                    upload: vec![UploadEndpoint::Http {
                        method: "PUT".into(),
                        url: "https://bucket/x".into(),
                        headers: BTreeMap::from([(
                            "content-type".into(),
                            "application/wasm".into(),
                        )]),
                    }],
                },
            )]),
        },
    };
    exact(
        &with_headers,
        &format!(
            r#"{{"recordId":"{D2}","state":"sourcing","missingContent":{{"{D3}":{{"upload":[{{"type":"http","method":"PUT","url":"https://bucket/x","headers":{{"content-type":"application/wasm"}}}}]}}}}}}"#
        ),
    );
    let no_endpoint = PackageRecord {
        record_id: D2.into(),
        state: PackageRecordState::Sourcing {
            missing_content: BTreeMap::from([(
                D3.to_owned(),
                cairn_api::package::MissingContent { upload: Vec::new() },
            )]),
        },
    };
    assert!(matches!(
        no_endpoint.missing_content(),
        Err(WireError::Missing {
            field: "missingContent",
            ..
        })
    ));
    refused::<PackageRecord>(
        &format!(r#"{{"recordId":"{D2}","state":"lost"}}"#),
        "unknown variant `lost`",
    );
    exact(
        &UploadedContent::new(&digest),
        &format!(r#"{{"digest":"{D3}"}}"#),
    );
}

#[test]
fn content_sources() {
    let digest = hash(D1);
    let url = format!("http://127.0.0.1:8090{}", paths::content_file(&digest));
    let response = ContentSourcesResponse::http_get(&digest, url.clone(), 10);
    exact(
        &response,
        &format!(
            r#"{{"contentSources":{{"{D1}":[{{"type":"httpGet","url":"http://127.0.0.1:8090/content/sha256-1111111111111111111111111111111111111111111111111111111111111111","acceptRanges":true,"size":10}}]}}}}"#
        ),
    );
    assert_eq!(response.http_url(&digest), Some(url.as_str()));
    assert_eq!(response.http_url(&hash(D2)), None);
    // The reference's optional fields may be absent.
    let bare: ContentSourcesResponse = serde_json::from_str(&format!(
        r#"{{"contentSources":{{"{D1}":[{{"type":"httpGet","url":"u"}}]}}}}"#
    ))
    .expect("bare");
    assert_eq!(bare.http_url(&digest), Some("u"));
}

#[test]
fn proofs() {
    exact(
        &ConsistencyRequest { from: 1, to: 2 },
        r#"{"from":1,"to":2}"#,
    );
    exact(
        &ConsistencyResponse { proof: vec![1, 2] },
        r#"{"proof":"AQI="}"#,
    );
    exact(
        &InclusionRequest {
            log_length: 3,
            leafs: vec![0, 2],
        },
        r#"{"logLength":3,"leafs":[0,2]}"#,
    );
    exact(
        &InclusionResponse {
            log: vec![1],
            map: vec![2],
        },
        r#"{"log":"AQ==","map":"Ag=="}"#,
    );
    refused::<ConsistencyRequest>(r#"{"from":-1,"to":1}"#, "invalid value");
    refused::<ConsistencyRequest>(r#"{"from":1,"to":2,"x":0}"#, "unknown field");
    refused::<InclusionRequest>(r#"{"logLength":1}"#, "missing field `leafs`");
    refused::<ConsistencyResponse>(r#"{"proof":"%%%"}"#, "not base64");
}

#[test]
fn checkpoint_verification() {
    let response = CheckpointVerificationResponse {
        checkpoint: VerificationState::of(true),
        signature: VerificationState::of(false),
        retry_after: None,
    };
    exact(
        &response,
        r#"{"checkpoint":"verified","signature":"invalid"}"#,
    );
    exact(
        &CheckpointVerificationResponse {
            checkpoint: VerificationState::Unverified,
            signature: VerificationState::Unverified,
            retry_after: Some(5),
        },
        r#"{"checkpoint":"unverified","signature":"unverified","retryAfter":5}"#,
    );
}

#[test]
fn ledger() {
    let response = LedgerSourcesResponse {
        hash_algorithm: "sha256".into(),
        sources: vec![
            LedgerSource::packed(0, 999),
            LedgerSource::packed(1000, 1000),
        ],
    };
    exact(
        &response,
        r#"{"hashAlgorithm":"sha256","sources":[{"firstRegistryIndex":0,"lastRegistryIndex":999,"url":"v1/ledger/records/0","contentType":"application/vnd.warg.ledger.packed"},{"firstRegistryIndex":1000,"lastRegistryIndex":1000,"url":"v1/ledger/records/1000","contentType":"application/vnd.warg.ledger.packed"}]}"#,
    );
}

#[test]
fn error_bodies() {
    exact(
        &ErrorBody::message(400, "invalid JSON body"),
        r#"{"status":400,"message":"invalid JSON body"}"#,
    );
    exact(
        &ErrorBody::entity(404, EntityType::LogLength, 9, "checkpoint 9 was not found"),
        r#"{"status":404,"type":"logLength","id":9,"message":"checkpoint 9 was not found"}"#,
    );
    let body = ErrorBody::entity(404, EntityType::Log, D1, "not found");
    exact(
        &body,
        &format!(r#"{{"status":404,"type":"log","id":"{D1}","message":"not found"}}"#),
    );
    assert_eq!((body.status(), body.text()), (404, "not found"));
    for (ty, text) in [
        (EntityType::Leaf, "leaf"),
        (EntityType::Record, "record"),
        (EntityType::Namespace, "namespace"),
        (EntityType::NamespaceImport, "namespaceImport"),
        (EntityType::Name, "name"),
        (EntityType::FetchToken, "fetchToken"),
        (EntityType::ContentDigest, "contentDigest"),
    ] {
        assert_eq!(
            serde_json::to_string(&ty).expect("json"),
            format!("\"{text}\"")
        );
    }
    // An entity type Cairn does not know still reads as a message.
    let other: ErrorBody =
        serde_json::from_str(r#"{"status":404,"type":"galaxy","id":"x","message":"gone"}"#)
            .expect("message");
    assert_eq!(other, ErrorBody::message(404, "gone"));
}

#[test]
fn attestations() {
    let key = key();
    let record = AttestationRecord {
        prev: None,
        timestamp: Timestamp::new(1_700_000_000, 0),
        attestation: Attestation {
            subject: D1.into(),
            referrer: D2.into(),
            artifact_type: "application/vnd.example.sig".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 321,
            account: "admin".into(),
            signature: None,
        },
    };
    let envelope = Envelope::sign(&key, record);
    let entry = PublishedAttestation::new(4, &envelope, "2023-11-14T22:13:20Z".into());
    let name = name();
    let response = AttestationsResponse::new(&name, vec![entry.clone()]);
    exact(
        &response,
        &format!(
            r#"{{"package":"example:hello","logId":"{}","records":[{{"index":4,"recordId":"{}","prev":null,"timestamp":"2023-11-14T22:13:20Z","subject":"{D1}","referrer":"{D2}","artifactType":"application/vnd.example.sig","mediaType":"application/vnd.oci.image.manifest.v1+json","size":321,"account":"admin","contentBytes":"{}","keyId":"{}","signature":"{}"}}]}}"#,
            LogId::attestations(&name),
            envelope.record_id(),
            entry.content_bytes,
            envelope.key_id(),
            envelope.signature()
        ),
    );
    assert_eq!(entry.envelope().expect("decodes"), envelope);
}

#[test]
fn a_checked_signature_adds_its_verification() {
    let record = AttestationRecord {
        prev: None,
        timestamp: Timestamp::new(1_700_000_000, 0),
        attestation: Attestation {
            subject: D1.into(),
            referrer: D2.into(),
            artifact_type: "application/vnd.dev.cosign.artifact.sig.v1+json".into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 321,
            account: "ci".into(),
            signature: Some(cairn_protocol::attestation::SignatureCheck {
                kind: "dsse".into(),
                verdict: "verified".into(),
                key_id: format!("sha256:{}", "b".repeat(64)),
                key_label: "release-bot".into(),
                predicate_type: "https://slsa.dev/provenance/v1".into(),
                matched: "layer".into(),
            }),
        },
    };
    let envelope = Envelope::sign(&key(), record);
    let entry = PublishedAttestation::new(4, &envelope, "2023-11-14T22:13:20Z".into());
    let json = serde_json::to_value(&entry).expect("json");
    assert_eq!(
        json["verification"],
        serde_json::json!({
            "kind": "dsse",
            "verdict": "verified",
            "keyId": format!("sha256:{}", "b".repeat(64)),
            "keyLabel": "release-bot",
            "predicateType": "https://slsa.dev/provenance/v1",
            "matched": "layer",
        })
    );
    let back: PublishedAttestation = serde_json::from_value(json).expect("reads back");
    assert_eq!(back, entry);
    // Unverified: no key fields.
    let mut unverified = envelope.contents().clone();
    if let Some(check) = unverified.attestation.signature.as_mut() {
        check.verdict = "unverified".into();
        check.key_id.clear();
        check.key_label.clear();
        check.predicate_type.clear();
    }
    let entry = PublishedAttestation::new(4, &Envelope::sign(&key(), unverified), "t".into());
    assert_eq!(
        serde_json::to_value(&entry).expect("json")["verification"],
        serde_json::json!({ "kind": "dsse", "verdict": "unverified", "matched": "layer" })
    );
}

#[test]
fn well_known() {
    let doc = RegistryMetadata::new("http://example.com:8090");
    exact(
        &doc,
        r#"{"preferredProtocol":"oci","oci":{"registry":"example.com:8090","namespacePrefix":""},"warg":{"url":"http://example.com:8090"}}"#,
    );
}

#[test]
fn paths_are_the_served_ones() {
    let log_id: LogId = hash(D1).into();
    let record_id: RecordId = hash(D2).into();
    let digest = hash(D3);
    assert_eq!(paths::FETCH_CHECKPOINT, "/v1/fetch/checkpoint");
    assert_eq!(paths::FETCH_LOGS, "/v1/fetch/logs");
    assert_eq!(paths::FETCH_NAMES, "/v1/fetch/names");
    assert_eq!(paths::PROVE_CONSISTENCY, "/v1/proof/consistency");
    assert_eq!(paths::PROVE_INCLUSION, "/v1/proof/inclusion");
    assert_eq!(paths::VERIFY_CHECKPOINT, "/v1/verify/checkpoint");
    assert_eq!(paths::LEDGER_SOURCES, "/v1/ledger");
    assert_eq!(paths::WELL_KNOWN, "/.well-known/wasm-pkg/registry.json");
    assert_eq!(
        paths::publish_package_record(&log_id),
        format!("/v1/package/{D1}/record")
    );
    assert_eq!(
        paths::package_record(&log_id, &record_id),
        format!("/v1/package/{D1}/record/{D2}")
    );
    assert_eq!(
        paths::content_upload(&log_id, &record_id, &digest),
        format!("/v1/package/{D1}/record/{D2}/content/{D3}")
    );
    assert_eq!(paths::content_sources(&digest), format!("/v1/content/{D3}"));
    let file = paths::content_file(&digest);
    assert_eq!(file, format!("/content/{}", D3.replace(':', "-")));
    assert_eq!(
        paths::content_file_digest(file.trim_start_matches("/content/")),
        D3
    );
    assert_eq!(paths::ledger_records(1000), "/v1/ledger/records/1000");
    assert_eq!(
        paths::attestations(&name()),
        "/v1/attestations/example:hello"
    );
    // Each route template is its path with named segments.
    let fill = |template: &str| {
        template
            .replace("{log_id}", D1)
            .replace("{record_id}", D2)
            .replace("{digest}", D3)
            .replace("{start}", "1000")
            .replace("{package}", "example:hello")
            .replace("{name}", &D3.replace(':', "-"))
    };
    use paths::route;
    assert_eq!(
        fill(route::PUBLISH_PACKAGE_RECORD),
        paths::publish_package_record(&log_id)
    );
    assert_eq!(
        fill(route::PACKAGE_RECORD),
        paths::package_record(&log_id, &record_id)
    );
    assert_eq!(
        fill(route::CONTENT_UPLOAD),
        paths::content_upload(&log_id, &record_id, &digest)
    );
    assert_eq!(
        fill(route::CONTENT_SOURCES),
        paths::content_sources(&digest)
    );
    assert_eq!(fill(route::CONTENT_FILE), paths::content_file(&digest));
    assert_eq!(fill(route::LEDGER_RECORDS), paths::ledger_records(1000));
    assert_eq!(fill(route::ATTESTATIONS), paths::attestations(&name()));
}
