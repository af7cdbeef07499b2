//! `LogProofBundle`: consistency and inclusion proofs against one log length,
//! with the node hashes they need, in the `warg.transparency` encoding.

use std::collections::BTreeMap;

use prost::Message;

use super::{ConsistencyProof, InclusionProof, LogData, Node, ProofError};
use crate::hash::Hash;
use crate::proto;

/// Why a log proof bundle cannot be made or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// No proofs were given.
    #[error("a bundle needs at least one proof")]
    Empty,
    /// The proofs are for different log lengths.
    #[error("all proofs in a bundle must be for one log length, found {0} and {1}")]
    MixedLengths(u64, u64),
    /// A proof is malformed.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The log does not have a node the proofs need.
    #[error("the log has no hash for node {0}")]
    MissingHash(u64),
    /// A length or node index does not fit the wire format's 32 bits.
    #[error("{0} does not fit in the bundle's 32-bit fields")]
    TooLarge(u64),
    /// The bytes are not a `LogProofBundle` message.
    #[error("not a log proof bundle: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A hash entry is not 32 bytes.
    #[error("hash entry for node {index} has {len} bytes, expected 32")]
    HashLength {
        /// The node index of the entry.
        index: u32,
        /// Its length.
        len: usize,
    },
}

/// A bundle of proofs against the log at `log_length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProofBundle {
    /// The log length every proof is against.
    pub log_length: u64,
    /// Old lengths proven consistent with `log_length`.
    pub consistent_lengths: Vec<u64>,
    /// Nodes proven included at `log_length`.
    pub included: Vec<Node>,
    /// Hashes of the nodes the proofs need, ascending by node.
    pub hashes: Vec<(Node, Hash)>,
}

fn fits(value: u64) -> Result<u32, BundleError> {
    u32::try_from(value).map_err(|_| BundleError::TooLarge(value))
}

impl LogProofBundle {
    /// Collects the proofs and the hashes they need from `data`.
    pub fn bundle(
        consistency: &[ConsistencyProof],
        inclusion: &[InclusionProof],
        data: &impl LogData,
    ) -> Result<LogProofBundle, BundleError> {
        let mut length = None;
        let mut same_length = |l: u64| match length {
            None => {
                length = Some(l);
                Ok(())
            }
            Some(first) if first != l => Err(BundleError::MixedLengths(first, l)),
            Some(_) => Ok(()),
        };
        let mut needed = Vec::new();
        for proof in consistency {
            for inner in proof.inclusions()? {
                same_length(inner.log_length)?;
                needed.extend(inner.nodes()?);
                needed.push(inner.node);
            }
        }
        for proof in inclusion {
            same_length(proof.log_length)?;
            needed.extend(proof.nodes()?);
        }
        let log_length = length.ok_or(BundleError::Empty)?;
        needed.sort_unstable();
        needed.dedup();
        let hashes = needed
            .into_iter()
            .map(|node| {
                data.hash_for(node)
                    .map(|hash| (node, hash))
                    .ok_or(BundleError::MissingHash(node.index()))
            })
            .collect::<Result<_, _>>()?;
        Ok(LogProofBundle {
            log_length,
            consistent_lengths: consistency.iter().map(|p| p.old_length).collect(),
            included: inclusion.iter().map(|p| p.node).collect(),
            hashes,
        })
    }

    /// The proofs and the hashes to evaluate them with.
    pub fn unbundle(&self) -> (SparseLogData, Vec<ConsistencyProof>, Vec<InclusionProof>) {
        let data = SparseLogData(self.hashes.iter().copied().collect());
        let consistency = self
            .consistent_lengths
            .iter()
            .map(|&old_length| ConsistencyProof {
                old_length,
                new_length: self.log_length,
            })
            .collect();
        let inclusion = self
            .included
            .iter()
            .map(|&node| InclusionProof {
                node,
                log_length: self.log_length,
            })
            .collect();
        (data, consistency, inclusion)
    }

    /// The protobuf encoding.
    pub fn encode(&self) -> Result<Vec<u8>, BundleError> {
        let message = proto::LogProofBundle {
            log_length: fits(self.log_length)?,
            consistent_lengths: self
                .consistent_lengths
                .iter()
                .map(|&l| fits(l))
                .collect::<Result<_, _>>()?,
            included_indices: self
                .included
                .iter()
                .map(|n| fits(n.index()))
                .collect::<Result<_, _>>()?,
            hashes: self
                .hashes
                .iter()
                .map(|(node, hash)| {
                    Ok(proto::HashEntry {
                        index: fits(node.index())?,
                        hash: hash.as_bytes().to_vec(),
                    })
                })
                .collect::<Result<_, BundleError>>()?,
        };
        Ok(message.encode_to_vec())
    }

    /// Reads the protobuf encoding.
    pub fn decode(bytes: &[u8]) -> Result<LogProofBundle, BundleError> {
        let message = proto::LogProofBundle::decode(bytes)?;
        let hashes = message
            .hashes
            .iter()
            .map(|entry| {
                Hash::try_from(entry.hash.as_slice())
                    .map(|hash| (Node(entry.index.into()), hash))
                    .map_err(|_| BundleError::HashLength {
                        index: entry.index,
                        len: entry.hash.len(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(LogProofBundle {
            log_length: message.log_length.into(),
            consistent_lengths: message
                .consistent_lengths
                .into_iter()
                .map(u64::from)
                .collect(),
            included: message
                .included_indices
                .into_iter()
                .map(|i| Node(i.into()))
                .collect(),
            hashes,
        })
    }
}

/// Node hashes carried by a bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseLogData(pub BTreeMap<Node, Hash>);

impl LogData for SparseLogData {
    fn hash_for(&self, node: Node) -> Option<Hash> {
        self.0.get(&node).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_leaf;
    use crate::log::VecLog;

    #[test]
    fn bundles_round_trip_and_verify() {
        let mut log = VecLog::new();
        for i in 0u32..23 {
            log.push(hash_leaf(&i.to_le_bytes()));
        }
        let consistency = [
            ConsistencyProof {
                old_length: 5,
                new_length: 23,
            },
            ConsistencyProof {
                old_length: 17,
                new_length: 23,
            },
        ];
        let inclusion = [
            InclusionProof::for_leaf(0, 23),
            InclusionProof::for_leaf(22, 23),
        ];
        let bundle = LogProofBundle::bundle(&consistency, &inclusion, &log).unwrap();
        let decoded = LogProofBundle::decode(&bundle.encode().unwrap()).unwrap();
        assert_eq!(decoded, bundle);
        let (data, consistency, inclusion) = decoded.unbundle();
        for proof in consistency {
            let (old, new) = proof.evaluate(&data).unwrap();
            assert_eq!(Some(old), log.root_at(proof.old_length));
            assert_eq!(new, log.root());
        }
        assert_eq!(
            inclusion[1].evaluate(&data, hash_leaf(&22u32.to_le_bytes())),
            Ok(log.root())
        );
    }

    #[test]
    fn bad_bundles_are_refused() {
        let log = VecLog::new();
        assert_eq!(
            LogProofBundle::bundle(&[], &[], &log),
            Err(BundleError::Empty)
        );
        let mixed = [
            InclusionProof::for_leaf(0, 1),
            InclusionProof::for_leaf(0, 2),
        ];
        assert_eq!(
            LogProofBundle::bundle(&[], &mixed, &log),
            Err(BundleError::MixedLengths(1, 2))
        );
        assert!(matches!(
            LogProofBundle::decode(&[0xff, 0xff]),
            Err(BundleError::Decode(_))
        ));
        let short = proto::LogProofBundle {
            log_length: 1,
            hashes: vec![proto::HashEntry {
                index: 0,
                hash: vec![1, 2, 3],
            }],
            ..Default::default()
        };
        assert_eq!(
            LogProofBundle::decode(&short.encode_to_vec()),
            Err(BundleError::HashLength { index: 0, len: 3 })
        );
    }
}
