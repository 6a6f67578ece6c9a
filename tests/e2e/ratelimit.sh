#!/usr/bin/env bash
# tests/e2e/ratelimit.sh — rate limits (docs/rate-limits.md) against a real
# waved with small limits: new builds past the build limit get 429 with the
# spec's message and Retry-After while joined, cached and dry-run requests take
# no build permit; container requests and /v2 manifests by digest take pull
# permits (plain form, anonymous and authenticated tokens, on the IO loop and
# on a worker), tags and blobs take none; another address or account is not
# affected. Clients are told apart by their source address (curl --interface
# 127.0.0.x: all of 127/8 is loopback). Builds run a fake builder (a script
# that writes an OCI layout), so no buildah is needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v skopeo >/dev/null || ! command -v docker-registry >/dev/null; then
  echo "skip: skopeo or docker-registry not installed"
  exit 0
fi
T=$E2E_TMP
between() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ] ||
  { echo "    '$1' not in $2..$3" >&2; return 1; }; }

REG=127.0.0.1:$(start_registry anon anon)
make_busybox_layout "$T/busybox"
push_layout "$T/busybox" "$REG/library/busybox:latest"

# The fake builder: <workdir>/oci holds one image (its layer: the build context), tagged $2.
cat >"$T/fake-build.sh" <<'SH'
set -e
d="$1/oci"; mkdir -p "$d/blobs/sha256"; cd "$d"
echo '{"imageLayoutVersion":"1.0.0"}' > oci-layout
tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$1/context" -cf l.tar .
diff=$(sha256sum l.tar | cut -d' ' -f1); gzip -n l.tar
ld=$(sha256sum l.tar.gz | cut -d' ' -f1); ls=$(stat -c %s l.tar.gz); mv l.tar.gz blobs/sha256/$ld
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $diff > c.json
cd2=$(sha256sum c.json | cut -d' ' -f1); cs=$(stat -c %s c.json); mv c.json blobs/sha256/$cd2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' $cd2 $cs $ld $ls > m.json
md=$(sha256sum m.json | cut -d' ' -f1); ms=$(stat -c %s m.json); mv m.json blobs/sha256/$md
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' $md $ms "$2" > index.json
SH

TOKEN=e2e-alice-token
start_waved "wave:
  accounts: {alice: $(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)}
  registries: {\"$REG\": {insecure: true}}
  build:
    buildah: {build: \"sh $T/fake-build.sh {workdir} {tag}\", push: \"true\", cleanup: \"\"}
rate-limit:
  enabled: true
  build: {anonymous: 2/1h, authenticated: 1/1h}
  pull: {anonymous: 6/1h, authenticated: 4/1h}"
log "waved on $WAVED_URL, registry on $REG"

# post FROM BODY OUT — POST /v1alpha2/container from source address FROM; prints the status.
post() {
  curl -s --interface "$1" -o "$3" -D "$3.hdr" -w '%{http_code}' -H 'Content-Type: application/json' \
    -X POST --data-binary "$2" "$WAVED_URL/v1alpha2/container"
}
# pull FROM PATH OUT [curl args] — GET (or -I) a /v2 path; prints the status.
pull() {
  local from=$1 path=$2 out=$3; shift 3
  curl -s --interface "$from" -o "$out" -D "$out.hdr" -w '%{http_code}' "$@" \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json' \
    "$WAVED_URL$path"
}
field() { json_get "$1" "$2" 2>/dev/null || true; }
header() { tr -d '\r' <"$1.hdr" | awk -v h="$(echo "$2" | tr A-Z a-z)" -F': ' 'tolower($1)==h {print $2}'; }
b64() { printf '%b' "$1" | base64 -w0; }
build_body() { echo "{\"containerFile\":\"$(b64 "$1")\"${2:-}}"; }

# ---- 1. builds: anonymous 2/1h per address -------------------------------------------------
log "1. build permits"
A=127.0.0.5
BA=$(build_body 'FROM scratch\nCOPY . /a\n')
ok "build A: 200, new" is "$(post $A "$BA" "$T/b1.json")|$(field "$T/b1.json" 'd["cached"]')" "200|False"
ok "build A again while it runs (or just after): same build, no permit" \
  is "$(post $A "$BA" "$T/b2.json")|$(field "$T/b2.json" 'd["buildId"]')" "200|$(field "$T/b1.json" 'd["buildId"]')"
wait_done "$(field "$T/b1.json" 'd["requestId"]')"
ok "build A done" is "$(field "$T/st.json" 'd["succeeded"]')" True
ok "build A a third time: cached, no permit" \
  is "$(post $A "$BA" "$T/b3.json")|$(field "$T/b3.json" 'd["cached"]')" "200|True"
ok "dry run: 200, no permit" is "$(post $A "$(build_body 'FROM scratch\nCOPY . /dry\n' ',"dryRun":true')" "$T/b4.json")" 200
ok "build B: 200, new (the second permit)" \
  is "$(post $A "$(build_body 'FROM scratch\nCOPY . /b\n')" "$T/b5.json")|$(field "$T/b5.json" 'd["cached"]')" "200|False"
ok "build C: 429 past the build limit" is "$(post $A "$(build_body 'FROM scratch\nCOPY . /c\n')" "$T/b6.json")" 429
ok "build C: the spec's message" \
  is "$(field "$T/b6.json" 'd["message"]')" "Request exceeded build rate limit for IP $A"
ok "build C: Retry-After in seconds (one permit per 1800 s)" between "$(header "$T/b6.json" Retry-After)" 1 1800
ok "build C from another address: 200" \
  is "$(post 127.0.0.6 "$(build_body 'FROM scratch\nCOPY . /c\n')" "$T/b7.json")" 200
ok "build D as alice from the limited address: 200 (the account's own budget)" \
  is "$(post $A "$(build_body 'FROM scratch\nCOPY . /d\n' ",\"towerAccessToken\":\"$TOKEN\"")" "$T/b8.json")" 200
ok "build E as alice: 429 for the user" \
  is "$(post 127.0.0.6 "$(build_body 'FROM scratch\nCOPY . /e\n' ",\"towerAccessToken\":\"$TOKEN\"")" "$T/b9.json")|$(field "$T/b9.json" 'd["message"]')" \
  "429|Request exceeded build rate limit for user alice"
# $A made 6 container requests so far (the refused build included): the 7th is over 6/1h.
ok "container request 7 from $A: 429 past the pull limit" \
  is "$(post $A "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$T/c1.json")|$(field "$T/c1.json" 'd["message"]')" \
  "429|Request exceeded pull rate limit for IP $A"
ok "container request 7: Retry-After (one permit per 600 s)" between "$(header "$T/c1.json" Retry-After)" 1 600

# ---- 2. /v2: manifests by digest of an anonymous token, keyed by the puller's address -------
# (The plain form /v2/<host>/<image> cannot name a registry with a port, so the
# local registry is reached through tokens; both forms share the same check.)
log "2. /v2 pull permits (anonymous token)"
P=127.0.0.7
ok "anonymous container request: 200 (the address's first pull permit)" \
  is "$(post $P "{\"containerImage\":\"$REG/library/busybox:latest\"}" "$T/t0.json")" 200
M=/v2/wt/$(field "$T/t0.json" 'd["containerToken"]')/library/busybox/manifests
ok "manifest by tag: 200" is "$(pull $P "$M/latest" "$T/m0")" 200
DG=$(header "$T/m0" Docker-Content-Digest)
CFG=$(field "$T/m0" 'd["config"]["digest"]')
for i in 1 2 3 4 5 6 7 8 9 10; do pull $P "$M/latest" "$T/mt" >/dev/null; done
ok "ten more by tag: still 200 (tags take no permit)" is "$(pull $P "$M/latest" "$T/mt")" 200
codes=""
for i in 1 2 3 4; do codes+="$(pull $P "$M/$DG" "$T/md$i") "; done
codes+="$(pull $P "$M/$DG" "$T/md5" -I)"
ok "five by digest (GET and HEAD): 200" is "$codes" "200 200 200 200 200"
ok "the sixth by digest: 429" is "$(pull $P "$M/$DG" "$T/md8")" 429
ok "429: TOOMANYREQUESTS with the spec's message" \
  is "$(field "$T/md8" 'd["errors"][0]["code"]+"|"+d["errors"][0]["message"]')" \
  "TOOMANYREQUESTS|Request exceeded pull rate limit for IP $P"
ok "429: Retry-After" between "$(header "$T/md8" Retry-After)" 1 600
ok "HEAD by digest: 429 too" is "$(pull $P "$M/$DG" "$T/md9" -I)" 429
ok "blob GET still works" is "$(pull $P "${M%/manifests}/blobs/$CFG" "$T/blob")" 200
ok "by tag still works" is "$(pull $P "$M/latest" "$T/mt")" 200
ok "the same token from another address by digest: 200" is "$(pull 127.0.0.8 "$M/$DG" "$T/mo")" 200

# ---- 3. /v2: a token of an account, whatever the address ------------------------------------
log "3. /v2 pull permits (alice's token)"
ok "alice's container request: 200 (her third pull permit)" \
  is "$(post 127.0.0.9 "{\"containerImage\":\"$REG/library/busybox:latest\",\"towerAccessToken\":\"$TOKEN\"}" "$T/t1.json")" 200
W=/v2/wt/$(field "$T/t1.json" 'd["containerToken"]')/library/busybox/manifests
# The first pull of a token runs on a worker (it writes the token's hot record), the next
# ones on the IO loop: the permit is taken on both.
ok "alice's token by digest, first pull: 200 (her fourth)" is "$(pull 127.0.0.9 "$W/$DG" "$T/w1")" 200
ok "alice's token by tag: 200" is "$(pull 127.0.0.9 "$W/latest" "$T/w0")" 200
ok "alice's token by digest from a fresh address: 429 for the user" \
  is "$(pull 127.0.0.10 "$W/$DG" "$T/w2")|$(field "$T/w2" 'd["errors"][0]["message"]')" \
  "429|Request exceeded pull rate limit for user alice"
ok "alice's token by tag: still 200" is "$(pull 127.0.0.10 "$W/latest" "$T/w3")" 200

e2e_finish
