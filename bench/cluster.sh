#!/usr/bin/env bash
# bench/cluster.sh [OUT_DIR] — the scale-out benchmark (docs/scale-out.md, docs/benchmarks.md):
# one redis-server and three waved instances (state.backend: redis, one shared blob
# directory) behind nginx as the load balancer, against one LMDB-backed waved, in one run,
# all on 127.0.0.1 and all pulling one busybox image from a local docker-registry.
#
# Scenarios, each through the cluster via nginx, through one cluster instance directly
# and through the single instance:
# (and, for reference, through the same nginx to the single instance):
#   hot   GET of one token's manifest by tag, already resolved and cached (median of
#         CL_ROUNDS rounds, the three targets in turn each round);
#   cold  the first manifest GET of CL_COLD_TOKENS new tokens, each once (the token
#         read, the hot record and the cache entry are all new to the instance).
#   build GET by tag of the manifest of a finished build's token, the image in the embedded
#         build registry (each such pull is answered on a worker: the token, the build's job
#         record, the registry's tag and manifest), through the single instance and directly
#         through a cluster instance that did not run the build (it has the job record only
#         from Redis or its local cache); needs buildah, skipped without it.
# Prints one table (req/s, p50, p99) and the ratios cluster instance / single instance
# (issue 17's target for the hot pull: within 20 %) and cluster via nginx / single via nginx. Skips (exit 0 with a line saying so) when
# redis-server or nginx is missing. Everything it starts is stopped at exit.
#
# Environment (defaults in brackets): CL_DURATION [5] measured seconds per run,
# CL_WARMUP [1], CL_CONNS [50] connections, CL_THREADS [2] load threads, CL_ROUNDS [3],
# CL_COLD_TOKENS [300] new tokens per target for the cold scenario, CL_SCENARIOS ["hot cold
# build"] the scenarios to run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:-out-release}" && pwd)
export WAVED_BIN=${WAVED_BIN:-$out/waved}
PL=${PULL_LOAD:-$out/bench/pull-load}
DUR=${CL_DURATION:-5} WARM=${CL_WARMUP:-1} CONNS=${CL_CONNS:-50} THREADS=${CL_THREADS:-2}
ROUNDS=${CL_ROUNDS:-3} COLD_N=${CL_COLD_TOKENS:-300}
SCENARIOS=" ${CL_SCENARIOS:-hot cold build} "
want() { [[ "$SCENARIOS" == *" $1 "* ]]; }
if want build && ! command -v buildah >/dev/null; then
  echo "== cluster: build scenario skipped: buildah is not installed"
  SCENARIOS=${SCENARIOS/ build / }
fi
PY=${PYTHON:-python3}
for cmd in redis-server redis-cli nginx; do
  if ! command -v "$cmd" >/dev/null; then
    echo "== cluster: skipped: $cmd is not installed (packaging/deps.sh test installs it)"
    exit 0
  fi
done

# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
T=$E2E_TMP
chmod 755 "$T" # nginx workers run as nobody
RESULTS="$T/results.tsv"
: >"$RESULTS"
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"

# ---- upstream, Redis ---------------------------------------------------------------------
start_registry bench anon >"$T/reg.port"
REG=127.0.0.1:$(cat "$T/reg.port")
make_busybox_layout "$T/bb"
push_layout "$T/bb" "$REG/library/busybox:latest"

RPORT=$(free_port)
start_redis # tests/e2e/lib.sh: the persistence a cluster runs with (AOF, fsync always)

# ---- the instances -----------------------------------------------------------------------
# start_instance NAME BACKEND — sets <NAME>_PORT and <NAME>_PID.
mkdir -p "$T/blobs" "$T/ws"
start_instance() {
  local dir="$T/$1" port state="" build=""
  port=$(free_port)
  mkdir -p "$dir/data"
  if [ "$2" = redis ]; then
    ln -s "$T/blobs" "$dir/data/blobs"
    state="state: {backend: redis, redis: {url: \"redis://127.0.0.1:$RPORT/0\", prefix: \"bench.\", instance-id: \"$1\"}}"
    want build && build=", build: {workspace: \"$T/ws\"}"
  else
    want build && build=", build: {workspace: \"$dir/ws\"}"
  fi
  cat >"$dir/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $dir/data}
log: {level: warn}
$state
wave: {registries: {"$REG": {insecure: true}}$build}
YML
  launch_waved "$1" "$dir" "$port"
}
start_instance SINGLE lmdb
start_instance A redis
start_instance B redis
start_instance C redis

NGX_PORT=$(free_port) NGX1_PORT=$(free_port)
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream cluster {
    server 127.0.0.1:$A_PORT; server 127.0.0.1:$B_PORT; server 127.0.0.1:$C_PORT;
    keepalive 256;
  }
  upstream single { server 127.0.0.1:$SINGLE_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGX1_PORT;
    location / {
      proxy_pass http://single;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
    }
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / {
      proxy_pass http://cluster;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
    }
  }
}
NGX
nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$NGX_PORT/health"

NGINX="http://127.0.0.1:$NGX_PORT" DIRECT="http://127.0.0.1:$A_PORT"
SINGLE="http://127.0.0.1:$SINGLE_PORT" SINGLE_NGINX="http://127.0.0.1:$NGX1_PORT"

# tokens BASE N [BODY] — N container requests through BASE (BODY: the JSON of each, default
# busybox); one mix line per token (its manifest by tag).
tokens() {
  local body=${3:-}
  [ -n "$body" ] || body="{\"containerImage\":\"$REG/library/busybox:latest\"}"
  $PY - "$1" "$2" "$body" "$ACCEPT" <<'PY'
import http.client, json, sys, urllib.parse
base, n, body, accept = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
u = urllib.parse.urlsplit(base)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
for _ in range(n):
    c.request("POST", "/v1alpha2/container", body, {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        sys.exit("POST /v1alpha2/container answered %d: %s" % (r.status, data[:200]))
    path = json.loads(data)["targetImage"].split("/", 1)[1]
    name, tag = path.rsplit(":", 1)
    print("1 GET 200 /v2/%s/manifests/%s Accept:%s" % (name, tag, accept))
PY
}

# Redis GET calls so far (INFO commandstats).
redis_gets() { redis-cli -p "$RPORT" INFO commandstats | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p'; }

# run SCENARIO TARGET URL PULL_LOAD_ARGS... — one pull-load run, its RESULT line kept, with the
# Redis GETs per request it cost (the cluster's runs).
run() {
  local sc=$1 tgt=$2 url=$3 g0
  shift 3
  echo "== $sc $tgt"
  g0=$(redis_gets)
  "$PL" -c "$CONNS" -t "$THREADS" -d "$DUR" -w "$WARM" -n "$sc/$tgt" "$@" "$url" | tee "$T/run.out"
  local reqs gets
  reqs=$(grep -o '^RESULT .* requests=[0-9]*' "$T/run.out" | sed 's/.*requests=//')
  gets=$(($(redis_gets) - ${g0:-0}))
  printf '%s\t%s\t%s redis_gets=%s\n' "$sc" "$tgt" "$(grep '^RESULT ' "$T/run.out")" "$gets" >>"$RESULTS"
  echo "  redis    $gets GETs during the run (warm-up included), $reqs requests measured"
}

# ---- hot: one token per target, resolved and cached before the runs ------------------------
if want hot; then
tokens "$NGINX" 1 >"$T/hot-cluster.mix"
tokens "$SINGLE" 1 >"$T/hot-single.mix"
# A few GETs through each way in, so every cluster instance has the entry in memory.
path=$(awk '{print $4}' "$T/hot-cluster.mix")
for base in "$NGINX" "$NGINX" "$NGINX" "$DIRECT" "http://127.0.0.1:$B_PORT" "http://127.0.0.1:$C_PORT"; do
  curl -fsS -o /dev/null -H "Accept: $ACCEPT" "$base$path"
done
curl -fsS -o /dev/null -H "Accept: $ACCEPT" "$SINGLE$(awk '{print $4}' "$T/hot-single.mix")"
for round in $(seq "$ROUNDS"); do
  echo "== hot: round $round of $ROUNDS"
  run hot single "$SINGLE" -p "$SINGLE_PID" -m "$T/hot-single.mix"
  run hot cluster-direct "$DIRECT" -p "$A_PID" -m "$T/hot-cluster.mix"
  run hot cluster-nginx "$NGINX" -m "$T/hot-cluster.mix"
  run hot single-nginx "$SINGLE_NGINX" -m "$T/hot-single.mix"
done
fi

# ---- cold: the first GET of many new tokens --------------------------------------------------
if want cold; then
t0=$(date +%s.%N)
tokens "$SINGLE" "$COLD_N" >"$T/cold-single.mix"
tokens "$DIRECT" "$COLD_N" >"$T/cold-direct.mix"
tokens "$NGINX" "$COLD_N" >"$T/cold-nginx.mix"
tokens "$SINGLE" "$COLD_N" >"$T/cold-single-nginx.mix"
echo "== cold: $((4 * COLD_N)) tokens made in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s"
run cold single "$SINGLE" -p "$SINGLE_PID" -1 -m "$T/cold-single.mix"
run cold cluster-direct "$DIRECT" -p "$A_PID" -1 -m "$T/cold-direct.mix"
run cold cluster-nginx "$NGINX" -1 -m "$T/cold-nginx.mix"
run cold single-nginx "$SINGLE_NGINX" -1 -m "$T/cold-single-nginx.mix"
fi

# ---- build: tag pulls of a finished build's token ---------------------------------------------
# build BASE NAME — requests a build through BASE, waits for it to succeed (5 min); writes
# NAME.mix (its tag manifest) and NAME.id.
build() {
  local cf
  cf=$(printf 'FROM %s/library/busybox:latest\nRUN echo %s > /bench\n' "$REG" "$2" | base64 -w0)
  curl -fsS -H 'Content-Type: application/json' -X POST --data-binary "{\"containerFile\":\"$cf\"}" \
    "$1/v1alpha2/container" >"$T/$2.json"
  json_get "$T/$2.json" 'd["buildId"]' >"$T/$2.id"
  json_get "$T/$2.json" 'd["targetImage"].split("/", 1)[1]' |
    awk -v a="$ACCEPT" '{n = $0; sub(/:[^:]*$/, "", n); t = $0; sub(/.*:/, "", t);
      print "1 GET 200 /v2/" n "/manifests/" t " Accept:" a}' >"$T/$2.mix"
  local id i
  id=$(cat "$T/$2.id")
  for i in $(seq 1 3000); do
    [ -z "${OWNER:-}" ] && [ "$2" = build-cluster ] && OWNER=$(redis-cli -p "$RPORT" GET "bench.joblease:$id")
    [ "$(curl -s "$1/v1alpha1/builds/$id" | json_get - 'str(d.get("succeeded"))' 2>/dev/null)" = True ] &&
      return 0
    sleep 0.1
  done
  echo "build $id did not succeed" >&2
  return 1
}
if want build; then
  OWNER=""
  build "$SINGLE" build-single
  build "$NGINX" build-cluster
  # The instance measured is one that did not run the build: the job record is not in its engine.
  for n in A B C; do [ "$n" != "$OWNER" ] && break; done
  OTHER_PORT=${n}_PORT OTHER_PID=${n}_PID
  OTHER="http://127.0.0.1:${!OTHER_PORT}"
  echo "== build: $(cat "$T/build-cluster.id") ran on ${OWNER:-?}; pulls through $n"
  path=$(awk '{print $4}' "$T/build-cluster.mix")
  for _ in 1 2 3; do curl -fsS -o /dev/null -H "Accept: $ACCEPT" "$OTHER$path"; done
  curl -fsS -o /dev/null -H "Accept: $ACCEPT" "$SINGLE$(awk '{print $4}' "$T/build-single.mix")"
  for round in $(seq "$ROUNDS"); do
    echo "== build: round $round of $ROUNDS"
    run build single "$SINGLE" -p "$SINGLE_PID" -m "$T/build-single.mix"
    run build cluster-direct "$OTHER" -p "${!OTHER_PID}" -m "$T/build-cluster.mix"
  done
  # The first tag pull of many new tokens of the same finished build (identical requests join
  # it): answered on a worker, each reads its token and the build's job record.
  body() { printf '{"containerFile":"%s"}' "$(printf 'FROM %s/library/busybox:latest\nRUN echo %s > /bench\n' "$REG" "$1" | base64 -w0)"; }
  tokens "$SINGLE" "$COLD_N" "$(body build-single)" >"$T/bcold-single.mix"
  tokens "$OTHER" "$COLD_N" "$(body build-cluster)" >"$T/bcold-cluster.mix"
  run build-cold single "$SINGLE" -p "$SINGLE_PID" -1 -m "$T/bcold-single.mix"
  run build-cold cluster-direct "$OTHER" -p "${!OTHER_PID}" -1 -m "$T/bcold-cluster.mix"
fi

# ---- report -------------------------------------------------------------------------------
echo
echo "== cluster summary: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ), ${DUR}s after ${WARM}s warm-up (hot: median of $ROUNDS rounds), $CONNS connections, $THREADS load threads"
$PY - "$RESULTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    sc, tgt, res = line.rstrip("\n").split("\t")
    kv = dict(p.split("=", 1) for p in res.split()[1:] if "=" in p)
    rows.setdefault((sc, tgt), []).append(kv)
print("%-10s %-15s %10s %9s %9s %7s %11s" % ("", "target", "req/s", "p50 ms", "p99 ms", "errors",
      "redis GETs"))
med = {}
for (sc, tgt), runs in rows.items():
    pick = sorted(runs, key=lambda r: float(r["rps"]))[len(runs) // 2]
    med[(sc, tgt)] = float(pick["rps"])
    print("%-10s %-15s %10.0f %9.2f %9.2f %7s %11s" % (sc, tgt, float(pick["rps"]),
          int(pick["p50_us"]) / 1000, int(pick["p99_us"]) / 1000, pick["errors"],
          pick.get("redis_gets", "")))
for sc in ("hot", "cold", "build", "build-cold"):
    for tgt, ref in (("cluster-direct", "single"), ("cluster-nginx", "single-nginx")):
        if (sc, ref) in med and (sc, tgt) in med:
            print("%s: %s / %s = %.2f" % (sc, tgt, ref, med[(sc, tgt)] / med[(sc, ref)]))
PY
