/*
 * registry/proxy.h — the Docker Registry v2 proxy (contract §5): the handler
 * registry/routes.c routes GET/HEAD under /v2/ to (inline: answered on the IO
 * loop from the cache when it can, else deferred to a worker), and the table of
 * upstream rounds in flight. /v2 and /v2/ (ping) stay in http/routes.c, which
 * is registered first. Inspect is registry/inspect.h.
 */
#ifndef WV_PROXY_H
#define WV_PROXY_H

#include "core/app.h"
#include "http/router.h"

/* GET/HEAD under /v2/ (inline; a miss defers to the worker part). */
int wv_proxy_v2_handler(wv_req_t *req, wv_resp_t *resp);

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
typedef struct wv_proxy_flights wv_proxy_flights_t;
int wv_proxy_flights_new(wv_proxy_flights_t **out);
void wv_proxy_flights_free(wv_proxy_flights_t *t);

/*
 * A container request that augments <registry>/<image>:<tag> (docs/proxy.md, "Cold pulls"):
 * makes sure the upstream manifest (for an index, the platform's entries) and its config are
 * in the manifest cache, fetching what is missing once for concurrent callers (the flights of
 * the pulls), so the token's first pull asks the upstream nothing. Acts for who; nothing for
 * a caller the configured credentials do not serve, nor with a tag window of 0 (it would ask
 * the tag again), nor for a digest. Within the tag window an image done before costs no cache
 * read. Blocks (worker only). 0, or the first failure (the pull will meet it again and
 * answer it; the request need not fail).
 */
int wv_proxy_prefetch(const wv_app_t *app, wv_arena_t *a, const char *registry, const char *image,
                      const char *who, const char *tag, const char *platform);

/*
 * True when wv_proxy_prefetch of the same arguments would return without a cache read or a
 * round trip: nothing to prefetch for this caller or tag, or this image and platform were done
 * within the window and the tag cache still names the same digest. Never blocks (IO loop).
 */
bool wv_proxy_prefetch_done(const wv_app_t *app, const char *registry, const char *image,
                            const char *who, const char *tag, const char *platform);

/*
 * The base image of a build (docs/builds.md "The base image check"):
 * <registry>/<image>:<reference> resolved the way a pull resolves it — the tag through the
 * tag cache (wave.storage.cache.tag-duration) and the flights, acting for who (the
 * configured credentials only when who may pull with them; a caller who may not is asked
 * of the upstream anonymously and never served from the caches) — then, for an index, the
 * platform's one entry. Every document is verified against its digest. out->digest: the
 * platform manifest's digest; out->config: its config JSON, out->manifest its body (arena).
 * Blocks (worker only).
 * 0; WV_EUNSUPPORTED (a registry that names an address and is not configured, an index
 * with no or several entries for the platform, not an image), or the failure of the
 * upstream: err says which.
 */
typedef struct {
  char digest[72];
  const char *config;
  size_t config_len;
  const char *manifest; /* the platform manifest (arena; NULL on OOM), verified as digest */
  size_t manifest_len;
} wv_proxy_base_t;
int wv_proxy_resolve_base(const wv_app_t *app, wv_arena_t *a, const char *registry,
                          const char *image, const char *who, const char *reference,
                          const char *platform, wv_proxy_base_t *out, char *err, size_t errlen);

#endif
