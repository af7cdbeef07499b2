//! The SHA-256 hash type and the leaf and branch hashes of Warg v1.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A SHA-256 digest. Its text form is `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash([u8; 32]);

/// Why a text or byte string is not a [`Hash`](struct@Hash).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The text does not start with `sha256:`.
    #[error("expected a digest of the form `sha256:<64 hex digits>`, found algorithm `{0}`")]
    Algorithm(String),
    /// The text has no `algorithm:` prefix at all.
    #[error("expected a digest of the form `sha256:<64 hex digits>`, found no `sha256:` prefix")]
    MissingAlgorithm,
    /// The hex part has the wrong length.
    #[error("a sha256 digest has 64 hex digits, found {0}")]
    Length(usize),
    /// The hex part has a character that is not a lowercase hex digit.
    #[error("a sha256 digest is written in lowercase hex digits, found {0:?}")]
    Character(char),
    /// A binary digest with the wrong number of bytes.
    #[error("a sha256 digest is 32 bytes, found {0}")]
    ByteLength(usize),
}

impl Hash {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: impl AsRef<[u8]>) -> Hash {
        Hash(Sha256::digest(bytes.as_ref()).into())
    }

    /// Wraps 32 digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Hash {
        Hash(bytes)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Bit `index` (0 = most significant bit of the first byte).
    #[inline]
    pub fn bit(&self, index: usize) -> bool {
        (self.0[index / 8] >> (7 - index % 8)) & 1 == 1
    }

    /// Number of leading bits `self` and `other` share (256 when equal).
    pub fn common_prefix_bits(&self, other: &Hash) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        256
    }
}

impl TryFrom<&[u8]> for Hash {
    type Error = HashParseError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashParseError::ByteLength(bytes.len()))
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(HashParseError::MissingAlgorithm);
        };
        if algorithm != "sha256" {
            return Err(HashParseError::Algorithm(algorithm.to_owned()));
        }
        if let Some(c) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(HashParseError::Character(c));
        }
        if hex.len() != 64 {
            return Err(HashParseError::Length(hex.len()));
        }
        let mut out = [0u8; 32];
        // Length and characters are checked above, so this cannot fail.
        hex::decode_to_slice(hex, &mut out).map_err(|_| HashParseError::Length(hex.len()))?;
        Ok(Hash(out))
    }
}

/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// SHA-256's initial state.
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The two padded SHA-256 blocks of the 65-byte branch message
/// `0x01 ‖ left ‖ right`.
#[inline(always)]
pub(crate) fn branch_blocks(left: &Hash, right: &Hash) -> [[u8; 64]; 2] {
    let mut first = [0u8; 64];
    first[0] = 1;
    first[1..33].copy_from_slice(&left.0);
    first[33..64].copy_from_slice(&right.0[..31]);
    let mut second = [0u8; 64];
    second[0] = right.0[31];
    second[1] = 0x80;
    // Message length in bits (65 * 8 = 520), big-endian, in the last 8 bytes.
    second[56..64].copy_from_slice(&520u64.to_be_bytes());
    [first, second]
}

/// The digest of a final SHA-256 state.
#[inline(always)]
pub(crate) fn from_state(state: [u32; 8]) -> Hash {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash(out)
}

/// The hash of a branch: `SHA-256(0x01 ‖ left ‖ right)`.
///
/// The 65-byte message always pads to the same two blocks, so they are laid
/// out directly and fed to the compression function.
#[inline]
pub fn hash_branch(left: &Hash, right: &Hash) -> Hash {
    let [first, second] = branch_blocks(left, right);
    let mut state = IV;
    sha2::compress256(&mut state, &[first.into(), second.into()]);
    from_state(state)
}

/// The hash of a node's parent, given the node, its sibling, and whether
/// the node is the right child.
#[inline]
pub(crate) fn hash_with_sibling(node: &Hash, sibling: &Hash, node_is_right: bool) -> Hash {
    if node_is_right {
        hash_branch(sibling, node)
    } else {
        hash_branch(node, sibling)
    }
}

/// The root of an empty sparse subtree of the given height: `E(0) =
/// hash_leaf("")`, `E(h) = hash_branch(E(h-1), E(h-1))`, for heights 0..=256.
pub fn empty_subtree(height: usize) -> &'static Hash {
    static TABLE: OnceLock<Vec<Hash>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = Vec::with_capacity(257);
        table.push(hash_leaf(&[]));
        for h in 1..=256 {
            let below = table[h - 1];
            table.push(hash_branch(&below, &below));
        }
        table
    });
    &table[height.min(256)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_errors() {
        let h = Hash::of(b"hello");
        let text = h.to_string();
        assert_eq!(
            text,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(text.parse::<Hash>(), Ok(h));
        assert_eq!(
            "sha256".parse::<Hash>(),
            Err(HashParseError::MissingAlgorithm)
        );
        assert_eq!(
            "sha512:00".parse::<Hash>(),
            Err(HashParseError::Algorithm("sha512".into()))
        );
        assert_eq!("sha256:abc".parse::<Hash>(), Err(HashParseError::Length(3)));
        assert_eq!(
            text.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Hash>(),
            Err(HashParseError::Character('C'))
        );
        assert_eq!(
            Hash::try_from(&[0u8; 31][..]),
            Err(HashParseError::ByteLength(31))
        );
    }

    #[test]
    fn branch_fast_path_matches_plain_sha256() {
        let l = Hash::of(b"left");
        let r = Hash::of(b"right");
        let mut msg = vec![1u8];
        msg.extend_from_slice(l.as_bytes());
        msg.extend_from_slice(r.as_bytes());
        assert_eq!(hash_branch(&l, &r), Hash::of(&msg));
    }

    #[test]
    fn bits_and_prefixes() {
        let mut a = [0u8; 32];
        a[0] = 0b1010_0000;
        let a = Hash::from_bytes(a);
        assert!(a.bit(0) && !a.bit(1) && a.bit(2) && !a.bit(255));
        let mut b = *a.as_bytes();
        b[1] = 0b0001_0000;
        assert_eq!(a.common_prefix_bits(&Hash::from_bytes(b)), 11);
        assert_eq!(a.common_prefix_bits(&a), 256);
    }

    #[test]
    fn empty_subtrees() {
        assert_eq!(*empty_subtree(0), hash_leaf(&[]));
        let e1 = hash_branch(empty_subtree(0), empty_subtree(0));
        assert_eq!(*empty_subtree(1), e1);
    }
}
