#!/usr/bin/env bash
# bench/pull-load.sh [OUT_DIR] — pulls through waved against docker-registry
# and nginx, in one run, on 127.0.0.1.
#
# Starts docker-registry (a busybox image made offline and a 256 MiB
# single-layer image pushed into it), nginx (serving the same manifest bytes
# and the same 256 MiB file), and waved (OUT_DIR/waved). Creates container
# tokens through waved's API (pass-through, and augmented with a small data:
# layer), derives every request from real responses, runs
# OUT_DIR/bench/pull-load against each target with the same connections and
# duration, and prints one table plus the ratios waved/docker-registry and
# waved/nginx. Everything it starts is stopped at exit (tests/e2e/lib.sh).
#
# When waved has no /v2 proxy or container API yet, the waved rows measure
# GET /v2/ (the ping) instead and say so; the scenarios that need the proxy
# print "skipped" with the reason.
#
# Environment (defaults in brackets):
#   PL_DURATION [5]   measured seconds per run      PL_WARMUP [1]  warm-up seconds
#   PL_CONNS    [50]  connections per run           PL_THREADS [2] load threads
#   PL_COLD_TOKENS [200] tokens per kind for cold   PL_BLOB_MB [256] large layer size
#   PL_BLOB_CONNS [4] connections for large blobs   PL_STORE_MB [PL_BLOB_MB] data: layer
#                                                   served from waved's blob store
#   PL_ROUNDS   [3]   rounds of the hot scenario  PL_SCENARIOS ["hot open pull cold mixed creq large parked"]
#   PL_OPEN_RATES ["10000 25000 50000"] open-loop rates (req/s), plus 80 % and 50 % of nginx's maximum
#   PL_OPEN_ROUNDS [5] rounds of the open scenario  PL_OPEN_DURATION [10] seconds per open run
#   PL_OPEN_MAX_ROUNDS [3] closed-loop runs of nginx whose median rate is its maximum
#                  (a p99 of 3 s runs at ~25,000/s moved 1.3-2.5x between rounds on a quiet machine)
#   PL_CREQ_RATE [1000] the open-loop rate of the creq scenario's latency runs
#   PL_MIX_IMAGES [100] distinct images of the mixed cold scenario; PL_MIX_TOKENS [200] tokens per kind
#   PL_MIX_KINDS ["pass aug"] the kinds of the mixed scenario, in order ("aug pass": the augmented
#                  requests and first pulls meet images waved has not seen)
#   PL_PARK_PULLS [1000] pulls parked on one build  PL_PARK_SLEEP [20] its RUN sleep, s
#   PL_PARK_CONNECT_RATE [2000] their connections opened per second (in waves)
#   PL_PARK_ROUNDS [1] hot runs with the build running, before and while the pulls are parked
#   PL_PARK_SETTLE [3] seconds after the build request before those runs (buildah's setup)
#                  (PL_PARK_SLEEP must cover settle + 2 x rounds x (PL_DURATION + PL_WARMUP) + opening)
#   PL_RESULTS        also write the RESULT lines (tab-separated, labelled) here
#   PL_PERF, PL_PERF_DIR  perf record waved during the named runs (see run())
#   PL_PERF_CG [-g]   perf's call-graph option (e.g. "--call-graph dwarf" through libc)
#   PL_STRACE         strace -c -f waved during the named runs instead (syscall counts and
#                     times, fsyncs among them), into $PL_PERF_DIR/strace.SCENARIO-TARGET.txt
#   PL_PIN [0]        1: the load generator (pull-load, wrk) on CPU 1, every server under test
#                     (docker-registry, nginx with 1 worker, waved with 1 IO loop, and what they
#                     start) on CPU 0, so the generator does not take the servers' core; needs
#                     2 CPUs. Other processes on the machine are not moved.
#   PL_WAVED_CONFIG   more lines for the first waved's config.yml (dotted keys, e.g.
#                     "storage.commit-delay: 1ms"), to compare settings
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:-out-release}" && pwd)
export WAVED_BIN=${WAVED_BIN:-$out/waved}
PL=${PULL_LOAD:-$out/bench/pull-load}
DUR=${PL_DURATION:-5} WARM=${PL_WARMUP:-1} CONNS=${PL_CONNS:-50} THREADS=${PL_THREADS:-2}
COLD_N=${PL_COLD_TOKENS:-200} BLOB_MB=${PL_BLOB_MB:-256} BLOB_CONNS=${PL_BLOB_CONNS:-4}
STORE_MB=${PL_STORE_MB:-$BLOB_MB} ROUNDS=${PL_ROUNDS:-3}
PARK_N=${PL_PARK_PULLS:-1000} PARK_SLEEP=${PL_PARK_SLEEP:-20} PARK_RATE=${PL_PARK_CONNECT_RATE:-2000}
PARK_ROUNDS=${PL_PARK_ROUNDS:-1} PARK_SETTLE=${PL_PARK_SETTLE:-3}
SCENARIOS=${PL_SCENARIOS:-hot open pull cold mixed creq large parked}
OPEN_RATES=${PL_OPEN_RATES:-10000 25000 50000} OPEN_ROUNDS=${PL_OPEN_ROUNDS:-5}
OPEN_DUR=${PL_OPEN_DURATION:-10} OPEN_MAX_ROUNDS=${PL_OPEN_MAX_ROUNDS:-3} CREQ_RATE=${PL_CREQ_RATE:-1000}
MIX_IMAGES=${PL_MIX_IMAGES:-100} MIX_TOKENS=${PL_MIX_TOKENS:-200} MIX_KINDS=${PL_MIX_KINDS:-pass aug}
export WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
PIN=${PL_PIN:-0} GEN=() NGX_WORKERS=$(nproc) WV_IO=0
if [ "$PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] || { echo "PL_PIN=1 needs 2 CPUs, this machine has $(nproc)" >&2; exit 2; }
  GEN=(taskset -c 1) NGX_WORKERS=1 WV_IO=1
fi
# pin_server PID — with PL_PIN=1, every thread of PID on CPU 0 (threads and children it
# creates later inherit it).
pin_server() { [ "$PIN" != 1 ] || taskset -a -p -c 0 "$1" >/dev/null; }

# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
chmod 755 "$E2E_TMP" # nginx workers run as nobody
RESULTS="$E2E_TMP/results.tsv"
: >"$RESULTS"
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
skip() { printf '%s\t%s\tskipped: %s\n' "$1" "$2" "$3" >>"$RESULTS"; echo "== $1 $2: skipped: $3"; }

# run SCENARIO TARGET WHAT URL PULL_LOAD_ARGS... — one pull-load run; its
# RESULT line goes to the results file labelled with what was measured.
# With PL_PERF naming "SCENARIO/TARGET" (several: space-separated), waved is
# recorded with `perf record -g` during that run, into
# $PL_PERF_DIR/perf.SCENARIO-TARGET.data (default: the current directory).
run() {
  local sc=$1 tgt=$2 what=$3 url=$4 perf_pid=""; shift 4
  echo "== $sc $tgt: $what"
  case " ${PL_PERF:-} " in
    *" $sc/$tgt "*)
      # shellcheck disable=SC2086 # PL_PERF_CG is a list of perf options
      perf record -q ${PL_PERF_CG:--g} -p "$WAVED_PID" -o "${PL_PERF_DIR:-.}/perf.$sc-$tgt.data" 2>/dev/null &
      perf_pid=$!
      sleep 0.2 ;;
  esac
  case " ${PL_STRACE:-} " in
    *" $sc/$tgt "*)
      strace -c -f -w -p "$WAVED_PID" -o "${PL_PERF_DIR:-.}/strace.$sc-$tgt.txt" 2>/dev/null &
      perf_pid=$!
      sleep 0.5 ;;
  esac
  "${GEN[@]}" "$PL" -c "$CONNS" -t "$THREADS" -d "$DUR" -w "$WARM" -n "$sc/$tgt" "$@" "$url" | tee "$E2E_TMP/run.out"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" && wait "$perf_pid" || true
    echo "   perf data / strace -c: ${PL_PERF_DIR:-.}/{perf.$sc-$tgt.data,strace.$sc-$tgt.txt}"
  fi
  printf '%s\t%s\t%s\t%s\n' "$sc" "$tgt" "$what" "$(grep '^RESULT ' "$E2E_TMP/run.out")" >>"$RESULTS"
}

# ---- upstream: docker-registry with busybox and a large single-layer image ----

start_registry bench anon >"$E2E_TMP/reg.port"
pin_server "${E2E_PIDS[-1]}"
REG=127.0.0.1:$(cat "$E2E_TMP/reg.port")
make_busybox_layout "$E2E_TMP/bb"
push_layout "$E2E_TMP/bb" "$REG/library/busybox:latest"

# push_blob REPO FILE — monolithic upload (POST, then PUT with the digest).
push_blob() {
  local d loc; d=sha256:$(sha256 "$2")
  loc=$(curl -fsS -o /dev/null -D - -X POST "http://$REG/v2/$1/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$2" "$loc"
  echo "$d"
}

# The large layer is random bytes: registries never look inside a layer, and
# random data is what a compressed layer looks like to the network.
mkdir -p "$E2E_TMP/www" "$E2E_TMP/big"
if has large; then
  head -c "$((BLOB_MB * 1024 * 1024))" /dev/urandom >"$E2E_TMP/big/layer"
  BIG_LAYER=$(push_blob library/big "$E2E_TMP/big/layer")
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$BIG_LAYER" >"$E2E_TMP/big/config"
  big_config=$(push_blob library/big "$E2E_TMP/big/config")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$big_config" "$(stat -c %s "$E2E_TMP/big/config")" "$BIG_LAYER" \
    "$(stat -c %s "$E2E_TMP/big/layer")" >"$E2E_TMP/big/manifest"
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$E2E_TMP/big/manifest" "http://$REG/v2/library/big/manifests/latest"
  mv "$E2E_TMP/big/layer" "$E2E_TMP/www/big.layer" # nginx serves the same bytes
fi

# manifest_of BASE PATH REF DEST — GETs a manifest as a runtime would; writes
# the body to DEST and prints the status and the Docker-Content-Digest.
manifest_of() {
  local st
  st=$(curl -sS -o "$4" -D "$4.hdr" -w '%{http_code}' -H "Accept: $ACCEPT" "$1$2/manifests/$3")
  echo "$st $(tr -d '\r' <"$4.hdr" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
}

# pull_mix BASE PATH TAG DEST — the requests of one real pull, from the real
# answers: manifest by tag, HEAD by digest, config blob, every layer blob.
pull_mix() {
  local st dg; read -r st dg < <(manifest_of "$1" "$2" "$3" "$4.manifest")
  [ "$st" = 200 ] || { echo "manifest $1$2:$3 answered $st" >&2; return 1; }
  {
    echo "1 GET 200 $2/manifests/$3 Accept:$ACCEPT"
    echo "1 HEAD 200 $2/manifests/$dg Accept:$ACCEPT"
    json_get "$4.manifest" 'd["config"]["digest"]' | sed "s|^|1 GET 200 $2/blobs/|"
    json_get "$4.manifest" '"\n".join(l["digest"] for l in d["layers"])' | sed "s|^|1 GET 200 $2/blobs/|"
  } >"$4"
}

pull_mix "http://$REG" /v2/library/busybox latest "$E2E_TMP/reg.mix"
cp "$E2E_TMP/reg.mix.manifest" "$E2E_TMP/www/manifest.json" # the same bytes for nginx

# ---- nginx: the near-the-limit reference -----------------------------------------

NGX_PORT=$(free_port)
mkdir -p "$E2E_TMP/nginx/logs"
cat >"$E2E_TMP/nginx/nginx.conf" <<NGX
worker_processes $NGX_WORKERS;
daemon off;
pid $E2E_TMP/nginx/nginx.pid;
error_log $E2E_TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=64 inactive=300s; open_file_cache_valid 300s;
  keepalive_requests 100000000; keepalive_timeout 120s;
  types { application/vnd.oci.image.manifest.v1+json json; }
  default_type application/octet-stream;
  server { listen 127.0.0.1:$NGX_PORT; root $E2E_TMP/www; }
}
NGX
SRV=()
[ "$PIN" != 1 ] || SRV=(taskset -c 0) # its workers are processes: pinned from the start
"${SRV[@]}" nginx -c "$E2E_TMP/nginx/nginx.conf" -p "$E2E_TMP/nginx" &
E2E_PIDS+=($!)
NGX="http://127.0.0.1:$NGX_PORT"
wait_http "$NGX/manifest.json"
# With one worker (PL_PIN=1), its pid: the open-loop runs report nginx's CPU per request too,
# the same measure as waved's (pull-load -p), so the two servers' costs can be compared.
NGX_P=()
if [ "$NGX_WORKERS" = 1 ]; then
  NGX_WORKER=$(pgrep -P "$(cat "$E2E_TMP/nginx/nginx.pid")" | head -1 || true)
  [ -z "$NGX_WORKER" ] || NGX_P=(-p "$NGX_WORKER")
fi

# ---- waved ----------------------------------------------------------------------------

# The blob-store case puts a STORE_MB layer into waved's CAS the only way the
# API offers, a data: layer in the container request (base64, so ~4/3 of the
# size); the request body and data: caps are raised for this run only. All
# load comes from one address (loopback): its per-address caps are raised to all of it.
store_cap=$((STORE_MB * 3 / 2 + 16))
# The parked scenario holds PARK_N connections open at once: the open-files limit (soft and
# hard, so waved inherits it) and waved's connection and queue caps are raised to fit.
park_fds=$((2 * PARK_N + 2 * CONNS + 1024))
if has parked && [ "$(ulimit -n)" -lt "$park_fds" ]; then
  ulimit -n "$park_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  echo "== parked: open files limit raised to $(ulimit -n) (want $park_fds)"
fi
start_waved "$(printf 'server: {io-threads: %s, max-body-size: %sMiB, max-connections-per-ip: %s, max-connections: %s, worker-queue: %s}\nwave: {build: {max-data-layer-size: %s}}\nwave.registries: {"%s": {}}\n%s' \
  "$WV_IO" "$store_cap" "$((PARK_N + 2 * CONNS + 256))" "$((PARK_N + 2 * CONNS + 256))" "$((PARK_N + 4096))" "$((store_cap * 1024 * 1024))" "$REG" "${PL_WAVED_CONFIG:-}")"
pin_server "$WAVED_PID"
WV="$WAVED_URL"

# make_data_layer NAME BYTES — a tar.gz holding one file of BYTES random
# bytes (0: a short text file); writes it as a data: ContainerLayer (JSON) to
# $E2E_TMP/dl-NAME/layer.json and leaves the .tgz in $E2E_TMP/dl-NAME/l.tgz.
make_data_layer() {
  local d="$E2E_TMP/dl-$1"
  mkdir -p "$d/root/opt"
  if [ "$2" = 0 ]; then
    echo "pull-load $(date -u +%F)" >"$d/root/opt/bench.txt"
  else
    head -c "$2" /dev/urandom >"$d/root/opt/bench.bin"
  fi
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/root" -cf "$d/l.tar" .
  gzip -n -1 -c "$d/l.tar" >"$d/l.tgz"
  {
    printf '{"location":"data:'
    base64 -w0 "$d/l.tgz"
    printf '","gzipDigest":"sha256:%s","gzipSize":%s,"tarDigest":"sha256:%s"}' \
      "$(sha256 "$d/l.tgz")" "$(stat -c %s "$d/l.tgz")" "$(sha256 "$d/l.tar")"
  } >"$d/layer.json"
  rm -f "$d/l.tar"
}
make_data_layer small 0
LAYER_JSON=$(cat "$E2E_TMP/dl-small/layer.json")

# request_body KIND IMAGE — the POST /v1alpha2/container body; KIND is pass
# (pass-through), aug (augmented: env and a small data: layer) or store
# (augmented with the large data: layer in $E2E_TMP/dl-store/layer.json).
request_body() {
  case "$1" in
    pass) printf '{"containerImage":"%s"}' "$2" ;;
    aug) printf '{"containerImage":"%s","containerConfig":{"env":["PULL_LOAD=1"],"layers":[%s]}}' "$2" "$LAYER_JSON" ;;
    store)
      printf '{"containerImage":"%s","containerConfig":{"layers":[' "$2"
      cat "$E2E_TMP/dl-store/layer.json"
      printf ']}}' ;;
  esac
}

# make_tokens KIND IMAGE N — N container requests over one keep-alive
# connection; prints one "/v2/wt/<token>/<path> <tag>" per line.
make_tokens() {
  request_body "$1" "$2" >"$E2E_TMP/req.json"
  $PY - "$WAVED_PORT" "$E2E_TMP/req.json" "$3" <<'PY'
import http.client, json, sys
port, body, n = int(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
for _ in range(n):
    c.request("POST", "/v1alpha2/container", body, {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        sys.exit("POST /v1alpha2/container answered %d: %s" % (r.status, data[:200].decode(errors="replace")))
    img = json.loads(data)["targetImage"]
    path = img.split("/", 1)[1]              # drop <wave-authority>
    name, tag = path.rsplit(":", 1) if "@" not in path else path.split("@", 1)
    print("/v2/%s %s" % (name, tag))
PY
}

# The waved targets: real tokens when the container API and the /v2 proxy
# answer, otherwise the ping (PROXY=0 and WHY say which and why).
PROXY=1 WHY=""
if ! make_tokens pass "$REG/library/busybox:latest" 1 >"$E2E_TMP/tok.pass" 2>"$E2E_TMP/tok.err"; then
  PROXY=0 WHY="container API: $(head -c 200 "$E2E_TMP/tok.err")"
elif ! make_tokens aug "$REG/library/busybox:latest" 1 >"$E2E_TMP/tok.aug" 2>"$E2E_TMP/tok.err"; then
  PROXY=0 WHY="container API (augmented): $(head -c 200 "$E2E_TMP/tok.err")"
else
  for k in pass aug; do
    read -r p t <"$E2E_TMP/tok.$k"
    if ! pull_mix "$WV" "$p" "$t" "$E2E_TMP/wv-$k.mix" 2>"$E2E_TMP/tok.err"; then
      PROXY=0 WHY="/v2 proxy: $(cat "$E2E_TMP/tok.err")"
      break
    fi
  done
fi
if [ "$PROXY" = 0 ]; then
  echo "!! FALLBACK: no /v2 proxy on this build, the waved row measures GET /v2/ (the ping)"
  echo "!! reason: $WHY"
fi

# ---- scenarios ---------------------------------------------------------------------------

# Hot: manifest by tag, already resolved and cached by waved. nginx serves the
# same bytes as a static file; wrk on the same URL checks that pull-load is
# not the bottleneck. The targets run in turn, ROUNDS times, and the report
# takes each target's median round: on a shared 2-core machine one round's
# ratio can be off by a factor of two when something else wakes up.
wrk_round() {
  echo "== hot wrk: wrk -t$THREADS -c$CONNS -d${DUR}s on the same nginx file (generator check)"
  perf stat -x, -e task-clock -o "$E2E_TMP/wrk.cpu" \
    "${GEN[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency "$NGX/manifest.json" | tee "$E2E_TMP/wrk.out"
  local n ms
  n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$E2E_TMP/wrk.out")
  ms=$(grep task-clock "$E2E_TMP/wrk.cpu" | cut -d, -f1)
  printf 'hot\twrk-nginx\twrk on the same nginx file\tRESULT rps=%s cpu_us_per_req=%s\n' \
    "$(sed -n 's/^Requests\/sec: *//p' "$E2E_TMP/wrk.out")" \
    "$(awk "BEGIN{printf \"%.2f\", $ms * 1000 / $n}")" >>"$RESULTS"
}
if has hot; then
  head -1 "$E2E_TMP/reg.mix" >"$E2E_TMP/reg.hot"
  if [ "$PROXY" = 1 ]; then
    for k in pass aug; do head -1 "$E2E_TMP/wv-$k.mix" >"$E2E_TMP/wv-$k.hot"; done
  fi
  for round in $(seq "$ROUNDS"); do
    echo "== hot: round $round of $ROUNDS"
    run hot docker-registry "GET manifest by tag" "http://$REG" -m "$E2E_TMP/reg.hot"
    run hot nginx "GET same manifest bytes (static file)" "$NGX" -e "1 GET 200 /manifest.json"
    wrk_round
    if [ "$PROXY" = 1 ]; then
      for k in pass aug; do
        run hot "waved-$k" "GET manifest by tag (cached)" "$WV" -p "$WAVED_PID" -m "$E2E_TMP/wv-$k.hot"
      done
    else
      run hot waved-ping "FALLBACK: GET /v2/ ping, not a pull" "$WV" -p "$WAVED_PID" -e "1 GET 200 /v2/"
    fi
  done
fi

# Open loop: the hot manifest at constant rates, latency from the intended send time
# (bench/pull-load -R corrects for coordinated omission as wrk2 does). nginx's maximum is
# measured first (closed loop, same run) for the 80 % and 50 % rates; then, OPEN_ROUNDS times, every
# rate on nginx and on waved (pass-through, cached), in alternating order, short runs. The
# report takes the median of each quantile over the rounds.
if has open; then
  if [ "$PROXY" = 1 ]; then
    head -1 "$E2E_TMP/wv-pass.mix" >"$E2E_TMP/wv-open.hot"
    # nginx's closed-loop maximum moves between runs (33k–51k/s on this VM): the median of
    # OPEN_MAX_ROUNDS runs sets the 80 % and 50 % rates.
    maxes=()
    for _ in $(seq "$OPEN_MAX_ROUNDS"); do
      run open nginx-max "closed loop, nginx's maximum on the manifest bytes" "$NGX" \
        -d "$OPEN_DUR" -e "1 GET 200 /manifest.json"
      maxes+=("$(grep '^RESULT ' "$E2E_TMP/run.out" | sed -n 's/.* rps=\([0-9.]*\).*/\1/p')")
    done
    ngx_max=$(printf '%s\n' "${maxes[@]}" | sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
    echo "== open: nginx maximum ${maxes[*]} req/s, median ${ngx_max:-none}"
    rates="$OPEN_RATES $(awk "BEGIN{printf \"%d %d\", ${ngx_max:-0} * 0.8, ${ngx_max:-0} * 0.5}")"
    for round in $(seq "$OPEN_ROUNDS"); do
      for r in $rates; do
        [ "$r" -gt 0 ] || continue
        first=nginx
        [ $((round % 2)) = 0 ] && first=waved
        for tgt in $first $([ $first = nginx ] && echo waved || echo nginx); do
          if [ "$tgt" = nginx ]; then
            run open "nginx@$r" "open loop, $r req/s, same manifest bytes (static file)" "$NGX" \
              -d "$OPEN_DUR" -R "$r" "${NGX_P[@]}" -e "1 GET 200 /manifest.json"
          else
            run open "waved@$r" "open loop, $r req/s, manifest by tag (cached, pass-through)" "$WV" \
              -d "$OPEN_DUR" -R "$r" -p "$WAVED_PID" -m "$E2E_TMP/wv-open.hot"
          fi
        done
      done
    done
  else
    skip open waved "needs the /v2 proxy"
  fi
fi

# Pull: the whole pull replayed (manifest, HEAD by digest, config, layers).
if has pull; then
  run pull docker-registry "full pull (manifest, HEAD, config, layer)" "http://$REG" -m "$E2E_TMP/reg.mix"
  for k in pass aug; do
    if [ "$PROXY" = 1 ]; then
      run pull "waved-$k" "full pull (manifest, HEAD, config, layers)" "$WV" -p "$WAVED_PID" -m "$E2E_TMP/wv-$k.mix"
    else
      skip pull "waved-$k" "needs the /v2 proxy"
    fi
  done
fi

# Cold: first pulls of many new tokens, made in advance; each manifest is
# fetched once (-1), so waved resolves every one upstream. docker-registry
# gets the same number of manifest GETs.
if has cold; then
  for i in $(seq "$COLD_N"); do head -1 "$E2E_TMP/reg.mix"; done >"$E2E_TMP/reg.cold"
  run cold docker-registry "$COLD_N manifest GETs, each once" "http://$REG" -1 -m "$E2E_TMP/reg.cold"
  for k in pass aug; do
    if [ "$PROXY" = 1 ]; then
      t0=$(date +%s.%N)
      make_tokens "$k" "$REG/library/busybox:latest" "$COLD_N" >"$E2E_TMP/cold-$k.tok"
      echo "== cold: $COLD_N $k tokens created in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}") s"
      while read -r p t; do echo "1 GET 200 $p/manifests/$t Accept:$ACCEPT"; done \
        <"$E2E_TMP/cold-$k.tok" >"$E2E_TMP/cold-$k.mix"
      run cold "waved-$k" "first manifest GET of $COLD_N new tokens" "$WV" -p "$WAVED_PID" -1 -m "$E2E_TMP/cold-$k.mix"
    else
      skip cold "waved-$k" "needs the /v2 proxy"
    fi
  done
fi

# Mixed cold: MIX_IMAGES distinct images (each its own repository, its own config and so
# its own manifest digest; the busybox layer is mounted, not copied), MIX_TOKENS new tokens
# per kind spread over them in a shuffled order, each token's first manifest GET once. Every
# image costs waved one upstream resolution; docker-registry gets the same GETs of the same
# images' manifests, in the same order.
if has mixed; then
  if [ "$PROXY" = 1 ]; then
    $PY - "$REG" "$E2E_TMP/reg.mix.manifest" "$MIX_IMAGES" >"$E2E_TMP/mix.images" <<'PY'
import hashlib, http.client, json, sys
reg, man, n = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
c = http.client.HTTPConnection(reg, timeout=60)
def req(method, path, body=None, headers={}, ok=(200, 201, 202)):
    c.request(method, path, body, headers)
    r = c.getresponse(); data = r.read()
    if r.status not in ok:
        sys.exit("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return r, data
_, cfg = req("GET", "/v2/library/busybox/blobs/" + man["config"]["digest"])
cfg = json.loads(cfg)
for i in range(n):
    repo = "library/mix-%03d" % i
    for l in man["layers"]:  # cross-repository mount of the shared layer
        req("POST", "/v2/%s/blobs/uploads/?mount=%s&from=library/busybox" % (repo, l["digest"]))
    cfg.setdefault("config", {})["Env"] = ["PATH=/bin", "PULL_LOAD_IMAGE=%d" % i]
    b = json.dumps(cfg).encode(); d = "sha256:" + hashlib.sha256(b).hexdigest()
    r, _ = req("POST", "/v2/%s/blobs/uploads/" % repo)
    loc = r.getheader("Location"); loc = loc[loc.index("/v2/"):] if "://" in loc else loc
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, b, {"Content-Type": "application/octet-stream"})
    m = dict(man, config=dict(man["config"], digest=d, size=len(b)))
    req("PUT", "/v2/%s/manifests/latest" % repo, json.dumps(m).encode(), {"Content-Type": m["mediaType"]})
    print("%s/%s:latest" % (reg, repo))
PY
    # The same shuffled order of images for every target (2 tokens per image by default).
    $PY -c 'import random, sys; random.seed(15); l = [x.strip() for x in open(sys.argv[1])] * (int(sys.argv[2]) // len(open(sys.argv[1]).readlines())); random.shuffle(l); print("\n".join(l))' \
      "$E2E_TMP/mix.images" "$MIX_TOKENS" >"$E2E_TMP/mix.order"
    sed "s|^$REG/\(.*\):latest$|1 GET 200 /v2/\1/manifests/latest Accept:$ACCEPT|" "$E2E_TMP/mix.order" >"$E2E_TMP/reg.mixed"
    run mixed docker-registry "$(wc -l <"$E2E_TMP/mix.order") manifest GETs of $MIX_IMAGES images, each once" \
      "http://$REG" -1 -m "$E2E_TMP/reg.mixed"
    for k in $MIX_KINDS; do
      request_body "$k" "@@IMAGE@@" >"$E2E_TMP/mix-body.$k"
      t0=$(date +%s.%N)
      # One request at a time; the latency of each, split by whether it was the first of
      # its image in this kind's run (the first kind's first requests name images waved has
      # not seen) or a later one.
      $PY - "$WAVED_PORT" "$E2E_TMP/mix-body.$k" "$E2E_TMP/mix.order" >"$E2E_TMP/mixed-$k.tok" 2>"$E2E_TMP/mixed-$k.lat" <<'PY'
import http.client, json, sys, time
port, body, images = int(sys.argv[1]), open(sys.argv[2]).read(), open(sys.argv[3]).read().split()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
seen, lat = set(), {True: [], False: []}
for img in images:
    t = time.monotonic()
    c.request("POST", "/v1alpha2/container", body.replace("@@IMAGE@@", img), {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    lat[img not in seen].append(time.monotonic() - t); seen.add(img)
    if r.status != 200:
        sys.exit("POST /v1alpha2/container answered %d: %s" % (r.status, data[:200].decode(errors="replace")))
    path = json.loads(data)["targetImage"].split("/", 1)[1]
    name, tag = path.rsplit(":", 1)
    print("/v2/%s %s" % (name, tag))
def q(v, f): return "%.1f ms" % (1000 * sorted(v)[min(len(v) - 1, int(f * len(v)))]) if v else "-"
sys.stderr.write("first request of an image: p50 %s, p90 %s, max %s (%d); later: p50 %s, p90 %s, max %s (%d)\n" % (
    q(lat[True], .5), q(lat[True], .9), q(lat[True], 1), len(lat[True]), q(lat[False], .5), q(lat[False], .9), q(lat[False], 1), len(lat[False])))
PY
      echo "== mixed: $(wc -l <"$E2E_TMP/mixed-$k.tok") $k tokens over $MIX_IMAGES images created in $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t0}") s, one at a time; $(cat "$E2E_TMP/mixed-$k.lat")"
      while read -r p t; do echo "1 GET 200 $p/manifests/$t Accept:$ACCEPT"; done \
        <"$E2E_TMP/mixed-$k.tok" >"$E2E_TMP/mixed-$k.mix"
      run mixed "waved-$k" "first manifest GET of $(wc -l <"$E2E_TMP/mixed-$k.tok") new tokens of $MIX_IMAGES images" \
        "$WV" -p "$WAVED_PID" -1 -m "$E2E_TMP/mixed-$k.mix"
    done
  else
    skip mixed waved "needs the /v2 proxy"
  fi
fi

# Container requests for an image already seen (the tokens above resolved it): each POST
# creates a new token, as a pipeline's tasks do (issue 15 point 2). Closed loop, CONNS
# connections; the bodies are the pass-through and augmented ones above.
if has creq; then
  for k in pass aug; do
    if [ "$PROXY" = 1 ]; then
      request_body "$k" "$REG/library/busybox:latest" >"$E2E_TMP/creq-$k.json"
      run creq "waved-$k" "POST /v1alpha2/container, a new token each, image already seen" "$WV" \
        -p "$WAVED_PID" -e "1 POST 200 /v1alpha2/container Content-Type:application/json @$E2E_TMP/creq-$k.json"
      # The latency a pipeline sees at a steady CREQ_RATE (open loop, from the intended send time).
      # The closed-loop run just before left the disk its writeback (tens of MB of store pages,
      # written at 5-8x this rate): flushed first, so that this run measures the steady rate, not
      # the tail of the burst (its p99 moved 3.6-15 ms from run to run without it).
      sync
      sleep 1
      run creq "waved-$k@$CREQ_RATE" "the same POST, open loop at $CREQ_RATE req/s" "$WV" -R "$CREQ_RATE" \
        -p "$WAVED_PID" -e "1 POST 200 /v1alpha2/container Content-Type:application/json @$E2E_TMP/creq-$k.json"
    else
      skip creq "waved-$k" "needs the container API"
    fi
  done
fi

# Large blobs: one 256 MiB layer, in MB/s, against nginx serving the file.
if has large; then
  CONNS_SAVED=$CONNS CONNS=$BLOB_CONNS
  sync # the files were just written: no writeback during the runs
  run large nginx "GET ${BLOB_MB} MiB file (sendfile)" "$NGX" -T 60 -e "1 GET 200 /big.layer"
  run large docker-registry "GET ${BLOB_MB} MiB layer blob" "http://$REG" -T 60 \
    -e "1 GET 200 /v2/library/big/blobs/$BIG_LAYER"
  if [ "$PROXY" = 1 ]; then
    make_tokens pass "$REG/library/big:latest" 1 >"$E2E_TMP/tok.big"
    read -r p t <"$E2E_TMP/tok.big"
    # The first pull streams from docker-registry and tees into the blob
    # cache (one request); later pulls are sent from the cache.
    CONNS=1 run large waved-upstream-first "first GET of the ${BLOB_MB} MiB layer: streamed from docker-registry, teed into the blob cache" \
      "$WV" -T 60 -w 0 -1 -p "$WAVED_PID" -e "1 GET 200 $p/blobs/$BIG_LAYER"
    sync
    run large waved-upstream "GET the ${BLOB_MB} MiB upstream layer again (blob cache)" "$WV" \
      -T 60 -p "$WAVED_PID" -e "1 GET 200 $p/blobs/$BIG_LAYER"
    # The stream alone: a second waved with the blob cache off.
    if [ -z "${PL_NO_STREAM_ROW:-}" ]; then
      saved=("$WAVED_PID" "$WAVED_PORT" "$WAVED_URL" "$WAVED_DIR")
      start_waved "server: {io-threads: $WV_IO}
wave: {blob-cache: {enabled: false}}
wave.registries: {\"$REG\": {}}"
      pin_server "$WAVED_PID"
      make_tokens pass "$REG/library/big:latest" 1 >"$E2E_TMP/tok.big2"
      read -r p2 t2 <"$E2E_TMP/tok.big2"
      run large waved-stream "GET ${BLOB_MB} MiB layer streamed from docker-registry (blob cache off)" \
        "$WAVED_URL" -T 60 -p "$WAVED_PID" -e "1 GET 200 $p2/blobs/$BIG_LAYER"
      stop_waved
      WAVED_PID=${saved[0]} WAVED_PORT=${saved[1]} WAVED_URL=${saved[2]} WAVED_DIR=${saved[3]}
    fi
  else
    skip large waved-upstream "needs the /v2 proxy"
  fi
  # waved's blob store: a STORE_MB data: layer (a .tgz of random bytes) put
  # into the CAS by a container request (limits raised at start_waved);
  # nginx serves the same .tgz for the ratio.
  if [ "$PROXY" = 1 ]; then
    make_data_layer store "$((STORE_MB * 1024 * 1024))"
    cp "$E2E_TMP/dl-store/l.tgz" "$E2E_TMP/www/store.tgz"
    store_dg=sha256:$(sha256 "$E2E_TMP/www/store.tgz")
    make_tokens store "$REG/library/busybox:latest" 1 >"$E2E_TMP/tok.store"
    read -r p t <"$E2E_TMP/tok.store"
    manifest_of "$WV" "$p" "$t" "$E2E_TMP/store.manifest" >/dev/null
    rm -f "$E2E_TMP/dl-store/layer.json" "$E2E_TMP/req.json"
    sync
    run large nginx-store "GET the same ${STORE_MB} MiB .tgz (sendfile)" "$NGX" -T 60 -e "1 GET 200 /store.tgz"
    run large waved-store "GET ${STORE_MB} MiB data: layer from waved's blob store" "$WV" -T 60 \
      -p "$WAVED_PID" -e "1 GET 200 $p/blobs/$store_dg"
  else
    skip large waved-store "needs the /v2 proxy"
  fi
  CONNS=$CONNS_SAVED
fi

# Parked: PARK_N manifest GETs on the tag of one running build (FROM the
# bench's busybox, RUN sleep PL_PARK_SLEEP), each sent once on its own
# connection (-1) right after the build is requested; waved parks them until
# the build ends. While they are parked, the hot scenario (pass-through token,
# cached) runs for the same duration as the hot runs without a build made just
# before the build and just after it, in the same run. Then the parked pulls end with the build: each must
# be a 200 with the built manifest (status checked by pull-load; the body
# bytes must be PARK_N times the manifest's size), their latency is ~ the
# build time.
if has parked; then
  if [ "$PROXY" = 1 ]; then
    head -1 "$E2E_TMP/wv-pass.mix" >"$E2E_TMP/wv-pass.hot"
    run parked waved-hot-before "hot GET manifest by tag (cached), no build, before" "$WV" \
      -p "$WAVED_PID" -m "$E2E_TMP/wv-pass.hot"
    # A unique RUN line, so the build is never one waved already has.
    cf=$(printf 'FROM %s\nRUN sleep %s && echo pull-load-%s > /parked\n' \
      "$REG/library/busybox:latest" "$PARK_SLEEP" "$(date +%s%N)" | base64 -w0)
    st=$(curl -sS -o "$E2E_TMP/park.json" -w '%{http_code}' -H 'Content-Type: application/json' \
      -X POST --data-binary "{\"containerFile\":\"$cf\"}" "$WV/v1alpha2/container")
    if [ "$st" != 200 ]; then
      skip parked waved "build request answered $st: $(head -c 200 "$E2E_TMP/park.json")"
    else
      t_post=$(date +%s.%N)
      park_rid=$(json_get "$E2E_TMP/park.json" 'd["requestId"]')
      park_bid=$(json_get "$E2E_TMP/park.json" 'd["buildId"]')
      img=$(json_get "$E2E_TMP/park.json" 'd["targetImage"]')
      img=${img#*/}
      pp="/v2/${img%:*}" pt=${img##*:}
      for _ in $(seq "$PARK_N"); do echo "1 GET 200 $pp/manifests/$pt Accept:$ACCEPT"; done >"$E2E_TMP/park.mix"
      park_status() { curl -fsS "$WV/v1alpha2/container/$park_rid/status" | json_get - 'd["status"]' 2>/dev/null || echo '?'; }
      echo "== parked waved-parked: $PARK_N manifest GETs on the tag of build $park_bid (RUN sleep $PARK_SLEEP)"
      # waved's threads and memory before the pulls park (its first pull of this build is
      # what starts the parking machinery, so this is the baseline).
      proc_f() { sed -n "s/^$1:[[:space:]]*\([0-9]*\).*/\1/p" "/proc/$WAVED_PID/status"; }
      # The same hot runs with the build running but nothing parked yet (after buildah's
      # setup, PL_PARK_SETTLE s), so the parked rounds below are compared with the build's own
      # share of the cores in both.
      sleep "$PARK_SETTLE"
      for r in $(seq "$PARK_ROUNDS"); do
        run parked waved-hot-building "hot GET manifest by tag (cached), build running, nothing parked, round $r" \
          "$WV" -p "$WAVED_PID" -m "$E2E_TMP/wv-pass.hot"
      done
      rss0=$(proc_f VmRSS) thr0=$(proc_f Threads)
      "${GEN[@]}" "$PL" -c "$PARK_N" -t "$THREADS" -1 -C "$PARK_RATE" -d "$((PARK_SLEEP + 90))" -T "$((PARK_SLEEP + 90))" \
        -n parked/waved-parked -p "$WAVED_PID" -m "$E2E_TMP/park.mix" "$WV" >"$E2E_TMP/park.out" 2>&1 &
      park_pl=$!
      # Wait until the parked pulls' connections are all open (pull-load
      # sends on connect), or their number has not moved for 0.5 s (a pull
      # answered at once, e.g. 503 when waved's worker queue is full, closes
      # its connection: -1 has nothing more to send); 5 s at most.
      n=0 same=0
      for _ in $(seq $((PARK_N * 50 / PARK_RATE + 250))); do
        m=$(ss -Htn state established "( dport = :$WAVED_PORT )" | wc -l)
        [ "$m" -lt "$PARK_N" ] || { n=$m; break; }
        if [ "$m" = "$n" ]; then same=$((same + 1)); else same=0 n=$m; fi
        [ "$same" -lt 25 ] || break
        sleep 0.02
      done
      sleep 0.3
      rss1=$(proc_f VmRSS) thr1=$(proc_f Threads)
      echo "== parked: waved RSS ${rss0} kB -> ${rss1} kB, threads $thr0 -> $thr1"
      s0=$(park_status)
      echo "== parked: $n connections open to waved after $(awk "BEGIN{printf \"%.2f\", $(date +%s.%N) - $t_post}") s, build $s0"
      for r in $(seq "$PARK_ROUNDS"); do
        run parked waved-hot-parked "hot GET manifest by tag (cached), $PARK_N pulls parked, round $r" \
          "$WV" -p "$WAVED_PID" -m "$E2E_TMP/wv-pass.hot"
      done
      s1=$(park_status)
      [ "$s0 $s1" = "BUILDING BUILDING" ] ||
        echo "!! parked: the build was $s0 before and $s1 after the hot run; raise PL_PARK_SLEEP"
      wait "$park_pl" || true
      t_end=$(date +%s.%N)
      cat "$E2E_TMP/park.out"
      run parked waved-hot-after "hot GET manifest by tag (cached), no build, after" "$WV" \
        -p "$WAVED_PID" -m "$E2E_TMP/wv-pass.hot"
      # The built manifest, as one more pull sees it: its size checks the
      # parked pulls' bodies.
      read -r mst _ < <(manifest_of "$WV" "$pp" "$pt" "$E2E_TMP/park.manifest")
      msize=$(stat -c %s "$E2E_TMP/park.manifest")
      curl -fsS "$WV/v1alpha2/container/$park_rid/status" >"$E2E_TMP/park.status" || true
      bdur=$(json_get "$E2E_TMP/park.status" 'd.get("duration") or "?"' 2>/dev/null || echo '?')
      bok=$(json_get "$E2E_TMP/park.status" 'd.get("succeeded")' 2>/dev/null || echo '?')
      printf '%s\t%s\t%s\t%s parked_n=%s open_n=%s hot_while_building=%s manifest_status=%s manifest_size=%s build_s=%s build_ok=%s wall_s=%s rss0_kb=%s rss1_kb=%s threads0=%s threads1=%s\n' \
        parked waved-parked "$PARK_N manifest GETs parked on one build (RUN sleep $PARK_SLEEP), connections opened $PARK_RATE/s" \
        "$(grep '^RESULT ' "$E2E_TMP/park.out")" "$PARK_N" "$n" "$([ "$s0 $s1" = "BUILDING BUILDING" ] && echo 1 || echo 0)" \
        "$mst" "$msize" "$bdur" "$bok" "$(awk "BEGIN{printf \"%.2f\", $t_end - $t_post}")" \
        "$rss0" "$rss1" "$thr0" "$thr1" >>"$RESULTS"
    fi
  else
    skip parked waved "needs the /v2 proxy"
  fi
fi

# ---- report ------------------------------------------------------------------------------------

echo
echo "== pull-load summary: $(nproc) cores$([ "$PIN" != 1 ] || echo ' (PL_PIN=1: generator on CPU 1, servers on CPU 0)'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), waved $(curl -fsS "$WV/service-info" | json_get - 'd["serviceInfo"]["commitId"]' 2>/dev/null || echo '?'), ${DUR}s after ${WARM}s warm-up (hot: median of $ROUNDS rounds), $CONNS connections ($BLOB_CONNS for large), $THREADS load threads"
[ "$PROXY" = 1 ] || echo "FALLBACK: waved has no /v2 proxy yet ($WHY); its row measured the ping"
$PY "$here/pull-load-report.py" "$RESULTS" "$PROXY"
[ -z "${PL_RESULTS:-}" ] || cp "$RESULTS" "$PL_RESULTS"
