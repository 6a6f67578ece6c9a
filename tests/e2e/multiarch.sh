#!/usr/bin/env bash
# tests/e2e/multiarch.sh — multi-platform builds (linux/amd64,linux/arm64) into
# waved's embedded registry, on the defaults (no wave.build.repo; docs/builds.md
# "Multi-platform builds"): the children and the OCI index live in the embedded
# registry; a pull through the wt/ name resolves the index and each platform
# (skopeo --override-arch); a pull issued while the build runs is parked until
# the index exists; an identical request is cached. Then a RUN step in both
# halves (the arm64 one under qemu-user through binfmt_misc) from a multi-arch
# busybox-static base this test assembles: amd64 from the host, arm64 from
# Debian's busybox-static:arm64 (apt-get download into a private apt state,
# cached in /var/cache/waved-test/ by content).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP

WAVED_LOG_LEVEL=info
start_waved ""

post() {
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }
b64() { printf '%b' "$1" | base64 -w0; }
# The pull name through this waved (wave.server.url is the default localhost:9090).
pull_name() { field "$1" 'd["targetImage"]' | sed "s#^localhost:9090#127.0.0.1:$WAVED_PORT#"; }
# layer_has OCI_DIR FILE TEXT — prints yes when some layer of the layout holds FILE with TEXT.
layer_has() {
  local b
  for b in "$1"/blobs/sha256/*; do
    { tar -xzOf "$b" "$2" 2>/dev/null || tar -xzOf "$b" "./$2" 2>/dev/null; } | grep -q "$3" &&
      { echo yes; return 0; }
  done
  return 0
}

# ---- 1. FROM scratch + COPY for both platforms (no emulation needed) ----------------------
mkdir -p "$T/ctx" && echo "multi-arch payload" >"$T/ctx/payload.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/ctx" -cf "$T/ctx.tar" .
gzip -n -c "$T/ctx.tar" >"$T/ctx.tgz"
CTX="{\"location\":\"data:$(base64 -w0 "$T/ctx.tgz")\",\"tarDigest\":\"sha256:$(sha256 "$T/ctx.tar")\"}"
CF=$(b64 'FROM scratch\nCOPY payload.txt /payload.txt\n')
BODY="{\"containerFile\":\"$CF\",\"buildContext\":$CTX,\"containerPlatform\":\"linux/amd64,linux/arm64\"}"
ok "multi: 200 without a build repository" is "$(post "$BODY" "$T/r1.json")" 200
CI=$(field "$T/r1.json" 'd["containerImage"]')
ok "multi: the parent lives in the embedded registry" \
  bash -c "[[ '$CI' =~ ^localhost:9090/wave/build:[0-9a-f]{16}$ ]]"
ok "multi: parent build id bd-<parent tag>_0" is "$(field "$T/r1.json" 'd["buildId"]')" "bd-${CI##*:}_0"
PN=$(pull_name "$T/r1.json")
R=${PN#*/}
# A pull while the children build: parked until the index is recorded.
curl -s -o "$T/parked.json" -w '%{http_code}' \
  -H 'Accept: application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json' \
  "$WAVED_URL/v2/${R%:*}/manifests/${R##*:}" >"$T/parked.code" &
PARKED=$!
ok "multi: status DONE" wait_done "$(field "$T/r1.json" 'd["requestId"]')" 300
ok "multi: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
wait "$PARKED" || true
ok "multi: the parked pull got 200" is "$(cat "$T/parked.code")" 200
ok "multi: the parked pull got the index" \
  is "$(json_get "$T/parked.json" 'd["mediaType"]')" application/vnd.oci.image.index.v1+json

skopeo inspect --raw --tls-verify=false "docker://$PN" >"$T/idx.json"
ok "multi: the wt/ name resolves to an OCI index" \
  is "$(json_get "$T/idx.json" 'd["mediaType"]')" application/vnd.oci.image.index.v1+json
ok "multi: with linux/amd64 and linux/arm64" \
  is "$(json_get "$T/idx.json" 'sorted(m["platform"]["os"]+"/"+m["platform"]["architecture"] for m in d["manifests"])')" \
  '["linux/amd64", "linux/arm64"]'
ok "multi: the parked pull and skopeo saw the same index" cmp "$T/parked.json" "$T/idx.json"
for arch in amd64 arm64; do
  ok "multi: $arch config says $arch" \
    is "$(skopeo inspect --override-arch $arch --config --tls-verify=false "docker://$PN" | json_get - 'd["architecture"]')" $arch
  skopeo copy --quiet --override-arch $arch --src-tls-verify=false "docker://$PN" "oci:$T/m-$arch:x"
  ok "multi: $arch image holds the payload" is "$(layer_has "$T/m-$arch" payload.txt 'multi-arch payload')" yes
  ok "multi: $arch manifest is the index entry" \
    is "$(json_get "$T/m-$arch/index.json" 'd["manifests"][0]["digest"]')" \
    "$(json_get "$T/idx.json" "[m['digest'] for m in d['manifests'] if m['platform']['architecture']=='$arch'][0]")"
done

# ---- 2. the same request again: cached, same parent ----------------------------------------
ok "again: 200" is "$(post "$BODY" "$T/r2.json")" 200
ok "again: same parent, cached, succeeded" \
  is "$(field "$T/r2.json" '[d["containerImage"], d["buildId"], d["cached"], d["succeeded"]]')" \
  "[\"$CI\", \"bd-${CI##*:}_0\", true, true]"
# A containerConfig is applied at pull time to each platform of the index, as for upstream images.
BODYC="{\"containerFile\":\"$CF\",\"buildContext\":$CTX,\"containerPlatform\":\"linux/amd64,linux/arm64\",\"containerConfig\":{\"env\":[\"HELLO=multi\"]}}"
ok "config: 200, same build" is "$(post "$BODYC" "$T/r5.json")" 200
ok "config: same parent image" is "$(field "$T/r5.json" 'd["containerImage"]')" "$CI"
CPN=$(pull_name "$T/r5.json")
skopeo inspect --raw --tls-verify=false "docker://$CPN" >"$T/cidx.json"
ok "config: still an index of both platforms" \
  is "$(json_get "$T/cidx.json" 'sorted(m["platform"]["architecture"] for m in d["manifests"])')" '["amd64", "arm64"]'
ok "config: the index names augmented children" \
  bash -c "! cmp -s '$T/cidx.json' '$T/idx.json'"
for arch in amd64 arm64; do
  skopeo inspect --override-arch $arch --config --tls-verify=false "docker://$CPN" >"$T/cc-$arch.json"
  ok "config: $arch config says $arch and has the env" \
    is "$(json_get "$T/cc-$arch.json" '[d["architecture"], "HELLO=multi" in d["config"]["Env"]]')" "[\"$arch\", true]"
  skopeo copy --quiet --override-arch $arch --src-tls-verify=false "docker://$CPN" "oci:$T/c-$arch:x"
  ok "config: $arch image still holds the payload" is "$(layer_has "$T/c-$arch" payload.txt 'multi-arch payload')" yes
done
# nameStrategy imageSuffix becomes tagPrefix in the one embedded repository (as for builds).
ok "naming: imageSuffix dry run stays in wave/build" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"samtools=1.17\"]},\"containerPlatform\":\"linux/amd64,linux/arm64\",\"nameStrategy\":\"imageSuffix\",\"dryRun\":true}" "$T/r3.json")" 200
ok "naming: tag prefixed with the tool" \
  bash -c "[[ '$(field "$T/r3.json" 'd["containerImage"]')' =~ ^localhost:9090/wave/build:samtools-1.17--[0-9a-f]{16}$ ]]"
# ---- 3. RUN in both halves: the arm64 one under qemu-user (binfmt_misc) -------------------
CACHE=/var/cache/waved-test
# arm64_busybox — prints the path of an arm64 busybox-static binary, cached by content.
arm64_busybox() {
  local f h
  for f in "$CACHE"/busybox-static-arm64-*; do
    [ -f "$f" ] || continue
    h=$(sha256 "$f")
    [ "$f" = "$CACHE/busybox-static-arm64-$h" ] && { echo "$f"; return 0; }
  done
  [ "$(id -u)" -eq 0 ] || { echo "no cached arm64 busybox and not root" >&2; return 1; }
  local apt="$CACHE/apt" o
  mkdir -p "$apt/lists/partial" "$apt/archives/partial"
  o=(-q -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o APT::Architecture=arm64
     -o APT::Architectures::=arm64)
  apt-get "${o[@]}" update >"$T/apt.log" 2>&1 || { cat "$T/apt.log" >&2; return 1; }
  (cd "$T" && apt-get "${o[@]}" download busybox-static:arm64 >>"$T/apt.log" 2>&1) ||
    { cat "$T/apt.log" >&2; return 1; }
  dpkg-deb -x "$T"/busybox-static_*_arm64.deb "$T/bbdeb"
  h=$(sha256 "$T/bbdeb/bin/busybox")
  install -m 0755 "$T/bbdeb/bin/busybox" "$CACHE/busybox-static-arm64-$h"
  echo "$CACHE/busybox-static-arm64-$h"
}
ok "qemu: waved logged that linux/arm64 RUN steps can run" \
  grep -q 'build platform linux/arm64: RUN steps can run' "$WAVED_DIR/waved.log"
ARM_BB=$(arm64_busybox) || ARM_BB=""
ok "qemu: an arm64 busybox-static binary" test -n "$ARM_BB"
REG=127.0.0.1:$(start_registry reg anon)
new_layout "$T/bbmulti"
read -r MA SA < <(make_image_blobs "$T/bbmulti" amd64 "")
read -r MB SB < <(BUSYBOX="$ARM_BB" make_image_blobs "$T/bbmulti" arm64 "")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}}]}' \
  "$MA" "$SA" "$MB" "$SB" >"$T/bbmulti/index.tmp"
IS=$(stat -c %s "$T/bbmulti/index.tmp")
ID=$(put_blob "$T/bbmulti" "$T/bbmulti/index.tmp")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
  "$ID" "$IS" >"$T/bbmulti/index.json"
push_layout "$T/bbmulti" "$REG/library/bbmulti:latest"
RCF=$(b64 "FROM $REG/library/bbmulti:latest\nRUN echo \"ran on \$(uname -m) for \$(cat /etc/arch)\" > /ran.txt\n")
ok "run: 200" is "$(post "{\"containerFile\":\"$RCF\",\"containerPlatform\":\"linux/amd64,linux/arm64\"}" "$T/r4.json")" 200
ok "run: status DONE" wait_done "$(field "$T/r4.json" 'd["requestId"]')" 600
ok "run: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
RPN=$(pull_name "$T/r4.json")
for arch in amd64 arm64; do
  mach=x86_64; [ $arch = arm64 ] && mach=aarch64
  ok "run: $arch config says $arch" \
    is "$(skopeo inspect --override-arch $arch --config --tls-verify=false "docker://$RPN" | json_get - 'd["architecture"]')" $arch
  skopeo copy --quiet --override-arch $arch --src-tls-verify=false "docker://$RPN" "oci:$T/r-$arch:x"
  ok "run: $arch image has the file its RUN wrote, on $mach" \
    is "$(layer_has "$T/r-$arch" ran.txt "ran on $mach for $arch")" yes
done
stop_waved

# ---- 4. seeded layouts: both halves at once, each with its own layout -----------------------
# With the base's registry configured, waved pins each half's FROM to the platform's digest
# and fetches and maps the platform's base layers while buildah builds, so even the first
# build's layouts are seeded with them (docs/builds.md "The embedded registry"); the next
# build's from the maps: both halves push and import at the same time, each from its own
# layout.
start_waved "wave:
  registries: {\"$REG\": {insecure: true}}"
for n in 5 6; do
  SCF=$(b64 "FROM $REG/library/bbmulti:latest\nRUN echo \"seeded $n on \$(cat /etc/arch)\" > /s.txt\n")
  ok "seeded $n: 200" is "$(post "{\"containerFile\":\"$SCF\",\"containerPlatform\":\"linux/amd64,linux/arm64\"}" "$T/r$n.json")" 200
  ok "seeded $n: status DONE" wait_done "$(field "$T/r$n.json" 'd["requestId"]')" 600
  ok "seeded $n: succeeded" is "$(field "$T/st.json" 'd["succeeded"]')" True
  # the map-layers step runs after the ready point: let the children's jobs end
  sleep 2
done
ok "seeded: both halves' layouts were seeded with their base layer, both times" \
  is "$(grep -Eo '[0-9]+ of [0-9]+ base layers seeded' "$WAVED_DIR/waved.log" |
    awk '$1 == $3 && $1 > 0 {n++} END {print n + 0}')" 4
SPN=$(pull_name "$T/r6.json")
for arch in amd64 arm64; do
  skopeo copy --quiet --override-arch $arch --src-tls-verify=false "docker://$SPN" "oci:$T/s-$arch:x"
  ok "seeded: $arch image has its base and its RUN's file" \
    is "$(layer_has "$T/s-$arch" s.txt "seeded 6 on $arch")$(layer_has "$T/s-$arch" etc/arch "$arch")" yesyes
done
stop_waved
e2e_finish
