//! Signed envelopes around records, and the errors of reading them.

use std::fmt;

use prost::Message;
use thiserror::Error;

use crate::ids::{RecordId, UnsupportedHashAlgorithm};
use crate::keys::{BadSignature, KeyId, KeyParseError, PrivateKey, PublicKey, Signature};
use crate::{proto, Hash, HashParseError};

/// A kind of record that lives in a log (package or operator records).
pub trait Record: Sized + Clone {
    /// Prepended (with `:`) to the content bytes before signing.
    const SIGNATURE_PREFIX: &'static [u8];

    /// Encodes the record as protobuf content bytes.
    fn encode(&self) -> Vec<u8>;

    /// Decodes content bytes.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;

    /// The id of a record with these content bytes.
    fn record_id(content_bytes: &[u8]) -> RecordId;
}

/// Why an entry of a record could not be read.
#[derive(Debug, Error)]
pub enum EntryError {
    /// The entry has none of the known kinds.
    #[error("the entry has no contents (or an unknown kind)")]
    Empty,
    /// A hash algorithm other than `sha256`.
    #[error(transparent)]
    HashAlgorithm(#[from] UnsupportedHashAlgorithm),
    /// A public key that does not parse.
    #[error("invalid public key: {0}")]
    Key(#[from] KeyParseError),
    /// A key id that is not `sha256:<hex>`.
    #[error("invalid key id: {0}")]
    KeyId(HashParseError),
    /// A permission number that is unspecified or unknown.
    #[error("invalid permission value {0}")]
    Permission(i32),
    /// A version that is not semver.
    #[error("invalid version `{text}`: {error}")]
    Version {
        /// The text found.
        text: String,
        /// What semver said.
        error: semver::Error,
    },
    /// A content digest that is not `sha256:<64 hex>`.
    #[error("invalid content digest: {0}")]
    ContentHash(HashParseError),
    /// A namespace or registry string that is not valid UTF-8 was caught by protobuf;
    /// this covers other malformed text fields.
    #[error("invalid {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Why record or envelope bytes could not be read.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Not valid protobuf for the message.
    #[error("malformed protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The record carries no timestamp.
    #[error("the record has no timestamp")]
    MissingTimestamp,
    /// `prev` is not a valid record id.
    #[error("invalid `prev` record id: {0}")]
    Prev(HashParseError),
    /// One entry is malformed.
    #[error("entry {index}: {error}")]
    Entry {
        /// Position of the entry in the record.
        index: usize,
        /// What is wrong with it.
        error: EntryError,
    },
    /// The envelope's key id is not `sha256:<hex>`.
    #[error("invalid envelope key id `{text}`: {error}")]
    KeyId {
        /// The text found.
        text: String,
        /// Why it did not parse.
        error: HashParseError,
    },
    /// The envelope's signature text does not parse.
    #[error("invalid envelope signature: {0}")]
    Signature(KeyParseError),
    /// A field of one of Cairn's own records is malformed.
    #[error("{0}")]
    Field(String),
}

/// The bytes a signature covers: `PREFIX:content`.
pub fn signing_message(prefix: &[u8], content_bytes: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(prefix.len() + 1 + content_bytes.len());
    message.extend_from_slice(prefix);
    message.push(b':');
    message.extend_from_slice(content_bytes);
    message
}

/// A record with the exact bytes it was signed and hashed as, the id of the
/// signing key and the signature. The content bytes are kept as received, so
/// ids and signatures never depend on re-encoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope<R> {
    contents: R,
    content_bytes: Vec<u8>,
    key_id: KeyId,
    signature: Signature,
}

impl<R: Record> Envelope<R> {
    /// Encodes `contents` and signs the bytes with `key`.
    pub fn sign(key: &PrivateKey, contents: R) -> Self {
        let content_bytes = contents.encode();
        let signature = key.sign(&signing_message(R::SIGNATURE_PREFIX, &content_bytes));
        Envelope {
            contents,
            content_bytes,
            key_id: key.public_key().id(),
            signature,
        }
    }

    /// Builds an envelope from its three wire fields (as found in the
    /// protobuf `Envelope` or the JSON API body), decoding the contents.
    pub fn from_parts(
        content_bytes: Vec<u8>,
        key_id: &str,
        signature: &str,
    ) -> Result<Self, DecodeError> {
        let contents = R::decode(&content_bytes)?;
        let key_id = key_id.parse().map_err(|error| DecodeError::KeyId {
            text: key_id.to_owned(),
            error,
        })?;
        let signature = signature.parse().map_err(DecodeError::Signature)?;
        Ok(Envelope {
            contents,
            content_bytes,
            key_id,
            signature,
        })
    }

    /// Decodes a protobuf `Envelope`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let envelope = proto::Envelope::decode(bytes)?;
        Self::from_parts(envelope.contents, &envelope.key_id, &envelope.signature)
    }

    /// Encodes as a protobuf `Envelope`.
    pub fn encode(&self) -> Vec<u8> {
        proto::Envelope {
            contents: self.content_bytes.clone(),
            key_id: self.key_id.to_string(),
            signature: self.signature.to_string(),
        }
        .encode_to_vec()
    }

    /// The decoded record.
    pub fn contents(&self) -> &R {
        &self.contents
    }

    /// The exact signed bytes.
    pub fn content_bytes(&self) -> &[u8] {
        &self.content_bytes
    }

    /// The id of the key that signed.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The signature over `PREFIX:content_bytes`.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// This record's id.
    pub fn record_id(&self) -> RecordId {
        R::record_id(&self.content_bytes)
    }

    /// Checks the signature with `key`.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), BadSignature> {
        key.verify(
            &signing_message(R::SIGNATURE_PREFIX, &self.content_bytes),
            &self.signature,
        )
    }

    /// Checks the signature with `key` ahead of validation (on another
    /// thread, say) and returns proof of it that validation accepts in
    /// place of checking again.
    pub fn check_signature(&self, key: &PublicKey) -> Result<SignatureChecked, BadSignature> {
        if key.id() != self.key_id {
            return Err(BadSignature);
        }
        self.verify_signature(key)?;
        Ok(SignatureChecked {
            key_id: self.key_id,
            signed: Hash::of(&self.content_bytes),
            signature: self.signature.clone(),
        })
    }

    /// Whether `checked` proves this envelope's signature by `key`.
    pub(crate) fn is_checked(&self, key: &PublicKey, checked: Option<&SignatureChecked>) -> bool {
        checked.is_some_and(|c| {
            c.key_id == self.key_id
                && key.id() == c.key_id
                && c.signature == self.signature
                && c.signed == Hash::of(&self.content_bytes)
        })
    }
}

/// Proof that an envelope's signature was checked with the key whose id it
/// names. Only [`Envelope::check_signature`] makes one; key ids are digests
/// of the keys, so a match on the id is a match on the key.
#[derive(Clone, Debug)]
pub struct SignatureChecked {
    key_id: KeyId,
    signed: Hash,
    signature: Signature,
}

impl<R: fmt::Debug> fmt::Debug for Envelope<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("contents", &self.contents)
            .field("key_id", &self.key_id)
            .field("signature", &self.signature)
            .finish()
    }
}
