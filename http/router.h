/*
 * http/router.h — the routing table.
 *
 * Each area declares its routes as one static array of wv_route_t in its
 * routes.c that reads like the spec's endpoint catalogue, and hands it to
 * wv_router_add() from its wv_<area>_routes_register(), which the composition
 * root calls before the server starts. Patterns are paths
 * whose segments are literals, "{name}" (one non-empty segment) or a final
 * "**" (zero or more trailing characters, as in "/v2/" + "**"). A GET route also
 * answers HEAD (the server drops the body). Routes are tried in the order
 * they were added; the first match wins.
 *
 * Thread rules: build the router on one thread before the server starts; it
 * is read-only afterwards and may be matched from any thread.
 */
#ifndef WV_ROUTER_H
#define WV_ROUTER_H

#include "http/http.h"

#include <stddef.h>

typedef int (*wv_handler_cb)(wv_req_t *req, wv_resp_t *resp);

enum {
  WV_ROUTE_WORKER = 0,      /* default: runs on a worker thread, may block */
  WV_ROUTE_INLINE = 1u << 0 /* runs on the IO loop: must never block */
};

/* The body cap of routes that take no body (GET, DELETE): a few KiB of stray bytes at most. */
#define WV_ROUTE_NO_BODY 4096

typedef struct wv_route {
  unsigned methods; /* WV_M_* bits */
  const char *pattern;
  wv_handler_cb handler;
  unsigned flags;    /* WV_ROUTE_* */
  size_t body_limit; /* max request body; 0 = server.max-body-size */
} wv_route_t;

typedef struct wv_router wv_router_t;

/* A match: route (NULL if none), captured params and the ** remainder. */
typedef struct {
  const wv_route_t *route;
  unsigned allow; /* when route is NULL: methods the path accepts (0 = unknown path) */
  int nparams;
  const char *param_names[WV_ROUTE_MAX_PARAMS]; /* point into the pattern's copy */
  size_t param_name_lens[WV_ROUTE_MAX_PARAMS];
  const char *param_vals[WV_ROUTE_MAX_PARAMS]; /* point into the matched path */
  size_t param_val_lens[WV_ROUTE_MAX_PARAMS];
  const char *wild; /* into the path; NULL if the pattern has no ** */
  size_t wild_len;
} wv_match_t;

/* Creates an empty router. 0 or WV_ENOMEM. */
int wv_router_new(wv_router_t **out);
/* Frees the router (not the route arrays). NULL is a no-op. */
void wv_router_free(wv_router_t *r);
/*
 * Adds n routes. The array must outlive the router (declare it static const).
 * WV_EINVAL on a bad pattern (not starting with '/', ** not last, more than
 * WV_ROUTE_MAX_PARAMS params, empty {}), WV_ENOMEM.
 */
int wv_router_add(wv_router_t *r, const wv_route_t *routes, size_t n);
/*
 * Matches method (one WV_M_* bit) and path (len bytes, no query). Returns 0
 * with m->route set, or WV_ENOTFOUND with m->allow = methods the path would
 * accept (nonzero means 405, zero means 404).
 */
int wv_router_match(const wv_router_t *r, unsigned method, const char *path, size_t len,
                    wv_match_t *m);
/* Writes "GET, HEAD" style text for an allow mask into out (always NUL-terminated). */
void wv_router_allow_str(unsigned allow, char *out, size_t outlen);
/* Parses a method name into its WV_M_* bit (WV_M_OTHER if unknown). */
unsigned wv_router_method(const char *name);

#endif
