//! The OCI face's metadata on SQLite: blob links, manifests, tags, upload
//! sessions and namespace policy, in the same database as the logs.

use cairn_registry::oci::{
    Digest, ManifestWrite, OciStore, StoredManifest, TrustedKey, UploadSession,
};
use cairn_registry::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

use crate::sqlite::{backend, SqliteStore};

fn digest_of(text: String) -> Result<Digest, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("stored digest `{text}`")))
}

type ManifestRow = (String, String, Vec<u8>, Option<String>);

fn manifest_of(
    (digest, media_type, bytes, subject): ManifestRow,
) -> Result<StoredManifest, StoreError> {
    Ok(StoredManifest {
        digest: digest_of(digest)?,
        media_type,
        bytes,
        subject: subject.map(digest_of).transpose()?,
    })
}

fn manifest_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManifestRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// Stores a manifest, points its tag at it and links its blobs, inside
/// the caller's transaction (a record's commit, or its own).
pub(crate) fn write_manifest(conn: &Connection, write: &ManifestWrite) -> Result<(), StoreError> {
    let ManifestWrite {
        repository,
        manifest,
        tag,
        links,
    } = write;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO oci_manifests (repo, digest, media_type, bytes, subject)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(backend)?
    .execute(params![
        repository,
        manifest.digest.to_string(),
        manifest.media_type,
        manifest.bytes,
        manifest.subject.as_ref().map(|s| s.to_string())
    ])
    .map_err(backend)?;
    if let Some(tag) = tag {
        conn.prepare_cached(
            "INSERT INTO oci_tags (repo, tag, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest",
        )
        .map_err(backend)?
        .execute(params![repository, tag, manifest.digest.to_string()])
        .map_err(backend)?;
    }
    for digest in links {
        conn.prepare_cached("INSERT OR IGNORE INTO oci_blobs (repo, digest) VALUES (?1, ?2)")
            .map_err(backend)?
            .execute(params![repository, digest.to_string()])
            .map_err(backend)?;
    }
    Ok(())
}

impl OciStore for SqliteStore {
    fn repositories(&self, last: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT repo FROM oci_blobs WHERE repo > ?1
                     UNION SELECT repo FROM oci_tags WHERE repo > ?1
                     UNION SELECT repo FROM oci_manifests WHERE repo > ?1
                     ORDER BY 1",
                )
                .map_err(backend)?;
            let repos = stmt
                .query_map(params![last.unwrap_or("")], |r| r.get::<_, String>(0))
                .map_err(backend)?
                .take(limit)
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(repos)
        })
    }

    fn repository_exists(&self, repository: &str) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repo = ?1)
                     OR EXISTS (SELECT 1 FROM oci_manifests WHERE repo = ?1)",
            )
            .map_err(backend)?
            .query_row(params![repository], |r| r.get(0))
            .map_err(backend)
        })
    }

    fn link_blob(&self, repository: &str, digest: &Digest) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.prepare_cached("INSERT OR IGNORE INTO oci_blobs (repo, digest) VALUES (?1, ?2)")
                .map_err(backend)?
                .execute(params![repository, digest.to_string()])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn blob_linked(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM oci_blobs WHERE repo = ?1 AND digest = ?2)",
            )
            .map_err(backend)?
            .query_row(params![repository, digest.to_string()], |r| r.get(0))
            .map_err(backend)
        })
    }

    fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        self.write(|conn| {
            let n = conn
                .prepare_cached("DELETE FROM oci_blobs WHERE repo = ?1 AND digest = ?2")
                .map_err(backend)?
                .execute(params![repository, digest.to_string()])
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn put_manifest(&self, write: &ManifestWrite) -> Result<(), StoreError> {
        self.write(|conn| {
            let tx = conn.unchecked_transaction().map_err(backend)?;
            write_manifest(&tx, write)?;
            tx.commit().map_err(backend)
        })
    }

    fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT digest, media_type, bytes, subject FROM oci_manifests
                 WHERE repo = ?1 AND digest = ?2",
            )
            .map_err(backend)?
            .query_row(params![repository, digest.to_string()], manifest_row)
            .optional()
            .map_err(backend)?
            .map(manifest_of)
            .transpose()
        })
    }

    fn tag(&self, repository: &str, tag: &str) -> Result<Option<Digest>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT digest FROM oci_tags WHERE repo = ?1 AND tag = ?2")
                .map_err(backend)?
                .query_row(params![repository, tag], |r| r.get::<_, String>(0))
                .optional()
                .map_err(backend)?
                .map(digest_of)
                .transpose()
        })
    }

    fn tags(&self, repository: &str) -> Result<Vec<(String, Digest)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT tag, digest FROM oci_tags WHERE repo = ?1 ORDER BY tag")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![repository], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|(t, d)| Ok((t, digest_of(d)?)))
                .collect()
        })
    }

    fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, StoreError> {
        self.write(|conn| {
            let tx = conn.unchecked_transaction().map_err(backend)?;
            let d = digest.to_string();
            let n = tx
                .execute(
                    "DELETE FROM oci_manifests WHERE repo = ?1 AND digest = ?2",
                    params![repository, d],
                )
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM oci_tags WHERE repo = ?1 AND digest = ?2",
                params![repository, d],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, StoreError> {
        self.write(|conn| {
            let n = conn
                .execute(
                    "DELETE FROM oci_tags WHERE repo = ?1 AND tag = ?2",
                    params![repository, tag],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT digest, media_type, bytes, subject FROM oci_manifests
                     WHERE repo = ?1 AND subject = ?2 ORDER BY digest",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![repository, subject.to_string()], manifest_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.into_iter().map(manifest_of).collect()
        })
    }

    fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO oci_uploads (id, repo, account, updated) VALUES (?1, ?2, ?3, ?4)",
                params![
                    session.id,
                    session.repository,
                    session.account,
                    i64::try_from(session.updated).unwrap_or(i64::MAX)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, repo, account, updated FROM oci_uploads WHERE id = ?1")
                .map_err(backend)?
                .query_row(params![id], |r| {
                    Ok(UploadSession {
                        id: r.get(0)?,
                        repository: r.get(1)?,
                        account: r.get(2)?,
                        updated: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
                .optional()
                .map_err(backend)
        })
    }

    fn touch_upload(&self, id: &str, now: u64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "UPDATE oci_uploads SET updated = ?2 WHERE id = ?1",
                params![id, i64::try_from(now).unwrap_or(i64::MAX)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute("DELETE FROM oci_uploads WHERE id = ?1", params![id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn stale_uploads(&self, before: u64) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id FROM oci_uploads WHERE updated < ?1")
                .map_err(backend)?;
            let ids = stmt
                // Seconds past i64 (u64::MAX: every session) stay the largest.
                .query_map(params![i64::try_from(before).unwrap_or(i64::MAX)], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(ids)
        })
    }

    fn count_uploads(&self, account: Option<&str>) -> Result<u64, StoreError> {
        self.read(|conn| {
            let n: i64 = match account {
                Some(account) => conn
                    .prepare_cached("SELECT COUNT(*) FROM oci_uploads WHERE account = ?1")
                    .map_err(backend)?
                    .query_row(params![account], |r| r.get(0)),
                None => conn
                    .prepare_cached("SELECT COUNT(*) FROM oci_uploads")
                    .map_err(backend)?
                    .query_row([], |r| r.get(0)),
            }
            .map_err(backend)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn oci_create_allowed(&self, namespace: &str) -> Result<bool, StoreError> {
        self.read(|conn| {
            let allowed: Option<bool> = conn
                .prepare_cached("SELECT oci_create FROM namespace_policy WHERE namespace = ?1")
                .map_err(backend)?
                .query_row(params![namespace], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            Ok(allowed.unwrap_or(true))
        })
    }

    fn trusted_keys(&self, namespace: &str) -> Result<Vec<TrustedKey>, StoreError> {
        self.read(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT package, key_id, label, pem FROM trusted_keys WHERE namespace = ?1
                     ORDER BY package, key_id",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(params![namespace], |r| {
                    let package: String = r.get(0)?;
                    Ok(TrustedKey {
                        namespace: namespace.to_owned(),
                        package: (!package.is_empty()).then_some(package),
                        key_id: r.get(1)?,
                        label: r.get(2)?,
                        pem: r.get(3)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    fn trust_key(&self, key: &TrustedKey) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO trusted_keys (namespace, package, key_id, label, pem)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (namespace, package, key_id)
                 DO UPDATE SET label = excluded.label, pem = excluded.pem",
                params![
                    key.namespace,
                    key.package.as_deref().unwrap_or(""),
                    key.key_id,
                    key.label,
                    key.pem
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn untrust_key(
        &self,
        namespace: &str,
        package: Option<&str>,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        self.write(|conn| {
            let n = conn
                .execute(
                    "DELETE FROM trusted_keys WHERE namespace = ?1 AND package = ?2 AND key_id = ?3",
                    params![namespace, package.unwrap_or(""), key_id],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
    }
}

impl SqliteStore {
    /// Sets whether packages may be created in `namespace` by an OCI push.
    pub fn set_oci_create(&self, namespace: &str, allowed: bool) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                "INSERT INTO namespace_policy (namespace, oci_create) VALUES (?1, ?2)
                 ON CONFLICT (namespace) DO UPDATE SET oci_create = excluded.oci_create",
                params![namespace, allowed],
            )
            .map_err(backend)?;
            Ok(())
        })
    }
}
