//! Deterministic keys and states the targets check inputs against. Keys
//! come from fixed scalars and signing is RFC 6979, so a fuzz input always
//! makes the same records, ids and signatures.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::operator::{OperatorEntry, OperatorRecord, OperatorState};
use cairn_protocol::package::{PackageEntry, PackageRecord, PackageState, Permission};
use cairn_protocol::{Envelope, Hash, HashAlgorithm, PrivateKey, Timestamp, Version};
use cairn_transparency::hash_leaf;
use cairn_transparency::log::VecLog;
use cairn_transparency::map::Map;

/// How many fixture keys there are.
pub const KEYS: usize = 4;

/// The first timestamp of the fixture logs.
pub const START: i64 = 1_700_000_000;

/// Fixture key `i` (`i < KEYS`): the scalar `[i + 1; 32]`.
pub fn key(i: usize) -> &'static PrivateKey {
    static KEYS_: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    &KEYS_.get_or_init(|| {
        (0..KEYS)
            .map(|i| {
                let scalar = [u8::try_from(i + 1).expect("few keys"); 32];
                let text = format!("ecdsa-p256:{}", STANDARD.encode(scalar));
                PrivateKey::decode(&text).expect("a fixed scalar is a key")
            })
            .collect()
    })[i]
}

/// A well-formed signature text (key 0 over `b"fuzz"`): records decoded
/// from raw bytes get it, so their envelopes parse and validation runs
/// every rule before the signature check (which comes last).
pub fn signature_text() -> &'static str {
    static SIG: OnceLock<String> = OnceLock::new();
    SIG.get_or_init(|| key(0).sign(b"fuzz").to_string())
}

/// The key id text of key `i`.
pub fn key_id_text(i: usize) -> String {
    key(i).public_key().id().to_string()
}

/// A version.
pub fn version(text: &str) -> Version {
    text.parse().expect("fixture versions are semver")
}

fn package_record(state: &PackageState, seconds: i64, entries: Vec<PackageEntry>) -> PackageRecord {
    state.next_record(Timestamp::new(seconds, 0), entries)
}

/// The package log fixtures, each with the envelopes that made it:
/// empty; key 0's `init` with a release; then key 1 granted `release`,
/// a second release by key 1, a yank by key 0.
pub fn package_logs() -> &'static [(PackageState, Vec<Envelope<PackageRecord>>)] {
    static LOGS: OnceLock<Vec<(PackageState, Vec<Envelope<PackageRecord>>)>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let mut logs = vec![(PackageState::new(), Vec::new())];
        let mut state = PackageState::new();
        let mut envelopes = Vec::new();
        let steps: Vec<(usize, Vec<PackageEntry>)> = vec![
            (
                0,
                vec![
                    PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key(0).public_key().clone(),
                    },
                    PackageEntry::Release {
                        version: version("1.0.0"),
                        content: Hash::of([1]),
                    },
                ],
            ),
            (
                0,
                vec![PackageEntry::Grant {
                    key: key(1).public_key().clone(),
                    permissions: vec![Permission::Release],
                }],
            ),
            (
                1,
                vec![PackageEntry::Release {
                    version: version("1.1.0"),
                    content: Hash::of([2]),
                }],
            ),
            (
                0,
                vec![PackageEntry::Yank {
                    version: version("1.0.0"),
                }],
            ),
        ];
        for (n, (signer, entries)) in steps.into_iter().enumerate() {
            let record = package_record(&state, START + n as i64, entries);
            let envelope = Envelope::sign(key(signer), record);
            state.apply(&envelope).expect("the fixture log is valid");
            envelopes.push(envelope);
            if n == 0 || n == 3 {
                logs.push((state.clone(), envelopes.clone()));
            }
        }
        logs
    })
}

/// The operator log fixtures: empty; key 0's `init` defining `wasi`; then
/// key 1 granted `commit`, and `acme` imported from another registry.
pub fn operator_logs() -> &'static [(OperatorState, Vec<Envelope<OperatorRecord>>)] {
    static LOGS: OnceLock<Vec<(OperatorState, Vec<Envelope<OperatorRecord>>)>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use cairn_protocol::operator::Permission as Op;
        let mut logs = vec![(OperatorState::new(), Vec::new())];
        let mut state = OperatorState::new();
        let mut envelopes = Vec::new();
        let steps: Vec<Vec<OperatorEntry>> = vec![
            vec![
                OperatorEntry::Init {
                    hash_algorithm: HashAlgorithm::Sha256,
                    key: key(0).public_key().clone(),
                },
                OperatorEntry::DefineNamespace {
                    namespace: "wasi".into(),
                },
            ],
            vec![
                OperatorEntry::Grant {
                    key: key(1).public_key().clone(),
                    permissions: vec![Op::Commit],
                },
                OperatorEntry::ImportNamespace {
                    namespace: "acme".into(),
                    registry: "registry.example".into(),
                },
            ],
        ];
        for (n, entries) in steps.into_iter().enumerate() {
            let (prev, timestamp) =
                cairn_protocol::Head::next(state.head(), Timestamp::new(START + n as i64, 0));
            let record = OperatorRecord {
                prev,
                version: 0,
                timestamp,
                entries,
            };
            let envelope = Envelope::sign(key(0), record);
            state.apply(&envelope).expect("the fixture log is valid");
            envelopes.push(envelope);
            logs.push((state.clone(), envelopes.clone()));
        }
        logs
    })
}

/// Leaves of the reference registry log.
pub const LOG_LEAVES: u64 = 37;

/// Leaf `i` of the reference log.
pub fn log_leaf(i: u64) -> Hash {
    hash_leaf(&i.to_le_bytes())
}

/// The reference registry log: [`LOG_LEAVES`] leaves.
pub fn reference_log() -> &'static VecLog {
    static LOG: OnceLock<VecLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut log = VecLog::new();
        for i in 0..LOG_LEAVES {
            log.push(log_leaf(i));
        }
        log
    })
}

/// Keys in the reference map.
pub const MAP_KEYS: u32 = 20;

/// Key `i` of the reference map (keys `MAP_KEYS..` are absent from it).
pub fn map_key(i: u32) -> Hash {
    Hash::of(i.to_le_bytes())
}

/// The value of key `i` in the reference map.
pub fn map_value(i: u32) -> Hash {
    hash_leaf(&(i + 1000).to_le_bytes())
}

/// The reference map: keys `0..MAP_KEYS`.
pub fn reference_map() -> &'static Map {
    static MAP: OnceLock<Map> = OnceLock::new();
    MAP.get_or_init(|| Map::new().apply((0..MAP_KEYS).map(|i| (map_key(i), map_value(i)))))
}
