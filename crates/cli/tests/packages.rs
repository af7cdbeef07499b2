//! The package commands end to end, as CI runs them: no terminal, stdin
//! closed, every file under a scratch HOME, against `cairn serve` on
//! 127.0.0.1. Then registries that lie (through a tampering proxy) are
//! caught with exit code 3 and the evidence kept.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use cairn_interop::tools::{self, Tool};
use cairn_interop::warg::wasm;
use cairn_protocol::package::{PackageEntry, PackageRecord};
use cairn_protocol::{Hash, PrivateKey, Record};
use common::{cairn, free_addr, User};
use serde_json::Value;

/// `cairn serve` with `namespace` defined, optionally with a fixed
/// operator key and a public URL; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
}

impl Server {
    fn start(data: &Path, operator_key: Option<&PrivateKey>, public_url: Option<&str>) -> Server {
        let addr = free_addr();
        let mut command = cairn();
        command
            .args(["serve", "--namespace", "example", "--listen"])
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data)
            .env("CAIRN_LOG", "warn")
            .env_remove("CAIRN_OPERATOR_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = public_url {
            command.args(["--public-url", url]);
        }
        if let Some(key) = operator_key {
            command.env("CAIRN_OPERATOR_KEY", key.encode());
        }
        let mut child = command.spawn().expect("spawn cairn serve");
        common::wait_ready(&mut child, addr);
        Server {
            child,
            addr,
            data: data.to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token(&self, scope: &str) -> String {
        let output = cairn()
            .args([
                "token",
                "create",
                "--account",
                "alice",
                "--scope",
                scope,
                "--data-dir",
            ])
            .arg(&self.data)
            .output()
            .expect("token create");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn publish_grant_release_yank_get_lock_verify_without_a_terminal() {
    let scratch = tempfile::tempdir().expect("scratch");
    let server = Server::start(&scratch.path().join("data"), None, None);
    let token = server.token("publish:example/*");
    let url = server.url();
    let alice = User::new(scratch.path(), "alice", &url, Some(&token));
    let bob = User::new(scratch.path(), "bob", &url, Some(&token));
    let reader = User::new(scratch.path(), "reader", &url, None);

    // Without a key, the error says how to make one.
    alice.fails(
        &[
            "publish",
            "x.wasm",
            "--package",
            "example:hello",
            "--version",
            "1.0.0",
        ],
        1,
        "cairn key new",
    );
    alice.ok(&["key", "new"]);
    bob.ok(&["key", "new"]);

    // A file that is not Wasm is refused before anything is signed or
    // sent, so it cannot hold the package (issue 14, item 7).
    alice.write("notes.wasm", b"these are notes, not a component");
    alice.fails(
        &[
            "publish",
            "notes.wasm",
            "--package",
            "example:hello",
            "--version",
            "1.0.0",
        ],
        1,
        "is not a valid WebAssembly component or module",
    );

    // First publish: init and release in one record, in a checkpoint.
    let v1 = wasm("1.0.0");
    let file = alice.write("v1.wasm", &v1);
    let published = alice.publish(&file, "example:hello", "1.0.0");
    let index = published["registryIndex"].as_u64().expect("index");
    assert!(
        published["checkpoint"]["logLength"]
            .as_u64()
            .expect("length")
            > index
    );
    assert_eq!(published["content"], Hash::of(&v1).to_string());
    assert!(published["recordId"]
        .as_str()
        .expect("id")
        .starts_with("sha256:"));

    // Without a token the registry refuses, and the error names the fix.
    let tokenless = User::new(scratch.path(), "alice-no-token", &url, None);
    std::fs::create_dir_all(tokenless.home.join(".config")).expect("dir");
    copy_dir(&alice.home.join(".config"), &tokenless.home.join(".config"));
    tokenless.write("v9.wasm", &wasm("9"));
    tokenless.fails(
        &[
            "publish",
            "v9.wasm",
            "--package",
            "example:hello",
            "--version",
            "9.0.0",
        ],
        1,
        "cairn login",
    );

    // Bob holds no permission yet: the error names the grant command.
    let v11 = wasm("1.1.0");
    bob.write("v11.wasm", &v11);
    let bob_key = bob.public_key("default");
    let publish_v11 = [
        "publish",
        "v11.wasm",
        "--package",
        "example:hello",
        "--version",
        "1.1.0",
    ];
    let refused = bob.fails(&publish_v11, 1, "cairn grant example:hello --key");
    assert!(refused.contains(&bob_key), "{refused}");

    alice.json(&[
        "grant",
        "example:hello",
        "--key",
        &bob_key,
        "--permission",
        "release",
    ]);
    bob.publish("v11.wasm", "example:hello", "1.1.0");
    // Releasing again is refused before anything is sent: the message is
    // the client's own (the registry's would not name the fix).
    bob.fails(
        &publish_v11,
        1,
        "is already released, and versions are immutable; publish a new version",
    );
    // Bob may not yank; the message lists who may.
    let alice_id = alice.json(&["key", "show", "default"])["keyId"]
        .as_str()
        .expect("id")
        .to_owned();
    bob.fails(&["yank", "example:hello@1.1.0", "--yes"], 1, &alice_id);
    // A yank without --yes is a usage error (exit 2) and nothing is signed.
    alice.fails(&["yank", "example:hello@1.1.0"], 2, "--yes");
    alice.json(&["yank", "example:hello@1.1.0", "--yes"]);

    // The reader resolves the newest non-yanked release; a pinned yanked
    // version still downloads.
    let got = reader.json(&["get", "example:hello", "-o", "newest.wasm"]);
    assert_eq!(got["version"], "1.0.0");
    assert_eq!(reader.read("newest.wasm"), v1);
    let got = reader.json(&["get", "example:hello@1.1.0", "-o", "pinned.wasm"]);
    assert_eq!(got["yanked"], true);
    assert_eq!(reader.read("pinned.wasm"), v11);
    let piped = reader.run(&["get", "example:hello@1.0.0", "-o", "-"]);
    assert!(piped.status.success());
    assert_eq!(piped.stdout, v1, "-o - writes the bytes to stdout");
    reader.fails(
        &["get", "example:hello", "-o", "-", "--json"],
        2,
        "pick one",
    );
    reader.fails(&["get", "example:hello@^2"], 1, "1.1.0 (yanked)");
    reader.fails(&["get", "example:nope"], 1, "does not exist");
    reader.fails(&["get", "nowhere:nope"], 1, "--namespace-registry nowhere=");
    reader.fails(&["get", "not a name"], 2, "not a package name");

    let info = reader.json(&["info", "example:hello"]);
    let releases = info["releases"].as_array().expect("releases");
    assert_eq!(releases.len(), 2);
    assert_eq!(releases[1]["version"], "1.1.0");
    assert_eq!(releases[1]["yanked"], true);
    assert_eq!(releases[0]["content"], Hash::of(&v1).to_string());
    let keys = info["keys"].as_array().expect("keys");
    let perms = |id: &str| {
        keys.iter()
            .find(|k| k["keyId"] == id)
            .map(|k| k["permissions"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(perms(&alice_id), serde_json::json!(["release", "yank"]));

    // Lock, then a newer release does not move the locked resolution.
    let locked = reader.json(&["lock", "example:hello@^1"]);
    assert_eq!(locked["packages"][0]["version"], "1.0.0");
    let lock_text = String::from_utf8(reader.read("cairn.lock")).expect("utf8");
    assert!(lock_text.contains(&published["recordId"].as_str().expect("id").to_string()));
    let v12 = wasm("1.2.0");
    let file = alice.write("v12.wasm", &v12);
    alice.publish(&file, "example:hello", "1.2.0");
    let got = reader.json(&["get", "example:hello", "--locked", "-o", "locked.wasm"]);
    assert_eq!(got["version"], "1.0.0");
    assert_eq!(reader.read("locked.wasm"), v1);
    assert_eq!(
        reader.json(&["get", "example:hello", "-o", "n.wasm"])["version"],
        "1.2.0"
    );
    reader.ok(&["lock"]);
    assert_eq!(
        reader.json(&["get", "example:hello", "--locked"])["version"],
        "1.2.0"
    );

    // Revoking takes bob's release permission away.
    alice.json(&[
        "revoke",
        "example:hello",
        "--key",
        &bob_key,
        "--permission",
        "release",
    ]);
    bob.write("v13.wasm", &wasm("1.3.0"));
    bob.fails(
        &[
            "publish",
            "v13.wasm",
            "--package",
            "example:hello",
            "--version",
            "1.3.0",
        ],
        1,
        "may not release",
    );

    // verify re-checks everything the reader trusts.
    let report = reader.json(&["verify"]);
    assert_eq!(report["packages"], 1);
    assert!(
        report["recordsProven"].as_u64().expect("records") >= 6,
        "{report}"
    );
    // A second run from the trusted state is consistent too.
    reader.json(&["verify"]);

    // A package proven at an older checkpoint is brought up to the
    // trusted one: hello gets 1.4.0, then other moves the reader's
    // checkpoint past it, and hello must still show 1.4.0.
    assert_eq!(
        reader.json(&["get", "example:hello", "-o", "a.wasm"])["version"],
        "1.2.0"
    );
    alice.write("v14.wasm", &wasm("1.4.0"));
    alice.publish("v14.wasm", "example:hello", "1.4.0");
    alice.write("other.wasm", &wasm("other"));
    alice.publish("other.wasm", "example:other", "1.0.0");
    assert_eq!(
        reader.json(&["get", "example:other", "-o", "o.wasm"])["version"],
        "1.0.0"
    );
    assert_eq!(
        reader.json(&["get", "example:hello", "-o", "b.wasm"])["version"],
        "1.4.0"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
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

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["namespace", "define"],
        &["token", "create"],
        &["config"],
        &["key", "new"],
        &["login"],
        &["logout"],
        &["publish"],
        &["yank"],
        &["grant"],
        &["revoke"],
        &["get"],
        &["info"],
        &["verify"],
        &["lock"],
    ];
    for command in commands {
        let output = cairn().args(*command).arg("--help").output().expect("run");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?} --help");
        assert!(text.contains("Usage:"), "{command:?} --help: {text}");
    }
    let top = cairn().arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(text.contains("3 verification failure"), "{text}");
    // A usage error exits 2.
    let output = cairn().args(["get"]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
}

// ---------------------------------------------------------------------
// A registry that lies: an HTTP proxy in front of real servers that can
// switch to another server and rewrite answers.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// Pass everything through.
    None,
    /// Serve other bytes for content.
    WrongBytes,
    /// Change the content digest of each package record served, keeping
    /// its signature.
    RewriteRecord,
    /// Leave the newest record of each package log out.
    HideRecord,
}

struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<(SocketAddr, Lie)>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new((addr, Lie::None)));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let (upstream, lie) = *shared.lock().expect("state");
                    let _ = serve_one(stream, upstream, lie);
                });
            }
        });
        Proxy { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, upstream: SocketAddr, lie: Lie) {
        *self.state.lock().expect("state") = (upstream, lie);
    }
}

fn serve_one(stream: TcpStream, upstream: SocketAddr, lie: Lie) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("GET").to_owned(),
            parts.next().unwrap_or("/").to_owned(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if !["host", "connection"]
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h))
                {
                    headers.push((name, value));
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let borrowed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut response = common::request(upstream, &method, &path, &borrowed, &body)?;
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"));
        if chunked {
            response.body = dechunk(&response.body);
        }
        let body = tamper(&method, &path, response.body, lie);
        let mut head = format!("HTTP/1.1 {} X\r\n", response.status);
        for (name, value) in &response.headers {
            if !["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        writer.write_all(head.as_bytes())?;
        writer.write_all(&body)?;
        writer.flush()?;
    }
}

fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..end])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    out
}

fn tamper(method: &str, path: &str, body: Vec<u8>, lie: Lie) -> Vec<u8> {
    match lie {
        Lie::None => body,
        Lie::WrongBytes if method == "GET" && path.starts_with("/content/") => {
            let mut body = body;
            if let Some(last) = body.last_mut() {
                *last ^= 0xff;
            }
            body
        }
        Lie::RewriteRecord | Lie::HideRecord if path == "/v1/fetch/logs" => {
            let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else {
                return body;
            };
            if let Some(packages) = answer["packages"].as_object_mut() {
                for records in packages.values_mut() {
                    let Some(records) = records.as_array_mut() else {
                        continue;
                    };
                    if lie == Lie::HideRecord {
                        records.pop();
                        continue;
                    }
                    for record in records.iter_mut() {
                        rewrite(record);
                    }
                }
            }
            serde_json::to_vec(&answer).unwrap_or(body)
        }
        _ => body,
    }
}

/// Points every release in a record at other content, keeping the
/// original signature.
fn rewrite(record: &mut Value) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(bytes) = record["contentBytes"]
        .as_str()
        .and_then(|t| b64.decode(t).ok())
    else {
        return;
    };
    let Ok(mut contents) = PackageRecord::decode(&bytes) else {
        return;
    };
    for entry in &mut contents.entries {
        if let PackageEntry::Release { content, .. } = entry {
            *content = Hash::of(b"the registry's own bytes");
        }
    }
    record["contentBytes"] = Value::String(b64.encode(contents.encode()));
}

/// Reads the evidence file a failure names and returns it as JSON.
fn evidence(stderr: &str) -> Value {
    let start = stderr.find("kept in ").expect("evidence named") + "kept in ".len();
    let path = stderr[start..].lines().next().expect("path").trim();
    let text = std::fs::read_to_string(path).expect("evidence file exists");
    serde_json::from_str(&text).expect("evidence is JSON")
}

#[test]
fn a_lying_registry_is_caught_with_exit_code_3() {
    let scratch = tempfile::tempdir().expect("scratch");
    let proxy = Proxy::start();
    let operator = PrivateKey::generate();
    let honest = Server::start(
        &scratch.path().join("a"),
        Some(&operator),
        Some(&proxy.url()),
    );
    proxy.set(honest.addr, Lie::None);
    let token = honest.token("publish:example/*");
    let alice = User::new(scratch.path(), "alice", &proxy.url(), Some(&token));
    alice.ok(&["key", "new"]);
    let v1 = wasm("1.0.0");
    alice.write("v1.wasm", &v1);
    alice.publish("v1.wasm", "example:hello", "1.0.0");

    // Wrong bytes: the download fails, nothing is written, evidence kept.
    proxy.set(honest.addr, Lie::WrongBytes);
    let reader = User::new(scratch.path(), "reader", &proxy.url(), None);
    let stderr = reader.fails(
        &["get", "example:hello", "-o", "out.wasm"],
        3,
        "verification failed",
    );
    assert!(stderr.contains("for content"), "{stderr}");
    assert!(!reader.home.join("out.wasm").exists());
    let kept = evidence(&stderr);
    assert_eq!(kept["expectedDigest"], Hash::of(&v1).to_string());
    proxy.set(honest.addr, Lie::None);
    reader.json(&["get", "example:hello", "-o", "out.wasm"]);
    assert_eq!(reader.read("out.wasm"), v1);

    // A rewritten record (new content digest, old signature) is caught by
    // a new client's get and by a trusting client's verify.
    let v2 = wasm("1.1.0");
    alice.write("v2.wasm", &v2);
    alice.publish("v2.wasm", "example:hello", "1.1.0");
    proxy.set(honest.addr, Lie::RewriteRecord);
    let fresh = User::new(scratch.path(), "fresh", &proxy.url(), None);
    let stderr = fresh.fails(&["get", "example:hello"], 3, "breaks the log's rules");
    assert!(stderr.contains("signature"), "{stderr}");
    evidence(&stderr);
    let stderr = reader.fails(&["verify"], 3, "verification failed");
    evidence(&stderr);

    // A hidden record: the map proof shows the log has a newer head.
    proxy.set(honest.addr, Lie::HideRecord);
    let stderr = reader.fails(&["get", "example:hello"], 3, "does not contain");
    evidence(&stderr);

    // The honest answer still verifies for the reader.
    proxy.set(honest.addr, Lie::None);
    assert_eq!(reader.json(&["get", "example:hello"])["version"], "1.1.0");
    reader.ok(&["lock", "example:hello"]);

    // A fork: another server with the same operator key and another
    // history. The reader's trusted checkpoint catches it in get and in
    // verify; both checkpoints are kept.
    let forked = Server::start(
        &scratch.path().join("b"),
        Some(&operator),
        Some(&proxy.url()),
    );
    let mallory_token = forked.token("publish:example/*");
    let mallory = User::new(
        scratch.path(),
        "mallory",
        &format!("http://{}", forked.addr),
        Some(&mallory_token),
    );
    mallory.ok(&["key", "new"]);
    for (i, version) in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"].iter().enumerate() {
        mallory.write(&format!("m{i}.wasm"), &wasm(&format!("evil {version}")));
        mallory.publish(&format!("m{i}.wasm"), "example:hello", version);
    }
    proxy.set(forked.addr, Lie::None);
    let stderr = reader.fails(&["get", "example:hello"], 3, "verification failed");
    let kept = evidence(&stderr);
    assert!(kept["trustedCheckpoint"].is_object(), "{kept}");
    assert!(kept["servedCheckpoint"].is_object(), "{kept}");
    reader.fails(&["verify"], 3, "does not extend the trusted one");
    // A lock made against the honest history is not satisfied by the fork,
    // even for a client with no trusted state.
    let newcomer = User::new(scratch.path(), "newcomer", &proxy.url(), None);
    std::fs::copy(
        reader.home.join("cairn.lock"),
        newcomer.home.join("cairn.lock"),
    )
    .expect("copy");
    newcomer.fails(
        &["get", "example:hello", "--locked"],
        3,
        "the lock file says",
    );
}

/// Runs `cairn <args>` as `user` on a pseudo-terminal (`script`, the
/// binary), so stderr is a terminal; returns everything it wrote.
fn on_terminal(script: &Path, user: &User, args: &str) -> String {
    let output = std::process::Command::new(script)
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_cairn")),
            "/dev/null",
        ])
        .current_dir(&user.home)
        .env_clear()
        .env("HOME", &user.home)
        .env("TERM", "xterm")
        .env("CAIRN_REGISTRY", &user.registry)
        .env("CAIRN_TOKEN", user.token.as_deref().unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "cairn {args}: {text}");
    text
}

#[test]
fn transfers_show_progress_on_a_terminal() {
    let Some(script) = tools::require("transfers_show_progress_on_a_terminal", Tool::SCRIPT) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let server = Server::start(&scratch.path().join("data"), None, None);
    let token = server.token("publish:example/*");
    let user = User::new(scratch.path(), "user", &server.url(), Some(&token));
    user.ok(&["key", "new"]);
    // A 4 MiB module: one custom section, its length a 5-byte LEB128.
    let size = 4usize << 20;
    let len = size - 14;
    let mut big = b"\0asm\x01\0\0\0\0".to_vec();
    big.extend((0..5).map(|i| ((len >> (7 * i)) & 0x7f) as u8 | if i < 4 { 0x80 } else { 0 }));
    big.extend_from_slice(b"\x04test");
    big.resize(size, 0x2a);
    user.write("big.wasm", &big);
    let published = on_terminal(
        &script,
        &user,
        "publish big.wasm --package example:big --version 1.0.0",
    );
    assert!(published.contains("uploading"), "{published}");
    assert!(published.contains("published example:big"), "{published}");
    let got = on_terminal(&script, &user, "get example:big -o out.wasm");
    assert!(got.contains("downloading"), "{got}");
    assert_eq!(user.read("out.wasm"), big);
    // Without a terminal (and with --json) there is no bar.
    let quiet = user.run(&[
        "get",
        "example:big@1.0.0",
        "-o",
        "again.wasm",
        "--cache-dir",
        "fresh",
    ]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("downloading"));
}
