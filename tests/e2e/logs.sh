#!/usr/bin/env bash
# tests/e2e/logs.sh — logs (docs/operations.md, "Logs"): log.format json gives one
# JSON object per line; log.access-log writes the combined format with the request
# id and the response time; a build request's id appears in its access-log line,
# in waved's line about the job it started, and in the job's own log; log.format
# text carries the id as req=<id>; a bad log.format stops waved with a clear error.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP

# The fake builder of tests/e2e/ratelimit.sh: writes an OCI layout of the context.
cat >"$T/fake-build.sh" <<'SH'
set -e
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
BUILDER="  build:
    buildah: {build: \"sh $T/fake-build.sh {workdir} {tag}\", push: \"true\", cleanup: \"\"}"

start_waved "wave:
$BUILDER
log: {format: json, access-log: $T/access.log}"
cf=$(printf 'FROM scratch\nCOPY . /a\n' | base64 -w0)
curl -s -o "$T/b.json" -A 'e2e "agent"' -H 'Content-Type: application/json' -X POST \
  --data-binary "{\"containerFile\":\"$cf\"}" "$WAVED_URL/v1alpha2/container"
bid=$(json_get "$T/b.json" 'd["buildId"]')
completed() { # BUILD_ID — sets st to its status; true once COMPLETED
  st=$(curl -s "$WAVED_URL/v1alpha1/builds/$1/status" | json_get - 'd.get("status","")' 2>/dev/null || true)
  [ "$st" = COMPLETED ]
}
poll_until 30 completed "$bid" || true
ok "the build completed" is "$st" COMPLETED
curl -s -o "$T/build.log" "$WAVED_URL/v1alpha1/builds/$bid/logs"
curl -s -o /dev/null "$WAVED_URL/health"
sleep 1.5 # the sweep writes the loop's access-log buffer at least once a second

line=$(grep '"POST /v1alpha2/container HTTP/1.1"' "$T/access.log" || true)
ok "access log: the build request is logged" test -n "$line"
re='^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} \+0000\] "POST /v1alpha2/container HTTP/1\.1" 200 [0-9]+ "-" "e2e \\x22agent\\x22" [0-9a-f]{16} [0-9]+$'
ok "  in the combined format, then request id and microseconds" bash -c "[[ '$line' =~ $re ]]"
rid=$(awk '{print $(NF-1)}' <<<"$line")
ok "  its request id appears in the build's log" grep -q "submitted by request $rid" "$T/build.log"
ok "  and in waved's line about the job" grep -q "\"request_id\":\"$rid\",\"msg\":\"jobs: $bid" "$WAVED_DIR/waved.log"
ok "access log: the health check too" grep -q '"GET /health HTTP/1.1" 200' "$T/access.log"
ok "every waved log line is a JSON object with time, level and msg" $PY -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert set(o) <= {"time", "level", "msg", "request_id"} and "msg" in o and "time" in o, o
    n += 1
assert n > 3, n' "$WAVED_DIR/waved.log"
ids=$(awk '{print $(NF-1)}' "$T/access.log" | sort | uniq -d | wc -l)
ok "request ids are unique" is "$ids" 0
stop_waved

# Text format: the id as req=<id> on the lines a request causes.
start_waved "wave:
$BUILDER
log: {format: text}"
curl -s -o "$T/b2.json" -H 'Content-Type: application/json' -X POST \
  --data-binary "{\"containerFile\":\"$(printf 'FROM scratch\nCOPY . /b\n' | base64 -w0)\"}" "$WAVED_URL/v1alpha2/container"
bid2=$(json_get "$T/b2.json" 'd["buildId"]')
poll_until 30 grep -q "jobs: $bid2" "$WAVED_DIR/waved.log" || true
ok "text format: the job line carries req=<16 hex>" grep -Eq "info  req=[0-9a-f]{16} jobs: $bid2" "$WAVED_DIR/waved.log"
stop_waved

cat >"$T/bad.yml" <<YML
log: {format: xml}
YML
"$WAVED_BIN" --config "$T/bad.yml" >"$T/bad.log" 2>&1 && rc=0 || rc=$?
ok "log.format xml: waved refuses to start" is "$rc" 2
ok "  naming the key and the choices" grep -q "log.format: unknown log format 'xml' (expected text or json)" "$T/bad.log"
e2e_finish
