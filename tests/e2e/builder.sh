#!/usr/bin/env bash
# tests/e2e/builder.sh — real buildah builds through the job engine
# (tests/e2e/build_driver.c): into the embedded registry, pushed to a local
# docker-registry with credentials, and a failing Containerfile.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRIVER=${WAVED_BUILD_DRIVER:?WAVED_BUILD_DRIVER must name tests/e2e/build_driver}
if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
DATA="$E2E_TMP/data"

# build NAME CONTAINERFILE [DRIVER ARGS...] — sets up a work dir and runs one build;
# the driver's key=value output lands in $E2E_TMP/NAME.out.
build() {
  local name=$1 file=$2; shift 2
  local wd="$E2E_TMP/$name"
  mkdir -p "$wd/context"
  printf '%b' "$file" >"$wd/Containerfile"
  echo "hello from waved" >"$wd/context/hello.txt"
  "$DRIVER" --data "$DATA" --workdir "$wd" --tag "$name" "$@" >"$E2E_TMP/$name.out"
}
field() { sed -n "s/^$2=//p" "$E2E_TMP/$1.out"; }
cas_path() { local h=${1#sha256:}; echo "$DATA/blobs/sha256/${h:0:2}/$h"; }

# ---- 1. FROM scratch + COPY into the embedded registry ------------------------
log "scratch build into the embedded registry"
build scratch1 'FROM scratch\nCOPY hello.txt /hello.txt\n'
ok "scratch build succeeded" test "$(field scratch1 state)" = SUCCEEDED
MAN="$E2E_TMP/scratch1/manifest.json"
ok "manifest recorded with its media type" \
  test "$(field scratch1 mediatype)" = application/vnd.oci.image.manifest.v1+json
ok "manifest digest matches its bytes" \
  test "$(field scratch1 digest)" = "sha256:$(sha256 "$MAN")"
CONFIG=$(json_get "$MAN" 'd["config"]["digest"]')
LAYER=$(json_get "$MAN" 'd["layers"][-1]["digest"]')
ok "config blob in the CAS" test -s "$(cas_path "$CONFIG")"
ok "layer blob in the CAS" test -s "$(cas_path "$LAYER")"
ok "CAS layer digest verified" test "sha256:$(sha256 "$(cas_path "$LAYER")")" = "$LAYER"
ok "layer holds the copied file" \
  test "$(tar -xzOf "$(cas_path "$LAYER")" hello.txt 2>/dev/null || tar -xzOf "$(cas_path "$LAYER")" ./hello.txt)" = "hello from waved"
ok "memory limit mechanism reported" test -n "$(field scratch1 mem)"
log "memory limits through: $(field scratch1 mem)"

# ---- 2. FROM a local registry + RUN, pushed there with credentials -------------
log "busybox build pushed to a registry with basic auth"
PORT=$(start_registry target basic builder s3cret-pw)
REG="127.0.0.1:$PORT"
make_busybox_layout "$E2E_TMP/busybox"
push_layout "$E2E_TMP/busybox" "$REG/library/busybox:latest" builder:s3cret-pw
build run1 "FROM $REG/library/busybox:latest\nRUN echo hi > /hi\n" \
  --repo "$REG/wave/build" --insecure --cred "$REG=builder:s3cret-pw"
ok "registry build succeeded" test "$(field run1 state)" = SUCCEEDED
[ "$(field run1 state)" = SUCCEEDED ] || tail -30 "$E2E_TMP/run1/build.log" >&2
skopeo inspect --raw --tls-verify=false --creds builder:s3cret-pw \
  "docker://$REG/wave/build:run1" >"$E2E_TMP/run1.manifest" 2>"$E2E_TMP/run1.skopeo" || true
ok "skopeo sees the pushed tag" test -s "$E2E_TMP/run1.manifest"
ok "pushed digest is the one the builder reported" \
  test "$(field run1 digest)" = "sha256:$(sha256 "$E2E_TMP/run1.manifest")"
skopeo copy --quiet --src-tls-verify=false --src-creds builder:s3cret-pw \
  "docker://$REG/wave/build:run1" "dir:$E2E_TMP/run1.dir" 2>/dev/null || true
TOP=$(json_get "$E2E_TMP/run1.manifest" 'd["layers"][-1]["digest"].split(":")[1]')
ok "the RUN layer holds /hi" \
  test "$(tar -xzOf "$E2E_TMP/run1.dir/$TOP" hi 2>/dev/null)" = hi
# The job records hold every step's argv and env: the password must not be there.
ok "job record holds the steps but no credential" \
  bash -c "grep -qa 'bd-run1_1' '$DATA'/state/*.mdb && ! grep -qa -e s3cret-pw -e YnVpbGRlcjpzM2NyZXQtcHc '$DATA'/state/*.mdb"
ok "no credential in the build log" bash -c "! grep -q s3cret-pw '$E2E_TMP/run1/build.log'"
ok "auth file removed with the work dir when the job ended" test ! -e "$E2E_TMP/run1/config.json"

# ---- 3. A failing Containerfile ------------------------------------------------
log "failing build"
build fail1 'FROM scratch\nCOPY no-such-file.txt /\n'
ok "failing build is FAILED" test "$(field fail1 state)" = FAILED
ok "reason names the failing step" \
  bash -c "grep -q \"^reason=Container build failed: step 'build' exited with status\" '$E2E_TMP/fail1.out'"
ok "log holds the builder's error" grep -q no-such-file.txt "$E2E_TMP/fail1/build.log"
ok "nothing tagged for the failed build" test ! -e "$E2E_TMP/fail1/manifest.json"

e2e_finish
