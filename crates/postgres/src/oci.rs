//! The OCI face's metadata on PostgreSQL: blob links, manifests, tags,
//! upload sessions and namespace policy, as the SQLite store keeps them.

use std::collections::HashMap;

use cairn_registry::oci::{
    Digest, ManifestWrite, OciStore, StoredManifest, TrustedKey, UploadSession,
};
use cairn_registry::StoreError;
use tokio_postgres::{Row, Statement, Transaction};

use crate::{failed, sql_count, PgStore};

fn digest_of(text: String) -> Result<Digest, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("stored digest `{text}`")))
}

fn manifest_of(row: &Row) -> Result<StoredManifest, StoreError> {
    let fail = failed("read a manifest");
    let digest: String = row.try_get(0).map_err(&fail)?;
    let subject: Option<String> = row.try_get(3).map_err(&fail)?;
    Ok(StoredManifest {
        digest: digest_of(digest)?,
        media_type: row.try_get(1).map_err(&fail)?,
        bytes: row.try_get(2).map_err(&fail)?,
        subject: subject.map(digest_of).transpose()?,
    })
}

/// A time in seconds as a `BIGINT` (past `i64::MAX`: the largest).
fn seconds(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Stores manifests; a manifest already in its repository is kept.
pub(crate) const INSERT_MANIFESTS: &str =
    "INSERT INTO oci_manifests (repo, digest, media_type, bytes, subject) \
     SELECT repo, digest, media_type, bytes, subject \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[]) \
     WITH ORDINALITY AS u (repo, digest, media_type, bytes, subject, n) ORDER BY n \
     ON CONFLICT (repo, digest) DO NOTHING";

/// Points tags at manifests.
pub(crate) const UPSERT_TAGS: &str = "INSERT INTO oci_tags (repo, tag, digest) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
     ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest";

/// Links blobs into repositories.
pub(crate) const INSERT_LINKS: &str = "INSERT INTO oci_blobs (repo, digest) \
     SELECT * FROM UNNEST($1::text[], $2::text[]) ON CONFLICT (repo, digest) DO NOTHING";

/// The statements [`write_manifests`] runs.
pub(crate) struct ManifestStatements {
    pub(crate) manifests: Statement,
    pub(crate) tags: Statement,
    pub(crate) links: Statement,
}

/// Manifest writes as arrays.
#[derive(Default)]
pub(crate) struct ManifestRows {
    repo: Vec<String>,
    digest: Vec<String>,
    media_type: Vec<String>,
    bytes: Vec<Vec<u8>>,
    subject: Vec<Option<String>>,
    tag_repo: Vec<String>,
    tag: Vec<String>,
    tag_digest: Vec<String>,
    link_repo: Vec<String>,
    link_digest: Vec<String>,
}

impl ManifestRows {
    /// The rows of `writes`, with SQLite's outcome of writing them one
    /// after the other: the first manifest of a digest in a repository is
    /// kept, and the last write of a tag wins.
    pub(crate) fn of(writes: &[ManifestWrite]) -> ManifestRows {
        let mut rows = ManifestRows::default();
        let mut tags: Vec<(String, String, String)> = Vec::new();
        let mut tag_at: HashMap<(String, String), usize> = HashMap::new();
        for write in writes {
            let digest = write.manifest.digest.to_string();
            rows.repo.push(write.repository.clone());
            rows.digest.push(digest.clone());
            rows.media_type.push(write.manifest.media_type.clone());
            rows.bytes.push(write.manifest.bytes.clone());
            rows.subject
                .push(write.manifest.subject.as_ref().map(|s| s.to_string()));
            if let Some(tag) = &write.tag {
                let key = (write.repository.clone(), tag.clone());
                match tag_at.get(&key) {
                    Some(&at) => tags[at].2 = digest,
                    None => {
                        tag_at.insert(key, tags.len());
                        tags.push((write.repository.clone(), tag.clone(), digest));
                    }
                }
            }
            for link in &write.links {
                rows.link_repo.push(write.repository.clone());
                rows.link_digest.push(link.to_string());
            }
        }
        for (repo, tag, digest) in tags {
            rows.tag_repo.push(repo);
            rows.tag.push(tag);
            rows.tag_digest.push(digest);
        }
        rows
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.repo.is_empty()
    }
}

/// Stores manifests, points their tags and links their blobs, inside the
/// caller's transaction (a record's commit, or its own).
pub(crate) async fn write_manifests(
    tx: &Transaction<'_>,
    statements: &ManifestStatements,
    rows: &ManifestRows,
) -> Result<(), StoreError> {
    let fail = failed("store manifests");
    if !rows.repo.is_empty() {
        tx.execute(
            &statements.manifests,
            &[
                &rows.repo,
                &rows.digest,
                &rows.media_type,
                &rows.bytes,
                &rows.subject,
            ],
        )
        .await
        .map_err(&fail)?;
    }
    if !rows.tag.is_empty() {
        tx.execute(
            &statements.tags,
            &[&rows.tag_repo, &rows.tag, &rows.tag_digest],
        )
        .await
        .map_err(&fail)?;
    }
    if !rows.link_repo.is_empty() {
        tx.execute(&statements.links, &[&rows.link_repo, &rows.link_digest])
            .await
            .map_err(&fail)?;
    }
    Ok(())
}

impl PgStore {
    /// Sets whether packages may be created in `namespace` by an OCI push.
    pub fn set_oci_create(&self, namespace: &str, allowed: bool) -> Result<(), StoreError> {
        let namespace = namespace.to_owned();
        self.run("set the namespace policy", |shared| async move {
            let what = "set the namespace policy";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO namespace_policy (namespace, oci_create) VALUES ($1, $2) \
                 ON CONFLICT (namespace) DO UPDATE SET oci_create = excluded.oci_create",
                &[&namespace, &allowed],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    /// Runs one statement that changes rows; how many.
    fn change(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.run(what, |shared| async move {
            let conn = shared.conn(what).await?;
            let statement = conn.prepare_cached(sql).await.map_err(failed(what))?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            conn.execute(&statement, &params)
                .await
                .map_err(failed(what))
        })
    }

    /// Runs one query of text parameters; its rows, as `each` reads them.
    fn rows<T: Send + 'static>(
        &self,
        what: &'static str,
        sql: &'static str,
        params: Vec<String>,
        each: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.run(what, |shared| async move {
            let conn = shared.conn(what).await?;
            let statement = conn.prepare_cached(sql).await.map_err(failed(what))?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let rows = conn
                .query(&statement, &params)
                .await
                .map_err(failed(what))?;
            rows.iter().map(each).collect()
        })
    }
}

fn text(row: &Row) -> Result<String, StoreError> {
    row.try_get(0).map_err(failed("read a row"))
}

fn flag(row: &Row) -> Result<bool, StoreError> {
    row.try_get(0).map_err(failed("read a row"))
}

fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

impl OciStore for PgStore {
    fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let last = last.unwrap_or("").to_owned();
        self.run("list repositories", |shared| async move {
            let what = "list repositories";
            let conn = shared.conn(what).await?;
            let statement = conn
                .prepare_cached(
                    "SELECT repo FROM oci_blobs WHERE repo > $1 \
                     UNION SELECT repo FROM oci_tags WHERE repo > $1 \
                     UNION SELECT repo FROM oci_manifests WHERE repo > $1 \
                     ORDER BY 1 LIMIT $2",
                )
                .await
                .map_err(failed(what))?;
            let rows = conn
                .query(&statement, &[&last, &sql_count(limit)])
                .await
                .map_err(failed(what))?;
            rows.iter().map(text).collect()
        })
    }

    fn repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        let rows = self.rows(
            "look for a repository",
            "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repo = $1) \
             OR EXISTS (SELECT 1 FROM oci_manifests WHERE repo = $1)",
            vec![repository.to_owned()],
            flag,
        )?;
        Ok(first(rows).unwrap_or(false))
    }

    fn link_blob(&self, repository: &str, digest: &Digest) -> Result<(), StoreError> {
        self.change(
            "link a blob",
            "INSERT INTO oci_blobs (repo, digest) VALUES ($1, $2) \
             ON CONFLICT (repo, digest) DO NOTHING",
            vec![repository.to_owned(), digest.to_string()],
        )?;
        Ok(())
    }

    fn blob_linked(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let rows = self.rows(
            "look for a blob link",
            "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repo = $1 AND digest = $2)",
            vec![repository.to_owned(), digest.to_string()],
            flag,
        )?;
        Ok(first(rows).unwrap_or(false))
    }

    fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let n = self.change(
            "unlink a blob",
            "DELETE FROM oci_blobs WHERE repo = $1 AND digest = $2",
            vec![repository.to_owned(), digest.to_string()],
        )?;
        Ok(n > 0)
    }

    fn put_manifest(&self, write: &ManifestWrite) -> Result<(), StoreError> {
        let rows = ManifestRows::of(std::slice::from_ref(write));
        self.run("store a manifest", |shared| async move {
            let what = "store a manifest";
            let mut conn = shared.conn(what).await?;
            let tx = conn.transaction().await.map_err(failed(what))?;
            let statements = ManifestStatements {
                manifests: tx
                    .prepare_cached(INSERT_MANIFESTS)
                    .await
                    .map_err(failed(what))?,
                tags: tx.prepare_cached(UPSERT_TAGS).await.map_err(failed(what))?,
                links: tx
                    .prepare_cached(INSERT_LINKS)
                    .await
                    .map_err(failed(what))?,
            };
            write_manifests(&tx, &statements, &rows).await?;
            tx.commit().await.map_err(failed(what))
        })
    }

    fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StoreError> {
        let rows = self.rows(
            "read a manifest",
            "SELECT digest, media_type, bytes, subject FROM oci_manifests \
             WHERE repo = $1 AND digest = $2",
            vec![repository.to_owned(), digest.to_string()],
            manifest_of,
        )?;
        Ok(first(rows))
    }

    fn tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        let rows = self.rows(
            "read a tag",
            "SELECT digest FROM oci_tags WHERE repo = $1 AND tag = $2",
            vec![repository.to_owned(), tag.to_owned()],
            text,
        )?;
        first(rows).map(digest_of).transpose()
    }

    fn tags(&self, repository: &str) -> Result<Vec<(String, Digest)>, StoreError> {
        let rows = self.rows(
            "list tags",
            "SELECT tag, digest FROM oci_tags WHERE repo = $1 ORDER BY tag",
            vec![repository.to_owned()],
            |row| {
                let fail = failed("list tags");
                let tag: String = row.try_get(0).map_err(&fail)?;
                let digest: String = row.try_get(1).map_err(&fail)?;
                Ok((tag, digest))
            },
        )?;
        rows.into_iter()
            .map(|(t, d)| Ok((t, digest_of(d)?)))
            .collect()
    }

    fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        let (repository, digest) = (repository.to_owned(), digest.to_string());
        self.run("delete a manifest", |shared| async move {
            let what = "delete a manifest";
            let mut conn = shared.conn(what).await?;
            let tx = conn.transaction().await.map_err(failed(what))?;
            let n = tx
                .execute(
                    "DELETE FROM oci_manifests WHERE repo = $1 AND digest = $2",
                    &[&repository, &digest],
                )
                .await
                .map_err(failed(what))?;
            tx.execute(
                "DELETE FROM oci_tags WHERE repo = $1 AND digest = $2",
                &[&repository, &digest],
            )
            .await
            .map_err(failed(what))?;
            tx.commit().await.map_err(failed(what))?;
            Ok(n > 0)
        })
    }

    fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        let n = self.change(
            "delete a tag",
            "DELETE FROM oci_tags WHERE repo = $1 AND tag = $2",
            vec![repository.to_owned(), tag.to_owned()],
        )?;
        Ok(n > 0)
    }

    fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.rows(
            "read referrers",
            "SELECT digest, media_type, bytes, subject FROM oci_manifests \
             WHERE repo = $1 AND subject = $2 ORDER BY digest",
            vec![repository.to_owned(), subject.to_string()],
            manifest_of,
        )
    }

    fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.run("record an upload session", |shared| async move {
            let what = "record an upload session";
            let conn = shared.conn(what).await?;
            conn.execute(
                "INSERT INTO oci_uploads (id, repo, account, updated) VALUES ($1, $2, $3, $4)",
                &[
                    &session.id,
                    &session.repository,
                    &session.account,
                    &seconds(session.updated),
                ],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError> {
        let rows = self.rows(
            "read an upload session",
            "SELECT id, repo, account, updated FROM oci_uploads WHERE id = $1",
            vec![id.to_owned()],
            |row| {
                let fail = failed("read an upload session");
                Ok(UploadSession {
                    id: row.try_get(0).map_err(&fail)?,
                    repository: row.try_get(1).map_err(&fail)?,
                    account: row.try_get(2).map_err(&fail)?,
                    updated: u64::try_from(row.try_get::<_, i64>(3).map_err(&fail)?).unwrap_or(0),
                })
            },
        )?;
        Ok(first(rows))
    }

    fn touch_upload(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.run("touch an upload session", |shared| async move {
            let what = "touch an upload session";
            let conn = shared.conn(what).await?;
            conn.execute(
                "UPDATE oci_uploads SET updated = $2 WHERE id = $1",
                &[&id, &seconds(now)],
            )
            .await
            .map_err(failed(what))?;
            Ok(())
        })
    }

    fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        self.change(
            "delete an upload session",
            "DELETE FROM oci_uploads WHERE id = $1",
            vec![id.to_owned()],
        )?;
        Ok(())
    }

    fn stale_uploads(&self, before: u64) -> Result<Vec<String>, StoreError> {
        self.run("list stale upload sessions", |shared| async move {
            let what = "list stale upload sessions";
            let conn = shared.conn(what).await?;
            // Seconds past i64 (u64::MAX: every session) stay the largest.
            let rows = conn
                .query(
                    "SELECT id FROM oci_uploads WHERE updated < $1",
                    &[&seconds(before)],
                )
                .await
                .map_err(failed(what))?;
            rows.iter().map(text).collect()
        })
    }

    fn count_uploads(&self, account: Option<&str>) -> Result<u64, StoreError> {
        let account = account.map(str::to_owned);
        self.run("count upload sessions", |shared| async move {
            let what = "count upload sessions";
            let conn = shared.conn(what).await?;
            let row = match &account {
                Some(account) => {
                    conn.query_one(
                        "SELECT COUNT(*) FROM oci_uploads WHERE account = $1",
                        &[account],
                    )
                    .await
                }
                None => {
                    conn.query_one("SELECT COUNT(*) FROM oci_uploads", &[])
                        .await
                }
            }
            .map_err(failed(what))?;
            let n: i64 = row.try_get(0).map_err(failed(what))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn oci_create_allowed(&self, namespace: &str) -> Result<bool, StoreError> {
        let rows = self.rows(
            "read the namespace policy",
            "SELECT oci_create FROM namespace_policy WHERE namespace = $1",
            vec![namespace.to_owned()],
            flag,
        )?;
        Ok(first(rows).unwrap_or(true))
    }

    fn trusted_keys(&self, namespace: &str) -> Result<Vec<TrustedKey>, StoreError> {
        self.rows(
            "read the trusted keys",
            "SELECT namespace, package, key_id, label, pem FROM trusted_keys \
             WHERE namespace = $1 ORDER BY package, key_id",
            vec![namespace.to_owned()],
            trusted_key,
        )
    }

    fn trust_key(&self, key: &TrustedKey) -> Result<(), StoreError> {
        self.change(
            "trust a key",
            "INSERT INTO trusted_keys (namespace, package, key_id, label, pem) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (namespace, package, key_id) \
             DO UPDATE SET label = excluded.label, pem = excluded.pem",
            vec![
                key.namespace.clone(),
                key.package.clone().unwrap_or_default(),
                key.key_id.clone(),
                key.label.clone(),
                key.pem.clone(),
            ],
        )?;
        Ok(())
    }

    fn untrust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self.change(
            "stop trusting a key",
            "DELETE FROM trusted_keys WHERE namespace = $1 AND package = $2 AND key_id = $3",
            vec![
                namespace.to_owned(),
                package.unwrap_or_default().to_owned(),
                key_id.to_owned(),
            ],
        )?;
        Ok(n > 0)
    }
}

fn trusted_key(row: &Row) -> Result<TrustedKey, StoreError> {
    let fail = failed("read a trusted key");
    let package: String = row.try_get(1).map_err(&fail)?;
    Ok(TrustedKey {
        namespace: row.try_get(0).map_err(&fail)?,
        package: (!package.is_empty()).then_some(package),
        key_id: row.try_get(2).map_err(&fail)?,
        label: row.try_get(3).map_err(&fail)?,
        pem: row.try_get(4).map_err(&fail)?,
    })
}
