//! Upload sessions: a blob pushed in one request or in chunks. A session
//! has one writer at a time (a second request on a busy session is refused
//! at once), so its size limit holds against parallel requests and its
//! bytes cannot change while they are hashed and stored.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::digest::Digest;
use super::error::{ErrorCode, Hint, OciError};
use super::names::check_repository;
use super::store::{BlobStore, Finished, OciStore, SessionWriter, UploadSession};
use super::Oci;

/// The ids of sessions a request is writing to.
#[derive(Default)]
pub(crate) struct Busy(Arc<Mutex<HashSet<String>>>);

/// A session held by one request; released when dropped.
struct Held {
    busy: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Busy {
    fn hold(&self, id: &str) -> Result<Held, OciError> {
        let mut busy = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(id.to_owned()) {
            return Err(OciError::new(
                ErrorCode::Busy,
                format!(
                    "upload `{id}` is being written by another request; send its chunks one after \
                     the other"
                ),
            ));
        }
        Ok(Held {
            busy: self.0.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A request's turn at writing to an upload session: chunks are appended
/// with [`Chunk::write`], which ends the session once the blob would pass
/// the size limit; then [`Chunk::finish`] (a `PATCH`) or
/// [`Chunk::complete`] (the final `PUT`).
pub struct Chunk {
    writer: Box<dyn SessionWriter>,
    repository: String,
    id: String,
    size: u64,
    limit: u64,
    blobs: Arc<dyn BlobStore>,
    store: Arc<dyn OciStore>,
    now: u64,
    _held: Held,
}

impl Chunk {
    /// Ends the session after a failure: its bytes and its row go, so a
    /// failed write (a full disk) leaves nothing behind.
    fn abandon(&self) {
        if let Err(e) = self.blobs.delete_session(&self.id) {
            tracing::warn!(id = %self.id, error = %e, "cannot remove a failed upload's bytes");
        }
        if let Err(e) = self.store.delete_upload(&self.id) {
            tracing::warn!(id = %self.id, error = %e, "cannot remove a failed upload session");
        }
    }

    /// Appends bytes. A blob that would grow beyond the limit ends the
    /// session: its bytes are removed and the error says so. So does a
    /// failure to write (a full disk): the session's bytes are removed at
    /// once rather than left to expire.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), OciError> {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.limit {
            self.abandon();
            return Err(OciError::new(
                ErrorCode::TooLarge,
                format!(
                    "the blob is larger than this registry's limit of {} bytes; upload `{}` \
                     was ended",
                    self.limit, self.id
                ),
            )
            .with_hint(Hint::BlobLimit));
        }
        if let Err(e) = self.writer.write(bytes) {
            self.abandon();
            return Err(OciError::from(e).ended(&self.id));
        }
        Ok(())
    }

    /// Ends this request's turn: what it wrote is durable. Returns the
    /// session's size. A failure ends the session (see [`Chunk::write`]).
    pub fn finish(mut self) -> Result<u64, OciError> {
        let size = match self.writer.flush() {
            Ok(size) => size,
            Err(e) => {
                self.abandon();
                return Err(OciError::from(e).ended(&self.id));
            }
        };
        self.store.touch_upload(&self.id, self.now)?;
        Ok(size)
    }

    /// Ends the session: its bytes must have `digest`; they become that blob
    /// in the repository. The session ends either way.
    pub fn complete(mut self, digest: &Digest) -> Result<u64, OciError> {
        let flushed = self.writer.flush();
        let finished = flushed.and_then(|_| self.blobs.finish_session(&self.id, digest));
        let end = |e: OciError| {
            let _ = self.blobs.delete_session(&self.id);
            let _ = self.store.delete_upload(&self.id);
            e
        };
        match finished.map_err(|e| end(e.into()))? {
            Finished::Stored { size } => {
                self.store.link_blob(&self.repository, digest)?;
                self.store.delete_upload(&self.id)?;
                Ok(size)
            }
            Finished::Mismatch { found } => Err(end(OciError::new(
                ErrorCode::DigestInvalid,
                format!("uploaded bytes have digest `{found}`, not `{digest}`"),
            ))),
        }
    }
}

/// A fresh upload session id: 128 random bits, hex.
fn new_session_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Oci {
    /// Starts an upload session for `account`; returns its id. An account
    /// holds at most [`OciConfig::max_uploads_per_account`] sessions open,
    /// and the registry [`OciConfig::max_uploads`].
    ///
    /// [`OciConfig::max_uploads_per_account`]: super::OciConfig::max_uploads_per_account
    /// [`OciConfig::max_uploads`]: super::OciConfig::max_uploads
    pub fn start_upload(&self, repository: &str, account: &str) -> Result<String, OciError> {
        check_repository(repository)?;
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let expiry = self.config.upload_expiry.as_secs().div_ceil(60);
        let mine = self.store.count_uploads(Some(account))?;
        if mine >= self.config.max_uploads_per_account {
            return Err(OciError::new(
                ErrorCode::TooMany,
                format!(
                    "account `{account}` has {mine} upload sessions open, the most this registry \
                     allows; finish or cancel them (DELETE their upload URL), or wait for unused \
                     ones to expire ({expiry} min after their last write)"
                ),
            ));
        }
        let all = self.store.count_uploads(None)?;
        if all >= self.config.max_uploads {
            return Err(OciError::new(
                ErrorCode::TooMany,
                format!(
                    "the registry has {all} upload sessions open, the most it allows; retry \
                     later (unused sessions expire {expiry} min after their last write)"
                ),
            ));
        }
        let id = new_session_id();
        self.blobs.create_session(&id)?;
        if let Err(e) = self.store.create_upload(&UploadSession {
            id: id.clone(),
            repository: repository.to_owned(),
            account: account.to_owned(),
            updated: self.now(),
        }) {
            let _ = self.blobs.delete_session(&id);
            return Err(e.into());
        }
        Ok(id)
    }

    /// How many upload sessions are open.
    pub fn open_uploads(&self) -> Result<u64, OciError> {
        Ok(self.store.count_uploads(None)?)
    }

    fn session(&self, repository: &str, id: &str) -> Result<UploadSession, OciError> {
        match self.store.upload(id)? {
            Some(s) if s.repository == repository => Ok(s),
            _ => Err(OciError::new(
                ErrorCode::BlobUploadUnknown,
                format!(
                    "upload `{id}` is not known in repository `{repository}` (it may have expired)"
                ),
            )),
        }
    }

    /// The number of bytes an upload session holds.
    pub fn upload_size(&self, repository: &str, id: &str) -> Result<u64, OciError> {
        self.session(repository, id)?;
        self.blobs.session_size(id)?.ok_or_else(|| {
            OciError::new(
                ErrorCode::BlobUploadUnknown,
                format!("upload `{id}` has no data (it may have expired)"),
            )
        })
    }

    /// Takes the session for this request and opens it to append a chunk
    /// starting at `start` (from `Content-Range`, if given): it must start
    /// where the bytes end.
    pub fn open_chunk(
        &self,
        repository: &str,
        id: &str,
        start: Option<u64>,
    ) -> Result<Chunk, OciError> {
        let held = self.busy.hold(id)?;
        let size = self.upload_size(repository, id)?;
        if let Some(start) = start {
            if start != size {
                return Err(OciError::new(
                    ErrorCode::RangeInvalid,
                    format!("chunk starts at byte {start}, but the upload holds {size} bytes"),
                ));
            }
        }
        Ok(Chunk {
            writer: self.blobs.append_session(id)?,
            repository: repository.to_owned(),
            id: id.to_owned(),
            size,
            limit: self.config.max_blob_bytes,
            blobs: self.blobs.clone(),
            store: self.store.clone(),
            now: self.now(),
            _held: held,
        })
    }

    /// Cancels an upload session.
    pub fn cancel_upload(&self, repository: &str, id: &str) -> Result<(), OciError> {
        let _held = self.busy.hold(id)?;
        self.session(repository, id)?;
        self.blobs.delete_session(id)?;
        self.store.delete_upload(id)?;
        Ok(())
    }

    /// Removes the bytes of sessions the store does not know (left by a
    /// crash between writing and recording, or by a failed removal), and
    /// sessions whose bytes are gone; returns how many. Runs at start and
    /// with every expiry sweep, so no upload file outlives its session.
    pub fn remove_orphan_uploads(&self) -> Result<usize, OciError> {
        // Sessions are started (bytes, then row) under this lock.
        let _starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        let rows: HashSet<String> = self.store.stale_uploads(u64::MAX)?.into_iter().collect();
        let files: HashSet<String> = self.blobs.sessions()?.into_iter().collect();
        let mut removed = 0;
        for id in files.difference(&rows) {
            let Ok(_held) = self.busy.hold(id) else {
                continue;
            };
            self.blobs.delete_session(id)?;
            removed += 1;
        }
        for id in rows.difference(&files) {
            let Ok(_held) = self.busy.hold(id) else {
                continue;
            };
            self.store.delete_upload(id)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes sessions not written to within the expiry (and not being
    /// written to now); returns how many.
    pub fn expire_uploads(&self) -> Result<usize, OciError> {
        let before = self
            .now()
            .saturating_sub(self.config.upload_expiry.as_secs());
        let mut removed = 0;
        for id in self.store.stale_uploads(before)? {
            let Ok(_held) = self.busy.hold(&id) else {
                continue;
            };
            self.blobs.delete_session(&id)?;
            self.store.delete_upload(&id)?;
            removed += 1;
        }
        Ok(removed)
    }
}
