//! OCI errors: the distribution spec's codes, a message naming the
//! problem, and, where the fix is someone's action, a typed hint the face
//! words for its users.

use cairn_protocol::{PackageName, PublicKey};

use crate::error::{ContentError, QueryError};
use crate::storage::StoreError;

/// The distribution spec's error codes (plus `RANGE_INVALID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Blob unknown to the registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown.
    BlobUploadUnknown,
    /// Provided digest did not match, or is malformed.
    DigestInvalid,
    /// A blob the manifest references is unknown.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known.
    NameUnknown,
    /// Content does not match its length.
    SizeInvalid,
    /// Content larger than the registry accepts.
    TooLarge,
    /// Authentication required.
    Unauthorized,
    /// Access denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// A chunk out of order.
    RangeInvalid,
    /// A refused change to something immutable.
    Conflict,
    /// Another request is using the same thing (an upload session).
    Busy,
    /// Too many of something at once (upload sessions).
    TooMany,
    /// The registry did not finish in time; the change may still happen.
    Timeout,
    /// A failure of the registry itself.
    Internal,
    /// The registry's storage is full.
    Full,
    /// The content was taken down by the operator (451).
    TakenDown,
}

impl ErrorCode {
    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid | ErrorCode::Busy => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid | ErrorCode::TooLarge => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied | ErrorCode::Conflict | ErrorCode::TakenDown => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::TooMany => "TOOMANYREQUESTS",
            ErrorCode::Timeout | ErrorCode::Internal | ErrorCode::Full => "INTERNAL_ERROR",
        }
    }
}

/// Who can fix a refusal, and how: the face words it (a CLI command, a
/// setting) for its users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// The operator can let OCI pushes create packages in the namespace.
    AllowOciCreate {
        /// The namespace.
        namespace: String,
    },
    /// An owner of the package can grant the key release permission.
    GrantRelease {
        /// The package.
        package: PackageName,
        /// The custodial key of the pushing account.
        key: Box<PublicKey>,
    },
    /// The operator can raise the blob size limit.
    BlobLimit,
    /// A release that breaks its series can be marked as intended.
    IntendedBreak {
        /// The namespace.
        namespace: String,
        /// `ns:name@version`.
        release: String,
    },
    /// A token with a publish scope for the repository is needed.
    PublishToken {
        /// The repository.
        repository: String,
    },
}

/// An OCI error: a code, a message naming the problem, and maybe a hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OciError {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// Who can fix it, and how.
    pub hint: Option<Hint>,
}

impl OciError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OciError {
        OciError {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// The same error, saying that upload session `id` was ended by it.
    pub fn ended(mut self, id: &str) -> OciError {
        self.message = format!("{}; upload `{id}` was ended: start a new one", self.message);
        self
    }

    /// The same error with a hint.
    pub fn with_hint(mut self, hint: Hint) -> OciError {
        self.hint = Some(hint);
        self
    }
}

impl From<StoreError> for OciError {
    fn from(e: StoreError) -> OciError {
        let code = if e.is_full() {
            ErrorCode::Full
        } else {
            ErrorCode::Internal
        };
        OciError::new(code, e.to_string())
    }
}

impl From<QueryError> for OciError {
    fn from(e: QueryError) -> OciError {
        let code = match &e {
            QueryError::TakenDown { .. } => ErrorCode::TakenDown,
            _ => ErrorCode::Internal,
        };
        OciError::new(code, e.to_string())
    }
}

impl From<ContentError> for OciError {
    fn from(e: ContentError) -> OciError {
        let code = match &e {
            ContentError::TooLarge { .. } => ErrorCode::SizeInvalid,
            ContentError::Busy { .. } => ErrorCode::TooMany,
            ContentError::NotWasm(_) | ContentError::DigestMismatch { .. } => {
                ErrorCode::ManifestInvalid
            }
            ContentError::Policy(refusal) => {
                let error = OciError::new(ErrorCode::Denied, refusal.to_string());
                return match refusal.intended_break() {
                    Some((namespace, release)) => {
                        error.with_hint(Hint::IntendedBreak { namespace, release })
                    }
                    None => error,
                };
            }
            _ => ErrorCode::Internal,
        };
        OciError::new(code, format!("the Wasm layer: {e}"))
    }
}
