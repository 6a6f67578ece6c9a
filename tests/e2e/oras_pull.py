#!/usr/bin/env python3
# tests/e2e/oras_pull.py REF OUT [USER PASS] — what `singularity pull oras://REF`
# does over the wire (SingularityCE 4.2.1 internal/pkg/client/oras, Apptainer the
# same, both on go-containerregistry's remote package), in the Python standard
# library, for registries on loopback over plain HTTP. No singularity exists here.
#
#  1. GET /v2/ (ggcr's ping). A 401 names the scheme: Basic → the credentials on
#     every later request; Bearer → GET <realm>?service=<service>&scope=
#     repository:<name>:pull (with Basic credentials when given), then
#     "Authorization: Bearer <token|access_token>".
#  2. GET /v2/<name>/manifests/<tag> with Accept = the OCI and Docker manifest and
#     index types. The Content-Type must be one of them (ggcr takes the media type
#     from it) and equal the body's mediaType; Docker-Content-Digest, when sent,
#     must be the body's sha256. An index is resolved to its linux/amd64 manifest.
#  3. Exactly one layer ("ORAS SIF image should have a single layer, found N"),
#     mediaType application/vnd.sylabs.sif.layer.v1.sif or the legacy
#     "appliciation/vnd.sylabs.sif.layer.tar"; the config is
#     application/vnd.sylabs.sif.config.v1+json (singularity does not check the
#     config's type; this client does, for waved's artifact); the layer's
#     org.opencontainers.image.title annotation is printed (singularity ignores it).
#  4. The config blob by digest: size and sha256 verified. The layer blob by digest:
#     Content-Length must equal the descriptor's size, and the bytes its sha256
#     (ggcr's verify.ReadCloser). A redirect to another host drops Authorization.
#  5. The file is re-hashed after download (singularity's cache check), then
#     ensureSIF: at least 2048 bytes, "SIF_MAGIC" in the first 2048.
# Prints one line per step; exits 1 with the reason on the first failure.
import base64, hashlib, json, sys, urllib.error, urllib.parse, urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ",".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST])
SIF_CONFIG = "application/vnd.sylabs.sif.config.v1+json"
SIF_LAYERS = ("application/vnd.sylabs.sif.layer.v1.sif", "appliciation/vnd.sylabs.sif.layer.tar")
TITLE = "org.opencontainers.image.title"


def die(msg):
    print("FAIL: " + msg)
    sys.exit(1)


class SameHostRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects, dropping Authorization when the host changes (as ggcr)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


opener = urllib.request.build_opener(SameHostRedirect)


def request(url, headers, method="GET"):
    req = urllib.request.Request(url, headers=headers, method=method)
    try:
        r = opener.open(req, timeout=900)
        return r.status, r.headers, r
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e


def parse_challenge(h):
    scheme, _, rest = h.partition(" ")
    params = {}
    for part in rest.split(","):
        k, _, v = part.strip().partition("=")
        if k:
            params[k.strip().lower()] = v.strip().strip('"')
    return scheme.lower(), params


def authorize(host, name, user, password):
    """ggcr's ping + token exchange: the Authorization header value, or None."""
    status, headers, body = request("http://%s/v2/" % host, {})
    body.read()
    basic = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode() if user else None
    if status == 200:
        print("ping: 200, no authentication")
        return None
    if status != 401:
        die("ping: GET /v2/ answered %d" % status)
    scheme, params = parse_challenge(headers.get("WWW-Authenticate", ""))
    if scheme == "basic":
        if not basic:
            die("ping: Basic authentication required and no credentials given")
        print("ping: 401 Basic")
        return basic
    if scheme != "bearer" or "realm" not in params:
        die("ping: unexpected challenge %r" % headers.get("WWW-Authenticate"))
    q = {"scope": "repository:%s:pull" % name}
    if "service" in params:
        q["service"] = params["service"]
    status, _, body = request(params["realm"] + "?" + urllib.parse.urlencode(q), {"Authorization": basic} if basic else {})
    if status != 200:
        die("token: %s answered %d" % (params["realm"], status))
    tok = json.loads(body.read())
    token = tok.get("token") or tok.get("access_token")
    if not token:
        die("token: no token in the answer")
    print("ping: 401 Bearer, token for scope %s" % q["scope"])
    return "Bearer " + token


def get_manifest(host, name, ref, auth):
    hdrs = {"Accept": ACCEPT}
    if auth:
        hdrs["Authorization"] = auth
    status, headers, body = request("http://%s/v2/%s/manifests/%s" % (host, name, ref), hdrs)
    data = body.read()
    if status != 200:
        die("manifest %s: %d %s" % (ref, status, data[:200000].decode(errors="replace")))
    ctype = headers.get("Content-Type", "").split(";")[0].strip()
    if ctype not in (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST):
        die("manifest %s: Content-Type %r is not a manifest type" % (ref, ctype))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sent = headers.get("Docker-Content-Digest")
    if sent and sent != digest:
        die("manifest %s: Docker-Content-Digest %s, body %s" % (ref, sent, digest))
    if ref.startswith("sha256:") and ref != digest:
        die("manifest %s: body digest %s" % (ref, digest))
    m = json.loads(data)
    if m.get("mediaType", ctype) != ctype:
        die("manifest %s: mediaType %r, Content-Type %r" % (ref, m.get("mediaType"), ctype))
    return ctype, digest, m


def get_blob(host, name, desc, auth, out=None):
    hdrs = {"Authorization": auth} if auth else {}
    status, headers, body = request("http://%s/v2/%s/blobs/%s" % (host, name, desc["digest"]), hdrs)
    if status != 200:
        die("blob %s: %d" % (desc["digest"], status))
    clen = headers.get("Content-Length")
    if clen is not None and int(clen) != desc["size"]:
        die("blob %s: Content-Length %s, descriptor size %d" % (desc["digest"], clen, desc["size"]))
    h, n, chunks = hashlib.sha256(), 0, []
    f = open(out, "wb") if out else None
    while True:
        b = body.read(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        if f:
            f.write(b)
        else:
            chunks.append(b)
    if f:
        f.close()
    if n != desc["size"] or "sha256:" + h.hexdigest() != desc["digest"]:
        die("blob %s: got %d bytes sha256:%s" % (desc["digest"], n, h.hexdigest()))
    return b"".join(chunks)


def main():
    if len(sys.argv) not in (3, 5):
        die("usage: oras_pull.py HOST/NAME:TAG OUT [USER PASS]")
    ref, out = sys.argv[1], sys.argv[2]
    if ref.startswith("oras://"):
        ref = ref[7:]
    user, password = (sys.argv[3], sys.argv[4]) if len(sys.argv) == 5 else (None, None)
    host, _, rest = ref.partition("/")
    name, _, tag = rest.rpartition(":")
    if not name or "/" in tag:
        name, tag = rest, "latest"
    auth = authorize(host, name, user, password)
    ctype, digest, m = get_manifest(host, name, tag, auth)
    if ctype in (OCI_INDEX, DOCKER_LIST):
        pick = [d for d in m.get("manifests", []) if d.get("platform", {}).get("os") == "linux" and d.get("platform", {}).get("architecture") == "amd64"]
        if not pick:
            die("index: no linux/amd64 manifest")
        ctype, digest, m = get_manifest(host, name, pick[0]["digest"], auth)
    print("manifest: %s %s" % (ctype, digest))
    layers = m.get("layers", [])
    if len(layers) != 1:
        die("ORAS SIF image should have a single layer, found %d" % len(layers))
    layer, config = layers[0], m.get("config", {})
    if layer.get("mediaType") not in SIF_LAYERS:
        die("invalid layer mediatype: %s" % layer.get("mediaType"))
    if config.get("mediaType") != SIF_CONFIG:
        die("config mediaType %r" % config.get("mediaType"))
    cfg = get_blob(host, name, config, auth)
    print("config: %s %d bytes %s verified" % (config["mediaType"], len(cfg), config["digest"]))
    get_blob(host, name, layer, auth, out)
    print("layer: %s %d bytes %s verified, title %s" % (layer["mediaType"], layer["size"], layer["digest"], layer.get("annotations", {}).get(TITLE)))
    h = hashlib.sha256()
    with open(out, "rb") as f:
        head = f.read(2048)
        h.update(head)
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    if "sha256:" + h.hexdigest() != layer["digest"]:
        die("cached file: sha256 changed")
    if len(head) < 2048 or b"SIF_MAGIC" not in head:
        die("ensureSIF: not a SIF (no SIF_MAGIC in the first 2048 bytes)")
    print("sif: ok")


main()
