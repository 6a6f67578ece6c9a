#!/usr/bin/env bash
# tests/e2e/creq_parked.sh — container requests parked on the group commit
# (build/request/submit.c, docs/container-requests.md step 3): many
# concurrent requests each get their own token, a 200 means the token is on
# disk (waved is killed with SIGKILL right after the last answer, and every
# token pulls after the restart; first pulls made just before it pull the same
# digests and configs after it, from the store), and a SIGTERM in the middle
# of a burst answers what it accepted before the server goes (every 200 survives).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
mkdir -p "$T/up"
UP_PORT=$(free_port)
$PY "$(dirname "${BASH_SOURCE[0]}")/fake_upstream.py" "$UP_PORT" "$T/up" "$T/upstream.log" &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$UP_PORT/v2/"
UP="127.0.0.1:$UP_PORT"

# One image upstream: a config and its manifest (no layers).
h=$(printf '{"architecture":"amd64","os":"linux","config":{"Env":["V=1"]},"rootfs":{"type":"layers","diff_ids":[]}}' |
  tee "$T/cfg.json" | sha256sum | cut -d' ' -f1)
mv "$T/cfg.json" "$T/up/$h" && echo "sized 0" >"$T/up/$h.mode"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[]}' \
  "$h" "$(stat -c %s "$T/up/$h")" >"$T/up/manifest.json"

# The request nf-wave sends for every task: env and a small data: layer.
mkdir -p "$T/layer/opt"
echo "creq_parked" >"$T/layer/opt/x.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/layer" -cf "$T/l.tar" .
gzip -n -c "$T/l.tar" >"$T/l.tgz"
printf '{"containerImage":"%s/library/x:latest","containerConfig":{"env":["PARKED=1"],"layers":[{"location":"data:%s","gzipDigest":"sha256:%s","gzipSize":%s,"tarDigest":"sha256:%s"}]}}' \
  "$UP" "$(base64 -w0 "$T/l.tgz")" "$(sha256 "$T/l.tgz")" "$(stat -c %s "$T/l.tgz")" "$(sha256 "$T/l.tar")" >"$T/body.json"

# burst N THREADS OUT — N POSTs of the body over THREADS keep-alive connections at once;
# writes "STATUS TOKEN" per request to OUT ("ERR -" when the connection failed).
burst() {
  $PY - "$WAVED_PORT" "$T/body.json" "$1" "$2" >"$3" <<'PY'
import http.client, json, sys, threading
port, body, n, threads = int(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
def run(k):
    c = None
    for _ in range(k):
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            c.request("POST", "/v1alpha2/container", body, {"Content-Type": "application/json"})
            r = c.getresponse(); data = r.read()
            tok = json.loads(data)["containerToken"] if r.status == 200 else "-"
            line = "%d %s" % (r.status, tok)
        except Exception:
            line, c = "ERR -", None
        with lock:  # as they come: the caller watches the count
            print(line, flush=True)
ts = [threading.Thread(target=run, args=(n // threads + (i < n % threads),)) for i in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
PY
}

restart_same_dir() {
  "$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
  WAVED_PID=$!
  E2E_PIDS+=("$WAVED_PID")
  wait_http "$WAVED_URL/health"
}

# check_tokens FILE NPULL — of FILE's 200 lines: how many tokens answer their status 200,
# and how many of the first NPULL pull the augmented image (the request's env and its one
# layer). One keep-alive connection; prints "ALIVE PULLED".
check_tokens() {
  $PY - "$WAVED_PORT" "$1" "$2" <<'PY'
import http.client, json, sys
port, toks, npull = int(sys.argv[1]), [l.split()[1] for l in open(sys.argv[2]) if l.startswith("200 ")], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def get(path, accept=None):
    c.request("GET", path, headers={"Accept": accept} if accept else {})
    r = c.getresponse(); return r.status, r.read()
alive = sum(get("/v1alpha2/container/%s/status" % t)[0] == 200 for t in toks)
pulled = 0
for t in toks[:npull]:
    st, m = get("/v2/wt/%s/library/x/manifests/latest" % t, "application/vnd.oci.image.manifest.v1+json")
    if st != 200:
        continue
    m = json.loads(m)
    st, cfg = get("/v2/wt/%s/library/x/blobs/%s" % (t, m["config"]["digest"]))
    if st == 200 and len(m["layers"]) == 1 and "PARKED=1" in json.loads(cfg)["config"]["Env"]:
        pulled += 1
print(alive, pulled)
PY
}

# pulls FILE FROM N — first manifest GET and config GET of tokens FROM..FROM+N-1 of FILE's
# 200 lines, one keep-alive connection; prints "TOKEN MANIFEST-DIGEST CONFIG-DIGEST" per token
# ("-" for a GET that failed, or a config whose bytes do not hash to its digest).
pulls() {
  $PY - "$WAVED_PORT" "$1" "$2" "$3" <<'PY'
import hashlib, http.client, json, sys
port, frm, n = int(sys.argv[1]), int(sys.argv[3]), int(sys.argv[4])
toks = [l.split()[1] for l in open(sys.argv[2]) if l.startswith("200 ")][frm:frm + n]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for t in toks:
    c.request("GET", "/v2/wt/%s/library/x/manifests/latest" % t,
              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse(); m = r.read(); d = r.getheader("Docker-Content-Digest")
    if r.status != 200:
        print(t, "-", "-"); continue
    want = json.loads(m)["config"]["digest"]
    c.request("GET", "/v2/wt/%s/library/x/blobs/%s" % (t, want))
    r = c.getresponse(); cfg = r.read()
    ok = r.status == 200 and "sha256:" + hashlib.sha256(cfg).hexdigest() == want
    print(t, d, want if ok else "-")
PY
}

start_waved "wave: {registries: {\"$UP\": {insecure: true}}}"

# ---- 400 concurrent requests, then SIGKILL: every 200 is on disk ---------------------------
burst 400 50 "$T/b1"
ok "400 concurrent requests: all 200" is "$(grep -c '^200 ' "$T/b1")" 400
ok "400 distinct tokens" is "$(grep '^200 ' "$T/b1" | cut -d' ' -f2 | sort -u | wc -l)" 400
# First pulls of 30 of them (the small upstream and rewritten configs are kept inline in the
# manifest cache, docs/proxy.md "Cold pulls"), then SIGKILL right after the last answer: after
# the restart the same tokens pull the same digests and config bytes, without the upstream.
pulls "$T/b1" 100 30 >"$T/p1"
ok "30 first pulls: manifest and config (its bytes hash to its digest) answered" \
  is "$(grep -c ' sha256:.* sha256:' "$T/p1")" 30
kill -KILL "$WAVED_PID"
wait "$WAVED_PID" 2>/dev/null || true
restart_same_dir
n0=$(wc -l <"$T/upstream.log")
pulls "$T/b1" 100 30 >"$T/p2"
ok "after SIGKILL: the 30 pulled tokens answer the same manifests and configs" \
  is "$(diff "$T/p1" "$T/p2" && echo same)" same
ok "after SIGKILL: ... from waved's store, the upstream not asked" is "$(($(wc -l <"$T/upstream.log") - n0))" 0
ok "after SIGKILL: all 400 tokens answer their status, 20 pull the augmented image" \
  is "$(check_tokens "$T/b1" 20)" "400 20"

# ---- SIGTERM in the middle of a burst: what was answered 200 survives -------------------------
burst 2000 50 "$T/b2" &
bp=$!
under_way() { [ "$(wc -l <"$T/b2" 2>/dev/null || echo 0)" -ge 200 ]; }
poll_until 30 under_way || true # until the burst is well under way
kill -TERM "$WAVED_PID"
wait "$bp"
rc=0
wait "$WAVED_PID" 2>/dev/null || rc=$?
ok "SIGTERM during a burst: clean exit" is "$rc" 0
n200=$(grep -c '^200 ' "$T/b2" || true)
log "SIGTERM during a burst: $n200 of 2000 answered 200 before the server went"
ok "SIGTERM during a burst: it was under way" test "$n200" -ge 200
ok "SIGTERM during a burst: no 500" is "$(grep -c '^5' "$T/b2" || true)" 0
restart_same_dir
ok "after SIGTERM: every token answered 200 answers its status" is "$(check_tokens "$T/b2" 0)" "$n200 0"
ok "store complete: no error logged" is "$(grep -c ' error ' "$WAVED_DIR/waved.log" || true)" 0
e2e_finish
