/*
 * registry/copy.c — the mirror copy engine: the walk over manifests and
 * the pure helpers. Blob streaming is in registry/copy_blob.c. The design
 * is described at the top of registry/copy.h and in docs/mirror.md.
 */
#include "registry/copy.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "registry/mediatype.h"
#include "registry/copy_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ACCEPT_HEADER "Accept: " WV_MT_ACCEPT_MANIFESTS
#define RETRY_DELAY_MS 500
#define RETRY_MAX_DELAY_MS 5000

/* ---- errors, logs ------------------------------------------------------------ */

int wv__copy_fail(copy_t *m, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, m->errlen, fmt, ap);
  va_end(ap);
  return rc;
}

void wv__copy_logf(copy_t *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wv_log_vline(m->o->log, m->o->cb_arg, WV_LOG_LINE_MAX, fmt, ap);
  va_end(ap);
}

bool wv__copy_cancelled(const copy_t *m) {
  return m->o->cancelled && m->o->cancelled(m->o->cb_arg);
}

static const char *side_registry(const copy_t *m, bool dst) {
  return dst ? m->o->dst_registry : m->o->src_registry;
}

int wv__copy_request(copy_t *m, bool dst, const char *what, const char *method, const char *path,
                     bool abs_url, const char *const *headers, const void *body, size_t body_len,
                     wv_http_resp_t *resp) {
  wv_http_req_t req = {.method = method,
                       .url = path,
                       .headers = headers,
                       .body = body,
                       .body_len = body_len,
                       .max_body = WV_COPY_MAX_MANIFEST,
                       .timeout_ms = m->req_timeout,
                       .connect_timeout_ms = m->conn_timeout};
  char detail[512] = "";
  wv_http_resp_free(resp);
  wv_http_resp_init(resp);
  int rc;
  if (abs_url) {
    req.policy = wv_upstream_policy(m->u); /* a URL the registry chose */
    rc = wv_http_do(wv_http_client_get(), &req, resp, detail, sizeof detail);
  } else {
    rc = wv_upstream_do(m->u, side_registry(m, dst), dst ? m->o->dst_repo : m->o->src_repo, dst,
                        m->o->who, &req, resp, detail, sizeof detail);
  }
  if (rc) {
    m->retry = rc == WV_EUPSTREAM || rc == WV_ETIMEOUT;
    return wv__copy_fail(m, rc, "%s: %s %s: %s", what, dst ? "target registry" : "source registry",
                         side_registry(m, dst), detail[0] ? detail : wv_strerror(rc));
  }
  return 0;
}

/* The first registry error's message in a /v2 error body, if any. */
static void error_text(const wv_http_resp_t *resp, char *out, size_t outlen) {
  out[0] = '\0';
  json_object *o = NULL, *errs = NULL, *e0 = NULL;
  char perr[64];
  if (!resp->body.len ||
      wv_json_parse(resp->body.data, resp->body.len, resp->body.len + 1, 8, &o, perr, sizeof perr))
    return;
  if (wv_json_get_array(o, "errors", &errs) == 0 && json_object_array_length(errs) > 0 &&
      (e0 = json_object_array_get_idx(errs, 0))) {
    const char *code = NULL, *msg = NULL;
    wv_json_get_str(e0, "code", &code);
    wv_json_get_str(e0, "message", &msg);
    snprintf(out, outlen, " (%s%s%s)", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
  }
  json_object_put(o);
}

int wv__copy_fail_status(copy_t *m, bool dst, const char *what, const wv_http_resp_t *resp) {
  char text[300];
  error_text(resp, text, sizeof text);
  m->retry = resp->status == 429 || resp->status >= 500;
  return wv__copy_fail(m, WV_EUPSTREAM, "%s: %s %s answered %ld%s", what,
                       dst ? "target registry" : "source registry", side_registry(m, dst),
                       resp->status, text);
}

/* Sleeps ms unless cancelled first. Returns false when cancelled. */
static bool pause_ms(const copy_t *m, int64_t ms) {
  for (int64_t waited = 0; waited < ms; waited += 100) {
    if (wv__copy_cancelled(m))
      return false;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return !wv__copy_cancelled(m);
}

typedef int (*step_fn)(copy_t *m, void *arg);

/* Runs fn up to o->attempts times while its failure is retryable. */
static int with_retry(copy_t *m, step_fn fn, void *arg) {
  int attempts = m->o->attempts > 0 ? m->o->attempts : 1;
  int64_t delay = RETRY_DELAY_MS;
  int rc = 0;
  for (int i = 1; i <= attempts; i++) {
    m->retry = false;
    rc = fn(m, arg);
    if (!rc || !m->retry || i == attempts)
      break;
    wv__copy_logf(m, "%s - trying again (%d of %d)", m->err, i + 1, attempts);
    if (!pause_ms(m, delay))
      return wv__copy_fail(m, WV_ECLOSED, "mirror cancelled");
    delay = delay * 2 > RETRY_MAX_DELAY_MS ? RETRY_MAX_DELAY_MS : delay * 2;
  }
  return rc;
}

/* ---- pure helpers ------------------------------------------------------------ */

/* Content-Type without parameters or blanks, as an arena string. */
static const char *bare_type(wv_arena_t *a, const char *ct) {
  if (!ct)
    return NULL;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  size_t n = strcspn(ct, "; \t");
  return n ? wv_arena_strndup(a, ct, n) : NULL;
}

static int desc_parse(wv_arena_t *a, json_object *o, bool is_manifest, wv_copy_desc_t *d, char *err,
                      size_t errlen) {
  const char *mt = NULL, *dg = NULL;
  int64_t size = -1;
  if (!json_object_is_type(o, json_type_object) || wv_json_get_str(o, "digest", &dg) || !dg) {
    snprintf(err, errlen, "a descriptor has no digest");
    return WV_EPARSE;
  }
  if (!wv_digest_valid(dg)) {
    snprintf(err, errlen, "unsupported or malformed digest '%.80s'", dg);
    return WV_EPARSE;
  }
  wv_json_get_str(o, "mediaType", &mt);
  if (wv_json_get_int64(o, "size", &size) || size < 0)
    size = -1;
  d->media_type = mt ? wv_arena_strdup(a, mt) : NULL;
  d->digest = wv_arena_strdup(a, dg);
  d->size = size;
  d->is_manifest = is_manifest;
  return d->digest && (!mt || d->media_type) ? 0 : WV_ENOMEM;
}

/* Layers a registry never stores (Windows foreign layers): fetched from their urls. */
static bool non_distributable(const char *mt) {
  return mt && (strstr(mt, "foreign") || strstr(mt, "nondistributable"));
}

/* The media type of a document: Content-Type, else its mediaType, else its shape. */
static const char *doc_type(wv_arena_t *a, json_object *o, const char *content_type) {
  const char *ct = bare_type(a, content_type);
  if (ct && wv_mediatype_classify(ct) != WV_MT_KIND_OTHER)
    return ct;
  const char *mt = NULL;
  json_object *x = NULL;
  if (wv_json_get_str(o, "mediaType", &mt) == 0 && mt)
    return wv_arena_strdup(a, mt);
  if (json_object_object_get_ex(o, "manifests", &x))
    return WV_MT_OCI_INDEX;
  if (json_object_object_get_ex(o, "fsLayers", &x))
    return WV_MT_DOCKER_SCHEMA1;
  if (json_object_object_get_ex(o, "config", &x))
    return WV_MT_OCI_MANIFEST;
  return ct;
}

static int add_array(wv_arena_t *a, json_object *arr, bool is_manifest, wv_copy_desc_t *out,
                     size_t *n, char *err, size_t errlen) {
  size_t len = json_object_array_length(arr);
  for (size_t i = 0; i < len; i++) {
    if (*n >= WV_COPY_MAX_CHILDREN) {
      snprintf(err, errlen, "more than %d descriptors", WV_COPY_MAX_CHILDREN);
      return WV_ETOOBIG;
    }
    int rc = desc_parse(a, json_object_array_get_idx(arr, i), is_manifest, &out[*n], err, errlen);
    if (rc)
      return rc;
    if (!non_distributable(out[*n].media_type))
      (*n)++;
  }
  return 0;
}

static int list_children(wv_arena_t *a, json_object *o, wv_mt_kind_t kind, wv_copy_desc_t *out,
                         size_t *n, char *err, size_t errlen) {
  json_object *arr = NULL, *cfg = NULL;
  if (kind == WV_MT_KIND_INDEX) {
    if (wv_json_get_array(o, "manifests", &arr) || !arr) {
      snprintf(err, errlen, "an index without a manifests array");
      return WV_EPARSE;
    }
    return add_array(a, arr, true, out, n, err, errlen);
  }
  if (wv_json_get_object(o, "config", &cfg) || !cfg) {
    snprintf(err, errlen, "a manifest without a config descriptor");
    return WV_EPARSE;
  }
  int rc = desc_parse(a, cfg, false, &out[(*n)++], err, errlen);
  if (rc)
    return rc;
  if (wv_json_get_array(o, "layers", &arr) || !arr) {
    snprintf(err, errlen, "a manifest without a layers array");
    return WV_EPARSE;
  }
  return add_array(a, arr, false, out, n, err, errlen);
}

/* Slots needed for the descriptors of o: a config plus every array entry. */
static int count_children(json_object *o, size_t *need) {
  json_object *arr = NULL;
  *need = 1;
  if (json_object_object_get_ex(o, "manifests", &arr) && json_object_is_type(arr, json_type_array))
    *need += json_object_array_length(arr);
  if (json_object_object_get_ex(o, "layers", &arr) && json_object_is_type(arr, json_type_array))
    *need += json_object_array_length(arr);
  return *need > WV_COPY_MAX_CHILDREN + 1 ? WV_ETOOBIG : 0;
}

int wv_copy_children(wv_arena_t *a, const char *body, size_t len, const char *content_type,
                     const char **mt, wv_copy_desc_t **out, size_t *n, char *err, size_t errlen) {
  json_object *o = NULL;
  char perr[128];
  *out = NULL;
  *n = 0;
  if (wv_json_parse(body, len, WV_COPY_MAX_MANIFEST, 0, &o, perr, sizeof perr) ||
      !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    snprintf(err, errlen, "not a JSON object: %s", perr);
    return WV_EPARSE;
  }
  size_t need = 0;
  const char *type = doc_type(a, o, content_type);
  wv_mt_kind_t kind = wv_mediatype_classify(type);
  const char *canon = wv_mediatype_canonical(type);
  *mt = canon ? canon : type;
  int rc = 0;
  if (kind == WV_MT_KIND_SCHEMA1) {
    snprintf(err, errlen, "Docker schema 1 manifests cannot be mirrored");
    rc = WV_EUNSUPPORTED;
  } else if (!type) {
    snprintf(err, errlen, "unknown manifest type");
    rc = WV_EPARSE;
  } else if ((rc = count_children(o, &need))) {
    snprintf(err, errlen, "more than %d descriptors", WV_COPY_MAX_CHILDREN);
  } else {
    /* Unknown types with a manifest's shape (artifacts) are copied like manifests. */
    *out = wv_arena_calloc(a, need * sizeof **out);
    rc = *out ? list_children(a, o, kind == WV_MT_KIND_INDEX ? kind : WV_MT_KIND_MANIFEST, *out, n,
                              err, errlen)
              : WV_ENOMEM;
  }
  json_object_put(o);
  return rc;
}

/* Length of "scheme://host[:port]" at the start of url, 0 when not http(s). */
static size_t origin_len(const char *url) {
  const char *p = NULL;
  if (strncasecmp(url, "http://", 7) == 0)
    p = url + 7;
  else if (strncasecmp(url, "https://", 8) == 0)
    p = url + 8;
  return p ? (size_t)(p - url) + strcspn(p, "/?#") : 0;
}

int wv_copy_location(wv_arena_t *a, const char *base, const char *location, const char *digest,
                     const char **target, bool *same_origin) {
  if (!location || !*location)
    return WV_EINVAL;
  const char *rest = location;
  *same_origin = true;
  if (strstr(location, "://")) {
    size_t ol = origin_len(location);
    if (!ol)
      return WV_EINVAL;
    *same_origin = strlen(base) == ol && strncasecmp(base, location, ol) == 0;
    rest = *same_origin ? location + ol : location;
  }
  const char *sep = strchr(rest, '?') ? "&" : "?";
  const char *slash = *same_origin && rest[0] != '/' ? "/" : "";
  *target = digest ? wv_arena_sprintf(a, "%s%s%sdigest=%.6s%%3A%s", slash, rest, sep, digest,
                                      strchr(digest, ':') ? strchr(digest, ':') + 1 : digest)
                   : wv_arena_sprintf(a, "%s%s", slash, rest);
  return *target ? 0 : WV_ENOMEM;
}

int wv_copy_content_range(uint64_t off, size_t n, char *out, size_t outlen) {
  int w = snprintf(out, outlen, "Content-Range: %" PRIu64 "-%" PRIu64, off, off + n - 1);
  return w < 0 || (size_t)w >= outlen || n == 0 ? WV_ETOOBIG : 0;
}

/* ---- manifests ------------------------------------------------------------------ */

typedef struct {
  wv_arena_t *a;
  const char *ref;  /* source reference (tag or digest) */
  const char *want; /* expected digest, NULL for the root by tag */
  wv_http_resp_t resp;
  char digest[WV_DIGEST_STRLEN];
  const char *ctype;
} get_t;

static int get_manifest(copy_t *m, void *arg) {
  get_t *g = arg;
  const char *hdrs[] = {ACCEPT_HEADER, NULL};
  const char *path = wv_arena_sprintf(g->a, "/v2/%s/manifests/%s", m->o->src_repo, g->ref);
  const char *what = wv_arena_sprintf(g->a, "fetch manifest %s of %s", g->ref, m->o->src_repo);
  if (!path || !what)
    return WV_ENOMEM;
  int rc = wv__copy_request(m, false, what, "GET", path, false, hdrs, NULL, 0, &g->resp);
  if (rc)
    return rc;
  if (g->resp.status != 200)
    return wv__copy_fail_status(m, false, what, &g->resp);
  if ((rc = wv_digest_of(g->resp.body.data, g->resp.body.len, g->digest)))
    return rc;
  if (g->want && strcmp(g->want, g->digest) != 0)
    return wv__copy_fail(m, WV_EDIGEST, "%s: source registry %s sent bytes hashing to %s", what,
                         m->o->src_registry, g->digest);
  g->ctype = bare_type(g->a, wv_http_resp_header(&g->resp, "Content-Type"));
  return 0;
}

/* True when the target repository already has manifest digest. */
static bool dst_has(copy_t *m, wv_arena_t *a, const char *kind, const char *digest) {
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  const char *hdrs[] = {ACCEPT_HEADER, NULL};
  const char *path = wv_arena_sprintf(a, "/v2/%s/%s/%s", m->o->dst_repo, kind, digest);
  int rc =
      path ? wv__copy_request(m, true, "check target", "HEAD", path, false, hdrs, NULL, 0, &resp)
           : WV_ENOMEM;
  bool has = rc == 0 && resp.status == 200;
  wv_http_resp_free(&resp);
  return has;
}

typedef struct {
  wv_arena_t *a;
  const char *ref; /* target reference */
  const char *mt;
  const get_t *g;
} put_t;

static int put_manifest(copy_t *m, void *arg) {
  put_t *p = arg;
  char ct[512];
  snprintf(ct, sizeof ct, "Content-Type: %s", p->mt);
  const char *hdrs[] = {ct, NULL};
  const char *path = wv_arena_sprintf(p->a, "/v2/%s/manifests/%s", m->o->dst_repo, p->ref);
  const char *what =
      wv_arena_sprintf(p->a, "write manifest %s to %s", p->g->digest, m->o->dst_repo);
  if (!path || !what)
    return WV_ENOMEM;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv__copy_request(m, true, what, "PUT", path, false, hdrs, p->g->resp.body.data,
                            p->g->resp.body.len, &resp);
  if (!rc && resp.status != 201 && resp.status != 200)
    rc = wv__copy_fail_status(m, true, what, &resp);
  const char *dg = rc ? NULL : wv_http_resp_header(&resp, "Docker-Content-Digest");
  if (dg && strcmp(dg, p->g->digest) != 0)
    rc = wv__copy_fail(m, WV_EDIGEST, "%s: target registry %s stored it as %s", what,
                       m->o->dst_registry, dg);
  wv_http_resp_free(&resp);
  return rc;
}

static int copy_blob_step(copy_t *m, void *arg) { return wv__copy_blob(m, arg); }

static int copy_manifest(copy_t *m, const char *ref, const char *want, const char *dst_ref,
                         int depth);

static int copy_children(copy_t *m, const wv_copy_desc_t *kids, size_t n, int depth) {
  for (size_t i = 0; i < n; i++) {
    if (wv__copy_cancelled(m))
      return wv__copy_fail(m, WV_ECLOSED, "mirror cancelled");
    int rc = kids[i].is_manifest
                 ? copy_manifest(m, kids[i].digest, kids[i].digest, kids[i].digest, depth + 1)
                 : with_retry(m, copy_blob_step, (void *)&kids[i]);
    if (rc)
      return rc;
  }
  return 0;
}

/* Copies manifest ref (expected digest want, or NULL) and everything under it. */
static int copy_manifest(copy_t *m, const char *ref, const char *want, const char *dst_ref,
                         int depth) {
  if (depth > WV_COPY_MAX_DEPTH)
    return wv__copy_fail(m, WV_EPARSE, "manifests nested deeper than %d levels", WV_COPY_MAX_DEPTH);
  wv_arena_t *a = wv_arena_new(0); /* the manifest's descriptors: bounded by the caps */
  if (!a)
    return WV_ENOMEM;
  get_t g = {.a = a, .ref = ref, .want = want};
  wv_http_resp_init(&g.resp);
  int rc = 0;
  if (want && dst_has(m, a, "manifests", want)) {
    wv__copy_logf(m, "manifest %s already in the target", want);
    m->st.manifests_existing++;
    goto out;
  }
  rc = with_retry(m, get_manifest, &g);
  const char *mt = NULL;
  wv_copy_desc_t *kids = NULL;
  size_t n = 0;
  char perr[256];
  if (!rc && (rc = wv_copy_children(a, g.resp.body.data, g.resp.body.len, g.ctype, &mt, &kids, &n,
                                    perr, sizeof perr)))
    rc = rc == WV_ENOMEM ? rc
                         : wv__copy_fail(m, rc, "read manifest %s of %s/%s: %s", g.digest,
                                         m->o->src_registry, m->o->src_repo, perr);
  if (!rc)
    wv__copy_logf(m, "manifest %s (%s): %zu %s", g.digest, mt, n,
                  wv_mediatype_classify(mt) == WV_MT_KIND_INDEX ? "manifests" : "blobs");
  rc = rc ? rc : copy_children(m, kids, n, depth);
  put_t p = {.a = a, .ref = dst_ref ? dst_ref : g.digest, .mt = mt, .g = &g};
  rc = rc ? rc : with_retry(m, put_manifest, &p);
  if (!rc) {
    m->st.manifests++;
    if (depth == 0)
      memcpy(m->st.digest, g.digest, sizeof g.digest);
  }
out:
  wv_http_resp_free(&g.resp);
  wv_arena_free(a);
  return rc;
}

static size_t chunk_of(const wv_copy_opts_t *o) {
  size_t c = o->chunk_size ? o->chunk_size : WV_COPY_CHUNK_DEFAULT;
  return c < WV_COPY_CHUNK_MIN ? WV_COPY_CHUNK_MIN : c;
}

int wv_copy_image(const wv_app_t *app, const wv_copy_opts_t *o, wv_copy_stats_t *st, char *err,
                  size_t errlen) {
  wv_upstream_t *u = app->upstream;
  copy_t m = {.app = app, .u = u, .o = o, .err = err, .errlen = errlen};
  err[0] = '\0';
  m.same_registry = strcasecmp(o->src_registry, o->dst_registry) == 0;
  m.chunk = chunk_of(o);
  m.req_timeout = o->request_timeout_ms > 0 ? o->request_timeout_ms : 60000;
  m.conn_timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
  m.idle_timeout = o->idle_timeout_ms > 0 ? o->idle_timeout_ms : 120000;
  if (wv_upstream_base_url(u, o->dst_registry, m.dst_base, sizeof m.dst_base))
    return wv__copy_fail(&m, WV_ETOOBIG, "target registry name too long");
  wv__copy_logf(&m, "mirror %s/%s:%s -> %s/%s:%s", o->src_registry, o->src_repo, o->src_ref,
                o->dst_registry, o->dst_repo, o->dst_ref);
  const char *want = strncmp(o->src_ref, "sha256:", 7) == 0 ? o->src_ref : NULL;
  int rc = copy_manifest(&m, o->src_ref, want, o->dst_ref, 0);
  if (rc && !err[0])
    wv__copy_fail(&m, rc, "copy %s/%s:%s: %s", o->src_registry, o->src_repo, o->src_ref,
                  wv_strerror(rc));
  if (!rc)
    wv__copy_logf(&m,
                  "done: %s; %zu manifests written (%zu already there), %zu blobs copied "
                  "(%" PRIu64 " bytes), %zu mounted, %zu already there",
                  m.st.digest, m.st.manifests, m.st.manifests_existing, m.st.blobs_copied,
                  m.st.bytes, m.st.blobs_mounted, m.st.blobs_existing);
  else
    wv__copy_logf(&m, "failed: %s", err);
  if (st)
    *st = m.st;
  return rc;
}

/* ---- single requests for the front door ------------------------------------ */

/* /v2/<repo>/manifests/<ref> into path; WV_ETOOBIG when it does not fit. */
static int manifest_path(char path[MIRROR_URL_MAX], const char *repo, const char *ref) {
  int n = snprintf(path, MIRROR_URL_MAX, "/v2/%s/manifests/%s", repo, ref);
  return n < 0 || (size_t)n >= MIRROR_URL_MAX ? WV_ETOOBIG : 0;
}

/* One manifest request for the front door; rc and status as wv_copy_head_digest. */
static int manifest_req(wv_upstream_t *u, const char *registry, const char *repo, const char *path,
                        const char *who, const char *method, int64_t timeout_ms,
                        wv_http_resp_t *resp) {
  char detail[256];
  const char *hdrs[] = {ACCEPT_HEADER, NULL};
  wv_http_req_t req = {.method = method,
                       .url = path,
                       .headers = hdrs,
                       .max_body = WV_COPY_MAX_MANIFEST,
                       .timeout_ms = timeout_ms,
                       .connect_timeout_ms = timeout_ms};
  int rc = wv_upstream_do(u, registry, repo, false, who, &req, resp, detail, sizeof detail);
  if (rc && rc != WV_EDENIED)
    wv_warn("upstream %s: %s", registry, detail);
  if (!rc && resp->status == 404)
    rc = WV_ENOTFOUND;
  else if (!rc && (resp->status == 401 || resp->status == 403))
    rc = WV_EAUTH;
  else if (!rc && resp->status != 200)
    rc = WV_EUPSTREAM;
  return rc;
}

int wv_copy_head_digest(wv_upstream_t *u, const char *registry, const char *repo, const char *ref,
                        const char *who, int64_t timeout_ms, char digest[WV_DIGEST_STRLEN],
                        long *status) {
  char path[MIRROR_URL_MAX];
  if (manifest_path(path, repo, ref))
    return WV_ETOOBIG;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = manifest_req(u, registry, repo, path, who, "HEAD", timeout_ms, &resp);
  const char *dg = rc ? NULL : wv_http_resp_header(&resp, "Docker-Content-Digest");
  if (!rc && dg && wv_digest_valid(dg)) {
    snprintf(digest, WV_DIGEST_STRLEN, "%s", dg);
  } else if (!rc) {
    /* Some registries omit the digest header: the digest is the hash of the bytes. */
    rc = manifest_req(u, registry, repo, path, who, "GET", timeout_ms, &resp);
    rc = rc ? rc : wv_digest_of(resp.body.data, resp.body.len, digest);
  }
  if (status)
    *status = resp.status;
  wv_http_resp_free(&resp);
  return rc;
}

bool wv_copy_registry_wants_auth(wv_upstream_t *u, const char *registry, int64_t timeout_ms) {
  char url[600], detail[256];
  if (wv_upstream_base_url(u, registry, url, sizeof url - 8))
    return false;
  strcat(url, "/v2/");
  wv_http_req_t req = {
      .url = url, .max_body = 64 << 10, .timeout_ms = timeout_ms, .connect_timeout_ms = timeout_ms};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_http_do(wv_http_client_get(), &req, &resp, detail, sizeof detail);
  bool wants = rc == 0 && resp.status == 401;
  wv_http_resp_free(&resp);
  return wants;
}

int wv_copy_get_manifest(wv_upstream_t *u, wv_arena_t *a, const char *registry, const char *repo,
                         const char *ref, const char *who, int64_t timeout_ms, wv_copy_desc_t *d) {
  char path[MIRROR_URL_MAX];
  if (manifest_path(path, repo, ref))
    return WV_ETOOBIG;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  char digest[WV_DIGEST_STRLEN];
  int rc = manifest_req(u, registry, repo, path, who, "GET", timeout_ms, &resp);
  rc = rc ? rc : wv_digest_of(resp.body.data, resp.body.len, digest);
  if (!rc) {
    const char *ct = wv_http_resp_header(&resp, "Content-Type");
    d->media_type = bare_type(a, ct ? ct : WV_MT_OCI_MANIFEST);
    d->digest = wv_arena_strdup(a, digest);
    d->size = (int64_t)resp.body.len;
    rc = d->media_type && d->digest ? 0 : WV_ENOMEM;
  }
  wv_http_resp_free(&resp);
  return rc;
}

int wv_copy_put_manifest(wv_upstream_t *u, const char *registry, const char *repo, const char *ref,
                         const char *who, const char *media_type, const char *body, size_t len,
                         int64_t timeout_ms, char *err, size_t errlen) {
  char path[MIRROR_URL_MAX], ct[256];
  if (manifest_path(path, repo, ref))
    return WV_ETOOBIG;
  snprintf(ct, sizeof ct, "Content-Type: %s", media_type);
  const char *hdrs[] = {ct, NULL};
  wv_http_req_t req = {.method = "PUT",
                       .url = path,
                       .headers = hdrs,
                       .body = body,
                       .body_len = len,
                       .max_body = 64 << 10,
                       .timeout_ms = timeout_ms,
                       .connect_timeout_ms = timeout_ms};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv_upstream_do(u, registry, repo, true, who, &req, &resp, err, errlen);
  if (!rc && resp.status != 201 && resp.status != 200) {
    char detail[200];
    error_text(&resp, detail, sizeof detail);
    snprintf(err, errlen, "HTTP %ld%s", resp.status, detail);
    rc = resp.status == 401 || resp.status == 403 ? WV_EAUTH : WV_EUPSTREAM;
  }
  wv_http_resp_free(&resp);
  return rc;
}
