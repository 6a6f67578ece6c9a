#!/usr/bin/env bash
# packaging/check-deb.sh [DEB] — checks the Debian package the way a lab
# installs it (CI runs this after `make test`; run it by hand as root):
#
#   0. `make install` into a DESTDIR, twice: the files, and config.yml kept;
#   1. builds the package (`make deb`, unless a .deb is given), lintian: no errors;
#   2. installs it with apt-get (its Depends come from Debian), checks the
#      conffile, the state directory and `systemd-analyze verify` of the
#      installed unit;
#   3. starts /usr/bin/waved exactly as the unit's ExecStart does — there is no
#      systemd as PID 1 here, so this script plays its part: the unit's
#      Environment/EnvironmentFile/LimitNOFILE/UMask, a NOTIFY_SOCKET it
#      listens on, and the unit's filesystem sandbox rebuilt with mount
#      namespaces (ProtectSystem, ProtectHome, PrivateTmp,
#      ProtectKernelTunables), a scratch directory mounted on /var/lib/waved —
#      all in a private network namespace, so the installed config's
#      127.0.0.1:9090 is free and nothing leaves loopback. It waits for
#      READY=1, pulls an image through waved from a local docker-registry with
#      skopeo, builds one with buildah under the sandbox (its steps under the
#      installed job runner /usr/libexec/waved/waved-job-exec), stops waved with
#      SIGTERM (STOPPING=1, exit 0);
#   4. reinstalls over an edited config (kept), then purges and checks that
#      nothing is left, so a rerun starts clean.
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '== %s\n' "$*"; }
die() { printf 'check-deb: FAIL: %s\n' "$*" >&2; exit 1; }

# ---- stage 3, inside `unshare --net` ------------------------------------------------
if [ "${1:-}" = --run-unit ]; then
  UNIT=$2
  source "$SRC/tests/e2e/lib.sh"
  ip link set lo up
  T=$E2E_TMP

  # ExecStart, Environment= and EnvironmentFile= of the installed unit.
  exec_start=$(sed -n 's/^ExecStart=[-@:+!]*//p' "$UNIT")
  [ -n "$exec_start" ] || die "no ExecStart in $UNIT"
  read -ra ARGV <<<"$exec_start"
  nofile=$(sed -n 's/^LimitNOFILE=//p' "$UNIT")
  umask_=$(sed -n 's/^UMask=//p' "$UNIT")
  ENVV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
        STATE_DIRECTORY=/var/lib/waved INVOCATION_ID=check-deb)
  while read -r line; do
    read -ra kv <<<"$line"
    ENVV+=("${kv[@]}")
  done < <(sed -n 's/^Environment=//p' "$UNIT")
  envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$UNIT")
  if [ -n "$envfile" ] && [ -f "$envfile" ]; then
    while IFS= read -r line; do
      case "$line" in '' | '#'*) ;; *) ENVV+=("$line") ;; esac
    done <"$envfile"
  fi
  ok "unit: ExecStart is /usr/bin/waved --config /etc/waved/config.yml" \
    is "$exec_start" "/usr/bin/waved --config /etc/waved/config.yml"
  ok "unit: Type=notify" grep -qx 'Type=notify' "$UNIT"
  ok "unit: LimitNOFILE raised" test "${nofile:-0}" -ge 65536

  # A registry with busybox, as in the end-to-end tests.
  make_busybox_layout "$T/busybox"
  REG=127.0.0.1:$(start_registry up anon)
  push_layout "$T/busybox" "$REG/library/busybox:latest"
  # A registry named by an address is reached only when wave.registries lists
  # it (docs/security.md): the operator's one edit of /etc/waved/config.yml,
  # mounted over the installed file inside the unit's namespace below.
  sed "s|^  registries: {}\$|  registries: {\"$REG\": {}}|" /etc/waved/config.yml >"$T/config.yml"
  ok "the operator's edit lists the lab registry" grep -q "registries: {\"$REG\": {}}" "$T/config.yml"

  # The notify socket systemd would listen on (its own is /run/systemd/notify).
  NDIR=$(mktemp -d /run/waved-check.XXXXXX)
  STATE=$(mktemp -d /var/lib/waved-check.XXXXXX)
  chmod 0700 "$STATE"
  trap 'rm -rf "$STATE" "$NDIR"; e2e_cleanup' EXIT
  mkdir -p "$T/notify"
  $PY - "$NDIR/notify" "$T/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg.replace("\n", " ") + "\n")
PY
  echo $! >"$T/notify/notify.pid"
  for _ in $(seq 1 100); do [ -S "$NDIR/notify" ] && break; sleep 0.02; done

  # The unit's filesystem sandbox as systemd would build it, from the unit's
  # own directives (each applied only when the unit sets it), then its
  # ExecStart with its environment only:
  #   StateDirectory=waved    the scratch directory mounted on /var/lib/waved
  #   ProtectSystem=yes|full|strict  /usr, /boot, /efi (+ /etc; strict: every
  #                           mount but /dev, /proc, /sys, /run/user and the
  #                           state directory) read-only
  #   ProtectHome=yes         /home, /root, /run/user empty and read-only
  #   PrivateTmp=yes          own /tmp and /var/tmp
  #   ProtectKernelTunables=yes  /proc/sys and /sys read-only (the cgroup
  #                           mounts under /sys/fs/cgroup stay writable, as
  #                           systemd leaves them without ProtectControlGroups)
  directive() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
  cat >"$T/sandbox.sh" <<'SH'
set -e
state=$1 nofile=$2 umask_=$3 psys=$4 phome=$5 ptmp=$6 ptun=$7 cfg=$8; shift 8
ro() {
  [ -d "$1" ] || return 0
  mountpoint -q "$1" || mount --bind "$1" "$1"
  mount -o remount,bind,ro "$1"
}
mkdir -p /var/lib/waved
mount --bind "$state" /var/lib/waved
case "$psys" in
  yes | true) for d in /usr /boot /efi; do ro "$d"; done ;;
  full) for d in /usr /boot /efi /etc; do ro "$d"; done ;;
  strict)
    ro /
    for m in $(findmnt -rn -o TARGET | grep -Ev '^/(proc|sys|dev|var/lib/waved|run/user)(/|$)'); do
      [ "$m" = / ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
    done ;;
esac
# The operator's edit of the conffile, seen only inside this namespace (before
# PrivateTmp hides the file it comes from).
[ -n "$cfg" ] && mount --bind "$cfg" /etc/waved/config.yml
case "$phome" in
  yes | true) for d in /home /root /run/user; do
      [ -d "$d" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$d"
    done ;;
esac
case "$ptmp" in
  yes | true) mount -t tmpfs -o mode=1777 tmpfs /tmp; mount -t tmpfs -o mode=1777 tmpfs /var/tmp ;;
esac
case "$ptun" in
  yes | true) ro /proc/sys; mount -o remount,bind,ro /sys ;;
esac
# systemd sets LimitNOFILE as PID 1; here the hard limit may be lower and
# CAP_SYS_RESOURCE absent (a container): then take the hard limit.
ulimit -n "$nofile" 2>/dev/null || {
  echo "check-deb: cannot raise the open-files limit to $nofile here; using $(ulimit -Hn)" >&2
  ulimit -n "$(ulimit -Hn)"
}
umask "$umask_"
cd /
exec "$@" </dev/null
SH
  unshare --mount --propagation private -- bash "$T/sandbox.sh" "$STATE" "${nofile:-1024}" \
    "${umask_:-0022}" "$(directive ProtectSystem)" "$(directive ProtectHome)" \
    "$(directive PrivateTmp)" "$(directive ProtectKernelTunables)" "$T/config.yml" \
    env -i "${ENVV[@]}" NOTIFY_SOCKET="$NDIR/notify" "${ARGV[@]}" >"$T/waved.log" 2>&1 &
  WAVED_PID=$!
  E2E_PIDS+=("$WAVED_PID")
  WAVED_URL=http://127.0.0.1:9090

  ready=no
  for _ in $(seq 1 1500); do
    grep -q 'READY=1' "$T/notify.log" 2>/dev/null && { ready=yes; break; }
    kill -0 "$WAVED_PID" 2>/dev/null || break
    sleep 0.02
  done
  ok "READY=1 sent on NOTIFY_SOCKET" is "$ready" yes
  # Readiness means serving: no wait between READY=1 and the first answer.
  ok "/health answers at READY" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/health")" 200
  ok "state store opened in the StateDirectory" test -d "$STATE/state"
  if [ "$ready" != yes ]; then
    echo "--- waved log (journal) ---"; tail -40 "$T/waved.log"
    echo "--- notify ---"; cat "$T/notify.log" 2>/dev/null || true
    e2e_finish
    exit 1
  fi

  # A pull through waved.
  curl -s -o "$T/req.json" "$WAVED_URL/v1alpha2/container" -H 'Content-Type: application/json' \
    -d "{\"containerImage\":\"$REG/library/busybox:latest\",\"containerConfig\":{\"env\":[\"FROM_DEB=1\"]}}" || true
  target=$(json_get "$T/req.json" 'd["targetImage"]' 2>/dev/null || true)
  ok "container request answered" has "$target" "/wt/"
  ok "skopeo pulls through the installed waved" \
    skopeo copy --quiet --src-tls-verify=false "docker://$target" "oci:$T/pulled:latest"
  ok "pulled image carries the request's env" \
    has "$(skopeo inspect --config --tls-verify=false "docker://$target")" "FROM_DEB=1"

  # A build: buildah under the unit's sandbox, storage in the StateDirectory.
  cf=$(printf 'FROM %s/library/busybox:latest\nRUN echo built-by-the-package > /hello\n' "$REG" |
       base64 -w0)
  curl -s -o "$T/build.json" "$WAVED_URL/v1alpha2/container" -H 'Content-Type: application/json' \
    -d "{\"containerFile\":\"$cf\",\"containerPlatform\":\"linux/amd64\"}" || true
  rid=$(json_get "$T/build.json" 'd["requestId"]' 2>/dev/null || true)
  btarget=$(json_get "$T/build.json" 'd["targetImage"]' 2>/dev/null || true)
  ok "build request accepted" has "$btarget" "/wt/"
  ok "build finishes under the sandbox" wait_done "$rid" 120
  ok "build succeeded" is "$(json_get "$T/st.json" 'd.get("succeeded")' 2>/dev/null)" True
  ok "built image pulls" skopeo copy --quiet --src-tls-verify=false "docker://$btarget" \
    "oci:$T/built:latest"
  ok "the build's steps ran under the installed job runner" \
    grep -q 'jobs: step runner /usr/libexec/waved/waved-job-exec' "$T/waved.log"

  kill -TERM "$WAVED_PID"
  rc=0
  wait "$WAVED_PID" || rc=$?
  ok "SIGTERM stops waved cleanly (exit 0)" is "$rc" 0
  ok "STOPPING=1 sent" grep -q 'STOPPING=1' "$T/notify.log"
  if [ "$E2E_FAILS" -ne 0 ]; then
    echo "--- waved log (journal) ---"; tail -40 "$T/waved.log"
    echo "--- notify ---"; cat "$T/notify.log"
  fi
  e2e_finish
  exit
fi

# ---- stages 1, 2 and 4, on the machine ----------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "run as root: it installs and purges the waved package"
cd "$SRC"
export DEBIAN_FRONTEND=noninteractive
"$SRC/packaging/deps.sh" build run test package

if dpkg-query -W -f='${Status}' waved 2>/dev/null | grep -q 'ok installed'; then
  die "the waved package is already installed here; remove it first (dpkg --purge waved)"
fi
had_state=no
[ -e /var/lib/waved ] && had_state=yes
cleanup() {
  dpkg --purge waved >/dev/null 2>&1 || true
  [ "$had_state" = yes ] || rm -rf /var/lib/waved
}
trap cleanup EXIT

say "make install DESTDIR=... twice: files in place, an existing config.yml kept"
stage=$(mktemp -d /tmp/waved-install.XXXXXX)
make --no-print-directory install DESTDIR="$stage" >"$stage.log" 2>&1 || { tail -20 "$stage.log"; die "make install"; }
echo "# edited" >>"$stage/etc/waved/config.yml"
make --no-print-directory install DESTDIR="$stage" >"$stage.log" 2>&1 || { tail -20 "$stage.log"; die "make install"; }
for f in usr/local/bin/waved usr/local/libexec/waved/waved-job-exec \
  usr/local/lib/systemd/system/waved.service etc/waved/config.yml.dist \
  usr/local/share/man/man8/waved.8 usr/local/share/doc/waved/operations.md; do
  [ -f "$stage/$f" ] || die "make install: no $f"
done
tail -1 "$stage/etc/waved/config.yml" | grep -qx '# edited' || die "make install replaced config.yml"
grep -qx 'ExecStart=/usr/local/bin/waved --config /etc/waved/config.yml' \
  "$stage/usr/local/lib/systemd/system/waved.service" || die "make install: ExecStart"
rm -rf "$stage" "$stage.log"

deb=${1:-}
if [ -z "$deb" ]; then
  say "make deb"
  make --no-print-directory deb >out-deb.log 2>&1 || { tail -40 out-deb.log; die "make deb"; }
  mv out-deb.log out-deb/build.log
  deb=$(ls out-deb/waved_*.deb)
fi
deb=$(realpath "$deb")
say "lintian $deb"
lintian --fail-on error --display-level '>=warning' "$deb" || die "lintian reports errors"

say "apt-get install $deb"
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$deb" </dev/null
unit=$(dpkg -L waved | grep '/systemd/system/waved.service$')
[ -n "$unit" ] || die "no waved.service in the package"
dpkg-query -W -f='${Conffiles}\n' waved | grep -q '^ /etc/waved/config.yml ' ||
  die "/etc/waved/config.yml is not a conffile"
[ "$(stat -c %a /var/lib/waved)" = 700 ] || die "postinst did not create /var/lib/waved 0700"
grep -q '^  path: /var/lib/waved$' /etc/waved/config.yml || die "installed config: storage.path"
/usr/bin/waved --version
# The job runner (docs/jobs.md): installed, libc only.
[ -x /usr/libexec/waved/waved-job-exec ] || die "no /usr/libexec/waved/waved-job-exec"
ldd /usr/libexec/waved/waved-job-exec | grep -Ev 'linux-vdso|libc\.so|ld-linux' | grep . &&
  die "waved-job-exec needs more than libc"
say "systemd-analyze verify $unit"
systemd-analyze verify "$unit" || die "systemd-analyze verify $unit"

say "run waved as $unit does"
unshare --net -- "$SRC/packaging/check-deb.sh" --run-unit "$unit" || die "running the unit"

say "reinstall over an edited config: the conffile is kept"
echo "# edited by check-deb" >>/etc/waved/config.yml
dpkg -i "$deb" </dev/null >/dev/null
tail -1 /etc/waved/config.yml | grep -qx '# edited by check-deb' || die "reinstall replaced the config"

say "purge"
dpkg --purge waved >/dev/null
for f in /usr/bin/waved /usr/libexec/waved "$unit" /etc/waved/config.yml; do
  [ ! -e "$f" ] || die "$f left after purge"
done
echo "check-deb: all checks passed"
