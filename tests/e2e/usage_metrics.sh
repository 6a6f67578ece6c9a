#!/usr/bin/env bash
# tests/e2e/usage_metrics.sh — Wave's usage metrics (contract §12, docs/compatibility.md
# "Usage metrics"): with wave.metrics.enabled, pulls of single-image manifests are
# counted by day, org (the e-mail domain of the account) and arch, and served at
# /v1alpha2/metrics/* and /v1alpha3/metrics/* to HTTP Basic credentials of
# wave.accounts, with the spec's error messages; an index pull is not counted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for c in skopeo docker-registry; do
  command -v $c >/dev/null || { echo "skip: $c not installed (packaging/deps.sh test)"; exit 0; }
done
T=$E2E_TMP
REG=127.0.0.1:$(start_registry anon anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
TOK=e2e-usage-token
H=$(printf '%s' "$TOK" | sha256sum | cut -d' ' -f1)
start_waved "wave:
  accounts: {\"ann@lab.example\": $H, ops: $H}
  registries: {\"$REG\": {insecure: true}}
  metrics: {enabled: true}"
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
# token BODY-EXTRA — a token's repository path for busybox (as ann when her token is given).
token() {
  curl -s -o "$T/c.json" -H 'Content-Type: application/json' -X POST \
    --data-binary "{\"containerImage\":\"$REG/library/busybox:latest\",\"containerPlatform\":\"linux/amd64\"$1}" \
    "$WAVED_URL/v1alpha2/container"
  local img; img=$(json_get "$T/c.json" 'd["targetImage"]'); img=${img#*/}; echo "${img%:*}"
}
anon=$(token "")
ann=$(token ",\"towerAccessToken\":\"$TOK\",\"towerEndpoint\":\"http://127.0.0.1:1\"")
for i in 1 2 3; do curl -s -o /dev/null -H "$ACCEPT" "$WAVED_URL/v2/$anon/manifests/latest"; done
for i in 1 2; do curl -s -o /dev/null -H "$ACCEPT" "$WAVED_URL/v2/$ann/manifests/latest"; done
sleep 0.3 # the increments are group-committed
day=$(date -u +%F)
m() { curl -s -u "ops:$TOK" "$WAVED_URL$1"; }
ok "v1alpha2 pulls: all, with the org map" is "$(m /v1alpha2/metrics/pulls)" \
  '{"metric":"pulls","count":5,"orgs":{"lab.example":2}}'
ok "v1alpha2 pulls of today" is "$(m "/v1alpha2/metrics/pulls?date=$day")" \
  '{"metric":"pulls","count":5,"orgs":{"lab.example":2}}'
ok "v1alpha2 pulls of an org" is "$(m '/v1alpha2/metrics/pulls?org=lab.example')" \
  '{"metric":"pulls","count":2,"orgs":{"lab.example":2}}'
ok "v1alpha2 pulls of another day: 0" is "$(m '/v1alpha2/metrics/pulls?date=2020-01-01')" \
  '{"metric":"pulls","count":0,"orgs":{}}'
ok "v1alpha3 pulls by arch (x86_64 = amd64)" is "$(m '/v1alpha3/metrics/pulls?arch=x86_64')" \
  '{"metric":"pulls","count":5,"arch":"amd64","orgs":{"lab.example":2}}'
ok "v1alpha3 pulls on arm64: 0" is "$(m '/v1alpha3/metrics/pulls?arch=arm64')" \
  '{"metric":"pulls","count":0,"arch":"arm64","orgs":{}}'
ok "builds: none yet" is "$(m /v1alpha2/metrics/builds)" '{"metric":"builds","count":0,"orgs":{}}'
ok "fusion/pulls answers" is "$(m /v1alpha2/metrics/fusion/pulls)" '{"metric":"fusion","count":0,"orgs":{}}'
r=$(curl -s -w ' %{http_code}' -u "ops:$TOK" "$WAVED_URL/v1alpha2/metrics/pulls?date=2024-13-01")
ok "bad date: 400 with the spec's message" is "$r" '{"message":"date format should be yyyy-MM-dd"} 400'
r=$(curl -s -w ' %{http_code}' -u "ops:$TOK" "$WAVED_URL/v1alpha3/metrics/pulls?arch=mips")
ok "bad arch: 400 with the spec's message" \
  is "$r" '{"message":"arch should be one of [amd64, x86_64, x86-64, arm64, aarch64, arm]"} 400'
ok "no credentials: 401" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha2/metrics/pulls")" 401
ok "wrong password: 401" is "$(curl -s -o /dev/null -w '%{http_code}' -u ops:bad "$WAVED_URL/v1alpha2/metrics/pulls")" 401
ok "unknown metric: 404" is "$(curl -s -o /dev/null -w '%{http_code}' -u "ops:$TOK" "$WAVED_URL/v1alpha2/metrics/nope")" 404
stop_waved
start_waved "wave:
  accounts: {ops: $H}"
ok "wave.metrics.enabled false (the default): 404" \
  is "$(curl -s -o /dev/null -w '%{http_code}' -u "ops:$TOK" "$WAVED_URL/v1alpha2/metrics/pulls")" 404
stop_waved
e2e_finish
