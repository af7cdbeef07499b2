//! `cairn witness`: a C2SP witness (`c2sp.org/tlog-witness`) over HTTP.
//! `POST /add-checkpoint` cosigns a checkpoint of a known log that is
//! consistent with the last one it cosigned for that log; the decision is
//! `cairn_transparency::witness::add_checkpoint`, made and saved under one
//! lock (`WitnessState::update`). A validly signed checkpoint that is not
//! consistent is kept as evidence. `GET /` says who the witness is.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_registry::{Clock, StoreError};
use cairn_store::WitnessState;
use cairn_transparency::note::{Signer, Verifier};
use cairn_transparency::witness::{add_checkpoint, AddCheckpoint, Refusal};
use tokio::net::TcpListener;

use crate::conn::Limits;
use crate::error::ApiError;
use crate::observe::Metrics;

/// The largest request body: 63 proof lines and a note of 64 KiB.
const MAX_BODY: usize = 72 << 10;

/// What a witness needs.
pub struct Witness {
    /// Its cosigning key.
    pub key: Signer,
    /// The logs it witnesses: origin, then the keys that sign its
    /// checkpoints.
    pub logs: HashMap<String, Vec<Verifier>>,
    /// What it holds, on disk.
    pub state: Arc<WitnessState>,
    /// Its time.
    pub clock: Arc<dyn Clock>,
}

/// Why a request failed: a refusal of the protocol, or storage.
enum Failure {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

fn seconds(witness: &Witness) -> u64 {
    witness
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn add(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let task = witness.clone();
    let decided = tokio::task::spawn_blocking(move || decide(&task, &body)).await;
    match decided {
        Ok(Ok(cosignature)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            cosignature,
        )
            .into_response(),
        Ok(Err(Failure::Refused(Refusal::Conflict(size)))) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "text/x.tlog.size")],
            format!("{size}\n"),
        )
            .into_response(),
        Ok(Err(Failure::Refused(refusal))) => {
            let status = match refusal {
                Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
                Refusal::UnknownLog(_) => StatusCode::NOT_FOUND,
                Refusal::Unsigned(_) => StatusCode::FORBIDDEN,
                Refusal::Conflict(_) | Refusal::Inconsistent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::message(status, refusal.to_string()).into_response()
        }
        Ok(Err(Failure::Store(e))) => {
            ApiError::storage(&e, format!("the witness cannot save its state: {e}")).into_response()
        }
        Err(e) => ApiError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
        .into_response(),
    }
}

/// Decides and saves; the cosignature line on success.
fn decide(witness: &Witness, body: &[u8]) -> Result<String, Failure> {
    let request = AddCheckpoint::parse(body).map_err(Failure::Refused)?;
    let origin = request
        .note
        .text
        .split('\n')
        .next()
        .unwrap_or_default()
        .to_owned();
    let keys = witness.logs.get(&origin).map(Vec::as_slice);
    let now = seconds(witness);
    let decided = witness.state.update(|held| {
        match add_checkpoint(
            &request,
            keys,
            held.get(&origin).copied(),
            &witness.key,
            now,
        ) {
            Ok((witnessed, cosignature)) => Ok((Some((origin.clone(), witnessed)), cosignature)),
            Err(refusal) => Err(Failure::Refused(refusal)),
        }
    });
    match decided {
        Ok(cosignature) => {
            tracing::info!(origin = %origin, "cosigned a checkpoint");
            Ok(cosignature.to_string())
        }
        Err(Failure::Refused(Refusal::Inconsistent(why))) => {
            // Signed by the log, yet not consistent with what it showed
            // before: proof of misbehaviour, kept.
            match witness.state.keep_evidence(now, &why, body) {
                Ok(path) => tracing::warn!(
                    origin = %origin,
                    evidence = %path.display(),
                    "refused an inconsistent checkpoint: {why}"
                ),
                Err(e) => tracing::error!("cannot keep the evidence of a refused checkpoint: {e}"),
            }
            Err(Failure::Refused(Refusal::Inconsistent(why)))
        }
        Err(other) => Err(other),
    }
}

async fn about(State(witness): State<Arc<Witness>>) -> String {
    let mut logs: Vec<&String> = witness.logs.keys().collect();
    logs.sort();
    let mut text = format!("witness {}\n", witness.key.verifier());
    for origin in logs {
        text.push_str(&format!("log {origin}\n"));
    }
    text
}

/// The witness's routes.
pub fn witness_router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add))
        .route("/", get(about))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve_witness(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::conn::serve(
        listener,
        witness_router(witness),
        Limits::default(),
        None,
        Arc::new(Metrics::new()),
        shutdown,
    )
    .await
}
