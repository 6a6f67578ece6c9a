#!/usr/bin/env bash
# tests/e2e/store_fixture.sh — a data directory written by an earlier release
# keeps opening (docs/operations.md, "Upgrading"): waved starts on a copy of
# tests/fixtures/store-v1 (schema version 1, see its README.md) and serves the
# request records stored in it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T=$E2E_TMP
SRC=${WAVED_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
mkdir -p "$T/data"
cp -r "$SRC/tests/fixtures/store-v1/state" "$T/data/"
start_waved "storage: {path: $T/data}"
ok "waved starts on the schema-1 fixture" grep -q 'ready on' "$WAVED_DIR/waved.log"
code=$(curl -s -o "$T/a.json" -w '%{http_code}' "$WAVED_URL/v1alpha2/container/o5xpy0770qsg")
ok "pass-through record of the fixture: 200" is "$code" 200
ok "  names its image" has "$(json_get "$T/a.json" 'd["containerImage"]')" "/library/busybox:latest"
code=$(curl -s -o "$T/b.json" -w '%{http_code}' "$WAVED_URL/v1alpha2/container/9mrm95heyjvn")
ok "augmented record of the fixture: 200" is "$code" 200
ok "  keeps its containerConfig" has "$(cat "$T/b.json")" "FIXTURE=1"
code=$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha2/container/zzzzzzzzzzzz")
ok "an id that is not in it: 404" is "$code" 404
stop_waved

# A store from a newer release: the same directory with its schema version patched to 7
# in place (LMDB pages carry no checksum; the META record is "schema" -> 16-byte header + "1").
mkdir -p "$T/newer"
cp -r "$SRC/tests/fixtures/store-v1/state" "$T/newer/"
$PY - "$T/newer/state/data.mdb" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
i = d.find(b"schemawv")
assert i > 0 and d.count(b"schemawv") == 1 and d[i + 6 + 16] == ord("1")
d[i + 6 + 16] = ord("7")
open(p, "wb").write(d)
PY
cat >"$T/newer.yml" <<YML
server: {host: 127.0.0.1, port: $(free_port)}
storage: {path: $T/newer}
YML
"$WAVED_BIN" --config "$T/newer.yml" >"$T/newer.log" 2>&1 && rc=0 || rc=$?
ok "a store with a newer schema: waved refuses to start" test "$rc" -ne 0
ok "  saying which version it found and what it supports" \
  grep -q 'has schema version 7; this waved supports up to [0-9]*: refusing to open it' "$T/newer.log"
e2e_finish
