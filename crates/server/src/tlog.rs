//! The log in the C2SP formats (`/tlog/...`): a checkpoint signed with the
//! log's Ed25519 key over the same size and root as the Warg checkpoint
//! (`c2sp.org/tlog-checkpoint`), and the tree as immutable tiles
//! (`c2sp.org/tlog-tiles`), which any standard tool, witness or CDN reads.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use cairn_transparency::log::Tile;
use cairn_transparency::note::{Checkpoint, Note, Signer};

use crate::error::ApiError;
use crate::AppState;

/// How long a checkpoint may be cached (it changes with every checkpoint).
const CHECKPOINT_CACHE: &str = "public, max-age=5";
/// Tiles never change.
const TILE_CACHE: &str = "public, max-age=31536000, immutable";

/// The log's key and the last checkpoint note it signed.
pub struct TlogKey {
    signer: Signer,
    latest: Mutex<Option<(u64, Arc<str>)>>,
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
        }
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        self.signer.verifier().name()
    }

    /// The verifier key clients and witnesses trust the log by.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_string()
    }

    /// The signed checkpoint note of `size` leaves with `root`.
    fn note(&self, size: u64, root: cairn_protocol::Hash) -> Arc<str> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, note)) = latest.as_ref() {
            if *at == size {
                return note.clone();
            }
        }
        let text = Checkpoint {
            origin: self.origin().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        }
        .text();
        let signature = self.signer.sign(&text);
        let note: Arc<str> = Note {
            text,
            signatures: vec![signature],
        }
        .to_string()
        .into();
        *latest = Some((size, note.clone()));
        note
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
pub async fn checkpoint(State(app): State<AppState>) -> Result<Response, ApiError> {
    let key = app.tlog.as_ref().ok_or_else(no_tlog)?;
    let cp = app.registry.latest_checkpoint().ok_or_else(|| {
        ApiError::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has no checkpoint yet",
        )
    })?;
    let cp = &cp.contents.checkpoint;
    let note = key.note(cp.log_length, cp.log_root);
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
