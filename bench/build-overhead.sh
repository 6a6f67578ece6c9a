#!/usr/bin/env bash
# bench/build-overhead.sh [OUT_DIR] — what waved adds to a buildah build
# (issue 15 point 5, docs/benchmarks.md "Builds"). Loopback only, no internet.
#
# Makes a ~50 MB base image offline (a busybox-static rootfs layer and a layer
# of incompressible pseudo-random bytes, deterministic: AES-CTR of zeros) and
# pushes it to a docker-registry on 127.0.0.1. Then, for BO_ROUNDS rounds,
# times two cases with a three-step Containerfile
#     FROM <base>            RUN <cheap>            COPY stamp.txt /stamp.txt
#   case 1 (first): fresh waved data / fresh buildah storage, base pulled;
#   case 2 (rebuild): the same stores, only stamp.txt (the COPY) changed;
# each through waved (POST /v1alpha2/container with the file and a
# buildContext, then GET of the manifest through waved, which parks until the
# build ends: request to manifest answered) and by hand (`buildah build` +
# `buildah push` to the same registry, with the best storage driver this
# kernel allows and --layers). waved and by-hand runs alternate; the order
# flips every round. Disk: du of buildah's storage root (by hand) and of
# waved's build workspace (its buildah storage) after each build, and of all
# of waved's storage.path (which also holds the built images when the target is
# the embedded registry). Prints one line per run and medians; an embedded build's line says
# how many of the base's layers its push skipped ("base layers seeded 2/2", "-": none looked at).
#
# Environment (defaults in brackets):
#   BO_ROUNDS [3]      rounds                    BO_BASE_MB [50] random layer size
#   BO_TARGET [embedded] waved's push target: embedded (its own registry) or repo
#                      (wave.build.repo = the same docker-registry as by hand)
#   BO_WAVED_YAML      extra YAML appended under wave.build (e.g. the old defaults)
#   BO_ROUND0 [0]      added to the round number that decides who goes first (runs of one
#                      round each, alternating binaries: WAVED_BIN selects waved's binary)
#   BO_LOGS            a directory: each round's waved log is kept there (waved-rN.log; with
#                      WAVED_LOG_LEVEL=debug it has the job steps' spawn times, docs/jobs.md)
#   BO_DRIVER          by-hand storage driver (default: overlay if it works, else
#                      fuse-overlayfs if installed, else vfs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(cd "${1:-out-release}" && pwd)
export WAVED_BIN=${WAVED_BIN:-$out/waved}
ROUNDS=${BO_ROUNDS:-3} BASE_MB=${BO_BASE_MB:-50} TARGET=${BO_TARGET:-embedded}
export WAVED_LOG_LEVEL=${WAVED_LOG_LEVEL:-warn}
# shellcheck source=../tests/e2e/lib.sh
source "$here/../tests/e2e/lib.sh"
T=$E2E_TMP
for c in buildah skopeo docker-registry; do
  command -v "$c" >/dev/null || { echo "build-overhead: skipped: $c not installed"; exit 0; }
done

REG_PORT=$(start_registry bench anon)
REG="127.0.0.1:$REG_PORT"

# ---- the base image: busybox rootfs + BASE_MB of incompressible bytes -------------------
make_base() {
  local lay=$T/base w=$T/base-work
  new_layout "$lay"
  mkdir -p "$w/rootfs" "$w/data/opt"
  make_rootfs "$w/rootfs"
  { openssl enc -aes-128-ctr -nosalt -K 00000000000000000000000000000000 \
    -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null || true; } |
    head -c $((BASE_MB << 20)) >"$w/data/opt/blob.bin"
  local diffs="" layers="" d
  for part in rootfs data; do
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$w/$part" -cf "$w/$part.tar" .
    d=$(sha256 "$w/$part.tar")
    gzip -1 -n -c "$w/$part.tar" >"$w/$part.tgz"
    local size; size=$(stat -c %s "$w/$part.tgz")
    local dg; dg=$(put_blob "$lay" "$w/$part.tgz")
    diffs+="${diffs:+,}\"sha256:$d\""
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$size}"
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created_by":"rootfs"},{"created_by":"data"}]}' \
    "$diffs" >"$w/config.json"
  local cs; cs=$(stat -c %s "$w/config.json")
  local cd; cd=$(put_blob "$lay" "$w/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd" "$cs" "$layers" >"$w/manifest.json"
  local ms; ms=$(stat -c %s "$w/manifest.json")
  local md; md=$(put_blob "$lay" "$w/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$md" "$ms" >"$lay/index.json"
  rm -rf "$w"
  push_layout "$lay" "$REG/bench/base:latest"
}
make_base
BASE="$REG/bench/base:latest"
BASE_BYTES=$(du -sb "$T/base/blobs" | cut -f1)

# ---- the by-hand storage driver ---------------------------------------------------------
probe_driver() { # DRIVER — can buildah create a container with it here?
  local p=$T/probe-$1
  buildah --root "$p/root" --runroot "$p/run" --storage-driver "$1" from scratch >/dev/null 2>&1
  local rc=$?
  buildah --root "$p/root" --runroot "$p/run" --storage-driver "$1" rm -a >/dev/null 2>&1 || true
  rm -rf "$p" 2>/dev/null || true
  return $rc
}
DRIVER=${BO_DRIVER:-}
if [ -z "$DRIVER" ]; then
  if probe_driver overlay; then DRIVER=overlay
  elif command -v fuse-overlayfs >/dev/null && probe_driver fuse-overlayfs; then DRIVER=fuse-overlayfs
  else DRIVER=vfs; fi
fi
HAND_OPTS=()
[ "$DRIVER" = fuse-overlayfs ] && { DRIVER=overlay; HAND_OPTS=(--storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs); }

# ---- the build inputs -------------------------------------------------------------------
printf 'FROM %s\nRUN echo built > /built && ls /bin > /bin.list\nCOPY stamp.txt /stamp.txt\n' \
  "$BASE" >"$T/Containerfile"
ctx() { # DIR TEXT — the build context directory with stamp.txt
  rm -rf "$1" && mkdir -p "$1" && printf '%s\n' "$2" >"$1/stamp.txt"
}

now() { date +%s.%N; }
el() { python3 -c "print(f'{$2-$1:.3f}')"; }
du_b() { du -sxb "$1" 2>/dev/null | cut -f1 || echo 0; }

# by_hand ROOT TEXT TAG — buildah build + push; prints "seconds disk_bytes cache_hits".
by_hand() {
  local root=$1 c=$T/hctx-$3 B
  B=(buildah --root "$root/root" --runroot "$root/run" --storage-driver "$DRIVER" "${HAND_OPTS[@]}")
  ctx "$c" "$2"
  local t0 t1
  t0=$(now)
  "${B[@]}" build --layers --isolation chroot --runtime /usr/sbin/runc --tls-verify=false \
    -f "$T/Containerfile" -t "localhost/bench:$3" "$c" >"$T/hand-$3.log" 2>&1
  "${B[@]}" push --tls-verify=false --digestfile "$T/hand-$3.digest" "localhost/bench:$3" \
    "docker://$REG/bench/hand:$3" >>"$T/hand-$3.log" 2>&1
  t1=$(now)
  echo "$(el "$t0" "$t1") $(du_b "$root") $(grep -c 'Using cache' "$T/hand-$3.log" || true) 0 -"
}

# waved_start — a fresh waved (fresh data) with this run's build settings.
waved_start() {
  local repo=""
  [ "$TARGET" = repo ] && repo="repo: \"$REG/bench/waved\""
  # The base's registry is configured (as a deployment configures the registries it pulls
  # from): waved then pins the FROM to the digest it resolves (docs/builds.md "The base image
  # check"); a registry named by an address and not configured is left to buildah.
  start_waved "wave:
  registries: {\"$REG\": {insecure: true}}
  build:
    $repo
${BO_WAVED_YAML:-}"
}
# through_waved TEXT TAG — POST + parked manifest GET; prints "seconds disk_bytes cache_hits".
through_waved() {
  local c=$T/wctx-$2 td loc
  ctx "$c" "$1"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$c" -cf "$c.tar" .
  td="sha256:$(sha256 "$c.tar")"
  gzip -n -c "$c.tar" >"$c.tgz"
  loc="data:$(base64 -w0 "$c.tgz")"
  printf '{"containerFile":"%s","buildContext":{"location":"%s","tarDigest":"%s"}}' \
    "$(base64 -w0 "$T/Containerfile")" "$loc" "$td" >"$c.json"
  local t0 t1 code name path
  t0=$(now)
  curl -s -o "$c.resp" -H 'Content-Type: application/json' --data-binary "@$c.json" \
    "$WAVED_URL/v1alpha2/container"
  # The name with bash's own regex: a python3 start here (json_get) ran inside the timed
  # window, beside the build, for 0.1-0.6 s of CPU on a loaded 2-core machine.
  local resp=""
  read -r -d '' resp <"$c.resp" || true
  [[ $resp =~ \"targetImage\":\"([^\"]+)\" ]] && name=${BASH_REMATCH[1]}
  path=${name#*/}
  code=$(curl -s -o "$c.man" -w '%{http_code}' -m 900 \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' \
    "$WAVED_URL/v2/${path%:*}/manifests/${path##*:}")
  t1=$(now)
  [ "$code" = 200 ] || { echo "waved build $2 failed ($code): $(head -c 2000 "$c.man")" >&2; return 1; }
  local id logs hits
  id=$(json_get "$c.resp" 'd["buildId"]')
  curl -s -o "$c.log" "$WAVED_URL/v1alpha1/builds/$id/logs"
  hits=$(grep -c 'Using cache' "$c.log" || true)
  # "N of M base layers seeded": the embedded push skipped N of the base's M layers
  seed=$({ grep -o '[0-9]* of [0-9]* base layers seeded' "$c.log" || true; } | head -1 | awk '{print $1"/"$3}')
  echo "$(el "$t0" "$t1") $(du_b "$WAVED_DIR/data/build") $hits $(du_b "$WAVED_DIR/data") ${seed:--}"
}

echo "== build-overhead ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "base image $BASE: $((BASE_BYTES >> 20)) MiB; by hand: buildah $(buildah --version | cut -d' ' -f3) --storage-driver $DRIVER ${HAND_OPTS[*]} --layers; waved target: $TARGET"
RES=$T/results
: >"$RES"
for r in $(seq 1 "$ROUNDS"); do
  HR=$T/hand-root-$r
  mkdir -p "$HR"
  waved_start
  for case in first rebuild; do
    text="round $r $case"
    if [ $(((r + ${BO_ROUND0:-0}) % 2)) = 1 ]; then order="waved hand"; else order="hand waved"; fi
    for who in $order; do
      if [ "$who" = waved ]; then
        read -r s d h all seed < <(through_waved "$text" "r$r-$case")
      else
        read -r s d h all seed < <(by_hand "$HR" "$text" "r$r-$case")
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$who" "$s" "$d" "$h" "$all" >>"$RES"
      printf 'round %s %-7s %-5s %7ss  builder storage %5s MiB  cache hits %s%s\n' "$r" "$case" \
        "$who" "$s" "$((d >> 20))" "$h" \
        "$([ "$who" = waved ] && echo "  (all data $((all >> 20)) MiB, base layers seeded $seed)")"
    done
  done
  stop_waved
  [ -z "${BO_LOGS:-}" ] || cp "$WAVED_DIR/waved.log" "$BO_LOGS/waved-r$((r + ${BO_ROUND0:-0})).log"
  rm -rf "$HR" "$WAVED_DIR"
done
echo "medians (load $(cut -d' ' -f1-3 /proc/loadavg)):"
python3 - "$RES" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
for case in ("first", "rebuild"):
    m = {}
    for who in ("waved", "hand"):
        v = [r for r in rows if r[0] == case and r[1] == who]
        m[who] = (statistics.median(float(r[2]) for r in v),
                  statistics.median(int(r[3]) for r in v) / 2**20,
                  statistics.median(int(r[4]) for r in v))
    w, h = m["waved"], m["hand"]
    print(f"  {case:8s} waved {w[0]:6.2f} s (disk {w[1]:6.1f} MiB, cache hits {w[2]:.0f})"
          f"  by hand {h[0]:6.2f} s (disk {h[1]:6.1f} MiB, cache hits {h[2]:.0f})"
          f"  waved/hand {w[0] / h[0]:.2f}")
PY
