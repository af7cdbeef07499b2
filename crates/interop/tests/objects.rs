//! Release content and OCI blobs on every byte backend, one suite for all:
//! the files of `cairn-store`, and the object stores of `cairn-objects` in
//! memory and on S3 (moto's server, `cairn_interop::s3`). Then what only
//! object stores do: presigned download URLs, calls from inside a tokio
//! runtime, and a throughput measurement (ignored; run it by name).

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use cairn_interop::http::Http;
use cairn_interop::s3::Moto;
use cairn_objects::{ObjectOptions, ObjectStores, MIN_PART_SIZE};
use cairn_protocol::Hash;
use cairn_registry::oci::{Algorithm, BlobStore, Digest, Finished};
use cairn_registry::{ContentStore, StoreError};
use cairn_store::{FsBlobStore, FsContentStore};
use reqwest::Method;

const MIB: usize = 1 << 20;

/// `len` bytes that differ with `seed` (xorshift).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn read_all(reader: Option<cairn_registry::ByteReader>, what: &str) -> Vec<u8> {
    let mut reader = reader.unwrap_or_else(|| panic!("{what}: not stored"));
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    bytes
}

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Writes `bytes` as content in writes of `piece` bytes and commits them.
fn store_content(content: &dyn ContentStore, bytes: &[u8], piece: usize) -> Hash {
    let digest = Hash::of(bytes);
    let mut pending = ok(content.begin(), "begin");
    for chunk in bytes.chunks(piece) {
        ok(pending.write(chunk), "write");
    }
    ok(pending.commit(&digest), "commit");
    digest
}

/// The suite: the same calls, the same answers, on every backend.
fn suite(name: &str, content: &dyn ContentStore, blobs: &dyn BlobStore) {
    content_suite(name, content);
    blob_suite(name, blobs);
    session_suite(name, blobs);
}

fn content_suite(name: &str, content: &dyn ContentStore) {
    // Invisible before the commit, visible after.
    let bytes = pattern(1000, 1);
    let digest = Hash::of(&bytes);
    assert_eq!(ok(content.size(&digest), "size"), None, "{name}");
    let mut pending = ok(content.begin(), "begin");
    ok(pending.write(&bytes[..500]), "write");
    ok(pending.write(&bytes[500..]), "write");
    assert_eq!(
        ok(content.size(&digest), "size"),
        None,
        "{name}: visible before commit"
    );
    assert!(
        ok(content.read(&digest, 0, 1000), "read").is_none(),
        "{name}"
    );
    ok(pending.commit(&digest), "commit");
    assert_eq!(ok(content.size(&digest), "size"), Some(1000), "{name}");

    // Reads: whole, ranged, past the end (what is there), empty, missing.
    let read = |start: u64, len: u64| read_all(ok(content.read(&digest, start, len), "read"), name);
    assert_eq!(read(0, 1000), bytes, "{name}: whole");
    assert_eq!(read(10, 20), &bytes[10..30], "{name}: ranged");
    assert_eq!(read(990, 100), &bytes[990..], "{name}: past the end");
    assert_eq!(read(999, 1), &bytes[999..], "{name}: last byte");
    assert!(read(5, 0).is_empty(), "{name}: empty range");
    assert!(read(1000, 10).is_empty(), "{name}: from the end");
    assert!(read(2000, 10).is_empty(), "{name}: from past the end");
    let missing = Hash::of(b"never stored");
    assert_eq!(ok(content.size(&missing), "size"), None, "{name}");
    assert!(
        ok(content.read(&missing, 0, 10), "read").is_none(),
        "{name}"
    );
    assert!(ok(content.read(&missing, 0, 0), "read").is_none(), "{name}");

    // The same content committed again changes nothing.
    assert_eq!(store_content(content, &bytes, 333), digest);
    assert_eq!(read(0, 1000), bytes, "{name}: committed twice");

    // A purge removes it (removing it again, or what was never stored, is
    // fine); committed again, it is back.
    ok(content.remove(&digest), "remove");
    assert_eq!(ok(content.size(&digest), "size"), None, "{name}: removed");
    assert!(ok(content.read(&digest, 0, 10), "read").is_none(), "{name}");
    ok(content.remove(&digest), "remove again");
    ok(content.remove(&missing), "remove missing");
    assert_eq!(store_content(content, &bytes, 500), digest);
    assert_eq!(read(0, 1000), bytes, "{name}: stored again");

    // A dropped writer leaves nothing: small, and past a part.
    for len in [100, MIN_PART_SIZE + MIB] {
        let dropped = pattern(len, 2);
        let mut pending = ok(content.begin(), "begin");
        for chunk in dropped.chunks(MIB) {
            ok(pending.write(chunk), "write");
        }
        drop(pending);
        assert_eq!(
            ok(content.size(&Hash::of(&dropped)), "size"),
            None,
            "{name}: dropped"
        );
    }

    // Empty content.
    let empty = store_content(content, b"", 1);
    assert_eq!(ok(content.size(&empty), "size"), Some(0), "{name}: empty");
    assert!(read_all(ok(content.read(&empty, 0, 0), "read"), name).is_empty());

    // Large content, over several parts (5 MiB each on object stores), in
    // writes that do not line up with them.
    let large = pattern(12 * MIB + 17, 3);
    let digest = store_content(content, &large, 1_000_003);
    assert_eq!(
        ok(content.size(&digest), "size"),
        Some(large.len() as u64),
        "{name}"
    );
    let whole = read_all(
        ok(content.read(&digest, 0, large.len() as u64), "read"),
        name,
    );
    assert!(whole == large, "{name}: large content read back differs");
    let boundary = MIN_PART_SIZE as u64 - 10;
    assert_eq!(
        read_all(ok(content.read(&digest, boundary, 20), "read"), name),
        &large[MIN_PART_SIZE - 10..MIN_PART_SIZE + 10],
        "{name}: a range across parts"
    );
    let tail = read_all(
        ok(
            content.read(&digest, 11 * MIB as u64, 2 * MIB as u64),
            "read",
        ),
        name,
    );
    assert!(tail == large[11 * MIB..], "{name}: the tail");
}

fn blob_suite(name: &str, blobs: &dyn BlobStore) {
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let bytes = pattern(5000, 4);
        let digest = Digest::of(algorithm, &bytes);
        assert_eq!(ok(blobs.size(&digest), "size"), None, "{name}");
        assert!(ok(blobs.read(&digest, 0, 1), "read").is_none(), "{name}");
        ok(blobs.put(&digest, &bytes), "put");
        ok(blobs.put(&digest, &bytes), "put again");
        assert_eq!(ok(blobs.size(&digest), "size"), Some(5000), "{name}");
        assert_eq!(
            read_all(ok(blobs.read(&digest, 0, 5000), "read"), name),
            bytes
        );
        assert_eq!(
            read_all(ok(blobs.read(&digest, 4000, 2000), "read"), name),
            &bytes[4000..],
            "{name}: ranged blob read"
        );
        // A purge removes it; removing it again is fine.
        ok(blobs.remove(&digest), "remove");
        assert_eq!(ok(blobs.size(&digest), "size"), None, "{name}: removed");
        assert!(ok(blobs.read(&digest, 0, 1), "read").is_none(), "{name}");
        ok(blobs.remove(&digest), "remove again");
    }
}

fn session_suite(name: &str, blobs: &dyn BlobStore) {
    let id = "00c0ffee00c0ffee00c0ffee00c0ffee";
    assert_eq!(ok(blobs.session_size(id), "session size"), None, "{name}");
    assert!(
        !ok(blobs.sessions(), "sessions").contains(&id.to_owned()),
        "{name}"
    );
    ok(blobs.create_session(id), "create");
    assert_eq!(
        ok(blobs.session_size(id), "session size"),
        Some(0),
        "{name}"
    );
    assert!(
        ok(blobs.sessions(), "sessions").contains(&id.to_owned()),
        "{name}"
    );

    // Three turns, the second larger than a part.
    let turns = [
        pattern(300_000, 5),
        pattern(MIN_PART_SIZE + MIB + 7, 6),
        pattern(10, 7),
    ];
    let mut all = Vec::new();
    for turn in &turns {
        let mut writer = ok(blobs.append_session(id), "append");
        for piece in turn.chunks(256 * 1024 + 1) {
            ok(writer.write(piece), "write");
        }
        all.extend_from_slice(turn);
        assert_eq!(
            ok(writer.flush(), "flush"),
            all.len() as u64,
            "{name}: flush"
        );
        assert_eq!(
            ok(writer.flush(), "flush"),
            all.len() as u64,
            "{name}: flush again"
        );
        assert_eq!(
            ok(blobs.session_size(id), "session size"),
            Some(all.len() as u64),
            "{name}"
        );
    }

    // The wrong digest stores nothing and leaves the session as it was.
    let right = Digest::of(Algorithm::Sha256, &all);
    let wrong = Digest::of(Algorithm::Sha256, b"something else");
    assert_eq!(
        ok(blobs.finish_session(id, &wrong), "finish"),
        Finished::Mismatch {
            found: right.clone()
        },
        "{name}"
    );
    assert_eq!(ok(blobs.size(&wrong), "size"), None, "{name}");
    assert_eq!(ok(blobs.size(&right), "size"), None, "{name}");
    assert_eq!(
        ok(blobs.session_size(id), "session size"),
        Some(all.len() as u64),
        "{name}: a mismatch keeps the session"
    );

    // The right one stores the blob and ends the session.
    assert_eq!(
        ok(blobs.finish_session(id, &right), "finish"),
        Finished::Stored {
            size: all.len() as u64
        },
        "{name}"
    );
    assert_eq!(
        ok(blobs.size(&right), "size"),
        Some(all.len() as u64),
        "{name}"
    );
    let stored = read_all(ok(blobs.read(&right, 0, all.len() as u64), "read"), name);
    assert!(stored == all, "{name}: the finished blob differs");
    assert_eq!(ok(blobs.session_size(id), "session size"), None, "{name}");
    assert!(
        !ok(blobs.sessions(), "sessions").contains(&id.to_owned()),
        "{name}"
    );

    // The same bytes again: checked against the stored blob.
    ok(blobs.create_session(id), "create");
    let mut writer = ok(blobs.append_session(id), "append");
    ok(writer.write(&all), "write");
    ok(writer.flush(), "flush");
    drop(writer);
    assert_eq!(
        ok(blobs.finish_session(id, &right), "finish"),
        Finished::Stored {
            size: all.len() as u64
        },
        "{name}: finished against a stored blob"
    );
    assert_eq!(ok(blobs.session_size(id), "session size"), None, "{name}");

    // An empty session finishes as the empty blob.
    ok(blobs.create_session(id), "create");
    let empty = Digest::of(Algorithm::Sha256, b"");
    assert_eq!(
        ok(blobs.finish_session(id, &empty), "finish"),
        Finished::Stored { size: 0 },
        "{name}: empty session"
    );
    assert_eq!(ok(blobs.size(&empty), "size"), Some(0), "{name}");

    // Creating a session again starts it over.
    ok(blobs.create_session(id), "create");
    let mut writer = ok(blobs.append_session(id), "append");
    ok(writer.write(b"some bytes"), "write");
    ok(writer.flush(), "flush");
    drop(writer);
    ok(blobs.create_session(id), "create again");
    assert_eq!(
        ok(blobs.session_size(id), "session size"),
        Some(0),
        "{name}"
    );

    // Sweeping: what the orphan and expiry sweeps call.
    let other = "0123456789abcdef";
    ok(blobs.create_session(other), "create");
    let mut ids = ok(blobs.sessions(), "sessions");
    ids.sort();
    assert_eq!(ids, vec![id.to_owned(), other.to_owned()], "{name}");
    ok(blobs.delete_session(id), "delete");
    ok(blobs.delete_session(id), "delete again");
    assert_eq!(ok(blobs.session_size(id), "session size"), None, "{name}");
    assert_eq!(
        ok(blobs.sessions(), "sessions"),
        vec![other.to_owned()],
        "{name}"
    );
    ok(blobs.delete_session(other), "delete");
    assert!(ok(blobs.sessions(), "sessions").is_empty(), "{name}");

    // What is not a session.
    assert!(blobs.append_session(id).is_err(), "{name}: append to none");
    assert!(
        blobs.finish_session(id, &right).is_err(),
        "{name}: finish none"
    );
    assert!(blobs.create_session("../x").is_err(), "{name}: a bad id");
    assert!(blobs.session_size("not hex").is_err(), "{name}: a bad id");
}

/// What object stores add: an unflushed turn is dropped with its writer,
/// and nothing is left in `tmp/`.
fn object_suite(name: &str, stores: &ObjectStores) {
    let blobs = &stores.blobs;
    let id = "abcdef0123";
    ok(blobs.create_session(id), "create");
    let mut writer = ok(blobs.append_session(id), "append");
    ok(writer.write(&pattern(100, 8)), "write");
    assert_eq!(ok(writer.flush(), "flush"), 100);
    ok(writer.write(&pattern(MIN_PART_SIZE + 1, 9)), "write");
    drop(writer);
    assert_eq!(
        ok(blobs.session_size(id), "session size"),
        Some(100),
        "{name}: an unflushed turn is dropped"
    );
    ok(blobs.delete_session(id), "delete");
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(
        ok(stores.remove_stale_temporaries(later), "temporaries"),
        0,
        "{name}: commits leave nothing in tmp/"
    );
}

fn small_parts() -> ObjectOptions {
    ObjectOptions {
        part_size: MIN_PART_SIZE,
        ..ObjectOptions::default()
    }
}

#[test]
fn files_pass_the_byte_store_suite() {
    let dir = tempfile::tempdir().expect("dir");
    let content = FsContentStore::open(&dir.path().join("content")).expect("content");
    let blobs = FsBlobStore::open(&dir.path().join("blobs")).expect("blobs");
    suite("files", &content, &blobs);
    let digest = store_content(&content, b"bytes", 5);
    assert_eq!(
        ok(
            content.download_url(&digest, Duration::from_secs(60)),
            "url"
        ),
        None
    );
}

#[test]
fn an_object_store_in_memory_passes_the_byte_store_suite() {
    let stores = ObjectStores::from_url("memory:///some/prefix", small_parts()).expect("stores");
    suite("memory", &stores.content, &stores.blobs);
    object_suite("memory", &stores);
    // No presigning in memory, whatever the options say.
    let stores = ObjectStores::from_url(
        "memory://",
        ObjectOptions {
            presign: Some(Duration::from_secs(60)),
            ..ObjectOptions::default()
        },
    )
    .expect("stores");
    let digest = store_content(&stores.content, b"bytes", 5);
    assert_eq!(
        ok(
            stores
                .content
                .download_url(&digest, Duration::from_secs(60)),
            "url"
        ),
        None
    );
}

#[test]
fn s3_on_moto_passes_the_byte_store_suite() {
    let Some(moto) = Moto::start("s3_on_moto_passes_the_byte_store_suite") else {
        return;
    };
    let stores = moto.stores("suite", small_parts());
    suite("s3", &stores.content, &stores.blobs);
    object_suite("s3", &stores);
    // Dropped writers aborted their multipart uploads (in the background).
    let http = Http::new(&moto.endpoint);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = http.send(Method::GET, "/cairn?uploads", &[], vec![]);
        assert!(listed.status.is_success(), "{}", listed.status);
        let listed = String::from_utf8_lossy(&listed.body).into_owned();
        if !listed.contains("<Upload>") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "multipart uploads left: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing outside the prefix; another prefix is another store.
    let others = moto.stores("other", small_parts());
    assert!(ok(others.blobs.sessions(), "sessions").is_empty());
    let digest = store_content(&stores.content, b"only here", 3);
    assert_eq!(ok(others.content.size(&digest), "size"), None);
}

#[test]
fn s3_hands_out_presigned_urls_that_serve_the_content() {
    let Some(moto) = Moto::start("s3_hands_out_presigned_urls_that_serve_the_content") else {
        return;
    };
    let stores = moto.stores(
        "presigned",
        ObjectOptions {
            presign: Some(Duration::from_secs(300)),
            ..small_parts()
        },
    );
    let bytes = pattern(MIN_PART_SIZE + 12345, 10);
    let digest = store_content(&stores.content, &bytes, MIB);
    let url = ok(
        stores
            .content
            .download_url(&digest, Duration::from_secs(60)),
        "url",
    )
    .expect("a presigned URL");
    assert!(url.starts_with(&moto.endpoint), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let reply = Http::new(&moto.endpoint).send(Method::GET, &url, &[], vec![]);
    assert!(reply.status.is_success(), "{}", reply.status);
    assert!(reply.body == bytes, "the presigned URL served other bytes");
    // Longer than S3 allows: serve the bytes instead.
    assert_eq!(
        ok(
            stores
                .content
                .download_url(&digest, Duration::from_secs(8 * 24 * 3600)),
            "url"
        ),
        None
    );
    // Without presigning: none.
    let plain = moto.stores("presigned", ObjectOptions::default());
    assert_eq!(
        ok(
            plain.content.download_url(&digest, Duration::from_secs(60)),
            "url"
        ),
        None
    );
    assert_eq!(
        ok(plain.content.size(&digest), "size"),
        Some(bytes.len() as u64)
    );
}

/// The stores are called from tokio's blocking pool and even from a
/// runtime's own threads: their calls must not panic there.
fn inside_a_runtime(stores: ObjectStores) {
    let stores = std::sync::Arc::new(stores);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bytes = pattern(MIN_PART_SIZE + 100, 11);
    let digest = Hash::of(&bytes);
    let on_worker = {
        let (stores, bytes) = (stores.clone(), bytes.clone());
        runtime.spawn(async move {
            let stored = store_content(&stores.content, &bytes, MIB);
            let read = read_all(
                ok(stores.content.read(&stored, 0, bytes.len() as u64), "read"),
                "on a worker",
            );
            (stored, read)
        })
    };
    let (stored, read) = runtime.block_on(on_worker).expect("worker");
    assert_eq!(stored, digest);
    assert!(read == bytes);
    let blocking = {
        let stores = stores.clone();
        runtime.spawn_blocking(move || ok(stores.content.size(&digest), "size"))
    };
    assert_eq!(
        runtime.block_on(blocking).expect("blocking"),
        Some(bytes.len() as u64)
    );
    runtime.block_on(async {
        assert_eq!(
            ok(stores.content.size(&digest), "size"),
            Some(bytes.len() as u64)
        );
    });
}

#[test]
fn object_stores_work_from_inside_a_runtime() {
    inside_a_runtime(ObjectStores::from_url("memory://", small_parts()).expect("stores"));
    if let Some(moto) = Moto::start("object_stores_work_from_inside_a_runtime") {
        inside_a_runtime(moto.stores("runtime", small_parts()));
    }
}

/// `cargo test -p cairn-interop --test objects -- --ignored --nocapture
/// throughput`: 100 MiB written and read back through moto.
#[test]
#[ignore]
fn throughput_of_100_mib_through_moto() {
    let Some(moto) = Moto::start("throughput_of_100_mib_through_moto") else {
        return;
    };
    let stores = moto.stores("throughput", ObjectOptions::default());
    let bytes = pattern(100 * MIB, 12);
    let started = Instant::now();
    let digest = store_content(&stores.content, &bytes, MIB);
    let put = started.elapsed();
    let started = Instant::now();
    let mut reader =
        ok(stores.content.read(&digest, 0, bytes.len() as u64), "read").expect("stored");
    let mut buffer = vec![0u8; MIB];
    let mut total = 0usize;
    loop {
        let n = reader.read(&mut buffer).expect("read");
        if n == 0 {
            break;
        }
        total += n;
    }
    let get = started.elapsed();
    assert_eq!(total, bytes.len());
    let rate = |d: Duration| 100.0 / d.as_secs_f64();
    println!(
        "100 MiB through moto: put+commit {put:.2?} ({:.0} MiB/s), get {get:.2?} ({:.0} MiB/s)",
        rate(put),
        rate(get)
    );
}
