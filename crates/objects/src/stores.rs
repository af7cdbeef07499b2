//! The storage traits on a [`Bucket`]: release content and OCI blobs with
//! their upload sessions.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_protocol::Hash;
use cairn_registry::oci::{BlobStore, Digest, Digester, Finished, SessionWriter};
use cairn_registry::{ByteReader, ContentStore, PendingContent, StoreError};
use object_store::path::Path;
use object_store::signer::Signer;

use crate::bytes_io::ObjectWriter;
use crate::{failed, Bucket};

/// The largest object one server-side copy may make (S3's `CopyObject`
/// stops at 5 GB); a larger one is copied by reading and writing it.
const COPY_MAX: u64 = 5_000_000_000;

/// The longest a presigned URL can be valid for (S3: 7 days).
const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// The size of the reads that stream one object into another.
const COPY_BUFFER: usize = 1 << 20;

/// Release content on an object store: `content/sha256/<hex>`.
pub struct ObjectContentStore {
    bucket: Arc<Bucket>,
}

impl ObjectContentStore {
    pub(crate) fn new(bucket: Arc<Bucket>) -> ObjectContentStore {
        ObjectContentStore { bucket }
    }

    fn key(&self, digest: &Hash) -> Path {
        let digest = Digest::from(digest);
        self.bucket.key(&["content", "sha256", digest.hex()])
    }
}

impl ContentStore for ObjectContentStore {
    fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let parts: Vec<&str> = std::iter::once("tiles").chain(path.split('/')).collect();
        let key = self.bucket.key(&parts);
        // A full tile is at most 64 KiB of hashes (entry bundles may be
        // larger): read it whole.
        let Some(size) = self.bucket.size(&key)? else {
            return Ok(None);
        };
        let Some(mut reader) = self.bucket.read(&key, 0, size)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(&mut reader, &mut bytes)
            .map_err(|e| StoreError::Backend(format!("cannot read the tile `{path}`: {e}")))?;
        Ok(Some(bytes))
    }

    fn put_tile(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let parts: Vec<&str> = std::iter::once("tiles").chain(path.split('/')).collect();
        let key = self.bucket.key(&parts);
        self.bucket.put(&key, Bytes::copy_from_slice(bytes))
    }

    fn begin(&self) -> Result<Box<dyn PendingContent>, StoreError> {
        let tmp = self.bucket.temporary_key()?;
        Ok(Box::new(ObjectPending {
            writer: ObjectWriter::new(self.bucket.clone(), tmp),
            bucket: self.bucket.clone(),
            content: ObjectContentStore::new(self.bucket.clone()),
        }))
    }

    fn size(&self, digest: &Hash) -> Result<Option<u64>, StoreError> {
        self.bucket.size(&self.key(digest))
    }

    fn read(&self, digest: &Hash, start: u64, len: u64) -> Result<Option<ByteReader>, StoreError> {
        self.bucket.read(&self.key(digest), start, len)
    }

    fn remove(&self, digest: &Hash) -> Result<(), StoreError> {
        self.bucket.delete(&self.key(digest))
    }

    /// A presigned `GET` of the content, valid for the configured time or
    /// `valid_for`, whichever is longer, when the store presigns
    /// ([`crate::ObjectOptions::presign`]) and `valid_for` is within S3's
    /// limit of 7 days. The store is not asked whether the content is
    /// there: ask for content known to be stored.
    fn download_url(
        &self,
        digest: &Hash,
        valid_for: Duration,
    ) -> Result<Option<String>, StoreError> {
        let (Some(ttl), Some(signer)) = (self.bucket.options.presign, self.bucket.signer.clone())
        else {
            return Ok(None);
        };
        if valid_for > PRESIGN_MAX {
            return Ok(None);
        }
        let expires = ttl.max(valid_for).min(PRESIGN_MAX);
        let key = self.key(digest);
        let at = key.clone();
        let url = self
            .bucket
            .run(async move { signer.signed_url(http::Method::GET, &at, expires).await })?
            .map_err(|e| failed("presign a download of", &key, &e))?;
        Ok(Some(url.to_string()))
    }
}

/// Content being written: to `tmp/` as a multipart upload once larger than
/// a part, else kept in memory; placed at its digest by the commit.
struct ObjectPending {
    writer: ObjectWriter,
    bucket: Arc<Bucket>,
    content: ObjectContentStore,
}

impl PendingContent for ObjectPending {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.writer.write(bytes)
    }

    fn commit(mut self: Box<Self>, digest: &Hash) -> Result<(), StoreError> {
        let key = self.content.key(digest);
        if let Some(bytes) = self.writer.take_small() {
            if self.bucket.size(&key)?.is_none() {
                self.bucket.put(&key, bytes)?;
            }
            return Ok(());
        }
        let ObjectPending { writer, bucket, .. } = *self;
        let tmp = writer.key().clone();
        let size = writer.size();
        writer.complete()?;
        let placed = match bucket.size(&key) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => place(&bucket, &tmp, &key, size),
            Err(e) => Err(e),
        };
        if let Err(e) = bucket.delete(&tmp) {
            tracing::warn!(%tmp, error = %e, "cannot remove a committed upload's temporary object");
        }
        placed
    }
}

/// Copies the object `from` (of `size` bytes) to `to`: in the store where
/// it can, else by streaming it through.
fn place(bucket: &Arc<Bucket>, from: &Path, to: &Path, size: u64) -> Result<(), StoreError> {
    if size <= COPY_MAX {
        return bucket.copy(from, to);
    }
    let mut reader = bucket
        .read(from, 0, size)?
        .ok_or_else(|| StoreError::Backend(format!("`{from}` vanished before its copy")))?;
    let mut writer = ObjectWriter::new(bucket.clone(), to.clone());
    let mut buffer = vec![0u8; COPY_BUFFER];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| StoreError::io(format_args!("cannot copy `{from}`"), &e))?;
        if n == 0 {
            break;
        }
        writer.write(&buffer[..n])?;
    }
    writer.complete()
}

/// OCI blobs (`blobs/<algorithm>/<hex>`) and upload sessions
/// (`uploads/<id>/<offset>`) on an object store.
pub struct ObjectBlobStore {
    bucket: Arc<Bucket>,
}

/// The object of a session's chunk starting at `offset`.
fn part_key(session: &Path, offset: u64) -> Path {
    session.clone().join(format!("{offset:020}"))
}

/// The chunks of a session, in order, and its size.
struct Parts {
    parts: Vec<(Path, u64)>,
    size: u64,
}

impl ObjectBlobStore {
    pub(crate) fn new(bucket: Arc<Bucket>) -> ObjectBlobStore {
        ObjectBlobStore { bucket }
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        self.bucket
            .key(&["blobs", digest.algorithm().name(), digest.hex()])
    }

    fn session_key(&self, id: &str) -> Result<Path, StoreError> {
        if !is_session_id(id) {
            return Err(StoreError::Backend(format!("bad upload session id `{id}`")));
        }
        Ok(self.bucket.key(&["uploads", id]))
    }

    /// The session's chunks, if it has any object; they must follow each
    /// other without a gap.
    fn parts(&self, id: &str) -> Result<Option<Parts>, StoreError> {
        let listed = self.bucket.list(&self.session_key(id)?)?;
        if listed.is_empty() {
            return Ok(None);
        }
        let mut parts: Vec<(u64, Path, u64)> = listed
            .into_iter()
            .filter_map(|meta| {
                let offset = meta.location.filename()?.parse::<u64>().ok()?;
                Some((offset, meta.location, meta.size))
            })
            .collect();
        parts.sort_by_key(|(offset, _, _)| *offset);
        let mut size = 0u64;
        for (offset, key, len) in &parts {
            if *offset != size {
                return Err(StoreError::Corrupt(format!(
                    "upload session `{id}` has {size} bytes up to `{key}`, which starts at {offset}"
                )));
            }
            size += len;
        }
        Ok(Some(Parts {
            parts: parts.into_iter().map(|(_, key, len)| (key, len)).collect(),
            size,
        }))
    }

    fn delete_parts(&self, id: &str) -> Result<(), StoreError> {
        let keys = self
            .bucket
            .list(&self.session_key(id)?)?
            .into_iter()
            .map(|meta| meta.location)
            .collect();
        self.bucket.delete_all(keys)
    }
}

fn is_session_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Appends to a session: the bytes of one turn become one object at the
/// session's size when flushed; unflushed bytes are dropped with the writer.
struct ObjectSession {
    bucket: Arc<Bucket>,
    session: Path,
    size: u64,
    writer: Option<ObjectWriter>,
}

impl SessionWriter for ObjectSession {
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let writer = match self.writer.as_mut() {
            Some(writer) => writer,
            None => self.writer.insert(ObjectWriter::new(
                self.bucket.clone(),
                part_key(&self.session, self.size),
            )),
        };
        writer.write(bytes)
    }

    fn flush(&mut self) -> Result<u64, StoreError> {
        if let Some(writer) = self.writer.take() {
            let written = writer.size();
            writer.complete()?;
            self.size += written;
        }
        Ok(self.size)
    }
}

impl BlobStore for ObjectBlobStore {
    fn size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.bucket.size(&self.blob_key(digest))
    }

    fn read(
        &self,
        digest: &Digest,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError> {
        self.bucket.read(&self.blob_key(digest), start, len)
    }

    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        self.bucket.delete(&self.blob_key(digest))
    }

    fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        let key = self.blob_key(digest);
        if self.bucket.size(&key)?.is_some() {
            return Ok(());
        }
        self.bucket.put(&key, Bytes::copy_from_slice(bytes))
    }

    fn create_session(&self, id: &str) -> Result<(), StoreError> {
        let session = self.session_key(id)?;
        self.delete_parts(id)?;
        self.bucket.put(&part_key(&session, 0), Bytes::new())
    }

    fn session_size(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.parts(id)?.map(|parts| parts.size))
    }

    fn append_session(&self, id: &str) -> Result<Box<dyn SessionWriter>, StoreError> {
        let Some(parts) = self.parts(id)? else {
            return Err(StoreError::Backend(format!(
                "cannot open upload session `{id}`: it has no bytes stored"
            )));
        };
        Ok(Box::new(ObjectSession {
            bucket: self.bucket.clone(),
            session: self.session_key(id)?,
            size: parts.size,
            writer: None,
        }))
    }

    fn finish_session(&self, id: &str, digest: &Digest) -> Result<Finished, StoreError> {
        let Some(Parts { parts, size }) = self.parts(id)? else {
            return Err(StoreError::Backend(format!(
                "cannot finish upload session `{id}`: it has no bytes stored"
            )));
        };
        let key = self.blob_key(digest);
        // A blob already stored is only checked against, not written again.
        let mut writer = match self.bucket.size(&key)? {
            Some(_) => None,
            None => Some(ObjectWriter::new(self.bucket.clone(), key.clone())),
        };
        let mut digester = Digester::new(digest.algorithm());
        let mut buffer = vec![0u8; COPY_BUFFER];
        let mut read = 0u64;
        for (part, len) in parts {
            if len == 0 {
                continue;
            }
            let mut reader = self.bucket.read(&part, 0, len)?.ok_or_else(|| {
                StoreError::Backend(format!("`{part}` vanished while its session was finished"))
            })?;
            loop {
                let n = reader
                    .read(&mut buffer)
                    .map_err(|e| StoreError::io(format_args!("cannot read `{part}`"), &e))?;
                if n == 0 {
                    break;
                }
                digester.update(&buffer[..n]);
                if let Some(writer) = writer.as_mut() {
                    writer.write(&buffer[..n])?;
                }
                read += n as u64;
            }
        }
        if read != size {
            return Err(StoreError::Backend(format!(
                "upload session `{id}` changed while it was finished: {read} bytes read of {size}"
            )));
        }
        let found = digester.finish();
        if &found != digest {
            // The writer is dropped: its upload, if any, is aborted.
            return Ok(Finished::Mismatch { found });
        }
        if let Some(writer) = writer {
            writer.complete()?;
        }
        if let Err(e) = self.delete_parts(id) {
            // The blob is stored; the session's bytes are left for the
            // sweep of orphan sessions.
            tracing::warn!(id, error = %e, "cannot remove a finished upload session's bytes");
        }
        Ok(Finished::Stored { size })
    }

    fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        self.delete_parts(id)
    }

    fn sessions(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .bucket
            .list_directories(&self.bucket.key(&["uploads"]))?
            .into_iter()
            .filter(|id| is_session_id(id))
            .collect())
    }
}
