#!/usr/bin/env bash
# bench/https.sh OUT_DIR — waved's HTTPS listener against nginx-light serving
# the same bytes with the same certificate, in one run, on 127.0.0.1.
#
# Starts docker-registry with the offline busybox image and a BLOB_MB
# single-layer image, nginx (ssl, the same manifest bytes and the same layer
# file) and waved (OUT_DIR/waved, TLS on). Creates pass-through tokens,
# warms waved (manifest cached, the layer in the blob cache), then measures
# with wrk (https, keep-alive, TLS handshake once per connection), rounds
# interleaved so machine noise hits both alike:
#   hot   — the manifest by tag (waved: cached; nginx: static file)
#   large — the BLOB_MB layer (waved: blob cache file; nginx: static file)
# Prints one line per run (req/s, MiB/s, p50/p99) and the medians.
# Both servers get the same number of event loops: waved io-threads = nginx
# worker_processes = HS_LOOPS (default: the core count).
# Environment: HS_ROUNDS [3], HS_CONNS [50], HS_THREADS [2], HS_DUR [10],
# HS_BLOB_MB [256], HS_BLOB_CONNS [4], HS_BLOB_DUR [20], HS_LOOPS [nproc].
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:?usage: bench/https.sh OUT_DIR}" && pwd)
export WAVED_BIN=$out/waved WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
ROUNDS=${HS_ROUNDS:-3} CONNS=${HS_CONNS:-50} THREADS=${HS_THREADS:-2} DUR=${HS_DUR:-10}
BLOB_MB=${HS_BLOB_MB:-256} BLOB_CONNS=${HS_BLOB_CONNS:-4} BLOB_DUR=${HS_BLOB_DUR:-20}
LOOPS=${HS_LOOPS:-$(nproc)}
# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
T=$E2E_TMP
chmod 755 "$T" # nginx workers run as nobody
ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"

# ---- one certificate for both servers (ECDSA P-256, as a lab CA would issue) ----
mkdir -p "$T/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench-ca" -keyout "$T/pki/ca.key" -out "$T/pki/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$T/pki/srv.key" -out "$T/pki/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$T/pki/ext"
openssl x509 -req -in "$T/pki/srv.csr" -CA "$T/pki/ca.crt" -CAkey "$T/pki/ca.key" \
  -CAcreateserial -days 2 -extfile "$T/pki/ext" -out "$T/pki/srv.crt" 2>/dev/null
chmod 644 "$T/pki/srv.key"

# ---- upstream: busybox and a large single-layer image ----
start_registry bench anon >"$T/reg.port"
REG=127.0.0.1:$(cat "$T/reg.port")
make_busybox_layout "$T/bb"
push_layout "$T/bb" "$REG/library/busybox:latest"
push_blob() { # REPO FILE — monolithic upload; prints the digest
  local d loc; d=sha256:$(sha256 "$2")
  loc=$(curl -fsS -o /dev/null -D - -X POST "http://$REG/v2/$1/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="http://$REG$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc"
  echo "$d"
}
mkdir -p "$T/www" "$T/big"
head -c "$((BLOB_MB * 1024 * 1024))" /dev/urandom >"$T/big/layer"
LAYER=$(push_blob library/big "$T/big/layer")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
  "$LAYER" >"$T/big/config"
cfgd=$(push_blob library/big "$T/big/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
  "$cfgd" "$(stat -c %s "$T/big/config")" "$LAYER" "$(stat -c %s "$T/big/layer")" >"$T/big/manifest"
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$T/big/manifest" "http://$REG/v2/library/big/manifests/latest"
mv "$T/big/layer" "$T/www/big.layer"

# ---- waved, TLS on ----
WPORT=$(free_port)
start_waved "$(printf 'server.tls.cert: %s\nserver.tls.key: %s\nserver.tls.port: %s\nserver.io-threads: %s\nwave.registries: {"%s": {}}' \
  "$T/pki/srv.crt" "$T/pki/srv.key" "$WPORT" "$LOOPS" "$REG")"
WV="https://127.0.0.1:$WPORT"
CURL=(curl -fsS --cacert "$T/pki/ca.crt")
token() { # IMAGE — prints "<repo path> <tag>" of a pass-through token
  local img
  img=$("${CURL[@]}" -H 'Content-Type: application/json' -d "{\"containerImage\":\"$1\"}" \
    "$WV/v1alpha2/container" | json_get - 'd["targetImage"]')
  img=${img#*/}
  echo "${img%:*} ${img##*:}"
}
read -r HOT_REPO HOT_TAG < <(token "$REG/library/busybox:latest")
read -r BIG_REPO _ < <(token "$REG/library/big:latest")
"${CURL[@]}" -H "Accept: $ACCEPT" -o "$T/www/manifest.json" "$WV/v2/$HOT_REPO/manifests/$HOT_TAG"
"${CURL[@]}" -o /dev/null "$WV/v2/$BIG_REPO/blobs/$LAYER" # fills the blob cache
"${CURL[@]}" -o "$T/check" "$WV/v2/$BIG_REPO/blobs/$LAYER"
[ "sha256:$(sha256 "$T/check")" = "$LAYER" ] || { echo "waved served wrong layer bytes" >&2; exit 1; }
rm -f "$T/check"

# ---- nginx-light, the same certificate and bytes ----
NPORT=$(free_port)
mkdir -p "$T/nginx/logs"
cat >"$T/nginx/nginx.conf" <<NGX
worker_processes $LOOPS;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=64 inactive=300s; open_file_cache_valid 300s;
  keepalive_requests 100000000; keepalive_timeout 120s;
  types { application/vnd.oci.image.manifest.v1+json json; }
  default_type application/octet-stream;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  server {
    listen 127.0.0.1:$NPORT ssl;
    ssl_certificate $T/pki/srv.crt;
    ssl_certificate_key $T/pki/srv.key;
    root $T/www;
  }
}
NGX
nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" &
E2E_PIDS+=($!)
NGX="https://127.0.0.1:$NPORT"
for _ in $(seq 100); do "${CURL[@]}" -o /dev/null "$NGX/manifest.json" 2>/dev/null && break; sleep 0.05; done
"${CURL[@]}" -o /dev/null "$NGX/big.layer" # page cache warm for both

# measure KIND TARGET URL CONNS DUR [HEADER] — one wrk run; one line and a TSV row.
RES="$T/res.tsv"
: >"$RES"
ms() { # wrk latency (e.g. 1.23ms, 850.00us, 2.10s) in ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.2f", n }'
}
measure() {
  local kind=$1 tgt=$2 url=$3 conns=$4 dur=$5 hdr=()
  [ -n "${6:-}" ] && hdr=(-H "$6")
  wrk -t"$THREADS" -c"$conns" -d"${dur}s" --timeout 60s --latency "${hdr[@]}" "$url" >"$T/wrk.out" 2>&1
  local rps mbs p50 p99 errs
  rps=$(sed -n 's/^Requests\/sec: *//p' "$T/wrk.out")
  mbs=$(sed -n 's/^Transfer\/sec: *//p' "$T/wrk.out")
  p50=$(ms "$(awk '$1 == "50%" { print $2 }' "$T/wrk.out")")
  p99=$(ms "$(awk '$1 == "99%" { print $2 }' "$T/wrk.out")")
  errs=$(grep -E 'Non-2xx|Socket errors' "$T/wrk.out" | tr -s ' ' | tr '\n' ' ' || true)
  printf '%-6s %-6s rps=%-10s transfer=%-10s p50=%sms p99=%sms %s\n' "$kind" "$tgt" "$rps" "$mbs" "$p50" "$p99" "$errs"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$tgt" "$rps" "$mbs" "$p50" "$p99" >>"$RES"
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%H:%MZ), $(openssl version)"
echo "# waved io-threads=$LOOPS, nginx worker_processes=$LOOPS; wrk -t$THREADS, hot -c$CONNS ${DUR}s, large ${BLOB_MB} MiB -c$BLOB_CONNS ${BLOB_DUR}s"
for r in $(seq "$ROUNDS"); do
  measure hot waved "$WV/v2/$HOT_REPO/manifests/$HOT_TAG" "$CONNS" "$DUR" "Accept: $ACCEPT"
  measure hot nginx "$NGX/manifest.json" "$CONNS" "$DUR"
  measure large waved "$WV/v2/$BIG_REPO/blobs/$LAYER" "$BLOB_CONNS" "$BLOB_DUR"
  measure large nginx "$NGX/big.layer" "$BLOB_CONNS" "$BLOB_DUR"
done
echo "# medians of $ROUNDS rounds (MiB/s from wrk's Transfer/sec)"
$PY - "$RES" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def mib(s):
    n = float(s[:-2]); u = s[-2:]
    return n * {"GB": 1024, "MB": 1, "KB": 1 / 1024}.get(u, 1 / 1048576)
med = {}
for kind in ("hot", "large"):
    for tgt in ("waved", "nginx"):
        rs = [r for r in rows if r[0] == kind and r[1] == tgt]
        med[kind, tgt] = (statistics.median(float(r[2]) for r in rs),
                          statistics.median(mib(r[3]) for r in rs),
                          statistics.median(float(r[5]) for r in rs))
    w, n = med[kind, "waved"], med[kind, "nginx"]
    # hot: requests/s; large: bytes/s (a few 256 MiB responses per run make rps coarse)
    ratio = w[0] / n[0] if kind == "hot" else w[1] / n[1]
    print(f"{kind:6} waved rps={w[0]:.2f} MiB/s={w[1]:.0f} p99={w[2]:.2f}ms | nginx rps={n[0]:.2f} "
          f"MiB/s={n[1]:.0f} p99={n[2]:.2f}ms | waved/nginx = {ratio:.2f}x "
          f"({'req/s' if kind == 'hot' else 'MiB/s'})")
EOF
echo "# end load $(cut -d' ' -f1-3 /proc/loadavg)"
