//! Inclusion and consistency proofs over a [`LogData`].

use super::node::MAX_LOG_LENGTH;
use super::{fold_broots, LogData, Node};
use crate::hash::{hash_branch, Hash};

/// Why a log proof cannot be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proven node is not complete at the log length.
    #[error("node {node} is not in a log of {log_length} leaves")]
    NodeTooNew {
        /// The proven node.
        node: u64,
        /// The log length of the proof.
        log_length: u64,
    },
    /// The log length is beyond what node indices can number.
    #[error("a log of {0} leaves is longer than Warg logs can be")]
    LogTooLong(u64),
    /// A hash the proof needs was not supplied.
    #[error("the proof lacks the hash of node {0}")]
    MissingHash(u64),
    /// The old length of a consistency proof is greater than the new one.
    #[error("consistency from length {old} to {new}: the old length is greater")]
    LengthsOutOfOrder {
        /// The older length.
        old: u64,
        /// The newer length.
        new: u64,
    },
    /// A consistency proof from an empty log proves nothing.
    #[error("a consistency proof from an empty log proves nothing")]
    EmptyOldLog,
    /// The old balanced roots lead to different new roots.
    #[error("the old log's subtrees lead to different roots of the new log")]
    DivergingRoots,
}

/// Proof that a node (normally a leaf) is part of the log at `log_length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The proven node.
    pub node: Node,
    /// The log length the proof is for.
    pub log_length: u64,
}

/// The nodes an inclusion proof visits, in evaluation order.
struct Walk {
    nodes: Vec<Node>,
    /// Siblings on the way up to the balanced root that holds the node.
    siblings: usize,
    /// Balanced roots right of that one (smaller subtrees).
    lower: usize,
}

impl InclusionProof {
    /// Proof of leaf `index` in a log of `log_length` leaves.
    pub fn for_leaf(index: u64, log_length: u64) -> InclusionProof {
        InclusionProof {
            node: Node::leaf(index),
            log_length,
        }
    }

    /// The nodes whose hashes evaluating this proof needs.
    pub fn nodes(&self) -> Result<Vec<Node>, ProofError> {
        Ok(self.walk()?.nodes)
    }

    fn walk(&self) -> Result<Walk, ProofError> {
        if self.log_length > MAX_LOG_LENGTH {
            return Err(ProofError::LogTooLong(self.log_length));
        }
        if !self.node.exists_at_length(self.log_length) {
            return Err(ProofError::NodeTooNew {
                node: self.node.index(),
                log_length: self.log_length,
            });
        }
        let broots = Node::broots(self.log_length);
        let mut nodes = Vec::new();
        let mut current = self.node;
        let position = loop {
            if let Some(position) = broots.iter().position(|b| *b == current) {
                break position;
            }
            nodes.push(current.sibling());
            current = current.parent();
        };
        let siblings = nodes.len();
        nodes.extend(broots[position + 1..].iter().rev());
        let lower = broots.len() - position - 1;
        nodes.extend(broots[..position].iter().rev());
        Ok(Walk {
            nodes,
            siblings,
            lower,
        })
    }

    /// The log root implied by `hash` being the hash of the proven node.
    /// The caller compares it with the root it trusts.
    pub fn evaluate(&self, data: &impl LogData, hash: Hash) -> Result<Hash, ProofError> {
        let walk = self.walk()?;
        let get = |node: Node| {
            data.hash_for(node)
                .map(|h| (node, h))
                .ok_or(ProofError::MissingHash(node.index()))
        };
        let mut current = (self.node, hash);
        let (siblings, rest) = walk.nodes.split_at(walk.siblings);
        let (lower, upper) = rest.split_at(walk.lower);
        for &node in siblings {
            current = combine(current, get(node)?);
        }
        let lower: Vec<_> = lower
            .iter()
            .map(|&node| get(node))
            .collect::<Result<_, _>>()?;
        if let Some(summary) = lower.into_iter().reduce(combine) {
            current = combine(current, summary);
        }
        for &node in upper {
            current = combine(current, get(node)?);
        }
        Ok(current.1)
    }
}

/// Hashes two (node, hash) pairs: the lower-numbered node is on the left;
/// the pair carries the second node forward (as Warg v1 evaluates).
fn combine(first: (Node, Hash), second: (Node, Hash)) -> (Node, Hash) {
    let hash = if first.0 < second.0 {
        hash_branch(&first.1, &second.1)
    } else {
        hash_branch(&second.1, &first.1)
    };
    (second.0, hash)
}

/// Proof that the log at `old_length` is a prefix of the log at
/// `new_length`: each balanced root of the old log is included in the new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older length.
    pub old_length: u64,
    /// The newer length.
    pub new_length: u64,
}

impl ConsistencyProof {
    /// The inclusion proofs of the old balanced roots in the new log.
    pub fn inclusions(&self) -> Result<Vec<InclusionProof>, ProofError> {
        if self.new_length > MAX_LOG_LENGTH {
            return Err(ProofError::LogTooLong(self.new_length));
        }
        if self.old_length > self.new_length {
            return Err(ProofError::LengthsOutOfOrder {
                old: self.old_length,
                new: self.new_length,
            });
        }
        Ok(Node::broots(self.old_length)
            .into_iter()
            .map(|node| InclusionProof {
                node,
                log_length: self.new_length,
            })
            .collect())
    }

    /// Evaluates to `(old root, new root)`; the caller compares both with
    /// the checkpoints it holds.
    pub fn evaluate(&self, data: &impl LogData) -> Result<(Hash, Hash), ProofError> {
        let inclusions = self.inclusions()?;
        if inclusions.is_empty() {
            return Err(ProofError::EmptyOldLog);
        }
        let mut old_broots = Vec::with_capacity(inclusions.len());
        let mut new_root = None;
        for inclusion in inclusions {
            let hash = data
                .hash_for(inclusion.node)
                .ok_or(ProofError::MissingHash(inclusion.node.index()))?;
            old_broots.push(hash);
            let root = inclusion.evaluate(data, hash)?;
            match new_root {
                None => new_root = Some(root),
                Some(previous) if previous != root => return Err(ProofError::DivergingRoots),
                Some(_) => {}
            }
        }
        let new_root = new_root.ok_or(ProofError::EmptyOldLog)?;
        Ok((fold_broots(old_broots.into_iter()), new_root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::VecLog;

    fn log(n: u64) -> VecLog {
        let mut log = VecLog::new();
        for i in 0..n {
            log.push(hash_leaf(&i.to_le_bytes()));
        }
        log
    }

    #[test]
    fn every_inclusion_proof_evaluates_to_the_root() {
        let log = log(40);
        for len in 1..=40 {
            let root = log.root_at(len).unwrap();
            for i in 0..len {
                let proof = InclusionProof::for_leaf(i, len);
                let leaf = hash_leaf(&i.to_le_bytes());
                assert_eq!(proof.evaluate(&log, leaf), Ok(root), "leaf {i} of {len}");
                let wrong = hash_leaf(b"other");
                assert_ne!(proof.evaluate(&log, wrong), Ok(root));
            }
            assert!(matches!(
                InclusionProof::for_leaf(len, len).evaluate(&log, root),
                Err(ProofError::NodeTooNew { .. })
            ));
        }
    }

    #[test]
    fn every_consistency_proof_evaluates_to_both_roots() {
        let log = log(40);
        for new in 1..=40 {
            for old in 1..=new {
                let proof = ConsistencyProof {
                    old_length: old,
                    new_length: new,
                };
                assert_eq!(
                    proof.evaluate(&log),
                    Ok((log.root_at(old).unwrap(), log.root_at(new).unwrap()))
                );
            }
        }
        let backwards = ConsistencyProof {
            old_length: 5,
            new_length: 4,
        };
        assert!(matches!(
            backwards.evaluate(&log),
            Err(ProofError::LengthsOutOfOrder { .. })
        ));
        let from_empty = ConsistencyProof {
            old_length: 0,
            new_length: 4,
        };
        assert_eq!(from_empty.evaluate(&log), Err(ProofError::EmptyOldLog));
    }
}
