//! TEMPORARY: stands in for cairn_transparency::Hash until that crate lands.
#![allow(missing_docs)]
use sha2::Digest;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash([u8; 32]);

impl Hash {
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(sha2::Sha256::digest(bytes).into())
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad hash")]
pub struct HashParseError;

impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").ok_or(HashParseError)?;
        if hex.len() != 64 || hex.bytes().any(|c| !matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(HashParseError);
        }
        let mut out = [0u8; 32];
        for i in 0..32 {
            out[i] = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| HashParseError)?;
        }
        Ok(Hash(out))
    }
}

pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut v = vec![0u8];
    v.extend_from_slice(data);
    Hash::of(&v)
}
