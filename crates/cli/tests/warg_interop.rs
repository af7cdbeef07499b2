//! `cairn` and the reference `warg` CLI 0.10 on one registry: what one
//! publishes, the other downloads and verifies, byte for byte.
//!
//! The warg binary is `$CAIRN_WARG_CLI`, else the copy `.ci/run` installs
//! into `~/.cache/cairn-ci/warg-cli-0.10.0/bin/warg`; `script` is on PATH.
//! Without them the test fails under `CAIRN_REQUIRE_TOOLS` (as `.ci/run`
//! runs it) and skips with a banner otherwise
//! (`cairn_interop::tools::require`).

mod common;

use cairn_interop::server::TestServer;
use cairn_interop::tools::{self, Tool};
use cairn_interop::warg::{wasm, Warg};
use common::User;

#[test]
fn cairn_and_warg_read_what_the_other_published() {
    let test = "cairn_and_warg_read_what_the_other_published";
    let (Some(binary), Some(_)) = (
        tools::require(test, Tool::WARG_CLI),
        tools::require(test, Tool::SCRIPT),
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let server = TestServer::start(&scratch.path().join("data"), &["example"]);

    // cairn publishes; warg downloads pinned and newest.
    let alice = User::new(
        scratch.path(),
        "alice",
        &server.url,
        Some(&server.admin_token),
    );
    alice.ok(&["key", "new"]);
    let (v1, v2) = (wasm("from cairn 1"), wasm("from cairn 2"));
    alice.write("v1.wasm", &v1);
    alice.write("v2.wasm", &v2);
    for (file, version) in [("v1.wasm", "1.0.0"), ("v2.wasm", "1.1.0")] {
        alice.publish(file, "example:from-cairn", version);
    }
    let reader_home = scratch.path().join("warg-reader");
    std::fs::create_dir_all(&reader_home).expect("home");
    let reader = Warg {
        binary: binary.clone(),
        home: reader_home,
    };
    reader.setup(&server.url, None);
    reader.ok(&[
        "download",
        "example:from-cairn",
        "--version",
        "1.0.0",
        "--output",
        "pinned.wasm",
    ]);
    assert_eq!(
        std::fs::read(reader.home.join("pinned.wasm")).expect("read"),
        v1
    );
    reader.ok(&["download", "example:from-cairn", "--output", "newest.wasm"]);
    assert_eq!(
        std::fs::read(reader.home.join("newest.wasm")).expect("read"),
        v2
    );

    // A yank by cairn is honoured by warg.
    alice.json(&["yank", "example:from-cairn@1.1.0", "--yes"]);
    reader.ok(&["update"]);
    reader.ok(&[
        "download",
        "example:from-cairn",
        "--output",
        "after-yank.wasm",
    ]);
    assert_eq!(
        std::fs::read(reader.home.join("after-yank.wasm")).expect("read"),
        v1
    );

    // warg publishes (init, then a release); cairn resolves and verifies.
    let publisher_home = scratch.path().join("warg-publisher");
    std::fs::create_dir_all(&publisher_home).expect("home");
    let publisher = Warg {
        binary,
        home: publisher_home,
    };
    publisher.setup(&server.url, Some(&server.admin_token));
    publisher.ok(&["key", "new"]);
    publisher.ok(&["publish", "init", "example:from-warg"]);
    let w = wasm("from warg");
    std::fs::write(publisher.home.join("w.wasm"), &w).expect("write");
    publisher.ok(&[
        "publish",
        "release",
        "--name",
        "example:from-warg",
        "--version",
        "2.0.0",
        "w.wasm",
    ]);
    let bob = User::new(scratch.path(), "bob", &server.url, None);
    let got = bob.json(&["get", "example:from-warg", "-o", "w.wasm"]);
    assert_eq!(got["version"], "2.0.0");
    assert_eq!(bob.read("w.wasm"), w);
    let info = bob.json(&["info", "example:from-warg"]);
    assert_eq!(
        info["records"], 2,
        "init and release are two records: {info}"
    );
    assert_eq!(info["keys"].as_array().expect("keys").len(), 1, "{info}");
    // And both packages stand up to a full re-verification.
    bob.json(&["get", "example:from-cairn@1.1.0", "-o", "yanked.wasm"]);
    let report = bob.json(&["verify"]);
    assert_eq!(report["packages"], 2, "{report}");
    server.stop();
}
