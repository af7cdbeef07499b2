//! Record decoders: protobuf envelopes and record contents (package,
//! operator, attestation), the text forms of ids, keys, signatures and
//! names, and validation of whatever decodes against fixture logs.

use std::fmt::Debug;
use std::str::FromStr;

use cairn_protocol::attestation::{AttestationLog, AttestationRecord};
use cairn_protocol::operator::{OperatorRecord, OperatorState};
use cairn_protocol::package::PackageRecord;
use cairn_protocol::{
    check_kebab, validate_namespace, Envelope, Hash, HashAlgorithm, KeyId, LogId, PackageName,
    PrivateKey, PublicKey, Record, RecordId, Signature, Timestamp, Version, VersionReq,
};

use crate::fixtures;

/// `package_record`: `data` as a package envelope, as package record
/// contents (under fixture key 0's id and a well-formed signature), and as
/// text; whatever decodes must round-trip and validate without panicking,
/// and a refused record must leave the state as it was.
pub fn package_record(data: &[u8]) {
    if let Ok(envelope) = Envelope::<PackageRecord>::decode(data) {
        check_package(&envelope);
    }
    if let Ok(record) = PackageRecord::decode(data) {
        check_contents(&record);
    }
    for signer in [0, 1, 2] {
        if let Ok(envelope) = Envelope::<PackageRecord>::from_parts(
            data.to_vec(),
            &fixtures::key_id_text(signer),
            fixtures::signature_text(),
        ) {
            check_package(&envelope);
        }
    }
    text(data);
}

/// `operator_record`: as [`package_record`], for operator records and
/// Cairn's attestation records.
pub fn operator_record(data: &[u8]) {
    if let Ok(envelope) = Envelope::<OperatorRecord>::decode(data) {
        check_operator(&envelope);
    }
    if let Ok(envelope) = Envelope::<AttestationRecord>::decode(data) {
        check_attestation(&envelope);
    }
    if let Ok(record) = OperatorRecord::decode(data) {
        check_contents(&record);
    }
    if let Ok(record) = AttestationRecord::decode(data) {
        check_contents(&record);
    }
    for signer in [0, 1] {
        let key_id = fixtures::key_id_text(signer);
        let signature = fixtures::signature_text();
        if let Ok(envelope) =
            Envelope::<OperatorRecord>::from_parts(data.to_vec(), &key_id, signature)
        {
            check_operator(&envelope);
        }
        if let Ok(envelope) =
            Envelope::<AttestationRecord>::from_parts(data.to_vec(), &key_id, signature)
        {
            check_attestation(&envelope);
        }
    }
}

/// A decoded envelope encodes to bytes that decode to the same envelope,
/// keeps its content bytes and id, and its record round-trips.
fn check_envelope<R: Record + PartialEq + Debug>(envelope: &Envelope<R>) {
    let again = Envelope::<R>::decode(&envelope.encode()).expect("an envelope re-encodes");
    assert_eq!(&again, envelope, "envelope round trip");
    assert_eq!(
        envelope.record_id(),
        R::record_id(envelope.content_bytes()),
        "record id of the content bytes"
    );
    check_contents(envelope.contents());
    let _ = format!("{envelope:?}");
}

/// Record contents re-encode (canonically) to bytes that decode to the
/// same record.
fn check_contents<R: Record + PartialEq + Debug>(record: &R) {
    let bytes = record.encode();
    let again = R::decode(&bytes).expect("a decoded record re-encodes");
    assert_eq!(&again, record, "record round trip");
    assert_eq!(again.encode(), bytes, "canonical encoding is stable");
}

fn check_timestamp(t: Timestamp) {
    assert!(
        (0..1_000_000_000).contains(&t.nanos()),
        "timestamp not normalised: {t:?}"
    );
    let _ = t.to_string();
    let _ = t.to_system_time();
}

fn check_package(envelope: &Envelope<PackageRecord>) {
    check_envelope(envelope);
    check_timestamp(envelope.contents().timestamp);
    for (state, _) in fixtures::package_logs() {
        let before = state.clone();
        let validated = state.validate(envelope);
        let mut applied = state.clone();
        let result = applied.apply(envelope);
        match (&validated, &result) {
            (Ok(next), Ok(())) => {
                assert_eq!(next, &applied, "validate and apply agree");
                assert_eq!(
                    applied.head().map(|h| h.record_id),
                    Some(envelope.record_id())
                );
            }
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "validate and apply refuse alike");
                assert_eq!(applied, before, "a refused record changes nothing");
                assert_eq!(a.record_id, envelope.record_id());
                let _ = a.to_string();
            }
            _ => panic!("validate {validated:?} but apply {result:?}"),
        }
        let _ = state
            .clone()
            .replay_trusted([envelope])
            .map(|s| s.latest_matching(&VersionReq::STAR).cloned());
    }
}

fn check_operator(envelope: &Envelope<OperatorRecord>) {
    check_envelope(envelope);
    check_timestamp(envelope.contents().timestamp);
    for (state, _) in fixtures::operator_logs() {
        let before: OperatorState = state.clone();
        let validated = state.validate(envelope);
        let mut applied = state.clone();
        let result = applied.apply(envelope);
        match (&validated, &result) {
            (Ok(next), Ok(())) => assert_eq!(next, &applied, "validate and apply agree"),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "validate and apply refuse alike");
                assert_eq!(applied, before, "a refused record changes nothing");
                let _ = a.to_string();
            }
            _ => panic!("validate {validated:?} but apply {result:?}"),
        }
    }
}

fn check_attestation(envelope: &Envelope<AttestationRecord>) {
    check_envelope(envelope);
    check_timestamp(envelope.contents().timestamp);
    let log = AttestationLog::new();
    for signer in [0, 1] {
        if let Err(e) = log.validate(envelope, fixtures::key(signer).public_key()) {
            let _ = e.to_string();
        }
    }
}

/// `text`: every text form Cairn parses. What parses prints back as
/// text that parses to the same value.
pub fn text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in std::iter::once(text).chain(text.lines()) {
        text_one(line);
    }
}

fn round_trip<T>(text: &str) -> Option<T>
where
    T: FromStr + ToString + PartialEq + Debug,
    T::Err: ToString,
{
    match text.parse::<T>() {
        Ok(value) => {
            let printed = value.to_string();
            let again = printed
                .parse::<T>()
                .unwrap_or_else(|e| panic!("`{printed}` does not parse back: {}", e.to_string()));
            assert_eq!(again, value, "text round trip of `{text}`");
            Some(value)
        }
        Err(e) => {
            let _ = e.to_string();
            None
        }
    }
}

fn text_one(text: &str) {
    // Digests and ids are strict: the only text of a value is its own.
    if let Some(hash) = round_trip::<Hash>(text) {
        assert_eq!(hash.to_string(), text, "a digest has one text form");
    }
    for id in [
        round_trip::<KeyId>(text).map(|v| v.to_string()),
        round_trip::<LogId>(text).map(|v| v.to_string()),
        round_trip::<RecordId>(text).map(|v| v.to_string()),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(id, text, "an id has one text form");
    }
    if let Some(key) = round_trip::<PublicKey>(text) {
        let again: PublicKey = key.to_string().parse().expect("key text");
        assert_eq!(again.id(), key.id(), "a key's id is its canonical text's");
        let _ = key.to_sec1_compressed();
    }
    let _ = round_trip::<Signature>(text);
    if let Ok(private) = PrivateKey::decode(text) {
        let again = PrivateKey::decode(&private.encode()).expect("private key text");
        assert_eq!(again.public_key(), private.public_key());
    }
    if let Some(name) = round_trip::<PackageName>(text) {
        assert_eq!(name.to_string(), text, "a package name has one text form");
        assert_eq!(format!("{}:{}", name.namespace(), name.name()), text);
        validate_namespace(name.namespace()).expect("a name's namespace is valid");
        let _ = LogId::package(&name);
        let _ = LogId::attestations(&name);
    }
    let _ = validate_namespace(text);
    let _ = check_kebab("name", text);
    let _ = round_trip::<HashAlgorithm>(text);
    let _ = round_trip::<Version>(text);
    let _ = text.parse::<VersionReq>().map(|r| r.to_string());
}
