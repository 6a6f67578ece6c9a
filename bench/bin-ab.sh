#!/usr/bin/env bash
# bench/bin-ab.sh OUT_DIR NAME=WAVED_BIN [NAME=WAVED_BIN...] — A/B of waved binaries on the
# container request (issue 15 point 2) and the open-loop hot manifest (point 3), interleaved
# so the machine's noise hits every binary alike.
#
# Starts docker-registry with the offline busybox image (tests/e2e/lib.sh), and every binary
# as its own waved (one IO loop, all of its threads on CPU 0; the load generator,
# OUT_DIR/bench/pull-load, on CPU 1: the setup of bench/pull-load.sh's PL_PIN=1). Each waved
# first resolves the image (one pass-through and one augmented token, their manifests
# pulled). Then, AB_ROUNDS times, every binary in turn (the order rotating each round) gets
# each of AB_RUNS:
#   creq@RATE  augmented container requests (env and a small data: layer), open loop at RATE/s
#   creq       the same, closed loop
#   open@RATE  GET of the pass-through token's manifest by tag (cached), open loop at RATE/s
# and one line per run is printed: req/s, p50/p99/p99.9, waved CPU per request, waved's
# context switches per request (voluntary + involuntary, all threads) and RssAnon/RssFile.
# Environment: AB_ROUNDS [3], AB_RUNS ["creq@1000 open@25000"], AB_DURATION [5],
# AB_CONNS [50], AB_THREADS [2], AB_CONFIG (more config lines for every waved), AB_CONFIG_<NAME>
# (more for NAME's only: one binary under two names compares two settings).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:?usage: bench/bin-ab.sh OUT_DIR NAME=BIN...}" && pwd)
shift
[ $# -gt 0 ] || { echo "usage: bench/bin-ab.sh OUT_DIR NAME=BIN..." >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench/bin-ab.sh needs 2 CPUs" >&2; exit 2; }
export WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
PL=$out/bench/pull-load
ROUNDS=${AB_ROUNDS:-3} RUNS=${AB_RUNS:-creq@1000 open@25000} DUR=${AB_DURATION:-5}
CONNS=${AB_CONNS:-50} THREADS=${AB_THREADS:-2}
# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
start_registry ab anon >"$E2E_TMP/reg.port"
REG=127.0.0.1:$(cat "$E2E_TMP/reg.port")
make_busybox_layout "$E2E_TMP/bb"
push_layout "$E2E_TMP/bb" "$REG/library/busybox:latest" >/dev/null
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"

# The augmented body of bench/pull-load.sh: env and a small data: layer.
mkdir -p "$E2E_TMP/dl/root/opt"
echo "bin-ab $(date -u +%F)" >"$E2E_TMP/dl/root/opt/bench.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$E2E_TMP/dl/root" -cf "$E2E_TMP/dl/l.tar" .
gzip -n -1 -c "$E2E_TMP/dl/l.tar" >"$E2E_TMP/dl/l.tgz"
printf '{"containerImage":"%s","containerConfig":{"env":["PULL_LOAD=1"],"layers":[{"location":"data:%s","gzipDigest":"sha256:%s","gzipSize":%s,"tarDigest":"sha256:%s"}]}}' \
  "$REG/library/busybox:latest" "$(base64 -w0 "$E2E_TMP/dl/l.tgz")" "$(sha256 "$E2E_TMP/dl/l.tgz")" \
  "$(stat -c %s "$E2E_TMP/dl/l.tgz")" "$(sha256 "$E2E_TMP/dl/l.tar")" >"$E2E_TMP/aug.json"
printf '{"containerImage":"%s"}' "$REG/library/busybox:latest" >"$E2E_TMP/pass.json"

names=() pids=() urls=()
for nb in "$@"; do
  name=${nb%%=*} WAVED_BIN=${nb#*=}
  export WAVED_BIN
  start_waved "server: {io-threads: 1, max-connections-per-ip: 1024}
wave.registries: {\"$REG\": {}}
${AB_CONFIG:-}
$(v=AB_CONFIG_$name && echo "${!v:-}")"
  taskset -a -p -c 0 "$WAVED_PID" >/dev/null
  for k in pass aug; do
    curl -sf -H 'Content-Type: application/json' -o "$E2E_TMP/resp.json" \
      --data-binary "@$E2E_TMP/$k.json" "$WAVED_URL/v1alpha2/container"
    img=$(json_get "$E2E_TMP/resp.json" 'd["targetImage"]')
    path=${img#*/}
    curl -sf -o /dev/null -H "Accept: $ACCEPT" "$WAVED_URL/v2/${path%:*}/manifests/${path##*:}"
    [ "$k" = aug ] || echo "1 GET 200 /v2/${path%:*}/manifests/${path##*:} Accept:$ACCEPT" >"$E2E_TMP/hot.$name"
  done
  names+=("$name") pids+=("$WAVED_PID") urls+=("$WAVED_URL")
done

# ctxsw PID — the context switches of all PID's threads so far.
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}'; }

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%H:%MZ), ${DUR}s runs, $CONNS connections; waved on CPU 0, pull-load on CPU 1"
printf '%-5s %-10s %-12s %9s %9s %9s %9s %9s %9s %10s %10s\n' round binary run req/s p50_us p99_us p999_us cpu_us/req csw/req anon_kB file_kB
n=${#names[@]}
for round in $(seq "$ROUNDS"); do
  for run in $RUNS; do
    for j in $(seq 0 $((n - 1))); do
      i=$(((j + round) % n))
      rate=${run#*@}
      [ "$rate" != "$run" ] || rate=0
      case "$run" in
        creq*) args=(-e "1 POST 200 /v1alpha2/container Content-Type:application/json @$E2E_TMP/aug.json") ;;
        open*) args=(-m "$E2E_TMP/hot.${names[$i]}") ;;
        *) echo "unknown run $run" >&2; exit 2 ;;
      esac
      c0=$(ctxsw "${pids[$i]}")
      taskset -c 1 "$PL" -c "$CONNS" -t "$THREADS" -d "$DUR" -w 1 -R "$rate" -n "$run" -p "${pids[$i]}" \
        "${args[@]}" "${urls[$i]}" >"$E2E_TMP/o"
      c1=$(ctxsw "${pids[$i]}")
      kv() { grep '^RESULT ' "$E2E_TMP/o" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
      printf '%-5s %-10s %-12s %9s %9s %9s %9s %9s %9s %10s %10s\n' "$round" "${names[$i]}" "$run" "$(kv rps)" \
        "$(kv p50_us)" "$(kv p99_us)" "$(kv p999_us)" "$(kv srv_cpu_us_per_req)" \
        "$(awk "BEGIN{printf \"%.2f\", ($c1 - $c0) / $(kv requests)}")" "$(kv rss_anon_peak_kb)" "$(kv rss_file_peak_kb)"
    done
  done
done
echo "# end load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%H:%MZ)"
