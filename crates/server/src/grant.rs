//! Content capabilities: when reads need a token, the content URLs a
//! caller with a token is given carry a short-lived grant, so that clients
//! which fetch content URLs without their token (the reference `warg`
//! client, wkg's Warg backend) can still download what they may read.
//!
//! A grant is `<expiry>.<mac>`: an HMAC-SHA256, under a key made at start
//! and never stored, of the content digest and the expiry. It names one
//! digest and lapses after [`GRANT_SECONDS`]; a restart voids every grant.

use cairn_protocol::Hash;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// How long a grant is good for.
pub(crate) const GRANT_SECONDS: u64 = 600;

/// The key grants are made and checked with.
pub(crate) struct Grants {
    key: hmac::Key,
}

impl Grants {
    /// A fresh key.
    pub(crate) fn new() -> std::io::Result<Grants> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| std::io::Error::other("no randomness for the grant key"))?;
        Ok(Grants {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// A key every replica sharing `secret` derives alike, so a grant one
    /// replica hands out is honoured by the others.
    pub(crate) fn shared(secret: &[u8; 32]) -> Grants {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let tag = hmac::sign(&derive, b"cairn content grant key");
        Grants {
            key: hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref()),
        }
    }

    fn message(digest: &Hash, expires: u64) -> String {
        format!("cairn content grant\n{digest}\n{expires}")
    }

    /// A grant to download `digest`, good from `now` for [`GRANT_SECONDS`].
    pub(crate) fn issue(&self, digest: &Hash, now: u64) -> String {
        let expires = now.saturating_add(GRANT_SECONDS);
        let tag = hmac::sign(&self.key, Self::message(digest, expires).as_bytes());
        format!("{expires}.{}", hex::encode(tag.as_ref()))
    }

    /// Whether `grant` allows downloading `digest` at `now`.
    pub(crate) fn allows(&self, digest: &Hash, grant: &str, now: u64) -> bool {
        let Some((expires, tag)) = grant.split_once('.') else {
            return false;
        };
        let (Ok(expires), Ok(tag)) = (expires.parse::<u64>(), hex::decode(tag)) else {
            return false;
        };
        now <= expires
            && expires <= now.saturating_add(GRANT_SECONDS)
            && hmac::verify(&self.key, Self::message(digest, expires).as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_names_one_digest_and_lapses() {
        let grants = Grants::new().expect("key");
        let a = Hash::of(b"a");
        let b = Hash::of(b"b");
        let grant = grants.issue(&a, 1000);
        assert!(grants.allows(&a, &grant, 1000));
        assert!(grants.allows(&a, &grant, 1000 + GRANT_SECONDS));
        assert!(!grants.allows(&a, &grant, 1001 + GRANT_SECONDS));
        assert!(!grants.allows(&b, &grant, 1000));
        let (expires, tag) = grant.split_once('.').expect("shape");
        let later = format!("{}.{tag}", expires.parse::<u64>().expect("n") + 1);
        assert!(!grants.allows(&a, &later, 1000));
        assert!(!grants.allows(&a, "nonsense", 1000));
        // Another server's (or an earlier run's) grants do not hold.
        let other = Grants::new().expect("key");
        assert!(!other.allows(&a, &grant, 1000));
    }
}
