#!/usr/bin/env bash
# tests/e2e/view.sh — the HTML pages under /view/ against a real waved, two
# real docker-registry instances and (when installed) buildah: records are
# made the ordinary way (a container request, a build, a mirror, a scan of a
# small image with one dpkg package and an OSV record written here), then each
# page is fetched: 200, text/html; charset=utf-8, its own CSP, the record's
# key fields, values carrying <script> come out escaped, no Platform token on
# the container page; unknown ids 404, malformed ids 400, inspect errors keep
# the upstream's status; a real browser (chromium, when installed) applies the
# stylesheet under the page's CSP; and with wave.capabilities.web-views=false every
# /view route answers 404 (same data, records present).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
TOKEN="tower-secret-$RANDOM$RANDOM"
TOKEN_HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
XSS='<script>alert(1)</script>'
XSS_ESC='&lt;script&gt;alert(1)&lt;/script&gt;'
has() { grep -qF -- "$2" "$1" || { echo "    $1 lacks '$2'" >&2; return 1; }; }
lacks() { ! grep -qF -- "$2" "$1" || { echo "    $1 has '$2'" >&2; return 1; }; }
post() { # PATH BODY OUT — prints the status
  curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$2" "$WAVED_URL$1"
}
# page PATH OUT — GETs a page; prints "<status> <content type>"; headers in OUT.h.
page() {
  local code
  code=$(curl -s -o "$2" -D "$2.h" -w '%{http_code}' "$WAVED_URL$1")
  echo "$code $(grep -i '^content-type:' "$2.h" | head -1 | cut -d' ' -f2- | tr -d '\r')"
}
HTML="text/html; charset=utf-8"
field() { json_get "$1" "$2" 2>/dev/null || true; }

# ---- images: busybox, and a one-layer image with a dpkg database for the scan ------------
REG=127.0.0.1:$(start_registry src anon)
DST=127.0.0.1:$(start_registry dst anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
BB="$REG/library/busybox:latest"

R=$T/scanroot
mkdir -p $R/etc $R/var/lib/dpkg
printf 'ID=debian\nVERSION_ID="12"\n' >$R/etc/os-release
printf 'Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.11-1~deb12u1\n\n' \
  >$R/var/lib/dpkg/status
L=$T/scanimg
new_layout $L
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C $R -cf $T/l.tar .
DIFF=$(sha256 $T/l.tar)
gzip -n -c $T/l.tar >$T/l.tgz
LSIZE=$(stat -c %s $T/l.tgz)
LAYER=$(put_blob $L $T/l.tgz)
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$DIFF" >$T/c.json
CSIZE=$(stat -c %s $T/c.json)
CFG=$(put_blob $L $T/c.json)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$CFG" "$CSIZE" "$LAYER" "$LSIZE" >$T/m.json
MSIZE=$(stat -c %s $T/m.json)
MAN=$(put_blob $L $T/m.json)
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
  "$MAN" "$MSIZE" >$L/index.json
push_layout $L "$REG/library/scanme:latest"

# An OSV record whose summary carries markup.
mkdir -p $T/osv
cat >$T/osv/debian-openssl.json <<EOF
{"id":"DEBIAN-CVE-2023-5678","modified":"2024-01-01T00:00:00Z","upstream":["CVE-2023-5678"],
 "summary":"openssl: $XSS in DH",
 "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
 "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}]}]}
EOF

WAVED_LOG_LEVEL=warn
start_waved "wave:
  accounts: {alice: $TOKEN_HASH}
  registries: {\"$REG\": {insecure: true}, \"$DST\": {insecure: true}}
  scan: {enabled: true}
  build: {failure: {duration: 0s}}"
log "waved on $WAVED_URL, registries $REG and $DST"
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" --import-osv $T/osv >$T/import.out 2>&1
ok "import-osv: 1 record" grep -q "1 records read, 1 imported" $T/import.out

# ---- container request page ----------------------------------------------------------------
BODY="{\"containerImage\":\"$BB\",\"towerAccessToken\":\"$TOKEN\",\"fingerprint\":\"$XSS\",\"containerConfig\":{\"env\":[\"NOTE=$XSS\"]}}"
ok "container request -> 200" is "$(post /v1alpha2/container "$BODY" $T/c.json)" 200
TOK=$(field $T/c.json 'd["requestId"]')
ok "container page -> 200 html" is "$(page /view/containers/$TOK $T/c.html)" "200 $HTML"
ok "container page: id, image, wave image, user" bash -c "grep -qF '$TOK' $T/c.html && grep -qF '$BB' $T/c.html && grep -qF 'localhost:9090/wt/$TOK/library/busybox:latest' $T/c.html && grep -qF '<td>alice</td>' $T/c.html"
ok "container page: fingerprint escaped" has $T/c.html "<td>$XSS_ESC</td>"
ok "container page: containerConfig escaped" has $T/c.html "NOTE=$XSS_ESC"
ok "container page: no raw <script>" lacks $T/c.html "<script"
ok "container page: never the Platform token" lacks $T/c.html "$TOKEN"
ok "container page: own CSP with the style hash, once" \
  is "$(grep -ci '^content-security-policy:' $T/c.html.h) $(grep -i '^content-security-policy:' $T/c.html.h | grep -c "style-src 'sha256-")" "1 1"
ok "HEAD of a page: 200, no body" is "$(curl -s -I -o /dev/null -w '%{http_code} %{size_download}' "$WAVED_URL/view/containers/$TOK")" "200 0"

# ---- scan page -----------------------------------------------------------------------------
ok "scan request -> 200" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/scanme:latest\",\"scanMode\":\"async\"}" $T/s.json)" 200
SCAN=$(field $T/s.json 'd["scanId"]')
STOK=$(field $T/s.json 'd["requestId"]')
scan_ended() {
  curl -s -o $T/srec.json "$WAVED_URL/v1alpha1/scans/$SCAN"
  [ "$(field $T/srec.json 'd["status"]')" != PENDING ]
}
poll_until 30 scan_ended || true
ok "scan ended SUCCEEDED" is "$(field $T/srec.json 'd["status"]')" SUCCEEDED
ok "scan page -> 200 html" is "$(page /view/scans/$SCAN $T/s.html)" "200 $HTML"
ok "scan page: status, image" bash -c "grep -qF '>SUCCEEDED<' $T/s.html && grep -qF '$REG/library/scanme:latest' $T/s.html"
ok "scan page: the finding's row" \
  has $T/s.html '<td><a rel="noreferrer" href="https://avd.aquasec.com/nvd/cve-2023-5678">CVE-2023-5678</a></td><td class="HIGH">HIGH</td><td>openssl</td><td>3.0.11-1~deb12u1</td><td>3.0.11-1~deb12u2</td>'
ok "scan page: title escaped" has $T/s.html "<td>openssl: $XSS_ESC in DH</td>"
ok "scan page: no raw <script>" lacks $T/s.html "<script"
ok "scan page: count by severity" has $T/s.html '<tr><th class="HIGH">HIGH</th><td>1</td></tr>'
ok "scan page: links the container request" has $T/s.html "href=\"../containers/$STOK\""
ok "container page of the scanned request links its scan" \
  bash -c "curl -s '$WAVED_URL/view/containers/$STOK' | grep -qF 'href=\"../scans/$SCAN\"'"

# ---- mirror page ---------------------------------------------------------------------------
ok "mirror request -> 200" is "$(post /v1alpha2/container "{\"containerImage\":\"$BB\",\"mirror\":true,\"buildRepository\":\"$DST/mirror\",\"towerAccessToken\":\"$TOKEN\"}" $T/m.json)" 200
MID=$(field $T/m.json 'd["buildId"]')
ok "mirror DONE" wait_done "$(field $T/m.json 'd["requestId"]')"
curl -s -o $T/mrec.json "$WAVED_URL/v1alpha1/mirrors/$MID"
ok "mirror page -> 200 html" is "$(page /view/mirrors/$MID $T/m.html)" "200 $HTML"
ok "mirror page: status, source, target, digest" \
  bash -c "grep -qF '>SUCCEEDED<' $T/m.html && grep -qF '<td>$BB</td>' $T/m.html && grep -qF '<td>$DST/mirror/library/busybox:latest</td>' $T/m.html && grep -qF '$(field $T/mrec.json 'd["digest"]')' $T/m.html"
ok "mirror page: the log" has $T/m.html "Mirror log</h2>"

# ---- inspect page ----------------------------------------------------------------------------
BB_DIGEST=sha256:$(skopeo inspect --raw --tls-verify=false "docker://$BB" | sha256sum | cut -d' ' -f1)
ok "inspect page -> 200 html" is "$(page "/view/inspect?image=$BB&platform=linux/amd64" $T/i.html)" "200 $HTML"
ok "inspect page: digest, reference, a layer" \
  bash -c "grep -qF '<td>$BB_DIGEST</td>' $T/i.html && grep -qF '<td>latest</td>' $T/i.html && grep -qF 'Layers</h2>' $T/i.html"
ok "inspect page: unknown image -> 404 html" \
  is "$(page "/view/inspect?image=$REG/library/nothing-here:latest" $T/i404.html)" "404 $HTML"
ok "inspect page: no image -> 400 html" is "$(page "/view/inspect" $T/i400.html)" "400 $HTML"
ok "inspect page: markup in the image is escaped in the error" \
  bash -c "[ \"\$(curl -s -o $T/ix.html -w '%{http_code}' '$WAVED_URL/view/inspect?image=%3Cscript%3E')\" = 400 ] && ! grep -q '<script' $T/ix.html"

# ---- build page (needs buildah) ----------------------------------------------------------------
if command -v buildah >/dev/null; then
  CF=$(printf 'FROM %s\nRUN echo "%s" && sleep 2\n' "$BB" "$XSS" | base64 -w0)
  ok "build request -> 200" is "$(post /v1alpha2/container "{\"containerFile\":\"$CF\"}" $T/b.json)" 200
  BID=$(field $T/b.json 'd["buildId"]')
  ok "build page while it runs -> 200, BUILDING" \
    bash -c "[ \"\$(curl -s -o $T/b0.html -w '%{http_code}' '$WAVED_URL/view/builds/$BID')\" = 200 ] && grep -qF '>BUILDING<' $T/b0.html"
  ok "build DONE" wait_done "$(field $T/b.json 'd["requestId"]')"
  curl -s -o $T/brec.json "$WAVED_URL/v1alpha1/builds/$BID"
  ok "build page -> 200 html" is "$(page /view/builds/$BID $T/b.html)" "200 $HTML"
  ok "build page: status, target, digest, exit status" \
    bash -c "grep -qF '>SUCCEEDED<' $T/b.html && grep -qF '$(field $T/brec.json 'd["targetImage"]')' $T/b.html && grep -qF '$(field $T/brec.json 'd["digest"]')' $T/b.html && grep -qF '<tr><th>Exit status</th><td>0</td></tr>' $T/b.html"
  ok "build page: Containerfile escaped" has $T/b.html "RUN echo &quot;$XSS_ESC&quot; &amp;&amp; sleep 2"
  ok "build page: the log with the RUN's output escaped" has $T/b.html "$XSS_ESC"
  ok "build page: no raw <script>" lacks $T/b.html "<script"
  ok "build page: links the raw log" has $T/b.html "href=\"../../v1alpha1/builds/$BID/logs\""
  ok "job-name form bd-<hex>-<n> redirects" \
    is "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$WAVED_URL/view/builds/${BID%_*}-${BID##*_}")" \
    "302 $WAVED_URL/view/builds/$BID"
  ok "bare container id with one build redirects to it" \
    is "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$WAVED_URL/view/builds/${BID%_*}")" \
    "302 $WAVED_URL/view/builds/$BID"
  # A failing build run twice (failure.duration 0s lets the retry build again): _1 and _2.
  CFF=$(printf 'FROM %s\nRUN echo failing-build && exit 3\n' "$BB" | base64 -w0)
  post /v1alpha2/container "{\"containerFile\":\"$CFF\"}" $T/f1.json >/dev/null
  wait_done "$(field $T/f1.json 'd["requestId"]')"
  post /v1alpha2/container "{\"containerFile\":\"$CFF\"}" $T/f2.json >/dev/null
  wait_done "$(field $T/f2.json 'd["requestId"]')"
  F1=$(field $T/f1.json 'd["buildId"]')
  F2=$(field $T/f2.json 'd["buildId"]')
  ok "failing build twice: _1 then _2" is "${F1##*_} ${F2##*_} ${F1%_*}" "1 2 ${F2%_*}"
  ok "failed build page: FAILED, exit status, log" \
    bash -c "[ \"\$(curl -s -o $T/f.html -w '%{http_code}' '$WAVED_URL/view/builds/$F1')\" = 200 ] && grep -qF '>FAILED<' $T/f.html && grep -qF '<tr><th>Exit status</th><td>3</td></tr>' $T/f.html && grep -qF 'failing-build' $T/f.html"
  ok "bare container id with two builds -> list page" is "$(page "/view/builds/${F1%_*}" $T/list.html)" "200 $HTML"
  ok "list page links both builds, newest first" \
    bash -c "grep -o 'href=\"bd-[0-9a-f]*_[0-9]\"' $T/list.html | tr '\n' ' ' | grep -qx 'href=\"$F2\" href=\"$F1\" '"
else
  log "buildah not installed: build page checks skipped"
fi

# ---- unknown and malformed ids, POST /view/scans ---------------------------------------------
ok "unknown build -> 404 html" is "$(page /view/builds/bd-0000000000000000_9 $T/n1.html)" "404 $HTML"
ok "bare container id without builds -> 404 html" is "$(page /view/builds/bd-0000000000000000 $T/n0.html)" "404 $HTML"
ok "unknown mirror -> 404 html" is "$(page /view/mirrors/mr-000000000000 $T/n2.html)" "404 $HTML"
ok "unknown scan -> 404 html" is "$(page /view/scans/sc-0000000000000000_1 $T/n3.html)" "404 $HTML"
ok "unknown container -> 404 html" is "$(page /view/containers/zzzzzzzzzzzz $T/n4.html)" "404 $HTML"
ok "malformed build id -> 400" is "$(page '/view/builds/bd%21x' $T/b1.html)" "400 $HTML"
ok "malformed mirror id -> 400" is "$(page /view/mirrors/nope $T/b2.html)" "400 $HTML"
ok "malformed scan id -> 400" is "$(page /view/scans/sc-xyz $T/b3.html)" "400 $HTML"
ok "malformed token -> 400" is "$(page /view/containers/NOT-A-TOKEN $T/b4.html)" "400 $HTML"
ok "POST /view/scans -> 404 html" \
  is "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -X POST -d x "$WAVED_URL/view/scans")" "404 $HTML"

# ---- a real browser applies the stylesheet under the page's CSP (when chromium is installed) --
# The header is dark (#16202e) only when the CSP's style hash matches the inline <style>;
# with a wrong hash chromium renders the page unstyled (white).
if command -v chromium >/dev/null; then
  timeout 90 chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$T/chromium" --screenshot="$T/shot.png" --window-size=800,300 \
    "$WAVED_URL/view/containers/$TOK" >"$T/chromium.log" 2>&1 || true
  ok "chromium: the page renders with its stylesheet (header pixel #16202e)" \
    is "$($PY - "$T/shot.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
pos, idat, hdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    chunk = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        hdr = struct.unpack(">IIBBBBB", chunk)
    elif kind == b"IDAT":
        idat += chunk
    pos += 12 + n
w, h, depth, ctype = hdr[:4]
bpp = {2: 3, 6: 4}[ctype]
raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
for y in range(12):  # unfilter the first rows only
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
        line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 255
    prev = line
print("%02x%02x%02x" % tuple(prev[10 * bpp:10 * bpp + 3]))
PY
)" 16202e
else
  # make test installs chromium (packaging/deps.sh test): a missing browser is a failure.
  ok "chromium is installed (packaging/deps.sh test)" false
fi

# ---- wave.capabilities.web-views: false --------------------------------------------------------
stop_waved
echo "wave.capabilities.web-views: false" >>"$WAVED_DIR/config.yml"
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
ok "disabled: the record is still served as JSON" \
  is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha2/container/$TOK")" 200
for p in "/view/containers/$TOK" "/view/scans/$SCAN" "/view/mirrors/$MID" "/view/inspect?image=$BB" \
  "/view/builds/${BID:-bd-0000000000000000_1}"; do
  ok "disabled: $p -> 404" is "$(curl -s -o $T/off.html -w '%{http_code}' "$WAVED_URL$p")" 404
done
ok "disabled: the 404 reveals no record" lacks $T/off.html "$BB"

e2e_finish
