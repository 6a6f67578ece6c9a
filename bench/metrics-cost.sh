#!/usr/bin/env bash
# bench/metrics-cost.sh OUT_DIR [YAML...] — what the hot-path counters cost:
# bench/hot-ab.sh interleaves waved with metrics on and off (and any further
# configurations given, e.g. an access log) on the hot manifest path, round
# after round, then this prints each configuration's median req/s and p99 and
# its throughput relative to the first one. docs/benchmarks.md, "Metrics cost".
# Environment: as bench/hot-ab.sh (AB_ROUNDS defaults to 7 here).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: bench/metrics-cost.sh OUT_DIR [YAML...]}
shift
cfgs=("metrics: {enabled: true}" "metrics: {enabled: false}" "$@")
AB_ROUNDS=${AB_ROUNDS:-7} "$here/hot-ab.sh" "$out" "${cfgs[@]}" | tee /dev/stderr |
  python3 -c '
import re, statistics, sys
rows = {}
order = []
for line in sys.stdin:
    m = re.match(r"^\d+\s+(.*?)\s+rps=(\d+) p99_us=(\d+)", line)
    if not m:
        continue
    cfg = m.group(1)
    if cfg not in rows:
        order.append(cfg)
    rows.setdefault(cfg, []).append((int(m.group(2)), int(m.group(3))))
base = statistics.median(r for r, _ in rows[order[0]])
print("| configuration | rounds | median req/s | min-max req/s | median p99 | vs first |")
print("|---|---|---|---|---|---|")
for cfg in order:
    rps = [r for r, _ in rows[cfg]]
    p99 = [p for _, p in rows[cfg]]
    med = statistics.median(rps)
    print(f"| `{cfg}` | {len(rps)} | {med:,.0f} | {min(rps):,}-{max(rps):,} | "
          f"{statistics.median(p99)/1000:.2f} ms | {100*med/base:.1f} % |")
'
