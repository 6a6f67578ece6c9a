#!/usr/bin/env bash
# tests/e2e/creds.sh — configured registry credentials act only for the callers
# wave.registries.<host>.allow names (issue 12, docs/security.md). A docker-registry
# behind htpasswd Basic auth (PRIV) holds busybox; waved has its credentials with
#   allow: {accounts: {alice: push, bob: pull}}   (anonymous: none, the default)
# and an anonymous registry (SRC). Then, case by case:
#   - anonymous push (freeze into PRIV) -> 403 naming the registry; bob (pull) too;
#   - alice's freeze into PRIV is pushed (the image is there);
#   - anonymous pulls are refused 403 naming the registry through containerImage,
#     containerIncludes, inspect and the plain /v2/<host>/ form (also after bob's pull
#     filled the cache), and a FROM build gets no credentials (it fails); bob's succeed;
#   - a mirror into PRIV by bob is refused, by alice accepted;
#   - a second waved whose wave.build.repo is on PRIV builds into it anonymously.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
USER_=creds-user
PASS_=creds-pass-42
ALICE=alice-secret-token
BOB=bob-secret-token
field() { json_get "$1" "$2" 2>/dev/null || true; }
b64() { printf '%b' "$1" | base64 -w0; }
hash() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
post() { # PATH BODY OUT — prints the status
  curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$2" "$WAVED_URL$1"
}
HAVE_BUILDAH=1
command -v buildah >/dev/null || HAVE_BUILDAH=0

make_busybox_layout "$T/busybox"
SRC=127.0.0.1:$(start_registry src anon)
PRIV=127.0.0.1:$(start_registry priv basic "$USER_" "$PASS_")
push_layout "$T/busybox" "$SRC/library/busybox:latest"
push_layout "$T/busybox" "$PRIV/library/busybox:latest" "$USER_:$PASS_"
log "anonymous $SRC, basic $PRIV"
# The plain form /v2/<host>/... takes Wave's name grammar, which has no ports: it reaches
# PRIV as "127.0.0.1" through a relay on port 80 (skipped when port 80 is taken).
PLAIN80=0
$PY "$(dirname "${BASH_SOURCE[0]}")/slow_proxy.py" 80 "${PRIV#*:}" 0 >"$T/relay80.log" 2>&1 &
E2E_PIDS+=($!)
plain80_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:80/v2/)" = 401 ]; }
poll_until 5 plain80_up && PLAIN80=1
[ "$PLAIN80" = 1 ] || echo "# port 80 unavailable: plain-form checks skipped"

WAVED_LOG_LEVEL=info
start_waved "wave:
  accounts: {alice: $(hash $ALICE), bob: $(hash $BOB)}
  build: {failure: {duration: 0s}}
  registries:
    '$SRC': {insecure: true}
    '$PRIV':
      username: $USER_
      password: $PASS_
      insecure: true
      allow: {accounts: {alice: push, bob: pull}}
    '127.0.0.1':
      username: $USER_
      password: $PASS_
      insecure: true
      allow: {accounts: {alice: push, bob: pull}}"
log "waved on $WAVED_URL"
DENY_PULL="anonymous requests are not allowed to pull from registry $PRIV with its configured credentials (wave.registries.\"$PRIV\".allow)"
DENY_PUSH="anonymous requests are not allowed to push to registry $PRIV with its configured credentials (wave.registries.\"$PRIV\".allow)"

# ---- pulls --------------------------------------------------------------------------------
IMG="$PRIV/library/busybox:latest"
ok "anonymous containerImage -> 403" is "$(post /v1alpha2/container "{\"containerImage\":\"$IMG\"}" "$T/p1.json")" 403
ok "... naming the registry" is "$(field "$T/p1.json" 'd["message"]')" "Registry '$PRIV' - $DENY_PULL"
ok "bob containerImage -> 200" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$IMG\",\"towerAccessToken\":\"$BOB\"}" "$T/p2.json")" 200
TI=$(field "$T/p2.json" 'd["targetImage"]')
W=127.0.0.1:$WAVED_PORT
ok "bob's token pulls through waved" \
  bash -c "skopeo inspect --tls-verify=false --raw 'docker://$W/${TI#*/}' >'$T/bob.manifest'"
DIGEST=$(skopeo inspect --tls-verify=false --creds "$USER_:$PASS_" "docker://$IMG" | json_get - 'd["Digest"]')
ok "anonymous containerIncludes -> 403" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"containerIncludes\":[\"$IMG\"]}" "$T/p3.json") $(field "$T/p3.json" 'd["message"]')" \
  "403 Registry '$PRIV' - $DENY_PULL"
ok "bob containerIncludes -> 200" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"containerIncludes\":[\"$IMG\"],\"towerAccessToken\":\"$BOB\"}" "$T/p4.json")" 200
ok "anonymous inspect -> 403" is "$(post /v1alpha1/inspect "{\"containerImage\":\"$IMG\"}" "$T/p5.json")" 403
ok "... naming the registry" has "$(field "$T/p5.json" 'd["message"]')" "$DENY_PULL"
ok "bob inspect -> 200" \
  is "$(post /v1alpha1/inspect "{\"containerImage\":\"$IMG\",\"towerAccessToken\":\"$BOB\"}" "$T/p6.json") $(field "$T/p6.json" 'd["container"]["digest"]')" \
  "200 $DIGEST"
ok "inspect with an unknown token -> 401" \
  is "$(post /v1alpha1/inspect "{\"containerImage\":\"$IMG\",\"towerAccessToken\":\"nope\"}" "$T/p7.json")" 401
DENY_PULL80="anonymous requests are not allowed to pull from registry 127.0.0.1 with its configured credentials (wave.registries.\"127.0.0.1\".allow)"
plain() { # PATH [CURL ARGS] — GET of the plain form; prints status and error code
  local code; code=$(curl -s -o "$T/plain.json" -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "${@:2}" "$WAVED_URL/v2/127.0.0.1/$1")
  echo "$code $(field "$T/plain.json" 'd["errors"][0]["code"]')"
}
if [ "$PLAIN80" = 1 ]; then
ok "bob plain form (Basic) by tag -> 200" is "$(plain library/busybox/manifests/latest -u "bob:$BOB")" "200 "
ok "anonymous plain form by tag -> 403 DENIED" is "$(plain library/busybox/manifests/latest)" "403 DENIED"
ok "... naming the registry" has "$(field "$T/plain.json" 'd["errors"][0]["message"]')" "$DENY_PULL80"
ok "anonymous plain form by digest, cached by bob's pull -> still 403" \
  is "$(plain "library/busybox/manifests/$DIGEST")" "403 DENIED"
ok "plain form with wrong Basic credentials -> 401" \
  is "$(plain library/busybox/manifests/latest -u "bob:wrong")" "401 UNAUTHORIZED"
fi

# ---- pushes -------------------------------------------------------------------------------
ok "anonymous freeze into $PRIV -> 403" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$PRIV/frozen\"}" "$T/f1.json")" 403
ok "... naming the registry" is "$(field "$T/f1.json" 'd["message"]')" "Container repository '$PRIV/frozen' - $DENY_PUSH"
ok "bob (pull only) freeze -> 403" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$PRIV/frozen\",\"towerAccessToken\":\"$BOB\"}" "$T/f2.json") $(field "$T/f2.json" '"account \x27bob\x27 is not allowed to push to registry '"$PRIV"'" in d["message"]')" \
  "403 True"
ok "anonymous cacheRepository on $PRIV -> 403" \
  is "$(post /v1alpha2/container "{\"containerFile\":\"$(b64 "FROM $SRC/library/busybox:latest\n")\",\"cacheRepository\":\"$PRIV/cache\"}" "$T/f3.json")" 403
ok "no build ran for the refused requests" is "$(ls "$WAVED_DIR/data/build" 2>/dev/null | grep -c '^bd-' || true)" 0
ok "bob mirror into $PRIV -> 403" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"mirror\":true,\"buildRepository\":\"$PRIV/mirrored\",\"towerAccessToken\":\"$BOB\"}" "$T/m1.json")" 403
ok "alice mirror into $PRIV -> 200 and DONE" \
  bash -c "[ \"\$(curl -s -o '$T/m2.json' -w '%{http_code}' -H 'Content-Type: application/json' --data-binary '{\"containerImage\":\"$SRC/library/busybox:latest\",\"mirror\":true,\"buildRepository\":\"$PRIV/mirrored\",\"towerAccessToken\":\"$ALICE\"}' '$WAVED_URL/v1alpha2/container')\" = 200 ]"
mirrored() { skopeo inspect --tls-verify=false --creds "$USER_:$PASS_" "docker://$PRIV/mirrored/library/busybox:latest" >/dev/null 2>&1; }
POLL_EVERY=0.2 poll_until 60 mirrored || true
ok "... the mirrored image is in $PRIV (pushed with the credentials for alice)" \
  skopeo inspect --tls-verify=false --creds "$USER_:$PASS_" "docker://$PRIV/mirrored/library/busybox:latest"

if [ "$HAVE_BUILDAH" = 1 ]; then
  ok "alice freeze into $PRIV -> 200" \
    is "$(post /v1alpha2/container "{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$PRIV/frozen\",\"towerAccessToken\":\"$ALICE\"}" "$T/f4.json")" 200
  ok "... the build ends DONE" wait_done "$(field "$T/f4.json" 'd["requestId"]')"
  ok "... succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
  ok "... the image was pushed into $PRIV" \
    skopeo inspect --tls-verify=false --creds "$USER_:$PASS_" "docker://$(field "$T/f4.json" 'd["targetImage"]')"
  # FROM lines: the auth file holds only what the caller may use.
  ok "anonymous build FROM $PRIV -> accepted" \
    is "$(post /v1alpha2/container "{\"containerFile\":\"$(b64 "FROM $IMG\nRUN echo anon\n")\"}" "$T/b1.json")" 200
  ok "... and fails: its builder had no credentials for $PRIV" wait_done "$(field "$T/b1.json" 'd["requestId"]')"
  ok "... succeeded false" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" False
  ok "bob build FROM $PRIV -> accepted" \
    is "$(post /v1alpha2/container "{\"containerFile\":\"$(b64 "FROM $IMG\nRUN echo bob\n")\",\"towerAccessToken\":\"$BOB\"}" "$T/b2.json")" 200
  ok "... and succeeds" wait_done "$(field "$T/b2.json" 'd["requestId"]')"
  ok "... succeeded true" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
fi
stop_waved

# ---- wave.build.repo on the credentialed registry: anonymous builds keep working -----------
if [ "$HAVE_BUILDAH" = 1 ]; then
  start_waved "wave:
  build: {repo: '$PRIV/wave/build'}
  registries:
    '$SRC': {insecure: true}
    '$PRIV': {username: $USER_, password: $PASS_, insecure: true}"
  ok "anonymous build into wave.build.repo on $PRIV -> 200" \
    is "$(post /v1alpha2/container "{\"containerFile\":\"$(b64 "FROM $SRC/library/busybox:latest\nRUN echo own\n")\"}" "$T/o1.json")" 200
  ok "... DONE" wait_done "$(field "$T/o1.json" 'd["requestId"]')"
  ok "... succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
  ok "... pushed with waved's credentials" \
    skopeo inspect --tls-verify=false --creds "$USER_:$PASS_" "docker://$(field "$T/o1.json" 'd["containerImage"]')"
  ok "... and pulled back through its token" \
    bash -c "skopeo inspect --tls-verify=false --raw 'docker://127.0.0.1:$WAVED_PORT/$(field "$T/o1.json" 'd["targetImage"]' | cut -d/ -f2-)' >/dev/null"
  stop_waved
fi

e2e_finish
