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
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
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
$PY "$T/stall.py" "$STALL_PORT" "$DELAY" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$STALL_PORT/v2/"
STALL=127.0.0.1:$STALL_PORT

start_waved "server.workers: 1
server.worker-queue: 1
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

e2e_finish
