#!/usr/bin/env bash
# packaging/deps.sh SET... — makes sure the Debian 12 packages a target needs
# are installed. As root it installs what is missing with apt-get; otherwise it
# prints the apt-get line to run and fails, so nothing half-builds.
# Sets: build (compile waved), run (what waved needs at run time on its
# defaults: the buildah builder and the runc runtime it is configured with),
# test (end-to-end components), bench (load tools and the servers
# bench/pull-load.sh starts), package (make deb and packaging/check-deb.sh),
# fuzz (clang and libFuzzer for `make fuzz`).
set -euo pipefail

build=(build-essential cmake pkg-config git libuv1-dev libcurl4-openssl-dev libjson-c-dev
       liblmdb-dev libssl-dev libyaml-dev libzstd-dev zlib1g-dev node-llhttp
       libsystemd-dev)
# hiredis: the Redis state backend (state.backend: redis, docs/scale-out.md).
build+=(libhiredis-dev)
# buildah's Recommends (runc) are skipped by --no-install-recommends; the default
# wave.build.buildah.build template names /usr/sbin/runc, so it is listed here.
# qemu-user-static + binfmt-support run the RUN steps of foreign-arch builds
# (docs/builds.md). squashfs-tools (mksquashfs) and skopeo make and push the SIF
# of format: sif builds (docs/singularity.md).
run=(buildah runc qemu-user-static binfmt-support squashfs-tools skopeo)
# debootstrap (+ the archive keyring it verifies with) makes the R base image of
# tests/e2e/cran.sh from Debian's mirror, once; tests/fixtures/cran/r-base.sh caches it.
test=(curl python3 openssl docker-registry skopeo containerd apache2-utils busybox-static
      buildah runc podman squashfs-tools debootstrap debian-archive-keyring)
# tests/e2e/metrics.sh scrapes waved with a real Prometheus; the view tests render in
# headless Chromium (docs/operations.md).
test+=(prometheus chromium)
# make deb and packaging/check-deb.sh: build the .deb, check it, run it.
package=(debhelper dpkg-dev lintian systemd iproute2 util-linux curl python3
         docker-registry skopeo busybox-static buildah runc)
bench=(wrk nginx-light linux-perf curl python3 docker-registry skopeo busybox-static
       buildah runc iproute2)
# bench/pull-load.sh PL_STRACE: strace -c -f of waved during a named run.
bench+=(strace)
fuzz=(clang-14 libclang-rt-14-dev)
# test_store_redis and tests/e2e/redis.sh start their own redis-server (redis-cli from redis-tools).
test+=(redis-server redis-tools)
# bench/cluster.sh runs a redis-server and three instances behind nginx.
bench+=(redis-server redis-tools)
# tests/e2e/cluster.sh puts three instances behind nginx (round robin).
test+=(nginx-light)
# clang-format: tools/check-format.sh (ctest check_format, .ci/run) checks every C file.
test+=(clang-format)

want=()
for set in "$@"; do
  case "$set" in
    build) want+=("${build[@]}") ;;
    run) want+=("${run[@]}") ;;
    test) want+=("${test[@]}") ;;
    bench) want+=("${bench[@]}") ;;
    package) want+=("${package[@]}") ;;
    fuzz) want+=("${fuzz[@]}") ;;
    *) echo "deps.sh: unknown set '$set'" >&2; exit 2 ;;
  esac
done

# qemu-user-static registers its interpreters with binfmt_misc; where the postinst
# could not (no init system, binfmt_misc not mounted yet) enable them now.
binfmt() {
  [[ " ${want[*]} " == *" qemu-user-static "* ]] || return 0
  command -v update-binfmts >/dev/null || return 0
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: foreign-arch RUN steps need: sudo update-binfmts --enable" >&2
    return 0
  fi
  update-binfmts --enable >/dev/null 2>&1 ||
    echo "deps.sh: update-binfmts --enable failed; foreign-arch RUN steps will not run" >&2
}

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && { binfmt; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages. Install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Several builds may run deps.sh at once: wait for dpkg's lock instead of failing.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
binfmt
