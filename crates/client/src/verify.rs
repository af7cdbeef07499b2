//! The checks that decide whether a registry's answer is true, pure: a
//! checkpoint's signature against the operator log, consistency of one
//! checkpoint with an older one, and inclusion of records in the registry
//! log and map. Each failure says what the registry was caught at.

use cairn_protocol::operator::OperatorState;
use cairn_protocol::{Hash, LogId, LogLeaf, MapLeaf, RecordId, SignedCheckpoint};
use cairn_transparency::log::{InclusionProof, LogProofBundle};
use cairn_transparency::map::MapProofBundle;

/// What a registry was caught at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofFailure {
    /// The checkpoint is signed by a key the operator log does not allow to
    /// sign checkpoints, or the signature does not verify.
    #[error("signed checkpoint {length} with key {key_id}, {why}")]
    CheckpointSignature {
        /// The checkpoint's log length.
        length: u64,
        /// The key it names.
        key_id: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// The new checkpoint is shorter than the trusted one.
    #[error("went back: its checkpoint has {new} records, but {old} were already trusted")]
    Rollback {
        /// The trusted length.
        old: u64,
        /// The offered length.
        new: u64,
    },
    /// Two different checkpoints of the same length: a forked log.
    #[error("forked its log: two different checkpoints both have {length} records")]
    Fork {
        /// The length both claim.
        length: u64,
    },
    /// The consistency proof does not connect the two checkpoints.
    #[error("served a checkpoint ({new} records) that does not extend the trusted one ({old} records): {why}")]
    Inconsistent {
        /// The trusted length.
        old: u64,
        /// The offered length.
        new: u64,
        /// Which part failed.
        why: String,
    },
    /// A record is not in the log or the map at the checkpoint.
    #[error("served a record the checkpoint ({length} records) does not contain: {why}")]
    NotIncluded {
        /// The checkpoint's length.
        length: u64,
        /// Which part failed.
        why: String,
    },
}

/// Checks that `cp` is signed by a key the operator log (validated up to
/// the checkpoint) lets sign checkpoints.
pub fn checkpoint_signature(
    operator: &OperatorState,
    cp: &SignedCheckpoint,
) -> Result<(), ProofFailure> {
    let fail = |why| ProofFailure::CheckpointSignature {
        length: cp.contents.checkpoint.log_length,
        key_id: cp.key_id.to_string(),
        why,
    };
    if !operator.may_sign_checkpoints(&cp.key_id) {
        return Err(fail(
            "which the operator log does not allow to sign checkpoints",
        ));
    }
    let key = operator
        .authorities()
        .key(&cp.key_id)
        .ok_or_else(|| fail("which the operator log does not hold"))?;
    cp.verify(key)
        .map_err(|_| fail("but the signature does not verify"))
}

/// Checks that `new` extends `old`: the same checkpoint when the lengths
/// are equal, else a consistency proof (`bundle`, a Warg log proof bundle)
/// that connects both roots.
pub fn consistency(
    old: &SignedCheckpoint,
    new: &SignedCheckpoint,
    bundle: Option<&[u8]>,
) -> Result<(), ProofFailure> {
    let (o, n) = (&old.contents.checkpoint, &new.contents.checkpoint);
    if n.log_length < o.log_length {
        return Err(ProofFailure::Rollback {
            old: o.log_length,
            new: n.log_length,
        });
    }
    if n.log_length == o.log_length {
        return if o == n {
            Ok(())
        } else {
            Err(ProofFailure::Fork {
                length: n.log_length,
            })
        };
    }
    let bundle = bundle.ok_or_else(|| ProofFailure::Inconsistent {
        old: o.log_length,
        new: n.log_length,
        why: "no consistency proof was given".into(),
    })?;
    log_consistency(
        (o.log_length, &o.log_root),
        (n.log_length, &n.log_root),
        bundle,
    )
}

/// Checks that the log of `old` (length, root) is a prefix of the log of
/// `new` (longer), by a Warg consistency proof `bundle`.
pub fn log_consistency(
    old: (u64, &Hash),
    new: (u64, &Hash),
    bundle: &[u8],
) -> Result<(), ProofFailure> {
    let fail = |why: String| ProofFailure::Inconsistent {
        old: old.0,
        new: new.0,
        why,
    };
    let bundle = LogProofBundle::decode(bundle).map_err(|e| fail(format!("the proof: {e}")))?;
    if bundle.log_length != new.0 || bundle.consistent_lengths != [old.0] {
        return Err(fail(format!(
            "the proof is for lengths {:?} to {}, not {} to {}",
            bundle.consistent_lengths, bundle.log_length, old.0, new.0
        )));
    }
    let (data, proofs, _) = bundle.unbundle();
    let (old_root, new_root) = proofs[0]
        .evaluate(&data)
        .map_err(|e| fail(format!("the proof does not evaluate: {e}")))?;
    if old_root != *old.1 {
        return Err(fail(format!(
            "the proof leads to old root {old_root}, but the trusted root is {}",
            old.1
        )));
    }
    if new_root != *new.1 {
        return Err(fail(format!(
            "the proof leads to new root {new_root}, but the checkpoint's root is {}",
            new.1
        )));
    }
    Ok(())
}

/// A record to prove: its place in the registry log, and the latest
/// record of its log at the checkpoint (what the map must hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inclusion {
    /// Its registry index.
    pub index: u64,
    /// Its log.
    pub log_id: LogId,
    /// The record.
    pub record_id: RecordId,
    /// The latest record of `log_id` at the checkpoint.
    pub head: RecordId,
}

/// Checks the answer to `POST /v1/proof/inclusion` for `records` (in the
/// order asked): each record is the leaf at its index of the checkpoint's
/// log, and the map at the checkpoint holds each log's head.
pub fn inclusion(
    cp: &SignedCheckpoint,
    records: &[Inclusion],
    log_bundle: &[u8],
    map_bundle: &[u8],
) -> Result<(), ProofFailure> {
    let c = &cp.contents.checkpoint;
    let fail = |why: String| ProofFailure::NotIncluded {
        length: c.log_length,
        why,
    };
    let bundle =
        LogProofBundle::decode(log_bundle).map_err(|e| fail(format!("the log proof: {e}")))?;
    let expected: Vec<_> = records
        .iter()
        .map(|r| InclusionProof::for_leaf(r.index, c.log_length).node)
        .collect();
    if bundle.log_length != c.log_length || bundle.included != expected {
        return Err(fail(format!(
            "the log proof is for other leaves or another length ({})",
            bundle.log_length
        )));
    }
    let (data, _, proofs) = bundle.unbundle();
    for (proof, record) in proofs.iter().zip(records) {
        let leaf = LogLeaf {
            log_id: record.log_id,
            record_id: record.record_id,
        };
        let root = proof
            .evaluate(&data, leaf.leaf_hash())
            .map_err(|e| fail(format!("record {}: {e}", record.record_id)))?;
        if root != c.log_root {
            return Err(fail(format!(
                "record {} is not the leaf at registry index {}",
                record.record_id, record.index
            )));
        }
    }
    let map =
        MapProofBundle::decode(map_bundle).map_err(|e| fail(format!("the map proof: {e}")))?;
    let entries: Vec<(Hash, Hash)> = records
        .iter()
        .map(|r| {
            (
                *r.log_id.digest(),
                MapLeaf { record_id: r.head }.leaf_hash(),
            )
        })
        .collect();
    let roots = map
        .evaluate_all(&entries)
        .map_err(|e| fail(format!("the map proof: {e}")))?;
    for (root, record) in roots.iter().zip(records) {
        if *root != c.map_root {
            return Err(fail(format!(
                "the map does not hold record {} as the latest of log {}",
                record.head, record.log_id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::{Checkpoint, PrivateKey, TimestampedCheckpoint};
    use cairn_transparency::log::{ConsistencyProof, VecLog};
    use cairn_transparency::map::Map;

    fn leaf(i: u64) -> LogLeaf {
        LogLeaf {
            log_id: LogId::package(&format!("ns:p{}", i % 3).parse().expect("name")),
            record_id: RecordId::package_record(&i.to_be_bytes()),
        }
    }

    /// A log of `n` leaves, its map (each log's last record), and a
    /// checkpoint of both.
    fn registry(n: u64, key: &PrivateKey) -> (VecLog, Map, SignedCheckpoint) {
        let mut log = VecLog::new();
        let mut map = Map::new();
        for i in 0..n {
            let l = leaf(i);
            log.push(l.leaf_hash());
            map = map.insert(
                *l.log_id.digest(),
                MapLeaf {
                    record_id: l.record_id,
                }
                .leaf_hash(),
            );
        }
        let cp = TimestampedCheckpoint {
            checkpoint: Checkpoint {
                log_root: log.root(),
                log_length: n,
                map_root: map.root(),
            },
            timestamp: n,
        }
        .sign(key);
        (log, map, cp)
    }

    #[test]
    fn consistency_accepts_extensions_and_catches_forks_and_rollbacks() {
        let key = PrivateKey::generate();
        let (_, _, old) = registry(5, &key);
        let (log, _, new) = registry(9, &key);
        let proof = LogProofBundle::bundle(
            &[ConsistencyProof {
                old_length: 5,
                new_length: 9,
            }],
            &[],
            &log,
        )
        .and_then(|b| b.encode())
        .expect("bundle");
        consistency(&old, &new, Some(&proof)).expect("an extension is consistent");
        consistency(&old, &old, None).expect("the same checkpoint");
        assert!(matches!(
            consistency(&new, &old, None),
            Err(ProofFailure::Rollback { old: 9, new: 5 })
        ));
        // Another history of the same length is a fork.
        let mut other = registry(5, &key).2;
        other.contents.checkpoint.log_root = Hash::of(b"other");
        assert!(matches!(
            consistency(&old, &other, None),
            Err(ProofFailure::Fork { length: 5 })
        ));
        // A longer history that does not start with the trusted one.
        let mut forked_old = old.clone();
        forked_old.contents.checkpoint.log_root = Hash::of(b"other");
        let e = consistency(&forked_old, &new, Some(&proof)).expect_err("fork");
        assert!(e.to_string().contains("old root"), "{e}");
        // No proof, or a proof for other lengths.
        assert!(consistency(&old, &new, None).is_err());
        let (log10, _, _) = registry(10, &key);
        let wrong = LogProofBundle::bundle(
            &[ConsistencyProof {
                old_length: 4,
                new_length: 10,
            }],
            &[],
            &log10,
        )
        .and_then(|b| b.encode())
        .expect("bundle");
        assert!(consistency(&old, &new, Some(&wrong)).is_err());
    }

    #[test]
    fn inclusion_checks_leaf_and_map_head() {
        let key = PrivateKey::generate();
        let (log, map, cp) = registry(9, &key);
        // Leaf 8 is the head of its log; leaf 2 is not (8 came later, same log).
        let indexes = [8u64, 2];
        let log_bundle = LogProofBundle::bundle(
            &[],
            &indexes
                .iter()
                .map(|i| InclusionProof::for_leaf(*i, 9))
                .collect::<Vec<_>>(),
            &log,
        )
        .and_then(|b| b.encode())
        .expect("bundle");
        let map_bundle = MapProofBundle {
            proofs: indexes
                .iter()
                .map(|i| map.prove(leaf(*i).log_id.digest()).expect("proof"))
                .collect(),
        }
        .encode();
        let head = leaf(8).record_id;
        let records: Vec<Inclusion> = indexes
            .iter()
            .map(|i| Inclusion {
                index: *i,
                log_id: leaf(*i).log_id,
                record_id: leaf(*i).record_id,
                head,
            })
            .collect();
        inclusion(&cp, &records, &log_bundle, &map_bundle).expect("included");

        // A record that is not the leaf at its index.
        let mut wrong = records.clone();
        wrong[1].record_id = leaf(5).record_id;
        let e = inclusion(&cp, &wrong, &log_bundle, &map_bundle).expect_err("wrong leaf");
        assert!(e.to_string().contains("is not the leaf"), "{e}");
        // A head the map does not hold (a hidden newer record).
        let mut stale = records.clone();
        stale[0].head = leaf(2).record_id;
        let e = inclusion(&cp, &stale, &log_bundle, &map_bundle).expect_err("stale head");
        assert!(e.to_string().contains("the map does not hold"), "{e}");
        // Proofs for other leaves.
        let e = inclusion(&cp, &records[..1], &log_bundle, &map_bundle).expect_err("count");
        assert!(e.to_string().contains("other leaves"), "{e}");
    }

    #[test]
    fn checkpoint_signatures_need_the_commit_permission() {
        use cairn_protocol::operator::{OperatorEntry, OperatorRecord};
        use cairn_protocol::{Envelope, HashAlgorithm, Timestamp};
        let key = PrivateKey::generate();
        let mut operator = OperatorState::new();
        operator
            .apply(&Envelope::sign(
                &key,
                OperatorRecord {
                    prev: None,
                    version: 0,
                    timestamp: Timestamp::new(1, 0),
                    entries: vec![OperatorEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    }],
                },
            ))
            .expect("init");
        let (_, _, cp) = registry(3, &key);
        checkpoint_signature(&operator, &cp).expect("signed by the operator");
        let (_, _, other) = registry(3, &PrivateKey::generate());
        assert!(checkpoint_signature(&operator, &other).is_err());
        let mut forged = cp.clone();
        forged.contents.timestamp += 1;
        let e = checkpoint_signature(&operator, &forged).expect_err("forged");
        assert!(e.to_string().contains("does not verify"), "{e}");
    }
}
