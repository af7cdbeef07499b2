//! The checks behind Cairn's fuzz targets (`fuzz_targets/`), one function
//! per target taking the fuzzer's bytes. They live here, not in the
//! targets, so that `crates/interop/tests/fuzz_regressions.rs` can include
//! the same files and replay the seeds and every kept crash on the stable
//! toolchain. Each module uses only crates the workspace already has.

pub mod api_json;
pub mod fixtures;
pub mod input;
pub mod oci;
pub mod operator_state;
pub mod package_state;
pub mod proofs;
pub mod records;
pub mod wasm;

/// wasmparser's one-shot verdict on `bytes`, with the features the content
/// door enables (all of them).
pub fn wasmparser_accepts(bytes: &[u8]) -> bool {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(bytes)
        .is_ok()
}
