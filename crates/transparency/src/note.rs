//! The C2SP formats a transparency log speaks beside Warg's: signed notes
//! (`c2sp.org/signed-note`), checkpoints (`c2sp.org/tlog-checkpoint`) and
//! timestamped Ed25519 cosignatures (`c2sp.org/tlog-cosignature`). Pure:
//! a cosignature's time is passed in.
//!
//! A note is text ending in a newline, a blank line, then one line per
//! signature: an em dash, a space, the key's name, a space, and the base64
//! of the key id (four bytes, big-endian) followed by the signature. A key
//! id is the first four bytes of SHA-256(name ‖ `\n` ‖ type ‖ public key).
//! Only Ed25519 keys are known here: note signatures (type
//! [`ED25519`]) and cosignatures (type [`COSIGNATURE`], over
//! `cosignature/v1\ntime <t>\n` and the checkpoint text, the signature
//! prefixed by `t` as eight big-endian bytes).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519 as RING_ED25519};
use thiserror::Error;

use crate::hash::Hash;

/// The signature type of Ed25519 note signatures.
pub const ED25519: u8 = 0x01;
/// The signature type of timestamped Ed25519 checkpoint cosignatures.
pub const COSIGNATURE: u8 = 0x04;

/// The largest note parsed, in bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 16;
/// The most signature lines a note may carry (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

const DASH: &str = "\u{2014} ";
const PRIVATE: &str = "PRIVATE+KEY+";

/// Why a note, key or checkpoint was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NoteError {
    /// The note's bytes break the format.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A key name is empty or holds a space or `+`.
    #[error("bad key name `{0}`: it must be non-empty, without spaces or `+`")]
    KeyName(String),
    /// A key's text does not parse, or its id does not match it.
    #[error("malformed key: {0}")]
    Key(&'static str),
    /// A known key's signature does not verify.
    #[error("the signature of `{0}` does not verify")]
    BadSignature(String),
    /// No known key signed the note.
    #[error("no known key signed the note")]
    Unverified,
    /// The note's text is not a checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
}

/// A key id: the first four bytes of SHA-256(name ‖ `\n` ‖ type ‖ key).
pub fn key_id(name: &str, kind: u8, public: &[u8]) -> u32 {
    let mut input = Vec::with_capacity(name.len() + 2 + public.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(kind);
    input.extend_from_slice(public);
    let digest = Hash::of(&input);
    let [a, b, c, d, ..] = *digest.as_bytes();
    u32::from_be_bytes([a, b, c, d])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::KeyName(name.to_owned()));
    }
    Ok(())
}

/// The message a cosignature of `text` at `time` signs.
fn cosigned_message(text: &str, time: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
}

/// A public key that verifies note signatures or cosignatures, in the
/// verifier-key text form `<name>+<hex id>+<base64(type ‖ key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    kind: u8,
    public: [u8; 32],
}

impl Verifier {
    /// The verifier of the Ed25519 key `public` named `name`, for
    /// signatures of `kind` ([`ED25519`] or [`COSIGNATURE`]).
    pub fn new(name: &str, kind: u8, public: [u8; 32]) -> Result<Verifier, NoteError> {
        check_name(name)?;
        if kind != ED25519 && kind != COSIGNATURE {
            return Err(NoteError::Key(
                "only Ed25519 signatures and cosignatures are known",
            ));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id: key_id(name, kind, &public),
            kind,
            public,
        })
    }

    /// Parses a verifier key; its id must be the one its name and key make.
    pub fn parse(text: &str) -> Result<Verifier, NoteError> {
        // Base64 may hold `+`: the key is all after the second one.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key(
                "a verifier key is <name>+<hex id>+<base64 key>",
            ));
        };
        let id = u32::from_str_radix(id, 16)
            .ok()
            .filter(|_| id.len() == 8)
            .ok_or(NoteError::Key("the key id is not 8 hex digits"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Key("the key is not base64"))?;
        let (&kind, public) = key
            .split_first()
            .ok_or(NoteError::Key("the key is empty"))?;
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 key is 32 bytes"))?;
        let verifier = Verifier::new(name, kind, public)?;
        if verifier.id != id {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The signature type.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The Ed25519 public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// Whether `signature` (the bytes after the key id) is this key's over
    /// `text`; for a cosignature, also the time it claims.
    fn check(&self, text: &str, signature: &[u8]) -> Option<Option<u64>> {
        let key = UnparsedPublicKey::new(&RING_ED25519, self.public);
        match self.kind {
            ED25519 => key.verify(text.as_bytes(), signature).ok().map(|()| None),
            _ => {
                let (time, signature) = signature.split_first_chunk::<8>()?;
                let time = u64::from_be_bytes(*time);
                key.verify(&cosigned_message(text, time), signature)
                    .ok()
                    .map(|()| Some(time))
            }
        }
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(self.kind);
        key.extend_from_slice(&self.public);
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(key))
    }
}

/// An Ed25519 private key that signs notes ([`ED25519`]) or cosigns
/// checkpoints ([`COSIGNATURE`]). Its text form is
/// `PRIVATE+KEY+<name>+<hex id>+<base64(type ‖ seed)>`.
pub struct Signer {
    verifier: Verifier,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl Signer {
    /// The key of the 32-byte Ed25519 `seed`, named `name`, for `kind`.
    pub fn from_seed(name: &str, kind: u8, seed: [u8; 32]) -> Result<Signer, NoteError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::Key("not an Ed25519 seed"))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 key is 32 bytes"))?;
        Ok(Signer {
            verifier: Verifier::new(name, kind, public)?,
            seed,
            pair,
        })
    }

    /// Parses the text form ([`Signer::encode`]).
    pub fn parse(text: &str) -> Result<Signer, NoteError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE)
            .ok_or(NoteError::Key("a private key starts with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key(
                "a private key is PRIVATE+KEY+<name>+<hex id>+<base64 key>",
            ));
        };
        let key = STANDARD
            .decode(key)
            .map_err(|_| NoteError::Key("the key is not base64"))?;
        let (&kind, seed) = key
            .split_first()
            .ok_or(NoteError::Key("the key is empty"))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::Key("an Ed25519 seed is 32 bytes"))?;
        let signer = Signer::from_seed(name, kind, seed)?;
        if u32::from_str_radix(id, 16).ok() != Some(signer.verifier.id) || id.len() != 8 {
            return Err(NoteError::Key("the key id does not match the name and key"));
        }
        Ok(signer)
    }

    /// The text form, to keep in a private file.
    pub fn encode(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(self.verifier.kind);
        key.extend_from_slice(&self.seed);
        format!(
            "{PRIVATE}{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.id,
            STANDARD.encode(key)
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs `text` (a note signature; [`COSIGNATURE`] keys sign at time 0,
    /// use [`Signer::cosign`]).
    pub fn sign(&self, text: &str) -> NoteSignature {
        match self.verifier.kind {
            ED25519 => self.signature(self.pair.sign(text.as_bytes()).as_ref().to_vec()),
            _ => self.cosign(text, 0),
        }
    }

    /// Cosigns the checkpoint `text` at `time` (seconds since the epoch).
    pub fn cosign(&self, text: &str, time: u64) -> NoteSignature {
        let mut bytes = time.to_be_bytes().to_vec();
        bytes.extend_from_slice(self.pair.sign(&cosigned_message(text, time)).as_ref());
        self.signature(bytes)
    }

    fn signature(&self, bytes: Vec<u8>) -> NoteSignature {
        NoteSignature {
            name: self.verifier.name.clone(),
            id: self.verifier.id,
            bytes,
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.verifier)
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key's name.
    pub name: String,
    /// The key id.
    pub id: u32,
    /// The signature (for a cosignature: the time, then the signature).
    pub bytes: Vec<u8>,
}

impl std::fmt::Display for NoteSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = self.id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.bytes);
        writeln!(f, "{DASH}{} {}", self.name, STANDARD.encode(bytes))
    }
}

/// A signed note: text and signatures (verify before trusting the text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// The signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

/// What verifying a note found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The known keys whose signatures verified, with the time each
    /// cosignature claims (`None` for note signatures).
    pub by: Vec<(Verifier, Option<u64>)>,
}

impl Note {
    /// A note of `text` (which must end in a newline) with no signature yet.
    pub fn new(text: impl Into<String>) -> Result<Note, NoteError> {
        let text = text.into();
        check_text(&text)?;
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note, within [`MAX_NOTE_BYTES`] and
    /// [`MAX_SIGNATURES`].
    pub fn parse(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("the note is too large"));
        }
        let note = std::str::from_utf8(bytes)
            .map_err(|_| NoteError::Malformed("the note is not UTF-8"))?;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("the note holds a control character"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        check_text(text)?;
        let signatures = signatures
            .strip_suffix('\n')
            .ok_or(NoteError::Malformed("the last signature line does not end"))?;
        let mut parsed = Vec::new();
        for line in signatures.split('\n') {
            if parsed.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed("too many signatures"));
            }
            let line = line.strip_prefix(DASH).ok_or(NoteError::Malformed(
                "a signature line starts with an em dash",
            ))?;
            let (name, signature) = line.split_once(' ').ok_or(NoteError::Malformed(
                "a signature line is a name and a signature",
            ))?;
            check_name(name)?;
            let bytes = STANDARD
                .decode(signature)
                .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
            let (id, bytes) = bytes.split_first_chunk::<4>().ok_or(NoteError::Malformed(
                "a signature is shorter than its key id",
            ))?;
            parsed.push(NoteSignature {
                name: name.to_owned(),
                id: u32::from_be_bytes(*id),
                bytes: bytes.to_vec(),
            });
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: parsed,
        })
    }

    /// Verifies the signatures of the `known` keys: every one there must
    /// verify, at least one must be there; others are ignored.
    pub fn verify(&self, known: &[Verifier]) -> Result<Verified, NoteError> {
        let mut by: Vec<(Verifier, Option<u64>)> = Vec::new();
        for signature in &self.signatures {
            let Some(key) = known
                .iter()
                .find(|k| k.name == signature.name && k.id == signature.id)
            else {
                continue;
            };
            let time = key
                .check(&self.text, &signature.bytes)
                .ok_or_else(|| NoteError::BadSignature(key.name.clone()))?;
            if by.iter().any(|(k, _)| k == key) {
                return Err(NoteError::Malformed("a key signed twice"));
            }
            by.push((key.clone(), time));
        }
        if by.is_empty() {
            return Err(NoteError::Unverified);
        }
        Ok(Verified { by })
    }
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.text)?;
        for signature in &self.signatures {
            write!(f, "{signature}")?;
        }
        Ok(())
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end in a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("the text holds a control character"));
    }
    Ok(())
}

/// A checkpoint's text: the log's origin, its size and its RFC 6962 root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (by convention a schema-less URL).
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The root hash at that size.
    pub root: Hash,
    /// Extension lines (opaque; not recommended).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.as_bytes())
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a note text as a checkpoint.
    pub fn parse(text: &str) -> Result<Checkpoint, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(NoteError::Checkpoint("the text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::Checkpoint("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(NoteError::Checkpoint("the origin is empty"));
        }
        let valid_size = size == "0"
            || (!size.is_empty()
                && !size.starts_with('0')
                && size.bytes().all(|b| b.is_ascii_digit()));
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| valid_size)
            .ok_or(NoteError::Checkpoint("the size is not a decimal number"))?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .map(Hash::from_bytes)
            .ok_or(NoteError::Checkpoint("the root is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(NoteError::Checkpoint("an extension line is empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier key and note of the signed-note specification's example.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn the_specification_example_verifies() {
        let key = Verifier::parse(SPEC_VKEY).expect("vkey");
        assert_eq!(key.to_string(), SPEC_VKEY);
        let note = Note::parse(SPEC_NOTE.as_bytes()).expect("note");
        assert_eq!(note.text, "This is an example message.\n");
        assert_eq!(note.to_string(), SPEC_NOTE);
        let verified = note.verify(std::slice::from_ref(&key)).expect("verifies");
        assert_eq!(verified.by, vec![(key.clone(), None)]);
        let mut changed = note.clone();
        changed.text = "This is another message.\n".into();
        assert_eq!(
            changed.verify(&[key]),
            Err(NoteError::BadSignature("example.com/foo".into()))
        );
    }

    #[test]
    fn signed_and_cosigned_checkpoints_round_trip() {
        let log = Signer::from_seed("example.com/log", ED25519, [7; 32]).expect("key");
        let witness = Signer::from_seed("example.com/witness", COSIGNATURE, [9; 32]).expect("key");
        let checkpoint = Checkpoint {
            origin: "example.com/log".into(),
            size: 20852163,
            root: Hash::of(b"root"),
            extensions: Vec::new(),
        };
        let text = checkpoint.text();
        assert_eq!(Checkpoint::parse(&text), Ok(checkpoint));
        let mut note = Note::new(text.clone()).expect("text");
        note.signatures.push(log.sign(&text));
        note.signatures.push(witness.cosign(&text, 1_700_000_000));
        let parsed = Note::parse(note.to_string().as_bytes()).expect("parses");
        assert_eq!(parsed, note);
        let verified = parsed
            .verify(&[log.verifier().clone(), witness.verifier().clone()])
            .expect("verifies");
        assert_eq!(verified.by[1].1, Some(1_700_000_000));
        // Unknown keys are ignored; no known key at all is refused.
        let other = Signer::from_seed("example.com/other", ED25519, [1; 32]).expect("key");
        assert_eq!(
            parsed.verify(&[other.verifier().clone()]),
            Err(NoteError::Unverified)
        );
        // Keys round-trip through their text forms.
        let again = Signer::parse(&log.encode()).expect("private key");
        assert_eq!(again.verifier(), log.verifier());
        assert_eq!(
            Verifier::parse(&witness.verifier().to_string()).as_ref(),
            Ok(witness.verifier())
        );
    }

    #[test]
    fn malformed_notes_and_checkpoints_are_refused() {
        for bad in [
            "no blank line\n\u{2014} k AAAA\n",
            "text\n\n\u{2014} k AAAA",
            "text\n\n- k AAAA\n",
            "text\n\n\u{2014} k !!!!\n",
            "text\n\n\u{2014} k AAA=\n",
            "tab\there\n\n\u{2014} k AAAAAA==\n",
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let many = format!(
            "t\n\n{}",
            "\u{2014} k AAAAAA==\n".repeat(MAX_SIGNATURES + 1)
        );
        assert!(Note::parse(many.as_bytes()).is_err());
        for bad in [
            "o\n01\nAAAA\n",
            "o\n1\n",
            "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAA\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Verifier::parse(
            "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
        )
        .is_err());
        assert!(
            Verifier::parse("bad name+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
                .is_err()
        );
    }
}
