#!/usr/bin/env bash
# tests/e2e/mirror.sh — mirror requests (contract §7.1) against two real
# docker-registry instances: the source anonymous, holding an amd64+arm64
# index and a single-arch image; the target behind htpasswd Basic auth whose
# credentials waved reads from wave.registries. Requests carry a
# towerAccessToken matching wave.accounts. After the mirrors, waved is stopped
# and the target is checked directly with skopeo: the index digest and both
# child digests equal the source's, and `skopeo copy --all` from it works.
# Also: a repeated request is cached, identical concurrent requests share one
# mirror, an anonymous request and a target without credentials get the spec's
# 400s, a missing source is a 400, and a source whose layer is gone makes the
# job fail with a reason in the status and the record.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
USER_=mirror-user
PASS_=mirror-pass-42
TOKEN=mirror-e2e-token
has() { [[ "$1" == *"$2"* ]] || { echo "    '${1:0:400}' lacks '$2'" >&2; return 1; }; }

# ---- registries and images -------------------------------------------------------------
make_multiarch_layout "$T/multi"
make_busybox_layout "$T/busybox" '["/bin/sh"]'
SRC=127.0.0.1:$(start_registry src anon)
DST=127.0.0.1:$(start_registry dst basic "$USER_" "$PASS_")
NOCREDS=127.0.0.1:$(start_registry nocreds basic other other-pass)
push_layout "$T/multi" "$SRC/library/multi:latest"
push_layout "$T/busybox" "$SRC/library/busybox:latest"
push_layout "$T/busybox" "$SRC/library/shared:1.0"
push_layout "$T/busybox" "$SRC/library/broken:latest"
log "source $SRC (anon), target $DST (basic), target without credentials $NOCREDS"

# A source whose manifest exists but whose layer blob is gone: the copy must fail.
BROKEN_LAYER=$(skopeo inspect --raw --tls-verify=false "docker://$SRC/library/broken:latest" |
  json_get - 'd["layers"][0]["digest"]')
curl -fsS -o /dev/null -X DELETE "http://$SRC/v2/library/broken/blobs/$BROKEN_LAYER"

TOKEN_HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
start_waved "wave:
  server: {url: 'http://127.0.0.1:9999'}
  accounts: {alice: $TOKEN_HASH}
  registries:
    '$SRC': {insecure: true}
    '$DST': {username: $USER_, password: $PASS_, allow: {accounts: {alice: push}}}
wave.mirror:
  chunk-size: 256KiB
  retry-attempts: 0"

# mirror_req IMAGE REPO [TOKEN] — POSTs a mirror request; body in $T/resp.json, prints the status.
mirror_req() {
  local tok=""
  [ -n "${3-$TOKEN}" ] && tok=",\"towerAccessToken\":\"${3-$TOKEN}\""
  curl -s -o "$T/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$1\",\"mirror\":true,\"buildRepository\":\"$2\"$tok}" \
    "$WAVED_URL/v1alpha2/container"
}

field() { json_get "$1" "d.get('$2')"; }

# ---- the multi-arch mirror ---------------------------------------------------------------
ok "mirror request answered 200" is "$(mirror_req "$SRC/library/multi:latest" "$DST/mirror")" 200
cp "$T/resp.json" "$T/first.json"
MID=$(field "$T/first.json" buildId)
RID=$(field "$T/first.json" requestId)
ok "response: target image" is "$(field "$T/first.json" targetImage)" "$DST/mirror/library/multi:latest"
ok "response: containerImage is the target" is "$(field "$T/first.json" containerImage)" "$DST/mirror/library/multi:latest"
ok "response: mirror id mr-<12hex>" has "$(echo "$MID" | grep -E '^mr-[0-9a-f]{12}$' || true)" mr-
ok "response: mirror true, not cached, no token/expiration/succeeded" \
  is "$(json_get "$T/first.json" '[d["mirror"], d["cached"], "containerToken" in d, "expiration" in d, "succeeded" in d]')" \
  "[true, false, false, false, false]"
ok "status ends DONE" wait_done "$RID"
ok "status: mirrorId, succeeded, no buildId" \
  is "$(json_get "$T/st.json" '[d.get("mirrorId"), d.get("succeeded"), "buildId" in d, "reason" in d]')" \
  "[\"$MID\", true, false, false]"
curl -fsS -o "$T/record.json" "$WAVED_URL/v1alpha1/mirrors/$MID"
SRC_DIGEST=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$SRC/library/multi:latest" | sha256sum | cut -d' ' -f1)
ok "record: COMPLETED, exit 0, source digest, images, user" \
  is "$(json_get "$T/record.json" '[d["mirrorId"], d["status"], d["exitCode"], d["digest"], d["sourceImage"], d["targetImage"], d["userName"]]')" \
  "[\"$MID\", \"COMPLETED\", 0, \"$SRC_DIGEST\", \"$SRC/library/multi:latest\", \"$DST/mirror/library/multi:latest\", \"alice\"]"
ok "record: duration is decimal seconds" has "$(grep -o '"duration":[0-9.]*' "$T/record.json")" .
LOGS=$(field "$T/record.json" logs)
ok "record: logs say what was copied" has "$LOGS" "done: $SRC_DIGEST"
ok "logs: blobs went up in several PATCH chunks" has "$LOGS" "chunks)"
ok "logs endpoint: attachment" has "$(curl -fsS -D - -o "$T/mirror.log" "$WAVED_URL/v1alpha1/mirrors/$MID/logs")" \
  "attachment; filename=$MID.log"
ok "logs endpoint: body" has "$(cat "$T/mirror.log")" "manifest $SRC_DIGEST"
ok "unknown mirror id is a 404" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha1/mirrors/mr-000000000000")" 404

# ---- a repeated request is cached -----------------------------------------------------------
ok "second identical request answered 200" is "$(mirror_req "$SRC/library/multi:latest" "$DST/mirror")" 200
ok "second request: cached, succeeded, same mirror id" \
  is "$(json_get "$T/resp.json" '[d["cached"], d["succeeded"], d["buildId"]]')" "[true, true, \"$MID\"]"
ok "cached request: status DONE at once" wait_done "$(field "$T/resp.json" requestId)"

# ---- identical concurrent requests share one mirror; single-arch image --------------------
CONC=()
for i in 1 2 3; do
  curl -s -o "$T/conc$i.json" -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$SRC/library/busybox:latest\",\"mirror\":true,\"buildRepository\":\"$DST/mirror\",\"towerAccessToken\":\"$TOKEN\"}" \
    "$WAVED_URL/v1alpha2/container" &
  CONC+=($!)
done
wait "${CONC[@]}" # not a bare wait: waved is a child of this shell too
C1=$(field "$T/conc1.json" buildId)
ok "concurrent requests share one mirror" \
  is "$(field "$T/conc2.json" buildId) $(field "$T/conc3.json" buildId)" "$C1 $C1"
ok "concurrent requests have their own request ids" \
  is "$(cat "$T"/conc*.json | grep -o '"requestId":"[a-z0-9]*"' | sort -u | wc -l)" 3
ok "single-arch mirror DONE" wait_done "$(field "$T/conc1.json" requestId)"
ok "single-arch mirror succeeded" is "$(field "$T/st.json" succeeded)" True
ok "only one mirror job ran" is "$(grep -c "mirror mr-.*library/busybox:latest" "$WAVED_DIR/waved.log")" 1

# ---- refusals before anything runs ----------------------------------------------------------
ok "anonymous mirror request is a 400" is "$(mirror_req "$SRC/library/multi:latest" "$DST/mirror" "")" 400
ok "anonymous: the spec's message" is "$(field "$T/resp.json" message)" \
  "Container mirroring requires an authenticated request - specify the tower token attribute"
ok "target without configured credentials is a 400" \
  is "$(mirror_req "$SRC/library/multi:latest" "$NOCREDS/mirror")" 400
ok "no credentials: the spec's message" is "$(field "$T/resp.json" message)" \
  "Missing credentials for container repository: $NOCREDS/mirror/library/multi:latest"
ok "unknown access token is a 401" is "$(mirror_req "$SRC/library/multi:latest" "$DST/mirror" nope)" 401
ok "missing source is a 400" is "$(mirror_req "$SRC/library/nothere:latest" "$DST/mirror")" 400
ok "missing source: the spec's message" is "$(field "$T/resp.json" message)" \
  "Container image '$SRC/library/nothere:latest' does not exist or access is not authorized"
ok "same registry is a 400" is "$(mirror_req "$SRC/library/multi:latest" "$SRC/copy")" 400
ok "nothing was written to the refused target" \
  is "$(curl -s -o /dev/null -w '%{http_code}' -u other:other-pass "http://$NOCREDS/v2/mirror/library/multi/tags/list")" 404

# ---- a mirror that fails while copying ---------------------------------------------------------
ok "broken source: request accepted" is "$(mirror_req "$SRC/library/broken:latest" "$DST/mirror")" 200
BID=$(field "$T/resp.json" buildId)
ok "broken source: status DONE" wait_done "$(field "$T/resp.json" requestId)"
ok "broken source: failed with the spec's reason" \
  is "$(json_get "$T/st.json" '[d["succeeded"], d["reason"], d["mirrorId"], d["detailsUri"]]')" \
  "[false, \"Container mirror did not complete successfully\", \"$BID\", \"http://127.0.0.1:9999/view/mirrors/$BID\"]"
curl -fsS -o "$T/broken.json" "$WAVED_URL/v1alpha1/mirrors/$BID"
ok "broken source: record COMPLETED with exit code 1" \
  is "$(json_get "$T/broken.json" '[d["status"], d["exitCode"]]')" "[\"COMPLETED\", 1]"
ok "broken source: record says which blob and registry" \
  has "$(field "$T/broken.json" reason)" "fetch blob $BROKEN_LAYER of library/broken: source registry $SRC answered 404"

# ---- restart: the record outlives the process ---------------------------------------------------
stop_waved
ok "waved stopped" bash -c "! kill -0 $WAVED_PID 2>/dev/null"

# ---- verify the target directly, waved stopped ---------------------------------------------------
SK=(--tls-verify=false --creds "$USER_:$PASS_")
skopeo inspect --raw --tls-verify=false "docker://$SRC/library/multi:latest" >"$T/src-index.json"
skopeo inspect --raw "${SK[@]}" "docker://$DST/mirror/library/multi:latest" >"$T/dst-index.json"
ok "target index digest = source index digest" is "sha256:$(sha256 "$T/dst-index.json")" "$SRC_DIGEST"
ok "target index bytes = source index bytes" cmp -s "$T/src-index.json" "$T/dst-index.json"
for arch in amd64 arm64; do
  CH=$(json_get "$T/src-index.json" "[m['digest'] for m in d['manifests'] if m['platform']['architecture']=='$arch'][0]")
  skopeo inspect --raw "${SK[@]}" "docker://$DST/mirror/library/multi@$CH" >"$T/dst-$arch.json"
  ok "target $arch manifest digest = source child $CH" is "sha256:$(sha256 "$T/dst-$arch.json")" "$CH"
done
ok "skopeo copy --all from the target works" \
  skopeo copy --quiet --all --src-tls-verify=false --src-creds "$USER_:$PASS_" \
  "docker://$DST/mirror/library/multi:latest" "oci:$T/pulled:latest"
ok "pulled layout holds the same index" is "sha256:$(sha256 "$T/pulled/blobs/sha256/${SRC_DIGEST#sha256:}")" "$SRC_DIGEST"
BB_SRC=$(skopeo inspect --raw --tls-verify=false "docker://$SRC/library/busybox:latest" | sha256sum | cut -d' ' -f1)
BB_DST=$(skopeo inspect --raw "${SK[@]}" "docker://$DST/mirror/library/busybox:latest" | sha256sum | cut -d' ' -f1)
ok "single-arch target digest = source digest" is "$BB_DST" "$BB_SRC"

# ---- after a restart the mirror record is still served -----------------------------------------
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
ok "record served after a restart" \
  is "$(curl -fsS "$WAVED_URL/v1alpha1/mirrors/$MID" | json_get - '[d["status"], d["exitCode"]]')" "[\"COMPLETED\", 0]"
stop_waved

e2e_finish
