#!/usr/bin/env python3
"""A registry that misbehaves on purpose, for tests/e2e/blobfill.sh.

Usage: fake_upstream.py PORT DIR LOG

Anonymous /v2/; one manifest (DIR/manifest.json) for any repository and tag;
blobs from the files DIR/<hex>, each sent as DIR/<hex>.mode says (one line):
"sized RATE" (Content-Length), "chunked RATE", "cut RATE BYTES" (closes after
BYTES), "wrong RATE" / "chunkedwrong RATE" (last byte flipped), RATE in
bytes/s (0 = at once; below 256 KiB/s in pieces of RATE/4). Every request is appended to LOG as "METHOD PATH".
Listens on 127.0.0.1 only.
"""
import http.server, os, sys, threading, time
PORT, DIR, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MU = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def logit(self, m):
        with MU, open(LOG, "a") as f: f.write("%s %s\n" % (m, self.path))
    def blob(self, head):
        self.logit("HEAD" if head else "GET")
        if self.path in ("/v2/", "/v2"):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            if not head: self.wfile.write(b"{}")
            return
        if "/manifests/" in self.path:
            m = open(os.path.join(DIR, "manifest.json"), "rb").read()
            import hashlib
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(m).hexdigest())
            self.send_header("Content-Length", str(len(m)))
            self.end_headers()
            if not head: self.wfile.write(m)
            return
        if "/blobs/sha256:" not in self.path:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        hx = self.path.rsplit("sha256:", 1)[1]
        p = os.path.join(DIR, hx)
        if not os.path.exists(p):
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        mode = open(p + ".mode").read().split()
        kind, rate = mode[0], float(mode[1])
        data = open(p, "rb").read()
        if kind in ("wrong", "chunkedwrong"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Docker-Content-Digest", "sha256:" + hx)
        chunked = kind.startswith("chunked")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if head: return
        limit = int(mode[2]) if kind == "cut" else len(data)
        # Slow rates trickle in small pieces (2 B/s: a byte every half second).
        step = 64 << 10 if rate == 0 or rate >= (256 << 10) else max(1, int(rate // 4))
        off = 0
        try:
            while off < limit:
                piece = data[off:min(off + step, limit)]
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                else:
                    self.wfile.write(piece)
                self.wfile.flush()
                off += len(piece)
                if rate > 0: time.sleep(len(piece) / rate)
            if kind == "cut":
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            if chunked:
                self.wfile.write(b"0\r\n\r\n"); self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
    def do_GET(self): self.blob(False)
    def do_HEAD(self): self.blob(True)
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
