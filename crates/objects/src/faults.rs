//! Reads that fail halfway: an in-memory store whose `GET` bodies break
//! after some bytes, a given number of times.

use std::fmt;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cairn_protocol::Hash;
use cairn_registry::ContentStore;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::{ObjectOptions, ObjectStores};

/// Breaks the body of the next `failures` `GET`s after `cut_after` bytes.
#[derive(Debug, Default)]
struct Flaky {
    inner: InMemory,
    failures: AtomicUsize,
    cut_after: usize,
    gets: AtomicUsize,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky")
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let mut result = self.inner.get_opts(location, options).await?;
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            let bytes: Vec<Bytes> = match result.payload {
                GetResultPayload::Stream(stream) => stream.try_collect().await?,
                #[allow(unreachable_patterns)]
                _ => Vec::new(),
            };
            let bytes: Bytes = bytes.concat().into();
            let cut = bytes.slice(..self.cut_after.min(bytes.len()));
            let broken = futures_util::stream::iter([
                Ok(cut),
                Err(object_store::Error::Generic {
                    store: "Flaky",
                    source: "the connection broke".into(),
                }),
            ]);
            result.payload = GetResultPayload::Stream(broken.boxed());
        }
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn stores(cut_after: usize) -> (Arc<Flaky>, ObjectStores, Hash, Vec<u8>) {
    let flaky = Arc::new(Flaky {
        cut_after,
        ..Flaky::default()
    });
    let stores =
        ObjectStores::from_store(flaky.clone(), "p", ObjectOptions::default()).expect("stores");
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Hash::of(&bytes);
    let mut pending = stores.content.begin().expect("begin");
    pending.write(&bytes).expect("write");
    pending.commit(&digest).expect("commit");
    (flaky, stores, digest, bytes)
}

#[test]
fn a_read_whose_body_breaks_goes_on_where_it_stopped() {
    let (flaky, stores, digest, bytes) = stores(1000);
    flaky.failures.store(4, Ordering::SeqCst);
    let gets = flaky.gets.load(Ordering::SeqCst);
    let mut reader = stores
        .content
        .read(&digest, 100, 9000)
        .expect("read")
        .expect("stored");
    let mut read = Vec::new();
    reader.read_to_end(&mut read).expect("read to the end");
    assert!(read == bytes[100..9100], "other bytes");
    // The first request and one more after each of the 4 breaks.
    assert_eq!(flaky.gets.load(Ordering::SeqCst) - gets, 5);
}

#[test]
fn a_read_that_makes_no_progress_gives_up() {
    let (flaky, stores, digest, _) = stores(0);
    flaky.failures.store(100, Ordering::SeqCst);
    let gets = flaky.gets.load(Ordering::SeqCst);
    let mut reader = stores
        .content
        .read(&digest, 0, 10_000)
        .expect("read")
        .expect("stored");
    let error = reader
        .read_to_end(&mut Vec::new())
        .expect_err("a read that never gets a byte");
    assert!(
        error.to_string().contains("the connection broke"),
        "{error}"
    );
    assert_eq!(
        flaky.gets.load(Ordering::SeqCst) - gets,
        crate::bytes_io::READ_ATTEMPTS as usize
    );
}

#[test]
fn tiles_are_kept_under_their_paths() {
    let (_, stores, _, _) = stores(usize::MAX);
    assert_eq!(stores.content.tile("tile/0/x001/234").expect("read"), None);
    let bytes = vec![7u8; 8192];
    stores
        .content
        .put_tile("tile/0/x001/234", &bytes)
        .expect("put");
    stores
        .content
        .put_tile("tile/entries/000", b"entries")
        .expect("put");
    assert_eq!(
        stores.content.tile("tile/0/x001/234").expect("read"),
        Some(bytes)
    );
    assert_eq!(
        stores.content.tile("tile/entries/000").expect("read"),
        Some(b"entries".to_vec())
    );
}
