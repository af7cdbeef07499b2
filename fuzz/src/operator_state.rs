//! The operator log's state machine, as [`crate::package_state`] drives the
//! package log's: really-signed records from the fuzzer's choices, checked
//! against a model of the rules, atomic refusals, and `validate` agreeing
//! with `apply`.

use std::collections::{BTreeMap, BTreeSet};

use cairn_protocol::operator::{
    NamespaceState, OperatorEntry, OperatorRecord, OperatorState, Permission,
};
use cairn_protocol::{
    signing_message, Envelope, Hash, HashAlgorithm, KeyId, Record, RecordId, Timestamp,
};

use crate::fixtures::{key, KEYS, START};
use crate::input::Input;

const RECORDS: usize = 10;

/// Namespaces, and whether each is lowercase kebab-case.
const NAMESPACES: [(&str, bool); 8] = [
    ("wasi", true),
    ("acme", true),
    ("my-org", true),
    ("a1-b2", true),
    ("Wasi", false),
    ("a--b", false),
    ("", false),
    ("1abc", false),
];

const REGISTRIES: [&str; 3] = ["registry.example", "", "other.example:8080"];

#[derive(Clone, Debug, Default)]
struct Model {
    initialised: bool,
    head: Option<(RecordId, Timestamp)>,
    known: BTreeSet<KeyId>,
    permissions: BTreeMap<KeyId, BTreeSet<Permission>>,
    /// Namespace → `None` if defined, the registry if imported.
    namespaces: BTreeMap<String, Option<String>>,
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

    fn add(&mut self, namespace: &str, registry: Option<&str>) -> Option<()> {
        let valid = NAMESPACES
            .iter()
            .find(|(n, _)| *n == namespace)
            .is_some_and(|(_, valid)| *valid);
        if !valid || self.namespaces.contains_key(namespace) {
            return None;
        }
        self.namespaces
            .insert(namespace.to_owned(), registry.map(str::to_owned));
        Some(())
    }

    fn next(
        &self,
        record: &OperatorRecord,
        id: RecordId,
        signer: KeyId,
        signature_ok: bool,
    ) -> Option<Model> {
        match (&self.head, &record.prev) {
            (None, None) => {}
            (Some((head, _)), Some(prev)) if head == prev => {}
            _ => return None,
        }
        if record.version != 0 || self.head.is_some_and(|(_, t)| record.timestamp < t) {
            return None;
        }
        let mut m = self.clone();
        for entry in &record.entries {
            match entry {
                OperatorEntry::Init { key, .. } => {
                    if m.initialised {
                        return None;
                    }
                    // As in Warg v1: the signer gets every permission, the
                    // named key becomes known.
                    m.initialised = true;
                    m.permissions
                        .entry(signer)
                        .or_default()
                        .extend(Permission::ALL);
                    m.known.insert(key.id());
                }
                _ if !m.initialised => return None,
                OperatorEntry::Grant { key, permissions } => {
                    if !m.holds(&signer, Permission::Commit) || !m.holds_all(&signer, permissions) {
                        return None;
                    }
                    m.known.insert(key.id());
                    m.permissions
                        .entry(key.id())
                        .or_default()
                        .extend(permissions.iter().copied());
                }
                OperatorEntry::Revoke {
                    key_id,
                    permissions,
                } => {
                    if !m.holds(&signer, Permission::Commit) || !m.holds_all(&signer, permissions) {
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
                OperatorEntry::DefineNamespace { namespace } => {
                    if !m.holds(&signer, Permission::DefineNamespace) {
                        return None;
                    }
                    m.add(namespace, None)?;
                }
                OperatorEntry::ImportNamespace {
                    namespace,
                    registry,
                } => {
                    if !m.holds(&signer, Permission::ImportNamespace) {
                        return None;
                    }
                    m.add(namespace, Some(registry))?;
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

fn agree(state: &OperatorState, model: &Model) {
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
        assert_eq!(
            state.may_sign_checkpoints(&id),
            model.holds(&id, Permission::Commit)
        );
    }
    let namespaces: BTreeMap<String, Option<String>> = state
        .namespaces()
        .map(|(name, s)| {
            let registry = match s {
                NamespaceState::Defined => None,
                NamespaceState::Imported { registry } => Some(registry.clone()),
            };
            (name.to_owned(), registry)
        })
        .collect();
    assert_eq!(namespaces, model.namespaces, "namespaces");
    for (name, _) in NAMESPACES {
        assert_eq!(
            state.namespace(name).is_some(),
            model.namespaces.contains_key(name)
        );
    }
}

fn permissions(input: &mut Input<'_>) -> Vec<Permission> {
    (0..input.below(4))
        .map(|_| *input.pick(&Permission::ALL))
        .collect()
}

fn entry(input: &mut Input<'_>, signer: usize) -> OperatorEntry {
    match input.below(5) {
        0 => {
            let k = if input.chance(75) {
                signer
            } else {
                input.below(KEYS)
            };
            OperatorEntry::Init {
                hash_algorithm: HashAlgorithm::Sha256,
                key: key(k).public_key().clone(),
            }
        }
        1 => OperatorEntry::Grant {
            key: key(input.below(KEYS)).public_key().clone(),
            permissions: permissions(input),
        },
        2 => OperatorEntry::Revoke {
            key_id: key(input.below(KEYS)).public_key().id(),
            permissions: permissions(input),
        },
        3 => OperatorEntry::DefineNamespace {
            namespace: input.pick(&NAMESPACES).0.to_owned(),
        },
        _ => OperatorEntry::ImportNamespace {
            namespace: input.pick(&NAMESPACES).0.to_owned(),
            registry: (*input.pick(&REGISTRIES)).to_owned(),
        },
    }
}

/// `operator_state`: records as for `package_state`.
pub fn operator_state(data: &[u8]) {
    let mut input = Input::new(data);
    let mut state = OperatorState::new();
    let mut model = Model::default();
    let mut made: Vec<RecordId> = Vec::new();

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
        let record = OperatorRecord {
            prev,
            version,
            timestamp,
            entries,
        };
        let signature_ok = !input.chance(8);
        let envelope = if signature_ok {
            Envelope::sign(key(signer), record.clone())
        } else {
            let other = key((signer + 1) % KEYS);
            let content = record.encode();
            let message = signing_message(OperatorRecord::SIGNATURE_PREFIX, &content);
            Envelope::from_parts(
                content,
                &signer_id.to_string(),
                &other.sign(&message).to_string(),
            )
            .expect("a signed record's parts decode")
        };
        let id = envelope.record_id();
        made.push(id);

        let expected = model.next(&record, id, signer_id, signature_ok);
        let before = state.clone();
        let validated = state.validate(&envelope);
        let result = state.apply(&envelope);
        match &result {
            Ok(()) => assert_eq!(validated.as_ref().ok(), Some(&state)),
            Err(e) => {
                assert_eq!(validated.as_ref().err(), Some(e), "same refusal");
                assert_eq!(state, before, "a refused record changes nothing");
                let _ = e.to_string();
            }
        }
        assert_eq!(
            result.is_ok(),
            expected.is_some(),
            "record {record:?} signed well: {signature_ok}: state machine says {result:?}"
        );
        if let Some(next) = expected {
            model = next;
        }
        agree(&state, &model);
    }
}
