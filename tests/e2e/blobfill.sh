#!/usr/bin/env bash
# tests/e2e/blobfill.sh — concurrent first GETs of one upstream blob share one
# upstream stream (registry/blobfill.h), and are held to its outcome, against
# an upstream that misbehaves on purpose (fake_upstream.py).
#
# Shows: the first client leaving or not reading does not fail the others (one
# upstream GET, whole and right bytes); a body that does not hash to its digest,
# or ends early, reaches no client whole; an unsized (chunked) body is not
# shared, and everyone gets it right.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
mkdir -p "$T/blobs"
UP_PORT=$(free_port)
$PY "$(dirname "${BASH_SOURCE[0]}")/fake_upstream.py" "$UP_PORT" "$T/blobs" "$T/upstream.log" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/v2/"
UP="127.0.0.1:$UP_PORT"

# mkblob BYTES MODE... — a random blob served as MODE; prints its digest.
mkblob() {
  local f="$T/blobs/new.$RANDOM" h
  head -c "$1" /dev/urandom >"$f"
  h=$(sha256 "$f")
  mv "$f" "$T/blobs/$h"
  shift
  echo "$*" >"$T/blobs/$h.mode"
  echo "sha256:$h"
}
gets() { grep -c "^GET .*/blobs/$1\$" "$T/upstream.log" || true; }
url() { echo "$WAVED_URL$REPO/blobs/$1"; }
h=$(printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}' |
  tee "$T/cfg.json" | sha256sum | cut -d' ' -f1)
mv "$T/cfg.json" "$T/blobs/$h" && echo "sized 0" >"$T/blobs/$h.mode"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[]}' \
  "$h" "$(stat -c %s "$T/blobs/$h")" >"$T/blobs/manifest.json"

# followers DIGEST N — N GETs at once after the first; "<whole and right count>".
followers() {
  local pids=() i n=0
  for i in $(seq 1 "$2"); do
    curl -s -m 60 -o "$T/f$i" "$(url "$1")" &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  for i in $(seq 1 "$2"); do [ "sha256:$(sha256 "$T/f$i")" = "$1" ] && n=$((n + 1)); done
  echo "$n"
}

start_waved "wave: {httpclient: {read-idle-timeout: 4s}, registries: {\"$UP\": {insecure: true}}}"
img=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"containerImage\":\"$UP/library/x:latest\"}" "$WAVED_URL/v1alpha2/container" | json_get - 'd["targetImage"]')
img=${img#*/}
REPO="/v2/${img%:*}"

# The first client gives up after 1.5 s of an 8 MiB blob sent at 2 MiB/s.
d=$(mkblob $((8 << 20)) sized $((2 << 20)))
curl -s -m 1.5 -o /dev/null "$(url "$d")" &
lead=$!
sleep 0.3
n=$(followers "$d" 3)
wait "$lead" || true
ok "first client leaves: 3 of 3 others get the whole blob, 1 upstream GET" is "$n $(gets "$d")" "3 1"

# The first client never reads (4 KiB receive buffer): the others are not held
# longer than read-idle-timeout/4 (1 s) by it.
d=$(mkblob $((16 << 20)) sized $((32 << 20)))
$PY - "$WAVED_PORT" "$REPO/blobs/$d" <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % sys.argv[2]).encode())
time.sleep(15)
PY
stall=$!
sleep 0.5
t0=$(date +%s%N)
n=$(followers "$d" 3)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill "$stall" 2>/dev/null
ok "first client stalls: 3 of 3 others whole in ${ms} ms (< 10 s), 1 upstream GET" is \
  "$n $(gets "$d") $([ "$ms" -lt 10000 ] && echo fast)" "3 1 fast"

# Wrong bytes and a cut body: nobody gets the whole blob.
for mode in "wrong $((4 << 20))" "cut $((4 << 20)) $((2 << 20))"; do
  d=$(mkblob $((3 << 20)) $mode)
  curl -s -m 60 -o "$T/lead" "$(url "$d")" &
  lead=$!
  sleep 0.2
  n=$(followers "$d" 3)
  wait "$lead" || true
  whole=0
  for f in "$T/lead" "$T"/f1 "$T"/f2 "$T"/f3; do [ "$(stat -c %s "$f")" = $((3 << 20)) ] && whole=$((whole + 1)); done
  ok "${mode%% *} upstream body: no client gets the whole blob (right: $n, whole: $whole)" is "$n $whole" "0 0"
done

# An unsized body is not shared (it could outgrow its reservation): everyone right.
d=$(mkblob $((3 << 20)) chunked $((4 << 20)))
curl -s -m 60 -o "$T/lead" "$(url "$d")" &
lead=$!
sleep 0.2
n=$(followers "$d" 3)
wait "$lead" || true
ok "chunked upstream body: 3 of 3 others and the first right" is \
  "$n $([ "sha256:$(sha256 "$T/lead")" = "$d" ] && echo lead-ok)" "3 lead-ok"

stop_waved
ok "no sanitizer reports" bash -c "! grep -q 'Sanitizer\|runtime error' $E2E_TMP/waved-*/waved.log"
e2e_finish
