//! The reference `warg` CLI (warg-cli 0.10) against a Cairn server on a
//! random 127.0.0.1 port, scripted without a terminal as in
//! `ecosystem.md` 5.3: config, key new, publish init, publish release,
//! download `--output` (bytes compared), info, and a yank (which needs a
//! TTY, given by `script`). Every client home is a scratch directory.
//!
//! The binary is `$CAIRN_WARG_CLI`, else the copy `.ci/run` installs into
//! `~/.cache/cairn-ci/warg-cli-0.10.0/bin/warg`; `script` is on PATH.
//! Without them the test fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run`
//! runs it) and skips with a banner otherwise ([`tools::require`]).

use cairn_interop::server::TestServer;
use cairn_interop::tools::{self, output_text as text, Tool};
use cairn_interop::warg::{wasm, Warg};

#[test]
fn warg_cli_publishes_downloads_and_yanks() {
    let test = "warg_cli_publishes_downloads_and_yanks";
    let (Some(binary), Some(_)) = (
        tools::require(test, Tool::WARG_CLI),
        tools::require(test, Tool::SCRIPT),
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch dir");
    let server = TestServer::start(&scratch.path().join("data"), &["example"]);
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let warg = Warg { binary, home };

    warg.ok(&[
        "config",
        "--registry",
        &server.url,
        "--keyring-backend",
        "flat-file",
        "--overwrite",
    ]);
    let key = warg.ok(&["key", "new"]);
    assert!(key.contains("ecdsa-p256:"), "key new prints the key: {key}");

    // Publishing needs an API token; the refusal says where one comes from.
    let refused = warg.run(&["publish", "init", "example:greeter"]);
    assert!(!refused.status.success(), "publish without a token refused");
    assert!(
        text(&refused).contains("cairn token create"),
        "the refusal names the fix: {}",
        text(&refused)
    );
    // `warg login` reads the token only from a terminal.
    let login = warg.on_terminal("login", format!("{}\r", server.admin_token).as_bytes());
    assert!(login.status.success(), "login: {}", text(&login));

    let init = warg.ok(&["publish", "init", "example:greeter"]);
    assert!(
        init.contains("published initialization of package `example:greeter`"),
        "{init}"
    );

    let v1 = wasm("1.2.3");
    let v2 = wasm("1.3.0");
    std::fs::write(warg.home.join("v1.wasm"), &v1).expect("write");
    std::fs::write(warg.home.join("v2.wasm"), &v2).expect("write");
    for (version, file) in [("1.2.3", "v1.wasm"), ("1.3.0", "v2.wasm")] {
        let out = warg.ok(&[
            "publish",
            "release",
            "--name",
            "example:greeter",
            "--version",
            version,
            file,
        ]);
        assert!(out.contains(version), "release {version}: {out}");
    }

    // Downloads compare bytes; the reader is a second user with empty
    // storage, so the bytes come from the server.
    let reader_home = scratch.path().join("reader");
    std::fs::create_dir_all(&reader_home).expect("reader home");
    let reader = Warg {
        binary: warg.binary.clone(),
        home: reader_home,
    };
    reader.ok(&["config", "--registry", &server.url, "--overwrite"]);
    reader.ok(&[
        "download",
        "example:greeter",
        "--version",
        "1.2.3",
        "--output",
        "pinned.wasm",
    ]);
    assert_eq!(
        std::fs::read(reader.home.join("pinned.wasm")).expect("read"),
        v1
    );
    reader.ok(&["download", "example:greeter", "--output", "newest.wasm"]);
    assert_eq!(
        std::fs::read(reader.home.join("newest.wasm")).expect("read"),
        v2
    );
    let info = reader.ok(&["info"]);
    assert!(
        info.contains("example:greeter") && info.contains("1.2.3") && info.contains("1.3.0"),
        "info lists the package and its versions: {info}"
    );

    // A namespace the registry does not define.
    let refused = warg.run(&["publish", "init", "other:greeter"]);
    let message = text(&refused);
    assert!(!refused.status.success(), "undefined namespace refused");
    assert!(
        message.contains("namespace `other` is not defined"),
        "names the namespace: {message}"
    );

    // Yank 1.3.0: the CLI asks for confirmation on a terminal only, so run
    // it under `script` and answer.
    let output = warg.on_terminal(
        "publish yank --name example:greeter --version 1.3.0",
        b"y\r",
    );
    assert!(output.status.success(), "yank: {}", text(&output));

    // The reader's client resolves from its own verified copy of the
    // log: `update` brings it up to the new checkpoint.
    reader.ok(&["update"]);

    reader.ok(&["download", "example:greeter", "--output", "after-yank.wasm"]);
    assert_eq!(
        std::fs::read(reader.home.join("after-yank.wasm")).expect("read"),
        v1,
        "after the yank the newest release is 1.2.3"
    );
    let pinned = reader.run(&[
        "download",
        "example:greeter",
        "--version",
        "1.3.0",
        "--output",
        "yanked.wasm",
    ]);
    assert!(
        text(&pinned).contains("was not found"),
        "a yanked version is not resolved: {}",
        text(&pinned)
    );
    server.stop();
}
