/*
 * http/server_write.c — sending responses on the loop: the head and a body
 * in memory through uv_try_write / uv_write, a file body with sendfile(2)
 * (see "File bodies" in the DESIGN of http/server.c), write back-pressure.
 */
#include "http/server_int.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static void fs_start(fsend_t *fs);
static void fs_pump(fsend_t *fs);

/* ---------- writing ---------- */

const char *wv__srv_loop_date(loop_t *l) {
  time_t now = time(NULL);
  if (now != l->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(l->date, sizeof l->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    l->date_sec = now;
  }
  return l->date;
}

bool wv__srv_write_done(conn_t *c, int status) {
  c->writes--;
  if (c->closing)
    return false;
  if (status < 0) {
    wv__srv_conn_close(c);
    return false;
  }
  wv__srv_conn_refresh(c);
  return true;
}

void wv__srv_write_cb(uv_write_t *req, int status) {
  wr_t *w = (wr_t *)req;
  conn_t *c = w->conn;
  wv__srv_ex_free(w->hold);
  free(w);
  if (!wv__srv_write_done(c, status))
    return;
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
  if (c->throttled && queued < LOW_WATER) {
    c->throttled = false;
    wv__srv_conn_resume(c);
  }
  if (c->fs && !c->fs->started && queued == 0) {
    fs_start(c->fs); /* the head is out: the file follows */
    return;
  }
  if (c->fs && c->tls && queued < TLS_FILE_HIGH / 2) {
    fs_pump(c->fs); /* encrypted file pieces drained: encrypt the next ones */
    return;
  }
  wv__srv_conn_after_response(c);
}

/* Queues w; on failure closes c. */
int wv__srv_conn_write(conn_t *c, wr_t *w) {
  w->conn = c;
  c->writes++;
  int rc = c->tls ? wv__srv_tls_write(c, &w->req, w->bufs, w->nbufs, wv__srv_write_cb)
                  : uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, wv__srv_write_cb);
  return wv__srv_write_queued(c, w, rc);
}

int wv__srv_write_queued(conn_t *c, wr_t *w, int rc) {
  if (rc < 0) {
    c->writes--;
    wv__srv_ex_free(w->hold);
    free(w);
    wv__srv_conn_close(c);
    return rc;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HIGH_WATER)
    c->throttled = true;
  return 0;
}

static void fs_poll_closed(uv_handle_t *h) {
  fsend_t *fs = h->data;
  close(fs->sock);
  free(fs);
}

/* Releases the file send's own resources; the connection is not touched. */
void wv__srv_fs_release(fsend_t *fs) {
  close(fs->fd);
  wv__srv_ex_free(fs->ex);
  if (fs->sock >= 0)
    uv_close((uv_handle_t *)&fs->poll, fs_poll_closed);
  else
    free(fs);
}

/* The body is out (ok) or cannot be (the connection is closed). */
static void fs_finish(fsend_t *fs, bool ok) {
  conn_t *c = fs->conn;
  exchange_t *ex = fs->ex;
  fs->ex = NULL;
  c->fs = NULL;
  wv__srv_fs_release(fs);
  wv__srv_ex_recycle(c, ex);
  if (!ok) {
    wv__srv_conn_close(c);
    return;
  }
  wv__srv_conn_resume(c);
  wv__srv_conn_after_response(c);
}

static void fs_poll_cb(uv_poll_t *h, int status, int events);

/* Waits for the socket to take more: a poll on a duplicate (see DESIGN). */
static int fs_wait(fsend_t *fs) {
  if (fs->sock < 0) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&fs->conn->tcp, &fd))
      return -1;
    int sock = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (sock < 0)
      return -1;
    if (uv_poll_init(&fs->conn->loop->uv, &fs->poll, sock)) {
      close(sock);
      return -1;
    }
    fs->sock = sock;
    fs->poll.data = fs;
  }
  /* Level-triggered and kept armed: restarting would cost an epoll DEL+ADD. */
  if (uv_is_active((uv_handle_t *)&fs->poll))
    return 0;
  return uv_poll_start(&fs->poll, UV_WRITABLE, fs_poll_cb) ? -1 : 0;
}

/*
 * The TLS form of fs_pump: reads, encrypts and queues pieces while less than
 * TLS_FILE_HIGH ciphertext waits, up to FILE_BURST; the write callbacks call
 * fs_pump again as the queue drains (see DESIGN in http/server_tls.c).
 */
static void fs_pump_tls(fsend_t *fs) {
  conn_t *c = fs->conn;
  uv_stream_t *s = (uv_stream_t *)&c->tcp;
  uint64_t burst = 0;
  while (fs->remain > 0 && burst < FILE_BURST &&
         uv_stream_get_write_queue_size(s) < TLS_FILE_HIGH) {
    size_t want = fs->remain < TLS_FILE_CHUNK ? (size_t)fs->remain : TLS_FILE_CHUNK;
    ssize_t n = pread(fs->fd, c->loop->tls_file, want, (off_t)fs->off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        wv_warn("file body ended %llu bytes early", (unsigned long long)fs->remain);
      fs_finish(fs, false);
      return;
    }
    if (wv__srv_tls_send(c, c->loop->tls_file, (size_t)n) < 0)
      return; /* c is closed, and with it the file send */
    fs->off += (uint64_t)n;
    fs->remain -= (uint64_t)n;
    burst += (uint64_t)n;
  }
  if (burst)
    wv__srv_conn_refresh(c);
  if (fs->remain == 0)
    fs_finish(fs, true); /* all queued: the writes in flight finish the response */
}

/* Sends what the socket takes, up to FILE_BURST; then waits or finishes. */
static void fs_pump(fsend_t *fs) {
  conn_t *c = fs->conn;
  if (c->tls) {
    fs_pump_tls(fs);
    return;
  }
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd)) {
    fs_finish(fs, false);
    return;
  }
  uint64_t burst = 0;
  while (fs->remain > 0 && burst < FILE_BURST) {
    size_t want = fs->remain < FILE_BURST ? (size_t)fs->remain : FILE_BURST;
    off_t off = (off_t)fs->off;
    ssize_t n = sendfile(fd, fs->fd, &off, want);
    if (n > 0) {
      fs->off += (uint64_t)n;
      fs->remain -= (uint64_t)n;
      burst += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n == 0)
      wv_warn("file body ended %llu bytes early", (unsigned long long)fs->remain);
    fs_finish(fs, false); /* the client left (EPIPE, ECONNRESET) or the file shrank */
    return;
  }
  if (burst)
    wv__srv_conn_refresh(c);
  if (fs->remain == 0) {
    fs_finish(fs, true);
    return;
  }
  /* Full socket or a spent burst: continue when it is writable (at once for
   * the latter, after the loop's other connections had their turn). */
  if (fs_wait(fs))
    fs_finish(fs, false);
}

static void fs_poll_cb(uv_poll_t *h, int status, int events) {
  fsend_t *fs = h->data;
  (void)events;
  if (status < 0) {
    fs_finish(fs, false);
    return;
  }
  fs_pump(fs);
}

static void fs_start(fsend_t *fs) {
  fs->started = true;
  fs_pump(fs);
}

/* A file send for ex's file body; takes resp->fd. NULL when out of memory. */
static fsend_t *fs_new(conn_t *c, exchange_t *ex) {
  fsend_t *fs = malloc(sizeof *fs);
  if (!fs)
    return NULL;
  fs->conn = c;
  fs->ex = ex;
  fs->fd = ex->resp.fd;
  fs->sock = -1;
  fs->started = false;
  fs->off = ex->resp.file_off;
  fs->remain = ex->resp.file_len;
  ex->resp.fd = -1;
  return fs;
}

/* Drops a file send that never started, with its exchange. */
static void fs_drop(fsend_t *fs) {
  if (!fs)
    return;
  close(fs->fd);
  wv__srv_ex_free(fs->ex);
  free(fs);
}

/*
 * Queues what uv_try_write left of bufs (sent bytes went out) with uv_write;
 * hold is freed after that write. Returns 0, or < 0 with c closed.
 */
static int conn_write_rest(conn_t *c, const uv_buf_t *bufs, unsigned nbufs, size_t sent,
                           exchange_t *hold) {
  size_t head_rest = sent < bufs[0].len ? bufs[0].len - sent : 0;
  wr_t *w = malloc(sizeof *w + head_rest);
  if (!w) {
    wv__srv_ex_free(hold);
    wv__srv_conn_close(c);
    return WV_ENOMEM;
  }
  w->nbufs = 0;
  w->hold = hold;
  if (head_rest) {
    memcpy(w->data, bufs[0].base + (bufs[0].len - head_rest), head_rest);
    w->bufs[w->nbufs++] = uv_buf_init(w->data, (unsigned)head_rest);
  }
  if (nbufs > 1) {
    size_t skip = sent > bufs[0].len ? sent - bufs[0].len : 0;
    w->bufs[w->nbufs++] = uv_buf_init(bufs[1].base + skip, (unsigned)(bufs[1].len - skip));
  }
  return wv__srv_conn_write(c, w);
}

/*
 * Serialises ex's response and sends it on c. Takes ex: it is recycled as
 * c's parse exchange, or kept alive by the write / file send that needs it.
 *
 * The head (with a small body copied behind it) and a large body go out with
 * uv_try_write first. When the socket takes it all — the usual case for a
 * hot manifest — there is no write request, no malloc, and no write-queue
 * round trip through the next loop iteration (which would also re-arm the
 * socket's epoll entry); only what is left is queued with uv_write.
 */
void wv__srv_conn_respond(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  wv_resp_t *resp = &ex->resp;
  wv_req_t *req = &ex->req;
  if (c->ex == ex) /* inline: the parse exchange answers; it comes back below */
    c->ex = NULL;
  wv__srv_count(ex);
  bool head_only = req->method == WV_M_HEAD || resp->status == 204 || resp->status == 304;
  bool keep = req->keep_alive && !resp->close && !l->draining && !ex->err_status;
  bool copy_body = !head_only && resp->fd < 0 && resp->body_len <= SMALL_BODY;
  bool large_body = !head_only && resp->fd < 0 && !copy_body;
  wv_buf_reset(&l->scratch);
  if (wv_resp_write_head(resp, req->registry, keep, false, wv__srv_loop_date(l), &l->scratch) ||
      (copy_body && resp->body_len && wv_buf_append(&l->scratch, resp->body, resp->body_len))) {
    wv__srv_ex_free(ex);
    wv__srv_conn_close(c);
    return;
  }
  if (!keep)
    c->linger = true;
  fsend_t *fs = NULL;
  if (!head_only && resp->fd >= 0 && resp->file_len > 0 && !(fs = fs_new(c, ex))) {
    wv__srv_ex_free(ex);
    wv__srv_conn_close(c);
    return;
  }
  uv_buf_t bufs[2] = {uv_buf_init(l->scratch.data, (unsigned)l->scratch.len)};
  unsigned nbufs = 1;
  size_t total = l->scratch.len;
  if (large_body) {
    bufs[nbufs++] = uv_buf_init((char *)resp->body, (unsigned)resp->body_len);
    total += resp->body_len;
  }
  int n = c->tls ? wv__srv_tls_try_write(c, bufs, nbufs)
                 : uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
#ifdef WV_CREQ_TRACE
  WV_TRACE_AT(req->trace, WV_TRACE_WRITTEN);
  wv_trace_record(req->trace);
#endif
  if (n < 0 && n != UV_EAGAIN) { /* the client is gone */
    fs_drop(fs);
    if (!fs)
      wv__srv_ex_free(ex);
    wv__srv_conn_close(c);
    return;
  }
  size_t sent = n > 0 ? (size_t)n : 0;
  if (sent == total) {
    wv__srv_conn_refresh(c);
    if (fs) {
      c->fs = fs;
      fs_start(fs);
      return;
    }
    wv__srv_ex_recycle(c, ex);
    wv__srv_conn_after_response(c);
    return;
  }
  if (!large_body && !fs)
    wv__srv_ex_recycle(c, ex);
  if (conn_write_rest(c, bufs, nbufs, sent, large_body ? ex : NULL) < 0) {
    fs_drop(fs);
    return;
  }
  if (fs) {
    /* The file follows the head: at once when uv_write sent the rest,
     * else from the head's write callback. */
    c->fs = fs;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
      fs_start(fs);
  }
}

/* A small response built on the loop: errors found while parsing, 404, 405. */
void wv__srv_conn_respond_error(conn_t *c, exchange_t *ex, int status, wv_regerr_t reg,
                                const char *msg) {
  if (ex->req.registry)
    wv_resp_registry_error(&ex->req, &ex->resp, reg, status, msg, NULL);
  else
    wv_resp_api_error(&ex->req, &ex->resp, status, msg);
  if (!ex->resp.status)
    wv_resp_static(&ex->resp, status, NULL, "", 0);
  wv__srv_conn_respond(c, ex);
}

/* Closes a connection whose response is out and that must not be reused. */
void wv__srv_conn_after_response(conn_t *c) {
  if (c->closing || !c->linger || c->writes || c->fs || c->busy)
    return;
  /* Half-close so the client reads the whole response before FIN. */
  wv__srv_conn_close(c);
}
