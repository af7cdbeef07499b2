//! Map inclusion proofs and `MapProofBundle`s.

use prost::Message;
use rayon::prelude::*;

use crate::hash::{empty_subtree, hash_with_sibling, Hash};
use crate::lanes::{hash_with_siblings, LANES};
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
    /// A bundle was evaluated with a different number of entries.
    #[error("the bundle has {proofs} proofs but {entries} entries were given")]
    EntryCount {
        /// Proofs in the bundle.
        proofs: usize,
        /// Entries given.
        entries: usize,
    },
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
        self.check()?;
        let path = Hash::of(key.as_bytes());
        let mut hash = *leaf;
        for height in 0..256usize {
            hash = hash_with_sibling(&hash, self.sibling(height), path.bit(255 - height));
        }
        Ok(hash)
    }

    /// [`MapProof::evaluate`] for many `(proof, key, leaf)` at once: proofs
    /// are hashed side by side in lanes and spread over threads.
    pub fn evaluate_many(items: &[(&MapProof, &Hash, &Hash)]) -> Vec<Result<Hash, MapProofError>> {
        items
            .par_chunks(LANES * 16)
            .flat_map_iter(|chunk| chunk.chunks(LANES).flat_map(evaluate_lanes))
            .collect()
    }

    fn check(&self) -> Result<(), MapProofError> {
        match self.peers.len() {
            n if n > 256 => Err(MapProofError::TooManyPeers(n)),
            _ => Ok(()),
        }
    }

    /// The sibling at `height` (0 = next to the leaf).
    fn sibling(&self, height: usize) -> &Hash {
        match height.checked_sub(256 - self.peers.len()) {
            Some(i) => self.peers[i].as_ref().unwrap_or(empty_subtree(height)),
            None => empty_subtree(height),
        }
    }
}

fn evaluate_lanes(items: &[(&MapProof, &Hash, &Hash)]) -> Vec<Result<Hash, MapProofError>> {
    let lanes = match <&[(&MapProof, &Hash, &Hash); LANES]>::try_from(items) {
        Ok(lanes) if lanes.iter().all(|(proof, _, _)| proof.check().is_ok()) => lanes,
        _ => {
            return items
                .iter()
                .map(|(proof, key, leaf)| proof.evaluate(key, leaf))
                .collect()
        }
    };
    let paths: [Hash; LANES] = std::array::from_fn(|i| Hash::of(lanes[i].1.as_bytes()));
    let mut hashes: [Hash; LANES] = std::array::from_fn(|i| *lanes[i].2);
    for height in 0..256usize {
        let siblings = std::array::from_fn(|i| lanes[i].0.sibling(height));
        let right = std::array::from_fn(|i| paths[i].bit(255 - height));
        hashes = hash_with_siblings(&hashes, siblings, right);
    }
    hashes.into_iter().map(Ok).collect()
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

    /// Evaluates proof `i` with `entries[i]` (key, leaf hash), all at once
    /// (see [`MapProof::evaluate_many`]); the caller compares each root
    /// with the one it trusts.
    pub fn evaluate_all(&self, entries: &[(Hash, Hash)]) -> Result<Vec<Hash>, MapProofError> {
        if entries.len() != self.proofs.len() {
            return Err(MapProofError::EntryCount {
                proofs: self.proofs.len(),
                entries: entries.len(),
            });
        }
        let items: Vec<_> = self
            .proofs
            .iter()
            .zip(entries)
            .map(|(proof, (key, leaf))| (proof, key, leaf))
            .collect();
        MapProof::evaluate_many(&items).into_iter().collect()
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
