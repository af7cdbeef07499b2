//! The log in the C2SP formats (`/tlog/...`): a checkpoint signed with the
//! log's Ed25519 key over the same size and root as the Warg checkpoint
//! (`c2sp.org/tlog-checkpoint`), and the tree as immutable tiles
//! (`c2sp.org/tlog-tiles`), which any standard tool, witness or CDN reads.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use cairn_protocol::release_proof::release_proof;
use cairn_protocol::{PackageName, Version};
use cairn_registry::{QueryError, Registry};
use cairn_transparency::log::Tile;
use cairn_transparency::note::{Checkpoint, Note, NoteSignature, Signer, Verifier, MAX_NOTE_BYTES};
use cairn_transparency::witness::{AddCheckpoint, Policy};

use crate::error::ApiError;
use crate::AppState;

/// How long a checkpoint may be cached (it changes with every checkpoint).
const CHECKPOINT_CACHE: &str = "public, max-age=5";
/// Tiles never change.
const TILE_CACHE: &str = "public, max-age=31536000, immutable";

/// The log's key and the last checkpoint note it signed; and the
/// witnesses it sends its checkpoints to, with the latest note a quorum of
/// them cosigned.
pub struct TlogKey {
    signer: Signer,
    latest: Mutex<Option<(u64, Arc<str>)>>,
    witnesses: Vec<Target>,
    policy: Option<Policy>,
    cosigned: Mutex<Option<(u64, Arc<str>)>>,
    /// The size of the latest cosigned note, for those waiting on it.
    cosigned_size: tokio::sync::watch::Sender<u64>,
}

/// A witness the log sends its checkpoints to.
struct Target {
    name: String,
    key: Verifier,
    url: String,
    /// The size it holds, as far as the log knows (`None`: not known yet).
    held: Mutex<Option<u64>>,
}

impl std::fmt::Debug for TlogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlogKey({})", self.signer.verifier())
    }
}

impl TlogKey {
    /// The log signing with `signer`, whose name is the log's origin.
    pub fn new(signer: Signer) -> TlogKey {
        TlogKey {
            signer,
            latest: Mutex::new(None),
            witnesses: Vec::new(),
            policy: None,
            cosigned: Mutex::new(None),
            cosigned_size: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Keeps `note`, cosigned by the quorum, as the one served if it is of
    /// a larger size than the one held.
    fn keep_cosigned(&self, size: u64, note: Arc<str>) {
        let mut cosigned = lock(&self.cosigned);
        if cosigned.as_ref().is_none_or(|(at, _)| *at < size) {
            *cosigned = Some((size, note));
            self.cosigned_size.send_replace(size);
        }
    }

    /// The same log, sending each checkpoint to the witnesses of `policy`
    /// (each needs a URL, its submission prefix) and serving the latest one
    /// cosigned by its quorum.
    pub fn with_witnesses(mut self, policy: Policy) -> Result<TlogKey, String> {
        for (name, key, url) in &policy.witnesses {
            let Some(url) = url else {
                return Err(format!(
                    "witness `{name}` has no URL in the policy: the log cannot send it checkpoints"
                ));
            };
            self.witnesses.push(Target {
                name: name.clone(),
                key: key.clone(),
                url: url.trim_end_matches('/').to_owned(),
                held: Mutex::new(None),
            });
        }
        self.policy = Some(policy);
        Ok(self)
    }

    /// Whether checkpoints go to witnesses.
    pub fn witnessed(&self) -> bool {
        !self.witnesses.is_empty()
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        self.signer.verifier().name()
    }

    /// The verifier key clients and witnesses trust the log by.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_string()
    }

    /// The note served as the log's checkpoint: with witnesses, the latest
    /// one their quorum cosigned (until there is one, the plain latest).
    fn served(&self, size: u64, root: cairn_protocol::Hash) -> Arc<str> {
        self.served_at(size, root).1
    }

    /// The size and note of [`TlogKey::served`].
    fn served_at(&self, size: u64, root: cairn_protocol::Hash) -> (u64, Arc<str>) {
        if self.witnessed() {
            if let Some((at, note)) = lock(&self.cosigned).as_ref() {
                return (*at, note.clone());
            }
        }
        (size, self.note(size, root))
    }

    /// The checkpoint note of `size` leaves with `root`, signed by the log.
    fn signed_note(&self, size: u64, root: cairn_protocol::Hash) -> Note {
        let text = Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
        .text();
        let signature = self.signer.sign(&text);
        Note {
            text,
            signatures: vec![signature],
        }
    }

    /// The signed checkpoint note of `size` leaves with `root`.
    pub(crate) fn note(&self, size: u64, root: cairn_protocol::Hash) -> Arc<str> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, note)) = latest.as_ref() {
            if *at == size {
                return note.clone();
            }
        }
        let note: Arc<str> = self.signed_note(size, root).to_string().into();
        *latest = Some((size, note.clone()));
        note
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a witness may take to answer.
const WITNESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends every new checkpoint to the witnesses, while this process
/// sequences (a follower's leader does it), until the registry closes.
pub(crate) async fn witness_checkpoints(app: AppState) {
    let Some(key) = app.tlog.clone().filter(|k| k.witnessed()) else {
        return;
    };
    let mut done = 0u64;
    loop {
        let length = app.registry.log_length();
        match app.registry.role() {
            cairn_registry::Role::Leader if length > done => {
                if let Some(cp) = app.registry.latest_checkpoint() {
                    let cp = &cp.contents.checkpoint;
                    witness_one(&app, &key, cp.log_length, cp.log_root).await;
                    done = cp.log_length;
                }
            }
            // A follower serves what the leader's witnesses cosigned.
            cairn_registry::Role::Follower {
                leader: Some(leader),
            } => follow_cosigned(&app, &key, &leader, length).await,
            _ => {}
        }
        if !app.registry.checkpointed(length).await {
            return;
        }
    }
}

/// How long a request for a cosigned checkpoint (`?wait=<size>`) waits
/// for the witnesses to cosign that size.
const COSIGNED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks the leader for its cosigned checkpoint of at least `length`
/// records (it waits up to [`COSIGNED_WAIT`] for its witnesses), and keeps
/// it when it meets the policy and has this replica's root at its size.
async fn follow_cosigned(app: &AppState, key: &Arc<TlogKey>, leader: &str, length: u64) {
    let Some(policy) = &key.policy else {
        return;
    };
    let url = format!(
        "{}/tlog/checkpoint?wait={length}",
        leader.trim_end_matches('/')
    );
    let fetched = async {
        let mut request = axum::http::Request::get(&url);
        if let Some(secret) = app.registry.replica_secret() {
            request = request.header(crate::forward::REPLICA_HEADER, hex::encode(secret));
        }
        let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
        let response =
            tokio::time::timeout(COSIGNED_WAIT + WITNESS_TIMEOUT, app.forwarder.send(request))
                .await
                .map_err(|_| "no answer in time".to_string())??;
        axum::body::to_bytes(Body::new(response.into_body()), MAX_NOTE_BYTES)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let bytes = match fetched {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(leader, "no cosigned checkpoint from the leader: {e}");
            return;
        }
    };
    let Ok(note) = Note::parse(&bytes) else {
        return;
    };
    let Ok((cp, _)) = policy.check(&note) else {
        return;
    };
    let ours = app.registry.checkpoint_at(cp.size).ok().flatten();
    if ours.is_some_and(|o| o.contents.checkpoint.log_root == cp.root) {
        key.keep_cosigned(cp.size, note.to_string().into());
    } else {
        tracing::warn!(
            leader,
            size = cp.size,
            "the leader's cosigned checkpoint is not this replica's log"
        );
    }
}

/// Sends the checkpoint of `size` to every witness at once, and keeps the
/// note with their cosignatures once it meets the quorum.
async fn witness_one(app: &AppState, key: &Arc<TlogKey>, size: u64, root: cairn_protocol::Hash) {
    let mut note = key.signed_note(size, root);
    let sends = key
        .witnesses
        .iter()
        .map(|target| send_to(app, target, &note, size));
    let cosignatures = futures_util::future::join_all(sends).await;
    note.signatures.extend(cosignatures.into_iter().flatten());
    let Some(policy) = &key.policy else {
        return;
    };
    match policy.check(&note) {
        Ok(_) => {
            key.keep_cosigned(size, note.to_string().into());
        }
        Err(e) => tracing::warn!(size, "checkpoint not witnessed: {e}"),
    }
}

/// Sends the checkpoint to one witness (again once if it holds another
/// size than the log thought); its cosignature, if it gave one.
async fn send_to(app: &AppState, target: &Target, note: &Note, size: u64) -> Option<NoteSignature> {
    for _ in 0..2 {
        let old = lock(&target.held).unwrap_or(0).min(size);
        let proof = if old == 0 {
            Vec::new()
        } else {
            let registry = app.registry.clone();
            match tokio::task::spawn_blocking(move || registry.rfc_consistency_proof(old, size))
                .await
            {
                Ok(Ok(proof)) => proof,
                Ok(Err(e)) => {
                    tracing::warn!(witness = %target.name, "cannot prove consistency from {old}: {e}");
                    return None;
                }
                Err(e) => {
                    tracing::warn!("proof task failed: {e}");
                    return None;
                }
            }
        };
        let body = AddCheckpoint {
            old,
            proof,
            note: note.clone(),
        }
        .body();
        let request = match axum::http::Request::post(format!("{}/add-checkpoint", target.url))
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from(body))
        {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(witness = %target.name, "bad witness URL: {e}");
                return None;
            }
        };
        let answer = tokio::time::timeout(WITNESS_TIMEOUT, async {
            let response = app.forwarder.send(request).await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), 64 << 10)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((status, bytes))
        })
        .await;
        let (status, bytes) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::warn!(witness = %target.name, "witness unreachable: {e}");
                return None;
            }
            Err(_) => {
                tracing::warn!(witness = %target.name, "witness gave no answer in time");
                return None;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        match status {
            StatusCode::OK => {
                // Its lines on our note: keep its own, verified.
                let cosigned = Note::parse(format!("{}\n{text}", note.text).as_bytes());
                let verified = cosigned.as_ref().ok().and_then(|n| {
                    n.verify(std::slice::from_ref(&target.key)).ok()?;
                    n.signatures
                        .iter()
                        .find(|s| s.name == target.key.name() && s.id == target.key.id())
                        .cloned()
                });
                if verified.is_none() {
                    tracing::warn!(witness = %target.name, "the witness's answer holds no valid cosignature");
                    return None;
                }
                *lock(&target.held) = Some(size);
                return verified;
            }
            StatusCode::CONFLICT => match text.trim().parse::<u64>() {
                Ok(held) => {
                    *lock(&target.held) = Some(held);
                    if held > size {
                        tracing::warn!(witness = %target.name, held, size, "the witness holds a larger size than this checkpoint");
                        return None;
                    }
                }
                Err(_) => {
                    tracing::warn!(witness = %target.name, "a conflict without a size");
                    return None;
                }
            },
            other => {
                tracing::warn!(witness = %target.name, status = %other, "the witness refused the checkpoint: {}", text.trim());
                return None;
            }
        }
    }
    None
}

/// Why a release's offline proof cannot be made.
pub(crate) enum NoProof {
    /// The package has no such release under the latest checkpoint.
    Unknown,
    /// The release is newer than the checkpoint the witnesses cosigned.
    NotYetWitnessed {
        /// The release record's index.
        index: u64,
        /// The size of the latest cosigned checkpoint.
        cosigned: u64,
    },
    /// Reading the log failed.
    Query(QueryError),
}

/// The offline proof (`c2sp.org/tlog-proof@v1`) of `version` of `name`,
/// against the checkpoint `/tlog/checkpoint` serves (with witnesses, the
/// latest their quorum cosigned). Blocking.
pub(crate) fn prove_release(
    registry: &Registry,
    key: &TlogKey,
    name: &PackageName,
    version: &Version,
) -> Result<String, NoProof> {
    let cp = registry.latest_checkpoint().ok_or(NoProof::Unknown)?;
    let cp = &cp.contents.checkpoint;
    let (size, note) = key.served_at(cp.log_length, cp.log_root);
    let (index, release) = registry
        .release_record(name, version)
        .map_err(NoProof::Query)?
        .ok_or(NoProof::Unknown)?;
    if index >= size {
        return Err(NoProof::NotYetWitnessed {
            index,
            cosigned: size,
        });
    }
    let path = registry
        .rfc_inclusion_proof(index, size)
        .map_err(NoProof::Query)?;
    let note = Note::parse(note.as_bytes())
        .map_err(|e| NoProof::Query(QueryError::Invalid(format!("the served checkpoint: {e}"))))?;
    Ok(release_proof(&release, index, path, note).text())
}

/// `GET /tlog/proof/{package}/{version}`: the offline proof of a release,
/// to keep beside its file and check with `cairn verify-file`.
pub async fn proof(
    State(app): State<AppState>,
    Path((package, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = app.tlog.clone().ok_or_else(no_tlog)?;
    let name = PackageName::new(&package)
        .map_err(|e| ApiError::bad_request(format!("`{package}` is not a package name: {e}")))?;
    let version = Version::parse(&version)
        .map_err(|e| ApiError::bad_request(format!("`{version}` is not a version: {e}")))?;
    let registry = app.registry.clone();
    let (n, v) = (name.clone(), version.clone());
    let made = tokio::task::spawn_blocking(move || prove_release(&registry, &key, &n, &v))
        .await
        .map_err(|e| {
            ApiError::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            )
        })?;
    match made {
        Ok(text) => Ok(answer(text, "text/plain; charset=utf-8", CHECKPOINT_CACHE)),
        Err(NoProof::Unknown) => Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("package `{name}` has no release {version} in the log"),
        )),
        Err(NoProof::NotYetWitnessed { index, cosigned }) => Err(ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "release {version} of `{name}` is record {index}; the witnesses have cosigned \
                 the log up to {cosigned} records so far: ask again in a few seconds"
            ),
        )
        .retry_after(2)),
        Err(NoProof::Query(e)) => Err(e.into()),
    }
}

fn no_tlog() -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        "this registry publishes no C2SP log (it was started without a log key)",
    )
}

fn answer(body: impl Into<Body>, content_type: &str, cache: &str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = cache.parse() {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// `GET /tlog/checkpoint`: the latest checkpoint as a signed note.
pub async fn checkpoint(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let key = app.tlog.as_ref().ok_or_else(no_tlog)?;
    // `?wait=<size>`: with witnesses, wait (a while) for a cosigned note
    // of at least that size, as replicas that follow ask (only they: a
    // request that holds its connection is not for anyone).
    let wait = query
        .get("wait")
        .map(|w| {
            w.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`wait={w}` is not a size (a whole number)"))
            })
        })
        .transpose()?;
    if wait.is_some() && !crate::forward::from_replica_headers(&app, &headers) {
        return Err(ApiError::message(
            StatusCode::FORBIDDEN,
            "`wait` is for the replicas of this registry",
        ));
    }
    if let (Some(size), true) = (wait, key.witnessed()) {
        let mut sizes = key.cosigned_size.subscribe();
        let _ = tokio::time::timeout(COSIGNED_WAIT, sizes.wait_for(|held| *held >= size)).await;
    }
    let cp = app.registry.latest_checkpoint().ok_or_else(|| {
        ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has no checkpoint yet",
        )
    })?;
    let cp = &cp.contents.checkpoint;
    let note = key.served(cp.log_length, cp.log_root);
    Ok(answer(
        note.to_string(),
        "text/plain; charset=utf-8",
        CHECKPOINT_CACHE,
    ))
}

/// `GET /tlog/key`: the log's verifier key (`<origin>+<id>+<key>`), for
/// those who configure trust in it; fetch it once, over a channel you
/// trust, and pin it.
pub async fn verifier_key(State(app): State<AppState>) -> Result<Response, ApiError> {
    let key = app.tlog.as_ref().ok_or_else(no_tlog)?;
    Ok(answer(
        format!("{}\n", key.verifier_key()),
        "text/plain; charset=utf-8",
        CHECKPOINT_CACHE,
    ))
}

/// `GET /tlog/tile/{path}`: a hash tile or an entry bundle.
pub async fn tile(
    State(app): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    if app.tlog.is_none() {
        return Err(no_tlog());
    }
    let tile = Tile::parse(&format!("tile/{path}"))
        .map_err(|e| ApiError::message(StatusCode::NOT_FOUND, format!("{e}: `tile/{path}`")))?;
    let registry = app.registry.clone();
    let bytes = tokio::task::spawn_blocking(move || registry.tile(&tile))
        .await
        .map_err(|e| {
            ApiError::message(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("task failed: {e}"),
            )
        })??;
    let bytes = bytes.ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("the log has no tile `tile/{path}` at its latest checkpoint"),
        )
    })?;
    Ok(answer(bytes, "application/octet-stream", TILE_CACHE))
}
