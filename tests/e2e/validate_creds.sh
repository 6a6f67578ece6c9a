#!/usr/bin/env bash
# tests/e2e/validate_creds.sh — POST /v1alpha2/validate-creds and the legacy
# POST /validate-creds (Wave contract §12, docs/compatibility.md) against real
# docker-registry instances on loopback: one with htpasswd (Basic) and one with
# a Bearer token service. Right credentials answer true, wrong ones false,
# missing fields 400; loopback is reached only because
# wave.security.outbound.allow lists it — without it the answer is a 400 that
# names the policy, and nothing is sent.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in docker-registry htpasswd openssl; do
  command -v $c >/dev/null || { echo "skip: $c not installed (packaging/deps.sh test)"; exit 0; }
done
T=$E2E_TMP
BASIC=127.0.0.1:$(start_registry basic basic alice s3cret)
TOKEN=127.0.0.1:$(start_registry tok token bob hunter2)
DEAD=127.0.0.1:$(free_port)
# A plain web server that logs every request it gets: what reached it, and what did not.
SPYP=$(free_port)
(cd "$T" && exec $PY -m http.server "$SPYP" --bind 127.0.0.1) >"$T/spy.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$SPYP/"
SPY=127.0.0.1:$SPYP

start_waved "wave:
  security: {outbound: {allow: [127.0.0.1/32]}}"
log "waved on $WAVED_URL; basic registry $BASIC, token registry $TOKEN"

# v PATH BODY — prints "<status> <body>".
v() {
  local out; out=$(curl -s -o "$T/v.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST --data-binary "$2" "$WAVED_URL$1")
  echo "$out $(cat "$T/v.out")"
}
body() { printf '{"userName":"%s","password":"%s","registry":"%s"}' "$1" "$2" "$3"; }

ok "Basic registry, right password: true" is "$(v /v1alpha2/validate-creds "$(body alice s3cret "$BASIC")")" "200 true"
ok "Basic registry, wrong password: false" is "$(v /v1alpha2/validate-creds "$(body alice nope "$BASIC")")" "200 false"
ok "Basic registry, unknown user: false" is "$(v /v1alpha2/validate-creds "$(body mallory s3cret "$BASIC")")" "200 false"
ok "token registry, right password: true" is "$(v /v1alpha2/validate-creds "$(body bob hunter2 "$TOKEN")")" "200 true"
ok "token registry, wrong password: false" is "$(v /v1alpha2/validate-creds "$(body bob nope "$TOKEN")")" "200 false"
ok "a web server that is no registry: false" is "$(v /v1alpha2/validate-creds "$(body a b "$SPY")")" "200 false"
ok "  it was asked for /v2/ (the allow list let it through)" grep -q 'GET /v2/' "$T/spy.log"
ok "nothing listening: false" is "$(v /v1alpha2/validate-creds "$(body alice s3cret "$DEAD")")" "200 false"
ok "legacy /validate-creds wraps the body in request: true" \
  is "$(v /validate-creds "{\"request\":$(body alice s3cret "$BASIC")}")" "200 true"
ok "legacy, wrong password: false" \
  is "$(v /validate-creds "{\"request\":$(body alice x "$BASIC")}")" "200 false"
r=$(v /validate-creds "$(body alice s3cret "$BASIC")")
ok "legacy without request: 400" has "$r" "400 "
ok "  says so" has "$r" "'request'"
r=$(v /v1alpha2/validate-creds '{"userName":"alice","registry":"x"}')
ok "missing password: 400" has "$r" "400 "
ok "  names the field" has "$r" "Missing required field 'password'"
r=$(v /v1alpha2/validate-creds '{"userName":"  ","password":"p","registry":"x"}')
ok "blank userName: 400" has "$r" "Missing required field 'userName'"
r=$(v /v1alpha2/validate-creds '{"userName":1,"password":"p","registry":"x"}')
ok "userName not a string: 400" has "$r" "400 "
r=$(v /v1alpha2/validate-creds '{"userName":')
ok "malformed JSON: 400" has "$r" "400 "
ok "  with the JSON error" has "$r" "Malformed JSON"
code=$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha2/validate-creds")
ok "GET is 405" is "$code" 405
stop_waved

# The default policy: loopback is refused before anything is sent.
start_waved ""
n0=$(grep -c 'GET /v2/' "$T/spy.log" || true)
r=$(v /v1alpha2/validate-creds "$(body alice s3cret "$SPY")")
ok "default outbound policy: loopback registry is a 400" has "$r" "400 "
ok "  naming the policy" has "$r" "wave.security.outbound"
ok "  and nothing reached the registry" is "$(grep -c 'GET /v2/' "$T/spy.log" || true)" "$n0"
stop_waved
ok "no sanitizer reports" bash -c "! grep -q 'Sanitizer\|runtime error' '$WAVED_DIR/waved.log'"
e2e_finish
