//! Accounts, API tokens and what they allow. Tokens are random secrets
//! shown once; the store keeps their SHA-256 only.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use sha2::{Digest as _, Sha256};

use crate::cache::Generations;
use crate::clock::Clock;
use crate::oci::Account;
use crate::storage::StoreError;

/// What a token may do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read everything (needed only when anonymous pull is off).
    Pull,
    /// Push to repositories matching a pattern: `<ns>/*` or `<ns>/<name>`
    /// (`*` alone: everywhere). Implies pull.
    Publish(String),
    /// Everything, including managing tokens.
    Admin,
}

/// Why a scope does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    /// Not a scope at all.
    #[error(
        "invalid scope `{0}`: use `pull`, `publish:<namespace>/*`, `publish:<namespace>/<name>` \
         or `admin`"
    )]
    Invalid(String),
    /// `publish:<namespace>` alone, which names no package.
    #[error(
        "scope `publish:{0}` names no package: use `publish:{0}/*` for every package of \
         namespace `{0}`, or `publish:{0}/<name>` for one"
    )]
    Namespace(String),
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Scope, ScopeError> {
        match text {
            "pull" => Ok(Scope::Pull),
            "admin" => Ok(Scope::Admin),
            _ => {
                let pattern = text
                    .strip_prefix("publish:")
                    .ok_or_else(|| ScopeError::Invalid(text.to_owned()))?;
                if !pattern.contains('/')
                    && pattern != "*"
                    && crate::oci::check_repository(pattern).is_ok()
                {
                    return Err(ScopeError::Namespace(pattern.to_owned()));
                }
                let valid = pattern == "*"
                    || pattern
                        .strip_suffix("/*")
                        .map(|ns| crate::oci::check_repository(ns).is_ok() && !ns.contains('/'))
                        .unwrap_or_else(|| crate::oci::check_repository(pattern).is_ok());
                if valid {
                    Ok(Scope::Publish(pattern.to_owned()))
                } else {
                    Err(ScopeError::Invalid(text.to_owned()))
                }
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Pull => f.write_str("pull"),
            Scope::Admin => f.write_str("admin"),
            Scope::Publish(p) => write!(f, "publish:{p}"),
        }
    }
}

impl Scope {
    /// Whether this scope lets its holder push to `repository`.
    pub fn allows_push(&self, repository: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Pull => false,
            Scope::Publish(pattern) => match pattern.strip_suffix('*') {
                Some(prefix) => repository.starts_with(prefix),
                None => pattern == repository,
            },
        }
    }
}

/// A token as stored (its hash is the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// The account it acts for.
    pub account: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Seconds since the epoch after which it is refused.
    pub expires: Option<u64>,
}

impl TokenInfo {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// Whether it may push to `repository`.
    pub fn allows_push(&self, repository: &str) -> bool {
        self.scopes.iter().any(|s| s.allows_push(repository))
    }

    /// Its scopes as text, for messages: `pull, publish:acme/*`.
    pub fn scope_list(&self) -> String {
        self.scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether it may pull (every token may).
    pub fn allows_pull(&self) -> bool {
        !self.scopes.is_empty()
    }

    /// Whether it may manage accounts and tokens.
    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }
}

/// The longest lifetime a token may be given, in seconds: 100 years.
pub const TOKEN_LIFETIME_MAX: u64 = 100 * 365 * 86_400;

/// Why an account name is refused: 1 to 64 letters, digits, `-`, `_` or
/// `.` (it is written into logs, listings and attestation records).
pub fn check_account(account: &str) -> Result<(), String> {
    let ok = !account.is_empty()
        && account.len() <= 64
        && account
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account `{account}` is not a valid name: 1 to 64 letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// The hash under which a token is stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh token: `cairn_` and 256 random bits in hex.
pub fn new_token() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("cairn_{}", hex::encode(bytes))
}

/// A stored token as its operator sees it: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    /// The hash it is stored under.
    pub hash: [u8; 32],
    /// What it allows.
    pub info: TokenInfo,
    /// The note given when it was made.
    pub note: String,
    /// When it was made (seconds since the epoch).
    pub created: u64,
}

impl TokenEntry {
    /// The id an operator names it by: the first 16 hex digits of its hash.
    pub fn id(&self) -> String {
        hex::encode(&self.hash[..8])
    }
}

/// Accounts and tokens.
pub trait AuthStore: Send + Sync + 'static {
    /// The account, creating it (with a new custodial key) if needed.
    fn ensure_account(&self, name: &str) -> Result<Account, StoreError>;
    /// An account by name.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Whether any account exists.
    fn has_accounts(&self) -> Result<bool, StoreError>;
    /// Stores a token by its hash.
    fn add_token(&self, hash: &[u8; 32], info: &TokenInfo, note: &str) -> Result<(), StoreError>;
    /// A token by its hash.
    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError>;
    /// Removes tokens that expired before `now`; returns how many.
    fn purge_tokens(&self, now: u64) -> Result<usize, StoreError>;
    /// Every stored token, oldest first.
    fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError>;
    /// Removes the token stored under `hash`; whether there was one.
    fn revoke_token(&self, hash: &[u8; 32]) -> Result<bool, StoreError>;
}

/// How long a token found in the store is trusted from memory before it
/// is looked up again, in seconds.
const TOKEN_CACHE_SECONDS: u64 = 30;

/// Token lookups with a bounded cache in front of the [`AuthStore`]: a
/// token presented on every request costs a store read once per
/// 30 seconds, not per request. Unknown tokens are not cached.
pub struct Tokens {
    store: Arc<dyn AuthStore>,
    clock: Arc<dyn Clock>,
    cache: RwLock<Generations<[u8; 32], (TokenInfo, u64)>>,
    /// Revocations so far: a lookup that raced a revocation (read the
    /// token before it was deleted) must not put it back in the cache.
    revocations: std::sync::atomic::AtomicU64,
}

impl Tokens {
    /// Lookups in `store`, timed by `clock`, caching up to about twice
    /// `generation` tokens.
    pub fn new(store: Arc<dyn AuthStore>, clock: Arc<dyn Clock>, generation: usize) -> Tokens {
        Tokens {
            store,
            clock,
            cache: RwLock::new(Generations::new(generation)),
            revocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The token with this hash if it was found recently: no IO.
    pub fn cached(&self, hash: &[u8; 32]) -> Option<TokenInfo> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let (info, found) = cache.peek(hash)?;
        let fresh = self.clock.now_seconds().saturating_sub(*found) < TOKEN_CACHE_SECONDS;
        fresh.then(|| info.clone())
    }

    /// The token with this hash, from the store (blocking); remembered.
    pub fn lookup(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        use std::sync::atomic::Ordering;
        let seen = self.revocations.load(Ordering::SeqCst);
        let found = self.store.token(hash)?;
        if let Some(info) = &found {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock `revoke` bumps it under: either the
            // revocation comes after (and removes this entry) or it came
            // before, and what was read may be stale.
            if self.revocations.load(Ordering::SeqCst) == seen {
                cache.insert(*hash, (info.clone(), self.clock.now_seconds()));
            }
        }
        Ok(found)
    }

    /// Revokes the token with this hash: removed from the store and
    /// forgotten by this cache at once (blocking). Whether there was one.
    pub fn revoke(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let revoked = self.store.revoke_token(hash)?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(hash);
        Ok(revoked)
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_match() {
        let ns: Scope = "publish:acme/*".parse().expect("scope");
        assert!(ns.allows_push("acme/greeter"));
        assert!(!ns.allows_push("acmex/greeter"));
        let one: Scope = "publish:acme/greeter".parse().expect("scope");
        assert!(one.allows_push("acme/greeter"));
        assert!(!one.allows_push("acme/other"));
        assert!("admin".parse::<Scope>().expect("scope").allows_push("x/y"));
        assert!(!Scope::Pull.allows_push("x/y"));
        for bad in ["push", "publish:", "publish:Acme/*", "publish:a/b/*"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
        assert_eq!(ns.to_string(), "publish:acme/*");
        let token = new_token();
        assert!(token.starts_with("cairn_") && token.len() == 70);
        assert_ne!(token_hash(&token), token_hash(&new_token()));
    }

    /// A lookup that read a token just before it was revoked, and would
    /// have cached it just after, does not cache it: the revocation holds
    /// at once, not when the cache entry lapses.
    #[test]
    fn a_lookup_racing_a_revocation_does_not_cache_the_revoked_token() {
        use std::sync::{Barrier, Mutex};

        /// A store whose token reads stop between reading and returning
        /// until the test lets them go.
        struct Paused {
            inner: crate::memory::MemoryMeta,
            gate: Mutex<Option<Arc<Barrier>>>,
        }
        impl AuthStore for Paused {
            fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
                self.inner.ensure_account(name)
            }
            fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
                self.inner.account(name)
            }
            fn has_accounts(&self) -> Result<bool, StoreError> {
                self.inner.has_accounts()
            }
            fn add_token(
                &self,
                hash: &[u8; 32],
                info: &TokenInfo,
                note: &str,
            ) -> Result<(), StoreError> {
                self.inner.add_token(hash, info, note)
            }
            fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
                let found = self.inner.token(hash);
                let gate = self.gate.lock().expect("gate").take();
                if let Some(gate) = gate {
                    gate.wait(); // read done
                    gate.wait(); // revoked meanwhile
                }
                found
            }
            fn purge_tokens(&self, now: u64) -> Result<usize, StoreError> {
                self.inner.purge_tokens(now)
            }
            fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
                self.inner.tokens()
            }
            fn revoke_token(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
                self.inner.revoke_token(hash)
            }
        }

        let gate = Arc::new(Barrier::new(2));
        let store = Arc::new(Paused {
            inner: crate::memory::MemoryMeta::default(),
            gate: Mutex::new(Some(gate.clone())),
        });
        let hash = token_hash("cairn_racing");
        let info = TokenInfo {
            account: "alice".into(),
            scopes: vec![Scope::Pull],
            expires: None,
        };
        store.add_token(&hash, &info, "").expect("add");
        let tokens = Arc::new(Tokens::new(
            store,
            Arc::new(crate::clock::ManualClock::at(1_800_000_000)),
            16,
        ));
        let looking = {
            let tokens = tokens.clone();
            std::thread::spawn(move || tokens.lookup(&hash).expect("lookup"))
        };
        gate.wait();
        assert!(tokens.revoke(&hash).expect("revoke"));
        gate.wait();
        // The lookup read the token before it went; that answer stands...
        assert_eq!(looking.join().expect("lookup thread"), Some(info));
        // ...but it is not remembered past the revocation.
        assert_eq!(tokens.cached(&hash), None);
    }
}
