//! The package log's state machine, driven by sequences of records that
//! are built from the fuzzer's choices and really signed (by fixture keys),
//! so they get past the signature check and reach every rule.
//!
//! Each record is also run through a small model of the rules written
//! here from the protocol's description; the state machine must accept
//! exactly what the model accepts and end in the same state. Besides:
//! a refused record leaves the state as it was; `validate_checked` with a
//! signature token agrees with `apply` (and a token made for another
//! envelope never stands in for a bad signature); replaying the accepted
//! records, with tokens or as trusted storage, rebuilds the same state.

use std::collections::{BTreeMap, BTreeSet};

use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState, Permission};
use cairn_protocol::{
    signing_message, Envelope, Hash, HashAlgorithm, KeyId, Record, RecordId, SignatureChecked,
    Timestamp, Version, VersionReq,
};

use crate::fixtures::{self, key, KEYS, START};
use crate::input::Input;

/// Most records per input.
const RECORDS: usize = 10;

const VERSIONS: [&str; 6] = [
    "1.0.0",
    "1.0.1",
    "2.0.0-rc.1",
    "0.1.0",
    "1.0.0+build.5",
    "10.20.30",
];

/// What the model keeps of a log.
#[derive(Clone, Debug, Default)]
struct Model {
    initialised: bool,
    head: Option<(RecordId, Timestamp)>,
    known: BTreeSet<KeyId>,
    permissions: BTreeMap<KeyId, BTreeSet<Permission>>,
    /// Version → (content, yanked).
    releases: BTreeMap<Version, (Hash, bool)>,
}

impl Model {
    fn holds(&self, id: &KeyId, permission: Permission) -> bool {
        self.permissions
            .get(id)
            .is_some_and(|held| held.contains(&permission))
    }

    fn holds_all(&self, id: &KeyId, permissions: &[Permission]) -> bool {
        permissions.iter().all(|p| self.holds(id, *p))
    }

    /// The model after `record` (id `id`, signed as `signer`, with a
    /// signature that verifies or not), or `None` if a rule refuses it.
    fn next(
        &self,
        record: &PackageRecord,
        id: RecordId,
        signer: KeyId,
        signature_ok: bool,
    ) -> Option<Model> {
        match (&self.head, &record.prev) {
            (None, None) => {}
            (Some((head, _)), Some(prev)) if head == prev => {}
            _ => return None,
        }
        if record.version != 0 {
            return None;
        }
        if self.head.is_some_and(|(_, t)| record.timestamp < t) {
            return None;
        }
        let mut m = self.clone();
        for entry in &record.entries {
            match entry {
                PackageEntry::Init { key, .. } => {
                    if m.initialised || key.id() != signer {
                        return None;
                    }
                    m.initialised = true;
                    m.known.insert(key.id());
                    m.permissions
                        .entry(key.id())
                        .or_default()
                        .extend(Permission::ALL);
                }
                _ if !m.initialised => return None,
                PackageEntry::Grant { key, permissions } => {
                    if !m.holds_all(&signer, permissions) {
                        return None;
                    }
                    m.known.insert(key.id());
                    m.permissions
                        .entry(key.id())
                        .or_default()
                        .extend(permissions.iter().copied());
                }
                PackageEntry::Revoke {
                    key_id,
                    permissions,
                } => {
                    if !m.holds_all(&signer, permissions) {
                        return None;
                    }
                    for p in permissions {
                        let removed = m
                            .permissions
                            .get_mut(key_id)
                            .is_some_and(|held| held.remove(p));
                        if !removed {
                            return None;
                        }
                    }
                }
                PackageEntry::Release { version, content } => {
                    if !m.holds(&signer, Permission::Release) || m.releases.contains_key(version) {
                        return None;
                    }
                    m.releases.insert(version.clone(), (*content, false));
                }
                PackageEntry::Yank { version } => {
                    if !m.holds(&signer, Permission::Yank) {
                        return None;
                    }
                    match m.releases.get_mut(version) {
                        Some((_, yanked)) if !*yanked => *yanked = true,
                        _ => return None,
                    }
                }
            }
        }
        if !m.initialised || !m.known.contains(&signer) || !signature_ok {
            return None;
        }
        m.head = Some((id, record.timestamp));
        Some(m)
    }
}

/// The state machine and the model say the same about the log.
fn agree(state: &PackageState, model: &Model) {
    assert_eq!(
        state.head().map(|h| (h.record_id, h.timestamp)),
        model.head,
        "heads"
    );
    for i in 0..KEYS {
        let id = key(i).public_key().id();
        assert_eq!(
            state.authorities().key(&id).is_some(),
            model.known.contains(&id),
            "key {i} known"
        );
        for p in Permission::ALL {
            assert_eq!(
                state.authorities().holds(&id, p),
                model.holds(&id, p),
                "key {i} holds {p}"
            );
        }
    }
    let releases: BTreeMap<Version, (Hash, bool)> = state
        .releases()
        .map(|r| (r.version.clone(), (r.content, r.yanked.is_some())))
        .collect();
    assert_eq!(releases, model.releases, "releases");
    for version in model.releases.keys() {
        assert!(state.release(version).is_some());
    }
}

fn permissions(input: &mut Input<'_>) -> Vec<Permission> {
    (0..input.below(4))
        .map(|_| *input.pick(&Permission::ALL))
        .collect()
}

fn entry(input: &mut Input<'_>, signer: usize) -> PackageEntry {
    let version = |input: &mut Input<'_>| fixtures::version(input.pick::<&str>(&VERSIONS));
    match input.below(5) {
        0 => {
            let k = if input.chance(75) {
                signer
            } else {
                input.below(KEYS)
            };
            PackageEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key(k).public_key().clone(),
            }
        }
        1 => PackageEntry::Grant {
            key: key(input.below(KEYS)).public_key().clone(),
            permissions: permissions(input),
        },
        2 => PackageEntry::Revoke {
            key_id: key(input.below(KEYS)).public_key().id(),
            permissions: permissions(input),
        },
        3 => PackageEntry::Release {
            version: version(input),
            content: Hash::of([input.u8()]),
        },
        _ => PackageEntry::Yank {
            version: version(input),
        },
    }
}

/// `package_state`: a sequence of records, per record: signer, `prev`
/// (mostly the head), protocol version, time step, entries, and whether
/// the signature is good.
pub fn package_state(data: &[u8]) {
    let mut input = Input::new(data);
    let mut state = PackageState::new();
    let mut model = Model::default();
    let mut made: Vec<RecordId> = Vec::new();
    let mut accepted: Vec<(Envelope<PackageRecord>, Option<SignatureChecked>)> = Vec::new();

    for _ in 0..RECORDS {
        if input.is_empty() {
            break;
        }
        let signer = input.below(KEYS);
        let signer_id = key(signer).public_key().id();
        let prev = match input.below(8) {
            0 => None,
            1 if !made.is_empty() => Some(*input.pick(&made)),
            1 => Some(RecordId::from(Hash::of(b"elsewhere"))),
            _ => state.head().map(|h| h.record_id),
        };
        let version = u32::from(input.chance(4));
        let base = model.head.map_or(START, |(_, t)| t.seconds());
        let timestamp = Timestamp::new(
            base + i64::from(input.i8()),
            (input.below(4) as i32) * 300_000_000,
        );
        let entries = (0..input.below(4))
            .map(|_| entry(&mut input, signer))
            .collect();
        let record = PackageRecord {
            prev,
            version,
            timestamp,
            entries,
        };
        let good = Envelope::sign(key(signer), record.clone());
        let signature_ok = !input.chance(8);
        let envelope = if signature_ok {
            good.clone()
        } else {
            // Signed by the next key, but naming the signer's.
            let other = key((signer + 1) % KEYS);
            let message = signing_message(PackageRecord::SIGNATURE_PREFIX, good.content_bytes());
            Envelope::from_parts(
                good.content_bytes().to_vec(),
                &signer_id.to_string(),
                &other.sign(&message).to_string(),
            )
            .expect("a signed record's parts decode")
        };
        let again = Envelope::<PackageRecord>::decode(&envelope.encode()).expect("decodes");
        assert_eq!(again, envelope);
        let id = envelope.record_id();
        made.push(id);

        let expected = model.next(&record, id, signer_id, signature_ok);
        let before = state.clone();
        let checked = envelope.check_signature(key(signer).public_key()).ok();
        assert_eq!(checked.is_some(), signature_ok, "check_signature");
        let via_checked = state.validate_checked(&envelope, checked.as_ref());
        let result = state.apply(&envelope);
        match &result {
            Ok(()) => assert_eq!(via_checked.as_ref().ok(), Some(&state)),
            Err(e) => {
                assert_eq!(via_checked.as_ref().err(), Some(e), "same refusal");
                assert_eq!(state, before, "a refused record changes nothing");
                assert_eq!(e.record_id, id);
                let _ = e.to_string();
            }
        }
        assert_eq!(
            result.is_ok(),
            expected.is_some(),
            "record {record:?} signed well: {signature_ok}: state machine says {result:?}, model {:?}",
            expected.is_some()
        );
        if !signature_ok {
            // The token of the well-signed twin does not vouch for this one.
            let token = good
                .check_signature(key(signer).public_key())
                .expect("the twin is well signed");
            let forged = before.validate_checked(&envelope, Some(&token));
            assert!(forged.is_err(), "a twin's token let a bad signature in");
        }
        if let Some(next) = expected {
            model = next;
            accepted.push((envelope, checked));
        }
        agree(&state, &model);
    }

    let replayed = PackageState::new()
        .replay(accepted.iter().map(|(e, c)| (e, c.as_ref())))
        .expect("accepted records replay");
    assert_eq!(replayed, state, "replay rebuilds the state");
    let restored = PackageState::restore_trusted(accepted.iter().map(|(e, _)| e))
        .expect("accepted records restore");
    assert_eq!(restored, state, "restore rebuilds the state");
    let next = state.next_record(Timestamp::new(START - 1, 0), Vec::new());
    assert_eq!(next.prev, state.head().map(|h| h.record_id));
    if let Some(head) = state.head() {
        assert!(
            next.timestamp >= head.timestamp,
            "next_record goes back in time"
        );
    }
    let _ = state.latest_matching(&VersionReq::STAR);
}
