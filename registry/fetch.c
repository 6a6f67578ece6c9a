#include "registry/fetch.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "core/preflight.h"
#include "core/rand.h"
#include "registry/upstream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int wv_fetch_err_set(wv_fetch_err_t *e, int status, wv_regerr_t code, const char *fmt, ...) {
  e->status = status;
  e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return WV_EUPSTREAM;
}

int wv_fetch_err_local(wv_fetch_err_t *e, const wv_app_t *app, int rc, const char *what) {
  if (rc != WV_ENOSPC)
    return wv_fetch_err_set(e, 500, WV_REGERR_SERVER_ERROR, "%s: %s", what, wv_strerror(rc));
  if (app->preflight)
    wv_preflight_nospace_text(app->preflight, e->msg, sizeof e->msg);
  else
    wv_preflight_disk_nospace_text(app->cfg->storage_path, app->cfg->storage_reserve, e->msg,
                                   sizeof e->msg);
  e->status = 507;
  e->code = WV_REGERR_UNAVAILABLE;
  return WV_EUPSTREAM;
}

int wv_fetch_err_respond(wv_req_t *req, wv_resp_t *resp, const wv_fetch_err_t *e) {
  return wv_resp_registry_error(req, resp, e->code, e->status, e->msg, NULL);
}

int wv_fetch_err_transport(wv_fetch_err_t *e, int rc, long auth_status, const char *registry,
                           const char *detail) {
  if (rc == WV_EDENIED)
    return wv_fetch_err_set(e, 403, WV_REGERR_DENIED, "Registry '%s' - %s", registry, detail);
  if (rc == WV_EAUTH)
    return wv_fetch_err_set(e, auth_status >= 400 ? (int)auth_status : 401, WV_REGERR_UNAUTHORIZED,
                            "Unable to authenticate with registry '%s' - %s", registry, detail);
  wv_warn("upstream %s: %s (%s)", registry, detail, wv_strerror(rc));
  if (rc == WV_ETIMEOUT)
    return wv_fetch_err_set(e, 504, WV_REGERR_UNKNOWN, "Registry '%s' did not answer in time",
                            registry);
  if (rc == WV_ETOOBIG)
    return wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN, "Registry '%s' sent too much data",
                            registry);
  return wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN,
                          "Unable to reach registry '%s' - connection failed", registry);
}

int wv_fetch_err_status(wv_fetch_err_t *e, long status, bool blob, const char *registry,
                        const char *image, const char *ref) {
  char sep = strncmp(ref, "sha256:", 7) == 0 ? '@' : ':';
  if (status == 404)
    return wv_fetch_err_set(e, 404,
                            blob ? WV_REGERR_MANIFEST_BLOB_UNKNOWN : WV_REGERR_MANIFEST_UNKNOWN,
                            "repository '%s/%s%c%s' not found", registry, image, sep, ref);
  if (status == 401 || status == 403)
    return wv_fetch_err_set(e, (int)status, WV_REGERR_UNAUTHORIZED,
                            "repository '%s/%s%c%s' unauthorized (%ld)", registry, image, sep, ref,
                            status);
  if (status < 400 || status > 599)
    return wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN,
                            "Unexpected status %ld from registry '%s' for '%s/%s%c%s'", status,
                            registry, registry, image, sep, ref);
  return wv_fetch_err_set(e, (int)status, WV_REGERR_UNKNOWN,
                          "Registry '%s' answered %ld for '%s/%s%c%s'", registry, status, registry,
                          image, sep, ref);
}

bool wv_fetch_retryable_status(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

int64_t wv_fetch_backoff_ms(const wv_config_t *cfg, int attempt) {
  double d = (double)cfg->hc_retry_delay_ms;
  for (int i = 1; i < attempt; i++)
    d *= 1.75;
  if (d > (double)cfg->hc_retry_max_delay_ms)
    d = (double)cfg->hc_retry_max_delay_ms;
  return (int64_t)d;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* Backoff with +-25% jitter. */
static void backoff(const wv_config_t *cfg, int attempt) {
  int64_t ms = wv_fetch_backoff_ms(cfg, attempt);
  uint64_t r = 0;
  if (ms > 0 && wv_rand_below((uint64_t)ms / 2 + 1, &r) == 0)
    ms = ms - ms / 4 + (int64_t)r;
  sleep_ms(ms);
}

int wv_fetch(const wv_app_t *app, const char *registry, const char *repo, const char *who,
             wv_http_req_t *req, wv_http_resp_t *resp, const bool *no_retry, wv_fetch_err_t *e) {
  const wv_config_t *cfg = app->cfg;
  if (!req->connect_timeout_ms)
    req->connect_timeout_ms = cfg->hc_connect_timeout_ms;
  if (!req->timeout_ms)
    req->timeout_ms = cfg->hc_read_timeout_ms;
  char err[512];
  int rc = 0;
  for (int attempt = 1;; attempt++) {
    err[0] = '\0';
    wv_http_resp_free(resp);
    wv_http_resp_init(resp);
    rc = wv_upstream_do(app->upstream, registry, repo, false, who, req, resp, err, sizeof err);
    bool retry = (rc == WV_EUPSTREAM || (rc == 0 && wv_fetch_retryable_status(resp->status))) &&
                 attempt < cfg->hc_retry_attempts && !(no_retry && *no_retry);
    if (!retry)
      break;
    wv_debug("upstream %s %s: %s, retry %d", registry, req->url, rc ? err : "retryable status",
             attempt);
    backoff(cfg, attempt);
  }
  if (rc)
    wv_fetch_err_transport(e, rc, resp->status, registry, err);
  return rc;
}

const char *wv_fetch_absolute_location(wv_arena_t *a, const char *base, const char *path,
                                       const char *location) {
  if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
    return wv_arena_strdup(a, location);
  if (strstr(location, "://"))
    return NULL;
  if (strncmp(location, "//", 2) == 0) {
    const char *colon = strchr(base, ':');
    return colon ? wv_arena_sprintf(a, "%.*s:%s", (int)(colon - base), base, location) : NULL;
  }
  if (location[0] == '/')
    return wv_arena_sprintf(a, "%s%s", base, location);
  const char *slash = strrchr(path, '/');
  int dir = slash ? (int)(slash - path) + 1 : 0;
  return wv_arena_sprintf(a, "%s%s%.*s%s", base, dir ? "" : "/", dir, path, location);
}

/* True when url (a hop of a blob fetch) is not on the registry itself. */
static bool hop_off_registry(const char *base, const char *url) {
  size_t bl = strlen(base);
  return url[0] != '/' && !(strncmp(url, base, bl) == 0 && url[bl] == '/');
}

/* One hop of a blob fetch: on the registry (with auth) or a foreign URL (without). */
static int blob_hop(const wv_app_t *app, const char *registry, const char *image, const char *who,
                    const char *base, const char *url, size_t max, wv_http_resp_t *resp,
                    wv_fetch_err_t *e) {
  wv_http_req_t req = {.max_body = max};
  size_t bl = strlen(base);
  if (url[0] == '/' || (strncmp(url, base, bl) == 0 && url[bl] == '/')) {
    req.url = url[0] == '/' ? url : url + bl;
    return wv_fetch(app, registry, image, who, &req, resp, NULL, e);
  }
  /* A CDN or storage URL the upstream chose: no credentials for the registry,
   * and the outbound policy decides whether waved may go there at all. */
  char err[512] = "";
  req.url = url;
  req.timeout_ms = app->cfg->hc_read_timeout_ms;
  req.connect_timeout_ms = app->cfg->hc_connect_timeout_ms;
  wv_http_resp_free(resp);
  wv_http_resp_init(resp);
  int rc = wv_http_do_outbound(wv_http_client_get(), app->cfg, &req, resp, err, sizeof err);
  if (rc == WV_EDENIED) {
    wv_warn("upstream %s: blob redirect to %s refused: %s", registry, url, err);
    return wv_fetch_err_set(
        e, 403, WV_REGERR_DENIED,
        "Registry '%s' redirected a blob to an address the outbound policy does "
        "not allow",
        registry);
  }
  if (rc)
    wv_fetch_err_transport(e, rc, 0, registry, err);
  return rc;
}

int wv_fetch_blob(const wv_app_t *app, wv_arena_t *a, const char *registry, const char *image,
                  const char *who, const char *digest, size_t max, char **out, size_t *len,
                  wv_fetch_err_t *e) {
  char base[512];
  if (wv_upstream_base_url(app->upstream, registry, base, sizeof base))
    return wv_fetch_err_set(e, 400, WV_REGERR_NAME_INVALID, "Registry name too long: '%s'",
                            registry);
  const char *path = wv_arena_sprintf(a, "/v2/%s/blobs/%s", image, digest);
  const char *url = path;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = 0;
  for (int hop = 0;; hop++) {
    rc = blob_hop(app, registry, image, who, base, url, max, &resp, e);
    if (rc)
      goto out;
    const char *loc = wv_http_resp_header(&resp, "Location");
    if (resp.status < 300 || resp.status > 399 || !loc)
      break;
    if (hop == WV_HTTP_MAX_BLOB_REDIRECTS) {
      rc = wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN, "Too many redirects fetching '%s/%s@%s'",
                            registry, image, digest);
      goto out;
    }
    url = wv_fetch_absolute_location(a, base, url[0] == '/' ? url : path, loc);
    if (!url) {
      wv_warn("upstream %s: unusable blob redirect to '%s'", registry, loc);
      rc = wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN,
                            "Registry '%s' redirected a blob to an unusable location", registry);
      goto out;
    }
  }
  if (resp.status != 200) {
    if (hop_off_registry(base, url))
      wv_warn("upstream %s: blob redirect target answered %ld", registry, resp.status);
    rc = hop_off_registry(base, url)
             ? wv_fetch_err_set(
                   e, 502, WV_REGERR_UNKNOWN,
                   "Registry '%s' redirected a blob to a location that did not serve it", registry)
             : wv_fetch_err_status(e, resp.status, true, registry, image, digest);
    goto out;
  }
  char got[WV_DIGEST_STRLEN];
  if (wv_digest_of(resp.body.data ? resp.body.data : "", resp.body.len, got) ||
      strcmp(got, digest) != 0) {
    /* The bytes' hash stays in the log: it would tell the caller something
     * about a response it may not read. */
    wv_warn("upstream %s: blob %s/%s@%s hashes to %s", registry, registry, image, digest, got);
    rc = wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN,
                          "Registry '%s' sent a blob for '%s/%s@%s' that does not match its digest",
                          registry, registry, image, digest);
    goto out;
  }
  *out = wv_arena_strndup(a, resp.body.data ? resp.body.data : "", resp.body.len);
  *len = resp.body.len;
  rc = *out ? 0 : WV_ENOMEM;
  if (rc)
    wv_fetch_err_set(e, 500, WV_REGERR_SERVER_ERROR, "out of memory");
out:
  wv_http_resp_free(&resp);
  return rc;
}
