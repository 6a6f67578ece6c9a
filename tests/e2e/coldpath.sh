#!/usr/bin/env bash
# tests/e2e/coldpath.sh — first pulls of new tokens of one image (docs/proxy.md,
# "Cold pulls"): the upstream is asked what the tag names once per
# wave.storage.cache.tag-duration, fetched the manifest and the config once,
# a moved tag is seen after the window, and tag-duration 0 asks every time.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
mkdir -p "$T/up"
UP_PORT=$(free_port)
$PY "$(dirname "${BASH_SOURCE[0]}")/fake_upstream.py" "$UP_PORT" "$T/up" "$T/upstream.log" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/v2/"
UP="127.0.0.1:$UP_PORT"

# set_image ENV — a config with ENV and its manifest; prints the manifest digest.
set_image() {
  local h
  h=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["%s"]},"rootfs":{"type":"layers","diff_ids":[]}}' "$1" |
    tee "$T/cfg.json" | sha256sum | cut -d' ' -f1)
  mv "$T/cfg.json" "$T/up/$h" && echo "sized 0" >"$T/up/$h.mode"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[]}' \
    "$h" "$(stat -c %s "$T/up/$h")" >"$T/up/manifest.json.new"
  mv "$T/up/manifest.json.new" "$T/up/manifest.json"
  echo "sha256:$(sha256 "$T/up/manifest.json")"
}
# tokens N — N new augmented tokens of $UP/library/x:latest, one pull path per line.
tokens() {
  local i img
  for i in $(seq 1 "$1"); do
    img=$(curl -sf -H 'Content-Type: application/json' \
      -d "{\"containerImage\":\"$UP/library/x:latest\",\"containerConfig\":{\"env\":[\"N=$i\"]}}" \
      "$WAVED_URL/v1alpha2/container" | json_get - 'd["targetImage"]')
    img=${img#*/}
    echo "/v2/${img%:*}/manifests/latest"
  done
}
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
# pull_all FILE — pulls every path in FILE, 10 at a time; prints "OKS DISTINCT-CONFIGS".
pull_all() {
  rm -f "$T"/pulled.*
  xargs -P 10 -I{} sh -c 'curl -s -o "$1/pulled.$$" -w "%{http_code}\n" -H "$2" "$3{}"' _ "$T" "$ACCEPT" "$WAVED_URL" \
    <"$1" >"$T/codes"
  echo "$(grep -c '^200$' "$T/codes") $(sha256sum "$T"/pulled.* | cut -d' ' -f1 | sort -u | wc -l)"
}
since() { tail -n +"$(($1 + 1))" "$T/upstream.log"; }
count() { grep -c "$1" || true; }

SRC=$(set_image "V=1")
# A window longer than the 30 requests and pulls take on a loaded machine (they took more than
# 8 s under a load of 10, and more than 60 s under TSan at load 25, so it is scaled by the
# sanitizer slowdown): this part counts upstream requests, not the window's end.
start_waved "wave: {registries: {\"$UP\": {insecure: true}}, storage: {cache: {tag-duration: $(slow 60)s}}}"
# From here the upstream log counts the 30 container requests (each checks the image) and
# the 30 first pulls.
n0=$(wc -l <"$T/upstream.log")
tokens 30 >"$T/t1"
# The requests augment the image: the first of them fetched its manifest and config (the
# others found them), so the pulls ask the upstream nothing.
since "$n0" >"$T/s0"
ok "30 requests: the manifest fetched once, before any pull" is "$(count "manifests/$SRC\$" <"$T/s0")" 1
ok "30 requests: the config fetched once, before any pull" is "$(count '^GET .*/blobs/' <"$T/s0")" 1
np=$(wc -l <"$T/upstream.log")
ok "30 new tokens: every first pull 200, 30 distinct manifests" is "$(pull_all "$T/t1")" "30 30"
ok "the 30 first pulls asked the upstream nothing" is "$(since "$np" | wc -l)" 0
since "$n0" >"$T/s1"
log "upstream saw: $(sort "$T/s1" | uniq -c | tr -s ' ' | tr '\n' ';')"
ok "the tag asked once, by 30 requests and 30 pulls" is "$(count 'manifests/latest$' <"$T/s1")" 1
ok "the manifest fetched at most once" test "$(count "manifests/$SRC\$" <"$T/s1")" -le 1
ok "the config fetched at most once" test "$(count '^GET .*/blobs/' <"$T/s1")" -le 1
# The config is served from disk to a pull of it now (the CAS copy), the same bytes.
CFG=$(json_get "$T/up/manifest.json" 'd["config"]["digest"]')
p=$(head -1 "$T/t1")
n1=$(wc -l <"$T/upstream.log")
ok "the upstream config from disk, no upstream GET" is \
  "$(curl -s "$WAVED_URL${p%/manifests/latest}/blobs/$CFG" | sha256sum | cut -d' ' -f1) $(since "$n1" | count GET)" \
  "${CFG#sha256:} 0"

# env_of PATH — the Env of the image a manifest path serves (its config, pulled through waved).
env_of() {
  local m c
  m=$(curl -s -H "$ACCEPT" "$WAVED_URL$1")
  c=$(json_get - 'd["config"]["digest"]' <<<"$m")
  curl -s "$WAVED_URL${1%/manifests/*}/blobs/$c" | json_get - '",".join(d["config"]["Env"])'
}
# A pull on a fresh waved with an 8 s window (the tag resolved afresh: the window starts here),
# then the tag moves: a new token right after still gets what the tag named, one after the
# window gets what it names now. The window is scaled by the sanitizer slowdown (docs/testing.md):
# under TSan at load 20 the first token, its pull and the move took longer than 8 s, so the
# "within" token already saw the new tag.
stop_waved
W=$(slow 8)
start_waved "wave: {registries: {\"$UP\": {insecure: true}}, storage: {cache: {tag-duration: ${W}s}}}"
tokens 1 >"$T/t2"
ok "before the move: V=1" has "$(env_of "$(cat "$T/t2")")" "V=1"
NEW=$(set_image "V=2")
tokens 1 >"$T/t2"
ok "within tag-duration: the image the tag named before" has "$(env_of "$(cat "$T/t2")")" "V=1"
sleep "$W.5"
n2=$(wc -l <"$T/upstream.log")
tokens 1 >"$T/t3"
ok "after tag-duration: the image the tag names now" has "$(env_of "$(cat "$T/t3")")" "V=2"
ok "after tag-duration: the tag asked again" is "$(since "$n2" | count 'manifests/latest$')" 1
ok "after tag-duration: the new manifest fetched" is "$(since "$n2" | count "manifests/$NEW\$")" 1
stop_waved

# tag-duration 0: every new token asks the upstream.
start_waved "wave: {registries: {\"$UP\": {insecure: true}}, storage: {cache: {tag-duration: 0s}}}"
n3=$(wc -l <"$T/upstream.log")
tokens 5 >"$T/t4"
ok "tag-duration 0: 5 pulls" is "$(pull_all "$T/t4")" "5 5"
ok "tag-duration 0: the tag asked by each request and each pull" is "$(since "$n3" | count 'manifests/latest$')" 10
stop_waved
e2e_finish
