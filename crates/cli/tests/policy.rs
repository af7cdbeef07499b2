//! Publish policies (issue 18): a namespace that requires an SPDX license
//! and a source URL refuses a release without them on both faces, naming
//! the wkg.toml `[metadata]` key to add, and stores nothing; the WIT
//! semver gate refuses a new version that removes or changes what the
//! previous version of its series exported, naming the item, on both
//! faces, unless the break is marked (an OCI annotation, or the operator's
//! allowance); a new major version starts a new series. Only an admin sets
//! a policy; anyone may read it.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use cairn_interop::components::{component, Meta};
use cairn_protocol::Hash;
use common::{
    admin_command, free_addr, get, get_json, publish_token, publisher, request, start, stop,
};
use serde_json::json;

const LICENSED: Meta<'static> = Meta {
    name: None,
    processed_by: None,
    description: Some("A tool"),
    license: Some("Apache-2.0"),
    authors: None,
    source: Some("https://git.example.test/tool"),
};

/// A component exporting `acme:tool/api@<version>` with `functions`.
fn tool(version: &str, functions: &str, meta: &Meta<'_>) -> Vec<u8> {
    let api = format!("package acme:tool@{version}; interface api {{ {functions} }}");
    component(
        &[&api],
        &format!("package acme:app@{version}; world app {{ export acme:tool/api@{version}; }}"),
        meta,
    )
}

/// Pushes `content` as `repo:tag` over OCI with manifest `annotations`;
/// the status and body of the manifest push.
fn oci_push(
    addr: SocketAddr,
    bearer: &str,
    repo: &str,
    tag: &str,
    content: &[u8],
    annotations: serde_json::Value,
) -> (u16, String) {
    let auth = [("authorization", bearer)];
    let config = br#"{"architecture":"wasm","os":"wasip2","layerDigests":[]}"#;
    for blob in [&config[..], content] {
        let answer = request(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={}", Hash::of(blob)),
            &auth,
            blob,
        )
        .expect("upload");
        assert_eq!(
            answer.status,
            201,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.wasm.config.v0+json",
            "digest": Hash::of(config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": Hash::of(content).to_string(),
            "size": content.len(),
        }],
        "annotations": annotations,
    })
    .to_string();
    let answer = request(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[
            ("authorization", bearer),
            ("content-type", "application/vnd.oci.image.manifest.v1+json"),
        ],
        manifest.as_bytes(),
    )
    .expect("push manifest");
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

/// The versions of `acme:tool` (its OCI tags, made from its releases).
fn versions(addr: SocketAddr) -> Vec<String> {
    let answer = get(addr, "/v2/acme/tool/tags/list");
    if answer.status != 200 {
        return Vec::new();
    }
    let mut found: Vec<String> = answer.json()["tags"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn namespaces_refuse_releases_their_policy_forbids_on_both_faces() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let server = start(&data, addr, &["--namespace", "acme"], Stdio::null());
    let url = format!("http://{addr}");
    let alice = publisher(scratch.path(), "alice", &url, &data, "publish:acme/*");
    let bearer = format!("Bearer {}", publish_token(&data, "publish:acme/*"));

    // Only an admin sets a policy; anyone reads it.
    let denied = request(
        addr,
        "PUT",
        "/cairn/v1/admin/policies/acme",
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        br#"{"require-license":true}"#,
    )
    .expect("put");
    assert_eq!(denied.status, 403);
    let set = admin_command(
        &[
            "namespace",
            "policy",
            "acme",
            "--require-license",
            "true",
            "--require-source",
            "true",
            "--semver-gate",
            "true",
        ],
        &url,
        &data,
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(String::from_utf8_lossy(&set.stdout).contains("SPDX license: yes"));
    let policy = get_json(addr, "/cairn/v1/policies/acme")["policy"].clone();
    assert_eq!(policy["require-license"], true, "{policy}");
    assert_eq!(policy["semver-gate"], true, "{policy}");
    // Bad policies are refused, naming the problem.
    let bad = admin_command(
        &[
            "namespace",
            "policy",
            "acme",
            "--allow-break",
            "other:tool@1.0.0",
        ],
        &url,
        &data,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not in namespace `acme`"));

    // No license: refused on the Warg face, naming the wkg.toml key, and
    // nothing is stored.
    let unlicensed = tool("1.0.0", "run: func() -> string;", &Meta::default());
    alice.write("unlicensed.wasm", &unlicensed);
    let stderr = alice.fails(
        &[
            "publish",
            "unlicensed.wasm",
            "--package",
            "acme:tool",
            "--version",
            "1.0.0",
        ],
        1,
        "requires an SPDX license",
    );
    assert!(stderr.contains("wkg.toml"), "{stderr}");
    assert!(versions(addr).is_empty());
    let content = get(
        addr,
        &format!(
            "/content/{}",
            Hash::of(&unlicensed).to_string().replacen(':', "-", 1)
        ),
    );
    assert_ne!(content.status, 200, "refused content must not be served");
    // And on the OCI face.
    let (status, body) = oci_push(addr, &bearer, "acme/tool", "1.0.0", &unlicensed, json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("requires an SPDX license"), "{body}");
    // A license but no source.
    let no_source = tool(
        "1.0.0",
        "run: func() -> string;",
        &Meta {
            license: Some("MIT"),
            ..Meta::default()
        },
    );
    alice.write("no-source.wasm", &no_source);
    alice.fails(
        &[
            "publish",
            "no-source.wasm",
            "--package",
            "acme:tool",
            "--version",
            "1.0.0",
        ],
        1,
        "requires a source URL",
    );

    // A compliant 1.0.0, then 1.1.0 adding a function: accepted.
    let v100 = tool("1.0.0", "run: func() -> string;", &LICENSED);
    alice.write("v100.wasm", &v100);
    alice.publish("v100.wasm", "acme:tool", "1.0.0");
    let v110 = tool("1.1.0", "run: func() -> string; stop: func();", &LICENSED);
    alice.write("v110.wasm", &v110);
    alice.publish("v110.wasm", "acme:tool", "1.1.0");

    // 1.2.0 drops `run`: refused on both faces, naming it.
    let v120 = tool("1.2.0", "stop: func();", &LICENSED);
    alice.write("v120.wasm", &v120);
    let stderr = alice.fails(
        &[
            "publish",
            "v120.wasm",
            "--package",
            "acme:tool",
            "--version",
            "1.2.0",
        ],
        1,
        "not semver-compatible with acme:tool@1.1.0",
    );
    assert!(stderr.contains("func run` was removed"), "{stderr}");
    assert!(
        stderr.contains("--allow-break acme:tool@1.2.0"),
        "the refusal says how to mark an intended break: {stderr}"
    );
    let (status, body) = oci_push(addr, &bearer, "acme/tool", "1.2.0", &v120, json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("func run` was removed"), "{body}");
    assert!(body.contains("`dev.cairn.semver-break: true`"), "{body}");
    // 1.2.1 changes `run`'s result: refused, saying from what to what.
    let changed = tool("1.2.1", "run: func() -> u32; stop: func();", &LICENSED);
    alice.write("changed.wasm", &changed);
    alice.fails(
        &[
            "publish",
            "changed.wasm",
            "--package",
            "acme:tool",
            "--version",
            "1.2.1",
        ],
        1,
        "changed from `func() -> string` to `func() -> u32`",
    );
    assert_eq!(versions(addr), ["1.0.0", "1.1.0"]);

    // A new major version starts a new series.
    let v200 = tool("2.0.0", "stop: func();", &LICENSED);
    alice.write("v200.wasm", &v200);
    alice.publish("v200.wasm", "acme:tool", "2.0.0");
    // A break marked by the OCI annotation passes the gate (the account's
    // custodial key then needs the release permission alice grants, as
    // the refusal says).
    let marked = || {
        oci_push(
            addr,
            &bearer,
            "acme/tool",
            "1.2.0",
            &v120,
            json!({ "dev.cairn.semver-break": "true" }),
        )
    };
    let (status, body) = marked();
    assert_eq!(status, 403, "{body}");
    let key = body
        .split("--key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the refusal names the key to grant");
    alice.ok(&[
        "grant",
        "acme:tool",
        "--key",
        key,
        "--permission",
        "release",
    ]);
    let (status, body) = marked();
    assert_eq!(status, 201, "{body}");
    // And one the operator allowed, on the Warg face.
    let allow = admin_command(
        &[
            "namespace",
            "policy",
            "acme",
            "--allow-break",
            "acme:tool@1.2.1",
        ],
        &url,
        &data,
    );
    assert!(
        allow.status.success(),
        "{}",
        String::from_utf8_lossy(&allow.stderr)
    );
    alice.publish("changed.wasm", "acme:tool", "1.2.1");
    assert_eq!(
        versions(addr),
        ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0"]
    );
    stop(server);

    // The policy is kept in the data directory.
    let shown = common::cairn()
        .args(["namespace", "policy", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .expect("policy");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("allowed to break its series: acme:tool@1.2.1"),
        "{text}"
    );
}

/// Policy edits made at once are all kept: a policy's `ETag` given back
/// in `If-Match` sets it only if no other edit came first (412
/// otherwise), and `cairn namespace policy` makes its change again on
/// the policy as it is then.
#[test]
fn policy_edits_at_once_are_all_kept() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let addr = free_addr();
    let server = start(&data, addr, &["--namespace", "acme"], Stdio::null());
    let url = format!("http://{addr}");
    let admin = format!(
        "Bearer {}",
        std::fs::read_to_string(data.join("admin.token"))
            .expect("admin token")
            .trim()
    );
    let read = get(addr, "/cairn/v1/policies/acme");
    let tag = read
        .header("etag")
        .expect("a policy has an ETag")
        .to_owned();
    let put = |body: &[u8], if_match: &str| {
        request(
            addr,
            "PUT",
            "/cairn/v1/admin/policies/acme",
            &[
                ("authorization", admin.as_str()),
                ("content-type", "application/json"),
                ("if-match", if_match),
            ],
            body,
        )
        .expect("put")
    };
    let first = put(br#"{"require-license":true}"#, &tag);
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let now = first.header("etag").expect("the new tag").to_owned();
    assert_ne!(now, tag);
    // An edit made on the policy as it was before: refused, nothing set.
    let stale = put(br#"{"require-source":true}"#, &tag);
    assert_eq!(stale.status, 412);
    let message: serde_json::Value = serde_json::from_slice(&stale.body).expect("JSON");
    assert!(
        message["message"]
            .as_str()
            .is_some_and(|m| m.contains("changed since it was read")),
        "{message}"
    );
    let policy = get_json(addr, "/cairn/v1/policies/acme")["policy"].clone();
    assert_eq!(policy["require-license"], true, "{policy}");
    assert_eq!(policy["require-source"], false, "{policy}");
    assert_eq!(put(b"{}", "no-quotes").status, 400);

    // Eight admins at once, each allowing one release: every allowance
    // is kept.
    let edits: Vec<_> = (0..8)
        .map(|i| {
            let (url, data) = (url.clone(), data.clone());
            std::thread::spawn(move || {
                let release = format!("acme:tool@1.0.{i}");
                admin_command(
                    &["namespace", "policy", "acme", "--allow-break", &release],
                    &url,
                    &data,
                )
            })
        })
        .collect();
    for edit in edits {
        let out = edit.join().expect("edit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let policy = get_json(addr, "/cairn/v1/policies/acme")["policy"].clone();
    let allowed = policy["allowed-breaks"].as_array().expect("a list");
    assert_eq!(allowed.len(), 8, "{policy}");
    assert_eq!(policy["require-license"], true, "{policy}");
    stop(server);
}
