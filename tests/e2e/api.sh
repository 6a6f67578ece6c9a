#!/usr/bin/env bash
# tests/e2e/api.sh — the container-request API against a real waved and a real
# docker-registry: POST v2 (Nextflow shape, explicit nulls) and v1 (CLI shape),
# the record/status endpoints, errors, identity, token eviction, data: layers,
# containerIncludes, and records that survive a restart.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOKEN_GOOD="tower-token-for-alice"
HASH_GOOD=$(printf '%s' "$TOKEN_GOOD" | sha256sum | cut -d' ' -f1)
ADMIN_PASS="admin-secret"
HASH_ADMIN=$(printf '%s' "$ADMIN_PASS" | sha256sum | cut -d' ' -f1)

REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$E2E_TMP/busybox"
push_layout "$E2E_TMP/busybox" "$REG/library/busybox:latest"

WAVED_LOG_LEVEL=warn
# Registries named by an address are served only when wave.registries lists them.
start_waved "wave: {accounts: {alice: $HASH_GOOD, admin: $HASH_ADMIN}, registries: {\"$REG\": {insecure: true}}}"
log "waved on $WAVED_URL, registry on $REG"

# post PATH BODY OUT — prints the status; the body goes to OUT, headers to OUT.h.
post() {
  curl -s -o "$3" -D "$3.h" -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST --data-binary "$2" "$WAVED_URL$1"
}
get() { # PATH OUT [curl args...]
  local p=$1 o=$2; shift 2
  curl -s -o "$o" -D "$o.h" -w '%{http_code}' "$@" "$WAVED_URL$p"
}
has() { [[ "$1" == *"$2"* ]] || { echo "    '$1' lacks '$2'" >&2; return 1; }; }
T=$E2E_TMP

# ---- v2, Nextflow shape: every optional field an explicit null -----------------
NF_BODY=$(cat <<JSON
{"towerAccessToken":null,"towerRefreshToken":null,"towerWorkspaceId":null,"towerEndpoint":null,
 "containerImage":"$REG/library/busybox:latest","containerFile":null,
 "containerConfig":{"entrypoint":null,"cmd":null,"env":["FOO=1"],"workingDir":null,"layers":[]},
 "containerPlatform":"linux/amd64","buildRepository":null,"cacheRepository":null,
 "timestamp":"2024-05-01T12:00:00.123456+02:00","fingerprint":"8f4a1c0d","freeze":false,"format":null,
 "dryRun":false,"workflowId":null,"containerIncludes":null,"packages":null,"nameStrategy":null,
 "mirror":false,"scanMode":null,"scanLevels":null,"buildCompression":null,"buildTemplate":null}
JSON
)
ok "v2 nextflow-shape request -> 200" is "$(post /v1alpha2/container "$NF_BODY" $T/v2.json)" 200
TOK=$(json_get $T/v2.json 'd["requestId"]')
ok "v2 token is 12 lowercase alphanumerics" grep -Eqx '[a-z0-9]{12}' <<<"$TOK"
ok "v2 containerToken == requestId" is "$(json_get $T/v2.json 'd["containerToken"]')" "$TOK"
ok "v2 targetImage" is "$(json_get $T/v2.json 'd["targetImage"]')" "localhost:9090/wt/$TOK/library/busybox:latest"
ok "v2 containerImage normalised" is "$(json_get $T/v2.json 'd["containerImage"]')" "$REG/library/busybox:latest"
ok "v2 succeeded/freeze/mirror" is "$(json_get $T/v2.json '(d["succeeded"], d["freeze"], d["mirror"])')" "(True, False, False)"
ok "v2 omits buildId/cached/scanId" is "$(json_get $T/v2.json '[k for k in ("buildId","cached","scanId") if k in d]')" "[]"
ok "v2 expiration is an ISO instant ~36h ahead" $PY -c '
import json,sys,datetime
e=json.load(open(sys.argv[1]))["expiration"]
t=datetime.datetime.strptime(e[:19],"%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
d=(t-datetime.datetime.now(datetime.timezone.utc)).total_seconds()
sys.exit(0 if e.endswith("Z") and 36*3600-120 < d < 36*3600+60 else 1)' $T/v2.json

# ---- v1, CLI shape: nulls omitted ----------------------------------------------------
ok "v1 cli-shape request -> 200" is "$(post /container-token "{\"containerImage\":\"$REG/library/busybox\",\"containerPlatform\":\"linux/amd64\",\"freeze\":false,\"mirror\":false}" $T/v1.json)" 200
TOK1=$(json_get $T/v1.json 'd["requestId"]')
ok "v1 has token, target, expiration" is "$(json_get $T/v1.json '(d["containerToken"]==d["requestId"], "expiration" in d, d["targetImage"])')" "(True, True, 'localhost:9090/wt/$TOK1/library/busybox:latest')"
ok "v1 omits v2-only fields" is "$(json_get $T/v1.json '[k for k in ("succeeded","freeze","mirror","buildId","cached") if k in d]')" "[]"

# ---- records and status ----------------------------------------------------------------
ok "GET /container-token/{t} -> 200" is "$(get /container-token/$TOK $T/desc.json)" 200
ok "describe shape" is "$(json_get $T/desc.json '(d["token"], d["request"]["containerImage"], d["request"]["platform"], d["request"]["zoneId"], d["source"]["image"], d["wave"]["image"])')" \
  "('$TOK', '$REG/library/busybox:latest', 'linux/amd64', '+02:00', '$REG/library/busybox:latest', 'localhost:9090/wt/$TOK/library/busybox:latest')"
ok "GET /v1alpha2/container/{id} -> 200" is "$(get /v1alpha2/container/$TOK $T/rec.json)" 200
ok "record is flat with id, waveImage, env" is "$(json_get $T/rec.json '(d["id"], d["waveImage"], d["containerConfig"]["env"], d["fingerprint"])')" \
  "('$TOK', 'localhost:9090/wt/$TOK/library/busybox:latest', ['FOO=1'], '8f4a1c0d')"
ok "GET status -> 200" is "$(get /v1alpha2/container/$TOK/status $T/st.json)" 200
ok "status DONE, succeeded, decimal duration" is "$(json_get $T/st.json '(d["id"], d["status"], d["succeeded"], "creationTime" in d)')" "('$TOK', 'DONE', True, True)"
ok "status duration has a decimal point" grep -Eq '"duration":[0-9]+\.[0-9]{9}' $T/st.json
ok "unknown record -> 404 empty" is "$(get /v1alpha2/container/zzzzzzzzzzzz $T/nf.json)$(cat $T/nf.json)" 404
ok "unknown status -> 404 empty" is "$(get /v1alpha2/container/zzzzzzzzzzzz/status $T/nf.json)$(cat $T/nf.json)" 404
ok "unknown describe -> 404 message" is "$(get /container-token/zzzzzzzzzzzz $T/nf.json) $(json_get $T/nf.json 'd["message"]')" \
  "404 Missing container record for token: zzzzzzzzzzzz"

# ---- errors ----------------------------------------------------------------------------
ok "malformed JSON -> 400" is "$(post /v1alpha2/container '{"containerImage": ' $T/e.json)" 400
ok "malformed JSON message" has "$(json_get $T/e.json 'd["message"]')" "Malformed request body"
ok "wrong type -> 400" is "$(post /v1alpha2/container '{"containerImage": ["x"]}' $T/e.json) $(json_get $T/e.json 'd["message"]')" \
  "400 Invalid request attribute \`containerImage\` - expected a string"
ok "bad image name -> 400 spec message" is "$(post /v1alpha2/container '{"containerImage":"Bad Image"}' $T/e.json) $(json_get $T/e.json 'd["message"]')" \
  "400 Invalid container image name — offending value: 'Bad Image'"
ok "missing image upstream -> 400" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/nope:1\"}" $T/e.json) $(json_get $T/e.json 'd["message"]')" \
  "400 Container image '$REG/library/nope:1' does not exist or access is not authorized"
# Freeze (contract §3.3): a dry run answers the real image, no containerToken, no expiration.
ok "freeze dry run -> 200" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/busybox\",\"freeze\":true,\"dryRun\":true,\"buildRepository\":\"$REG/frozen/x\"}" $T/e.json)" 200
ok "freeze response shape" is "$(json_get $T/e.json '"containerToken" in d, "expiration" in d, d["targetImage"].rsplit(":",1)[0], len(d["targetImage"].rsplit(":",1)[1]), d["freeze"]')" \
  "(False, False, '$REG/frozen/x', 16, True)"

# ---- identity --------------------------------------------------------------------------
ok "good towerAccessToken -> 200" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/busybox\",\"towerAccessToken\":\"$TOKEN_GOOD\"}" $T/auth.json)" 200
TOKA=$(json_get $T/auth.json 'd["requestId"]')
get /v1alpha2/container/$TOKA $T/authrec.json >/dev/null
ok "record names the account" is "$(json_get $T/authrec.json 'd["user"]')" '{"id": "alice"}'
ok "bad towerAccessToken -> 401 empty body" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/busybox\",\"towerAccessToken\":\"nope\"}" $T/e.json)|$(cat $T/e.json)" "401|"

# ---- data: layer and containerIncludes ----------------------------------------------------
mkdir -p $T/layer/etc && echo hello >$T/layer/etc/hello
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C $T/layer -cf $T/layer.tar .
gzip -n -c $T/layer.tar >$T/layer.tgz
GZ=$(sha256 $T/layer.tgz); TAR=$(sha256 $T/layer.tar); SIZE=$(stat -c %s $T/layer.tgz)
B64=$(base64 -w0 $T/layer.tgz)
layer_req() { # TARDIGEST
  echo "{\"containerImage\":\"$REG/library/busybox\",\"containerConfig\":{\"layers\":[{\"location\":\"data:$B64\",\"gzipDigest\":\"sha256:$GZ\",\"gzipSize\":$SIZE,\"tarDigest\":\"sha256:$1\"}]}}"
}
ok "data: layer with wrong tarDigest -> 400" is "$(post /v1alpha2/container "$(layer_req 0000000000000000000000000000000000000000000000000000000000000000)" $T/e.json) $(json_get $T/e.json 'd["message"][:51]')" \
  "400 Invalid container layer [0] - \`tarDigest\` is sha256"
ok "verified data: layer -> 200" is "$(post /v1alpha2/container "$(layer_req $TAR)" $T/layer.json)" 200
ok "layer blob stored in the CAS" test -s "$WAVED_DIR/data/blobs/sha256/${GZ:0:2}/$GZ"
get /v1alpha2/container/$(json_get $T/layer.json 'd["requestId"]') $T/layrec.json >/dev/null
ok "record shows data:DATA+OMITTED" is "$(json_get $T/layrec.json 'd["containerConfig"]["layers"][0]["location"]')" "data:DATA+OMITTED"

MAN=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://$REG/v2/library/busybox/manifests/latest)
BB_LAYER=$(echo "$MAN" | json_get - 'd["layers"][0]["digest"]')
ok "containerIncludes -> 200" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/busybox\",\"containerIncludes\":[\"$REG/library/busybox:latest\"]}" $T/inc.json)" 200
get /v1alpha2/container/$(json_get $T/inc.json 'd["requestId"]') $T/increc.json >/dev/null
ok "included layer appended as docker:// with digests" is "$(json_get $T/increc.json '(d["containerConfig"]["layers"][0]["location"], d["containerConfig"]["layers"][0]["gzipDigest"], d["containerConfig"]["layers"][0]["tarDigest"].startswith("sha256:"))')" \
  "('docker://$REG/v2/library/busybox/blobs/$BB_LAYER', '$BB_LAYER', True)"
ok "missing include -> 404" is "$(post /v1alpha2/container "{\"containerImage\":\"$REG/library/busybox\",\"containerIncludes\":[\"$REG/library/nope\"]}" $T/e.json)" 404

# ---- eviction --------------------------------------------------------------------------------
ok "DELETE without auth -> 401" is "$(curl -s -o $T/d.json -D $T/d.h -w '%{http_code}' -X DELETE $WAVED_URL/container-token/$TOK1)" 401
ok "401 carries WWW-Authenticate" grep -qi '^WWW-Authenticate: Basic realm=Wave Authentication' $T/d.h
ok "DELETE with a wrong password -> 401" is "$(curl -s -o /dev/null -w '%{http_code}' -u admin:wrong -X DELETE $WAVED_URL/container-token/$TOK1)" 401
ok "DELETE with auth -> 200" is "$(curl -s -o /dev/null -w '%{http_code}' -u admin:$ADMIN_PASS -X DELETE $WAVED_URL/container-token/$TOK1)" 200
ok "evicted token: status -> 404" is "$(get /v1alpha2/container/$TOK1/status $T/nf.json)" 404
ok "evicted token: record still served" is "$(get /v1alpha2/container/$TOK1 $T/nf.json)" 200
ok "DELETE again -> 404" is "$(curl -s -o /dev/null -w '%{http_code}' -u admin:$ADMIN_PASS -X DELETE $WAVED_URL/container-token/$TOK1)" 404

# ---- restart on the same data directory --------------------------------------------------------
stop_waved
"$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health"
ok "after restart: record survives" is "$(get /v1alpha2/container/$TOK $T/r2.json) $(json_get $T/r2.json 'd["id"]')" "200 $TOK"
ok "after restart: token survives (status)" is "$(get /v1alpha2/container/$TOK/status $T/s2.json) $(json_get $T/s2.json 'd["status"]')" "200 DONE"
ok "after restart: evicted token stays evicted" is "$(get /v1alpha2/container/$TOK1/status $T/nf.json)" 404

e2e_finish
