#!/usr/bin/env python3
"""A registry (or token service) that chooses URLs for waved, for tests/e2e/ssrf.sh,
hostile.sh and blob_redirects.sh.

Usage: evil_upstream.py PORT LOG MODE [URL]

MODE
  redirect URL  anonymous /v2/; any repository:tag is one image (a manifest
                whose config is CONFIG below); every blob GET is answered 307
                to URL.
  bearer URL    /v2/ and everything without "Authorization: Bearer good"
                answers 401 with a Bearer challenge whose realm is URL; with
                it, the same image as above, its config served inline.
  token         a token service: any GET answers {"token": "good"}.
  hops          the image above under <scenario>/img; a blob GET of
                /v2/<scenario>/img/blobs/<d> is answered by scenario:
                  on     307 to /hop/1/<d> (two redirects on the registry)
                  three  307 to /hop/2/<d> (three: Wave's cap)
                  four   307 to /hop/3/<d> (four: one too many)
                  rel    307 to "hop/0/<d>" (a relative Location)
                  off    307 to http://localhost:PORT/hop/0/<d> (off the registry)
                  ftp    307 to ftp://localhost:PORT/hop/0/<d> (not http)
                  deny   307 to http://127.0.0.2:PORT/hop/0/<d> (a loopback address)
                  slow   200 at once; its image has one 8 MiB layer that is
                         sent 64 KiB every 0.25 s (a cut is logged "cut <bytes>")
                and /hop/<k>/<d> (any prefix) redirects to /hop/<k-1>/<d>,
                serving the blob at k = 0.

Every request is appended to LOG as "METHOD PATH auth=<Authorization or ->".
Prints the config blob's digest on its first line of output.
Listens on 127.0.0.1 only.
"""
import hashlib, http.server, json, re, sys, threading, time

PORT, LOG, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
URL = sys.argv[4] if len(sys.argv) > 4 else ""
MU = threading.Lock()
CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": []}}).encode()
CONFIG_D = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": CONFIG_D, "size": len(CONFIG)},
                       "layers": []}).encode()
MANIFEST_D = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
SLOW_LAYER = bytes(range(256)) * (32 * 1024)  # 8 MiB
SLOW_LAYER_D = "sha256:" + hashlib.sha256(SLOW_LAYER).hexdigest()
SLOW_MANIFEST = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                       "digest": CONFIG_D, "size": len(CONFIG)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                        "digest": SLOW_LAYER_D, "size": len(SLOW_LAYER)}]}).encode()
HOPS = {"on": "/hop/1/%s", "three": "/hop/2/%s", "four": "/hop/3/%s", "rel": "hop/0/%s",
        "off": "http://localhost:%d/hop/0/%%s" % PORT,
        "ftp": "ftp://localhost:%d/hop/0/%%s" % PORT,
        "deny": "http://127.0.0.2:%d/hop/0/%%s" % PORT}


def log(line):
    with MU, open(LOG, "a") as f:
        f.write(line + "\n")


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body=b"", headers=(), head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def handle_any(self, head):
        auth = self.headers.get("Authorization") or "-"
        with MU, open(LOG, "a") as f:
            f.write("%s %s auth=%s\n" % ("HEAD" if head else "GET", self.path, auth))
        if MODE == "token":
            return self.send(200, json.dumps({"token": "good", "expires_in": 300}).encode(),
                             [("Content-Type", "application/json")], head)
        if MODE == "bearer" and auth != "Bearer good":
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                             [("WWW-Authenticate", 'Bearer realm="%s",service="evil"' % URL)], head)
        if self.path in ("/v2/", "/v2"):
            return self.send(200, b"{}", [("Content-Type", "application/json")], head)
        if MODE == "hops":
            return self.hops(head)
        if "/manifests/" in self.path:
            return self.send(200, MANIFEST,
                             [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                              ("Docker-Content-Digest", MANIFEST_D)], head)
        if "/blobs/" in self.path:
            if MODE == "redirect":
                return self.send(307, b"", [("Location", URL)], head)
            if self.path.endswith(CONFIG_D):
                return self.send(200, CONFIG, [("Docker-Content-Digest", CONFIG_D)], head)
        self.send(404, b"", (), head)

    def hops(self, head):
        if "/manifests/" in self.path:
            body = SLOW_MANIFEST if self.path.startswith("/v2/slow/") else MANIFEST
            return self.send(200, body,
                             [("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                              ("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())],
                             head)
        hop = re.match(r"^.*/hop/(\d+)/(sha256:[0-9a-f]{64})$", self.path)
        first = re.match(r"^/v2/([a-z]+)/img/blobs/(sha256:[0-9a-f]{64})$", self.path)
        if hop and int(hop.group(1)) > 0:
            return self.send(307, b"", [("Location", "/hop/%d/%s" % (int(hop.group(1)) - 1,
                                                                    hop.group(2)))], head)
        if first and first.group(1) in HOPS:
            return self.send(307, b"", [("Location", HOPS[first.group(1)] % first.group(2))], head)
        d = (hop or first).group(2) if (hop or first) else ""
        if d == CONFIG_D:
            return self.send(200, CONFIG, [("Docker-Content-Digest", CONFIG_D)], head)
        if d == SLOW_LAYER_D:
            return self.slow(head)
        self.send(404, b"", (), head)

    def slow(self, head):
        self.send_response(200)
        self.send_header("Content-Length", str(len(SLOW_LAYER)))
        self.end_headers()
        sent = 0
        try:
            while not head and sent < len(SLOW_LAYER):
                self.wfile.write(SLOW_LAYER[sent:sent + 65536])
                self.wfile.flush()
                sent += 65536
                time.sleep(0.25)
        except OSError:
            log("cut %d" % sent)
            self.close_connection = True

    def do_GET(self):
        self.handle_any(False)

    def do_HEAD(self):
        self.handle_any(True)


print(CONFIG_D, flush=True)  # the config blob's digest, for the test
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
