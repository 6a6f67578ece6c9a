# tests/e2e/lib.sh — helpers for end-to-end tests against real components.
# Everything listens on 127.0.0.1 on free ports and lives under $E2E_TMP,
# which is removed (and every started process stopped) on exit.
set -euo pipefail

E2E_TMP=$(mktemp -d /tmp/waved-e2e.XXXXXX)
E2E_PIDS=()
E2E_FAILS=0
E2E_PASSES=0
PY=/usr/bin/python3

e2e_cleanup() {
  # Servers started inside $(...) record their pid in a file (E2E_PIDS of a
  # subshell does not reach this shell).
  local f
  for f in "$E2E_TMP"/*/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for pid in "${E2E_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Overlay mounts of builds killed with their waved (buildah storage-driver overlay).
  awk -v d="$E2E_TMP/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo 2>/dev/null | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_TMP"
}
trap e2e_cleanup EXIT

log() { printf '# %s\n' "$*" >&2; }

# Sanitizer slowdown (docs/testing.md): tests/CMakeLists.txt sets WAVED_TEST_SLOWDOWN for the
# ASan and TSan builds (1, unset, in a plain one). `slow N` prints N times it, capped at 50 x:
# a time bound a check compares against, e.g. test "$ms" -lt "$(slow 1500)".
E2E_SLOWDOWN=${WAVED_TEST_SLOWDOWN:-1}
[[ "$E2E_SLOWDOWN" =~ ^[0-9]+$ ]] && [ "$E2E_SLOWDOWN" -ge 1 ] || E2E_SLOWDOWN=1
[ "$E2E_SLOWDOWN" -le 50 ] || E2E_SLOWDOWN=50
slow() { echo $(($1 * E2E_SLOWDOWN)); }

# poll_until SECONDS CMD... — runs CMD until it succeeds; gives up (returns 1) once SECONDS, scaled
# by `slow`, have passed on the clock, however long each try takes. Tries POLL_EVERY (0.1) seconds
# apart; set it on the call: POLL_EVERY=0.02 poll_until 10 CMD... CMD runs in this shell, so a
# function it calls can leave what it saw in a variable.
poll_until() {
  local end=$((${EPOCHREALTIME//[.,]/} + $(slow "$1") * 1000000))
  shift
  until "$@"; do
    [ "${EPOCHREALTIME//[.,]/}" -lt "$end" ] || return 1
    sleep "${POLL_EVERY:-0.1}"
  done
}

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL [SECONDS] — until URL answers (10 s)
  POLL_EVERY=0.02 poll_until "${2:-10}" curl -s -o /dev/null "$1" && return 0
  echo "timed out waiting for $1" >&2
  return 1
}

# ok NAME CMD... — runs a check, counts it, and prints one line.
ok() {
  local name=$1; shift
  if "$@"; then
    echo "ok   $name"; E2E_PASSES=$((E2E_PASSES + 1))
  else
    echo "FAIL $name"; E2E_FAILS=$((E2E_FAILS + 1))
  fi
}

# is GOT WANT — equality with both shown on failure; has TEXT PART — substring.
is() { [ "$1" = "$2" ] || { echo "    got '$1', want '$2'" >&2; return 1; }; }
has() { [[ "$1" == *"$2"* ]] || { echo "    '${1:0:300}' lacks '$2'" >&2; return 1; }; }

# wait_done REQUEST_ID [SECONDS] — polls the container status until DONE (120 s);
# leaves the last status in $E2E_TMP/st.json and shows it when it times out.
status_done() { # REQUEST_ID — fetches the status into $E2E_TMP/st.json; true when DONE
  curl -s -o "$E2E_TMP/st.json" "$WAVED_URL/v1alpha2/container/$1/status"
  [ "$(json_get "$E2E_TMP/st.json" 'd["status"]' 2>/dev/null)" = DONE ]
}
wait_done() {
  poll_until "${2:-120}" status_done "$1" && return 0
  cat "$E2E_TMP/st.json" >&2
  return 1
}

e2e_finish() {
  echo "$E2E_PASSES passed, $E2E_FAILS failed"
  [ "$E2E_FAILS" -eq 0 ]
}

# ---- token server for Bearer auth ------------------------------------------

make_token_cert() { # DIR
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=waved-e2e-token" \
    -keyout "$1/tok.key" -out "$1/tok.crt" 2>/dev/null
}

# start_token_server DIR PORT USER PASS — signs RS256 JWTs for docker-registry.
start_token_server() {
  local dir=$1 port=$2
  $PY "$(dirname "${BASH_SOURCE[0]}")/token_server.py" "$port" "$dir/tok.key" "$dir/tok.crt" \
    "$3" "$4" >"$dir/token.log" 2>&1 &
  E2E_PIDS+=($!)
  echo $! >"$dir/token.pid"
  wait_http "http://127.0.0.1:$port/health"
}

# ---- docker-registry ----------------------------------------------------------

# start_registry NAME MODE [USER PASS] — MODE is anon, basic or token. Prints the port.
start_registry() {
  local name=$1 mode=$2 user=${3:-} pass=${4:-}
  local dir="$E2E_TMP/reg-$name" port auth=""
  mkdir -p "$dir/data"
  port=$(free_port)
  case "$mode" in
    basic)
      htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd"
      auth="auth: {htpasswd: {realm: basic-realm, path: $dir/htpasswd}}" ;;
    token)
      local tport; tport=$(free_port)
      make_token_cert "$dir"
      start_token_server "$dir" "$tport" "$user" "$pass"
      auth="auth: {token: {realm: \"http://127.0.0.1:$tport/token\", service: local-registry, issuer: local-issuer, rootcertbundle: $dir/tok.crt}}" ;;
  esac
  cat >"$dir/config.yml" <<YML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
http: {addr: "127.0.0.1:$port", secret: local-test}
$auth
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  E2E_PIDS+=($!)
  echo $! >"$dir/registry.pid"
  wait_http "http://127.0.0.1:$port/v2/" >/dev/null
  echo "$port"
}

# stop_registry NAME — stops a registry started with start_registry.
stop_registry() {
  local f="$E2E_TMP/reg-$1/registry.pid"
  kill "$(cat "$f")" 2>/dev/null || true
  while kill -0 "$(cat "$f")" 2>/dev/null; do sleep 0.02; done
  rm -f "$f"
}

# ---- images -----------------------------------------------------------------------

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# put_blob LAYOUT FILE — moves FILE into the layout's blob store, prints its hex digest.
put_blob() {
  local d; d=$(sha256 "$2")
  mv "$2" "$1/blobs/sha256/$d"
  echo "$d"
}

make_rootfs() { # DIR
  mkdir -p "$1/bin" "$1/etc" "$1/tmp"
  chmod 1777 "$1/tmp"
  cp "${BUSYBOX:-/bin/busybox}" "$1/bin/busybox" # BUSYBOX: another arch's binary
  for a in sh ls cat echo env true false mkdir; do ln -s busybox "$1/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
  echo 'root:x:0:' >"$1/etc/group"
}

# make_image_blobs LAYOUT ARCH ENTRYPOINT_JSON — writes layer, config and manifest
# blobs; prints "<manifest hex> <manifest size>".
make_image_blobs() {
  local lay=$1 arch=$2 ep=$3 work="$1/.work-$2"
  mkdir -p "$work/rootfs"
  make_rootfs "$work/rootfs"
  echo "$arch" >"$work/rootfs/etc/arch"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" .
  local diff; diff=$(sha256 "$work/layer.tar")
  gzip -n -c "$work/layer.tar" >"$work/layer.tgz"
  local lsize; lsize=$(stat -c %s "$work/layer.tgz")
  local layer; layer=$(put_blob "$lay" "$work/layer.tgz")
  local epjson=""
  [ -n "$ep" ] && epjson="\"Entrypoint\":$ep,"
  printf '{"architecture":"%s","os":"linux","config":{%s"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"e2e"}]}' \
    "$arch" "$epjson" "$diff" >"$work/config.json"
  local csize; csize=$(stat -c %s "$work/config.json")
  local config; config=$(put_blob "$lay" "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$csize" "$layer" "$lsize" >"$work/manifest.json"
  local msize; msize=$(stat -c %s "$work/manifest.json")
  local man; man=$(put_blob "$lay" "$work/manifest.json")
  rm -rf "$work"
  echo "$man $msize"
}

new_layout() { mkdir -p "$1/blobs/sha256"; echo '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"; }

# make_busybox_layout DIR [ENTRYPOINT_JSON] — single-arch amd64 image tagged latest.
make_busybox_layout() {
  new_layout "$1"
  local m s; read -r m s < <(make_image_blobs "$1" amd64 "${2:-}")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$m" "$s" >"$1/index.json"
}

# make_multiarch_layout DIR — an OCI index with linux/amd64 and linux/arm64 entries.
make_multiarch_layout() {
  new_layout "$1"
  local ma sa mb sb
  read -r ma sa < <(make_image_blobs "$1" amd64 "")
  read -r mb sb < <(make_image_blobs "$1" arm64 "")
  local w="$1/index.tmp"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}}]}' \
    "$ma" "$sa" "$mb" "$sb" >"$w"
  local isize; isize=$(stat -c %s "$w")
  local idx; idx=$(put_blob "$1" "$w")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$idx" "$isize" >"$1/index.json"
}

# push_layout DIR REF [CREDS] — pushes an OCI layout (all platforms) to a registry.
push_layout() {
  local creds=()
  [ -n "${3:-}" ] && creds=(--dest-creds "$3")
  skopeo copy --quiet --all --dest-tls-verify=false "${creds[@]}" "oci:$1:latest" "docker://$2"
}

# ---- containerd -----------------------------------------------------------------

# start_containerd — a private containerd (own root, state and socket, CRI off).
# Sets CTR_ADDR.
start_containerd() {
  local dir="$E2E_TMP/containerd"
  mkdir -p "$dir"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
TOML
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  E2E_PIDS+=($!)
  CTR_ADDR="$dir/containerd.sock"
  POLL_EVERY=0.02 poll_until 5 ctr_up && return 0
  echo "containerd did not start" >&2
  return 1
}
ctr_up() { ctr --address "$CTR_ADDR" version >/dev/null 2>&1; }

# ---- waved -------------------------------------------------------------------------

# start_waved [EXTRA_YAML] — starts $WAVED_BIN on a free port with its own data
# directory and config; sets WAVED_PORT, WAVED_URL, WAVED_DIR, WAVED_PID.
start_waved() {
  WAVED_DIR="$E2E_TMP/waved-$RANDOM"
  mkdir -p "$WAVED_DIR"
  WAVED_PORT=${WAVED_NEXT_PORT:-$(free_port)} # a port chosen before, e.g. for wave.server.url
  WAVED_NEXT_PORT=
  WAVED_URL="http://127.0.0.1:$WAVED_PORT"
  {
    echo "server: {host: 127.0.0.1, port: $WAVED_PORT}"
    echo "storage: {path: $WAVED_DIR/data}"
    echo "log: {level: ${WAVED_LOG_LEVEL:-info}}"
    printf '%s\n' "${1:-}"
  } >"$WAVED_DIR/config.yml"
  "${WAVED_BIN:?WAVED_BIN must name the waved binary}" --config "$WAVED_DIR/config.yml" \
    >"$WAVED_DIR/waved.log" 2>&1 &
  WAVED_PID=$!
  E2E_PIDS+=("$WAVED_PID")
  wait_http "$WAVED_URL/health" || { cat "$WAVED_DIR/waved.log" >&2; return 1; }
}

# launch_waved NAME DIR PORT — waved on DIR/config.yml (written by the caller), its log in
# DIR/waved.log; sets NAME_URL, NAME_PORT and NAME_PID and waits for /health. For scripts that
# run several instances side by side (redis.sh, cluster.sh, bench/cluster.sh).
launch_waved() {
  "${WAVED_BIN:?WAVED_BIN must name the waved binary}" --config "$2/config.yml" >"$2/waved.log" 2>&1 &
  local pid=$!
  E2E_PIDS+=("$pid")
  printf -v "${1}_URL" 'http://127.0.0.1:%s' "$3"
  printf -v "${1}_PORT" '%s' "$3"
  printf -v "${1}_PID" '%s' "$pid"
  wait_http "http://127.0.0.1:$3/health" || { cat "$2/waved.log" >&2; return 1; }
}

stop_waved() {
  kill -TERM "$WAVED_PID" 2>/dev/null || true
  wait "$WAVED_PID" 2>/dev/null || true
}

# jq-free JSON field access: json_get FILE_OR_- EXPR (python expression on `d`).
json_get() {
  $PY -c 'import json,sys; d=json.load(open(sys.argv[1]) if sys.argv[1]!="-" else sys.stdin); v=eval(sys.argv[2]); print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$@"
}

# ---- misbehaving upstreams, process trees (ssrf.sh, crash.sh, hostile.sh) -----------------

# start_evil_upstream NAME MODE [URL] — an evil_upstream.py (MODE redirect, bearer or
# token: see that file) on a free port, its requests logged to $E2E_TMP/evil-NAME.log;
# sets EVIL to its port (waits up to 30 s for it). Runs in this shell, so cleanup stops it.
start_evil_upstream() {
  EVIL=$(free_port)
  $PY "$(dirname "${BASH_SOURCE[0]}")/evil_upstream.py" "$EVIL" "$E2E_TMP/evil-$1.log" "$2" \
    "${3:-}" >"$E2E_TMP/evil-$1.out" 2>&1 &
  E2E_PIDS+=($!)
  POLL_EVERY=0.05 poll_until 30 curl -s -o /dev/null "http://127.0.0.1:$EVIL/v2/" || true
}

# proc_tree PID — the processes below PID, as "pid:starttime:comm" lines (the start time
# guards against pid reuse when procs_alive checks the list later).
proc_tree() {
  $PY - "$1" <<'PY'
import os, sys
procs = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        s = open(f"/proc/{p}/stat").read()
    except OSError:
        continue
    r = s.rindex(")")
    f = s[r + 2:].split()
    if f[0] != "Z":
        procs[int(p)] = (int(f[1]), f[19], s[s.index("(") + 1:r])
seen, grew = {int(sys.argv[1])}, True
while grew:
    grew = False
    for pid, (ppid, _, _) in procs.items():
        if ppid in seen and pid not in seen:
            seen.add(pid)
            grew = True
for pid in sorted(seen - {int(sys.argv[1])}):
    print(f"{pid}:{procs[pid][1]}:{procs[pid][2]}")
PY
}

# procs_alive FILE — how many processes of a proc_tree list still run (same pid and
# start time, not a zombie).
procs_alive() {
  local n=0 pid start rest s
  while IFS=: read -r pid start rest; do
    s=$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null) || continue
    # fields after the name: state is the 1st, starttime the 20th
    set -- $s
    [ "$1" != Z ] && [ "${20}" = "$start" ] && n=$((n + 1))
  done <"$1"
  echo "$n"
}

# start_redis — (re)starts redis-server on $RPORT with its data in $E2E_TMP/redis, durable as a
# cluster wants it (appendonly, appendfsync always); sets REDIS_PID. rcli runs redis-cli on it.
start_redis() {
  mkdir -p "$E2E_TMP/redis"
  redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$E2E_TMP/redis" --save "" \
    --appendonly yes --appendfsync always --daemonize no >>"$E2E_TMP/redis/redis.log" 2>&1 &
  REDIS_PID=$!
  E2E_PIDS+=("$REDIS_PID")
  POLL_EVERY=0.02 poll_until 5 redis_up && return 0
  echo "redis-server did not start" >&2
  return 1
}
rcli() { redis-cli -p "$RPORT" "$@"; }
redis_up() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }
