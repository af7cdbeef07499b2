//! Helpers for tests that run the `cairn` binary: start it, and a minimal
//! HTTP/1.1 client (one request per connection) so the tests need no HTTP
//! client crate.

#![allow(dead_code)]

pub mod publish;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A raw HTTP response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one request.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("truncated response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// GET or POST with a JSON body; returns (status, JSON).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    http_as(addr, method, path, body, None)
}

/// [`http`] with an API token sent as `Authorization: Bearer`.
pub fn http_as(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    token: Option<&str>,
) -> std::io::Result<(u16, serde_json::Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    let response = request(addr, method, path, &headers, body.as_bytes())?;
    Ok((response.status, response.json()))
}

/// The admin token a server wrote into its data directory at first start.
pub fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_owned()
}

pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// The `cairn` binary, with a small disk-space ballast (the default is
/// 64 MiB per data directory).
pub fn cairn() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
    command.env("CAIRN_BALLAST_BYTES", (1u64 << 20).to_string());
    command
}

/// Starts `cairn serve` and waits until it answers. The caller kills and
/// waits for the child it gets back.
#[allow(clippy::zombie_processes)]
pub fn start(data: &Path, addr: SocketAddr, extra: &[&str], stderr: Stdio) -> Child {
    let mut child = cairn()
        .args(["serve", "--namespace", "example", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("CAIRN_LOG", "info")
        .env_remove("CAIRN_OPERATOR_KEY")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn cairn serve");
    wait_ready(&mut child, addr);
    child
}

/// Waits until the `cairn serve` in `child` answers on `addr`; kills it
/// and fails the test if it does not within 30 s.
pub fn wait_ready(child: &mut Child, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(http(addr, "GET", "/healthz", None), Ok((200, _))) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairn serve did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Someone running `cairn` with their own HOME (config, keys, tokens,
/// trusted state and cache all under it).
pub struct User {
    pub home: std::path::PathBuf,
    pub registry: String,
    pub token: Option<String>,
    /// More environment for every run.
    pub env: Vec<(String, String)>,
}

impl User {
    pub fn new(root: &Path, name: &str, registry: &str, token: Option<&str>) -> User {
        let home = root.join(name);
        std::fs::create_dir_all(&home).expect("home");
        User {
            home,
            registry: registry.to_owned(),
            token: token.map(str::to_owned),
            env: Vec::new(),
        }
    }

    /// The same user, with `name=value` in every run's environment.
    pub fn with_env(mut self, name: &str, value: &str) -> User {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut command = cairn();
        command
            .args(args)
            .current_dir(&self.home)
            .env_clear()
            .env("HOME", &self.home)
            .env("CAIRN_REGISTRY", &self.registry)
            .env("CAIRN_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(token) = &self.token {
            command.env("CAIRN_TOKEN", token);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.output().expect("run cairn")
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "cairn {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Runs, requires exit code `code`, and returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "cairn {}: {stderr}",
            args.join(" ")
        );
        assert!(
            stderr.contains(needle),
            "stderr should say `{needle}`: {stderr}"
        );
        stderr
    }

    /// `cairn publish <file> --package <package> --version <version> --json`.
    #[track_caller]
    pub fn publish(&self, file: &str, package: &str, version: &str) -> serde_json::Value {
        self.json(&["publish", file, "--package", package, "--version", version])
    }

    pub fn write(&self, file: &str, bytes: &[u8]) -> String {
        std::fs::write(self.home.join(file), bytes).expect("write");
        file.to_owned()
    }

    pub fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.home.join(file)).expect("read output")
    }

    pub fn public_key(&self, name: &str) -> String {
        self.json(&["key", "show", name])["publicKey"]
            .as_str()
            .expect("public key")
            .to_owned()
    }
}

/// A tmpfs mounted at a directory (for filling a disk on purpose),
/// unmounted on drop.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` (e.g. `6m`) at `at`; `None` where mounting is not
    /// permitted (it needs root).
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Tmpfs(at.to_owned()))
    }

    /// Gives it `size` in all (an operator freeing space).
    pub fn grow(&self, size: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` to the last byte.
pub fn fill(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("filler")).expect("filler");
    let chunk = vec![1u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    while file.write_all(&[1u8]).is_ok() {}
}

/// A free port on the loopback address `ip` (127.0.0.2, … for tests of
/// registries that must not share an address).
pub fn free_on(ip: [u8; 4]) -> SocketAddr {
    std::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// A token for account `alice` with `scope`, made in the data directory
/// `data` (of a stopped or a running registry).
pub fn publish_token(data: &Path, scope: &str) -> String {
    let output = cairn()
        .args(["token", "create", "--account", "alice", "--scope", scope])
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("token create");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Copies a directory tree (a registry's data directory, to fork it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Kills and reaps a child.
pub fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").expect("request")
}

/// The JSON at `path` (`null` until the server answers with JSON).
pub fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    request(addr, "GET", path, &[], b"")
        .ok()
        .and_then(|answer| serde_json::from_slice(&answer.body).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits until `check` holds, for up to 30 s.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// User `name` of registry `url` with a new key and a publish token of
/// `scope` made in the registry's data directory `data`.
pub fn publisher(root: &Path, name: &str, url: &str, data: &Path, scope: &str) -> User {
    let user = User::new(root, name, url, Some(&publish_token(data, scope)));
    user.ok(&["key", "new"]);
    user
}

/// Creates the data directory `data` and records in it a mirror of
/// `namespace` of `origin`, looked at every second (`extra`: more
/// `cairn mirror add` options).
pub fn mirror_add(data: &Path, origin: &str, namespace: &str, extra: &[&str]) {
    cairn_store::DataDir::create(data).expect("data dir");
    let added = cairn()
        .args(["mirror", "add", origin, "--namespace", namespace])
        .args(["--interval", "1"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("mirror add");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
}

/// How the first mirror of the registry at `addr` stands
/// (`/cairn/v1/mirrors`; `null` until it answers).
pub fn mirror_status(addr: SocketAddr) -> serde_json::Value {
    get_json(addr, "/cairn/v1/mirrors")["mirrors"][0].clone()
}

/// Waits until the first mirror of the registry at `addr` holds `count`
/// packages.
pub fn wait_held(addr: SocketAddr, count: u64) {
    wait_for("the mirror to sync", || {
        mirror_status(addr)["packagesHeld"].as_u64() == Some(count)
    });
}

/// `cairn ARGS` against the running registry at `url` with the admin
/// token of its data directory `data` (never the environment's).
pub fn admin_command(args: &[&str], url: &str, data: &Path) -> std::process::Output {
    cairn()
        .args(args)
        .args(["--registry", url, "--admin-token-file"])
        .arg(data.join("admin.token"))
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .expect("run cairn")
}
