/*
 * http/http.h — the request and response a handler sees.
 *
 * A request owns an arena (req->arena) that lives until its response has been
 * written (or dropped because the client went away); everything a handler
 * allocates for the response (body, header values) comes from that arena or
 * is static. A request is touched by one thread at a time: its loop while it
 * is parsed, then the handler's thread (loop for inline routes, a worker for
 * the others, or whoever completes a parked request), then the loop again.
 * A handler never sees the connection: the request carries copies of
 * everything it needs, so it may outlive the client.
 */
#ifndef WV_HTTP_H
#define WV_HTTP_H

#include "core/arena.h"
#include "core/config.h"
#include "core/trace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Methods as bits, so a route can accept several and 405 can list them. */
enum {
  WV_M_GET = 1u << 0,
  WV_M_HEAD = 1u << 1,
  WV_M_POST = 1u << 2,
  WV_M_PUT = 1u << 3,
  WV_M_DELETE = 1u << 4,
  WV_M_PATCH = 1u << 5,
  WV_M_OPTIONS = 1u << 6,
  WV_M_OTHER = 1u << 7, /* anything llhttp knows that we route nowhere */
};

#define WV_ROUTE_MAX_PARAMS 8
#define WV_RESP_MAX_HEADERS 16

/*
 * A handler returns 0 once resp is filled, a negative WV_E* code (the server
 * then answers with the error of the request's URL space unless resp was
 * filled), or WV_PARKED: it kept req and will fill resp later and call
 * wv_req_complete() from any thread.
 *
 * An inline handler may also return WV_DEFER (resp untouched): the server
 * then runs req->defer (or, when NULL, the route's handler again) on a worker
 * with req->on_worker set. This is how a hot path answers from a cache on the
 * loop and hands a miss to a thread that may block. req->user carries what
 * the inline part already worked out (arena memory).
 */
#define WV_PARKED 1
#define WV_DEFER 2

/*
 * WV_ANSWERED: resp is filled and the request is done, as 0 is for a whole
 * handler. The steps a handler is made of (a token check, a rate-limit
 * permit, an auth gate) return 0 to let the request go on and WV_ANSWERED
 * when they answered it, so "answered" has one channel, the return value:
 * `if ((rc = step(req, resp, ...))) return rc;`. The server takes it as 0
 * from a handler, so a handler may return a step's value as it is.
 */
#define WV_ANSWERED 3

typedef struct {
  const char *name;
  const char *value;
} wv_kv_t;

typedef struct wv_req wv_req_t;
typedef struct wv_resp wv_resp_t;
typedef int (*wv_req_handler_cb)(wv_req_t *req, wv_resp_t *resp);

struct wv_req {
  wv_arena_t *arena;
  unsigned method;         /* one WV_M_* bit; HEAD stays HEAD (GET routes answer it) */
  const char *method_name; /* "GET", ... */
  const char *url;         /* request target as received */
  const char *path;        /* url without the query, NUL-terminated */
  const char *query;       /* after '?', or NULL */
  const wv_kv_t *headers;  /* names as received; look up with wv_req_header() */
  int nheaders;
  const char *body; /* NUL-terminated copy (body_len bytes), never NULL */
  size_t body_len;
  wv_kv_t params[WV_ROUTE_MAX_PARAMS]; /* {param} captures, by pattern name */
  int nparams;
  const char *wild; /* what a trailing ** matched ("" if nothing), or NULL */
  bool registry;    /* path is /v2 or under /v2/: registry URL space */
  bool keep_alive;
  const struct wv_route *route;
  char client_ip[46];
  void *app;               /* wv_server_opts_t.app: the composition root's shared state */
  wv_req_handler_cb defer; /* WV_DEFER: the worker-side handler (NULL = route's) */
  void *user;              /* handler state carried across WV_DEFER */
  bool on_worker;          /* running on a worker after WV_DEFER */
#ifdef WV_CREQ_TRACE
  int64_t trace[WV_TRACE_N]; /* core/trace.h: stage stamps, a measurement build only */
#endif
};

struct wv_resp {
  int status;               /* 0 = not filled yet */
  const char *content_type; /* static or arena; NULL = none */
  const char *body;         /* static or arena; body_len bytes */
  size_t body_len;
  int fd; /* >= 0: body is file_len bytes of fd at file_off; the server closes fd */
  uint64_t file_off, file_len;
  wv_kv_t headers[WV_RESP_MAX_HEADERS]; /* extra headers; static or arena strings */
  int nheaders;
  bool close; /* close the connection after this response */
  /*
   * has_length: announce Content-Length: length although no body is given
   * (a HEAD answer, or a stream whose size is known). A stream without it is
   * sent chunked.
   */
  bool has_length;
  uint64_t length;
};

/* Case-insensitive header lookup; NULL if absent. The first occurrence wins. */
const char *wv_req_header(const wv_req_t *req, const char *name);
/* The value of {name} in the matched pattern, or NULL. */
const char *wv_req_param(const wv_req_t *req, const char *name);
/*
 * The value of name in the query string, percent- and '+'-decoded into
 * req->arena; NULL when absent (or on OOM). The first occurrence wins; a
 * decoded NUL ends the value.
 */
char *wv_req_query(const wv_req_t *req, const char *name);

/*
 * The wave.accounts name of the request's HTTP Basic credentials (arena),
 * NULL without an Authorization header (*bad false) or when the header is not
 * valid Basic credentials of an account of cfg (*bad true).
 */
const char *wv_req_basic_account(wv_req_t *req, const wv_config_t *cfg, bool *bad);
/*
 * The same for the IO loop, never paying the slow hash (core/secret.h): when
 * the answer needs it, NULL with *slow true (and *bad false): ask
 * wv_req_basic_account on a worker.
 */
const char *wv_req_basic_account_quick(wv_req_t *req, const wv_config_t *cfg, bool *bad,
                                       bool *slow);

/*
 * Completes a parked request: resp must be filled (or status 0 for a 500).
 * Callable from any thread, once. After it returns the caller must not touch
 * req again. If the client went away meanwhile the response is dropped.
 */
void wv_req_complete(wv_req_t *req);

/*
 * Runs a parked request's handler again on a worker: req->defer = handler,
 * then the request goes through the worker pool as a deferred one would (it
 * may park again, complete, or stream). Callable from any thread, instead of
 * wv_req_complete. 0, or WV_EBUSY (queue full) / WV_ECLOSED (stopping): the
 * request is still the caller's, who then completes it.
 */
int wv_req_resume(wv_req_t *req, wv_req_handler_cb handler);

/*
 * Streaming responses, for worker handlers only (never inline, never parked).
 *
 * wv_req_stream_begin() sends resp's status and headers at once (resp must be
 * filled: status, content type, headers; has_length/length for a known size,
 * else the body is sent chunked) and keeps the request open. The handler then
 * writes the body with wv_req_stream_write(), which copies the bytes and
 * blocks while more than a bounded amount (about 1 MiB) is queued for the
 * client — back-pressure reaches the producer, nothing is held whole. When
 * the handler returns, its return value ends the stream: 0 completes it
 * (chunked: the last chunk is sent); an error cuts the connection, so the
 * client sees a truncated body rather than a false success. With a known
 * length the bytes that complete the body are held until the handler
 * returns 0, so a check made after the last write (a digest) still keeps a
 * wrong body from arriving whole. For HEAD the body is dropped.
 *
 * begin: 0, WV_EINVAL (already streaming, no status) or WV_ENOMEM.
 * write: 0, WV_ECLOSED (client gone: stop producing), WV_ETIMEOUT (client
 * stopped reading for server.idle-timeout), WV_ENOMEM.
 */
int wv_req_stream_begin(wv_req_t *req);
int wv_req_stream_write(wv_req_t *req, const void *p, size_t n);
/*
 * How long wv_req_stream_write may wait for the client to drain before it
 * fails with WV_ETIMEOUT (default: server.idle-timeout). May be called
 * before wv_req_stream_begin; 0 restores the default.
 */
void wv_req_stream_stall_timeout(wv_req_t *req, int64_t ms);

#endif
