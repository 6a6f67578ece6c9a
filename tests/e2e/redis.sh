#!/usr/bin/env bash
# tests/e2e/redis.sh — two waved instances sharing their state in one redis-server
# (state.backend: redis, docs/scale-out.md) and one blob directory, all on loopback:
# a container request made on A is pulled through B (skopeo), a token deleted on A is
# refused by B at once, blobs written by both at once into the shared directory stay whole,
# a restart of A keeps B's temporaries in flight, an image built on A is pulled through B,
# rate limits hold across instances, the instances ride out a Redis outage, and a Redis
# killed with kill -9 (appendonly, appendfsync always) comes back with every acknowledged
# request.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "SKIP: redis-server/redis-cli not installed (packaging/deps.sh test installs them)"
  exit 77
fi

# ---- Redis ----------------------------------------------------------------------------
RPORT=$(free_port)
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
  launch_waved "$1" "$dir" "$port"
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

# ---- the shared blob directory -----------------------------------------------------------
# data: layers are written into the blob store at request time: 24 requests at once, half on
# each instance, over three 2 MiB layers, so both instances write the same blobs at once.
# layer NAME — a gzipped one-file layer; prints the containerConfig layer object.
layer() {
  local d="$T/layer-$1"
  mkdir -p "$d/root"
  head -c $((2 << 20)) /dev/urandom >"$d/root/$1.bin"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/root" -cf "$d/l.tar" .
  gzip -n -1 -c "$d/l.tar" >"$d/l.tgz"
  printf '{"location":"data:%s","gzipDigest":"sha256:%s","gzipSize":%s,"tarDigest":"sha256:%s"}' \
    "$(base64 -w0 "$d/l.tgz")" "$(sha256 "$d/l.tgz")" "$(stat -c %s "$d/l.tgz")" "$(sha256 "$d/l.tar")"
}
for n in one two three; do layer "$n" >"$T/layer-$n.json"; done
for i in $(seq 0 23); do
  n=$(echo one two three | cut -d' ' -f$((i % 3 + 1)))
  url=$([ $((i % 2)) = 0 ] && echo "$A_URL" || echo "$B_URL")
  { printf '{"containerImage":"127.0.0.1:%s/library/bb:latest","containerConfig":{"layers":[' "$UP"
    cat "$T/layer-$n.json"; printf ']}}'; } >"$T/aug-$i.json"
  curl -s -o "$T/aug-$i.out" -w '%{http_code}\n' -H 'Content-Type: application/json' \
    --data-binary "@$T/aug-$i.json" "$url/v1alpha2/container" >"$T/aug-$i.code" &
done
wait_ok=0
for i in $(seq 0 23); do
  poll_until 120 test -s "$T/aug-$i.code" || true
  [ "$(cat "$T/aug-$i.code")" = 200 ] && wait_ok=$((wait_ok + 1))
done
ok "24 concurrent requests with data: layers on A and B answered 200" is "$wait_ok" 24
bad=0 count=0
for f in "$T"/blobs/sha256/*/*; do
  count=$((count + 1))
  [ "$(sha256 "$f")" = "$(basename "$f")" ] || bad=$((bad + 1))
done
ok "every blob in the shared directory is whole (its content hashes to its name)" is "$bad" 0
for n in one two three; do
  d=$(json_get "$T/layer-$n.json" 'd["gzipDigest"]')
  ok "layer $n is one blob in the shared directory" test -f "$T/blobs/sha256/${d:7:2}/${d#sha256:}"
done
ok "no temporaries left behind by the concurrent writers" \
  is "$(find "$T/blobs/tmp" -type f | wc -l)" 0
ok "each instance writes its temporaries in its own directory" \
  is "$(find "$T/blobs/tmp" -mindepth 1 -maxdepth 1 -type d | wc -l)" 2
# A token made on B with a layer A wrote too, pulled through A.
tok=$(json_get "$T/aug-1.out" 'd["containerToken"]')
ok "skopeo pulls B's augmented token through A" \
  skopeo copy --quiet --src-tls-verify=false \
  "docker://127.0.0.1:${A_URL##*:}/wt/$tok/library/bb:latest" "oci:$T/pulled-aug:latest"
d=$(json_get "$T/layer-two.json" 'd["gzipDigest"]')
ok "the data: layer pulled through A is whole" is "$(sha256 "$T/pulled-aug/blobs/sha256/${d#sha256:}")" "${d#sha256:}"

# A restart of A removes A's own stale temporaries, never B's in flight.
# instance_dir NAME — blobs/tmp/<host>-<FNV-1a of the storage path> (storage/cas.c).
instance_dir() {
  python3 - "$T/$1/data" <<'PY'
import os, socket, sys
h = 2166136261
for c in os.path.realpath(sys.argv[1]).encode():
    h = ((h ^ c) * 16777619) & 0xffffffff
host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname()[:64])
print("%s-%08x" % (host, h))
PY
}
ADIR="$T/blobs/tmp/$(instance_dir A)" BDIR="$T/blobs/tmp/$(instance_dir B)"
ok "the temp directories are named as storage/cas.c names them" test -d "$ADIR" -a -d "$BDIR"
head -c 4096 /dev/urandom >"$BDIR/in-flight-on-B"
head -c 4096 /dev/urandom >"$ADIR/left-by-A"
kill -TERM "$A_PID"
wait "$A_PID" 2>/dev/null || true
A_CONFIG="$T/A/config.yml"
"$WAVED_BIN" --config "$A_CONFIG" >>"$T/A/waved.log" 2>&1 &
A_PID=$!
E2E_PIDS+=("$A_PID")
wait_http "$A_URL/health" || cat "$T/A/waved.log" >&2
ok "A restarted" kill -0 "$A_PID"
ok "A's restart kept B's temporary in flight" test -f "$BDIR/in-flight-on-B"
ok "A's restart removed its own stale temporary" test ! -e "$ADIR/left-by-A"
rm -f "$BDIR/in-flight-on-B"

# ---- the embedded build registry on the shared path ----------------------------------------
# Built on A (buildah, FROM scratch + COPY), pulled through B, which never saw the build:
# its index is in Redis and its blobs in the shared directory.
if command -v buildah >/dev/null; then
  mkdir -p "$T/ctx" && echo "built on A" >"$T/ctx/hello.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/ctx" -cf "$T/ctx.tar" .
  gzip -n -c "$T/ctx.tar" >"$T/ctx.tgz"
  CF=$(printf 'FROM scratch\nCOPY hello.txt /hello.txt\n' | base64 -w0)
  printf '{"containerFile":"%s","buildContext":{"location":"data:%s","tarDigest":"sha256:%s"}}' \
    "$CF" "$(base64 -w0 "$T/ctx.tgz")" "$(sha256 "$T/ctx.tar")" >"$T/build.json"
  code=$(curl -s -o "$T/build.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "@$T/build.json" "$A_URL/v1alpha2/container")
  ok "a build requested on A" is "$code" 200
  img=$(json_get "$T/build.out" 'd["targetImage"]')
  path=${img#*/}
  # On A the pull of the tag waits for the build (parked), then answers.
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 300 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$A_URL/v2/${path%:*}/manifests/${path##*:}")
  ok "the build finished on A (its pull through A answered)" is "$code" 200
  ok "the embedded registry's index is in Redis" \
    test "$(rcli --scan --pattern 'e2e.embedded:tag/*' | wc -l)" -ge 1
  ok "skopeo pulls the image built on A through B" \
    skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:${B_URL##*:}/$path" "dir:$T/built"
  top=$(json_get "$T/built/manifest.json" 'd["layers"][-1]["digest"].split(":")[1]')
  ok "the layer pulled through B holds the file built on A" \
    is "$(tar -xzOf "$T/built/$top" hello.txt 2>/dev/null || tar -xzOf "$T/built/$top" ./hello.txt)" "built on A"
else
  log "buildah not installed: the embedded-registry check is skipped"
fi

# ---- rate limits across the cluster --------------------------------------------------------
# Two more instances with anonymous pulls limited to 6 an hour: 12 container requests from
# one address, alternating between them, get 6 permits in all, not 6 each.
start_limited() {
  local dir="$T/$1" port
  port=$(free_port)
  mkdir -p "$dir/data"
  ln -s "$T/blobs" "$dir/data/blobs"
  cat >"$dir/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $dir/data, blob-gc: {enabled: false}}
log: {level: info}
state: {backend: redis, redis: {url: "redis://127.0.0.1:$RPORT/0", prefix: "e2e-rl.", timeout: 1s}}
rate-limit: {enabled: true, pull: {anonymous: 6/1h}}
wave: {registries: {"127.0.0.1:$UP": {insecure: true}}}
YML
  launch_waved "$1" "$dir" "$port"
}
start_limited RA
start_limited RB
codes=""
for i in $(seq 1 12); do
  url=$([ $((i % 2)) = 1 ] && echo "$RA_URL" || echo "$RB_URL")
  codes+="$(curl -s -o "$T/rl-$i.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"127.0.0.1:$UP/library/bb:latest\"}" "$url/v1alpha2/container") "
done
ok "12 requests over two instances: 6 granted in all" is "$(grep -o 200 <<<"$codes" | wc -l)" 6
ok "... and 6 refused with 429" is "$(grep -o 429 <<<"$codes" | wc -l)" 6
ok "the refusal names the address" has "$(cat "$T/rl-12.json")" "rate limit for IP 127.0.0.1"
ok "the shared bucket is a Redis key" test "$(rcli --scan --pattern 'e2e-rl.ratelimit:pull:i:*' | wc -l)" -ge 1
# A manifest GET by digest takes a pull permit too: on the worker, from the shared bucket.
dg=$(json_get "$T/img/index.json" 'd["manifests"][0]["digest"]')
rltok=$(json_get "$T/rl-1.json" 'd["containerToken"]')
ok "a pull by digest past the cluster's limit is refused on RB too (a token made on RA)" \
  is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$RB_URL/v2/wt/$rltok/library/bb/manifests/$dg")" 429
kill -TERM "$RA_PID" "$RB_PID"
wait "$RA_PID" "$RB_PID" 2>/dev/null || true

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
# ---- moving one instance to the cluster and back (waved state export|import) ---------------
# write_config NAME BACKEND — one instance's config on its own storage path.
write_config() {
  local dir="$T/$1" port
  port=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $dir/data, blob-gc: {enabled: false}}
log: {level: warn}
state: {backend: $2, redis: {url: "redis://127.0.0.1:$RPORT/0", prefix: "e2e-mv.", timeout: 1s}}
wave: {registries: {"127.0.0.1:$UP": {insecure: true}}}
YML
  printf -v "${1}_URL" 'http://127.0.0.1:%s' "$port"
}
# serve NAME — runs NAME until stop_served; sets SERVED_PID.
serve() {
  "$WAVED_BIN" --config "$T/$1/config.yml" >>"$T/$1/waved.log" 2>&1 &
  SERVED_PID=$!
  E2E_PIDS+=("$SERVED_PID")
  local u="${1}_URL"
  wait_http "${!u}/health" || cat "$T/$1/waved.log" >&2
}
stop_served() { kill -TERM "$SERVED_PID"; wait "$SERVED_PID" 2>/dev/null || true; }
# One LMDB instance with a token, stopped; its state exported to Redis (same storage path,
# backend redis in the config the command reads).
write_config SOLO lmdb
serve SOLO
read -r MTOK _ < <(request "$SOLO_URL")
ok "the single instance serves its token" is "$(manifest_code "$SOLO_URL" "$MTOK")" 200
stop_served
sed -i 's/backend: lmdb/backend: redis/' "$T/SOLO/config.yml"
ok "waved state export copies the single instance's state into Redis" \
  "$WAVED_BIN" --config "$T/SOLO/config.yml" state export
ok "its token is a Redis key, with its expiry" test "$(rcli ttl "e2e-mv.tokens:$MTOK")" -gt 3600
# A new cluster instance (its own empty storage path) serves the token made before the move.
write_config NEWC redis
ln -s "$T/blobs" "$T/NEWC/data/blobs"
serve NEWC
ok "a cluster instance serves the token made on the single instance" \
  is "$(manifest_code "$NEWC_URL" "$MTOK")" 200
read -r CTOK _ < <(request "$NEWC_URL")
stop_served
# And back: a fresh LMDB instance imports the cluster's state.
write_config BACK redis
ok "waved state import copies the cluster's state into LMDB" \
  "$WAVED_BIN" --config "$T/BACK/config.yml" state import
sed -i 's/backend: redis/backend: lmdb/' "$T/BACK/config.yml"
serve BACK
ok "after the move back, the LMDB instance serves the token made in the cluster" \
  is "$(manifest_code "$BACK_URL" "$CTOK")" 200
ok "... and the one made before the first move" is "$(manifest_code "$BACK_URL" "$MTOK")" 200
stop_served
ok "an unknown state command is refused" bash -c "! '$WAVED_BIN' --config '$T/BACK/config.yml' state drop 2>/dev/null"

# ---- TLS to Redis: one instance on a TLS-only redis-server through rediss:// --------------------
mkdir -p "$T/tls/data" "$T/tlsredis"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$T/tlsredis/k.pem" -out "$T/tlsredis/c.pem" \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
TPORT=$(free_port)
redis-server --port 0 --tls-port "$TPORT" --tls-cert-file "$T/tlsredis/c.pem" \
  --tls-key-file "$T/tlsredis/k.pem" --tls-ca-cert-file "$T/tlsredis/c.pem" --tls-auth-clients no \
  --bind 127.0.0.1 --dir "$T/tlsredis" --save "" --daemonize no >>"$T/tlsredis/redis.log" 2>&1 &
E2E_PIDS+=("$!")
tcli() { redis-cli --tls --cacert "$T/tlsredis/c.pem" -p "$TPORT" "$@"; }
tls_up() { [ "$(tcli ping 2>/dev/null)" = PONG ]; }
POLL_EVERY=0.02 poll_until 5 tls_up || true
ln -s "$T/blobs" "$T/tls/data/blobs"
port=$(free_port)
cat >"$T/tls/config.yml" <<YML
server: {host: 127.0.0.1, port: $port}
storage: {path: $T/tls/data, blob-gc: {enabled: false}}
state: {backend: redis, redis: {url: "rediss://127.0.0.1:$TPORT/0", tls-ca: "$T/tlsredis/c.pem", prefix: "e2e-tls.", timeout: 1s}}
wave: {registries: {"127.0.0.1:$UP": {insecure: true}}}
YML
"$WAVED_BIN" --config "$T/tls/config.yml" >"$T/tls/waved.log" 2>&1 &
TLS_PID=$!
E2E_PIDS+=("$TLS_PID")
TLS_URL="http://127.0.0.1:$port"
wait_http "$TLS_URL/health" || cat "$T/tls/waved.log" >&2
read -r TTOK _ < <(request "$TLS_URL")
ok "a request through rediss:// answered with a token" test -n "${TTOK:-}"
ok "the token is a key in the TLS Redis" is "$(tcli exists "e2e-tls.tokens:$TTOK")" 1
ok "skopeo pulls the token through the rediss:// instance" \
  skopeo copy --quiet --src-tls-verify=false \
  "docker://127.0.0.1:$port/wt/$TTOK/library/bb:latest" "oci:$T/pulled-tls:latest"
kill -TERM "$TLS_PID"
wait "$TLS_PID" 2>/dev/null || true
sed -i "s|tls-ca: \"$T/tlsredis/c.pem\"|tls-ca: \"/nonexistent.pem\"|" "$T/tls/config.yml"
ok "a CA that cannot be loaded: waved does not start, and says why" \
  bash -c "! timeout 20 '$WAVED_BIN' --config '$T/tls/config.yml' >'$T/tls/bad.log' 2>&1"
ok "... naming state.redis.tls-ca" grep -q "state.redis.tls-ca" "$T/tls/bad.log"

e2e_finish
