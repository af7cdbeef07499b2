//! Accounts and hashed API tokens on SQLite.

use cairn_protocol::PrivateKey;
use cairn_registry::auth::{AuthStore, Scope, TokenEntry, TokenInfo};
use cairn_registry::oci::Account;
use cairn_registry::{Clock, StoreError, SystemClock};
use rusqlite::{params, OptionalExtension};

use crate::seal::{is_sealed, Sealer};
use crate::sqlite::{backend, SqliteStore};

/// When an account or token is created (kept for the operator's records).
fn now() -> i64 {
    i64::try_from(SystemClock.now_seconds()).unwrap_or(i64::MAX)
}

use crate::row::parse_scopes;

impl SqliteStore {
    fn account_of(&self, name: String, stored: String) -> Result<Account, StoreError> {
        crate::seal::account(self.sealer.get(), name, stored)
    }

    /// From now on, custodial keys are sealed with `sealer`: keys stored in
    /// plaintext (by an earlier Cairn) are sealed now, in one transaction.
    /// Fails, changing nothing, if a key already sealed does not open with
    /// `sealer` (the wrong key-encryption key). Returns how many keys were
    /// sealed now.
    pub fn seal_custodial_keys(&self, sealer: Sealer) -> Result<usize, StoreError> {
        // One sealed key tells whether this is the right key; only keys
        // still in plaintext are read whole. (Not every account at every
        // start.)
        let rows = |sealed: bool| {
            self.read(|conn| {
                let (op, limit) = if sealed {
                    ("=", " LIMIT 1")
                } else {
                    ("<>", "")
                };
                let sql = format!(
                    "SELECT name, custodial_key FROM accounts \
                     WHERE substr(custodial_key, 1, {}) {op} '{}'{limit}",
                    crate::seal::PREFIX.len(),
                    crate::seal::PREFIX
                );
                let mut stmt = conn.prepare(&sql).map_err(backend)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .map_err(backend)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend);
                rows
            })
        };
        for (name, stored) in rows(true)? {
            sealer.open(&name, &stored)?;
        }
        let mut plain = Vec::new();
        for (name, stored) in rows(false)? {
            debug_assert!(!is_sealed(&stored));
            plain.push((sealer.seal(&name, &stored)?, name));
        }
        if !plain.is_empty() {
            self.write(|conn| {
                let tx = conn.unchecked_transaction().map_err(backend)?;
                for (sealed, name) in &plain {
                    tx.execute(
                        "UPDATE accounts SET custodial_key = ?1 WHERE name = ?2",
                        params![sealed, name],
                    )
                    .map_err(backend)?;
                }
                tx.commit().map_err(backend)
            })?;
            // Plaintext copies may linger in freed pages and the WAL.
            self.write(|conn| {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
                    .map_err(backend)
            })?;
        }
        let _ = self.sealer.set(sealer);
        Ok(plain.len())
    }
}

impl AuthStore for SqliteStore {
    fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
        if let Some(account) = self.account(name)? {
            return Ok(account);
        }
        let key = PrivateKey::generate().encode();
        let stored = match self.sealer.get() {
            Some(sealer) => sealer.seal(name, &key)?,
            None => key,
        };
        self.write(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO accounts (name, custodial_key, created) VALUES (?1, ?2, ?3)",
                params![name, stored, now()],
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
                .map(|(n, k)| self.account_of(n, k))
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
                    info.expires.map(|e| i64::try_from(e).unwrap_or(i64::MAX)),
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
        Ok(Some(TokenInfo {
            account,
            scopes: parse_scopes(&scopes)?,
            expires: expires.and_then(|e| u64::try_from(e).ok()),
        }))
    }

    fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        type Row = (Vec<u8>, String, String, Option<i64>, String, i64);
        let rows: Vec<Row> = self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT hash, account, scopes, expires, note, created FROM tokens
                     ORDER BY created, rowid",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend);
            rows
        })?;
        rows.into_iter()
            .map(|(hash, account, scopes, expires, note, created)| {
                let hash: [u8; 32] = hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("stored token hash is not 32 bytes".into()))?;
                Ok(TokenEntry {
                    hash,
                    info: TokenInfo {
                        account,
                        scopes: parse_scopes(&scopes)?,
                        expires: expires.and_then(|e| u64::try_from(e).ok()),
                    },
                    note,
                    created: u64::try_from(created).unwrap_or(0),
                })
            })
            .collect()
    }

    fn revoke_token(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(|conn| {
            conn.execute(
                "DELETE FROM tokens WHERE hash = ?1",
                params![hash.as_slice()],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
    }

    fn purge_tokens(&self, now: u64) -> Result<usize, StoreError> {
        self.write(|conn| {
            conn.execute(
                "DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= ?1",
                params![i64::try_from(now).unwrap_or(i64::MAX)],
            )
            .map_err(backend)
        })
    }
}
