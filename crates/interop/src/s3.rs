//! A throwaway S3-compatible server for tests: moto's server mode
//! (`moto_server`, from PyPI) on a free 127.0.0.1 port (never 0.0.0.0),
//! with one empty bucket, killed on drop. Moto keeps everything in memory
//! and accepts any credentials.
//!
//! Where `moto_server` is missing, [`Moto::start`] gives `None` with a
//! SKIPPED banner, or fails under `CAIRN_REQUIRE_TOOLS` (as in CI; see
//! [`crate::tools`]).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_objects::{ObjectOptions, ObjectStores};
use reqwest::Method;

use crate::http::Http;
use crate::tools::{self, Tool};

/// moto's server, installed by `.ci/run` into a venv.
pub const MOTO: Tool = Tool {
    name: "moto 5.2.5 (`moto_server`)",
    env: "CAIRN_MOTO_SERVER",
    cached: "moto-5.2.5/bin/moto_server",
    system: "",
    install: "python3 -m venv ~/.cache/cairn-ci/moto-5.2.5, then pip install \
              \"moto[server]==5.2.5\" into it",
};

/// The bucket every server starts with.
pub const BUCKET: &str = "cairn";

/// A running moto server with an empty bucket.
pub struct Moto {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Moto {
    /// Starts a server for `test`; `None` where `moto_server` is not
    /// installed and tools are not required.
    pub fn start(test: &str) -> Option<Moto> {
        let program = tools::require(test, MOTO)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut server = Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                self.child.try_wait().ok().flatten().is_none(),
                "moto_server exited at start"
            );
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // moto takes any request, signed or not.
        let created =
            Http::new(&self.endpoint).send(Method::PUT, &format!("/{BUCKET}"), &[], vec![]);
        assert!(
            created.status.is_success(),
            "moto did not create bucket `{BUCKET}`: {} {}",
            created.status,
            String::from_utf8_lossy(&created.body)
        );
    }

    /// `s3://cairn/<prefix>`: the stores' URL under `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The stores at [`Moto::url`]`(prefix)`, reaching this server through
    /// `options.settings` (not the environment).
    pub fn stores(&self, prefix: &str, options: ObjectOptions) -> ObjectStores {
        let options = ObjectOptions {
            settings: self.env(),
            ..options
        };
        ObjectStores::from_url(&self.url(prefix), options).expect("object stores on moto")
    }

    /// The variables a Cairn process needs to reach the server: the
    /// endpoint, a region, credentials (any will do) and plain HTTP.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "cairn-test"),
            ("AWS_SECRET_ACCESS_KEY", "cairn-test-secret"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
