//! Streaming stored bytes as a download, with a single `Range`: shared by
//! the Warg face's content URLs and the OCI face's blobs. The bytes come
//! from the storage traits as readers; no file path is involved.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{header, response::Builder, HeaderValue, StatusCode};
use axum::response::Response;
use cairn_registry::ByteReader;

/// Bytes read from the file per piece of the answer.
const READ_CHUNK: usize = 256 * 1024;

/// A download that cannot be served.
pub(crate) enum FileError {
    /// The `Range` does not fit the file (416).
    Unsatisfiable {
        /// The header as sent.
        range: String,
        /// The file's size.
        size: u64,
    },
    /// Reading the file failed (500).
    Io(String),
}

impl FileError {
    /// The answer, with the body each face shapes its errors into; a 416
    /// gets `Content-Range: bytes */<size>`.
    pub(crate) fn into_response(
        self,
        shape: impl FnOnce(StatusCode, String) -> Response,
    ) -> Response {
        match self {
            FileError::Unsatisfiable { range, size } => {
                let mut response = shape(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("range `{range}` cannot be served from {size} bytes"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                response
            }
            FileError::Io(message) => shape(StatusCode::INTERNAL_SERVER_ERROR, message),
        }
    }
}

/// Parses a `Range: bytes=...` header for one range of a `size`-byte file.
pub(crate) fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = start.parse().ok()?;
        let end = if end.is_empty() {
            size.checked_sub(1)?
        } else {
            end.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && end < size).then_some((start, end))
}

/// Opens `len` bytes of the stored bytes from `start` (blocking).
pub(crate) type Open = Box<dyn FnOnce(u64, u64) -> Result<ByteReader, String> + Send>;

/// Answers with `size` stored bytes, or the part `range` asks for, on
/// `builder` (which carries the type and digest headers); `head` answers
/// with the headers only. The bytes are read off the async workers, one
/// piece at a time, as the client takes them.
pub(crate) async fn serve_bytes(
    builder: Builder,
    size: u64,
    range: Option<&str>,
    head: bool,
    open: Open,
) -> Result<Response, FileError> {
    let mut builder = builder.header(header::ACCEPT_RANGES, "bytes");
    let (status, start, length) = match range {
        None => (StatusCode::OK, 0, size),
        Some(range) => {
            let (start, end) =
                parse_range(range, size).ok_or_else(|| FileError::Unsatisfiable {
                    range: range.to_owned(),
                    size,
                })?;
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    let builder = builder
        .status(status)
        .header(header::CONTENT_LENGTH, HeaderValue::from(length));
    let body = if head {
        Body::empty()
    } else {
        let reader = tokio::task::spawn_blocking(move || open(start, length))
            .await
            .map_err(|e| FileError::Io(format!("task failed: {e}")))?
            .map_err(FileError::Io)?;
        Body::from_stream(pieces(reader))
    };
    builder.body(body).map_err(|e| FileError::Io(e.to_string()))
}

/// The bytes of `reader` as a stream of pieces, each read on the blocking
/// pool.
fn pieces(reader: ByteReader) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; READ_CHUNK];
            let n = read_some(&mut reader, &mut buffer)?;
            buffer.truncate(n);
            Ok::<_, std::io::Error>((reader, buffer))
        })
        .await;
        match read {
            Ok(Ok((_, buffer))) if buffer.is_empty() => None,
            Ok(Ok((reader, buffer))) => Some((Ok(Bytes::from(buffer)), Some(reader))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    })
}

/// Fills as much of `buffer` as the reader gives before its end.
fn read_some(reader: &mut ByteReader, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Bytes of a request body are written to storage in pieces of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// Why streaming a request body into storage stopped.
pub(crate) enum Streamed<E> {
    /// The sink refused the bytes.
    Refused(E),
    /// The body broke off, or the blocking task failed.
    Broken(String),
}

/// Streams a request body into `sink` with `write`, in pieces written off
/// the async workers; gives the sink back at the end of the body. The
/// bytes written are counted in `received`.
pub(crate) async fn stream_into<S, E>(
    body: Body,
    sink: S,
    write: fn(&mut S, &[u8]) -> Result<(), E>,
    received: &prometheus_client::metrics::counter::Counter,
) -> Result<S, Streamed<E>>
where
    S: Send + 'static,
    E: Send + 'static,
{
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut sink = sink;
    let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let flush = |mut sink: S, buffer: Vec<u8>| async move {
        let written = buffer.len() as u64;
        let result = tokio::task::spawn_blocking(move || {
            write(&mut sink, &buffer).map_err(Streamed::Refused)?;
            Ok((sink, buffer))
        })
        .await
        .map_err(|e| Streamed::Broken(format!("task failed: {e}")))?;
        if result.is_ok() {
            received.inc_by(written);
        }
        result
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Streamed::Broken(format!("the body broke off: {e}")))?;
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_CHUNK {
            let (s, mut b) = flush(sink, buffer).await?;
            b.clear();
            sink = s;
            buffer = b;
        }
    }
    if !buffer.is_empty() {
        let (s, _) = flush(sink, buffer).await?;
        sink = s;
    }
    Ok(sink)
}
