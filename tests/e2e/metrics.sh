#!/usr/bin/env bash
# tests/e2e/metrics.sh — /metrics (docs/operations.md, "Metrics"): pulls through
# a real registry fill the request, hot-path and upstream families; the output
# passes `promtool check metrics`; the access rule (metrics.allow-addresses,
# metrics.accounts) refuses other addresses and wrong credentials; and a real
# Prometheus (Debian's package) scrapes waved on loopback and answers queries
# for its series through its HTTP API.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in skopeo docker-registry prometheus promtool; do
  command -v $c >/dev/null || { echo "skip: $c not installed (packaging/deps.sh test)"; exit 0; }
done
T=$E2E_TMP

REG=127.0.0.1:$(start_registry anon anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"

TOKEN=e2e-ops-token
start_waved "wave:
  accounts: {ops: $(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)}
  registries: {\"$REG\": {insecure: true}}
metrics:
  allow-addresses: [127.0.0.1/32]
  accounts: [ops]"
log "waved on $WAVED_URL, registry on $REG"

# A token, then its manifest twice (the second from the hot path) and a blob.
curl -s -o "$T/c.json" -H 'Content-Type: application/json' -X POST \
  --data-binary "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$WAVED_URL/v1alpha2/container"
img=$(json_get "$T/c.json" 'd["targetImage"]')
path=${img#*/}; repo=${path%:*}
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'
for i in 1 2 3; do
  curl -s -o "$T/m.json" -H "$ACCEPT" "$WAVED_URL/v2/$repo/manifests/latest"
done
curl -s -o /dev/null "$WAVED_URL/v2/$repo/manifests/nonexistent-tag"

curl -s -o "$T/metrics.txt" -D "$T/metrics.hdr" "$WAVED_URL/metrics"
M=$(cat "$T/metrics.txt")
ok "content type is the text format 0.0.4" grep -qi 'content-type: text/plain; version=0.0.4' "$T/metrics.hdr"
ok "promtool check metrics passes" bash -c "promtool check metrics < '$T/metrics.txt'"
val() { awk -v k="$1" '$1 == k {print $2}' "$T/metrics.txt"; }
ok "manifest requests counted by status" has "$M" 'waved_http_requests_total{class="manifest",status="200"} 3'
ok "a 404 manifest counted" has "$M" 'waved_http_requests_total{class="manifest",status="404"} 1'
ok "container request counted" has "$M" 'waved_http_requests_total{class="container",status="200"} 1'
ok "latency histogram per class" is "$(val 'waved_http_request_duration_seconds_count{class="manifest"}')" 4
hits=$(val 'waved_hotpath_requests_total{result="hit"}')
ok "hot-path hits (cached manifest served on the loop)" test "${hits:-0}" -ge 2
ok "upstream requests counted by registry" test "$(val "waved_upstream_requests_total{registry=\"$REG\"}")" -ge 1
ok "upstream latency histogram by registry" has "$M" "waved_upstream_request_duration_seconds_count{registry=\"$REG\"}"
ok "open connections gauge" has "$M" 'waved_open_connections '
ok "job gauges by kind and state" has "$M" 'waved_jobs{kind="build",state="running"} 0'
ok "job queue depth" has "$M" 'waved_job_queue_depth 0'
ok "LMDB size" test "$(val waved_lmdb_file_bytes)" -gt 0
ok "blob-store size" has "$M" 'waved_blobstore_bytes '
ok "blob cache families" has "$M" 'waved_blobcache_requests_total{result="miss"}'
ok "rate-limit refusals" has "$M" 'waved_ratelimit_refusals_total{limit="pull"} 0'
ok "process metrics" test "$(val process_resident_memory_bytes)" -gt 1000000

# Access: another loopback address is refused; an account of metrics.accounts is let in.
code=$(curl -s --interface 127.0.0.2 -o "$T/deny.json" -D "$T/deny.hdr" -w '%{http_code}' "$WAVED_URL/metrics")
ok "other address without credentials: 401" is "$code" 401
ok "401 carries a Basic challenge" grep -qi '^www-authenticate: Basic' "$T/deny.hdr"
ok "401 says what is needed" has "$(cat "$T/deny.json")" 'metrics.accounts'
code=$(curl -s --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -u "ops:wrong" "$WAVED_URL/metrics")
ok "wrong password: 401" is "$code" 401
code=$(curl -s --interface 127.0.0.2 -o "$T/m2.txt" -w '%{http_code}' -u "ops:$TOKEN" "$WAVED_URL/metrics")
ok "listed account from another address: 200" is "$code" 200
ok "its body is the metrics" grep -q '^waved_http_requests_total' "$T/m2.txt"

# A real Prometheus scrapes waved every second.
PP=$(free_port)
mkdir -p "$T/prom"
cat >"$T/prom/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: waved
    static_configs: [{targets: ["127.0.0.1:$WAVED_PORT"]}]
YML
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
  --web.listen-address="127.0.0.1:$PP" >"$T/prom/prometheus.log" 2>&1 &
E2E_PIDS+=($!)
wait_http "http://127.0.0.1:$PP/-/ready" 30
query() { curl -s -G --data-urlencode "query=$1" "http://127.0.0.1:$PP/api/v1/query"; }
# first_value JSON — the value of the first series of a query answer, "" if none.
first_value() { $PY -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'; }
up=""
scraped() { up=$(query 'up{job="waved"}' | first_value); [ "$up" = 1 ]; }
POLL_EVERY=0.2 poll_until 30 scraped || true
ok "Prometheus scraped waved: up == 1" is "$up" 1
v=$(query 'waved_hotpath_requests_total{result="hit"}' | first_value)
ok "Prometheus has the hot-path hits" test "${v:-0}" -ge 2
v=$(query "sum(waved_upstream_requests_total{registry=\"$REG\"})" | first_value)
ok "Prometheus has the upstream requests by registry" test "${v:-0}" -ge 1
v=$(query 'sum(waved_http_requests_total{class="manifest"})' | first_value)
ok "Prometheus has the manifest requests" test "${v:-0}" -ge 4
v=$(query 'histogram_quantile(0.5, sum by (le) (waved_http_request_duration_seconds_bucket{class="manifest"}))' | first_value)
ok "a latency quantile computes from the histogram" bash -c "[ -n '$v' ] && [ '$v' != NaN ]"
# A scrape is counted once it is answered, so the series shows from the next scrape on
# (and a rate needs two of its samples): wait for that, a scrape a second.
rated() { v=$(query 'sum(rate(waved_http_requests_total{class="metrics"}[1m])) >= 0' | first_value); [ -n "$v" ]; }
POLL_EVERY=0.5 poll_until 30 rated || true
ok "Prometheus's own scrapes are counted (class metrics)" test -n "$v"

stop_waved
ok "waved stopped cleanly" bash -c "! grep -q 'Sanitizer\|runtime error' '$WAVED_DIR/waved.log'"
e2e_finish
