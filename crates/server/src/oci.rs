//! The OCI face: the distribution spec v1.1 API under `/v2/`, over
//! [`Oci`]. Repository names contain `/`, so one handler takes every path
//! under `/v2/` and splits it at the last `/blobs/`, `/manifests/`,
//! `/tags/list` or `/referrers/`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cairn_registry::oci::{
    Account, Chunk, Digest, ErrorCode, Hint, Oci, OciError, PushStep, Pushed, Reference,
    IMAGE_INDEX, MAX_MANIFEST_BYTES,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::auth;
use crate::auth::publish_scope_hint;
use crate::files::{serve_bytes, stream_into, Open, Streamed};
use crate::AppState;

const CONTENT_DIGEST: &str = "Docker-Content-Digest";
const UPLOAD_UUID: &str = "Docker-Upload-UUID";

/// An error answer in the spec's shape: `{"errors": [{code, message, detail}]}`.
pub struct OciResponseError(pub OciError);

impl From<OciError> for OciResponseError {
    fn from(e: OciError) -> Self {
        OciResponseError(e)
    }
}

/// The HTTP status of an error code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BlobUnknown
        | ErrorCode::BlobUploadUnknown
        | ErrorCode::ManifestUnknown
        | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
        ErrorCode::BlobUploadInvalid
        | ErrorCode::DigestInvalid
        | ErrorCode::ManifestBlobUnknown
        | ErrorCode::ManifestInvalid
        | ErrorCode::NameInvalid
        | ErrorCode::SizeInvalid => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Denied => StatusCode::FORBIDDEN,
        ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Conflict | ErrorCode::Busy => StatusCode::CONFLICT,
        ErrorCode::TooMany => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Full => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::TakenDown => StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
    }
}

/// The message of an error, with its hint worded for OCI users.
fn worded(e: &OciError) -> String {
    let hint = match &e.hint {
        None => return e.message.clone(),
        Some(Hint::AllowOciCreate { namespace }) => format!(
            "the operator can allow it with `cairn namespace policy {namespace} --oci-create true`"
        ),
        Some(Hint::GrantRelease { package, key }) => format!(
            "an owner of `{package}` can grant that key release permission \
             (`cairn grant {package} --key {key} --permission release`, or warg publish grant)"
        ),
        Some(Hint::BlobLimit) => "the operator sets it with `cairn serve --max-blob-bytes`".into(),
        Some(Hint::IntendedBreak { namespace, release }) => format!(
            "to mark the break as intended, push with the manifest annotation \
             `{}: true`, or have the operator allow it with `cairn namespace policy \
             {namespace} --allow-break {release}`",
            cairn_registry::policy::BREAK_ANNOTATION
        ),
        Some(Hint::PublishToken { repository }) => auth::publish_scope_hint(repository),
    };
    format!("{}; {hint}", e.message)
}

impl IntoResponse for OciResponseError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status_of(e.code);
        let message = worded(&e);
        let storage = matches!(e.code, ErrorCode::Internal | ErrorCode::Full);
        if status.is_server_error() {
            tracing::error!(code = e.code.as_str(), message = %message, "OCI request failed");
        }
        let body = json!({ "errors": [{
            "code": e.code.as_str(),
            "message": message,
            "detail": {},
        }]});
        let mut response = (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::HeaderName::from_static("docker-distribution-api-version"),
                    "registry/2.0",
                ),
            ],
            body.to_string(),
        )
            .into_response();
        if storage {
            response
                .extensions_mut()
                .insert(crate::observe::StorageFailure);
        }
        response
    }
}

type OciResult = Result<Response, OciResponseError>;

fn error(code: ErrorCode, message: impl Into<String>) -> OciResponseError {
    OciResponseError(OciError::new(code, message))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OciError> + Send + 'static,
) -> Result<T, OciResponseError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(ErrorCode::Internal, format!("task failed: {e}")))?
        .map_err(OciResponseError)
}

fn oci(app: &AppState) -> Arc<Oci> {
    app.oci.clone()
}

/// `GET /v2/`: the API version check, and where clients learn how to
/// authenticate: a caller without credentials gets the Bearer challenge.
pub async fn base(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let refused = match auth::caller(&app, &headers).await {
        Ok(Some(_)) => None,
        Ok(None) if app.anonymous_pull && auth::presented_anonymous(&headers) => None,
        Ok(None) => Some(OciError::new(
            ErrorCode::Unauthorized,
            "authentication required: get a token from the realm in WWW-Authenticate \
             (anonymous pull is allowed without credentials)",
        )),
        Err(e) => Some(e),
    };
    if let Some(e) = refused {
        return auth::challenge(&app, &headers, None, e);
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("docker-distribution-api-version"),
                "registry/2.0",
            ),
        ],
        "{}",
    )
        .into_response()
}

/// What a path under `/v2/` names.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(repo.to_owned()));
    }
    if let Some(repo) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(repo.to_owned()));
    }
    let split = |marker: &str| {
        rest.rfind(marker)
            .map(|i| (rest[..i].to_owned(), rest[i + marker.len()..].to_owned()))
            .filter(|(repo, tail)| !repo.is_empty() && !tail.is_empty() && !tail.contains('/'))
    };
    if let Some((repo, id)) = split("/blobs/uploads/") {
        return Some(Route::Upload(repo, id));
    }
    if let Some((repo, reference)) = split("/manifests/") {
        return Some(Route::Manifest(repo, reference));
    }
    if let Some((repo, digest)) = split("/blobs/") {
        return Some(Route::Blob(repo, digest));
    }
    if let Some((repo, digest)) = split("/referrers/") {
        return Some(Route::Referrers(repo, digest));
    }
    None
}

fn parse_digest(text: &str) -> Result<Digest, OciResponseError> {
    text.parse().map_err(|e: cairn_registry::oci::DigestError| {
        error(ErrorCode::DigestInvalid, e.to_string())
    })
}

fn parse_n(params: &HashMap<String, String>) -> Result<Option<usize>, OciResponseError> {
    params
        .get("n")
        .map(|n| {
            n.parse::<usize>().map_err(|_| {
                error(
                    ErrorCode::Unsupported,
                    format!("query parameter n=`{n}` is not a non-negative integer"),
                )
            })
        })
        .transpose()
}

/// Every request under `/v2/` other than `/v2/` itself, with its
/// response marked with the endpoint's name for the metrics.
pub async fn dispatch(
    state: State<AppState>,
    method: Method,
    uri: Uri,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match route(uri.path()) {
        Some(Route::Catalog) => "oci:catalog",
        Some(Route::Tags(_)) => "oci:tags",
        Some(Route::Manifest(..)) => "oci:manifest",
        Some(Route::Blob(..)) => "oci:blob",
        Some(Route::Uploads(_)) => "oci:uploads",
        Some(Route::Upload(..)) => "oci:upload",
        Some(Route::Referrers(..)) => "oci:referrers",
        None => "oci:unknown",
    };
    let mut response = route_request(state, method, uri, query, headers, body)
        .await
        .into_response();
    response
        .extensions_mut()
        .insert(crate::observe::RouteName(name));
    response
}

async fn route_request(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> OciResult {
    let Some(route) = route(uri.path()) else {
        return Err(error(
            ErrorCode::NameInvalid,
            format!("no OCI endpoint at {}", uri.path()),
        ));
    };
    // Reads are open unless anonymous pull is off; writes need a token
    // whose scopes cover the repository.
    let repository = match &route {
        Route::Catalog => None,
        Route::Tags(r)
        | Route::Manifest(r, _)
        | Route::Blob(r, _)
        | Route::Uploads(r)
        | Route::Upload(r, _)
        | Route::Referrers(r, _) => Some(r.clone()),
    };
    let push = !matches!(method, Method::GET | Method::HEAD);
    let scope = repository
        .as_ref()
        .map(|r| format!("repository:{r}:{}", if push { "pull,push" } else { "pull" }));
    let caller = match auth::caller(&app, &headers).await {
        Ok(caller) => caller,
        Err(e) => return Ok(auth::challenge(&app, &headers, scope.as_deref(), e)),
    };
    if push {
        let repo = repository.as_deref().unwrap_or_default();
        match &caller {
            None => {
                return Ok(auth::challenge(
                    &app,
                    &headers,
                    scope.as_deref(),
                    OciError::new(
                        ErrorCode::Unauthorized,
                        format!(
                            "pushing to `{repo}` needs a token with a publish scope for it: \
                             {} (wkg reads it from WKG_REGISTRY_<HOST>_AUTH_BEARER)",
                            publish_scope_hint(repo)
                        ),
                    ),
                ))
            }
            Some(token) if !token.allows_push(repo) => {
                return Err(error(
                    ErrorCode::Denied,
                    format!(
                        "the token of account `{}` may not push to `{repo}` (its scopes: {}); {}",
                        token.account,
                        token.scope_list(),
                        publish_scope_hint(repo)
                    ),
                ))
            }
            Some(_) => {}
        }
    } else if caller.is_none() && !app.anonymous_pull {
        return Ok(auth::challenge(
            &app,
            &headers,
            scope.as_deref(),
            OciError::new(
                ErrorCode::Unauthorized,
                "this registry does not allow anonymous pull: authenticate with a token",
            ),
        ));
    }
    let account = match (&caller, push) {
        (Some(token), true) => {
            let auth = app.tokens.store().clone();
            let name = token.account.clone();
            Some(blocking(move || Ok(auth.ensure_account(&name)?)).await?)
        }
        _ => None,
    };
    let not_allowed = || {
        Err(error(
            ErrorCode::Unsupported,
            format!("method {method} is not supported on {}", uri.path()),
        ))
    };
    match route {
        Route::Catalog if method == Method::GET => catalog(&app, &params).await,
        Route::Tags(repo) if method == Method::GET => tags(&app, repo, &params).await,
        Route::Manifest(repo, reference) => {
            let reference = Reference::parse(&reference)?;
            match method {
                Method::GET | Method::HEAD => {
                    get_manifest(&app, repo, reference, method == Method::HEAD).await
                }
                Method::PUT => {
                    let tags = query_tags(uri.query())?;
                    put_manifest(&app, repo, reference, tags, &headers, body, account).await
                }
                Method::DELETE => delete_manifest(&app, repo, reference).await,
                _ => not_allowed(),
            }
        }
        Route::Blob(repo, digest) => {
            let digest = parse_digest(&digest)?;
            match method {
                Method::GET | Method::HEAD => {
                    get_blob(&app, repo, digest, &headers, method == Method::HEAD).await
                }
                Method::DELETE => delete_blob(&app, repo, digest).await,
                _ => not_allowed(),
            }
        }
        Route::Uploads(repo) if method == Method::POST => {
            let account = account.map(|a| a.name).unwrap_or_default();
            start_upload(&app, repo, &account, &params, body).await
        }
        Route::Upload(repo, id) => match method {
            Method::GET => upload_status(&app, repo, id).await,
            Method::PATCH => patch_upload(&app, repo, id, &headers, body).await,
            Method::PUT => finish_upload(&app, repo, id, &params, &headers, body).await,
            Method::DELETE => cancel_upload(&app, repo, id).await,
            _ => not_allowed(),
        },
        Route::Referrers(repo, digest) if method == Method::GET => {
            let digest = parse_digest(&digest)?;
            referrers(&app, repo, digest, &params).await
        }
        _ => not_allowed(),
    }
}

fn next_link(path: &str, n: usize, last: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\""))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn catalog(app: &AppState, params: &HashMap<String, String>) -> OciResult {
    let n = parse_n(params)?;
    let last = params.get("last").cloned();
    let oci = oci(app);
    let repos = blocking(move || oci.catalog(last.as_deref(), n)).await?;
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "repositories": repos }).to_string(),
    )
        .into_response();
    if let (Some(n), Some(last)) = (n, repos.last()) {
        if repos.len() == n {
            response
                .headers_mut()
                .insert(header::LINK, next_link("/v2/_catalog", n, last));
        }
    }
    Ok(response)
}

async fn tags(app: &AppState, repo: String, params: &HashMap<String, String>) -> OciResult {
    let n = parse_n(params)?;
    let last = params.get("last").cloned();
    let oci = oci(app);
    let name = repo.clone();
    let tags = blocking(move || oci.tags(&name, last.as_deref(), n)).await?;
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "name": repo, "tags": tags }).to_string(),
    )
        .into_response();
    if let (Some(n), Some(last)) = (n, tags.last()) {
        if tags.len() == n {
            response.headers_mut().insert(
                header::LINK,
                next_link(&format!("/v2/{repo}/tags/list"), n, last),
            );
        }
    }
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn get_manifest(app: &AppState, repo: String, reference: Reference, head: bool) -> OciResult {
    let oci = oci(app);
    let manifest = blocking(move || oci.manifest(&repo, &reference)).await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, header_value(&manifest.media_type))
        .header(CONTENT_DIGEST, header_value(&manifest.digest.to_string()))
        .header(
            header::ETAG,
            header_value(&format!("\"{}\"", manifest.digest)),
        )
        .header(header::CONTENT_LENGTH, manifest.bytes.len());
    if head {
        return builder
            .body(Body::empty())
            .map_err(|e| error(ErrorCode::Internal, e.to_string()));
    }
    builder
        .body(Body::from(manifest.bytes))
        .map_err(|e| error(ErrorCode::Internal, e.to_string()))
}

async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, OciResponseError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                ErrorCode::ManifestInvalid,
                format!("request body interrupted: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(error(
                ErrorCode::ManifestInvalid,
                format!("manifest is larger than {limit} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn put_manifest(
    app: &AppState,
    repo: String,
    reference: Reference,
    tags: Vec<String>,
    headers: &HeaderMap,
    body: Body,
    account: Option<Account>,
) -> OciResult {
    let bytes = bytes::Bytes::from(read_limited(body, MAX_MANIFEST_BYTES).await?);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if !tags.is_empty() && matches!(reference, Reference::Tag(_)) {
        return Err(error(
            ErrorCode::ManifestInvalid,
            "`?tag=` applies to a manifest pushed by digest, not by tag",
        ));
    }
    let mut pushed = push_one(
        app,
        &repo,
        reference,
        content_type.clone(),
        bytes.clone(),
        account.clone(),
    )
    .await?;
    for tag in &tags {
        pushed = push_one(
            app,
            &repo,
            Reference::Tag(tag.clone()),
            content_type.clone(),
            bytes.clone(),
            account.clone(),
        )
        .await?;
    }
    let mut response = pushed_response(&repo, &pushed)?;
    for tag in &tags {
        response.headers_mut().append("OCI-Tag", header_value(tag));
    }
    Ok(response)
}

/// Stores one manifest under one reference, waiting (a while) for what
/// the push publishes or attests.
async fn push_one(
    app: &AppState,
    repo: &str,
    reference: Reference,
    content_type: Option<String>,
    bytes: bytes::Bytes,
    account: Option<Account>,
) -> Result<Pushed, OciResponseError> {
    let oci = oci(app);
    let name = repo.to_owned();
    let step = blocking(move || {
        oci.put_manifest(
            &name,
            &reference,
            content_type.as_deref(),
            &bytes,
            account.as_ref(),
        )
    })
    .await?;
    let pushed = match step {
        PushStep::Done(pushed) => pushed,
        PushStep::Pending(pending) => {
            let wait = app.oci.config().publish_wait;
            tokio::time::timeout(wait, pending.finish())
                .await
                .map_err(|_| {
                    error(
                        ErrorCode::Timeout,
                        format!(
                            "the push was accepted but not published within {}s; its tag \
                             appears once it is",
                            wait.as_secs()
                        ),
                    )
                })??
        }
    };
    app.metrics.stage("oci_manifest_pushed");
    Ok(pushed)
}

fn pushed_response(repo: &str, pushed: &Pushed) -> OciResult {
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(
            header::LOCATION,
            header_value(&format!("/v2/{repo}/manifests/{}", pushed.digest)),
        )
        .header(CONTENT_DIGEST, header_value(&pushed.digest.to_string()))
        .header(header::CONTENT_LENGTH, 0);
    if let Some(subject) = &pushed.subject {
        builder = builder.header("OCI-Subject", header_value(&subject.to_string()));
    }
    // Where the push landed in the transparency log.
    if let Some(record) = &pushed.released {
        builder = builder.header("Cairn-Release-Record", header_value(&record.to_string()));
    }
    if let Some(attested) = &pushed.attested {
        builder = builder.header(
            "Cairn-Attestation-Record",
            header_value(&format!("{}/{}", attested.log_id, attested.record_id)),
        );
    }
    builder
        .body(Body::empty())
        .map_err(|e| error(ErrorCode::Internal, e.to_string()))
}

async fn delete_manifest(app: &AppState, repo: String, reference: Reference) -> OciResult {
    let oci = oci(app);
    blocking(move || oci.delete_manifest(&repo, &reference)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn get_blob(
    app: &AppState,
    repo: String,
    digest: Digest,
    headers: &HeaderMap,
    head: bool,
) -> OciResult {
    let oci = oci(app);
    let lookup = digest.clone();
    let blob = blocking(move || oci.blob(&repo, &lookup)).await?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_DIGEST, header_value(&digest.to_string()))
        .header(header::ETAG, header_value(&format!("\"{digest}\"")));
    let size = blob.size;
    let open: Open = Box::new(move |start, len| blob.read(start, len).map_err(|e| e.message));
    Ok(serve_bytes(builder, size, range, head, open)
        .await
        .unwrap_or_else(|e| {
            e.into_response(|status, message| {
                let code = if status == StatusCode::RANGE_NOT_SATISFIABLE {
                    ErrorCode::RangeInvalid
                } else {
                    ErrorCode::Internal
                };
                error(code, message).into_response()
            })
        }))
}

async fn delete_blob(app: &AppState, repo: String, digest: Digest) -> OciResult {
    let oci = oci(app);
    blocking(move || oci.delete_blob(&repo, &digest)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn upload_location(repo: &str, id: &str) -> HeaderValue {
    header_value(&format!("/v2/{repo}/blobs/uploads/{id}"))
}

fn range_header(size: u64) -> HeaderValue {
    header_value(&format!("0-{}", size.saturating_sub(1)))
}

fn accepted_upload(repo: &str, id: &str, size: u64) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, upload_location(repo, id));
    h.insert(header::RANGE, range_header(size));
    h.insert(UPLOAD_UUID, header_value(id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

fn created_blob(repo: &str, digest: &Digest) -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{repo}/blobs/{digest}")),
    );
    h.insert(CONTENT_DIGEST, header_value(&digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    response
}

/// Appends `body` to upload session `id` (at `start`, if the client said
/// where), holding the session for this request; returns the chunk, to
/// finish or complete. A blob over the size limit ends the session.
async fn write_chunk(
    app: &AppState,
    oci: &Arc<Oci>,
    repo: &str,
    id: &str,
    start: Option<u64>,
    body: Body,
) -> Result<Chunk, OciResponseError> {
    let (o, r, i) = (oci.clone(), repo.to_owned(), id.to_owned());
    let chunk = blocking(move || o.open_chunk(&r, &i, start)).await?;
    stream_into(body, chunk, Chunk::write, &app.metrics.received("oci_blob"))
        .await
        .map_err(|e| match e {
            Streamed::Refused(e) => OciResponseError(e),
            Streamed::Broken(message) => error(
                ErrorCode::BlobUploadInvalid,
                format!("upload interrupted: {message}"),
            ),
        })
}

async fn start_upload(
    app: &AppState,
    repo: String,
    account: &str,
    params: &HashMap<String, String>,
    body: Body,
) -> OciResult {
    let oci = oci(app);
    if let (Some(mount), Some(from)) = (params.get("mount"), params.get("from")) {
        let digest = parse_digest(mount)?;
        let (o, r, f, d) = (oci.clone(), repo.clone(), from.clone(), digest.clone());
        if blocking(move || o.mount(&r, &f, &d)).await? {
            return Ok(created_blob(&repo, &digest));
        }
    }
    let digest = params.get("digest").map(|d| parse_digest(d)).transpose()?;
    let (o, r, a) = (oci.clone(), repo.clone(), account.to_owned());
    let id = blocking(move || o.start_upload(&r, &a)).await?;
    let Some(digest) = digest else {
        return Ok(accepted_upload(&repo, &id, 0));
    };
    // Monolithic: the whole blob in this request.
    let chunk = write_chunk(app, &oci, &repo, &id, None, body).await?;
    let d = digest.clone();
    blocking(move || chunk.complete(&d)).await?;
    Ok(created_blob(&repo, &digest))
}

async fn upload_status(app: &AppState, repo: String, id: String) -> OciResult {
    let oci = oci(app);
    let (r, i) = (repo.clone(), id.clone());
    let size = blocking(move || oci.upload_size(&r, &i)).await?;
    let mut response = accepted_upload(&repo, &id, size);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// The start of a `Content-Range: <start>-<end>` header (`bytes ` prefix
/// tolerated).
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, OciResponseError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.strip_prefix("bytes=").unwrap_or(text);
    let start = text
        .split_once('-')
        .and_then(|(s, _)| s.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            error(
                ErrorCode::RangeInvalid,
                format!("Content-Range `{text}` is not `<start>-<end>`"),
            )
        })?;
    Ok(Some(start))
}

async fn patch_upload(
    app: &AppState,
    repo: String,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> OciResult {
    let start = content_range_start(headers)?;
    let oci = oci(app);
    let chunk = write_chunk(app, &oci, &repo, &id, start, body).await?;
    let size = blocking(move || chunk.finish()).await?;
    Ok(accepted_upload(&repo, &id, size))
}

async fn finish_upload(
    app: &AppState,
    repo: String,
    id: String,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> OciResult {
    let Some(digest) = params.get("digest") else {
        return Err(error(
            ErrorCode::DigestInvalid,
            "completing an upload needs the query parameter ?digest=<algorithm>:<hex>",
        ));
    };
    let digest = parse_digest(digest)?;
    // A last chunk sent with the closing PUT must continue where the
    // session ends (416 otherwise, and the session stays).
    let start = content_range_start(headers)?;
    let oci = oci(app);
    let chunk = write_chunk(app, &oci, &repo, &id, start, body).await?;
    let d = digest.clone();
    blocking(move || chunk.complete(&d)).await?;
    Ok(created_blob(&repo, &digest))
}

/// Most tags one manifest PUT may apply with `?tag=`.
const MAX_QUERY_TAGS: usize = 32;

/// The `tag` query parameters of a manifest PUT (OCI 1.1: a manifest
/// pushed by digest may be tagged in the same request).
fn query_tags(query: Option<&str>) -> Result<Vec<String>, OciResponseError> {
    let mut tags = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let Some(value) = pair.strip_prefix("tag=") else {
            continue;
        };
        let Reference::Tag(tag) = Reference::parse(value)? else {
            return Err(error(
                ErrorCode::NameInvalid,
                format!("`?tag={value}` is not a tag"),
            ));
        };
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_QUERY_TAGS {
        return Err(error(
            ErrorCode::NameInvalid,
            format!(
                "{} tags in one push; at most {MAX_QUERY_TAGS} are applied at once",
                tags.len()
            ),
        ));
    }
    Ok(tags)
}

async fn cancel_upload(app: &AppState, repo: String, id: String) -> OciResult {
    let oci = oci(app);
    blocking(move || oci.cancel_upload(&repo, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn referrers(
    app: &AppState,
    repo: String,
    digest: Digest,
    params: &HashMap<String, String>,
) -> OciResult {
    let artifact_type = params.get("artifactType").cloned();
    let filtered = artifact_type.is_some();
    let oci = oci(app);
    let tlog = app.tlog.clone();
    let registry = app.registry.clone();
    let bytes = blocking(move || {
        // A release's manifest carries its offline proof, made the first
        // time its referrers are asked for once a checkpoint (cosigned,
        // with witnesses) covers it; a mirrored release carries its
        // origin's.
        let mirror = oci.clone();
        oci.attach_release_proof(&repo, &digest, |name, version| {
            let Some(key) = &tlog else {
                return mirror.mirrored_release_proof(name, version);
            };
            match crate::tlog::prove_release(&registry, key, name, version) {
                Ok(text) => Ok(Some(text)),
                Err(crate::tlog::NoProof::Query(e)) => Err(OciError::new(
                    ErrorCode::Internal,
                    format!("cannot make the release's proof: {e}"),
                )),
                Err(crate::tlog::NoProof::Unknown) => mirror.mirrored_release_proof(name, version),
                Err(_) => Ok(None),
            }
        })?;
        oci.referrers(&repo, &digest, artifact_type.as_deref())
    })
    .await?;
    let mut response = ([(header::CONTENT_TYPE, IMAGE_INDEX)], bytes).into_response();
    if filtered {
        response.headers_mut().insert(
            header::HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_at_the_last_marker() {
        assert_eq!(route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(
            route("/v2/a/blobs/b/manifests/1.0.0"),
            Some(Route::Manifest("a/blobs/b".into(), "1.0.0".into()))
        );
        assert_eq!(
            route("/v2/ns/name/blobs/sha256:00"),
            Some(Route::Blob("ns/name".into(), "sha256:00".into()))
        );
        assert_eq!(
            route("/v2/ns/name/blobs/uploads/"),
            Some(Route::Uploads("ns/name".into()))
        );
        assert_eq!(
            route("/v2/ns/name/blobs/uploads/abc"),
            Some(Route::Upload("ns/name".into(), "abc".into()))
        );
        assert_eq!(
            route("/v2/ns/name/referrers/sha256:00"),
            Some(Route::Referrers("ns/name".into(), "sha256:00".into()))
        );
        assert_eq!(route("/v2/nothing"), None);
    }
}
