//! Streams of an object's bytes: a blocking reader over ranged `GET`s, and
//! a writer that is one `PUT` when small and a multipart upload when not.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use cairn_registry::StoreError;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use crate::{failed, run, Bucket};

/// The body of a `GET`, chunk by chunk.
pub(crate) type Chunks = BoxStream<'static, object_store::Result<Bytes>>;

/// How many times in a row a read may fail (and start again where it
/// stopped, with a new request) before the error is the reader's.
pub(crate) const READ_ATTEMPTS: u32 = 3;

/// How many parts of one upload may be in flight while the writer goes on.
const PARTS_IN_FLIGHT: usize = 2;

/// A blocking reader of `start..end` of an object: it pulls the body of a
/// ranged `GET` one chunk at a time, holding one chunk. When the body
/// fails (a dropped connection, or the request timeout passing while the
/// consumer is slow) it asks again from where it is.
pub(crate) struct ObjectReader {
    bucket: Arc<Bucket>,
    key: Path,
    position: u64,
    end: u64,
    chunks: Option<Chunks>,
    chunk: Bytes,
    failures: u32,
}

impl ObjectReader {
    /// A reader of `start..end` of `key` whose first request is `chunks`.
    pub(crate) fn new(
        bucket: Arc<Bucket>,
        key: Path,
        start: u64,
        end: u64,
        chunks: Chunks,
    ) -> ObjectReader {
        ObjectReader {
            bucket,
            key,
            position: start,
            end,
            chunks: Some(chunks),
            chunk: Bytes::new(),
            failures: 0,
        }
    }

    fn again(&mut self) -> io::Result<Chunks> {
        match self
            .bucket
            .get(&self.key, self.position, self.end)
            .map_err(io::Error::other)?
        {
            Ok(chunks) => Ok(chunks),
            Err(e) => Err(io::Error::other(failed("read", &self.key, &e))),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.chunk.is_empty() {
                let n = buf.len().min(self.chunk.len());
                buf[..n].copy_from_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                return Ok(n);
            }
            if self.position >= self.end {
                return Ok(0);
            }
            let chunks = match self.chunks.take() {
                Some(chunks) => chunks,
                None => self.again()?,
            };
            let (chunks, next) = run(&self.bucket.runtime, async move {
                let mut chunks = chunks;
                let next = chunks.next().await;
                (chunks, next)
            })
            .map_err(io::Error::other)?;
            match next {
                Some(Ok(bytes)) => {
                    let room = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
                    let bytes = if bytes.len() > room {
                        bytes.slice(..room)
                    } else {
                        bytes
                    };
                    self.position += bytes.len() as u64;
                    self.chunk = bytes;
                    self.chunks = Some(chunks);
                    if !self.chunk.is_empty() {
                        self.failures = 0;
                    }
                }
                // The object ends before `end`: so does the read.
                None => self.end = self.position,
                Some(Err(e)) => {
                    self.failures += 1;
                    if self.failures >= READ_ATTEMPTS {
                        return Err(io::Error::other(failed("read", &self.key, &e)));
                    }
                    tracing::debug!(key = %self.key, error = %e, position = self.position,
                        "an object read failed; reading on with a new request");
                }
            }
        }
    }
}

/// A writer of one object at `key`: bytes gather into a part; an object no
/// larger than one part is written by one `PUT` ([`ObjectWriter::complete`]),
/// a larger one streams as a multipart upload, invisible until completed.
/// Dropped before completion, it aborts its multipart upload (in the
/// background, best effort).
pub(crate) struct ObjectWriter {
    bucket: Arc<Bucket>,
    key: Path,
    buffer: BytesMut,
    upload: Option<Box<dyn MultipartUpload>>,
    parts: VecDeque<JoinHandle<object_store::Result<()>>>,
    size: u64,
}

impl ObjectWriter {
    pub(crate) fn new(bucket: Arc<Bucket>, key: Path) -> ObjectWriter {
        ObjectWriter {
            bucket,
            key,
            buffer: BytesMut::new(),
            upload: None,
            parts: VecDeque::new(),
            size: 0,
        }
    }

    /// Where the object goes.
    pub(crate) fn key(&self) -> &Path {
        &self.key
    }

    /// How many bytes were written.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes; a full part is sent once more bytes follow it.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        let part_size = self.bucket.options.part_size;
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.buffer.len() >= part_size {
                self.send_part()?;
            }
            if self.buffer.capacity() == 0 {
                self.buffer
                    .reserve(part_size.min(bytes.len().max(64 << 10)));
            }
            let take = (part_size - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// The bytes, if they were all kept here (no part was sent): the
    /// caller writes them; this writer then has nothing left to do.
    pub(crate) fn take_small(&mut self) -> Option<Bytes> {
        self.upload.is_none().then(|| self.buffer.split().freeze())
    }

    /// Writes the object: one `PUT` of the bytes if no part was sent, else
    /// the last part and the completion of the multipart upload.
    pub(crate) fn complete(mut self) -> Result<(), StoreError> {
        if let Some(bytes) = self.take_small() {
            return self.bucket.put(&self.key, bytes);
        }
        if !self.buffer.is_empty() {
            self.send_part()?;
        }
        while !self.parts.is_empty() {
            self.wait_part()?;
        }
        let Some(upload) = self.upload.take() else {
            return Err(StoreError::Backend(format!(
                "no multipart upload to complete for `{}`",
                self.key
            )));
        };
        let (upload, completed) = self.bucket.run(async move {
            let mut upload = upload;
            let completed = upload.complete().await;
            (upload, completed)
        })?;
        if let Err(e) = completed {
            // Dropping the writer aborts it.
            self.upload = Some(upload);
            return Err(failed("complete the multipart upload of", &self.key, &e));
        }
        Ok(())
    }

    /// Sends the buffer as the next part, starting the multipart upload
    /// first if need be; waits while too many parts are in flight.
    fn send_part(&mut self) -> Result<(), StoreError> {
        let upload = match self.upload.as_mut() {
            Some(upload) => upload,
            None => {
                let store = self.bucket.store.clone();
                let key = self.key.clone();
                let upload = self
                    .bucket
                    .run(async move { store.put_multipart(&key).await })?
                    .map_err(|e| failed("start a multipart upload of", &self.key, &e))?;
                self.upload.insert(upload)
            }
        };
        let part = upload.put_part(PutPayload::from(self.buffer.split().freeze()));
        self.parts.push_back(self.bucket.runtime.spawn(part));
        while self.parts.len() > PARTS_IN_FLIGHT {
            self.wait_part()?;
        }
        Ok(())
    }

    /// Waits for the oldest part in flight.
    fn wait_part(&mut self) -> Result<(), StoreError> {
        let Some(part) = self.parts.pop_front() else {
            return Ok(());
        };
        match self.bucket.run(part)? {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(failed("upload a part of", &self.key, &e)),
            Err(e) => Err(StoreError::Backend(format!(
                "uploading a part of `{}` failed: {e}",
                self.key
            ))),
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let parts = std::mem::take(&mut self.parts);
        let key = self.key.clone();
        self.bucket.runtime.spawn(async move {
            for part in parts {
                let _ = part.await;
            }
            if let Err(e) = upload.abort().await {
                tracing::warn!(%key, error = %e, "cannot abort an unfinished multipart upload");
            }
        });
    }
}
