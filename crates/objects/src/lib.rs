//! Release content and OCI blobs on an S3-compatible object store (or in
//! memory, for tests), with the semantics of `cairn-store`'s file stores:
//! bytes become visible only when committed, reads are ranged streams,
//! upload sessions are appended to in chunks and finished through a digest
//! check.
//!
//! # Layout
//!
//! Under one bucket and prefix ([`ObjectStores::from_url`]):
//!
//! - `<prefix>/content/sha256/<hex>`: release content (the
//!   [`ContentStore`](cairn_registry::ContentStore)), only what passed the
//!   content door;
//! - `<prefix>/blobs/<algorithm>/<hex>`: OCI blobs (the
//!   [`BlobStore`](cairn_registry::oci::BlobStore)), any artifact's bytes,
//!   kept apart from release content;
//! - `<prefix>/uploads/<session id>/<offset>`: the bytes of an OCI upload
//!   session, one object per flushed chunk, named by the offset of its
//!   first byte (20 digits, zero-padded, so names sort as offsets); a new
//!   session is one empty object at offset 0;
//! - `<prefix>/tmp/<random>`: large release content being committed.
//!
//! Small writes are one `PUT` at the final key when committed. Larger ones
//! stream as a multipart upload (parts of [`ObjectOptions::part_size`],
//! at least 5 MiB, as S3 requires), invisible until completed: release
//! content goes to `tmp/` (its digest is known only at the commit) and is
//! then copied into place; a finished upload session goes straight to its
//! blob's key, completed only if the digest matched. A writer dropped
//! before its commit aborts its multipart upload (best effort: a bucket
//! should also have a lifecycle rule that aborts incomplete multipart
//! uploads, and [`ObjectStores::remove_stale_temporaries`] removes what a
//! crash left in `tmp/`).
//!
//! # The runtime
//!
//! The storage traits are synchronous; they are called from plain threads
//! and from tokio's blocking pool, possibly from a thread inside another
//! runtime. The crate owns one small tokio runtime (2 worker threads named
//! `cairn-objects`, started by the first [`ObjectStores::from_url`]): each
//! request is spawned there and the calling thread waits for its answer on
//! a channel (never `block_on`, which panics inside another runtime). Every
//! request is bounded by the connect and request timeouts and a bounded
//! number of retries ([`ObjectOptions`]).

mod bytes_io;
mod stores;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cairn_registry::{ByteReader, StoreError};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutPayload, RetryConfig,
};
use tokio::runtime::{Handle, Runtime};

pub use object_store;
pub use stores::{ObjectBlobStore, ObjectContentStore};

/// The smallest part of a multipart upload S3 accepts (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// How the stores talk to the object store.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectOptions {
    /// Hand out presigned download URLs of release content, valid for at
    /// least this long ([`cairn_registry::ContentStore::download_url`]);
    /// `None`: the registry serves the bytes itself. Only `s3://` stores
    /// can presign.
    pub presign: Option<Duration>,
    /// The longest a connection may take to open (unless `AWS_CONNECT_TIMEOUT`
    /// says otherwise).
    pub connect_timeout: Duration,
    /// The longest one request may take, its body included (unless
    /// `AWS_TIMEOUT` says otherwise). A read that outlives it (a slow
    /// reader of a large object) goes on with a new ranged request.
    pub request_timeout: Duration,
    /// How many times a failed request is retried.
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// The size of the parts of multipart uploads (at least
    /// [`MIN_PART_SIZE`]); writes smaller than this are one `PUT`. Each
    /// writer holds up to three parts in memory.
    pub part_size: usize,
    /// S3 settings by the names of their variables (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, ...), taking the place of the environment's:
    /// for a process that serves more than one store, and for tests.
    pub settings: Vec<(String, String)>,
}

impl Default for ObjectOptions {
    fn default() -> ObjectOptions {
        ObjectOptions {
            presign: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
            part_size: 8 << 20,
            settings: Vec::new(),
        }
    }
}

impl fmt::Debug for ObjectOptions {
    /// Names the settings, never their values (they hold secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings: Vec<&str> = self
            .settings
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        f.debug_struct("ObjectOptions")
            .field("presign", &self.presign)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .field("part_size", &self.part_size)
            .field("settings", &settings)
            .finish()
    }
}

/// The release content store and the OCI blob store under one bucket and
/// prefix.
pub struct ObjectStores {
    /// Release content (`content/sha256/<hex>`).
    pub content: ObjectContentStore,
    /// OCI blobs and upload sessions (`blobs/`, `uploads/`).
    pub blobs: ObjectBlobStore,
    bucket: Arc<Bucket>,
}

impl fmt::Debug for ObjectStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStores")
            .field("url", &self.bucket.url)
            .finish_non_exhaustive()
    }
}

impl ObjectStores {
    /// Opens the stores at `url`:
    ///
    /// - `s3://<bucket>` or `s3://<bucket>/<prefix>`: an S3-compatible
    ///   store, configured from the usual AWS variables
    ///   (`AmazonS3Builder::from_env`): `AWS_ENDPOINT_URL` (a custom
    ///   endpoint, addressed path-style), `AWS_REGION` or
    ///   `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP` (`true` for a plain-HTTP
    ///   endpoint);
    /// - `memory://` or `memory:///<prefix>`: a new, empty in-memory store
    ///   (for tests; nothing is shared between two calls).
    ///
    /// Nothing is requested from the store here: a wrong endpoint or
    /// credentials show at the first read or write.
    pub fn from_url(url: &str, options: ObjectOptions) -> Result<ObjectStores, StoreError> {
        let bad = |why: &str| StoreError::Backend(format!("bad object store URL `{url}`: {why}"));
        let (store, signer, prefix): (Arc<dyn ObjectStore>, _, &str) =
            if let Some(rest) = url.strip_prefix("s3://") {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket"));
                }
                let s3 = Arc::new(s3_store(bucket, &options)?);
                (s3.clone(), Some(s3), prefix)
            } else if let Some(rest) = url.strip_prefix("memory://") {
                (Arc::new(InMemory::new()), None, rest)
            } else {
                return Err(bad("expected s3://<bucket>/<prefix> or memory://"));
            };
        let prefix = Path::parse(prefix.trim_matches('/')).map_err(|e| bad(&e.to_string()))?;
        ObjectStores::open(store, signer, prefix, options, url)
    }

    /// The stores under `prefix` of any `object_store` store (Google Cloud
    /// Storage, Azure, a wrapper that injects faults in tests, ...),
    /// without presigned URLs.
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        options: ObjectOptions,
    ) -> Result<ObjectStores, StoreError> {
        let name = format!("{store}/{prefix}");
        let prefix = Path::parse(prefix.trim_matches('/'))
            .map_err(|e| StoreError::Backend(format!("bad object store prefix `{prefix}`: {e}")))?;
        ObjectStores::open(store, None, prefix, options, &name)
    }

    fn open(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<AmazonS3>>,
        prefix: Path,
        options: ObjectOptions,
        url: &str,
    ) -> Result<ObjectStores, StoreError> {
        let bucket = Arc::new(Bucket {
            store,
            signer,
            prefix,
            runtime: runtime()?,
            options: ObjectOptions {
                part_size: options.part_size.max(MIN_PART_SIZE),
                ..options
            },
            url: url.to_owned(),
        });
        Ok(ObjectStores {
            content: ObjectContentStore::new(bucket.clone()),
            blobs: ObjectBlobStore::new(bucket.clone()),
            bucket,
        })
    }

    /// Removes what crashed commits left in `tmp/`: objects last written
    /// before `before` (say an hour ago: younger ones may be commits under
    /// way, here or in another process sharing the bucket). Returns how
    /// many went.
    pub fn remove_stale_temporaries(&self, before: SystemTime) -> Result<usize, StoreError> {
        let before = before
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let bucket = &self.bucket;
        let stale: Vec<Path> = bucket
            .list(&bucket.key(&["tmp"]))?
            .into_iter()
            .filter(|meta| meta.last_modified.timestamp() < before)
            .map(|meta| meta.location)
            .collect();
        let count = stale.len();
        bucket.delete_all(stale)?;
        Ok(count)
    }
}

/// An S3 store for `bucket`, from the AWS variables, with the timeouts and
/// retries of `options` (the variables win where they set them).
fn s3_store(bucket: &str, options: &ObjectOptions) -> Result<AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (name, value) in &options.settings {
        let key: AmazonS3ConfigKey = name
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| StoreError::Backend(format!("unknown S3 setting `{name}`: {e}")))?;
        builder = builder.with_config(key, value);
    }
    let defaults = [
        (ClientConfigKey::ConnectTimeout, options.connect_timeout),
        (ClientConfigKey::Timeout, options.request_timeout),
    ];
    for (key, value) in defaults {
        let key = AmazonS3ConfigKey::Client(key);
        if builder.get_config_value(&key).is_none() {
            builder = builder.with_config(key, format!("{}ms", value.as_millis()));
        }
    }
    builder
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: options.max_retries,
            retry_timeout: options.retry_timeout,
        })
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot configure the S3 store `{bucket}`: {e}")))
}

/// The crate's runtime, started on first use.
fn runtime() -> Result<Handle, StoreError> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle().clone());
    }
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.handle().clone());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-objects")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Backend(format!("cannot start the object store runtime: {e}")))?;
    let handle = runtime.handle().clone();
    if let Err(runtime) = RUNTIME.set(runtime) {
        // Not reached (the lock is held); never dropped in place, which
        // panics inside another runtime.
        runtime.shutdown_background();
    }
    Ok(handle)
}

/// Runs `future` on the crate's runtime and waits for its output on this
/// thread, which may be any thread but one of that runtime's own.
fn run<T, F>(runtime: &Handle, future: F) -> Result<T, StoreError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver.recv().map_err(|_| {
        StoreError::Backend("the object store runtime dropped a request (it stopped)".to_owned())
    })
}

/// A failed request as a [`StoreError`]: [`StoreError::Full`] where the
/// store says it is out of room or quota, else [`StoreError::Backend`],
/// naming the operation and the key.
fn failed(what: &str, key: &Path, e: &object_store::Error) -> StoreError {
    let message = format!("cannot {what} `{key}`: {e}");
    let mut causes = message.clone();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        causes.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if says_full(&causes) {
        StoreError::Full(message)
    } else {
        StoreError::Backend(message)
    }
}

/// Whether an error's text says the store is out of room or quota (HTTP
/// 507; the codes MinIO, Ceph and others answer with).
fn says_full(text: &str) -> bool {
    [
        "507 Insufficient Storage",
        "InsufficientStorage",
        "XMinioStorageFull",
        "QuotaExceeded",
        "StorageFull",
    ]
    .iter()
    .any(|code| text.contains(code))
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// One bucket and prefix, and the runtime that talks to it.
struct Bucket {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<AmazonS3>>,
    prefix: Path,
    runtime: Handle,
    options: ObjectOptions,
    url: String,
}

impl Bucket {
    /// `<prefix>/<parts...>`.
    fn key(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.prefix.clone(), |key, part| key.join(*part))
    }

    fn run<T, F>(&self, future: F) -> Result<T, StoreError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        run(&self.runtime, future)
    }

    /// A fresh `tmp/` key.
    fn temporary_key(&self) -> Result<Path, StoreError> {
        let mut id = [0u8; 16];
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut id)
            .map_err(|e| StoreError::Backend(format!("no randomness for a temporary key: {e}")))?;
        Ok(self.key(&["tmp", &hex::encode(id)]))
    }

    /// The size of the object at `key`, if there is one.
    fn size(&self, key: &Path) -> Result<Option<u64>, StoreError> {
        let store = self.store.clone();
        let at = key.clone();
        match self.run(async move { store.head(&at).await })? {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(failed("read the size of", key, &e)),
        }
    }

    /// Writes `bytes` at `key` in one request.
    fn put(&self, key: &Path, bytes: Bytes) -> Result<(), StoreError> {
        let store = self.store.clone();
        let at = key.clone();
        self.run(async move { store.put(&at, PutPayload::from(bytes)).await })?
            .map(|_| ())
            .map_err(|e| failed("write", key, &e))
    }

    /// Copies `from` to `to` in the store.
    fn copy(&self, from: &Path, to: &Path) -> Result<(), StoreError> {
        let store = self.store.clone();
        let (source, target) = (from.clone(), to.clone());
        self.run(async move { store.copy(&source, &target).await })?
            .map_err(|e| failed(&format!("copy into `{to}` the object"), from, &e))
    }

    /// Removes the object at `key`; one that is not there is fine.
    fn delete(&self, key: &Path) -> Result<(), StoreError> {
        self.delete_all(vec![key.clone()])
    }

    /// Removes the objects at `keys`; those not there are fine.
    fn delete_all(&self, keys: Vec<Path>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let results = self.run(async move {
            let keys = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
            store.delete_stream(keys).collect::<Vec<_>>().await
        })?;
        for result in results {
            match result {
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(failed("remove", &self.prefix, &e)),
            }
        }
        Ok(())
    }

    /// Every object under `prefix`.
    fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        let store = self.store.clone();
        let under = prefix.clone();
        self.run(async move { store.list(Some(&under)).try_collect::<Vec<_>>().await })?
            .map_err(|e| failed("list the objects under", prefix, &e))
    }

    /// The names of the "directories" right under `prefix`.
    fn list_directories(&self, prefix: &Path) -> Result<Vec<String>, StoreError> {
        let store = self.store.clone();
        let under = prefix.clone();
        let listed = self
            .run(async move { store.list_with_delimiter(Some(&under)).await })?
            .map_err(|e| failed("list the objects under", prefix, &e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// `len` bytes of the object at `key` from `start` (fewer where it
    /// ends sooner), as a stream; `None` if there is no object.
    fn read(
        self: &Arc<Self>,
        key: &Path,
        start: u64,
        len: u64,
    ) -> Result<Option<ByteReader>, StoreError> {
        if len == 0 {
            return Ok(self
                .size(key)?
                .map(|_| Box::new(std::io::empty()) as ByteReader));
        }
        let end = start.saturating_add(len);
        match self.get(key, start, end)? {
            Ok(stream) => Ok(Some(Box::new(bytes_io::ObjectReader::new(
                self.clone(),
                key.clone(),
                start,
                end,
                stream,
            )))),
            Err(e) if not_found(&e) => Ok(None),
            // A start at or past the end: no bytes, as a file gives.
            Err(e) => match self.size(key)? {
                None => Ok(None),
                Some(size) if size <= start => Ok(Some(Box::new(std::io::empty()))),
                Some(_) => Err(failed("read", key, &e)),
            },
        }
    }

    /// Starts a ranged `GET` of `start..end`.
    fn get(
        &self,
        key: &Path,
        start: u64,
        end: u64,
    ) -> Result<Result<bytes_io::Chunks, object_store::Error>, StoreError> {
        let store = self.store.clone();
        let at = key.clone();
        self.run(async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(start..end)),
                ..GetOptions::default()
            };
            store
                .get_opts(&at, options)
                .await
                .map(|result| result.into_stream())
        })
    }
}

#[cfg(test)]
mod faults;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_stores_are_recognised() {
        assert!(says_full(
            "Server returned non-2xx status code: 507 Insufficient Storage: "
        ));
        assert!(says_full("<Code>XMinioStorageFull</Code>"));
        assert!(says_full("<Code>QuotaExceeded</Code>"));
        assert!(!says_full(
            "Error performing PUT http://x/content/sha256/507abc - 500 Internal Server Error"
        ));
    }

    #[test]
    fn urls_are_checked() {
        for url in ["file:///x", "s3://", "s3:///prefix", "memory://a//b"] {
            assert!(
                ObjectStores::from_url(url, ObjectOptions::default()).is_err(),
                "{url}"
            );
        }
        let stores = ObjectStores::from_url("memory:///a/b/", ObjectOptions::default());
        let Ok(stores) = stores else {
            panic!("memory:///a/b/ refused");
        };
        assert_eq!(stores.bucket.key(&["tmp", "x"]).as_ref(), "a/b/tmp/x");
        assert_eq!(
            ObjectStores::from_url("s3://bucket", ObjectOptions::default())
                .map(|s| s.bucket.prefix.as_ref().to_owned())
                .ok(),
            Some(String::new())
        );
    }
}
