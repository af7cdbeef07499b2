//! Cairn's wire types (`cairn-api`) against the reference's (`warg-api`
//! 0.10): what Cairn writes, the reference reads, and the reference writes
//! back the same JSON; what the reference writes, Cairn reads and writes
//! back the same JSON. Where Cairn deliberately differs (a `message` in
//! every error body, `operator: null` in its own fetch requests, empty
//! lists written out, the well-known document in wkg's layout), the test
//! says so and checks that the reference still reads it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use cairn_api::content::{ContentSource, ContentSourcesResponse};
use cairn_api::fetch::{
    FetchLogsRequest, FetchLogsResponse, FetchPackageNamesRequest, FetchPackageNamesResponse,
};
use cairn_api::ledger::{LedgerSource, LedgerSourcesResponse};
use cairn_api::monitor::{CheckpointVerificationResponse, VerificationState};
use cairn_api::package::{PackageRecord, PublishRecordRequest};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::well_known::RegistryMetadata;
use cairn_api::{EntityType, ErrorBody, PublishedRecord, SignedCheckpointJson};
use cairn_interop::keys;
use cairn_protocol::package::{PackageEntry, PackageRecord as CairnRecord, PACKAGE_RECORD_VERSION};
use cairn_protocol::{
    Checkpoint, Envelope, Hash, HashAlgorithm, LogId, PackageName, RecordId, Timestamp,
    TimestampedCheckpoint,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use warg_api::v1 as reference;
use warg_crypto::{Encode, Signable};

/// The JSON value of `value`.
fn value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("serializes")
}

/// What Cairn writes, the reference reads and writes back unchanged.
fn reference_reads<R: Serialize + DeserializeOwned>(cairn: &impl Serialize) -> R {
    let text = serde_json::to_string(cairn).expect("serializes");
    let read: R = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the reference cannot read {text}: {e}"));
    assert_eq!(
        value(&read),
        value(cairn),
        "the reference reads {text} as something else"
    );
    read
}

/// What the reference writes, Cairn reads and writes back unchanged.
fn cairn_reads<C: Serialize + DeserializeOwned>(reference: &impl Serialize) -> C {
    let text = serde_json::to_string(reference).expect("serializes");
    let read: C =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("Cairn cannot read {text}: {e}"));
    assert_eq!(
        value(&read),
        value(reference),
        "Cairn reads {text} as something else"
    );
    read
}

fn name() -> PackageName {
    "example:wire".parse().expect("name")
}

fn envelope() -> Envelope<CairnRecord> {
    let key = &keys()[0];
    Envelope::sign(
        key,
        CairnRecord {
            prev: None,
            version: PACKAGE_RECORD_VERSION,
            timestamp: Timestamp::new(1_700_000_000, 0),
            entries: vec![
                PackageEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key.public_key().clone(),
                },
                PackageEntry::Release {
                    version: "1.0.0".parse().expect("version"),
                    content: Hash::of(b"content"),
                },
            ],
        },
    )
}

fn log_id(n: u8) -> LogId {
    Hash::of([n]).into()
}

fn record_id() -> RecordId {
    envelope().record_id()
}

fn reference_public_key() -> warg_crypto::signing::PublicKey {
    keys()[0]
        .public_key()
        .to_string()
        .parse()
        .expect("the reference reads Cairn's key text")
}

#[test]
fn signed_checkpoint() {
    let cp = TimestampedCheckpoint {
        checkpoint: Checkpoint {
            log_root: Hash::of(b"log"),
            log_length: 17,
            map_root: Hash::of(b"map"),
        },
        timestamp: 1_700_000_000,
    }
    .sign(&keys()[0]);
    let wire = SignedCheckpointJson::from(&cp);
    let read: warg_protocol::SerdeEnvelope<warg_protocol::registry::TimestampedCheckpoint> =
        reference_reads(&wire);
    // The reference checks the operator's signature on what it read.
    let contents = read.as_ref();
    assert_eq!(contents.checkpoint.log_length, 17);
    warg_protocol::registry::TimestampedCheckpoint::verify(
        &reference_public_key(),
        &contents.encode(),
        read.signature(),
    )
    .expect("the reference verifies Cairn's checkpoint signature");
    assert_eq!(read.key_id().to_string(), cp.key_id.to_string());
    // And the reverse: the reference's checkpoint is Cairn's.
    let back: SignedCheckpointJson = cairn_reads(&read);
    assert_eq!(back.parse().expect("parses"), cp);
}

#[test]
fn published_records() {
    let envelope = envelope();
    let cairn = PublishedRecord::new(&envelope, 5);
    let read: reference::fetch::PublishedRecord = reference_reads(&cairn);
    assert_eq!(read.fetch_token, "5");
    let decoded =
        warg_protocol::PublishedProtoEnvelope::<warg_protocol::package::PackageRecord>::try_from(
            read.envelope,
        )
        .expect("the reference decodes the record");
    assert_eq!(decoded.registry_index, 5);
    assert_eq!(decoded.envelope.content_bytes(), envelope.content_bytes());
    assert_eq!(
        decoded.envelope.key_id().to_string(),
        envelope.key_id().to_string()
    );

    let reference_record = reference::fetch::PublishedRecord {
        envelope: decoded.into(),
        fetch_token: "5".into(),
    };
    let back: PublishedRecord = cairn_reads(&reference_record);
    assert_eq!(back, cairn);
    assert_eq!(back.envelope::<CairnRecord>().expect("decodes"), envelope);
}

#[test]
fn fetch_logs_request() {
    let (a, b) = (log_id(1), log_id(2));
    // With a token for the operator log and packages, the two agree byte
    // for byte.
    let cairn = FetchLogsRequest::after(9, Some(2), &[(a, Some(3)), (b, None)]);
    let read: reference::fetch::FetchLogsRequest = reference_reads(&cairn);
    assert_eq!(read.operator.as_deref(), Some("2"));
    assert_eq!(read.packages.len(), 2);
    let back: FetchLogsRequest = cairn_reads(&read);
    assert_eq!(back, cairn);
    let limited = FetchLogsRequest {
        limit: Some(100),
        ..cairn
    };
    let read: reference::fetch::FetchLogsRequest = reference_reads(&limited);
    assert_eq!(read.limit, Some(100));

    // Cairn's client writes `"operator": null` and `"packages": {}`; the
    // reference leaves them out, and reads them as the same request.
    let first = FetchLogsRequest::after(9, None, &[]);
    assert_eq!(
        value(&first),
        json!({ "logLength": 9, "operator": null, "packages": {} })
    );
    let read: reference::fetch::FetchLogsRequest =
        serde_json::from_value(value(&first)).expect("the reference reads it");
    assert_eq!(
        (
            read.log_length,
            read.operator.as_deref(),
            read.packages.len()
        ),
        (9, None, 0)
    );
    assert_eq!(value(&read), json!({ "logLength": 9 }));
    let back: FetchLogsRequest = serde_json::from_value(value(&read)).expect("Cairn reads it");
    assert_eq!(back, first);
}

#[test]
fn fetch_logs_response() {
    let envelope = envelope();
    let record = PublishedRecord::new(&envelope, 4);
    let cairn = FetchLogsResponse {
        more: true,
        operator: vec![PublishedRecord::new(&envelope, 3)],
        packages: BTreeMap::from([(log_id(1).to_string(), vec![record])]),
        warnings: Vec::new(),
    };
    let read: reference::fetch::FetchLogsResponse = reference_reads(&cairn);
    assert!(read.more);
    let back: FetchLogsResponse = cairn_reads(&read);
    assert_eq!(back, cairn);

    // Cairn writes empty lists out; the reference leaves them out.
    let empty = FetchLogsResponse::default();
    let read: reference::fetch::FetchLogsResponse =
        serde_json::from_value(value(&empty)).expect("the reference reads it");
    assert!(read.operator.is_empty() && read.packages.is_empty() && !read.more);
    let back: FetchLogsResponse = serde_json::from_value(value(&read)).expect("Cairn reads it");
    assert_eq!(back, empty);
    // Warnings, which Cairn never sends, are read.
    let warned: FetchLogsResponse = serde_json::from_value(json!({
        "more": false,
        "warnings": [{ "message": "slow down" }],
    }))
    .expect("warnings");
    assert_eq!(warned.warnings[0].message, "slow down");
    let read: reference::fetch::FetchLogsResponse =
        serde_json::from_value(value(&warned)).expect("the reference reads it");
    assert_eq!(read.warnings[0].message, "slow down");
}

#[test]
fn fetch_names() {
    let (a, b) = (log_id(1), log_id(2));
    let cairn = FetchPackageNamesRequest::new(&[a, b]);
    let read: reference::fetch::FetchPackageNamesRequest = reference_reads(&cairn);
    let back: FetchPackageNamesRequest = cairn_reads(&read);
    assert_eq!(back, cairn);

    let name = name();
    let cairn = FetchPackageNamesResponse::new([(&a, Some(&name)), (&b, None)]);
    let read: reference::fetch::FetchPackageNamesResponse = reference_reads(&cairn);
    assert_eq!(read.packages.len(), 2);
    let back: FetchPackageNamesResponse = cairn_reads(&read);
    assert_eq!(back, cairn);
}

#[test]
fn publish_request() {
    let envelope = envelope();
    let cairn = PublishRecordRequest::new(&name(), &envelope);
    let read: reference::package::PublishRecordRequest = reference_reads(&cairn);
    assert_eq!(read.package_name.as_ref().to_string(), "example:wire");
    let decoded = warg_protocol::ProtoEnvelope::<warg_protocol::package::PackageRecord>::try_from(
        read.record.clone().into_owned(),
    )
    .expect("the reference decodes the record");
    assert_eq!(decoded.content_bytes(), envelope.content_bytes());
    let back: PublishRecordRequest = cairn_reads(&read);
    assert_eq!(back, cairn);

    // Content sources, which Cairn ignores, travel both ways.
    let mut sourced = cairn;
    sourced.content_sources.insert(
        Hash::of(b"content").to_string(),
        vec![ContentSource::HttpGet {
            url: "https://example.com/content".into(),
            accept_ranges: true,
            size: Some(7),
        }],
    );
    let read: reference::package::PublishRecordRequest = reference_reads(&sourced);
    assert_eq!(read.content_sources.len(), 1);
    let _: PublishRecordRequest = cairn_reads(&read);
}

#[test]
fn package_record_in_each_state() {
    let log_id = log_id(1);
    let record_id = record_id();
    let digest = Hash::of(b"content");
    let states = [
        PackageRecord::sourcing(&log_id, &record_id, [&digest]),
        PackageRecord::processing(&record_id),
        PackageRecord::published(&record_id, 12),
        PackageRecord::rejected(&record_id, "content never arrived"),
    ];
    for cairn in &states {
        let read: reference::package::PackageRecord = reference_reads(cairn);
        assert_eq!(read.record_id.to_string(), record_id.to_string());
        let back: PackageRecord = cairn_reads(&read);
        assert_eq!(&back, cairn);
    }
    // The reference finds the upload URL Cairn advertises.
    let read: reference::package::PackageRecord = reference_reads(&states[0]);
    let missing: Vec<_> = read.missing_content().collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].0.to_string(), digest.to_string());
    let reference::package::UploadEndpoint::Http { method, url, .. } = &missing[0].1.upload[0];
    assert_eq!(method, "POST");
    assert_eq!(
        url,
        &cairn_api::paths::content_upload(&log_id, &record_id, &digest)
    );
    assert!(matches!(
        reference_reads::<reference::package::PackageRecord>(&states[2]).state,
        reference::package::PackageRecordState::Published { registry_index: 12 }
    ));
}

#[test]
fn content_sources() {
    let digest = Hash::of(b"content");
    let cairn = ContentSourcesResponse::http_get(
        &digest,
        format!(
            "http://127.0.0.1:8090{}",
            cairn_api::paths::content_file(&digest)
        ),
        7,
    );
    let read: reference::content::ContentSourcesResponse = reference_reads(&cairn);
    let sources = read.content_sources.values().next().expect("one digest");
    assert!(matches!(
        &sources[0],
        reference::ContentSource::HttpGet {
            accept_ranges: true,
            size: Some(7),
            ..
        }
    ));
    let back: ContentSourcesResponse = cairn_reads(&read);
    assert_eq!(back, cairn);
    // The reference's optional fields, left out, are Cairn's too.
    let bare = reference::content::ContentSourcesResponse {
        content_sources: [(
            cairn_interop::any_hash(&digest),
            vec![reference::ContentSource::HttpGet {
                url: "u".into(),
                accept_ranges: false,
                size: None,
            }],
        )]
        .into_iter()
        .collect(),
    };
    let back: ContentSourcesResponse = cairn_reads(&bare);
    assert_eq!(back.http_url(&digest), Some("u"));
}

#[test]
fn proofs() {
    let cairn = ConsistencyRequest { from: 3, to: 9 };
    let read: reference::proof::ConsistencyRequest = reference_reads(&cairn);
    assert_eq!(cairn_reads::<ConsistencyRequest>(&read), cairn);
    let cairn = ConsistencyResponse {
        proof: vec![0, 1, 2, 255],
    };
    let read: reference::proof::ConsistencyResponse = reference_reads(&cairn);
    assert_eq!(read.proof, cairn.proof);
    assert_eq!(cairn_reads::<ConsistencyResponse>(&read), cairn);

    let cairn = InclusionRequest {
        log_length: 9,
        leafs: vec![0, 4, 8],
    };
    let read: reference::proof::InclusionRequest = reference_reads(&cairn);
    assert_eq!(cairn_reads::<InclusionRequest>(&read), cairn);
    let cairn = InclusionResponse {
        log: vec![1, 2, 3],
        map: vec![4, 5],
    };
    let read: reference::proof::InclusionResponse = reference_reads(&cairn);
    assert_eq!(
        (read.log.clone(), read.map.clone()),
        (cairn.log.clone(), cairn.map.clone())
    );
    assert_eq!(cairn_reads::<InclusionResponse>(&read), cairn);
}

#[test]
fn checkpoint_verification() {
    for (checkpoint, signature) in [(true, true), (true, false), (false, false)] {
        let cairn = CheckpointVerificationResponse {
            checkpoint: VerificationState::of(checkpoint),
            signature: VerificationState::of(signature),
            retry_after: None,
        };
        let read: reference::monitor::CheckpointVerificationResponse = reference_reads(&cairn);
        assert_eq!(
            read.checkpoint == reference::monitor::VerificationState::Verified,
            checkpoint
        );
        assert_eq!(cairn_reads::<CheckpointVerificationResponse>(&read), cairn);
    }
    let retry = CheckpointVerificationResponse {
        checkpoint: VerificationState::Unverified,
        signature: VerificationState::Unverified,
        retry_after: Some(3),
    };
    let read: reference::monitor::CheckpointVerificationResponse = reference_reads(&retry);
    assert_eq!(read.retry_after, Some(3));
}

#[test]
fn ledger_sources() {
    let cairn = LedgerSourcesResponse {
        hash_algorithm: "sha256".into(),
        sources: vec![
            LedgerSource::packed(0, 999),
            LedgerSource::packed(1000, 1500),
        ],
    };
    let read: reference::ledger::LedgerSourcesResponse = reference_reads(&cairn);
    assert_eq!(read.sources.len(), 2);
    assert_eq!(
        read.sources[1].content_type,
        reference::ledger::LedgerSourceContentType::Packed
    );
    assert_eq!(cairn_reads::<LedgerSourcesResponse>(&read), cairn);
}

/// Cairn's error body, read by the reference as `R`; the reference writes
/// the same body back without Cairn's `message` when it is an entity body.
fn reference_error<R: Serialize + DeserializeOwned>(body: &ErrorBody) -> R {
    let text = serde_json::to_string(body).expect("serializes");
    let read: R = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the reference cannot read the error {text}: {e}"));
    let mut expected = value(body);
    if matches!(body, ErrorBody::Entity { .. }) {
        expected.as_object_mut().expect("object").remove("message");
    }
    assert_eq!(
        value(&read),
        expected,
        "the reference reads {text} as something else"
    );
    read
}

#[test]
fn error_bodies() {
    use reference::content::ContentError;
    use reference::fetch::FetchError;
    use reference::package::PackageError;
    use reference::proof::ProofError;

    let log = log_id(1);
    let record = record_id();
    let digest = Hash::of(b"content");
    let message = |status| ErrorBody::message(status, "for a person");
    let entity =
        |status, ty, id: cairn_api::EntityId| ErrorBody::entity(status, ty, id, "for a person");

    // fetch/logs
    assert!(matches!(
        reference_error(&entity(404, EntityType::LogLength, 99.into())),
        FetchError::CheckpointNotFound(99)
    ));
    assert!(matches!(
        reference_error(&entity(404, EntityType::Log, log.to_string().into())),
        FetchError::LogNotFound(id) if id.to_string() == log.to_string()
    ));
    assert!(matches!(
        reference_error(&entity(404, EntityType::FetchToken, "nope".into())),
        FetchError::FetchTokenNotFound(token) if token == "nope"
    ));
    assert!(matches!(
        reference_error(&message(400)),
        FetchError::Message { status: 400, message } if message == "for a person"
    ));

    // package records
    assert!(matches!(
        reference_error(&entity(404, EntityType::Log, log.to_string().into())),
        PackageError::LogNotFound(_)
    ));
    assert!(matches!(
        reference_error(&entity(404, EntityType::Record, record.to_string().into())),
        PackageError::RecordNotFound(id) if id.to_string() == record.to_string()
    ));
    assert!(matches!(
        reference_error(&entity(404, EntityType::Namespace, "nowhere".into())),
        PackageError::NamespaceNotDefined(ns) if ns == "nowhere"
    ));
    assert!(matches!(
        reference_error(&entity(409, EntityType::NamespaceImport, "elsewhere".into())),
        PackageError::NamespaceImported(ns) if ns == "elsewhere"
    ));
    assert!(matches!(
        reference_error(&entity(409, EntityType::Record, record.to_string().into())),
        PackageError::ConflictPendingPublish(_)
    ));
    // Cairn's 401, 405 and 422 carry a message; the reference reads the
    // first and last with it, and the 405 as its bare variant.
    assert!(matches!(
        reference_error(&message(401)),
        PackageError::Unauthorized(m) if m == "for a person"
    ));
    let text = serde_json::to_string(&message(405)).expect("json");
    assert!(matches!(
        serde_json::from_str::<PackageError>(&text).expect("405"),
        PackageError::RecordNotSourcing
    ));
    assert!(matches!(
        reference_error(&message(422)),
        PackageError::Rejection(m) if m == "for a person"
    ));
    assert!(matches!(
        reference_error(&message(400)),
        PackageError::Message { status: 400, .. }
    ));

    // proofs
    assert!(matches!(
        reference_error(&entity(404, EntityType::LogLength, 7.into())),
        ProofError::CheckpointNotFound(7)
    ));
    assert!(matches!(
        reference_error(&entity(404, EntityType::Leaf, 3.into())),
        ProofError::LeafNotFound(3)
    ));
    assert!(matches!(
        reference_error(&message(400)),
        ProofError::Message { status: 400, .. }
    ));

    // content, verify/checkpoint, ledger
    assert!(matches!(
        reference_error(&entity(404, EntityType::ContentDigest, digest.to_string().into())),
        ContentError::ContentDigestNotFound(d) if d.to_string() == digest.to_string()
    ));
    assert!(matches!(
        reference_error(&message(503)),
        reference::monitor::MonitorError::Message { status: 503, .. }
    ));
    assert!(matches!(
        reference_error(&message(500)),
        reference::ledger::LedgerError::Message { status: 500, .. }
    ));

    // The reference's message bodies are Cairn's.
    let body: ErrorBody = cairn_reads(&FetchError::Message {
        status: 400,
        message: "bad".into(),
    });
    assert_eq!(body, ErrorBody::message(400, "bad"));
    // Its entity bodies have no `message`: Cairn's error body does not read
    // them (its client shows such a body's text instead).
    let text = serde_json::to_string(&FetchError::LogNotFound(
        cairn_interop::any_hash(log.digest()).into(),
    ))
    .expect("json");
    assert!(serde_json::from_str::<ErrorBody>(&text).is_err(), "{text}");
}

#[test]
fn well_known_document() {
    // Cairn writes wkg 0.16's layout (no flat `wargUrl`, which breaks wkg
    // 0.16); the reference reads it as a document with no field set and
    // falls back to the registry's own URL.
    let cairn = RegistryMetadata::new("http://127.0.0.1:8090");
    let read: warg_api::WellKnownConfig =
        serde_json::from_value(value(&cairn)).expect("the reference reads it");
    assert_eq!(
        (read.oci_registry, read.oci_namespace_prefix, read.warg_url),
        (None, None, None)
    );
}

#[test]
fn reference_requests_with_borrowed_parts() {
    // The reference client's fetch request borrows its parts; Cairn reads
    // it as written.
    let request = reference::fetch::FetchLogsRequest {
        log_length: 4,
        limit: None,
        operator: Some(Cow::Borrowed("1")),
        packages: Cow::Owned(
            [(warg_log_id(1), Some("3".to_owned()))]
                .into_iter()
                .collect(),
        ),
    };
    let read: FetchLogsRequest = cairn_reads(&request);
    assert_eq!(
        read.package_logs().expect("log ids"),
        vec![(log_id(1), Some("3"))]
    );
}

fn warg_log_id(n: u8) -> warg_protocol::registry::LogId {
    cairn_interop::any_hash(log_id(n).digest()).into()
}
