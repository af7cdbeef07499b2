//! Streaming a stored file as a download, with a single `Range`: shared by
//! the Warg face's content URLs and the OCI face's blobs.

use std::path::Path;

use axum::body::Body;
use axum::http::{header, response::Builder, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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

/// Answers with the file at `path` (`size` bytes), or the part `range`
/// asks for, on `builder` (which carries the type and digest headers);
/// `head` answers with the headers only.
pub(crate) async fn serve_file(
    builder: Builder,
    path: &Path,
    size: u64,
    range: Option<&str>,
    head: bool,
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
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| FileError::Io(format!("cannot open stored file: {e}")))?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| FileError::Io(format!("cannot seek stored file: {e}")))?;
        }
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(length),
            READ_CHUNK,
        ))
    };
    builder.body(body).map_err(|e| FileError::Io(e.to_string()))
}
