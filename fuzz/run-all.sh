#!/bin/sh
# Runs every fuzz target (or those named) for SECONDS each, one at a time,
# at low priority: ./run-all.sh SECONDS [target...]
# Seeds are copied into corpus/<target> first; each run's libFuzzer output
# goes to artifacts/<target>.log, crashes to artifacts/<target>/.
set -u
cd "$(dirname "$0")"
seconds=${1:?usage: run-all.sh SECONDS [target...]}
shift
targets=${*:-"package_record operator_record proofs oci_manifest api_json wasm_stream package_state operator_state"}
PATH="$HOME/.cache/cairn-ci/cargo-fuzz/bin:$PATH"
export RUSTC_BOOTSTRAP=1
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    cp seeds/"$target"/* "corpus/$target/"
    echo "== $target: ${seconds}s, started $(date -u +%H:%M:%S)"
    nice -n 15 cargo fuzz run "$target" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 >"artifacts/$target.log" 2>&1
    echo "   exit $?, ended $(date -u +%H:%M:%S)"
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|Done [0-9]+ runs|SUMMARY|panicked" "artifacts/$target.log"
done
