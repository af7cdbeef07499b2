//! The README's quick start, run as written: the shell blocks between
//! `<!-- quickstart -->` and `<!-- /quickstart -->`, in order, in one bash
//! session in an empty directory with a fresh HOME, with `cairn`, `wkg` and
//! `warg` on PATH. Only the address changes (a free port for 8090).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_interop::tools::{self, Tool};

/// The shell blocks of the quick start, joined.
fn quickstart(readme: &str) -> String {
    let start = readme
        .find("<!-- quickstart -->")
        .expect("README has a quickstart marker");
    let end = readme
        .find("<!-- /quickstart -->")
        .expect("README has a quickstart end marker");
    let mut script = String::new();
    let mut inside = false;
    for line in readme[start..end].lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        if inside {
            script.push_str(line);
            script.push('\n');
        }
    }
    script
}

fn link(bin: &Path, name: &str, target: &Path) {
    std::os::unix::fs::symlink(target, bin.join(name)).expect("link");
}

#[test]
fn the_readme_quick_start_runs_as_written() {
    let test = "the_readme_quick_start_runs_as_written";
    let (Some(wkg), Some(warg)) = (
        tools::require(test, Tool::WKG),
        tools::require(test, Tool::WARG_CLI),
    ) else {
        return;
    };
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var_os(tools::REQUIRE_TOOLS).is_none(),
            "{test}: curl is missing"
        );
        eprintln!("SKIPPED {test}: curl is not installed");
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let addr = common::free_addr();
    let underscored: String = addr
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let script = quickstart(&readme)
        .replace("127.0.0.1:8090", &addr.to_string())
        .replace("127_0_0_1_8090", &underscored)
        .replace(
            "cairn serve --namespace example &",
            &format!("cairn serve --namespace example --listen {addr} &"),
        );
    assert!(script.contains("cairn publish") && script.contains("wkg publish"));

    let scratch = tempfile::tempdir().expect("scratch");
    let home = scratch.path().join("home");
    let work = scratch.path().join("work");
    let bin = scratch.path().join("bin");
    for dir in [&home, &work, &bin] {
        std::fs::create_dir_all(dir).expect("dir");
    }
    link(&bin, "cairn", Path::new(env!("CARGO_BIN_EXE_cairn")));
    link(&bin, "wkg", &wkg);
    link(&bin, "warg", &warg);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c"])
        .arg(format!("set -x\n{script}"))
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("CAIRN_LOG", "warn")
        .env("CAIRN_BALLAST_BYTES", "1048576")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so the background server goes with it.
        .process_group(0)
        .spawn()
        .expect("bash");
    let pgid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .status();
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "the README's quick start failed ({}):\n--- script ---\n{script}\n--- output ---\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
