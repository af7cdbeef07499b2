//! ECDSA P-256 keys and signatures in Warg's text forms, and key ids.
//!
//! Text forms: public keys `ecdsa-p256:<base64 of the compressed SEC1 point>`,
//! private keys `ecdsa-p256:<base64 of the 32-byte scalar>`, signatures
//! `ecdsa-p256:<base64 of the DER signature>`. A key id is the SHA-256 of the
//! public key's canonical text form, written `sha256:<hex>`.
//!
//! Signing uses the RustCrypto `p256` crate (deterministic RFC 6979 nonces);
//! verification uses `ring`, whose P-256 arithmetic is several times faster.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use thiserror::Error;

use crate::Hash;

/// The one signature algorithm Warg v1 defines.
pub const ECDSA_P256: &str = "ecdsa-p256";

/// Why a key or signature text could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyParseError {
    /// No `algorithm:` prefix.
    #[error("expected `ecdsa-p256:<base64>`, found no `:`")]
    MissingAlgorithm,
    /// More than one `:`.
    #[error("expected `ecdsa-p256:<base64>`, found {0} `:`-separated parts")]
    TooManyParts(usize),
    /// An algorithm other than `ecdsa-p256`.
    #[error("unsupported signature algorithm `{0}` (only `ecdsa-p256` is supported)")]
    UnsupportedAlgorithm(String),
    /// The payload is not standard, padded base64.
    #[error("invalid base64: {0}")]
    Base64(String),
    /// The bytes do not form a valid key or signature.
    #[error("the bytes are not a valid P-256 {0}")]
    InvalidBytes(&'static str),
}

fn split_text(text: &str) -> Result<Vec<u8>, KeyParseError> {
    let (algorithm, payload) = text
        .split_once(':')
        .ok_or(KeyParseError::MissingAlgorithm)?;
    if payload.contains(':') {
        return Err(KeyParseError::TooManyParts(text.split(':').count()));
    }
    if algorithm != ECDSA_P256 {
        return Err(KeyParseError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    STANDARD
        .decode(payload)
        .map_err(|err| KeyParseError::Base64(err.to_string()))
}

/// The id of a key: SHA-256 of its canonical text form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(Hash);

impl KeyId {
    /// The underlying digest.
    pub fn digest(&self) -> &Hash {
        &self.0
    }
}

impl From<Hash> for KeyId {
    fn from(hash: Hash) -> Self {
        KeyId(hash)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl FromStr for KeyId {
    type Err = crate::HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(KeyId)
    }
}

/// A P-256 public key.
#[derive(Clone)]
pub struct PublicKey {
    key: p256::ecdsa::VerifyingKey,
    /// Canonical text form, computed once.
    text: String,
    /// Uncompressed SEC1 point, the form `ring` verifies with.
    uncompressed: Vec<u8>,
    id: KeyId,
}

impl PublicKey {
    fn from_verifying_key(key: p256::ecdsa::VerifyingKey) -> Self {
        let compressed = key.to_encoded_point(true);
        let text = format!("{ECDSA_P256}:{}", STANDARD.encode(compressed.as_bytes()));
        let uncompressed = key.to_encoded_point(false).as_bytes().to_vec();
        let id = KeyId(Hash::of(text.as_bytes()));
        PublicKey {
            key,
            text,
            uncompressed,
            id,
        }
    }

    /// This key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Compressed SEC1 bytes.
    pub fn to_sec1_compressed(&self) -> Vec<u8> {
        self.key.to_encoded_point(true).as_bytes().to_vec()
    }

    /// Checks `signature` over `message` (the message is hashed with SHA-256).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), BadSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.uncompressed,
        )
        .verify(message, &signature.der)
        .map_err(|_| BadSignature)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PublicKey {}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.text)
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;

    /// Accepts compressed or uncompressed SEC1 points; the canonical text
    /// form (and so the key id) always uses the compressed point.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = split_text(s)?;
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes)
            .map_err(|_| KeyParseError::InvalidBytes("public key"))?;
        Ok(Self::from_verifying_key(key))
    }
}

/// A signature that did not verify.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the signature does not verify with the given key")]
pub struct BadSignature;

/// A P-256 private key. Its text form is only produced on request
/// ([`PrivateKey::encode`]) and it never appears in `Debug` output.
#[derive(Clone)]
pub struct PrivateKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    /// Generates a new key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_signing_key(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    fn from_signing_key(key: p256::ecdsa::SigningKey) -> Self {
        let public = PublicKey::from_verifying_key(*key.verifying_key());
        PrivateKey { key, public }
    }

    /// Reads `ecdsa-p256:<base64 scalar>`.
    pub fn decode(text: &str) -> Result<Self, KeyParseError> {
        let bytes = split_text(text)?;
        let key = p256::ecdsa::SigningKey::from_slice(&bytes)
            .map_err(|_| KeyParseError::InvalidBytes("private key"))?;
        Ok(Self::from_signing_key(key))
    }

    /// The text form `ecdsa-p256:<base64 scalar>`. Handle with care.
    pub fn encode(&self) -> String {
        format!("{ECDSA_P256}:{}", STANDARD.encode(self.key.to_bytes()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` (hashed with SHA-256).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        Signature {
            der: signature.to_der().as_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public: {})", self.public)
    }
}

/// An ECDSA P-256 signature, DER-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    der: Vec<u8>,
}

impl Signature {
    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ECDSA_P256}:{}", STANDARD.encode(&self.der))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = KeyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let der = split_text(s)?;
        // Strict DER with 0 < r, s < n, as the reference requires.
        p256::ecdsa::Signature::from_der(&der)
            .map_err(|_| KeyParseError::InvalidBytes("DER signature"))?;
        Ok(Signature { der })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_key_texts_round_trip() {
        for text in [
            "ecdsa-p256:A1OfZz5Y9Ny7VKPVwroCTQPAr9tmlI4U/UTYHZHA87AF",
            "ecdsa-p256:A5qc6uBi070EBb4GihGzpx6Cm5+oZnv4dWpBhhuZVagu",
        ] {
            let key: PublicKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
            assert_eq!(key.id().digest(), &Hash::of(text.as_bytes()));
        }
        let private = "ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=";
        assert_eq!(PrivateKey::decode(private).unwrap().encode(), private);
    }

    #[test]
    fn sign_and_verify() {
        let alice = PrivateKey::generate();
        let bob = PrivateKey::generate();
        let signature = alice.sign(b"hello");
        let parsed: Signature = signature.to_string().parse().unwrap();
        alice.public_key().verify(b"hello", &parsed).unwrap();
        assert_eq!(
            alice.public_key().verify(b"hellp", &parsed),
            Err(BadSignature)
        );
        assert_eq!(
            bob.public_key().verify(b"hello", &parsed),
            Err(BadSignature)
        );
    }

    #[test]
    fn uncompressed_keys_get_the_compressed_id() {
        let key = PrivateKey::generate();
        let point = key.key.verifying_key().to_encoded_point(false);
        let text = format!("{ECDSA_P256}:{}", STANDARD.encode(point.as_bytes()));
        let parsed: PublicKey = text.parse().unwrap();
        assert_eq!(parsed.id(), key.public_key().id());
        assert_eq!(parsed.to_string(), key.public_key().to_string());
    }

    #[test]
    fn bad_texts_say_what_is_wrong() {
        assert_eq!(
            "abc".parse::<PublicKey>().unwrap_err(),
            KeyParseError::MissingAlgorithm
        );
        assert_eq!(
            "ed25519:AAAA".parse::<PublicKey>().unwrap_err(),
            KeyParseError::UnsupportedAlgorithm("ed25519".into())
        );
        assert!(matches!(
            "ecdsa-p256:!!".parse::<PublicKey>().unwrap_err(),
            KeyParseError::Base64(_)
        ));
        assert_eq!(
            "ecdsa-p256:AAAA".parse::<PublicKey>().unwrap_err(),
            KeyParseError::InvalidBytes("public key")
        );
        assert_eq!(
            "ecdsa-p256:a:b".parse::<Signature>().unwrap_err(),
            KeyParseError::TooManyParts(3)
        );
        assert_eq!(
            "ecdsa-p256:AAAA".parse::<Signature>().unwrap_err(),
            KeyParseError::InvalidBytes("DER signature")
        );
    }
}
