//! Every package-log rule, accepted and rejected, with the rule named.

use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState, Permission};
use cairn_protocol::{
    AnyPermission, Envelope, Hash, HashAlgorithm, PrivateKey, Record, RecordId, Rule, Timestamp,
    Version,
};

fn v(s: &str) -> Version {
    s.parse().expect("valid test input")
}

fn content(n: u8) -> Hash {
    Hash::of([n])
}

struct Log {
    state: PackageState,
    head: Option<RecordId>,
    time: i64,
}

impl Log {
    fn new() -> Self {
        Log {
            state: PackageState::new(),
            head: None,
            time: 1_700_000_000,
        }
    }

    fn record(&mut self, entries: Vec<PackageEntry>) -> PackageRecord {
        self.time += 1;
        PackageRecord {
            prev: self.head,
            version: 0,
            timestamp: Timestamp::new(self.time, 0),
            entries,
        }
    }

    fn push(&mut self, key: &PrivateKey, entries: Vec<PackageEntry>) -> Result<(), Rule> {
        let record = self.record(entries);
        self.push_record(key, record)
    }

    fn push_record(&mut self, key: &PrivateKey, record: PackageRecord) -> Result<(), Rule> {
        let envelope = Envelope::sign(key, record);
        let before = self.state.clone();
        match self.state.apply(&envelope) {
            Ok(()) => {
                self.head = Some(envelope.record_id());
                assert_eq!(
                    self.state.head().expect("a head").record_id,
                    envelope.record_id()
                );
                Ok(())
            }
            Err(err) => {
                assert_eq!(err.record_id, envelope.record_id());
                assert_eq!(
                    self.state, before,
                    "a rejected record must not change state"
                );
                Err(err.rule)
            }
        }
    }
}

fn init(key: &PrivateKey) -> PackageEntry {
    PackageEntry::Init {
        hash_algorithm: HashAlgorithm::Sha256,
        key: key.public_key().clone(),
    }
}

fn release(version: &str, n: u8) -> PackageEntry {
    PackageEntry::Release {
        version: v(version),
        content: content(n),
    }
}

#[test]
fn full_lifecycle() {
    let owner = PrivateKey::generate();
    let releaser = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&owner, vec![init(&owner)]).unwrap();
    log.push(&owner, vec![release("1.0.0", 1), release("1.1.0", 2)])
        .unwrap();
    log.push(
        &owner,
        vec![PackageEntry::Grant {
            key: releaser.public_key().clone(),
            permissions: vec![Permission::Release],
        }],
    )
    .unwrap();
    log.push(&releaser, vec![release("2.0.0", 3)]).unwrap();
    assert_eq!(
        log.push(
            &releaser,
            vec![PackageEntry::Yank {
                version: v("1.0.0")
            }]
        ),
        Err(Rule::MissingPermission {
            key_id: releaser.public_key().id(),
            permission: AnyPermission::Package(Permission::Yank)
        })
    );
    log.push(
        &owner,
        vec![PackageEntry::Yank {
            version: v("2.0.0"),
        }],
    )
    .unwrap();
    log.push(
        &owner,
        vec![PackageEntry::Revoke {
            key_id: releaser.public_key().id(),
            permissions: vec![Permission::Release],
        }],
    )
    .unwrap();
    assert!(matches!(
        log.push(&releaser, vec![release("3.0.0", 4)]),
        Err(Rule::MissingPermission { .. })
    ));

    let state = &log.state;
    let yanked = state.release(&v("2.0.0")).unwrap();
    assert!(yanked.yanked.is_some());
    assert_eq!(
        yanked.content,
        content(3),
        "a yanked release keeps its digest"
    );
    assert_eq!(yanked.by, releaser.public_key().id());
    let newest = state.latest_matching(&"*".parse().unwrap()).unwrap();
    assert_eq!(newest.version, v("1.1.0"));
    assert_eq!(state.releases().count(), 3);
    let owner_perms: Vec<_> = state
        .authorities()
        .permissions(&owner.public_key().id())
        .collect();
    assert_eq!(owner_perms, vec![Permission::Release, Permission::Yank]);
    assert_eq!(
        state
            .authorities()
            .permissions(&releaser.public_key().id())
            .count(),
        0
    );
}

#[test]
fn chain_rules() {
    let owner = PrivateKey::generate();
    let mut log = Log::new();
    let mut first = log.record(vec![init(&owner)]);
    first.prev = Some(RecordId::from(Hash::of(b"x")));
    assert_eq!(log.push_record(&owner, first), Err(Rule::PrevOnFirstRecord));
    log.push(&owner, vec![init(&owner)]).unwrap();

    let mut no_prev = log.record(vec![]);
    no_prev.prev = None;
    assert_eq!(log.push_record(&owner, no_prev), Err(Rule::MissingPrev));

    let mut wrong_prev = log.record(vec![]);
    let wrong = RecordId::from(Hash::of(b"y"));
    wrong_prev.prev = Some(wrong);
    assert_eq!(
        log.push_record(&owner, wrong_prev),
        Err(Rule::PrevMismatch {
            expected: log.head.unwrap(),
            found: wrong
        })
    );

    let mut version = log.record(vec![]);
    version.version = 1;
    assert_eq!(
        log.push_record(&owner, version),
        Err(Rule::UnsupportedVersion { version: 1 })
    );

    let mut old = log.record(vec![]);
    old.timestamp = Timestamp::new(1, 0);
    assert!(matches!(
        log.push_record(&owner, old),
        Err(Rule::TimestampBeforePrevious { .. })
    ));

    // Equal timestamps are allowed; an empty later record is a no-op.
    let mut same = log.record(vec![]);
    same.timestamp = log.state.head().unwrap().timestamp;
    log.push_record(&owner, same).unwrap();
}

#[test]
fn init_rules() {
    let owner = PrivateKey::generate();
    let other = PrivateKey::generate();
    let mut log = Log::new();
    assert_eq!(log.push(&owner, vec![]), Err(Rule::EmptyFirstRecord));
    assert_eq!(
        log.push(&owner, vec![release("1.0.0", 1)]),
        Err(Rule::MissingPermission {
            key_id: owner.public_key().id(),
            permission: AnyPermission::Package(Permission::Release)
        })
    );
    assert_eq!(
        log.push(
            &owner,
            vec![PackageEntry::Grant {
                key: other.public_key().clone(),
                permissions: vec![]
            }]
        ),
        Err(Rule::FirstEntryNotInit)
    );
    assert_eq!(
        log.push(&other, vec![init(&owner)]),
        Err(Rule::InitSignerMismatch {
            signer: other.public_key().id(),
            init_key: owner.public_key().id()
        })
    );
    log.push(&owner, vec![init(&owner)]).unwrap();
    assert_eq!(log.push(&owner, vec![init(&owner)]), Err(Rule::SecondInit));
    assert_eq!(
        log.push(&other, vec![]),
        Err(Rule::UnknownKey {
            key_id: other.public_key().id()
        })
    );
}

#[test]
fn release_and_yank_rules() {
    let owner = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&owner, vec![init(&owner), release("1.0.0", 1)])
        .unwrap();
    assert_eq!(
        log.push(&owner, vec![release("1.0.0", 2)]),
        Err(Rule::VersionAlreadyReleased {
            version: v("1.0.0")
        })
    );
    assert_eq!(
        log.push(
            &owner,
            vec![PackageEntry::Yank {
                version: v("9.0.0")
            }]
        ),
        Err(Rule::YankOfUnreleased {
            version: v("9.0.0")
        })
    );
    log.push(
        &owner,
        vec![PackageEntry::Yank {
            version: v("1.0.0"),
        }],
    )
    .unwrap();
    assert_eq!(
        log.push(
            &owner,
            vec![PackageEntry::Yank {
                version: v("1.0.0")
            }]
        ),
        Err(Rule::YankOfYanked {
            version: v("1.0.0")
        })
    );
    // Re-release after a yank is still refused: versions are immutable.
    assert!(matches!(
        log.push(&owner, vec![release("1.0.0", 1)]),
        Err(Rule::VersionAlreadyReleased { .. })
    ));
}

#[test]
fn grants_are_delegation_only() {
    let owner = PrivateKey::generate();
    let releaser = PrivateKey::generate();
    let third = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&owner, vec![init(&owner)]).unwrap();
    log.push(
        &owner,
        vec![PackageEntry::Grant {
            key: releaser.public_key().clone(),
            permissions: vec![Permission::Release],
        }],
    )
    .unwrap();
    // The releaser cannot hand out yank, which it does not hold.
    assert!(matches!(
        log.push(
            &releaser,
            vec![PackageEntry::Grant {
                key: third.public_key().clone(),
                permissions: vec![Permission::Yank],
            }]
        ),
        Err(Rule::MissingPermission { .. })
    ));
    // Revoking what the target does not hold is refused.
    assert_eq!(
        log.push(
            &owner,
            vec![PackageEntry::Revoke {
                key_id: third.public_key().id(),
                permissions: vec![Permission::Yank],
            }]
        ),
        Err(Rule::RevokeOfMissingPermission {
            key_id: third.public_key().id(),
            permission: AnyPermission::Package(Permission::Yank)
        })
    );
}

#[test]
fn bad_signature_is_refused() {
    let owner = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&owner, vec![init(&owner)]).unwrap();
    let record = log.record(vec![release("1.0.0", 1)]);
    let good = Envelope::sign(&owner, record);
    // Same content, signature of different bytes.
    let other = Envelope::sign(&owner, log.record(vec![]));
    let forged = Envelope::<PackageRecord>::from_parts(
        good.content_bytes().to_vec(),
        &good.key_id().to_string(),
        &other.signature().to_string(),
    )
    .unwrap();
    let err = log.state.apply(&forged).unwrap_err();
    assert_eq!(
        err.rule,
        Rule::BadSignature {
            key_id: owner.public_key().id()
        }
    );
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn envelopes_round_trip_and_keep_bytes() {
    let owner = PrivateKey::generate();
    let mut log = Log::new();
    let record = log.record(vec![init(&owner), release("1.0.0-rc.1+build", 7)]);
    let envelope = Envelope::sign(&owner, record.clone());
    let decoded = Envelope::<PackageRecord>::decode(&envelope.encode()).unwrap();
    assert_eq!(decoded, envelope);
    assert_eq!(decoded.contents(), &record);
    assert_eq!(record.encode(), envelope.content_bytes());
    assert_eq!(
        decoded.record_id(),
        RecordId::package_record(envelope.content_bytes())
    );
}

#[test]
fn decode_errors_name_the_problem() {
    let err = Envelope::<PackageRecord>::decode(b"\xff\xff").unwrap_err();
    assert!(err.to_string().contains("malformed protobuf"), "{err}");
    let err = Envelope::<PackageRecord>::from_parts(vec![], "sha256:00", "x").unwrap_err();
    assert!(err.to_string().contains("no timestamp"), "{err}");
}

#[test]
fn a_signature_check_done_ahead_is_only_good_for_its_envelope() {
    let owner = PrivateKey::generate();
    let stranger = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&owner, vec![init(&owner)]).unwrap();
    let good = Envelope::sign(&owner, log.record(vec![release("1.0.0", 1)]));
    let checked = good.check_signature(owner.public_key()).unwrap();
    assert!(log.state.validate_checked(&good, Some(&checked)).is_ok());

    // The wrong key, or a forged signature, never yields a check.
    assert!(good.check_signature(stranger.public_key()).is_err());
    let other = Envelope::sign(&owner, log.record(vec![]));
    let forged = Envelope::<PackageRecord>::from_parts(
        good.content_bytes().to_vec(),
        &good.key_id().to_string(),
        &other.signature().to_string(),
    )
    .unwrap();
    assert!(forged.check_signature(owner.public_key()).is_err());

    // A check of one envelope does not vouch for another: the forged one
    // (same bytes, other signature) and another record are checked again.
    let err = log
        .state
        .validate_checked(&forged, Some(&checked))
        .unwrap_err();
    assert_eq!(
        err.rule,
        Rule::BadSignature {
            key_id: owner.public_key().id()
        }
    );
    let tampered = Envelope::<PackageRecord>::from_parts(
        other.content_bytes().to_vec(),
        &good.key_id().to_string(),
        &good.signature().to_string(),
    )
    .unwrap();
    assert!(log
        .state
        .validate_checked(&tampered, Some(&checked))
        .is_err());
}

#[test]
fn replay_equals_record_by_record_and_restore_skips_only_signatures() {
    let owner = PrivateKey::generate();
    let mut log = Log::new();
    let mut envelopes = Vec::new();
    let mut entries = vec![init(&owner), release("1.0.0", 1)];
    for n in 2..40u8 {
        let envelope = Envelope::sign(&owner, log.record(std::mem::take(&mut entries)));
        log.state.apply(&envelope).unwrap();
        log.head = Some(envelope.record_id());
        envelopes.push(envelope);
        entries = vec![release(&format!("1.0.{n}"), n)];
    }
    let replayed = PackageState::new()
        .replay(envelopes.iter().map(|e| (e, None)))
        .unwrap();
    assert_eq!(replayed, log.state);
    // Signatures checked ahead (in parallel, say) are accepted as proof.
    let checked: Vec<_> = envelopes
        .iter()
        .map(|e| e.check_signature(owner.public_key()).unwrap())
        .collect();
    let replayed = PackageState::new()
        .replay(envelopes.iter().zip(checked.iter().map(Some)))
        .unwrap();
    assert_eq!(replayed, log.state);
    assert_eq!(
        PackageState::restore_trusted(&envelopes).unwrap(),
        log.state
    );

    // A forged signature: replay refuses it, restore (trusted storage
    // only) does not look; every other rule still applies to both.
    let last = envelopes.pop().unwrap();
    let other = Envelope::sign(&owner, log.record(vec![]));
    let forged = Envelope::<PackageRecord>::from_parts(
        last.content_bytes().to_vec(),
        &last.key_id().to_string(),
        &other.signature().to_string(),
    )
    .unwrap();
    envelopes.push(forged);
    let err = PackageState::new()
        .replay(envelopes.iter().map(|e| (e, None)))
        .unwrap_err();
    assert!(matches!(err.rule, Rule::BadSignature { .. }), "{err}");
    assert!(PackageState::restore_trusted(&envelopes).is_ok());
    envelopes.swap(3, 4);
    let err = PackageState::restore_trusted(&envelopes).unwrap_err();
    assert!(matches!(err.rule, Rule::PrevMismatch { .. }), "{err}");
}
