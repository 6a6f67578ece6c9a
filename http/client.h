/*
 * http/client.h — the outbound HTTP client (libcurl), used by workers to talk
 * to upstream registries, token services and build-context URLs.
 *
 * Thread rules: wv_http_global_init() once at start-up before any thread
 * runs; each thread then uses its own client from wv_http_client_get(), which
 * keeps one curl easy handle per thread so connections, TLS sessions and DNS
 * answers are reused across requests (the DNS and TLS-session caches are also
 * shared between threads through one share handle). A client is never used by
 * two threads. wv_http_global_cleanup() after every thread has stopped.
 *
 * Policy: redirects are never followed (the caller decides, e.g. registry
 * blob redirects are passed to the client); only http and https; every
 * response body is capped (max_body) unless it is streamed to a callback;
 * connect and total timeouts are always set.
 *
 * SSRF: a request with a netpolicy (URLs taken from requests) is checked
 * before anything is sent: the URL's host is resolved once, every address
 * must be allowed, and curl is made to connect to exactly the checked address
 * (CURLOPT_CONNECT_TO, and an open-socket callback that refuses any other
 * address), over a fresh connection, with no proxy. A host the allow list
 * names is connected to as usual.
 */
#ifndef WV_HTTP_CLIENT_H
#define WV_HTTP_CLIENT_H

#include "core/buf.h"
#include "core/config.h"
#include "core/netpolicy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Redirects a blob GET follows by hand (the client never follows one itself):
 * a registry's redirect to its storage, and that storage's own, with room to spare.
 */
#define WV_HTTP_MAX_BLOB_REDIRECTS 3

typedef struct wv_http_client wv_http_client_t;

/* Returns 0 to go on, or non-zero to abort the transfer (WV_ECLOSED is reported). */
typedef int (*wv_http_body_cb)(void *arg, const char *data, size_t len);

struct wv_http_resp;
/*
 * Called once the head of the final response is in (status and headers set
 * in resp), before its first body byte; a streamer decides here what to do
 * with the body. Non-zero aborts like wv_http_body_cb.
 */
typedef int (*wv_http_head_cb)(void *arg, const struct wv_http_resp *resp);

typedef struct {
  const char *method; /* "GET" (default when NULL), "HEAD", "PUT", "POST", "PATCH", "DELETE" */
  const char *url;    /* absolute http(s) URL */
  const char *const *headers; /* NULL-terminated "Name: value" lines, may be NULL */
  const void *body;           /* request body (PUT/POST/PATCH), may be NULL */
  size_t body_len;
  size_t max_body;            /* cap on the buffered response body; 0 = 8 MiB */
  int64_t timeout_ms;         /* whole transfer; 0 = 30 s, < 0 = none (streams: see idle) */
  int64_t connect_timeout_ms; /* 0 = 10 s */
  int64_t idle_timeout_ms;    /* abort when no byte arrives for this long; 0 = off */
  uint64_t min_rate;       /* with idle_timeout_ms: abort below this many bytes/s over it (0: 1) */
  wv_http_body_cb body_cb; /* when set, the response body goes here, not to resp->body */
  void *body_arg;
  wv_http_head_cb head_cb; /* optional; gets body_arg */
  /* optional; gets body_arg: asked while the transfer runs (curl's progress callback, about
   * once a second even before any byte arrives); true aborts it (WV_ECLOSED) */
  bool (*stop_cb)(void *arg);
  const wv_netpolicy_t *policy; /* when set, the destination must pass it (SSRF, see above) */
} wv_http_req_t;

typedef struct {
  char *name;
  char *value;
} wv_http_header_t;

typedef struct wv_http_resp {
  long status;               /* HTTP status of the (last) response */
  wv_buf_t body;             /* response body (empty when streamed or HEAD) */
  wv_http_header_t *headers; /* headers of the final response, in order */
  size_t nheaders;
  size_t headers_cap;
} wv_http_resp_t;

/* Process-wide setup/teardown. Return 0 or WV_EINTERNAL. */
int wv_http_global_init(void);
void wv_http_global_cleanup(void);

/* The calling thread's client, created on first use; NULL on OOM. Freed at thread exit. */
wv_http_client_t *wv_http_client_get(void);

/*
 * Performs req. On return resp holds status, headers and (unless streamed)
 * the body; the caller frees it with wv_http_resp_free() whatever the result.
 * Returns 0 when an HTTP response was received (any status), WV_ETIMEOUT,
 * WV_ETOOBIG (body over max_body), WV_ECLOSED (body_cb aborted), WV_EDENIED
 * (req->policy refused the destination; nothing was sent), or WV_EUPSTREAM
 * (connection refused, DNS, TLS, protocol, a malformed URL); err gets a
 * one-line reason.
 */
int wv_http_do(wv_http_client_t *c, const wv_http_req_t *req, wv_http_resp_t *resp, char *err,
               size_t errlen);

/*
 * wv_http_do() under the SSRF policy of cfg's wave.security.outbound.* keys:
 * for URLs taken from requests (build contexts, freeze-build layers).
 * req->policy is ignored. Returns as wv_http_do(); WV_EDENIED (err says which
 * address and why) when the destination is not allowed.
 */
int wv_http_do_outbound(wv_http_client_t *c, const wv_config_t *cfg, const wv_http_req_t *req,
                        wv_http_resp_t *resp, char *err, size_t errlen);

/*
 * Checks url against cfg's SSRF policy as wv_http_do_outbound() would, but
 * sends nothing (its host is resolved). Returns 0, WV_EDENIED with the reason
 * in err, WV_EUPSTREAM (not an http(s) URL, or the host does not resolve) or
 * WV_ENOMEM.
 */
int wv_http_outbound_check(const wv_config_t *cfg, const char *url, char *err, size_t errlen);

void wv_http_resp_init(wv_http_resp_t *resp);
void wv_http_resp_free(wv_http_resp_t *resp);
/* Case-insensitive lookup of the first header called name; NULL when absent. */
const char *wv_http_resp_header(const wv_http_resp_t *resp, const char *name);

#endif
