#!/usr/bin/env python3
"""A registry (or token service) that chooses URLs for waved, for tests/e2e/ssrf.sh.

Usage: evil_upstream.py PORT LOG MODE [URL]

MODE
  redirect URL  anonymous /v2/; any repository:tag is one image (a manifest
                whose config is CONFIG below); every blob GET is answered 307
                to URL.
  bearer URL    /v2/ and everything without "Authorization: Bearer good"
                answers 401 with a Bearer challenge whose realm is URL; with
                it, the same image as above, its config served inline.
  token         a token service: any GET answers {"token": "good"}.

Every request is appended to LOG as "METHOD PATH auth=<Authorization or ->".
Prints the config blob's digest on its first line of output.
Listens on 127.0.0.1 only.
"""
import hashlib, http.server, json, sys, threading

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

    def do_GET(self):
        self.handle_any(False)

    def do_HEAD(self):
        self.handle_any(True)


print(CONFIG_D, flush=True)  # the config blob's digest, for the test
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
