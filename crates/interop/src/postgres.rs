//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory and `postgres` on a free 127.0.0.1 port (never 0.0.0.0), with
//! no password and the `cairn` database, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the
//! `postgres` user (`runuser`). Where the binaries are missing,
//! [`Postgres::start`] gives `None` with a loud SKIPPED line, or fails
//! under `CAIRN_REQUIRE_TOOLS` (as in CI).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools;

/// The directories PostgreSQL's server binaries may be in.
const BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
    "/usr/local/bin",
    "/usr/bin",
];

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CAIRN_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    BIN_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.join("initdb").exists() && dir.join("postgres").exists())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command for a PostgreSQL binary, as the `postgres` user when root.
fn command(bin: &Path, program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    }
}

/// A running throwaway server.
pub struct Postgres {
    child: Child,
    _dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:<port>/cairn`.
    pub url: String,
}

impl Postgres {
    /// Starts a server for `test`; `None` where PostgreSQL is not installed
    /// and tools are not required.
    pub fn start(test: &str) -> Option<Postgres> {
        Postgres::start_with(test, None)
    }

    /// Starts a server that also accepts TLS with `cert` and `key` (PEM).
    pub fn start_tls(test: &str, cert: &str, key: &str) -> Option<Postgres> {
        Postgres::start_with(test, Some((cert, key)))
    }

    fn start_with(test: &str, tls: Option<(&str, &str)>) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            assert!(
                std::env::var_os(tools::REQUIRE_TOOLS).is_none(),
                "{test}: PostgreSQL (initdb, postgres) is required but not installed; install \
                 postgresql-15 or set CAIRN_POSTGRES_BIN"
            );
            eprintln!(
                "SKIPPED {test}: PostgreSQL is not installed (set CAIRN_POSTGRES_BIN to its bin \
                 directory)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let mut settings = vec!["-c".to_owned(), "fsync=off".to_owned()];
        if let Some((cert, key)) = tls {
            for (file, text) in [("server.crt", cert), ("server.key", key)] {
                let path = dir.path().join(file);
                std::fs::write(&path, text).expect("write TLS file");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .expect("chmod");
                }
                let setting = if file.ends_with("crt") {
                    "ssl_cert_file"
                } else {
                    "ssl_key_file"
                };
                settings.push("-c".into());
                settings.push(format!("{setting}={}", path.display()));
            }
            settings.push("-c".into());
            settings.push("ssl=on".into());
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "cannot give the temp dir to postgres");
        }
        let initdb = command(&bin, "initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = command(&bin, "postgres")
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(&settings)
            .args(["-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let mut server = Postgres {
            child,
            _dir: dir,
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/cairn"),
        };
        server.wait_ready(&bin);
        Some(server)
    }

    fn wait_ready(&mut self, bin: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                self.child.try_wait().ok().flatten().is_none(),
                "postgres exited at start"
            );
            assert!(Instant::now() < deadline, "postgres did not start in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The database the tests use; retried while the server finishes
        // starting up.
        loop {
            let created = Command::new(bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .arg("cairn")
                .stderr(Stdio::piped())
                .output()
                .expect("createdb");
            if created.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "createdb failed: {}",
                String::from_utf8_lossy(&created.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one SQL statement with `psql`; its output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "cairn", "-At", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "psql `{sql}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGTERM: a smart shutdown, then the directory goes.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}
