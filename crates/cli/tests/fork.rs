//! Forks (issue 17, item 6), registries on their own loopback addresses:
//! B mirrors namespace `acme` of A, then takes it over at A's verified
//! checkpoint. B's log records where the history came from; A's records
//! (the publishers' own signatures) are replayed into B's log; clients of
//! B are told of the fork; the owner publishes on B from then on, with A
//! gone.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cairn_interop::warg::wasm;
use common::{
    admin_command, free_on, get_json, mirror_add, mirror_status, publish_token, publisher, start,
    stop, wait_held, User,
};

/// A (namespace `acme`, on 127.0.0.2) with `packages` released at 1.0.0
/// by alice, and B (127.0.0.3) mirroring all of `acme`, content and all,
/// once B holds them.
struct Setup {
    a: Child,
    b: Child,
    alice: User,
    data_b: PathBuf,
    addr_a: SocketAddr,
    addr_b: SocketAddr,
    url_a: String,
    url_b: String,
}

fn origin_and_mirror(root: &Path, packages: &[&str]) -> Setup {
    let (data_a, data_b) = (root.join("a"), root.join("b"));
    let (addr_a, addr_b) = (free_on([127, 0, 0, 2]), free_on([127, 0, 0, 3]));
    let (url_a, url_b) = (format!("http://{addr_a}"), format!("http://{addr_b}"));
    let a = start(&data_a, addr_a, &["--namespace", "acme"], Stdio::null());
    let alice = publisher(root, "alice", &url_a, &data_a, "publish:acme/*");
    for package in packages {
        let name = package.trim_start_matches("acme:");
        let file = format!("{name}.wasm");
        alice.write(&file, &wasm(&format!("{name} 1.0.0")));
        alice.publish(&file, package, "1.0.0");
    }
    mirror_add(&data_b, &url_a, "acme", &["--content", "all"]);
    let b = start(&data_b, addr_b, &[], Stdio::null());
    wait_held(addr_b, packages.len() as u64);
    Setup {
        a,
        b,
        alice,
        data_b,
        addr_a,
        addr_b,
        url_a,
        url_b,
    }
}

/// `cairn namespace fork ARGS` on B.
fn fork(setup: &Setup, args: &[&str]) -> std::process::Output {
    let mut all = vec!["namespace", "fork"];
    all.extend_from_slice(args);
    admin_command(&all, &setup.url_b, &setup.data_b)
}

#[test]
fn a_registry_forks_a_mirrored_namespace_and_clients_see_it() {
    let scratch = tempfile::tempdir().expect("scratch");
    let setup = origin_and_mirror(scratch.path(), &["acme:tool"]);
    let Setup {
        addr_a,
        addr_b,
        ref url_a,
        ref url_b,
        ref data_b,
        ..
    } = setup;
    let a_length = get_json(addr_a, "/v1/fetch/checkpoint")["contents"]["logLength"]
        .as_u64()
        .expect("length");

    // The fork: only the operator may; then it is recorded with A's
    // checkpoint, and the package is in B's own log.
    let not_mirrored = fork(&setup, &["zeta"]);
    assert!(String::from_utf8_lossy(&not_mirrored.stderr).contains("is not mirrored here"));
    let forked = fork(&setup, &["acme"]);
    assert!(
        forked.status.success(),
        "{}",
        String::from_utf8_lossy(&forked.stderr)
    );
    assert!(String::from_utf8_lossy(&forked.stdout).contains("1 packages, 1 records"));
    let forks = get_json(addr_b, "/cairn/v1/forks");
    assert_eq!(forks["forks"][0]["namespace"], "acme");
    assert_eq!(forks["forks"][0]["origin"], url_a.as_str());
    assert_eq!(forks["forks"][0]["logLength"].as_u64(), Some(a_length));

    // A goes away. A client of B sees the fork, and gets the release
    // from B's own log, verified.
    let Setup { a, b, .. } = setup;
    stop(a);
    let carol = User::new(scratch.path(), "carol", url_b, None);
    let got = carol.run(&["get", "acme:tool@1.0.0", "-o", "tool.wasm"]);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("forked namespace `acme` from {url_a}")),
        "{stderr}"
    );
    assert_eq!(carol.read("tool.wasm"), wasm("tool 1.0.0"));

    // The owner's key still owns the package: it publishes on B now.
    let token_b = publish_token(data_b, "publish:acme/*");
    let alice_b = User::new(scratch.path(), "alice", url_b, Some(&token_b));
    alice_b.write("v2.wasm", &wasm("tool 1.1.0"));
    alice_b.publish("v2.wasm", "acme:tool", "1.1.0");
    carol.ok(&["get", "acme:tool@1.1.0", "-o", "tool2.wasm"]);
    carol.ok(&["verify"]);
    stop(b);
}

/// A fork of one package: B takes over `acme:tool` alone; the rest of
/// `acme` stays A's, and B's mirror goes on following it.
#[test]
fn a_registry_forks_one_package_and_keeps_mirroring_the_rest() {
    let scratch = tempfile::tempdir().expect("scratch");
    let setup = origin_and_mirror(scratch.path(), &["acme:tool", "acme:other"]);
    let held = |addr| mirror_status(addr)["packagesHeld"].as_u64();
    let wrong = fork(&setup, &["acme", "--package", "zeta:tool"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is not in namespace `acme`"));
    let forked = fork(&setup, &["acme", "--package", "acme:tool"]);
    assert!(
        forked.status.success(),
        "{}",
        String::from_utf8_lossy(&forked.stderr)
    );
    assert!(String::from_utf8_lossy(&forked.stdout).contains("1 packages, 1 records"));
    let again = fork(&setup, &["acme", "--package", "acme:tool"]);
    assert!(!again.status.success());
    let Setup {
        mut a,
        b,
        alice,
        data_b,
        addr_b,
        url_a,
        url_b,
        ..
    } = setup;
    let forks = get_json(addr_b, "/cairn/v1/forks");
    assert_eq!(forks["forks"][0]["namespace"], "acme");
    assert_eq!(forks["forks"][0]["package"], "acme:tool");
    assert_eq!(held(addr_b), Some(1));

    // The owner publishes acme:tool on B; acme:other still takes records
    // only on A, and B's mirror follows A's new release of it.
    let token_b = publish_token(&data_b, "publish:acme/*");
    let alice_b = User::new(scratch.path(), "alice", &url_b, Some(&token_b));
    alice_b.write("tool2.wasm", &wasm("tool 1.1.0"));
    alice_b.publish("tool2.wasm", "acme:tool", "1.1.0");
    alice.write("other2.wasm", &wasm("other 1.1.0"));
    alice.publish("other2.wasm", "acme:other", "1.1.0");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tags = get_json(addr_b, "/v2/acme/other/tags/list");
        if tags["tags"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the mirror never followed: {tags}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A client of B: acme:tool from B (told of the fork), acme:other from
    // A (told of the import).
    let carol = User::new(scratch.path(), "carol", &url_b, None);
    let got = carol.run(&["get", "acme:tool@1.1.0", "-o", "tool.wasm"]);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("forked package `acme:tool` from {url_a}")),
        "{stderr}"
    );
    assert_eq!(carol.read("tool.wasm"), wasm("tool 1.1.0"));
    let got = carol.run(&["get", "acme:other@1.1.0", "-o", "other.wasm"]);
    let stderr = String::from_utf8_lossy(&got.stderr);
    assert!(got.status.success(), "{stderr}");
    assert!(stderr.contains("imports namespace `acme`"), "{stderr}");
    assert_eq!(carol.read("other.wasm"), wasm("other 1.1.0"));

    // B restarted: the forked package is still not followed.
    stop(b);
    let mut b = start(&data_b, addr_b, &[], Stdio::null());
    assert_eq!(held(addr_b), Some(1));
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
