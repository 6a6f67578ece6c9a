#!/usr/bin/env bash
# tests/e2e/freeze.sh — freeze builds (contract §6.3) with buildah against two
# docker-registry instances: the source anonymous (busybox with an
# Entrypoint), the target behind htpasswd Basic auth whose credentials waved
# reads from wave.registries. A freeze of the image with a containerConfig
# (a data: layer, env, workingDir, entrypoint) by an authenticated request, a
# freeze of a Dockerfile, a target without credentials (400 before anything
# runs), a pull of the target while it builds (fails at the registry), an
# identical second request (cached), a multi-platform freeze (two child
# builds, then an OCI index on the parent tag), scans after a freeze and after
# a mirror (a second waved with scanning on). Then waved is stopped and the target is
# checked directly with skopeo: config, layer count, the added file.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP
USER_=freeze-user
PASS_=freeze-pass-42
TOKEN=freeze-e2e-token
CREDS="$USER_:$PASS_"
has() { [[ "$1" == *"$2"* ]] || { echo "    '${1:0:400}' lacks '$2'" >&2; return 1; }; }

make_busybox_layout "$T/busybox" '["/bin/sh","-c"]'
SRC=127.0.0.1:$(start_registry src anon)
DST=127.0.0.1:$(start_registry dst basic "$USER_" "$PASS_")
NOCREDS=127.0.0.1:$(start_registry nocreds basic other other-pass)
push_layout "$T/busybox" "$SRC/library/busybox:latest"
log "source $SRC (anon), target $DST (basic), target without credentials $NOCREDS"

TOKEN_HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
WAVED_LOG_LEVEL=info # the multi-platform check finds child builds in the log
start_waved "wave:
  accounts: {alice: $TOKEN_HASH}
  registries:
    '$SRC': {insecure: true}
    '$DST': {username: $USER_, password: $PASS_, insecure: true,
             allow: {anonymous: push, accounts: {alice: push}}}"

post() { # BODY OUT — POST /v1alpha2/container; prints the status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }
b64() { printf '%b' "$1" | base64 -w0; }
# layer_has OCI_DIR FILE TEXT — prints yes when some layer of the layout holds FILE with TEXT.
layer_has() {
  local b
  for b in "$1"/blobs/sha256/*; do
    { tar -xzOf "$b" "$2" 2>/dev/null || tar -xzOf "$b" "./$2" 2>/dev/null; } | grep -q "$3" &&
      { echo yes; return 0; }
  done
  return 0
}

# ---- the data: layer ---------------------------------------------------------------------
mkdir -p "$T/lay"
echo "added by a frozen layer" >"$T/lay/frozen-layer.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/lay" -cf "$T/lay.tar" .
gzip -n -c "$T/lay.tar" >"$T/lay.tgz"
LAYER="{\"location\":\"data:$(base64 -w0 "$T/lay.tgz")\",\"gzipDigest\":\"sha256:$(sha256 "$T/lay.tgz")\",\"gzipSize\":$(stat -c %s "$T/lay.tgz"),\"tarDigest\":\"sha256:$(sha256 "$T/lay.tar")\"}"
CC="{\"layers\":[$LAYER],\"env\":[\"FROZEN=yes\",\"OTHER=2\"],\"workingDir\":\"/work\",\"entrypoint\":[\"/bin/sh\",\"-c\"],\"cmd\":[\"echo hi\"]}"
IMG_BODY="{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$DST/frozen\",\"containerConfig\":$CC,\"towerAccessToken\":\"$TOKEN\"}"

# ---- 1. target without credentials: the spec's 400, nothing runs -------------------------
ok "no credentials for the target -> 400 spec message" \
  is "$(post "{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true,\"buildRepository\":\"$NOCREDS/frozen\"}" "$T/nc.json") $(field "$T/nc.json" 'd["message"]')" \
  "400 Missing credentials for container repository: $NOCREDS/frozen"
ok "no credentials: no build directory was made" \
  is "$(ls "$WAVED_DIR/data/build" 2>/dev/null | grep -c '^bd-' || true)" 0

# ---- 2. freeze of an image with a containerConfig ---------------------------------------
ok "image freeze: 200" is "$(post "$IMG_BODY" "$T/r1.json")" 200
TI1=$(field "$T/r1.json" 'd["targetImage"]')
RID1=$(field "$T/r1.json" 'd["requestId"]')
ID1=$(field "$T/r1.json" 'd["buildId"]')
ok "image freeze: targetImage is <buildRepository>:<16 hex>" \
  bash -c "[[ '$TI1' =~ ^$DST/frozen:[0-9a-f]{16}$ ]]"
ok "image freeze: no containerToken, no expiration, freeze true, not cached" \
  is "$(field "$T/r1.json" '["containerToken" in d, "expiration" in d, d["freeze"], d["cached"], d["containerImage"] == d["targetImage"]]')" \
  '[false, false, true, false, true]'
ok "image freeze: build id bd-<tag>_1" is "$ID1" "bd-${TI1##*:}_1"
# The image is not there yet: the registry answers, nothing waits (contract §6.3).
early=$(timeout 20 skopeo inspect --raw --creds "$CREDS" --tls-verify=false "docker://$TI1" 2>&1 || true)
ok "image freeze: a pull during the build fails at the target registry" has "${early,,}" "manifest unknown"
# The work dir goes away when the build ends: read the Containerfile from the
# build record; the layer archive's content is checked in the pushed image below.
curl -s "$WAVED_URL/v1alpha1/builds/$ID1" >"$T/b1.json"
ok "image freeze: Containerfile adds the layer archive" \
  has "$(json_get "$T/b1.json" 'd["dockerFile"]')" "ADD layer-$(sha256 "$T/lay.tgz").tar.gz /"
ok "image freeze: Containerfile chains the base image entrypoint" \
  has "$(json_get "$T/b1.json" 'd["dockerFile"]')" 'ENV WAVE_ENTRY_CHAIN="/bin/sh -c"'
ok "image freeze: status DONE" wait_done "$RID1"
ok "image freeze: the work dir is gone once the build ended" test ! -e "$WAVED_DIR/data/build/$ID1"
ok "image freeze: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True

# ---- 3. freeze of a Dockerfile -----------------------------------------------------------
CF=$(b64 "FROM $SRC/library/busybox:latest\nRUN echo frozen > /f\n")
ok "file freeze: 200" is "$(post "{\"containerFile\":\"$CF\",\"freeze\":true,\"buildRepository\":\"$DST/frozen-file\"}" "$T/r2.json")" 200
TI2=$(field "$T/r2.json" 'd["targetImage"]')
ok "file freeze: targetImage in the target repository" bash -c "[[ '$TI2' =~ ^$DST/frozen-file:[0-9a-f]{16}$ ]]"
ok "file freeze: status DONE" wait_done "$(field "$T/r2.json" 'd["requestId"]')"
ok "file freeze: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True

# ---- 4. an identical request is cached ---------------------------------------------------
ok "repeat: 200" is "$(post "$IMG_BODY" "$T/r3.json")" 200
ok "repeat: same target and build, cached, succeeded" \
  is "$(field "$T/r3.json" '[d["targetImage"], d["buildId"], d["cached"], d["succeeded"]]')" \
  "[\"$TI1\", \"$ID1\", true, true]"

# ---- 5. multi-platform freeze (contract §6.4): two child builds, then an OCI index ----------------
mkdir -p "$T/mctx" && echo "multi-arch payload" >"$T/mctx/payload.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/mctx" -cf "$T/mctx.tar" .
gzip -n -c "$T/mctx.tar" >"$T/mctx.tgz"
MCTX="{\"location\":\"data:$(base64 -w0 "$T/mctx.tgz")\",\"tarDigest\":\"sha256:$(sha256 "$T/mctx.tar")\"}"
MCF=$(b64 'FROM scratch\nCOPY payload.txt /payload.txt\n')
ok "multi: 200" is "$(post "{\"containerFile\":\"$MCF\",\"buildContext\":$MCTX,\"freeze\":true,\"buildRepository\":\"$DST/frozen-multi\",\"containerPlatform\":\"linux/amd64,linux/arm64\",\"towerAccessToken\":\"$TOKEN\"}" "$T/r4.json")" 200
TI4=$(field "$T/r4.json" 'd["targetImage"]')
ok "multi: parent build id bd-<parent tag>_0" is "$(field "$T/r4.json" 'd["buildId"]')" "bd-${TI4##*:}_0"
ok "multi: status DONE" wait_done "$(field "$T/r4.json" 'd["requestId"]')"
ok "multi: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
# The children, named as ordinary single-platform builds of the same file
# (their work dirs are gone once they ended: find them by their records).
KIDS=$(grep -oE 'jobs: bd-[0-9a-f]{16}_1 \(build\)' "$WAVED_DIR/waved.log" | cut -d' ' -f2 | sort -u)
KID_TAGS=""
for k in $KIDS; do
  curl -s "$WAVED_URL/v1alpha1/builds/$k" | grep -q 'payload.txt' && KID_TAGS="$KID_TAGS ${k:3:16}"
done
ok "multi: two child builds" is "$(echo $KID_TAGS | wc -w)" 2

# ---- 6. waved stopped: the target registry alone serves the frozen images ----------------
stop_waved
ok "waved is stopped" bash -c "! curl -s -o /dev/null $WAVED_URL/health"
skopeo inspect --config --creds "$CREDS" --tls-verify=false "docker://$TI1" >"$T/c1.json"
ok "image: config env has the request env" \
  is "$(json_get "$T/c1.json" '[e for e in d["config"]["Env"] if e.split("=")[0] in ("FROZEN","OTHER")]')" '["FROZEN=yes", "OTHER=2"]'
ok "image: config has WAVE_ENTRY_CHAIN of the base entrypoint" \
  is "$(json_get "$T/c1.json" '[e for e in d["config"]["Env"] if e.startswith("WAVE_ENTRY_CHAIN=")]')" '["WAVE_ENTRY_CHAIN=/bin/sh -c"]'
ok "image: workdir, entrypoint, cmd" \
  is "$(json_get "$T/c1.json" '[d["config"]["WorkingDir"], d["config"]["Entrypoint"], d["config"]["Cmd"]]')" \
  '["/work", ["/bin/sh", "-c"], ["echo hi"]]'
BASE_LAYERS=$(skopeo inspect --tls-verify=false "docker://$SRC/library/busybox:latest" | json_get - 'len(d["Layers"])')
ok "image: one layer more than the base" \
  is "$(skopeo inspect --creds "$CREDS" --tls-verify=false "docker://$TI1" | json_get - 'len(d["Layers"])')" "$((BASE_LAYERS + 1))"
skopeo copy --quiet --src-creds "$CREDS" --src-tls-verify=false "docker://$TI1" "oci:$T/out1:x"
ok "image: the added file is in a layer of the OCI copy" \
  is "$(layer_has "$T/out1" frozen-layer.txt 'added by a frozen layer')" yes
ok "image: manifest digest via skopeo equals the copied one" \
  is "$(skopeo inspect --creds "$CREDS" --tls-verify=false "docker://$TI1" | json_get - 'd["Digest"]')" \
  "$(json_get "$T/out1/index.json" 'd["manifests"][0]["digest"]')"
skopeo copy --quiet --src-creds "$CREDS" --src-tls-verify=false "docker://$TI2" "oci:$T/out2:x"
ok "file: /f written by RUN is in a layer" is "$(layer_has "$T/out2" f frozen)" yes
ok "file: no token needed, anonymous pull refused by the target" \
  bash -c "! skopeo inspect --tls-verify=false docker://$TI2 >/dev/null 2>&1"

skopeo inspect --raw --creds "$CREDS" --tls-verify=false "docker://$TI4" >"$T/idx.json"
ok "multi: the parent tag is an OCI index" \
  is "$(json_get "$T/idx.json" 'd["mediaType"]')" application/vnd.oci.image.index.v1+json
ok "multi: with linux/amd64 and linux/arm64" \
  is "$(json_get "$T/idx.json" 'sorted(m["platform"]["os"]+"/"+m["platform"]["architecture"] for m in d["manifests"])')" \
  '["linux/amd64", "linux/arm64"]'
want=""
for t in $KID_TAGS; do
  want="$want $(skopeo inspect --creds "$CREDS" --tls-verify=false "docker://$DST/frozen-multi:$t" | json_get - 'd["Digest"]')"
done
ok "multi: index digests are the child tags' digests" \
  is "$(json_get "$T/idx.json" '" ".join(sorted(m["digest"] for m in d["manifests"]))')" "$(echo $want | tr ' ' '\n' | sort | xargs)"
for arch in amd64 arm64; do
  skopeo copy --quiet --override-arch $arch --src-creds "$CREDS" --src-tls-verify=false "docker://$TI4" "oci:$T/m-$arch:x"
  ok "multi: $arch image from the index holds the payload" is "$(layer_has "$T/m-$arch" payload.txt 'multi-arch payload')" yes
  ok "multi: $arch config says $arch" \
    is "$(skopeo inspect --override-arch $arch --config --creds "$CREDS" --tls-verify=false "docker://$TI4" | json_get - 'd["architecture"]')" $arch
done

# ---- 7. scans (docs/scan.md "For builds and mirrors"): a freeze with scanning on ---------
start_waved "wave:
  scan: {enabled: true}
  accounts: {alice: $TOKEN_HASH}
  registries:
    '$SRC': {insecure: true}
    '$DST': {username: $USER_, password: $PASS_, insecure: true,
             allow: {anonymous: push, accounts: {alice: push}}}"
CF5=$(b64 "FROM $SRC/library/busybox:latest\nRUN echo scanned > /s\n")
ok "scan: freeze with scanning enabled -> 200" \
  is "$(post "{\"containerFile\":\"$CF5\",\"freeze\":true,\"buildRepository\":\"$DST/frozen-scan\"}" "$T/r5.json")" 200
SID=$(field "$T/r5.json" 'd["scanId"]')
ok "scan: the response names the scan, succeeded omitted" \
  is "$(field "$T/r5.json" '[d["scanId"][:3], "succeeded" in d]')" '["sc-", false]'
ok "scan: container status DONE" wait_done "$(field "$T/r5.json" 'd["requestId"]')"
scan_ended() { # ID FILE — fetches scan ID into FILE; true once it is no longer PENDING
  curl -s -o "$2" "$WAVED_URL/v1alpha1/scans/$1"
  [ "$(field "$2" 'd["status"]')" != PENDING ]
}
poll_until 30 scan_ended "$SID" "$T/scan.json" || true
ok "scan: the scan ran on the frozen image after the push" \
  is "$(field "$T/scan.json" '[d["status"], d["buildId"], d["containerImage"]]')" \
  "[\"SUCCEEDED\", \"$(field "$T/r5.json" 'd["buildId"]')\", \"$(field "$T/r5.json" 'd["targetImage"]')\"]"
# A mirror with scanMode async: the scan runs once the copy is done.
ok "scan: mirror with scanMode async -> 200" \
  is "$(post "{\"containerImage\":\"$SRC/library/busybox:latest\",\"mirror\":true,\"buildRepository\":\"$DST/mirrored\",\"scanMode\":\"async\",\"towerAccessToken\":\"$TOKEN\"}" "$T/r6.json")" 200
MSID=$(field "$T/r6.json" 'd["scanId"]')
ok "scan: the mirror response names the scan, succeeded omitted" \
  is "$(field "$T/r6.json" '[d["scanId"][:3], "succeeded" in d, d["mirror"]]')" '["sc-", false, true]'
ok "scan: mirror status DONE" wait_done "$(field "$T/r6.json" 'd["requestId"]')"
poll_until 30 scan_ended "$MSID" "$T/mscan.json" || true
ok "scan: the scan ran on the mirrored image" \
  is "$(field "$T/mscan.json" '[d["status"], d["mirrorId"], d["containerImage"]]')" \
  "[\"SUCCEEDED\", \"$(field "$T/r6.json" 'd["buildId"]')\", \"$DST/mirrored/library/busybox:latest\"]"
stop_waved

e2e_finish
