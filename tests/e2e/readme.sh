#!/usr/bin/env bash
# tests/e2e/readme.sh — every command README.md shows, checked.
#
# The commands are read from README.md itself (its ```sh blocks, and inline code that starts
# with make, ctest, curl, skopeo, waved or out/), so a command added to the README without a
# check here fails this test. What each check does:
#   - cheap commands really run: `ctest … -R siphash`, `out/tests/test_siphash <case>`,
#     `waved --help`/`--version`, the `curl` calls against a waved started here (the port of
#     `localhost:9090` replaced by its free port), and "A first pull": a local docker-registry
#     holding library/busybox, the README's config snippet, its `curl` POST and `skopeo inspect`
#     run as written (the addresses and <token> substituted);
#   - long or machine-changing commands (`make run`, `make test`, `make test-asan`, `make bench`,
#     `make install`, `make deb`, `make fuzz`, `make clean`, …) are only dry-run: `make -n` must
#     know the target, and for `make run`/`make test` its plan must start waved / run ctest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=${WAVED_SRC:?WAVED_SRC must name the source tree}
BUILD=$(dirname "${WAVED_BIN:?}")
T=$E2E_TMP

# ---- the commands the README shows ------------------------------------------------------
# One command per record (NUL-separated): continuation lines and multi-line quotes joined.
$PY - "$SRC/README.md" >"$T/commands" <<'PY'
import re, shlex, sys
text = open(sys.argv[1]).read()
cmds = []
for block in re.findall(r"```sh\n(.*?)```", text, re.S):
    cur = ""
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += re.sub(r"\s+#\s[^'\"]*$", "", line) + "\n"  # a trailing comment
        try:
            shlex.split(cur.replace("\\\n", " "), comments=True)
        except ValueError:
            continue  # an open quote: the command goes on
        if cur.rstrip().endswith("\\"):
            continue
        cmds.append(cur.strip())
        cur = ""
for span in re.findall(r"`([^`\n]+)`", text):
    if re.match(r"(make|ctest|curl|skopeo|waved|out/)\b", span):
        cmds.append(span.strip())
sys.stdout.write("".join(c + "\0" for c in dict.fromkeys(cmds)))
PY
mapfile -d '' CMDS <"$T/commands"
log "README.md shows ${#CMDS[@]} commands"
ok "the README shows commands" test "${#CMDS[@]}" -gt 10

# ---- a waved, and for "A first pull" a registry holding library/busybox ------------------
REG_PORT=$(start_registry reg anon)
REG="127.0.0.1:$REG_PORT"
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
# The README's own config snippet for a registry named by an address, with this port.
SNIPPET=$(grep -o "wave: {registries: {[^\`]*}}}" "$SRC/README.md" | head -1)
ok "the README shows the wave.registries snippet" has "$SNIPPET" '127.0.0.1:5001'
WAVED_LOG_LEVEL=warn
start_waved "${SNIPPET//127.0.0.1:5001/$REG}"
HERE="127.0.0.1:$WAVED_PORT"

# as_here CMD — the README command with waved's and the registry's addresses of this test.
as_here() {
  local c=${1//localhost:9090/$HERE}
  c=${c//127.0.0.1:5001/$REG}
  printf '%s' "${c//<token>/${TOKEN:-}}"
}

# make_knows TARGET [PLAN_PART] — `make -n TARGET` succeeds (and its plan contains PLAN_PART).
make_knows() {
  local plan
  plan=$(make -n -C "$SRC" --no-print-directory "$1" OUT="$T/make-out" 2>&1) ||
    { echo "    make -n $1: $plan" >&2; return 1; }
  [ -z "${2:-}" ] || has "$plan" "$2"
}

TOKEN=""
check() { # CMD — one README command
  local c=$1 out
  case "$c" in
    "make run")  ok "make run: dry run starts waved on config.yml" make_knows run "waved --config config.yml" ;;
    "make test") ok "make test: dry run runs ctest" make_knows test "ctest --test-dir" ;;
    make\ *)
      local target=${c#make }; target=${target%% *}
      ok "make $target: target exists (dry run)" make_knows "$target" ;;
    ctest\ *)
      out=$(cd "$BUILD/.." && eval "${c//--test-dir out/--test-dir $BUILD}" 2>&1) || true
      ok "runs: $c" has "$out" "100% tests passed" ;;
    out/tests/*)
      out=$(eval "$BUILD/${c#out/}" 2>&1) || true
      ok "runs: $c" has "$out" "1 passed, 0 failed" ;;
    "waved --help")    ok "runs: waved --help (lists the keys)" has "$("$WAVED_BIN" --help)" "server.port" ;;
    "waved --version") ok "runs: waved --version" has "$("$WAVED_BIN" --version)" "waved" ;;
    "waved --config FILE") ok "waved --config FILE: this test's waved runs so" kill -0 "$WAVED_PID" ;;
    curl*/health*)       ok "runs: $c" has "$(eval "$(as_here "$c")")" '"status"' ;;
    curl*/service-info*) ok "runs: $c" has "$(eval "$(as_here "$c")")" '"serviceInfo"' ;;
    curl*/v2/*)          ok "runs: $c" has "$(eval "$(as_here "$c")" | tr A-Z a-z)" 'docker-distribution-api-version: registry/2.0' ;;
    curl*/v1alpha2/container*)
      out=$(eval "$(as_here "$c")") || true
      TOKEN=$(printf '%s' "$out" | json_get - 'd["containerToken"]') || true
      # The name uses wave.server.url's authority (default localhost:9090), as the README shows.
      ok "runs: the first pull's container request" has "$out" "\"targetImage\":\"localhost:9090/wt/$TOKEN/library/busybox:latest\"" ;;
    skopeo\ inspect*)
      ok "runs: the first pull's skopeo inspect" has "$(eval "$(as_here "$c")")" '"HELLO=world"' ;;
    "waved sif inspect"*)
      # No SIF at hand here (tests/e2e/sif.sh inspects real ones): the command runs and
      # refuses a file that is not one, naming why.
      ok "runs: waved sif inspect (refuses a non-SIF, says why)" has \
        "$("$WAVED_BIN" sif inspect /etc/hostname 2>&1)" "invalid SIF" ;;
    *) ok "README command has a check here: $c" false ;;
  esac
}
for c in "${CMDS[@]}"; do check "$c"; done

stop_waved
e2e_finish
