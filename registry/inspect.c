/*
 * registry/inspect.c — POST /v1alpha1/inspect[?platform=] (contract §5.8).
 *
 * The image is resolved like a pull (HEAD tag → digest, GET by digest with
 * the full Accept list, digest verified); the answer is {"index": IndexSpec}
 * for an index or list when no platform is asked, else {"container":
 * ContainerSpec} built from the manifest and its config blob. Names follow
 * Wave's lower-camel specs; null and empty values are omitted (contract §1.1),
 * booleans are always present.
 */
#include "core/err.h"
#include "core/json.h"
#include "core/secret.h"
#include "registry/augment.h"
#include "registry/mediatype.h"
#include "registry/platform.h"
#include "registry/inspect.h"
#include "registry/proxy.h"
#include "registry/proxy_int.h"
#include "registry/upstream.h"

#include <string.h>

/* Copies member `from` of src into dst as `to` when it is present and not null/empty. */
static void copy_member(json_object *dst, const char *to, json_object *src, const char *from) {
  json_object *v = NULL;
  if (!src || !json_object_object_get_ex(src, from, &v) || !v)
    return;
  if ((json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0) ||
      (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0) ||
      (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0))
    return;
  json_object_object_add(dst, to, json_object_get(v));
}

static void copy_bool(json_object *dst, const char *to, json_object *src, const char *from) {
  json_object *v = NULL;
  bool b = src && json_object_object_get_ex(src, from, &v) && json_object_get_boolean(v);
  json_object_object_add(dst, to, json_object_new_boolean(b));
}

/* ConfigSpec from a Docker/OCI image config. */
static json_object *config_spec(json_object *cfg) {
  json_object *o = json_object_new_object(), *c = NULL, *rootfs = NULL;
  copy_member(o, "architecture", cfg, "architecture");
  copy_member(o, "container", cfg, "container");
  copy_member(o, "created", cfg, "created");
  json_object_object_get_ex(cfg, "config", &c);
  json_object *cs = json_object_new_object();
  static const char *const strs[][2] = {{"hostName", "Hostname"},
                                        {"domainName", "Domainname"},
                                        {"user", "User"},
                                        {"env", "Env"},
                                        {"cmd", "Cmd"},
                                        {"image", "Image"},
                                        {"workingDir", "WorkingDir"},
                                        {"entrypoint", "Entrypoint"},
                                        {"labels", "Labels"}};
  static const char *const bools[][2] = {{"attachStdin", "AttachStdin"},
                                         {"attachStdout", "AttachStdout"},
                                         {"attachStderr", "AttachStderr"},
                                         {"tty", "Tty"}};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    copy_member(cs, strs[i][0], c, strs[i][1]);
  for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
    copy_bool(cs, bools[i][0], c, bools[i][1]);
  json_object_object_add(o, "config", cs);
  if (json_object_object_get_ex(cfg, "rootfs", &rootfs) && rootfs) {
    json_object *r = json_object_new_object();
    copy_member(r, "type", rootfs, "type");
    copy_member(r, "diff_ids", rootfs, "diff_ids");
    json_object_object_add(o, "rootfs", r);
  }
  return o;
}

/* A descriptor {mediaType, digest, size, annotations[, platform]}. */
static json_object *descriptor(json_object *d, bool platform) {
  json_object *o = json_object_new_object();
  copy_member(o, "mediaType", d, "mediaType");
  copy_member(o, "digest", d, "digest");
  copy_member(o, "size", d, "size");
  copy_member(o, "annotations", d, "annotations");
  json_object *p = NULL;
  if (platform && json_object_object_get_ex(d, "platform", &p) && p) {
    json_object *po = json_object_new_object();
    copy_member(po, "architecture", p, "architecture");
    copy_member(po, "os", p, "os");
    copy_member(po, "variant", p, "variant");
    json_object_object_add(o, "platform", po);
  }
  return o;
}

static json_object *descriptors(json_object *doc, const char *key, bool platform) {
  json_object *arr = NULL, *out = json_object_new_array();
  if (json_object_object_get_ex(doc, key, &arr) && json_object_is_type(arr, json_type_array))
    for (size_t i = 0; i < json_object_array_length(arr); i++)
      json_object_array_add(out, descriptor(json_object_array_get_idx(arr, i), platform));
  return out;
}

static json_object *index_spec(json_object *idx, const wv_cache_entry_t *e) {
  json_object *o = json_object_new_object();
  copy_member(o, "schemaVersion", idx, "schemaVersion");
  wv_json_add_str(o, "mediaType", e->media_type);
  wv_json_add_str(o, "digest", e->digest);
  json_object_object_add(o, "manifests", descriptors(idx, "manifests", true));
  return o;
}

static json_object *manifest_spec(json_object *m, const char *media_type) {
  json_object *o = json_object_new_object(), *c = NULL;
  copy_member(o, "schemaVersion", m, "schemaVersion");
  wv_json_add_str(o, "mediaType", media_type);
  if (json_object_object_get_ex(m, "config", &c) && c)
    json_object_object_add(o, "config", descriptor(c, false));
  json_object_object_add(o, "layers", descriptors(m, "layers", false));
  copy_member(o, "annotations", m, "annotations");
  copy_member(o, "artifactType", m, "artifactType");
  return o;
}

typedef struct {
  wv_req_t *req;
  wv_app_t *app;
  const char *who; /* account, NULL = anonymous */
  wv_ref_t ref;
  wv_fetch_err_t err;
  int status;      /* of a failure */
  const char *msg; /* of a failure (arena or static) */
} insp_t;

/* Records a failure; returns WV_EINVAL (the status says what kind). */
static int fail(insp_t *in, int status, const char *msg) {
  in->status = status;
  in->msg = msg;
  return WV_EINVAL;
}

/* A failure of the upstream registry, with its status (502 when it gave none). */
static int upstream_fail(insp_t *in) {
  return fail(in, in->err.status ? in->err.status : 502, in->err.msg);
}

static int container_spec(insp_t *in, const wv_cache_entry_t *m, json_object **out) {
  wv_arena_t *a = in->req->arena;
  json_object *doc = NULL, *cfg = NULL;
  char err[128], *config = NULL, base[512];
  size_t config_len = 0;
  wv_manifest_info_t info;
  const char *msg = NULL;
  if (wv_mediatype_classify(m->media_type) != WV_MT_KIND_MANIFEST ||
      wv_manifest_info(a, m->body, m->body_len, &info, &msg))
    return fail(in, 400,
                wv_arena_sprintf(a, "Unsupported manifest type '%s' for image '%s'", m->media_type,
                                 wv_ref_full_name(a, &in->ref)));
  if (wv_fetch_blob(in->app, a, in->ref.registry, in->ref.path, in->who, info.config_digest,
                    WV_AUGMENT_MAX_CONFIG, &config, &config_len, &in->err))
    return upstream_fail(in);
  if (wv_json_parse(m->body, m->body_len, WV_AUGMENT_MAX_MANIFEST, 0, &doc, err, sizeof err) ||
      wv_json_parse(config, config_len, WV_AUGMENT_MAX_CONFIG, 0, &cfg, err, sizeof err)) {
    json_object_put(doc);
    return fail(in, 502, "Malformed manifest or config from the registry");
  }
  wv_upstream_base_url(in->app->upstream, in->ref.registry, base, sizeof base);
  json_object *c = json_object_new_object();
  wv_json_add_str(c, "registry", in->ref.registry);
  wv_json_add_str(c, "hostName", base);
  wv_json_add_str(c, "imageName", in->ref.path);
  wv_json_add_str(c, "reference", in->ref.reference);
  wv_json_add_str(c, "digest", m->digest);
  json_object_object_add(c, "config", config_spec(cfg));
  json_object_object_add(c, "manifest", manifest_spec(doc, m->media_type));
  wv_json_add_bool(c, "v1", false);
  wv_json_add_bool(c, "v2", true);
  wv_json_add_bool(c, "oci", wv_mediatype_is_oci(m->media_type));
  json_object_put(doc);
  json_object_put(cfg);
  *out = json_object_new_object();
  json_object_object_add(*out, "container", c);
  return 0;
}

/* The entry of an index matching want; its digest or NULL. */
static const char *select_platform(json_object *idx, const wv_platform_t *want) {
  json_object *arr = NULL;
  if (!json_object_object_get_ex(idx, "manifests", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return NULL;
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    json_object *e = json_object_array_get_idx(arr, i), *p = NULL;
    const char *os = NULL, *arch = NULL, *variant = NULL, *digest = NULL;
    if (!json_object_object_get_ex(e, "platform", &p) || wv_json_get_str(e, "digest", &digest))
      continue;
    wv_json_get_str(p, "os", &os);
    wv_json_get_str(p, "architecture", &arch);
    wv_json_get_str(p, "variant", &variant);
    if (os && arch && wv_platform_match_entry(want, os, arch, variant))
      return digest;
  }
  return NULL;
}

/* Checks image and platform and resolves the image's manifest into *m. */
static int resolve(insp_t *in, const char *image, const char *pstr, wv_platform_t *want,
                   wv_cache_entry_t *m) {
  wv_arena_t *a = in->req->arena;
  const char *msg = NULL;
  if (!image || !image[0])
    return fail(in, 400, "Missing 'containerImage' attribute");
  if (pstr && strchr(pstr, ','))
    return fail(in, 400,
                wv_arena_sprintf(a,
                                 "Container multi-platform architecture not allowed - "
                                 "offending value: %s",
                                 pstr));
  if (pstr && wv_platform_parse(a, pstr, want, &msg))
    return fail(in, 400, msg);
  if (wv_ref_parse(a, image, &in->ref, &msg))
    return fail(in, 400, msg);
  if (!wv_proxy_registry_allowed(in->app, in->ref.registry))
    return fail(in, 400,
                wv_arena_sprintf(a,
                                 "Registry '%s' names an address, not a registry, and "
                                 "wave.registries does not list it",
                                 in->ref.registry));
  if (wv__proxy_fetch_manifest(in->req, in->app, in->ref.registry, in->ref.path, in->who,
                               in->ref.reference, m, &in->err))
    return upstream_fail(in);
  return 0;
}

int wv_inspect(wv_req_t *req, const char *image, const char *pstr, const char *who,
               json_object **out, int *status, const char **msg) {
  insp_t in = {.req = req, .app = req->app, .who = who};
  wv_arena_t *a = req->arena;
  wv_platform_t want;
  wv_cache_entry_t m;
  char err[256];
  *out = NULL;
  int rc = resolve(&in, image, pstr, &want, &m);
  if (!rc && wv_mediatype_classify(m.media_type) != WV_MT_KIND_INDEX)
    rc = container_spec(&in, &m, out);
  else if (!rc) {
    json_object *idx = NULL;
    const char *d = NULL;
    if (wv_json_parse(m.body, m.body_len, WV_AUGMENT_MAX_MANIFEST, 0, &idx, err, sizeof err))
      rc = fail(&in, 502, "Malformed image index from the registry");
    else if (!pstr) {
      *out = json_object_new_object();
      json_object_object_add(*out, "index", index_spec(idx, &m));
    } else if ((d = select_platform(idx, &want)) == NULL) {
      rc = fail(&in, 400,
                wv_arena_sprintf(a,
                                 "Cannot find matching platform '%s' in the image index "
                                 "for '%s'",
                                 pstr, wv_ref_full_name(a, &in.ref)));
    } else {
      wv_cache_entry_t child;
      d = wv_arena_strdup(a, d);
      if (wv__proxy_fetch_manifest(req, in.app, in.ref.registry, in.ref.path, who, d, &child,
                                   &in.err))
        rc = upstream_fail(&in);
      else
        rc = container_spec(&in, &child, out);
    }
    json_object_put(idx);
  }
  if (rc) { /* in.msg may point into in.err, which ends here */
    *status = in.status;
    *msg = in.msg ? wv_arena_strdup(a, in.msg) : NULL;
  }
  return rc;
}

int wv_inspect_handler(wv_req_t *req, wv_resp_t *resp) {
  json_object *body = NULL, *out = NULL;
  char err[256];
  const char *image = NULL, *msg = NULL, *token = NULL, *who = NULL;
  int status = 0;
  const wv_app_t *app = req->app;
  if (wv_json_parse_body(req->body, req->body_len, WV_INSPECT_MAX_BODY, 0,
                         (size_t)app->cfg->max_json_values, &body, err, sizeof err))
    return wv_resp_api_error(req, resp, 400, err);
  if (wv_json_get_str(body, "containerImage", &image) == 0)
    image = wv_arena_strdup(req->arena, image);
  /* The Platform token names the account inspect acts for (as a container
   * request's does); any other token is refused like there. */
  bool has_token = wv_json_get_str(body, "towerAccessToken", &token) == 0 && token && *token;
  if (has_token)
    who = wv_secret_account_for_token(((wv_app_t *)req->app)->cfg, token);
  json_object_put(body);
  if (has_token && !who)
    return wv_resp_api_error(req, resp, 401, NULL);
  if (wv_inspect(req, image, wv_req_query(req, "platform"), who, &out, &status, &msg))
    return wv_resp_api_error(req, resp, status, msg);
  return wv_resp_json(req, resp, 200, out);
}
