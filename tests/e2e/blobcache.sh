#!/usr/bin/env bash
# tests/e2e/blobcache.sh — the upstream blob cache and coalesced first pulls
# (docs/proxy.md "Blob cache"): docker-registry behind a proxy that delays
# every blob GET and logs each request, waved in front.
#
# Shows: six concurrent first GETs of one layer cost one upstream GET and all
# get the right bytes; the next GET comes from disk (no upstream GET, faster
# than the upstream's delay); a restart keeps the cache; a blob over a quarter
# of wave.blob-cache.max-size is streamed but not kept; with the cache off
# every GET goes upstream; another repository of the same upstream never gets
# the cached bytes (not even while the upstream is down); a confirmation older
# than wave.storage.cache.duration costs one HEAD, and while the upstream is
# down the repository that had the blob still gets it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
DELAY=1.5

start_registry up anon >"$T/reg.port"
REG_PORT=$(cat "$T/reg.port")
make_busybox_layout "$T/bb"
push_layout "$T/bb" "127.0.0.1:$REG_PORT/library/busybox:latest"
# library/other: a single-manifest image whose layer differs (/etc/arch says arm64).
new_layout "$T/other"
read -r om os < <(make_image_blobs "$T/other" arm64 "")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
  "$om" "$os" >"$T/other/index.json"
push_layout "$T/other" "127.0.0.1:$REG_PORT/library/other:latest"
SLOW_PORT=$(free_port)
$PY "$(dirname "${BASH_SOURCE[0]}")/slow_proxy.py" "$SLOW_PORT" "$REG_PORT" "$DELAY" "$T/upstream.log" &
SLOW_PID=$!
E2E_PIDS+=("$SLOW_PID")
wait_http "http://127.0.0.1:$SLOW_PORT/v2/"
UP="127.0.0.1:$SLOW_PORT"
ACCEPT="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"

# token_layer — creates a pass-through token for $UP/library/busybox; prints "<v2 repo path> <layer digest> <size>".
token_layer() {
  local img path
  img=$(curl -sf -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$UP/library/busybox:latest\"}" "$WAVED_URL/v1alpha2/container" |
    json_get - 'd["targetImage"]')
  path=${img#*/}
  curl -sf -H "Accept: $ACCEPT" "$WAVED_URL/v2/${path%:*}/manifests/${path##*:}" >"$T/m.json"
  echo "/v2/${path%:*} $(json_get "$T/m.json" 'd["layers"][0]["digest"]') $(json_get "$T/m.json" 'd["layers"][0]["size"]')"
}
upstream_gets() { grep -c "^GET .*/blobs/$1\$" "$T/upstream.log" || true; }
cache_file() { echo "$WAVED_DIR/data/blobcache/blobs/sha256/${1:7:2}/${1#sha256:}"; }

# ---- coalesced first pulls, then the cache ----
# Registries named by an address are served only when wave.registries lists them.
REGS="registries: {\"$UP\": {insecure: true}}"
start_waved "wave: {$REGS}"
read -r repo layer size < <(token_layer)
log "layer $layer ($size bytes), upstream blob GETs delayed ${DELAY}s"
pids=()
for i in 1 2 3 4 5 6; do
  curl -s -m 60 -o "$T/get$i" -w '%{http_code}\n' "$WAVED_URL$repo/blobs/$layer" >"$T/code$i" &
  pids+=($!)
done
wait "${pids[@]}" || true
good=0
for i in 1 2 3 4 5 6; do
  [ "$(cat "$T/code$i")" = 200 ] && [ "sha256:$(sha256 "$T/get$i")" = "$layer" ] && good=$((good + 1))
done
ok "six concurrent first GETs: all 200 with the right bytes" test "$good" = 6
ok "... and one upstream GET for them all" is "$(upstream_gets "$layer")" 1
ok "the layer is in the blob cache" is "sha256:$(sha256 "$(cache_file "$layer")")" "$layer"
t0=$(date +%s%N)
code=$(curl -s -o "$T/again" -w '%{http_code}' "$WAVED_URL$repo/blobs/$layer")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "next GET from the cache: 200, right bytes, no upstream GET, ${ms} ms (< upstream delay)" is \
  "$code sha256:$(sha256 "$T/again") $(upstream_gets "$layer") $([ "$ms" -lt 1500 ] && echo fast)" \
  "200 $layer 1 fast"

# ---- a restart keeps the cache (index rebuilt from the files, entries in LMDB) ----
kill -TERM "$WAVED_PID"; wait "$WAVED_PID" || true
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
code=$(curl -s -o "$T/restart" -w '%{http_code}' "$WAVED_URL$repo/blobs/$layer")
ok "after a restart: from the cache, no upstream GET" is \
  "$code sha256:$(sha256 "$T/restart") $(upstream_gets "$layer")" "200 $layer 1"
stop_waved

# ---- a blob over a quarter of max-size is streamed, not kept ----
start_waved "wave: {$REGS, blob-cache: {max-size: 2MiB}}"
read -r repo layer size < <(token_layer)
code=$(curl -s -o "$T/big" -w '%{http_code}' "$WAVED_URL$repo/blobs/$layer")
ok "over a quarter of max-size ($size > 512 KiB): 200, right bytes, not kept" is \
  "$code sha256:$(sha256 "$T/big") $(test -e "$(cache_file "$layer")" && echo kept || echo not-kept)" \
  "200 $layer not-kept"
stop_waved

# ---- cache off: every GET goes upstream ----
start_waved "wave: {$REGS, blob-cache: {enabled: false}}"
read -r repo layer size < <(token_layer)
n0=$(upstream_gets "$layer")
curl -sf -o /dev/null "$WAVED_URL$repo/blobs/$layer"
curl -sf -o /dev/null "$WAVED_URL$repo/blobs/$layer"
ok "cache off: two GETs, two upstream GETs, no blobcache directory" is \
  "$(( $(upstream_gets "$layer") - n0 )) $(test -d "$WAVED_DIR/data/blobcache" && echo dir || echo no-dir)" \
  "2 no-dir"
stop_waved
# ---- who may read a cached blob: only a repository whose upstream served it ----
start_waved "wave: {$REGS, storage: {cache: {duration: 1s}}}"
read -r repo layer size < <(token_layer)
curl -sf -o /dev/null "$WAVED_URL$repo/blobs/$layer"
other=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"containerImage\":\"$UP/library/other:latest\"}" "$WAVED_URL/v1alpha2/container" |
  json_get - 'd["targetImage"]')
other="/v2/$(sed 's|^[^/]*/||; s|:[^:/]*$||' <<<"$other")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL$other/blobs/$layer")
ok "another repository of the same upstream: its own answer (404), not the cached bytes" is "$code" 404
sleep 1.2 # this repository's confirmation is now older than wave.storage.cache.duration
n0=$(grep -c "^HEAD .*/blobs/$layer\$" "$T/upstream.log" || true)
code=$(curl -s -o "$T/stale" -w '%{http_code}' "$WAVED_URL$repo/blobs/$layer")
ok "stale entry: one upstream HEAD, then the cached bytes" is \
  "$code sha256:$(sha256 "$T/stale") $(( $(grep -c "^HEAD .*/blobs/$layer\$" "$T/upstream.log") - n0 ))" "200 $layer 1"
sleep 1.2
kill "$SLOW_PID"; wait "$SLOW_PID" 2>/dev/null || true # the upstream is down now
code=$(curl -s -m 30 -o "$T/down" -w '%{http_code}' "$WAVED_URL$repo/blobs/$layer")
ok "stale entry, upstream down: the cached bytes" is "$code sha256:$(sha256 "$T/down")" "200 $layer"
code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$WAVED_URL$other/blobs/$layer")
ok "upstream down: another repository still does not get them ($code)" test "$code" != 200
stop_waved
ok "no sanitizer reports" bash -c "! grep -q 'Sanitizer\|runtime error' $E2E_TMP/waved-*/waved.log"
e2e_finish
