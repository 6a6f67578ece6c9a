/*
 * registry/resolve.c — manifest requests on a worker (contract §5.3, §5.4).
 *
 * DESIGN
 *
 * A token-form tag request resolves the tag upstream (HEAD → digest, GET by
 * digest, both with the full Accept list), verifies that the bytes hash to
 * the digest, and either serves them unchanged (no containerConfig) or
 * rewrites them (registry/augment.h): a single manifest directly, an index or
 * Docker list by augmenting only the entries of the token's platform. A build
 * pushed to a repository skips the HEAD: its record has the pushed digest. Every
 * document written to the cache is stored with its own digest; rewritten
 * configs go to the CAS. The writes of one resolution are applied in order,
 * children first and the request-path key last, so a hit on the request
 * path implies every child is there too; they are durable before the answer
 * leaves, so the next pull is a cache hit on the IO loop.
 *
 * Coalescing: concurrent resolutions of the same request-path key share one
 * upstream round: the first worker leads, the others wait on a condition
 * variable (bounded by the upstream timeouts) and then read the cache, or
 * take the leader's error. The flight table's mutex is a leaf lock.
 *
 * Digest requests that miss the cache are fetched upstream by digest,
 * verified and cached (digest-addressed content never changes).
 */
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "registry/augment.h"
#include "registry/mediatype.h"
#include "registry/platform.h"
#include "registry/keyed.h"
#include "registry/proxy_int.h"
#include "registry/tagcache.h"
#include "registry/upstream.h"
#include "storage/cas.h"
#include "storage/store.h"
#include "core/timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_RECORD_MAX (4u << 20)

static const char *const accept_hdr[] = {"Accept: " WV_MT_ACCEPT_MANIFESTS, NULL};

/* ---- batches of cache writes ------------------------------------------------- */

typedef struct pop {
  struct pop *next;
  const char *key;
  wv_buf_t val;
  int64_t expires_ms;
} pop_t;

struct wv_pbatch {
  wv_arena_t *a;
  pop_t *head, *tail;
  size_t n;
};

static void pbatch_cleanup(void *arg) {
  wv_pbatch_t *b = arg;
  for (pop_t *o = b->head; o; o = o->next)
    wv_buf_free(&o->val);
}

wv_pbatch_t *wv__pbatch_new(wv_arena_t *a) {
  wv_pbatch_t *b = wv_arena_calloc(a, sizeof *b);
  if (!b || wv_arena_on_cleanup(a, pbatch_cleanup, b))
    return NULL;
  b->a = a;
  return b;
}

int wv__pbatch_add(wv_pbatch_t *b, const char *key, const wv_cache_entry_t *e, int64_t expires_ms) {
  if (!key)
    return WV_ENOMEM;
  pop_t *o = wv_arena_calloc(b->a, sizeof *o);
  if (!o)
    return WV_ENOMEM;
  o->key = key;
  o->expires_ms = expires_ms;
  wv_buf_init(&o->val, WV_STORE_VALUE_MAX);
  /* Linked before encoding so the arena cleanup frees the buffer either way. */
  if (b->tail)
    b->tail->next = o;
  else
    b->head = o;
  b->tail = o;
  b->n++;
  return wv_cache_encode(e, &o->val);
}

int wv__pbatch_add_layer(wv_pbatch_t *b, struct wv_store *s, const char *key,
                         const wv_cache_entry_t *e, int64_t expires_ms) {
  wv_cache_entry_t old;
  bool location_only = e->kind == WV_CACHE_REDIRECT || e->kind == WV_CACHE_DOCKER;
  if (!key || !location_only || wv_cache_get(s, b->a, key, &old) != 0)
    return wv__pbatch_add(b, key, e, expires_ms);
  if (old.kind == WV_CACHE_UPSTREAM)
    return 0;                    /* the repository's own blob: its entry outlives this request's */
  if (old.kind == WV_CACHE_BLOB) /* the bytes, for this request's lifetime too */
    return wv__pbatch_add(b, key, &old, expires_ms);
  return wv__pbatch_add(b, key, e, expires_ms);
}

/* The puts of the entries from *o on, at most WV_STORE_APPLY_MAX; *o moves past them. */
static size_t pbatch_ops(pop_t **o, wv_store_op_t ops[WV_STORE_APPLY_MAX]) {
  size_t n = 0;
  for (; *o && n < WV_STORE_APPLY_MAX; *o = (*o)->next, n++)
    ops[n] = (wv_store_op_t){WV_STORE_PUT,  WV_DB_MANIFESTS,  (*o)->key, (*o)->val.data,
                             (*o)->val.len, (*o)->expires_ms, 0};
  return n;
}

int wv__pbatch_apply(wv_pbatch_t *b, struct wv_store *s) {
  wv_store_op_t ops[WV_STORE_APPLY_MAX];
  pop_t *o = b->head;
  while (o) {
    int rc = wv_store_apply(s, ops, pbatch_ops(&o, ops), NULL);
    if (rc)
      return rc;
  }
  return 0;
}

/*
 * Writes b to the manifest cache: the one way resolve.c writes entries. Queued first, as one
 * atomic write on the store's committer (b at most WV_STORE_APPLY_MAX entries): returns 0
 * with *queued set (queued may be NULL), and cb(arg) runs there once the entries are
 * durable, so the request thread goes on without waiting on the disk. When the queue does
 * not take b (full, b too large, the store closing), or_now says what then. True: b is
 * written on this thread (cb is not called) and that write's result returned — entries a
 * caller is about to rely on (a flight's followers, the answer). False: the queue's refusal
 * is returned and b dropped — a prefetch, which must not hold up the request behind it.
 */
static int pbatch_write(wv_pbatch_t *b, struct wv_store *s, wv_store_done_cb cb, void *arg,
                        bool or_now, bool *queued) {
  wv_store_op_t ops[WV_STORE_APPLY_MAX];
  pop_t *o = b->head;
  size_t n = pbatch_ops(&o, ops);
  int rc = o ? WV_ETOOBIG : n ? wv_store_submit_apply(s, ops, n, cb, arg) : WV_EINVAL;
  if (queued)
    *queued = rc == 0;
  return rc && or_now ? wv__pbatch_apply(b, s) : rc;
}

/* ---- coalescing -------------------------------------------------------------------- */

struct wv_flight {
  wv_keyed_t k; /* first: the list entry */
  wv_proxy_flights_t *tab;
  bool done, failed;
  wv_fetch_err_t err;
};
typedef struct wv_flight flight_t;

struct wv_proxy_flights {
  pthread_mutex_t mu; /* leaf: the list and every flight's done/failed/err */
  pthread_cond_t cv;
  wv_keyed_t *head;
  /* Images whose upstream manifest and config wv_proxy_prefetch found cached or fetched,
   * within the tag window: "<tag key>\x1c<platform>" → the digest the tag named. */
  wv_tagcache_t *warm;
};

int wv_proxy_flights_new(wv_proxy_flights_t **out) {
  wv_proxy_flights_t *t = calloc(1, sizeof *t);
  if (!t || wv_tagcache_new(&t->warm)) {
    free(t);
    return WV_ENOMEM;
  }
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  *out = t;
  return 0;
}

void wv_proxy_flights_free(wv_proxy_flights_t *t) {
  if (!t)
    return;
  wv_tagcache_free(t->warm);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Joins or starts the flight for key; *leader tells which. NULL on OOM. */
flight_t *wv__flight_join(wv_proxy_flights_t *t, const char *key, bool *leader) {
  pthread_mutex_lock(&t->mu);
  flight_t *f = (flight_t *)wv_keyed_join(&t->head, key, sizeof(flight_t), leader);
  if (f && *leader) /* written once, by its creator: leave reads it without the lock */
    f->tab = t;
  pthread_mutex_unlock(&t->mu);
  return f;
}

/* Drops a reference; the leader also unlinks it and wakes the waiters. */
void wv__flight_leave(flight_t *f, bool leader, const wv_fetch_err_t *err) {
  wv_proxy_flights_t *t = f->tab;
  pthread_mutex_lock(&t->mu);
  if (leader) {
    wv_keyed_unlink(&t->head, &f->k);
    f->done = true;
    if (err) {
      f->failed = true;
      f->err = *err;
    }
    pthread_cond_broadcast(&t->cv);
  }
  bool last = --f->k.refs == 0;
  pthread_mutex_unlock(&t->mu);
  if (last) {
    free(f->k.key);
    free(f);
  }
}

/* Waits for the leader. 0 when it succeeded, WV_EUPSTREAM (err filled) or WV_ETIMEOUT. */
int wv__flight_wait(flight_t *f, int64_t timeout_ms, wv_fetch_err_t *err) {
  wv_proxy_flights_t *t = f->tab;
  struct timespec dl = wv_deadline_ts(CLOCK_REALTIME, timeout_ms);
  int rc = 0;
  pthread_mutex_lock(&t->mu);
  while (!f->done && rc == 0)
    if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT)
      rc = WV_ETIMEOUT;
  if (f->done && f->failed) {
    *err = f->err;
    rc = WV_EUPSTREAM;
  } else if (f->done) {
    rc = 0;
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* How long a flight's followers wait for its leader's upstream round. */
static int64_t flight_wait_ms(const wv_config_t *cfg) {
  return (cfg->hc_read_timeout_ms + cfg->hc_retry_max_delay_ms) * (int64_t)cfg->hc_retry_attempts *
             3 +
         cfg->hc_connect_timeout_ms;
}

/* ---- upstream manifests ------------------------------------------------------------ */

typedef struct {
  wv_req_t *req; /* NULL for a prefetch (wv_proxy_prefetch) */
  wv_arena_t *a; /* the request's arena, or the prefetching caller's */
  wv_pctx_t *ctx;
  wv_pbatch_t *batch;
  int64_t expires_ms; /* of cache entries */
  wv_fetch_err_t err;
} res_t;

static int oom(res_t *r) {
  return wv_fetch_err_set(&r->err, 500, WV_REGERR_SERVER_ERROR, "out of memory");
}

#define LOOK_AGAIN 1 /* lead_or_wait: a leader finished well, its result is cached */

/*
 * Concurrent fetches of one upstream thing (kind + key) share one round: 0 when this caller
 * fetches — leading *f (leave it with wv__flight_leave(*f, true, ...)) or alone (*f NULL:
 * out of memory, or the leader took too long); LOOK_AGAIN when a leader fetched it (read the
 * cache); WV_EUPSTREAM when the leader failed (its error in r->err).
 */
static int lead_or_wait(res_t *r, char kind, const char *key, flight_t **f) {
  *f = NULL;
  const char *fkey = wv_arena_sprintf(r->a, "%c\x1c%s", kind, key);
  bool leader;
  flight_t *fl = fkey ? wv__flight_join(r->ctx->app->flights, fkey, &leader) : NULL;
  if (!fl || leader) {
    *f = fl;
    return 0;
  }
  int rc = wv__flight_wait(fl, flight_wait_ms(r->ctx->app->cfg), &r->err);
  wv__flight_leave(fl, false, NULL);
  return rc == 0 ? LOOK_AGAIN : rc == WV_EUPSTREAM ? rc : 0;
}

static void put_done(void *arg, int rc, int64_t value) {
  (void)value;
  if (rc)
    wv_debug("cache entry not written: %s", wv_strerror(rc));
  if (arg)
    wv__flight_leave(arg, true, NULL);
}

/*
 * Writes one digest-addressed entry ahead of the batch (not with it), so that the followers of
 * the flight f that fetched it find it; best effort. Queued, not waited for: the committer
 * leaves f (may be NULL) once the entry is visible, and this thread goes on. The entry is
 * immutable and can be fetched again, and it is queued before the batch that refers to it, so
 * it is durable no later than that batch (one committer, transactions in queue order).
 */
static void put_now(res_t *r, const char *key, const wv_cache_entry_t *e, flight_t *f) {
  wv_pbatch_t *one = wv__pbatch_new(r->a);
  bool queued = false;
  int rc = one ? wv__pbatch_add(one, key, e, r->expires_ms) : WV_ENOMEM;
  rc = rc ? rc : pbatch_write(one, r->ctx->app->store, put_done, f, true, &queued);
  if (rc)
    wv_debug("cache entry %s not written: %s", key, wv_strerror(rc));
  if (f && !queued)
    wv__flight_leave(f, true, NULL);
}

/* The media type to store a manifest under: Content-Type, else the body's. */
static const char *manifest_media_type(wv_arena_t *a, const char *ctype, const char *body,
                                       size_t len) {
  const char *mt = wv_mediatype_canonical(ctype);
  if (mt)
    return mt;
  json_object *o = NULL;
  char err[64];
  if (wv_json_parse(body, len, WV_AUGMENT_MAX_MANIFEST, 0, &o, err, sizeof err) == 0) {
    const char *s = NULL;
    if (wv_json_get_str(o, "mediaType", &s) == 0 && wv_mediatype_canonical(s))
      mt = wv_mediatype_canonical(s);
    else if (json_object_object_get_ex(o, "manifests", NULL))
      mt = WV_MT_OCI_INDEX;
    json_object_put(o);
  }
  if (mt)
    return mt;
  return ctype ? wv_arena_strdup(a, ctype) : "application/octet-stream";
}

/* Fetches the manifest with this digest, verifies it and caches it: ahead of the batch when
 * leading f (NULL: not leading), which is then left by put_now; else with the batch. */
static int fetch_manifest(res_t *r, const char *digest, const char *key, flight_t *f,
                          wv_cache_entry_t *out) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *path = wv_arena_sprintf(a, "/v2/%s/manifests/%s", ctx->image, digest);
  wv_http_req_t hr = {.url = path, .headers = accept_hdr, .max_body = WV_AUGMENT_MAX_MANIFEST};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_fetch(ctx->app, ctx->registry, ctx->image, ctx->who, &hr, &resp, NULL, &r->err);
  if (!rc && resp.status != 200)
    rc = wv_fetch_err_status(&r->err, resp.status, false, ctx->registry, ctx->image, digest);
  char got[WV_DIGEST_STRLEN] = "";
  const char *body = resp.body.data ? resp.body.data : "";
  if (!rc && (wv_digest_of(body, resp.body.len, got) || strcmp(got, digest) != 0))
    rc = wv_fetch_err_set(&r->err, 502, WV_REGERR_UNKNOWN,
                          "Registry '%s' sent a manifest for '%s/%s@%s' that hashes to %s",
                          ctx->registry, ctx->registry, ctx->image, digest, got);
  if (!rc) {
    memset(out, 0, sizeof *out);
    out->kind = WV_CACHE_MANIFEST;
    out->media_type =
        manifest_media_type(a, wv_http_resp_header(&resp, "Content-Type"), body, resp.body.len);
    out->digest = wv_arena_strdup(a, digest);
    out->body = wv_arena_strndup(a, body, resp.body.len);
    out->body_len = resp.body.len;
    out->size = resp.body.len;
    out->location = "";
    if (!out->digest || !out->body)
      rc = oom(r);
    else if (f)
      put_now(r, key, out, f);
    else if (wv__pbatch_add(r->batch, key, out, r->expires_ms))
      rc = oom(r);
  }
  wv_http_resp_free(&resp);
  return rc;
}

/*
 * The upstream manifest with this digest: from the cache, or fetched (once for
 * concurrent callers), verified and cached. *out is filled either way.
 */
static int upstream_manifest(res_t *r, const char *digest, wv_cache_entry_t *out) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *key = wv_cache_key_manifest(a, ctx->registry, ctx->image, digest);
  if (!key)
    return oom(r);
  if (!ctx->restricted && wv_cache_get(ctx->app->store, a, key, out) == 0 &&
      out->kind == WV_CACHE_MANIFEST)
    return 0;
  flight_t *f = NULL;
  int rc = ctx->restricted ? 0 : lead_or_wait(r, 'm', key, &f);
  if (rc == LOOK_AGAIN && wv_cache_get(ctx->app->store, a, key, out) == 0 &&
      out->kind == WV_CACHE_MANIFEST)
    return 0;
  if (rc == WV_EUPSTREAM)
    return rc;
  /* Left by fetch_manifest once the entry is queued and visible; here on an error. */
  rc = fetch_manifest(r, digest, key, f, out);
  if (rc && f)
    wv__flight_leave(f, true, &r->err);
  return rc;
}

/* Tag → digest with a HEAD; a registry that sends no digest gets a GET. */
static int resolve_tag_upstream(res_t *r, const char *tag, const char **digest) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *path = wv_arena_sprintf(a, "/v2/%s/manifests/%s", ctx->image, tag);
  wv_http_req_t hr = {.method = "HEAD", .url = path, .headers = accept_hdr};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_fetch(ctx->app, ctx->registry, ctx->image, ctx->who, &hr, &resp, NULL, &r->err);
  if (!rc && resp.status != 200)
    rc = wv_fetch_err_status(&r->err, resp.status, false, ctx->registry, ctx->image, tag);
  const char *d = rc ? NULL : wv_http_resp_header(&resp, "Docker-Content-Digest");
  if (!rc && d && wv_digest_valid(d)) {
    *digest = wv_arena_strdup(a, d);
    rc = *digest ? 0 : oom(r);
  } else if (!rc) {
    hr.method = NULL;
    hr.max_body = WV_AUGMENT_MAX_MANIFEST;
    rc = wv_fetch(ctx->app, ctx->registry, ctx->image, ctx->who, &hr, &resp, NULL, &r->err);
    if (!rc && resp.status != 200)
      rc = wv_fetch_err_status(&r->err, resp.status, false, ctx->registry, ctx->image, tag);
    char got[WV_DIGEST_STRLEN];
    if (!rc && wv_digest_of(resp.body.data ? resp.body.data : "", resp.body.len, got) == 0)
      *digest = wv_arena_strdup(a, got);
  }
  wv_http_resp_free(&resp);
  return rc;
}

/*
 * Tag → digest: from the tag cache while fresh (wave.storage.cache.tag-duration),
 * else asked upstream, with concurrent resolutions of the same tag — new tokens of
 * one image among them — sharing one upstream round (registry/tagcache.h).
 */
static int resolve_tag(res_t *r, const char *tag, const char **digest) {
  wv_pctx_t *ctx = r->ctx;
  int64_t ttl = ctx->app->cfg->tag_cache_ms;
  char key[WV_TAGCACHE_KEY_MAX + 1], d[WV_DIGEST_STRLEN];
  if (ttl <= 0 ||
      wv_tagcache_key(key, sizeof key, ctx->registry, ctx->image, tag, !ctx->restricted) != 0)
    return resolve_tag_upstream(r, tag, digest);
  for (int round = 0; round < 2; round++) {
    if (wv_tagcache_get(ctx->app->tags, key, d, sizeof d)) {
      *digest = wv_arena_strdup(r->a, d);
      return *digest ? 0 : oom(r);
    }
    flight_t *f = NULL;
    int rc = round == 0 ? lead_or_wait(r, 't', key, &f) : 0;
    if (rc == LOOK_AGAIN)
      continue;
    if (rc)
      return rc;
    rc = resolve_tag_upstream(r, tag, digest);
    if (rc == 0 && *digest)
      wv_tagcache_put(ctx->app->tags, key, *digest, ttl);
    if (f)
      wv__flight_leave(f, true, rc ? &r->err : NULL);
    return rc;
  }
  return resolve_tag_upstream(r, tag, digest);
}

/* ---- augmentation ---------------------------------------------------------------- */

int wv__proxy_layer_entry(wv_arena_t *a, const char *location, const char *gzip_digest,
                          int64_t gzip_size, wv_cache_entry_t *out) {
  memset(out, 0, sizeof *out);
  out->media_type = WV_MT_DOCKER_LAYER_GZIP;
  out->digest = gzip_digest;
  out->size = gzip_size > 0 ? (uint64_t)gzip_size : 0;
  out->location = "";
  if (!location)
    return WV_EINVAL;
  if (strncmp(location, "cas:", 4) == 0 && wv_digest_valid(location + 4)) {
    out->kind = WV_CACHE_BLOB;
    out->digest = location + 4;
  } else if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0) {
    out->kind = WV_CACHE_REDIRECT;
    out->location = location;
  } else if (strncmp(location, "docker://", 9) == 0) {
    out->kind = WV_CACHE_DOCKER;
    out->location = location;
  } else {
    return WV_EINVAL; /* data: should have been moved to the CAS by the front door */
  }
  (void)a;
  return 0;
}

/* Maps an augment.h error to the client's error. */
static int augment_error(res_t *r, int rc, const char *msg, const char *what) {
  if (rc == WV_ENOMEM)
    return oom(r);
  if (rc == WV_EINVAL)
    return wv_fetch_err_set(&r->err, 400, WV_REGERR_BAD_REQUEST, "%s", msg ? msg : "Bad request");
  return wv_fetch_err_set(&r->err, 502, WV_REGERR_UNKNOWN,
                          "Cannot augment %s from registry '%s' - %s", what, r->ctx->registry,
                          msg ? msg : wv_strerror(rc));
}

/* Reads a whole CAS blob of at most max bytes into the arena; non-zero when it cannot. */
static int cas_read(wv_cas_t *cas, wv_arena_t *a, const char *digest, size_t max, char **out,
                    size_t *len) {
  int fd = -1;
  uint64_t size = 0;
  if (wv_cas_open_blob(cas, digest, &fd, &size) != 0)
    return WV_ENOTFOUND;
  char *buf = size <= max ? wv_arena_alloc(a, (size_t)size + 1) : NULL;
  size_t got = 0;
  while (buf && got < size) {
    ssize_t k = pread(fd, buf + got, (size_t)size - got, (off_t)got);
    if (k <= 0)
      break;
    got += (size_t)k;
  }
  close(fd);
  if (!buf || got != size)
    return WV_EIO;
  buf[got] = '\0';
  *out = buf;
  *len = got;
  return 0;
}

/*
 * The upstream image config with this digest: from the CAS when this repository's cache
 * entry says it is there (digest-addressed content never changes), else fetched (verified
 * by wv_fetch_blob), kept in the CAS and entered for the repository — so new tokens of an
 * image cost the upstream nothing for its config, and a GET of it is served from disk.
 * A caller who may not use the configured credentials never reads what they fetched.
 */
static int upstream_config(res_t *r, const char *digest, const char *manifest_mt, char **out,
                           size_t *len) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *key = wv_cache_key_blob(a, ctx->registry, ctx->image, digest);
  wv_cache_entry_t e;
  if (!key)
    return oom(r);
  flight_t *f = NULL;
  int rc = 0;
  for (int round = 0; round < 2; round++) {
    if (!ctx->restricted && wv_cache_get(ctx->app->store, a, key, &e) == 0 &&
        e.kind == WV_CACHE_BLOB && strcmp(e.digest, digest) == 0) {
      if (e.body_len && e.body_len == e.size) { /* kept inline */
        *out = (char *)e.body;
        *len = e.body_len;
        return 0;
      }
      if (cas_read(ctx->app->cas, a, digest, WV_AUGMENT_MAX_CONFIG, out, len) == 0)
        return 0;
    }
    if (round == 1 || ctx->restricted || (rc = lead_or_wait(r, 'c', key, &f)) != LOOK_AGAIN)
      break;
  }
  if (rc == WV_EUPSTREAM)
    return rc;
  rc = wv_fetch_blob(ctx->app, a, ctx->registry, ctx->image, ctx->who, digest,
                     WV_AUGMENT_MAX_CONFIG, out, len, &r->err);
  if (!rc && !ctx->restricted) {
    /* Best effort: without the copy the next resolution fetches it again. A small config
     * goes into its entry (one store write, shared with other entries by the group commit);
     * a large one into the CAS (a file and two fsyncs). */
    const char *mt = wv_mediatype_config_for(manifest_mt);
    wv_cache_entry_t ce = {.kind = WV_CACHE_BLOB,
                           .media_type = mt ? mt : WV_MT_DOCKER_CONFIG,
                           .digest = digest,
                           .size = *len,
                           .location = ""};
    uint64_t have = 0;
    if (*len && *len <= WV_CACHE_INLINE_MAX) {
      ce.body = *out;
      ce.body_len = *len;
    }
    if (ce.body_len || (wv_cas_exists(ctx->app->cas, digest, &have) == 0 && have == *len) ||
        wv_cas_put(ctx->app->cas, *out, *len, digest, NULL) == 0) {
      put_now(r, key, &ce, f);
      return 0;
    }
  }
  if (f)
    wv__flight_leave(f, true, rc ? &r->err : NULL);
  return rc;
}

/* Augments one platform manifest; *out is the rewritten manifest entry. */
static int augment_one(res_t *r, const wv_container_config_t *cc, const wv_cache_entry_t *m,
                       wv_cache_entry_t *out) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *msg = NULL;
  wv_manifest_info_t info;
  int rc = wv_manifest_info(a, m->body, m->body_len, &info, &msg);
  if (rc)
    return augment_error(r, rc, msg, "the manifest");
  char *config;
  size_t config_len;
  if ((rc = upstream_config(r, info.config_digest, m->media_type, &config, &config_len)) != 0)
    return rc;
  wv_augment_out_t nm, nc;
  wv_container_config_t used;
  rc = wv_augment_image(a, m->body, m->body_len, config, config_len, cc, &nm, &nc, &used, &msg);
  if (rc)
    return augment_error(r, rc, msg, "the image");
  /* A small rewritten config is kept inline in its entry, written with the batch (durable in
   * the same group commit as the manifest that names it). A large one goes to the CAS; new
   * tokens of one image with one containerConfig rewrite it to the same bytes, so the CAS
   * already has them (and their fsyncs) after the first. */
  bool inline_cfg = nc.len && nc.len <= WV_CACHE_INLINE_MAX;
  uint64_t have = 0;
  if (!inline_cfg && (wv_cas_exists(ctx->app->cas, nc.digest, &have) != 0 || have != nc.len) &&
      (rc = wv_cas_put(ctx->app->cas, nc.data, nc.len, nc.digest, NULL)) != 0)
    return wv_fetch_err_local(&r->err, ctx->app, rc, "Cannot store the image config");
  wv_cache_entry_t ce = {.kind = WV_CACHE_BLOB,
                         .media_type = wv_mediatype_config_for(m->media_type),
                         .digest = wv_arena_strdup(a, nc.digest),
                         .size = nc.len,
                         .location = "",
                         .body = inline_cfg ? nc.data : NULL,
                         .body_len = inline_cfg ? nc.len : 0};
  if (!ce.media_type)
    ce.media_type = WV_MT_DOCKER_CONFIG;
  if (wv__pbatch_add(r->batch, wv_cache_key_blob(a, ctx->registry, ctx->image, nc.digest), &ce,
                     r->expires_ms))
    return oom(r);
  for (size_t i = 0; i < used.n_layers; i++) {
    const wv_container_layer_t *l = &used.layers[i];
    wv_cache_entry_t le;
    if (wv__proxy_layer_entry(a, l->location, l->gzip_digest, l->gzip_size, &le))
      return wv_fetch_err_set(&r->err, 400, WV_REGERR_BAD_REQUEST,
                              "Unsupported layer location '%.64s'", l->location ? l->location : "");
    if (wv__pbatch_add_layer(r->batch, ctx->app->store,
                             wv_cache_key_blob(a, ctx->registry, ctx->image, l->gzip_digest), &le,
                             r->expires_ms))
      return oom(r);
  }
  *out = (wv_cache_entry_t){.kind = WV_CACHE_MANIFEST,
                            .media_type = m->media_type,
                            .digest = wv_arena_strdup(a, nm.digest),
                            .size = nm.len,
                            .location = "",
                            .body = nm.data,
                            .body_len = nm.len};
  if (!out->digest ||
      wv__pbatch_add(r->batch, wv_cache_key_manifest(a, ctx->registry, ctx->image, nm.digest), out,
                     r->expires_ms))
    return oom(r);
  return 0;
}

/* Augments the matching platform entries of an index and rewrites it. */
static int augment_index(res_t *r, const wv_container_config_t *cc, const wv_cache_entry_t *idx,
                         wv_cache_entry_t *out) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  const char *msg = NULL;
  const char *pstr = ctx->rec.platform ? ctx->rec.platform : "linux/amd64";
  wv_platform_list_t want;
  int rc = wv_platform_parse_list(a, pstr, &want, &msg);
  if (rc)
    return augment_error(r, rc == WV_ETOOBIG ? WV_EINVAL : rc, msg, "the index");
  wv_index_entry_t *entries;
  size_t n;
  rc = wv_augment_index_select(a, idx->body, idx->body_len, idx->media_type, &want, ctx->image,
                               ctx->rt.reference, &entries, &n, &msg);
  if (rc)
    return augment_error(r, rc, msg, "the index");
  wv_index_repl_t *repl = wv_arena_calloc(a, (n ? n : 1) * sizeof *repl);
  if (!repl)
    return oom(r);
  for (size_t i = 0; i < n; i++) {
    wv_cache_entry_t child, aug;
    if ((rc = upstream_manifest(r, entries[i].digest, &child)) != 0)
      return rc;
    if (wv_mediatype_classify(child.media_type) != WV_MT_KIND_MANIFEST)
      return wv_fetch_err_set(&r->err, 502, WV_REGERR_UNKNOWN,
                              "Index entry %s of '%s/%s' is not an image manifest ('%s')",
                              entries[i].digest, ctx->registry, ctx->image, child.media_type);
    if ((rc = augment_one(r, cc, &child, &aug)) != 0)
      return rc;
    repl[i] = (wv_index_repl_t){entries[i].digest, aug.digest, (int64_t)aug.body_len};
  }
  wv_augment_out_t ni;
  rc = wv_augment_index_rewrite(a, idx->body, idx->body_len, repl, n, &ni, &msg);
  if (rc)
    return augment_error(r, rc, msg, "the index");
  *out = (wv_cache_entry_t){.kind = WV_CACHE_MANIFEST,
                            .media_type = idx->media_type,
                            .digest = wv_arena_strdup(a, ni.digest),
                            .size = ni.len,
                            .location = "",
                            .body = ni.data,
                            .body_len = ni.len};
  if (!out->digest ||
      wv__pbatch_add(r->batch, wv_cache_key_manifest(a, ctx->registry, ctx->image, ni.digest), out,
                     r->expires_ms))
    return oom(r);
  return 0;
}

/* Pass-through or augmentation of the upstream document up. */
static int serve_document(res_t *r, const wv_cache_entry_t *up, wv_cache_entry_t *out) {
  wv_pctx_t *ctx = r->ctx;
  wv_arena_t *a = r->a;
  wv_container_config_t cc;
  const char *msg = NULL;
  if (!ctx->rec.cc_json) {
    *out = *up;
    return 0;
  }
  int rc = wv_container_config_parse(a, ctx->rec.cc_json, strlen(ctx->rec.cc_json), &cc, &msg);
  if (rc)
    return augment_error(r, rc == WV_ENOMEM ? rc : WV_EINVAL, msg, "the containerConfig");
  if (wv_container_config_is_empty(&cc)) {
    *out = *up;
    return 0;
  }
  switch (wv_mediatype_classify(up->media_type)) {
  case WV_MT_KIND_MANIFEST:
    return augment_one(r, &cc, up, out);
  case WV_MT_KIND_INDEX:
    return augment_index(r, &cc, up, out);
  case WV_MT_KIND_SCHEMA1:
    return wv_fetch_err_set(&r->err, 400, WV_REGERR_UNSUPPORTED,
                            "Docker schema 1 manifests cannot be augmented - image '%s/%s:%s'",
                            ctx->registry, ctx->image, ctx->rt.reference);
  default:
    return wv_fetch_err_set(&r->err, 400, WV_REGERR_UNKNOWN,
                            "Unexpected media type '%s' for '%s/%s:%s'", up->media_type,
                            ctx->registry, ctx->image, ctx->rt.reference);
  }
}

/* ---- the request record (contract §5.4 step 5) ---------------------------------------- */

static void update_request_record(res_t *r, const char *source_digest, const char *wave_digest) {
  wv_pctx_t *ctx = r->ctx;
  char *val = NULL, err[128];
  size_t len = 0;
  int64_t exp = 0;
  json_object *o = NULL;
  if (wv_store_get(ctx->app->store, WV_DB_REQUESTS, ctx->rec.token, &val, &len, &exp))
    return; /* no record (a token written by something else): nothing to update */
  if (wv_json_parse(val, len, REQUEST_RECORD_MAX, 0, &o, err, sizeof err) == 0 &&
      json_object_is_type(o, json_type_object) &&
      !json_object_object_get_ex(o, "waveDigest", NULL)) {
    wv_json_add_str(o, "sourceDigest", source_digest);
    wv_json_add_str(o, "waveDigest", wave_digest);
    if (!json_object_object_get_ex(o, "sourceImage", NULL))
      wv_json_add_str(o, "sourceImage", ctx->rec.container_image);
    if (!json_object_object_get_ex(o, "waveImage", NULL))
      wv_json_add_str(o, "waveImage", ctx->rec.target_image);
    const char *s = wv_json_compact(o);
    /* Queued, not waited for: the digests are a report, and a record that lost them to a
     * crash gets them again from the next pull (they are added only where absent). */
    wv_store_op_t op = {WV_STORE_PUT, WV_DB_REQUESTS, ctx->rec.token, s, s ? strlen(s) : 0, exp, 0};
    int rc = s ? wv_store_submit(ctx->app->store, &op, NULL, NULL) : WV_ENOMEM;
    if (rc)
      wv_warn("request %s: digests not recorded: %s", ctx->rec.token, wv_strerror(rc));
  }
  json_object_put(o);
  free(val);
}

/* ---- entry points -------------------------------------------------------------------- */

static int64_t cache_expiry(const wv_pctx_t *ctx) {
  int64_t exp = wv_store_now_ms() + ctx->app->cfg->cache_ttl_ms;
  /* A token's cache entries never outlive the token. */
  if (ctx->have_rec && ctx->rec.expires_ms > 0 && ctx->rec.expires_ms < exp)
    exp = ctx->rec.expires_ms;
  return exp;
}

/* Resolves a token-form tag into *out and adds its entries to the batch (not applied yet). */
/*
 * The digest a build of the token pushed to its tag, or NULL. A build pushed to a repository
 * (wave.build.repo) records the digest its push reported (buildah --digestfile) in its build
 * record before the build is ready (build/build.c, record-digest), so the pull that waited for
 * it asks the repository by that digest: the HEAD of the tag would only say it again. The bytes
 * are still fetched (and checked against the digest): the push leaves no copy of the manifest
 * it sent.
 */
static const char *built_digest(res_t *r) {
  wv_pctx_t *ctx = r->ctx;
  if (ctx->rec.kind != WV_TOKEN_BUILD || !ctx->rec.build_id || !ctx->rec.reference ||
      strcmp(ctx->rec.reference, ctx->rt.reference) != 0)
    return NULL;
  json_object *o = NULL;
  if (wv_store_get_json(ctx->app->store, WV_DB_BUILDS, ctx->rec.build_id, 4u << 20, 0, &o, NULL))
    return NULL;
  const char *target = NULL, *d = NULL, *out = NULL;
  const char *want =
      wv_arena_sprintf(r->a, "%s/%s:%s", ctx->registry, ctx->image, ctx->rt.reference);
  if (want && wv_json_get_str(o, "targetImage", &target) == 0 && strcmp(target, want) == 0 &&
      wv_json_get_str(o, "digest", &d) == 0 && wv_digest_valid(d))
    out = wv_arena_strdup(r->a, d);
  json_object_put(o);
  return out;
}

static int resolve_token_tag(res_t *r, const char *key, wv_cache_entry_t *out) {
  const char *digest = built_digest(r);
  wv_cache_entry_t up;
  int rc = digest ? 0 : resolve_tag(r, r->ctx->rt.reference, &digest);
  if (!rc && !digest)
    rc = wv_fetch_err_set(&r->err, 502, WV_REGERR_UNKNOWN, "No digest for '%s/%s:%s'",
                          r->ctx->registry, r->ctx->image, r->ctx->rt.reference);
  rc = rc ? rc : upstream_manifest(r, digest, &up);
  rc = rc ? rc : serve_document(r, &up, out);
  if (rc)
    return rc;
  /* The same token's later pulls come back by tag: the request-path key, last. */
  if (wv__pbatch_add(r->batch, key, out, r->expires_ms))
    return oom(r);
  update_request_record(r, up.digest, out->digest);
  return 0;
}

/*
 * A token's first pull, parked on the group commit of its cache entries. The answer waits
 * for them: the client asks for the rewritten config next, by a digest only those entries
 * know. The worker does not: it is free as soon as they are queued (before, each first pull
 * held a registry worker, and so a share of its client's, for an fsync).
 */
typedef struct {
  wv_req_t *req;
  wv_resp_t *resp;
  wv_pctx_t *ctx;
  flight_t *f;        /* led by this request: left once the entries are visible; or NULL */
  wv_cache_entry_t e; /* the answer (arena strings) */
  uint64_t rid;
} parked_t;

/* The committer thread: the entries are durable (or failed: answered anyway, as before). */
static void parked_done(void *arg, int rc, int64_t value) {
  (void)value;
  parked_t *p = arg;
  wv_log_set_request(p->rid);
  if (rc)
    wv_warn("manifest cache not written: %s", wv_strerror(rc));
  if (p->f)
    wv__flight_leave(p->f, true, NULL);
  if (wv__proxy_respond_manifest(p->req, p->resp, &p->e) == 0 &&
      p->ctx->app->cfg->wave_metrics_enabled)
    wv__proxy_count_pull(p->req, p->resp, p->ctx);
  wv_log_set_request(0);
  wv_req_complete(p->req);
}

/*
 * Writes the batch of a resolved token tag and answers *e: parked on the commit when the
 * batch fits one write (WV_PARKED: hands off req), else — or when the store's queue is
 * full — waits on this thread. Leaves f (may be NULL) once the entries are written.
 */
static int commit_and_answer(res_t *r, wv_resp_t *resp, flight_t *f, const wv_cache_entry_t *e) {
  parked_t *p = wv_arena_calloc(r->a, sizeof *p);
  bool queued = false;
  if (p)
    *p = (parked_t){r->req, resp, r->ctx, f, *e, wv_log_request()};
  int rc = p ? pbatch_write(r->batch, r->ctx->app->store, parked_done, p, true, &queued)
             : wv__pbatch_apply(r->batch, r->ctx->app->store);
  if (queued)
    return WV_PARKED;
  if (rc)
    wv_warn("manifest cache not written: %s", wv_strerror(rc)); /* still answer */
  if (f)
    wv__flight_leave(f, true, NULL);
  return wv__proxy_respond_manifest(r->req, resp, e);
}

static int respond(wv_req_t *req, wv_resp_t *resp, res_t *r, int rc, const wv_cache_entry_t *e) {
  if (rc == WV_EUPSTREAM || (rc && r->err.status))
    return wv_fetch_err_respond(req, resp, &r->err);
  if (rc)
    return rc;
  return wv__proxy_respond_manifest(req, resp, e);
}

int wv__proxy_manifest_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  res_t r = {.req = req, .a = req->arena, .ctx = ctx, .batch = wv__pbatch_new(req->arena)};
  if (!r.batch)
    return WV_ENOMEM;
  r.expires_ms = cache_expiry(ctx);
  wv_cache_entry_t e;
  const wv_v2_route_t *rt = &ctx->rt;
  const char *key =
      !rt->is_digest ? (ctx->token_form ? req->path : NULL)
                     : wv_cache_key_manifest(req->arena, ctx->registry, ctx->image, rt->reference);
  if (key && wv_cache_get(ctx->app->store, req->arena, key, &e) == 0 && e.kind == WV_CACHE_MANIFEST)
    return wv__proxy_respond_manifest(req, resp, &e);
  int rc;
  if (rt->is_digest) {
    /* Augmenting an image pinned by digest would change the digest it is pinned to. */
    if (ctx->token_form && ctx->rec.reference && strcmp(ctx->rec.reference, rt->reference) == 0 &&
        wv__proxy_has_config(ctx, req->arena))
      return wv_resp_registry_error(req, resp, WV_REGERR_UNSUPPORTED, 400,
                                    wv_arena_sprintf(req->arena,
                                                     "Operation not allowed for container '%s@%s'",
                                                     ctx->image, rt->reference),
                                    NULL);
    rc = upstream_manifest(&r, rt->reference, &e);
    if (!rc && wv__pbatch_apply(r.batch, ctx->app->store))
      wv_warn("manifest cache not written for %s", key);
    return respond(req, resp, &r, rc, &e);
  }
  if (!ctx->token_form) { /* plain form by tag: always fresh, digests cached */
    const char *digest = NULL;
    rc = resolve_tag(&r, rt->reference, &digest);
    rc = rc ? rc : upstream_manifest(&r, digest, &e);
    if (!rc && wv__pbatch_apply(r.batch, ctx->app->store))
      wv_warn("manifest cache not written for %s", digest);
    return respond(req, resp, &r, rc, &e);
  }
  bool leader;
  flight_t *f = wv__flight_join(ctx->app->flights, key, &leader);
  if (!f)
    return WV_ENOMEM;
  if (!leader) {
    rc = wv__flight_wait(f, flight_wait_ms(ctx->app->cfg), &r.err);
    wv__flight_leave(f, false, NULL);
    if (rc == 0 && wv_cache_get(ctx->app->store, req->arena, key, &e) == 0)
      return wv__proxy_respond_manifest(req, resp, &e);
    if (rc == WV_EUPSTREAM)
      return wv_fetch_err_respond(req, resp, &r.err);
    /* Timed out, or the leader's result did not reach the cache: resolve alone. */
    rc = resolve_token_tag(&r, key, &e);
    return rc ? respond(req, resp, &r, rc, &e) : commit_and_answer(&r, resp, NULL, &e);
  }
  rc = resolve_token_tag(&r, key, &e);
  if (!rc)
    return commit_and_answer(&r, resp, f, &e);
  wv__flight_leave(f, true, &r.err);
  return respond(req, resp, &r, rc, &e);
}

bool wv__proxy_restricted(const wv_app_t *app, const char *registry, const char *who) {
  return wv_upstream_perm(app->upstream, registry, who) < WV_PERM_PULL;
}

/*
 * Starts one resolution of registry/image:reference for who: ctx and r (req NULL outside a
 * request; a the arena of both). wv_pctx_t's app is not const (the pull's worker parts take it
 * so); nothing a resolution does writes it. 0, or WV_ENOMEM.
 */
static int res_start(res_t *r, wv_pctx_t *ctx, wv_req_t *req, wv_arena_t *a, const wv_app_t *app,
                     const char *registry, const char *image, const char *who,
                     const char *reference) {
  *ctx = (wv_pctx_t){.app = (wv_app_t *)app,
                     .registry = registry,
                     .image = image,
                     .who = who,
                     .restricted = wv__proxy_restricted(app, registry, who)};
  ctx->rt.reference = reference;
  ctx->rt.is_digest = wv_digest_valid(reference);
  *r = (res_t){.req = req, .a = a, .ctx = ctx, .batch = wv__pbatch_new(a)};
  if (!r->batch)
    return WV_ENOMEM;
  r->expires_ms = cache_expiry(ctx);
  return 0;
}

int wv__proxy_fetch_manifest(wv_req_t *req, wv_app_t *app, const char *registry, const char *image,
                             const char *who, const char *reference, wv_cache_entry_t *out,
                             wv_fetch_err_t *err) {
  wv_pctx_t ctx;
  res_t r;
  if (res_start(&r, &ctx, req, req->arena, app, registry, image, who, reference))
    return WV_ENOMEM;
  const char *digest = reference;
  int rc = ctx.rt.is_digest ? 0 : resolve_tag(&r, reference, &digest);
  if (!rc && !digest)
    rc = wv_fetch_err_set(&r.err, 502, WV_REGERR_UNKNOWN, "No digest for '%s/%s:%s'", registry,
                          image, reference);
  rc = rc ? rc : upstream_manifest(&r, digest, out);
  if (!rc && wv__pbatch_apply(r.batch, app->store))
    wv_warn("manifest cache not written for %s", digest);
  if (rc)
    *err = r.err;
  return rc;
}

/* ---- prefetch: a container request for an image it augments ------------------------- */

/* The upstream config of manifest m: from the cache, or fetched once and cached (put_now). */
static int prefetch_config(res_t *r, const wv_cache_entry_t *m) {
  const char *msg = NULL;
  wv_manifest_info_t info;
  char *config;
  size_t len;
  int rc = wv_manifest_info(r->a, m->body, m->body_len, &info, &msg);
  return rc ? augment_error(r, rc, msg, "the manifest")
            : upstream_config(r, info.config_digest, m->media_type, &config, &len);
}

/* The manifest up names (or, for an index, the platform's entries) and their configs. */
static int prefetch_document(res_t *r, const char *platform, const wv_cache_entry_t *up) {
  wv_arena_t *a = r->a;
  const char *msg = NULL;
  switch (wv_mediatype_classify(up->media_type)) {
  case WV_MT_KIND_MANIFEST:
    return prefetch_config(r, up);
  case WV_MT_KIND_INDEX:
    break;
  default:
    return 0; /* the pull answers what it cannot augment */
  }
  wv_platform_list_t want;
  wv_index_entry_t *entries;
  size_t n;
  int rc = wv_platform_parse_list(a, platform ? platform : "linux/amd64", &want, &msg);
  rc = rc ? rc
          : wv_augment_index_select(a, up->body, up->body_len, up->media_type, &want, r->ctx->image,
                                    r->ctx->rt.reference, &entries, &n, &msg);
  if (rc)
    return augment_error(r, rc == WV_ETOOBIG ? WV_EINVAL : rc, msg, "the index");
  for (size_t i = 0; i < n && !rc; i++) {
    wv_cache_entry_t child;
    rc = upstream_manifest(r, entries[i].digest, &child);
    if (!rc && wv_mediatype_classify(child.media_type) == WV_MT_KIND_MANIFEST)
      rc = prefetch_config(r, &child);
  }
  return rc;
}

/* The window within which a prefetch done is not done again; 0 when prefetches are off. */
static int64_t prefetch_window(const wv_app_t *app, const char *tag) {
  int64_t window = app->cfg->tag_cache_ms;
  if (window > app->cfg->cache_ttl_ms)
    window = app->cfg->cache_ttl_ms;
  /* Tag window 0: every resolution asks what the tag names, and so would this (a second HEAD
   * for the request); a digest reference is not augmented (the pull refuses it). */
  if (window <= 0 || !tag || wv_digest_valid(tag) || !app->upstream)
    return 0;
  return window;
}

/* The tag cache key (with the credentials) and the warm set's key of a prefetch. */
static bool prefetch_keys(const char *registry, const char *image, const char *tag,
                          const char *platform, char tkey[WV_TAGCACHE_KEY_MAX + 1],
                          char wkey[WV_TAGCACHE_KEY_MAX + 1]) {
  if (wv_tagcache_key(tkey, WV_TAGCACHE_KEY_MAX + 1, registry, image, tag, true) != 0)
    return false;
  int n = snprintf(wkey, WV_TAGCACHE_KEY_MAX + 1, "%s\x1c%s", tkey, platform ? platform : "");
  return n > 0 && n < WV_TAGCACHE_KEY_MAX + 1;
}

bool wv_proxy_prefetch_done(const wv_app_t *app, const char *registry, const char *image,
                            const char *who, const char *tag, const char *platform) {
  if (prefetch_window(app, tag) <= 0 || wv__proxy_restricted(app, registry, who))
    return true; /* wv_proxy_prefetch would return at once */
  char tkey[WV_TAGCACHE_KEY_MAX + 1], wkey[WV_TAGCACHE_KEY_MAX + 1];
  char digest[WV_DIGEST_STRLEN], seen[WV_DIGEST_STRLEN];
  return prefetch_keys(registry, image, tag, platform, tkey, wkey) &&
         wv_tagcache_get(app->tags, tkey, digest, sizeof digest) &&
         wv_tagcache_get(app->flights->warm, wkey, seen, sizeof seen) && strcmp(seen, digest) == 0;
}

int wv_proxy_prefetch(const wv_app_t *app, wv_arena_t *a, const char *registry, const char *image,
                      const char *who, const char *tag, const char *platform) {
  int64_t window = prefetch_window(app, tag);
  if (window <= 0)
    return 0;
  wv_pctx_t ctx;
  res_t r;
  if (res_start(&r, &ctx, NULL, a, app, registry, image, who, tag))
    return WV_ENOMEM;
  /* A caller who may not use the configured credentials never reads what they fetched: the
   * pull checks with the upstream first, and nothing fetched here could serve it. */
  if (ctx.restricted)
    return 0;
  char tkey[WV_TAGCACHE_KEY_MAX + 1], wkey[WV_TAGCACHE_KEY_MAX + 1], seen[WV_DIGEST_STRLEN];
  if (wv_tagcache_key(tkey, sizeof tkey, registry, image, tag, true) != 0)
    return 0;
  bool keyed = prefetch_keys(registry, image, tag, platform, tkey, wkey);
  const char *digest = NULL;
  int rc = resolve_tag(&r, tag, &digest); /* the request's image check just saw it */
  if (!rc && !digest)
    return 0;
  if (!rc && keyed && wv_tagcache_get(app->flights->warm, wkey, seen, sizeof seen) &&
      strcmp(seen, digest) == 0)
    return 0; /* done within the window: no cache reads */
  wv_cache_entry_t up;
  rc = rc ? rc : upstream_manifest(&r, digest, &up);
  rc = rc ? rc : prefetch_document(&r, platform, &up);
  /* Entries fetched without leading a flight (out of memory, or a leader that took too
   * long) went to the batch instead: queued, not waited for, as put_now does. */
  if (r.batch->n && pbatch_write(r.batch, app->store, NULL, NULL, false, NULL))
    wv_debug("prefetch of %s/%s:%s: cache entries not written", registry, image, tag);
  if (rc) {
    wv_debug("prefetch of %s/%s:%s: %s", registry, image, tag,
             r.err.msg[0] ? r.err.msg : wv_strerror(rc));
    return rc;
  }
  if (keyed)
    wv_tagcache_put(app->flights->warm, wkey, digest, window);
  return 0;
}

/* ---- a build's base image (docs/builds.md "The base image check") ------------------- */

int wv_proxy_resolve_base(const wv_app_t *app, wv_arena_t *a, const char *registry,
                          const char *image, const char *who, const char *reference,
                          const char *platform, wv_proxy_base_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  err[0] = '\0';
  if (!app->upstream || !reference || !wv_proxy_registry_allowed(app, registry)) {
    snprintf(err, errlen, "registry '%s' is not resolved by waved", registry);
    return WV_EUNSUPPORTED;
  }
  wv_pctx_t ctx;
  res_t r;
  if (res_start(&r, &ctx, NULL, a, app, registry, image, who, reference))
    return WV_ENOMEM;
  const char *digest = reference, *msg = NULL;
  int rc = ctx.rt.is_digest ? 0 : resolve_tag(&r, reference, &digest);
  if (!rc && !digest)
    rc = wv_fetch_err_set(&r.err, 502, WV_REGERR_UNKNOWN, "no digest for the tag");
  wv_cache_entry_t m;
  rc = rc ? rc : upstream_manifest(&r, digest, &m);
  if (!rc && wv_mediatype_classify(m.media_type) == WV_MT_KIND_INDEX) {
    wv_platform_list_t want;
    wv_index_entry_t *entries;
    size_t n = 0;
    rc = wv_platform_parse_list(a, platform ? platform : "linux/amd64", &want, &msg);
    rc = rc ? rc
            : wv_augment_index_select(a, m.body, m.body_len, m.media_type, &want, image, reference,
                                      &entries, &n, &msg);
    if (!rc && n != 1)
      msg = "the index has several entries for the platform", rc = WV_EUNSUPPORTED;
    digest = rc ? NULL : entries[0].digest;
    rc = rc ? rc : upstream_manifest(&r, digest, &m);
  }
  if (!rc && wv_mediatype_classify(m.media_type) != WV_MT_KIND_MANIFEST)
    msg = "not an image manifest", rc = WV_EUNSUPPORTED;
  wv_manifest_info_t info;
  rc = rc ? rc : wv_manifest_info(a, m.body, m.body_len, &info, &msg);
  char *config = NULL;
  size_t len = 0;
  rc = rc ? rc : upstream_config(&r, info.config_digest, m.media_type, &config, &len);
  if (r.batch->n && pbatch_write(r.batch, app->store, NULL, NULL, false, NULL))
    wv_debug("base of a build %s/%s:%s: cache entries not written", registry, image, reference);
  if (rc) {
    snprintf(err, errlen, "%s", msg ? msg : r.err.msg[0] ? r.err.msg : wv_strerror(rc));
    return rc;
  }
  snprintf(out->digest, sizeof out->digest, "%s", digest);
  out->config = config;
  out->config_len = len;
  out->manifest = wv_arena_strndup(a, m.body, m.body_len);
  out->manifest_len = out->manifest ? m.body_len : 0;
  return 0;
}
