//! The `Warg-Registry` header: Warg clients ask their home registry about
//! namespaces it imports. A Warg client that reads in this registry's
//! operator log that namespace `acme` is imported from registry `X` sends
//! its requests for `acme:*` here, with `Warg-Registry: X`. Such a request
//! is about `X`'s log, not this one's, so this registry answers for `X`:
//!
//! - release content it holds a verified copy of (a mirror of `X`) comes
//!   from the copy, so downloads work while `X` is down;
//! - everything else goes to `X` and `X`'s answer comes back as it was
//!   (bounded in size and time). The client verifies it against `X`'s
//!   keys, as it would have talking to `X`: nothing here is trusted;
//! - while `X` cannot be reached, the last answer `X` gave to the very same
//!   read is served from a bounded cache, marked stale
//!   (`Cairn-Stale-Seconds`), so a client starting from the same state (a
//!   fresh build machine) still gets its packages.
//!
//! Only registries this one imports a namespace from are answered for: the
//! header names no other host (no open proxy). A request naming this
//! registry itself is served as usual. The client's credentials for this
//! registry are never sent on.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_api::content::ContentSourcesResponse;
use cairn_api::fetch::{FetchPackageNamesRequest, FetchPackageNamesResponse};
use cairn_api::paths;
use cairn_protocol::{Hash, LogId, PackageName};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// The header naming the registry a Warg request is about.
pub(crate) const WARG_REGISTRY: HeaderName = HeaderName::from_static("warg-registry");
/// The header of a "log not found" answer that names the registry the
/// log's namespace is imported from: `namespace=registry`.
pub(crate) const WARG_REGISTRY_HINT: HeaderName = HeaderName::from_static("warg-registry-hint");
/// Marks an answer served from the cache while the origin is unreachable:
/// how old it is, in seconds.
const STALE: HeaderName = HeaderName::from_static("cairn-stale-seconds");

/// Largest request body passed on (Warg requests are JSON).
const MAX_REQUEST: usize = 4 << 20;
/// Largest answer passed back (a page of logs, a proof, sources).
const MAX_ANSWER: usize = 16 << 20;
/// How long the origin may take to answer, body included.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an origin may take to name a log.
const NAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Most logs whose names (or absence) from origins are remembered.
const NAMES_KEPT: usize = 10_000;
/// Most origins asked to name a log at once.
const NAME_LOOKUPS: usize = 8;
/// Most requests passed to origins at once (each may hold a 4 MiB request
/// and a 16 MiB answer in memory); more wait, then get 503.
const PASSING: usize = 32;
/// How long a request waits for its turn to be passed on.
const PASSING_WAIT: Duration = Duration::from_secs(5);
/// Most bytes of answers kept for when the origin is unreachable.
const CACHE_BYTES: usize = 64 << 20;
/// Largest answer kept.
const CACHE_ENTRY: usize = 4 << 20;

/// The last answers origins gave to reads, for when they cannot be
/// reached: bounded in bytes, the oldest dropped first.
#[derive(Default)]
struct Answers {
    inner: Mutex<AnswersInner>,
}

#[derive(Default)]
struct AnswersInner {
    entries: HashMap<[u8; 32], Kept>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

#[derive(Clone)]
struct Kept {
    content_type: Option<HeaderValue>,
    body: Bytes,
    at: Instant,
}

impl Answers {
    fn get(&self, key: &[u8; 32]) -> Option<Kept> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.get(key).cloned()
    }

    fn put(&self, key: [u8; 32], kept: Kept) {
        if kept.body.len() > CACHE_ENTRY {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        if let Some(old) = inner.entries.remove(&key) {
            inner.bytes -= old.body.len();
            inner.order.retain(|k| *k != key);
        }
        inner.bytes += kept.body.len();
        inner.entries.insert(key, kept);
        inner.order.push_back(key);
        while inner.bytes > CACHE_BYTES {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len();
            }
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }
}

/// What answering for other registries keeps: their last answers, the
/// names they gave, and the turns of requests passed to them.
pub(crate) struct Federation {
    answers: Answers,
    names: Names,
    passing: tokio::sync::Semaphore,
}

impl Default for Federation {
    fn default() -> Federation {
        Federation {
            answers: Answers::default(),
            names: Names::default(),
            passing: tokio::sync::Semaphore::new(PASSING),
        }
    }
}

/// The names of logs this registry lacks, as origins of its imports gave
/// them (`None`: no origin has it): bounded, and asked by few at once.
struct Names {
    kept: Mutex<HashMap<LogId, Option<PackageName>>>,
    asking: tokio::sync::Semaphore,
}

impl Default for Names {
    fn default() -> Names {
        Names {
            kept: Mutex::default(),
            asking: tokio::sync::Semaphore::new(NAME_LOOKUPS),
        }
    }
}

/// The `Warg-Registry-Hint` for a package log this registry lacks: the
/// namespace and the registry it is imported from, when the log is of a
/// package in a namespace imported here (known from the mirror's copy, or
/// named by the origin). Warg clients then ask again with
/// `Warg-Registry`.
pub(crate) async fn hint(app: &AppState, log_id: &LogId) -> Option<HeaderValue> {
    let imports = app.registry.imports();
    if imports.is_empty() {
        return None;
    }
    let hint_for = |name: &PackageName| {
        let (namespace, from) = imports.iter().find(|(ns, _)| ns == name.namespace())?;
        HeaderValue::from_str(&format!("{namespace}={from}")).ok()
    };
    if let Some(name) = app.oci.mirrored().and_then(|m| m.name_of(log_id)) {
        return hint_for(&name);
    }
    let kept = |names: &Names| {
        names
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(log_id)
            .cloned()
    };
    if let Some(known) = kept(&app.federation.names) {
        return hint_for(&known?);
    }
    // Asked by too many at once: no hint rather than a queue.
    let _permit = app.federation.names.asking.try_acquire().ok()?;
    let mut origins: Vec<&String> = imports.iter().map(|(_, from)| from).collect();
    origins.sort();
    origins.dedup();
    let mut found = None;
    let mut answered = true;
    for from in origins {
        match ask_name(app, from, log_id).await {
            Ok(Some(name)) => {
                found = Some(name);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(registry = %from, error = %e, "an imported registry did not name a log");
                answered = false;
            }
        }
    }
    // An origin that did not answer may have it: only answers are kept.
    if found.is_some() || answered {
        let mut kept = app
            .federation
            .names
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if kept.len() >= NAMES_KEPT {
            kept.clear();
        }
        kept.insert(*log_id, found.clone());
    }
    hint_for(&found?)
}

/// Registry `from`'s name for `log_id` (`POST /v1/fetch/names`).
async fn ask_name(
    app: &AppState,
    from: &str,
    log_id: &LogId,
) -> Result<Option<PackageName>, String> {
    let origin = origin_url(from).ok_or("no URL")?;
    let body = serde_json::to_vec(&FetchPackageNamesRequest::new(std::slice::from_ref(log_id)))
        .map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{origin}{}", paths::FETCH_NAMES))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(NAME_TIMEOUT, async {
        let response = app.forwarder.send(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(format!("it answered {}", response.status()));
        }
        let body = axum::body::to_bytes(Body::new(response.into_body()), 64 << 10)
            .await
            .map_err(|e| e.to_string())?;
        let names: FetchPackageNamesResponse =
            serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(names.packages.get(&log_id.to_string()).cloned().flatten())
    })
    .await
    .map_err(|_| "no answer in time".to_owned())??;
    // The origin's word is checked: the name must hash to the log asked
    // about.
    Ok(answer
        .and_then(|name| name.parse::<PackageName>().ok())
        .filter(|name| LogId::package(name) == *log_id))
}

/// Answers a Warg request that names another registry (see the module
/// documentation); any other request goes on.
pub(crate) async fn federate(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let Some(named) = request.headers().get(WARG_REGISTRY) else {
        return next.run(request).await;
    };
    let Ok(named) = named.to_str().map(str::trim).map(str::to_owned) else {
        return ApiError::bad_request("the `Warg-Registry` header is not text").into_response();
    };
    if names_this_registry(&app, request.headers(), &named) {
        return next.run(request).await;
    }
    if !app.registry.imports_from(&named) {
        return ApiError::message(
            StatusCode::NOT_FOUND,
            format!(
                "this registry imports no namespace from registry `{named}` (the \
                 `Warg-Registry` header): ask that registry directly"
            ),
        )
        .into_response();
    }
    // The request's body is not `Sync`: only its head is held across waits.
    let (headers, uri, method) = (
        request.headers().clone(),
        request.uri().clone(),
        request.method().clone(),
    );
    if let Err(denied) = crate::auth::pull_allowed(&app, &headers, &uri).await {
        return denied;
    }
    let Some(origin) = origin_url(&named) else {
        return ApiError::message(
            StatusCode::BAD_GATEWAY,
            format!("registry `{named}` has no URL this registry can reach"),
        )
        .into_response();
    };
    if let Some(answer) = from_copy(&app, &method, &uri, &headers, &named).await {
        return answer;
    }
    pass_on(&app, request, &named, &origin).await
}

/// Whether `named` is this registry: its public URL or host, or the host
/// the request was sent to.
fn names_this_registry(app: &AppState, headers: &HeaderMap, named: &str) -> bool {
    let host_of = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        rest.trim_end_matches('/').to_ascii_lowercase()
    };
    let named = host_of(named);
    if let Some(url) = &app.public_url {
        if host_of(url) == named {
            return true;
        }
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(&named))
}

/// The URL of registry `named`: itself when it is one, else `https://`
/// and the domain.
fn origin_url(named: &str) -> Option<String> {
    let url = if named.contains("://") {
        named.to_owned()
    } else {
        format!("https://{named}")
    };
    let uri = url.parse::<Uri>().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    (scheme_ok && uri.host().is_some_and(|h| !h.is_empty()))
        .then(|| url.trim_end_matches('/').to_owned())
}

/// Content sources of release content this registry holds a verified
/// copy of: its own download URL, so the bytes come from the copy.
async fn from_copy(
    app: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    named: &str,
) -> Option<Response> {
    if *method != Method::GET {
        return None;
    }
    let digest = uri.path().strip_prefix("/v1/content/")?;
    let digest: Hash = digest.parse().ok()?;
    let mirrored = app.oci.mirrored()?.clone();
    let lookup = digest;
    let size = tokio::task::spawn_blocking(move || mirrored.content_size(&lookup))
        .await
        .ok()?
        .ok()??;
    tracing::debug!(%digest, registry = named, "content of an imported registry served from the mirror");
    let url = format!(
        "{}{}",
        crate::warg::base_url(app, headers),
        paths::content_file(&digest)
    );
    Some(axum::Json(ContentSourcesResponse::http_get(&digest, url, size)).into_response())
}

/// Whether an answer to `method` on `path` may be kept for when the origin
/// is unreachable: reads only.
fn is_read(method: &Method, path: &str) -> bool {
    *method == Method::GET
        || (*method == Method::POST
            && (path.starts_with("/v1/fetch/")
                || path.starts_with("/v1/proof/")
                || path.starts_with("/v1/verify/")))
}

/// Sends `request` to the origin and its answer back; serves the kept
/// answer to the same read when the origin cannot be reached.
async fn pass_on(app: &AppState, request: Request, named: &str, origin: &str) -> Response {
    // Bounded in count as in size: each request passed on holds memory.
    let Ok(Ok(_turn)) = tokio::time::timeout(PASSING_WAIT, app.federation.passing.acquire()).await
    else {
        let mut busy = ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{PASSING} requests for other registries are under way: try again shortly"),
        )
        .into_response();
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return busy;
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a request for another registry may carry at most {MAX_REQUEST} bytes"),
            )
            .into_response()
        }
    };
    let target = format!(
        "{origin}{}",
        parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |p| p.as_str())
    );
    let read = is_read(&parts.method, parts.uri.path());
    let key: [u8; 32] = Sha256::new()
        .chain_update(named.as_bytes())
        .chain_update([0])
        .chain_update(parts.method.as_str().as_bytes())
        .chain_update([0])
        .chain_update(target.as_bytes())
        .chain_update([0])
        .chain_update(&body)
        .finalize()
        .into();
    let mut outgoing = Request::builder().method(parts.method.clone()).uri(&target);
    for name in [header::CONTENT_TYPE, header::ACCEPT, header::USER_AGENT] {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let outgoing = match outgoing.body(Body::from(body)) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::message(
                StatusCode::BAD_GATEWAY,
                format!("cannot ask registry `{named}`: {e}"),
            )
            .into_response()
        }
    };
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        let response = app.forwarder.send(outgoing).await?;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(Body::new(body), MAX_ANSWER)
            .await
            .map_err(|_| format!("its answer is over {MAX_ANSWER} bytes"))?;
        Ok::<_, String>((parts, body))
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer in {} s", ANSWER_TIMEOUT.as_secs())));
    let failure = match answer {
        Ok((parts, body)) if !parts.status.is_server_error() => {
            let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
            if read && parts.status == StatusCode::OK {
                app.federation.answers.put(
                    key,
                    Kept {
                        content_type: content_type.clone(),
                        body: body.clone(),
                        at: Instant::now(),
                    },
                );
            }
            let mut response = Response::builder().status(parts.status);
            for name in [
                header::CONTENT_TYPE,
                header::RETRY_AFTER,
                header::LOCATION,
                header::CACHE_CONTROL,
                header::ETAG,
            ] {
                if let Some(value) = parts.headers.get(&name) {
                    response = response.header(name, value);
                }
            }
            return response
                .body(Body::from(body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
        }
        Ok((parts, _)) => format!("it answered {}", parts.status),
        Err(e) => e,
    };
    tracing::warn!(registry = named, error = %failure, "an imported registry did not answer");
    if read {
        if let Some(kept) = app.federation.answers.get(&key) {
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header(STALE, kept.at.elapsed().as_secs());
            if let Some(content_type) = kept.content_type {
                response = response.header(header::CONTENT_TYPE, content_type);
            }
            return response
                .body(Body::from(kept.body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response());
        }
    }
    let mut response = ApiError::message(
        StatusCode::BAD_GATEWAY,
        format!(
            "registry `{named}`, which namespaces here are imported from, cannot be reached \
             ({failure}), and this registry holds no earlier answer to this request"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(len: usize) -> Kept {
        Kept {
            content_type: None,
            body: Bytes::from(vec![0u8; len]),
            at: Instant::now(),
        }
    }

    #[test]
    fn answers_stay_within_their_bound() {
        let answers = Answers::default();
        for i in 0..40u8 {
            answers.put([i; 32], kept(CACHE_ENTRY));
        }
        assert!(answers.bytes() <= CACHE_BYTES);
        assert!(answers.get(&[39; 32]).is_some(), "the newest stays");
        assert!(answers.get(&[0; 32]).is_none(), "the oldest went");
        answers.put([99; 32], kept(CACHE_ENTRY + 1));
        assert!(answers.get(&[99; 32]).is_none(), "too large to keep");
        // Replacing an entry does not count it twice.
        let before = answers.bytes();
        answers.put([39; 32], kept(CACHE_ENTRY));
        assert_eq!(answers.bytes(), before);
    }

    #[test]
    fn origins_and_reads() {
        assert_eq!(
            origin_url("http://127.0.0.2:8080/").as_deref(),
            Some("http://127.0.0.2:8080")
        );
        assert_eq!(
            origin_url("a.example").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(origin_url("http://"), None);
        assert_eq!(origin_url("ftp://a.example"), None);
        assert!(is_read(&Method::POST, paths::FETCH_LOGS));
        assert!(is_read(&Method::GET, "/v1/content/sha256:00"));
        assert!(!is_read(&Method::POST, "/v1/package/x/record"));
    }
}
