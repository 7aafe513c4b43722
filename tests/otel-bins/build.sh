#!/usr/bin/env bash
# Builds the two Go programs the Collector/Jaeger tests run, once:
#   otelcol-traj  a small OpenTelemetry Collector (otelcol/: otlp receiver, batch + memory_limiter,
#                 otlp / otlphttp / debug / loadbalancing exporters), pinned in otelcol/go.mod
#   jaeger        Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger), pinned in jaeger/go.mod
# each into $TRAJ_OTEL_BINS_CACHE (default ~/.cache/traj/otel-bins)/<name>-<hash of the Go version
# and its module's files>/. A second run with the same inputs builds nothing. Go's module and
# build caches (their default places) are reused. Prints `export TRAJ_OTELCOL=...` and
# `export TRAJ_JAEGER=...` on stdout (for eval); build times go to stderr and build-times.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -buildvcs=false"
[ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "tests/otel-bins/build.sh: no 'go' on PATH: the Collector and Jaeger cannot be built" >&2
  exit 1
fi
cache="${TRAJ_OTEL_BINS_CACHE:-$HOME/.cache/traj/otel-bins}"
gover=$(go version)

build() { # name, module dir, package: into $cache/<name>-<hash of Go version + module files>/
  local name=$1 dir=$2 pkg=$3 hash out t0 t1
  hash=$( { echo "$gover"; cat "$here/$dir"/go.mod "$here/$dir"/go.sum; cat "$here/$dir"/*.go 2>/dev/null || true; } \
    | sha256sum | cut -c1-16)
  out="$cache/$name-$hash"
  bin="$out/$name"
  if [ -x "$bin" ]; then
    echo "otel-bins: $name up to date ($bin)" >&2
    return
  fi
  mkdir -p "$out"
  echo "otel-bins: building $name from tests/otel-bins/$dir ..." >&2
  t0=$(date +%s)
  (cd "$here/$dir" && go build -ldflags='-s -w' -o "$bin.tmp" "$pkg")
  t1=$(date +%s)
  mv "$bin.tmp" "$bin"
  echo "otel-bins: built $name in $((t1 - t0)) s" >&2
  echo "$name $((t1 - t0))s $(date -u +%FT%TZ) GOCACHE=$(go env GOCACHE)" >>"$out/build-times.txt"
}

build otelcol-traj otelcol .
echo "export TRAJ_OTELCOL=$bin"
build jaeger jaeger github.com/jaegertracing/jaeger/cmd/jaeger
echo "export TRAJ_JAEGER=$bin"
