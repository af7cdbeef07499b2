//! The registry client's errors. Each names what went wrong and, where a
//! person can do something about it, what to do.

use std::path::PathBuf;

/// What the registry client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry answered, but proved something false: a bad signature
    /// or proof, a history that does not extend the trusted one, a record
    /// that breaks its log's rules, or bytes that do not match their digest.
    /// Never retried; the evidence is kept in a file when there is any.
    #[error("{0}")]
    Verification(Box<VerificationFailure>),
    /// The registry refused the request (4xx/5xx with its message).
    #[error("{url}: the registry answered {status}: {message}")]
    Refused {
        /// What was asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message (from its JSON error body).
        message: String,
    },
    /// The registry could not be reached or its answer could not be read.
    #[error("{url}: {message}")]
    Transport {
        /// What was asked.
        url: String,
        /// What failed.
        message: String,
    },
    /// Local files: state, cache, output.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Something the user asked for that cannot be done as asked; the
    /// message names the fix.
    #[error("{0}")]
    Usage(String),
}

/// What a registry was caught proving false.
#[derive(Debug)]
pub struct VerificationFailure {
    /// The registry.
    pub registry: String,
    /// What was proven false, in words.
    pub what: String,
    /// Where the evidence was written, if anywhere.
    pub evidence: Option<PathBuf>,
}

impl std::fmt::Display for VerificationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verification failed: registry {} {}",
            self.registry, self.what
        )?;
        if let Some(path) = &self.evidence {
            write!(f, "; the evidence is kept in {}", path.display())?;
        }
        Ok(())
    }
}

impl Error {
    /// Whether this is a verification failure (exit code 3 in the CLI).
    pub fn is_verification(&self) -> bool {
        matches!(self, Error::Verification(_))
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// The client's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
