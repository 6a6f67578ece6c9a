#!/usr/bin/env bash
# bench/run.sh OUT_DIR — runs every benchmark against the build in OUT_DIR.
# pull-load takes its parameters from the environment (PL_DURATION,
# PL_CONNS, ...; see bench/pull-load.sh).
set -euo pipefail
out=${1:-out-release}
echo "== footprint ($(nproc) cores, $(date -u +%Y-%m-%d))"
"$out/bench/footprint" "$out/waved" 20
echo
echo "== pull-load ($(nproc) cores, $(date -u +%Y-%m-%d))"
"$(dirname "$0")/pull-load.sh" "$out"
echo
echo "== cluster ($(nproc) cores, $(date -u +%Y-%m-%d))"
"$(dirname "$0")/cluster.sh" "$out"
echo
echo "== builds ($(nproc) cores, $(date -u +%Y-%m-%d))"
"$(dirname "$0")/build-overhead.sh" "$out"
