//! Accounts and hashed API tokens on SQLite.

use cairn_protocol::PrivateKey;
use cairn_registry::auth::{AuthStore, Scope, TokenInfo};
use cairn_registry::oci::Account;
use cairn_registry::{Clock, StoreError, SystemClock};
use rusqlite::{params, OptionalExtension};

use crate::sqlite::{backend, SqliteStore};

/// When an account or token is created (kept for the operator's records).
fn now() -> i64 {
    i64::try_from(SystemClock.now_seconds()).unwrap_or(i64::MAX)
}

fn account_of(name: String, key: String) -> Result<Account, StoreError> {
    let custodial_key = PrivateKey::decode(&key)
        .map_err(|e| StoreError::Corrupt(format!("custodial key of account `{name}`: {e}")))?;
    Ok(Account {
        name,
        custodial_key,
    })
}

impl AuthStore for SqliteStore {
    fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
        if let Some(account) = self.account(name)? {
            return Ok(account);
        }
        let key = PrivateKey::generate();
        self.write(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO accounts (name, custodial_key, created) VALUES (?1, ?2, ?3)",
                params![name, key.encode(), now()],
            )
            .map_err(backend)?;
            Ok(())
        })?;
        self.account(name)?
            .ok_or_else(|| StoreError::Backend(format!("account `{name}` was not created")))
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT name, custodial_key FROM accounts WHERE name = ?1")
                .map_err(backend)?
                .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?
                .map(|(n, k)| account_of(n, k))
                .transpose()
        })
    }

    fn has_accounts(&self) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT EXISTS (SELECT 1 FROM accounts)", [], |r| r.get(0))
                .map_err(backend)
        })
    }

    fn add_token(&self, hash: &[u8; 32], info: &TokenInfo, note: &str) -> Result<(), StoreError> {
        let scopes = info
            .scopes
            .iter()
            .map(Scope::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        self.write(|conn| {
            conn.execute(
                "INSERT INTO tokens (hash, account, scopes, expires, note, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hash.as_slice(),
                    info.account,
                    scopes,
                    info.expires.map(|e| e as i64),
                    note,
                    now()
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        let row: Option<(String, String, Option<i64>)> = self.read(|conn| {
            conn.prepare_cached("SELECT account, scopes, expires FROM tokens WHERE hash = ?1")
                .map_err(backend)?
                .query_row(params![hash.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(backend)
        })?;
        let Some((account, scopes, expires)) = row else {
            return Ok(None);
        };
        let scopes = scopes
            .split_whitespace()
            .map(|s| {
                s.parse::<Scope>()
                    .map_err(|e| StoreError::Corrupt(format!("stored token scope: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(TokenInfo {
            account,
            scopes,
            expires: expires.and_then(|e| u64::try_from(e).ok()),
        }))
    }

    fn purge_tokens(&self, now: u64) -> Result<usize, StoreError> {
        self.write(|conn| {
            conn.execute(
                "DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= ?1",
                params![now as i64],
            )
            .map_err(backend)
        })
    }
}
