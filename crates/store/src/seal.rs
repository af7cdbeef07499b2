//! Custodial keys sealed at rest: AES-256-GCM under a key-encryption key
//! that is not in the database (the `CAIRN_KEY_ENCRYPTION_KEY` the
//! operator gives, or a `custodial.key` file beside it), with the
//! account's name as associated data, so a sealed key copied to another
//! account's row does not open. A copy or backup of the database alone
//! gives no usable key.

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use cairn_registry::StoreError;

/// How a sealed value starts.
pub const PREFIX: &str = "sealed:v1:";

/// A key-encryption key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

impl Sealer {
    /// A sealer of 32 key bytes.
    pub fn new(bytes: &[u8; 32]) -> Sealer {
        // AES-256 takes any 32 bytes.
        let key = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!());
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// A key from its text: 64 hex digits, or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Sealer, String> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or("it is neither hex nor base64")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("it is {} bytes, not 32", b.len()))?;
        Ok(Sealer::new(&bytes))
    }

    /// A fresh random key, as 64 hex digits.
    pub fn generate() -> Result<String, StoreError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Backend("no randomness for a new key".into()))?;
        Ok(hex::encode(bytes))
    }

    /// Seals `secret` for `account`.
    pub fn seal(&self, account: &str, secret: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Backend("no randomness for a nonce".into()))?;
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(account.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| StoreError::Backend("cannot seal a custodial key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens what [`Sealer::seal`] sealed for `account`.
    pub fn open(&self, account: &str, stored: &str) -> Result<String, StoreError> {
        let wrong = || {
            StoreError::Corrupt(format!(
                "the custodial key of account `{account}` does not open with this key-encryption \
                 key (is it the one this registry was started with?)"
            ))
        };
        let encoded = stored.strip_prefix(PREFIX).ok_or_else(wrong)?;
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN {
            return Err(wrong());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| wrong())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(account.as_bytes()), &mut sealed)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

/// The account `name` with its stored custodial key (sealed, opened with
/// `sealer`; or plaintext, as an earlier Cairn stored it).
pub fn account(
    sealer: Option<&Sealer>,
    name: String,
    stored: String,
) -> Result<cairn_registry::oci::Account, StoreError> {
    let text = if is_sealed(&stored) {
        let sealer = sealer.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the custodial key of account `{name}` is sealed, and no key-encryption key \
                 was given"
            ))
        })?;
        sealer.open(&name, &stored)?
    } else {
        stored
    };
    let custodial_key = cairn_protocol::PrivateKey::decode(&text)
        .map_err(|e| StoreError::Corrupt(format!("custodial key of account `{name}`: {e}")))?;
    Ok(cairn_registry::oci::Account {
        name,
        custodial_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_key_and_account() {
        let sealer = Sealer::parse(&Sealer::generate().expect("key")).expect("parse");
        let sealed = sealer.seal("alice", "secret key text").expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            sealer.open("alice", &sealed).expect("open"),
            "secret key text"
        );
        assert!(sealer.open("bob", &sealed).is_err());
        let other = Sealer::new(&[7; 32]);
        assert!(other.open("alice", &sealed).is_err());
        // Two seals of the same key differ (fresh nonces).
        assert_ne!(
            sealed,
            sealer.seal("alice", "secret key text").expect("seal")
        );
    }

    #[test]
    fn key_text_is_hex_or_base64_of_32_bytes() {
        assert!(Sealer::parse(&"ab".repeat(32)).is_ok());
        assert!(
            Sealer::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 32])).is_ok()
        );
        assert!(Sealer::parse("abcd").is_err());
        assert!(Sealer::parse("not a key").is_err());
    }
}
