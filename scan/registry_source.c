/*
 * scan/registry_source.c — see registry_source.h. Resolution is the proxy's
 * (manifest by reference, an index narrowed to the platform with
 * wv_augment_index_select, the child by digest), but the bytes go to the
 * inventory instead of a client: a layer is verified as it streams, and the
 * verdict comes after its last byte — which is why a mismatch fails the scan
 * rather than just the layer.
 */
#include "scan/registry_source.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/client.h"
#include "registry/augment.h"
#include "registry/fetch.h"
#include "registry/mediatype.h"
#include "registry/platform.h"
#include "registry/upstream.h"
#include "storage/cas.h"
#include "storage/embedded.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (256u * 1024) /* read size of embedded blobs */

typedef struct {
  const wv_app_t *app;
  wv_arena_t *a;
  const wv_scan_source_t *src;
  const wv_scan_io_t *io;
  const char **msg;
  bool embedded;
  char base[512]; /* http(s)://host of the registry */
} rs_t;

static void say(rs_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(rs_t *r, const char *fmt, ...) {
  if (!r->io)
    return;
  va_list ap;
  va_start(ap, fmt);
  wv_log_vline(r->io->log, r->io->arg, WV_LOG_LINE_MAX, fmt, ap);
  va_end(ap);
}

static int fail(rs_t *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(rs_t *r, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *m = wv_arena_vsprintf(r->a, fmt, ap);
  va_end(ap);
  *r->msg = m ? m : wv_strerror(rc);
  return rc;
}

static bool cancelled(const rs_t *r) {
  return r->io && r->io->cancelled && r->io->cancelled(r->io->arg);
}

static const char *where(rs_t *r) {
  return r->embedded ? "the embedded registry" : r->src->registry;
}

/* ---- manifests ---------------------------------------------------------------- */

typedef struct {
  char *body;
  size_t len;
  const char *media_type; /* Content-Type or stored type; may be NULL */
} doc_t;

static int embedded_manifest(rs_t *r, const char *ref, doc_t *d) {
  char mt[WV_EMBEDDED_MEDIATYPE_MAX], dig[WV_EMBEDDED_DIGEST_LEN];
  char *body = NULL;
  size_t len = 0;
  int rc = wv_embedded_get_manifest(r->app->store, r->src->repo, ref, &body, &len, mt, dig);
  if (rc == WV_ENOTFOUND || rc == WV_EINVAL)
    return fail(r, WV_ENOTFOUND, "image '%s:%s' not found in the embedded registry", r->src->repo,
                ref);
  if (rc)
    return fail(r, rc, "cannot read '%s:%s' from the embedded registry: %s", r->src->repo, ref,
                wv_strerror(rc));
  d->body = wv_arena_strndup(r->a, body, len);
  d->len = len;
  d->media_type = wv_arena_strdup(r->a, mt);
  free(body);
  return d->body && d->media_type ? 0 : WV_ENOMEM;
}

static int upstream_manifest(rs_t *r, const char *ref, doc_t *d) {
  const char *hdrs[] = {"Accept: " WV_MT_ACCEPT_MANIFESTS, NULL};
  const char *url = wv_arena_sprintf(r->a, "/v2/%s/manifests/%s", r->src->repo, ref);
  if (!url)
    return WV_ENOMEM;
  wv_http_req_t req = {.url = url, .headers = hdrs, .max_body = WV_AUGMENT_MAX_MANIFEST};
  wv_http_resp_t resp;
  wv_fetch_err_t e;
  wv_http_resp_init(&resp);
  int rc = wv_fetch(r->app, r->src->registry, r->src->repo, WV_WHO_WAVED, &req, &resp, NULL, &e);
  if (rc)
    rc = fail(r, rc == WV_ETOOBIG ? rc : WV_EUPSTREAM, "%s", e.msg);
  else if (resp.status == 404)
    rc = fail(r, WV_ENOTFOUND, "image '%s/%s:%s' not found", r->src->registry, r->src->repo, ref);
  else if (resp.status != 200)
    rc = fail(r, WV_EUPSTREAM, "registry '%s' answered %ld for the manifest of '%s:%s'",
              r->src->registry, resp.status, r->src->repo, ref);
  if (!rc) {
    const char *ct = wv_http_resp_header(&resp, "Content-Type");
    d->body = wv_arena_strndup(r->a, resp.body.data ? resp.body.data : "", resp.body.len);
    d->len = resp.body.len;
    d->media_type = ct ? wv_arena_strdup(r->a, ct) : NULL;
    rc = d->body ? 0 : WV_ENOMEM;
  }
  wv_http_resp_free(&resp);
  return rc;
}

/* Fetches a manifest; one asked for by digest must hash to it. */
static int get_manifest(rs_t *r, const char *ref, doc_t *d) {
  int rc = r->embedded ? embedded_manifest(r, ref, d) : upstream_manifest(r, ref, d);
  if (rc || !wv_digest_valid(ref))
    return rc;
  char got[WV_DIGEST_STRLEN];
  if (wv_digest_of(d->body, d->len, got) || strcmp(got, ref) != 0)
    return fail(r, WV_EDIGEST, "manifest %s from %s hashes to %s", ref, where(r), got);
  return 0;
}

static wv_mt_kind_t kind_of(const doc_t *d) {
  wv_mt_kind_t k = wv_mediatype_classify(d->media_type);
  if (k != WV_MT_KIND_OTHER)
    return k;
  json_object *o = NULL;
  const char *mt = NULL;
  char err[64];
  if (!wv_json_parse(d->body, d->len, WV_AUGMENT_MAX_MANIFEST, WV_AUGMENT_MAX_DEPTH, &o, err,
                     sizeof err) &&
      !wv_json_get_str(o, "mediaType", &mt))
    k = wv_mediatype_classify(mt);
  json_object_put(o);
  return k;
}

/* The image manifest for the platform, and its digest. */
static int resolve(rs_t *r, doc_t *man, const char **digest) {
  const wv_scan_source_t *s = r->src;
  int rc = get_manifest(r, s->reference, man);
  wv_mt_kind_t kind = rc ? WV_MT_KIND_OTHER : kind_of(man);
  if (!rc && kind == WV_MT_KIND_INDEX) {
    wv_platform_list_t plat;
    wv_index_entry_t *e = NULL;
    size_t n = 0;
    const char *pmsg = NULL;
    rc = wv_platform_parse_list(r->a, s->platform ? s->platform : "linux/amd64", &plat, &pmsg);
    rc = rc ? rc
            : wv_augment_index_select(r->a, man->body, man->len, man->media_type, &plat, s->repo,
                                      s->reference, &e, &n, &pmsg);
    if (rc == WV_EINVAL || (!rc && n == 0))
      return fail(r, WV_ENOTFOUND, "%s", pmsg ? pmsg : "no manifest for the platform");
    if (rc)
      return fail(r, rc, "malformed image index of '%s:%s'", s->repo, s->reference);
    say(r, "index %s: platform entry %s", s->reference, e[0].digest);
    rc = get_manifest(r, e[0].digest, man);
    kind = rc ? WV_MT_KIND_OTHER : kind_of(man);
  }
  if (!rc && kind != WV_MT_KIND_MANIFEST)
    return fail(r, WV_EPARSE, "'%s:%s' is not an image manifest (schema 1 or unknown type)",
                s->repo, s->reference);
  char got[WV_DIGEST_STRLEN];
  if (!rc && wv_digest_of(man->body, man->len, got))
    rc = WV_ENOMEM;
  if (!rc)
    *digest = wv_arena_strdup(r->a, got);
  return rc ? rc : (*digest ? 0 : WV_ENOMEM);
}

/* ---- layers ----------------------------------------------------------------------- */

typedef struct {
  rs_t *r;
  wv_inventory_t *inv;
  const char *digest;
  uint64_t size; /* declared */
  uint64_t got;
  wv_sha256_t sha;
  int rc; /* why the stream was stopped */
} layer_t;

/* Hashes, counts and inventories one chunk; non-zero stops the stream (l->rc says why). */
static int layer_feed(layer_t *l, const char *p, size_t n) {
  if (cancelled(l->r))
    return l->rc = WV_ECLOSED;
  if (n > l->size - l->got)
    return l->rc = fail(l->r, WV_EDIGEST, "layer %s from %s is longer than its size %llu",
                        l->digest, where(l->r), (unsigned long long)l->size);
  l->got += n;
  if (wv_sha256_update(&l->sha, p, n))
    return l->rc = WV_ENOMEM;
  int rc = wv_inventory_layer_write(l->inv, p, n);
  if (rc)
    l->rc = fail(l->r, rc, "layer %s: %s", l->digest, wv_inventory_error(l->inv));
  return rc;
}

/* The scan's words for where wv_fetch_follow() stopped with rc. */
static int follow_fail(layer_t *l, const wv_fetch_follow_t *f, int rc, const wv_fetch_err_t *e) {
  rs_t *r = l->r;
  switch (f->end) {
  case WV_FETCH_END_REGISTRY:
    return fail(r, WV_EUPSTREAM, "%s", e->msg);
  case WV_FETCH_END_REDIRECTED:
    wv_warn("scan: layer %s of %s redirected to %s: %s", l->digest, r->src->registry, f->url,
            f->detail);
    return fail(r, WV_EUPSTREAM,
                "cannot fetch layer %s: registry '%s' redirected it to a "
                "location that %s",
                l->digest, r->src->registry,
                rc == WV_EDENIED ? "the outbound policy does not allow" : "could not be read");
  case WV_FETCH_END_TOO_MANY:
    return fail(r, WV_EUPSTREAM, "too many redirects fetching layer %s", l->digest);
  case WV_FETCH_END_LOCATION:
    return fail(r, WV_EUPSTREAM, "registry '%s' redirected layer %s to '%.200s'", r->src->registry,
                l->digest, f->location);
  default: /* out of memory */
    return rc;
  }
}

static int feed(void *arg, const char *p, size_t n) { return layer_feed(arg, p, n); }

/* The layer from the registry (wv_fetch_follow), each word of a failure the scan's own. */
static int upstream_layer(layer_t *l) {
  rs_t *r = l->r;
  wv_fetch_follow_t f = {.registry = r->src->registry,
                         .repo = r->src->repo,
                         .who = WV_WHO_WAVED,
                         .digest = l->digest,
                         .base = r->base,
                         .timeout_ms = -1,
                         .idle_timeout_ms = r->app->cfg->hc_idle_timeout_ms,
                         .feed = feed,
                         .feed_arg = l};
  wv_fetch_err_t e;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_fetch_follow(r->app, r->a, &f, &resp, &e);
  if (l->rc)
    rc = l->rc;
  else if (rc)
    rc = follow_fail(l, &f, rc, &e);
  if (!rc && resp.status != 200)
    rc = fail(r, resp.status == 404 ? WV_ENOTFOUND : WV_EUPSTREAM,
              "registry '%s' answered %ld for layer %s of '%s'", r->src->registry, resp.status,
              l->digest, r->src->repo);
  wv_http_resp_free(&resp);
  return rc;
}

static int embedded_layer(layer_t *l) {
  int fd = -1;
  uint64_t size = 0;
  int rc = wv_embedded_has_blob(l->r->app->store, l->r->app->cas, l->r->src->repo, l->digest, NULL);
  rc = rc ? rc : wv_cas_open_blob(l->r->app->cas, l->digest, &fd, &size);
  if (rc)
    return fail(l->r, rc == WV_ENOTFOUND ? rc : WV_EIO, "layer %s is missing from the blob store",
                l->digest);
  char *buf = malloc(CHUNK);
  rc = buf ? 0 : WV_ENOMEM;
  while (!rc) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      rc = fail(l->r, WV_EIO, "cannot read layer %s: %s", l->digest, strerror(errno));
    if (n <= 0)
      break;
    rc = layer_feed(l, buf, (size_t)n);
  }
  free(buf);
  close(fd);
  return rc;
}

/* Streams one layer into the inventory and checks its size and digest. */
static int read_layer(rs_t *r, wv_inventory_t *inv, const char *digest, uint64_t size) {
  layer_t l = {.r = r, .inv = inv, .digest = digest, .size = size};
  if (wv_sha256_init(&l.sha))
    return WV_ENOMEM;
  int rc = wv_inventory_layer_begin(inv, digest);
  if (!rc)
    rc = r->embedded ? embedded_layer(&l) : upstream_layer(&l);
  uint8_t h[WV_SHA256_LEN];
  char got[WV_DIGEST_STRLEN];
  if (wv_sha256_final(&l.sha, h))
    rc = rc ? rc : WV_ENOMEM;
  if (rc)
    return rc == WV_ECLOSED ? fail(r, rc, "scan cancelled") : rc;
  wv_digest_format(h, got);
  if (l.got != size)
    return fail(r, WV_EDIGEST, "layer %s from %s: %llu bytes, its descriptor says %llu", digest,
                where(r), (unsigned long long)l.got, (unsigned long long)size);
  if (strcmp(got, digest) != 0)
    return fail(r, WV_EDIGEST, "layer %s from %s hashes to %s", digest, where(r), got);
  rc = wv_inventory_layer_end(inv);
  return rc ? fail(r, rc, "layer %s: %s", digest, wv_inventory_error(inv)) : 0;
}

static int read_layers(rs_t *r, const doc_t *man, wv_inventory_t *inv,
                       wv_scan_source_result_t *out) {
  json_object *o = NULL, *layers = NULL;
  char err[128];
  int rc = wv_json_parse(man->body, man->len, WV_AUGMENT_MAX_MANIFEST, WV_AUGMENT_MAX_DEPTH, &o,
                         err, sizeof err);
  if (rc || wv_json_get_array(o, "layers", &layers)) {
    json_object_put(o);
    return fail(r, rc == WV_ENOMEM ? rc : WV_EPARSE, "malformed image manifest of '%s:%s'",
                r->src->repo, r->src->reference);
  }
  size_t n = json_object_array_length(layers);
  for (size_t i = 0; !rc && i < n; i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    const char *digest = NULL;
    int64_t size = -1;
    if (wv_json_get_str(l, "digest", &digest) || !wv_digest_valid(digest) ||
        wv_json_get_int64(l, "size", &size) || size < 0) {
      rc = fail(r, WV_EPARSE, "malformed layer %zu in the manifest of '%s:%s'", i, r->src->repo,
                r->src->reference);
      break;
    }
    const char *d = wv_arena_strdup(r->a, digest);
    rc = d ? read_layer(r, inv, d, (uint64_t)size) : WV_ENOMEM;
    if (!rc) {
      say(r, "layer %zu/%zu %s: %lld bytes", i + 1, n, d, (long long)size);
      out->layers++;
      out->bytes += (uint64_t)size;
    }
  }
  json_object_put(o);
  return rc;
}

int wv_scan_source_read(const wv_app_t *app, wv_arena_t *a, const wv_scan_source_t *src,
                        wv_inventory_t *inv, const wv_scan_io_t *io, wv_scan_source_result_t *out,
                        const char **msg) {
  static const char *const none = "";
  rs_t r = {.app = app, .a = a, .src = src, .io = io, .msg = msg};
  memset(out, 0, sizeof *out);
  *msg = none;
  r.embedded = !src->registry || !*src->registry;
  if (!src->repo || !src->reference)
    return fail(&r, WV_EINVAL, "no image to scan");
  if (!r.embedded && wv_upstream_base_url(app->upstream, src->registry, r.base, sizeof r.base))
    return fail(&r, WV_EINVAL, "registry name too long: '%.100s'", src->registry);
  doc_t man = {0};
  int rc = resolve(&r, &man, &out->manifest_digest);
  if (!rc)
    say(&r, "manifest %s", out->manifest_digest);
  return rc ? rc : read_layers(&r, &man, inv, out);
}
