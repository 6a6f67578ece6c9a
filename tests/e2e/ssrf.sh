#!/usr/bin/env bash
# tests/e2e/ssrf.sh — the SSRF policy for URLs taken from requests (architecture §6,
# docs/security.md). A file server on 127.0.0.1 holds a build context and a
# layer archive. A waved with the default policy refuses an http buildContext
# and a freeze build's http layer on loopback with a 400 whose message says
# why, and the file server never sees a request. A waved whose config allows
# 127.0.0.1/32 fetches both, and the builds succeed; so does one with Wave's
# wave.security.ssrf-protection.enabled set to false. A bad allow list stops
# waved at start-up with a message naming the file, line and entry.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP
has() { [[ "$1" == *"$2"* ]] || { echo "    '${1:0:400}' lacks '$2'" >&2; return 1; }; }
b64() { printf '%b' "$1" | base64 -w0; }
field() { json_get "$1" "$2" 2>/dev/null || true; }
post() { # BODY OUT — POST /v1alpha2/container; prints the status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
# fetched PATH — how many GETs of PATH the file server has logged.
fetched() { grep -c "\"GET $1 HTTP" "$T/files/server.log" || true; }

# ---- fixtures: a registry with busybox, a file server with a context and a layer -------
make_busybox_layout "$T/busybox"
REG=127.0.0.1:$(start_registry reg anon)
push_layout "$T/busybox" "$REG/library/busybox:latest"

mkdir -p "$T/files" "$T/ctx" "$T/lay"
echo "context fetched over http" >"$T/ctx/hello.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/ctx" -cf "$T/ctx.tar" .
gzip -n -c "$T/ctx.tar" >"$T/files/ctx.tgz"
echo "layer fetched over http" >"$T/lay/http-layer.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/lay" -cf "$T/lay.tar" .
gzip -n -c "$T/lay.tar" >"$T/files/lay.tgz"
FPORT=$(free_port)
(cd "$T/files" && exec $PY -m http.server "$FPORT" --bind 127.0.0.1 >"$T/files/server.log" 2>&1) &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$FPORT/" >/dev/null
FILES="http://127.0.0.1:$FPORT"
log "registry $REG, file server $FILES"

CF=$(b64 'FROM scratch\nCOPY hello.txt /hello.txt\n')
CTX_BODY="{\"containerFile\":\"$CF\",\"buildContext\":{\"location\":\"$FILES/ctx.tgz\",\"tarDigest\":\"sha256:$(sha256 "$T/ctx.tar")\"}}"
LAYER="{\"location\":\"$FILES/lay.tgz\",\"gzipDigest\":\"sha256:$(sha256 "$T/files/lay.tgz")\",\"gzipSize\":$(stat -c %s "$T/files/lay.tgz"),\"tarDigest\":\"sha256:$(sha256 "$T/lay.tar")\"}"
FREEZE_BODY="{\"containerImage\":\"$REG/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$REG/frozen\",\"containerConfig\":{\"layers\":[$LAYER]}}"
DENIED="is a loopback address, which wave.security.outbound does not allow"

# ---- 1. the default policy: loopback URLs are refused at request time ------------------
# The registry is named by address: wave.registries must list it (docs/security.md).
REGS="wave.registries: {'$REG': {insecure: true}}"
start_waved "$REGS"
log "waved (default policy) on $WAVED_URL"
ok "context on 127.0.0.1 -> 400" is "$(post "$CTX_BODY" "$T/d1.json")" 400
ok "context on 127.0.0.1: the message says why" \
  is "$(field "$T/d1.json" 'd["message"]')" \
  "Unable to fetch the build context from '$FILES/ctx.tgz' - 127.0.0.1 $DENIED"
ok "context on 127.0.0.1: nothing was fetched" is "$(fetched /ctx.tgz)" 0
LH_BODY=${CTX_BODY//127.0.0.1:$FPORT/localhost:$FPORT}
ok "context on localhost -> 400" is "$(post "$LH_BODY" "$T/d2.json")" 400
ok "context on localhost: the name and the class are named, not the address" \
  is "$(field "$T/d2.json" '("host \x27localhost\x27 resolves to a loopback address" in d["message"], "127.0.0.1" in d["message"])')" "(True, False)"
MAPPED_BODY=${CTX_BODY//127.0.0.1:$FPORT/[::ffff:127.0.0.1]:$FPORT}
ok "context on [::ffff:127.0.0.1] -> 400 (IPv4-mapped is loopback too)" \
  is "$(post "$MAPPED_BODY" "$T/d3.json") $(field "$T/d3.json" '"loopback" in d["message"]')" "400 True"
ok "freeze layer on 127.0.0.1 -> 400" is "$(post "$FREEZE_BODY" "$T/d4.json")" 400
ok "freeze layer on 127.0.0.1: the message says why" \
  is "$(field "$T/d4.json" 'd["message"]')" \
  "Unable to fetch container layer '$FILES/lay.tgz' - 127.0.0.1 $DENIED"
ok "nothing was fetched from the file server" is "$(fetched /lay.tgz)$(fetched /ctx.tgz)" 00
ok "no build was started" is "$(ls "$WAVED_DIR/data/build" 2>/dev/null | grep -c '^bd-' || true)" 0
stop_waved

# ---- 2. loopback allowed in config.yml: both are fetched and built -------------------
start_waved "$REGS
wave:
  security:
    outbound:
      allow: [127.0.0.1/32]"
log "waved (allow 127.0.0.1/32) on $WAVED_URL"
ok "allowed context -> 200" is "$(post "$CTX_BODY" "$T/a1.json")" 200
ok "allowed context: fetched once" is "$(fetched /ctx.tgz)" 1
ok "allowed context: build DONE" wait_done "$(field "$T/a1.json" 'd["requestId"]')"
ok "allowed context: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
ok "allowed freeze layer -> 200" is "$(post "$FREEZE_BODY" "$T/a2.json")" 200
ok "allowed freeze layer: fetched once" is "$(fetched /lay.tgz)" 1
ok "allowed freeze layer: build DONE" wait_done "$(field "$T/a2.json" 'd["requestId"]')"
ok "allowed freeze layer: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
skopeo copy --quiet --src-tls-verify=false "docker://$(field "$T/a2.json" 'd["targetImage"]')" \
  "dir:$T/frozen" 2>"$T/frozen.err" || true
top=$(json_get "$T/frozen/manifest.json" 'd["layers"][-1]["digest"].split(":")[1]' 2>/dev/null || true)
ok "allowed freeze layer: the image holds the fetched layer" \
  is "$({ tar -xzOf "$T/frozen/$top" http-layer.txt || tar -xzOf "$T/frozen/$top" ./http-layer.txt; } 2>/dev/null)" \
  "layer fetched over http"
# Only the listed address: another loopback address is still refused — also when
# the request names a build that exists already (checked whether or not it fetches).
ok "127.0.0.2 is not on the list -> 400 (same build, exists already)" \
  is "$(post "${CTX_BODY//127.0.0.1:$FPORT/127.0.0.2:$FPORT}" "$T/a3.json") $(field "$T/a3.json" '"127.0.0.2 is a loopback address" in d["message"]')" \
  "400 True"
stop_waved

# ---- 3. protection switched off (Wave's key): fetched from loopback -----------------
start_waved "$REGS
wave.security.ssrf-protection.enabled: false"
log "waved (ssrf-protection off) on $WAVED_URL"
CF3=$(b64 'FROM scratch\nCOPY hello.txt /copied-again.txt\n')
ok "protection off: context on 127.0.0.1 -> 200" is "$(post "${CTX_BODY//$CF/$CF3}" "$T/o1.json")" 200
ok "protection off: fetched" is "$(fetched /ctx.tgz)" 2
stop_waved

# ---- 5. URLs an upstream chooses: blob redirects and token realms (issue 12) ------------
# Misbehaving registries (evil_upstream.py), each configured in wave.registries so
# waved may name them by address at all:
#   RED   redirects every blob to a URL of its choosing (the file server's /secret);
#   CLOSE the same, to a closed loopback port;
#   OTHER sends a token realm on another host (localhost, not 127.0.0.1);
#   PLAIN sends a realm on its own host over plain http, and is not marked insecure;
#   TRUST the same as PLAIN but marked insecure: the control, it does get credentials;
#   FAR   sends a realm on [::1], which the outbound policy does not allow.
echo "a secret an upstream wants waved to read" >"$T/files/secret"
evil() { start_evil_upstream "$@"; } # NAME MODE [URL] (lib.sh); port in EVIL
DEAD=$(free_port) # nothing listens there
evil red redirect "$FILES/secret"; RED=127.0.0.1:$EVIL
evil close redirect "http://127.0.0.1:$DEAD/secret"; CLOSE=127.0.0.1:$EVIL
evil tok-other token; TOK_OTHER=$EVIL
evil tok-plain token; TOK_PLAIN=$EVIL
evil tok-trust token; TOK_TRUST=$EVIL
evil other bearer "http://localhost:$TOK_OTHER/token"; OTHER=127.0.0.1:$EVIL
evil plain bearer "http://127.0.0.1:$TOK_PLAIN/token"; PLAIN=127.0.0.1:$EVIL
evil trust bearer "http://127.0.0.1:$TOK_TRUST/token"; TRUST=127.0.0.1:$EVIL
evil far bearer "http://[::1]:$TOK_TRUST/token"; FAR=127.0.0.1:$EVIL
UNREACH=127.0.0.1:$(free_port)
CRED="username: evil-user, password: evil-pass, allow: {anonymous: pull}"
start_waved "wave:
  security: {outbound: {allow: [localhost]}}
  httpclient: {retry: {attempts: 1}}
  registries:
    '$RED': {insecure: true}
    '$CLOSE': {insecure: true}
    '$UNREACH': {insecure: true}
    '$OTHER': {$CRED, insecure: true}
    '$PLAIN': {$CRED}
    '$TRUST': {$CRED, insecure: true}
    '$FAR': {insecure: true}"
log "waved (upstream-chosen URLs) on $WAVED_URL"
inspect() { # IMAGE OUT — POST /v1alpha1/inspect; prints the status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "{\"containerImage\":\"$1\"}" "$WAVED_URL/v1alpha1/inspect"
}
ok "blob redirect to loopback: inspect refused 403" is "$(inspect "$RED/x/img:1" "$T/u1.json")" 403
ok "... the message names the upstream and the class of failure" \
  is "$(field "$T/u1.json" 'd["message"]')" \
  "Registry '$RED' redirected a blob to an address the outbound policy does not allow"
ok "... waved never fetched the secret" is "$(fetched /secret)" 0
ok "... no hash of anything in the answer" is "$(grep -c 'sha256\|hashes' "$T/u1.json" || true)" 0
ok "redirect to a closed port: same status" is "$(inspect "$CLOSE/x/img:1" "$T/u2.json")" 403
ok "... and the same words: open and closed ports look alike" \
  is "$(field "$T/u2.json" 'd["message"]' | sed "s/$CLOSE/R/")" \
  "$(field "$T/u1.json" 'd["message"]' | sed "s/$RED/R/")"
ok "... nor did anything after it (the closed port was never tried)" is "$(fetched /secret)" 0

ok "realm on another host: inspect works" is "$(inspect "$OTHER/x/img:1" "$T/u4.json")" 200
ok "... the realm was asked" test "$(grep -c 'GET /token' "$T/evil-tok-other.log")" -ge 1
ok "... without the registry's credentials" is "$(grep -c 'auth=Basic' "$T/evil-tok-other.log" || true)" 0
ok "realm over plain http (registry not insecure): inspect works" \
  is "$(inspect "$PLAIN/x/img:1" "$T/u5.json")" 200
ok "... the realm got no credentials" is "$(grep -c 'auth=Basic' "$T/evil-tok-plain.log" || true)" 0
ok "control: the same realm of an insecure registry gets the credentials" \
  is "$(inspect "$TRUST/x/img:1" "$T/u6.json") $(grep -c "auth=Basic $(printf evil-user:evil-pass | base64 -w0)" "$T/evil-tok-trust.log")" \
  "200 1"

ok "realm on a loopback address the policy does not allow: 403, never asked" \
  is "$(inspect "$FAR/x/img:1" "$T/u12.json") $(field "$T/u12.json" 'd["message"]')" \
  "403 Registry '$FAR' - its token service is refused by the outbound policy: ::1 is a loopback address, which wave.security.outbound does not allow"
ok "... (the token service saw one request, the control's)" is "$(grep -c 'GET /token' "$T/evil-tok-trust.log")" 1
ok "registry down: 502 naming the upstream" \
  is "$(post "{\"containerImage\":\"$UNREACH/x/img:1\"}" "$T/u7.json") $(field "$T/u7.json" 'd["message"]')" \
  "502 Unable to reach registry '$UNREACH' - connection failed"
ok "... and logged with the transport's own words" grep -q "upstream $UNREACH: .*Connection refused\|upstream $UNREACH: .*Failed to connect" "$WAVED_DIR/waved.log"
ok "registry down: inspect 502, no port state in the text" \
  is "$(inspect "$UNREACH/x/img:1" "$T/u8.json") $(grep -ci 'refused\|port' "$T/u8.json" || true)" "502 0"
ok "an unconfigured loopback registry in containerImage -> 400" \
  is "$(post "{\"containerImage\":\"127.0.0.1:$DEAD/x/img:1\"}" "$T/u9.json") $(field "$T/u9.json" 'd["message"]')" \
  "400 Registry '127.0.0.1:$DEAD' names an address, not a registry, and wave.registries does not list it"
ok "... also as the containerImage of a freeze build" \
  is "$(post "{\"containerImage\":\"127.0.0.1:$DEAD/x/img:1\",\"freeze\":true,\"buildRepository\":\"$RED/frozen\"}" "$T/u13.json")" 400
ok "... and in inspect, any spelling" \
  is "$(inspect "0x7f.1:$DEAD/x/img:1" "$T/u10.json") $(inspect "localhost:$DEAD/x/img:1" "$T/u11.json")" "400 400"
stop_waved

# ---- 4. a bad allow list is refused at start-up -------------------------------------
mkdir -p "$T/bad"
printf 'storage: {path: %s}\nwave:\n  security:\n    outbound:\n      allow:\n        - 10.0.0.1/8\n' \
  "$T/bad/data" >"$T/bad/config.yml"
rc=0
timeout 10 "$WAVED_BIN" --config "$T/bad/config.yml" >"$T/bad/out.log" 2>&1 || rc=$?
ok "bad allow list: waved exits non-zero" test "$rc" -ne 0 -a "$rc" -ne 124
ok "bad allow list: the error names file, line and entry" \
  has "$(cat "$T/bad/out.log")" "$T/bad/config.yml:6: wave.security.outbound.allow: '10.0.0.1/8' has bits set past its /8 prefix"

e2e_finish
