//! Runs inputs through a target's checks on the stable toolchain, without
//! libFuzzer: `cargo run --example replay -- <target> <file or dir>...`
//! (with no paths: every seed of every target). A panic is a finding.

use std::fs;
use std::path::{Path, PathBuf};

fn check(target: &str, data: &[u8]) {
    match target {
        "package_record" => cairn_fuzz::records::package_record(data),
        "operator_record" => cairn_fuzz::records::operator_record(data),
        "proofs" => cairn_fuzz::proofs::proofs(data),
        "oci_manifest" => cairn_fuzz::oci::manifest(data),
        "api_json" => cairn_fuzz::api_json::api_json(data),
        "wasm_stream" => cairn_fuzz::wasm::wasm_stream(data, Some(cairn_fuzz::wasmparser_accepts)),
        "package_state" => cairn_fuzz::package_state::package_state(data),
        "operator_state" => cairn_fuzz::operator_state::operator_state(data),
        other => panic!("no target `{other}`"),
    }
}

fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut all: Vec<_> = fs::read_dir(path)
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        all.sort();
        all
    } else {
        vec![path.to_owned()]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: Vec<(String, Vec<PathBuf>)> = match args.split_first() {
        Some((target, paths)) => vec![(
            target.clone(),
            paths.iter().flat_map(|p| files(Path::new(p))).collect(),
        )],
        None => files(Path::new("seeds"))
            .into_iter()
            .map(|dir| {
                let target = dir
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (target, files(&dir))
            })
            .collect(),
    };
    for (target, paths) in runs {
        for path in paths {
            let data = fs::read(&path).expect("read input");
            println!("{target} {}", path.display());
            check(&target, &data);
        }
    }
}
