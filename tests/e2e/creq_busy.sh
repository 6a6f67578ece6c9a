#!/usr/bin/env bash
# tests/e2e/creq_busy.sh — a container request answered 503 because the worker queue is full
# costs no pull permit (docs/rate-limits.md, "What takes a permit"). waved runs one worker and a
# worker queue of one; a stalled upstream holds the worker and fills the queue. Requests from
# another address for an image not seen yet start on the IO loop (server.inline-container-
# requests, the default), which takes their permit and then hands them to a worker: the queue
# is full, so they are answered 503. Afterwards that address still has its whole budget.
# Clients are told apart by their source address (curl --interface 127.0.0.x).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v skopeo >/dev/null || ! command -v docker-registry >/dev/null; then
  echo "skip: skopeo or docker-registry not installed"
  exit 0
fi
T=$E2E_TMP

REG=127.0.0.1:$(start_registry anon anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"

# A registry that answers /v2/ at once and everything else after DELAY seconds (404).
STALL_PORT=$(free_port)
DELAY=$(slow 4)
cat >"$T/stall.py" <<'PY'
import http.server, sys, time
PORT, DELAY = int(sys.argv[1]), float(sys.argv[2])
MAN = (open(sys.argv[3], "rb").read(), "application/vnd.oci.image.manifest.v1+json")
QUICK = {"/v2/lib/quick/manifests/1": MAN, "/v2/lib/quick/manifests/" + sys.argv[6]: MAN,
         "/v2/lib/quick/blobs/" + sys.argv[5]: (open(sys.argv[4], "rb").read(), "application/octet-stream")}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        if self.path in QUICK:
            body, ct = QUICK[self.path]
            self.send_response(200)
            self.send_header("Content-Type", ct)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return body
        if self.path != "/v2/":
            time.sleep(DELAY)
            self.send_response(404)
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body
    def do_GET(self):
        self.wfile.write(self.answer(b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}'))
    def do_HEAD(self):
        self.answer(b"")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
PY
# lib/quick:1 is answered at once: an image with no layers (its pulls by other digests stall).
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}' >"$T/quick.cfg"
QCFG=sha256:$(sha256sum "$T/quick.cfg" | cut -d' ' -f1)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
  "$QCFG" "$(stat -c %s "$T/quick.cfg")" >"$T/quick.man"
QMAN=sha256:$(sha256sum "$T/quick.man" | cut -d' ' -f1)
$PY "$T/stall.py" "$STALL_PORT" "$DELAY" "$T/quick.man" "$T/quick.cfg" "$QCFG" "$QMAN" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$STALL_PORT/v2/"
STALL=127.0.0.1:$STALL_PORT

start_waved "server.workers: 1
server.worker-queue: 1
server.registry-workers: 1
server.registry-workers-per-client: 1
wave:
  registries: {\"$REG\": {insecure: true}, \"$STALL\": {insecure: true}}
rate-limit:
  enabled: true
  pull: {anonymous: 3/1h, authenticated: 3/1h}"
log "waved on $WAVED_URL, registry on $REG, stalled registry on $STALL"

# post FROM IMAGE OUT — POST /v1alpha2/container from source address FROM; prints the status.
post() {
  curl -s --interface "$1" -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST --data-binary "{\"containerImage\":\"$2\"}" "$WAVED_URL/v1alpha2/container"
}

# The worker and the one queue place are taken by requests of another address (S).
S=127.0.0.5
X=127.0.0.6
post $S "$STALL/lib/held:1" "$T/s1.json" >"$T/s1.code" &
S1=$!
sleep 0.5 # the worker has taken it and waits for the stalled registry
post $S "$STALL/lib/held:2" "$T/s2.json" >"$T/s2.code" &
S2=$!
sleep 0.5
ok "queue full: X's request for an image not seen yet is 503" \
  is "$(post $X "$STALL/lib/other:1" "$T/x1.json")" 503
ok "and again (503)" is "$(post $X "$STALL/lib/other:2" "$T/x2.json")" 503
ok "and a third time (503)" is "$(post $X "$REG/library/busybox:latest" "$T/x3.json")" 503
wait $S1 $S2 || true
ok "the held requests were answered once the registry did (400: no such image)" \
  is "$(cat "$T/s1.code") $(cat "$T/s2.code")" "400 400"

# X's three 503s cost nothing: its whole budget of 3 is left.
for i in 1 2 3; do
  ok "X's container request $i: 200" is "$(post $X "$REG/library/busybox:latest" "$T/ok$i.json")" 200
done
ok "X's fourth: 429 (the budget was 3)" \
  is "$(post $X "$REG/library/busybox:latest" "$T/x4.json")|$(json_get "$T/x4.json" 'd["message"]')" \
  "429|Request exceeded pull rate limit for IP $X"

# The same for a manifest pull by digest through a token (its hot record written by a first pull,
# so the IO loop knows whose permit it is): the loop takes the permit, misses the cache and hands
# the request to the registry pool. Y holds its one registry share with a pull the stalled
# registry holds, a second one waits, and the queue (one place) is full: Y's next pulls are 503,
# and their permits are given back. Without that, the first of them would take Y's last permit
# and the next would be 429.
H=127.0.0.8
Y=127.0.0.7
ok "a token for the quick image: 200" is "$(post $H "$STALL/lib/quick:1" "$T/tk.json")" 200
TK=$(json_get "$T/tk.json" 'd["containerToken"]')
pull() { # FROM REF — GET of a manifest of the quick image through the token, from address FROM
  curl -s --interface "$1" -o "$T/pull.json" -w '%{http_code}' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$WAVED_URL/v2/wt/$TK/lib/quick/manifests/$2"
}
ok "Y pulls the token by tag (no permit): 200" is "$(pull $Y 1)" 200
A=sha256:$(printf a | sha256sum | cut -d' ' -f1)
B=sha256:$(printf b | sha256sum | cut -d' ' -f1)
C=sha256:$(printf c | sha256sum | cut -d' ' -f1)
pull $Y "$A" >"$T/pa.code" & # permit 1; the registry holds it DELAY seconds
PA=$!
sleep 0.5
pull $Y "$B" >"$T/pb.code" & # permit 2 (taken when it runs); waits for Y's share
PB=$!
sleep 0.5
for i in 1 2 3; do
  ok "registry queue full: Y's pull by digest $i is 503" is "$(pull $Y "$C")" 503
done
wait $PA $PB || true
ok "the held pulls were answered once the registry did (404)" \
  is "$(cat "$T/pa.code") $(cat "$T/pb.code")" "404 404"
ok "Y's third permit: the quick image by digest, 200" is "$(pull $Y "$QMAN")" 200
ok "Y's fourth: 429 TOOMANYREQUESTS (the budget was 3)" \
  is "$(pull $Y "$QMAN")|$(json_get "$T/pull.json" 'd["errors"][0]["code"]')" "429|TOOMANYREQUESTS"

e2e_finish
