#!/usr/bin/env bash
# tests/e2e/crash.sh — a crash leaves nothing running (docs/jobs.md "Durability and
# restart"). 1. kill -9 of waved in the middle of a buildah build (a long RUN): every
# process the build started (the job runner waved-job-exec, buildah, buildah-chroot-exec, the step's
# sleep) is gone within seconds, the restarted waved marks the build failed, and the
# same request builds again and succeeds. 2. A job runner that survives waved (here:
# SIGSTOPped, so it cannot act on its parent-death signal) keeps the build running
# until the next start, which kills the recorded process group before it rules on the
# job.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  echo "skip: buildah or skopeo not installed"
  exit 0
fi
T=$E2E_TMP

REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
BB="$REG/library/busybox:latest"

WAVED_LOG_LEVEL=warn
start_waved ""
DATA="$WAVED_DIR/data"
log "waved on $WAVED_URL, registry on $REG"

b64() { printf '%b' "$1" | base64 -w0; }
post() {
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
get() { curl -s -o "$2" -w '%{http_code}' "$WAVED_URL$1"; }
field() { json_get "$1" "$2" 2>/dev/null || true; }

tree() { proc_tree "$@"; } # lib.sh
alive() { procs_alive "$@"; }
none_alive() { [ "$(alive "$1")" = 0 ]; } # TREE_FILE — nothing of it runs
sleep_in_tree() { tree "$WAVED_PID" >"$1" && grep -q ':sleep$' "$1"; } # FILE — the RUN sleep runs
# Processes whose command line names this waved's storage (buildah --root and the like).
storage_procs() {
  local n=0 f
  for f in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' 2>/dev/null <"$f" | grep -qF "$DATA/" && n=$((n + 1))
  done
  echo "$n"
}
# wait_sleep FILE — waits (60 s) until the build's RUN sleep runs below waved; the tree
# goes to FILE.
wait_sleep() {
  poll_until 60 sleep_in_tree "$1" && return 0
  cat "$1" >&2
  return 1
}
restart_waved() {
  "$WAVED_BIN" --config "$WAVED_DIR/config.yml" >>"$WAVED_DIR/waved.log" 2>&1 &
  WAVED_PID=$!
  E2E_PIDS+=("$WAVED_PID")
  wait_http "$WAVED_URL/health"
}
kill9_waved() {
  kill -9 "$WAVED_PID"
  wait "$WAVED_PID" 2>/dev/null || true
}

# ---- 1. kill -9 mid-build: the build dies with waved ------------------------------------
log "1. kill -9 during a long RUN"
# The RUN sleeps only until a fixed instant: the same request, sent again after it, builds
# at once. The instant leaves room for buildah to pull busybox and reach the RUN.
UNTIL=$(($(date +%s) + 45))
CF1=$(b64 "FROM $BB\nRUN [ \$(date +%s) -ge $UNTIL ] || sleep 300\n")
ok "crash: 200" test "$(post "{\"containerFile\":\"$CF1\"}" "$T/r1.json")" = 200
ID1=$(field "$T/r1.json" 'd["buildId"]')
ok "crash: the RUN sleeps below waved" wait_sleep "$T/tree1"
ok "crash: buildah runs" grep -q ':buildah' "$T/tree1"
# The runner is waved-job-exec (installed next to waved in the build tree, docs/jobs.md)
# below waved: pick it by name, not by pid order.
runner_of() { grep ':waved-job-exec$' "$1" | head -1 | cut -d: -f1; }
ok "crash: the runner is waved-job-exec, not waved itself" test -n "$(runner_of "$T/tree1")"
ok "crash: the step runs under its job runner" \
  bash -c "tr '\0' ' ' </proc/$(runner_of "$T/tree1")/cmdline | grep -q -- '--job-exec --parent $WAVED_PID --job '"
kill9_waved
poll_until 5 none_alive "$T/tree1" || true
ok "crash: nothing of the build runs 5 s after kill -9" is "$(alive "$T/tree1")" 0
ok "crash: no process names the storage path" is "$(storage_procs)" 0
restart_waved
get "/v1alpha1/builds/$ID1" "$T/b1.json" >/dev/null
ok "crash: the build is failed after the restart" test "$(field "$T/b1.json" 'str(d["succeeded"])')" = False
get "/v1alpha1/builds/$ID1/logs" "$T/l1.txt" >/dev/null
ok "crash: the log says why" grep -q 'waved restarted while the job was running' "$T/l1.txt"

# ---- 2. a runner that outlived waved: killed at the next start ---------------------------
log "2. a leftover process group is killed at restart"
CF2=$(b64 "FROM $BB\nRUN sleep 300 && echo leftover\n")
ok "leftover: 200" test "$(post "{\"containerFile\":\"$CF2\"}" "$T/r2.json")" = 200
ID2=$(field "$T/r2.json" 'd["buildId"]')
ok "leftover: the RUN sleeps below waved" wait_sleep "$T/tree2"
RUNNER=$(runner_of "$T/tree2")
ok "leftover: found the runner" test -n "$RUNNER"
kill -STOP "$RUNNER"
kill9_waved
sleep 2
ok "leftover: the stopped runner's build outlives waved" test "$(alive "$T/tree2")" -gt 1
grep ':sleep$' "$T/tree2" >"$T/sleep2"
ok "leftover: its sleep still runs" test "$(alive "$T/sleep2")" -ge 1
restart_waved
poll_until 5 none_alive "$T/tree2" || true
ok "leftover: the restart killed the whole group" is "$(alive "$T/tree2")" 0
ok "leftover: waved logs it" grep -q "$ID2: killed .* leftover process" "$WAVED_DIR/waved.log"
get "/v1alpha1/builds/$ID2" "$T/b2.json" >/dev/null
ok "leftover: the build is failed" test "$(field "$T/b2.json" 'str(d["succeeded"])')" = False

# ---- 3. the crashed build can be built again ----------------------------------------------
log "3. the same request builds again"
while [ "$(date +%s)" -le "$UNTIL" ]; do sleep 0.5; done
ok "again: 200" test "$(post "{\"containerFile\":\"$CF1\"}" "$T/r3.json")" = 200
ok "again: a new build of the same request (_2)" test "$(field "$T/r3.json" 'd["buildId"]')" = "${ID1%_1}_2"
wait_done "$(field "$T/r3.json" 'd["requestId"]')" 180
ok "again: it succeeds" test "$(field "$T/st.json" 'd["status"]+str(d["succeeded"])')" = DONETrue
stop_waved
ok "end: nothing left below the storage path" is "$(storage_procs)" 0

e2e_finish
