//! The registry client's errors. Each names what went wrong and, where a
//! person can do something about it, what to do.

use std::path::PathBuf;
use std::time::Duration;

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
    /// The server could not be reached at all.
    #[error("cannot reach {server}: {}", .why.describe())]
    Unreachable {
        /// `scheme://host:port` of what was asked.
        server: String,
        /// What was asked.
        url: String,
        /// Why, as far as the error tells.
        why: Unreachable,
        /// The underlying error, for the curious.
        detail: String,
    },
    /// The registry could not be reached or its answer could not be read.
    #[error("{url}: {message}")]
    Transport {
        /// What was asked.
        url: String,
        /// What failed.
        message: String,
    },
    /// A server stopped answering: no bytes came within the timeout
    /// ([`crate::Limits`]), while connecting, waiting for the answer or
    /// reading it.
    #[error("{server} did not answer within {} s ({stage} {url})", .waited.as_secs_f64())]
    TimedOut {
        /// The server, e.g. `registry at http://127.0.0.1:8090`.
        server: String,
        /// What was asked.
        url: String,
        /// How long the client waited for the next bytes.
        waited: Duration,
        /// What the client was doing: `connecting for`, `waiting for the
        /// answer to`, `reading the answer to`.
        stage: &'static str,
    },
    /// An answer went past a size bound ([`crate::Limits`]) and was
    /// dropped as soon as it did.
    #[error("{url}: {what} is larger than {bound_name} ({bound} bytes); it was not read further")]
    TooLarge {
        /// What was asked.
        url: String,
        /// What was too large: `the JSON answer`, `the download`.
        what: &'static str,
        /// Which bound: `the bound on JSON answers`, `the size its content
        /// source gave`, `the bound on downloads`.
        bound_name: &'static str,
        /// The bound, in bytes.
        bound: u64,
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

/// Why a server could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing listens at that address and port.
    Refused,
    /// The host name does not resolve.
    UnknownHost,
    /// An `https://` address, and the server does not speak TLS there
    /// (it is probably a plain-HTTP server).
    NotTls,
    /// The server's TLS certificate is not trusted.
    Certificate,
    /// Something else went wrong while connecting.
    Other,
}

impl Unreachable {
    /// A description, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Unreachable::Refused => "nothing is listening there (connection refused)",
            Unreachable::UnknownHost => "the host name does not resolve",
            Unreachable::NotTls => {
                "the server does not speak TLS (HTTPS) there; it may be a plain-HTTP server"
            }
            Unreachable::Certificate => "its TLS certificate is not trusted",
            Unreachable::Other => "the connection failed",
        }
    }
}
