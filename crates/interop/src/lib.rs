//! Shared fixtures of the differential tests (`tests/`) and the benchmark
//! (`benches/core.rs`) that compare Cairn with the reference Warg crates:
//! the signing keys both sides use, and conversions of hashes between the
//! two; an in-process Cairn server ([`server::TestServer`]) and a blocking
//! HTTP client for it ([`http::Http`]). Nothing
//! outside this crate links the reference crates.

pub mod components;
pub mod docker;
pub mod http;
pub mod postgres;
pub mod publish;
pub mod report;
pub mod s3;
pub mod server;
pub mod storage_suite;
pub mod synthetic;
pub mod tools;
pub mod warg;
pub mod witness;

use cairn_protocol::{Hash, PrivateKey};
use warg_crypto::hash::{AnyHash, HashAlgorithm, Sha256};

/// A fixed pool of signing keys (text form, readable by both sides).
pub fn keys() -> Vec<PrivateKey> {
    [
        "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=",
        "ecdsa-p256:2KV5QqRlZZQTAqbwgFbKbmIGYTcRfbvN2bD43ws9Lnw=",
        "ecdsa-p256:qn6OsHPvVdD2Bm5Rj6nG7aY1Z8tcn8qrYIu8Lcx3b3U=",
    ]
    .iter()
    .map(|text| PrivateKey::decode(text).expect("valid fixture key"))
    .collect()
}

/// A Cairn hash as the reference's dynamic hash (log ids, record ids).
pub fn any_hash(hash: &Hash) -> AnyHash {
    AnyHash::new(HashAlgorithm::Sha256, hash.as_bytes().to_vec())
}

/// A reference sha256 hash as a Cairn hash.
pub fn from_reference(hash: &warg_crypto::hash::Hash<Sha256>) -> Hash {
    Hash::try_from(hash.bytes()).expect("a sha256 digest is 32 bytes")
}
