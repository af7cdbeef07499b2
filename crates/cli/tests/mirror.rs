//! Verified mirrors (issue 17, items 5 and 9), with registries on their own
//! loopback addresses: B mirrors the `acme:http*` packages of A with all
//! their content, serves them on its OCI face, catches up with A's new
//! releases, keeps serving (and says how stale) when A is down, and stops
//! updating, keeping the evidence, when A comes back with a forked history.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_interop::warg::wasm;
use cairn_protocol::Hash;
use common::{
    cairn, copy_dir, free_on, get, mirror_add, mirror_status, publish_token, request, start, stop,
    wait_for, User,
};
use serde_json::Value;

/// The tags B's OCI face lists for a repository.
fn tags(addr: SocketAddr, repo: &str) -> Vec<String> {
    let answer = get(addr, &format!("/v2/{repo}/tags/list"));
    serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|v| serde_json::from_value(v["tags"].clone()).ok())
        .unwrap_or_default()
}

#[test]
fn a_mirror_serves_verified_copies_follows_the_origin_and_stops_on_a_fork() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let (addr_a, addr_b) = (free_on([127, 0, 0, 2]), free_on([127, 0, 0, 3]));
    let url_a = format!("http://{addr_a}");
    let serve_a = |data: &Path| start(data, addr_a, &["--namespace", "acme"], Stdio::null());

    // A: two packages; its data directory copied for the fork later.
    let a = serve_a(&data_a);
    let alice = User::new(
        scratch.path(),
        "alice",
        &url_a,
        Some(&publish_token(&data_a, "publish:acme/*")),
    );
    alice.ok(&["key", "new"]);
    let (v1, other) = (wasm("http-client 1.0.0"), wasm("other 1.0.0"));
    alice.write("v1.wasm", &v1);
    alice.write("other.wasm", &other);
    alice.publish("v1.wasm", "acme:http-client", "1.0.0");
    alice.publish("other.wasm", "acme:other", "1.0.0");
    stop(a);
    copy_dir(&data_a, &scratch.path().join("fork"));
    let a = serve_a(&data_a);

    // B mirrors acme:http* of A, content and all.
    mirror_add(
        &data_b,
        &url_a,
        "acme",
        &["--packages", "acme:http*", "--content", "all"],
    );
    let b = start(&data_b, addr_b, &[], Stdio::null());
    wait_for("the mirror's first sync", || {
        mirror_status(addr_b)["packagesHeld"].as_u64() == Some(1)
    });
    // A package the origin lacks is not served, and never counted as held.
    for _ in 0..3 {
        assert_eq!(get(addr_b, "/v2/acme/http-nothing/tags/list").status, 404);
    }
    let status = mirror_status(addr_b);
    assert_eq!(status["packagesHeld"].as_u64(), Some(1));
    assert_eq!(status["content"], "all");
    assert!(status["checkpointLength"].as_u64() >= Some(3), "{status}");

    // B's OCI face serves the copy: tags, manifest, the very bytes.
    assert_eq!(tags(addr_b, "acme/http-client"), ["1.0.0"]);
    let manifest = get(addr_b, "/v2/acme/http-client/manifests/1.0.0");
    assert_eq!(manifest.status, 200);
    let manifest: Value = serde_json::from_slice(&manifest.body).expect("manifest");
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    assert_eq!(layer, Hash::of(&v1).to_string());
    let blob = get(addr_b, &format!("/v2/acme/http-client/blobs/{layer}"));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, v1);
    // The release's manifest on B carries A's offline proof, which
    // verifies against A's log key.
    let subject = get(addr_b, "/v2/acme/http-client/manifests/1.0.0");
    let subject = subject
        .header("docker-content-digest")
        .expect("digest")
        .to_owned();
    let referrers: Value = serde_json::from_slice(
        &get(addr_b, &format!("/v2/acme/http-client/referrers/{subject}")).body,
    )
    .expect("index");
    let proof = referrers["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["artifactType"] == "application/vnd.cairn.tlog-proof.v1")
        })
        .unwrap_or_else(|| panic!("no proof among {referrers}"));
    let proof: Value = serde_json::from_slice(
        &get(
            addr_b,
            &format!(
                "/v2/acme/http-client/manifests/{}",
                proof["digest"].as_str().expect("digest")
            ),
        )
        .body,
    )
    .expect("manifest");
    let layer_digest = proof["layers"][0]["digest"].as_str().expect("layer");
    let text = get(
        addr_b,
        &format!("/v2/acme/http-client/blobs/{layer_digest}"),
    )
    .body;
    let key_a = String::from_utf8(get(addr_a, "/tlog/key").body).expect("key");
    let reader = User::new(scratch.path(), "reader", "http://127.0.0.1:9", None);
    reader.write("v1.wasm", &v1);
    reader.write("v1.tlog-proof", &text);
    reader.ok(&[
        "verify-file",
        "v1.wasm",
        "--proof",
        "v1.tlog-proof",
        "--log-key",
        key_a.trim(),
    ]);

    // What the pattern leaves out is not served; B names A.
    let left_out = get(addr_b, "/v2/acme/other/manifests/1.0.0");
    assert_eq!(left_out.status, 404);
    assert!(String::from_utf8_lossy(&left_out.body).contains(&url_a));

    // A new release on A reaches B.
    let v2 = wasm("http-client 1.1.0");
    alice.write("v2.wasm", &v2);
    alice.publish("v2.wasm", "acme:http-client", "1.1.0");
    wait_for("the mirror to catch up", || {
        tags(addr_b, "acme/http-client").len() == 2
    });
    let blob = get(
        addr_b,
        &format!("/v2/acme/http-client/blobs/{}", Hash::of(&v2)),
    );
    assert_eq!(blob.body, v2);

    // A takes 1.0.0 down: B follows (A's verified notice log), refuses
    // the copy with A's reason, and drops it.
    let v1_hex = Hash::of(&v1).to_string();
    let cached = data_b
        .join("mirrors")
        .join("content")
        .join("sha256")
        .join(v1_hex.trim_start_matches("sha256:"));
    assert!(cached.exists(), "{}", cached.display());
    let admin_a = data_a.join("admin.token");
    let down = cairn()
        .args([
            "takedown",
            "acme:http-client@1.0.0",
            "--reason",
            "DMCA notice 7",
        ])
        .args(["--registry", &url_a, "--admin-token-file"])
        .arg(&admin_a)
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .expect("takedown");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let v1_path = format!("/v2/acme/http-client/blobs/{}", Hash::of(&v1));
    wait_for("the mirror to follow the take-down", || {
        get(addr_b, &v1_path).status == 451
    });
    assert!(String::from_utf8_lossy(&get(addr_b, &v1_path).body).contains("DMCA notice 7"));
    wait_for("the mirror to drop its copy", || !cached.exists());

    // A down: B serves what it has and says how stale it is.
    stop(a);
    wait_for("the mirror to notice the origin is down", || {
        !mirror_status(addr_b)["error"].is_null()
    });
    assert!(mirror_status(addr_b)["staleSeconds"].as_u64().is_some());
    assert_eq!(
        get(
            addr_b,
            &format!("/v2/acme/http-client/blobs/{}", Hash::of(&v2))
        )
        .body,
        v2
    );

    // B restarted while A is down: it goes on from what it held.
    stop(b);
    let b = start(&data_b, addr_b, &[], Stdio::null());
    assert_eq!(mirror_status(addr_b)["packagesHeld"].as_u64(), Some(1));
    assert_eq!(tags(addr_b, "acme/http-client"), ["1.0.0", "1.1.0"]);

    // wkg 0.16, configured with B only, gets the release from the mirror
    // while A is down.
    let test = "a_mirror_serves_verified_copies_follows_the_origin_and_stops_on_a_fork";
    if let Some(binary) = cairn_interop::tools::require(test, cairn_interop::tools::Tool::WKG) {
        let home = scratch.path().join("wkg");
        std::fs::create_dir_all(&home).expect("wkg home");
        let config = home.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "default_registry = \"{addr_b}\"\n[registry.\"{addr_b}\".oci]\nprotocol = \"http\"\n"
            ),
        )
        .expect("wkg config");
        let mut command = std::process::Command::new(binary);
        cairn_interop::tools::isolate(&mut command, &home)
            .args(["get", "acme:http-client@1.1.0", "--format", "wasm", "-o"])
            .arg(home.join("got.wasm"))
            .arg("--config")
            .arg(&config)
            .env("NO_COLOR", "1")
            .current_dir(&home);
        let got = command.output().expect("run wkg");
        assert!(
            got.status.success(),
            "wkg get: {}{}",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(std::fs::read(home.join("got.wasm")).expect("got"), v2);
    }

    // A back with a forked history (same keys, same address): B stops
    // updating, keeps the evidence, and serves what it verified.
    let fork = serve_a(&scratch.path().join("fork"));
    let mallory = User::new(
        scratch.path(),
        "mallory",
        &url_a,
        Some(&publish_token(
            &scratch.path().join("fork"),
            "publish:acme/*",
        )),
    );
    mallory.ok(&["key", "new"]);
    mallory.write("evil.wasm", &wasm("evil"));
    mallory.publish("evil.wasm", "acme:http-evil", "1.0.0");
    mallory.write("evil2.wasm", &wasm("evil 2"));
    mallory.publish("evil2.wasm", "acme:http-evil", "2.0.0");
    wait_for("the mirror to catch the fork", || {
        !mirror_status(addr_b)["stopped"].is_null()
    });
    let status = mirror_status(addr_b);
    assert!(
        status["stopped"]
            .as_str()
            .is_some_and(|s| s.contains("evidence")),
        "{status}"
    );
    assert_eq!(tags(addr_b, "acme/http-client"), ["1.0.0", "1.1.0"]);
    assert_eq!(tags(addr_b, "acme/http-evil"), Vec::<String>::new());
    stop(fork);
    stop(b);
}

/// A mirror of the reference `warg-server` 0.10: the verifying client
/// reads its log (its fetch tokens are record ids, opaque to the client),
/// and the mirror serves the release on the OCI face.
#[test]
fn a_mirror_of_a_warg_server_origin() {
    let test = "a_mirror_of_a_warg_server_origin";
    let Some(binary) = cairn_interop::tools::require(test, cairn_interop::tools::Tool::WARG_SERVER)
    else {
        return;
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let content = scratch.path().join("warg-content");
    std::fs::create_dir_all(&content).expect("content dir");
    let addr_a = free_on([127, 0, 0, 2]);
    let mut origin = std::process::Command::new(binary)
        .args(["--listen", &addr_a.to_string(), "--content-dir"])
        .arg(&content)
        .args(["--namespace", "acme", "--data-store", "memory"])
        .env(
            "WARG_OPERATOR_KEY",
            cairn_protocol::PrivateKey::generate().encode(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start warg-server");
    let url_a = format!("http://{addr_a}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while request(addr_a, "GET", "/v1/fetch/checkpoint", &[], b"").map_or(true, |a| a.status != 200)
    {
        assert!(Instant::now() < deadline, "warg-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Published to warg-server with the cairn client (no token needed).
    let alice = User::new(scratch.path(), "alice", &url_a, None);
    alice.ok(&["key", "new"]);
    let v1 = wasm("warg origin 1.0.0");
    alice.write("v1.wasm", &v1);
    alice.publish("v1.wasm", "acme:tool", "1.0.0");

    let data_b = scratch.path().join("b");
    mirror_add(&data_b, &url_a, "acme", &["--content", "all"]);
    let addr_b = free_on([127, 0, 0, 3]);
    let b = start(&data_b, addr_b, &[], Stdio::null());
    wait_for("the mirror of warg-server", || {
        mirror_status(addr_b)["packagesHeld"].as_u64() == Some(1)
    });
    let blob = get(addr_b, &format!("/v2/acme/tool/blobs/{}", Hash::of(&v1)));
    assert_eq!(blob.status, 200);
    assert_eq!(blob.body, v1);
    let _ = origin.kill();
    let _ = origin.wait();
    stop(b);
}
