#!/usr/bin/env bash
# tests/e2e/backup.sh — `waved backup DEST` while waved serves pulls
# (docs/operations.md, "Backup and restore"): the copy is taken during a pull
# loop, a second waved started on the copy serves the same tokens (their
# records and their manifests, from its own cache: the upstream is stopped
# first) and the same blobs; a DEST that already holds a store is refused.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in skopeo docker-registry; do
  command -v $c >/dev/null || { echo "skip: $c not installed (packaging/deps.sh test)"; exit 0; }
done
T=$E2E_TMP
REG=127.0.0.1:$(start_registry anon anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"
start_waved "wave:
  registries: {\"$REG\": {insecure: true}}"
A_URL=$WAVED_URL A_DIR=$WAVED_DIR A_PID=$WAVED_PID
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json'

# Ten augmented tokens, each pulled once: the manifest is cached in the store and the
# rewritten config is a blob of the blob store.
repos=()
for i in $(seq 1 10); do
  curl -s -o "$T/c$i.json" -H 'Content-Type: application/json' -X POST \
    --data-binary "{\"containerImage\":\"$REG/library/busybox:latest\",\"containerConfig\":{\"env\":[\"N=$i\"]}}" \
    "$A_URL/v1alpha2/container"
  img=$(json_get "$T/c$i.json" 'd["targetImage"]'); path=${img#*/}; repos+=("${path%:*}")
  curl -s -o "$T/m$i.json" -H "$ACCEPT" "$A_URL/v2/${path%:*}/manifests/latest"
done
ok "ten tokens pulled from the first waved" test "$(ls "$T"/m*.json | wc -l)" -eq 10
cfg=$(json_get "$T/m1.json" 'd["config"]["digest"]')
curl -s -o "$T/cfg1" "$A_URL/v2/${repos[0]}/blobs/$cfg"
ok "the rewritten config blob is served" has "$(cat "$T/cfg1")" '"N=1"'

# Pulls keep going while the backup runs.
( while :; do for r in "${repos[@]}"; do
    curl -s -o /dev/null -H "$ACCEPT" "$A_URL/v2/$r/manifests/latest"; done; done ) &
LOOP=$!
E2E_PIDS+=($LOOP)
sleep 0.5
"$WAVED_BIN" --config "$A_DIR/config.yml" backup "$T/bk" 2>"$T/backup.err"
rc=$?
sleep 0.3
kill $LOOP; wait $LOOP 2>/dev/null || true
ok "waved backup exits 0 while waved serves" is "$rc" 0
ok "  and says what it copied" grep -q 'state store and [0-9]* blobs' "$T/backup.err"
ok "the copy holds the LMDB file" test -s "$T/bk/state/data.mdb"
ok "the copy is compacted (not larger than the live file)" \
  test "$(stat -c %s "$T/bk/state/data.mdb")" -le "$(stat -c %s "$A_DIR/data/state/data.mdb")"
"$WAVED_BIN" --config "$A_DIR/config.yml" backup "$T/bk" 2>"$T/again.err" && rc=0 || rc=$?
ok "a DEST that holds a store is refused" is "$rc" 1
ok "  with a clear message" grep -q 'already holds a state store' "$T/again.err"
stop_waved
stop_registry anon

# Restore: the copy is the second waved's storage.path; the upstream is gone.
WAVED_DIR= ; start_waved "wave:
  registries: {\"$REG\": {insecure: true}}
storage: {path: $T/bk}"
ok "the restored waved started on the copy" grep -q "storage: {path: $T/bk}" "$WAVED_DIR/config.yml"
same=0
for i in $(seq 1 10); do
  tok=$(json_get "$T/c$i.json" 'd["requestId"]')
  code=$(curl -s -o "$T/r$i.json" -w '%{http_code}' "$WAVED_URL/v1alpha2/container/$tok")
  [ "$code" = 200 ] || continue
  curl -s -o "$T/mr$i.json" -H "$ACCEPT" "$WAVED_URL/v2/${repos[$((i-1))]}/manifests/latest"
  cmp -s "$T/m$i.json" "$T/mr$i.json" && same=$((same + 1))
done
ok "all ten tokens serve the same manifest from the restored store" is "$same" 10
curl -s -o "$T/cfg2" "$WAVED_URL/v2/${repos[0]}/blobs/$cfg"
ok "a blob of the blob store is served from the copy" cmp -s "$T/cfg1" "$T/cfg2"
stop_waved
ok "no sanitizer reports" bash -c "! grep -q 'Sanitizer\|runtime error' '$WAVED_DIR/waved.log'"
e2e_finish
