#!/usr/bin/env python3
"""A registry in front of a registry that delays every blob GET.

Usage: slow_proxy.py PORT UPSTREAM_PORT DELAY_SECONDS [LOG]

tests/e2e/scan.sh puts it between waved and docker-registry so that a scan
lasts long enough for the container status to be seen SCANNING. Manifests
and HEADs pass at once; bodies are copied whole (test images are small).
Listens on 127.0.0.1 only. With LOG, each request is appended to it as
"METHOD PATH" (tests/e2e/blobcache.sh counts upstream blob GETs).
"""
import http.client
import http.server
import sys
import threading
import time

PORT, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
LOG = sys.argv[4] if len(sys.argv) > 4 else None
LOG_MU = threading.Lock()
KEEP = ("content-type", "content-length", "docker-content-digest", "location",
        "www-authenticate", "docker-distribution-api-version")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self, method):
        if LOG:
            with LOG_MU, open(LOG, "a") as f:
                f.write("%s %s\n" % (method, self.path))
        if method == "GET" and "/blobs/" in self.path:
            time.sleep(DELAY)
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization")}
        conn.request(method, self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in KEEP:
                self.send_header(k, v)
        if resp.getheader("content-length") is None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
        conn.close()

    def do_GET(self):
        self.forward("GET")

    def do_HEAD(self):
        self.forward("HEAD")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
