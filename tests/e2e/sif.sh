#!/usr/bin/env bash
# tests/e2e/sif.sh — Singularity builds (format: sif, docs/singularity.md)
# with buildah, mksquashfs and skopeo against two docker-registry instances:
# the source anonymous (a busybox image with every applet), the target
# behind htpasswd Basic auth whose credentials waved reads from
# wave.registries. No singularity exists here, so every SIF is checked by
# reading it: `waved sif inspect`, an independent reader written below in
# Python (standard library) that parses the header and descriptors and
# extracts the partition, `unsquashfs` on that partition, and the
# /.singularity.d scripts run under chroot as `singularity run` would run
# them. Cases: a definition with %files (from the build context), %post,
# %environment, %runscript, %labels, %help; a freeze of an image with a
# containerConfig (a data: layer, env, entrypoint); Wave's validation
# messages; bad definitions (400, nothing left behind); a failing %post;
# an identical request (cached); the plain HTTP download of the SIF; a
# freeze with no buildRepository into the embedded registry, pulled by name
# (oras://<waved>/wave/freeze:<tag>) while it builds. Every ORAS pull is
# also made as `singularity pull oras://` makes it, by oras_pull.py
# (Basic, Bearer and no authentication; digests verified). `Bootstrap: oras`
# builds on the first SIF (base files, runscript, env and labels merged), and
# a missing base fails the build with its reason.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for c in buildah skopeo mksquashfs unsquashfs; do
  command -v "$c" >/dev/null || { echo "skip: $c not installed"; exit 0; }
done
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (chroot checks, buildah)"; exit 0; }
T=$E2E_TMP
USER_=sif-user
PASS_=sif-pass-42
CREDS="$USER_:$PASS_"

# ---- a busybox image with every applet, Entrypoint ["/bin/sh","-c"] -------------------
make_full_busybox() { # DIR
  local lay=$1 work="$1/.work"
  new_layout "$lay"
  mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
  chmod 1777 "$work/rootfs/tmp"
  cp /bin/busybox "$work/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$work/rootfs/etc/passwd"
  echo 'root:x:0:' >"$work/rootfs/etc/group"
  echo '127.0.0.1 build-time-host' >"$work/rootfs/etc/hosts"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/rootfs" -cf "$work/layer.tar" .
  local diff; diff=$(sha256 "$work/layer.tar")
  gzip -n -c "$work/layer.tar" >"$work/layer.tgz"
  local lsize; lsize=$(stat -c %s "$work/layer.tgz")
  local layer; layer=$(put_blob "$lay" "$work/layer.tgz")
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh","-c"],"Env":["PATH=/bin:/usr/bin","IMGVAR=from image"],"Cmd":["echo image-cmd"],"Labels":{"img.label":"yes"}},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"e2e"}]}' \
    "$diff" >"$work/config.json"
  local csize; csize=$(stat -c %s "$work/config.json")
  local config; config=$(put_blob "$lay" "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$csize" "$layer" "$lsize" >"$work/manifest.json"
  local msize; msize=$(stat -c %s "$work/manifest.json")
  local man; man=$(put_blob "$lay" "$work/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$man" "$msize" >"$lay/index.json"
  rm -rf "$work"
}

make_full_busybox "$T/busybox"
SRC=127.0.0.1:$(start_registry src anon)
DST=127.0.0.1:$(start_registry dst basic "$USER_" "$PASS_")
push_layout "$T/busybox" "$SRC/library/busybox:latest"
log "source $SRC (anon), target $DST (basic)"

# wave.server.url names this waved, so an embedded target (oras://<authority>/wave/freeze:<tag>) is pullable as given.
WAVED_NEXT_PORT=$(free_port)
start_waved "wave:
  server: {url: 'http://127.0.0.1:$WAVED_NEXT_PORT'}
  registries:
    '$SRC': {insecure: true}
    '$DST': {username: $USER_, password: $PASS_, insecure: true,
             allow: {anonymous: push}}
  build: {context: {max-file-size: 256KiB}}"

post() { # BODY OUT — POST /v1alpha2/container; prints the status
  curl -s -o "$2" -w '%{http_code}' -H 'Content-Type: application/json' -X POST \
    --data-binary "$1" "$WAVED_URL/v1alpha2/container"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }
msg() { field "$1" 'd["message"]'; }
b64() { printf '%s' "$1" | base64 -w0; }

# ---- the independent reader (Python, standard library) --------------------------------------
cat >"$T/sifread.py" <<'PY'
# sifread.py FILE OUTDIR — parses a SIF's header and descriptors as the sylabs
# sif library lays them out, checks them, writes each object to OUTDIR
# (partition.sqfs, deffile, <json name>) and prints a summary line per object.
import struct, sys
f = open(sys.argv[1], "rb").read()
out = sys.argv[2]
launch, magic, ver, arch, uid, ctime, mtime, dfree, dtotal, descroff, descrsize, dataoff, datasize = \
    struct.unpack_from("<32s10s3s3s16sqqqqqqqq", f, 0)
assert launch.rstrip(b"\0") == b"#!/usr/bin/env run-singularity\n", launch
assert magic == b"SIF_MAGIC\0" and ver == b"01\0", (magic, ver)
assert (dtotal, descroff, descrsize, dataoff) == (48, 4096, 48 * 585, 32176)
assert dataoff + datasize == len(f), "datasize must end at EOF"
used, prim, pos = 0, 0, dataoff
for i in range(dtotal):
    d = f[descroff + i * 585: descroff + (i + 1) * 585]
    t, u, oid, gid, link, off, size, swp, ct, mt, uid_, gid_, name, extra = \
        struct.unpack("<i?IIIqqqqqqq128s384s", d)
    if not u:
        assert d == bytes(585), "unused slot not zero"
        continue
    used += 1
    assert oid == i + 1 and gid == 0xF0000001 and link == 0, (oid, gid, link)
    assert off >= pos and swp == size + (off - pos), ("layout", off, pos, swp)
    name = name.rstrip(b"\0").decode()
    if t == 0x4004:
        fstype, parttype, parch = struct.unpack_from("<ii3s", extra)
        assert fstype == 1 and parttype == 2 and parch == arch and off % 4096 == 0
        assert f[off:off + 4] == b"hsqs"
        prim += 1
        fn = "partition.sqfs"
    elif t == 0x4001:
        fn = "deffile"
    else:
        assert t == 0x4006, hex(t)
        fn = name
    open(out + "/" + fn, "wb").write(f[off:off + size])
    print("object %d type 0x%x %s %d bytes at %d" % (oid, t, name or fn, size, off))
    pos = off + size
assert used == 4 and dfree == dtotal - used and prim == 1, (used, dfree, prim)
assert pos == len(f)
print("arch %s ok" % arch.rstrip(b"\0").decode())
PY

# pull_sif REF OUTFILE — the ORAS artifact's manifest (skopeo), then its one layer (curl).
pull_sif() {
  local repo=${1%:*} tag=${1##*:}
  skopeo inspect --raw --tls-verify=false --creds "$CREDS" "docker://$1" >"$2.manifest"
  local dig; dig=$(json_get "$2.manifest" 'd["layers"][0]["digest"]')
  curl -sf -u "$CREDS" -o "$2" "http://$DST/v2/${repo#*/}/blobs/$dig"
}
# check_sif SIF DIR — waved sif inspect + the Python reader + unsquashfs into DIR/rootfs.
check_sif() {
  mkdir -p "$2"
  "$WAVED_BIN" sif inspect "$1" >"$2/inspect.txt" 2>&1 && grep -q 'verified: ok' "$2/inspect.txt" &&
    $PY "$T/sifread.py" "$1" "$2" >"$2/read.txt" &&
    unsquashfs -no-progress -d "$2/rootfs" "$2/partition.sqfs" >/dev/null
}

# ---- 1. a definition file with a build context ----------------------------------------------
mkdir -p "$T/ctx/data/sub"
echo "hello from the context" >"$T/ctx/hello.txt"
echo "nested" >"$T/ctx/data/sub/n.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/ctx" -cf "$T/ctx.tar" .
gzip -n -c "$T/ctx.tar" >"$T/ctx.tgz"
CTX="{\"location\":\"data:$(base64 -w0 "$T/ctx.tgz")\",\"tarDigest\":\"sha256:$(sha256 "$T/ctx.tar")\"}"
DEF="Bootstrap: docker
From: $SRC/library/busybox:latest

%files
    hello.txt /opt/hello.txt
    {{wave_context_dir}}/data /opt/
%post
    echo \"posted by %post\" > /posted
    echo 'export POSTVAR=\"set in post\"' >> \$SINGULARITY_ENVIRONMENT
    echo \"IMGVAR during post: \$IMGVAR\"
%environment
    export DEFVAR=\"from environment\"
%runscript
    echo \"runscript args: \$*\"
    echo \"DEFVAR=\$DEFVAR POSTVAR=\$POSTVAR IMGVAR=\$IMGVAR\"
%labels
    Author tester@example.com
    Version 1.2 beta
%help
    This is the help.
"
BODY1="{\"containerFile\":\"$(b64 "$DEF")\",\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/tool\",\"buildContext\":$CTX}"
ok "definition: 200" is "$(post "$BODY1" "$T/r1.json")" 200
TI1=$(field "$T/r1.json" 'd["targetImage"]')
ID1=$(field "$T/r1.json" 'd["buildId"]')
RID1=$(field "$T/r1.json" 'd["requestId"]')
ok "definition: targetImage is oras://<buildRepository>:<16 hex>" \
  bash -c "[[ '$TI1' =~ ^oras://$DST/sif/tool:[0-9a-f]{16}$ ]]"
ok "definition: containerImage = targetImage" is "$(field "$T/r1.json" 'd["containerImage"]')" "$TI1"
ok "definition: no scanId" is "$(field "$T/r1.json" 'd.get("scanId")')" None
ok "definition: build finishes" wait_done "$RID1" 300
ok "definition: status succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
if [ "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" != True ]; then
  curl -s "$WAVED_URL/v1alpha1/builds/$ID1/logs" | tail -40 >&2
fi
curl -s -o "$T/b1.json" "$WAVED_URL/v1alpha1/builds/$ID1"
ok "build record: format SINGULARITY" is "$(field "$T/b1.json" 'd["format"]')" SINGULARITY
ok "build record: targetImage oras://" is "$(field "$T/b1.json" 'd["targetImage"]')" "$TI1"
ok "build record: digest is the manifest's" bash -c "[[ '$(field "$T/b1.json" 'd["digest"]')' =~ ^sha256:[0-9a-f]{64}$ ]]"
curl -s "$WAVED_URL/v1alpha1/builds/$ID1/logs" >"$T/log1.txt"
ok "build log: %post traced (sh -x)" grep -q '+ echo' "$T/log1.txt"
ok "build log: image ENV visible during %post" grep -q 'IMGVAR during post: from image' "$T/log1.txt"
ok "build log: the SIF was written" grep -q 'wrote image.sif' "$T/log1.txt"

REF1=${TI1#oras://}
pull_sif "$REF1" "$T/one.sif"
M="$T/one.sif.manifest"
ok "ORAS manifest: OCI manifest type" is "$(field "$M" 'd["mediaType"]')" application/vnd.oci.image.manifest.v1+json
ok "ORAS manifest: config type and {} digest" \
  is "$(field "$M" 'd["config"]["mediaType"]+" "+d["config"]["digest"]+" "+str(d["config"]["size"])')" \
  "application/vnd.sylabs.sif.config.v1+json sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a 2"
ok "ORAS manifest: one SIF layer titled image.sif" \
  is "$(field "$M" 'str(len(d["layers"]))+" "+d["layers"][0]["mediaType"]+" "+d["layers"][0]["annotations"]["org.opencontainers.image.title"]')" \
  "1 application/vnd.sylabs.sif.layer.v1.sif image.sif"
ok "ORAS layer: size and sha256 of the SIF" \
  is "$(stat -c %s "$T/one.sif") sha256:$(sha256 "$T/one.sif")" "$(field "$M" 'str(d["layers"][0]["size"])+" "+d["layers"][0]["digest"]')"
ok "build record digest = the pushed manifest's" \
  is "$(field "$T/b1.json" 'd["digest"]')" "sha256:$(sha256 "$M")"
ok "SIF: waved sif inspect, Python reader, unsquashfs" check_sif "$T/one.sif" "$T/one"
R=$T/one/rootfs
ok "SIF: header arch amd64 (02)" grep -q '^arch: 02$' "$T/one/inspect.txt"
ok "SIF: JSON objects inspect-metadata.json, oci-config.json" \
  bash -c "grep -q 'inspect-metadata.json' '$T/one/read.txt' && grep -q 'oci-config.json' '$T/one/read.txt'"
ok "SIF: deffile object is the definition from Bootstrap on" \
  is "$(head -c 17 "$T/one/deffile")" "Bootstrap: docker"
ok "SIF: oci-config.json is the image config" has "$(cat "$T/one/oci-config.json")" '"Entrypoint":["/bin/sh","-c"]'
ok "%files: a file" is "$(cat "$R/opt/hello.txt")" "hello from the context"
ok "%files: a directory into a destination ending in /" is "$(cat "$R/opt/data/sub/n.txt")" nested
ok "%post: ran in the image as root" is "$(cat "$R/posted")" "posted by %post"
ok "%post: script removed" bash -c "[ ! -e '$R/.post.script' ]"
ok "%environment: in 90-environment.sh" grep -q 'export DEFVAR="from environment"' "$R/.singularity.d/env/90-environment.sh"
ok "\$SINGULARITY_ENVIRONMENT: 91-environment.sh" grep -q 'POSTVAR' "$R/.singularity.d/env/91-environment.sh"
ok "image ENV: 10-docker2singularity.sh" \
  bash -c "grep -qx 'export PATH=\"/bin:/usr/bin\"' '$R/.singularity.d/env/10-docker2singularity.sh' && grep -qx 'export IMGVAR=\"\${IMGVAR:-\"from image\"}\"' '$R/.singularity.d/env/10-docker2singularity.sh'"
ok "runscript: mode 0755" is "$(stat -c %a "$R/.singularity.d/runscript")" 755
ok "labels.json: %labels, image labels, build labels" \
  is "$($PY -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l["Author"], l["Version"], l["img.label"], l["org.label-schema.usage.singularity.deffile.bootstrap"], l["org.label-schema.usage"])' "$R/.singularity.d/labels.json")" \
  "tester@example.com 1.2 beta yes docker /.singularity.d/runscript.help"
ok "%help: runscript.help" grep -q 'This is the help.' "$R/.singularity.d/runscript.help"
ok "Singularity: the definition" grep -q '^%runscript' "$R/.singularity.d/Singularity"
ok "run-time files: empty /etc/hosts, mount points, /singularity link" \
  bash -c "[ ! -s '$R/etc/hosts' ] && [ -d '$R/proc' ] && [ -d '$R/var/tmp' ] && [ \"\$(readlink '$R/singularity')\" = .singularity.d/runscript ]"
ok "inspect-metadata.json: labels and runscript" \
  is "$($PY -c 'import json,sys; a=json.load(open(sys.argv[1]))["data"]["attributes"]; print(a["labels"]["Author"], "runscript args" in a["runscript"])' "$T/one/inspect-metadata.json")" \
  "tester@example.com True"
# What `singularity run IMAGE a b` runs: the run action (env scripts, then the runscript).
RUN1=$(chroot "$R" /.singularity.d/actions/run a b 2>&1 || true)
ok "singularity run: runscript with its arguments" has "$RUN1" "runscript args: a b"
ok "singularity run: env of %environment, %post and the image" \
  has "$RUN1" "DEFVAR=from environment POSTVAR=set in post IMGVAR=from image"

# ---- the pull through waved's /v2 (what singularity pull oras://<waved>/wt/<token>/... asks) -----
WT1="127.0.0.1:$WAVED_PORT/wt/$RID1/${REF1#*/}"
ok "pull through waved: the ORAS manifest, byte for byte" \
  cmp -s <(skopeo inspect --raw --tls-verify=false "docker://$WT1") "$M"
LD=$(field "$M" 'd["layers"][0]["digest"]')
CD=$(field "$M" 'd["config"]["digest"]')
ok "pull through waved: the config blob {}" \
  is "$(curl -s "$WAVED_URL/v2/wt/$RID1/$(echo "${REF1#*/}" | sed 's/:.*//')/blobs/$CD")" '{}'
ok "pull through waved: the SIF blob" \
  is "$(curl -s "$WAVED_URL/v2/wt/$RID1/$(echo "${REF1#*/}" | sed 's/:.*//')/blobs/$LD" | sha256sum | cut -d' ' -f1)" "$(sha256 "$T/one.sif")"

# ---- what singularity pull oras:// does, step by step (tests/e2e/oras_pull.py) ----------------
ORAS="$(dirname "${BASH_SOURCE[0]}")/oras_pull.py"
oras_pull() { # REF OUT [USER PASS] — the pull; its log in OUT.log
  $PY "$ORAS" "$@" >"$2.log" 2>&1 || { cat "$2.log" >&2; return 1; }
}
ok "oras pull: the build repository (Basic), the SIF verified" oras_pull "$REF1" "$T/one.oras.sif" "$USER_" "$PASS_"
ok "oras pull: Basic challenge, OCI manifest, config and layer types, title" bash -c "
  grep -q '^ping: 401 Basic' '$T/one.oras.sif.log' &&
  grep -q '^manifest: application/vnd.oci.image.manifest.v1+json sha256:$(sha256 "$M")' '$T/one.oras.sif.log' &&
  grep -q '^config: application/vnd.sylabs.sif.config.v1+json 2 bytes' '$T/one.oras.sif.log' &&
  grep -q '^layer: application/vnd.sylabs.sif.layer.v1.sif .*title image.sif' '$T/one.oras.sif.log'"
ok "oras pull: through waved's /v2 (wt/<token>), the same SIF" \
  bash -c "$PY '$ORAS' '$WT1' '$T/one.wt.sif' >'$T/one.wt.log' 2>&1 && grep -q '^ping: 200' '$T/one.wt.log' && cmp -s '$T/one.wt.sif' '$T/one.sif' || { cat '$T/one.wt.log' >&2; false; }"
TOK=127.0.0.1:$(start_registry tok token "$USER_" "$PASS_")
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --src-creds "$CREDS" --dest-creds "$CREDS" \
  --preserve-digests "docker://$REF1" "docker://$TOK/sif/tool:copied" >/dev/null 2>&1
ok "oras pull: a token-auth registry (Bearer flow), the same SIF" \
  bash -c "$PY '$ORAS' '$TOK/sif/tool:copied' '$T/one.tok.sif' '$USER_' '$PASS_' >'$T/one.tok.log' 2>&1 && grep -q '^ping: 401 Bearer' '$T/one.tok.log' && cmp -s '$T/one.tok.sif' '$T/one.sif' || { cat '$T/one.tok.log' >&2; false; }"
ok "oras pull: a corrupted layer is refused (digest verified)" bash -c "
  printf X | dd of='$(ls -d "$E2E_TMP"/reg-tok/data)/docker/registry/v2/blobs/sha256/${LD:7:2}/${LD#sha256:}/data' bs=1 seek=40000 conv=notrunc 2>/dev/null &&
  ! $PY '$ORAS' '$TOK/sif/tool:copied' '$T/bad.sif' '$USER_' '$PASS_' >'$T/bad.log' 2>&1 && grep -q 'FAIL: blob $LD' '$T/bad.log'"

# ---- plain HTTP download (beyond Wave) ----------------------------------------------------------
DL="$WAVED_URL/v1alpha1/builds/$ID1/sif"
ok "download: 200, the same bytes as the ORAS layer" \
  is "$(curl -s -o "$T/dl.sif" -w '%{http_code}' "$DL") $(sha256 "$T/dl.sif")" "200 $(sha256 "$T/one.sif")"
curl -s -D "$T/dl.h" -o /dev/null "$DL"
ok "download: Content-Length and digest headers" \
  bash -c "grep -qi '^content-length: $(stat -c %s "$T/one.sif")' '$T/dl.h' && grep -qi '^docker-content-digest: sha256:$(sha256 "$T/one.sif")' '$T/dl.h' && grep -qi '^accept-ranges: bytes' '$T/dl.h'"
ok "download: a range (206, Content-Range)" \
  is "$(curl -s -r 32-40 -D "$T/r.h" "$DL") $(grep -i '^content-range' "$T/r.h" | tr -d '\r')" \
  "SIF_MAGIC Content-Range: bytes 32-40/$(stat -c %s "$T/one.sif")"
ok "download: a resumed download (curl -C -) completes the file" bash -c "
  head -c 1000 '$T/one.sif' >'$T/part.sif' && curl -s -C - -o '$T/part.sif' '$DL' &&
  cmp -s '$T/part.sif' '$T/one.sif'"
ok "download: unsatisfiable range 416" is "$(curl -s -o /dev/null -w '%{http_code}' -r 999999999- "$DL")" 416
ok "download: unknown build 404" is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v1alpha1/builds/bd-nope_1/sif")" 404

# ---- 2. an identical request: cached ------------------------------------------------------------
ok "identical request: 200" is "$(post "$BODY1" "$T/r1b.json")" 200
ok "identical request: cached, same build, same target" \
  is "$(field "$T/r1b.json" 'str(d["cached"])+" "+d["buildId"]+" "+d["targetImage"]')" "True $ID1 $TI1"

# ---- 3. freeze of an image with a containerConfig -------------------------------------------------
mkdir -p "$T/lay/etc"
echo "added by a frozen layer" >"$T/lay/etc/frozen.txt"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/lay" -cf "$T/lay.tar" .
gzip -n -c "$T/lay.tar" >"$T/lay.tgz"
LAYER="{\"location\":\"data:$(base64 -w0 "$T/lay.tgz")\",\"gzipDigest\":\"sha256:$(sha256 "$T/lay.tgz")\",\"gzipSize\":$(stat -c %s "$T/lay.tgz"),\"tarDigest\":\"sha256:$(sha256 "$T/lay.tar")\"}"
CC="{\"layers\":[$LAYER],\"env\":[\"FROZEN=yes\"],\"entrypoint\":[\"/bin/echo\",\"frozen entry\"],\"cmd\":[\"ignored\"],\"workingDir\":\"/ignored\"}"
BODY2="{\"containerImage\":\"$SRC/library/busybox:latest\",\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/frozen\",\"containerConfig\":$CC}"
ok "freeze: 200" is "$(post "$BODY2" "$T/r2.json")" 200
TI2=$(field "$T/r2.json" 'd["targetImage"]')
RID2=$(field "$T/r2.json" 'd["requestId"]')
REF2=${TI2#oras://}
# A pull through waved issued while the build runs waits for it (parked), then gets the manifest.
skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$WAVED_PORT/wt/$RID2/${REF2#*/}" \
  >"$T/parked.json" 2>"$T/parked.err" &
PARKED=$!
ok "freeze: oras:// target" bash -c "[[ '$TI2' =~ ^oras://$DST/sif/frozen:[0-9a-f]{16}$ ]]"
ok "freeze: build finishes" wait_done "$(field "$T/r2.json" 'd["requestId"]')" 300
ok "freeze: succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
ID2=$(field "$T/r2.json" 'd["buildId"]')
curl -s -o "$T/b2.json" "$WAVED_URL/v1alpha1/builds/$ID2"
ok "freeze: the definition Wave generates" \
  has "$(field "$T/b2.json" 'd["dockerFile"]')" "BootStrap: docker
From: $SRC/library/busybox:latest
%environment
  export WAVE_ENTRY_CHAIN=\"/bin/sh -c\"
%files
  {{wave_context_dir}}/layer-"
pull_sif "${TI2#oras://}" "$T/two.sif"
wait "$PARKED" || true
ok "pull while building: waited, then the pushed manifest" \
  bash -c "cmp -s '$T/parked.json' '$T/two.sif.manifest' || { cat '$T/parked.err' >&2; false; }"
ok "freeze SIF: waved sif inspect, Python reader, unsquashfs" check_sif "$T/two.sif" "$T/two"
R2=$T/two/rootfs
ok "freeze: the layer's file" is "$(cat "$R2/etc/frozen.txt")" "added by a frozen layer"
RUN2=$(chroot "$R2" /.singularity.d/actions/run extra 2>&1 || true)
ok "freeze: runscript is the entrypoint (arguments dropped, as Wave)" is "$RUN2" "frozen entry"
ok "freeze: env and WAVE_ENTRY_CHAIN" \
  is "$(chroot "$R2" /.singularity.d/actions/exec /bin/sh -c 'echo $FROZEN $WAVE_ENTRY_CHAIN')" "yes /bin/sh -c"

# ---- 3b. a freeze with no buildRepository (wave.build.repo is empty): the embedded registry ------
EMB="Bootstrap: docker
From: $SRC/library/busybox:latest
%post
    echo \"embedded %post\" > /embedded
    sleep 3
%runscript
    echo \"embedded runscript \$*\"
"
BODY4="{\"containerFile\":\"$(b64 "$EMB")\",\"format\":\"sif\",\"freeze\":true}"
ok "embedded: 200" is "$(post "$BODY4" "$T/r4.json")" 200
TI4=$(field "$T/r4.json" 'd["targetImage"]')
RID4=$(field "$T/r4.json" 'd["requestId"]')
ID4=$(field "$T/r4.json" 'd["buildId"]')
REF4=${TI4#oras://}
log "embedded target $TI4"
# What singularity pull oras://<waved>/wave/freeze:<tag> does, issued while the build runs (its
# %post sleeps 3 s, so the build is still running at the check 1 s on; a base already cached made
# it end sooner under make test-tsan).
$PY "$ORAS" "$REF4" "$T/four.sif" >"$T/four.log" 2>&1 &
PULL4=$!
ok "embedded: targetImage oras://<waved>/wave/freeze:<16 hex>" \
  bash -c "[[ '$TI4' =~ ^oras://127\.0\.0\.1:$WAVED_PORT/wave/freeze:[0-9a-f]{16}$ ]]"
ok "embedded: containerImage = targetImage" is "$(field "$T/r4.json" 'd["containerImage"]')" "$TI4"
sleep 1
curl -s -o "$T/st4.json" "$WAVED_URL/v1alpha2/container/$RID4/status"
ok "embedded: a pull by name during the build waits (parked)" \
  is "$(kill -0 "$PULL4" 2>/dev/null && echo waiting) $(field "$T/st4.json" 'd["status"]')" "waiting BUILDING"
ok "embedded: build finishes" wait_done "$RID4" 300
ok "embedded: succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
wait "$PULL4" || true
ok "embedded: the parked ORAS pull got the SIF, verified" \
  bash -c "grep -q '^sif: ok' '$T/four.log' || { cat '$T/four.log' >&2; false; }"
skopeo inspect --raw --tls-verify=false "docker://$REF4" >"$T/four.manifest"
M4="$T/four.manifest"
ok "embedded: ORAS manifest as singularity push writes it" \
  is "$(field "$M4" 'd["mediaType"]+" "+d["config"]["mediaType"]+" "+d["config"]["digest"]+" "+str(len(d["layers"]))+" "+d["layers"][0]["mediaType"]+" "+d["layers"][0]["annotations"]["org.opencontainers.image.title"]')" \
  "application/vnd.oci.image.manifest.v1+json application/vnd.sylabs.sif.config.v1+json sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a 1 application/vnd.sylabs.sif.layer.v1.sif image.sif"
ok "embedded: layer size and digest are the SIF's" \
  is "$(stat -c %s "$T/four.sif") sha256:$(sha256 "$T/four.sif")" "$(field "$M4" 'str(d["layers"][0]["size"])+" "+d["layers"][0]["digest"]')"
ok "embedded: the pull saw that manifest" grep -q "^manifest: application/vnd.oci.image.manifest.v1+json sha256:$(sha256 "$M4")" "$T/four.log"
curl -s -o "$T/b4.json" "$WAVED_URL/v1alpha1/builds/$ID4"
ok "embedded: build record SINGULARITY, oras:// target, the manifest's digest" \
  is "$(field "$T/b4.json" 'd["format"]+" "+d["targetImage"]+" "+str(d.get("digest"))')" "SINGULARITY $TI4 sha256:$(sha256 "$M4")"
ok "embedded: SIF checked (waved sif inspect, Python reader, unsquashfs)" check_sif "$T/four.sif" "$T/four"
ok "embedded: %post ran" is "$(cat "$T/four/rootfs/embedded")" "embedded %post"
ok "embedded: singularity run" is "$(chroot "$T/four/rootfs" /.singularity.d/actions/run x y 2>&1)" "embedded runscript x y"
ok "embedded: the HTTP download is the same file" \
  is "$(curl -s "$WAVED_URL/v1alpha1/builds/$ID4/sif" | sha256sum | cut -d' ' -f1)" "$(sha256 "$T/four.sif")"
ok "embedded: through the token too (wt/<token>)" \
  cmp -s <(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$WAVED_PORT/wt/$RID4/${REF4#*/}") "$M4"
ok "embedded: identical request cached" \
  is "$(post "$BODY4" "$T/r4b.json") $(field "$T/r4b.json" 'str(d["cached"])+" "+d["buildId"]')" "200 True $ID4"
ok "embedded: an unknown tag is 404 MANIFEST_UNKNOWN" \
  is "$(curl -s -o "$T/u.json" -w '%{http_code}' "$WAVED_URL/v2/wave/freeze/manifests/0123456789abcdef") $(field "$T/u.json" 'd["errors"][0]["code"]')" "404 MANIFEST_UNKNOWN"
ok "embedded: tags are not listed (403)" \
  is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v2/wave/freeze/tags/list")" 403
ok "embedded: a blob of another repository is not served" \
  is "$(curl -s -o /dev/null -w '%{http_code}' "$WAVED_URL/v2/wave/freeze/blobs/sha256:$(sha256 "$T/one.sif")")" 404
ok "Docker freeze without buildRepository: Wave's 400" \
  is "$(post "{\"containerImage\":\"$SRC/library/busybox:latest\",\"freeze\":true}" "$T/v0.json") $(msg "$T/v0.json")" \
  "400 Attribute \`buildRepository\` must be specified when using freeze mode [2]"
EFAIL="Bootstrap: docker
From: $SRC/library/busybox:latest
%post
  echo embedded about to fail
  exit 4
"
post "{\"containerFile\":\"$(b64 "$EFAIL")\",\"format\":\"sif\",\"freeze\":true}" "$T/r5.json" >/dev/null
RID5=$(field "$T/r5.json" 'd["requestId"]')
REF5=$(field "$T/r5.json" 'd["targetImage"]' | sed 's|^oras://||')
ok "embedded failing build: finishes" wait_done "$RID5" 300
ok "embedded failing build: a pull by name is 400 with the build log" \
  bash -c "! $PY '$ORAS' '$REF5' '$T/five.sif' >'$T/five.log' 2>&1 && grep -q 'manifest .*: 400 .*embedded about to fail' '$T/five.log'"

# ---- 3c. Bootstrap: oras — the first SIF (in the Basic-auth target) as the base ---------------------
ORASDEF="Bootstrap: oras
From: $REF1
%post
    echo \"derived %post\" > /derived
    cat /posted >> /derived
%environment
    export DERIVED=yes
%labels
    Derived yes
"
ok "oras bootstrap: 200" is "$(post "{\"containerFile\":\"$(b64 "$ORASDEF")\",\"format\":\"sif\",\"freeze\":true}" "$T/r6.json")" 200
RID6=$(field "$T/r6.json" 'd["requestId"]')
ID6=$(field "$T/r6.json" 'd["buildId"]')
ok "oras bootstrap: build finishes" wait_done "$RID6" 300
ok "oras bootstrap: succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" True
curl -s "$WAVED_URL/v1alpha1/builds/$ID6/logs" >"$T/log6.txt"
[ "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" = True ] || tail -30 "$T/log6.txt" >&2
ok "oras bootstrap: the base fetched and verified (log)" grep -q "base SIF $REF1: .* bytes, sha256:$(sha256 "$T/one.sif"), partition extracted" "$T/log6.txt"
ok "oras bootstrap: pulled by name" oras_pull "$(field "$T/r6.json" 'd["targetImage"]')" "$T/six.sif"
ok "oras bootstrap: SIF checked" check_sif "$T/six.sif" "$T/six"
R6=$T/six/rootfs
ok "oras bootstrap: the base's files (%files, %post of the base)" \
  is "$(cat "$R6/opt/hello.txt") / $(cat "$R6/posted")" "hello from the context / posted by %post"
ok "oras bootstrap: %post ran on the base" is "$(cat "$R6/derived")" "derived %post
posted by %post"
ok "oras bootstrap: the base's runscript kept (no %runscript)" \
  has "$(chroot "$R6" /.singularity.d/actions/run p q 2>&1)" "runscript args: p q"
ok "oras bootstrap: %environment appended to the base's" \
  bash -c "grep -q 'DEFVAR=\"from environment\"' '$R6/.singularity.d/env/90-environment.sh' && grep -q 'export DERIVED=yes' '$R6/.singularity.d/env/90-environment.sh'"
ok "oras bootstrap: env of base and derived at run time" \
  is "$(chroot "$R6" /.singularity.d/actions/exec /bin/sh -c 'echo $DEFVAR/$DERIVED/$IMGVAR')" "from environment/yes/from image"
ok "oras bootstrap: labels merged (the base's kept, the new added)" \
  is "$($PY -c 'import json,sys; l=json.load(open(sys.argv[1])); print(l["Author"], l["Derived"], l["org.label-schema.usage.singularity.deffile.bootstrap"])' "$R6/.singularity.d/labels.json")" \
  "tester@example.com yes docker"
ok "oras bootstrap: labels.json sorted, tab-indented as Go writes it" \
  $PY -c 'import json,sys; t=open(sys.argv[1]).read(); k=[a for a,_ in json.loads(t, object_pairs_hook=lambda p: p)]; sys.exit(not (k == sorted(k) and "\n\t\"Derived\": \"yes\",\n" in t))' "$R6/.singularity.d/labels.json"
ok "oras bootstrap: /.singularity.d/Singularity is the new definition" \
  is "$(head -2 "$R6/.singularity.d/Singularity")" "Bootstrap: oras
From: $REF1"
ok "oras bootstrap: no base archive left in the image" bash -c "[ ! -e '$R6/.waved-oras-base.tar' ]"
ORASBAD="Bootstrap: oras
From: $DST/sif/nothing-here:1
"
post "{\"containerFile\":\"$(b64 "$ORASBAD")\",\"format\":\"sif\",\"freeze\":true}" "$T/r7.json" >/dev/null
ok "oras bootstrap, missing base: build finishes" wait_done "$(field "$T/r7.json" 'd["requestId"]')" 300
ok "oras bootstrap, missing base: failed" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" False
ok "oras bootstrap, missing base: the reason" \
  grep -q "the base SIF '/v2/sif/nothing-here/manifests/1': registry answered 404" <(curl -s "$WAVED_URL/v1alpha1/builds/$(field "$T/r7.json" 'd["buildId"]')/logs")

# ---- 4. Wave's validation messages, bad definitions ----------------------------------------------
ok "sif without freeze: 400" \
  is "$(post "{\"containerFile\":\"$(b64 "$DEF")\",\"format\":\"sif\"}" "$T/v1.json") $(msg "$T/v1.json")" \
  "400 Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting"
ok "sif with two platforms: 400" \
  is "$(post "{\"containerFile\":\"$(b64 "$DEF")\",\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/x\",\"containerPlatform\":\"linux/amd64,linux/arm64\"}" "$T/v2.json") $(msg "$T/v2.json")" \
  "400 Multi-platform builds are not supported for Singularity format"
before=$(ls "$WAVED_DIR/data/build" | grep -c '^bd-' || true)
bad() { # DEF WANT — a definition refused with a 400 naming WANT
  local s; s=$(post "{\"containerFile\":\"$(b64 "$1")\",\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/bad\"}" "$T/bad.json")
  is "$s" 400 && has "$(msg "$T/bad.json")" "$2"
}
ok "bad definition: %setup" bad "Bootstrap: docker
From: x
%setup
  true" "section not supported by this server '%setup'"
ok "bad definition: bootstrap library" bad "Bootstrap: library
From: x" "bootstrap agent not supported by this server (only 'docker' and 'oras') 'library'"
ok "bad definition: Bootstrap localimage (a path on the server)" bad "Bootstrap: localimage
From: /etc/passwd" "'Bootstrap: localimage' names an image file on the server's disk, which a request may not read"
ok "bad definition: Bootstrap oras without a registry reference" bad "Bootstrap: oras
From: not a reference" "'From:' of 'Bootstrap: oras' must name a SIF artifact"
ok "bad definition: %files outside the context" bad "Bootstrap: docker
From: $SRC/library/busybox:latest
%files
  /etc/passwd /x" "%files source '/etc/passwd' is outside the build context"
ok "bad definition: %files matching nothing" bad "Bootstrap: docker
From: $SRC/library/busybox:latest
%files
  nothing-here /x" "matches nothing in the build context"
# An oversized build context (wave.build.context.max-file-size is 256KiB here): 400, nothing left.
mkdir -p "$T/bigctx"
head -c 300000 /dev/urandom >"$T/bigctx/big.bin"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/bigctx" -cf "$T/big.tar" .
gzip -n -c "$T/big.tar" >"$T/big.tgz"
BIG="{\"location\":\"data:$(base64 -w0 "$T/big.tgz")\",\"tarDigest\":\"sha256:$(sha256 "$T/big.tar")\"}"
printf '{"containerFile":"%s","format":"sif","freeze":true,"buildRepository":"%s","buildContext":%s}' \
  "$(b64 "$DEF")" "$DST/sif/big" "$BIG" >"$T/big.body"
BIGST=$(curl -s -o "$T/big.json" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$T/big.body" "$WAVED_URL/v1alpha2/container")
ok "oversized context: 400 naming the limit" is "$BIGST $(msg "$T/big.json" | grep -c -i 'larger\|limit\|size')" "400 1"
# packages: Wave's Singularity template, a dry run (micromamba is not available offline)
ok "packages: dry run, oras:// target" \
  is "$(post "{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"samtools=1.17\"]},\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/pk\",\"dryRun\":true}" "$T/pk.json") $(field "$T/pk.json" 'd["targetImage"].rsplit(":",1)[0]')" \
  "200 oras://$DST/sif/pk"
ok "bad definitions: no build directory left" \
  is "$(ls "$WAVED_DIR/data/build" | grep -c -v -e '^bd-' -e '^buildah$' || true) $(ls "$WAVED_DIR/data/build" | grep -c '^bd-' || true)" "0 $before"

# ---- 5. a failing %post: the build fails with its log, nothing is pushed ---------------------------
FAIL="Bootstrap: docker
From: $SRC/library/busybox:latest
%post
  echo about to fail
  exit 3
"
ok "failing %post: 200" is "$(post "{\"containerFile\":\"$(b64 "$FAIL")\",\"format\":\"sif\",\"freeze\":true,\"buildRepository\":\"$DST/sif/fail\"}" "$T/r3.json")" 200
ok "failing %post: build finishes" wait_done "$(field "$T/r3.json" 'd["requestId"]')" 300
ok "failing %post: not succeeded" is "$(field "$E2E_TMP/st.json" 'd["succeeded"]')" False
ID3=$(field "$T/r3.json" 'd["buildId"]')
ok "failing %post: the log says why" grep -q 'about to fail' <(curl -s "$WAVED_URL/v1alpha1/builds/$ID3/logs")
ok "failing %post: nothing pushed" \
  bash -c "! skopeo inspect --raw --tls-verify=false --creds '$CREDS' 'docker://$(field "$T/r3.json" 'd["targetImage"]' | sed 's|^oras://||')' >/dev/null 2>&1"
ok "failing %post: work dir removed" bash -c "[ ! -e '$WAVED_DIR/data/build/$ID3' ]"

e2e_finish
