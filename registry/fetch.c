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

bool wv_fetch_off_registry(const char *base, const char *url) {
  size_t bl = strlen(base);
  return url[0] != '/' && !(strncmp(url, base, bl) == 0 && url[bl] == '/');
}

#define DISCARD_MAX (64u << 10) /* bytes of a redirect's or an error's body skipped */

/* True when the caller gave up (f->stopped); f->halted remembers it for the hop's result. */
static bool follow_stopped(wv_fetch_follow_t *f) {
  if (f->stopped && f->stopped(f->feed_arg))
    f->halted = true;
  return f->halted;
}

static bool follow_stop_cb(void *arg) { return follow_stopped(arg); }

static int follow_head(void *arg, const wv_http_resp_t *resp) {
  wv_fetch_follow_t *f = arg;
  f->ok = resp->status == 200;
  return follow_stopped(f) ? 1 : 0;
}

static int follow_body(void *arg, const char *p, size_t n) {
  wv_fetch_follow_t *f = arg;
  if (!f->ok) { /* a redirect's or an error's body: skipped, within reason */
    f->discarded += n;
    return f->discarded > DISCARD_MAX;
  }
  f->began = true;
  return f->feed(f->feed_arg, p, n) ? 1 : 0;
}

/* One hop of a blob GET: on the registry (credentials, retries) or a foreign URL (neither). */
static int follow_hop(const wv_app_t *app, wv_fetch_follow_t *f, wv_http_resp_t *resp,
                      wv_fetch_err_t *e) {
  const wv_config_t *cfg = app->cfg;
  wv_http_req_t req = {.max_body = f->max_body,
                       .timeout_ms = f->timeout_ms,
                       .connect_timeout_ms = f->connect_timeout_ms,
                       .idle_timeout_ms = f->idle_timeout_ms};
  if (f->feed || f->stopped) {
    req.body_cb = f->feed ? follow_body : NULL;
    req.head_cb = follow_head;
    req.stop_cb = f->stopped ? follow_stop_cb : NULL; /* also before the head comes */
    req.body_arg = f;
  }
  f->ok = false;
  f->discarded = 0;
  f->off = wv_fetch_off_registry(f->base, f->url);
  if (!f->off) {
    req.url = f->url[0] == '/' ? f->url : f->url + strlen(f->base);
    int rc = wv_fetch(app, f->registry, f->repo, f->who, &req, resp, f->feed ? &f->began : NULL, e);
    f->end = f->halted ? WV_FETCH_END_STOPPED : rc ? WV_FETCH_END_REGISTRY : WV_FETCH_END_OK;
    return f->halted ? WV_ECLOSED : rc;
  }
  /* A CDN or storage URL the upstream chose: no credentials for the registry,
   * and the outbound policy decides whether waved may go there at all. */
  req.url = f->url;
  if (!req.timeout_ms)
    req.timeout_ms = cfg->hc_read_timeout_ms;
  if (!req.connect_timeout_ms)
    req.connect_timeout_ms = cfg->hc_connect_timeout_ms;
  f->detail[0] = '\0';
  wv_http_resp_free(resp);
  wv_http_resp_init(resp);
  int rc = wv_http_do_outbound(wv_http_client_get(), cfg, &req, resp, f->detail, sizeof f->detail);
  f->end = f->halted ? WV_FETCH_END_STOPPED : rc ? WV_FETCH_END_REDIRECTED : WV_FETCH_END_OK;
  return f->halted ? WV_ECLOSED : rc;
}

int wv_fetch_follow(const wv_app_t *app, wv_arena_t *a, wv_fetch_follow_t *f, wv_http_resp_t *resp,
                    wv_fetch_err_t *e) {
  const char *path = wv_arena_sprintf(a, "/v2/%s/blobs/%s", f->repo, f->digest);
  f->url = path;
  f->location = NULL;
  f->began = false;
  f->halted = false;
  f->off = false;
  f->end = path ? WV_FETCH_END_OK : WV_FETCH_END_NOMEM;
  if (!path)
    return WV_ENOMEM;
  for (int hop = 0;; hop++) {
    if (follow_stopped(f)) {
      f->end = WV_FETCH_END_STOPPED;
      return WV_ECLOSED;
    }
    int rc = follow_hop(app, f, resp, e);
    const char *loc = wv_http_resp_header(resp, "Location");
    if (rc || f->began || resp->status < 300 || resp->status > 399 || !loc)
      return rc;
    if (hop == WV_HTTP_MAX_BLOB_REDIRECTS) {
      f->end = WV_FETCH_END_TOO_MANY;
      return WV_EUPSTREAM;
    }
    const char *next =
        wv_fetch_absolute_location(a, f->base, f->url[0] == '/' ? f->url : path, loc);
    if (!next) {
      f->end = WV_FETCH_END_LOCATION;
      f->location = loc;
      return WV_EUPSTREAM;
    }
    f->url = next;
  }
}

/* wv_fetch_blob's words for where wv_fetch_follow() stopped with rc; returns its code. */
static int follow_err(const wv_fetch_follow_t *f, int rc, wv_fetch_err_t *e) {
  switch (f->end) {
  case WV_FETCH_END_REGISTRY: /* e is set */
    return rc;
  case WV_FETCH_END_REDIRECTED:
    if (rc != WV_EDENIED)
      return wv_fetch_err_transport(e, rc, 0, f->registry, f->detail), rc;
    wv_warn("upstream %s: blob redirect to %s refused: %s", f->registry, f->url, f->detail);
    return wv_fetch_err_set(e, 403, WV_REGERR_DENIED,
                            "Registry '%s' redirected a blob to an address the outbound policy "
                            "does not allow",
                            f->registry);
  case WV_FETCH_END_TOO_MANY:
    return wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN, "Too many redirects fetching '%s/%s@%s'",
                            f->registry, f->repo, f->digest);
  case WV_FETCH_END_LOCATION:
    wv_warn("upstream %s: unusable blob redirect to '%s'", f->registry, f->location);
    return wv_fetch_err_set(e, 502, WV_REGERR_UNKNOWN,
                            "Registry '%s' redirected a blob to an unusable location", f->registry);
  default: /* out of memory */
    wv_fetch_err_set(e, 500, WV_REGERR_SERVER_ERROR, "out of memory");
    return rc;
  }
}

int wv_fetch_blob(const wv_app_t *app, wv_arena_t *a, const char *registry, const char *image,
                  const char *who, const char *digest, size_t max, char **out, size_t *len,
                  wv_fetch_err_t *e) {
  char base[512];
  if (wv_upstream_base_url(app->upstream, registry, base, sizeof base))
    return wv_fetch_err_set(e, 400, WV_REGERR_NAME_INVALID, "Registry name too long: '%s'",
                            registry);
  wv_fetch_follow_t f = {.registry = registry,
                         .repo = image,
                         .who = who,
                         .digest = digest,
                         .base = base,
                         .max_body = max};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_fetch_follow(app, a, &f, &resp, e);
  if (rc) {
    rc = follow_err(&f, rc, e);
    goto out;
  }
  if (resp.status != 200) {
    if (f.off)
      wv_warn("upstream %s: blob redirect target answered %ld", registry, resp.status);
    rc = f.off
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
