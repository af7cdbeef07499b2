//! The Warg v1 face: paths, JSON shapes and status codes of the Warg v1 API
//! (`warg-api` 0.10), over the engine.

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cairn_protocol::package::PackageRecord;
use cairn_protocol::{Envelope, Hash, LogId, PackageName, RecordId, SignedCheckpoint};
use cairn_registry::{FetchRequest, RecordStatus, StoredRecord, Upload};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use crate::error::ApiError;
use crate::files::{serve_bytes, stream_into, Open, Streamed};
use crate::AppState;

/// Most leaves per ledger source.
pub const LEDGER_PAGE: u64 = 1000;

/// A JSON body whose errors are JSON errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::message(e.status(), format!("cannot read body: {}", e.body_text()))
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("invalid {what} `{text}`: {e}")))
}

fn checkpoint_json(cp: &SignedCheckpoint) -> Value {
    let c = &cp.contents;
    json!({
        "contents": {
            "logRoot": c.checkpoint.log_root.to_string(),
            "logLength": c.checkpoint.log_length,
            "mapRoot": c.checkpoint.map_root.to_string(),
            "timestamp": c.timestamp,
        },
        "keyId": cp.key_id.to_string(),
        "signature": cp.signature.to_string(),
    })
}

fn published_json(index: u64, record: &StoredRecord) -> Value {
    json!({
        "contentBytes": STANDARD.encode(&record.content_bytes),
        "keyId": record.key_id,
        "signature": record.signature,
        "registryIndex": index,
        "fetchToken": index.to_string(),
    })
}

fn upload_path(log_id: &LogId, record_id: &RecordId, digest: &Hash) -> String {
    format!("/v1/package/{log_id}/record/{record_id}/content/{digest}")
}

fn status_json(log_id: &LogId, record_id: &RecordId, status: &RecordStatus) -> Value {
    match status {
        RecordStatus::Sourcing { missing } => {
            let mut content = Map::new();
            for digest in missing {
                content.insert(
                    digest.to_string(),
                    json!({ "upload": [{
                        "type": "http",
                        "method": "POST",
                        "url": upload_path(log_id, record_id, digest),
                    }]}),
                );
            }
            json!({ "recordId": record_id.to_string(), "state": "sourcing", "missingContent": content })
        }
        RecordStatus::Processing { .. } => {
            json!({ "recordId": record_id.to_string(), "state": "processing" })
        }
        RecordStatus::Published { index } => json!({
            "recordId": record_id.to_string(),
            "state": "published",
            "registryIndex": index,
        }),
        RecordStatus::Rejected { reason } => json!({
            "recordId": record_id.to_string(),
            "state": "rejected",
            "reason": reason,
        }),
    }
}

/// Fetches of at most this many package logs are answered inline.
const QUICK_FETCH_LOGS: usize = 4;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
    })?
}

/// `GET /v1/fetch/checkpoint`
pub async fn fetch_checkpoint(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let cp = app.registry.latest_checkpoint().ok_or_else(|| {
        ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has no checkpoint yet",
        )
    })?;
    Ok(Json(checkpoint_json(&cp)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchLogsBody {
    log_length: u64,
    #[serde(default)]
    limit: Option<u16>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    packages: BTreeMap<String, Option<String>>,
}

fn fetch_token(token: &str) -> Result<u64, ApiError> {
    token.parse().map_err(|_| {
        ApiError::entity(
            StatusCode::NOT_FOUND,
            "fetchToken",
            json!(token),
            format!("fetch token `{token}` was not found"),
        )
    })
}

/// `POST /v1/fetch/logs`
pub async fn fetch_logs(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<FetchLogsBody>,
) -> Result<Json<Value>, ApiError> {
    let mut request = FetchRequest {
        log_length: body.log_length,
        limit: body.limit.map(usize::from),
        operator: Some(body.operator.as_deref().map(fetch_token).transpose()?),
        packages: Vec::with_capacity(body.packages.len()),
    };
    for (id, token) in &body.packages {
        let log_id: LogId = parse("log id", id)?;
        request
            .packages
            .push((log_id, token.as_deref().map(fetch_token).transpose()?));
    }
    // A fetch of a few logs is a handful of indexed reads: answering it on
    // this worker costs less than handing it to the blocking pool.
    let response = if request.packages.len() <= QUICK_FETCH_LOGS {
        app.registry.fetch_logs(&request)?
    } else {
        let registry = app.registry.clone();
        blocking(move || Ok(registry.fetch_logs(&request)?)).await?
    };
    let mut packages = Map::new();
    for (log_id, records) in &response.packages {
        packages.insert(
            log_id.to_string(),
            records.iter().map(|(i, r)| published_json(*i, r)).collect(),
        );
    }
    let operator: Vec<Value> = response
        .operator
        .iter()
        .map(|(i, r)| published_json(*i, r))
        .collect();
    Ok(Json(
        json!({ "more": response.more, "operator": operator, "packages": packages }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchNamesBody {
    packages: Vec<String>,
}

/// `POST /v1/fetch/names`
pub async fn fetch_names(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<FetchNamesBody>,
) -> Result<Json<Value>, ApiError> {
    let ids = body
        .packages
        .iter()
        .map(|id| parse::<LogId>("log id", id))
        .collect::<Result<Vec<_>, _>>()?;
    let registry = app.registry.clone();
    let lookup = ids.clone();
    let names = blocking(move || Ok(registry.package_names(&lookup)?)).await?;
    let mut packages = Map::new();
    for (id, name) in ids.iter().zip(names) {
        packages.insert(id.to_string(), json!(name.map(|n| n.to_string())));
    }
    Ok(Json(json!({ "packages": packages })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeBody {
    content_bytes: String,
    key_id: String,
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishBody {
    package_name: String,
    record: EnvelopeBody,
    #[serde(default)]
    #[allow(dead_code)]
    content_sources: Option<Value>,
}

/// `POST /v1/package/{logId}/record`
pub async fn publish_record(
    State(app): State<AppState>,
    Path(log_id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Response, ApiError> {
    let log_id: LogId = parse("log id", &log_id)?;
    let name: PackageName = parse("package name", &body.package_name)?;
    if let Err(refused) = crate::auth::warg_publisher(&app, &headers, &name).await {
        return Ok(refused);
    }
    let content_bytes = STANDARD
        .decode(body.record.content_bytes.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("record contentBytes is not base64: {e}")))?;
    let envelope = Envelope::<PackageRecord>::from_parts(
        content_bytes,
        &body.record.key_id,
        &body.record.signature,
    )
    .map_err(|e| ApiError::bad_request(format!("invalid package record: {e}")))?;
    let record_id = envelope.record_id();
    let mut status = app.registry.submit(name, log_id, envelope).await?;
    // Accepted and sequenced: a checkpoint usually follows within
    // milliseconds, so wait for it (briefly) and answer `published`,
    // sparing the client its polls.
    if let RecordStatus::Processing { index } = status {
        let published = app.registry.checkpointed(index);
        if let Ok(true) = tokio::time::timeout(app.publish_answer_wait, published).await {
            status = RecordStatus::Published { index };
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(status_json(&log_id, &record_id, &status)),
    )
        .into_response())
}

/// `GET /v1/package/{logId}/record/{recordId}`
pub async fn get_record(
    State(app): State<AppState>,
    Path((log_id, record_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let log_id: LogId = parse("log id", &log_id)?;
    let record_id: RecordId = parse("record id", &record_id)?;
    // Recent records are answered from memory, on this worker.
    let status = match app.registry.remembered_status(&log_id, &record_id) {
        Some(status) => status,
        None => {
            let registry = app.registry.clone();
            blocking(move || Ok(registry.record_status(&log_id, &record_id)?)).await?
        }
    };
    Ok(Json(status_json(&log_id, &record_id, &status)))
}

/// `POST /v1/package/{logId}/record/{recordId}/content/{digest}`: the upload
/// URL advertised for missing content. The body is streamed to a temporary
/// file; it becomes content only if its digest matches and it is Wasm.
pub async fn upload_content(
    State(app): State<AppState>,
    Path((log_id, record_id, digest)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let log_id: LogId = parse("log id", &log_id)?;
    let record_id: RecordId = parse("record id", &record_id)?;
    let digest: Hash = parse("digest", &digest)?;
    let registry = app.registry.clone();
    let upload = blocking(move || Ok(registry.begin_upload(&log_id, &record_id, &digest)?)).await?;
    let upload = stream_into(body, upload, Upload::write)
        .await
        .map_err(|e| match e {
            Streamed::Refused(e) => ApiError::from(e),
            Streamed::Broken(message) => {
                ApiError::bad_request(format!("upload interrupted: {message}"))
            }
        })?;
    let registry = app.registry.clone();
    let arrived = blocking(move || Ok(registry.finish_upload(upload)?)).await?;
    // Answer once the record has moved on from `sourcing`, so a client
    // that asks right after its upload (as the reference client does) sees
    // `processing` or `published`.
    arrived.await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "digest": digest.to_string() })),
    )
        .into_response())
}

pub(crate) fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| app.listen.clone());
    format!("http://{host}")
}

fn content_file_name(digest: &Hash) -> String {
    digest.to_string().replacen(':', "-", 1)
}

/// `GET /v1/content/{digest}`: where to download content.
pub async fn content_sources(
    State(app): State<AppState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let digest: Hash = parse("digest", &digest)?;
    let registry = app.registry.clone();
    let size = blocking(move || Ok(registry.content_size(&digest)?)).await?;
    let Some(size) = size else {
        return Err(ApiError::entity(
            StatusCode::NOT_FOUND,
            "contentDigest",
            json!(digest.to_string()),
            format!("content digest `{digest}` was not found"),
        ));
    };
    let url = format!(
        "{}/content/{}",
        base_url(&app, &headers),
        content_file_name(&digest)
    );
    Ok(Json(json!({ "contentSources": {
        digest.to_string(): [{
            "type": "httpGet",
            "url": url,
            "acceptRanges": true,
            "size": size,
        }]
    }})))
}

/// `GET /content/sha256-<hex>`: the bytes, with `Range` support.
pub async fn download_content(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let digest: Hash = parse("content name", &name.replacen('-', ":", 1))?;
    let registry = app.registry.clone();
    let size = blocking(move || Ok(registry.content_size(&digest)?)).await?;
    let Some(size) = size else {
        return Err(ApiError::entity(
            StatusCode::NOT_FOUND,
            "contentDigest",
            json!(digest.to_string()),
            format!("content digest `{digest}` was not found"),
        ));
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/wasm")
        .header(header::ETAG, format!("\"{digest}\""));
    let registry = app.registry.clone();
    let open: Open = Box::new(move |start, len| {
        registry
            .read_content(&digest, start, len)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("content {digest} is gone"))
    });
    Ok(serve_bytes(builder, size, range, false, open)
        .await
        .unwrap_or_else(|e| {
            e.into_response(|status, message| ApiError::message(status, message).into_response())
        }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistencyBody {
    from: u64,
    to: u64,
}

/// `POST /v1/proof/consistency`
pub async fn prove_consistency(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<ConsistencyBody>,
) -> Result<Json<Value>, ApiError> {
    let registry = app.registry.clone();
    let proof = blocking(move || Ok(registry.prove_consistency(body.from, body.to)?)).await?;
    Ok(Json(json!({ "proof": STANDARD.encode(proof) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionBody {
    log_length: u64,
    leafs: Vec<u64>,
}

/// `POST /v1/proof/inclusion`
pub async fn prove_inclusion(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<InclusionBody>,
) -> Result<Json<Value>, ApiError> {
    let registry = app.registry.clone();
    let (log, map) =
        blocking(move || Ok(registry.prove_inclusion(body.log_length, &body.leafs)?)).await?;
    Ok(Json(
        json!({ "log": STANDARD.encode(log), "map": STANDARD.encode(map) }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckpointContents {
    log_root: String,
    log_length: u64,
    map_root: String,
    timestamp: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckpointBody {
    contents: CheckpointContents,
    key_id: String,
    signature: String,
}

/// `POST /v1/verify/checkpoint`: whether a checkpoint is one of ours and
/// carries a valid operator signature.
pub async fn verify_checkpoint(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<CheckpointBody>,
) -> Result<Json<Value>, ApiError> {
    let checkpoint = SignedCheckpoint {
        contents: cairn_protocol::TimestampedCheckpoint {
            checkpoint: cairn_protocol::Checkpoint {
                log_root: parse("log root", &body.contents.log_root)?,
                log_length: body.contents.log_length,
                map_root: parse("map root", &body.contents.map_root)?,
            },
            timestamp: body.contents.timestamp,
        },
        key_id: parse("key id", &body.key_id)?,
        signature: parse("signature", &body.signature)?,
    };
    let registry = app.registry.clone();
    let (same, signed) = blocking(move || Ok(registry.verify_checkpoint(&checkpoint)?)).await?;
    let state = |ok: bool| if ok { "verified" } else { "invalid" };
    Ok(Json(
        json!({ "checkpoint": state(same), "signature": state(signed) }),
    ))
}

/// `GET /v1/ledger`: where the registry log's leaves can be read, in pages.
pub async fn ledger_sources(State(app): State<AppState>) -> Json<Value> {
    let length = app.registry.log_length();
    let sources: Vec<Value> = (0..length)
        .step_by(LEDGER_PAGE as usize)
        .map(|start| {
            json!({
                "firstRegistryIndex": start,
                "lastRegistryIndex": (start + LEDGER_PAGE).min(length) - 1,
                "url": format!("v1/ledger/records/{start}"),
                "contentType": "application/vnd.warg.ledger.packed",
            })
        })
        .collect();
    Json(json!({ "hashAlgorithm": "sha256", "sources": sources }))
}

/// `GET /v1/ledger/records/{start}`: up to [`LEDGER_PAGE`] leaves, each as
/// 32 bytes of log id then 32 bytes of record id.
pub async fn ledger_records(
    State(app): State<AppState>,
    Path(start): Path<String>,
) -> Result<Response, ApiError> {
    let start: u64 = parse("registry index", &start)?;
    let registry = app.registry.clone();
    let leaves = blocking(move || Ok(registry.leaves(start, LEDGER_PAGE as usize)?)).await?;
    let mut body = Vec::with_capacity(leaves.len() * 64);
    for leaf in leaves {
        body.extend_from_slice(leaf.log_id.digest().as_bytes());
        body.extend_from_slice(leaf.record_id.digest().as_bytes());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.warg.ledger.packed")],
        body,
    )
        .into_response())
}

/// `GET /.well-known/wasm-pkg/registry.json`: the discovery document wkg
/// reads (no `wargUrl` key: it breaks wkg 0.16, see ecosystem notes 1.3).
pub async fn well_known(State(app): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&app, &headers);
    let host = base
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(&base)
        .trim_end_matches('/')
        .to_owned();
    Json(json!({
        "preferredProtocol": "oci",
        "oci": { "registry": host, "namespacePrefix": "" },
        "warg": { "url": base },
    }))
}

/// `GET /v1/attestations/{package}` (Cairn's own): the package's
/// attestation log, every artifact ever attached to one of its manifests,
/// oldest first. Each record comes with its signed bytes, so a client can
/// check the operator's signature, recompute the record id and ask
/// `/v1/proof/inclusion` for the leaf `(logId, recordId)`.
pub async fn attestations(
    State(app): State<AppState>,
    Path(package): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name: PackageName = parse("package name", &package)?;
    let registry = app.registry.clone();
    let lookup = name.clone();
    let records = blocking(move || Ok(registry.attestations(&lookup)?)).await?;
    let records: Vec<Value> = records
        .iter()
        .map(|(index, envelope)| {
            let record = envelope.contents();
            let a = &record.attestation;
            json!({
                "index": index,
                "recordId": envelope.record_id().to_string(),
                "prev": record.prev.map(|p| p.to_string()),
                "timestamp": cairn_registry::oci::rfc3339(&record.timestamp),
                "subject": a.subject,
                "referrer": a.referrer,
                "artifactType": a.artifact_type,
                "mediaType": a.media_type,
                "size": a.size,
                "account": a.account,
                "contentBytes": STANDARD.encode(envelope.content_bytes()),
                "keyId": envelope.key_id().to_string(),
                "signature": envelope.signature().to_string(),
            })
        })
        .collect();
    Ok(Json(json!({
        "package": name.as_str(),
        "logId": LogId::attestations(&name).to_string(),
        "records": records,
    })))
}
