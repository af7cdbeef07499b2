//! The Warg v1 face over the engine: each handler parses the request with
//! the wire types of `cairn-api`, calls the engine, and answers with a wire
//! type (the JSON shapes of `warg-api` 0.10; the paths are
//! `cairn_api::paths`).

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_api::attestation::{AttestationsResponse, PublishedAttestation};
use cairn_api::content::ContentSourcesResponse;
use cairn_api::fetch::{
    FetchLogsRequest, FetchLogsResponse, FetchPackageNamesRequest, FetchPackageNamesResponse,
};
use cairn_api::ledger::{LedgerSource, LedgerSourcesResponse};
use cairn_api::monitor::{CheckpointVerificationResponse, VerificationState};
use cairn_api::package::{self as wire, PublishRecordRequest, UploadedContent};
use cairn_api::proof::{
    ConsistencyRequest, ConsistencyResponse, InclusionRequest, InclusionResponse,
};
use cairn_api::well_known::RegistryMetadata;
use cairn_api::{paths, EntityType, PublishedRecord, SignedCheckpointJson, WireError};
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Hash, LogId, PackageName, RecordId};
use cairn_registry::{FetchRequest, QueryError, RecordStatus, StoredRecord, Upload};
use serde::de::DeserializeOwned;

use crate::error::{blocking, ApiError};
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

/// A field of a request body that does not parse: 400.
fn bad_field(e: WireError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn published(index: u64, record: &StoredRecord) -> PublishedRecord {
    PublishedRecord::from_parts(
        &record.content_bytes,
        &record.key_id,
        &record.signature,
        index,
    )
}

fn package_record(
    log_id: &LogId,
    record_id: &RecordId,
    status: &RecordStatus,
) -> wire::PackageRecord {
    match status {
        RecordStatus::Sourcing { missing } => {
            wire::PackageRecord::sourcing(log_id, record_id, missing)
        }
        RecordStatus::Processing { .. } => wire::PackageRecord::processing(record_id),
        RecordStatus::Published { index } => wire::PackageRecord::published(record_id, *index),
        RecordStatus::Rejected { reason } => wire::PackageRecord::rejected(record_id, reason),
    }
}

/// Fetches of at most this many package logs are answered inline.
const QUICK_FETCH_LOGS: usize = 4;

/// `GET /v1/fetch/checkpoint`
pub async fn fetch_checkpoint(
    State(app): State<AppState>,
) -> Result<Json<SignedCheckpointJson>, ApiError> {
    let cp = app.registry.latest_checkpoint().ok_or_else(|| {
        ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has no checkpoint yet",
        )
    })?;
    Ok(Json(SignedCheckpointJson::from(&cp)))
}

fn fetch_token(token: &str) -> Result<u64, ApiError> {
    cairn_api::fetch::token_index(token).ok_or_else(|| {
        ApiError::entity(
            StatusCode::NOT_FOUND,
            EntityType::FetchToken,
            token,
            format!("fetch token `{token}` was not found"),
        )
    })
}

/// `POST /v1/fetch/logs`
pub async fn fetch_logs(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<FetchLogsRequest>,
) -> Result<Response, ApiError> {
    let mut request = FetchRequest {
        log_length: body.log_length,
        limit: body.limit.map(usize::from),
        operator: Some(body.operator.as_deref().map(fetch_token).transpose()?),
        packages: Vec::with_capacity(body.packages.len()),
    };
    for (log_id, token) in body.package_logs().map_err(bad_field)? {
        request
            .packages
            .push((log_id, token.map(fetch_token).transpose()?));
    }
    // A fetch of a few logs from a local store is a handful of indexed
    // reads: answering it on this worker costs less than handing it to the
    // blocking pool. A store across the network always goes there.
    let response = if request.packages.len() <= QUICK_FETCH_LOGS && app.registry.local_reads() {
        app.registry.fetch_logs(&request)
    } else {
        let registry = app.registry.clone();
        blocking(move || Ok(registry.fetch_logs(&request))).await?
    };
    let response = match response {
        Ok(response) => response,
        // A log of a namespace imported from elsewhere: say where.
        Err(QueryError::LogNotFound(log_id)) => {
            let hint = crate::federate::hint(&app, &log_id).await;
            let mut answer = ApiError::from(QueryError::LogNotFound(log_id)).into_response();
            if let Some(hint) = hint {
                answer
                    .headers_mut()
                    .insert(crate::federate::WARG_REGISTRY_HINT, hint);
            }
            return Ok(answer);
        }
        Err(e) => return Err(e.into()),
    };
    let packages = response
        .packages
        .iter()
        .map(|(log_id, records)| {
            let records = records.iter().map(|(i, r)| published(*i, r)).collect();
            (log_id.to_string(), records)
        })
        .collect();
    let operator = response
        .operator
        .iter()
        .map(|(i, r)| published(*i, r))
        .collect();
    Ok(Json(FetchLogsResponse {
        more: response.more,
        operator,
        packages,
        warnings: Vec::new(),
    })
    .into_response())
}

/// `POST /v1/fetch/names`
pub async fn fetch_names(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<FetchPackageNamesRequest>,
) -> Result<Json<FetchPackageNamesResponse>, ApiError> {
    let ids = body.log_ids().map_err(bad_field)?;
    let registry = app.registry.clone();
    let lookup = ids.clone();
    let names = blocking(move || Ok(registry.package_names(&lookup)?)).await?;
    Ok(Json(FetchPackageNamesResponse::new(
        ids.iter().zip(names.iter().map(Option::as_ref)),
    )))
}

/// `POST /v1/package/{logId}/record`
pub async fn publish_record(
    State(app): State<AppState>,
    Path(log_id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishRecordRequest>,
) -> Result<Response, ApiError> {
    let log_id: LogId = parse("log id", &log_id)?;
    let name: PackageName = body.package_name().map_err(bad_field)?;
    if let Err(refused) = crate::auth::warg_publisher(&app, &headers, &name).await {
        return Ok(refused);
    }
    // Decoding and checking a signature is the costly part of a publish:
    // at most `cpu_permits` requests do it at once, so under load the
    // workers beyond them park instead of taking the cores from the
    // sequencer thread (and, on a shared machine, from everyone else).
    let answer = {
        let _permit = match &app.cpu {
            Some(cpu) => Some(cpu.acquire().await.map_err(|_| {
                ApiError::message(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
            })?),
            None => None,
        };
        let envelope = body
            .record
            .envelope::<PackageRecord>()
            .map_err(|e| ApiError::bad_request(format!("invalid package record: {e}")))?;
        let record_id = envelope.record_id();
        // Releases of content already here meet their namespace's publish
        // policy before the record goes in (the rest when it arrives).
        let releases = envelope
            .contents()
            .entries
            .iter()
            .any(|e| matches!(e, PackageEntry::Release { .. }))
            && !app.registry.policy_known_open(name.namespace());
        let envelope = if releases {
            let registry = app.registry.clone();
            let checked = name.clone();
            blocking(move || {
                registry.check_submission(&checked, &envelope)?;
                Ok(envelope)
            })
            .await
        } else {
            Ok(envelope)
        };
        envelope.map(|envelope| (record_id, app.registry.submit(name, log_id, envelope)))
    };
    let (record_id, answer) = answer?;
    app.metrics.stage("record_submitted");
    let mut status = match answer.await {
        Ok(status) => status,
        Err(e) => {
            app.metrics.stage("record_refused");
            return Err(e.into());
        }
    };
    app.metrics.stage("record_accepted");
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
        Json(package_record(&log_id, &record_id, &status)),
    )
        .into_response())
}

/// `GET /v1/package/{logId}/record/{recordId}`
pub async fn get_record(
    State(app): State<AppState>,
    Path((log_id, record_id)): Path<(String, String)>,
) -> Result<Json<wire::PackageRecord>, ApiError> {
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
    Ok(Json(package_record(&log_id, &record_id, &status)))
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
    let received = app.metrics.received("warg_content");
    let upload = stream_into(body, upload, Upload::write, &received)
        .await
        .map_err(|e| match e {
            Streamed::Refused(e) => ApiError::from(e),
            Streamed::Broken(message) => {
                ApiError::bad_request(format!("upload interrupted: {message}"))
            }
        })?;
    let registry = app.registry.clone();
    let arrived = blocking(move || Ok(registry.finish_upload(upload)?)).await?;
    app.metrics.stage("content_uploaded");
    // Answer once the record has moved on from `sourcing`, so a client
    // that asks right after its upload (as the reference client does) sees
    // `processing` or `published`.
    arrived.await?;
    Ok((StatusCode::CREATED, Json(UploadedContent::new(&digest))).into_response())
}

/// The URL clients reach this server at: `--public-url`, else
/// `http://<Host header>` when the header is a plain `host[:port]`, else the
/// address it listens on. The header is the client's to choose, and it ends
/// up in content URLs, the `WWW-Authenticate` realm and the discovery
/// document, so nothing but a host name or address and a port is taken.
pub(crate) fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &app.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_host(h))
        .map(str::to_owned)
        .unwrap_or_else(|| app.listen.clone());
    format!("{}://{host}", app.scheme)
}

/// Whether `text` is `name[:port]` or `[ipv6][:port]`: a DNS name or an
/// address, and at most a port.
fn is_host(text: &str) -> bool {
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && !port.contains(']') => (name, Some(port)),
        _ => (text, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    port_ok && name_ok
}

/// `GET /v1/content/{digest}`: where to download content.
pub async fn content_sources(
    State(app): State<AppState>,
    Path(digest): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ContentSourcesResponse>, ApiError> {
    let digest: Hash = parse("digest", &digest)?;
    let registry = app.registry.clone();
    let size = blocking(move || Ok(registry.content_size(&digest)?)).await?;
    let Some(size) = size else {
        return Err(ApiError::entity(
            StatusCode::NOT_FOUND,
            EntityType::ContentDigest,
            digest.to_string(),
            format!("content digest `{digest}` was not found"),
        ));
    };
    let mut url = format!(
        "{}{}",
        base_url(&app, &headers),
        paths::content_file(&digest)
    );
    // Reads need a token, and this caller has one (the pull gate let it
    // in): the URL carries a grant, for clients that fetch it without.
    if !app.anonymous_pull {
        let grant = app.grants.issue(&digest, app.clock.now_seconds());
        url = format!("{url}?grant={grant}");
    }
    Ok(Json(ContentSourcesResponse::http_get(&digest, url, size)))
}

/// `GET /content/sha256-<hex>`: the bytes, with `Range` support.
pub async fn download_content(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let digest: Hash = parse("content name", &paths::content_file_digest(&name))?;
    let registry = app.registry.clone();
    let lookup = digest;
    let size = blocking(move || Ok(registry.content_size(&lookup)?)).await?;
    let Some(size) = size else {
        return mirrored_content(&app, digest, &headers).await;
    };
    // Stored in an object store that presigns: the client fetches the
    // bytes from there (a range header goes along with the redirect).
    let registry = app.registry.clone();
    let direct =
        blocking(move || Ok(registry.content_download_url(&digest, CONTENT_REDIRECT_MIN)?)).await?;
    if let Some(url) = direct {
        return Ok(Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, url)
            .header(header::CACHE_CONTROL, "private, max-age=60")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()));
    }
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

/// Release content of another registry this one mirrors (handed out by
/// the content sources of a `Warg-Registry` request): from the verified
/// copy, unless the origin took it down. Else 404.
async fn mirrored_content(
    app: &AppState,
    digest: Hash,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = |digest: &Hash| {
        ApiError::entity(
            StatusCode::NOT_FOUND,
            EntityType::ContentDigest,
            digest.to_string(),
            format!("content digest `{digest}` was not found"),
        )
    };
    let Some(mirrored) = app.oci.mirrored().cloned() else {
        return Err(not_found(&digest));
    };
    if let Some((scope, reason)) = mirrored.taken_down(&digest) {
        return Err(ApiError::message(
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            format!(
                "content {digest} of {scope} was taken down by the operator of the registry \
                 it is mirrored from: {reason}"
            ),
        ));
    }
    let lookup = digest;
    let copy = mirrored.clone();
    let size = blocking(move || {
        copy.content_size(&lookup)
            .map_err(|e| ApiError::storage(&e, format!("the mirror's copy: {e}")))
    })
    .await?;
    let Some(size) = size else {
        return Err(not_found(&digest));
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/wasm")
        .header(header::ETAG, format!("\"{digest}\""));
    let open: Open = Box::new(move |start, len| {
        mirrored
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

/// The shortest validity of a presigned content URL handed out by a
/// redirect (the store's configured validity applies when longer).
const CONTENT_REDIRECT_MIN: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /v1/proof/consistency`
pub async fn prove_consistency(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<ConsistencyRequest>,
) -> Result<Json<ConsistencyResponse>, ApiError> {
    let registry = app.registry.clone();
    let proof = blocking(move || Ok(registry.prove_consistency(body.from, body.to)?)).await?;
    Ok(Json(ConsistencyResponse { proof }))
}

/// `POST /v1/proof/inclusion`
pub async fn prove_inclusion(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<InclusionRequest>,
) -> Result<Json<InclusionResponse>, ApiError> {
    let registry = app.registry.clone();
    let (log, map) =
        blocking(move || Ok(registry.prove_inclusion(body.log_length, &body.leafs)?)).await?;
    Ok(Json(InclusionResponse { log, map }))
}

/// `POST /v1/verify/checkpoint`: whether a checkpoint is one of ours and
/// carries a valid operator signature.
pub async fn verify_checkpoint(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<SignedCheckpointJson>,
) -> Result<Json<CheckpointVerificationResponse>, ApiError> {
    let checkpoint = body.parse().map_err(bad_field)?;
    let registry = app.registry.clone();
    let (same, signed) = blocking(move || Ok(registry.verify_checkpoint(&checkpoint)?)).await?;
    Ok(Json(CheckpointVerificationResponse {
        checkpoint: VerificationState::of(same),
        signature: VerificationState::of(signed),
        retry_after: None,
    }))
}

/// `GET /v1/ledger`: where the registry log's leaves can be read, in pages.
pub async fn ledger_sources(State(app): State<AppState>) -> Json<LedgerSourcesResponse> {
    let length = app.registry.log_length();
    let sources = (0..length)
        .step_by(LEDGER_PAGE as usize)
        .map(|start| LedgerSource::packed(start, (start + LEDGER_PAGE).min(length) - 1))
        .collect();
    Json(LedgerSourcesResponse {
        hash_algorithm: "sha256".to_owned(),
        sources,
    })
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
    Ok(([(header::CONTENT_TYPE, cairn_api::ledger::PACKED)], body).into_response())
}

/// `GET /.well-known/wasm-pkg/registry.json`: the discovery document wkg
/// reads (no `wargUrl` key: it breaks wkg 0.16, see ecosystem notes 1.3).
pub async fn well_known(State(app): State<AppState>, headers: HeaderMap) -> Json<RegistryMetadata> {
    Json(RegistryMetadata::new(&base_url(&app, &headers)))
}

/// `GET /v1/attestations/{package}` (Cairn's own): the package's
/// attestation log, every artifact ever attached to one of its manifests,
/// oldest first. Each record comes with its signed bytes, so a client can
/// check the operator's signature, recompute the record id and ask
/// `/v1/proof/inclusion` for the leaf `(logId, recordId)`.
pub async fn attestations(
    State(app): State<AppState>,
    Path(package): Path<String>,
) -> Result<Json<AttestationsResponse>, ApiError> {
    let name: PackageName = parse("package name", &package)?;
    let registry = app.registry.clone();
    let lookup = name.clone();
    let records = blocking(move || Ok(registry.attestations(&lookup)?)).await?;
    let records = records
        .iter()
        .map(|(index, envelope)| {
            let timestamp = cairn_registry::oci::rfc3339(&envelope.contents().timestamp);
            PublishedAttestation::new(*index, envelope, timestamp)
        })
        .collect();
    Ok(Json(AttestationsResponse::new(&name, records)))
}

#[cfg(test)]
mod tests {
    use super::is_host;

    #[test]
    fn only_plain_hosts_are_taken_from_the_host_header() {
        for good in [
            "localhost",
            "127.0.0.1:8090",
            "registry.example.com",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_host(good), "{good}");
        }
        for bad in [
            "",
            "evil.example/path",
            "a\"b",
            "host:99999",
            "host:",
            "user@host",
            "host:80/x",
            "[not-v6]:80",
            "host name",
            "::1",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
