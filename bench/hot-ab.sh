#!/usr/bin/env bash
# bench/hot-ab.sh [OUT_DIR] 'YAML' ['YAML'...] — A/B of waved configurations on
# the hot manifest path, interleaved so machine noise hits every variant alike.
#
# Starts docker-registry with the offline busybox image (tests/e2e/lib.sh),
# then for each round and each YAML snippet (merged into waved's config, e.g.
# 'server: {io-threads: 1}'): starts OUT_DIR/waved, creates a pass-through
# token, warms the cache, runs OUT_DIR/bench/pull-load on the manifest by tag,
# prints one line (req/s, p99, the tail's quantiles) and stops waved.
# Environment: AB_ROUNDS [3], AB_CONNS [50], AB_THREADS [2], AB_DURATION [5].
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:?usage: bench/hot-ab.sh OUT_DIR YAML...}" && pwd)
shift
[ $# -gt 0 ] || { echo "usage: bench/hot-ab.sh OUT_DIR YAML..." >&2; exit 2; }
export WAVED_BIN=$out/waved WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
PL=$out/bench/pull-load
# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
start_registry ab anon >"$E2E_TMP/reg.port"
REG=127.0.0.1:$(cat "$E2E_TMP/reg.port")
make_busybox_layout "$E2E_TMP/bb"
push_layout "$E2E_TMP/bb" "$REG/library/busybox:latest" >/dev/null
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%H:%MZ)"
for round in $(seq "${AB_ROUNDS:-3}"); do
  for cfg in "$@"; do
    start_waved "$cfg
wave.registries: {\"$REG\": {}}"
    curl -sf -H 'Content-Type: application/json' -o "$E2E_TMP/resp.json" \
      -d "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$WAVED_URL/v1alpha2/container"
    img=$(json_get "$E2E_TMP/resp.json" 'd["targetImage"]')
    path=${img#*/} && repo=${path%:*} && tag=${path##*:}
    curl -sf -o /dev/null -H "Accept: $ACCEPT" "$WAVED_URL/v2/$repo/manifests/$tag"
    "$PL" -c "${AB_CONNS:-50}" -t "${AB_THREADS:-2}" -d "${AB_DURATION:-5}" -w 1 -n ab \
      -e "1 GET 200 /v2/$repo/manifests/$tag Accept:$ACCEPT" "$WAVED_URL" >"$E2E_TMP/o"
    printf '%s  %-28s %s %s |%s\n' "$round" "$cfg" "$(grep -o 'rps=[0-9]*' "$E2E_TMP/o")" \
      "$(grep -o 'p99_us=[0-9]*' "$E2E_TMP/o")" "$(sed -n 's/^  quantiles//p' "$E2E_TMP/o")"
    stop_waved
  done
done
echo "# end load $(cut -d' ' -f1-3 /proc/loadavg)"
