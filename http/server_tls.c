/*
 * http/server_tls.c — TLS connections on the IO loops (contexts: http/tls.c).
 *
 * DESIGN
 *
 * OpenSSL never touches the socket: libuv reads and writes it as for plain
 * HTTP, and OpenSSL works between memory buffers, so the handshake, reads and
 * writes are driven from the loop with no extra thread and no blocking call.
 *
 * Input. The read callback appends ciphertext to the connection's memory
 * BIO (rbio) and decrypts one record at a time into the loop's tls_plain
 * buffer, which goes to the same parser as plain input (wv__srv_conn_feed).
 * When the connection cannot take more (a request is being handled, input is
 * kept in conn->in, the connection lingers or closes), decrypting stops; the
 * ciphertext left stays in rbio, and wv__srv_conn_resume calls
 * wv__srv_tls_input again once the connection goes on. A pass never nests
 * (feeding): a response finished inside the parser (a small file) resumes
 * the connection from within the pass, and the outer pass goes on in order.
 *
 * Output. The write BIO is a sink that appends to the loop's tls_out buffer
 * (one per loop; everything here runs on the loop). After SSL_write or a
 * handshake step the ciphertext is tried on the socket (uv_try_write) and
 * what is left is queued with uv_write, the buffer handed over to the write
 * request without a copy. For a hot manifest that means no malloc, as on
 * the plain path. A request's completion callback (a wr_t or a stream chunk)
 * runs when its ciphertext is written, so write accounting, back-pressure
 * and stream flow control are the plain server's.
 *
 * File bodies. Without kTLS the kernel cannot encrypt, so sendfile(2) has no
 * TLS equivalent here: the file is read in TLS_FILE_CHUNK pieces, encrypted
 * and queued while less than TLS_FILE_HIGH ciphertext waits, and continued
 * from the write callbacks (server_write.c, fs_pump).
 *
 * Plain HTTP on the TLS port. A TLS connection starts with a handshake
 * record (0x16). Anything else gets a plain-text 400 and is closed, as nginx
 * does, so a client that forgot https:// sees why instead of hanging.
 *
 * Handshake errors, bad records and a peer's close_notify close the
 * connection (the latter like EOF); nothing is fatal to the loop. The
 * handshake runs under the header timeout set at accept.
 */
#include "core/err.h"
#include "core/log.h"
#include "http/server_int.h"

#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#define TLS_RECORD_HANDSHAKE 0x16

/* ---------- the output sink ---------- */

/* A constant method table, made once (pthread_once) and read-only after. */
static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static int sink_write(BIO *b, const char *p, int n) {
  wv_buf_t *out = BIO_get_data(b);
  if (n <= 0)
    return 0;
  return wv_buf_append(out, p, (size_t)n) ? -1 : n;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void sink_init(void) {
  sink_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "waved-out");
  if (sink_method) {
    BIO_meth_set_write(sink_method, sink_write);
    BIO_meth_set_ctrl(sink_method, sink_ctrl);
  }
}

/* ---------- connections ---------- */

int wv__srv_tls_conn_init(conn_t *c) {
  wv_server_t *s = c->loop->srv;
  pthread_once(&sink_once, sink_init);
  tlsc_t *t = calloc(1, sizeof *t);
  if (!t || !sink_method)
    goto fail;
  pthread_mutex_lock(&s->tls_mu);
  t->ssl = SSL_new(s->tls_ctx); /* holds a reference: a reload does not affect us */
  pthread_mutex_unlock(&s->tls_mu);
  if (!t->ssl)
    goto fail;
  t->rbio = BIO_new(BIO_s_mem());
  BIO *wbio = BIO_new(sink_method);
  if (!t->rbio || !wbio) {
    BIO_free(t->rbio);
    BIO_free(wbio);
    SSL_free(t->ssl);
    goto fail;
  }
  BIO_set_data(wbio, &c->loop->tls_out);
  BIO_set_init(wbio, 1);
  BIO_set_mem_eof_return(t->rbio, -1); /* empty = "want more", not EOF */
  SSL_set_bio(t->ssl, t->rbio, wbio);
  SSL_set_accept_state(t->ssl);
  c->tls = t;
  return 0;
fail:
  free(t);
  ERR_clear_error();
  return WV_ENOMEM;
}

void wv__srv_tls_conn_free(conn_t *c) {
  if (!c->tls)
    return;
  SSL_free(c->tls->ssl);
  free(c->tls);
  c->tls = NULL;
}

/* ---------- output ---------- */

typedef struct {
  uv_write_t req;
  uv_write_t *orig; /* completed with cb once the ciphertext is written */
  uv_write_cb cb;
  loop_t *loop;
  char *data; /* the ciphertext, kept as a spare or freed after the write */
  size_t cap;
} twr_t;

/* Keeps a written buffer for the next tls_out, or frees it. */
static void spare_put(loop_t *l, char *data, size_t cap) {
  if (l->ntls_spare < TLS_SPARES && cap >= TLS_FILE_CHUNK && cap <= TLS_SPARE_MAX) {
    l->tls_spare[l->ntls_spare].data = data;
    l->tls_spare[l->ntls_spare++].cap = cap;
    return;
  }
  free(data);
}

/* tls_out was handed to a write: give it a spare allocation, if any. */
static void spare_take(loop_t *l) {
  if (l->ntls_spare == 0)
    return;
  l->ntls_spare--;
  l->tls_out.data = l->tls_spare[l->ntls_spare].data;
  l->tls_out.cap = l->tls_spare[l->ntls_spare].cap;
  l->tls_out.len = 0;
}

static void twr_cb(uv_write_t *req, int status) {
  twr_t *t = (twr_t *)req;
  uv_write_t *orig = t->orig;
  uv_write_cb cb = t->cb;
  spare_put(t->loop, t->data, t->cap);
  free(t);
  cb(orig, status);
}

/*
 * Queues the loop's tls_out from byte skip on, completing orig with cb when
 * written. 0, or < 0 with nothing queued (tls_out is emptied either way).
 */
static int out_queue(conn_t *c, size_t skip, uv_write_t *orig, uv_write_cb cb) {
  wv_buf_t *out = &c->loop->tls_out;
  twr_t *t = malloc(sizeof *t);
  size_t len = 0, cap = out->cap;
  char *data = t ? wv_buf_detach(out, &len) : NULL;
  out->max = TLS_OUT_MAX;
  if (!data) {
    free(t);
    wv_buf_reset(out);
    return WV_ENOMEM;
  }
  spare_take(c->loop);
  t->orig = orig;
  t->cb = cb;
  t->loop = c->loop;
  t->data = data;
  t->cap = cap;
  uv_buf_t b = uv_buf_init(data + skip, (unsigned)(len - skip));
  int rc = uv_write(&t->req, (uv_stream_t *)&c->tcp, &b, 1, twr_cb);
  if (rc < 0) {
    spare_put(c->loop, data, cap);
    free(t);
    return rc;
  }
  return 0;
}

/* Queues tls_out from skip as a bare wr_t write (accounting only). 0 or < 0, c closed. */
static int out_queue_plain(conn_t *c, size_t skip) {
  wr_t *w = malloc(sizeof *w);
  if (!w) {
    wv_buf_reset(&c->loop->tls_out);
    wv__srv_conn_close(c);
    return WV_ENOMEM;
  }
  w->conn = c;
  w->hold = NULL;
  w->nbufs = 0;
  c->writes++;
  return wv__srv_write_queued(c, w, out_queue(c, skip, &w->req, wv__srv_write_cb));
}

/* Sends tls_out: what the socket takes now, the rest queued. 0 or < 0, c closed. */
static int out_flush(conn_t *c) {
  wv_buf_t *out = &c->loop->tls_out;
  if (out->len == 0)
    return 0;
  uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n < 0 && n != UV_EAGAIN) {
    wv_buf_reset(out);
    wv__srv_conn_close(c);
    return n;
  }
  size_t sent = n > 0 ? (size_t)n : 0;
  if (sent == out->len) {
    wv_buf_reset(out);
    return 0;
  }
  return out_queue_plain(c, sent);
}

/* Per-record ciphertext overhead, generously: header, tag, content type, padding. */
#define RECORD_OVERHEAD 64

/* SSL_write of all of bufs into tls_out. 0 or WV_EIO. */
static int encrypt(conn_t *c, const uv_buf_t *bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  /* Room for the whole ciphertext at once: no realloc per record. */
  if (wv_buf_reserve(&c->loop->tls_out, total + (total / 16384 + nbufs) * RECORD_OVERHEAD))
    return WV_ENOMEM;
  for (unsigned i = 0; i < nbufs; i++) {
    if (bufs[i].len == 0)
      continue;
    if (SSL_write(c->tls->ssl, bufs[i].base, (int)bufs[i].len) != (int)bufs[i].len) {
      ERR_clear_error();
      wv_buf_reset(&c->loop->tls_out);
      return WV_EIO;
    }
  }
  return 0;
}

int wv__srv_tls_write(conn_t *c, uv_write_t *orig, const uv_buf_t *bufs, unsigned nbufs,
                      uv_write_cb cb) {
  int rc = encrypt(c, bufs, nbufs);
  return rc ? rc : out_queue(c, 0, orig, cb);
}

int wv__srv_tls_try_write(conn_t *c, const uv_buf_t *bufs, unsigned nbufs) {
  size_t total = 0;
  for (unsigned i = 0; i < nbufs; i++)
    total += bufs[i].len;
  int rc = encrypt(c, bufs, nbufs);
  if (rc)
    return rc;
  wv_buf_t *out = &c->loop->tls_out;
  uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n < 0 && n != UV_EAGAIN) {
    wv_buf_reset(out);
    return n;
  }
  size_t sent = n > 0 ? (size_t)n : 0;
  if (sent == out->len)
    wv_buf_reset(out);
  else if (out_queue_plain(c, sent) < 0)
    return WV_EIO; /* c is closed: the caller's close is a no-op */
  return (int)total;
}

int wv__srv_tls_send(conn_t *c, const void *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  if (encrypt(c, &b, 1)) {
    wv__srv_conn_close(c);
    return WV_EIO;
  }
  return out_queue_plain(c, 0);
}

/* ---------- input ---------- */

/* Plain HTTP on the TLS port: a plain 400 that says so, then close. */
static void refuse_plain(conn_t *c) {
  static char msg[] = "HTTP/1.1 400 Bad Request\r\n"
                      "Content-Type: text/plain\r\n"
                      "Content-Length: 45\r\n"
                      "Connection: close\r\n\r\n"
                      "This port speaks HTTPS: use an https:// URL.\n";
  wv_debug("plain HTTP on the TLS port from %s: refused", c->ip);
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = false;
  c->linger = true;
  wr_t *w = malloc(sizeof *w);
  if (!w) {
    wv__srv_conn_close(c);
    return;
  }
  w->bufs[0] = uv_buf_init(msg, sizeof msg - 1);
  w->nbufs = 1;
  w->hold = NULL;
  w->conn = c;
  c->writes++;
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, 1, wv__srv_write_cb) < 0) {
    c->writes--;
    free(w);
    wv__srv_conn_close(c);
  }
}

/* A failed SSL call: logged at debug (clients' mistakes are not ours), closed. */
static void tls_fail(conn_t *c, const char *what, int err) {
  unsigned long e = ERR_peek_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  wv_debug("TLS %s from %s failed: %s (%d)", what, c->ip, r ? r : "connection error", err);
  ERR_clear_error();
  wv__srv_conn_close(c);
}

/* Drives the handshake; true once it is done (false: wait or c closed). */
static bool handshake(conn_t *c) {
  SSL *ssl = c->tls->ssl;
  if (SSL_is_init_finished(ssl))
    return true;
  int r = SSL_do_handshake(ssl);
  int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl, r);
  if (out_flush(c) < 0) /* the server's flight, or an alert */
    return false;
  if (r == 1)
    return true;
  if (err != SSL_ERROR_WANT_READ)
    tls_fail(c, "handshake", err);
  return false;
}

/* The connection takes no more input now (it resumes later, see DESIGN). */
static bool input_blocked(const conn_t *c) { return c->closing || c->linger || c->in; }

void wv__srv_tls_input(conn_t *c) {
  tlsc_t *t = c->tls;
  if (t->feeding || c->closing)
    return;
  t->feeding = true;
  if (handshake(c)) {
    char *pt = c->loop->tls_plain;
    while (!input_blocked(c)) {
      int n = SSL_read(t->ssl, pt, TLS_PLAIN_SIZE);
      if (n > 0) {
        wv__srv_conn_feed(c, pt, (size_t)n);
        continue;
      }
      int err = SSL_get_error(t->ssl, n);
      if (out_flush(c) < 0)
        break;
      if (err == SSL_ERROR_WANT_READ)
        break;
      if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify: the client's EOF */
        wv__srv_conn_read_end(c, UV_EOF);
        break;
      }
      tls_fail(c, "read", err);
      break;
    }
    if (!c->closing && c->loop->tls_out.len)
      out_flush(c); /* session tickets, key updates */
  }
  if (!c->closing && c->reading && (c->linger || c->in)) {
    /* As on the plain path: no reading past a kept request or a last
     * response, so rbio cannot grow without bound. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
  t->feeding = false;
}

void wv__srv_tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread <= 0) {
    if (nread < 0)
      wv__srv_conn_read_end(c, nread);
    return;
  }
  tlsc_t *t = c->tls;
  if (!t->started) {
    t->started = true;
    if ((unsigned char)buf->base[0] != TLS_RECORD_HANDSHAKE) {
      refuse_plain(c);
      return;
    }
  }
  if (BIO_write(t->rbio, buf->base, (int)nread) != (int)nread) {
    wv__srv_conn_close(c);
    return;
  }
  wv__srv_tls_input(c);
}
