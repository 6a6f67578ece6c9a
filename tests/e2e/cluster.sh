#!/usr/bin/env bash
# tests/e2e/cluster.sh — three waved instances behind nginx (round robin), sharing one
# redis-server (appendonly yes, appendfsync always), one blob directory and one build
# workspace, all on loopback (docs/scale-out.md "Job queue"). Checks: a request made on A is
# pulled through B, C and nginx; an identical build requested on A and C at once runs once; a
# pull parked on an instance is answered when the build ends on another; the build of an
# instance killed with kill -9 mid-RUN is run again by another within the lease bound and a
# pull parked before the kill gets its image (state.redis.job-rerun); a Redis killed with
# kill -9 and restarted loses nothing acknowledged (tokens, job records) and its queue goes on.
# Builds wait on a gate the test controls: their RUN polls a file served by a local HTTP server.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
for cmd in redis-server redis-cli nginx buildah skopeo; do
  if ! command -v "$cmd" >/dev/null && ! [ -x "/usr/sbin/$cmd" ]; then
    echo "SKIP: $cmd not installed (packaging/deps.sh test installs it)"
    exit 77
  fi
done
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
# state.redis.job-lease of the instances, and the Redis command timeout, scaled by the sanitizer
# slowdown (docs/testing.md): under TSan at load 25 an instance's renewal round took longer than
# 3 s, the build lost its lease and failed, and the test's checks of it with it.
LEASE_S=$(slow 3)
REDIS_TIMEOUT_S=$(slow 1)

# ---- Redis ----------------------------------------------------------------------------
RPORT=$(free_port)
start_redis

# ---- a registry (busybox, and wave.build.repo) and the gate ------------------------------
REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
BB="$REG/library/busybox:latest"
GATE_PORT=$(free_port)
mkdir -p "$T/gate"
(cd "$T/gate" && exec $PY -m http.server "$GATE_PORT" --bind 127.0.0.1) >"$T/gate.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$GATE_PORT/" >/dev/null
# gated_file TAG — a Dockerfile whose RUN says it started (GET /start-TAG, logged by the gate
# server), then waits until the test creates gate/go-TAG.
gated_file() {
  printf 'FROM %s\nRUN wget -q -O /dev/null http://127.0.0.1:%s/start-%s; until wget -q -O /dev/null http://127.0.0.1:%s/go-%s; do sleep 0.2; done; echo %s > /tag\n' \
    "$BB" "$GATE_PORT" "$1" "$GATE_PORT" "$1" "$1" | base64 -w0
}
starts() { grep -c "GET /start-$1 " "$T/gate.log" || true; }
open_gate() { touch "$T/gate/go-$1"; }
wait_start() { # TAG — until its RUN has started (60 s)
  poll_until 60 started "$1" 1
}
started() { [ "$(starts "$1")" -ge "$2" ]; } # TAG N — its RUN has started N times
built() { [ "$(build_state "$NGX" "$1")" = True ]; } # BUILD_ID — it succeeded

# ---- three instances and nginx ----------------------------------------------------------
NGX_PORT=$(free_port)
NGX="http://127.0.0.1:$NGX_PORT"
mkdir -p "$T/blobs" "$T/ws"
declare -A URL PID PORT
start_instance() { # NAME
  local dir="$T/$1" port=${PORT[$1]:-$(free_port)}
  PORT[$1]=$port
  mkdir -p "$dir/data"
  [ -e "$dir/data/blobs" ] || ln -s "$T/blobs" "$dir/data/blobs" # shared (NFS in production)
  cat >"$dir/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $dir/data, blob-gc: {enabled: false}}
log: {level: info}
state:
  backend: redis
  redis: {url: "redis://127.0.0.1:$RPORT/0", prefix: "cl.", timeout: ${REDIS_TIMEOUT_S}s, instance-id: "$1",
          job-lease: ${LEASE_S}s, job-poll: 1s}
wave:
  server: {url: "$NGX"}
  registries: {"$REG": {insecure: true}}
  build: {repo: "$REG/wave/build", workspace: "$T/ws", max-concurrent: 2}
${EXTRA_YML:-}
YML
  "$WAVED_BIN" --config "$dir/config.yml" >>"$dir/waved.log" 2>&1 &
  PID[$1]=$!
  E2E_PIDS+=("${PID[$1]}")
  URL[$1]="http://127.0.0.1:$port"
  wait_http "${URL[$1]}/health" || { cat "$dir/waved.log" >&2; return 1; }
}
for n in A B C; do start_instance $n; done
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log $T/nginx/logs/access.log;
  client_body_temp_path $T/nginx/body;
  proxy_temp_path $T/nginx/proxy;
  fastcgi_temp_path $T/nginx/fastcgi;
  uwsgi_temp_path $T/nginx/uwsgi;
  scgi_temp_path $T/nginx/scgi;
  upstream waved { server ${URL[A]#http://}; server ${URL[B]#http://}; server ${URL[C]#http://}; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    client_max_body_size 64m;
    location / {
      proxy_pass http://waved;
      proxy_http_version 1.1;
      proxy_set_header Host \$http_host;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
NGX
"$NGINX_BIN" -p "$T/nginx" -c "$T/nginx/nginx.conf" -g 'daemon off;' 2>"$T/nginx/stderr" &
E2E_PIDS+=($!)
wait_http "$NGX/health" || { cat "$T/nginx/stderr" >&2; exit 1; }
ok "three instances share the job queue" \
  grep -q "shared queue in redis as 'C'" "$T/C/waved.log"

field() { json_get "$1" "$2" 2>/dev/null || true; }
post() { # URL BODY OUT — POST /v1alpha2/container; prints the status
  curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$2" "$1/v1alpha2/container"
}
# The wt/ path of a response's targetImage (its host is nginx's).
wt_path() { field "$1" 'd["targetImage"]' | sed "s#^127.0.0.1:$NGX_PORT/##"; }
manifest() { # BASE_URL WT_PATH [OUT] — the status of GET manifest
  local p=$2
  curl -s -o "${3:-/dev/null}" -w '%{http_code}' --max-time 120 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "$1/v2/${p%:*}/manifests/${p##*:}"
}
build_state() { # BASE_URL ID — "succeeded" of /v1alpha1/builds/ID
  curl -s "$1/v1alpha1/builds/$2" | json_get - 'str(d.get("succeeded"))' 2>/dev/null || true
}

# ---- 1. a request on A pulled through B, C and nginx --------------------------------------
log "1. request on A, pulls through B, C and nginx"
ok "request on A: 200" test "$(post "${URL[A]}" "{\"containerImage\":\"$BB\"}" "$T/r1.json")" = 200
P1=$(wt_path "$T/r1.json")
ok "pull through B: 200" is "$(manifest "${URL[B]}" "$P1")" 200
ok "pull through C: 200" is "$(manifest "${URL[C]}" "$P1")" 200
skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$NGX_PORT/$P1" "dir:$T/p1" 2>"$T/p1.err"
ok "skopeo copy through nginx" test -s "$T/p1/manifest.json"

mkdir -p "$T/B2/data"
sed -e "s#port: ${PORT[B]}#port: $(free_port)#" -e "s#$T/B/data#$T/B2/data#" "$T/B/config.yml" >"$T/B2/config.yml"
# It waits up to the lease for B's claim to lapse before it says so: 30 s covers the plain 3 s
# lease; both scale with the sanitizer slowdown.
timeout "$(slow 30)" "$WAVED_BIN" --config "$T/B2/config.yml" >"$T/B2/waved.log" 2>&1 || true
ok "a second process with B's instance id is refused" \
  grep -q "instance-id 'B' is in use by another running waved" "$T/B2/waved.log"

# ---- 2. one build for an identical request on A and C at once; a pull parked elsewhere ----------
log "2. identical builds on A and C at once"
CF2=$(gated_file two)
post "${URL[A]}" "{\"containerFile\":\"$CF2\"}" "$T/r2a.json" >"$T/r2a.code" &
RA=$!
post "${URL[C]}" "{\"containerFile\":\"$CF2\"}" "$T/r2c.json" >"$T/r2c.code" &
RC=$!
wait $RA $RC
ok "both requests: 200" is "$(cat "$T/r2a.code")$(cat "$T/r2c.code")" 200200
ID2=$(field "$T/r2a.json" 'd["buildId"]')
ok "one build id for both" is "$(field "$T/r2c.json" 'd["buildId"]')" "$ID2"
ok "its RUN starts" wait_start two
OWNER=$(rcli GET "cl.joblease:$ID2")
ok "one instance holds its lease" bash -c "[[ '$OWNER' =~ ^[ABC]$ ]]"
# Park a pull on an instance that does not run the build.
for n in A B C; do [ "$n" != "$OWNER" ] && PARK=$n && break; done
log "build $ID2 runs on $OWNER; a pull parks on $PARK"
P2=$(wt_path "$T/r2a.json")
manifest "${URL[$PARK]}" "$P2" "$T/p2.json" >"$T/p2.code" &
PP=$!
sleep 1.5
ok "the pull on $PARK is parked" kill -0 $PP
GATE_AT=$(date +%s%N)
open_gate two
wait $PP || true
PARK_MS=$((($(date +%s%N) - GATE_AT) / 1000000))
ok "the parked pull on $PARK is answered with the built image" is "$(cat "$T/p2.code")" 200
log "parked pull answered ${PARK_MS} ms after the gate opened (build end included)"
ok "the build ran once (one RUN start)" is "$(starts two)" 1
ok "one instance ran the job" \
  is "$(cat "$T"/{A,B,C}/waved.log | grep -c "jobs: $ID2 (build) SUCCEEDED")" 1
ok "the build succeeded, seen from every instance" \
  is "$(build_state "${URL[A]}" "$ID2")$(build_state "${URL[B]}" "$ID2")$(build_state "${URL[C]}" "$ID2")" \
  TrueTrueTrue
curl -s "${URL[$PARK]}/v1alpha1/builds/$ID2/logs" >"$T/l2.txt"
ok "its log is read through another instance" grep -q "$ID2 SUCCEEDED" "$T/l2.txt"

# More identical pairs at once, on A and C: each pair is one build, run once.
SAME=0
for k in 1 2 3 4 5; do
  CFK=$(printf 'FROM %s\nRUN echo pair-%s > /pair\n' "$BB" "$k" | base64 -w0)
  post "${URL[A]}" "{\"containerFile\":\"$CFK\"}" "$T/pa$k.json" >/dev/null &
  RA=$!
  post "${URL[C]}" "{\"containerFile\":\"$CFK\"}" "$T/pc$k.json" >/dev/null &
  RC=$!
  wait $RA $RC || true
  [ "$(field "$T/pa$k.json" 'd["buildId"]')" = "$(field "$T/pc$k.json" 'd["buildId"]')" ] &&
    SAME=$((SAME + 1))
done
ok "five more identical pairs: one build id each" is "$SAME" 5
for k in 1 2 3 4 5; do
  IDK=$(field "$T/pa$k.json" 'd["buildId"]')
  poll_until 30 built "$IDK" || true
  echo "$IDK $(cat "$T"/{A,B,C}/waved.log | grep -c "jobs: $IDK (build) SUCCEEDED")"
done >"$T/pairs.txt"
ok "each ran once" is "$(awk '$2 != 1' "$T/pairs.txt" | wc -l)" 0
log "$(cat "$T"/{A,B,C}/waved.log | grep -c 'joined (created by another instance)') of the pairs met in the build record (PUT_NX)"

# ---- 3. kill -9 of the instance running a build -------------------------------------------------
log "3. kill -9 during a build"
CF3=$(gated_file three)
ok "request through nginx: 200" test "$(post "$NGX" "{\"containerFile\":\"$CF3\"}" "$T/r3.json")" = 200
ID3=$(field "$T/r3.json" 'd["buildId"]')
ok "its RUN starts" wait_start three
VICTIM=$(rcli GET "cl.joblease:$ID3")
ok "an instance holds its lease" bash -c "[[ '$VICTIM' =~ ^[ABC]$ ]]"
for n in A B C; do [ "$n" != "$VICTIM" ] && PARK=$n && break; done
P3=$(wt_path "$T/r3.json")
manifest "${URL[$PARK]}" "$P3" >"$T/p3.code" &
PP=$!
sleep 0.5
KILL_AT=$(date +%s%N)
kill -9 "${PID[$VICTIM]}"
wait "${PID[$VICTIM]}" 2>/dev/null || true
poll_until 30 started three 2 || true
RECLAIM_MS=$((($(date +%s%N) - KILL_AT) / 1000000))
NEWOWNER=$(rcli GET "cl.joblease:$ID3")
log "build $ID3 of $VICTIM runs again on $NEWOWNER ${RECLAIM_MS} ms after kill -9"
ok "another instance runs the build again" bash -c "[[ '$NEWOWNER' =~ ^[ABC]$ && '$NEWOWNER' != '$VICTIM' ]]"
# Bound: the lease, a reclaim round (lease/2), the build's start up to its RUN, this loop.
ok "within the lease bound (< $((LEASE_S * 2 + 4)) s)" test "$RECLAIM_MS" -lt $(((LEASE_S * 2 + 4) * 1000))
ok "it says so" grep -q "$ID3 (build) was interrupted by the loss of its instance; queued again" \
  "$T/$NEWOWNER/waved.log"
open_gate three
wait $PP || true
ok "the pull parked on $PARK before the kill gets the image" is "$(cat "$T/p3.code")" 200
ok "the build succeeded under its first id" is "$(build_state "$NGX" "$ID3")" True
ok "its message is acknowledged" is "$(rcli XPENDING cl.jobq:build waved | head -1)" 0
ok "no lease is left" is "$(rcli EXISTS "cl.joblease:$ID3")" 0
start_instance "$VICTIM" # the same instance id: it recovers what it still had pending
ok "the restarted instance serves" is "$(manifest "${URL[$VICTIM]}" "$P1")" 200

# ---- 4. Redis killed with kill -9 and restarted ---------------------------------------------
log "4. Redis restart"
CF4=$(gated_file four)
ok "request: 200" test "$(post "$NGX" "{\"containerFile\":\"$CF4\"}" "$T/r4.json")" = 200
ID4=$(field "$T/r4.json" 'd["buildId"]')
ok "its RUN starts" wait_start four
ok "its message is pending in the queue" is "$(rcli XPENDING cl.jobq:build waved | head -1)" 1
TOKENS_BEFORE=$(rcli --scan --pattern 'cl.tokens:*' | wc -l)
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
start_redis
ok "every token survives" is "$(rcli --scan --pattern 'cl.tokens:*' | wc -l)" "$TOKENS_BEFORE"
ok "the job record survives" has "$(rcli GET "cl.jobs:$ID4")" '"state":"RUNNING"'
ok "the finished build's record survives" has "$(rcli GET "cl.jobs:$ID2")" '"state":"SUCCEEDED"'
ok "the queue survives: its message still pending" is "$(rcli XPENDING cl.jobq:build waved | head -1)" 1
ok "a token made before pulls through nginx" is "$(manifest "$NGX" "$P1")" 200
open_gate four
poll_until 60 built "$ID4" || true
ok "the build running across the restart succeeds" is "$(build_state "$NGX" "$ID4")" True
ok "and is acknowledged" is "$(rcli XPENDING cl.jobq:build waved | head -1)" 0
CF5=$(printf 'FROM %s\nRUN echo five > /five\n' "$BB" | base64 -w0)
ok "a new build after the restart: 200" test "$(post "$NGX" "{\"containerFile\":\"$CF5\"}" "$T/r5.json")" = 200
ok "is pulled through nginx" is "$(manifest "$NGX" "$(wt_path "$T/r5.json")")" 200

for n in A B C; do kill -TERM "${PID[$n]}" 2>/dev/null; done
for n in A B C; do wait "${PID[$n]}" 2>/dev/null || true; done
ok "no instance logged an error about the queue" \
  bash -c "! grep -h 'jobs: redis:\|not saved: another instance' $T/A/waved.log $T/B/waved.log $T/C/waved.log"

# ---- rate limits across the cluster -------------------------------------------------------
# The three instances again, anonymous pulls limited to 6 an hour: 12 container requests
# through nginx (round robin, so each instance sees four) get 6 permits in all, not 6 each.
EXTRA_YML="rate-limit: {enabled: true, pull: {anonymous: 6/1h}}"
for n in A B C; do start_instance $n; done
codes=""
for i in $(seq 1 12); do
  codes+="$(post "$NGX" "{\"containerImage\":\"$BB\"}" "$T/rl-$i.json") "
done
ok "12 requests through nginx over three instances: 6 granted in all" \
  is "$(grep -o 200 <<<"$codes" | wc -l)" 6
ok "... and 6 refused with 429" is "$(grep -o 429 <<<"$codes" | wc -l)" 6
ok "the bucket is one Redis key for the cluster" \
  test "$(rcli --scan --pattern 'cl.ratelimit:pull:*' | wc -l)" -ge 1
for n in A B C; do kill -TERM "${PID[$n]}" 2>/dev/null; done
for n in A B C; do wait "${PID[$n]}" 2>/dev/null || true; done
e2e_finish
