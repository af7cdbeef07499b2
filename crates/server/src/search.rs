//! Discovery: the search index kept up with the log, and the API over it.
//!
//! The [`Indexer`] follows the registry log on its own thread: for each
//! package with new records it reads the package's verified state, reads
//! the content of each release it has not indexed yet (up to
//! [`MAX_INDEXED_CONTENT`]), extracts its metadata and world
//! (`cairn_index::metadata`) and applies the lot to the index in one
//! transaction, with the registry index reached. Publishing never waits on
//! it: it runs behind the log, and catches up after a restart from where
//! the index says it got to.
//!
//! The API: `GET /cairn/v1/search` (text, filters, WIT queries, pages),
//! `GET /cairn/v1/packages/{package}` (every release's metadata and world),
//! `GET /cairn/v1/content/{digest}/releases` (which releases have these
//! bytes). Each hit names its log record.

use std::io::Read;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_index::index::{
    ImportPattern, Index, IndexedRelease, InterfaceReq, PackageUpdate, Query,
};
use cairn_protocol::{LogId, PackageName};
use cairn_registry::oci::Oci;
use cairn_registry::Registry;
use serde_json::json;

use crate::error::{blocking, ApiError};
use crate::AppState;

/// The largest release content whose metadata is read (larger releases
/// are indexed by name and version only).
pub const MAX_INDEXED_CONTENT: u64 = 64 << 20;
/// Log leaves read per round, at most.
pub const LEAVES_PER_ROUND: usize = 2_000;
/// How long the indexer waits for a checkpoint before it looks whether it
/// is to stop.
const WAKE: Duration = Duration::from_secs(1);
/// How long the indexer, caught up, lets records gather before its next
/// round (the index lags the log by about this much under load).
const GATHER: Duration = Duration::from_secs(1);
/// How often, at most, the index's WAL is folded in after work.
const FOLD_EVERY: Duration = Duration::from_secs(30);
/// How long it waits after an error (the store or the index failing).
const BACK_OFF: Duration = Duration::from_secs(2);

/// The thread that keeps the index up with the log; stopped when dropped.
pub struct Indexer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Indexer {
    /// Starts following `registry`'s log into `index`. Caught up, it waits
    /// for the next checkpoint (the engine's notification, no polling of
    /// the store); after an error it backs off.
    pub fn start(
        registry: Arc<Registry>,
        oci: Option<Arc<Oci>>,
        index: Arc<Index>,
    ) -> std::io::Result<Indexer> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cairn-indexer".into())
            .spawn(move || {
                // Indexing yields the cores to serving: the thread runs at
                // the lowest priority (nice 19; Linux applies it to this
                // thread alone), catching up while publishing leaves a
                // core idle rather than taking it from the publishers.
                if let Err(e) =
                    rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19)
                {
                    tracing::debug!("the indexer keeps its priority: {e}");
                }
                let mut busy = false;
                let mut folded = Instant::now();
                loop {
                    if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                        return;
                    }
                    match index_round(&registry, oci.as_deref(), &index) {
                        // A full round: more is waiting, straight on.
                        Ok(done) if done == LEAVES_PER_ROUND => busy = true,
                        Ok(done) => {
                            busy |= done > 0;
                            // Caught up after work: the WAL folded in, now
                            // and then (SQLite folds it in as it grows
                            // anyway; each fold is a sync of the disk the
                            // log's commits wait on).
                            if done == 0 && busy && folded.elapsed() >= FOLD_EVERY {
                                busy = false;
                                folded = Instant::now();
                                if let Err(e) = index.checkpoint() {
                                    tracing::debug!("the search index's checkpoint: {e}");
                                }
                            }
                            // Records come in bursts: a moment's wait makes
                            // one round (one transaction) of many, and
                            // each record costs the index less in a
                            // larger round (a round after a round rather
                            // indexed the few records that came during
                            // it, at the cost of a round).
                            if matches!(
                                stopped.recv_timeout(GATHER),
                                Ok(()) | Err(RecvTimeoutError::Disconnected)
                            ) {
                                return;
                            }
                            let next = index.indexed_to().unwrap_or(0);
                            let deadline = Instant::now() + WAKE;
                            // `false`: the registry stopped.
                            if cairn_registry::block_on(registry.checkpointed(next), Some(deadline))
                                == Some(false)
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("the search index: {e}");
                            if !matches!(
                                stopped.recv_timeout(BACK_OFF),
                                Err(RecvTimeoutError::Timeout)
                            ) {
                                return;
                            }
                        }
                    }
                }
            })?;
        Ok(Indexer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // The sender gone is the signal.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One round: the leaves after the index's position, up to
/// [`LEAVES_PER_ROUND`] of them. Answers how many it indexed (0: nothing
/// to do).
pub fn index_round(registry: &Registry, oci: Option<&Oci>, index: &Index) -> Result<usize, String> {
    let from = index.indexed_to().map_err(|e| e.to_string())?;
    let leaves = registry
        .leaves(from, LEAVES_PER_ROUND)
        .map_err(|e| e.to_string())?;
    if leaves.is_empty() {
        return Ok(0);
    }
    let to = from + leaves.len() as u64;
    // The registry index of each record seen, and the logs touched.
    let mut seen = std::collections::HashMap::new();
    let mut logs: Vec<LogId> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        seen.insert(leaf.record_id, from + i as u64);
        if !logs.contains(&leaf.log_id) {
            logs.push(leaf.log_id);
        }
    }
    let names = registry.package_names(&logs).map_err(|e| e.to_string())?;
    let mut packages: Vec<(LogId, PackageName)> = Vec::new();
    let mut others = Vec::new();
    for (log_id, name) in logs.iter().zip(names) {
        match name {
            Some(name) => packages.push((*log_id, name)),
            // The operator's log, notices, or a package's attestations.
            None => others.push(*log_id),
        }
    }
    // A new attestation changes what is signed: its package again, its
    // attestation log read (only then).
    let by_attestations: std::collections::HashMap<LogId, PackageName> = packages
        .iter()
        .map(|(_, name)| (LogId::attestations(name), name.clone()))
        .collect();
    let mut attested = std::collections::HashSet::new();
    for log_id in others {
        if let Some(name) = by_attestations.get(&log_id) {
            attested.insert(name.clone());
            continue;
        }
        let known = index
            .package_of_log(&log_id.to_string())
            .map_err(|e| e.to_string())?;
        if let Some(name) = known.and_then(|n| n.parse::<PackageName>().ok()) {
            attested.insert(name.clone());
            packages.push((LogId::package(&name), name));
        }
    }
    let mut updates = Vec::new();
    for (log_id, name) in &packages {
        let signatures = attested.contains(name);
        if let Some(update) = package_update(registry, oci, index, log_id, name, signatures, &seen)?
        {
            updates.push(update);
        }
    }
    index.apply(&updates, to).map_err(|e| e.to_string())?;
    Ok(leaves.len())
}

fn package_update(
    registry: &Registry,
    oci: Option<&Oci>,
    index: &Index,
    log_id: &LogId,
    name: &PackageName,
    read_signatures: bool,
    seen: &std::collections::HashMap<cairn_protocol::RecordId, u64>,
) -> Result<Option<PackageUpdate>, String> {
    let Some(state) = registry
        .published_package(log_id)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let known = index
        .known_releases(name.as_str())
        .map_err(|e| e.to_string())?;
    // Versions with a signature verified by a trusted key.
    let signed = match oci.filter(|_| read_signatures) {
        Some(oci) => oci
            .signed_releases(name)
            .map_err(|e| e.to_string())?
            .into_keys()
            .collect(),
        None => std::collections::BTreeSet::new(),
    };
    let mut releases = Vec::new();
    for release in state.releases() {
        let info = if known.contains(&release.version) {
            None
        } else {
            read_info(registry, &release.content)
        };
        releases.push(IndexedRelease {
            package: name.to_string(),
            version: release.version.clone(),
            digest: release.content.to_string(),
            record_id: release.record_id.to_string(),
            log_id: log_id.to_string(),
            registry_index: seen.get(&release.record_id).copied(),
            published: release.timestamp.seconds(),
            yanked: release.yanked.is_some(),
            signed: signed.contains(&release.version),
            info,
        });
    }
    Ok(Some(PackageUpdate {
        package: name.to_string(),
        releases,
        attestation_log: Some(LogId::attestations(name).to_string()),
        signatures_read: read_signatures && oci.is_some(),
    }))
}

/// What release content says about itself, if it can be read (held, not
/// taken down, not too large, WebAssembly).
fn read_info(
    registry: &Registry,
    digest: &cairn_protocol::Hash,
) -> Option<cairn_index::metadata::ComponentInfo> {
    let size = registry.content_size(digest).ok()??;
    if size > MAX_INDEXED_CONTENT {
        return Some(cairn_index::metadata::ComponentInfo {
            problems: vec![format!(
                "over {MAX_INDEXED_CONTENT} bytes: its metadata is not read"
            )],
            ..Default::default()
        });
    }
    let mut reader = registry.read_content(digest, 0, size).ok()??;
    let mut bytes = Vec::with_capacity(usize::try_from(size).ok()?);
    reader.read_to_end(&mut bytes).ok()?;
    // The bytes passed the content door, but the decoders are not the
    // validator: a panic in one is a problem of this release, never the
    // end of the indexer.
    let extracted = std::panic::catch_unwind(|| cairn_index::metadata::extract(&bytes));
    let problem = |text: String| {
        Some(cairn_index::metadata::ComponentInfo {
            problems: vec![text],
            ..Default::default()
        })
    };
    match extracted {
        Ok(Ok(info)) => Some(info),
        Ok(Err(e)) => problem(e.to_string()),
        Err(_) => problem("its metadata could not be read (the decoder failed)".into()),
    }
}

fn index_of(app: &AppState) -> Result<Arc<Index>, ApiError> {
    app.search.clone().ok_or_else(|| {
        ApiError::message(StatusCode::NOT_FOUND, "this registry keeps no search index")
    })
}

fn query_error(e: cairn_index::index::IndexError) -> ApiError {
    match e {
        cairn_index::index::IndexError::Query(message) => ApiError::bad_request(message),
        other => ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// The most parameters a search takes.
const MAX_PARAMETERS: usize = 64;

/// Reads a search from the query string: `q`, `namespace`, `license`,
/// `author`, `exports`, `imports`, `only-imports` (each interface
/// parameter repeated or comma-separated), `satisfies`, `yanked`, `page`,
/// `per-page`.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("the query string does not parse: {e}")))?;
    if pairs.len() > MAX_PARAMETERS {
        return Err(ApiError::bad_request(format!(
            "a search takes at most {MAX_PARAMETERS} parameters"
        )));
    }
    let mut query = Query {
        page: 1,
        per_page: 20,
        ..Query::default()
    };
    let number = |key: &str, value: &str| {
        value.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!("`{key}` is a number from 1, not `{value}`"))
        })
    };
    for (key, value) in pairs {
        let each = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match key.as_str() {
            "q" => query.text = Some(value),
            "namespace" => query.namespace = Some(value),
            "license" => query.license = Some(value),
            "author" => query.author = Some(value),
            "exports" => {
                for v in each() {
                    query
                        .exports
                        .push(InterfaceReq::parse(v).map_err(query_error)?);
                }
            }
            "imports" => {
                for v in each() {
                    query
                        .imports
                        .push(InterfaceReq::parse(v).map_err(query_error)?);
                }
            }
            "only-imports" => {
                let allowed = query.only_imports.get_or_insert_with(Vec::new);
                for v in each() {
                    allowed.push(ImportPattern::parse(v).map_err(query_error)?);
                }
            }
            "satisfies" => {
                if cairn_index::metadata::InterfaceName::parse(&value).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "`{value}` is not a world: give `ns:pkg/world@version`, e.g. \
                         `wasi:http/proxy@0.2.0`"
                    )));
                }
                query.satisfies = Some(value);
            }
            "yanked" => {
                query.include_yanked = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "`yanked` is true or false, not `{value}`"
                        )))
                    }
                }
            }
            "signed" => {
                query.signed = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "`signed` is true or false, not `{value}`"
                        )))
                    }
                }
            }
            "page" => query.page = number("page", &value)?.max(1),
            "per-page" => query.per_page = number("per-page", &value)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "`{other}` is not a search parameter (q, namespace, license, author, \
                     exports, imports, only-imports, satisfies, yanked, page, per-page)"
                )))
            }
        }
    }
    Ok(query)
}

/// `GET /cairn/v1/search`
pub(crate) async fn search(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let index = index_of(&app)?;
    let page = blocking(move || index.search(&query).map_err(query_error)).await?;
    let hits: Vec<serde_json::Value> = page
        .hits
        .iter()
        .map(|hit| {
            let mut value = serde_json::to_value(hit).unwrap_or_default();
            value["record"] = json!(format!(
                "/v1/package/{}/record/{}",
                hit.log_id, hit.record_id
            ));
            value
        })
        .collect();
    Ok(Json(json!({
        "total": page.total,
        "page": page.page,
        "perPage": page.per_page,
        "hits": hits,
    }))
    .into_response())
}

/// `GET /cairn/v1/packages/{package}`: every release with what its content
/// says about itself.
pub(crate) async fn package(
    State(app): State<AppState>,
    Path(package): Path<String>,
) -> Result<Response, ApiError> {
    let name: PackageName = package.parse().map_err(|e| {
        ApiError::bad_request(format!("`{package}` is not a package name (ns:name): {e}"))
    })?;
    let index = index_of(&app)?;
    let lookup = name.to_string();
    let releases = blocking(move || index.package(&lookup).map_err(query_error)).await?;
    if releases.is_empty() {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("package `{name}` has no release indexed here"),
        ));
    }
    Ok(Json(json!({ "package": name.to_string(), "releases": releases })).into_response())
}

/// `GET /cairn/v1/content/{digest}/releases`: the releases whose content
/// has this digest.
pub(crate) async fn by_digest(
    State(app): State<AppState>,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let parsed: cairn_protocol::Hash = digest
        .parse()
        .map_err(|e| ApiError::bad_request(format!("`{digest}` is not a digest: {e}")))?;
    let index = index_of(&app)?;
    let lookup = parsed.to_string();
    let releases = blocking(move || index.by_digest(&lookup).map_err(query_error)).await?;
    Ok(Json(json!({ "digest": parsed.to_string(), "releases": releases })).into_response())
}

/// `GET /cairn/v1/index/{package}`: the package's sparse index, one JSON
/// line per release, oldest version first (in the spirit of crates.io's
/// index): version, content digest, world digest (once indexed), yanked,
/// registry index, releasing record. From the package's verified state,
/// so it is current the moment a checkpoint covers a record; with a
/// strong `ETag` of its bytes, so a warm client revalidates with
/// `If-None-Match` and gets 304.
pub(crate) async fn sparse_index(
    State(app): State<AppState>,
    Path(package): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let name: PackageName = package.parse().map_err(|e| {
        ApiError::bad_request(format!("`{package}` is not a package name (ns:name): {e}"))
    })?;
    let registry = app.registry.clone();
    let index = app.search.clone();
    let lookup = name.clone();
    let body = blocking(move || {
        let state = registry
            .published_package(&LogId::package(&lookup))?
            .ok_or_else(|| {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("package `{lookup}` is not in this registry"),
                )
            })?;
        let indexed = match &index {
            Some(index) => index.sparse(lookup.as_str()).map_err(query_error)?,
            None => Vec::new(),
        };
        let mut releases: Vec<_> = state.releases().collect();
        releases.sort_by(|a, b| a.version.cmp(&b.version));
        let mut body = Vec::new();
        for release in releases {
            let known = indexed.iter().find(|r| r.version == release.version);
            let line = json!({
                "name": lookup.to_string(),
                "vers": release.version.to_string(),
                "digest": release.content.to_string(),
                "world": known.and_then(|r| r.world.clone()),
                "yanked": release.yanked.is_some(),
                "logIndex": known.and_then(|r| r.registry_index),
                "recordId": release.record_id.to_string(),
            });
            body.extend_from_slice(line.to_string().as_bytes());
            body.push(b'\n');
        }
        Ok(body)
    })
    .await?;
    let tag = format!("\"{}\"", cairn_protocol::Hash::of(&body));
    let fresh = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let builder = Response::builder()
        .header(axum::http::header::ETAG, &tag)
        .header(axum::http::header::CACHE_CONTROL, "no-cache");
    let response = if fresh {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(axum::body::Body::empty())
    } else {
        builder
            .header(axum::http::header::CONTENT_TYPE, "application/jsonl")
            .body(axum::body::Body::from(body))
    };
    response.map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters_parse() {
        let q = parse_query(Some(
            "q=http&exports=wasi:http/incoming-handler@0.2,wasi:cli/run&only-imports=wasi:io/*&page=2&per-page=5&yanked=true",
        ))
        .expect("parses");
        assert_eq!(q.text.as_deref(), Some("http"));
        assert_eq!(q.exports.len(), 2);
        assert_eq!(q.only_imports.as_ref().map(Vec::len), Some(1));
        assert_eq!((q.page, q.per_page, q.include_yanked), (2, 5, true));
        for bad in [
            "nope=1",
            "page=x",
            "exports=http",
            "yanked=maybe",
            "only-imports=*",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
