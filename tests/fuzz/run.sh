#!/usr/bin/env bash
# Runs every cargo-fuzz target of traj for N seconds each (default 300), one after another, one
# job at a time, starting from the committed corpus in tests/fuzz/corpus/<target>/. New inputs go to
# a scratch corpus under tests/fuzz/target/run-corpus/ (not committed); crashes land in
# tests/fuzz/artifacts/<target>/. Usage (from anywhere): tests/fuzz/run.sh [seconds] [target...]
# Set SANITIZER=none to skip AddressSanitizer (faster to build, catches only panics/aborts).
set -euo pipefail
secs="${1:-300}"
shift || true
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(otlp_protobuf otlp_json assemble run_reader redact)
fi
sanitizer="${SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1 # the sanitizer flags need nightly features; the toolchain is stable
cargo fuzz build --fuzz-dir tests/fuzz --sanitizer "$sanitizer"
failed=()
for t in "${targets[@]}"; do
    scratch="tests/fuzz/target/run-corpus/$t"
    mkdir -p "$scratch"
    echo "== $t: ${secs}s"
    if ! cargo fuzz run "$t" --fuzz-dir tests/fuzz --sanitizer "$sanitizer" "$scratch" "tests/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -ne 0 ]; then
    echo "targets that found a crash: ${failed[*]} (see tests/fuzz/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${secs}s without a crash"
