#!/usr/bin/env bash
# tests/e2e/build_cache.sh — the builders' shared storage (docs/builds.md "Storage driver
# and layer cache"): the driver waved chose is logged; a rebuild that changes only the
# last step (a COPY) reuses the cached base image and RUN step ("Using cache" in its log)
# and yields the new file; two builds at once on the shared storage both succeed; with a
# small wave.build.cache-max-size the build's prune step brings the storage under the cap.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP
REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
BB="$REG/library/busybox:latest"

# build NAME CONTAINERFILE STAMP — POSTs a build with a context holding stamp.txt, then
# pulls its manifest through waved (parks until the build ends); leaves
# $T/NAME.{json,code,log}.
build() {
  local c=$T/ctx-$1
  rm -rf "$c" && mkdir -p "$c" && printf '%s\n' "$3" >"$c/stamp.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$c" -cf "$c.tar" .
  gzip -n -c "$c.tar" >"$c.tgz"
  printf '{"containerFile":"%s","buildContext":{"location":"data:%s","tarDigest":"sha256:%s"}}' \
    "$(printf '%b' "$2" | base64 -w0)" "$(base64 -w0 "$c.tgz")" "$(sha256 "$c.tar")" >"$c.req"
  curl -s -o "$T/$1.json" -H 'Content-Type: application/json' --data-binary "@$c.req" \
    "$WAVED_URL/v1alpha2/container"
  local name path
  name=$(json_get "$T/$1.json" 'd["targetImage"]')
  path=${name#*/}
  curl -s -o "$T/$1.man" -w '%{http_code}' -m 300 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$WAVED_URL/v2/${path%:*}/manifests/${path##*:}" >"$T/$1.code"
  # The image is served once imported; the prune step may still run: wait for the job's end.
  poll_until 60 done_status "$1" || true
  curl -s -o "$T/$1.log" "$WAVED_URL/v1alpha1/builds/$(json_get "$T/$1.json" 'd["buildId"]')/logs"
}
# done_status NAME — fetches NAME's container status into $T/NAME.st; true once DONE.
done_status() {
  curl -s -o "$T/$1.st" "$WAVED_URL/v1alpha2/container/$(json_get "$T/$1.json" 'd["requestId"]')/status"
  [ "$(json_get "$T/$1.st" 'd["status"]' 2>/dev/null)" = DONE ]
}
# stamp_of NAME — stamp.txt of the pulled image's last layer.
stamp_of() {
  local name path
  name=$(json_get "$T/$1.json" 'd["targetImage"]')
  skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$WAVED_PORT/${name#*/}" "dir:$T/p-$1" >/dev/null 2>&1
  local top; top=$(json_get "$T/p-$1/manifest.json" 'd["layers"][-1]["digest"].split(":")[1]')
  tar -xzOf "$T/p-$1/$top" stamp.txt 2>/dev/null || tar -xzOf "$T/p-$1/$top" ./stamp.txt
}

WAVED_LOG_LEVEL=info
start_waved ""
log "waved on $WAVED_URL, registry on $REG"
ok "the storage driver is logged" grep -Eq 'build storage driver: (overlay|vfs) \(auto' "$WAVED_DIR/waved.log"

# ---- 1. a rebuild with only the last step changed ---------------------------------------------
CF="FROM $BB\nRUN echo built > /built && sleep 1\nCOPY stamp.txt /stamp.txt\n"
build first "$CF" one
ok "first build: pulled" is "$(cat "$T/first.code")" 200
ok "first build: no cached step" is "$(grep -c 'Using cache' "$T/first.log" || true)" 0
build second "$CF" two
ok "rebuild: pulled" is "$(cat "$T/second.code")" 200
ok "rebuild: a different build" test "$(json_get "$T/first.json" 'd["buildId"]')" != "$(json_get "$T/second.json" 'd["buildId"]')"
ok "rebuild: the RUN step comes from the cache" grep -q 'Using cache' "$T/second.log"
# The base's registry (an address) is not in wave.registries, so waved leaves the check to buildah:
# --pull=always, the base is asked of its registry with this build's credentials every time
# (a cached private base is never used without access); its layers are not downloaded again
# (docs/builds.md "The base image check"; section 4 has the pinned case).
ok "rebuild: the base is checked with its registry again" grep -q 'Trying to pull' <(sed -n '1,/STEP 2/p' "$T/second.log")
ok "rebuild: the COPY step ran again (new file)" is "$(stamp_of second)" two
ok "rebuild: storage measured against the cap" grep -q 'build storage .*MiB of 10240.0 MiB' "$T/second.log"

# ---- 2. two builds at once on the shared storage ---------------------------------------------
build c1 "FROM $BB\nRUN echo c1 > /c && sleep 2\nCOPY stamp.txt /stamp.txt\n" c-one &
P1=$!
build c2 "FROM $BB\nRUN echo c2 > /c && sleep 2\nCOPY stamp.txt /stamp.txt\n" c-two &
P2=$!
wait $P1 $P2
ok "concurrent: both pulled" is "$(cat "$T/c1.code") $(cat "$T/c2.code")" "200 200"
ok "concurrent: each has its own file" is "$(stamp_of c1) $(stamp_of c2)" "c-one c-two"
stop_waved

# ---- 3. the cap: a build past it prunes the storage -------------------------------------------
start_waved "wave: {build: {cache-max-size: 1MiB}}"
build capped "$CF" three
ok "cap: the build succeeded" is "$(cat "$T/capped.code")" 200
ok "cap: the prune ran" grep -q 'build storage .*: pruned from' "$T/capped.log"
AFTER=$(sed -n 's/.*pruned from [0-9.]* MiB to \([0-9.]*\) MiB.*/\1/p' "$T/capped.log" | tail -1)
ok "cap: the storage is under 1 MiB after it ($AFTER MiB)" python3 -c "import sys; sys.exit(0 if float('${AFTER:-99}') <= 1 else 1)"
USED=$(du -sxm "$WAVED_DIR/data/build/buildah" | cut -f1)
ok "cap: du agrees ($USED MiB)" test "$USED" -le 2
ok "cap: the image is still served (from the embedded registry)" is "$(stamp_of capped)" three
stop_waved

# ---- 4. the base pinned by waved (docs/builds.md "The base image check") ---------------------
# With the base's registry configured, waved resolves the FROM tag itself (tag cache, flights,
# the caller's credentials) and buildah gets FROM <image>@<digest> with --pull=missing: a rebuild
# asks the registry nothing through buildah. A tag moved upstream is seen once the tag window
# (1s here) has passed: the next build names the new digest and is built on the new base.
absent() { ! grep -q -- "$1" "$2"; }
start_waved "wave:
  registries: {\"$REG\": {insecure: true}}
  storage: {cache: {tag-duration: 1s}}"
D1=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$BB")
PF="FROM $BB\nRUN echo pinned > /p\nCOPY stamp.txt /stamp.txt\n"
build pin1 "$PF" p-one
ok "pinned: pulled" is "$(cat "$T/pin1.code")" 200
ok "pinned: buildah got the base by digest" grep -q "FROM $REG/library/busybox@$D1" "$T/pin1.log"
# A first build: waved fetched the base's layers into its blob store and mapped them while
# buildah built (docs/builds.md "The embedded registry"), so the push found every one of them
# in the layout and skipped it; the image names the base's own gzip layer.
seeded_all() { # LOG — "N of M base layers seeded" with N = M > 0
  grep -Eo '[0-9]+ of [0-9]+ base layers seeded' "$1" | awk '$1 == $3 && $1 > 0 {ok=1} END {exit !ok}'
}
ok "pinned first build: every base layer seeded from the prefetch" seeded_all "$T/pin1.log"
BASE_L0=$(skopeo inspect --raw --tls-verify=false "docker://$REG/library/busybox@$D1" | json_get - 'd["layers"][0]["digest"]')
ok "pinned first build: the image's base layer is the base's gzip blob" \
  is "$(json_get "$T/pin1.man" 'd["layers"][0]["digest"]')" "$BASE_L0"
build pin2 "$PF" p-two
ok "pinned rebuild: pulled, the new file" is "$(cat "$T/pin2.code") $(stamp_of pin2)" "200 p-two"
ok "pinned rebuild: the RUN step from the cache" grep -q 'Using cache' "$T/pin2.log"
ok "pinned rebuild: buildah did not ask the registry (--pull=missing)" absent 'Trying to pull' "$T/pin2.log"
make_busybox_layout "$T/moved" '["/bin/echo","moved"]'
push_layout "$T/moved" "$BB"
D2=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$BB")
ok "moved: the tag names another image" test "$D1" != "$D2"
sleep 1.5 # the tag window
build pin3 "$PF" p-three
ok "moved: pulled" is "$(cat "$T/pin3.code")" 200
ok "moved: buildah got the new digest" grep -q "FROM $REG/library/busybox@$D2" "$T/pin3.log"
ok "moved: the new base's layers seeded from the prefetch" seeded_all "$T/pin3.log"
stamp_of pin3 >/dev/null
CFG=$(json_get "$T/p-pin3/manifest.json" 'd["config"]["digest"].split(":")[1]')
ok "moved: the image is built on the new base (its entrypoint)" \
  is "$(json_get "$T/p-pin3/$CFG" 'd["config"].get("Entrypoint")')" '["/bin/echo", "moved"]'
stop_waved
e2e_finish
