#!/usr/bin/env bash
# tests/e2e/blob_redirects.sh — the one redirect policy of blob GETs
# (registry/fetch.h wv_fetch_follow) as its two remaining callers meet it: a
# containerIncludes image's config blob (build/layers.c) and a mirror's blob
# stream (registry/copy_blob.c). The source is evil_upstream.py in "hops" mode,
# whose blobs redirect on the registry (absolute and relative Locations), off
# it (localhost, which the outbound policy allows; 127.0.0.2, which it does
# not), to a non-http URL, and three (Wave's cap) or four times. Last, a
# mirror whose layer trickles in is cut mid-stream by wave.mirror.max-duration.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
TOKEN=redirect-e2e-token
TOKEN_HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
field() { json_get "$1" "d.get('$2')"; }

start_evil_upstream hops hops; EVIL=127.0.0.1:$EVIL
DST=127.0.0.1:$(start_registry dst basic dst-user dst-pass)
log "source $EVIL (hops), target $DST"

waved_with() { # EXTRA-YAML — a waved that knows both registries and allows localhost
  start_waved "wave:
  accounts: {alice: $TOKEN_HASH}
  security: {outbound: {allow: [localhost]}}
  httpclient: {retry: {attempts: 1}}
  registries:
    '$EVIL': {insecure: true}
    '$DST': {username: dst-user, password: dst-pass, allow: {accounts: {alice: push}}}
$1"
}

# include SCENARIO — a container request including $EVIL/SCENARIO/img:1; prints the status.
include() {
  curl -s -o "$T/inc-$1.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$EVIL/on/img:1\",\"containerIncludes\":[\"$EVIL/$1/img:1\"]}" \
    "$WAVED_URL/v1alpha2/container"
}

# mirror SCENARIO — mirrors $EVIL/SCENARIO/img:1 to $DST; waits for its end (up to 60 s);
# prints "<succeeded> <record's reason>".
mirror() {
  curl -s -o "$T/mir-$1.json" -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$EVIL/$1/img:1\",\"mirror\":true,\"buildRepository\":\"$DST/m\",\"towerAccessToken\":\"$TOKEN\"}" \
    "$WAVED_URL/v1alpha2/container"
  wait_done "$(field "$T/mir-$1.json" requestId)" 60 || { echo "not done"; return 0; }
  curl -s -o "$T/rec-$1.json" "$WAVED_URL/v1alpha1/mirrors/$(field "$T/mir-$1.json" buildId)"
  echo "$(field "$T/st.json" succeeded) $(field "$T/rec-$1.json" reason)"
}

hops_of() { grep -c "GET /.*hop/" "$T/evil-hops.log" || true; } # redirect targets asked so far

waved_with ""
log "waved on $WAVED_URL"

# ---- containerIncludes: the config blob ----------------------------------------------------
for s in on three rel off; do
  ok "include, redirects ($s): 200" is "$(include $s)" 200
done
ok "... the relative Location was resolved against the blob's path" \
  grep -q "GET /v2/rel/img/blobs/hop/0/sha256:" "$T/evil-hops.log"
ok "... the off-registry hop went to localhost" grep -q "GET /hop/0/sha256:.* auth=-" "$T/evil-hops.log"
before=$(hops_of)
ok "include, four redirects: 400" is "$(include four)" 400
ok "... the message says so" is "$(field "$T/inc-four.json" message)" \
  "Cannot resolve container include '$EVIL/four/img:1' - the registry redirected its config blob more than 3 times"
ok "... and the fourth redirect was not followed" is "$(( $(hops_of) - before ))" 3
ok "include, ftp Location: 502" is "$(include ftp)" 502
ok "... the message says so" is "$(field "$T/inc-ftp.json" message)" \
  "Registry '$EVIL' redirected a blob to an unusable location"
ok "include, redirect to 127.0.0.2 (outbound policy): 403" is "$(include deny)" 403
ok "... the message says so" is "$(field "$T/inc-deny.json" message)" \
  "Registry '$EVIL' - it redirected a blob to an address the outbound policy does not allow"

# ---- mirror: the blob stream -----------------------------------------------------------------
for s in on three rel off; do
  ok "mirror, redirects ($s): succeeded" is "$(mirror $s)" "True None"
done
ok "... the config blob reached the target" \
  is "$(curl -s -o /dev/null -w '%{http_code}' -u dst-user:dst-pass "http://$DST/v2/m/off/img/blobs/$(head -1 "$T/evil-hops.out")")" 200
before=$(hops_of)
ok "mirror, four redirects: failed, saying why" has "$(mirror four)" \
  "False Container mirror failed: fetch blob $(head -1 "$T/evil-hops.out") of four/img: source registry $EVIL redirected the blob more than 3 times"
ok "... and the fourth redirect was not followed" is "$(( $(hops_of) - before ))" 3
ok "mirror, ftp Location: failed, saying why" has "$(mirror ftp)" \
  "source registry $EVIL redirected the blob to an unusable location"
ok "mirror, redirect to 127.0.0.2: failed, naming the outbound policy" has "$(mirror deny)" \
  "source registry $EVIL: blob redirect: 127.0.0.2 is a loopback address, which wave.security.outbound does not allow"
stop_waved

# ---- mirror: cancelled mid-stream ------------------------------------------------------------
# The layer takes 32 s to arrive; a 2 s mirror deadline must cut the stream (the ring's
# producer sees the stop) and end the mirror long before.
waved_with "wave.mirror: {max-duration: 2s, retry-attempts: 0}"
t0=$(date +%s)
out=$(mirror slow)
took=$(( $(date +%s) - t0 ))
ok "slow mirror: failed" has "$out" "False"
ok "... within 15 s of its start (took ${took} s; the stream needs 32)" test "$took" -le 15
for i in $(seq 1 100); do grep -q '^cut ' "$T/evil-hops.log" && break; sleep 0.1; done
cut=$(sed -n 's/^cut //p' "$T/evil-hops.log" | head -1)
ok "... the source saw the stream cut part way (${cut:-none} bytes)" test "${cut:-0}" -gt 0 -a "${cut:-0}" -lt 8388608
ok "... and nothing of the layer reached the target" \
  is "$(curl -s -o /dev/null -w '%{http_code}' -u dst-user:dst-pass "http://$DST/v2/m/slow/img/tags/list")" 404
t0=$(date +%s)
stop_waved
ok "waved stops promptly after it" test $(( $(date +%s) - t0 )) -le 10

e2e_finish
