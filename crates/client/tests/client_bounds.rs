//! The client's timeouts and size bounds against tiny hostile servers on
//! 127.0.0.1: one that never answers, one that stops mid-answer, endless
//! and oversized JSON answers, and downloads that never end, go past their
//! announced size or stall. Each call fails fast with a typed error naming
//! the server or the bound, and no file (nor temporary file) is left in
//! the cache.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cairn_client::api::NoProgress;
use cairn_client::{Client, Error, Limits};
use cairn_protocol::{Hash, RecordId};

/// The read timeout the tests run with.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Long enough for any of these calls, far shorter than "forever".
const PROMPTLY: Duration = Duration::from_secs(15);

/// Serves each connection on 127.0.0.1 in a thread: `handler` gets the
/// request's path (the head and any body already read) and the stream.
fn serve(handler: impl Fn(&str, TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || {
                if let Some(path) = read_request(&stream) {
                    handler(&path, stream);
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Reads one request and returns its path.
fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(path)
}

fn answer(mut stream: TcpStream, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// Answers with a body that never ends (no length: it would end when the
/// connection closes), until the client hangs up; then sends how many
/// bytes it wrote on `done`.
fn endless(mut stream: TcpStream, content_type: &str, done: &mpsc::Sender<u64>) {
    let head =
        format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let chunk = [b' '; 64 * 1024];
    let mut written = 0u64;
    while stream.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = done.send(written);
}

/// Answers with `head` and the start of a body, then says nothing more
/// (holding the connection open).
fn stall(mut stream: TcpStream, head: &str, start: &[u8]) {
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(start);
    let _ = stream.flush();
    std::thread::sleep(Duration::from_secs(60));
}

struct Dirs {
    _root: tempfile::TempDir,
    state: PathBuf,
    cache: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().expect("dir");
    Dirs {
        state: root.path().join("state"),
        cache: root.path().join("cache"),
        _root: root,
    }
}

fn limits() -> Limits {
    Limits {
        read_timeout: TIMEOUT,
        connect_timeout: TIMEOUT,
        ..Limits::default()
    }
}

fn client(registry: &str, dirs: &Dirs, limits: Limits) -> Client {
    Client::open_with(
        registry,
        None,
        &dirs.state,
        &dirs.cache,
        Arc::new(NoProgress),
        limits,
    )
    .expect("client")
}

/// Every file in `dir` and below (hidden ones too).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// A content-sources answer naming `/content/x` for `digest`.
fn sources(digest: &Hash, size: Option<u64>) -> Vec<u8> {
    let mut source = serde_json::json!({ "type": "httpGet", "url": "/content/x" });
    if let Some(size) = size {
        source["size"] = size.into();
    }
    serde_json::to_vec(&serde_json::json!({
        "contentSources": { digest.to_string(): [source] }
    }))
    .expect("json")
}

fn record() -> RecordId {
    RecordId::package_record(b"a record")
}

#[test]
fn a_registry_that_never_answers_is_a_timeout_naming_it() {
    // Accepts connections and never reads or writes a byte.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let registry = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().flatten().collect();
        drop(held);
    });
    let dirs = dirs();
    let mut client = client(&registry, &dirs, limits());
    let started = Instant::now();
    let error = client.update(&[], false).expect_err("a silent registry");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    assert!(matches!(error, Error::TimedOut { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("registry at {registry} did not answer within 1 s")),
        "{message}"
    );
}

#[test]
fn a_registry_that_stops_mid_answer_is_a_timeout() {
    let registry = serve(|_, stream| {
        stall(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n",
            b"{\"contents\":",
        )
    });
    let dirs = dirs();
    let mut client = client(&registry, &dirs, limits());
    let started = Instant::now();
    let error = client.update(&[], false).expect_err("a stalled answer");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    let message = error.to_string();
    assert!(
        matches!(error, Error::TimedOut { .. }) && message.contains("reading the answer to"),
        "{message}"
    );
    assert!(message.contains("did not answer within 1 s"), "{message}");
}

#[test]
fn an_endless_json_answer_stops_at_the_bound() {
    let (done, written) = mpsc::channel();
    let registry = serve(move |_, stream| endless(stream, "application/json", &done));
    let dirs = dirs();
    let bound = 1 << 20;
    let limits = Limits {
        max_json_bytes: bound,
        ..limits()
    };
    let mut client = client(&registry, &dirs, limits);
    let started = Instant::now();
    let error = client.update(&[], false).expect_err("an endless answer");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    assert!(
        matches!(error, Error::TooLarge { bound: b, .. } if b == bound),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("the bound on JSON answers (1048576 bytes)"),
        "{message}"
    );
    drop(client);
    // The client hung up rather than reading on.
    let written = written.recv_timeout(PROMPTLY).expect("the client hung up");
    assert!(written < 64 << 20, "the server wrote {written} bytes");
}

#[test]
fn a_json_answer_announcing_more_than_the_bound_is_not_read() {
    // 600 MB announced, as in the attack; the default bound is 64 MiB.
    let registry = serve(|_, stream| {
        stall(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 600000000\r\n\r\n",
            b"{",
        )
    });
    let dirs = dirs();
    let mut client = client(&registry, &dirs, limits());
    let started = Instant::now();
    let error = client.update(&[], false).expect_err("too large");
    // Refused on its Content-Length, without waiting for the body.
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    assert!(
        matches!(error, Error::TooLarge { bound, .. } if bound == 64 << 20),
        "{error:?}"
    );
}

/// A registry whose content source of `digest` (of `size`, if given) is
/// served by `content`.
fn content_registry(
    digest: Hash,
    size: Option<u64>,
    content: impl Fn(TcpStream) + Send + Sync + 'static,
) -> String {
    serve(move |path, stream| {
        if path.starts_with("/v1/content/") {
            answer(stream, "application/json", &sources(&digest, size));
        } else if path == "/content/x" {
            content(stream);
        }
    })
}

#[test]
fn a_download_past_its_announced_size_stops_and_leaves_nothing() {
    let digest = Hash::of(b"1000 bytes, they said");
    let (done, written) = mpsc::channel();
    let registry = content_registry(digest, Some(1000), move |stream| {
        endless(stream, "application/wasm", &done)
    });
    let dirs = dirs();
    let client = client(&registry, &dirs, limits());
    let started = Instant::now();
    let error = client.content(&digest, &record()).expect_err("too large");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    let message = error.to_string();
    assert!(
        matches!(error, Error::TooLarge { bound: 1000, .. })
            && message.contains("the size its content source gave (1000 bytes)"),
        "{message}"
    );
    assert_eq!(files(&dirs.cache), Vec::<PathBuf>::new());
    drop(client);
    written.recv_timeout(PROMPTLY).expect("the client hung up");
}

#[test]
fn an_endless_download_stops_at_the_bound_and_leaves_nothing() {
    let digest = Hash::of(b"no size given");
    let (done, written) = mpsc::channel();
    let registry = content_registry(digest, None, move |stream| {
        endless(stream, "application/wasm", &done)
    });
    let dirs = dirs();
    let bound = 2 << 20;
    let limits = Limits {
        max_download_bytes: bound,
        ..limits()
    };
    let client = client(&registry, &dirs, limits);
    let started = Instant::now();
    let error = client.content(&digest, &record()).expect_err("endless");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    let message = error.to_string();
    assert!(
        matches!(error, Error::TooLarge { bound: b, .. } if b == bound)
            && message.contains("the bound on downloads (2097152 bytes)"),
        "{message}"
    );
    assert_eq!(files(&dirs.cache), Vec::<PathBuf>::new());
    drop(client);
    let written = written.recv_timeout(PROMPTLY).expect("the client hung up");
    assert!(written < 64 << 20, "the server wrote {written} bytes");
}

#[test]
fn a_stalled_download_is_a_timeout_and_leaves_nothing() {
    let digest = Hash::of(b"stalls");
    let registry = content_registry(digest, Some(1 << 20), |stream| {
        stall(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: 1048576\r\n\r\n",
            &[0u8; 4096],
        )
    });
    let dirs = dirs();
    let client = client(&registry, &dirs, limits());
    let started = Instant::now();
    let error = client.content(&digest, &record()).expect_err("stalled");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    assert!(matches!(error, Error::TimedOut { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("registry at {registry} did not answer within 1 s")),
        "{message}"
    );
    assert_eq!(files(&dirs.cache), Vec::<PathBuf>::new());
}

#[test]
fn content_is_kept_only_once_its_digest_checks_and_stale_partials_go() {
    let good = b"\0asm good bytes".to_vec();
    let digest = Hash::of(&good);
    let served = good.clone();
    let registry = content_registry(digest, Some(good.len() as u64), move |stream| {
        answer(stream, "application/wasm", &served)
    });
    let dirs = dirs();
    // What a killed process left: one old partial download, one that may
    // still be being written.
    let sha = dirs.cache.join("sha256");
    std::fs::create_dir_all(&sha).expect("dir");
    let old = sha.join(".cairn-partial-old");
    let fresh = sha.join(".cairn-partial-fresh");
    std::fs::write(&old, b"half").expect("old");
    std::fs::write(&fresh, b"half").expect("fresh");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .expect("open")
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .expect("age it");

    let client = client(&registry, &dirs, limits());
    let path = client.content(&digest, &record()).expect("content");
    assert_eq!(std::fs::read(&path).expect("read"), good);
    assert!(!old.exists(), "the stale partial download stays");
    assert!(fresh.exists(), "a recent partial download went");
    let mut left = files(&dirs.cache);
    left.sort();
    assert_eq!(left, vec![fresh.clone(), path.clone()]);
    // The cached file has the mode any new file gets (not a temporary
    // file's 0600): `cairn download` copies it to its output.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode();
        let probe = dirs.cache.join("probe");
        std::fs::File::create(&probe).expect("probe");
        assert_eq!(mode(&path), mode(&probe));
    }

    // Bytes that do not match the digest are never kept.
    let wrong = Hash::of(b"other bytes");
    let served = good.clone();
    let registry = content_registry(wrong, Some(good.len() as u64), move |stream| {
        answer(stream, "application/wasm", &served)
    });
    let dirs = self::dirs();
    let client = self::client(&registry, &dirs, limits());
    let error = client.content(&wrong, &record()).expect_err("wrong bytes");
    assert!(error.is_verification(), "{error:?}");
    let left: Vec<PathBuf> = files(&dirs.cache)
        .into_iter()
        .filter(|p| p.starts_with(dirs.cache.join("sha256")))
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new());
}
