#!/bin/sh
# tests/fuzz/run.sh OUT [SECONDS] — runs every fuzz target of OUT (a
# -DWAVED_FUZZ=ON build) for SECONDS (default 10) on a copy of its committed
# seed corpus (tests/fuzz/corpus/<name>/), so the tree is not written to.
# Fails on the first crash, leak, sanitizer report or timeout; the input
# that failed is kept under $OUT/fuzz-artifacts/ and its path printed.
set -eu
out=${1:?usage: tests/fuzz/run.sh OUT [SECONDS]}
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
art="$out/fuzz-artifacts"
mkdir -p "$art"
fail=0
for t in $(sed -n 's/^set(WAVED_FUZZ_TARGETS \(.*\))$/\1/p' "$here/CMakeLists.txt"); do
  work="$out/fuzz-corpus/$t"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$here/corpus/$t"/* "$work"/ 2>/dev/null || true
  log="$out/fuzz-$t.log"
  if "$out/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$art/$t-" "$work" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz_$t: ok, ${runs:-?} runs in ${secs}s"
  else
    echo "fuzz_$t: FAILED (log: $log)"
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5 || true
    fail=1
  fi
done
exit $fail
