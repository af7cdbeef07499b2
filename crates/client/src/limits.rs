//! How long the client waits for a server and how much it accepts from
//! one: every request has a connect timeout and an idle (read) timeout,
//! every JSON answer a size bound, every download a size bound. None of
//! them is a total deadline on a download: a large download over a slow
//! link goes on as long as bytes keep coming.

use std::ffi::OsString;
use std::time::Duration;

use crate::error::{Error, Result};

/// The environment variable that sets [`Limits::read_timeout`] (and caps
/// [`Limits::connect_timeout`]) in seconds; read by [`Limits::from_env`].
pub const HTTP_TIMEOUT_VAR: &str = "CAIRN_HTTP_TIMEOUT";

/// The client's timeouts and size bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long connecting (TCP and TLS) may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the client waits for the next bytes from a server: for the
    /// answer's headers after the request was sent, and between any two
    /// reads of its body. Default 30 s.
    pub read_timeout: Duration,
    /// The largest JSON answer read. Default 64 MiB (the largest
    /// legitimate answer, a `fetch/logs` page of 10,000 records, is a few
    /// MiB).
    pub max_json_bytes: u64,
    /// The largest content downloaded, when the content source does not
    /// give a smaller size. Default 1 GiB.
    pub max_download_bytes: u64,
    /// The slowest upload allowed, in bytes per second: an upload of `n`
    /// bytes may take `read_timeout + n / min_upload_rate` in all, answer
    /// included. Default 64 KiB/s.
    pub min_upload_rate: u64,
    /// CA certificates (PEM) trusted for HTTPS besides the built-in roots,
    /// e.g. the development CA of `cairn serve --tls-dev`; from
    /// [`CA_FILE_VAR`] by [`Limits::from_env`].
    pub trusted_ca_pem: Option<Vec<u8>>,
}

/// The environment variable naming a PEM file of extra trusted CAs.
pub const CA_FILE_VAR: &str = "CAIRN_CA_FILE";

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_json_bytes: 64 << 20,
            max_download_bytes: 1 << 30,
            min_upload_rate: 64 << 10,
            trusted_ca_pem: None,
        }
    }
}

impl Limits {
    /// The defaults, with [`HTTP_TIMEOUT_VAR`] (a positive number of
    /// seconds) read through `env` as the read timeout; the connect
    /// timeout is the smaller of its default and that.
    pub fn from_env(env: impl Fn(&str) -> Option<OsString>) -> Result<Limits> {
        let mut limits = Limits::default();
        if let Some(path) = env(CA_FILE_VAR) {
            let path = std::path::PathBuf::from(path);
            let pem = std::fs::read(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            limits.trusted_ca_pem = Some(pem);
        }
        let Some(value) = env(HTTP_TIMEOUT_VAR) else {
            return Ok(limits);
        };
        let text = value.to_string_lossy();
        let seconds = text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{HTTP_TIMEOUT_VAR}=`{text}` is not a number of seconds (more than 0, at most 86400)"
                ))
            })?;
        limits.read_timeout = Duration::from_secs_f64(seconds);
        limits.connect_timeout = limits.connect_timeout.min(limits.read_timeout);
        Ok(limits)
    }

    /// How long an upload of `size` bytes may take in all.
    pub(crate) fn upload_timeout(&self, size: u64) -> Duration {
        let rate = self.min_upload_rate.max(1);
        self.read_timeout + Duration::from_secs(size / rate + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_comes_from_the_environment() {
        let none = Limits::from_env(|_| None).expect("defaults");
        assert_eq!(none, Limits::default());
        assert_eq!(none.read_timeout, Duration::from_secs(30));
        assert_eq!(none.connect_timeout, Duration::from_secs(10));
        let set =
            |v: &'static str| Limits::from_env(move |k| (k == HTTP_TIMEOUT_VAR).then(|| v.into()));
        let long = set("120").expect("120");
        assert_eq!(long.read_timeout, Duration::from_secs(120));
        assert_eq!(long.connect_timeout, Duration::from_secs(10));
        let short = set("2.5").expect("2.5");
        assert_eq!(short.read_timeout, Duration::from_millis(2500));
        assert_eq!(short.connect_timeout, Duration::from_millis(2500));
        for bad in ["0", "-1", "soon", "", "inf", "1e9"] {
            let message = set(bad).expect_err(bad).to_string();
            assert!(message.contains(HTTP_TIMEOUT_VAR), "{message}");
        }
    }

    #[test]
    fn an_upload_may_take_as_long_as_its_size_needs() {
        let limits = Limits::default();
        assert_eq!(limits.upload_timeout(0), Duration::from_secs(31));
        assert_eq!(
            limits.upload_timeout(64 << 20),
            Duration::from_secs(30 + 1024 + 1)
        );
    }
}
