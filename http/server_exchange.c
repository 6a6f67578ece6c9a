/*
 * http/server_exchange.c — exchanges (request + response + arena), the
 * done-queue push that brings one back to its loop from any thread, the
 * worker job that runs a detached handler, and the completion of parked and
 * resumed requests (wv_req_complete, wv_req_resume). See the DESIGN in
 * http/server.c.
 */
#include "http/server_int.h"
#include "core/err.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------- exchanges ---------- */

/*
 * A handler may copy parts of the body into the arena (a JSON string holding
 * a data: layer, say), so a raised server.max-body-size raises the arena cap
 * with it; the default body limit keeps the default cap.
 */
static size_t arena_cap(const wv_server_opts_t *o) {
  size_t cap = o->max_body_size * 3;
  return cap / 3 == o->max_body_size && cap > ARENA_MIN_CAP ? cap : ARENA_MIN_CAP;
}

exchange_t *wv__srv_ex_new(loop_t *l) {
  const wv_server_opts_t *o = &l->srv->o;
  exchange_t *ex = calloc(1, sizeof *ex);
  if (!ex)
    return NULL;
  ex->req.arena = wv_arena_new(arena_cap(o));
  if (!ex->req.arena) {
    free(ex);
    return NULL;
  }
  ex->loop = l;
  wv_buf_init(&ex->url, o->max_url_length);
  wv_buf_init(&ex->head, o->max_header_bytes);
  wv_buf_init(&ex->hoffs, (size_t)o->max_headers * 2 * sizeof(uint32_t));
  wv_buf_init(&ex->body, 0);
  ex->resp.fd = -1;
  return ex;
}

int wv__srv_body_reserve(exchange_t *ex, uint64_t total) {
  if (total <= ex->body_held)
    return 0;
  wv_server_t *s = ex->loop->srv;
  uint64_t add = total - ex->body_held;
  if (atomic_fetch_add(&s->body_mem, add) + add > s->o.max_body_memory) {
    atomic_fetch_sub(&s->body_mem, add);
    return -1;
  }
  ex->body_held = total;
  return 0;
}

/* Gives ex's reservation back to the budget. Any thread that owns ex. */
static void body_release(exchange_t *ex) {
  if (ex->body_held) {
    atomic_fetch_sub(&ex->loop->srv->body_mem, ex->body_held);
    ex->body_held = 0;
  }
}

/* Forgets the previous request but keeps the arena's first block and buffers. */
static void ex_reset(exchange_t *ex) {
  if (ex->resp.fd >= 0)
    close(ex->resp.fd);
  wv__srv_stream_unref(ex->stream);
  ex->stream = NULL;
  ex->in_done = ex->final = false;
  wv_arena_reset(ex->req.arena);
  wv_arena_t *arena = ex->req.arena;
  memset(&ex->req, 0, sizeof ex->req);
  memset(&ex->resp, 0, sizeof ex->resp);
  ex->req.arena = arena;
  ex->resp.fd = -1;
  wv_buf_reset(&ex->url);
  wv_buf_reset(&ex->head);
  wv_buf_reset(&ex->hoffs);
  if (ex->body.cap > BIG_BUF_KEEP)
    wv_buf_free(&ex->body);
  wv_buf_reset(&ex->body);
  ex->discarded = 0;
  ex->stall_ms = 0;
  body_release(ex);
  ex->err_status = 0;
  ex->err_msg = NULL;
  ex->has_share = false;
  ex->wnext = NULL;
  ex->t0 = ex->rid = 0; /* set again at the next request's first byte */
  ex->nhdr = 0;
  ex->hstate = 0;
  ex->discard_body = false;
  ex->expect_continue = false;
  ex->in_trailers = false;
  ex->trailer_bytes = 0;
  ex->next = NULL;
}

/* Any thread that owns ex. */
void wv__srv_ex_free(exchange_t *ex) {
  if (!ex)
    return;
  if (ex->resp.fd >= 0)
    close(ex->resp.fd);
  wv__srv_stream_unref(ex->stream);
  body_release(ex);
  wv_arena_free(ex->req.arena);
  wv_buf_free(&ex->url);
  wv_buf_free(&ex->head);
  wv_buf_free(&ex->hoffs);
  wv_buf_free(&ex->body);
  free(ex);
}

/* Gives ex back to c as its parse exchange, or frees it if c has one. */
void wv__srv_ex_recycle(conn_t *c, exchange_t *ex) {
  if (c->ex || c->closing) {
    wv__srv_ex_free(ex);
    return;
  }
  ex_reset(ex);
  c->ex = ex;
}

/* Makes sure a handler's outcome is a response. */
void wv__srv_ex_settle(exchange_t *ex, int rc) {
  if (ex->resp.status)
    return;
  if (rc == 0) {
    wv_error("%s %s: handler returned no response", ex->req.method_name, ex->req.path);
    rc = WV_EINTERNAL;
  }
  if (wv_resp_error(&ex->req, &ex->resp, rc, NULL))
    wv_resp_static(&ex->resp, 500, NULL, "", 0);
}

/* ---------- done-queue (any thread → loop) ---------- */

/*
 * The wake-up is sent after done_mu is released: sent under it, the loop (on a busy or pinned
 * CPU) could run at once and block in done_take on the lock the pusher still holds. senders
 * keeps the handle open meanwhile: the loop closes it only once no pusher is between its
 * link and its wake-up (loop_check_done).
 */
bool wv__srv_done_link(loop_t *l, exchange_t *ex) {
  bool was_empty = l->done_head == NULL;
  ex->next = NULL;
  if (l->done_tail)
    l->done_tail->next = ex;
  else
    l->done_head = ex;
  l->done_tail = ex;
  if (was_empty)
    atomic_fetch_add(&l->senders, 1);
  return was_empty;
}

void wv__srv_done_wake(loop_t *l) {
  uv_async_send(&l->done_async);
  atomic_fetch_sub(&l->senders, 1);
}

void wv__srv_done_push(exchange_t *ex) {
  loop_t *l = ex->loop;
  pthread_mutex_lock(&l->done_mu);
  if (l->closed) {
    pthread_mutex_unlock(&l->done_mu);
    wv__srv_ex_free(ex);
    return;
  }
  bool wake = wv__srv_done_link(l, ex);
  pthread_mutex_unlock(&l->done_mu);
  if (wake)
    wv__srv_done_wake(l);
}

void wv_req_complete(wv_req_t *req) {
  exchange_t *ex = (exchange_t *)req;
  wv__srv_ex_settle(ex, WV_EINTERNAL);
  wv__srv_done_push(ex);
}

int wv_req_resume(wv_req_t *req, wv_req_handler_cb handler) {
  exchange_t *ex = (exchange_t *)req;
  req->defer = handler;
  return wv__srv_submit(ex);
}

void wv__srv_job_run(wv_pool_job_t *job) {
  exchange_t *ex = (exchange_t *)((char *)job - offsetof(exchange_t, job));
  wv_req_handler_cb h = ex->req.defer ? ex->req.defer : ex->req.route->handler;
  ex->req.on_worker = true;
  wv_log_set_request(ex->rid);
#ifdef WV_CREQ_TRACE
  wv_trace_cur = ex->req.trace;
  WV_TRACE_AT(ex->req.trace, WV_TRACE_WORKER);
#endif
  int rc = h(&ex->req, &ex->resp);
#ifdef WV_CREQ_TRACE
  wv_trace_cur = NULL;
#endif
  wv_log_set_request(0);
  if (rc == WV_ANSWERED)
    rc = 0;
  /* Parked: the exchange may already be completed and recycled; hands off.
   * (A streaming handler never parks.) */
  if (rc == WV_PARKED)
    return;
  if (ex->stream) {
    wv__srv_stream_end(ex, rc);
    return;
  }
  wv__srv_ex_settle(ex, rc);
  wv__srv_done_push(ex);
}

void wv__srv_job_cancel(wv_pool_job_t *job) {
  wv__srv_ex_free((exchange_t *)((char *)job - offsetof(exchange_t, job)));
}
