#!/usr/bin/env bash
# tests/e2e/scan.sh — security scans end to end: an image made here (dpkg, apk,
# conda and Python packages, and a later layer that deletes one) is pushed to a
# real docker-registry, OSV records written here are imported with
# `waved --import-osv`, and container requests with scanMode required/async go
# through a real waved. The findings must be exactly the expected ones.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T=$E2E_TMP
has() { [[ "$1" == *"$2"* ]] || { echo "    '$1' lacks '$2'" >&2; return 1; }; }
post() { # PATH BODY OUT — prints the status
  curl -s -o "$3" -D "$3.h" -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST --data-binary "$2" "$WAVED_URL$1"
}
get() { curl -s -o "$2" -D "$2.h" -w '%{http_code}' "$WAVED_URL$1"; }
jt() { json_get "$1" "' '.join(map(str, $2))"; } # FILE TUPLE_EXPR — fields joined by spaces
header() { grep -i "^$2:" "$1.h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

# ---- the image ------------------------------------------------------------------

# layer_blob LAYOUT ROOT — ROOT as a gzip layer blob; prints "<hex> <size> <diff_id hex>".
layer_blob() {
  local w; w=$(mktemp -d "$T/lb.XXXXXX")
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$2" -cf "$w/l.tar" .
  local diff; diff=$(sha256 "$w/l.tar")
  gzip -n -c "$w/l.tar" >"$w/l.tgz"
  local size; size=$(stat -c %s "$w/l.tgz")
  local d; d=$(put_blob "$1" "$w/l.tgz")
  rm -rf "$w"
  echo "$d $size $diff"
}

# make_scan_layout DIR ROOT... — an amd64 image with one layer per ROOT, tagged latest.
make_scan_layout() {
  local lay=$1 layers="" diffs="" d s f; shift
  new_layout "$lay"
  for root in "$@"; do
    read -r d s f < <(layer_blob "$lay" "$root")
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$s}"
    diffs+="${diffs:+,}\"sha256:$f\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diffs" >"$lay/c.json"
  local cs; cs=$(stat -c %s "$lay/c.json")
  local c; c=$(put_blob "$lay" "$lay/c.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$c" "$cs" "$layers" >"$lay/m.json"
  local ms; ms=$(stat -c %s "$lay/m.json")
  local m; m=$(put_blob "$lay" "$lay/m.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$m" "$ms" >"$lay/index.json"
}

R=$T/roots
mkdir -p $R/0/etc $R/0/var/lib/dpkg $R/0/lib/apk/db \
  $R/1/opt/conda/conda-meta $R/1/usr/lib/python3.11/site-packages \
  $R/2/usr/lib/python3.11/site-packages
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >$R/0/etc/os-release
cat >$R/0/var/lib/dpkg/status <<'EOF'
Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u1

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1

Package: curl
Status: install ok installed
Architecture: amd64
Version: 7.88.1-10+deb12u5

EOF
printf 'P:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\n' \
  >$R/0/lib/apk/db/installed
echo '{"name":"numpy","version":"1.24.0","build":"py311h_0","subdir":"linux-64"}' \
  >$R/1/opt/conda/conda-meta/numpy-1.24.0-py311h_0.json
echo '{"name":"zlib","version":"1.3","build":"h_0","subdir":"linux-64"}' \
  >$R/1/opt/conda/conda-meta/zlib-1.3-h_0.json
SP=$R/1/usr/lib/python3.11/site-packages
for pv in requests:2.25.0 Jinja2:3.1.2 urllib3:2.2.2; do
  mkdir -p "$SP/${pv%%:*}-${pv#*:}.dist-info"
  printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n\n' "${pv%%:*}" "${pv#*:}" \
    >"$SP/${pv%%:*}-${pv#*:}.dist-info/METADATA"
done
: >$R/2/usr/lib/python3.11/site-packages/.wh.requests-2.25.0.dist-info

# A second image (one layer, only openssl) whose layer blob is corrupted in the registry.
mkdir -p $R/bad/var/lib/dpkg
head -5 $R/0/var/lib/dpkg/status >$R/bad/var/lib/dpkg/status
echo "bad image" >$R/bad/marker

# ---- OSV data: inside and outside the ranges ---------------------------------------
O=$T/osv
mkdir -p $O
MOD='"modified":"2024-01-01T00:00:00Z"'
cat >$O/debian-openssl.json <<EOF
{"id":"DEBIAN-CVE-2023-5678",$MOD,"upstream":["CVE-2023-5678"],"summary":"openssl: excessive time in DH key generation",
 "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
 "affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}]}]}
EOF
cat >$O/debian-curl.json <<EOF
{"id":"DEBIAN-CVE-2024-2398",$MOD,"upstream":["CVE-2024-2398"],"summary":"curl: HTTP/2 push headers memory-leak",
 "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L"}],
 "affected":[{"package":{"ecosystem":"Debian:12","name":"curl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"7.88.1-10+deb12u5"}]}]}]}
EOF
cat >$O/alpine.json <<EOF
[{"id":"ALPINE-CVE-2023-42363",$MOD,"aliases":["CVE-2023-42363"],"summary":"busybox: use-after-free in awk",
  "affected":[{"package":{"ecosystem":"Alpine","name":"busybox"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.36.1-r16"}]}]}],
  "database_specific":{"severity":"low"}},
 {"id":"ALPINE-CVE-2023-0001",$MOD,"affected":[{"package":{"ecosystem":"Alpine","name":"musl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.4-r1"}]}]}],
  "database_specific":{"severity":"high"}}]
EOF
cat >$O/conda.json <<EOF
[{"id":"WAVED-TEST-0002",$MOD,"aliases":["CVE-2021-34141"],"summary":"numpy: incomplete string comparison",
  "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected":[{"package":{"ecosystem":"conda","name":"numpy"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.26.0"}]}]}]},
 {"id":"WAVED-TEST-0003",$MOD,"aliases":["CVE-2022-37434"],"summary":"zlib: heap overflow",
  "affected":[{"package":{"ecosystem":"conda","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.13"}]}]}],
  "database_specific":{"severity":"critical"}}]
EOF
cat >$O/pypi.json <<EOF
[{"id":"GHSA-j8r2-6x86-q33q",$MOD,"aliases":["CVE-2023-32681"],"summary":"requests: Proxy-Authorization leak",
  "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"}],
  "affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.31.0"}]}]}]},
 {"id":"GHSA-h5c8-rqwp-cp95",$MOD,"aliases":["CVE-2024-22195"],"summary":"Jinja vulnerable to HTML attribute injection",
  "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N"}],
  "affected":[{"package":{"ecosystem":"PyPI","name":"jinja2"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.3"}]}]}]},
 {"id":"GHSA-v845-jxx5-vc9f",$MOD,"aliases":["CVE-2023-43804"],
  "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N"}],
  "affected":[{"package":{"ecosystem":"PyPI","name":"urllib3"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.0.0"},{"fixed":"2.0.6"}]}]}]}]
EOF

# ---- registry, slow front, waved -------------------------------------------------------
REG_PORT=$(start_registry reg anon)
SLOW_PORT=$(free_port)
# Each blob GET through it waits 1.5 s so that a scan is still running when the test looks;
# the wait and the polls for a scan's end scale with the sanitizer slowdown (docs/testing.md):
# under TSan at load 25 the scan had already SUCCEEDED when the test read its record.
BLOB_DELAY=$(awk -v f="$E2E_SLOWDOWN" 'BEGIN{print 1.5 * f}')
$PY "$(dirname "${BASH_SOURCE[0]}")/slow_proxy.py" "$SLOW_PORT" "$REG_PORT" "$BLOB_DELAY" \
  >"$T/slow.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$SLOW_PORT/v2/"
make_scan_layout $T/img $R/0 $R/1 $R/2
make_scan_layout $T/bad $R/bad
make_scan_layout $T/base $R/0
push_layout $T/img "127.0.0.1:$REG_PORT/library/scanme:latest"
push_layout $T/bad "127.0.0.1:$REG_PORT/library/badlayer:latest"
push_layout $T/base "127.0.0.1:$REG_PORT/library/base:latest"
IMG="127.0.0.1:$SLOW_PORT/library/scanme:latest"
BAD="127.0.0.1:$SLOW_PORT/library/badlayer:latest"

WAVED_LOG_LEVEL=warn
# Registries named by an address are served only when wave.registries lists them.
REGS="registries: {\"127.0.0.1:$REG_PORT\": {insecure: true}, \"127.0.0.1:$SLOW_PORT\": {insecure: true}}"
start_waved "wave: {$REGS, scan: {enabled: true}}"
log "waved on $WAVED_URL, registry on 127.0.0.1:$REG_PORT behind 127.0.0.1:$SLOW_PORT"
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" --import-osv "$O" >"$T/import.out" 2>&1
ok "import-osv: 9 records imported" has "$(cat $T/import.out)" "9 records read, 9 imported"

# ---- scanMode required, scanLevels [LOW] -------------------------------------------------
REQ="{\"containerImage\":\"$IMG\",\"scanMode\":\"required\",\"scanLevels\":[\"LOW\"]}"
ok "required: POST -> 200" is "$(post /v1alpha2/container "$REQ" $T/r1.json)" 200
TOK=$(json_get $T/r1.json 'd["requestId"]')
SCAN=$(json_get $T/r1.json 'd.get("scanId","")')
ok "required: scanId sc-<16hex>_1" grep -Eqx 'sc-[0-9a-f]{16}_1' <<<"$SCAN"
ok "required: no succeeded in the response (contract §3.3)" is "$(json_get $T/r1.json '"succeeded" in d')" False
ok "scan record PENDING while it runs, no duration" \
  is "$(get /v1alpha1/scans/$SCAN $T/pending.json >/dev/null; jt $T/pending.json '(d["status"], "duration" in d, d["containerImage"])')" \
  "PENDING False $IMG"

seen_scanning=no
done_seeing_scanning() {
  get /v1alpha2/container/$TOK/status $T/st.json >/dev/null
  s=$(json_get $T/st.json 'd["status"]')
  [ "$s" = SCANNING ] && { seen_scanning=yes; cp $T/st.json $T/scanning.json; }
  [ "$s" = DONE ]
}
POLL_EVERY=0.05 poll_until 10 done_seeing_scanning || true
ok "status SCANNING while the scan runs" is "$seen_scanning" yes
ok "SCANNING has no succeeded/duration/vulnerabilities" \
  is "$(json_get $T/scanning.json '[k for k in ("succeeded","duration","vulnerabilities") if k in d]')" "[]"
ok "status DONE" is "$(json_get $T/st.json 'd["status"]')" DONE
ok "status vulnerabilities = exact counts" \
  is "$(json_get $T/st.json 'd["vulnerabilities"]')" '{"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 1}'
ok "status succeeded false (levels [LOW])" is "$(json_get $T/st.json 'd["succeeded"]')" False
ok "status reason names the severities not allowed" is "$(json_get $T/st.json 'd["reason"]')" \
  "Container security scan operation found one or more vulnerabilities with severity: MEDIUM,HIGH,CRITICAL"
ok "status scanId and detailsUri" is "$(jt $T/st.json '(d["scanId"], d["detailsUri"])')" \
  "$SCAN http://localhost:9090/view/scans/$SCAN"
ok "status duration has a decimal point" grep -q '"duration":[0-9]*\.[0-9]\{9\}' $T/st.json

# ---- the scan record: exactly the expected findings, most severe first -----------------
ok "GET scan record -> 200 json" is "$(get /v1alpha1/scans/$SCAN $T/rec.json):$(header $T/rec.json Content-Type)" "200:application/json"
ok "record status SUCCEEDED, exitCode 0, platform" \
  is "$(jt $T/rec.json '(d["id"], d["status"], d["exitCode"], d["platform"], d["requestId"])')" \
  "$SCAN SUCCEEDED 0 linux/amd64 $TOK"
ok "record findings exactly (id, severity, package, installed, fixed)" $PY - $T/rec.json <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["vulnerabilities"]
got = [(x["id"], x["severity"], x["pkgName"], x["installedVersion"], x["fixedVersion"]) for x in v]
want = [("CVE-2021-34141", "CRITICAL", "numpy", "1.24.0", "1.26.0"),
        ("CVE-2023-5678", "HIGH", "libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
        ("CVE-2023-5678", "HIGH", "openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"),
        ("CVE-2024-22195", "MEDIUM", "Jinja2", "3.1.2", "3.1.3"),
        ("CVE-2023-42363", "LOW", "busybox", "1.36.1-r15", "1.36.1-r16")]
if got != want:
    print("    got", got, file=sys.stderr)
    sys.exit(1)
sys.exit(0 if all(set(x) == {"id","severity","title","pkgName","installedVersion","fixedVersion","primaryUrl"} for x in v) else 1)
PY
ok "record primaryUrl for a CVE" is "$(json_get $T/rec.json 'd["vulnerabilities"][1]["primaryUrl"]')" \
  "https://avd.aquasec.com/nvd/cve-2023-5678"
ok "record duration has a decimal point" grep -q '"duration":[0-9]*\.[0-9]\{9\}' $T/rec.json

ok "GET /spdx -> 200 text/plain attachment" \
  is "$(get /v1alpha1/scans/$SCAN/spdx $T/spdx.json):$(header $T/spdx.json Content-Type):$(header $T/spdx.json Content-Disposition)" \
  "200:text/plain:attachment; filename=\"spdx-$SCAN.json\""
ok "SPDX lists the packages, not the deleted one" $PY - $T/spdx.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
names = {p["name"] for p in d["packages"]}
want = {"openssl", "libssl3", "curl", "busybox", "musl", "numpy", "zlib", "Jinja2", "urllib3"}
missing = want - names
ok = d["spdxVersion"] == "SPDX-2.3" and not missing and "requests" not in names
if not ok:
    print("    names", sorted(names), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
ok "GET /logs -> 200 octet-stream attachment" \
  is "$(get /v1alpha1/scans/$SCAN/logs $T/scan.log):$(header $T/scan.log Content-Type):$(header $T/scan.log Content-Disposition)" \
  "200:application/octet-stream:attachment; filename=$SCAN.log"
ok "scan log tells the story" has "$(cat $T/scan.log)" "5 vulnerabilities"
ok "unknown scan id -> 404" is "$(get /v1alpha1/scans/sc-0000000000000000_1 $T/nf.json)" 404
ok "malformed scan id -> 404" is "$(get /v1alpha1/scans/id%2Fx $T/nf2.json)" 404
ok "persisted request record names the scan" \
  is "$(get /v1alpha2/container/$TOK $T/prec.json >/dev/null; json_get $T/prec.json 'd["scanId"]')" "$SCAN"

# ---- scanMode async: DONE at once; the image keeps its scan id (7d cache) -------------------
ASYNC="{\"containerImage\":\"$IMG\",\"scanMode\":\"async\"}"
ok "async: POST -> 200" is "$(post /v1alpha2/container "$ASYNC" $T/a.json)" 200
ATOK=$(json_get $T/a.json 'd["requestId"]')
ok "async: same scan id (cached per image and digest), no succeeded" \
  is "$(jt $T/a.json '(d.get("scanId"), "succeeded" in d)')" "$SCAN False"
ok "async: status DONE at once with scanId, succeeded, no counts" \
  is "$(get /v1alpha2/container/$ATOK/status $T/ast.json >/dev/null; jt $T/ast.json '(d["status"], d["scanId"], d["succeeded"], "vulnerabilities" in d)')" \
  "DONE $SCAN True False"

ALL="{\"containerImage\":\"$IMG\",\"scanMode\":\"required\",\"scanLevels\":[\"LOW\",\"MEDIUM\",\"HIGH\",\"CRITICAL\"]}"
post /v1alpha2/container "$ALL" $T/all.json >/dev/null
ok "required, every level allowed: DONE, succeeded, informational reason" \
  is "$(get /v1alpha2/container/$(json_get $T/all.json 'd["requestId"]')/status $T/allst.json >/dev/null; jt $T/allst.json '(d["status"], d["succeeded"], d["reason"])')" \
  "DONE True Container security scan operation found one or more vulnerabilities that are compatible with requested security levels: LOW,MEDIUM,HIGH,CRITICAL"
ok "scanMode none: no scan" \
  is "$(post /v1alpha2/container "{\"containerImage\":\"$IMG\",\"scanMode\":\"none\"}" $T/n.json; jt $T/n.json '("scanId" in d, d["succeeded"])')" \
  "200False True"

# ---- a failed scan releases the id: the next request scans again with _2 ----------------------
BLOB=$(json_get $T/bad/blobs/sha256/$(json_get $T/bad/index.json 'd["manifests"][0]["digest"][7:]') 'd["layers"][0]["digest"][7:]')
BLOBFILE="$E2E_TMP/reg-reg/data/docker/registry/v2/blobs/sha256/${BLOB:0:2}/$BLOB/data"
cp "$BLOBFILE" $T/blob.orig
$PY -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[-12]^=0xff; open(p,"wb").write(b)' "$BLOBFILE"
BREQ="{\"containerImage\":\"$BAD\",\"scanMode\":\"required\",\"scanLevels\":[\"LOW\"]}"
post /v1alpha2/container "$BREQ" $T/b1.json >/dev/null
BTOK=$(json_get $T/b1.json 'd["requestId"]')
BSCAN=$(json_get $T/b1.json 'd["scanId"]')
status_in_done() { # TOKEN FILE — fetches its status into FILE; true once DONE
  get /v1alpha2/container/$1/status $2 >/dev/null
  [ "$(json_get $2 'd["status"]')" = DONE ]
}
POLL_EVERY=0.05 poll_until 10 status_in_done $BTOK $T/bst.json || true
ok "corrupt layer: status DONE, succeeded false, scan failure reason" \
  is "$(jt $T/bst.json '(d["status"], d["succeeded"], d["reason"], "vulnerabilities" in d)')" \
  "DONE False Container security scan did not complete successfully False"
ok "corrupt layer: record FAILED with exitCode and logs" \
  is "$(get /v1alpha1/scans/$BSCAN $T/brec.json >/dev/null; jt $T/brec.json '(d["status"], d["exitCode"], "scan failed" in d["logs"])')" \
  "FAILED 1 True"
cp $T/blob.orig "$BLOBFILE"
post /v1alpha2/container "$BREQ" $T/b2.json >/dev/null
ok "after a failure the image scans again with the next counter" \
  is "$(json_get $T/b2.json 'd["scanId"]')" "${BSCAN%_1}_2"
B2TOK=$(json_get $T/b2.json 'd["requestId"]')
POLL_EVERY=0.05 poll_until 10 status_in_done $B2TOK $T/b2st.json || true
ok "repaired image: DONE with its HIGH finding" \
  is "$(jt $T/b2st.json '(d["succeeded"], d["vulnerabilities"])')" "False {'HIGH': 1}"

# ---- a scan interrupted by a crash runs again after the restart -------------------------------
KREQ="{\"containerImage\":\"127.0.0.1:$SLOW_PORT/library/base:latest\",\"scanMode\":\"required\",\"scanLevels\":[\"LOW\",\"MEDIUM\",\"HIGH\"]}"
post /v1alpha2/container "$KREQ" $T/k.json >/dev/null
KTOK=$(json_get $T/k.json 'd["requestId"]')
get /v1alpha2/container/$KTOK/status $T/kst0.json >/dev/null
{ kill -9 "$WAVED_PID"; wait "$WAVED_PID"; } 2>/dev/null || true
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
POLL_EVERY=0.05 poll_until 10 status_in_done $KTOK $T/kst.json || true
ok "killed while SCANNING, restarted: the scan ends DONE with its findings" \
  is "$(json_get $T/kst0.json 'd["status"]') $(jt $T/kst.json '(d["status"], d["succeeded"], d["vulnerabilities"])')" \
  "SCANNING DONE True {'HIGH': 2, 'LOW': 1}"

# ---- scanning disabled: scanMode answers 501 -------------------------------------------------
stop_waved
start_waved "wave: {$REGS}"
ok "scanning disabled: scanMode required -> 501" is "$(post /v1alpha2/container "$REQ" $T/dis.json)" 501

e2e_finish
