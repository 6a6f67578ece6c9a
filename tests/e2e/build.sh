#!/usr/bin/env bash
# tests/e2e/build.sh — builds through the front door with buildah and a local
# docker-registry: FROM scratch + COPY with a context, FROM a local busybox +
# RUN pulled while it still builds (the pull waits), a failing Containerfile
# (status and the pull's 400 with the log), an identical request (cached, same
# id), a build pushed to an external wave.build.repo (pulled by the digest its push
# recorded), package requests
# (rendering, config template images, a build whose base images are local),
# a restart during a build, 200 parked pulls next to a /health loop, and a
# parked pull past its deadline.
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

WAVED_LOG_LEVEL=warn
WAVED_CFG="wave:
  build:
    templates: {mamba-image-v2: \"$BB\", conda-base-image: \"$BB\"}"
start_waved "$WAVED_CFG"
DATA="$WAVED_DIR/data"
log "waved on $WAVED_URL, registry on $REG"

b64() { printf '%b' "$1" | base64 -w0; }
# post BODY OUT — POST /v1alpha2/container; prints the status.
post() {
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
get() { curl -s -o "$2" -w '%{http_code}' "$WAVED_URL$1"; }
field() { json_get "$1" "$2" 2>/dev/null || true; }
# The pull name through this waved (wave.server.url is the default localhost:9090).
pull_name() { field "$1" 'd["targetImage"]' | sed "s#^localhost:9090#127.0.0.1:$WAVED_PORT#"; }
# top_layer_file DIR FILE — a file of the last layer of a skopeo dir: copy.
top_layer_file() {
  local top; top=$(json_get "$1/manifest.json" 'd["layers"][-1]["digest"].split(":")[1]')
  tar -xzOf "$1/$top" "$2" 2>/dev/null || tar -xzOf "$1/$top" "./$2" 2>/dev/null
}

# ---- 1. FROM scratch + COPY with a buildContext --------------------------------------
log "1. scratch build with a context"
mkdir -p "$T/ctx" && echo "hello from the context" >"$T/ctx/hello.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/ctx" -cf "$T/ctx.tar" .
TD="sha256:$(sha256 "$T/ctx.tar")"
gzip -n -c "$T/ctx.tar" >"$T/ctx.tgz"
CTX="{\"location\":\"data:$(base64 -w0 "$T/ctx.tgz")\",\"tarDigest\":\"$TD\"}"
CF1=$(b64 'FROM scratch\nCOPY hello.txt /hello.txt\n')
ok "scratch: 200" test "$(post "{\"containerFile\":\"$CF1\",\"buildContext\":$CTX}" "$T/r1.json")" = 200
ID1=$(field "$T/r1.json" 'd["buildId"]')
ok "scratch: build id bd-<16 hex>_1" bash -c "[[ '$ID1' =~ ^bd-[0-9a-f]{16}_1$ ]]"
ok "scratch: cached false, no succeeded yet" \
  test "$(field "$T/r1.json" 'str(d["cached"])+str(d.get("succeeded"))')" = FalseNone
ok "scratch: containerImage in the embedded repository" \
  test "$(field "$T/r1.json" 'd["containerImage"]')" = "localhost:9090/wave/build:${ID1:3:16}"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r1.json")" "dir:$T/p1" 2>"$T/p1.err"
ok "scratch: skopeo pulls the built image" test -s "$T/p1/manifest.json"
ok "scratch: the layer holds the context file" test "$(top_layer_file "$T/p1" hello.txt)" = "hello from the context"
wait_done "$(field "$T/r1.json" 'd["requestId"]')"
ok "scratch: status DONE succeeded" test "$(field "$T/st.json" 'd["status"]+str(d["succeeded"])')" = DONETrue
ok "scratch: duration is decimal seconds" grep -Eq '"duration":[0-9]+\.[0-9]{9}[,}]' "$T/st.json"
get "/v1alpha1/builds/$ID1" "$T/b1.json" >/dev/null
ok "scratch: build record with digest" \
  test "$(field "$T/b1.json" 'd["digest"]')" = "sha256:$(sha256 "$T/p1/manifest.json")"
ok "scratch: bad tarDigest is a 400" test "$(post "{\"containerFile\":\"$CF1\",\"buildContext\":{\"location\":\"data:$(base64 -w0 "$T/ctx.tgz")\",\"tarDigest\":\"sha256:$(printf '0%.0s' {1..64})\"}}" "$T/bad.json")" = 400

# ---- 2. an identical request: cached, same build id ---------------------------------
log "2. identical request"
post "{\"containerFile\":\"$CF1\",\"buildContext\":$CTX}" "$T/r1b.json" >/dev/null
ok "identical: same build id" test "$(field "$T/r1b.json" 'd["buildId"]')" = "$ID1"
ok "identical: cached and succeeded" \
  test "$(field "$T/r1b.json" 'str(d["cached"])+str(d["succeeded"])')" = TrueTrue
ok "identical: a new token" test "$(field "$T/r1b.json" 'd["requestId"]')" != "$(field "$T/r1.json" 'd["requestId"]')"

# ---- 3. FROM busybox + RUN, pulled while it builds -----------------------------------
log "3. pull while building"
CF3=$(b64 "FROM $BB\nRUN sleep 3 && echo hi > /hi\n")
post "{\"containerFile\":\"$CF3\"}" "$T/r3.json" >/dev/null
T0=$(date +%s.%N)
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r3.json")" "dir:$T/p3" \
  2>"$T/p3.err" &
SK=$!
sleep 0.5
get "/v1alpha2/container/$(field "$T/r3.json" 'd["requestId"]')/status" "$T/st3.json" >/dev/null
ok "run: status BUILDING while the pull waits" test "$(field "$T/st3.json" 'd["status"]')" = BUILDING
ok "run: the pull is still waiting" kill -0 $SK
get "/v1alpha1/builds/$(field "$T/r3.json" 'd["buildId"]')/status" "$T/bs3.json" >/dev/null
ok "run: build status PENDING" test "$(field "$T/bs3.json" 'd["status"]')" = PENDING
wait $SK || true
T1=$(date +%s.%N)
log "the pull took $(python3 -c "print(round($T1-$T0,2))") s"
ok "run: the waiting pull succeeded" test -s "$T/p3/manifest.json"
ok "run: the RUN layer holds /hi" test "$(top_layer_file "$T/p3" hi)" = hi
ok "run: it waited for the build (>= 2 s)" python3 -c "import sys; sys.exit(0 if $T1-$T0 >= 2 else 1)"

# ---- 4. a failing Containerfile ----------------------------------------------------------
log "4. failing build"
CF4=$(b64 "FROM $BB\nRUN echo the-build-output && exit 3\n")
post "{\"containerFile\":\"$CF4\"}" "$T/r4.json" >/dev/null
ID4=$(field "$T/r4.json" 'd["buildId"]')
PN4=$(pull_name "$T/r4.json"); R4=${PN4#*/}
CODE4=$(curl -s -o "$T/p4.json" -w '%{http_code}' "$WAVED_URL/v2/${R4%:*}/manifests/${R4##*:}")
ok "fail: the waiting pull gets 400" test "$CODE4" = 400
ok "fail: error code UNKNOWN" test "$(field "$T/p4.json" 'd["errors"][0]["code"]')" = UNKNOWN
ok "fail: the message is the build log" grep -q the-build-output "$T/p4.json"
wait_done "$(field "$T/r4.json" 'd["requestId"]')"
ok "fail: status DONE, succeeded false" \
  test "$(field "$T/st.json" 'd["status"]+str(d["succeeded"])')" = DONEFalse
ok "fail: reason and detailsUri" \
  test "$(field "$T/st.json" 'd["reason"]+" "+d["detailsUri"]')" = "Container build did not complete successfully http://localhost:9090/view/builds/$ID4"
get "/v1alpha1/builds/$ID4" "$T/b4.json" >/dev/null
ok "fail: record exitStatus 3" test "$(field "$T/b4.json" 'd["exitStatus"]')" = 3
get "/v1alpha1/builds/$ID4/logs" "$T/l4.txt" >/dev/null
ok "fail: /logs has the output" grep -q the-build-output "$T/l4.txt"
ok "fail: /logs has no escape sequences" bash -c "! grep -q $'\x1b' '$T/l4.txt'"
post "{\"containerFile\":\"$CF4\"}" "$T/r4b.json" >/dev/null
ok "fail: identical request within the failure window: same id, succeeded false" \
  test "$(field "$T/r4b.json" 'd["buildId"]+str(d["cached"])+str(d["succeeded"])')" = "${ID4}TrueFalse"
ok "unknown build: 404" test "$(get /v1alpha1/builds/bd-0000000000000000_1 /dev/null)" = 404
ok "no conda lock: /condalock 404" test "$(get "/v1alpha1/builds/$ID4/condalock" /dev/null)" = 404

# ---- 5. packages: rendering, template images from config.yml, local bases -------------
log "5. packages"
PK='{"packages":{"type":"CONDA","entries":["bioconda::samtools=1.17","bwa"],"channels":["conda-forge","bioconda"]}}'
ok "packages: 200" test "$(post "$PK" "$T/r5.json")" = 200
ID5=$(field "$T/r5.json" 'd["buildId"]')
ok "packages: tag named after the tools" \
  bash -c "[[ '$(field "$T/r5.json" 'd["containerImage"]')' == localhost:9090/wave/build:samtools-1.17_bwa--* ]]"
get "/v1alpha1/builds/$ID5" "$T/b5.json" >/dev/null
field "$T/b5.json" 'd["dockerFile"]' >"$T/b5.Dockerfile"
field "$T/b5.json" 'd["condaFile"]' | sed '${/^$/d}' >"$T/b5.conda.yml"
ok "packages: micromamba v2 stages on the configured images" \
  bash -c "grep -qx 'FROM $BB AS build' '$T/b5.Dockerfile' && grep -qx 'FROM $BB AS prod' '$T/b5.Dockerfile'"
ok "packages: the installs of the v2 template" grep -q 'micromamba install -y -n base -f /tmp/conda.yml' "$T/b5.Dockerfile"
printf 'channels:\n- conda-forge\n- bioconda\ndependencies:\n- bioconda::samtools=1.17\n- bwa\n' >"$T/want.yml"
ok "packages: conda file" diff "$T/want.yml" "$T/b5.conda.yml"
wait_done "$(field "$T/r5.json" 'd["requestId"]')"
get "/v1alpha1/builds/$ID5/logs" "$T/l5.txt" >/dev/null
# The work dir is removed when the job ends, so the context is checked through the
# build: its COPY of conda.yml ran (a missing file fails that step).
ok "packages: conda.yml was in the build context (its COPY ran)" grep -q 'COPY.*conda.yml' "$T/l5.txt"
ok "packages: the work dir is gone once the build ended" test ! -e "$DATA/build/$ID5"
ok "packages: the local base image was pulled, the build failed in its RUN (no micromamba)" \
  bash -c "grep -q 'STEP 3/' '$T/l5.txt' && ! grep -qi 'error.*pull' '$T/l5.txt'"
PK2="{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"salmon\"],\"condaOpts\":{\"mambaImage\":\"$BB\",\"baseImage\":\"$BB\",\"basePackages\":null,\"commands\":[\"RUN echo custom\"]}},\"nameStrategy\":\"none\",\"dryRun\":true}"
ok "packages dry run: 200" test "$(post "$PK2" "$T/r6.json")" = 200
ok "packages dry run: id <checksum>_0, not cached" \
  bash -c "[[ '$(field "$T/r6.json" 'd["buildId"]+str(d["cached"])')' =~ ^[0-9a-f]{16}_0False$ ]]"
ok "packages dry run: nameStrategy none" \
  bash -c "[[ '$(field "$T/r6.json" 'd["containerImage"]')' =~ ^localhost:9090/wave/build:[0-9a-f]{16}$ ]]"
ok "packages dry run: nothing built" test ! -e "$DATA/build/bd-$(field "$T/r6.json" 'd["buildId"][:16]')_1"
ok "cran: rendered and built (400s only for bad input)" \
  test "$(post '{"packages":{"type":"CRAN","entries":["dplyr"]},"dryRun":true}' "$T/r7.json")" = 200
ok "bad template: 400" \
  test "$(post '{"packages":{"type":"CRAN","entries":["x"]},"buildTemplate":"conda/pixi:v1"}' "$T/r8.json")" = 400

# ---- 6. 200 parked pulls and a /health loop ---------------------------------------------
log "6. 200 parked pulls"
CF9=$(b64 "FROM $BB\nRUN sleep 4 && echo parked > /p\n")
post "{\"containerFile\":\"$CF9\"}" "$T/r9.json" >/dev/null
PN9=$(pull_name "$T/r9.json"); R9=${PN9#*/}
MURL="$WAVED_URL/v2/${R9%:*}/manifests/${R9##*:}"
ACC='Accept: application/vnd.oci.image.manifest.v1+json'
mkdir -p "$T/parked"
CURLS=()
for i in $(seq 1 200); do
  curl -s -o "$T/parked/$i.body" -w '%{http_code}\n' -H "$ACC" "$MURL" >"$T/parked/$i.code" &
  CURLS+=($!)
done
sleep 1
# One curl per /health, the times summed by awk (a python per sample took seconds under load).
for i in $(seq 1 100); do
  curl -s -o /dev/null -w '%{time_total}\n' "$WAVED_URL/health"
done >"$T/health.times"
log "/health while 200 pulls were parked: $(awk '{t += $1; if ($1 > m) m = $1} END {printf "%d requests, mean %.2f ms, max %.2f ms", NR, t / NR * 1000, m * 1000}' "$T/health.times")"
wait "${CURLS[@]}" || true
CODES=$(cat "$T/parked"/*.code | sort | uniq -c | tr -s ' ')
log "parked pulls answered: $CODES"
ok "parked: all 200 answered 200" test "$(cat "$T/parked"/*.code | grep -c '^200$')" = 200
ok "parked: all got the same manifest" test "$(sha256sum "$T/parked"/*.body | cut -d' ' -f1 | sort -u | wc -l)" = 1
ok "parked: nothing left parked" test -n "$(curl -s "$WAVED_URL/health")"

# ---- 7. a restart during a build ----------------------------------------------------------
log "7. restart during a build"
CF10=$(b64 "FROM $BB\nRUN sleep 30 && echo never > /n\n")
post "{\"containerFile\":\"$CF10\"}" "$T/r10.json" >/dev/null
ID10=$(field "$T/r10.json" 'd["buildId"]')
sleep 1
stop_waved
WAVED_DIR_KEEP=$WAVED_DIR
# restart on the same data and port
"$WAVED_BIN" --config "$WAVED_DIR_KEEP/config.yml" >>"$WAVED_DIR_KEEP/waved.log" 2>&1 &
WAVED_PID=$!; E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
get "/v1alpha1/builds/$ID10" "$T/b10.json" >/dev/null
ok "restart: the interrupted build failed" test "$(field "$T/b10.json" 'str(d["succeeded"])')" = False
get "/v1alpha2/container/$(field "$T/r10.json" 'd["requestId"]')/status" "$T/st10.json" >/dev/null
ok "restart: container status DONE, succeeded false" \
  test "$(field "$T/st10.json" 'd["status"]+str(d["succeeded"])')" = DONEFalse
get "/v1alpha1/builds/$ID10/logs" "$T/l10.txt" >/dev/null
ok "restart: the log says why" grep -q 'waved restarted while the job was running' "$T/l10.txt"
CF10b=$(b64 "FROM $BB\nRUN sleep 30 && echo never > /n\n")
post "{\"containerFile\":\"$CF10b\"}" "$T/r10b.json" >/dev/null
ok "restart: an identical request builds again at once (_2)" \
  test "$(field "$T/r10b.json" 'd["buildId"]')" = "${ID10%_1}_2"
get "/v1alpha1/builds/$ID1" "$T/b1r.json" >/dev/null
ok "restart: earlier records survive" test "$(field "$T/b1r.json" 'str(d["succeeded"])')" = True
post "{\"containerFile\":\"$CF1\",\"buildContext\":$CTX}" "$T/r1c.json" >/dev/null
ok "restart: the finished build is still reused" test "$(field "$T/r1c.json" 'd["buildId"]')" = "$ID1"
stop_waved

# ---- 8. a build pushed to an external wave.build.repo -------------------------------------
log "8. external build repository"
# No tag cache: a later token's pull must not get the digest from the first pull's HEAD.
start_waved "wave: {build: {repo: \"$REG/wave/build\"}, storage: {cache: {tag-duration: 0s}}}"
CF11=$(b64 "FROM $BB\nRUN echo ext > /ext\n")
post "{\"containerFile\":\"$CF11\"}" "$T/r11.json" >/dev/null
ok "external: containerImage in the external repository" \
  bash -c "[[ '$(field "$T/r11.json" 'd["containerImage"]')' =~ ^$REG/wave/build:[0-9a-f]{16}$ ]]"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r11.json")" "dir:$T/p11" 2>"$T/p11.err"
ok "external: the waiting pull through waved succeeded" test -s "$T/p11/manifest.json"
ok "external: the RUN layer holds /ext" test "$(top_layer_file "$T/p11" ext)" = ext
skopeo inspect --raw --tls-verify=false "docker://$(field "$T/r11.json" 'd["containerImage"]')" >"$T/ext.manifest"
ok "external: the image is in the registry, same digest" \
  test "$(sha256 "$T/ext.manifest")" = "$(sha256 "$T/p11/manifest.json")"
# A new token of the same build after the tag moved in the repository: the pull asks for the
# digest the push recorded (registry/resolve.c, built_digest), not for what the tag says now.
post "{\"containerFile\":\"$CF11\"}" "$T/r11b.json" >/dev/null
skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "docker://$BB" \
  "docker://$(field "$T/r11.json" 'd["containerImage"]')" 2>"$T/mv11.err"
skopeo copy --quiet --src-tls-verify=false "docker://$(pull_name "$T/r11b.json")" "dir:$T/p11b" \
  2>"$T/p11b.err"
ok "external: a later token gets the built image although the tag moved" \
  test "$(sha256 "$T/p11b/manifest.json")" = "$(sha256 "$T/ext.manifest")"
stop_waved

# ---- 9. a parked pull past its deadline (server.idle-timeout) -------------------------------
log "9. parked pull deadline"
start_waved "server.idle-timeout: 1s"
CF12=$(b64 "FROM $BB\nRUN sleep 5 && echo late > /late\n")
post "{\"containerFile\":\"$CF12\"}" "$T/r12.json" >/dev/null
PN12=$(pull_name "$T/r12.json"); R12=${PN12#*/}
CODE12=$(curl -s -o "$T/p12.json" -w '%{http_code}' "$WAVED_URL/v2/${R12%:*}/manifests/${R12##*:}")
ok "deadline: 408 TIMEOUT once server.idle-timeout passed" \
  test "$CODE12 $(field "$T/p12.json" 'd["errors"][0]["code"]')" = "408 TIMEOUT"

e2e_finish
