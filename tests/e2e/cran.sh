#!/usr/bin/env bash
# tests/e2e/cran.sh — a CRAN package build through waved, offline, proven by R
# itself: a Debian R base image (tests/fixtures/cran/r-base.sh: debootstrap of
# r-base-core, r-cran-littler, r-cran-docopt; built once and cached outside the
# tree, see docs/builds.md "The CRAN end-to-end test") pushed to a loopback
# docker-registry; a CRAN-like repository on 127.0.0.1 holding a tiny package
# this test writes; a `packages: {type: CRAN, …}` request whose channel names
# that repository and whose cranOpts.rImage names that image. buildah builds it
# (RUN steps share the host's network, so install2.r reaches the loopback
# repository); podman then pulls the image through waved and runs it with no
# network: R loads the package and prints what its function returns.
# Cache: $WAVED_TEST_CACHE, else /var/cache/waved-test as root, else
# ${XDG_CACHE_HOME:-~/.cache}/waved-test.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in buildah skopeo podman runc; do
  if ! command -v "$tool" >/dev/null; then
    echo "skip: $tool not installed (packaging/deps.sh test)"
    exit 0
  fi
done
if [ "$(id -u)" -ne 0 ] || ! command -v debootstrap >/dev/null; then
  echo "skip: the R base image is made with debootstrap as root (packaging/deps.sh test)"
  exit 0
fi
T=$E2E_TMP
SRC=${WAVED_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -n "${WAVED_TEST_CACHE:-}" ]; then
  CACHE=$WAVED_TEST_CACHE
elif [ "$(id -u)" -eq 0 ]; then
  CACHE=/var/cache/waved-test
else
  CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/waved-test
fi
now() { date +%s.%N; }
secs() { python3 -c "print(round($2-$1,1))"; }

# ---- 1. the R base image: cached OCI layout → the loopback registry ------------------------
t0=$(now)
LAYOUT=$("$SRC/tests/fixtures/cran/r-base.sh" "$CACHE")
t1=$(now)
log "R base image layout: $LAYOUT ($(secs "$t0" "$t1") s)"
ok "base: an OCI layout in the cache" test -f "$LAYOUT/index.json"
REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
RIMAGE="$REG/library/r-base:latest"
push_layout "$LAYOUT" "$RIMAGE"
t2=$(now)
log "pushed to $RIMAGE ($(secs "$t1" "$t2") s)"
ok "base: in the registry" skopeo inspect --raw --tls-verify=false "docker://$RIMAGE" >/dev/null

# ---- 2. a CRAN-like repository on loopback with a package written here ---------------------
TOKEN=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
WANT="hello from wavedhello $TOKEN"
P="$T/pkg/wavedhello"
mkdir -p "$P/R" "$T/repo/src/contrib"
cat >"$P/DESCRIPTION" <<EOF
Package: wavedhello
Version: 0.1.0
Title: Says Hello for the waved CRAN Test
Description: One function, written by tests/e2e/cran.sh and installed by a
    waved package build from a repository on loopback.
License: MIT + file LICENSE
Author: waved tests
Maintainer: waved tests <tests@waved.invalid>
NeedsCompilation: no
EOF
echo 'YEAR: 2026
COPYRIGHT HOLDER: waved tests' >"$P/LICENSE"
echo 'export(hello)' >"$P/NAMESPACE"
echo "hello <- function() \"$WANT\"" >"$P/R/hello.R"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/pkg" \
  -czf "$T/repo/src/contrib/wavedhello_0.1.0.tar.gz" wavedhello
printf 'Package: wavedhello\nVersion: 0.1.0\nLicense: MIT + file LICENSE\nNeedsCompilation: no\nMD5sum: %s\n' \
  "$(md5sum "$T/repo/src/contrib/wavedhello_0.1.0.tar.gz" | cut -d' ' -f1)" >"$T/repo/src/contrib/PACKAGES"
gzip -n -k "$T/repo/src/contrib/PACKAGES"
CRAN_PORT=$(free_port)
CRAN="http://127.0.0.1:$CRAN_PORT"
$PY -m http.server --bind 127.0.0.1 --directory "$T/repo" "$CRAN_PORT" >"$T/cran.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "$CRAN/src/contrib/PACKAGES"
ok "repository: serves PACKAGES" has "$(curl -s "$CRAN/src/contrib/PACKAGES")" "Package: wavedhello"

# ---- 3. the package build through waved ---------------------------------------------------
WAVED_LOG_LEVEL=warn
start_waved ""
REQ="{\"packages\":{\"type\":\"CRAN\",\"entries\":[\"wavedhello\"],\"channels\":[\"$CRAN\"],\"cranOpts\":{\"rImage\":\"$RIMAGE\",\"basePackages\":null,\"commands\":null}}}"
CODE=$(curl -s -o "$T/r.json" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
  --data-binary "$REQ" "$WAVED_URL/v1alpha2/container")
ok "request: 200" is "$CODE" 200
ID=$(json_get "$T/r.json" 'd["buildId"]' 2>/dev/null || true)
ok "request: the build's tag is its id (no conda YAML to name it after)" \
  is "$(json_get "$T/r.json" 'd["containerImage"]' 2>/dev/null)" "localhost:9090/wave/build:${ID:3:16}"
t3=$(now)
wait_done "$(json_get "$T/r.json" 'd["requestId"]')" 540 || true
t4=$(now)
log "build $ID: $(secs "$t3" "$t4") s"
curl -s -o "$T/b.json" "$WAVED_URL/v1alpha1/builds/$ID"
curl -s -o "$T/build.log" "$WAVED_URL/v1alpha1/builds/$ID/logs"
ok "build: succeeded" is "$(json_get "$T/st.json" 'd["status"]+str(d.get("succeeded"))' 2>/dev/null)" DONETrue
json_get "$T/b.json" 'd["dockerFile"]' >"$T/Containerfile" 2>/dev/null || true
ok "build: the container file is cran/installr:v1 on the R image" \
  is "$(head -n1 "$T/Containerfile")" "FROM $RIMAGE"
ok "build: install2.r is given the request's repository" \
  grep -qF "&& install2.r -r '$CRAN' 'wavedhello' \\" "$T/Containerfile"
ok "build: R installed the package" grep -q 'DONE (wavedhello)' "$T/build.log"
ok "repository: the package was downloaded from it" \
  grep -q '"GET /src/contrib/wavedhello_0.1.0.tar.gz HTTP/1.[01]" 200' "$T/cran.log"

# ---- 4. run the image offline: R loads the package ------------------------------------------
cat >"$T/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/podman/root"
runroot = "$T/podman/run"
EOF
pod() {
  CONTAINERS_CONF="$T/containers.conf" CONTAINERS_STORAGE_CONF="$T/storage.conf" \
    podman --root "$T/podman/root" --runroot "$T/podman/run" --storage-driver vfs "$@"
}
IMG=$(json_get "$T/r.json" 'd["targetImage"]' | sed "s#^localhost:9090#127.0.0.1:$WAVED_PORT#")
pod_pull() { pod pull -q --tls-verify=false "$IMG" >/dev/null 2>"$T/pull.err"; }
ok "run: podman pulls the image through waved" pod_pull
t5=$(now)
pod run --rm --pull never --network none "$IMG" Rscript -e 'library(wavedhello)' \
  -e 'cat(wavedhello::hello(), "\n", Sys.getenv("R_LIBS_USER"), " ", find.package("wavedhello"), sep = "")' \
  >"$T/run.out" 2>"$T/run.err" || true
t6=$(now)
log "pull $(secs "$t4" "$t5") s, run $(secs "$t5" "$t6") s"
ok "run: with no network, R loads the package and prints its string" \
  is "$(head -n1 "$T/run.out")" "$WANT"
ok "run: the package is in R_LIBS_USER's library" is "$(sed -n 2p "$T/run.out")" \
  "/usr/local/lib/R/site-library /usr/local/lib/R/site-library/wavedhello"
ok "run: nothing else printed" is "$(wc -l <"$T/run.out")" 1
log "times: base $(secs "$t0" "$t1") s, push $(secs "$t1" "$t2") s, build $(secs "$t3" "$t4") s, pull+run $(secs "$t4" "$t6") s, total $(secs "$t0" "$(now)") s"
if [ "$E2E_FAILS" -ne 0 ]; then
  for f in build.log pull.err run.err; do
    [ -s "$T/$f" ] && { echo "---- $f (tail)"; tail -n 40 "$T/$f"; } >&2
  done
fi
e2e_finish
