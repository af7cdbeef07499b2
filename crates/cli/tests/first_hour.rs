//! The first hour as one scripted session: a newcomer with a fresh HOME
//! and a fresh data directory makes every mistake issue 15 listed, in the
//! order they would, and each message must name the way out.

mod common;

use std::process::Stdio;

use cairn_interop::warg::wasm;
use common::{cairn, free_addr, request, start, User};

#[test]
fn a_newcomer_s_first_hour_every_mistake_names_its_fix() {
    let scratch = tempfile::tempdir().expect("scratch");
    let project = scratch.path().join("project");
    std::fs::create_dir_all(&project).expect("project");
    let data = project.join("cairn-data");
    let addr = free_addr();
    let url = format!("http://{addr}");
    let run_in = |dir: &std::path::Path, args: &[&str]| {
        cairn()
            .args(args)
            .current_dir(dir)
            .env_remove("CAIRN_DATA_DIR")
            .output()
            .expect("cairn")
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // 1. An admin command before any registry exists, or from elsewhere.
    let out = run_in(
        &project,
        &["token", "create", "--scope", "publish:example/*"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cairn serve --data-dir"),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists(), "nothing was created");

    // 2. The client before the server runs.
    let me = User::new(scratch.path(), "me", &url, None);
    let err = me.fails(&["get", "example:hello"], 1, "is `cairn serve` running");
    assert!(err.contains("connection refused"), "{err}");

    // 3. The server; its log says how to connect.
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut server = start(&data, addr, &[], Stdio::from(log.reopen().expect("log")));
    let text = std::fs::read_to_string(log.path()).expect("log");
    assert!(text.contains("namespaces: example"), "{text}");
    assert!(
        text.contains(&format!("cairn config --registry {url}")),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour off a terminal");
    let page = request(addr, "GET", "/", &[], b"").expect("home");
    assert!(String::from_utf8_lossy(&page.body).contains("wkg"));

    // 4. https:// to a plain-HTTP registry.
    let tls = User::new(scratch.path(), "tls", &format!("https://{addr}"), None);
    tls.fails(&["get", "example:hello"], 1, &format!("--registry {url}"));

    // 5. A scope that names no package, then a good token.
    let out = run_in(&project, &["token", "create", "--scope", "publish:example"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("publish:example/*"),
        "{}",
        stderr(&out)
    );
    let out = run_in(
        &project,
        &["token", "create", "--scope", "publish:example/*"],
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("cairn_"), "{}", stderr(&out));
    let me = User::new(scratch.path(), "me", &url, Some(&token));

    // 6. Publishing: no key, a version that is not semver, a file that is
    // not Wasm, then the real thing.
    let file = me.write("hello.wasm", &wasm("hello"));
    me.fails(
        &[
            "publish",
            &file,
            "--package",
            "example:hello",
            "--version",
            "1.0.0",
        ],
        1,
        "cairn key new",
    );
    me.ok(&["key", "new"]);
    me.fails(
        &[
            "publish",
            &file,
            "--package",
            "example:hello",
            "--version",
            "1.2",
        ],
        2,
        "e.g. `1.2.0`",
    );
    let notes = me.write("notes.wasm", b"not a component");
    me.fails(
        &[
            "publish",
            &notes,
            "--package",
            "example:hello",
            "--version",
            "1.0.0",
        ],
        1,
        "not a valid WebAssembly",
    );
    me.publish(&file, "example:hello", "1.0.0");

    // 7. Getting over a file that exists.
    me.write("hello-copy.wasm", b"my own notes");
    me.fails(
        &["get", "example:hello@1.0.0", "-o", "hello-copy.wasm"],
        2,
        "--force",
    );

    // 8. --json errors are JSON on stdout.
    let out = me.run(&["get", "example:nothing", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));

    // 9. The development registry wiped and started again.
    server.kill().expect("kill");
    server.wait().expect("reap");
    std::fs::remove_dir_all(&data).expect("wipe");
    let mut server = start(&data, addr, &[], Stdio::null());
    me.fails(&["get", "example:hello"], 3, "cairn registry forget");
    me.fails(&["registry", "forget", &url], 2, "--yes");
    me.ok(&["registry", "forget", &url, "--yes"]);
    me.fails(&["get", "example:hello"], 1, "does not exist");

    // 10. Shell completions.
    let out = cairn().args(["completions", "zsh"]).output().expect("run");
    assert!(out.status.success() && !out.stdout.is_empty());
    server.kill().expect("kill");
    server.wait().expect("reap");
}
