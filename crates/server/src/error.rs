//! JSON error bodies ([`cairn_api::ErrorBody`]). Where the reference client
//! parses an error, the body has the reference's shape (`status` plus
//! `type`/`id`, or `status` plus `message`); every body also has a
//! `message` a person can read.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_api::{EntityId, EntityType, ErrorBody};
use cairn_registry::{ContentError, QueryError, StoreError, SubmitError};

use crate::observe::StorageFailure;

/// Runs blocking work (store reads, the search index) on the blocking
/// pool; a task that panics is a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("task failed: {e}"),
        )
    })?
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Whether storage failed (counted in the metrics).
    storage: bool,
    /// Seconds after which a retry may succeed (`Retry-After`).
    retry_after: Option<u64>,
}

impl ApiError {
    /// `{"status": N, "message": M}`.
    pub fn message(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::message(status.as_u16(), message),
            storage: false,
            retry_after: None,
        }
    }

    /// `{"status": N, "type": T, "id": I, "message": M}`.
    pub fn entity(
        status: StatusCode,
        ty: EntityType,
        id: impl Into<EntityId>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::entity(status.as_u16(), ty, id, message),
            storage: false,
            retry_after: None,
        }
    }

    /// The message for a person.
    pub fn text(&self) -> &str {
        self.body.text()
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::message(StatusCode::BAD_REQUEST, message)
    }

    /// A storage failure: 507 when storage is full, else 500.
    pub fn storage(e: &StoreError, message: String) -> ApiError {
        let status = if e.is_full() {
            StatusCode::INSUFFICIENT_STORAGE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError {
            storage: true,
            ..ApiError::message(status, message)
        }
    }

    /// The same error, asking to retry after `seconds` (`Retry-After`).
    pub fn retry_after(self, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                message = self.body.text(),
                "request failed"
            );
        }
        let mut response = (self.status, Json(self.body)).into_response();
        if self.storage {
            response.extensions_mut().insert(StorageFailure);
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let message = e.to_string();
        match e {
            QueryError::CheckpointNotFound(len) => {
                ApiError::entity(StatusCode::NOT_FOUND, EntityType::LogLength, len, message)
            }
            QueryError::LeafNotFound(index) => {
                ApiError::entity(StatusCode::NOT_FOUND, EntityType::Leaf, index, message)
            }
            QueryError::LogNotFound(id) => ApiError::entity(
                StatusCode::NOT_FOUND,
                EntityType::Log,
                id.to_string(),
                message,
            ),
            QueryError::RecordNotFound(id) => ApiError::entity(
                StatusCode::NOT_FOUND,
                EntityType::Record,
                id.to_string(),
                message,
            ),
            QueryError::Invalid(_) => ApiError::bad_request(message),
            QueryError::TooMany { .. } => ApiError::message(StatusCode::PAYLOAD_TOO_LARGE, message),
            QueryError::TakenDown { .. } => {
                ApiError::message(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, message)
            }
            QueryError::Store(e) => ApiError::storage(&e, message),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        let message = e.to_string();
        match e {
            SubmitError::NamespaceNotDefined(ns) => {
                ApiError::entity(StatusCode::NOT_FOUND, EntityType::Namespace, ns, message)
            }
            SubmitError::NamespaceImported(ns) => ApiError::entity(
                StatusCode::CONFLICT,
                EntityType::NamespaceImport,
                ns,
                message,
            ),
            SubmitError::ConflictPending {
                record, retry_in, ..
            } => ApiError {
                retry_after: Some(retry_in),
                ..ApiError::entity(
                    StatusCode::CONFLICT,
                    EntityType::Record,
                    record.to_string(),
                    message,
                )
            },
            SubmitError::LogIdMismatch { .. } => ApiError::bad_request(message),
            SubmitError::Invalid(_) => ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, message),
            SubmitError::TakenDown { .. } => {
                ApiError::message(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, message)
            }
            SubmitError::Store(e) => ApiError::storage(&e, message),
            SubmitError::Stopped => ApiError::message(StatusCode::SERVICE_UNAVAILABLE, message),
            SubmitError::NotLeader => ApiError {
                retry_after: Some(1),
                ..ApiError::message(StatusCode::SERVICE_UNAVAILABLE, message)
            },
        }
    }
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> ApiError {
        let message = e.to_string();
        match e {
            ContentError::RecordNotFound(id) => ApiError::entity(
                StatusCode::NOT_FOUND,
                EntityType::Record,
                id.to_string(),
                message,
            ),
            ContentError::NotSourcing(_) => {
                ApiError::message(StatusCode::METHOD_NOT_ALLOWED, message)
            }
            ContentError::NotMissing { .. } => ApiError::message(StatusCode::CONFLICT, message),
            ContentError::TooLarge { .. } => {
                ApiError::message(StatusCode::PAYLOAD_TOO_LARGE, message)
            }
            ContentError::DigestMismatch { .. } | ContentError::NotWasm(_) => {
                ApiError::bad_request(message)
            }
            ContentError::Busy { .. } => ApiError {
                retry_after: Some(5),
                ..ApiError::message(StatusCode::SERVICE_UNAVAILABLE, message)
            },
            ContentError::Policy(refusal) => {
                let message = match refusal.intended_break() {
                    Some((namespace, release)) => format!(
                        "{message}: publish it over OCI with the manifest annotation `{}: \
                         true`, or have the operator allow it with `cairn namespace policy \
                         {namespace} --allow-break {release}`",
                        cairn_registry::policy::BREAK_ANNOTATION
                    ),
                    None => message,
                };
                ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            ContentError::Store(e) => ApiError::storage(&e, message),
        }
    }
}
