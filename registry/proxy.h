/*
 * registry/proxy.h — the Docker Registry v2 proxy (contract §5) and inspect
 * (contract §5.8): the handlers registry/routes.c routes to.
 *
 * Routes: GET/HEAD under /v2/ (inline: answered on the IO loop from the cache
 * when it can, else deferred to a worker) and POST /v1alpha1/inspect
 * (worker). /v2 and /v2/ (ping) stay in http/routes.c, which is
 * registered first.
 */
#ifndef WV_PROXY_H
#define WV_PROXY_H

#include "core/app.h"
#include "http/router.h"

#include <json-c/json.h>

/* The largest POST /v1alpha1/inspect body (a ContainerInspectRequest is a few hundred bytes). */
#define WV_INSPECT_MAX_BODY (64u << 10)

/* GET/HEAD under /v2/ (inline; a miss defers to the worker part). */
int wv_proxy_v2_handler(wv_req_t *req, wv_resp_t *resp);

/* POST /v1alpha1/inspect (registry/inspect.c). */
int wv_inspect_handler(wv_req_t *req, wv_resp_t *resp);

/*
 * What POST /v1alpha1/inspect answers, on behalf of who (an account, NULL =
 * anonymous: registry/upstream.h), for any caller (the handler above and
 * the /view/inspect page): image (a name as a client writes it) resolved
 * upstream, platform (NULL = none) picked from an index. 0 with *out =
 * {"container": ContainerSpec} or {"index": IndexSpec} (the caller's
 * reference); otherwise WV_EINVAL with *status (400 bad input, the
 * upstream's status such as 404, or 502) and *msg (arena or static text,
 * may be NULL). Worker only (upstream calls).
 */
int wv_inspect(wv_req_t *req, const char *image, const char *platform, const char *who,
               json_object **out, int *status, const char **msg);

/*
 * True unless registry (host[:port] of an image name a request chose) names
 * an address rather than a registry — an IP literal in any inet_aton
 * spelling, [IPv6], a trailing dot, localhost or *.localhost — and
 * wave.registries does not list it. The plain /v2/<host>/ form, inspect and
 * containerImage/containerIncludes refuse such names (docs/security.md).
 */
bool wv_proxy_registry_allowed(const wv_app_t *app, const char *registry);

/*
 * The table of upstream rounds in flight (registry/resolve.c): concurrent
 * resolutions of one manifest share one round. One per process, created by
 * the composition root and hung on wv_app_t.flights. new: 0 or WV_ENOMEM;
 * free: after the server stopped (NULL is a no-op).
 */
typedef struct wv_flights wv_flights_t;
int wv_flights_new(wv_flights_t **out);
void wv_flights_free(wv_flights_t *t);

#endif
