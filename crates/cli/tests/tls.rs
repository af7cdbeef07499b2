//! HTTPS: `cairn serve --tls-dev` makes a local CA and a certificate, and
//! the clients people use reach it over TLS trusting that CA: `cairn`
//! (CAIRN_CA_FILE), wkg 0.16.1 with no `protocol = "http"` line
//! (SSL_CERT_FILE) and skopeo (`--cert-dir`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_interop::tools::{self, Tool};
use cairn_interop::warg::wasm;
use common::{cairn, free_addr, User};

/// Waits until the log says the server listens.
fn wait_for_https(log: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("listening on https://") {
            // The listener is bound before the line is written.
            return;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("cairn serve --tls-dev did not start: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn succeeded(what: &str, output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{what}: {}",
        tools::output_text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn cairn_wkg_and_skopeo_speak_https_to_a_development_certificate() {
    let test = "cairn_wkg_and_skopeo_speak_https_to_a_development_certificate";
    let wkg = tools::require(test, Tool::WKG);
    let skopeo = tools::require(test, Tool::SKOPEO);
    let scratch = tempfile::tempdir().expect("scratch");
    let data = scratch.path().join("data");
    let log = scratch.path().join("serve.log");
    let addr = free_addr();
    let mut server = cairn()
        .args(["serve", "--tls-dev", "--namespace", "acme", "--listen"])
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("serve");
    wait_for_https(&log, &mut server);
    let ca = data.join("tls/ca.pem");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains(&format!("CAIRN_CA_FILE={}", ca.display())),
        "{text}"
    );
    let token = succeeded(
        "token create",
        cairn()
            .args(["token", "create", "--scope", "publish:acme/*", "--data-dir"])
            .arg(&data)
            .output()
            .expect("token"),
    )
    .trim()
    .to_owned();
    let url = format!("https://{addr}");

    // cairn, trusting the CA.
    let alice = User::new(scratch.path(), "alice", &url, Some(&token))
        .with_env("CAIRN_CA_FILE", &ca.display().to_string());
    alice.ok(&["key", "new"]);
    let v1 = wasm("1.0.0 over TLS");
    let file = alice.write("v1.wasm", &v1);
    alice.publish(&file, "acme:secure", "1.0.0");
    alice.ok(&["get", "acme:secure@1.0.0", "-o", "got.wasm"]);
    assert_eq!(alice.read("got.wasm"), v1);
    // Without the CA: refused, with the way out.
    let stranger = User::new(scratch.path(), "stranger", &url, None);
    stranger.fails(&["get", "acme:secure"], 1, "CAIRN_CA_FILE");

    if let Some(wkg) = wkg {
        // wkg with no `protocol = "http"`: HTTPS, trusting the CA.
        let home = scratch.path().join("wkg");
        let project = home.join("project");
        std::fs::create_dir_all(project.join("wit")).expect("dirs");
        let config = home.join("config.toml");
        std::fs::write(&config, format!("default_registry = \"{addr}\"\n")).expect("config");
        std::fs::write(
            project.join("wit/world.wit"),
            "package acme:tls-demo@0.1.0;\n\ninterface greet {\n  hello: func() -> string;\n}\n\n\
             world demo {\n  export greet;\n}\n",
        )
        .expect("wit");
        let bearer: String = addr
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let run = |args: &[&str]| {
            let mut command = Command::new(&wkg);
            tools::isolate(&mut command, &home)
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("SSL_CERT_FILE", &ca)
                .env(format!("WKG_REGISTRY_{bearer}_AUTH_BEARER"), &token)
                .env("NO_COLOR", "1")
                .env("RUST_BACKTRACE", "0")
                .current_dir(&project);
            command.output().expect("wkg")
        };
        succeeded("wkg build", run(&["build"]));
        succeeded("wkg publish", run(&["publish", "acme:tls-demo@0.1.0.wasm"]));
        succeeded(
            "wkg get",
            run(&["get", "acme:tls-demo@0.1.0", "-o", "./back.wasm"]),
        );
        assert_eq!(
            std::fs::read(project.join("back.wasm")).expect("back"),
            std::fs::read(project.join("acme:tls-demo@0.1.0.wasm")).expect("built")
        );
    }
    if let Some(skopeo) = skopeo {
        let output = Command::new(skopeo)
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(data.join("tls"))
            .arg(format!("docker://{addr}/acme/secure:1.0.0"))
            .output()
            .expect("skopeo");
        let manifest = succeeded("skopeo inspect over HTTPS", output);
        assert!(manifest.contains("application/wasm"), "{manifest}");
    }
    server.kill().expect("kill");
    server.wait().expect("reap");
}

#[test]
fn bad_tls_files_are_refused_with_the_file_named() {
    let scratch = tempfile::tempdir().expect("scratch");
    let not_pem = scratch.path().join("cert.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let output = cairn()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(scratch.path().join("data"))
        .arg("--tls-cert")
        .arg(&not_pem)
        .arg("--tls-key")
        .arg(scratch.path().join("missing-key.pem"))
        .output()
        .expect("serve");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cert.pem"), "{stderr}");
    // --tls-cert without --tls-key is a usage error.
    let output = cairn()
        .args(["serve", "--tls-cert"])
        .arg(&not_pem)
        .output()
        .expect("serve");
    assert_eq!(output.status.code(), Some(2));
}
