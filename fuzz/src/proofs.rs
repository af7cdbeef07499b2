//! Proof decoders: log proof bundles (inclusion and consistency), map
//! proof bundles and map snapshots, decoded and evaluated against the
//! reference log and map.
//!
//! Beyond "no panic": a bundle that decodes re-encodes to itself; an
//! evaluation that lands on the reference log's (or map's) true root
//! must have been fed the true hash (soundness: anything else would be a
//! SHA-256 collision, or a proof that skips a node); the map's two-lane
//! evaluation agrees with the one-at-a-time one; a snapshot that loads
//! writes back the same bytes and stays usable.

use cairn_transparency::log::{LogData, LogProofBundle, ProofError};
use cairn_transparency::map::{Map, MapProofBundle};
use cairn_transparency::{hash_branch, hash_branches, Hash};

use crate::fixtures::{self, LOG_LEAVES, MAP_KEYS};
use crate::input::Input;

/// `proofs`: the first byte picks the decoder, the rest is its input.
pub fn proofs(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => log_bundle(rest),
        1 => map_bundle(rest),
        2 => map_snapshot(rest),
        _ => lanes(rest),
    }
}

fn log_bundle(bytes: &[u8]) {
    let Ok(bundle) = LogProofBundle::decode(bytes) else {
        return;
    };
    let encoded = bundle.encode().expect("a decoded bundle re-encodes");
    assert_eq!(
        LogProofBundle::decode(&encoded).expect("re-encoded bundle decodes"),
        bundle,
        "log bundle round trip"
    );
    let log = fixtures::reference_log();
    let (data, consistency, inclusion) = bundle.unbundle();
    for proof in consistency.iter().take(64) {
        match proof.evaluate(&data) {
            Ok((old, new)) => {
                if proof.new_length <= LOG_LEAVES && Some(new) == log.root_at(proof.new_length) {
                    assert_eq!(
                        Some(old),
                        log.root_at(proof.old_length),
                        "consistency {}..{} reaches the true new root from a false old one",
                        proof.old_length,
                        proof.new_length
                    );
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    for proof in inclusion.iter().take(64) {
        let truth = if proof.log_length <= LOG_LEAVES && proof.node.exists_at_length(LOG_LEAVES) {
            log.hash_for(proof.node)
        } else {
            None
        };
        let false_hash = Hash::of(proof.node.index().to_le_bytes());
        for hash in truth.into_iter().chain([false_hash]) {
            match proof.evaluate(&data, hash) {
                Ok(root) => {
                    if proof.log_length <= LOG_LEAVES && Some(root) == log.root_at(proof.log_length)
                    {
                        assert_eq!(
                            Some(hash),
                            truth,
                            "node {} proven in the log of {} with a false hash",
                            proof.node.index(),
                            proof.log_length
                        );
                    }
                }
                Err(ProofError::MissingHash(_)) => {}
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        let _ = proof.nodes();
    }
    // Re-bundling the decoded proofs from the reference log must not panic.
    if bundle.log_length <= LOG_LEAVES {
        let _ = LogProofBundle::bundle(&consistency, &inclusion, log);
    }
}

fn map_bundle(bytes: &[u8]) {
    let Ok(bundle) = MapProofBundle::decode(bytes) else {
        return;
    };
    assert_eq!(
        MapProofBundle::decode(&bundle.encode()).expect("re-encoded bundle decodes"),
        bundle,
        "map bundle round trip"
    );
    let map = fixtures::reference_map();
    // Entry i asks about key i (absent from MAP_KEYS on), with its true
    // value on even i and a false one on odd i.
    let entries: Vec<(Hash, Hash)> = (0..bundle.proofs.len())
        .map(|i| {
            let k = (i as u32) % (MAP_KEYS + 3);
            let value = if i % 2 == 0 {
                fixtures::map_value(k)
            } else {
                Hash::of(b"false")
            };
            (fixtures::map_key(k), value)
        })
        .collect();
    let one_by_one: Vec<_> = bundle
        .proofs
        .iter()
        .zip(&entries)
        .map(|(proof, (key, leaf))| proof.evaluate(key, leaf))
        .collect();
    let together = bundle.evaluate_all(&entries);
    let one_by_one_all: Result<Vec<Hash>, _> = one_by_one.iter().cloned().collect();
    assert_eq!(together, one_by_one_all, "lanes and one-by-one agree");
    for ((key, leaf), root) in entries.iter().zip(&one_by_one) {
        if root.as_ref().ok() == Some(&map.root()) {
            assert_eq!(
                map.get(key).as_ref(),
                Some(leaf),
                "a map proof reaches the true root with a false leaf"
            );
        }
    }
    let _ = bundle.evaluate_all(&entries[..entries.len().saturating_sub(1)]);
}

fn map_snapshot(bytes: &[u8]) {
    let Ok(map) = Map::from_snapshot(bytes) else {
        return;
    };
    assert_eq!(
        map.snapshot(),
        bytes,
        "a loaded snapshot writes back as read"
    );
    let _ = (map.root(), map.len(), map.is_empty());
    let _ = format!("{map:?}");
    // Leaf hashes are taken as stored, so a damaged snapshot may hold keys
    // whose proofs miss its root (the registry compares the root with its
    // checkpoint's before use). Keys set to new values are hashed afresh:
    // the updated map proves those to its root.
    let updates: Vec<(Hash, Hash)> = [0, 1, 2, 100u32]
        .into_iter()
        .map(|i| (fixtures::map_key(i), Hash::of([0xf0, i as u8])))
        .collect();
    let updated = map.apply(updates.iter().copied());
    for (key, value) in &updates {
        assert_eq!(updated.get(key), Some(*value));
        if map.get(key) == Some(*value) {
            continue; // not a new value: its stored hash stays
        }
        let proof = updated.prove(key).expect("a key just set has a proof");
        assert_eq!(
            proof.evaluate(key, value),
            Ok(updated.root()),
            "a proof of an updated snapshot map evaluates to its root"
        );
    }
    let again = Map::from_snapshot(&updated.snapshot()).expect("an updated map's snapshot loads");
    assert_eq!(again.root(), updated.root());
}

/// Two-lane branch hashes against the one-at-a-time hash.
fn lanes(bytes: &[u8]) {
    let mut input = Input::new(bytes);
    let mut hash = || {
        let mut out = [0u8; 32];
        out.iter_mut().for_each(|b| *b = input.u8());
        Hash::from_bytes(out)
    };
    let (a, b, c, d) = (hash(), hash(), hash(), hash());
    assert_eq!(
        hash_branches([&a, &c], [&b, &d]),
        [hash_branch(&a, &b), hash_branch(&c, &d)],
        "lanes agree with hash_branch"
    );
}
