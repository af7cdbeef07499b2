//! Map inclusion proofs and `MapProofBundle`s.

use prost::Message;

use crate::hash::{empty_subtree, hash_branch, Hash};
use crate::proto;

/// Why a map proof cannot be read or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapProofError {
    /// More sibling hashes than the tree has levels.
    #[error("a map proof has at most 256 sibling hashes, found {0}")]
    TooManyPeers(usize),
    /// The bytes are not a `MapProofBundle` message.
    #[error("not a map proof bundle: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A sibling hash is not 32 bytes.
    #[error("sibling hash {index} of proof {proof} has {len} bytes, expected 32")]
    HashLength {
        /// Which proof of the bundle.
        proof: usize,
        /// Which hash of the proof.
        index: usize,
        /// Its length.
        len: usize,
    },
}

/// Proof that a key maps to a leaf hash: the sibling hashes along the key's
/// path, deepest first. Levels below the last given sibling, and `None`
/// entries, are empty subtrees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapProof {
    /// Sibling hashes, deepest first.
    pub peers: Vec<Option<Hash>>,
}

impl MapProof {
    /// The map root implied by `key` holding `leaf` (a leaf hash). The
    /// caller compares it with the root it trusts.
    pub fn evaluate(&self, key: &Hash, leaf: &Hash) -> Result<Hash, MapProofError> {
        let given = self.peers.len();
        if given > 256 {
            return Err(MapProofError::TooManyPeers(given));
        }
        let path = Hash::of(key.as_bytes());
        let mut hash = *leaf;
        for height in 0..256usize {
            let sibling = match height.checked_sub(256 - given) {
                Some(i) => self.peers[i].as_ref().unwrap_or(empty_subtree(height)),
                None => empty_subtree(height),
            };
            hash = if path.bit(255 - height) {
                hash_branch(sibling, &hash)
            } else {
                hash_branch(&hash, sibling)
            };
        }
        Ok(hash)
    }
}

/// Several map proofs, in the `warg.transparency` encoding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapProofBundle {
    /// The proofs.
    pub proofs: Vec<MapProof>,
}

impl MapProofBundle {
    /// The protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        proto::MapProofBundle {
            proofs: self
                .proofs
                .iter()
                .map(|proof| proto::MapInclusionProof {
                    hashes: proof
                        .peers
                        .iter()
                        .map(|peer| proto::OptionalHash {
                            hash: peer.map(|h| h.as_bytes().to_vec()),
                        })
                        .collect(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Reads the protobuf encoding.
    pub fn decode(bytes: &[u8]) -> Result<MapProofBundle, MapProofError> {
        let message = proto::MapProofBundle::decode(bytes)?;
        let mut proofs = Vec::with_capacity(message.proofs.len());
        for (p, proof) in message.proofs.into_iter().enumerate() {
            if proof.hashes.len() > 256 {
                return Err(MapProofError::TooManyPeers(proof.hashes.len()));
            }
            let mut peers = Vec::with_capacity(proof.hashes.len());
            for (index, peer) in proof.hashes.into_iter().enumerate() {
                peers.push(match peer.hash {
                    None => None,
                    Some(bytes) => Some(Hash::try_from(bytes.as_slice()).map_err(|_| {
                        MapProofError::HashLength {
                            proof: p,
                            index,
                            len: bytes.len(),
                        }
                    })?),
                });
            }
            proofs.push(MapProof { peers });
        }
        Ok(MapProofBundle { proofs })
    }
}
