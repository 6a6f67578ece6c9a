/*
 * registry/mirror_int.h — what registry/mirror.c (manifests, the walk) and
 * registry/mirror_blob.c (blob streaming) share. Not for other modules.
 */
#ifndef WV_MIRROR_INT_H
#define WV_MIRROR_INT_H

#include "http/client.h"
#include "registry/mirror.h"

#include <stdbool.h>
#include <stddef.h>

#define MIRROR_URL_MAX 4096

/* The state of one wv_mirror_copy, owned by the thread that runs it. */
typedef struct {
  wv_upstream_t *u;
  const wv_mirror_opts_t *o;
  wv_mirror_stats_t st;
  char *err;
  size_t errlen;
  bool retry;          /* the last failure is worth another try (transport, 429, 5xx) */
  bool same_registry;  /* source and target are one registry: mounts can work */
  char dst_base[512];  /* "http(s)://host[:port]" of the target */
  size_t chunk;        /* PATCH size */
  int64_t req_timeout; /* per request */
  int64_t conn_timeout;
  int64_t idle_timeout;
} mirror_t;

/* Formats m->err and returns rc. */
int mirror_fail(mirror_t *m, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* One log line (printf-style) through the caller's callback. */
void mirror_logf(mirror_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool mirror_cancelled(const mirror_t *m);

/*
 * One registry request: dst selects the target (pull,push scope) or the
 * source (pull). path is "/v2/..." (or, for dst with abs_url, an absolute
 * URL sent without credentials). Extra headers may be NULL. On a transport
 * error fills m->err with "<what>: <registry>: <detail>" and sets m->retry.
 */
int mirror_request(mirror_t *m, bool dst, const char *what, const char *method, const char *path,
                   bool abs_url, const char *const *headers, const void *body, size_t body_len,
                   wv_http_resp_t *resp);

/* "<what>: <registry> answered <status> (<registry error text>)"; sets m->retry for 429/5xx. */
int mirror_fail_status(mirror_t *m, bool dst, const char *what, const wv_http_resp_t *resp);

/* Copies one blob (HEAD, mount, or a chunked upload streamed from the source). */
int mirror_copy_blob(mirror_t *m, const wv_mirror_desc_t *d);

#endif
