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
use cairn_registry::auth::publish_scope_hint;
use cairn_registry::oci::{
    Account, Digest, ErrorCode, Oci, OciError, Reference, SessionWriter, IMAGE_INDEX,
    MAX_MANIFEST_BYTES,
};
use cairn_registry::ContentLocation;
use futures_util::StreamExt;
use serde_json::json;

use crate::auth;
use crate::files::serve_file;
use crate::AppState;

const CONTENT_DIGEST: &str = "Docker-Content-Digest";
const UPLOAD_UUID: &str = "Docker-Upload-UUID";
/// Session bytes are written in pieces of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// An error answer in the spec's shape: `{"errors": [{code, message, detail}]}`.
pub struct OciResponseError(pub OciError);

impl From<OciError> for OciResponseError {
    fn from(e: OciError) -> Self {
        OciResponseError(e)
    }
}

impl IntoResponse for OciResponseError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        if status.is_server_error() {
            tracing::error!(code = e.code.as_str(), message = %e.message, "OCI request failed");
        }
        let body = json!({ "errors": [{
            "code": e.code.as_str(),
            "message": e.message,
            "detail": {},
        }]});
        (
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
            .into_response()
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

/// Every request under `/v2/` other than `/v2/` itself.
pub async fn dispatch(
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
            let auth = app.auth.clone();
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
                Method::PUT => put_manifest(&app, repo, reference, &headers, body, account).await,
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
            start_upload(&app, repo, &params, body).await
        }
        Route::Upload(repo, id) => match method {
            Method::GET => upload_status(&app, repo, id).await,
            Method::PATCH => patch_upload(&app, repo, id, &headers, body).await,
            Method::PUT => finish_upload(&app, repo, id, &params, body).await,
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
    headers: &HeaderMap,
    body: Body,
    account: Option<Account>,
) -> OciResult {
    let bytes = read_limited(body, MAX_MANIFEST_BYTES).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let oci = oci(app);
    let name = repo.clone();
    let pushed = blocking(move || {
        oci.put_manifest(
            &name,
            &reference,
            content_type.as_deref(),
            &bytes,
            account.as_ref(),
        )
    })
    .await?;
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
    let location = blocking(move || oci.blob(&repo, &lookup)).await?;
    let ContentLocation::File { path, size } = location;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_DIGEST, header_value(&digest.to_string()))
        .header(header::ETAG, header_value(&format!("\"{digest}\"")));
    Ok(serve_file(builder, &path, size, range, head)
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

/// Appends a request body to a session, in pieces written off the async
/// workers; returns the session's size.
/// Streams `body` into an upload session that holds `held` bytes; refuses
/// (413) a blob that would grow beyond `limit` bytes.
async fn write_body(
    mut writer: Box<dyn SessionWriter>,
    body: Body,
    held: u64,
    limit: u64,
) -> Result<u64, OciResponseError> {
    let mut stream = body.into_data_stream();
    let mut total = held;
    let mut buffer: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    let flush = |mut writer: Box<dyn SessionWriter>, buffer: Vec<u8>| async move {
        tokio::task::spawn_blocking(move || {
            writer.write(&buffer).map_err(OciError::from)?;
            Ok::<_, OciError>((writer, buffer))
        })
        .await
        .map_err(|e| error(ErrorCode::Internal, format!("task failed: {e}")))?
        .map_err(OciResponseError)
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            error(
                ErrorCode::BlobUploadInvalid,
                format!("upload interrupted: {e}"),
            )
        })?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(error(
                ErrorCode::TooLarge,
                format!(
                    "the blob is larger than this registry's limit of {limit} bytes \
                     (`cairn serve --max-blob-bytes`)"
                ),
            ));
        }
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_CHUNK {
            let (w, mut b) = flush(writer, buffer).await?;
            b.clear();
            writer = w;
            buffer = b;
        }
    }
    let (mut writer, _) = flush(writer, buffer).await?;
    tokio::task::spawn_blocking(move || writer.flush().map_err(OciError::from))
        .await
        .map_err(|e| error(ErrorCode::Internal, format!("task failed: {e}")))?
        .map_err(OciResponseError)
}

/// Appends `body` to upload session `id` (at `start`, if the client said
/// where). A blob over the size limit ends the session and its bytes.
async fn write_chunk(
    oci: &Arc<Oci>,
    repo: &str,
    id: &str,
    start: Option<u64>,
    body: Body,
) -> Result<u64, OciResponseError> {
    let (o, r, i) = (oci.clone(), repo.to_owned(), id.to_owned());
    let (writer, held) = blocking(move || o.open_chunk(&r, &i, start)).await?;
    match write_body(writer, body, held, oci.max_blob_bytes()).await {
        Err(e) if e.0.code == ErrorCode::TooLarge => {
            let (o, r, i) = (oci.clone(), repo.to_owned(), id.to_owned());
            blocking(move || o.cancel_upload(&r, &i)).await?;
            Err(e)
        }
        result => result,
    }
}

async fn start_upload(
    app: &AppState,
    repo: String,
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
    let (o, r) = (oci.clone(), repo.clone());
    let id = blocking(move || o.start_upload(&r)).await?;
    let Some(digest) = digest else {
        return Ok(accepted_upload(&repo, &id, 0));
    };
    // Monolithic: the whole blob in this request.
    write_chunk(&oci, &repo, &id, None, body).await?;
    let (o, r, i, d) = (oci.clone(), repo.clone(), id.clone(), digest.clone());
    blocking(move || o.complete_upload(&r, &i, &d)).await?;
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
    let size = write_chunk(&oci, &repo, &id, start, body).await?;
    let i = id.clone();
    blocking(move || oci.touch_upload(&i)).await?;
    Ok(accepted_upload(&repo, &id, size))
}

async fn finish_upload(
    app: &AppState,
    repo: String,
    id: String,
    params: &HashMap<String, String>,
    body: Body,
) -> OciResult {
    let Some(digest) = params.get("digest") else {
        return Err(error(
            ErrorCode::DigestInvalid,
            "completing an upload needs the query parameter ?digest=<algorithm>:<hex>",
        ));
    };
    let digest = parse_digest(digest)?;
    let oci = oci(app);
    write_chunk(&oci, &repo, &id, None, body).await?;
    let (r, i, d) = (repo.clone(), id.clone(), digest.clone());
    blocking(move || oci.complete_upload(&r, &i, &d)).await?;
    Ok(created_blob(&repo, &digest))
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
    let bytes = blocking(move || oci.referrers(&repo, &digest, artifact_type.as_deref())).await?;
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
