//! Operator-log rules: namespaces, operator permissions, checkpoint signing.

use cairn_protocol::operator::{
    NamespaceState, OperatorEntry, OperatorRecord, OperatorState, Permission,
};
use cairn_protocol::{
    AnyPermission, Checkpoint, Envelope, Hash, HashAlgorithm, NameError, PrivateKey, RecordId,
    Rule, Timestamp, TimestampedCheckpoint,
};

struct Log {
    state: OperatorState,
    head: Option<RecordId>,
    time: i64,
}

impl Log {
    fn new() -> Self {
        Log {
            state: OperatorState::new(),
            head: None,
            time: 1_700_000_000,
        }
    }

    fn push(&mut self, key: &PrivateKey, entries: Vec<OperatorEntry>) -> Result<(), Rule> {
        self.time += 1;
        let record = OperatorRecord {
            prev: self.head,
            version: 0,
            timestamp: Timestamp::new(self.time, 0),
            entries,
        };
        let envelope = Envelope::sign(key, record);
        let before = self.state.clone();
        match self.state.apply(&envelope) {
            Ok(()) => {
                self.head = Some(envelope.record_id());
                Ok(())
            }
            Err(err) => {
                assert_eq!(self.state, before);
                Err(err.rule)
            }
        }
    }
}

fn init(key: &PrivateKey) -> OperatorEntry {
    OperatorEntry::Init {
        hash_algorithm: HashAlgorithm::Sha256,
        key: key.public_key().clone(),
    }
}

fn define(ns: &str) -> OperatorEntry {
    OperatorEntry::DefineNamespace {
        namespace: ns.into(),
    }
}

#[test]
fn namespaces() {
    let op = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&op, vec![init(&op), define("wasi")]).unwrap();
    log.push(
        &op,
        vec![OperatorEntry::ImportNamespace {
            namespace: "ba".into(),
            registry: "bytecodealliance.org".into(),
        }],
    )
    .unwrap();
    assert_eq!(log.state.namespace("wasi"), Some(&NamespaceState::Defined));
    assert_eq!(
        log.state.namespace("ba"),
        Some(&NamespaceState::Imported {
            registry: "bytecodealliance.org".into()
        })
    );
    assert_eq!(
        log.push(&op, vec![define("wasi")]),
        Err(Rule::NamespaceAlreadyDefined {
            namespace: "wasi".into()
        })
    );
    assert!(matches!(
        log.push(&op, vec![define("Wasi")]),
        Err(Rule::InvalidNamespace(NameError::Uppercase { .. }))
    ));
    assert!(matches!(
        log.push(&op, vec![define("a:b")]),
        Err(Rule::InvalidNamespace(NameError::InvalidChar {
            found: ':',
            ..
        }))
    ));
}

#[test]
fn operator_permissions() {
    let op = PrivateKey::generate();
    let helper = PrivateKey::generate();
    let mut log = Log::new();
    log.push(&op, vec![init(&op)]).unwrap();
    log.push(
        &op,
        vec![OperatorEntry::Grant {
            key: helper.public_key().clone(),
            permissions: vec![Permission::DefineNamespace],
        }],
    )
    .unwrap();
    log.push(&helper, vec![define("acme")]).unwrap();
    assert!(log.state.may_sign_checkpoints(&op.public_key().id()));
    assert!(!log.state.may_sign_checkpoints(&helper.public_key().id()));
    assert_eq!(
        log.push(
            &helper,
            vec![OperatorEntry::ImportNamespace {
                namespace: "x".into(),
                registry: "r".into()
            }]
        ),
        Err(Rule::MissingPermission {
            key_id: helper.public_key().id(),
            permission: AnyPermission::Operator(Permission::ImportNamespace)
        })
    );
    // Granting needs commit.
    assert!(matches!(
        log.push(
            &helper,
            vec![OperatorEntry::Grant {
                key: op.public_key().clone(),
                permissions: vec![]
            }]
        ),
        Err(Rule::MissingPermission { .. })
    ));
    log.push(
        &op,
        vec![OperatorEntry::Revoke {
            key_id: helper.public_key().id(),
            permissions: vec![Permission::DefineNamespace],
        }],
    )
    .unwrap();
    assert!(matches!(
        log.push(&helper, vec![define("late")]),
        Err(Rule::MissingPermission { .. })
    ));
}

#[test]
fn init_quirk_matches_reference() {
    // As in Warg v1: the operator init grants the *signer* every permission
    // and makes the *named* key known. A record signed by B that inits with A
    // and grants B is therefore valid.
    let a = PrivateKey::generate();
    let b = PrivateKey::generate();
    let mut log = Log::new();
    log.push(
        &b,
        vec![
            init(&a),
            OperatorEntry::Grant {
                key: b.public_key().clone(),
                permissions: vec![],
            },
        ],
    )
    .unwrap();
    assert!(log.state.may_sign_checkpoints(&b.public_key().id()));
    assert!(!log.state.may_sign_checkpoints(&a.public_key().id()));
    // Without the grant, B is unknown at the end and the record is refused.
    let mut fresh = Log::new();
    assert_eq!(
        fresh.push(&b, vec![init(&a)]),
        Err(Rule::UnknownKey {
            key_id: b.public_key().id()
        })
    );
}

#[test]
fn checkpoint_signatures() {
    let op = PrivateKey::generate();
    let other = PrivateKey::generate();
    let checkpoint = TimestampedCheckpoint {
        checkpoint: Checkpoint {
            log_root: Hash::of(b"log"),
            log_length: 300,
            map_root: Hash::of(b"map"),
        },
        timestamp: 1_700_000_000,
    };
    let signed = checkpoint.sign(&op);
    signed.verify(op.public_key()).unwrap();
    assert!(signed.verify(other.public_key()).is_err());
    let mut tampered = signed.clone();
    tampered.contents.checkpoint.log_length = 301;
    assert!(tampered.verify(op.public_key()).is_err());
    // Layout: tag, LEB128 length, then length-prefixed hash texts.
    let bytes = checkpoint.checkpoint.encode();
    assert!(bytes.starts_with(b"WARG-CHECKPOINT-V0\xac\x02\x47sha256:"));
}
