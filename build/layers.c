/*
 * build/layers.c — data: layer verification, containerIncludes and the image
 * existence check (see layers.h).
 *
 * DESIGN. Cheap checks come first, so a hostile layer costs little: the
 * decoded size is known from the base64 length alone and must equal gzipSize;
 * then one pass decodes and hashes the text against gzipDigest, with no
 * inflating and no disk. Only a layer whose compressed bytes are exactly what
 * the client declared is inflated: a second pass decodes each chunk into a
 * fixed buffer whose bytes are written to a blob-store writer and fed to
 * zlib, whose output is hashed for tarDigest and counted against a budget
 * (wave.build.data-layer.max-inflate-ratio times the compressed size plus
 * 1 MiB, never above wave.build.data-layer.max-inflated-size), so a gzip
 * bomb stops after a bounded amount of work. The cost is two linear passes
 * over the text and two small buffers, whatever the layer size. Failures are
 * reported in a fixed order (base64, gzipSize, gzipDigest, inflate budget,
 * gzip stream, tarDigest) so a client always learns the first thing that is
 * wrong with what it sent.
 */
#include "build/layers.h"
#include "core/siphash.h"
#include "core/base64.h"
#include "registry/tagcache.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "http/client.h"
#include "http/http.h"
#include "registry/augment.h"
#include "registry/fetch.h"
#include "registry/mediatype.h"
#include "core/log.h"
#include "registry/upstream.h"
#include "storage/cas.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define B64_CHUNK (64 * 1024)  /* base64 characters per step (multiple of 4) */
#define BIN_CHUNK (48 * 1024)  /* their decoded bytes */
#define TAR_CHUNK (128 * 1024) /* inflate output buffer */

/* ---- data: layers -------------------------------------------------------- */

typedef struct {
  wv_sha256_t gz, tar;
  z_stream z;
  bool z_init, in_member, ended, gz_bad, too_big;
  uint64_t gz_len, tar_len, tar_budget;
  unsigned char *out;
  wv_cas_writer_t *w;
} verify_t;

/* Feeds decoded gzip bytes to zlib and hashes what comes out. */
static int inflate_chunk(verify_t *v, const unsigned char *p, size_t n) {
  v->z.next_in = (unsigned char *)p;
  v->z.avail_in = (uInt)n;
  while (v->z.avail_in > 0 && !v->gz_bad && !v->too_big) {
    if (!v->in_member) {
      /* A new gzip member (concatenated members are valid gzip). */
      if (inflateReset(&v->z) != Z_OK)
        return WV_EINTERNAL;
      v->in_member = true;
    }
    v->z.next_out = v->out;
    v->z.avail_out = TAR_CHUNK;
    int zr = inflate(&v->z, Z_NO_FLUSH);
    size_t got = TAR_CHUNK - v->z.avail_out;
    v->tar_len += got;
    if (v->tar_len > v->tar_budget) {
      v->too_big = true;
      break;
    }
    if (got && wv_sha256_update(&v->tar, v->out, got))
      return WV_EINTERNAL;
    if (zr == Z_STREAM_END) {
      v->in_member = false;
      v->ended = true;
    } else if (zr != Z_OK && !(zr == Z_BUF_ERROR && got)) {
      v->gz_bad = true;
    }
  }
  return 0;
}

/* Second pass: the verified gzip bytes go to the blob store and to zlib. */
static int feed(verify_t *v, const unsigned char *p, size_t n) {
  if (v->w) {
    int rc = wv_cas_write(v->w, p, n);
    if (rc)
      return rc;
  }
  return v->gz_bad || v->too_big ? 0 : inflate_chunk(v, p, n);
}

/* First pass: the decoded bytes are only counted and hashed. */
static int feed_hash(verify_t *v, const unsigned char *p, size_t n) {
  v->gz_len += n;
  return wv_sha256_update(&v->gz, p, n) ? WV_EINTERNAL : 0;
}

static void verify_release(verify_t *v) {
  wv_sha256_abort(&v->gz);
  wv_sha256_abort(&v->tar);
  if (v->z_init)
    inflateEnd(&v->z);
  wv_cas_abort(v->w);
  v->w = NULL;
}

/*
 * Runs one pass over the base64 text b64[0..n), handing each decoded chunk to
 * step. The decode buffer is no larger than the text needs: the small layer a
 * pipeline sends with every request then fits the arena's first block (a
 * fresh 48 KiB block per request was a malloc and a free on the hot path).
 * inflate: the pass inflates (feed), which needs the output buffer too.
 */
static int verify_stream(wv_arena_t *a, verify_t *v, const char *b64, size_t n, bool inflate,
                         int (*step)(verify_t *, const unsigned char *, size_t)) {
  size_t bin_len = n < B64_CHUNK ? n / 4 * 3 + 3 : BIN_CHUNK;
  unsigned char *bin = wv_arena_alloc(a, bin_len);
  if (inflate && !v->out)
    v->out = wv_arena_alloc(a, TAR_CHUNK);
  if (!bin || (inflate && !v->out))
    return WV_ENOMEM;
  for (size_t off = 0; off < n; off += B64_CHUNK) {
    size_t take = n - off < B64_CHUNK ? n - off : B64_CHUNK;
    int rc = step(v, bin, wv_base64_decode_into(b64 + off, take, bin));
    if (rc)
      return rc;
  }
  return 0;
}

/* Compares a computed hash with the expected digest string; true when equal. */
static bool hash_is(const uint8_t h[WV_SHA256_LEN], const char *want, char got[WV_DIGEST_STRLEN]) {
  wv_digest_format(h, got);
  return strcmp(got, want) == 0;
}

static const char *bad_size(wv_arena_t *a, size_t idx, const wv_container_layer_t *l,
                            unsigned long long got) {
  return wv_arena_sprintf(a,
                          "Invalid container layer [%zu] - `gzipSize` is %lld but the data: "
                          "location holds %llu bytes",
                          idx, (long long)l->gzip_size, got);
}

/* The failures of the inflating pass, in the order the header promises. */
static const char *verdict(wv_arena_t *a, size_t idx, const wv_container_layer_t *l, verify_t *v,
                           const uint8_t tarh[WV_SHA256_LEN]) {
  char got[WV_DIGEST_STRLEN];
  if (v->too_big)
    return wv_arena_sprintf(a,
                            "Invalid container layer [%zu] - the uncompressed layer exceeds its "
                            "budget of %llu bytes (%llu compressed bytes; see "
                            "wave.build.data-layer.max-inflate-ratio)",
                            idx, (unsigned long long)v->tar_budget, (unsigned long long)v->gz_len);
  if (v->gz_bad || !v->ended || v->in_member)
    return wv_arena_sprintf(a, "Invalid container layer [%zu] - `location` is not gzip data", idx);
  if (!hash_is(tarh, l->tar_digest, got))
    return wv_arena_sprintf(a,
                            "Invalid container layer [%zu] - `tarDigest` is %s but the "
                            "uncompressed layer hashes to %s",
                            idx, l->tar_digest, got);
  return NULL;
}

uint64_t wv_layers_inflate_budget(const wv_config_t *cfg, uint64_t gz_len) {
  uint64_t cap = cfg ? cfg->data_layer_max_inflated : WV_LAYERS_MAX_TAR;
  uint64_t ratio = cfg ? (uint64_t)cfg->data_layer_max_ratio : WV_LAYERS_MAX_RATIO;
  uint64_t floor = WV_LAYERS_BUDGET_FLOOR;
  if (gz_len > (cap - floor) / ratio) /* ratio * gz_len + floor would pass the cap */
    return cap;
  return ratio * gz_len + floor < cap ? ratio * gz_len + floor : cap;
}

/* The cheap pass: decoded size against gzipSize, then the hash against gzipDigest. */
static int check_compressed(wv_arena_t *a, size_t idx, const wv_container_layer_t *l,
                            const char *b64, size_t n, const char **msg) {
  long long len = wv_base64_decoded_len(b64, n);
  if (len < 0) {
    *msg = wv_arena_sprintf(
        a, "Invalid container layer [%zu] - `location` is not valid base64 data", idx);
    return WV_EINVAL;
  }
  if (l->gzip_size != len) {
    *msg = bad_size(a, idx, l, (unsigned long long)len);
    return WV_EINVAL;
  }
  verify_t v = {0};
  uint8_t gzh[WV_SHA256_LEN];
  char got[WV_DIGEST_STRLEN];
  int rc = wv_sha256_init(&v.gz);
  rc = rc ? rc : verify_stream(a, &v, b64, n, false, feed_hash);
  rc = rc ? rc : wv_sha256_final(&v.gz, gzh);
  wv_sha256_abort(&v.gz);
  if (!rc && v.gz_len != (uint64_t)len) /* cannot happen: the length is exact */
    rc = WV_EINTERNAL;
  if (!rc && !hash_is(gzh, l->gzip_digest, got)) {
    *msg = wv_arena_sprintf(a,
                            "Invalid container layer [%zu] - `gzipDigest` is %s but the data: "
                            "location hashes to %s",
                            idx, l->gzip_digest, got);
    rc = WV_EINVAL;
  }
  return rc;
}

/*
 * data: layers verified lately (gzip digest → the tar digest it inflated to, and its size).
 * A pipeline sends the same small layer with each of its thousands of requests: once its
 * gzip bytes hash to a remembered digest (the cheap pass) and the claimed tarDigest is the
 * remembered one, inflating it again would prove nothing new, and the CAS has its bytes.
 * Direct-mapped and fixed, under a leaf lock; one per process (wv_app_t.layer_memo).
 */
#define VERIFIED_SLOTS 256
struct wv_layers_memo {
  pthread_mutex_t mu; /* leaf: the slots */
  struct {
    char gz[WV_DIGEST_STRLEN], tar[WV_DIGEST_STRLEN];
    uint64_t tar_len;
    uint64_t present; /* wv_cas_removals() + 1 when its blob was last seen in the CAS, 0 = never */
  } verified[VERIFIED_SLOTS];
};

int wv_layers_memo_new(wv_layers_memo_t **out) {
  wv_layers_memo_t *m = calloc(1, sizeof *m);
  if (!m)
    return WV_ENOMEM;
  pthread_mutex_init(&m->mu, NULL);
  *out = m;
  return 0;
}

void wv_layers_memo_free(wv_layers_memo_t *m) {
  if (!m)
    return;
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static unsigned verified_slot(const char *gz) {
  return (unsigned)(wv_str_hash(gz) % VERIFIED_SLOTS);
}

/* *present: its blob was seen in the CAS since this process last removed a blob. */
static bool verified_before(wv_layers_memo_t *m, const wv_container_layer_t *l, uint64_t budget,
                            uint64_t removals, bool *present) {
  *present = false;
  if (!m || strlen(l->gzip_digest) >= WV_DIGEST_STRLEN || strlen(l->tar_digest) >= WV_DIGEST_STRLEN)
    return false;
  unsigned i = verified_slot(l->gzip_digest);
  pthread_mutex_lock(&m->mu);
  bool yes = strcmp(m->verified[i].gz, l->gzip_digest) == 0 &&
             strcmp(m->verified[i].tar, l->tar_digest) == 0 && m->verified[i].tar_len <= budget;
  *present = yes && m->verified[i].present == removals + 1;
  pthread_mutex_unlock(&m->mu);
  return yes;
}

/* Its blob was seen in the CAS after reading removals. */
static void seen_present(wv_layers_memo_t *m, const wv_container_layer_t *l, uint64_t removals) {
  unsigned i = verified_slot(l->gzip_digest);
  pthread_mutex_lock(&m->mu);
  if (strcmp(m->verified[i].gz, l->gzip_digest) == 0)
    m->verified[i].present = removals + 1;
  pthread_mutex_unlock(&m->mu);
}

static void verified_now(wv_layers_memo_t *m, const wv_container_layer_t *l, uint64_t tar_len) {
  if (!m || strlen(l->gzip_digest) >= WV_DIGEST_STRLEN || strlen(l->tar_digest) >= WV_DIGEST_STRLEN)
    return;
  unsigned i = verified_slot(l->gzip_digest);
  pthread_mutex_lock(&m->mu);
  memcpy(m->verified[i].gz, l->gzip_digest, strlen(l->gzip_digest) + 1);
  memcpy(m->verified[i].tar, l->tar_digest, strlen(l->tar_digest) + 1);
  m->verified[i].tar_len = tar_len;
  m->verified[i].present = 0;
  pthread_mutex_unlock(&m->mu);
}

/* known_only: WV_DEFER instead of inflating and storing a layer not verified before. */
static int verify_data(wv_arena_t *a, wv_cas_t *cas, wv_layers_memo_t *memo, const wv_config_t *cfg,
                       size_t idx, const wv_container_layer_t *l, bool known_only,
                       const char **msg) {
  const char *b64 = l->location + strlen(WV_LAYERS_DATA_PREFIX);
  size_t n = strlen(b64);
  int rc = check_compressed(a, idx, l, b64, n, msg);
  if (rc)
    return rc;
  verify_t v = {0};
  uint8_t tarh[WV_SHA256_LEN];
  v.gz_len = (uint64_t)l->gzip_size;
  v.tar_budget = wv_layers_inflate_budget(cfg, v.gz_len);
  uint64_t have = 0;
  /* The CAS is asked whether the blob is still there (the collector may have removed it) only
   * when this process removed a blob since it last saw it, or when another instance could have
   * (a shared directory: state.backend redis). */
  bool shared = cfg && cfg->state_backend && strcmp(cfg->state_backend, "redis") == 0;
  uint64_t removals = cas && !shared ? wv_cas_removals(cas) : 0;
  bool present = false;
  if (verified_before(memo, l, v.tar_budget, removals, &present) &&
      (!cas || (present && !shared) ||
       (wv_cas_exists(cas, l->gzip_digest, &have) == 0 && have == v.gz_len))) {
    if (cas && !shared && !present)
      seen_present(memo, l, removals);
    return 0;
  }
  if (known_only)
    return WV_DEFER;
  rc = wv_sha256_init(&v.gz); /* released with the rest; the first pass hashed already */
  rc = rc ? rc : wv_sha256_init(&v.tar);
  if (!rc) {
    v.z_init = inflateInit2(&v.z, 16 + MAX_WBITS) == Z_OK;
    rc = v.z_init ? 0 : WV_ENOMEM;
  }
  if (!rc && cas)
    rc = wv_cas_begin(cas, &v.w);
  rc = rc ? rc : verify_stream(a, &v, b64, n, true, feed);
  rc = rc ? rc : wv_sha256_final(&v.tar, tarh);
  if (rc)
    goto out;
  const char *why = verdict(a, idx, l, &v, tarh);
  if (why) {
    *msg = why;
    rc = WV_EINVAL;
    goto out;
  }
  if (v.w) {
    rc = wv_cas_commit(v.w, l->gzip_digest, NULL);
    v.w = NULL; /* commit frees the writer in every case */
  }
  if (!rc)
    verified_now(memo, l, v.tar_len);
out:
  verify_release(&v);
  return rc;
}

int wv_layers_verify_data(wv_arena_t *a, wv_cas_t *cas, wv_layers_memo_t *memo,
                          const wv_config_t *cfg, size_t idx, const wv_container_layer_t *l,
                          const char **msg) {
  return verify_data(a, cas, memo, cfg, idx, l, false, msg);
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int check_all(wv_arena_t *a, wv_cas_t *cas, wv_layers_memo_t *memo, const wv_config_t *cfg,
                     const wv_container_config_t *cc, bool known_only, const char **msg) {
  for (size_t i = 0; i < cc->n_layers; i++) {
    const wv_container_layer_t *l = &cc->layers[i];
    if (has_prefix(l->location, WV_LAYERS_DATA_PREFIX)) {
      int rc = verify_data(a, cas, memo, cfg, i, l, known_only, msg);
      if (rc)
        return rc;
    } else if (!has_prefix(l->location, "https://") && !has_prefix(l->location, "http://") &&
               !has_prefix(l->location, WV_LAYERS_DOCKER_PREFIX)) {
      *msg = wv_arena_sprintf(a,
                              "Invalid container layer [%zu] - unsupported `location`: use a "
                              "data:, http(s):// or docker:// location",
                              i);
      return WV_EINVAL;
    }
  }
  return 0;
}

int wv_layers_check(wv_arena_t *a, wv_cas_t *cas, wv_layers_memo_t *memo, const wv_config_t *cfg,
                    const wv_container_config_t *cc, const char **msg) {
  return check_all(a, cas, memo, cfg, cc, false, msg);
}

int wv_layers_check_known(wv_arena_t *a, wv_cas_t *cas, wv_layers_memo_t *memo,
                          const wv_config_t *cfg, const wv_container_config_t *cc,
                          const char **msg) {
  return check_all(a, cas, memo, cfg, cc, true, msg);
}

/* ---- upstream: includes and the existence check ----------------------------- */

typedef struct {
  wv_arena_t *a;
  const wv_app_t *app; /* its upstream and, for the config blob, wave.httpclient */
  const wv_ref_t *ref;
  const char *name; /* as the client wrote it, for messages */
  const char **msg;
  const char *who; /* whom the upstream calls act for (registry/upstream.h) */
} inc_t;

/*
 * A failure to talk to the registry at all (not an answer of it): 502 naming
 * the upstream, 403 for a refusal by waved's own policies. The transport's
 * text (addresses, ports, refused or reset) goes to the log only.
 */
static int transport_fail(wv_arena_t *a, const char *registry, int rc, const char *err,
                          const char **msg) {
  if (rc == WV_ENOMEM)
    return rc;
  if (rc == WV_EDENIED) {
    *msg = wv_arena_sprintf(a, "Registry '%s' - %s", registry, err);
    return WV_EDENIED;
  }
  if (err) /* NULL: the caller's transport logged it */
    wv_warn("upstream %s: %s (%s)", registry, err, wv_strerror(rc));
  *msg = wv_arena_sprintf(a, "Unable to reach registry '%s' - %s", registry,
                          rc == WV_ETIMEOUT  ? "it did not answer in time"
                          : rc == WV_ETOOBIG ? "it sent too much data"
                                             : "connection failed");
  return WV_EUPSTREAM;
}

/* Turns an upstream failure into the client's error. */
static int upstream_fail(inc_t *c, int rc, long status, const char *err) {
  if (rc && rc != WV_EAUTH)
    return transport_fail(c->a, c->ref->registry, rc, err, c->msg);
  if (rc == WV_EAUTH || (rc == 0 && (status == 401 || status == 403 || status == 404))) {
    *c->msg = wv_arena_sprintf(c->a,
                               "Container image '%s' listed in `containerIncludes` does not exist "
                               "or access is not authorized",
                               c->name);
    return WV_ENOTFOUND;
  }
  *c->msg = wv_arena_sprintf(c->a,
                             "Cannot resolve container include '%s' - the registry answered "
                             "HTTP %ld",
                             c->name, status);
  return WV_EINVAL;
}

/* GET (or HEAD) /v2/<path>/<kind>/<ref>; resp is the caller's to free. */
static int get_v2(inc_t *c, const char *method, const char *kind, const char *ref, size_t max_body,
                  wv_http_resp_t *resp, char *err, size_t errlen) {
  const char *url = wv_arena_sprintf(c->a, "/v2/%s/%s/%s", c->ref->path, kind, ref);
  const char *hdrs[] = {"Accept: " WV_MT_ACCEPT_MANIFESTS, NULL};
  if (!url)
    return WV_ENOMEM;
  wv_http_req_t req = {.method = method, .url = url, .headers = hdrs, .max_body = max_body};
  return wv_upstream_do(c->app->upstream, c->ref->registry, c->ref->path, false, c->who, &req, resp,
                        err, errlen);
}

/* Fetches a manifest by reference; *kind is its wv_mt_kind_t. */
static int get_manifest(inc_t *c, const char *ref, wv_http_resp_t *resp, wv_mt_kind_t *kind) {
  char err[256] = "";
  int rc = get_v2(c, "GET", "manifests", ref, WV_AUGMENT_MAX_MANIFEST, resp, err, sizeof err);
  if (rc || resp->status != 200)
    return upstream_fail(c, rc, resp->status, err);
  *kind = wv_mediatype_classify(wv_http_resp_header(resp, "Content-Type"));
  if (*kind == WV_MT_KIND_OTHER) {
    json_object *o = NULL;
    const char *mt = NULL;
    char perr[128];
    if (!wv_json_parse(resp->body.data, resp->body.len, WV_AUGMENT_MAX_MANIFEST, 0, &o, perr,
                       sizeof perr) &&
        !wv_json_get_str(o, "mediaType", &mt))
      *kind = wv_mediatype_classify(mt);
    json_object_put(o);
  }
  return 0;
}

static int bad_image(inc_t *c, const char *what) {
  *c->msg = wv_arena_sprintf(c->a, "Container include '%s' - %s", c->name, what);
  return WV_EINVAL;
}

/* The include's words for where wv_fetch_follow() stopped the config blob's GET with rc. */
static int blob_fail(inc_t *c, const wv_fetch_follow_t *f, int rc, const wv_fetch_err_t *e) {
  const char *registry = c->ref->registry;
  switch (f->end) {
  case WV_FETCH_END_REGISTRY:
    if (rc == WV_EAUTH)
      return upstream_fail(c, rc, 0, "");
    if (rc == WV_EDENIED) /* "Registry '<r>' - <why>", as transport_fail words it */
      return (*c->msg = wv_arena_strdup(c->a, e->msg)) ? WV_EDENIED : WV_ENOMEM;
    return transport_fail(c->a, registry, rc, NULL, c->msg); /* wv_fetch logged the detail */
  case WV_FETCH_END_REDIRECTED:
    if (rc != WV_EDENIED)
      return transport_fail(c->a, registry, rc, f->detail, c->msg);
    wv_warn("upstream %s: config redirect to %s refused: %s", registry, f->url, f->detail);
    return transport_fail(c->a, registry, rc,
                          "it redirected a blob to an address the outbound policy does not allow",
                          c->msg);
  case WV_FETCH_END_TOO_MANY:
    *c->msg = wv_arena_sprintf(c->a,
                               "Cannot resolve container include '%s' - the registry redirected "
                               "its config blob more than %d times",
                               c->name, WV_HTTP_MAX_BLOB_REDIRECTS);
    return WV_EINVAL;
  case WV_FETCH_END_LOCATION:
    wv_warn("upstream %s: unusable config redirect to '%s'", registry, f->location);
    *c->msg =
        wv_arena_sprintf(c->a, "Registry '%s' redirected a blob to an unusable location", registry);
    return WV_EUPSTREAM;
  default: /* out of memory */
    return WV_ENOMEM;
  }
}

/*
 * Fetches the config blob whole into resp (the caller frees it) through
 * wv_fetch_follow(): Wave's redirects (registries send blobs to storage or a
 * CDN), credentials only on the registry, retries, the outbound policy for
 * a URL the registry chose; then checks it hashes to digest.
 */
static int get_blob(inc_t *c, const char *digest, wv_http_resp_t *resp) {
  char base[512];
  if (wv_upstream_base_url(c->app->upstream, c->ref->registry, base, sizeof base))
    return bad_image(c, "registry name too long");
  wv_fetch_follow_t f = {.registry = c->ref->registry,
                         .repo = c->ref->path,
                         .who = c->who,
                         .digest = digest,
                         .base = base,
                         .max_body = WV_AUGMENT_MAX_CONFIG};
  wv_fetch_err_t e = {0};
  int rc = wv_fetch_follow(c->app, c->a, &f, resp, &e);
  if (rc)
    return blob_fail(c, &f, rc, &e);
  if (resp->status != 200)
    return upstream_fail(c, 0, resp->status, "");
  char got[WV_DIGEST_STRLEN];
  if (wv_digest_of(resp->body.data, resp->body.len, got) || strcmp(got, digest) != 0) {
    *c->msg = wv_arena_sprintf(c->a, "Container include '%s' - config blob does not match %s",
                               c->name, digest);
    return WV_EINVAL;
  }
  return 0;
}

/* Resolves the image manifest for the platform: body copied into *out (arena). */
static int resolve_manifest(inc_t *c, const wv_platform_list_t *plat, char **out, size_t *len) {
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  wv_mt_kind_t kind = WV_MT_KIND_OTHER;
  int rc = get_manifest(c, c->ref->reference, &resp, &kind);
  if (!rc && kind == WV_MT_KIND_INDEX) {
    wv_index_entry_t *e = NULL;
    size_t n = 0;
    rc = wv_augment_index_select(c->a, resp.body.data, resp.body.len,
                                 wv_http_resp_header(&resp, "Content-Type"), plat, c->ref->path,
                                 c->ref->reference, &e, &n, c->msg);
    if (rc == WV_EINVAL || (!rc && n == 0))
      rc = bad_image(c, *c->msg && rc ? *c->msg : "no manifest for the request platform");
    const char *digest = rc ? NULL : wv_arena_strdup(c->a, e[0].digest);
    wv_http_resp_free(&resp);
    wv_http_resp_init(&resp);
    if (!rc)
      rc = digest ? get_manifest(c, digest, &resp, &kind) : WV_ENOMEM;
  }
  if (!rc && kind != WV_MT_KIND_MANIFEST)
    rc = bad_image(c, "unsupported manifest type (schema 1 or unknown)");
  if (!rc) {
    *out = wv_arena_strndup(c->a, resp.body.data ? resp.body.data : "", resp.body.len);
    *len = resp.body.len;
    rc = *out ? 0 : WV_ENOMEM;
  }
  wv_http_resp_free(&resp);
  return rc;
}

/* Appends one layer per manifest layer, paired with the config's diff_ids. */
static int append_layers(inc_t *c, json_object *layers, json_object *diffs,
                         wv_container_layer_t **out, size_t *n) {
  size_t nl = json_object_array_length(layers);
  if (nl != json_object_array_length(diffs))
    return bad_image(c, "the manifest layers do not match the config rootfs.diff_ids");
  if (*n + nl > WV_CONTAINER_MAX_LAYERS)
    return bad_image(c, "too many layers");
  wv_container_layer_t *v = wv_arena_alloc(c->a, (*n + nl) * sizeof *v);
  if (!v)
    return WV_ENOMEM;
  if (*n)
    memcpy(v, *out, *n * sizeof *v);
  for (size_t i = 0; i < nl; i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    const char *digest = NULL, *diff = json_object_get_string(json_object_array_get_idx(diffs, i));
    int64_t size = 0;
    if (wv_json_get_str(l, "digest", &digest) || wv_json_get_int64(l, "size", &size) ||
        !wv_digest_valid(digest) || !diff || !wv_digest_valid(diff) || size <= 0)
      return bad_image(c, "malformed manifest layer or diff_id");
    wv_container_layer_t *d = &v[*n + i];
    d->location = wv_arena_sprintf(c->a, WV_LAYERS_DOCKER_PREFIX "%s/v2/%s/blobs/%s",
                                   c->ref->registry, c->ref->path, digest);
    d->gzip_digest = wv_arena_strdup(c->a, digest);
    d->tar_digest = wv_arena_strdup(c->a, diff);
    d->gzip_size = size;
    if (!d->location || !d->gzip_digest || !d->tar_digest)
      return WV_ENOMEM;
  }
  *out = v;
  *n += nl;
  return 0;
}

/*
 * Checks c->name into *ref (and points c->ref at it), then fetches its
 * manifest for plat (*man, *man_len; see resolve_manifest) and its config
 * blob into cfg, which the caller has initialised and frees whatever this
 * returns. Returns 0 or the first error; *c->msg says why.
 */
static int fetch_image(inc_t *c, wv_ref_t *ref, const wv_platform_list_t *plat, char **man,
                       size_t *man_len, wv_http_resp_t *cfg) {
  wv_manifest_info_t info;
  int rc = wv_ref_check_container_name(c->a, c->name, ref, c->msg);
  if (rc)
    return rc;
  c->ref = ref;
  rc = resolve_manifest(c, plat, man, man_len);
  if (!rc && wv_manifest_info(c->a, *man, *man_len, &info, c->msg))
    rc = bad_image(c, "malformed image manifest");
  return rc ? rc : get_blob(c, info.config_digest, cfg);
}

int wv_layers_include_resolve(wv_arena_t *a, const wv_app_t *app, const char *who, const char *name,
                              const wv_platform_list_t *plat, wv_container_layer_t **layers,
                              size_t *n, const char **msg) {
  wv_ref_t ref;
  inc_t c = {.a = a, .app = app, .name = name, .msg = msg, .who = who};
  char *man = NULL;
  size_t man_len = 0;
  wv_http_resp_t cfg;
  wv_http_resp_init(&cfg);
  int rc = fetch_image(&c, &ref, plat, &man, &man_len, &cfg);
  json_object *mo = NULL, *co = NULL, *ml = NULL, *rootfs = NULL, *diffs = NULL;
  char perr[128];
  if (!rc && (wv_json_parse(man, man_len, WV_AUGMENT_MAX_MANIFEST, 0, &mo, perr, sizeof perr) ||
              wv_json_parse(cfg.body.data, cfg.body.len, WV_AUGMENT_MAX_CONFIG, 0, &co, perr,
                            sizeof perr) ||
              wv_json_get_array(mo, "layers", &ml) || wv_json_get_object(co, "rootfs", &rootfs) ||
              wv_json_get_array(rootfs, "diff_ids", &diffs)))
    rc = bad_image(&c, "malformed image manifest or config");
  rc = rc ? rc : append_layers(&c, ml, diffs, layers, n);
  json_object_put(mo);
  json_object_put(co);
  wv_http_resp_free(&cfg);
  return rc;
}

/*
 * A pull or a request resolved this tag within wave.storage.cache.tag-duration: it exists (for
 * callers with the same access to the credentials), no round trip. key (WV_TAGCACHE_KEY_MAX + 1
 * bytes) and *keyed: where a HEAD's answer would go.
 */
static bool image_known(const wv_app_t *app, wv_tagcache_t *tags, const char *who,
                        const wv_ref_t *ref, int64_t tag_ttl_ms, char *key, bool *keyed) {
  char digest[WV_DIGEST_STRLEN];
  bool creds = wv_upstream_perm(app->upstream, ref->registry, who) >= WV_PERM_PULL;
  *keyed = tags && tag_ttl_ms > 0 &&
           wv_tagcache_key(key, WV_TAGCACHE_KEY_MAX + 1, ref->registry, ref->path, ref->reference,
                           creds) == 0;
  return *keyed && wv_tagcache_get(tags, key, digest, sizeof digest);
}

bool wv_layers_image_known(const wv_app_t *app, struct wv_tagcache *tags, const char *who,
                           const wv_ref_t *ref, int64_t tag_ttl_ms) {
  char key[WV_TAGCACHE_KEY_MAX + 1];
  bool keyed;
  return image_known(app, tags, who, ref, tag_ttl_ms, key, &keyed);
}

int wv_layers_image_check_exists(wv_arena_t *a, const wv_app_t *app, wv_tagcache_t *tags,
                                 const char *who, const wv_ref_t *ref, int64_t tag_ttl_ms,
                                 const char **msg) {
  inc_t c = {.a = a, .app = app, .ref = ref, .msg = msg, .who = who};
  char key[WV_TAGCACHE_KEY_MAX + 1];
  bool keyed = false;
  if (image_known(app, tags, who, ref, tag_ttl_ms, key, &keyed))
    return 0;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  char err[256] = "";
  int rc = get_v2(&c, "HEAD", "manifests", ref->reference, 0, &resp, err, sizeof err);
  long status = resp.status;
  const char *d = rc ? NULL : wv_http_resp_header(&resp, "Docker-Content-Digest");
  if (keyed && status == 200 && d && wv_digest_valid(d)) /* the first pull's HEAD, saved */
    wv_tagcache_put(tags, key, d, tag_ttl_ms);
  wv_http_resp_free(&resp);
  if (rc == WV_ENOMEM)
    return rc;
  /* Not reaching the registry is not an answer about the image. */
  if (rc && rc != WV_EAUTH)
    return transport_fail(a, ref->registry, rc, err, msg);
  if (!rc && (status >= 500 || (status >= 300 && status < 400))) {
    wv_warn("upstream %s: HEAD of %s answered %ld", ref->registry, wv_ref_full_name(a, ref),
            status);
    *msg = wv_arena_sprintf(a, "Registry '%s' answered HTTP %ld for image '%s'", ref->registry,
                            status, wv_ref_full_name(a, ref));
    return WV_EUPSTREAM;
  }
  if (rc || status != 200) {
    *msg = wv_arena_sprintf(a, "Container image '%s' does not exist or access is not authorized",
                            wv_ref_full_name(a, ref));
    return WV_EINVAL;
  }
  return 0;
}

/* The image config of c->name for plat, copied into the arena (NUL-terminated; *len bytes). */
static int image_config(inc_t *c, const wv_platform_list_t *plat, const char **text, size_t *len) {
  wv_ref_t ref;
  char *man = NULL;
  size_t man_len = 0;
  wv_http_resp_t cfg;
  wv_http_resp_init(&cfg);
  int rc = fetch_image(c, &ref, plat, &man, &man_len, &cfg);
  *text = rc ? NULL : wv_arena_strndup(c->a, cfg.body.data ? cfg.body.data : "", cfg.body.len);
  *len = rc ? 0 : cfg.body.len;
  rc = rc ? rc : (*text ? 0 : WV_ENOMEM);
  wv_http_resp_free(&cfg);
  return rc;
}

int wv_layers_image_entrypoint(wv_arena_t *a, const wv_app_t *app, const char *who,
                               const char *name, const wv_platform_list_t *plat,
                               const char ***entry, size_t *n, const char **msg) {
  *entry = NULL;
  *n = 0;
  inc_t c = {.a = a, .app = app, .name = name, .msg = msg, .who = who};
  const char *text = NULL;
  size_t text_len = 0;
  int rc = image_config(&c, plat, &text, &text_len);
  json_object *co = NULL, *conf = NULL, *ep = NULL;
  char perr[128];
  if (!rc && wv_json_parse(text, text_len, WV_AUGMENT_MAX_CONFIG, 0, &co, perr, sizeof perr))
    rc = bad_image(&c, "malformed image config");
  if (!rc && json_object_object_get_ex(co, "config", &conf) &&
      json_object_object_get_ex(conf, "Entrypoint", &ep) &&
      json_object_is_type(ep, json_type_array)) {
    size_t len = json_object_array_length(ep);
    *entry = wv_arena_calloc(a, (len + 1) * sizeof **entry);
    for (size_t i = 0; *entry && i < len; i++) {
      const char *s = json_object_get_string(json_object_array_get_idx(ep, i));
      if (s && !((*entry)[(*n)++] = wv_arena_strdup(a, s)))
        rc = WV_ENOMEM;
    }
    rc = rc ? rc : (*entry ? 0 : WV_ENOMEM);
  }
  json_object_put(co);
  return rc;
}

int wv_layers_image_config_json(wv_arena_t *a, const wv_app_t *app, const char *who,
                                const char *name, const wv_platform_list_t *plat,
                                const char **config, const char **msg) {
  inc_t c = {.a = a, .app = app, .name = name, .msg = msg, .who = who};
  size_t len = 0;
  return image_config(&c, plat, config, &len);
}
