/*
 * build/multi.c — the "multi-build" job of a multi-platform build (contract
 * §6.4). The request side (build.c) submits the two child builds as ordinary
 * builds and then this job, whose step argument is a small JSON document:
 *
 *   {"target":"<parent image>","embedded":true|false,"children":[{"id":"bd-…"|null,
 *    "target":"<child image>","platform":"linux/amd64"}, …]}
 *
 * The job waits for each child job (a null id: the child image existed
 * already), reads each child manifest from the target registry (media type,
 * digest, size), and PUTs an OCI image index naming both to the parent tag.
 * Into the embedded registry ("embedded": true) the children are read from
 * and the index recorded in the state store (storage/embedded.h), so a pull
 * of the parent through its wt/ name resolves the index and each platform.
 * It runs on a job worker thread and only touches app->jobs, app->upstream,
 * app->store and app->cfg, which outlive the engine's workers.
 */
#include "build/build_int.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "registry/mediatype.h"
#include "registry/copy.h"
#include "registry/ref.h"
#include "storage/embedded.h"

#include <string.h>
#include <time.h>

#define WAIT_STEP_MS 200
#define MANIFEST_TIMEOUT_MS 60000
#define MAX_CHILDREN 8

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits for job id to end; 0 when it succeeded. */
static int wait_child(const wv_app_t *app, wv_job_ctx_t *ctx, const char *id) {
  for (;;) {
    wv_job_info_t ji;
    if (wv_job_get(app->jobs, id, &ji) != 0) {
      wv_job_ctx_fail(ctx, "Multi-platform build failed: child build %s is unknown", id);
      return WV_ENOTFOUND;
    }
    if (ji.state == WV_JOB_SUCCEEDED)
      return 0;
    if (ji.state == WV_JOB_FAILED) {
      wv_job_ctx_fail(ctx, "Multi-platform build failed: child build %s failed - %s", id,
                      ji.reason);
      return WV_EUPSTREAM;
    }
    if (wv_job_ctx_cancelled(ctx))
      return WV_ECLOSED;
    sleep_ms(WAIT_STEP_MS);
  }
}

/* One index entry for child c: its manifest as the target registry has it. */
/* The manifest of an embedded child image: media type, digest, size. */
static int embedded_child(const wv_app_t *app, wv_arena_t *a, const wv_ref_t *ref,
                          wv_copy_desc_t *d) {
  char *body = NULL, *mt = wv_arena_alloc(a, WV_EMBEDDED_MEDIATYPE_MAX),
       *dg = wv_arena_alloc(a, WV_EMBEDDED_DIGEST_LEN);
  size_t len = 0;
  if (!mt || !dg)
    return WV_ENOMEM;
  if (strcmp(ref->path, WV_EMBEDDED_REPO) != 0)
    return WV_EINVAL;
  int rc =
      wv_embedded_get_manifest(app->store, WV_EMBEDDED_REPO, ref->reference, &body, &len, mt, dg);
  free(body);
  if (rc)
    return rc;
  memset(d, 0, sizeof *d);
  d->media_type = mt;
  d->digest = dg;
  d->size = (int64_t)len;
  return 0;
}

static int child_entry(const wv_app_t *app, wv_arena_t *a, wv_job_ctx_t *ctx, json_object *c,
                       bool embedded, json_object *manifests) {
  const char *id = NULL, *target = NULL, *platform = NULL;
  wv_json_get_str(c, "id", &id);
  wv_json_get_str(c, "target", &target);
  wv_json_get_str(c, "platform", &platform);
  wv_ref_t ref;
  if (!target || !platform || wv_ref_parse(a, target, &ref, NULL) != 0)
    return WV_EPARSE;
  int rc = id ? wait_child(app, ctx, id) : 0;
  if (rc)
    return rc;
  wv_copy_desc_t d;
  /* The request's right to push here was checked when it was made (build.c). */
  rc = embedded ? embedded_child(app, a, &ref, &d)
                : wv_copy_get_manifest(app->upstream, a, ref.registry, ref.path, ref.reference,
                                       WV_WHO_WAVED, MANIFEST_TIMEOUT_MS, &d);
  if (rc) {
    wv_job_ctx_fail(ctx, "Multi-platform build failed: cannot read %s - %s", target,
                    wv_strerror(rc));
    return rc;
  }
  const char *slash = strchr(platform, '/');
  json_object *e = json_object_new_object(), *p = json_object_new_object();
  rc = e && p ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(e, "mediaType", d.media_type);
  rc = rc ? rc : wv_json_add_str(e, "digest", d.digest);
  rc = rc ? rc : wv_json_add_int(e, "size", d.size);
  rc = rc ? rc : wv_json_add_str(p, "architecture", slash ? slash + 1 : platform);
  rc = rc ? rc : wv_json_add_str(p, "os", "linux");
  if (!rc) {
    json_object_object_add(e, "platform", p);
    p = NULL;
    json_object_array_add(manifests, e);
    e = NULL;
  }
  json_object_put(p);
  json_object_put(e);
  wv_job_ctx_logf(ctx, "%s: %s %s", platform, target, d.digest);
  return rc;
}

static int multi_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  const wv_app_t *app = fn_arg;
  wv_arena_t *a = wv_arena_new(4096);
  json_object *spec = NULL, *kids = NULL, *idx = NULL, *manifests = NULL;
  const char *target = NULL;
  char perr[128] = "", err[256] = "";
  wv_ref_t ref;
  int rc = a ? 0 : WV_ENOMEM;
  if (!rc &&
      (!arg || wv_json_parse(arg, strlen(arg), 1 << 16, 8, &spec, perr, sizeof perr) ||
       wv_json_get_str(spec, "target", &target) || wv_json_get_array(spec, "children", &kids) ||
       json_object_array_length(kids) > MAX_CHILDREN || wv_ref_parse(a, target, &ref, NULL))) {
    wv_job_ctx_fail(ctx, "Multi-platform build failed: bad job argument %s", perr);
    rc = WV_EPARSE;
    goto out;
  }
  json_object *emb = NULL;
  bool embedded = json_object_object_get_ex(spec, "embedded", &emb) && json_object_get_boolean(emb);
  if (embedded && (strcmp(ref.path, WV_EMBEDDED_REPO) != 0 || !app->store)) {
    wv_job_ctx_fail(ctx, "Multi-platform build failed: %s is not in the embedded registry", target);
    rc = WV_EINVAL;
    goto out;
  }
  idx = json_object_new_object();
  manifests = json_object_new_array();
  rc = idx && manifests ? 0 : WV_ENOMEM;
  for (size_t i = 0; !rc && i < json_object_array_length(kids); i++)
    rc = child_entry(app, a, ctx, json_object_array_get_idx(kids, i), embedded, manifests);
  rc = rc ? rc : wv_json_add_int(idx, "schemaVersion", 2);
  rc = rc ? rc : wv_json_add_str(idx, "mediaType", WV_MT_OCI_INDEX);
  if (!rc) {
    json_object_object_add(idx, "manifests", manifests);
    manifests = NULL;
    const char *body = json_object_to_json_string_ext(idx, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = embedded
             ? wv_embedded_put_index(app->store, WV_EMBEDDED_REPO, ref.reference, WV_MT_OCI_INDEX,
                                     body, strlen(body), NULL, err, sizeof err)
             : wv_copy_put_manifest(app->upstream, ref.registry, ref.path, ref.reference,
                                    WV_WHO_WAVED, WV_MT_OCI_INDEX, body, strlen(body),
                                    MANIFEST_TIMEOUT_MS, err, sizeof err);
    if (rc)
      wv_job_ctx_fail(ctx, "Multi-platform build failed: cannot push the index to %s - %s", target,
                      err);
    else
      wv_job_ctx_logf(ctx, "index pushed to %s", target);
  }
out:
  json_object_put(manifests);
  json_object_put(idx);
  json_object_put(spec);
  wv_arena_free(a);
  return rc;
}

int wv__build_multi_register(wv_job_engine_t *e, const wv_app_t *app) {
  const wv_config_t *cfg = app->cfg;
  /* Its own kind: a waiting parent must never hold a build slot its children need. */
  wv_job_kind_t k = {.name = WV_BUILD_MULTI_KIND,
                     .label = "Container build",
                     .max_running =
                         2 * (cfg->build_max_concurrent > 0 ? cfg->build_max_concurrent : 1),
                     .rerunnable = true,
                     .deadline_ms = 3 * cfg->build_timeout_ms};
  int rc = wv_job_register_kind(e, &k);
  return rc ? rc : wv_job_register_fn(e, WV_BUILD_MULTI_FN, multi_fn, (void *)app);
}

const char *wv__build_multi_arg(wv_arena_t *a, const char *target, bool embedded,
                                const wv_binput_t *kids, const char *const *ids, size_t n) {
  json_object *o = json_object_new_object(), *arr = json_object_new_array();
  int rc = o && arr ? wv_json_add_str(o, "target", target) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_bool(o, "embedded", embedded);
  for (size_t i = 0; !rc && i < n; i++) {
    json_object *c = json_object_new_object();
    rc = c ? wv_json_add_str(c, "id", ids[i]) : WV_ENOMEM;
    rc = rc ? rc : wv_json_add_str(c, "target", kids[i].target);
    rc = rc ? rc : wv_json_add_str(c, "platform", kids[i].platform);
    if (c)
      json_object_array_add(arr, c);
  }
  const char *s = NULL;
  if (!rc) {
    json_object_object_add(o, "children", arr);
    arr = NULL;
    s = wv_arena_strdup(a, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
  }
  json_object_put(arr);
  json_object_put(o);
  return s;
}
