//! A lying origin (issue 17, items 8 and 9): registry A, then a fork of A
//! (its data directory copied earlier, so the same operator and log keys)
//! serving another history at the same address. A monitor following A
//! catches the fork and stops; a second monitor that only ever saw the
//! fork catches the split view by gossip with the first; A's witness
//! refuses the forked checkpoint and keeps the evidence. The monitor also
//! replays every package log (`--replay`) and serves Prometheus metrics.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use cairn_interop::warg::wasm;
use cairn_interop::witness::RunningWitness;
use common::{copy_dir, free_addr, get_json, publish_token, request, start, stop, wait_for, User};
use serde_json::Value;

#[test]
fn a_forked_origin_is_caught_by_a_monitor_by_gossip_and_by_a_witness() {
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("a");
    let (log_key, _) = cairn_store::DataDir::create(&data)
        .expect("data dir")
        .log_key(None, || "a.test/tlog".into())
        .expect("log key");
    let witness = RunningWitness::start(
        [127, 0, 0, 4],
        0,
        &scratch.path().join("w"),
        "witness.test/w",
        &log_key.verifier().to_string(),
    );
    let policy = scratch.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!(
            "log {}\nwitness w {} {}\nquorum w\n",
            log_key.verifier(),
            witness.key,
            witness.url
        ),
    )
    .expect("policy");
    let policy = policy.to_str().expect("path").to_owned();
    let addr = free_addr();
    let url = format!("http://{addr}");
    let serve = |data: &Path| start(data, addr, &["--witness-policy", &policy], Stdio::null());

    // A, with one release; its data directory copied (A stopped for it).
    let a = serve(&data);
    let alice = User::new(
        scratch.path(),
        "alice",
        &url,
        Some(&publish_token(&data, "publish:example/*")),
    );
    alice.ok(&["key", "new"]);
    alice.write("v1.wasm", &wasm("1.0.0"));
    alice.publish("v1.wasm", "example:hello", "1.0.0");
    stop(a);
    let forked = scratch.path().join("fork");
    copy_dir(&data, &forked);

    // A goes on: another release. Monitor 1 follows A, replaying logs.
    let a = serve(&data);
    alice.write("v2.wasm", &wasm("2.0.0"));
    alice.publish("v2.wasm", "example:hello", "2.0.0");
    let m1_addr = free_addr();
    let mut m1: Child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["monitor", &url, "--replay", "--interval", "1"])
        .args(["--listen", &m1_addr.to_string()])
        .arg("--state-dir")
        .arg(scratch.path().join("m1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn monitor");
    wait_for("monitor 1 to verify A", || {
        let report = get_json(m1_addr, "/findings");
        report["registries"][0]["packagesVerified"].as_u64() >= Some(1)
            && report["registries"][0]["checkpoint"]["contents"]["logLength"].as_u64() >= Some(3)
    });
    let metrics = request(m1_addr, "GET", "/metrics", &[], b"").expect("metrics");
    let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        metrics.contains("cairn_monitor_log_length{registry=\"")
            && metrics.contains("cairn_monitor_packages_verified"),
        "{metrics}"
    );
    let seen_by_m1 = get_json(m1_addr, "/checkpoints");

    // The fork, at A's address with A's keys: another third record.
    stop(a);
    let fork = serve(&forked);
    let mallory = User::new(
        scratch.path(),
        "mallory",
        &url,
        Some(&publish_token(&forked, "publish:example/*")),
    );
    mallory.ok(&["key", "new"]);
    mallory.write("evil.wasm", &wasm("evil 2.0.0"));
    mallory.publish("evil.wasm", "example:evil", "1.0.0");

    // Monitor 1 catches it and stops following A.
    wait_for("monitor 1 to catch the fork", || {
        let report = get_json(m1_addr, "/findings");
        report["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["kind"] == "verification"))
    });
    let report = get_json(m1_addr, "/findings");
    assert_eq!(report["registries"][0]["stopped"], true, "{report}");
    assert_eq!(
        get_json(m1_addr, "/checkpoints"),
        seen_by_m1,
        "it keeps serving the history it verified"
    );

    // Monitor 2 only ever saw the fork: by itself it finds nothing wrong;
    // comparing with monitor 1, it finds the split view.
    let m2 = |peer: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .args(["monitor", &url, "--once"])
            .arg("--state-dir")
            .arg(scratch.path().join("m2"));
        if peer {
            command.args(["--peer", &format!("http://{m1_addr}")]);
        }
        command.output().expect("monitor 2")
    };
    let alone = m2(false);
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let gossiped = m2(true);
    assert!(!gossiped.status.success());
    let report: Value = serde_json::from_slice(&gossiped.stdout).expect("report");
    let split = report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "split-view"))
        .unwrap_or_else(|| panic!("no split view found: {report}"));
    let evidence = split["evidence"].as_str().expect("evidence file");
    let evidence: Value =
        serde_json::from_slice(&std::fs::read(evidence).expect("evidence")).expect("json");
    assert!(evidence.to_string().contains("ours"), "{evidence}");

    // The witness cosigned A's checkpoints and refused the fork's,
    // keeping it as evidence.
    wait_for("the witness to keep evidence of the fork", || {
        std::fs::read_dir(scratch.path().join("w").join("evidence"))
            .map(|d| d.count() > 0)
            .unwrap_or(false)
    });

    let _ = m1.kill();
    let _ = m1.wait();
    stop(fork);
}
