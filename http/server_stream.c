/*
 * http/server_stream.c — streamed response bodies (wv_req_stream_begin,
 * wv_req_stream_write): the worker fills chunks and appends them under the
 * stream's lock, the loop writes them (see "Streams" in the DESIGN of
 * http/server.c).
 */
#include "http/server_int.h"
#include "core/err.h"
#include "core/timefmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------- streams ---------- */

static void chunks_free(schunk_t *c) {
  while (c) {
    schunk_t *next = c->next;
    free(c);
    c = next;
  }
}

void wv__srv_stream_unref(stream_t *st) {
  if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
    return;
  chunks_free(st->head);
  chunks_free(st->spare);
  free(st->fill);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
}

/* The client is gone: wake and stop the writer. Any thread. */
void wv__srv_stream_fail(stream_t *st) {
  pthread_mutex_lock(&st->mu);
  st->failed = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/*
 * Notifies the loop that a stream has work (head, chunks, or its end when
 * final). A non-final push never hands the exchange over.
 */
static void stream_push(exchange_t *ex, bool final) {
  loop_t *l = ex->loop;
  pthread_mutex_lock(&l->done_mu);
  if (l->closed) {
    pthread_mutex_unlock(&l->done_mu);
    wv__srv_stream_fail(ex->stream);
    if (final)
      wv__srv_ex_free(ex);
    return;
  }
  if (final)
    ex->final = true;
  bool wake = false;
  if (!ex->in_done) {
    ex->in_done = true;
    wake = wv__srv_done_link(l, ex);
  }
  pthread_mutex_unlock(&l->done_mu);
  if (wake)
    wv__srv_done_wake(l);
}

int wv_req_stream_begin(wv_req_t *req) {
  exchange_t *ex = (exchange_t *)req;
  if (ex->stream || !ex->resp.status || !req->on_worker)
    return WV_EINVAL;
  stream_t *st = calloc(1, sizeof *st);
  if (!st)
    return WV_ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  atomic_init(&st->refs, 1);
  st->chunked = !ex->resp.has_length;
  st->has_length = ex->resp.has_length;
  st->length = ex->resp.length;
  ex->stream = st;
  stream_push(ex, false);
  return 0;
}

/* Writes "<hex>\r\n" so that it ends right before end; returns its length. */
static size_t chunk_prefix(size_t n, char *end) {
  static const char hex[] = "0123456789abcdef";
  char *p = end;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = hex[n & 15];
    n >>= 4;
  } while (n);
  return (size_t)(end - p);
}

/* A chunk to fill: a spare, else a new one (NULL when out of memory). Worker. */
static schunk_t *chunk_get(stream_t *st) {
  pthread_mutex_lock(&st->mu);
  schunk_t *c = st->spare;
  if (c) {
    st->spare = c->next;
    st->nspare--;
  }
  pthread_mutex_unlock(&st->mu);
  if (!c && !(c = malloc(sizeof *c + CHUNK_ROOM + STREAM_CHUNK + 2)))
    return NULL;
  c->next = NULL;
  c->st = st;
  c->len = 0;
  return c;
}

/* Adds the framing; the chunk is then ready to be written. */
static void chunk_frame(const stream_t *st, schunk_t *c) {
  c->off = CHUNK_ROOM;
  c->wlen = c->len;
  if (st->chunked) {
    size_t k = chunk_prefix(c->len, c->data + CHUNK_ROOM);
    c->off -= k;
    c->data[CHUNK_ROOM + c->len] = '\r';
    c->data[CHUNK_ROOM + c->len + 1] = '\n';
    c->wlen += k + 2;
  }
}

/* Appends c; st->mu is held. Returns true when the loop must be told. */
static bool chunk_append_locked(stream_t *st, schunk_t *c) {
  bool notify = st->head == NULL;
  if (st->tail)
    st->tail->next = c;
  else
    st->head = c;
  st->tail = c;
  st->queued += c->wlen;
  return notify;
}

/*
 * Hands st->fill to the loop. With only_if_idle, only when nothing is queued
 * (else the worker keeps filling it); otherwise blocks while STREAM_HIGH
 * bytes are queued. Returns 0, WV_ECLOSED or WV_ETIMEOUT (the client read
 * nothing for server.idle-timeout).
 */
static int stream_publish(exchange_t *ex, stream_t *st, bool only_if_idle) {
  int rc = 0;
  bool notify = false;
  pthread_mutex_lock(&st->mu);
  if (only_if_idle && st->queued > 0 && !st->failed) {
    pthread_mutex_unlock(&st->mu);
    return 0;
  }
  if (!st->failed && st->queued >= STREAM_HIGH) {
    struct timespec dl = wv_deadline_ts(
        CLOCK_REALTIME, ex->stall_ms > 0 ? ex->stall_ms : ex->loop->srv->o.idle_timeout_ms);
    st->waiting = true;
    while (!st->failed && st->queued >= STREAM_HIGH && rc == 0)
      if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) == ETIMEDOUT)
        rc = WV_ETIMEOUT;
    st->waiting = false;
  }
  if (st->failed)
    rc = WV_ECLOSED;
  if (rc == 0) {
    chunk_frame(st, st->fill);
    notify = chunk_append_locked(st, st->fill);
    st->fill = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  if (notify)
    stream_push(ex, false);
  return rc;
}

/* The fill holds the body's last byte: it waits for the handler's verdict. */
static bool holds_last(const stream_t *st) { return st->has_length && st->accepted >= st->length; }

void wv_req_stream_stall_timeout(wv_req_t *req, int64_t ms) {
  ((exchange_t *)req)->stall_ms = ms > 0 ? ms : 0;
}

int wv_req_stream_write(wv_req_t *req, const void *p, size_t n) {
  exchange_t *ex = (exchange_t *)req;
  stream_t *st = ex->stream;
  if (!st)
    return WV_EINVAL;
  if (n == 0 || req->method == WV_M_HEAD)
    return 0;
  const char *src = p;
  while (n > 0) {
    if (!st->fill && !(st->fill = chunk_get(st)))
      return WV_ENOMEM;
    schunk_t *f = st->fill;
    size_t k = STREAM_CHUNK - f->len < n ? STREAM_CHUNK - f->len : n;
    memcpy(f->data + CHUNK_ROOM + f->len, src, k);
    f->len += k;
    src += k;
    n -= k;
    st->accepted += k;
    if (f->len == STREAM_CHUNK && !holds_last(st)) {
      int rc = stream_publish(ex, st, false);
      if (rc)
        return rc;
    }
  }
  /* A partial chunk goes out at once when the socket has nothing to send. */
  if (st->fill && !holds_last(st))
    return stream_publish(ex, st, true);
  pthread_mutex_lock(&st->mu);
  int rc = st->failed ? WV_ECLOSED : 0;
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* The handler returned rc: the held chunk goes out on success, then the end. */
void wv__srv_stream_end(exchange_t *ex, int rc) {
  stream_t *st = ex->stream;
  schunk_t *f = st->fill;
  st->fill = NULL;
  if (f && (rc != 0 || f->len == 0)) {
    free(f);
    f = NULL;
  }
  pthread_mutex_lock(&st->mu);
  if (f) {
    chunk_frame(st, f);
    chunk_append_locked(st, f);
  }
  st->ended = true;
  st->end_rc = rc;
  pthread_mutex_unlock(&st->mu);
  stream_push(ex, true);
}

/* ---------- streams, loop side ---------- */

static void stream_write_cb(uv_write_t *req, int status) {
  schunk_t *w = (schunk_t *)req;
  conn_t *c = w->conn;
  stream_t *st = w->st;
  pthread_mutex_lock(&st->mu);
  st->queued -= w->wlen;
  if (st->waiting && st->queued < STREAM_HIGH)
    pthread_cond_signal(&st->cv);
  if (st->nspare < STREAM_SPARES) {
    w->next = st->spare;
    st->spare = w;
    st->nspare++;
    w = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  free(w);
  wv__srv_stream_unref(st);
  if (wv__srv_write_done(c, status))
    wv__srv_conn_after_response(c);
}

/* Writes a stream's head: status, headers, Content-Length or chunked. */
static int stream_send_head(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  wv_resp_t *resp = &ex->resp;
  bool keep = ex->req.keep_alive && !resp->close && !l->draining;
  if (!keep)
    c->linger = true;
  wv_buf_reset(&l->scratch);
  if (wv_resp_write_head(resp, ex->req.registry, keep, ex->stream->chunked, wv__srv_loop_date(l),
                         &l->scratch))
    return WV_ENOMEM;
  wr_t *w = malloc(sizeof *w + l->scratch.len);
  if (!w)
    return WV_ENOMEM;
  memcpy(w->data, l->scratch.data, l->scratch.len);
  w->bufs[0] = uv_buf_init(w->data, (unsigned)l->scratch.len);
  w->nbufs = 1;
  w->hold = NULL;
  return wv__srv_conn_write(c, w);
}

static int stream_send_chunk(conn_t *c, schunk_t *w) {
  w->conn = c;
  atomic_fetch_add(&w->st->refs, 1);
  c->writes++;
  uv_buf_t b = uv_buf_init(w->data + w->off, (unsigned)w->wlen);
  int rc = c->tls ? wv__srv_tls_write(c, &w->req, &b, 1, stream_write_cb)
                  : uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, stream_write_cb);
  if (rc < 0) {
    c->writes--;
    wv__srv_stream_unref(w->st);
    return WV_EIO;
  }
  return 0;
}

/*
 * Services a stream notification: head first, then the chunks appended so
 * far; on the final push also the end (last chunk, or a cut connection after
 * an error) and the exchange goes back to the connection.
 */
void wv__srv_stream_service(loop_t *l, exchange_t *ex, bool final) {
  stream_t *st = ex->stream;
  conn_t *c = l->slots[ex->slot].gen == ex->gen ? l->slots[ex->slot].conn : NULL;
  if (!c || !c->busy || c->closing) {
    wv__srv_stream_fail(st);
    if (final)
      wv__srv_ex_free(ex);
    return;
  }
  int rc = 0, end_rc = 0;
  bool ended = false;
  if (!st->head_sent) {
    st->head_sent = true;
    c->sx = ex;
    wv__srv_conn_refresh(c);
    pthread_mutex_lock(&st->mu);
    bool aborted = st->ended && st->end_rc != 0 && st->head == NULL;
    pthread_mutex_unlock(&st->mu);
    /* Failed before a byte of body: an honest error beats a truncated 200. */
    if (aborted && final) {
      c->sx = NULL;
      c->busy = false;
      wv__srv_stream_unref(st);
      ex->stream = NULL;
      ex->resp = (wv_resp_t){.fd = -1};
      wv__srv_ex_settle(ex, WV_EUPSTREAM);
      ex->resp.close = true;
      wv__srv_conn_respond(c, ex);
      wv__srv_conn_resume(c);
      return;
    }
    wv__srv_count(ex);
    rc = stream_send_head(c, ex);
    if (rc) /* the connection is closed; the closing path failed the stream */
      goto done;
  }
  pthread_mutex_lock(&st->mu);
  schunk_t *list = st->head;
  st->head = st->tail = NULL;
  ended = st->ended;
  end_rc = st->end_rc;
  pthread_mutex_unlock(&st->mu);
  while (list && !c->closing) {
    schunk_t *next = list->next;
    if (stream_send_chunk(c, list)) {
      wv__srv_conn_close(c);
      break;
    }
    list = next;
  }
  if (list) {
    /* Not written: give the bytes back to the accounting, then drop them. */
    size_t n = 0;
    for (schunk_t *x = list; x; x = x->next)
      n += x->wlen;
    pthread_mutex_lock(&st->mu);
    st->queued -= n;
    pthread_mutex_unlock(&st->mu);
    chunks_free(list);
  }
done:
  if (!final)
    return;
  if (c->closing || !ended) {
    wv__srv_ex_free(ex);
    return;
  }
  c->sx = NULL;
  c->busy = false;
  if (end_rc == 0 && st->chunked && ex->req.method != WV_M_HEAD) {
    static char last[] = "0\r\n\r\n";
    wr_t *w = malloc(sizeof *w);
    if (w) {
      w->bufs[0] = uv_buf_init(last, sizeof last - 1);
      w->nbufs = 1;
      w->hold = NULL;
      if (wv__srv_conn_write(c, w) < 0) {
        wv__srv_ex_free(ex);
        return;
      }
    } else {
      end_rc = WV_ENOMEM;
    }
  }
  if (end_rc != 0)
    c->linger = true; /* the client must see a cut, not a complete body */
  wv__srv_ex_recycle(c, ex);
  wv__srv_conn_resume(c);
  wv__srv_conn_after_response(c);
}
