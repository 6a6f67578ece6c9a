/*
 * registry/blobs.c — blob requests (contract §5.5).
 *
 * DESIGN
 *
 * Cached entries: a rewritten config or a request layer in the CAS is a file
 * response (on the IO loop when the hot path finds it), a small config kept
 * inline in its entry is answered from the entry's bytes; an http(s) layer is a
 * 307; a docker:// layer is fetched from the registry it names. Everything
 * else is delegated to the upstream registry without following redirects:
 *   - 3xx with Location → the same status, Location made absolute,
 *     Content-Length 0, Connection: close (the client fetches from the CDN);
 *   - 200 with a Content-Length up to wave.httpclient.stream-threshold → read
 *     whole, digest checked, answered;
 *   - a larger or unsized 200 → streamed through (http/http.h streams): the
 *     thread (a registry worker, never an API worker: http/server_peer.c)
 *     writes each piece as it arrives and blocks while the client is slow,
 *     so a layer is never held in memory. Paced: below
 *     wave.blob-streams.min-rate over a rate-window, or past size / min-rate
 *     + 2 windows, the stream is cut (docs/proxy.md, "Slow peers"). The bytes are hashed on the
 *     way; a body that does not hash to the requested digest (or ends early)
 *     cuts the connection, so a client never accepts wrong content;
 *   - errors → the registry error of the status.
 * Blob cache (wave.blob-cache.enabled): a 200 body that is sent to a GET is
 * also written to the blob cache and, once its digest checks, published
 * there with a 'u' entry for this repository carrying the time the
 * upstream served it; within wave.storage.cache.duration of that the next
 * pull is a sendfile on the IO loop. Later, a HEAD (no retries) asks the
 * upstream whether it still serves the blob to these credentials before the
 * bytes come from disk (and renews the time); while the upstream is down
 * (no connection, timeout, 5xx) they come from disk anyway, as cached
 * manifests do. Only a repository with a 'u' entry ever reads the cache: a
 * HEAD proves nothing about bytes, so a repository without one GETs, and
 * the digest check of that GET is what admits it. Concurrent first GETs of
 * one blob share one upstream stream (registry/blobfill.h).
 * HEAD asks upstream with HEAD and answers with the blob's headers (contract
 * §5.3 says 400; real clients — containerd, skopeo — HEAD blobs).
 */
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "registry/blobfill.h"
#include "registry/mediatype.h"
#include "registry/proxy_int.h"
#include "registry/upstream.h"
#include "storage/blobcache.h"
#include "storage/cas.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERROR_BODY_MAX (64u << 10)
#define FOLLOW_CHUNK (256u << 10) /* a follower's read from the leader's file */

/* Who the upstream calls of this pull act for (proxy_int.h). */
static const char *who_of(const wv_req_t *req) {
  const wv_pctx_t *ctx = req->user;
  return ctx ? ctx->who : NULL;
}

static int blob_headers(wv_resp_t *resp, const char *digest) {
  wv_resp_header(resp, "Docker-Content-Digest", digest);
  return wv_resp_header(resp, "Etag", digest);
}

static int redirect(wv_req_t *req, wv_resp_t *resp, int status, const char *location) {
  wv_resp_static(resp, status, NULL, "", 0);
  wv_resp_header(resp, "Location", location);
  resp->close = true;
  return 0;
}

/* A blob from the blob cache: 0 answered, WV_ENOTFOUND when it is not there (any more). */
static int respond_cached(wv_req_t *req, wv_resp_t *resp, const char *digest,
                          const char *media_type) {
  wv_bcache_t *bc = ((wv_app_t *)req->app)->bcache;
  int fd = -1;
  uint64_t size = 0;
  if (!bc || wv_bcache_open_blob(bc, digest, &fd, &size) != 0)
    return WV_ENOTFOUND;
  wv_resp_file(resp, 200, media_type && *media_type ? media_type : "application/octet-stream", fd,
               0, size);
  return blob_headers(resp, digest);
}

/*
 * A 'u' entry's location is when the upstream last confirmed the blob to
 * this repository (unix ms); within wave.storage.cache.duration of it the
 * cached bytes are sent without asking.
 */
static bool confirmed_recently(const wv_app_t *app, const wv_cache_entry_t *e) {
  char *end;
  long long at = strtoll(e->location, &end, 10);
  int64_t now = wv_now_ms();
  return *e->location && !*end && at <= now + 60000 && now - at <= app->cfg->cache_ttl_ms;
}

int wv__proxy_respond_blob_entry(wv_req_t *req, wv_resp_t *resp, const wv_cache_entry_t *e) {
  wv_app_t *app = req->app;
  if (e->kind == WV_CACHE_REDIRECT)
    return redirect(req, resp, 307, e->location);
  if (e->kind == WV_CACHE_UPSTREAM)
    return confirmed_recently(app, e) && respond_cached(req, resp, e->digest, e->media_type) == 0
               ? 0
               : WV_DEFER;
  if (e->kind != WV_CACHE_BLOB)
    return WV_DEFER;
  if (e->body_len) { /* a small config kept inline (registry/cache.h) */
    wv_resp_static(resp, 200, e->media_type[0] ? e->media_type : "application/octet-stream",
                   e->body, e->body_len);
    return blob_headers(resp, e->digest);
  }
  int fd = -1;
  uint64_t size = 0;
  int rc = wv_cas_open_blob(app->cas, e->digest, &fd, &size);
  if (rc)
    return wv_resp_registry_error(
        req, resp, WV_REGERR_BLOB_UNKNOWN, 404,
        wv_arena_sprintf(req->arena, "blob '%s' is not in the blob store", e->digest), NULL);
  wv_resp_file(resp, 200, e->media_type[0] ? e->media_type : "application/octet-stream", fd, 0,
               size);
  return blob_headers(resp, e->digest);
}

/* ---- pace: wave.blob-streams.min-rate over each rate-window, and in total -------- */

typedef struct {
  uint64_t min_rate;
  int64_t window_ms;
  int64_t win_at;    /* monotonic ms the current window began */
  uint64_t win_from; /* bytes moved when it began */
  int64_t end_at;    /* total deadline (monotonic ms) */
  int64_t began;     /* monotonic ms the stream began (for the log) */
} pace_t;

/* Every stream ends by wave.blob-streams.max-duration, whatever the upstream says of its size
 * (an unsized body, or a Content-Length of a terabyte, would otherwise never end). */
static void pace_init(pace_t *p, const wv_config_t *cfg) {
  *p = (pace_t){.min_rate = cfg->bs_min_rate ? cfg->bs_min_rate : 1,
                .window_ms = cfg->bs_rate_window_ms > 0 ? cfg->bs_rate_window_ms : 30000,
                .win_at = wv_mono_ms()};
  p->began = p->win_at;
  p->end_at = p->began + (cfg->bs_max_duration_ms > 0 ? cfg->bs_max_duration_ms : 3600000);
}

static void pace_log(const pace_t *p, const char *digest, const char *who, uint64_t done) {
  wv_info("blob %s: %s cut after %llu bytes in %lld ms (wave.blob-streams.min-rate %llu B/s over "
          "%lld ms, max-duration)",
          digest, who, (unsigned long long)done, (long long)(wv_mono_ms() - p->began),
          (unsigned long long)p->min_rate, (long long)p->window_ms);
}

/* The size is known: the stream must also end by size / min-rate + 2 windows (if sooner). */
static void pace_length(pace_t *p, int64_t length) {
  if (length < 0)
    return;
  uint64_t secs = (uint64_t)length / p->min_rate; /* no overflow below: capped at a year */
  uint64_t ms = secs > 366ull * 86400
                    ? 366ull * 86400 * 1000
                    : secs * 1000u + (uint64_t)length % p->min_rate * 1000u / p->min_rate;
  int64_t at = wv_mono_ms() + 2 * p->window_ms + (int64_t)ms;
  if (at < p->end_at)
    p->end_at = at;
}

/* done bytes moved so far: WV_ETIMEOUT when a window closed below the rate or the deadline passed.
 */
static int pace_check(pace_t *p, uint64_t done) {
  int64_t now = wv_mono_ms();
  if (now > p->end_at)
    return WV_ETIMEOUT;
  if (now - p->win_at < p->window_ms)
    return 0;
  if (done - p->win_from < p->min_rate * (uint64_t)(now - p->win_at) / 1000u)
    return WV_ETIMEOUT;
  p->win_at = now;
  p->win_from = done;
  return 0;
}

/* ---- delegate upstream ------------------------------------------------------------ */

typedef enum { MODE_NONE, MODE_BUFFER, MODE_STREAM, MODE_DISCARD } mode_t_;

typedef struct {
  wv_req_t *req;
  wv_resp_t *resp;
  wv_bcache_writer_t *tee; /* the streamed body goes to the blob cache too */
  wv_bfill_t *fill;        /* leader of concurrent GETs of this blob: they read the tee */
  const char *media_type;  /* upstream Content-Type of a 200 */
  const char *digest;
  uint64_t threshold;
  mode_t_ mode;
  bool began; /* the client has our head: no retry, no other answer */
  int write_rc;
  wv_buf_t buf;
  wv_sha256_t sha;
  bool sha_on;
  uint64_t streamed;
  int64_t length; /* upstream Content-Length, -1 when absent */
  pace_t pace;    /* of the streamed body */
} dlg_t;

static int64_t content_length(const wv_http_resp_t *r) {
  const char *cl = wv_http_resp_header(r, "Content-Length");
  if (!cl || !*cl)
    return -1;
  char *end;
  long long v = strtoll(cl, &end, 10);
  return *end || v < 0 ? -1 : v;
}

static int dlg_begin_stream(dlg_t *d, const wv_http_resp_t *r) {
  wv_req_t *req = d->req;
  const char *ct = wv_http_resp_header(r, "Content-Type");
  d->media_type = ct ? wv_arena_strdup(req->arena, ct) : "application/octet-stream";
  wv_resp_static(d->resp, 200, d->media_type, NULL, 0);
  blob_headers(d->resp, d->digest);
  wv_bcache_t *bc = ((wv_app_t *)req->app)->bcache;
  if (bc && wv_bcache_begin(bc, d->length, &d->tee) != 0)
    d->tee = NULL; /* too big, disk low or an IO error: stream without keeping it */
  /* Shared only when the cache keeps it and its size is known (an unsized body may outgrow
   * its reservation); otherwise followers fetch on their own at once. */
  if (d->fill &&
      (!d->tee || d->length < 0 ||
       wv_bfill_start(d->fill, wv_bcache_writer_fd(d->tee), d->length, d->media_type) != 0))
    wv_bfill_finish(d->fill, false);
  if (d->length >= 0) {
    d->resp->has_length = true;
    d->resp->length = (uint64_t)d->length;
  }
  pace_init(&d->pace, ((wv_app_t *)req->app)->cfg);
  pace_length(&d->pace, d->length);
  if (wv_sha256_init(&d->sha))
    return WV_ENOMEM;
  d->sha_on = true;
  int rc = wv_req_stream_begin(req);
  if (rc)
    return rc;
  d->began = true;
  d->mode = MODE_STREAM;
  return 0;
}

/* The head of each upstream response (a 401 retry sends a second one). */
static int dlg_head(void *arg, const wv_http_resp_t *r) {
  dlg_t *d = arg;
  wv_buf_reset(&d->buf);
  d->length = content_length(r);
  if (r->status >= 300 && r->status <= 399) {
    d->mode = MODE_DISCARD;
  } else if (r->status == 200 && d->length >= 0 && (uint64_t)d->length <= d->threshold) {
    d->mode = MODE_BUFFER;
    d->buf.max = d->threshold;
  } else if (r->status == 200) {
    return dlg_begin_stream(d, r);
  } else {
    d->mode = MODE_BUFFER;
    d->buf.max = ERROR_BODY_MAX;
  }
  return 0;
}

static int dlg_body(void *arg, const char *data, size_t len) {
  dlg_t *d = arg;
  switch (d->mode) {
  case MODE_STREAM:
    wv_sha256_update(&d->sha, data, len);
    d->streamed += len;
    if (d->tee && wv_bcache_write(d->tee, data, len) != 0) {
      wv_bcache_abort(d->tee);
      d->tee = NULL;
      if (d->fill) /* the followers' source is gone: cut them */
        wv_bfill_finish(d->fill, false);
    } else if (d->tee && d->fill) {
      wv_bfill_progress(d->fill, d->streamed);
    }
    if (pace_check(&d->pace, d->streamed) != 0) {
      /* Too slow. A shared fill first drops its own slow client and goes on for the
       * followers (they check their own pace); anything else is cut. */
      if (d->write_rc || !d->tee || !d->fill || !wv_bfill_followed(d->fill)) {
        pace_log(&d->pace, d->digest, "stream", d->streamed);
        return WV_ETIMEOUT;
      }
      pace_log(&d->pace, d->digest, "the leading client of a shared stream", d->streamed);
      d->write_rc = WV_ETIMEOUT;
      int64_t began = d->pace.began;
      pace_init(&d->pace, ((wv_app_t *)d->req->app)->cfg);
      d->pace.began = began;
      pace_length(&d->pace, d->length >= 0 ? d->length - (int64_t)d->streamed : -1);
      d->pace.win_from = d->streamed;
    }
    /* Client gone: the fill goes on while a follower waits for it, else it stops. */
    if (d->write_rc)
      return d->tee && d->fill && wv_bfill_followed(d->fill) ? 0 : d->write_rc;
    d->write_rc = wv_req_stream_write(d->req, data, len);
    return d->write_rc && !(d->tee && d->fill && wv_bfill_followed(d->fill)) ? d->write_rc : 0;
  case MODE_BUFFER:
    return wv_buf_append(&d->buf, data, len);
  default:
    return 0;
  }
}

/* The streamed body is complete and has the requested digest. */
static int dlg_finish_stream(dlg_t *d, int rc, const char *registry) {
  uint8_t h[WV_SHA256_LEN];
  char got[WV_DIGEST_STRLEN];
  d->sha_on = false;
  if (wv_sha256_final(&d->sha, h))
    return WV_ENOMEM;
  wv_digest_format(h, got);
  if (rc) {
    if (d->write_rc == 0)
      wv_warn("blob %s from %s cut after %llu bytes: %s", d->digest, registry,
              (unsigned long long)d->streamed, wv_strerror(rc));
    return rc;
  }
  if (d->length >= 0 && d->streamed != (uint64_t)d->length)
    return WV_EIO;
  if (strcmp(got, d->digest) != 0) {
    wv_error("blob %s from %s hashes to %s: connection cut", d->digest, registry, got);
    return WV_EDIGEST;
  }
  return 0;
}

/*
 * Records that this repository's upstream served (or just confirmed) digest,
 * whose bytes are in the blob cache: the entry lives as long as an unused
 * cached blob does and carries the confirmation time.
 */
static void remember(wv_req_t *req, const char *registry, const char *image, const char *digest,
                     uint64_t size, const char *media_type) {
  wv_app_t *app = req->app;
  char at[24];
  snprintf(at, sizeof at, "%lld", (long long)wv_now_ms());
  wv_cache_entry_t e = {.kind = WV_CACHE_UPSTREAM,
                        .media_type = media_type ? media_type : "",
                        .digest = digest,
                        .size = size,
                        .location = at};
  const char *key = wv_cache_key_blob(req->arena, registry, image, digest);
  wv_buf_t b;
  wv_buf_init(&b, 4096);
  int rc = key ? wv_cache_encode(&e, &b) : WV_ENOMEM;
  /* Durable before the worker moves on: GETs queued behind this one must
   * find the entry, or they fetch the blob again. */
  if (rc == 0)
    rc = wv_store_put(app->store, WV_DB_MANIFESTS, key, b.data, b.len,
                      wv_now_ms() + app->cfg->blob_cache_idle_ms);
  if (rc)
    wv_debug("blob cache entry for %s/%s@%s not written: %s", registry, image, digest,
             wv_strerror(rc));
  wv_buf_free(&b);
}

/* A verified small body: into the blob cache (best effort) for the next GET. */
static void keep_small(wv_req_t *req, const dlg_t *d, const char *registry, const char *image,
                       const char *ct) {
  wv_bcache_t *bc = ((wv_app_t *)req->app)->bcache;
  if (bc && wv_bcache_put(bc, d->buf.data ? d->buf.data : "", d->buf.len, d->digest) == 0)
    remember(req, registry, image, d->digest, d->buf.len, ct);
}

/* Answers from the finished upstream response (nothing streamed). */
static int dlg_answer(dlg_t *d, const wv_http_resp_t *r, const char *registry, const char *image,
                      const char *path) {
  wv_req_t *req = d->req;
  wv_resp_t *resp = d->resp;
  wv_fetch_err_t e;
  const char *loc = wv_http_resp_header(r, "Location");
  if (r->status >= 300 && r->status <= 399 && loc) {
    char base[512];
    if (wv_upstream_base_url(((wv_app_t *)req->app)->upstream, registry, base, sizeof base))
      return WV_EINVAL;
    const char *abs = wv_fetch_absolute_location(req->arena, base, path, loc);
    if (!abs) {
      wv_fetch_err_set(&e, 502, WV_REGERR_UNKNOWN, "Registry '%s' redirected to '%.200s'", registry,
                       loc);
      return wv_fetch_err_respond(req, resp, &e);
    }
    return redirect(req, resp, (int)r->status, abs);
  }
  if (r->status != 200) {
    wv_fetch_err_status(&e, r->status, true, registry, image, d->digest);
    return wv_fetch_err_respond(req, resp, &e);
  }
  const char *ct = wv_http_resp_header(r, "Content-Type");
  ct = ct ? wv_arena_strdup(req->arena, ct) : "application/octet-stream";
  if (req->method == WV_M_HEAD) {
    int64_t len = content_length(r);
    wv_resp_static(resp, 200, ct, NULL, 0);
    resp->has_length = len >= 0;
    resp->length = len >= 0 ? (uint64_t)len : 0;
    return blob_headers(resp, d->digest);
  }
  char got[WV_DIGEST_STRLEN];
  if (wv_digest_of(d->buf.data ? d->buf.data : "", d->buf.len, got) ||
      strcmp(got, d->digest) != 0) {
    wv_fetch_err_set(&e, 502, WV_REGERR_UNKNOWN,
                     "Registry '%s' sent a blob for '%s/%s@%s' that hashes to %s", registry,
                     registry, image, d->digest, got);
    return wv_fetch_err_respond(req, resp, &e);
  }
  keep_small(req, d, registry, image, ct);
  int rc = wv_resp_bytes(req, resp, 200, ct, d->buf.data ? d->buf.data : "", d->buf.len);
  return rc ? rc : blob_headers(resp, d->digest);
}

/*
 * The upstream's own pace window (curl's low-speed check): twice the rate window, so that
 * pace_check, which can tell a slow client from a slow upstream, usually decides first;
 * curl decides when no byte arrives at all. Never longer than read-idle-timeout.
 */
static int64_t idle_window(const wv_config_t *cfg) {
  int64_t w = 2 * cfg->bs_rate_window_ms;
  return w > 0 && w < cfg->hc_idle_timeout_ms ? w : cfg->hc_idle_timeout_ms;
}

/* Fetches the blob upstream; fill (may be NULL): this GET leads concurrent ones. */
static int delegate_fill(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, const char *registry,
                         const char *image, const char *digest, wv_bfill_t *fill) {
  const char *path = wv_arena_sprintf(req->arena, "/v2/%s/blobs/%s", image, digest);
  if (!path)
    return WV_ENOMEM;
  dlg_t d = {.req = req, .resp = resp, .digest = digest, .length = -1, .fill = fill};
  d.threshold = app->cfg->hc_stream_threshold;
  wv_buf_init(&d.buf, ERROR_BODY_MAX);
  bool head = req->method == WV_M_HEAD;
  wv_http_req_t hr = {.method = head ? "HEAD" : NULL,
                      .url = path,
                      .max_body = ERROR_BODY_MAX,
                      .timeout_ms = head ? 0 : -1,
                      .idle_timeout_ms = idle_window(app->cfg),
                      .min_rate = app->cfg->bs_min_rate,
                      .body_cb = head ? NULL : dlg_body,
                      .head_cb = head ? NULL : dlg_head,
                      .body_arg = &d};
  wv_http_resp_t r;
  wv_fetch_err_t e;
  wv_http_resp_init(&r);
  int rc = wv_fetch(app, registry, image, who_of(req), &hr, &r, &d.began, &e);
  bool verified = false; /* the tee holds the whole blob and it hashed right */
  if (d.began) {
    rc = dlg_finish_stream(&d, rc, registry);
    if (rc == 0 && d.tee) {
      wv_bcache_writer_t *tee = d.tee;
      d.tee = NULL;
      verified = true;
      if (wv_bcache_commit(tee, digest) == 0)
        remember(req, registry, image, digest, d.streamed, d.media_type);
    }
    if (rc == 0 && d.write_rc)
      rc = d.write_rc; /* this client left; the followers were served */
  } else if (d.sha_on) {
    wv_sha256_abort(&d.sha);
  }
  if (!d.began) {
    if (rc)
      rc = wv_fetch_err_respond(req, resp, &e);
    else
      rc = dlg_answer(&d, &r, registry, image, path);
  }
  if (d.sha_on)
    wv_sha256_abort(&d.sha);
  if (fill) /* before the tee's file goes: followers finish reading from their own descriptor */
    wv_bfill_finish(fill, verified); /* followers read their own descriptor of the file */
  wv_bcache_abort(d.tee);
  wv_buf_free(&d.buf);
  wv_http_resp_free(&r);
  return rc;
}

/*
 * This repository's entry says the upstream served the blob, but longer ago
 * than wave.storage.cache.duration: a HEAD (no retries) asks whether it
 * still serves it to the configured credentials. Yes (200 or a redirect):
 * the bytes come from disk and the entry is renewed. The upstream is down
 * (connection failure, timeout, 5xx): the bytes come from disk without a
 * new entry, as cached manifests are served while it is down. Anything else
 * (401, 403, 404), or the bytes are gone: WV_DEFER, and the caller fetches,
 * so the client gets the upstream's own answer. A repository without an
 * entry never gets here: a HEAD proves nothing about the bytes, a GET does.
 */
static int revalidate(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, const char *registry,
                      const char *image, const wv_cache_entry_t *u) {
  uint64_t size = 0;
  if (!app->bcache || wv_bcache_exists(app->bcache, u->digest, &size) != 0)
    return WV_DEFER;
  const char *path = wv_arena_sprintf(req->arena, "/v2/%s/blobs/%s", image, u->digest);
  if (!path)
    return WV_ENOMEM;
  wv_http_req_t hr = {.method = "HEAD", .url = path, .max_body = ERROR_BODY_MAX};
  wv_http_resp_t r;
  wv_fetch_err_t e;
  const bool no_retry = true;
  wv_http_resp_init(&r);
  int rc = wv_fetch(app, registry, image, who_of(req), &hr, &r, &no_retry, &e);
  long status = rc == 0 ? r.status : 0;
  wv_http_resp_free(&r);
  bool confirmed = rc == 0 && (status == 200 || (status >= 300 && status <= 399));
  bool down = rc == WV_EUPSTREAM || rc == WV_ETIMEOUT || (rc == 0 && status >= 500);
  if (!confirmed && !down)
    return WV_DEFER;
  if (down)
    wv_info("blob %s/%s@%s from the blob cache: upstream down (%s)", registry, image, u->digest,
            rc ? e.msg : "5xx");
  if (respond_cached(req, resp, u->digest, u->media_type) != 0)
    return WV_DEFER; /* evicted meanwhile */
  if (confirmed)
    remember(req, registry, image, u->digest, size, u->media_type);
  return 0;
}

static int delegate(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, const char *registry,
                    const char *image, const char *digest) {
  return delegate_fill(req, resp, app, registry, image, digest, NULL);
}

/*
 * A follower: sends the bytes the leader writes into the blob cache's temp
 * file as they arrive. WV_DEFER before anything was sent when the leader
 * does not stream into a file (the caller then fetches on its own); after
 * the head went out, an error cuts the connection.
 */
static int follow(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, wv_bfill_t *f,
                  const char *digest) {
  int fd = -1;
  int64_t length = -1;
  char mt[256];
  wv_bfill_state_t st =
      wv_bfill_wait_start(f, app->cfg->hc_read_timeout_ms, &fd, &length, mt, sizeof mt);
  if ((st != WV_BFILL_STREAMING && st != WV_BFILL_DONE) || fd < 0)
    return WV_DEFER;
  wv_resp_static(resp, 200, wv_arena_strdup(req->arena, mt[0] ? mt : "application/octet-stream"),
                 NULL, 0);
  blob_headers(resp, digest);
  resp->has_length = length >= 0;
  resp->length = length >= 0 ? (uint64_t)length : 0;
  int rc = wv_req_stream_begin(req);
  char *buf = rc ? NULL : wv_arena_alloc(req->arena, FOLLOW_CHUNK);
  if (rc || !buf)
    return rc ? rc : WV_ENOMEM;
  pace_t pace;
  pace_init(&pace, app->cfg);
  pace_length(&pace, length);
  uint64_t off = 0;
  for (;;) {
    uint64_t written, before = off;
    if ((rc = pace_check(&pace, off)) != 0) {
      pace_log(&pace, digest, "a follower", off);
      return rc; /* this client, or the fill it follows, is too slow */
    }
    st = wv_bfill_wait(f, off, idle_window(app->cfg), &written);
    while (off < written) {
      size_t n = written - off < FOLLOW_CHUNK ? (size_t)(written - off) : FOLLOW_CHUNK;
      ssize_t k = pread(fd, buf, n, (off_t)off);
      if (k <= 0)
        return WV_EIO;
      if ((rc = wv_req_stream_write(req, buf, (size_t)k)) != 0)
        return rc;
      off += (uint64_t)k;
      if ((rc = pace_check(&pace, off)) != 0) {
        pace_log(&pace, digest, "a follower", off);
        return rc;
      }
    }
    if (st == WV_BFILL_DONE)
      return length < 0 || off == (uint64_t)length ? 0 : WV_EIO;
    if (st != WV_BFILL_STREAMING)
      return WV_EIO; /* the leader failed: so does this copy */
    if (written == before)
      return WV_ETIMEOUT;
  }
}

/*
 * A GET of an upstream blob nobody has cached: the first one streams (and
 * fills the cache), GETs of the same blob of the same repository arriving
 * meanwhile follow it (registry/blobfill.h).
 */
static int fetch_shared(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, const char *registry,
                        const char *image, const char *digest) {
  const char *key = wv_cache_key_blob(req->arena, registry, image, digest);
  bool leader = false;
  wv_bfill_t *f = req->method == WV_M_GET && app->bcache && key
                      ? wv_bfill_join(app->fills, key, &leader)
                      : NULL;
  /* A client that stops reading fails its write after this long (and a leader's fill
   * goes on for its followers without it). */
  int64_t stall = app->cfg->hc_idle_timeout_ms / 4;
  wv_req_stream_stall_timeout(req, app->cfg->bs_rate_window_ms < stall ? app->cfg->bs_rate_window_ms
                                                                       : stall);
  if (!f)
    return delegate(req, resp, app, registry, image, digest);
  int rc;
  if (leader) {
    rc = delegate_fill(req, resp, app, registry, image, digest, f);
    wv_bfill_finish(f, false); /* no-op unless delegate_fill left early (OOM) */
  } else {
    rc = follow(req, resp, app, f, digest);
    if (rc == WV_DEFER)
      rc = delegate(req, resp, app, registry, image, digest);
  }
  wv_bfill_leave(f);
  return rc;
}

/*
 * An upstream blob of registry/image: from the blob cache when this
 * repository's entry u (NULL: looked up) says the upstream served it,
 * revalidated once that is older than wave.storage.cache.duration; else
 * fetched, shared with concurrent GETs of the same blob.
 */
static int upstream_blob(wv_req_t *req, wv_resp_t *resp, wv_app_t *app, const char *registry,
                         const char *image, const char *digest, const wv_cache_entry_t *u) {
  wv_cache_entry_t e;
  const char *key = u ? NULL : wv_cache_key_blob(req->arena, registry, image, digest);
  if (key && wv_cache_get(app->store, req->arena, key, &e) == 0 && e.kind == WV_CACHE_UPSTREAM)
    u = &e;
  if (u && app->bcache) {
    int rc = confirmed_recently(app, u) && respond_cached(req, resp, digest, u->media_type) == 0
                 ? 0
                 : revalidate(req, resp, app, registry, image, u);
    if (rc != WV_DEFER)
      return rc;
  }
  return fetch_shared(req, resp, app, registry, image, digest);
}

/* docker://<registry>/v2/<image>/blobs/<digest> → its parts. */
static int parse_docker_location(wv_arena_t *a, const char *loc, const char **registry,
                                 const char **image, const char **digest) {
  if (strncmp(loc, "docker://", 9) != 0)
    return WV_EINVAL;
  const char *p = loc + 9, *v2 = strstr(p, "/v2/"), *blobs = strstr(p, "/blobs/");
  if (!v2 || !blobs || blobs <= v2 + 4 || v2 == p)
    return WV_EINVAL;
  *registry = wv_arena_strndup(a, p, (size_t)(v2 - p));
  *image = wv_arena_strndup(a, v2 + 4, (size_t)(blobs - v2 - 4));
  *digest = wv_arena_strdup(a, blobs + 7);
  if (!*registry || !*image || !*digest)
    return WV_ENOMEM;
  return wv_digest_valid(*digest) && !strchr(*registry, '/') ? 0 : WV_EINVAL;
}

int wv__proxy_blob_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  wv_cache_entry_t e;
  const char *key = wv_cache_key_blob(req->arena, ctx->registry, ctx->image, ctx->rt.reference);
  if (key && wv_cache_get(ctx->app->store, req->arena, key, &e) == 0) {
    int rc = wv__proxy_respond_blob_entry(req, resp, &e);
    if (rc != WV_DEFER)
      return rc;
    if (e.kind == WV_CACHE_UPSTREAM) /* not confirmed lately, or the bytes were evicted */
      return upstream_blob(req, resp, ctx->app, ctx->registry, ctx->image, ctx->rt.reference, &e);
    const char *reg, *img, *dig;
    if (parse_docker_location(req->arena, e.location, &reg, &img, &dig))
      return wv_resp_registry_error(
          req, resp, WV_REGERR_UNKNOWN, 400,
          wv_arena_sprintf(req->arena, "Invalid layer location '%.200s'", e.location), NULL);
    return upstream_blob(req, resp, ctx->app, reg, img, dig, NULL);
  }
  return fetch_shared(req, resp, ctx->app, ctx->registry, ctx->image, ctx->rt.reference);
}
