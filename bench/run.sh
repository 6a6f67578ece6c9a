#!/usr/bin/env bash
# bench/run.sh OUT_DIR — runs every benchmark against the build in OUT_DIR.
set -euo pipefail
out=${1:-out-release}
echo "== footprint ($(nproc) cores, $(date -u +%Y-%m-%d))"
"$out/bench/footprint" "$out/waved" 20
