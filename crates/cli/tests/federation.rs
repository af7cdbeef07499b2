//! Namespace import (issue 17, item 4), with registries on their own
//! loopback addresses: registry B's operator log imports namespace `acme`
//! from registry A; a client whose registry is B is sent to A for `acme:*`
//! (by B's verified operator log, as Warg clients follow imports) and
//! verifies A's history; B's OCI face names A; bad imports are refused.

mod common;

use std::process::Stdio;

use cairn_interop::warg::wasm;
use common::{
    admin_command, cairn, free_on, http_as, mirror_add, publish_token, publisher, request, start,
    stop, wait_held, User,
};

#[test]
fn a_registry_that_imports_a_namespace_sends_its_clients_to_the_origin() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let (addr_a, addr_b) = (free_on([127, 0, 0, 2]), free_on([127, 0, 0, 3]));
    let mut a = start(&data_a, addr_a, &["--namespace", "acme"], Stdio::null());
    let mut b = start(&data_b, addr_b, &[], Stdio::null());
    let (url_a, url_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));

    // Alice publishes acme:tool on A.
    let alice = User::new(
        scratch.path(),
        "alice",
        &url_a,
        Some(&publish_token(&data_a, "publish:acme/*")),
    );
    alice.ok(&["key", "new"]);
    alice.write("tool.wasm", &wasm("tool 1.0.0"));
    alice.publish("tool.wasm", "acme:tool", "1.0.0");

    // B's operator imports acme from A.
    let admin_b = data_b.join("admin.token");
    let admin_b = admin_b.to_str().expect("path");
    let import = |namespace: &str, from: &str| {
        cairn()
            .args(["namespace", "import", namespace, "--from", from])
            .args(["--registry", &url_b, "--admin-token-file", admin_b])
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .expect("cairn namespace import")
    };
    let done = import("acme", &url_a);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("imported from"));
    // Again: nothing new; from elsewhere, or a namespace B defines: refused.
    let again = import("acme", &url_a);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already imported"));
    let elsewhere = import("acme", "https://other.example");
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("imported from"));
    let own = import("example", &url_a);
    assert!(String::from_utf8_lossy(&own.stderr).contains("defined by this registry"));
    let (status, body) = http_as(
        addr_b,
        "POST",
        "/cairn/v1/admin/namespaces",
        Some(&serde_json::json!({"namespace": "zeta", "importFrom": "not a registry"})),
        Some(&std::fs::read_to_string(admin_b).expect("token")),
    )
    .expect("request");
    assert_eq!(status, 400, "{body}");

    // A client of B gets acme:tool from A, verified against A's log.
    let carol = User::new(scratch.path(), "carol", &url_b, None);
    let out = carol.run(&["get", "acme:tool@1.0.0", "-o", "tool.wasm"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("imports namespace `acme` from {url_a}")),
        "{stderr}"
    );
    assert_eq!(carol.read("tool.wasm"), wasm("tool 1.0.0"));
    // Packages of B's own namespaces are still B's.
    let own = carol.run(&["info", "example:nothing"]);
    assert!(String::from_utf8_lossy(&own.stderr).contains(&url_b));

    // B's OCI face names the registry the namespace lives on.
    let answer = request(addr_b, "GET", "/v2/acme/tool/manifests/1.0.0", &[], b"").expect("get");
    assert_eq!(answer.status, 404);
    let body = String::from_utf8_lossy(&answer.body);
    assert!(body.contains(&format!("imported from {url_a}")), "{body}");

    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The Warg face of an import: a Warg client (the reference `warg` 0.10)
/// whose registry is B reads in B's operator log that `acme` comes from A
/// and asks B about it with `Warg-Registry: <A>`. B passes the requests to
/// A and, since it mirrors `acme`, hands out the content from its copy.
/// With A down, a fresh client still gets the release (B's kept answers
/// and its copy). A `Warg-Registry` that B does not import from is refused.
#[test]
fn warg_clients_get_an_imported_namespace_through_their_registry() {
    let test = "warg_clients_get_an_imported_namespace_through_their_registry";
    let (Some(binary), Some(_)) = (
        cairn_interop::tools::require(test, cairn_interop::tools::Tool::WARG_CLI),
        cairn_interop::tools::require(test, cairn_interop::tools::Tool::SCRIPT),
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let (addr_a, addr_b) = (free_on([127, 0, 0, 2]), free_on([127, 0, 0, 3]));
    let (url_a, url_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let a = start(&data_a, addr_a, &["--namespace", "acme"], Stdio::null());
    let alice = publisher(scratch.path(), "alice", &url_a, &data_a, "publish:acme/*");
    alice.write("tool.wasm", &wasm("tool 1.0.0"));
    alice.publish("tool.wasm", "acme:tool", "1.0.0");

    // B mirrors acme (which imports it from A).
    mirror_add(&data_b, &url_a, "acme", &["--content", "all"]);
    let b = start(&data_b, addr_b, &[], Stdio::null());
    wait_held(addr_b, 1);

    let warg = |name: &str, registry: &str| {
        let home = scratch.path().join(name);
        std::fs::create_dir_all(&home).expect("home");
        let warg = cairn_interop::warg::Warg {
            binary: binary.clone(),
            home,
        };
        warg.setup(registry, None);
        warg
    };
    let first = warg("warg-first", &url_b);
    first.ok(&[
        "download",
        "acme:tool",
        "--version",
        "1.0.0",
        "--output",
        "tool.wasm",
    ]);
    assert_eq!(
        std::fs::read(first.home.join("tool.wasm")).expect("read"),
        wasm("tool 1.0.0")
    );

    // C imports acme from A and mirrors nothing: the hint's name comes
    // from A (`fetch/names`, checked against the log id), and the content
    // from A.
    let (data_c, addr_c) = (scratch.path().join("c"), free_on([127, 0, 0, 4]));
    let url_c = format!("http://{addr_c}");
    let c = start(&data_c, addr_c, &[], Stdio::null());
    let imported = admin_command(
        &["namespace", "import", "acme", "--from", &url_a],
        &url_c,
        &data_c,
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let through_c = warg("warg-through-c", &url_c);
    through_c.ok(&[
        "download",
        "acme:tool",
        "--version",
        "1.0.0",
        "--output",
        "tool.wasm",
    ]);
    assert_eq!(
        std::fs::read(through_c.home.join("tool.wasm")).expect("read"),
        wasm("tool 1.0.0")
    );
    stop(c);

    // A down: a fresh client of B still gets it.
    stop(a);
    let second = warg("warg-second", &url_b);
    second.ok(&[
        "download",
        "acme:tool",
        "--version",
        "1.0.0",
        "--output",
        "tool.wasm",
    ]);
    assert_eq!(
        std::fs::read(second.home.join("tool.wasm")).expect("read"),
        wasm("tool 1.0.0")
    );

    // A registry B imports nothing from: refused, naming it; B's own
    // address is B.
    let refused = request(
        addr_b,
        "GET",
        "/v1/fetch/checkpoint",
        &[("warg-registry", "elsewhere.example")],
        b"",
    )
    .expect("request");
    assert_eq!(refused.status, 404);
    assert!(String::from_utf8_lossy(&refused.body).contains("elsewhere.example"));
    let own = request(
        addr_b,
        "GET",
        "/v1/fetch/checkpoint",
        &[("warg-registry", &addr_b.to_string())],
        b"",
    )
    .expect("request");
    assert_eq!(own.status, 200);
    // A read of A that B never saw, while A is down: 502, saying so.
    let unseen = request(
        addr_b,
        "POST",
        "/v1/fetch/names",
        &[("warg-registry", &url_a), ("content-type", "application/json")],
        br#"{"packages":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}"#,
    )
    .expect("request");
    assert_eq!(unseen.status, 502);
    assert!(String::from_utf8_lossy(&unseen.body).contains("cannot be reached"));
    stop(b);
}
