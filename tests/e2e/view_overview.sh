#!/usr/bin/env bash
# tests/e2e/view_overview.sh — the operator's overview at /view (docs/operations.md,
# "Overview page"): health and counters; a running build with the tail of its log,
# the page reloading itself (Refresh header, no script) while it runs; the ended
# build under "Recent" with a link to its page; restricted like /metrics; and
# rendered by headless Chromium (the screenshot shows the styled header and the
# content below it).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v chromium >/dev/null || { echo "FAIL chromium not installed (packaging/deps.sh test)"; exit 1; }
T=$E2E_TMP

# A fake builder that talks for a while, then writes an OCI layout of the context.
cat >"$T/fake-build.sh" <<'SH'
set -e
for i in 1 2 3 4 5 6; do echo "overview-step-$i"; sleep 0.5; done
d="$1/oci"; mkdir -p "$d/blobs/sha256"; cd "$d"
echo '{"imageLayoutVersion":"1.0.0"}' > oci-layout
tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$1/context" -cf l.tar .
diff=$(sha256sum l.tar | cut -d' ' -f1); gzip -n l.tar
ld=$(sha256sum l.tar.gz | cut -d' ' -f1); ls=$(stat -c %s l.tar.gz); mv l.tar.gz blobs/sha256/$ld
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $diff > c.json
cd2=$(sha256sum c.json | cut -d' ' -f1); cs=$(stat -c %s c.json); mv c.json blobs/sha256/$cd2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' $cd2 $cs $ld $ls > m.json
md=$(sha256sum m.json | cut -d' ' -f1); ms=$(stat -c %s m.json); mv m.json blobs/sha256/$md
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' $md $ms "$2" > index.json
SH
start_waved "wave:
  build:
    buildah: {build: \"sh $T/fake-build.sh {workdir} {tag}\", push: \"true\", cleanup: \"\"}
metrics: {allow-addresses: [127.0.0.1/32]}"

ok "idle: /view answers 200" is "$(curl -s -o "$T/idle.html" -w '%{http_code}' "$WAVED_URL/view")" 200
ok "  with the health table" grep -q 'Hot-path hits' "$T/idle.html"
ok "  and says nothing runs" grep -q 'Nothing is running' "$T/idle.html"

cf=$(printf 'FROM scratch\nCOPY . /a\n' | base64 -w0)
curl -s -o "$T/b.json" -H 'Content-Type: application/json' -X POST \
  --data-binary "{\"containerFile\":\"$cf\"}" "$WAVED_URL/v1alpha2/container"
bid=$(json_get "$T/b.json" 'd["buildId"]')
step2_shown() {
  curl -s -o "$T/run.html" -D "$T/run.hdr" "$WAVED_URL/view"
  grep -q 'overview-step-2' "$T/run.html"
}
poll_until 5 step2_shown || true
ok "running: the build is listed with a link to its page" grep -q "href=\"/view/builds/$bid\"" "$T/run.html"
ok "  as RUNNING" grep -q '>RUNNING<' "$T/run.html"
ok "  with the tail of its log" grep -q 'overview-step-2' "$T/run.html"
ok "  and the page reloads itself (Refresh: 2)" grep -qi '^refresh: 2' "$T/run.hdr"
ok "  without a script" bash -c "! grep -qi '<script' '$T/run.html'"
timeout 90 chromium --headless=new --no-sandbox --disable-gpu --no-first-run \
  --user-data-dir="$T/chromium" --screenshot="$T/shot.png" --window-size=900,700 \
  "$WAVED_URL/view" >"$T/chromium.log" 2>&1 || true
ok "chromium took a screenshot" test -s "$T/shot.png"
read -r header dark <<<"$($PY - "$T/shot.png" <<'PY'
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
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        p = a + b - c
        pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
        line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 255
    rows.append(line)
    prev = line
head = "%02x%02x%02x" % tuple(rows[10][10 * bpp:10 * bpp + 3])
# Text below the header: dark pixels in the lower part of the page.
dark = sum(1 for y in range(120, h) for x in range(0, w, 2)
           if sum(rows[y][x * bpp:x * bpp + 3]) < 200)
print(head, dark)
PY
)"
ok "the screenshot shows the styled header (#16202e)" is "$header" 16202e
ok "  and text below it (dark pixels: $dark)" test "${dark:-0}" -gt 500

completed() {
  st=$(curl -s "$WAVED_URL/v1alpha1/builds/$bid/status" | json_get - 'd.get("status","")' 2>/dev/null || true)
  [ "$st" = COMPLETED ]
}
poll_until 10 completed || true
sleep 0.3
curl -s -o "$T/done.html" -D "$T/done.hdr" "$WAVED_URL/view"
ok "ended: the build is under Recent with its state" grep -q "$bid — SUCCEEDED" "$T/done.html"
ok "  linked to its page" grep -q "href=\"/view/builds/$bid\"" "$T/done.html"
ok "  and the page no longer reloads" bash -c "! grep -qi '^refresh:' '$T/done.hdr'"
code=$(curl -s --interface 127.0.0.2 -o "$T/deny.html" -w '%{http_code}' "$WAVED_URL/view")
ok "another address: 403 (restricted like /metrics)" is "$code" 403
stop_waved
e2e_finish
