//! The Warg v1 HTTP API as the client sees it: requests, JSON shapes and
//! error bodies. Nothing here decides whether an answer is true; that is
//! [`crate::verify`]'s job.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::{
    Checkpoint, Envelope, Hash, LogId, PackageName, Record, RecordId, SignedCheckpoint,
    TimestampedCheckpoint,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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

/// A signed checkpoint in the API's JSON shape (also how trusted state
/// keeps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointJson {
    /// What was signed.
    pub contents: CheckpointContents,
    /// The signing key.
    pub key_id: String,
    /// The signature.
    pub signature: String,
}

/// The signed contents of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointContents {
    /// The registry log's root.
    pub log_root: String,
    /// The registry log's length.
    pub log_length: u64,
    /// The registry map's root.
    pub map_root: String,
    /// Seconds since the epoch.
    pub timestamp: u64,
}

impl CheckpointJson {
    /// The JSON shape of `cp`.
    pub fn new(cp: &SignedCheckpoint) -> CheckpointJson {
        let c = &cp.contents;
        CheckpointJson {
            contents: CheckpointContents {
                log_root: c.checkpoint.log_root.to_string(),
                log_length: c.checkpoint.log_length,
                map_root: c.checkpoint.map_root.to_string(),
                timestamp: c.timestamp,
            },
            key_id: cp.key_id.to_string(),
            signature: cp.signature.to_string(),
        }
    }

    /// The checkpoint, if every field parses.
    pub fn parse(&self) -> Result<SignedCheckpoint, String> {
        let c = &self.contents;
        let field = |name: &str, e: &dyn std::fmt::Display| format!("checkpoint {name}: {e}");
        Ok(SignedCheckpoint {
            contents: TimestampedCheckpoint {
                checkpoint: Checkpoint {
                    log_root: c.log_root.parse().map_err(|e| field("logRoot", &e))?,
                    log_length: c.log_length,
                    map_root: c.map_root.parse().map_err(|e| field("mapRoot", &e))?,
                },
                timestamp: c.timestamp,
            },
            key_id: self.key_id.parse().map_err(|e| field("keyId", &e))?,
            signature: self.signature.parse().map_err(|e| field("signature", &e))?,
        })
    }
}

/// A record as the registry publishes it: the signed envelope and where it
/// sits in the registry log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    /// The record's protobuf bytes, base64.
    pub content_bytes: String,
    /// The signing key.
    pub key_id: String,
    /// The signature.
    pub signature: String,
    /// Its index in the registry log.
    pub registry_index: u64,
}

impl PublishedRecord {
    /// The JSON shape of `envelope` at `index`.
    pub fn new<R: Record>(envelope: &Envelope<R>, index: u64) -> PublishedRecord {
        PublishedRecord {
            content_bytes: STANDARD.encode(envelope.content_bytes()),
            key_id: envelope.key_id().to_string(),
            signature: envelope.signature().to_string(),
            registry_index: index,
        }
    }

    /// The envelope, if it decodes.
    pub fn envelope<R: Record>(&self) -> Result<Envelope<R>, String> {
        let bytes = STANDARD
            .decode(&self.content_bytes)
            .map_err(|e| format!("record contentBytes is not base64: {e}"))?;
        Envelope::from_parts(bytes, &self.key_id, &self.signature)
            .map_err(|e| format!("record at registry index {}: {e}", self.registry_index))
    }
}

/// One page of `POST /v1/fetch/logs`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchPage {
    /// Whether more records are waiting.
    #[serde(default)]
    pub more: bool,
    /// Operator-log records.
    #[serde(default)]
    pub operator: Vec<PublishedRecord>,
    /// Package-log records by log id.
    #[serde(default)]
    pub packages: std::collections::BTreeMap<String, Vec<PublishedRecord>>,
}

/// Where a submitted record stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordStatus {
    /// Waiting for content: digest and upload URL of each missing piece.
    Sourcing(Vec<(Hash, String)>),
    /// Accepted, not yet in a checkpoint.
    Processing,
    /// In the registry log at this index.
    Published(u64),
    /// Refused, with the reason.
    Rejected(String),
}

/// A registry's Warg API, over blocking HTTP.
pub struct Api {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
}

impl Api {
    /// The API of the registry at `base`; `token` is sent as a bearer with
    /// every request when given.
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

    fn send(&self, request: reqwest::blocking::RequestBuilder, url: &str) -> Result<Response> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().map_err(|e| transport(url, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Response(response));
        }
        let body = response.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| body.trim().chars().take(500).collect());
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

    fn post_json<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        let url = self.url(path);
        self.send(self.http.post(&url).json(body), &url)?.json(&url)
    }

    /// `GET /v1/fetch/checkpoint`, parsed (not yet verified).
    pub fn checkpoint(&self) -> Result<(SignedCheckpoint, CheckpointJson)> {
        let json: CheckpointJson = self.get_json("v1/fetch/checkpoint")?;
        let cp = json
            .parse()
            .map_err(|e| malformed(&self.url("v1/fetch/checkpoint"), e))?;
        Ok((cp, json))
    }

    /// `POST /v1/fetch/logs`: records after the given registry indexes, up
    /// to the checkpoint at `log_length`.
    pub fn fetch_logs(
        &self,
        log_length: u64,
        operator_after: Option<u64>,
        packages: &[(LogId, Option<u64>)],
    ) -> Result<FetchPage> {
        let packages: serde_json::Map<String, Value> = packages
            .iter()
            .map(|(id, after)| (id.to_string(), json!(after.map(|a| a.to_string()))))
            .collect();
        self.post_json(
            "v1/fetch/logs",
            &json!({
                "logLength": log_length,
                "operator": operator_after.map(|a| a.to_string()),
                "packages": packages,
            }),
        )
    }

    /// `POST /v1/proof/consistency`: the raw log proof bundle.
    pub fn prove_consistency(&self, from: u64, to: u64) -> Result<Vec<u8>> {
        #[derive(Deserialize)]
        struct Answer {
            proof: String,
        }
        let url = self.url("v1/proof/consistency");
        let answer: Answer = self.post_json(&url, &json!({ "from": from, "to": to }))?;
        STANDARD
            .decode(answer.proof)
            .map_err(|e| malformed(&url, format!("proof is not base64: {e}")))
    }

    /// `POST /v1/proof/inclusion`: the raw log and map proof bundles.
    pub fn prove_inclusion(&self, log_length: u64, leafs: &[u64]) -> Result<(Vec<u8>, Vec<u8>)> {
        #[derive(Deserialize)]
        struct Answer {
            log: String,
            map: String,
        }
        let url = self.url("v1/proof/inclusion");
        let answer: Answer =
            self.post_json(&url, &json!({ "logLength": log_length, "leafs": leafs }))?;
        let decode = |what: &str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| malformed(&url, format!("{what} proof is not base64: {e}")))
        };
        Ok((decode("log", &answer.log)?, decode("map", &answer.map)?))
    }

    /// `POST /v1/package/{logId}/record`.
    pub fn publish<R: Record>(
        &self,
        name: &PackageName,
        envelope: &Envelope<R>,
    ) -> Result<RecordStatus> {
        let log_id = LogId::package(name);
        let url = self.url(&format!("v1/package/{log_id}/record"));
        let body = json!({
            "packageName": name.as_str(),
            "record": {
                "contentBytes": STANDARD.encode(envelope.content_bytes()),
                "keyId": envelope.key_id().to_string(),
                "signature": envelope.signature().to_string(),
            },
        });
        let answer: Value = self.post_json(&url, &body)?;
        status(&url, &answer)
    }

    /// `GET /v1/package/{logId}/record/{recordId}`.
    pub fn record_status(&self, log_id: &LogId, record_id: &RecordId) -> Result<RecordStatus> {
        let url = self.url(&format!("v1/package/{log_id}/record/{record_id}"));
        let answer: Value = self.get_json(&url)?;
        status(&url, &answer)
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
        let url = self.url(&format!("v1/content/{digest}"));
        let answer: Value = self.get_json(&url)?;
        answer
            .pointer("/contentSources")
            .and_then(|s| s.get(digest.to_string()))
            .and_then(Value::as_array)
            .and_then(|sources| {
                sources
                    .iter()
                    .find(|s| s.get("type").and_then(Value::as_str) == Some("httpGet"))
            })
            .and_then(|s| s.get("url").and_then(Value::as_str))
            .map(|u| self.url(u))
            .ok_or_else(|| malformed(&url, "no httpGet source for the content".into()))
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

fn malformed(url: &str, message: String) -> Error {
    Error::Transport {
        url: url.to_owned(),
        message: format!("malformed answer: {message}"),
    }
}

fn status(url: &str, answer: &Value) -> Result<RecordStatus> {
    let state = answer.get("state").and_then(Value::as_str).unwrap_or("");
    Ok(match state {
        "sourcing" => {
            let mut missing = Vec::new();
            if let Some(content) = answer.get("missingContent").and_then(Value::as_object) {
                for (digest, how) in content {
                    let digest: Hash = digest
                        .parse()
                        .map_err(|e| malformed(url, format!("missing content digest: {e}")))?;
                    let upload = how
                        .pointer("/upload/0/url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            malformed(url, "missing content has no upload URL".into())
                        })?;
                    missing.push((digest, upload.to_owned()));
                }
            }
            RecordStatus::Sourcing(missing)
        }
        "processing" => RecordStatus::Processing,
        "published" => RecordStatus::Published(
            answer
                .get("registryIndex")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed(url, "published record has no registryIndex".into()))?,
        ),
        "rejected" => RecordStatus::Rejected(
            answer
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_owned(),
        ),
        other => return Err(malformed(url, format!("unknown record state `{other}`"))),
    })
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
