//! Namespace import (issue 17, item 4), with registries on their own
//! loopback addresses: registry B's operator log imports namespace `acme`
//! from registry A; a client whose registry is B is sent to A for `acme:*`
//! (by B's verified operator log, as Warg clients follow imports) and
//! verifies A's history; B's OCI face names A; bad imports are refused.

mod common;

use std::process::Stdio;

use cairn_interop::warg::wasm;
use common::{cairn, free_on, http_as, publish_token, request, start, User};

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
