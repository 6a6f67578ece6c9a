/*
 * registry/fetch.h — the proxy's upstream calls: wv_upstream_do() with the
 * configured timeouts and the retry policy of contract §5.6, and the one place
 * that turns an upstream outcome into the registry error the client gets
 * (contract §5.4 step 1, §5.7).
 *
 * Retry: 429, 500, 502, 503, 504 and connection failures are tried again, up
 * to wave.httpclient.retry.attempts tries in all, after a backoff that starts
 * at retry.delay and grows 1.75 times per try (capped by retry.max-delay,
 * +-25% jitter). Timeouts are not retried: the read timeout already waited.
 * A request whose body started to stream to the client (*no_retry set by the
 * caller's callbacks) is never retried.
 *
 * Thread rules: worker threads only (blocking). No global state.
 */
#ifndef WV_FETCH_H
#define WV_FETCH_H

#include "core/app.h"
#include "http/client.h"
#include "http/resp.h"

#include <stdbool.h>

/* A proxy error: what the client is answered with. */
typedef struct {
  int status;       /* HTTP status */
  wv_regerr_t code; /* registry error code */
  char msg[768];    /* client-facing message */
} wv_fetch_err_t;

/* Sets e. Always returns WV_EUPSTREAM so callers can `return wv_fetch_err_set(...)`. */
int wv_fetch_err_set(wv_fetch_err_t *e, int status, wv_regerr_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * A local failure rc while doing what ("Cannot store the image config"): a full disk
 * (WV_ENOSPC) → 507 UNAVAILABLE "Insufficient storage - <path>: <N> bytes free ...",
 * anything else → 500 SERVER_ERROR "<what>: <strerror>". Returns WV_EUPSTREAM.
 */
int wv_fetch_err_local(wv_fetch_err_t *e, const wv_app_t *app, int rc, const char *what);

/* Answers the request with e (registry envelope). */
int wv_fetch_err_respond(wv_req_t *req, wv_resp_t *resp, const wv_fetch_err_t *e);

/*
 * A transport failure (rc from wv_http_do / wv_upstream_do, detail its text):
 * WV_ETIMEOUT → 504 UNKNOWN "Registry '<r>' did not answer in time",
 * WV_EAUTH → the token service's status (401 when none) UNAUTHORIZED,
 * WV_EDENIED → 403 DENIED (the credential policy or the outbound policy,
 * detail says which: waved's own words), WV_ETOOBIG → 502 UNKNOWN, anything
 * else → 502 UNKNOWN "Unable to reach registry '<r>' - connection failed".
 * The transport detail (curl's text: addresses, ports, refused or reset)
 * is logged, never put in the message, so an answer cannot map a network.
 * Returns WV_EUPSTREAM.
 */
int wv_fetch_err_transport(wv_fetch_err_t *e, int rc, long auth_status, const char *registry,
                           const char *detail);

/*
 * An upstream error status on a manifest or blob request for
 * <registry>/<image><sep><ref> (sep ':' for tags, '@' for digests):
 * 404 → MANIFEST_UNKNOWN "repository '<r>/<i>:<t>' not found" (blobs:
 * MANIFEST_BLOB_UNKNOWN), 401/403 → the same status UNAUTHORIZED
 * "repository '…' unauthorized (<status>)", other ≥ 400 → the same status
 * UNKNOWN. Returns WV_EUPSTREAM.
 */
int wv_fetch_err_status(wv_fetch_err_t *e, long status, bool blob, const char *registry,
                        const char *image, const char *ref);

/* True for the statuses the retry policy tries again. */
bool wv_fetch_retryable_status(long status);

/* The backoff before try number `attempt` (1 = first retry), without jitter, in ms. */
int64_t wv_fetch_backoff_ms(const wv_config_t *cfg, int attempt);

/*
 * Sends req (url is a path under /v2/) to registry for repository repo with
 * the configured timeouts (req's own timeouts win when set) and retries.
 * resp holds the final response. Returns 0 when an HTTP response was
 * received (any status: the caller maps it), else fills e and returns the
 * transport error. no_retry may be NULL.
 */
int wv_fetch(const wv_app_t *app, const char *registry, const char *repo, const char *who,
             wv_http_req_t *req, wv_http_resp_t *resp, const bool *no_retry, wv_fetch_err_t *e);

/* True when url (a hop of a blob GET: a path, or absolute) is not on the registry at base. */
bool wv_fetch_off_registry(const char *base, const char *url);

/* Takes a chunk of a streamed blob; non-zero stops the stream. */
typedef int (*wv_fetch_feed_cb)(void *arg, const char *data, size_t len);

/* Why wv_fetch_follow() stopped without a final response. */
typedef enum {
  WV_FETCH_END_OK,         /* resp holds the final response (any status) */
  WV_FETCH_END_NOMEM,      /* out of memory before the first hop */
  WV_FETCH_END_REGISTRY,   /* a hop on the registry failed in transport: e says why */
  WV_FETCH_END_REDIRECTED, /* the redirect target failed: rc (WV_EDENIED: the outbound policy
                            * refused it), detail in the transport's words, url its URL */
  WV_FETCH_END_TOO_MANY,   /* more than WV_HTTP_MAX_BLOB_REDIRECTS redirects */
  WV_FETCH_END_LOCATION,   /* a Location that is not http(s) (location) */
  WV_FETCH_END_STOPPED,    /* the caller's stopped() said so (WV_ECLOSED) */
} wv_fetch_end_t;

/* One blob GET that follows redirects: what the caller sets (in) and reads (out). */
typedef struct {
  /* in */
  const char *registry, *repo, *who, *digest;
  const char *base;           /* "http(s)://host[:port]" of registry (wv_upstream_base_url) */
  size_t max_body;            /* without feed: the body kept in resp, as wv_http_req_t's */
  int64_t timeout_ms;         /* per hop, as wv_http_req_t's; 0 = wave.httpclient's read timeout */
  int64_t connect_timeout_ms; /* per hop; 0 = wave.httpclient's connect timeout */
  int64_t idle_timeout_ms;    /* per hop, as wv_http_req_t's */
  wv_fetch_feed_cb feed;      /* when set, a 200's body streams here */
  void *feed_arg;
  /* Optional, for a caller that may give up (another thread's cancel): asked with feed_arg
   * before each hop and when each response's head arrives; true stops the GET there
   * (WV_FETCH_END_STOPPED, WV_ECLOSED). Mid-body, feed returning non-zero stops it. */
  bool (*stopped)(void *arg);
  /* out */
  wv_fetch_end_t end;
  const char *url;      /* the last hop's URL: a path on the registry, or absolute (arena) */
  bool off;             /* the last hop was off the registry */
  const char *location; /* WV_FETCH_END_LOCATION: the Location (resp's, valid while it is) */
  bool began;           /* bytes went to feed */
  char detail[512];     /* WV_FETCH_END_REDIRECTED: the transport's reason */
  /* private */
  bool ok, halted;
  uint64_t discarded;
} wv_fetch_follow_t;

/*
 * GETs /v2/<repo>/blobs/<digest> from f->registry, following up to
 * WV_HTTP_MAX_BLOB_REDIRECTS redirects the way Wave does: a hop on the
 * registry goes through wv_fetch() (credentials, retries); a hop elsewhere
 * is a URL the registry chose, fetched without credentials under the
 * outbound policy of docs/security.md. Relative Locations are resolved with
 * wv_fetch_absolute_location().
 *
 * Without feed, resp keeps the final response's body (up to max_body). With
 * feed, a 200's body streams to feed, redirect and error bodies are skipped
 * (64 KiB each at most, past which the hop stops), and once a byte went to
 * feed (f->began) there is no retry and no other hop. A hop that answers
 * 3xx without a Location is the final response.
 *
 * Returns 0 with the final response in resp (f->end WV_FETCH_END_OK; the
 * caller maps its status), or a non-zero code with f->end saying where it
 * stopped (e filled for WV_FETCH_END_REGISTRY) so that each caller words its
 * own error. A stream feed stopped returns what the transport returned; the
 * feed's own reason is the caller's to keep. resp is the caller's to free.
 */
int wv_fetch_follow(const wv_app_t *app, wv_arena_t *a, wv_fetch_follow_t *f, wv_http_resp_t *resp,
                    wv_fetch_err_t *e);

/*
 * GETs a blob (an image config) whole, following up to 3 redirects the way
 * Wave does (Authorization dropped when the host changes; a redirect off the
 * registry is a URL the upstream chose, fetched under the outbound policy of
 * docs/security.md), capped at max bytes, and checks it hashes to digest.
 * 0 with *out and *len (arena), or the error in e (502 UNKNOWN for a digest
 * mismatch, 403 DENIED for a refused redirect).
 */
int wv_fetch_blob(const wv_app_t *app, wv_arena_t *a, const char *registry, const char *image,
                  const char *who, const char *digest, size_t max, char **out, size_t *len,
                  wv_fetch_err_t *e);

/*
 * Makes an upstream Location absolute: "/x" and "x" are resolved against
 * base ("http(s)://host[:port]"); absolute http(s) URLs are kept. Arena
 * string; NULL for other schemes or on OOM.
 */
const char *wv_fetch_absolute_location(wv_arena_t *a, const char *base, const char *path,
                                       const char *location);

#endif
