//! The architecture's invariants that a grep can check (ARCHITECTURE.md
//! lists them; clippy.toml files enforce the rest): the sequencer does no
//! IO and keeps no time, the engine crates never word HTTP statuses or CLI
//! commands, and the wall clock is read in one place.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Every `.rs` file under `dir` (or `dir` itself, if it is one).
fn sources(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `path` that are code (not comments), numbered from 1.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .expect("source")
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_owned()))
        .collect()
}

/// Lines of the sources under `dirs` containing any of `needles`.
fn offending(dirs: &[&str], needles: &[&str], skip: &[&str]) -> Vec<String> {
    let root = workspace();
    let mut found = Vec::new();
    for dir in dirs {
        for path in sources(&root.join(dir)) {
            let shown = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if skip.iter().any(|s| shown.ends_with(s)) {
                continue;
            }
            for (n, line) in code_lines(&path) {
                if let Some(needle) = needles.iter().find(|needle| line.contains(*needle)) {
                    found.push(format!("{shown}:{n}: `{needle}` in: {}", line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_sequencer_does_no_io_and_keeps_no_time() {
    let found = offending(
        &["crates/registry/src/sequencer.rs"],
        &[
            "std::fs",
            "std::io",
            "std::net",
            "std::thread",
            "mpsc",
            "tokio",
            "MetaStore",
            "ContentStore",
            "BlobStore",
            "OciStore",
            "Clock",
            "Instant",
            "SystemTime::now",
            "tracing::",
        ],
        &[],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_engine_crates_word_no_http_status_and_no_cli_command() {
    let engine = [
        "crates/protocol/src",
        "crates/transparency/src",
        "crates/api/src",
        "crates/registry/src",
        "crates/store/src",
    ];
    let found = offending(
        &engine,
        &[
            "StatusCode",
            "axum",
            "reqwest",
            "`cairn ",
            "cairn token",
            "cairn grant",
            "cairn namespace",
            "cairn serve",
            "warg publish",
            "--max-",
            "--oci-create",
            "--scope",
        ],
        &[],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_wall_clock_is_read_in_one_place() {
    let found = offending(
        &[
            "crates/protocol/src",
            "crates/transparency/src",
            "crates/api/src",
            "crates/registry/src",
            "crates/store/src",
            "crates/server/src",
            "crates/cli/src",
        ],
        &["SystemTime::now"],
        &["crates/registry/src/clock.rs"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_server_has_no_polling_loop() {
    let found = offending(
        &["crates/server/src", "crates/registry/src"],
        &["thread::sleep", "time::sleep", "interval("],
        &[
            // The upload-session sweeper runs once a minute.
            "crates/server/src/lib.rs",
            // Deadlines, not polls: the idle timeout, the back-off after a
            // failed accept, the shutdown grace period.
            "crates/server/src/conn.rs",
            // A follower backs off after a store error or a failed
            // takeover; it waits for checkpoints on the store's
            // notification, never by polling.
            "crates/registry/src/replica.rs",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}
