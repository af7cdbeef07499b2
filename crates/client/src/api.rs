//! The Warg v1 HTTP API as the client sees it: the requests, over blocking
//! HTTP, with the JSON shapes, paths and error bodies of `cairn-api`.
//! Nothing here decides whether an answer is true; that is
//! [`crate::verify`]'s job.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_api::content::{ContentSource, ContentSourcesResponse};
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
use crate::limits::Limits;

/// How many times a request is sent while the registry answers 502 or 503
/// (a takeover among replicas takes a second or two).
pub const TAKEOVER_TRIES: u32 = 4;
/// The longest wait between those tries, whatever `Retry-After` says.
const TAKEOVER_WAIT_MAX: u64 = 5;

/// The most of a refusal's body read for its message.
const ERROR_BODY_BYTES: u64 = 64 << 10;

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

/// A registry's Warg API, over blocking HTTP, within [`Limits`].
pub struct Api {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
    limits: Limits,
}

impl Api {
    /// The API of the registry at `base`; `token` is sent as a bearer with
    /// every request to the registry's own origin (never to a content
    /// source or upload URL on another host). The default [`Limits`].
    pub fn new(base: &str, token: Option<String>) -> Result<Api> {
        Api::with_limits(base, token, Limits::default())
    }

    /// The API of the registry at `base` (see [`Api::new`]) within
    /// `limits`.
    pub fn with_limits(base: &str, token: Option<String>, limits: Limits) -> Result<Api> {
        // The blocking client's `timeout` bounds the wait for an answer's
        // headers and each read of its body apart (the body is streamed
        // through `Read` here, never read whole with `bytes` or `json`):
        // an idle timeout, not a deadline on the whole transfer.
        let mut builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.read_timeout)
            .tcp_nodelay(true);
        if let Some(pem) = &limits.trusted_ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::Usage(format!(
                    "{} holds no usable PEM certificate: {e}",
                    crate::limits::CA_FILE_VAR
                ))
            })?;
            if roots.is_empty() {
                return Err(Error::Usage(format!(
                    "{} holds no PEM certificate",
                    crate::limits::CA_FILE_VAR
                )));
            }
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder.build().map_err(|e| Error::Transport {
            url: base.to_owned(),
            message: format!("cannot set up HTTP: {e}"),
        })?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token,
            limits,
        })
    }

    /// The timeouts and size bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
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

    /// Who serves `url`, for messages: the registry, or another server
    /// (a content source, an upload URL).
    fn server(&self, url: &str) -> String {
        let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
        match origin(url) {
            Some(target) if origin(&self.base).as_ref() != Some(&target) => {
                format!("server at {}", target.ascii_serialization())
            }
            _ => format!("registry at {}", self.base),
        }
    }

    fn timed_out(&self, url: &str, waited: Duration, stage: &'static str) -> Error {
        Error::TimedOut {
            server: self.server(url),
            url: url.to_owned(),
            waited,
            stage,
        }
    }

    /// A failed request: a timeout (after `waited`, or the connect
    /// timeout while connecting), else what failed.
    fn failed(&self, url: &str, e: &reqwest::Error, waited: Duration) -> Error {
        if !e.is_timeout() {
            return transport(url, e);
        }
        if e.is_connect() {
            self.timed_out(url, self.limits.connect_timeout, "connecting for")
        } else {
            self.timed_out(url, waited, "waiting for the answer to")
        }
    }

    /// A failed read of an answer's body: a timeout, else what failed.
    fn read_failed(&self, url: &str, e: &std::io::Error, what: &str) -> Error {
        let reqwest_timeout = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout);
        if reqwest_timeout || e.kind() == std::io::ErrorKind::TimedOut {
            return self.timed_out(url, self.limits.read_timeout, "reading the answer to");
        }
        Error::Transport {
            url: url.to_owned(),
            message: format!("{what}: {e}"),
        }
    }

    /// Sends `request`, which may wait `waited` for its answer; sends it
    /// again (up to [`TAKEOVER_TRIES`] in all) while the registry answers
    /// 502 or 503, as replicas do during a takeover.
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        url: &str,
        waited: Duration,
    ) -> Result<Response> {
        let request = match self.token_for(url) {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        // A registry of replicas answers 503 (or 502 from a follower whose
        // leader just went) while one takes over, which takes a second or
        // two: every request this client sends may be sent again (a record
        // or an upload sent twice is the same record or upload), so it is,
        // a few times, after the wait the registry asks for.
        let mut request = request;
        let mut tries = 1;
        let response = loop {
            let again = (tries < TAKEOVER_TRIES)
                .then(|| request.try_clone())
                .flatten();
            let response = request.send().map_err(|e| self.failed(url, &e, waited))?;
            let status = response.status().as_u16();
            match again {
                Some(next) if status == 502 || status == 503 => {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, TAKEOVER_WAIT_MAX);
                    std::thread::sleep(Duration::from_secs(wait));
                    request = next;
                    tries += 1;
                }
                _ => break response,
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(Response(response));
        }
        let mut body = Vec::new();
        // A refusal's message is read only so far, and only while it comes.
        let _ = response.take(ERROR_BODY_BYTES).read_to_end(&mut body);
        let body = String::from_utf8_lossy(&body);
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
        self.send(self.http.get(&url), &url, self.limits.read_timeout)?
            .json(self, &url)
    }

    fn post_json<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let url = self.url(path);
        self.send(
            self.http.post(&url).json(body),
            &url,
            self.limits.read_timeout,
        )?
        .json(self, &url)
    }

    /// Asks the registry whether it knows this client's token (`GET /v2/`
    /// with it): `Ok(())` if so, [`Error::Refused`] with the registry's
    /// message (401) if not.
    pub fn check_token(&self) -> Result<()> {
        let url = self.url("/v2/");
        self.send(self.http.get(&url), &url, self.limits.read_timeout)
            .map(|_| ())
    }

    /// `GET /v1/fetch/checkpoint`, parsed (not yet verified).
    pub fn checkpoint(&self) -> Result<(SignedCheckpoint, SignedCheckpointJson)> {
        let json: SignedCheckpointJson = self.get_json(paths::FETCH_CHECKPOINT)?;
        let cp = json
            .parse()
            .map_err(|e| malformed(&self.url(paths::FETCH_CHECKPOINT), e.to_string()))?;
        Ok((cp, json))
    }

    /// `GET /tlog/checkpoint`: the log's C2SP checkpoint, a signed note
    /// (with the witnesses' cosignatures), unverified.
    pub fn tlog_checkpoint(&self) -> Result<Vec<u8>> {
        let url = self.url("/tlog/checkpoint");
        self.send(self.http.get(&url), &url, self.limits.read_timeout)?
            .bytes(
                self,
                &url,
                cairn_transparency::note::MAX_NOTE_BYTES as u64,
                "the bound on signed notes",
            )
    }

    /// `GET /tlog/proof/{name}/{version}`: the offline proof of a release
    /// (`c2sp.org/tlog-proof@v1`), unverified.
    pub fn tlog_proof(
        &self,
        name: &PackageName,
        version: &cairn_protocol::Version,
    ) -> Result<Vec<u8>> {
        let url = self.url(&format!("/tlog/proof/{name}/{version}"));
        self.send(self.http.get(&url), &url, self.limits.read_timeout)?
            .bytes(
                self,
                &url,
                cairn_transparency::tlog_proof::MAX_PROOF_BYTES as u64,
                "the bound on offline proofs",
            )
    }

    /// `GET /v1/ledger/records/{start}`: a page of the registry log's
    /// leaves from `start` (log id, record id), unverified.
    pub fn ledger_page(&self, start: u64) -> Result<Vec<(LogId, RecordId)>> {
        let url = self.url(&paths::ledger_records(start));
        // A page holds at most 1,000 leaves of 64 bytes; allow ten times.
        let bytes = self
            .send(self.http.get(&url), &url, self.limits.read_timeout)?
            .bytes(self, &url, 640_000, "the bound on ledger pages")?;
        if bytes.len() % 64 != 0 {
            return Err(malformed(
                &url,
                "a ledger page is not whole 64-byte leaves".into(),
            ));
        }
        Ok(bytes
            .chunks_exact(64)
            .map(|leaf| {
                let (log, record) = leaf.split_at(32);
                (
                    LogId::from(Hash::try_from(log).unwrap_or_default()),
                    RecordId::from(Hash::try_from(record).unwrap_or_default()),
                )
            })
            .collect())
    }

    /// `POST /v1/fetch/names`: the package names of log ids (`None` for
    /// logs that are not packages'), unverified.
    pub fn fetch_names(&self, ids: &[LogId]) -> Result<Vec<Option<PackageName>>> {
        let answer: cairn_api::fetch::FetchPackageNamesResponse = self.post_json(
            paths::FETCH_NAMES,
            &cairn_api::fetch::FetchPackageNamesRequest::new(ids),
        )?;
        Ok(ids
            .iter()
            .map(|id| {
                answer
                    .packages
                    .get(&id.to_string())
                    .cloned()
                    .flatten()
                    .and_then(|n| n.parse().ok())
                    // Trust nothing: the name must hash to the log id.
                    .filter(|n: &PackageName| LogId::package(n) == *id)
            })
            .collect())
    }

    /// `POST /v1/fetch/logs`: records after the given registry indexes, up
    /// to the checkpoint at `log_length`.
    pub fn fetch_logs(
        &self,
        log_length: u64,
        operator_after: Option<String>,
        packages: &[(LogId, Option<String>)],
    ) -> Result<FetchLogsResponse> {
        self.post_json(
            paths::FETCH_LOGS,
            &FetchLogsRequest::after_tokens(log_length, operator_after, packages),
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

    /// Uploads the file at `path` (of `size` bytes) to `url`, within
    /// [`Limits::min_upload_rate`].
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
        // The client's timeout would bound the whole upload (the wait for
        // the answer starts as the body is sent): an upload may take as
        // long as its size needs at the slowest rate allowed.
        let timeout = self.limits.upload_timeout(size);
        let result = self.send(
            self.http
                .post(&url)
                .header("content-type", "application/wasm")
                .timeout(timeout)
                .body(body),
            &url,
            timeout,
        );
        progress.end();
        result.map(|_| ())
    }

    /// `GET /v1/content/{digest}`: the first HTTP source of the content,
    /// and its size when the registry gives it.
    pub fn content_source(&self, digest: &Hash) -> Result<(String, Option<u64>)> {
        let path = paths::content_sources(digest);
        let answer: ContentSourcesResponse = self.get_json(&path)?;
        match answer
            .content_sources
            .get(&digest.to_string())
            .and_then(|sources| sources.first())
        {
            Some(ContentSource::HttpGet { url, size, .. }) => Ok((self.url(url), *size)),
            None => Err(malformed(
                &self.url(&path),
                "no httpGet source for the content".into(),
            )),
        }
    }

    /// Streams `url` into `out`, returning the SHA-256 of what was written
    /// and its length. It stops as soon as more bytes come than `size`
    /// (what the content source said) or [`Limits::max_download_bytes`].
    pub fn download(
        &self,
        url: &str,
        out: &mut impl Write,
        progress: &dyn Progress,
        size: Option<u64>,
    ) -> Result<(Hash, u64)> {
        let most = self.limits.max_download_bytes;
        let (bound, bound_name) = match size {
            Some(size) if size <= most => (size, "the size its content source gave"),
            _ => (most, "the bound on downloads"),
        };
        let too_large = || Error::TooLarge {
            url: url.to_owned(),
            what: "the download",
            bound_name,
            bound,
        };
        if size.is_some_and(|size| size > bound) {
            return Err(too_large());
        }
        let response = self
            .send(self.http.get(url), url, self.limits.read_timeout)?
            .0;
        if response.content_length().is_some_and(|n| n > bound) {
            return Err(too_large());
        }
        progress.begin("downloading", response.content_length().or(size));
        let result = copy_hashing(response, out, progress, Some(bound));
        progress.end();
        result.map_err(|e| match e {
            CopyError::Read(e) => self.read_failed(url, &e, "download interrupted"),
            CopyError::Write(source) => Error::Io {
                path: "download".into(),
                source,
            },
            CopyError::TooLarge => too_large(),
        })
    }
}

/// Which side of [`copy_hashing`] failed.
pub(crate) enum CopyError {
    /// Reading the source.
    Read(std::io::Error),
    /// Writing the copy.
    Write(std::io::Error),
    /// More bytes came than the limit.
    TooLarge,
}

/// Copies `from` into `to`, reporting progress, and returns the SHA-256
/// of the bytes and their count; with a `limit`, it stops before writing
/// a byte past it.
pub(crate) fn copy_hashing(
    mut from: impl Read,
    to: &mut impl Write,
    progress: &dyn Progress,
    limit: Option<u64>,
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
        if limit.is_some_and(|limit| total + n as u64 > limit) {
            return Err(CopyError::TooLarge);
        }
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
    /// The body, read within `bound` bytes (named `bound_name` in the
    /// error): a larger Content-Length is refused before reading, and
    /// reading stops one byte past the bound.
    fn bytes(self, api: &Api, url: &str, bound: u64, bound_name: &'static str) -> Result<Vec<u8>> {
        self.bytes_of(api, url, "the answer", bound, bound_name)
    }

    /// [`Response::bytes`], naming what was read (`what`) in the error.
    fn bytes_of(
        self,
        api: &Api,
        url: &str,
        what: &'static str,
        bound: u64,
        bound_name: &'static str,
    ) -> Result<Vec<u8>> {
        let too_large = || Error::TooLarge {
            url: url.to_owned(),
            what,
            bound_name,
            bound,
        };
        if self.0.content_length().is_some_and(|n| n > bound) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        self.0
            .take(bound.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| api.read_failed(url, &e, "answer interrupted"))?;
        if bytes.len() as u64 > bound {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// The body as JSON, read within [`Limits::max_json_bytes`].
    fn json<T: DeserializeOwned>(self, api: &Api, url: &str) -> Result<T> {
        let bytes = self.bytes_of(
            api,
            url,
            "the JSON answer",
            api.limits.max_json_bytes,
            "the bound on JSON answers",
        )?;
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
    if let Some(why) = unreachable(e, &message) {
        return Error::Unreachable {
            server: server_of(url),
            url: url.to_owned(),
            why,
            detail: message,
        };
    }
    Error::Transport {
        url: url.to_owned(),
        message,
    }
}

/// Why a request never reached the server, if that is what happened.
fn unreachable(e: &reqwest::Error, message: &str) -> Option<crate::error::Unreachable> {
    use crate::error::Unreachable;
    let lower = message.to_ascii_lowercase();
    if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        return Some(Unreachable::NotTls);
    }
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        return Some(Unreachable::Certificate);
    }
    if !e.is_connect() {
        return None;
    }
    Some(if lower.contains("connection refused") {
        Unreachable::Refused
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        Unreachable::UnknownHost
    } else {
        Unreachable::Other
    })
}

/// `scheme://host[:port]` of a URL.
fn server_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => url.to_owned(),
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
