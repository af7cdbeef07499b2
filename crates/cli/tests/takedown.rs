//! Take-downs (issue 17, item 7): the operator removes a release's content,
//! or a whole package's, for a stated reason, by a signed notice in the
//! log; downloads get 451 with the reason on both faces; records, proofs
//! and `cairn verify` stay valid; a package taken down takes no new
//! records; a restore lifts it; it all survives a restart.

mod common;

use std::process::Stdio;

use cairn_interop::warg::wasm;
use cairn_protocol::Hash;
use common::{cairn, free_addr, http_as, publish_token, request, start, User};
use serde_json::Value;

fn status_and_message(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let answer = request(addr, "GET", path, &[], b"").expect("request");
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

#[test]
fn a_take_down_refuses_the_content_with_its_reason_and_keeps_the_history() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let mut server = start(&data, addr, &[], Stdio::null());
    let url = format!("http://{addr}");
    let alice = User::new(
        scratch.path(),
        "alice",
        &url,
        Some(&publish_token(&data, "publish:example/*")),
    );
    let carol = User::new(scratch.path(), "carol", &url, None);
    alice.ok(&["key", "new"]);
    let (v1, v2) = (wasm("1.0.0"), wasm("2.0.0"));
    alice.write("v1.wasm", &v1);
    alice.write("v2.wasm", &v2);
    alice.publish("v1.wasm", "example:hello", "1.0.0");
    alice.publish("v2.wasm", "example:hello", "2.0.0");
    carol.ok(&["get", "example:hello@1.0.0", "-o", "before.wasm"]);
    let (d1, d2) = (Hash::of(&v1).to_string(), Hash::of(&v2).to_string());

    let admin_file = data.join("admin.token");
    let admin_file = admin_file.to_str().expect("path");
    let takedown = |args: &[&str]| -> std::process::Output {
        cairn()
            .arg("takedown")
            .args(args)
            .args(["--registry", &url, "--admin-token-file", admin_file])
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .expect("cairn takedown")
    };
    let ok = |args: &[&str]| {
        let out = takedown(args);
        assert!(
            out.status.success(),
            "cairn takedown {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // Bad input: no reason, a version never released, a package that
    // does not exist: refused, nothing logged.
    let refused = takedown(&["example:hello@1.0.0", "--reason", " "]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("give the reason"));
    let refused = takedown(&["example:hello@9.0.0", "--reason", "x"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no release 9.0.0"));
    let refused = takedown(&["example:nothing", "--reason", "x"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("HTTP 404"));
    // Only an admin may.
    let (status, _) = http_as(
        addr,
        "POST",
        "/cairn/v1/admin/takedowns",
        Some(&serde_json::json!({"package": "example:hello", "reason": "x"})),
        Some(&alice.token.clone().expect("token")),
    )
    .expect("request");
    assert_eq!(status, 403);

    // One release down: 451 with the reason on both faces; the other stays.
    let said = ok(&["example:hello@1.0.0", "--reason", "DMCA notice 2026-42"]);
    assert!(said.contains("taken down"), "{said}");
    let (status, body) = status_and_message(addr, &format!("/v1/content/{d1}"));
    assert_eq!(status, 451, "{body}");
    assert!(body.contains("DMCA notice 2026-42"), "{body}");
    let (status, body) = status_and_message(addr, &format!("/v2/example/hello/blobs/{d1}"));
    assert_eq!(status, 451, "{body}");
    let oci: Value = serde_json::from_str(&body).expect("OCI error");
    assert_eq!(oci["errors"][0]["code"], "DENIED");
    assert!(oci["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("DMCA notice 2026-42")));
    assert_eq!(
        status_and_message(addr, &format!("/v2/example/hello/blobs/{d2}")).0,
        200
    );
    // (Carol keeps the copy she has; a new user cannot get one.)
    let dave = User::new(scratch.path(), "dave", &url, None);
    let stderr = dave.fails(
        &["get", "example:hello@1.0.0", "-o", "again.wasm"],
        1,
        "451",
    );
    assert!(stderr.contains("DMCA notice 2026-42"), "{stderr}");
    carol.ok(&["get", "example:hello@2.0.0", "-o", "v2.wasm"]);
    // The history is intact: the client verifies every record and proof.
    carol.ok(&["verify"]);
    let listed: Value =
        serde_json::from_str(&status_and_message(addr, "/cairn/v1/takedowns").1).expect("json");
    assert_eq!(listed["takeDowns"][0]["package"], "example:hello");
    assert_eq!(listed["takeDowns"][0]["content"][0], d1.as_str());
    // Taking it down twice is refused.
    let twice = takedown(&["example:hello@1.0.0", "--reason", "again"]);
    assert!(String::from_utf8_lossy(&twice.stderr).contains("taken down already"));

    // The whole package: every release refused, no new records.
    ok(&["example:hello", "--reason", "malware, report 7"]);
    assert_eq!(
        status_and_message(addr, &format!("/v2/example/hello/blobs/{d2}")).0,
        451
    );
    alice.write("v3.wasm", &wasm("3.0.0"));
    alice.fails(
        &[
            "publish",
            "v3.wasm",
            "--package",
            "example:hello",
            "--version",
            "3.0.0",
        ],
        1,
        "malware, report 7",
    );

    // Still in force after a restart: it is in the log.
    let _ = server.kill();
    let _ = server.wait();
    let mut server = start(&data, addr, &[], Stdio::null());
    assert_eq!(
        status_and_message(addr, &format!("/v1/content/{d2}")).0,
        451
    );

    // Restores lift each take-down in turn.
    ok(&[
        "example:hello",
        "--restore",
        "--reason",
        "cleared on review",
    ]);
    assert_eq!(
        status_and_message(addr, &format!("/v1/content/{d2}")).0,
        200
    );
    assert_eq!(
        status_and_message(addr, &format!("/v1/content/{d1}")).0,
        451,
        "its own take-down stays"
    );
    ok(&[
        "example:hello@1.0.0",
        "--restore",
        "--reason",
        "counter-notice",
    ]);
    dave.ok(&["get", "example:hello@1.0.0", "-o", "restored.wasm"]);
    assert_eq!(dave.read("restored.wasm"), v1);
    carol.ok(&["verify"]);

    // A purge removes the bytes from storage too; the history stays.
    let gone = wasm("gone 1.0.0");
    alice.write("gone.wasm", &gone);
    alice.publish("gone.wasm", "example:gone", "1.0.0");
    let hex = Hash::of(&gone).to_string();
    let stored = data
        .join("content")
        .join("sha256")
        .join(hex.trim_start_matches("sha256:"));
    assert!(stored.exists(), "{}", stored.display());
    let refused = takedown(&["example:gone", "--reason", "x", "--restore", "--purge"]);
    assert!(!refused.status.success(), "a restore purges nothing");
    let said = ok(&["example:gone", "--reason", "court order 12", "--purge"]);
    assert!(said.contains("purged"), "{said}");
    assert!(
        !stored.exists(),
        "the bytes are gone from the content store"
    );
    let (status, body) = status_and_message(addr, &format!("/v1/content/{hex}"));
    assert_eq!(status, 451, "{body}");
    carol.ok(&["verify"]);
    // Purging a take-down in force again works (nothing left to remove),
    // by the CLI or the admin API.
    let again = ok(&["example:gone", "--reason", "court order 12", "--purge"]);
    assert!(again.contains("purged"), "{again}");
    let (status, body) = http_as(
        addr,
        "POST",
        "/cairn/v1/admin/takedowns",
        Some(&serde_json::json!({"package": "example:gone", "reason": "x", "purge": true})),
        Some(&common::admin_token(&data)),
    )
    .expect("request");
    assert_eq!(status, 200, "{body}");
    // Restored after a purge: the record is served, the bytes are not
    // (they must be pushed again).
    ok(&["example:gone", "--restore", "--reason", "appeal won"]);
    let (status, body) = status_and_message(addr, &format!("/v1/content/{hex}"));
    assert_eq!(status, 404, "{body}");
    let _ = server.kill();
    let _ = server.wait();
}
