#!/usr/bin/env bash
# tests/e2e/proxy.sh — the /v2 proxy against real registries and real clients:
# docker-registry upstreams (anonymous, htpasswd Basic, Bearer token) holding a
# single-arch busybox with an Entrypoint and an amd64+arm64 index; container
# requests through POST /v1alpha2/container with a data: layer, env,
# entrypoint and workingDir; pulls with skopeo (inspect --raw / --config,
# copy to an OCI layout) and containerd's ctr; cache behaviour with the
# upstream stopped; pass-through; error envelopes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
USER_=e2euser
PASS_=e2e-pass-42

# ---- upstreams ------------------------------------------------------------------------
make_busybox_layout "$T/busybox" '["/bin/sh","-e"]'
make_multiarch_layout "$T/multi"
declare -A REG
REG[anon]=127.0.0.1:$(start_registry anon anon)
REG[basic]=127.0.0.1:$(start_registry basic basic "$USER_" "$PASS_")
REG[token]=127.0.0.1:$(start_registry token token "$USER_" "$PASS_")
for m in anon basic token; do
  creds=""
  [ "$m" = anon ] || creds="$USER_:$PASS_"
  push_layout "$T/busybox" "${REG[$m]}/library/busybox:latest" "$creds"
  push_layout "$T/multi" "${REG[$m]}/library/multi:latest" "$creds"
done
log "upstreams: ${REG[anon]} (anon) ${REG[basic]} (basic) ${REG[token]} (token)"

# ---- the request layer ------------------------------------------------------------------
mkdir -p "$T/lay/opt/wave"
echo "hello from the wave layer" >"$T/lay/opt/wave/hello.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/lay" -cf "$T/layer.tar" opt
gzip -n -c "$T/layer.tar" >"$T/layer.tgz"
TAR_D=sha256:$(sha256 "$T/layer.tar")
GZ_D=sha256:$(sha256 "$T/layer.tgz")
GZ_SIZE=$(stat -c %s "$T/layer.tgz")
B64=$(base64 -w0 "$T/layer.tgz")
CC="{\"env\":[\"E2E=1\",\"MODE=test\"],\"entrypoint\":[\"/bin/busybox\",\"sh\"],\"workingDir\":\"/work\",\"layers\":[{\"location\":\"data:$B64\",\"gzipDigest\":\"$GZ_D\",\"gzipSize\":$GZ_SIZE,\"tarDigest\":\"$TAR_D\"}]}"

# ---- a misbehaving upstream: slow, wrong digests, garbage --------------------------------------
BADP=$(free_port)
cat >"$T/bad.py" <<'PY'
import hashlib, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
GARBAGE = b"this is not json"
GD = "sha256:" + hashlib.sha256(GARBAGE).hexdigest()
seen = set()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, body=b"", digest=None, head=False):
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        if digest: self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head: self.wfile.write(body)
    def handle_any(self, head):
        p = self.path
        if p == "/v2/": return self.reply(200, b"{}", head=head)
        if head and p not in seen:  # the front door's existence check passes once
            seen.add(p)
            return self.reply(200, b"", GD, head)
        if p.startswith("/v2/slow/"): time.sleep(30); return self.reply(200, head=head)
        if p.startswith("/v2/flaky/"): return self.reply(503, b"{}", head=head)
        if p.startswith("/v2/bad/"):  # a digest that does not match the bytes
            return self.reply(200, b'{"schemaVersion":2}', "sha256:" + "0" * 64, head)
        if p.startswith("/v2/junk/"):  # the right digest of bytes that are not a manifest
            return self.reply(200, GARBAGE, GD, head)
        self.reply(404, head=head)
    def do_GET(self): self.handle_any(False)
    def do_HEAD(self): self.handle_any(True)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
mkdir -p "$T/bad"
$PY "$T/bad.py" "$BADP" >"$T/bad/bad.log" 2>&1 &
echo $! >"$T/bad/bad.pid"
wait_http "http://127.0.0.1:$BADP/v2/"

# ---- waved --------------------------------------------------------------------------------
ADMIN_PASS=admin-pass-e2e
WAVED_LOG_LEVEL=warn
start_waved "wave:
  accounts: {admin: $(printf '%s' "$ADMIN_PASS" | sha256sum | cut -d' ' -f1)}
  registries:
    \"${REG[anon]}\": {insecure: true}
    \"127.0.0.1:$BADP\": {insecure: true}
    \"${REG[basic]}\": {username: $USER_, password: $PASS_, insecure: true, allow: {anonymous: pull}}
    \"${REG[token]}\": {username: $USER_, password: $PASS_, insecure: true, allow: {anonymous: pull}}
  httpclient: {connect-timeout: 2s, read-timeout: 3s, retry: {attempts: 3, delay: 50ms, max-delay: 200ms}}
  # A short tag window: the 'upstream stopped + uncached' check needs the tag asked again.
  storage: {cache: {tag-duration: 1s}}"
W=127.0.0.1:$WAVED_PORT
log "waved on $WAVED_URL"

# request IMAGE PLATFORM [CONTAINER_CONFIG] — prints the image to pull through waved.
request() {
  local body="{\"containerImage\":\"$1\",\"containerPlatform\":\"$2\""
  [ -n "${3:-}" ] && body="$body,\"containerConfig\":$3"
  body="$body}"
  local out; out=$(mktemp "$T/req.XXXXXX")
  local code; code=$(curl -s -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$body" "$WAVED_URL/v1alpha2/container")
  [ "$code" = 200 ] || { echo "POST -> $code: $(cat "$out")" >&2; return 1; }
  local target; target=$(json_get "$out" 'd["targetImage"]')
  echo "$W/${target#*/}"
}
sk() { skopeo "$@" 2>>"$T/skopeo.err"; }
sk_quiet() { skopeo "$@" >/dev/null 2>>"$T/skopeo.err"; }
upstream_creds() { [ "$1" = anon ] && echo "" || echo "--creds=$USER_:$PASS_"; }

check_image() { # MODE
  local m=$1 up=${REG[$1]} img
  img=$(request "$up/library/busybox:latest" linux/amd64 "$CC") || { ok "$m: POST container" false; return; }
  ok "$m: POST container -> wt/ image" has "$img" "/wt/"
  local raw cfg upraw upcfg
  raw=$(sk inspect --tls-verify=false --raw "docker://$img")
  cfg=$(sk inspect --tls-verify=false --config "docker://$img")
  upraw=$(sk inspect --tls-verify=false $(upstream_creds $m) --raw "docker://$up/library/busybox:latest")
  upcfg=$(sk inspect --tls-verify=false $(upstream_creds $m) --config "docker://$up/library/busybox:latest")
  ok "$m: one layer added" is "$(json_get - 'len(d["layers"])' <<<"$raw")" \
    "$(( $(json_get - 'len(d["layers"])' <<<"$upraw") + 1 ))"
  ok "$m: new layer descriptor" is "$(json_get - '(d["layers"][-1]["mediaType"], d["layers"][-1]["digest"], d["layers"][-1]["size"])' <<<"$raw")" \
    "('application/vnd.docker.image.rootfs.diff.tar.gzip', '$GZ_D', $GZ_SIZE)"
  ok "$m: original layers unchanged" is "$(json_get - 'd["layers"][:-1]' <<<"$raw")" "$(json_get - 'd["layers"]' <<<"$upraw")"
  ok "$m: Env appended + WAVE_ENTRY_CHAIN" is "$(json_get - 'd["config"]["Env"]' <<<"$cfg")" \
    '["PATH=/bin", "E2E=1", "MODE=test", "WAVE_ENTRY_CHAIN=[\"/bin/sh\",\"-e\"]"]'
  ok "$m: Entrypoint, WorkingDir replaced, Cmd kept" is "$(json_get - '(d["config"]["Entrypoint"], d["config"]["WorkingDir"], d["config"]["Cmd"])' <<<"$cfg")" \
    "(['/bin/busybox', 'sh'], '/work', ['sh'])"
  ok "$m: diff_ids appended" is "$(json_get - 'd["rootfs"]["diff_ids"]' <<<"$cfg")" \
    "$(json_get - 'd["rootfs"]["diff_ids"] + ["'"$TAR_D"'"]' <<<"$upcfg")"
  ok "$m: history untouched" is "$(json_get - 'd["history"]' <<<"$cfg")" "$(json_get - 'd["history"]' <<<"$upcfg")"
  # The digest advertised is the digest of the bytes served.
  local hdr dig
  hdr=$(curl -s -D - -o "$T/m.json" "http://$W/v2/$(sed 's|:latest$||' <<<"${img#*/}")/manifests/latest" | tr -d '\r')
  dig=$(grep -i '^docker-content-digest:' <<<"$hdr" | cut -d' ' -f2)
  ok "$m: docker-content-digest = sha256 of the body" is "$dig" "sha256:$(sha256 "$T/m.json")"
  rm -rf "$T/oci-$m"
  ok "$m: skopeo copy to an OCI layout" sk copy --quiet --src-tls-verify=false "docker://$img" "oci:$T/oci-$m:x"
  ok "$m: the new layer's bytes in the layout" cmp "$T/layer.tgz" "$T/oci-$m/blobs/sha256/${GZ_D#sha256:}"
  ok "$m: layout config has the diff_id" grep -qlF "$TAR_D" -r "$T/oci-$m/blobs/sha256"
  # Pass-through: no containerConfig, same digest as upstream.
  local pimg
  pimg=$(request "$up/library/busybox:latest" linux/amd64) || { ok "$m: pass-through POST" false; return; }
  ok "$m: pass-through keeps the upstream digest" is \
    "$(sk inspect --tls-verify=false "docker://$pimg" | json_get - 'd["Digest"]')" \
    "$(sk inspect --tls-verify=false $(upstream_creds $m) "docker://$up/library/busybox:latest" | json_get - 'd["Digest"]')"
  ok "$m: pass-through raw bytes identical" is "$(sk inspect --tls-verify=false --raw "docker://$pimg")" "$upraw"
  # Multi-arch: only the arm64 entry is rewritten.
  local mimg idx upidx
  mimg=$(request "$up/library/multi:latest" linux/arm64 "$CC") || { ok "$m: multi POST" false; return; }
  idx=$(sk inspect --tls-verify=false --raw "docker://$mimg")
  upidx=$(sk inspect --tls-verify=false $(upstream_creds $m) --raw "docker://$up/library/multi:latest")
  ok "$m: index amd64 entry byte-identical" is \
    "$(json_get - '[e for e in d["manifests"] if e["platform"]["architecture"]=="amd64"]' <<<"$idx")" \
    "$(json_get - '[e for e in d["manifests"] if e["platform"]["architecture"]=="amd64"]' <<<"$upidx")"
  ok "$m: index arm64 entry rewritten" test \
    "$(json_get - '[e["digest"] for e in d["manifests"] if e["platform"]["architecture"]=="arm64"][0]' <<<"$idx")" != \
    "$(json_get - '[e["digest"] for e in d["manifests"] if e["platform"]["architecture"]=="arm64"][0]' <<<"$upidx")"
  rm -rf "$T/ocim-$m"
  ok "$m: skopeo copy arm64" sk copy --quiet --override-arch arm64 --src-tls-verify=false "docker://$mimg" "oci:$T/ocim-$m:x"
  ok "$m: arm64 image has the layer" cmp "$T/layer.tgz" "$T/ocim-$m/blobs/sha256/${GZ_D#sha256:}"
  ok "$m: arm64 config augmented" is "$(sk inspect --override-arch arm64 --tls-verify=false --config "docker://$mimg" | json_get - '(d["architecture"], d["config"]["Env"][-1], d["config"]["WorkingDir"])')" \
    "('arm64', 'MODE=test', '/work')"
  eval "IMG_$m=\$img MIMG_$m=\$mimg PIMG_$m=\$pimg"
}

for m in anon basic token; do check_image $m; done

# ---- containerd -----------------------------------------------------------------------------
start_containerd
ctr_pull() { timeout 60 ctr --address "$CTR_ADDR" images pull --plain-http "$@" >>"$T/ctr.log" 2>&1; }
ok "ctr pull (anon, augmented)" ctr_pull "$IMG_anon"
ok "ctr pull (token, augmented)" ctr_pull "$IMG_token"
ok "ctr pull arm64 of the index (basic)" ctr_pull --platform linux/arm64 "$MIMG_basic"
ok "ctr sees the added layer" has "$(ctr --address "$CTR_ADDR" content ls 2>/dev/null)" "$GZ_D"

# ---- errors -------------------------------------------------------------------------------------
code=$(curl -s -o "$T/e.json" -w '%{http_code}' "$WAVED_URL/v2/wt/zzzzzzzzzzzz/library/busybox/manifests/latest")
ok "unknown token -> 404 NOT_FOUND envelope" is "$code $(cat "$T/e.json")" \
  "404 {\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"Unknown Wave container for token 'zzzzzzzzzzzz'\"}]}"
tok=$(sed 's|^[^/]*/wt/\([^/]*\)/.*|\1|' <<<"$IMG_anon")
code=$(curl -s -o "$T/e.json" -w '%{http_code}' "$WAVED_URL/v2/wt/$tok/library/other/manifests/latest")
ok "token with another image -> 404" is "$code $(json_get "$T/e.json" 'd["errors"][0]["code"]')" "404 NOT_FOUND"
code=$(curl -s -o "$T/e.json" -w '%{http_code}' "$WAVED_URL/v2/wt/$tok/library/busybox/tags/latest")
ok "tags/<not list> -> 400 UNKNOWN" is "$code $(json_get "$T/e.json" 'd["errors"][0]["code"]')" "400 UNKNOWN"
code=$(curl -s -o "$T/e.json" -w '%{http_code}' "$WAVED_URL/v2/wt/$tok/library/busybox/tags/list")
ok "tags/list proxied" is "$code $(json_get "$T/e.json" 'd["tags"]')" '200 ["latest"]'
code=$(curl -s -o "$T/e.json" -w '%{http_code}' "$WAVED_URL/v2/wt/$tok/library/busybox/manifests/nosuchtag")
ok "unknown tag -> 404 MANIFEST_UNKNOWN" is "$code $(json_get "$T/e.json" 'd["errors"][0]["code"]')" "404 MANIFEST_UNKNOWN"

# ---- records, HEAD, docker:// and http(s) layers, eviction ------------------------------------------
tok=$(sed 's|^[^/]*/wt/\([^/]*\)/.*|\1|' <<<"$IMG_basic")
curl -s -o "$T/rec.json" "$WAVED_URL/v1alpha2/container/$tok"
served=$(curl -s -D - -o /dev/null "http://$W/v2/wt/$tok/library/busybox/manifests/latest" | tr -d '\r' | grep -i '^docker-content-digest:' | cut -d' ' -f2)
ok "request record: waveDigest = served digest, sourceDigest = upstream" is \
  "$(json_get "$T/rec.json" '(d.get("waveDigest"), d.get("sourceDigest"), d.get("sourceImage"))')" \
  "('$served', '$(sk inspect --tls-verify=false --creds=$USER_:$PASS_ "docker://${REG[basic]}/library/busybox:latest" | json_get - 'd["Digest"]')', '${REG[basic]}/library/busybox:latest')"
cfgd=$(sk inspect --tls-verify=false --raw "docker://$IMG_basic" | json_get - 'd["config"]["digest"]')
hdr=$(curl -s -I "http://$W/v2/wt/$tok/library/busybox/blobs/$cfgd" | tr -d '\r')
ok "HEAD config blob (blob store) -> 200 with length and digest" is \
  "$(head -1 <<<"$hdr" | cut -d' ' -f2) $(grep -i '^content-length:' <<<"$hdr" | cut -d' ' -f2) $(grep -i '^docker-content-digest:' <<<"$hdr" | cut -d' ' -f2)" \
  "200 $(sk inspect --tls-verify=false --config --raw "docker://$IMG_basic" | wc -c) $cfgd"
bbl=$(sk inspect --tls-verify=false --raw "docker://$IMG_basic" | json_get - 'd["layers"][0]["digest"]')
bbsize=$(sk inspect --tls-verify=false --raw "docker://$IMG_basic" | json_get - 'd["layers"][0]["size"]')
hdr=$(curl -s -I "http://$W/v2/wt/$tok/library/busybox/blobs/$bbl" | tr -d '\r')
ok "HEAD upstream blob -> 200 with its length" is \
  "$(head -1 <<<"$hdr" | cut -d' ' -f2) $(grep -i '^content-length:' <<<"$hdr" | cut -d' ' -f2)" "200 $bbsize"
ok "GET upstream blob streamed, digest intact" is \
  "$(curl -s "http://$W/v2/wt/$tok/library/busybox/blobs/$bbl" | sha256sum | cut -d' ' -f1)" "${bbl#sha256:}"
cached_file="$WAVED_DIR/data/blobcache/blobs/sha256/${bbl:7:2}/${bbl#sha256:}"
ok "streamed blob ($bbsize bytes) kept in the blob cache, intact" is \
  "$(sha256sum "$cached_file" 2>/dev/null | cut -d' ' -f1)" "${bbl#sha256:}"
hdr=$(curl -s -D - -o "$T/blob2" "http://$W/v2/wt/$tok/library/busybox/blobs/$bbl" | tr -d '\r')
ok "second GET from the blob cache: 200, length, digest header, bytes" is \
  "$(head -1 <<<"$hdr" | cut -d' ' -f2) $(grep -i '^content-length:' <<<"$hdr" | cut -d' ' -f2) $(grep -i '^docker-content-digest:' <<<"$hdr" | cut -d' ' -f2) $(sha256sum <"$T/blob2" | cut -d' ' -f1)" \
  "200 $bbsize $bbl ${bbl#sha256:}"
inc=$(curl -s -H 'Content-Type: application/json' --data-binary \
  "{\"containerImage\":\"${REG[anon]}/library/multi:latest\",\"containerPlatform\":\"linux/amd64\",\"containerIncludes\":[\"${REG[anon]}/library/busybox:latest\"]}" \
  "$WAVED_URL/v1alpha2/container" | json_get - 'd["targetImage"]')
inc="$W/${inc#*/}"
rm -rf "$T/oci-inc"
ok "containerIncludes (docker:// layer) pulls" sk copy --quiet --src-tls-verify=false "docker://$inc" "oci:$T/oci-inc:x"
ok "included layer served from the other repository" test -s "$T/oci-inc/blobs/sha256/${bbl#sha256:}"
# An http layer (never fetched by waved: the client follows the 307), with a digest of its own.
HTTP_D="sha256:$(printf 'http layer %s' "$RANDOM" | sha256sum | cut -d' ' -f1)"
HTTP_CC="{\"layers\":[{\"location\":\"http://127.0.0.1:9/layer.tgz\",\"gzipDigest\":\"$HTTP_D\",\"gzipSize\":$GZ_SIZE,\"tarDigest\":\"$TAR_D\"}]}"
himg=$(request "${REG[anon]}/library/busybox:latest" linux/amd64 "$HTTP_CC") || true
if [ -n "$himg" ]; then
  sk inspect --tls-verify=false --raw "docker://$himg" >/dev/null
  htok=$(sed 's|^[^/]*/wt/\([^/]*\)/.*|\1|' <<<"$himg")
  hdr=$(curl -s -D - -o /dev/null "http://$W/v2/wt/$htok/library/busybox/blobs/$HTTP_D" | tr -d '\r')
  ok "http layer -> 307 to its location, Connection: close" is \
    "$(head -1 <<<"$hdr" | cut -d' ' -f2) $(grep -i '^location:' <<<"$hdr" | cut -d' ' -f2) $(grep -i '^connection:' <<<"$hdr" | cut -d' ' -f2) $(grep -i '^content-length:' <<<"$hdr" | cut -d' ' -f2)" \
    "307 http://127.0.0.1:9/layer.tgz close 0"
else
  ok "http layer request accepted" false
fi
# Another request naming IMG_anon's data: layer digest with a dead http location must not take
# the verified bytes away from IMG_anon's pulls (or from its own: same digest, same content).
POISON_CC="{\"layers\":[{\"location\":\"http://127.0.0.1:9/layer.tgz\",\"gzipDigest\":\"$GZ_D\",\"gzipSize\":$GZ_SIZE,\"tarDigest\":\"$TAR_D\"}]}"
pimg=$(request "${REG[anon]}/library/busybox:latest" linux/amd64 "$POISON_CC") || true
ok "the same digest with an http location: request accepted and resolved" \
  sk_quiet inspect --tls-verify=false --raw "docker://$pimg"
ptok=$(sed 's|^[^/]*/wt/\([^/]*\)/.*|\1|' <<<"$pimg")
atok=$(sed 's|^[^/]*/wt/\([^/]*\)/.*|\1|' <<<"$IMG_anon")
ok "same digest with an http location: both tokens still get the stored bytes (200)" is \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://$W/v2/wt/$atok/library/busybox/blobs/$GZ_D") $(curl -s -o /dev/null -w '%{http_code}' "http://$W/v2/wt/$ptok/library/busybox/blobs/$GZ_D")" \
  "200 200"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "admin:$ADMIN_PASS" -X DELETE "$WAVED_URL/container-token/$tok")
ok "evicted token (was cached) -> 404 on the next pull" is \
  "$code $(curl -s -o /dev/null -w '%{http_code}' "http://$W/v2/wt/$tok/library/busybox/manifests/latest")" "200 404"

# ---- the cache: upstream gone, cached manifests still served --------------------------------------
UNCACHED=$(request "${REG[anon]}/library/multi:latest" linux/amd64 "$CC")
stop_registry anon
for v in IMG_anon MIMG_anon PIMG_anon; do
  ok "upstream stopped: $v manifest from cache" sk_quiet inspect --tls-verify=false --raw "docker://${!v}"
done
ok "upstream stopped: augmented config from the blob store" has \
  "$(sk inspect --tls-verify=false --config "docker://$IMG_anon")" "E2E=1"
rm -rf "$T/oci-offline"
ok "upstream stopped: augmented image pulls whole (upstream layer from the blob cache)" \
  sk copy --quiet --src-tls-verify=false "docker://$IMG_anon" "oci:$T/oci-offline:x"
sleep 1.1 # past wave.storage.cache.tag-duration: the tag must be asked upstream again
t0=$(date +%s%N)
code=$(curl -s -m 30 -o "$T/e.json" -w '%{http_code}' "http://$W/v2/$(sed 's|:latest$||' <<<"${UNCACHED#*/}")/manifests/latest")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "upstream stopped + uncached -> 502 UNKNOWN naming the registry" is \
  "$code $(json_get "$T/e.json" 'd["errors"][0]["code"]') $(json_get "$T/e.json" "'${REG[anon]}' in d['errors'][0]['message']")" \
  "502 UNKNOWN True"
ok "... answered in ${ms} ms (< 10 s)" test "$ms" -lt 10000

# pull_error IMAGE_PATH CONFIG — "<status> <code> <ms>" of a manifest pull of a new token.
pull_error() {
  local img t0 ms code
  img=$(request "127.0.0.1:$BADP/$1:latest" linux/amd64 "$2") || { echo "POST failed"; return; }
  t0=$(date +%s%N)
  code=$(curl -s -m 30 -o "$T/pe.json" -w '%{http_code}' "http://$W/v2/$(sed 's|:latest$||' <<<"${img#*/}")/manifests/latest")
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$code $(json_get "$T/pe.json" 'd["errors"][0]["code"]' 2>/dev/null) $ms"
}
r=$(pull_error slow/img "")
ok "slow upstream -> 504 UNKNOWN within the read timeout ($r ms)" \
  bash -c "[[ '$r' =~ ^504\ UNKNOWN\ ([0-9]+)$ ]] && (( \${BASH_REMATCH[1]} < 8000 ))"
ok "... message names the registry" has "$(cat "$T/pe.json")" "127.0.0.1:$BADP"
r=$(pull_error flaky/img "")
ok "upstream 503 (retried) -> 503 UNKNOWN" has "$r" "503 UNKNOWN"
r=$(pull_error bad/img "")
ok "manifest bytes not matching their digest -> 502 UNKNOWN" has "$r" "502 UNKNOWN"
ok "... message says so" has "$(cat "$T/pe.json")" "that hashes to"
r=$(pull_error junk/img "$CC")
ok "garbage manifest (augmentation) -> 502 UNKNOWN" has "$r" "502 UNKNOWN"
r=$(pull_error junk/img "")
ok "garbage manifest (pass-through) served as bytes with their digest" has "$r" "200"

# ---- inspect ---------------------------------------------------------------------------------------
code=$(curl -s -o "$T/i.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "{\"containerImage\":\"${REG[basic]}/library/multi:latest\"}" "$WAVED_URL/v1alpha1/inspect")
ok "inspect index" is "$code $(json_get "$T/i.json" '[m["platform"]["architecture"] for m in d["index"]["manifests"]]')" '200 ["amd64", "arm64"]'
code=$(curl -s -o "$T/i.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "{\"containerImage\":\"${REG[token]}/library/multi:latest\"}" "$WAVED_URL/v1alpha1/inspect?platform=linux/arm64")
ok "inspect index with platform -> container" is "$code $(json_get "$T/i.json" '(d["container"]["config"]["architecture"], d["container"]["oci"], d["container"]["imageName"])')" \
  "200 ('arm64', True, 'library/multi')"
code=$(curl -s -o "$T/i.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "{\"containerImage\":\"${REG[basic]}/library/busybox\"}" "$WAVED_URL/v1alpha1/inspect")
ok "inspect single image" is "$code $(json_get "$T/i.json" '(d["container"]["config"]["config"]["entrypoint"], len(d["container"]["manifest"]["layers"]), d["container"]["reference"])')" \
  "200 (['/bin/sh', '-e'], 1, 'latest')"
code=$(curl -s -o "$T/i.json" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary '{}' "$WAVED_URL/v1alpha1/inspect")
ok "inspect without image -> 400" is "$code $(json_get "$T/i.json" 'd["message"]')" "400 Missing 'containerImage' attribute"

stop_waved
ok "waved stopped cleanly, no sanitizer reports" bash -c "! grep -q 'Sanitizer\|runtime error' '$WAVED_DIR/waved.log'"
grep -q 'ERROR\|Sanitizer' "$WAVED_DIR/waved.log" && { log "waved log:"; grep -A5 'ERROR\|Sanitizer' "$WAVED_DIR/waved.log" | head -40 >&2; }
e2e_finish
