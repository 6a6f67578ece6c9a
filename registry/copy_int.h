/*
 * registry/copy_int.h — what registry/copy.c (manifests, the walk) and
 * registry/copy_blob.c (blob streaming) share. Not for other modules; their
 * names carry the internal marker wv__ (public names are wv_copy_*).
 */
#ifndef WV_REGISTRY_COPY_INT_H
#define WV_REGISTRY_COPY_INT_H

#include "http/client.h"
#include "registry/copy.h"

#include <stdbool.h>
#include <stddef.h>

#define MIRROR_URL_MAX 4096

/* The state of one wv_copy_image, owned by the thread that runs it. */
typedef struct {
  const wv_app_t *app; /* cfg for the blob GETs (wv_fetch_follow) */
  wv_upstream_t *u;    /* app->upstream */
  const wv_copy_opts_t *o;
  wv_copy_stats_t st;
  char *err;
  size_t errlen;
  bool retry;          /* the last failure is worth another try (transport, 429, 5xx) */
  bool same_registry;  /* source and target are one registry: mounts can work */
  char dst_base[512];  /* "http(s)://host[:port]" of the target */
  size_t chunk;        /* PATCH size */
  int64_t req_timeout; /* per request */
  int64_t conn_timeout;
  int64_t idle_timeout;
} copy_t;

/* Formats m->err and returns rc. */
int wv__copy_fail(copy_t *m, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One log line (printf-style) through the caller's callback. */
void wv__copy_logf(copy_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool wv__copy_cancelled(const copy_t *m);

/*
 * One registry request: dst selects the target (pull,push scope) or the
 * source (pull). path is "/v2/..." (or, for dst with abs_url, an absolute
 * URL sent without credentials). Extra headers may be NULL. On a transport
 * error fills m->err with "<what>: <registry>: <detail>" and sets m->retry.
 */
int wv__copy_request(copy_t *m, bool dst, const char *what, const char *method, const char *path,
                     bool abs_url, const char *const *headers, const void *body, size_t body_len,
                     wv_http_resp_t *resp);

/* "<what>: <registry> answered <status> (<registry error text>)"; sets m->retry for 429/5xx. */
int wv__copy_fail_status(copy_t *m, bool dst, const char *what, const wv_http_resp_t *resp);

/* Copies one blob (HEAD, mount, or a chunked upload streamed from the source). */
int wv__copy_blob(copy_t *m, const wv_copy_desc_t *d);

#endif
