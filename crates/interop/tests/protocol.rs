//! Differential tests of `cairn-protocol` against the reference crates
//! (`warg-protocol`, `warg-crypto` 0.10): the same bytes, ids, signatures,
//! verdicts and resulting states.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_interop::keys;
use cairn_protocol as cairn;
use cairn_protocol::operator::{OperatorEntry, OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState, Permission};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, PrivateKey, Record, Timestamp, Version};
use proptest::prelude::*;
use warg_crypto::hash::{AnyHash, Sha256};
use warg_crypto::signing as wsign;
use warg_crypto::{Encode, Signable};
use warg_protocol::operator as wop;
use warg_protocol::package as wpkg;
use warg_protocol::registry as wreg;
use warg_protocol::ProtoEnvelope;

fn reference_key(key: &PrivateKey) -> wsign::PrivateKey {
    wsign::PrivateKey::decode(key.encode()).expect("reference reads our key")
}

fn system_time(t: Timestamp) -> SystemTime {
    t.to_system_time().expect("representable")
}

fn version(i: u8) -> Version {
    ["1.0.0", "1.1.0", "2.0.0-rc.1", "2.0.0"][usize::from(i) % 4]
        .parse()
        .expect("valid version")
}

// ---- the reference's view of our model ----

fn to_reference_package(record: &PackageRecord) -> wpkg::PackageRecord {
    let perms = |ps: &[Permission]| {
        ps.iter()
            .map(|p| match p {
                Permission::Release => wpkg::Permission::Release,
                Permission::Yank => wpkg::Permission::Yank,
            })
            .collect()
    };
    wpkg::PackageRecord {
        prev: record
            .prev
            .map(|id| AnyHash::from_str(&id.to_string()).expect("hash").into()),
        version: record.version,
        timestamp: system_time(record.timestamp),
        entries: record
            .entries
            .iter()
            .map(|e| match e {
                PackageEntry::Init { key, .. } => wpkg::PackageEntry::Init {
                    hash_algorithm: warg_crypto::hash::HashAlgorithm::Sha256,
                    key: key.to_string().parse().expect("key"),
                },
                PackageEntry::Grant { key, permissions } => wpkg::PackageEntry::GrantFlat {
                    key: key.to_string().parse().expect("key"),
                    permissions: perms(permissions),
                },
                PackageEntry::Revoke {
                    key_id,
                    permissions,
                } => wpkg::PackageEntry::RevokeFlat {
                    key_id: key_id.to_string().into(),
                    permissions: perms(permissions),
                },
                PackageEntry::Release { version, content } => wpkg::PackageEntry::Release {
                    version: version.clone(),
                    content: content.to_string().parse().expect("hash"),
                },
                PackageEntry::Yank { version } => wpkg::PackageEntry::Yank {
                    version: version.clone(),
                },
            })
            .collect(),
    }
}

#[test]
fn cairn_records_validate_in_the_reference_and_back() {
    let keys = keys();
    let (owner, releaser) = (&keys[0], &keys[1]);
    let t0 = Timestamp::new(1_700_000_000, 5);
    let mut records = vec![PackageRecord {
        prev: None,
        version: 0,
        timestamp: t0,
        entries: vec![
            PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: owner.public_key().clone(),
            },
            PackageEntry::Release {
                version: version(0),
                content: Hash::of(b"wasm"),
            },
            PackageEntry::Grant {
                key: releaser.public_key().clone(),
                permissions: vec![Permission::Release],
            },
        ],
    }];
    let first = Envelope::sign(owner, records[0].clone());
    records.push(PackageRecord {
        prev: Some(first.record_id()),
        version: 0,
        timestamp: Timestamp::new(1_700_000_001, 0),
        entries: vec![PackageEntry::Release {
            version: version(1),
            content: Hash::of(b"wasm2"),
        }],
    });
    let second = Envelope::sign(releaser, records[1].clone());

    // Cairn -> reference: decode, ids, signatures, validation.
    let mut state = wpkg::LogState::new();
    for env in [&first, &second] {
        let theirs = ProtoEnvelope::<wpkg::PackageRecord>::from_protobuf(&env.encode())
            .expect("reference decodes our envelope");
        assert_eq!(theirs.content_bytes(), env.content_bytes());
        assert_eq!(
            wreg::RecordId::package_record::<Sha256>(&theirs).to_string(),
            env.record_id().to_string()
        );
        state = state.validate(&theirs).expect("reference accepts");
    }
    assert_eq!(state.releases().count(), 2);

    // Our model re-encoded by the reference gives the same bytes, and the
    // reference's deterministic signature equals ours.
    let ref_record = to_reference_package(&records[0]);
    assert_eq!(ref_record.encode(), first.content_bytes());
    let ref_env = ProtoEnvelope::signed_contents(&reference_key(owner), ref_record).expect("sign");
    assert_eq!(ref_env.to_protobuf(), first.encode());

    // Reference -> Cairn.
    let mut ours = PackageState::new();
    for record in &records {
        let signer = if record.prev.is_none() {
            owner
        } else {
            releaser
        };
        let ref_env =
            ProtoEnvelope::signed_contents(&reference_key(signer), to_reference_package(record))
                .expect("sign");
        let env = Envelope::<PackageRecord>::decode(&ref_env.to_protobuf()).expect("decode");
        ours.apply(&env).expect("cairn accepts");
    }
    assert_eq!(ours.releases().count(), 2);
}

#[test]
fn identifiers_and_leaves_match() {
    for name in ["wasi:http", "my-ns:my-pkg2", "a:b"] {
        let ours = cairn::LogId::package(&name.parse().expect("name"));
        let theirs =
            wreg::LogId::package_log::<Sha256>(&wreg::PackageName::new(name).expect("name"));
        assert_eq!(ours.to_string(), theirs.to_string());
    }
    assert_eq!(
        cairn::LogId::operator().to_string(),
        wreg::LogId::operator_log::<Sha256>().to_string()
    );
    let keys = keys();
    for key in &keys {
        let theirs = reference_key(key).public_key();
        assert_eq!(key.public_key().to_string(), theirs.to_string());
        assert_eq!(
            key.public_key().id().to_string(),
            theirs.fingerprint().to_string()
        );
    }

    let log_id = cairn::LogId::package(&"wasi:http".parse().expect("name"));
    let record_id = cairn::RecordId::package_record(b"abc");
    let leaf = cairn::LogLeaf { log_id, record_id };
    let ref_leaf = wreg::LogLeaf {
        log_id: AnyHash::from_str(&log_id.to_string()).expect("hash").into(),
        record_id: AnyHash::from_str(&record_id.to_string())
            .expect("hash")
            .into(),
    };
    assert_eq!(leaf.encode(), ref_leaf.encode());
    let map_leaf = cairn::MapLeaf { record_id };
    let ref_map_leaf = wreg::MapLeaf {
        record_id: ref_leaf.record_id.clone(),
    };
    assert_eq!(map_leaf.encode(), ref_map_leaf.encode());

    let checkpoint = cairn::TimestampedCheckpoint {
        checkpoint: cairn::Checkpoint {
            log_root: Hash::of(b"l"),
            log_length: 1234,
            map_root: Hash::of(b"m"),
        },
        timestamp: 1_700_000_123,
    };
    let ref_checkpoint = wreg::TimestampedCheckpoint {
        checkpoint: wreg::Checkpoint {
            log_root: AnyHash::from_str(&Hash::of(b"l").to_string()).expect("hash"),
            log_length: 1234,
            map_root: AnyHash::from_str(&Hash::of(b"m").to_string()).expect("hash"),
        },
        timestamp: 1_700_000_123,
    };
    assert_eq!(checkpoint.encode(), ref_checkpoint.encode());
    assert_eq!(
        checkpoint.checkpoint.encode(),
        ref_checkpoint.checkpoint.encode()
    );
    let signed = checkpoint.sign(&keys[0]);
    let ref_sig: wsign::Signature = signed.signature.to_string().parse().expect("sig");
    wreg::TimestampedCheckpoint::verify(
        &reference_key(&keys[0]).public_key(),
        &ref_checkpoint.encode(),
        &ref_sig,
    )
    .expect("reference verifies our checkpoint signature");
    let theirs = ref_checkpoint.sign(&reference_key(&keys[1])).expect("sign");
    let ours = cairn::SignedCheckpoint {
        contents: checkpoint,
        key_id: keys[1].public_key().id(),
        signature: theirs.to_string().parse().expect("sig"),
    };
    ours.verify(keys[1].public_key())
        .expect("we verify the reference's checkpoint signature");
}

// ---- random sequences: same verdicts, same states ----

#[derive(Clone, Debug)]
enum Op {
    Init(u8),
    Grant(u8, Vec<Permission>),
    Revoke(u8, Vec<Permission>),
    Release(u8, u8),
    Yank(u8),
}

#[derive(Clone, Debug)]
enum Mutation {
    None,
    WrongPrev,
    DropPrev,
    OldTimestamp,
    BadSignature,
    ClaimOtherKey,
    Version1,
}

#[derive(Clone, Debug)]
struct Step {
    signer: u8,
    ops: Vec<Op>,
    mutation: Mutation,
}

fn perms() -> impl Strategy<Value = Vec<Permission>> {
    prop::collection::vec(
        prop_oneof![Just(Permission::Release), Just(Permission::Yank)],
        0..3,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..3).prop_map(Op::Init),
        3 => ((0u8..3), perms()).prop_map(|(k, p)| Op::Grant(k, p)),
        2 => ((0u8..3), perms()).prop_map(|(k, p)| Op::Revoke(k, p)),
        5 => ((0u8..4), any::<u8>()).prop_map(|(v, c)| Op::Release(v, c)),
        3 => (0u8..4).prop_map(Op::Yank),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        prop_oneof![
            1 => prop::collection::vec(op(), 0..1),
            12 => prop::collection::vec(op(), 1..2),
            3 => prop::collection::vec(op(), 2..4),
        ],
        prop_oneof![
            20 => Just(Mutation::None),
            1 => Just(Mutation::WrongPrev),
            1 => Just(Mutation::DropPrev),
            1 => Just(Mutation::OldTimestamp),
            1 => Just(Mutation::BadSignature),
            1 => Just(Mutation::ClaimOtherKey),
            1 => Just(Mutation::Version1),
        ],
    )
        .prop_map(|(signer, ops, mutation)| Step {
            signer,
            ops,
            mutation,
        })
}

fn init_step() -> impl Strategy<Value = Vec<Step>> {
    // Most sequences start with a well-formed init so the rest is exercised.
    (any::<bool>(), prop::collection::vec(step(), 1..24)).prop_map(|(clean_start, mut steps)| {
        if clean_start {
            steps.insert(
                0,
                Step {
                    signer: 0,
                    ops: vec![Op::Init(0)],
                    mutation: Mutation::None,
                },
            );
        }
        steps
    })
}

fn build_entries(keys: &[PrivateKey], ops: &[Op]) -> Vec<PackageEntry> {
    ops.iter()
        .map(|op| match op {
            Op::Init(k) => PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: keys[usize::from(*k)].public_key().clone(),
            },
            Op::Grant(k, p) => PackageEntry::Grant {
                key: keys[usize::from(*k)].public_key().clone(),
                permissions: p.clone(),
            },
            Op::Revoke(k, p) => PackageEntry::Revoke {
                key_id: keys[usize::from(*k)].public_key().id(),
                permissions: p.clone(),
            },
            Op::Release(v, c) => PackageEntry::Release {
                version: version(*v),
                content: Hash::of([*c]),
            },
            Op::Yank(v) => PackageEntry::Yank {
                version: version(*v),
            },
        })
        .collect()
}

/// The observable state both implementations must agree on.
fn compare_states(ours: &PackageState, theirs: &wpkg::LogState, keys: &[PrivateKey]) {
    assert_eq!(
        ours.head().map(|h| h.record_id.to_string()),
        theirs.head().as_ref().map(|h| h.digest.to_string()),
        "heads differ"
    );
    let mut our_releases: Vec<_> = ours
        .releases()
        .map(|r| {
            (
                r.version.clone(),
                r.yanked.is_some(),
                r.by.to_string(),
                r.record_id.to_string(),
            )
        })
        .collect();
    let mut their_releases: Vec<_> = theirs
        .releases()
        .map(|r| {
            (
                r.version.clone(),
                r.yanked(),
                r.by.to_string(),
                r.record_id.to_string(),
            )
        })
        .collect();
    our_releases.sort();
    their_releases.sort();
    assert_eq!(our_releases, their_releases, "releases differ");
    for r in ours.releases().filter(|r| r.yanked.is_none()) {
        let theirs = theirs
            .release(&r.version)
            .and_then(|r| r.content())
            .map(|c| c.to_string());
        assert_eq!(Some(r.content.to_string()), theirs);
    }
    for key in keys {
        let id = key.public_key().id();
        let mut our_perms: Vec<String> = ours
            .authorities()
            .permissions(&id)
            .map(|p| p.to_string())
            .collect();
        let ref_id: wsign::KeyID = id.to_string().into();
        let mut their_perms: Vec<String> = theirs
            .key_permissions(&ref_id)
            .map(|set| set.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default();
        our_perms.sort();
        their_perms.sort();
        assert_eq!(our_perms, their_perms, "permissions of {id} differ");
        assert_eq!(
            ours.authorities().key(&id).is_some(),
            theirs.public_key(&ref_id).is_some(),
            "knowledge of key {id} differs"
        );
    }
}

fn run_package_sequence(steps: &[Step]) -> Result<(), TestCaseError> {
    let keys = keys();
    let mut ours = PackageState::new();
    let mut theirs = wpkg::LogState::new();
    let mut time = 1_700_000_000i64;
    for step in steps {
        time += 1;
        let head = ours.head().map(|h| h.record_id);
        let mut record = PackageRecord {
            prev: head,
            version: 0,
            timestamp: Timestamp::new(time, 0),
            entries: build_entries(&keys, &step.ops),
        };
        match step.mutation {
            Mutation::WrongPrev => record.prev = Some(cairn::RecordId::package_record(b"nope")),
            Mutation::DropPrev => record.prev = None,
            Mutation::OldTimestamp => record.timestamp = Timestamp::new(time - 10, 0),
            Mutation::Version1 => record.version = 1,
            _ => {}
        }
        let signer = &keys[usize::from(step.signer)];
        let mut envelope = Envelope::sign(signer, record.clone());
        match step.mutation {
            Mutation::BadSignature => {
                let other = Envelope::sign(
                    signer,
                    PackageRecord {
                        entries: vec![],
                        ..record
                    },
                );
                envelope = Envelope::from_parts(
                    envelope.content_bytes().to_vec(),
                    &envelope.key_id().to_string(),
                    &other.signature().to_string(),
                )
                .expect("well-formed");
            }
            Mutation::ClaimOtherKey => {
                let other = &keys[(usize::from(step.signer) + 1) % keys.len()];
                envelope = Envelope::from_parts(
                    envelope.content_bytes().to_vec(),
                    &other.public_key().id().to_string(),
                    &envelope.signature().to_string(),
                )
                .expect("well-formed");
            }
            _ => {}
        }
        let bytes = envelope.encode();
        let ref_env =
            ProtoEnvelope::<wpkg::PackageRecord>::from_protobuf(&bytes).expect("reference decodes");
        let our_verdict = ours.apply(&envelope);
        let their_verdict = theirs.clone().validate(&ref_env);
        prop_assert_eq!(
            our_verdict.is_ok(),
            their_verdict.is_ok(),
            "verdicts differ for {:?}: ours {:?}, reference {:?}",
            step,
            our_verdict.as_ref().err().map(|e| e.to_string()),
            their_verdict.as_ref().err().map(|e| e.to_string())
        );
        if let Ok(next) = their_verdict {
            theirs = next;
        }
        compare_states(&ours, &theirs, &keys);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn package_sequences_agree(steps in init_step()) {
        run_package_sequence(&steps)?;
    }

    #[test]
    fn package_names_agree(name in "[a-zA-Z0-9:_-]{0,8}") {
        let ours = cairn::PackageName::new(name.clone()).is_ok();
        let theirs = wreg::PackageName::new(name.clone()).is_ok();
        prop_assert_eq!(ours, theirs, "verdicts differ for {:?}", name);
    }

    #[test]
    fn text_parsers_never_panic(text in "(ecdsa-p256|sha256|x)?:?[A-Za-z0-9+/=:_-]{0,90}") {
        let _ = text.parse::<cairn::PublicKey>();
        let _ = text.parse::<cairn::Signature>();
        let _ = cairn::PrivateKey::decode(&text);
        let _ = text.parse::<cairn::KeyId>();
        let _ = text.parse::<cairn::RecordId>();
        let _ = text.parse::<Hash>();
        let _ = text.parse::<cairn::PackageName>();
        let _ = text.parse::<HashAlgorithm>();
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Envelope::<PackageRecord>::decode(&bytes);
        let _ = Envelope::<OperatorRecord>::decode(&bytes);
        let _ = PackageRecord::decode(&bytes);
        let _ = OperatorRecord::decode(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let keys = keys();
        let record = PackageRecord {
            prev: Some(cairn::RecordId::package_record(b"p")),
            version: 0,
            timestamp: Timestamp::new(1, 2),
            entries: build_entries(&keys, &[Op::Init(0), Op::Grant(1, vec![Permission::Yank]), Op::Release(0, 1), Op::Yank(0), Op::Revoke(1, vec![Permission::Release])]),
        };
        let mut bytes = Envelope::sign(&keys[0], record).encode();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(env) = Envelope::<PackageRecord>::decode(&bytes) {
            let _ = PackageState::new().apply(&env);
        }
    }
}

// ---- operator logs ----

#[derive(Clone, Debug)]
enum OpOp {
    Init(u8),
    Grant(u8, Vec<cairn::operator::Permission>),
    Revoke(u8, Vec<cairn::operator::Permission>),
    Define(u8),
    Import(u8),
}

fn op_perms() -> impl Strategy<Value = Vec<cairn::operator::Permission>> {
    use cairn::operator::Permission as P;
    prop::collection::vec(
        prop_oneof![
            Just(P::Commit),
            Just(P::DefineNamespace),
            Just(P::ImportNamespace)
        ],
        0..3,
    )
}

fn op_op() -> impl Strategy<Value = OpOp> {
    prop_oneof![
        1 => (0u8..3).prop_map(OpOp::Init),
        3 => ((0u8..3), op_perms()).prop_map(|(k, p)| OpOp::Grant(k, p)),
        2 => ((0u8..3), op_perms()).prop_map(|(k, p)| OpOp::Revoke(k, p)),
        4 => (0u8..5).prop_map(OpOp::Define),
        2 => (0u8..5).prop_map(OpOp::Import),
    ]
}

const NAMESPACES: [&str; 5] = ["wasi", "acme", "Bad", "x-1", "9lives"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

    #[test]
    fn operator_sequences_agree(
        steps in prop::collection::vec(((0u8..3), prop::collection::vec(op_op(), 0..4)), 1..10),
        clean_start in any::<bool>(),
    ) {
        let keys = keys();
        let mut steps = steps;
        if clean_start {
            steps.insert(0, (0, vec![OpOp::Init(0)]));
        }
        let mut ours = OperatorState::new();
        let mut theirs = wop::LogState::new();
        for (i, (signer, ops)) in steps.iter().enumerate() {
            let entries = ops.iter().map(|op| match op {
                OpOp::Init(k) => OperatorEntry::Init { hash_algorithm: HashAlgorithm::Sha256, key: keys[usize::from(*k)].public_key().clone() },
                OpOp::Grant(k, p) => OperatorEntry::Grant { key: keys[usize::from(*k)].public_key().clone(), permissions: p.clone() },
                OpOp::Revoke(k, p) => OperatorEntry::Revoke { key_id: keys[usize::from(*k)].public_key().id(), permissions: p.clone() },
                OpOp::Define(n) => OperatorEntry::DefineNamespace { namespace: NAMESPACES[usize::from(*n)].into() },
                OpOp::Import(n) => OperatorEntry::ImportNamespace { namespace: NAMESPACES[usize::from(*n)].into(), registry: "other.example".into() },
            }).collect();
            let record = OperatorRecord {
                prev: ours.head().map(|h| h.record_id),
                version: 0,
                timestamp: Timestamp::new(1_700_000_000 + i as i64, 0),
                entries,
            };
            let envelope = Envelope::sign(&keys[usize::from(*signer)], record);
            let ref_env = ProtoEnvelope::<wop::OperatorRecord>::from_protobuf(&envelope.encode()).expect("decode");
            prop_assert_eq!(
                wreg::RecordId::operator_record::<Sha256>(&ref_env).to_string(),
                envelope.record_id().to_string()
            );
            let our_verdict = ours.apply(&envelope);
            let their_verdict = theirs.clone().validate(&ref_env);
            prop_assert_eq!(our_verdict.is_ok(), their_verdict.is_ok(),
                "verdicts differ: ours {:?}, reference {:?}", our_verdict.err().map(|e| e.to_string()), their_verdict.as_ref().err().map(|e| e.to_string()));
            if let Ok(next) = their_verdict { theirs = next; }
            for ns in NAMESPACES {
                prop_assert_eq!(ours.namespace(ns).is_some(), theirs.namespace_state(ns).is_some());
            }
            for key in &keys {
                let id = key.public_key().id();
                prop_assert_eq!(
                    ours.may_sign_checkpoints(&id),
                    theirs.key_has_permission_to_sign_checkpoints(&id.to_string().into())
                );
            }
        }
    }
}

#[test]
fn reference_timestamps_survive() {
    // Sub-second timestamps from SystemTime round-trip through both.
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 987_654_321);
    assert_eq!(Timestamp::from_system_time(t).to_system_time(), Some(t));
}
