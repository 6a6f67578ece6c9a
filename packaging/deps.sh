#!/usr/bin/env bash
# packaging/deps.sh SET... — makes sure the Debian 12 packages a target needs
# are installed. As root it installs what is missing with apt-get; otherwise it
# prints the apt-get line to run and fails, so nothing half-builds.
# Sets: build (compile waved), test (end-to-end components), bench (load tools
# and the servers bench/pull-load.sh starts), fuzz (clang and libFuzzer for `make fuzz`).
set -euo pipefail

build=(build-essential cmake pkg-config git libuv1-dev libcurl4-openssl-dev libjson-c-dev
       liblmdb-dev libssl-dev libyaml-dev libzstd-dev zlib1g-dev node-llhttp)
test=(curl python3 openssl docker-registry skopeo containerd apache2-utils busybox-static
      buildah runc)
bench=(wrk nginx-light linux-perf curl python3 docker-registry skopeo busybox-static
       buildah runc iproute2)
fuzz=(clang-14 libclang-rt-14-dev)

want=()
for set in "$@"; do
  case "$set" in
    build) want+=("${build[@]}") ;;
    test) want+=("${test[@]}") ;;
    bench) want+=("${bench[@]}") ;;
    fuzz) want+=("${fuzz[@]}") ;;
    *) echo "deps.sh: unknown set '$set'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
