/* build/request/records.c — JSON shapes of stored container requests (see records.h). */
#include "build/request/records.h"
#include "build/layers.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/timefmt.h"
#include "storage/store.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_ID_MAX 64 /* longest token/request id looked up */

static json_object *layer_json(const wv_container_layer_t *l, wv_record_cc_mode_t mode) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  const char *loc = l->location;
  char cas[sizeof WV_TOKEN_CAS_PREFIX + WV_DIGEST_STRLEN];
  if (loc && strncmp(loc, WV_LAYERS_DATA_PREFIX, strlen(WV_LAYERS_DATA_PREFIX)) == 0) {
    if (mode == WV_RECORD_CC_FOR_RECORD) {
      loc = WV_RECORD_DATA_OMITTED;
    } else {
      snprintf(cas, sizeof cas, WV_TOKEN_CAS_PREFIX "%s", l->gzip_digest);
      loc = cas;
    }
  }
  int rc = wv_json_add_str(o, "location", loc);
  rc = rc ? rc : wv_json_add_str(o, "gzipDigest", l->gzip_digest);
  rc = rc ? rc : wv_json_add_int(o, "gzipSize", l->gzip_size);
  rc = rc ? rc : wv_json_add_str(o, "tarDigest", l->tar_digest);
  return wv_json_finish(o, rc);
}

json_object *wv_record_cc_to_json(const wv_container_config_t *cc, wv_record_cc_mode_t mode,
                                  bool *oom) {
  *oom = false;
  if (wv_container_config_is_empty(cc))
    return NULL;
  json_object *o = json_object_new_object(), *layers = json_object_new_array();
  int rc = o && layers ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_strv(o, "entrypoint", cc->entrypoint, cc->n_entrypoint);
  rc = rc ? rc : wv_json_add_strv(o, "cmd", cc->cmd, cc->n_cmd);
  rc = rc ? rc : wv_json_add_strv(o, "env", cc->env, cc->n_env);
  rc = rc ? rc : wv_json_add_str(o, "workingDir", cc->working_dir);
  for (size_t i = 0; !rc && i < cc->n_layers; i++) {
    json_object *l = layer_json(&cc->layers[i], mode);
    rc = l ? json_object_array_add(layers, l) : WV_ENOMEM;
    if (rc)
      json_object_put(l);
  }
  if (!rc) {
    rc = wv_json_add_obj(o, "layers", layers);
    layers = NULL; /* add_obj took it */
  }
  json_object_put(layers);
  if (rc) {
    json_object_put(o);
    *oom = true;
    return NULL;
  }
  return o;
}

static int add_instant(json_object *o, const char *key, int64_t ns) {
  char t[WV_TIME_ISO_STRLEN];
  int rc = wv_time_format_iso(ns, t, sizeof t);
  return rc ? rc : wv_json_add_str(o, key, t);
}

static json_object *user_json(const char *user) {
  if (!user)
    return NULL;
  json_object *u = json_object_new_object();
  if (u && wv_json_add_str(u, "id", user)) {
    json_object_put(u);
    u = NULL;
  }
  return u;
}

json_object *wv_record_new(const wv_creq_t *r, const wv_creq_plan_t *plan,
                           const wv_creq_result_t *res, const char *client_ip,
                           json_object *cc_record) {
  json_object *o = json_object_new_object();
  wv_arena_t *a = wv_arena_new(4096);
  int rc = o && a ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "id", res->token);
  rc = rc ? rc : wv_json_add_obj(o, "user", user_json(plan->user));
  if (!rc && r->has_workspace_id)
    rc = wv_json_add_int(o, "workspaceId", r->workspace_id);
  rc = rc ? rc : wv_json_add_str(o, "containerImage", r->container_image);
  rc = rc ? rc : wv_json_add_obj(o, "containerConfig", cc_record);
  cc_record = NULL;
  rc = rc ? rc : wv_json_add_str(o, "platform", plan->platform);
  rc = rc ? rc : wv_json_add_str(o, "towerEndpoint", plan->tower);
  rc = rc ? rc : wv_json_add_str(o, "buildRepository", r->build_repository);
  rc = rc ? rc : wv_json_add_str(o, "cacheRepository", r->cache_repository);
  rc = rc ? rc : wv_json_add_str(o, "fingerprint", r->fingerprint);
  rc = rc ? rc : add_instant(o, "timestamp", res->created_ns);
  rc = rc ? rc : wv_json_add_str(o, "zoneId", a ? wv_record_zone_id(a, r->timestamp) : NULL);
  rc = rc ? rc : wv_json_add_str(o, "ipAddress", client_ip);
  rc = rc ? rc : wv_json_add_str(o, "sourceImage", res->container_image);
  rc = rc ? rc : wv_json_add_str(o, "waveImage", res->target_image);
  rc = rc ? rc : add_instant(o, "expiration", res->expires_ns);
  rc = rc ? rc : wv_json_add_bool(o, "freeze", r->freeze);
  rc =
      rc ? rc : wv_json_add_str(o, "fusionVersion", a ? wv_record_fusion_version(a, &r->cc) : NULL);
  rc = rc ? rc : wv_json_add_bool(o, "mirror", r->mirror);
  rc = rc ? rc : wv_json_add_str(o, "scanId", res->scan_id);
  wv_arena_free(a);
  json_object_put(cc_record);
  return wv_json_finish(o, rc);
}

/* Copies member key of from into to under the same name (a new reference); absent is fine. */
static int copy(json_object *to, json_object *from, const char *key) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(from, key, &v) || !v)
    return 0;
  return json_object_object_add(to, key, json_object_get(v)) ? WV_ENOMEM : 0;
}

/* {"image": rec[img], "digest": rec[dig]}, omitted when both are absent. */
static json_object *pair(json_object *rec, const char *img, const char *dig) {
  json_object *o = json_object_new_object(), *v = NULL;
  if (!o)
    return NULL;
  if (json_object_object_get_ex(rec, img, &v) && v)
    json_object_object_add(o, "image", json_object_get(v));
  if (json_object_object_get_ex(rec, dig, &v) && v)
    json_object_object_add(o, "digest", json_object_get(v));
  return o;
}

json_object *wv_record_describe(json_object *rec) {
  static const char *const request_keys[] = {
      "user",          "workspaceId", "containerImage", "containerConfig", "platform",
      "towerEndpoint", "fingerprint", "timestamp",      "zoneId",          "ipAddress"};
  json_object *o = json_object_new_object(), *req = json_object_new_object();
  json_object *id = NULL;
  int rc = o && req ? 0 : WV_ENOMEM;
  if (!rc && json_object_object_get_ex(rec, "id", &id))
    rc = json_object_object_add(o, "token", json_object_get(id)) ? WV_ENOMEM : 0;
  rc = rc ? rc : copy(o, rec, "expiration");
  for (size_t i = 0; !rc && i < sizeof request_keys / sizeof request_keys[0]; i++)
    rc = copy(req, rec, request_keys[i]);
  if (!rc) {
    rc = wv_json_add_obj(o, "request", req);
    req = NULL;
  }
  rc = rc ? rc : wv_json_add_obj(o, "source", pair(rec, "sourceImage", "sourceDigest"));
  rc = rc ? rc : wv_json_add_obj(o, "wave", pair(rec, "waveImage", "waveDigest"));
  json_object_put(req);
  return wv_json_finish(o, rc);
}

json_object *wv_record_status(const wv_token_rec_t *t, int64_t now_ns) {
  json_object *o = json_object_new_object();
  int64_t created = t->created_ms * WV_NS_PER_MS;
  char dur[WV_DURATION_STRLEN];
  int rc = o ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "id", t->token);
  rc = rc ? rc : wv_json_add_str(o, "status", "DONE");
  rc = rc ? rc : wv_json_add_bool(o, "succeeded", true);
  rc = rc ? rc : add_instant(o, "creationTime", created);
  rc = rc ? rc : wv_duration_format_wave(now_ns > created ? now_ns - created : 0, dur, sizeof dur);
  rc = rc ? rc : wv_json_add_number_text(o, "duration", dur);
  return wv_json_finish(o, rc);
}

const char *wv_record_zone_id(wv_arena_t *a, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 11 || !strchr(s, 'T'))
    return NULL;
  if (s[n - 1] == 'Z')
    return "Z";
  const char *z = s + n - 6;
  if ((z[0] == '+' || z[0] == '-') && isdigit((unsigned char)z[1]) &&
      isdigit((unsigned char)z[2]) && z[3] == ':' && isdigit((unsigned char)z[4]) &&
      isdigit((unsigned char)z[5]))
    return wv_arena_strdup(a, z);
  return NULL;
}

const char *wv_record_fusion_version(wv_arena_t *a, const wv_container_config_t *cc) {
  static const char host[] = "https://fusionfs.seqera.io/releases/pkg/";
  for (size_t i = 0; i < cc->n_layers; i++) {
    const char *loc = cc->layers[i].location;
    if (!loc || strncmp(loc, host, sizeof host - 1) != 0)
      continue;
    const char *v = loc + sizeof host - 1, *end = strstr(v, "/fusion-");
    if (!end || end == v)
      continue;
    char *out = wv_arena_strndup(a, v, (size_t)(end - v));
    for (char *p = out; p && *p; p++)
      if (*p == '/')
        *p = '.';
    return out;
  }
  return NULL;
}

bool wv_record_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > REQUEST_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
      return false;
  return true;
}

int wv_record_load(const wv_app_t *app, const char *id, json_object **rec) {
  *rec = NULL;
  return wv_record_id_valid(id) ? wv_store_get_json(app->store, WV_DB_REQUESTS, id, 0, 0, rec, NULL)
                                : WV_ENOTFOUND;
}
