#!/usr/bin/env bash
# tests/e2e/tls.sh — HTTPS on waved's own loops (docs/http-server.md, "TLS"),
# with a test CA made here and certificate verification on everywhere.
#
# Shows: curl, skopeo and podman pull a wt/ image through HTTPS (the token
# answer names the https:// authority); blobs go out streamed (first pull)
# and from the blob cache (file path, encrypted in user space without kTLS);
# TLS 1.1 is refused, TLS 1.2/1.3 work, ALPN says http/1.1, a session is
# resumed; SIGHUP switches to a new certificate in the middle of a stream of
# pulls with no failed request, a connection opened before keeps working,
# new handshakes see the new certificate; a bad new certificate on SIGHUP
# keeps the old one (logged); plain HTTP on the TLS port gets a 400 at once
# and a silent client is dropped at the header timeout; the plain port still
# serves; a bad certificate or key stops waved at start-up with one line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP

# ---- a test CA and certificates ----
P="$T/pki"
mkdir -p "$P/cadir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=waved-e2e-ca" \
  -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
cp "$P/ca.crt" "$P/cadir/ca.crt"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$P/ext"
make_cert() { # NAME CN — a server certificate signed by the test CA
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
    -extfile "$P/ext" -out "$P/$1.crt" 2>/dev/null
}
make_cert a waved-a
make_cert b waved-b
make_cert c waved-c
# A self-signed certificate the CA never signed, for the mismatch case.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other" \
  -keyout "$P/other.key" -out "$P/other.crt" 2>/dev/null
cp "$P/a.crt" "$P/server.crt"
cp "$P/a.key" "$P/server.key"

# ---- an upstream registry with an image ----
start_registry up anon >"$T/reg.port"
REG_PORT=$(cat "$T/reg.port")
make_busybox_layout "$T/bb"
push_layout "$T/bb" "127.0.0.1:$REG_PORT/library/busybox:latest"

# ---- waved with a plain and a TLS listener ----
W="$T/waved"
mkdir -p "$W"
PORT=$(free_port)
TPORT=$(free_port)
cat >"$W/config.yml" <<YML
server:
  host: 127.0.0.1
  port: $PORT
  header-timeout: 2s
  tls: {cert: $P/server.crt, key: $P/server.key, port: $TPORT}
storage: {path: $W/data}
log: {level: debug}
wave: {server: {url: "https://127.0.0.1:$TPORT"}, registries: {"127.0.0.1:$REG_PORT": {}}}
YML
"$WAVED_BIN" --config "$W/config.yml" >"$W/waved.log" 2>&1 &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
HTTPS="https://127.0.0.1:$TPORT"
CURL=(curl -s --cacert "$P/ca.crt")
wait_http "http://127.0.0.1:$PORT/health" || { cat "$W/waved.log" >&2; exit 1; }
ok "HTTPS /health with the CA" is "$("${CURL[@]}" -o /dev/null -w '%{http_code} %{http_version}' "$HTTPS/health")" "200 1.1"
ok "plain port still serves" is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" 200

# ---- protocols ----
sc() { timeout 10 openssl s_client -connect "127.0.0.1:$TPORT" -CAfile "$P/ca.crt" "$@" </dev/null 2>&1 || true; }
ok "TLS 1.1 refused (protocol version alert)" has "$(sc -tls1_1 -cipher 'DEFAULT@SECLEVEL=0')" "alert protocol version"
ok "TLS 1.2 verified" has "$(sc -tls1_2)" "Verify return code: 0 (ok)"
ok "TLS 1.3 verified, ALPN http/1.1" has "$(sc -tls1_3 -alpn h2,http/1.1)" "ALPN protocol: http/1.1"
sc -tls1_2 -sess_out "$T/sess" >/dev/null
ok "TLS 1.2 session resumed" has "$(sc -tls1_2 -sess_in "$T/sess")" "Reused, TLSv1.2"

# ---- a wt/ token, pulled with curl ----
"${CURL[@]}" -H 'Content-Type: application/json' \
  -d "{\"containerImage\":\"127.0.0.1:$REG_PORT/library/busybox:latest\"}" \
  "$HTTPS/v1alpha2/container" >"$T/tok.json"
IMG=$(json_get "$T/tok.json" 'd["targetImage"]')
ok "the token answer names the https authority" has "$IMG" "127.0.0.1:$TPORT/wt/"
REPO=${IMG#*/}
REPO=${REPO%:*}
ACCEPT="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
"${CURL[@]}" -H "Accept: $ACCEPT" -o "$T/m.json" "$HTTPS/v2/$REPO/manifests/latest"
LAYER=$(json_get "$T/m.json" 'd["layers"][0]["digest"]')
code=$("${CURL[@]}" -o "$T/l1" -w '%{http_code}' "$HTTPS/v2/$REPO/blobs/$LAYER")
ok "curl: first layer GET (streamed) 200, right bytes" is "$code sha256:$(sha256 "$T/l1")" "200 $LAYER"
code=$("${CURL[@]}" -o "$T/l2" -w '%{http_code}' "$HTTPS/v2/$REPO/blobs/$LAYER")
ok "curl: second layer GET (blob cache file) 200, right bytes" is "$code sha256:$(sha256 "$T/l2")" "200 $LAYER"
# Pipelined requests on one TLS connection: both answered, in order.
code=$("${CURL[@]}" -o /dev/null -o /dev/null -w '%{http_code}' "$HTTPS/health" "$HTTPS/v2/$REPO/blobs/$LAYER")
ok "two requests on one kept-alive TLS connection" is "$code" "200200"

# A large layer: the file path in pieces, with back-pressure from a slow client.
push_blob() { # REPO FILE — monolithic upload; prints the digest
  local d loc; d=sha256:$(sha256 "$2")
  loc=$(curl -fsS -o /dev/null -D - -X POST "http://127.0.0.1:$REG_PORT/v2/$1/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
  case "$loc" in http*) ;; *) loc="http://127.0.0.1:$REG_PORT$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$2" "$loc"
  echo "$d"
}
head -c $((12 * 1024 * 1024)) /dev/urandom >"$T/big.layer"
BIG=$(push_blob library/big "$T/big.layer")
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$BIG" >"$T/big.config"
BIGC=$(push_blob library/big "$T/big.config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
  "$BIGC" "$(stat -c %s "$T/big.config")" "$BIG" "$(stat -c %s "$T/big.layer")" >"$T/big.manifest"
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$T/big.manifest" "http://127.0.0.1:$REG_PORT/v2/library/big/manifests/latest"
BIGIMG=$("${CURL[@]}" -H 'Content-Type: application/json' \
  -d "{\"containerImage\":\"127.0.0.1:$REG_PORT/library/big:latest\"}" "$HTTPS/v1alpha2/container" |
  json_get - 'd["targetImage"]')
BIGREPO=${BIGIMG#*/}
BIGREPO=${BIGREPO%:*}
code=$("${CURL[@]}" -o "$T/b1" -w '%{http_code}' "$HTTPS/v2/$BIGREPO/blobs/$BIG")
ok "12 MiB layer, first GET (streamed): 200, right bytes" is "$code sha256:$(sha256 "$T/b1")" "200 $BIG"
code=$("${CURL[@]}" --limit-rate 6M -o "$T/b2" -w '%{http_code}' "$HTTPS/v2/$BIGREPO/blobs/$BIG")
ok "12 MiB layer from the blob cache to a slow client (6 MB/s): 200, right bytes" is \
  "$code sha256:$(sha256 "$T/b2")" "200 $BIG"
# Pipelined: three requests in one TLS write (a file body in the middle); all
# answered, in order, the layer bytes intact.
$PY - "$TPORT" "$P/ca.crt" "/v2/$BIGREPO/blobs/$BIG" "$T/pipe" <<'PYEOF'
import socket, ssl, sys
port, ca, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
req = lambda p, extra="": f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
s.sendall(req("/health") + req(path) + req("/health", "Connection: close\r\n"))
data = b""
s.settimeout(60)
while True:
    try:
        b = s.recv(1 << 20)
    except ssl.SSLEOFError:
        break
    if not b:
        break
    data += b
open(out, "wb").write(data)
PYEOF
ok "three pipelined requests over TLS (a 12 MiB file in the middle): in order, intact" is \
  "$($PY -c '
import sys
d, layer = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
i = d.find(layer)
print(d.count(b"HTTP/1.1 200 OK\r\n"), d[:i].count(b"HTTP/1.1 200"), d.count(layer),
      d[i:].count(b"{\"status\":\"UP\",\"components\""), d.endswith(b"}}}"))' \
  "$T/pipe" "$T/big.layer")" '3 2 1 1 True'

# ---- skopeo and podman, verification on ----
ok "skopeo copy over HTTPS (--src-cert-dir)" \
  skopeo copy --quiet --src-cert-dir "$P/cadir" "docker://$IMG" "oci:$T/copy:latest"
ok "skopeo refuses without the CA" bash -c "! skopeo inspect --raw docker://$IMG >/dev/null 2>&1"
cat >"$T/containers.conf" <<EOF
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
cat >"$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/podman/root"
runroot = "$T/podman/run"
EOF
pod() {
  CONTAINERS_CONF="$T/containers.conf" CONTAINERS_STORAGE_CONF="$T/storage.conf" \
    podman --root "$T/podman/root" --runroot "$T/podman/run" --storage-driver vfs "$@"
}
pod_pull() { pod pull -q --cert-dir "$P/cadir" "$IMG" >/dev/null; }
ok "podman pull over HTTPS (--cert-dir)" pod_pull
ok "podman has the image" has "$(pod images --format '{{.Repository}}' 2>&1)" "127.0.0.1:$TPORT/wt/"

# ---- plain HTTP on the TLS port; a silent client ----
t0=$(date +%s%N)
out=$(curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$TPORT/health" || true)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "plain HTTP to the TLS port: 400 at once (${ms} ms)" has "$out $([ "$ms" -lt 2000 ] && echo fast)" \
  "This port speaks HTTPS: use an https:// URL."$'\n'" 400 fast"
t0=$(date +%s%N)
$PY - "$TPORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
try:
    assert s.recv(1) == b""  # closed by the server, nothing sent
except ConnectionResetError:
    pass
EOF
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "a silent client is closed at the header timeout (${ms} ms)" test "$ms" -lt 5000

# ---- reload in the middle of a stream of pulls ----
serial() { sc -tls1_3 | openssl x509 -noout -subject 2>/dev/null | sed 's/.*CN *= *//'; }
ok "handshakes see certificate a" is "$(serial)" waved-a
# A connection opened before the reload, used before and after it.
$PY - "$TPORT" "$P/ca.crt" "/v2/$REPO/blobs/$LAYER" "$T/go" >"$T/keep.out" 2>&1 <<'EOF' &
import http.client, os, ssl, sys, time
port, ca, path, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
def get():
    c.request("GET", path)
    r = c.getresponse()
    return r.status, len(r.read())
first = get()
open(go + ".ready", "w").close()
sock = c.sock
cn = dict(x[0] for x in sock.getpeercert()["subject"])["commonName"]
while not os.path.exists(go):
    time.sleep(0.05)
second = get()
print(first[0], second[0], "same" if c.sock is sock else "new", cn)
EOF
KEEP_PID=$!
pull_stream() { # OUT — pulls (new connections, a layer then a manifest) until $T/stop
  while [ ! -f "$T/stop" ]; do
    "${CURL[@]}" -H "Accept: $ACCEPT" -o /dev/null -o /dev/null -w '%{http_code}\n' \
      "$HTTPS/v2/$REPO/blobs/$LAYER" "$HTTPS/v2/$REPO/manifests/latest" || echo curl-failed
  done >"$1"
}
pull_stream "$T/stream1.codes" &
STREAM_PID=$!
pull_stream "$T/stream2.codes" &
STREAM2_PID=$!
POLL_EVERY=0.05 poll_until 15 test -f "$T/go.ready" || true
sleep 0.5
cp "$P/b.crt" "$P/server.crt"
cp "$P/b.key" "$P/server.key"
kill -HUP "$WAVED_PID"
sleep 1
touch "$T/go" "$T/stop"
wait "$STREAM_PID" "$STREAM2_PID"
wait "$KEEP_PID" || true
cat "$T"/stream?.codes >"$T/stream.codes"
total=$(wc -l <"$T/stream.codes")
good=$(grep -c '^200$' "$T/stream.codes" || true)
ok "no failed request in a stream of $total pulls across the reload" test "$total" -gt 10 -a "$good" = "$total"
ok "reload logged" has "$(cat "$W/waved.log")" "TLS certificate reloaded from $P/server.crt: /CN=waved-b"
ok "a connection opened before the reload keeps working (certificate a)" is "$(cat "$T/keep.out")" "200 200 same waved-a"
ok "new handshakes see certificate b" is "$(serial)" waved-b

# ---- a bad new certificate keeps the current one ----
echo "not a certificate" >"$P/server.crt"
kill -HUP "$WAVED_PID"
sleep 0.5
ok "bad certificate on SIGHUP: logged" has "$(cat "$W/waved.log")" \
  "TLS reload failed, keeping the current certificate: server.tls.cert: '$P/server.crt' is not a usable PEM certificate"
ok "... and certificate b still served" is "$(serial)" waved-b
cp "$P/c.crt" "$P/server.crt" # key b does not match certificate c
kill -HUP "$WAVED_PID"
sleep 0.5
ok "mismatched key on SIGHUP: logged, b kept" is \
  "$(grep -c "does not match the certificate" "$W/waved.log") $(serial)" "1 waved-b"
ok "waved still serves HTTPS" is "$("${CURL[@]}" -o /dev/null -w '%{http_code}' "$HTTPS/health")" 200

# ---- bad certificate or key at start-up: one line, waved stops ----
start_bad() { # CERT KEY [EXTRA] — prints waved's exit code and its last log line
  local d="$T/bad-$RANDOM"
  mkdir -p "$d"
  printf 'server: {host: 127.0.0.1, port: %s, tls: {cert: "%s", key: "%s", port: %s}%s}\nstorage: {path: %s}\n' \
    "$(free_port)" "$1" "$2" "$(free_port)" "${3:-}" "$d/data" >"$d/config.yml"
  local rc=0
  timeout 20 "$WAVED_BIN" --config "$d/config.yml" >"$d/log" 2>&1 || rc=$?
  echo "$rc $(grep -E 'error' "$d/log" | head -1)"
}
out=$(start_bad "$P/bad.crt" "$P/a.key")
ok "unreadable certificate: exit 1 with why" has "$out" "server.tls.cert: cannot read '$P/bad.crt': No such file or directory"
ok "... exit code 1" is "${out%% *}" 1
echo garbage >"$P/garbage.crt"
ok "not a certificate" has "$(start_bad "$P/garbage.crt" "$P/a.key")" "is not a usable PEM certificate"
ok "missing key" has "$(start_bad "$P/a.crt" "")" "server.tls.key: missing"
ok "key not matching the certificate" has "$(start_bad "$P/a.crt" "$P/other.key")" \
  "server.tls.key: '$P/other.key' does not match the certificate '$P/a.crt'"
ok "plain off and no TLS" has "$(start_bad "" "" ", plain: false")" \
  "server.plain is false but server.tls.cert and server.tls.key are not set"

stop_waved
e2e_finish
