//! How a record's signed parts are kept on disk, for every SQL backend:
//! the same bytes, in fewer of them. A record carries its digests as text
//! (`sha256:` and 64 hex digits: 71 bytes for 32), its key id likewise and
//! its signature as `ecdsa-p256:` and base64 of DER; stored as they are,
//! they are most of a record's row. Each stored form starts with a tag
//! byte saying how it is encoded, and decodes to exactly the text or bytes
//! that were signed: an encoder that could not reproduce its input keeps
//! the input as it is (tag [`RAW`]), so any input round-trips.
//!
//! - Content (the signed protobuf bytes): [`HASHES`] then pieces, each a
//!   varint length, that many bytes as they are, and (unless it is the
//!   last piece) the 32 bytes of a digest that stood there as `sha256:`
//!   and 64 lowercase hex digits. A release record's `prev` and content
//!   digest take 33 bytes each instead of 71.
//! - Key ids: [`DIGEST`] and the 32 bytes of `sha256:<hex>`.
//! - Signatures: [`P256`] and the 64 bytes of `r ‖ s`, when the DER is the
//!   one `r` and `s` encode to (strict DER always is) and the base64 is the
//!   padded standard one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_registry::StoreError;

/// Stored as given.
pub const RAW: u8 = 0;
/// Content with digests as 32 bytes each.
pub const HASHES: u8 = 1;
/// A key id's digest, 32 bytes.
pub const DIGEST: u8 = 2;
/// An ECDSA P-256 signature as `r ‖ s`, 64 bytes.
pub const P256: u8 = 3;

const DIGEST_PREFIX: &[u8] = b"sha256:";
const DIGEST_TEXT: usize = 7 + 64;
const SIGNATURE_PREFIX: &str = "ecdsa-p256:";

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("stored {what} does not decode"))
}

/// The value of a lowercase hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The 32 bytes of `sha256:<64 lowercase hex>` at the start of `text`.
fn digest_at(text: &[u8]) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(DIGEST_PREFIX)?.get(..64)?;
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        n |= usize::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// A record's content bytes as stored.
pub fn encode_content(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    out.push(HASHES);
    let mut literal = 0;
    let mut at = 0;
    let mut found = false;
    while let Some(offset) = find(&bytes[at..], DIGEST_PREFIX) {
        let start = at + offset;
        match digest_at(&bytes[start..]) {
            Some(digest) => {
                push_varint(&mut out, start - literal);
                out.extend_from_slice(&bytes[literal..start]);
                out.extend_from_slice(&digest);
                literal = start + DIGEST_TEXT;
                at = literal;
                found = true;
            }
            None => at = start + 1,
        }
    }
    if !found {
        let mut raw = Vec::with_capacity(bytes.len() + 1);
        raw.push(RAW);
        raw.extend_from_slice(bytes);
        return raw;
    }
    push_varint(&mut out, bytes.len() - literal);
    out.extend_from_slice(&bytes[literal..]);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The content bytes [`encode_content`] stored.
pub fn decode_content(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let (&tag, mut rest) = stored.split_first().ok_or_else(|| corrupt("content"))?;
    match tag {
        RAW => Ok(rest.to_vec()),
        HASHES => {
            let mut out = Vec::with_capacity(rest.len() + 128);
            loop {
                let len = read_varint(&mut rest).ok_or_else(|| corrupt("content"))?;
                let (piece, after) = rest
                    .split_at_checked(len)
                    .ok_or_else(|| corrupt("content"))?;
                out.extend_from_slice(piece);
                rest = after;
                let Some((digest, after)) = rest.split_first_chunk::<32>() else {
                    return if rest.is_empty() {
                        Ok(out)
                    } else {
                        Err(corrupt("content"))
                    };
                };
                out.extend_from_slice(DIGEST_PREFIX);
                out.extend_from_slice(hex::encode(digest).as_bytes());
                rest = after;
            }
        }
        _ => Err(corrupt("content")),
    }
}

/// A key id (`sha256:<hex>`) as stored.
pub fn encode_key_id(text: &str) -> Vec<u8> {
    match digest_at(text.as_bytes()) {
        Some(digest) if text.len() == DIGEST_TEXT => {
            let mut out = Vec::with_capacity(33);
            out.push(DIGEST);
            out.extend_from_slice(&digest);
            out
        }
        _ => raw(text),
    }
}

/// The key id [`encode_key_id`] stored.
pub fn decode_key_id(stored: &[u8]) -> Result<String, StoreError> {
    match stored.split_first() {
        Some((&DIGEST, digest)) if digest.len() == 32 => {
            Ok(format!("sha256:{}", hex::encode(digest)))
        }
        Some((&RAW, text)) => text_of(text, "key id"),
        _ => Err(corrupt("key id")),
    }
}

/// A signature (`ecdsa-p256:<base64 DER>`) as stored.
pub fn encode_signature(text: &str) -> Vec<u8> {
    let scalars = text
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .and_then(|der| scalars_of(&der).filter(|rs| der_of(rs) == der));
    match scalars {
        Some(rs) => {
            let mut out = Vec::with_capacity(65);
            out.push(P256);
            out.extend_from_slice(&rs);
            out
        }
        None => raw(text),
    }
}

/// The signature [`encode_signature`] stored.
pub fn decode_signature(stored: &[u8]) -> Result<String, StoreError> {
    match stored.split_first() {
        Some((&P256, rs)) => {
            let rs: &[u8; 64] = rs.try_into().map_err(|_| corrupt("signature"))?;
            Ok(format!("{SIGNATURE_PREFIX}{}", STANDARD.encode(der_of(rs))))
        }
        Some((&RAW, text)) => text_of(text, "signature"),
        _ => Err(corrupt("signature")),
    }
}

fn raw(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    out.push(RAW);
    out.extend_from_slice(text.as_bytes());
    out
}

fn text_of(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(what))
}

/// `r ‖ s` (32 bytes each) of a DER `SEQUENCE { INTEGER r, INTEGER s }`
/// with short lengths and integers of at most 32 significant bytes;
/// whether it is the canonical encoding is checked by the caller.
fn scalars_of(der: &[u8]) -> Option<[u8; 64]> {
    let (&0x30, rest) = der.split_first()? else {
        return None;
    };
    let (&len, mut rest) = rest.split_first()?;
    if usize::from(len) != rest.len() {
        return None;
    }
    let mut out = [0u8; 64];
    for half in out.chunks_exact_mut(32) {
        let (&0x02, after) = rest.split_first()? else {
            return None;
        };
        let (&len, after) = after.split_first()?;
        let (int, after) = after.split_at_checked(usize::from(len))?;
        let int = match int {
            [0, tail @ ..] => tail,
            int => int,
        };
        if int.len() > 32 {
            return None;
        }
        half[32 - int.len()..].copy_from_slice(int);
        rest = after;
    }
    rest.is_empty().then_some(out)
}

/// The strict DER of `r ‖ s`: each integer without leading zero bytes,
/// with one where its first bit is set.
fn der_of(rs: &[u8; 64]) -> Vec<u8> {
    let mut body = Vec::with_capacity(70);
    for half in rs.chunks_exact(32) {
        let start = half.iter().position(|&b| b != 0).unwrap_or(31);
        let int = &half[start..];
        let pad = int[0] & 0x80 != 0;
        body.push(0x02);
        body.push((int.len() + usize::from(pad)) as u8);
        if pad {
            body.push(0);
        }
        body.extend_from_slice(int);
    }
    let mut der = Vec::with_capacity(body.len() + 2);
    der.push(0x30);
    der.push(body.len() as u8);
    der.extend_from_slice(&body);
    der
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_protocol::package::{PackageEntry, PackageRecord};
    use cairn_protocol::{Envelope, Hash, HashAlgorithm, PrivateKey, Timestamp, Version};

    fn release(
        key: &PrivateKey,
        prev: Option<cairn_protocol::RecordId>,
    ) -> Envelope<PackageRecord> {
        Envelope::sign(
            key,
            PackageRecord {
                prev,
                version: 0,
                timestamp: Timestamp::new(1_700_000_000, 5),
                entries: vec![
                    PackageEntry::Init {
                        hash_algorithm: HashAlgorithm::Sha256,
                        key: key.public_key().clone(),
                    },
                    PackageEntry::Release {
                        version: Version::new(1, 2, 3),
                        content: Hash::of(b"module"),
                    },
                ],
            },
        )
    }

    #[test]
    fn records_round_trip_smaller() {
        let key = PrivateKey::generate();
        let first = release(&key, None);
        let second = release(&key, Some(first.record_id()));
        for envelope in [&first, &second] {
            let content = envelope.content_bytes();
            let stored = encode_content(content);
            assert_eq!(decode_content(&stored).expect("decodes"), content);
            assert!(
                stored.len() + 30 < content.len(),
                "{} of {}",
                stored.len(),
                content.len()
            );
            let key_id = envelope.key_id().to_string();
            let stored = encode_key_id(&key_id);
            assert_eq!(stored.len(), 33);
            assert_eq!(decode_key_id(&stored).expect("decodes"), key_id);
            let signature = envelope.signature().to_string();
            let stored = encode_signature(&signature);
            assert_eq!(stored.len(), 65);
            assert_eq!(decode_signature(&stored).expect("decodes"), signature);
        }
    }

    #[test]
    fn anything_else_round_trips_as_it_is() {
        let digest = Hash::of(b"x").to_string();
        let upper = digest.to_uppercase().replace("SHA256", "sha256");
        let contents: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"sha256:".to_vec(),
            b"sha256:sha256:".to_vec(),
            upper.clone().into_bytes(),
            digest.as_bytes()[..70].to_vec(),
            format!("{digest}{digest}").into_bytes(),
            format!("sha256:{digest}x{digest}").into_bytes(),
            (0..=255u8).collect(),
            vec![0x80; 300],
        ];
        for content in contents {
            assert_eq!(
                decode_content(&encode_content(&content)).expect("decodes"),
                content
            );
        }
        for key_id in [
            "",
            "sha256:",
            &upper,
            &digest[..70],
            &format!("{digest}0"),
            "sha512:00",
        ] {
            assert_eq!(
                decode_key_id(&encode_key_id(key_id)).expect("decodes"),
                key_id
            );
        }
        // Not base64, not DER, DER with a needless zero, unpadded base64.
        let key = PrivateKey::generate();
        let good = key.sign(b"m").to_string();
        let der = STANDARD
            .decode(&good["ecdsa-p256:".len()..])
            .expect("base64");
        let mut padded = der.clone();
        padded[1] += 1;
        padded[3] += 1;
        padded.insert(4, 0);
        for signature in [
            "".to_string(),
            "ecdsa-p256:!!".to_string(),
            "ecdsa-p256:AAAA".to_string(),
            format!("ecdsa-p256:{}", STANDARD.encode(&padded)),
            good.trim_end_matches('=').to_string(),
            format!("rsa:{}", &good["ecdsa-p256:".len()..]),
        ] {
            let stored = encode_signature(&signature);
            assert_eq!(decode_signature(&stored).expect("decodes"), signature);
        }
        // Signatures whose integers are short or need a leading zero.
        for rs in [[0u8; 64], [0xff; 64], {
            let mut rs = [0u8; 64];
            rs[31] = 1;
            rs[63] = 0x80;
            rs
        }] {
            let text = format!("ecdsa-p256:{}", STANDARD.encode(der_of(&rs)));
            let stored = encode_signature(&text);
            assert_eq!(stored[0], P256);
            assert_eq!(decode_signature(&stored).expect("decodes"), text);
        }
    }

    #[test]
    fn damaged_forms_are_refused() {
        for stored in [
            &[][..],
            &[9][..],
            &[HASHES][..],
            &[HASHES, 5, 1][..],
            &[HASHES, 0, 1, 2][..],
        ] {
            assert!(decode_content(stored).is_err(), "{stored:?}");
        }
        assert!(decode_key_id(&[DIGEST, 1, 2]).is_err());
        assert!(decode_signature(&[P256; 10]).is_err());
        assert!(decode_signature(&[RAW, 0xff]).is_err());
    }
}
