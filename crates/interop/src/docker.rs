//! Debian's `docker-registry` 2.8.2 (CNCF distribution) as the OCI
//! baseline the benchmarks measure Cairn against.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's docker-registry on a free 127.0.0.1 port, storing under `dir`.
pub struct DockerRegistry {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl DockerRegistry {
    /// Starts it (see [`DockerRegistry::wait_ready`]).
    pub fn start(binary: &Path, dir: &Path) -> DockerRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("registry config");
        let child = Command::new(binary)
            .args(["serve"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        DockerRegistry {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/v2/` answers (30 s at most).
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/v2/", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
