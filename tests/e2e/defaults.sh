#!/usr/bin/env bash
# tests/e2e/defaults.sh — waved on the SHIPPED config.yml, copied unchanged into
# a directory of its own and started there as a new user would
# (`waved --config ./config.yml`, so storage.path is the relative ./data).
# Only the environment overrides a user would set: WAVE_SERVER_PORT (9090 may
# be taken on a test machine) and WAVE_SERVER_URL (the name pulls use).
# Main flows: a container request for an image of the lab's registry and a
# skopeo pull of the wt/ name, then a real buildah build (containerFile) FROM
# that registry that completes and is pulled. Every path waved hands the
# builder must be absolute.
# The lab's registry is what a lab has: a docker-registry with a DNS name
# (registry.lab.test) and a certificate from the lab's CA, installed in the
# system's trust store. waved and its builders run in a private mount
# namespace whose /etc/hosts and CA bundle say so; nothing outside it changes.
# (A registry named by a loopback address would need an entry in
# wave.registries, which the shipped config does not have: docs/security.md.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

if ! command -v unshare >/dev/null || ! unshare -m true 2>/dev/null; then
  echo "skip: no mount namespaces (unshare -m) here"
  exit 0
fi
# ---- the lab's registry: a DNS name and a certificate from the lab's CA ----------------------
LAB_NAME=registry.lab.test
mkdir -p "$T/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=waved e2e lab CA" \
  -keyout "$T/pki/ca.key" -out "$T/pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$LAB_NAME" \
  -keyout "$T/pki/reg.key" -out "$T/pki/reg.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$LAB_NAME" >"$T/pki/ext.cnf"
openssl x509 -req -in "$T/pki/reg.csr" -CA "$T/pki/ca.crt" -CAkey "$T/pki/ca.key" \
  -CAcreateserial -days 2 -extfile "$T/pki/ext.cnf" -out "$T/pki/reg.crt" 2>/dev/null
REG_PORT=$(free_port)
mkdir -p "$T/reg-lab/data"
cat >"$T/reg-lab/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $T/reg-lab/data}
  cache: {blobdescriptor: inmemory}
http: {addr: "127.0.0.1:$REG_PORT", secret: local-test, tls: {certificate: $T/pki/reg.crt, key: $T/pki/reg.key}}
YML
docker-registry serve "$T/reg-lab/config.yml" >"$T/reg-lab/registry.log" 2>&1 &
E2E_PIDS+=($!)
POLL_EVERY=0.05 poll_until 12 curl -s --cacert "$T/pki/ca.crt" \
  --resolve "$LAB_NAME:$REG_PORT:127.0.0.1" -o /dev/null "https://$LAB_NAME:$REG_PORT/v2/" || true
REG="$LAB_NAME:$REG_PORT"
make_busybox_layout "$T/busybox"
skopeo copy --quiet --dest-tls-verify=false "oci:$T/busybox:latest" \
  "docker://127.0.0.1:$REG_PORT/library/busybox:latest"
# The namespace's view: the name in /etc/hosts, the CA in the system bundle.
{ cat /etc/hosts; echo "127.0.0.1 $LAB_NAME"; } >"$T/hosts"
{ cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null; cat "$T/pki/ca.crt"; } >"$T/ca-bundle.crt"
LAB_SH='mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/ssl/certs/ca-certificates.crt &&
  shift 2 && exec "$@"'
lab_ns() { # CMD... — runs CMD where the lab's name and CA are known
  unshare -m sh -c "$LAB_SH" lab_ns "$T/hosts" "$T/ca-bundle.crt" "$@"
}
ok "the lab's registry answers by name over verified TLS (inside the namespace)" \
  lab_ns curl -sf -o /dev/null "https://$REG/v2/"

# ---- waved from a copy of the shipped config, in a directory of its own ----------------------
HOME_DIR="$T/lab"
mkdir -p "$HOME_DIR"
cp "$SRC/config.yml" "$HOME_DIR/config.yml"
ok "the copy is the shipped file, unchanged" cmp -s "$SRC/config.yml" "$HOME_DIR/config.yml"
ok "the shipped storage.path is relative" grep -Eq '^  path: \./data$' "$HOME_DIR/config.yml"
WAVED_PORT=$(free_port)
WAVED_URL="http://127.0.0.1:$WAVED_PORT"
(
  cd "$HOME_DIR"
  # unshare, sh and env each exec the next: $! below is waved's own pid.
  exec unshare -m sh -c "$LAB_SH" lab_ns "$T/hosts" "$T/ca-bundle.crt" \
    env WAVE_SERVER_PORT="$WAVED_PORT" WAVE_SERVER_URL="$WAVED_URL" \
    "${WAVED_BIN:?}" --config ./config.yml >"$T/waved.log" 2>&1
) &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health" 20 || { cat "$T/waved.log" >&2; exit 1; }
log "waved on $WAVED_URL from $HOME_DIR, registry on $REG"

curl -s -o "$T/h.json" "$WAVED_URL/health"
ok "health UP" is "$(json_get "$T/h.json" 'd["status"]')" UP
ok "health: builder buildah UP" \
  is "$(json_get "$T/h.json" 'd["components"]["builder"]["status"]+" "+d["components"]["builder"]["detail"]')" "UP buildah"
ok "health: the data directory is absolute, next to config.yml" \
  is "$(json_get "$T/h.json" 'd["components"]["disk"]["path"]')" "$HOME_DIR/data"
ok "the state store is in ./data of that directory" test -d "$HOME_DIR/data/state"
ok "no preflight problem logged" bash -c "! grep -q 'preflight:' '$T/waved.log'"

post() { # BODY OUT -> status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }

# ---- 1. a container request and a pull of its wt/ name -----------------------------------------
log "1. container request + skopeo pull"
ok "container request 200" is "$(post "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$T/r1.json")" 200
TARGET=$(field "$T/r1.json" 'd["targetImage"]')
ok "the wt/ name is on this server" has "$TARGET" "127.0.0.1:$WAVED_PORT/wt/"
skopeo copy --quiet --src-tls-verify=false "docker://$TARGET" "dir:$T/p1" 2>"$T/p1.err" || cat "$T/p1.err" >&2
ok "skopeo pulls the wt/ image" test -s "$T/p1/manifest.json"
ok "it has the busybox layer" bash -c "ls '$T/p1' | grep -Eq '^[0-9a-f]{64}$'"

# ---- 2. a real buildah build on the defaults ------------------------------------------------------
log "2. buildah build"
CF=$(printf 'FROM %s\nRUN echo built-on-defaults > /built\n' "$REG/library/busybox:latest" | base64 -w0)
ok "build request 200" is "$(post "{\"containerFile\":\"$CF\"}" "$T/r2.json")" 200
BID=$(field "$T/r2.json" 'd["buildId"]')
ok "a new build" is "$(field "$T/r2.json" 'str(d["cached"])')" False
if ! wait_done "$(field "$T/r2.json" 'd["requestId"]')" 300; then
  curl -s "$WAVED_URL/v1alpha1/builds/$BID/logs" >&2 || true
fi
ok "the build succeeded" is "$(field "$T/st.json" 'd["status"]+" "+str(d.get("succeeded"))')" "DONE True"
curl -s -o "$T/log.txt" "$WAVED_URL/v1alpha1/builds/$BID/logs"
ok "no 'checking authfile' error (the relative-path bug)" bash -c "! grep -q 'checking authfile' '$T/log.txt'"
ok "the builder was given absolute paths" bash -c "! grep -q ' \./data' '$T/log.txt'"
IMG=$(field "$T/r2.json" 'd["targetImage"]')
skopeo copy --quiet --src-tls-verify=false "docker://$IMG" "dir:$T/p2" 2>"$T/p2.err" || cat "$T/p2.err" >&2
ok "skopeo pulls the built image" test -s "$T/p2/manifest.json"
TOP=$(json_get "$T/p2/manifest.json" 'd["layers"][-1]["digest"].split(":")[1]' 2>/dev/null || true)
ok "its top layer holds the RUN output" \
  is "$(tar -xzOf "$T/p2/$TOP" built 2>/dev/null || tar -xzOf "$T/p2/$TOP" ./built 2>/dev/null)" built-on-defaults
ok "the build's work directory is under ./data" test -d "$HOME_DIR/data/build"

# ---- 3. a second waved on the same port stops at start-up with one line -----------------------
log "3. start-up errors"
RC=0
OUT=$(cd "$HOME_DIR" && WAVE_SERVER_PORT="$WAVED_PORT" timeout 10 "$WAVED_BIN" --config ./config.yml 2>&1) || RC=$?
ok "port in use: exit 1" is "$RC" 1
ok "port in use: one clear line" is "$OUT" "waved: server.port: cannot listen on 127.0.0.1:$WAVED_PORT: Address already in use (another process holds the port: stop it, or change server.port or WAVE_SERVER_PORT)"
ok "the running waved was not disturbed" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/service-info")" 200
touch "$T/afile"
printf 'storage: {path: ./afile/data}\n' >"$T/bad.yml"
RC=0
OUT=$(cd "$T" && timeout 10 "$WAVED_BIN" --config ./bad.yml --port 0 2>&1) || RC=$?
ok "unusable storage.path: exit 1" is "$RC" 1
ok "unusable storage.path: one line with key, absolute path and reason" \
  is "$OUT" "waved: storage.path: $T/afile/data: cannot create the directory: Not a directory"

kill -TERM "$WAVED_PID"
RC=0; wait "$WAVED_PID" || RC=$?
ok "waved stops cleanly" is "$RC" 0

# ---- 4. without buildah: degraded, builds refused when asked, the rest works ----------------------
log "4. no builder on PATH"
NOB="$T/nobuilder"
mkdir -p "$NOB" && cp "$SRC/config.yml" "$NOB/config.yml"
(
  cd "$NOB"
  exec unshare -m sh -c "$LAB_SH" lab_ns "$T/hosts" "$T/ca-bundle.crt" \
    env PATH=/nonexistent-bin WAVE_SERVER_PORT="$WAVED_PORT" WAVE_SERVER_URL="$WAVED_URL" \
    "$WAVED_BIN" --config ./config.yml >"$T/nob.log" 2>&1
) &
WAVED_PID=$!
E2E_PIDS+=("$WAVED_PID")
wait_http "$WAVED_URL/health" 20 || { cat "$T/nob.log" >&2; exit 1; }
ok "preflight names buildah and its package" \
  grep -q "preflight: builds are not available: buildah not found - apt-get install buildah" "$T/nob.log"
curl -s -o "$T/h2.json" "$WAVED_URL/health"
ok "health DEGRADED, builder DOWN" \
  is "$(json_get "$T/h2.json" 'd["status"]+" "+d["components"]["builder"]["status"]+" "+d["components"]["builder"]["detail"]')" "DEGRADED DOWN buildah not found"
CF2=$(printf 'FROM %s\nRUN echo other > /other\n' "$REG/library/busybox:latest" | base64 -w0)
ok "a build request gets 503 when made" is "$(post "{\"containerFile\":\"$CF2\"}" "$T/nb.json")" 503
ok "with the reason" is "$(cat "$T/nb.json")" '{"message":"Container builds are not available on this server - buildah not found"}'
ok "a plain container request still works" is "$(post "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$T/nb2.json")" 200
kill -TERM "$WAVED_PID"
RC=0; wait "$WAVED_PID" || RC=$?
ok "stops cleanly" is "$RC" 0
e2e_finish
