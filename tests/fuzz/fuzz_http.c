/*
 * tests/fuzz/fuzz_http.c — the HTTP request parser of the server
 * (http/server_parse.c): waved's llhttp settings and callbacks with the caps
 * of the default configuration (URL, header count and bytes, body size),
 * the request head as handlers see it (path, query, headers, keep-alive)
 * and route matching, over pipelined requests. The connection has no
 * socket: instead of dispatching, each parsed request is inspected and
 * dropped, and parsing goes on with the bytes that follow, as wv__srv_conn_feed does.
 */
#include "core/config.h"
#include "core/log.h"
#include "http/router.h"
#include "http/server_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int never(wv_req_t *req, wv_resp_t *resp) {
  (void)req, (void)resp;
  abort();
}

/* The shapes of the real route table (core/main.c and the modules it registers). */
static const wv_route_t routes[] = {
    {WV_M_GET | WV_M_HEAD, "/v2", never, WV_ROUTE_INLINE, 0},
    {WV_M_GET | WV_M_HEAD, "/v2/**", never, WV_ROUTE_WORKER, 0},
    {WV_M_POST, "/v1alpha2/container", never, WV_ROUTE_WORKER, 0},
    {WV_M_POST, "/container-token", never, WV_ROUTE_WORKER, 0},
    {WV_M_GET | WV_M_DELETE, "/container-token/{token}", never, WV_ROUTE_WORKER, 4096},
    {WV_M_GET, "/v1alpha2/container/{requestId}/status", never, WV_ROUTE_WORKER, 4096},
    {WV_M_GET, "/view/builds/{id}", never, WV_ROUTE_WORKER, 4096},
    {WV_M_GET, "/service-info", never, WV_ROUTE_INLINE, 0},
};

static wv_server_t *srv;
static loop_t loop;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  static wv_config_t cfg;
  static wv_router_t *router;
  wv_server_opts_t o;
  wv_log_set_level(WV_LOG_OFF);
  if (wv_config_defaults(&cfg) || wv_router_new(&router) ||
      wv_router_add(router, routes, sizeof routes / sizeof routes[0]))
    abort();
  wv_server_opts_init(&o, &cfg);
  if (wv_server_new(&o, router, &srv) || uv_loop_init(&loop.uv))
    abort();
  loop.srv = srv;
  return 0;
}

static size_t inspect(wv_req_t *req) {
  size_t n = strlen(req->path) + (req->query ? strlen(req->query) : 0);
  for (int i = 0; i < req->nheaders; i++)
    n += strlen(req->headers[i].name) + strlen(req->headers[i].value);
  const char *h = wv_req_header(req, "Host");
  n += h ? strlen(h) : 0;
  const char *q = wv_req_query(req, "n");
  n += q ? strlen(q) : 0;
  return n + (req->keep_alive ? 1 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  conn_t *c = calloc(1, sizeof *c);
  if (!c)
    abort();
  c->loop = &loop;
  wv__srv_conn_parser_init(c);
  const char *p = (const char *)data;
  size_t len = size, seen = 0;
  while (len > 0) {
    if (!c->ex && !(c->ex = wv__srv_ex_new(&loop)))
      abort();
    llhttp_errno_t err = llhttp_execute(&c->parser, p, len);
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE)
      break; /* HPE_OK: waits for more; anything else: 400 and close */
    size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
    p += used;
    len -= used;
    if (err == HPE_PAUSED_UPGRADE) {
      len = 0;
    } else {
      llhttp_resume(&c->parser);
      if (c->parser.upgrade)
        len = 0;
    }
    seen += inspect(&c->ex->req) + c->ex->body.len;
    wv__srv_ex_free(c->ex);
    c->ex = NULL;
  }
  wv__srv_ex_free(c->ex);
  free(c);
  return seen == (size_t)-1;
}
