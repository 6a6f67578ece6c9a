/*
 * registry/build_pull.c — pulls of images waved builds (token kind BUILD,
 * contract §5.3 step 2, architecture §2.3 "Parking", §3.4 "Embedded build registry").
 *
 * DESIGN. A manifest request by tag for a build that is still queued or
 * running is parked on the build's job (registry/park.h) and resumed on a
 * worker when it ends; this file needs no knowledge of build/: the token
 * record names the job. A failed build answers 400 UNKNOWN with the build
 * log (ANSI-stripped, its last WV_PULL_LOG_MAX bytes). Then:
 *   - embedded builds (the token's registry is waved's own authority and
 *     its image wave/build) are served from the embedded registry: manifests
 *     by tag or digest from the state store, blobs from the CAS. The first
 *     tag pull writes the usual cache entries (request path, blobs), so every
 *     later pull of the token is answered on the IO loop. A containerConfig
 *     (non-freeze builds apply it at pull time, contract §4.4) is applied here
 *     with registry/augment.h, as resolve.c does for upstream images;
 *   - builds pushed to a registry go the normal upstream way (WV_DEFER back
 *     to proxy.c's worker).
 * Blobs and digest requests never wait (a client has them only from a
 * manifest it got after the build).
 */
#include "core/ansi.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/json.h"
#include "core/log.h"
#include "registry/augment.h"
#include "registry/mediatype.h"
#include "registry/park.h"
#include "registry/platform.h"
#include "registry/proxy_int.h"
#include "storage/cas.h"
#include "storage/embedded.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WV_PULL_LOG_MAX                                                                            \
  100000 /* bytes of build log in a failed pull's error (Wave's logs.max-length) */

static int reg_error(wv_req_t *req, wv_resp_t *resp, wv_regerr_t code, int status, const char *m) {
  return wv_resp_registry_error(req, resp, code, status, m, NULL);
}

static bool is_embedded(const wv_pctx_t *ctx) {
  const char *auth = wv_config_authority(ctx->app->cfg);
  return auth && strcmp(ctx->rec.registry, auth) == 0 &&
         (strcmp(ctx->rec.image, WV_EMBEDDED_REPO) == 0 ||
          strcmp(ctx->rec.image, WV_EMBEDDED_FREEZE_REPO) == 0);
}

/* 400 UNKNOWN with the log of the failed build (contract §5.3, §5.7). */
static int failed_build(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx, const wv_job_info_t *ji) {
  char *log = NULL;
  size_t len = 0;
  const char *msg = ji->reason[0] ? ji->reason : "Container build did not complete successfully";
  if (wv_job_log(ctx->app->jobs, ji->id, WV_PULL_LOG_MAX, &log, &len) == 0) {
    len = wv_ansi_strip(log, len);
    if (len && ji->reason[0] && !strstr(log, ji->reason))
      msg = wv_arena_sprintf(req->arena, "%s[waved: %s FAILED: %s]\n", log, ji->id, ji->reason);
    else if (len)
      msg = wv_arena_strndup(req->arena, log, len);
    free(log);
  }
  return reg_error(req, resp, WV_REGERR_UNKNOWN, 400, msg ? msg : "out of memory");
}

static int resume_pull(wv_req_t *req, wv_resp_t *resp);

/* Tag manifests wait for a build that is still running. Returns WV_DEFER to go on. */
static int wait_for_build(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  wv_job_info_t ji;
  if (ctx->rt.kind != WV_V2_MANIFESTS || ctx->rt.is_digest || !ctx->rec.build_id ||
      !ctx->app->jobs || wv_job_get(ctx->app->jobs, ctx->rec.build_id, &ji) != 0)
    return WV_DEFER; /* dry runs, cached images, records long gone: serve what exists */
  if (ji.state == WV_JOB_FAILED)
    return failed_build(req, resp, ctx, &ji);
  if (ji.state == WV_JOB_SUCCEEDED || ji.ready) /* ready: only the tidy-up steps still run */
    return WV_DEFER;
  int rc =
      wv_park_on_job(ctx->app->park, req, resp, ctx->app->jobs, ctx->rec.build_id, resume_pull);
  if (rc == WV_PARKED)
    return rc;
  if (rc == WV_ENOTFOUND) /* it ended and left memory in between: look again */
    return wv_job_get(ctx->app->jobs, ctx->rec.build_id, &ji) == 0 && ji.state == WV_JOB_FAILED
               ? failed_build(req, resp, ctx, &ji)
               : WV_DEFER;
  if (rc == WV_EBUSY)
    return reg_error(req, resp, WV_REGERR_TOOMANYREQUESTS, 429,
                     "Too many pulls waiting for builds - retry later");
  return rc == WV_ENOMEM ? rc
                         : reg_error(req, resp, WV_REGERR_UNKNOWN, 503,
                                     "Server shutting down - retry the pull");
}

/* ---- the embedded registry ---------------------------------------------------- */

static int manifest_unknown(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  return reg_error(req, resp, WV_REGERR_MANIFEST_UNKNOWN, 404,
                   wv_arena_sprintf(req->arena, "repository '%s/%s%s%s' not found",
                                    ctx->rec.registry, ctx->rec.image,
                                    ctx->rt.is_digest ? "@" : ":", ctx->rt.reference));
}

static int64_t cache_expiry(const wv_pctx_t *ctx) {
  int64_t exp = wv_store_now_ms() + ctx->app->cfg->cache_ttl_ms;
  return ctx->rec.expires_ms > 0 && ctx->rec.expires_ms < exp ? ctx->rec.expires_ms : exp;
}

/* Blob cache entries for the config and layers of manifest m, so blobs stay on the IO loop. */
static int add_blob_entries(wv_req_t *req, wv_pctx_t *ctx, wv_pbatch_t *b, const char *m,
                            size_t len, int64_t exp) {
  json_object *o = NULL, *layers = NULL;
  char err[64];
  if (wv_json_parse(m, len, WV_EMBEDDED_MANIFEST_MAX, 0, &o, err, sizeof err))
    return 0; /* not JSON we understand: blobs then go through the worker */
  json_object *cfg = NULL;
  json_object_object_get_ex(o, "config", &cfg);
  json_object_object_get_ex(o, "layers", &layers);
  size_t n = layers ? json_object_array_length(layers) : 0;
  int rc = 0;
  for (size_t i = 0; !rc && i <= n; i++) {
    json_object *d = i == n ? cfg : json_object_array_get_idx(layers, i);
    const char *digest = NULL, *mt = NULL;
    int64_t size = 0;
    if (!d || wv_json_get_str(d, "digest", &digest) || !wv_digest_valid(digest))
      continue;
    wv_json_get_str(d, "mediaType", &mt);
    wv_json_get_int64(d, "size", &size);
    wv_cache_entry_t e = {.kind = WV_CACHE_BLOB,
                          .media_type = wv_arena_strdup(req->arena, mt ? mt : ""),
                          .digest = wv_arena_strdup(req->arena, digest),
                          .size = size > 0 ? (uint64_t)size : 0,
                          .location = ""};
    if (!e.media_type || !e.digest)
      rc = WV_ENOMEM;
    else
      rc = wv__pbatch_add(
          b, wv_cache_key_blob(req->arena, ctx->rec.registry, ctx->rec.image, e.digest), &e, exp);
  }
  json_object_put(o);
  return rc;
}

/* Applies containerConfig cc to the embedded single-platform image m (replaced in place). */
static int augment_embedded_one(wv_req_t *req, wv_pctx_t *ctx, wv_pbatch_t *b,
                                const wv_container_config_t *cc, wv_cache_entry_t *m, int64_t exp,
                                const char **msg) {
  wv_arena_t *a = req->arena;
  wv_manifest_info_t info;
  int rc = wv_manifest_info(a, m->body, m->body_len, &info, msg);
  int fd = -1;
  uint64_t size = 0;
  rc = rc ? rc : wv_cas_open_blob(ctx->app->cas, info.config_digest, &fd, &size);
  char *config = NULL;
  if (!rc && (size > WV_AUGMENT_MAX_CONFIG || !(config = wv_arena_alloc(a, size + 1))))
    rc = WV_ETOOBIG;
  if (!rc && pread(fd, config, size, 0) != (ssize_t)size)
    rc = WV_EIO;
  if (fd >= 0)
    close(fd);
  wv_augment_out_t nm, nc;
  wv_container_config_t used;
  rc = rc ? rc : wv_augment_image(a, m->body, m->body_len, config, size, cc, &nm, &nc, &used, msg);
  rc = rc ? rc : wv_cas_put(ctx->app->cas, nc.data, nc.len, nc.digest, NULL);
  if (rc)
    return rc;
  const char *reg = ctx->rec.registry, *img = ctx->rec.image;
  wv_cache_entry_t ce = {.kind = WV_CACHE_BLOB,
                         .media_type = wv_mediatype_config_for(m->media_type),
                         .digest = wv_arena_strdup(a, nc.digest),
                         .size = nc.len,
                         .location = ""};
  rc = wv__pbatch_add(b, wv_cache_key_blob(a, reg, img, nc.digest), &ce, exp);
  for (size_t i = 0; !rc && i < used.n_layers; i++) {
    const wv_container_layer_t *l = &used.layers[i];
    wv_cache_entry_t le;
    rc = wv__proxy_layer_entry(a, l->location, l->gzip_digest, l->gzip_size, &le);
    rc = rc ? rc
            : wv__pbatch_add_layer(b, ctx->app->store,
                                   wv_cache_key_blob(a, reg, img, l->gzip_digest), &le, exp);
  }
  *m = (wv_cache_entry_t){.kind = WV_CACHE_MANIFEST,
                          .media_type = m->media_type,
                          .digest = wv_arena_strdup(a, nm.digest),
                          .size = nm.len,
                          .location = "",
                          .body = nm.data,
                          .body_len = nm.len};
  return rc ? rc : wv__pbatch_add(b, wv_cache_key_manifest(a, reg, img, nm.digest), m, exp);
}

/*
 * The index of an embedded multi-platform build: each child of the token's platforms is
 * augmented as a single image (read by digest from the embedded registry), then the index is
 * rewritten to name the augmented children, as resolve.c does for upstream indexes.
 */
static int augment_embedded_index(wv_req_t *req, wv_pctx_t *ctx, wv_pbatch_t *b,
                                  const wv_container_config_t *cc, wv_cache_entry_t *m, int64_t exp,
                                  const char **msg) {
  wv_arena_t *a = req->arena;
  wv_platform_list_t want;
  wv_index_entry_t *entries;
  size_t n;
  int rc =
      wv_platform_parse_list(a, ctx->rec.platform ? ctx->rec.platform : "linux/amd64", &want, msg);
  rc = rc ? rc
          : wv_augment_index_select(a, m->body, m->body_len, m->media_type, &want, ctx->rec.image,
                                    ctx->rt.reference, &entries, &n, msg);
  wv_index_repl_t *repl = rc ? NULL : wv_arena_calloc(a, (n ? n : 1) * sizeof *repl);
  if (!rc && !repl)
    rc = WV_ENOMEM;
  for (size_t i = 0; !rc && i < n; i++) {
    char *body = NULL, *mt = wv_arena_alloc(a, WV_EMBEDDED_MEDIATYPE_MAX),
         *dg = wv_arena_alloc(a, WV_EMBEDDED_DIGEST_LEN);
    size_t len = 0;
    rc = mt && dg ? wv_embedded_get_manifest(ctx->app->store, WV_EMBEDDED_REPO, entries[i].digest,
                                             &body, &len, mt, dg)
                  : WV_ENOMEM;
    wv_cache_entry_t child = {.kind = WV_CACHE_MANIFEST,
                              .media_type = mt,
                              .digest = dg,
                              .size = len,
                              .location = "",
                              .body = rc ? NULL : wv_arena_strndup(a, body, len),
                              .body_len = len};
    free(body);
    if (!rc && !child.body)
      rc = WV_ENOMEM;
    if (!rc && wv_mediatype_classify(mt) != WV_MT_KIND_MANIFEST) {
      *msg = "An index entry of the built image is not an image manifest";
      rc = WV_EINVAL;
    }
    rc = rc ? rc : augment_embedded_one(req, ctx, b, cc, &child, exp, msg);
    if (!rc)
      repl[i] = (wv_index_repl_t){entries[i].digest, child.digest, (int64_t)child.body_len};
  }
  wv_augment_out_t ni;
  rc = rc ? rc : wv_augment_index_rewrite(a, m->body, m->body_len, repl, n, &ni, msg);
  if (rc)
    return rc == WV_ENOTFOUND ? WV_EINVAL : rc;
  *m = (wv_cache_entry_t){.kind = WV_CACHE_MANIFEST,
                          .media_type = m->media_type,
                          .digest = wv_arena_strdup(a, ni.digest),
                          .size = ni.len,
                          .location = "",
                          .body = ni.data,
                          .body_len = ni.len};
  return wv__pbatch_add(b, wv_cache_key_manifest(a, ctx->rec.registry, ctx->rec.image, ni.digest),
                        m, exp);
}

/* Applies the token's containerConfig to an embedded image or multi-platform index. */
static int augment_embedded(wv_req_t *req, wv_pctx_t *ctx, wv_pbatch_t *b, wv_cache_entry_t *m,
                            int64_t exp, const char **msg) {
  wv_container_config_t cc;
  int rc =
      wv_container_config_parse(req->arena, ctx->rec.cc_json, strlen(ctx->rec.cc_json), &cc, msg);
  if (rc)
    return rc;
  switch (wv_mediatype_classify(m->media_type)) {
  case WV_MT_KIND_MANIFEST:
    return augment_embedded_one(req, ctx, b, &cc, m, exp, msg);
  case WV_MT_KIND_INDEX:
    return augment_embedded_index(req, ctx, b, &cc, m, exp, msg);
  default:
    *msg = "The built image cannot be augmented";
    return WV_EINVAL;
  }
}

static int embedded_manifest(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  wv_app_t *app = ctx->app;
  char *body = NULL, *mt = wv_arena_alloc(req->arena, WV_EMBEDDED_MEDIATYPE_MAX),
       *digest = wv_arena_alloc(req->arena, WV_EMBEDDED_DIGEST_LEN);
  size_t len = 0;
  if (!mt || !digest)
    return WV_ENOMEM;
  int rc = wv_embedded_get_manifest(app->store, ctx->rec.image, ctx->rt.reference, &body, &len, mt,
                                    digest);
  if (rc == WV_ENOTFOUND || rc == WV_EINVAL)
    return manifest_unknown(req, resp, ctx);
  if (rc)
    return rc;
  wv_cache_entry_t e = {.kind = WV_CACHE_MANIFEST,
                        .media_type = mt,
                        .digest = digest,
                        .size = len,
                        .location = "",
                        .body = wv_arena_strndup(req->arena, body, len),
                        .body_len = len};
  free(body);
  wv_pbatch_t *b = wv__pbatch_new(req->arena);
  if (!e.body || !b)
    return WV_ENOMEM;
  int64_t exp = cache_expiry(ctx);
  rc = add_blob_entries(req, ctx, b, e.body, e.body_len, exp);
  const char *msg = NULL;
  if (!rc && !ctx->rt.is_digest && wv__proxy_has_config(ctx, req->arena))
    rc = augment_embedded(req, ctx, b, &e, exp, &msg);
  if (rc == WV_EINVAL || rc == WV_EPARSE || rc == WV_EDIGEST)
    return reg_error(req, resp, WV_REGERR_BAD_REQUEST, 400,
                     msg ? msg : "The built image cannot be augmented");
  if (!rc && !ctx->rt.is_digest && ctx->token_form)
    rc = wv__pbatch_add(b, req->path, &e, exp); /* the request path last: children first */
  if (!rc && wv__pbatch_apply(b, app->store))
    wv_warn("manifest cache not written for %s", req->path);
  return rc ? rc : wv__proxy_respond_manifest(req, resp, &e);
}

static int embedded_blob(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  wv_app_t *app = ctx->app;
  const char *d = ctx->rt.reference;
  wv_cache_entry_t e;
  const char *key = wv_cache_key_blob(req->arena, ctx->rec.registry, ctx->rec.image, d);
  if (key && wv_cache_get(app->store, req->arena, key, &e) == 0) {
    int rc = wv__proxy_respond_blob_entry(req, resp, &e);
    if (rc != WV_DEFER)
      return rc;
    return WV_DEFER; /* a docker:// layer of a containerConfig: proxy.c delegates it */
  }
  uint64_t size = 0;
  int fd = -1;
  if (wv_embedded_has_blob(app->store, app->cas, ctx->rec.image, d, &size) ||
      wv_cas_open_blob(app->cas, d, &fd, &size))
    return reg_error(req, resp, WV_REGERR_BLOB_UNKNOWN, 404,
                     wv_arena_sprintf(req->arena, "blob '%s' is not known to '%s/%s'", d,
                                      ctx->rec.registry, ctx->rec.image));
  wv_resp_file(resp, 200, "application/octet-stream", fd, 0, size);
  wv_resp_header(resp, "Docker-Content-Digest", d);
  return wv_resp_header(resp, "Etag", d);
}

int wv__proxy_build_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  int rc = wait_for_build(req, resp, ctx);
  if (rc != WV_DEFER || !is_embedded(ctx))
    return rc;
  switch (ctx->rt.kind) {
  case WV_V2_MANIFESTS:
    return embedded_manifest(req, resp, ctx);
  case WV_V2_BLOBS:
    return embedded_blob(req, resp, ctx);
  default: { /* the token names one image: its tag is the only one it may see */
    json_object *o = json_object_new_object(), *tags = json_object_new_array();
    rc = o && tags ? wv_json_add_str(o, "name", ctx->rec.image) : WV_ENOMEM;
    if (!rc && json_object_array_add(tags, json_object_new_string(ctx->rec.reference)))
      rc = WV_ENOMEM;
    if (!rc) {
      json_object_object_add(o, "tags", tags);
      tags = NULL;
    }
    json_object_put(tags);
    return rc ? (json_object_put(o), rc) : wv_resp_json(req, resp, 200, o);
  }
  }
}

/*
 * The plain form of the frozen SIFs' repository (/v2/wave/freeze/..., docs/singularity.md):
 * what a BUILD token of the image would serve, with the build found by its target
 * (WV_DB_BUILD_TARGETS, as build/build.c writes it) so a tag pull waits for it.
 * Tags are not listed: a name is known only to whoever asked for the build.
 */
int wv__proxy_frozen_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  if (ctx->rt.kind == WV_V2_TAGS)
    return reg_error(req, resp, WV_REGERR_DENIED, 403,
                     "The frozen images of this server are not listed");
  ctx->rec = (wv_token_rec_t){.kind = WV_TOKEN_BUILD,
                              .registry = ctx->registry,
                              .image = ctx->image,
                              .reference = ctx->rt.reference};
  if (ctx->rt.kind == WV_V2_MANIFESTS && !ctx->rt.is_digest) {
    const char *target = wv_arena_sprintf(req->arena, "oras://%s/%s:%s", ctx->registry, ctx->image,
                                          ctx->rt.reference);
    char *id = NULL;
    size_t len = 0;
    if (!target)
      return WV_ENOMEM;
    if (wv_store_get(ctx->app->store, WV_DB_BUILD_TARGETS, target, &id, &len, NULL) == 0) {
      ctx->rec.build_id = wv_arena_strndup(req->arena, id, len);
      free(id);
    }
  }
  return wv__proxy_build_worker(req, resp, ctx);
}

/* A parked pull, back on a worker after its build ended. */
static int resume_pull(wv_req_t *req, wv_resp_t *resp) {
  wv_pctx_t *ctx = req->user;
  int rc = wv__proxy_build_worker(req, resp, ctx);
  return rc == WV_DEFER ? wv__proxy_manifest_worker(req, resp, ctx) : rc;
}
