//! Accounts and hashed API tokens on PostgreSQL, with custodial keys
//! sealed at rest exactly as the SQLite store seals them
//! ([`cairn_store::Sealer`], the account's name as associated data).

use cairn_protocol::PrivateKey;
use cairn_registry::auth::{AuthStore, Scope, TokenEntry, TokenInfo};
use cairn_registry::oci::Account;
use cairn_registry::{Clock, StoreError, SystemClock};
use cairn_store::Sealer;
use tokio_postgres::Row;

use crate::{failed, PgStore};

/// How a sealed custodial key starts (`cairn_store`'s format).
use cairn_store::seal::PREFIX as SEALED_PREFIX;

/// When an account or token is created (kept for the operator's records).
fn now() -> i64 {
    i64::try_from(SystemClock.now_seconds()).unwrap_or(i64::MAX)
}

use cairn_store::row::parse_scopes;

fn seconds(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `tokens` row: hash, account, scopes, expires, note, created.
fn token_entry(row: &Row) -> Result<TokenEntry, StoreError> {
    let fail = failed("read a token");
    let hash: Vec<u8> = row.try_get(0).map_err(&fail)?;
    let scopes: String = row.try_get(2).map_err(&fail)?;
    let expires: Option<i64> = row.try_get(3).map_err(&fail)?;
    let created: i64 = row.try_get(5).map_err(&fail)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| StoreError::Corrupt("stored token hash is not 32 bytes".into()))?;
    Ok(TokenEntry {
        hash,
        info: TokenInfo {
            account: row.try_get(1).map_err(&fail)?,
            scopes: parse_scopes(&scopes)?,
            expires: expires.and_then(|e| u64::try_from(e).ok()),
        },
        note: row.try_get(4).map_err(&fail)?,
        created: u64::try_from(created).unwrap_or(0),
    })
}

impl PgStore {
    fn account_of(&self, name: String, stored: String) -> Result<Account, StoreError> {
        cairn_store::seal::account(self.shared.sealer.get(), name, stored)
    }

    /// From now on, custodial keys are sealed with `sealer` (as
    /// `SqliteStore::seal_custodial_keys`): keys stored in plaintext are
    /// sealed now, in one transaction. Fails, changing nothing, if a key
    /// already sealed does not open with `sealer` (the wrong key-encryption
    /// key). Returns how many keys were sealed now.
    pub fn seal_custodial_keys(&self, sealer: Sealer) -> Result<usize, StoreError> {
        let what = "seal custodial keys";
        // One sealed key tells whether this is the right key; only keys
        // still in plaintext are read whole.
        let rows = |sealed: bool| {
            self.run(what, move |shared| async move {
                let conn = shared.conn(what).await?;
                let sql = if sealed {
                    "SELECT name, custodial_key FROM accounts \
                     WHERE left(custodial_key, length($1)) = $1 LIMIT 1"
                } else {
                    "SELECT name, custodial_key FROM accounts \
                     WHERE left(custodial_key, length($1)) <> $1"
                };
                let rows = conn
                    .query(sql, &[&SEALED_PREFIX])
                    .await
                    .map_err(failed(what))?;
                rows.iter()
                    .map(|row| {
                        let name: String = row.try_get(0).map_err(failed(what))?;
                        let key: String = row.try_get(1).map_err(failed(what))?;
                        Ok((name, key))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            })
        };
        for (name, stored) in rows(true)? {
            sealer.open(&name, &stored)?;
        }
        let mut plain = Vec::new();
        for (name, stored) in rows(false)? {
            plain.push((sealer.seal(&name, &stored)?, name));
        }
        let sealed = plain.len();
        if !plain.is_empty() {
            self.run(what, |shared| async move {
                let mut conn = shared.conn(what).await?;
                let tx = conn.transaction().await.map_err(failed(what))?;
                for (sealed, name) in &plain {
                    tx.execute(
                        "UPDATE accounts SET custodial_key = $1 WHERE name = $2",
                        &[sealed, name],
                    )
                    .await
                    .map_err(failed(what))?;
                }
                tx.commit().await.map_err(failed(what))?;
                // The plaintext rows' old versions: rewritten away (the
                // server's WAL and backups may still hold them).
                conn.batch_execute("VACUUM FULL accounts")
                    .await
                    .map_err(failed(what))
            })?;
        }
        let _ = self.shared.sealer.set(sealer);
        Ok(sealed)
    }
}

impl AuthStore for PgStore {
    fn ensure_account(&self, name: &str) -> Result<Account, StoreError> {
        if let Some(account) = self.account(name)? {
            return Ok(account);
        }
        let key = PrivateKey::generate().encode();
        let stored = match self.shared.sealer.get() {
            Some(sealer) => sealer.seal(name, &key)?,
            None => key,
        };
        let owned = name.to_owned();
        self.run("create an account", |shared| async move {
            let what = "create an account";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO accounts (name, custodial_key, created) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &[&owned, &stored, &now()],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })?;
        self.account(name)?
            .ok_or_else(|| StoreError::Backend(format!("account `{name}` was not created")))
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let name = name.to_owned();
        let row: Option<(String, String)> = self.run("read an account", |shared| async move {
            let what = "read an account";
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached("SELECT name, custodial_key FROM accounts WHERE name = $1")
                .await
                .map_err(failed(what))?;
            conn.query_opt(&statement, &[&name])
                .await
                .map_err(failed(what))?
                .map(|row| {
                    let name: String = row.try_get(0).map_err(failed(what))?;
                    let key: String = row.try_get(1).map_err(failed(what))?;
                    Ok((name, key))
                })
                .transpose()
        })?;
        row.map(|(n, k)| self.account_of(n, k)).transpose()
    }

    fn has_accounts(&self) -> Result<bool, StoreError> {
        self.run("look for accounts", |shared| async move {
            let what = "look for accounts";
            let conn = shared.conn(what).await?;
            conn.query_one("SELECT EXISTS (SELECT 1 FROM accounts)", &[])
                .await
                .map_err(failed(what))?
                .try_get(0)
                .map_err(failed(what))
        })
    }

    fn add_token(&self, hash: &[u8; 32], info: &TokenInfo, note: &str) -> Result<(), StoreError> {
        let scopes = info
            .scopes
            .iter()
            .map(Scope::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let (hash, account, expires, note) = (
            hash.to_vec(),
            info.account.clone(),
            info.expires.map(seconds),
            note.to_owned(),
        );
        self.run("store a token", |shared| async move {
            let what = "store a token";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO tokens (hash, account, scopes, expires, note, created) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&hash, &account, &scopes, &expires, &note, &now()],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenInfo>, StoreError> {
        let hash = hash.to_vec();
        self.run("read a token", |shared| async move {
            let what = "read a token";
            let fail = failed(what);
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached("SELECT account, scopes, expires FROM tokens WHERE hash = $1")
                .await
                .map_err(&fail)?;
            let Some(row) = conn.query_opt(&statement, &[&hash]).await.map_err(&fail)? else {
                return Ok(None);
            };
            let scopes: String = row.try_get(1).map_err(&fail)?;
            let expires: Option<i64> = row.try_get(2).map_err(&fail)?;
            Ok(Some(TokenInfo {
                account: row.try_get(0).map_err(&fail)?,
                scopes: parse_scopes(&scopes)?,
                expires: expires.and_then(|e| u64::try_from(e).ok()),
            }))
        })
    }

    fn purge_tokens(&self, now: u64) -> Result<usize, StoreError> {
        self.run("purge tokens", |shared| async move {
            let what = "purge tokens";
            let conn = shared.conn(what).await?;
            let n = conn
                .execute(
                    "DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= $1",
                    &[&seconds(now)],
                )
                .await
                .map_err(failed(what))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn tokens(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.run("list tokens", |shared| async move {
            let what = "list tokens";
            let conn = shared.conn(what).await?;
            let rows = conn
                .query(
                    "SELECT hash, account, scopes, expires, note, created FROM tokens \
                     ORDER BY created, seq",
                    &[],
                )
                .await
                .map_err(failed(what))?;
            rows.iter().map(token_entry).collect()
        })
    }

    fn revoke_token(&self, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let hash = hash.to_vec();
        self.run("revoke a token", |shared| async move {
            let what = "revoke a token";
            let conn = shared.conn(what).await?;
            let n = conn
                .execute("DELETE FROM tokens WHERE hash = $1", &[&hash])
                .await
                .map_err(failed(what))?;
            Ok(n > 0)
        })
    }
}
