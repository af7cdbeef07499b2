//! JSON bodies: every request body the server reads and every answer the
//! client reads, from arbitrary bytes. What parses serializes to JSON that
//! parses to the same value, and the conversions to protocol types (which
//! name the field at fault) never panic.

use std::fmt::Debug;

use cairn_api::attestation::AttestationsResponse;
use cairn_api::content::ContentSourcesResponse;
use cairn_api::fetch::{
    token_index, FetchLogsRequest, FetchLogsResponse, FetchPackageNamesRequest,
    FetchPackageNamesResponse,
};
use cairn_api::ledger::LedgerSourcesResponse;
use cairn_api::monitor::CheckpointVerificationResponse;
use cairn_api::package::{PackageRecord as WireRecord, PublishRecordRequest, UploadedContent};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::well_known::RegistryMetadata;
use cairn_api::{EnvelopeBody, ErrorBody, PublishedRecord, SignedCheckpointJson};
use cairn_protocol::operator::OperatorRecord;
use cairn_protocol::package::PackageRecord;
use cairn_protocol::{Envelope, Hash, Record};
use cairn_transparency::log::LogProofBundle;
use cairn_transparency::map::MapProofBundle;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `api_json`: `data` as each body type.
pub fn api_json(data: &[u8]) {
    // Requests the server reads.
    if let Some(v) = round_trip::<FetchLogsRequest>(data) {
        let _ = v.package_logs();
        let _ = v.operator.as_deref().map(token_index);
    }
    if let Some(v) = round_trip::<FetchPackageNamesRequest>(data) {
        let _ = v.log_ids();
    }
    if let Some(v) = round_trip::<PublishRecordRequest>(data) {
        let _ = v.package_name().map_err(|e| e.to_string());
        envelope_body(&v.record);
    }
    round_trip::<ConsistencyRequest>(data);
    round_trip::<InclusionRequest>(data);
    if let Some(v) = round_trip::<SignedCheckpointJson>(data) {
        if let Ok(checkpoint) = v.parse() {
            assert_eq!(
                SignedCheckpointJson::from(&checkpoint),
                v,
                "a checkpoint that parses has one JSON form"
            );
            let _ = checkpoint.contents.encode();
        }
    }
    // Answers the client reads.
    if let Some(v) = round_trip::<FetchLogsResponse>(data) {
        for record in v.operator.iter().chain(v.packages.values().flatten()) {
            published(record);
        }
    }
    round_trip::<FetchPackageNamesResponse>(data);
    if let Some(v) = round_trip::<WireRecord>(data) {
        let _ = v.record_id();
        let _ = v.missing_content().map_err(|e| e.to_string());
    }
    round_trip::<UploadedContent>(data);
    if let Some(v) = round_trip::<ConsistencyResponse>(data) {
        let _ = LogProofBundle::decode(&v.proof);
    }
    if let Some(v) = round_trip::<InclusionResponse>(data) {
        let _ = LogProofBundle::decode(&v.log);
        let _ = MapProofBundle::decode(&v.map);
    }
    round_trip::<CheckpointVerificationResponse>(data);
    if let Some(v) = round_trip::<ContentSourcesResponse>(data) {
        for digest in v.content_sources.keys() {
            if let Ok(hash) = digest.parse::<Hash>() {
                let _ = v.http_url(&hash);
            }
        }
    }
    round_trip::<LedgerSourcesResponse>(data);
    if let Some(v) = round_trip::<ErrorBody>(data) {
        let _ = (v.status(), v.text());
    }
    if let Some(v) = round_trip::<AttestationsResponse>(data) {
        for record in &v.records {
            if let Ok(envelope) = record.envelope() {
                let _ = envelope.record_id();
            }
        }
    }
    round_trip::<RegistryMetadata>(data);
    if let Some(v) = round_trip::<EnvelopeBody>(data) {
        envelope_body(&v);
    }
    if let Some(v) = round_trip::<PublishedRecord>(data) {
        published(&v);
    }
}

/// Parses `data` as a `T`; if it parses, its JSON parses back to it.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(data).ok()?;
    let json = serde_json::to_vec(&value).expect("a parsed body serializes");
    let again: T = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{} does not read back its own JSON {}: {e}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        again,
        value,
        "JSON round trip of {}",
        std::any::type_name::<T>()
    );
    Some(value)
}

fn envelope_body(body: &EnvelopeBody) {
    body_as::<PackageRecord>(body);
    body_as::<OperatorRecord>(body);
}

fn body_as<R: Record + PartialEq + Debug>(body: &EnvelopeBody) {
    match body.envelope::<R>() {
        Ok(envelope) => {
            let again = EnvelopeBody::new(&envelope)
                .envelope::<R>()
                .expect("an envelope's body reads back");
            assert_eq!(again, envelope);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn published(record: &PublishedRecord) {
    let _ = record.fetch_token.as_deref().map(token_index);
    if let Ok(envelope) = record.envelope::<PackageRecord>() {
        let again = PublishedRecord::new(&envelope, record.registry_index);
        let back: Envelope<PackageRecord> = again.envelope().expect("reads back");
        assert_eq!(back, envelope);
    }
    if let Err(e) = record.envelope::<OperatorRecord>() {
        let _ = e.to_string();
    }
}
