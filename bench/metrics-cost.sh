#!/usr/bin/env bash
# bench/metrics-cost.sh OUT_DIR [YAML...] — what the hot-path counters cost
# (docs/benchmarks.md, "Metrics cost"). Interleaves waved with
# `metrics: {enabled: true}` and `metrics: {enabled: false}` (and any further
# configurations given, e.g. an access log) on the hot manifest path, round
# after round, as bench/hot-ab.sh does, and records two numbers per run:
#   - req/s of OUT_DIR/bench/pull-load (throughput: what the budget is about,
#     but swayed by whatever else runs on the machine), and
#   - waved's own CPU time per request (utime+stime from /proc/PID/stat over
#     the run divided by the requests), which other load hardly moves.
# Then prints each configuration's medians and its ratio to the first one.
# Environment: AB_ROUNDS [7], AB_CONNS [50], AB_THREADS [2], AB_DURATION [5].
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:?usage: bench/metrics-cost.sh OUT_DIR [YAML...]}" && pwd)
shift
cfgs=("metrics: {enabled: true}" "metrics: {enabled: false}" "$@")
export WAVED_BIN=$out/waved WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
PL=$out/bench/pull-load
# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
start_registry mc anon >"$E2E_TMP/reg.port"
REG=127.0.0.1:$(cat "$E2E_TMP/reg.port")
make_busybox_layout "$E2E_TMP/bb"
push_layout "$E2E_TMP/bb" "$REG/library/busybox:latest" >/dev/null
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%H:%MZ)"
for round in $(seq "${AB_ROUNDS:-7}"); do
  for cfg in "${cfgs[@]}"; do
    start_waved "$cfg
wave.registries: {\"$REG\": {}}"
    curl -sf -H 'Content-Type: application/json' -o "$E2E_TMP/resp.json" \
      -d "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$WAVED_URL/v1alpha2/container"
    img=$(json_get "$E2E_TMP/resp.json" 'd["targetImage"]')
    path=${img#*/} && repo=${path%:*} && tag=${path##*:}
    for i in 1 2 3; do curl -sf -o /dev/null -H "Accept: $ACCEPT" "$WAVED_URL/v2/$repo/manifests/$tag"; done
    t0=$(ticks "$WAVED_PID")
    "$PL" -c "${AB_CONNS:-50}" -t "${AB_THREADS:-2}" -d "${AB_DURATION:-5}" -w 0 -n mc \
      -e "1 GET 200 /v2/$repo/manifests/$tag Accept:$ACCEPT" "$WAVED_URL" >"$E2E_TMP/o"
    t1=$(ticks "$WAVED_PID")
    n=$(grep -o 'requests=[0-9]*' "$E2E_TMP/o" | cut -d= -f2)
    cpu=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.3f", d * 1e6 / hz / n}')
    printf 'ROW %s\t%s\t%s\t%s\t%s\n' "$round" "$cfg" "$(grep -o 'rps=[0-9]*' "$E2E_TMP/o" | cut -d= -f2)" \
      "$(grep -o 'p99_us=[0-9]*' "$E2E_TMP/o" | cut -d= -f2)" "$cpu"
    stop_waved
  done
done | tee "$E2E_TMP/rows" >&2
echo "# end load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$E2E_TMP/rows" <<'PY'
import statistics, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    if not line.startswith("ROW "):
        continue
    rnd, cfg, rps, p99, cpu = line.rstrip("\n")[4:].split("\t")
    if cfg not in rows:
        order.append(cfg)
    rows.setdefault(cfg, []).append((int(rps), int(p99), float(cpu)))
b_rps = statistics.median(r for r, _, _ in rows[order[0]])
b_cpu = statistics.median(c for _, _, c in rows[order[0]])
print("| configuration | runs | median req/s | min-max req/s | vs first | median waved CPU µs/request | vs first | median p99 |")
print("|---|---|---|---|---|---|---|---|")
for cfg in order:
    rps = [r for r, _, _ in rows[cfg]]
    cpu = [c for _, _, c in rows[cfg]]
    p99 = [p for _, p, _ in rows[cfg]]
    mr, mc = statistics.median(rps), statistics.median(cpu)
    print(f"| `{cfg}` | {len(rps)} | {mr:,.0f} | {min(rps):,}-{max(rps):,} | {100*mr/b_rps:.1f} % | "
          f"{mc:.2f} | {100*mc/b_cpu:.1f} % | {statistics.median(p99)/1000:.2f} ms |")
PY
