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
