/*
 * registry/proxy_int.h — what the parts of the /v2 proxy share (proxy.c:
 * routing, the hot path, tokens, tags; resolve.c: manifests; blobs.c: blobs).
 * Not for use outside registry/.
 *
 * A pull is parsed once on the IO loop into a wv_pctx_t (req->user, in the
 * request's arena); a miss hands the same context to a worker (WV_DEFER).
 * Functions named *_worker block and run only on workers. Each handler part
 * fills resp (errors included) and returns 0, or returns a negative WV_E*
 * code for an internal failure the server turns into a 500.
 */
#ifndef WV_PROXY_INT_H
#define WV_PROXY_INT_H

#include "core/app.h"
#include "http/http.h"
#include "registry/cache.h"
#include "registry/fetch.h"
#include "registry/proxy.h"
#include "registry/ref.h"
#include "registry/token.h"

#include <stdbool.h>

typedef struct {
  wv_app_t *app;
  wv_v2_route_t rt;     /* the parsed /v2 path */
  bool token_form;      /* /v2/wt/<token>/... */
  const char *registry; /* upstream registry of the image */
  const char *image;    /* upstream repository path */
  wv_cache_token_t hot; /* token form: the hot record, when have_hot */
  bool have_hot;
  wv_token_rec_t rec; /* token form, worker: the full record */
  bool have_rec;
  bool pull_counted;     /* the pull permit of this request was taken (loop or worker) */
  const char *pull_user; /* whose permit it was (NULL: the client's address) */
  /* Who the upstream calls act for (upstream.h): the token's creator, or the
   * plain form's Basic account (NULL: anonymous). restricted: the registry
   * has credentials this caller may not pull with, so nothing cached by
   * others is served to it before the upstream has said yes to the caller. */
  const char *who;
  bool restricted;
  bool frozen; /* plain form of the embedded registry's frozen SIFs (build_pull.c) */
  /* Plain form: the Basic credentials need the slow hash, so the loop left
   * their check (and what follows from the account) to the worker. */
  bool auth_on_worker;
} wv_pctx_t;

/* True when the token carries a containerConfig that changes something. */
bool wv__proxy_has_config(wv_pctx_t *ctx, wv_arena_t *a);

/* Answers 200 with a cached manifest: bytes, media type, digest headers. */
int wv__proxy_respond_manifest(wv_req_t *req, wv_resp_t *resp, const wv_cache_entry_t *e);
/* Counts an answered manifest GET for the usage metrics (wave.metrics); any thread. */
void wv__proxy_count_pull(wv_req_t *req, const wv_resp_t *resp, const wv_pctx_t *ctx);

/*
 * Answers from a cached blob entry when that needs no upstream: 'b' (CAS
 * file), 'r' (307). Returns 0 when answered, WV_DEFER for entries that need
 * a worker ('d'), or an error (a CAS blob gone missing → 404 answered, 0).
 */
int wv__proxy_respond_blob_entry(wv_req_t *req, wv_resp_t *resp, const wv_cache_entry_t *e);

/*
 * Resolves <registry>/<image>:<reference> (tag or digest) upstream into the
 * manifest or index it names (verified, digest-cached). Worker only.
 * 0, or the error in err.
 */
int wv__proxy_fetch_manifest(wv_req_t *req, wv_app_t *app, const char *registry, const char *image,
                             const char *who, const char *reference, wv_cache_entry_t *out,
                             wv_fetch_err_t *err);

/* True when registry has credentials that who may not pull with (upstream.h). */
bool wv__proxy_restricted(const wv_app_t *app, const char *registry, const char *who);

/*
 * Coalescing of identical upstream work (resolve.c). join: the first caller
 * for key leads (*leader = true), later ones follow until the leader leaves.
 * A follower waits (0: the leader succeeded; WV_EUPSTREAM: its error in err;
 * WV_ETIMEOUT) and then leaves; the leader leaves with its error (or NULL),
 * which wakes the followers. NULL on OOM. Thread-safe (the table's leaf
 * mutex). The table is app->flights (wv_proxy_flights_new, registry/proxy.h).
 */
typedef struct wv_flight wv_flight_t;
wv_flight_t *wv__flight_join(wv_proxy_flights_t *t, const char *key, bool *leader);
int wv__flight_wait(wv_flight_t *f, int64_t timeout_ms, wv_fetch_err_t *err);
void wv__flight_leave(wv_flight_t *f, bool leader, const wv_fetch_err_t *err);

/* Worker parts. */
int wv__proxy_manifest_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx);
int wv__proxy_blob_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx);
/*
 * Token kind BUILD (build_pull.c): waits for the build (may return
 * WV_PARKED), answers a failed build, serves the embedded registry; returns
 * WV_DEFER when the normal upstream path should serve the request.
 */
int wv__proxy_build_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx);
/*
 * The plain form of the embedded registry's frozen SIFs, /v2/wave/freeze/...
 * (ctx->frozen; build_pull.c): served as a BUILD token of the image would be,
 * parked while its build runs; tags/list is 403.
 */
int wv__proxy_frozen_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx);

/* One batch of cache writes, applied in order (WV_STORE_APPLY_MAX per transaction). */
typedef struct wv_pbatch wv_pbatch_t;
wv_pbatch_t *wv__pbatch_new(wv_arena_t *a);
int wv__pbatch_add(wv_pbatch_t *b, const char *key, const wv_cache_entry_t *e, int64_t expires_ms);
int wv__pbatch_apply(wv_pbatch_t *b, struct wv_store *s);

/*
 * Adds a request layer's entry to b under key. When the new entry is only a
 * location (redirect or docker://) and key already holds verified bytes of
 * that digest, the bytes win — the same digest is the same content, and
 * another request's unverified URL must not take an image's layer (or an
 * upstream blob of the same repository) away from its pulls: a CAS entry is
 * written again with this request's expiry (so it lasts as long as this
 * request's manifest), a blob-cache entry is left as it is. Worker only.
 */
int wv__pbatch_add_layer(wv_pbatch_t *b, struct wv_store *s, const char *key,
                         const wv_cache_entry_t *e, int64_t expires_ms);
/* The cache entry that serves a request layer's location (NULL location: none). */
int wv__proxy_layer_entry(wv_arena_t *a, const char *location, const char *gzip_digest,
                          int64_t gzip_size, wv_cache_entry_t *out);

#endif
