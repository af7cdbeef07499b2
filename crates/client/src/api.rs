//! The Warg v1 HTTP API as the client sees it: the requests, over blocking
//! HTTP, with the JSON shapes, paths and error bodies of `cairn-api`.
//! Nothing here decides whether an answer is true; that is
//! [`crate::verify`]'s job.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_api::content::ContentSourcesResponse;
use cairn_api::fetch::{FetchLogsRequest, FetchLogsResponse};
use cairn_api::package::{PackageRecord, PublishRecordRequest};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::{paths, ErrorBody, SignedCheckpointJson};
use cairn_protocol::{Envelope, Hash, LogId, PackageName, Record, RecordId, SignedCheckpoint};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Digest;

use crate::error::{Error, Result};

/// Reports the progress of a transfer (a progress bar on a terminal).
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes (when known) starts.
    fn begin(&self, what: &str, total: Option<u64>);
    /// `bytes` more were moved.
    fn advance(&self, bytes: u64);
    /// The transfer ended.
    fn end(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// A registry's Warg API, over blocking HTTP.
pub struct Api {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
}

impl Api {
    /// The API of the registry at `base`; `token` is sent as a bearer with
    /// every request to the registry's own origin (never to a content
    /// source or upload URL on another host).
    pub fn new(base: &str, token: Option<String>) -> Result<Api> {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(None)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Transport {
                url: base.to_owned(),
                message: format!("cannot set up HTTP: {e}"),
            })?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token,
        })
    }

    /// The registry's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// The token to send to `url`: only to the registry's own origin
    /// (scheme, host and port). A registry may name content sources and
    /// upload URLs anywhere; they never see the token.
    fn token_for(&self, url: &str) -> Option<&str> {
        let token = self.token.as_deref()?;
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        match (origin(&self.base), origin(url)) {
            (Some(base), Some(target)) if base == target => Some(token),
            _ => None,
        }
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder, url: &str) -> Result<Response> {
        let request = match self.token_for(url) {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|e| transport(url, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Response(response));
        }
        let body = response.text().unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(error) => error.text().to_owned(),
            Err(_) => body.trim().chars().take(500).collect(),
        };
        Err(Error::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        self.send(self.http.get(&url), &url)?.json(&url)
    }

    fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let url = self.url(path);
        self.send(self.http.post(&url).json(body), &url)?.json(&url)
    }

    /// `GET /v1/fetch/checkpoint`, parsed (not yet verified).
    pub fn checkpoint(&self) -> Result<(SignedCheckpoint, SignedCheckpointJson)> {
        let json: SignedCheckpointJson = self.get_json(paths::FETCH_CHECKPOINT)?;
        let cp = json
            .parse()
            .map_err(|e| malformed(&self.url(paths::FETCH_CHECKPOINT), e.to_string()))?;
        Ok((cp, json))
    }

    /// `POST /v1/fetch/logs`: records after the given registry indexes, up
    /// to the checkpoint at `log_length`.
    pub fn fetch_logs(
        &self,
        log_length: u64,
        operator_after: Option<u64>,
        packages: &[(LogId, Option<u64>)],
    ) -> Result<FetchLogsResponse> {
        self.post_json(
            paths::FETCH_LOGS,
            &FetchLogsRequest::after(log_length, operator_after, packages),
        )
    }

    /// `POST /v1/proof/consistency`: the raw log proof bundle.
    pub fn prove_consistency(&self, from: u64, to: u64) -> Result<Vec<u8>> {
        let answer: ConsistencyResponse =
            self.post_json(paths::PROVE_CONSISTENCY, &ConsistencyRequest { from, to })?;
        Ok(answer.proof)
    }

    /// `POST /v1/proof/inclusion`: the raw log and map proof bundles.
    pub fn prove_inclusion(&self, log_length: u64, leafs: &[u64]) -> Result<(Vec<u8>, Vec<u8>)> {
        let request = InclusionRequest {
            log_length,
            leafs: leafs.to_vec(),
        };
        let answer: InclusionResponse = self.post_json(paths::PROVE_INCLUSION, &request)?;
        Ok((answer.log, answer.map))
    }

    /// `POST /v1/package/{logId}/record`.
    pub fn publish<R: Record>(
        &self,
        name: &PackageName,
        envelope: &Envelope<R>,
    ) -> Result<PackageRecord> {
        let path = paths::publish_package_record(&LogId::package(name));
        self.post_json(&path, &PublishRecordRequest::new(name, envelope))
    }

    /// `GET /v1/package/{logId}/record/{recordId}`.
    pub fn record_status(&self, log_id: &LogId, record_id: &RecordId) -> Result<PackageRecord> {
        self.get_json(&paths::package_record(log_id, record_id))
    }

    /// Uploads the file at `path` (of `size` bytes) to `url`.
    pub fn upload(
        &self,
        url: &str,
        path: &Path,
        size: u64,
        progress: &Arc<dyn Progress>,
    ) -> Result<()> {
        let url = self.url(url);
        let file = std::fs::File::open(path).map_err(Error::io(path))?;
        progress.begin("uploading", Some(size));
        let reader = Counting {
            inner: file,
            progress: progress.clone(),
        };
        let body = reqwest::blocking::Body::sized(reader, size);
        let result = self.send(
            self.http
                .post(&url)
                .header("content-type", "application/wasm")
                .body(body),
            &url,
        );
        progress.end();
        result.map(|_| ())
    }

    /// `GET /v1/content/{digest}`: the first HTTP source of the content.
    pub fn content_url(&self, digest: &Hash) -> Result<String> {
        let path = paths::content_sources(digest);
        let answer: ContentSourcesResponse = self.get_json(&path)?;
        answer
            .http_url(digest)
            .map(|u| self.url(u))
            .ok_or_else(|| malformed(&self.url(&path), "no httpGet source for the content".into()))
    }

    /// Streams `url` into `out`, returning the SHA-256 of what was written
    /// and its length.
    pub fn download(
        &self,
        url: &str,
        out: &mut impl Write,
        progress: &dyn Progress,
    ) -> Result<(Hash, u64)> {
        let response = self.send(self.http.get(url), url)?.0;
        progress.begin("downloading", response.content_length());
        let result = copy_hashing(response, out, progress);
        progress.end();
        result.map_err(|e| match e {
            CopyError::Read(e) => malformed(url, format!("download interrupted: {e}")),
            CopyError::Write(source) => Error::Io {
                path: "download".into(),
                source,
            },
        })
    }
}

/// Which side of [`copy_hashing`] failed.
pub(crate) enum CopyError {
    /// Reading the source.
    Read(std::io::Error),
    /// Writing the copy.
    Write(std::io::Error),
}

/// Copies `from` into `to`, reporting progress, and returns the SHA-256
/// of the bytes and their count.
pub(crate) fn copy_hashing(
    mut from: impl Read,
    to: &mut impl Write,
    progress: &dyn Progress,
) -> Result<(Hash, u64), CopyError> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
        progress.advance(n as u64);
    }
    let digest: [u8; 32] = hasher.finalize().into();
    Ok((Hash::from_bytes(digest), total))
}

struct Response(reqwest::blocking::Response);

impl Response {
    fn json<T: DeserializeOwned>(self, url: &str) -> Result<T> {
        let bytes = self.0.bytes().map_err(|e| transport(url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| malformed(url, format!("invalid JSON: {e}")))
    }
}

fn transport(url: &str, e: &reqwest::Error) -> Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    Error::Transport {
        url: url.to_owned(),
        message,
    }
}

pub(crate) fn malformed(url: &str, message: String) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: format!("malformed answer: {message}"),
    }
}

struct Counting<R> {
    inner: R,
    progress: Arc<dyn Progress>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::Api;

    #[test]
    fn the_token_goes_to_the_registry_alone() {
        let api =
            Api::new("http://registry.example:8090/", Some("cairn_secret".into())).expect("api");
        assert_eq!(
            api.token_for(&api.url("v1/fetch/checkpoint")),
            Some("cairn_secret")
        );
        assert_eq!(
            api.token_for("http://registry.example:8090/content/sha256-00"),
            Some("cairn_secret")
        );
        for elsewhere in [
            "http://cdn.example/content/sha256-00",
            "http://registry.example:9999/upload",
            "https://registry.example:8090/upload",
            "http://registry.example.evil:8090/",
            "not a url",
        ] {
            assert_eq!(api.token_for(elsewhere), None, "{elsewhere}");
        }
        let anonymous = Api::new("http://registry.example", None).expect("api");
        assert_eq!(anonymous.token_for("http://registry.example/v1"), None);
    }
}
