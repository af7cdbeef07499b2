//! Replays the fuzz corpus on the stable toolchain (issue 14): every seed
//! committed under `fuzz/seeds/<target>/` and every input a fuzz target
//! crashed on, kept under `tests/fuzz-regressions/<target>/`, through the
//! very checks the targets run (the files of `fuzz/src/` are included
//! here, so the two cannot drift). A panic fails the test.
//!
//! The `wasm_stream` target also compares with wasmparser's one-shot
//! validator, which this crate does not link; here the stream's verdict in
//! pieces is compared with its verdict on the whole input instead.

use std::fs;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../../fuzz/src/api_json.rs"]
mod api_json;
#[allow(dead_code)]
#[path = "../../../fuzz/src/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../../../fuzz/src/input.rs"]
mod input;
#[allow(dead_code)]
#[path = "../../../fuzz/src/oci.rs"]
mod oci;
#[allow(dead_code)]
#[path = "../../../fuzz/src/operator_state.rs"]
mod operator_state;
#[allow(dead_code)]
#[path = "../../../fuzz/src/package_state.rs"]
mod package_state;
#[allow(dead_code)]
#[path = "../../../fuzz/src/proofs.rs"]
mod proofs;
#[allow(dead_code)]
#[path = "../../../fuzz/src/records.rs"]
mod records;
#[allow(dead_code)]
#[path = "../../../fuzz/src/wasm.rs"]
mod wasm;

const TARGETS: [&str; 8] = [
    "package_record",
    "operator_record",
    "proofs",
    "oci_manifest",
    "api_json",
    "wasm_stream",
    "package_state",
    "operator_state",
];

/// Runs `data` through the checks of `target`.
fn check(target: &str, data: &[u8]) {
    match target {
        "package_record" => records::package_record(data),
        "operator_record" => records::operator_record(data),
        "proofs" => proofs::proofs(data),
        "oci_manifest" => oci::manifest(data),
        "api_json" => api_json::api_json(data),
        "wasm_stream" => wasm::wasm_stream(data, None),
        "package_state" => package_state::package_state(data),
        "operator_state" => operator_state::operator_state(data),
        other => panic!("no fuzz target `{other}`"),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Replays every file of `root/<target>/` for every target; returns how
/// many there were.
fn replay_all(root: &Path) -> usize {
    let mut count = 0;
    for target in TARGETS {
        for path in files(&root.join(target)) {
            let data = fs::read(&path).expect("read corpus file");
            let run = std::panic::catch_unwind(|| check(target, &data));
            assert!(
                run.is_ok(),
                "fuzz target {target} panics on {} (hex {})",
                path.display(),
                hex::encode(&data)
            );
            count += 1;
        }
    }
    count
}

#[test]
fn every_seed_passes_its_target() {
    let count = replay_all(&repo().join("fuzz/seeds"));
    assert!(count >= TARGETS.len(), "only {count} seeds found");
    for target in TARGETS {
        assert!(
            !files(&repo().join("fuzz/seeds").join(target)).is_empty(),
            "no seeds for {target}"
        );
    }
}

#[test]
fn every_kept_fuzz_finding_passes_its_target() {
    replay_all(&repo().join("crates/interop/tests/fuzz-regressions"));
}
