//! `cairn config` and `cairn key` as a user (or a CI job) runs them: no
//! prompts, files under XDG_CONFIG_HOME, keys in a 0600 file, JSON output,
//! and errors that name the fix.

mod common;

use std::path::Path;
use std::process::Output;

use common::cairn;
use serde_json::Value;

/// Runs `cairn <args>` with `home` as HOME and XDG_CONFIG_HOME under it.
fn run(home: &Path, args: &[&str]) -> Output {
    cairn()
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cairn")
}

#[track_caller]
fn ok(home: &Path, args: &[&str]) -> String {
    let output = run(home, args);
    assert!(
        output.status.success(),
        "cairn {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn fails(home: &Path, args: &[&str], needle: &str) {
    let output = run(home, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "cairn {} succeeded",
        args.join(" ")
    );
    assert!(
        stderr.contains(needle),
        "stderr should mention `{needle}`: {stderr}"
    );
}

#[test]
fn config_sets_registries_without_prompts() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let shown = ok(home, &["config"]);
    assert!(shown.contains("cairn config --registry"), "{shown}");
    ok(
        home,
        &[
            "config",
            "--registry",
            "http://127.0.0.1:8090/",
            "--namespace-registry",
            "wasi=https://wasi.example",
        ],
    );
    let file = home.join("config/cairn/config.toml");
    assert!(file.is_file(), "the config lives under XDG_CONFIG_HOME");
    let json: Value = serde_json::from_str(&ok(home, &["config", "--json"])).expect("JSON");
    assert_eq!(json["registry"], "http://127.0.0.1:8090");
    assert_eq!(json["namespaceRegistries"]["wasi"], "https://wasi.example");
    ok(home, &["config", "--unmap", "wasi"]);
    let json: Value = serde_json::from_str(&ok(home, &["config", "--json"])).expect("JSON");
    assert_eq!(json["namespaceRegistries"], serde_json::json!({}));
    // Bad input is refused and not stored.
    fails(
        home,
        &["config", "--registry", "127.0.0.1:8090"],
        "http://host",
    );
    fails(home, &["config", "--namespace-registry", "wasi"], "NS=URL");
    fails(
        home,
        &["config", "--namespace-registry", "Bad=http://x"],
        "not a valid namespace",
    );
    fails(home, &["config", "--unmap", "nope"], "no mapping");
    let json: Value = serde_json::from_str(&ok(home, &["config", "--json"])).expect("JSON");
    assert_eq!(json["registry"], "http://127.0.0.1:8090");
    // --config points elsewhere.
    let other = home.join("other.toml");
    ok(
        home,
        &[
            "config",
            "--config",
            other.to_str().expect("path"),
            "--registry",
            "https://r.example",
        ],
    );
    assert!(std::fs::read_to_string(&other)
        .expect("other")
        .contains("https://r.example"));
}

#[test]
fn keys_are_made_listed_shown_and_exported() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let made: Value = serde_json::from_str(&ok(home, &["key", "new", "--json"])).expect("JSON");
    let key_id = made["keyId"].as_str().expect("key id").to_owned();
    assert!(key_id.starts_with("sha256:"), "{made}");
    assert!(made["publicKey"]
        .as_str()
        .expect("public")
        .starts_with("ecdsa-p256:"));
    let file = home.join("config/cairn/keys.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("keys file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the keys file is private");
    }
    fails(home, &["key", "new"], "exists already");
    ok(home, &["key", "new", "--name", "release"]);
    let list: Value = serde_json::from_str(&ok(home, &["key", "list", "--json"])).expect("JSON");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "release"]);
    let shown = ok(home, &["key", "show"]);
    assert!(shown.contains(&key_id), "{shown}");
    fails(home, &["key", "show", "ci"], "cairn key new --name ci");
    // Export (stdout is a pipe here) gives the private key, which parses.
    let exported = ok(home, &["key", "export"]);
    let key = cairn_protocol::PrivateKey::decode(exported.trim()).expect("private key text");
    assert_eq!(key.public_key().id().to_string(), key_id);
    // A keys file others can read is refused, with the fix.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        fails(home, &["key", "list"], "chmod 600");
    }
}

#[test]
fn every_client_command_has_help() {
    let home = tempfile::tempdir().expect("home");
    for args in [
        &["config", "--help"][..],
        &["key", "--help"],
        &["key", "new", "--help"],
        &["key", "list", "--help"],
        &["key", "show", "--help"],
        &["key", "export", "--help"],
    ] {
        let text = ok(home.path(), args);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
}

/// Runs `cairn <args>` with `stdin` piped in and extra env.
fn run_with(home: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut command = cairn();
    command
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn cairn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("cairn")
}

#[test]
fn login_stores_a_token_per_registry_without_prompting() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    // No registry, no token: both errors name the fix.
    fails(home, &["login", "--token-stdin"], "cairn config --registry");
    ok(home, &["config", "--registry", "http://127.0.0.1:8090"]);
    fails(home, &["login"], "--token-stdin");
    let stored = run_with(home, &["login", "--token-stdin"], b"cairn_abc\n", &[]);
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    let file = home.join("config/cairn/credentials.toml");
    let text = std::fs::read_to_string(&file).expect("credentials");
    assert!(
        text.contains("\"http://127.0.0.1:8090\" = \"cairn_abc\""),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // From the environment, for another registry.
    let stored = run_with(
        home,
        &["login", "--registry", "https://r.example"],
        b"",
        &[("CAIRN_TOKEN", "cairn_env")],
    );
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("credentials");
    assert!(
        text.contains("\"https://r.example\" = \"cairn_env\""),
        "{text}"
    );
    // A malformed token is refused and nothing changes.
    let refused = run_with(home, &["login", "--token-stdin"], b"two words", &[]);
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&file).expect("credentials"), text);
    let out = ok(home, &["logout"]);
    assert!(out.contains("forgot"), "{out}");
    let text = std::fs::read_to_string(&file).expect("credentials");
    assert!(!text.contains("cairn_abc"), "{text}");
    let out: Value = serde_json::from_str(&ok(home, &["logout", "--json"])).expect("JSON");
    assert_eq!(out["forgotten"], false, "{out}");
    for args in [&["login", "--help"][..], &["logout", "--help"]] {
        assert!(ok(home, args).contains("Usage:"));
    }
}

#[test]
fn an_unreachable_registry_says_what_was_tried_and_what_to_check() {
    let scratch = tempfile::tempdir().expect("scratch");
    // A port nothing listens on.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{addr}");
    let user = common::User::new(scratch.path(), "newcomer", &url, None);
    let stderr = user.fails(&["get", "example:hello"], 1, "cannot reach");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains("is `cairn serve` running at"), "{stderr}");
    // With --json the error is a JSON object on stdout, same exit code.
    let output = user.run(&["get", "example:hello", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON error on stdout");
    assert!(json["error"]
        .as_str()
        .expect("error")
        .contains("cannot reach"));
    assert!(json["hint"]
        .as_str()
        .expect("hint")
        .contains("cairn config"));
    assert_eq!(json["exitCode"], 1);
    // A usage mistake with --json: exit 2, JSON too.
    let output = user.run(&["get", "--json"]);
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["exitCode"], 2);
    // https:// to a plain-HTTP server.
    let data = scratch.path().join("data");
    let served = common::free_addr();
    let mut server = common::start(&data, served, &[], std::process::Stdio::null());
    let tls = common::User::new(scratch.path(), "tls", &format!("https://{served}"), None);
    let stderr = tls.fails(&["get", "example:hello"], 1, "does not speak TLS");
    assert!(
        stderr.contains(&format!("cairn config --registry http://{served}")),
        "{stderr}"
    );
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn a_wiped_development_registry_can_be_forgotten_explicitly() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = common::free_addr();
    let mut server = common::start(&data, addr, &[], std::process::Stdio::null());
    let token = |data: &Path| {
        let output = cairn()
            .args([
                "token",
                "create",
                "--scope",
                "publish:example/*",
                "--data-dir",
            ])
            .arg(data)
            .output()
            .expect("token");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let url = format!("http://{addr}");
    let alice = common::User::new(scratch.path(), "alice", &url, Some(&token(&data)));
    alice.ok(&["key", "new"]);
    let file = alice.write("v1.wasm", &cairn_interop::warg::wasm("1.0.0"));
    alice.publish(&file, "example:hello", "1.0.0");
    server.kill().expect("kill");
    server.wait().expect("reap");

    // Wiped and started again: what alice trusted is contradicted.
    std::fs::remove_dir_all(&data).expect("wipe");
    let mut server = common::start(&data, addr, &[], std::process::Stdio::null());
    let alice = common::User::new(scratch.path(), "alice", &url, Some(&token(&data)));
    let stderr = alice.fails(&["get", "example:hello"], 3, "cairn registry forget");
    assert!(stderr.contains("--yes"), "{stderr}");
    // Forgetting is explicit: without --yes it only says what it would drop.
    let stderr = alice.fails(&["registry", "forget", &url], 2, "--yes");
    assert!(stderr.contains("log length"), "{stderr}");
    let forgotten = alice.json(&["registry", "forget", &url, "--yes"]);
    assert_eq!(forgotten["forgotten"], true);
    assert!(forgotten["logLength"].as_u64().is_some(), "{forgotten}");
    // And the client starts over as a new user.
    let file = alice.write("v1b.wasm", &cairn_interop::warg::wasm("1.0.0 again"));
    alice.publish(&file, "example:hello", "1.0.0");
    alice.ok(&["get", "example:hello@1.0.0", "-o", "back.wasm"]);
    let nothing = alice.json(&["registry", "forget", "http://127.0.0.1:1", "--yes"]);
    assert_eq!(nothing["forgotten"], false);
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn first_hour_mistakes_are_refused_with_the_fix() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = common::free_addr();
    let mut server = common::start(&data, addr, &[], std::process::Stdio::null());
    let url = format!("http://{addr}");
    let token = |scope: &str| {
        cairn()
            .args(["token", "create", "--scope", scope, "--data-dir"])
            .arg(&data)
            .output()
            .expect("token")
    };
    // A scope that names no package.
    let refused = token("publish:example");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("use `publish:example/*`"), "{stderr}");
    let good = String::from_utf8_lossy(&token("publish:example/*").stdout)
        .trim()
        .to_owned();
    // Garbage and unknown tokens are not stored.
    let user = common::User::new(scratch.path(), "newcomer", &url, None);
    let login = |input: &str| {
        let mut child = cairn()
            .args(["login", "--token-stdin", "--registry", &url])
            .env("HOME", &user.home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("login");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        child.wait_with_output().expect("login")
    };
    let garbage = login("this is not a token\n");
    assert_eq!(garbage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("not an API token"));
    let unknown = login(&format!("cairn_{}\n", "0".repeat(64)));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("does not accept this token"));
    let stored = login(&format!("{good}\n"));
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );
    // A version that is not semver: the message gives the fix.
    let user = common::User::new(scratch.path(), "publisher", &url, Some(&good));
    user.ok(&["key", "new"]);
    let file = user.write("hello.wasm", &cairn_interop::warg::wasm("hello"));
    let stderr = user.fails(
        &[
            "publish",
            &file,
            "--package",
            "example:hello",
            "--version",
            "1.2",
        ],
        2,
        "use MAJOR.MINOR.PATCH, e.g. `1.2.0`",
    );
    assert!(!stderr.contains("unexpected end of input"), "{stderr}");
    // `cairn get -o` does not overwrite another file unless told to.
    user.publish(&file, "example:hello", "1.0.0");
    user.write("taken.wasm", b"someone else's file");
    user.fails(
        &["get", "example:hello@1.0.0", "-o", "taken.wasm"],
        2,
        "pass --force",
    );
    assert_eq!(user.read("taken.wasm"), b"someone else's file");
    user.ok(&["get", "example:hello@1.0.0", "-o", "taken.wasm", "--force"]);
    assert_eq!(user.read("taken.wasm"), cairn_interop::warg::wasm("hello"));
    server.kill().expect("kill");
    server.wait().expect("reap");
}
