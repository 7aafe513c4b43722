#!/usr/bin/env bash
# Runs every test of traj: the Rust workspace tests, the Python tests (independent OTel SDK
# clients, Hugging Face `datasets` loading) and the dashboard's headless-browser test.
# Installs what those need on a fresh machine first (idempotent: a second run installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n==> %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian chromium (dashboard browser test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x tests/.venv/bin/pytest ]; then
  log "installing Python test dependencies into tests/.venv"
  python3 -m venv tests/.venv
  tests/.venv/bin/pip install -q -r tests/python/requirements.txt
fi
# TRL / transformers / torch for the training test: a separate cached venv (~5 GB, ~2.5 min the
# first time; a second run installs nothing).
log "TRL training venv"
tests/python/install-trl-venv.sh
if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules ]; then
  log "installing playwright-core (drives Debian's chromium; downloads no browser)"
  (cd tests/browser && npm ci --silent --no-audit --no-fund)
fi

# A real OpenTelemetry Collector and Jaeger v2, built from pinned Go modules (tests/otel-bins/;
# ~4 + ~5 min on 2 cores the first time, cached in ~/.cache/traj/otel-bins: a second run builds
# nothing). The live Collector/Jaeger tests fail (not skip) without them.
log "OpenTelemetry Collector and Jaeger (Go)"
otel_env=$(tests/otel-bins/build.sh)
eval "$otel_env"
export TRAJ_OTELCOL TRAJ_JAEGER TRAJ_REQUIRE_OTEL_BINS=1

# --- Rust ----------------------------------------------------------------------------------
log "building traj and the example agent"
cargo build --workspace --bins --examples
log "cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee target/cargo-test.log
rust_passed=$(grep -Eo 'test result: [a-z]+\. [0-9]+ passed' target/cargo-test.log | awk '{s+=$4} END {print s+0}' || true)
rust_failed=$(grep -Eo '[0-9]+ failed' target/cargo-test.log | awk '{s+=$1} END {print s+0}' || true)

# --- Python --------------------------------------------------------------------------------
log "pytest tests/python"
export TRAJ_BIN="$root/target/debug/traj" TRAJ_AGENT="$root/target/debug/examples/agent" TRAJ_REQUIRE_TRL=1
set +e
tests/.venv/bin/pytest -q tests/python 2>&1 | tee target/pytest.log
py_rc=${PIPESTATUS[0]}
set -e
py_passed=$(grep -Eo '[0-9]+ passed' target/pytest.log | tail -1 | awk '{print $1+0}' || true)
py_failed=$(grep -Eo '[0-9]+ (failed|error)' target/pytest.log | awk '{s+=$1} END {print s+0}' || true)
[ "$py_rc" -eq 0 ] || [ "$py_failed" -gt 0 ] || py_failed=1

# --- Browser -------------------------------------------------------------------------------
br_passed=0; br_failed=0
if [ -f tests/browser/package.json ]; then
  log "node --test tests/browser"
  set +e
  node --test tests/browser/ 2>&1 | tee target/browser.log
  br_rc=${PIPESTATUS[0]}
  set -e
  br_passed=$(grep -Eo '^# pass [0-9]+' target/browser.log | awk '{print $3+0}' || true)
  br_failed=$(grep -Eo '^# fail [0-9]+' target/browser.log | awk '{print $3+0}' || true)
  [ "$br_rc" -eq 0 ] || [ "${br_failed:-0}" -gt 0 ] || br_failed=1
fi

passed=$(( ${rust_passed:-0} + ${py_passed:-0} + ${br_passed:-0} ))
failed=$(( ${rust_failed:-0} + ${py_failed:-0} + ${br_failed:-0} ))
echo
echo "rust: ${rust_passed:-0} passed, ${rust_failed:-0} failed; python: ${py_passed:-0} passed, ${py_failed:-0} failed; browser: ${br_passed:-0} passed, ${br_failed:-0} failed"
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
