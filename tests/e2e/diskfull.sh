#!/usr/bin/env bash
# tests/e2e/diskfull.sh — storage.path on a small tmpfs that fills up: before,
# waved stores tokens, a data: layer and pulled blobs; once the disk is full a
# request that needs space gets 507 naming the path and the free space (the
# registry error envelope on /v2), a new build is refused at once, /health
# reports the disk below its reserve, and what needs no space (service-info, a
# cached pull, records) keeps working. A restart on the full disk is clean and
# nothing stored before is lost; freeing space makes waved whole again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v skopeo >/dev/null; then
  echo "skip: needs root (mount -t tmpfs) and skopeo"
  exit 0
fi
T=$E2E_TMP
DISK="$T/disk"
mkdir -p "$DISK"
if ! mount -t tmpfs -o size=24m,mode=0700 tmpfs "$DISK"; then
  echo "skip: cannot mount a tmpfs here"
  exit 0
fi
# Unmount before lib.sh removes $E2E_TMP (waved is stopped first).
cleanup_disk() {
  [ -n "${WAVED_PID:-}" ] && kill "$WAVED_PID" 2>/dev/null && wait "$WAVED_PID" 2>/dev/null
  umount "$DISK" 2>/dev/null || umount -l "$DISK" 2>/dev/null || true
  e2e_cleanup
}
trap cleanup_disk EXIT

REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"

# start_waved keeps storage.path under $E2E_TMP: point it at the tmpfs with a config of our own.
WAVED_PORT=$(free_port)
WAVED_URL="http://127.0.0.1:$WAVED_PORT"
DATA="$DISK/data"
cat >"$T/waved.yml" <<YML
server: {host: 127.0.0.1, port: $WAVED_PORT}
storage: {path: $DATA, reserve: 4MiB, map-size: 64MiB}
log: {level: warn}
wave: {registries: {"$REG": {}}}
YML
run_waved() {
  "$WAVED_BIN" --config "$T/waved.yml" >>"$T/waved.log" 2>&1 &
  WAVED_PID=$!
  wait_http "$WAVED_URL/health" || { cat "$T/waved.log" >&2; return 1; }
}
run_waved

post() { # BODY|@FILE OUT -> status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
get() { curl -s -o "$2" -w '%{http_code}' "$WAVED_URL$1"; }
field() { json_get "$1" "$2" 2>/dev/null || true; }
pull_name() { field "$1" 'd["targetImage"]' | sed "s#^localhost:9090#127.0.0.1:$WAVED_PORT#"; }
# data_layer N — a gzip layer of N random bytes; sets LAYER_REQ to @FILE of the request body.
data_layer() {
  local d="$T/layer-$1"
  mkdir -p "$d/root" && head -c "$1" /dev/urandom >"$d/root/blob"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/root" -cf "$d/l.tar" .
  gzip -n -c "$d/l.tar" >"$d/l.tgz"
  LAYER_REQ="@$d/req.json"
  echo "{\"containerImage\":\"$REG/library/busybox\",\"containerConfig\":{\"layers\":[{\"location\":\"data:$(base64 -w0 "$d/l.tgz")\",\"gzipDigest\":\"sha256:$(sha256 "$d/l.tgz")\",\"gzipSize\":$(stat -c %s "$d/l.tgz"),\"tarDigest\":\"sha256:$(sha256 "$d/l.tar")\"}]}}" >"$d/req.json"
}

# ---- 1. store some data while there is room -------------------------------------------
log "1. before: tokens, a data: layer, a pulled image"
ok "health UP with room" is "$(get /health "$T/h0.json") $(field "$T/h0.json" 'd["components"]["disk"]["status"]')" "200 UP"
ok "plain request 200" is "$(post "{\"containerImage\":\"$REG/library/busybox\"}" "$T/r1.json")" 200
data_layer 32768
ok "data: layer request 200" is "$(post "$LAYER_REQ" "$T/r2.json")" 200
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r1.json")" "dir:$T/p1" 2>"$T/p1.err"
ok "pull of the plain token" test -s "$T/p1/manifest.json"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r2.json")" "dir:$T/p2" 2>"$T/p2.err"
ok "pull of the data: layer token" test -s "$T/p2/manifest.json"
TOK1=$(field "$T/r1.json" 'd["requestId"]')
TOK2=$(field "$T/r2.json" 'd["requestId"]')
# A token that is created now and pulled only once the disk is full (its manifest is not cached).
data_layer 16384
ok "a second data: layer request 200" is "$(post "$LAYER_REQ" "$T/r3.json")" 200

# ---- 2. fill the disk -------------------------------------------------------------------------
log "2. filling $DISK"
dd if=/dev/zero of="$DISK/fill" bs=64k 2>/dev/null || true
FREE=$(df --output=avail -B1 "$DISK" | tail -1 | tr -d ' ')
log "free after filling: $FREE bytes"
ok "the disk is full" test "$FREE" -lt 65536

data_layer 200000
CODE=$(post "$LAYER_REQ" "$T/full.json")
MSG=$(field "$T/full.json" 'd["message"]')
ok "a new data: layer gets 507" is "$CODE" 507
ok "507 names the path and the free space" \
  bash -c "[[ '$MSG' =~ ^Insufficient\ storage\ -\ $DATA:\ [0-9]+\ bytes\ free ]]" || echo "    $MSG" >&2
ok "and says it is below the reserve" has "$MSG" "below the reserve of"
ok "not an internal error" bash -c "! grep -q 'Error ID' '$T/full.json'"
CF=$(printf 'FROM scratch\nCOPY a /a\n' | base64 -w0)
ok "a new build is refused with 507 at once" is "$(post "{\"containerFile\":\"$CF\"}" "$T/b.json")" 507
ok "the build's 507 names the path" has "$(cat "$T/b.json")" "Insufficient storage - $DATA: "

# /v2: the manifest of the third token must be rewritten and stored now.
PN3=$(pull_name "$T/r3.json"); R3=${PN3#*/}
CODE3=$(curl -s -o "$T/v2.json" -w '%{http_code}' \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
  "$WAVED_URL/v2/${R3%:*}/manifests/${R3##*:}")
if [ "$CODE3" = 200 ]; then
  log "the /v2 rewrite of token 3 found room (LMDB reused free pages): nothing to check"
else
  ok "/v2 needing space: 507" is "$CODE3" 507
  ok "/v2: registry envelope, code UNAVAILABLE" is "$(field "$T/v2.json" 'd["errors"][0]["code"]')" UNAVAILABLE
  ok "/v2: message names the path" has "$(field "$T/v2.json" 'd["errors"][0]["message"]')" "Insufficient storage - $DATA"
fi

# ---- 3. what needs no space keeps working --------------------------------------------------
log "3. health and small requests on the full disk"
ok "health 200 DEGRADED" is "$(get /health "$T/h1.json") $(field "$T/h1.json" 'd["status"]')" "200 DEGRADED"
ok "health: disk DOWN below its reserve" \
  is "$(field "$T/h1.json" 'd["components"]["disk"]["status"]')" DOWN
ok "health: the detail says so" has "$(field "$T/h1.json" 'd["components"]["disk"]["detail"]')" "below the reserve of 4194304 bytes"
ok "health: store still UP" is "$(field "$T/h1.json" 'd["components"]["store"]["status"]')" UP
ok "service-info 200" is "$(get /service-info /dev/null)" 200
ok "token record 200" is "$(get "/container-token/$TOK1" /dev/null)" 200
rm -rf "$T/p1b"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r1.json")" "dir:$T/p1b" 2>"$T/p1b.err"
ok "a cached pull still works" cmp -s "$T/p1/manifest.json" "$T/p1b/manifest.json"
ok "waved still running" kill -0 "$WAVED_PID"

# ---- 4. a restart on the full disk -----------------------------------------------------------
log "4. restart on the full disk"
kill -TERM "$WAVED_PID"; RC=0; wait "$WAVED_PID" || RC=$?
ok "stopped cleanly on the full disk (exit 0)" is "$RC" 0
run_waved
ok "restarted on the full disk" kill -0 "$WAVED_PID"
ok "the preflight warns about the disk" grep -q "below the reserve" "$T/waved.log"
ok "token 1 record kept" is "$(get "/container-token/$TOK1" /dev/null)" 200
ok "token 2 record kept" is "$(get "/container-token/$TOK2" /dev/null)" 200
rm -rf "$T/p2b"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r2.json")" "dir:$T/p2b" 2>"$T/p2b.err"
ok "the data: layer image pulls identically after the restart" \
  bash -c "cmp -s '$T/p2/manifest.json' '$T/p2b/manifest.json' && diff -rq '$T/p2' '$T/p2b' >/dev/null"

# ---- 5. room again ---------------------------------------------------------------------------------
log "5. freeing the disk"
rm -f "$DISK/fill"
ok "health UP again" is "$(get /health "$T/h2.json") $(field "$T/h2.json" 'd["status"]')" "200 UP"
data_layer 200000
ok "the big data: layer is accepted now" is "$(post "$LAYER_REQ" "$T/ok.json")" 200
ok "no internal error logged" bash -c "! grep -q 'Error ID' '$T/waved.log'"

e2e_finish
