#!/usr/bin/env bash
# tests/e2e/redis.sh — two waved instances sharing their state in one redis-server
# (state.backend: redis, docs/scale-out.md) and one blob directory, all on loopback:
# a container request made on A is pulled through B (skopeo), a token deleted on A is
# refused by B at once, the instances ride out a Redis outage, and a Redis killed with
# kill -9 (appendonly, appendfsync always) comes back with every acknowledged request.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "SKIP: redis-server/redis-cli not installed (packaging/deps.sh test installs them)"
  exit 77
fi

# ---- Redis ----------------------------------------------------------------------------
RPORT=$(free_port)
mkdir -p "$T/redis"
start_redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$T/redis" --save "" \
    --appendonly yes --appendfsync always --daemonize no >>"$T/redis/redis.log" 2>&1 &
  REDIS_PID=$!
  E2E_PIDS+=("$REDIS_PID")
  local i
  for i in $(seq 1 250); do
    [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.02
  done
  echo "redis-server did not start" >&2
  return 1
}
rcli() { redis-cli -p "$RPORT" "$@"; }
start_redis

# ---- an upstream registry with a small image -----------------------------------------------
UP=$(start_registry up anon)
make_busybox_layout "$T/img"
push_layout "$T/img" "127.0.0.1:$UP/library/bb:latest"

# ---- two instances: own LMDB, shared Redis, shared blob directory -----------------------------
mkdir -p "$T/blobs"
# The account that may delete tokens (password admin-pass; made with `waved hash-password`).
ADMIN_HASH='pbkdf2-sha256$600000$b4f035bd61261dd48f4f1b62a69593e6$09e45752e65f9d7593d73fa83bdc1a196214cf754c8fe8198297d49e45bd2031'
# start_instance NAME — sets <NAME>_URL and <NAME>_PID.
start_instance() {
  local dir="$T/$1" port
  port=$(free_port)
  mkdir -p "$dir/data"
  ln -s "$T/blobs" "$dir/data/blobs" # the shared (NFS in production) blob directory
  cat >"$dir/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $dir/data, blob-gc: {enabled: false}}
log: {level: info}
state: {backend: redis, redis: {url: "redis://127.0.0.1:$RPORT/0", prefix: "e2e.", timeout: 1s}}
wave: {accounts: {admin: "$ADMIN_HASH"}, registries: {"127.0.0.1:$UP": {insecure: true}}}
YML
  "$WAVED_BIN" --config "$dir/config.yml" >"$dir/waved.log" 2>&1 &
  local pid=$!
  E2E_PIDS+=("$pid")
  printf -v "${1}_URL" 'http://127.0.0.1:%s' "$port"
  printf -v "${1}_PID" '%s' "$pid"
  wait_http "http://127.0.0.1:$port/health" || { cat "$dir/waved.log" >&2; return 1; }
}
start_instance A
start_instance B
ok "both instances use the Redis backend" \
  grep -q "shared databases in redis 127.0.0.1:$RPORT db 0, prefix 'e2e.'" "$T/A/waved.log" "$T/B/waved.log"

# request URL — a container request of the upstream image; prints "token requestId".
request() {
  curl -sf -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"127.0.0.1:$UP/library/bb:latest\"}" "$1/v1alpha2/container" |
    json_get - 'd["containerToken"] + " " + d["requestId"]'
}
# manifest_code URL TOKEN — HTTP status of the token's manifest through that instance.
manifest_code() {
  curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$1/v2/wt/$2/library/bb/manifests/latest"
}

read -r TOK RID < <(request "$A_URL")
ok "a request on A answered with a token" test -n "${TOK:-}"
ok "the token is a key in Redis" is "$(rcli exists "e2e.tokens:$TOK")" 1
ok "its TTL is the token lifetime (36 h)" test "$(rcli ttl "e2e.tokens:$TOK")" -gt $((35 * 3600))
ok "B serves the request record made on A" \
  has "$(curl -s "$B_URL/v1alpha2/container/$RID")" "127.0.0.1:$UP/library/bb:latest"

# Pulled through B with skopeo: the same image as the upstream's.
ok "skopeo pulls A's token through B" \
  skopeo copy --quiet --src-tls-verify=false \
  "docker://127.0.0.1:${B_URL##*:}/wt/$TOK/library/bb:latest" "oci:$T/pulled:latest"
want=$(json_get "$T/img/index.json" 'd["manifests"][0]["digest"]')
lay=$(json_get "$T/img/blobs/sha256/${want#sha256:}" 'd["layers"][0]["digest"]')
ok "the layer pulled through B is the upstream's" test -f "$T/pulled/blobs/sha256/${lay#sha256:}"
ok "B's manifest cache entries are in Redis" test "$(rcli --scan --pattern 'e2e.manifests:*' | wc -l)" -ge 1
ok "A serves the manifest B cached" is "$(manifest_code "$A_URL" "$TOK")" 200

# Deleted on A: refused by B at once (both read the token from Redis; none caches it).
ok "the token deleted on A" is "$(curl -s -o /dev/null -w '%{http_code}' -u admin:admin-pass -X DELETE "$A_URL/container-token/$TOK")" 200
ok "B refuses the deleted token" is "$(manifest_code "$B_URL" "$TOK")" 404
ok "A refuses it too" is "$(manifest_code "$A_URL" "$TOK")" 404
ok "B's answer names the token" has "$(curl -s "$B_URL/v2/wt/$TOK/library/bb/manifests/latest")" \
  "Unknown Wave container for token '$TOK'"

# ---- Redis restarts ------------------------------------------------------------------------
# 20 acknowledged requests, half on each instance, then Redis dies hard (kill -9): with
# appendfsync always every acknowledged write is in the AOF.
: >"$T/tokens"
for i in $(seq 1 10); do
  request "$A_URL" >>"$T/tokens"
  request "$B_URL" >>"$T/tokens"
done
ok "20 requests acknowledged" is "$(grep -c . "$T/tokens")" 20
kill -9 "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null || true
code=$(curl -s -o "$T/down.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"containerImage\":\"127.0.0.1:$UP/library/bb:latest\"}" "$A_URL/v1alpha2/container")
ok "Redis down: a request gets 503, no crash" is "$code" 503
ok "Redis down: the answer is a JSON message" test -n "$(json_get "$T/down.json" 'd["message"]')"
ok "Redis down: the log says why" grep -q "redis 127.0.0.1:$RPORT" "$T/A/waved.log"
ok "Redis down: /health is 503 with the redis component DOWN" \
  is "$(curl -s -o "$T/h.json" -w '%{http_code}' "$A_URL/health") $(json_get "$T/h.json" 'd["components"]["redis"]["status"]')" "503 DOWN"
start_redis
lost=0
while read -r tok rid; do
  [ "$(manifest_code "$B_URL" "$tok")" = 200 ] || lost=$((lost + 1))
done <"$T/tokens"
ok "after kill -9 and restart: all 20 tokens pull through B" is "$lost" 0
ok "after the restart: a new request on A pulls through B" \
  is "$(manifest_code "$B_URL" "$(request "$A_URL" | cut -d' ' -f1)")" 200
ok "A logged Redis answering again" grep -q "redis 127.0.0.1:$RPORT: answering again" "$T/A/waved.log"
ok "/health is UP again, redis component UP" \
  is "$(curl -s -o "$T/h.json" -w '%{http_code}' "$A_URL/health") $(json_get "$T/h.json" 'd["components"]["redis"]["status"]')" "200 UP"
ok "both instances still running" kill -0 "$A_PID" "$B_PID"

# ---- shutdown ----------------------------------------------------------------------------
kill -TERM "$A_PID" "$B_PID"
ra=0 rb=0
wait "$A_PID" 2>/dev/null || ra=$?
wait "$B_PID" 2>/dev/null || rb=$?
ok "both instances stop cleanly" is "$ra $rb" "0 0"
e2e_finish
