/*
 * http/server_parse.c — reading a connection and parsing its requests with
 * llhttp (one at a time, see the DESIGN in http/server.c), the caps on URL,
 * headers and body (414, 431, 413), and dispatch: inline, to a worker, or
 * parked.
 */
#include "http/server_int.h"
#include "core/err.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A constant table of callbacks, filled once (pthread_once) and read-only after. */
static llhttp_settings_t parser_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

/* ---------- llhttp callbacks (loop thread) ---------- */

static conn_t *pconn(llhttp_t *p) { return p->data; }

static int refuse(exchange_t *ex, int status) {
  ex->err_status = status;
  return -1;
}

/* The request bodies in flight would pass server.max-body-memory. */
static int refuse_budget(exchange_t *ex) {
  ex->err_msg = "Too many request bodies in flight (server.max-body-memory) - retry later";
  return refuse(ex, 503);
}

static int on_message_begin(llhttp_t *p) {
  conn_t *c = pconn(p);
  c->in_message = true;
  c->ex->t0 = wv_metrics_enabled() || wv_accesslog_on() ? (uint64_t)wv_mono_ns() : 0;
  c->ex->rid = ++c->loop->rid_seq;
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.header_timeout_ms;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  return wv_buf_append(&ex->url, at, len) ? refuse(ex, 414) : 0;
}

static int push_off(exchange_t *ex) {
  uint32_t off = (uint32_t)ex->head.len;
  return wv_buf_append(&ex->hoffs, &off, sizeof off);
}

/* Trailer fields of a chunked body: the head is built and handlers read it, so they are
 * only counted against the header cap (found by tests/fuzz/fuzz_http.c: appending them
 * moved the head buffer under req->headers). */
static int skip_trailer(llhttp_t *p, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  ex->trailer_bytes += len;
  return ex->trailer_bytes > pconn(p)->loop->srv->o.max_header_bytes ? refuse(ex, 431) : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->in_trailers)
    return skip_trailer(p, len);
  if (ex->hstate != 1) {
    if (++ex->nhdr > pconn(p)->loop->srv->o.max_headers || push_off(ex))
      return refuse(ex, 431);
    ex->hstate = 1;
  }
  return wv_buf_append(&ex->head, at, len) ? refuse(ex, 431) : 0;
}

/* Ends the name and records where the value starts. */
static int start_value(exchange_t *ex) {
  if (wv_buf_putc(&ex->head, '\0') || push_off(ex))
    return refuse(ex, 431);
  ex->hstate = 2;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->in_trailers)
    return skip_trailer(p, len);
  if (ex->hstate == 1 && start_value(ex))
    return -1;
  return wv_buf_append(&ex->head, at, len) ? refuse(ex, 431) : 0;
}

static int on_header_value_complete(llhttp_t *p) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->in_trailers)
    return 0;
  if (ex->hstate == 1 && start_value(ex)) /* empty value */
    return -1;
  ex->hstate = 0;
  return wv_buf_putc(&ex->head, '\0') ? refuse(ex, 431) : 0;
}

/* Builds req's method, path, query and header array from what was parsed. */
static int build_head(conn_t *c, exchange_t *ex) {
  wv_req_t *req = &ex->req;
  req->method_name = llhttp_method_name((llhttp_method_t)c->parser.method);
  req->method = wv_router_method(req->method_name);
  if (!ex->url.data || ex->url.data[0] != '/')
    return refuse(ex, 400);
  req->url = ex->url.data;
  char *q = strchr(ex->url.data, '?');
  size_t plen = q ? (size_t)(q - ex->url.data) : ex->url.len;
  char *path = wv_arena_strndup(req->arena, ex->url.data, plen);
  wv_kv_t *h = wv_arena_alloc(req->arena, (size_t)(ex->nhdr ? ex->nhdr : 1) * sizeof *h);
  if (!path || !h)
    return refuse(ex, 500);
  req->path = path;
  req->query = q ? q + 1 : NULL;
  const uint32_t *offs = (const uint32_t *)ex->hoffs.data;
  for (int i = 0; i < ex->nhdr; i++) {
    h[i].name = ex->head.data + offs[2 * i];
    h[i].value = ex->head.data + offs[2 * i + 1];
  }
  req->headers = h;
  req->nheaders = ex->nhdr;
  req->registry = strcmp(path, "/v2") == 0 || strncmp(path, "/v2/", 4) == 0;
  req->keep_alive = llhttp_should_keep_alive(&c->parser);
  req->app = c->loop->srv->o.app;
  memcpy(req->client_ip, c->ip, sizeof req->client_ip);
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = pconn(p);
  exchange_t *ex = c->ex;
  const wv_server_opts_t *o = &c->loop->srv->o;
  if (build_head(c, ex))
    return -1;
  ex->in_trailers = true;
  wv_router_match(c->loop->srv->router, ex->req.method, ex->req.path, strlen(ex->req.path),
                  &ex->match);
  if (c->over_ip_cap)
    return refuse(ex, 503);
  const wv_route_t *r = ex->match.route;
  ex->discard_body = !r;
  ex->body_limit = r ? (r->body_limit ? r->body_limit : o->max_body_size) : DISCARD_LIMIT;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > ex->body_limit)
    return refuse(ex, 413);
  if (!ex->discard_body)
    ex->body.max = ex->body_limit;
  if (!ex->discard_body && (p->flags & F_CONTENT_LENGTH) && p->content_length > 0 &&
      wv__srv_body_reserve(ex, p->content_length))
    return refuse_budget(ex);
  const char *expect = wv_req_header(&ex->req, "Expect");
  ex->expect_continue = expect && strcasecmp(expect, "100-continue") == 0;
  /* No socket only in tests/fuzz/fuzz_http.c, which parses without one. */
  if (ex->expect_continue && ((p->flags & F_CHUNKED) || p->content_length > 0) && c->tcp.loop) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    wr_t *w = malloc(sizeof *w);
    if (w) {
      w->bufs[0] = uv_buf_init((char *)cont, sizeof cont - 1);
      w->nbufs = 1;
      w->hold = NULL;
      wv__srv_conn_write(c, w);
    }
  }
  /* A body may trickle in: the idle timeout, not the header timeout, applies,
   * and the sweep holds it to server.min-body-rate. */
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)o->idle_timeout_ms;
  c->rate_start = uv_now(&c->loop->uv);
  c->rate_bytes = 0;
  return 0;
}

/* Chunked bodies reserve as they grow, 64 KiB at a time. */
#define BODY_RESERVE_STEP (64 * 1024)

static int on_body(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  pconn(p)->rate_bytes += len;
  if (ex->discard_body) {
    ex->discarded += len;
    return ex->discarded > ex->body_limit ? refuse(ex, 413) : 0;
  }
  uint64_t need = (uint64_t)ex->body.len + len;
  if (need > ex->body_held && wv__srv_body_reserve(ex, (need + BODY_RESERVE_STEP - 1) /
                                                           BODY_RESERVE_STEP * BODY_RESERVE_STEP))
    return refuse_budget(ex);
  return wv_buf_append(&ex->body, at, len) ? refuse(ex, 413) : 0;
}

static int on_message_complete(llhttp_t *p) {
  pconn(p)->in_message = false;
  return HPE_PAUSED; /* one request at a time: see DESIGN */
}

static void settings_init(void) {
  llhttp_settings_init(&parser_settings);
  parser_settings.on_message_begin = on_message_begin;
  parser_settings.on_url = on_url;
  parser_settings.on_header_field = on_header_field;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_message_complete = on_message_complete;
}

void wv__srv_parse_init(void) { pthread_once(&settings_once, settings_init); }

void wv__srv_conn_parser_init(conn_t *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
}

/* ---------- dispatch ---------- */

/* Copies the match into the request's arena so a worker can keep it. */
static int bind_route(exchange_t *ex) {
  wv_req_t *req = &ex->req;
  const wv_match_t *m = &ex->match;
  req->route = m->route;
  req->body = ex->body.data ? ex->body.data : "";
  req->body_len = ex->body.len;
  for (int i = 0; i < m->nparams; i++) {
    req->params[i].name = wv_arena_strndup(req->arena, m->param_names[i], m->param_name_lens[i]);
    req->params[i].value = wv_arena_strndup(req->arena, m->param_vals[i], m->param_val_lens[i]);
    if (!req->params[i].name || !req->params[i].value)
      return WV_ENOMEM;
  }
  req->nparams = m->nparams;
  if (m->wild && !(req->wild = wv_arena_strndup(req->arena, m->wild, m->wild_len)))
    return WV_ENOMEM;
  return 0;
}

/* Hands the current exchange to a worker or parker; the connection waits. */
static void conn_detach(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  c->ex = NULL;
  c->busy = true;
  c->deadline = 0;
  ex->slot = c->slot;
  ex->gen = l->slots[c->slot].gen;
}

static void dispatch_unrouted(conn_t *c, exchange_t *ex) {
  wv_req_t *req = &ex->req;
  if (ex->match.allow) {
    char allow[64];
    wv_router_allow_str(ex->match.allow, allow, sizeof allow);
    char *msg =
        wv_arena_sprintf(req->arena, "Method [%s] not allowed for URI [%s]. Allowed methods: [%s]",
                         req->method_name, req->path, allow);
    char *hdr = wv_arena_strdup(req->arena, allow);
    if (hdr)
      wv_resp_header(&ex->resp, "Allow", hdr);
    wv__srv_conn_respond_error(c, ex, 405, WV_REGERR_UNSUPPORTED, msg);
    return;
  }
  char *msg = req->registry ? wv_arena_sprintf(req->arena, "Invalid request path '%s'", req->path)
                            : wv_arena_sprintf(req->arena, "Page Not Found");
  wv__srv_conn_respond_error(c, ex, 404, WV_REGERR_NOT_FOUND, msg);
}

static void dispatch(conn_t *c) {
  exchange_t *ex = c->ex;
  WV_TRACE_AT(ex->req.trace, WV_TRACE_PARSED);
  if (!ex->match.route) {
    dispatch_unrouted(c, ex);
    return;
  }
  if (bind_route(ex)) {
    wv__srv_conn_respond_error(c, ex, 500, WV_REGERR_SERVER_ERROR, "out of memory");
    return;
  }
  const wv_route_t *r = ex->match.route;
  if (r->flags & WV_ROUTE_INLINE) {
    wv_log_set_request(ex->rid);
#ifdef WV_CREQ_TRACE
    wv_trace_cur = ex->req.trace;
    WV_TRACE_AT(ex->req.trace, WV_TRACE_WORKER);
#endif
    int rc = r->handler(&ex->req, &ex->resp);
#ifdef WV_CREQ_TRACE
    wv_trace_cur = NULL;
#endif
    wv_log_set_request(0);
    if (rc == WV_ANSWERED)
      rc = 0;
    if (rc == WV_PARKED) {
      conn_detach(c, ex);
      return;
    }
    if (rc != WV_DEFER) {
      wv__srv_ex_settle(ex, rc);
      wv__srv_conn_respond(c, ex);
      return;
    }
    if (ex->resp.fd >= 0)
      close(ex->resp.fd);
    ex->resp = (wv_resp_t){.fd = -1};
  }
  conn_detach(c, ex);
  int rc = wv__srv_submit(ex);
  if (rc) {
    /* Queue full or stopping: answer 503 here, the connection goes on. */
    c->busy = false;
    wv_resp_error(&ex->req, &ex->resp, rc, "Server busy - retry later");
    ex->resp.status = 503;
    wv__srv_conn_respond(c, ex);
  }
}

/* ---------- reading and parsing ---------- */

static void stop_reading(conn_t *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  loop_t *l = ((conn_t *)h->data)->loop;
  buf->base = l->read_buf;
  buf->len = READ_BUF_SIZE;
}

/* A refused or malformed request: answer and close. */
static void parse_failed(conn_t *c, llhttp_errno_t err) {
  exchange_t *ex = c->ex;
  int status = ex->err_status ? ex->err_status : 400;
  c->ex = NULL;
  c->linger = true;
  stop_reading(c);
  if (status == 400)
    wv_debug("bad request: %s (%s)", llhttp_errno_name(err), llhttp_get_error_reason(&c->parser));
  ex->err_status = status; /* forces Connection: close */
  const char *msg = ex->err_msg     ? ex->err_msg
                    : status == 503 ? "Too many connections from this address - retry later"
                    : status == 408 ? "Request body too slow (below server.min-body-rate)"
                    : status == 431 ? "Request header fields too large"
                    : status == 414 ? "URI too long"
                    : status == 413 ? "Request body too large"
                                    : "Bad request";
  wv_regerr_t reg = status == 413   ? WV_REGERR_SIZE_INVALID
                    : status == 503 ? WV_REGERR_UNAVAILABLE
                    : status == 408 ? WV_REGERR_TIMEOUT
                                    : WV_REGERR_BAD_REQUEST;
  ex->resp = (wv_resp_t){.fd = -1};
  wv__srv_conn_respond_error(c, ex, status, reg, msg);
}

void wv__srv_conn_refuse(conn_t *c, int status) {
  c->ex->err_status = status;
  parse_failed(c, HPE_OK);
}

/* Parses data until a request needs to wait; keeps what is left in c->in. */
void wv__srv_conn_feed(conn_t *c, const char *data, size_t len) {
  while (len > 0 && !c->busy && !c->closing && !c->linger && !c->throttled && !c->fs) {
    if (!c->ex && !(c->ex = wv__srv_ex_new(c->loop))) {
      wv__srv_conn_close(c);
      return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK)
      return;
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      parse_failed(c, err);
      return;
    }
    size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
    data += used;
    len -= used;
    if (err == HPE_PAUSED_UPGRADE) {
      /* No protocol upgrades: answer the request, then close. */
      c->ex->req.keep_alive = false;
      len = 0;
    } else {
      llhttp_resume(&c->parser);
      if (c->parser.upgrade) {
        c->ex->req.keep_alive = false;
        len = 0;
      }
    }
    dispatch(c);
  }
  if (c->linger) {
    stop_reading(c);
    return;
  }
  if (len > 0 && !c->closing && !c->linger) {
    char *in = malloc(len);
    if (!in) {
      wv__srv_conn_close(c);
      return;
    }
    memcpy(in, data, len);
    c->in = in;
    c->in_len = len;
    stop_reading(c);
  }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread > 0) {
    wv__srv_conn_feed(c, buf->base, (size_t)nread);
    return;
  }
  if (nread < 0)
    wv__srv_conn_read_end(c, nread);
}

void wv__srv_conn_read_end(conn_t *c, ssize_t nread) {
  /* EOF or error. A half-sent request is dropped; a response in flight finishes. */
  stop_reading(c);
  if (nread == UV_EOF && !c->in_message && (c->writes || c->fs)) {
    c->linger = true;
    return;
  }
  wv__srv_conn_close(c);
}

void wv__srv_start_reading(conn_t *c) {
  if (!c->reading && !c->closing &&
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, c->tls ? wv__srv_tls_read_cb : read_cb) == 0)
    c->reading = true;
}

/* Continues after a response was queued or the write queue drained. */
void wv__srv_conn_resume(conn_t *c) {
  if (c->closing || c->busy || c->throttled || c->fs)
    return;
  if (c->linger) {
    wv__srv_conn_after_response(c);
    return;
  }
  char *in = c->in;
  size_t n = c->in_len;
  c->in = NULL;
  c->in_len = 0;
  if (in) {
    wv__srv_conn_feed(c, in, n);
    free(in);
  }
  if (c->closing || c->busy || c->throttled || c->fs || c->linger || c->in)
    return;
  if (!c->in_message)
    wv__srv_conn_refresh(c);
  wv__srv_start_reading(c);
  if (c->tls) /* input decrypted or buffered while the request was handled */
    wv__srv_tls_input(c);
}
