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
    let fail = |why: String| ProofFailure::Inconsistent {
        old: o.log_length,
        new: n.log_length,
        why,
    };
    let bundle = bundle.ok_or_else(|| fail("no consistency proof was given".into()))?;
    let bundle = LogProofBundle::decode(bundle).map_err(|e| fail(format!("the proof: {e}")))?;
    if bundle.log_length != n.log_length || bundle.consistent_lengths != [o.log_length] {
        return Err(fail(format!(
            "the proof is for lengths {:?} to {}, not {} to {}",
            bundle.consistent_lengths, bundle.log_length, o.log_length, n.log_length
        )));
    }
    let (data, proofs, _) = bundle.unbundle();
    let (old_root, new_root) = proofs[0]
        .evaluate(&data)
        .map_err(|e| fail(format!("the proof does not evaluate: {e}")))?;
    if old_root != o.log_root {
        return Err(fail(format!(
            "the proof leads to old root {old_root}, but the trusted root is {}",
            o.log_root
        )));
    }
    if new_root != n.log_root {
        return Err(fail(format!(
            "the proof leads to new root {new_root}, but the checkpoint's root is {}",
            n.log_root
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
