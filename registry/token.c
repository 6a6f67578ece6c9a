#include "registry/token.h"
#include "core/err.h"
#include "core/json.h"

#include <string.h>

static const char *const kind_names[] = {"container", "build", "freeze", "mirror"};

const char *wv_token_kind_name(wv_token_kind_t k) {
  return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "container";
}

int wv_token_encode(const wv_token_rec_t *t, wv_buf_t *out) {
  if (!t->token || !t->registry || !t->image)
    return WV_EINVAL;
  json_object *o = json_object_new_object();
  if (!o)
    return WV_ENOMEM;
  int rc = wv_json_add_str(o, "token", t->token);
  rc = rc ? rc : wv_json_add_str(o, "kind", wv_token_kind_name(t->kind));
  rc = rc ? rc : wv_json_add_str(o, "registry", t->registry);
  rc = rc ? rc : wv_json_add_str(o, "image", t->image);
  rc = rc ? rc : wv_json_add_str(o, "reference", t->reference);
  rc = rc ? rc : wv_json_add_str(o, "containerImage", t->container_image);
  rc = rc ? rc : wv_json_add_str(o, "targetImage", t->target_image);
  rc = rc ? rc : wv_json_add_str(o, "platform", t->platform);
  rc = rc ? rc : wv_json_add_str(o, "user", t->user);
  rc = rc ? rc : wv_json_add_str(o, "clientIp", t->client_ip);
  rc = rc ? rc : wv_json_add_str(o, "buildId", t->build_id);
  rc = rc ? rc : wv_json_add_str(o, "scanId", t->scan_id);
  rc = rc ? rc : wv_json_add_str(o, "scanMode", t->scan_mode);
  rc = rc ? rc : wv_json_add_str(o, "scanLevels", t->scan_levels);
  rc = rc ? rc : wv_json_add_str(o, "containerConfig", t->cc_json);
  rc = rc ? rc : wv_json_add_int(o, "createdMs", t->created_ms);
  rc = rc ? rc : wv_json_add_int(o, "expiresMs", t->expires_ms);
  if (!rc)
    rc = wv_json_to_buf(o, out);
  json_object_put(o);
  return rc;
}

/* Copies an optional string member into the arena; absent or null → NULL. */
static int get_opt(wv_arena_t *a, json_object *o, const char *key, const char **out) {
  const char *s = NULL;
  int rc = wv_json_get_str(o, key, &s);
  if (rc == WV_ENOTFOUND) {
    *out = NULL;
    return 0;
  }
  if (rc)
    return WV_EPARSE;
  *out = wv_arena_strdup(a, s);
  return *out ? 0 : WV_ENOMEM;
}

int wv_token_decode(wv_arena_t *a, const char *json, size_t len, wv_token_rec_t *out) {
  json_object *o = NULL;
  char err[128];
  memset(out, 0, sizeof *out);
  int rc = wv_json_parse(json, len, WV_TOKEN_MAX_RECORD, 0, &o, err, sizeof err);
  if (rc)
    return rc == WV_ENOMEM ? rc : WV_EPARSE;
  const char *kind = NULL;
  rc = get_opt(a, o, "token", &out->token);
  rc = rc ? rc : get_opt(a, o, "kind", &kind);
  rc = rc ? rc : get_opt(a, o, "registry", &out->registry);
  rc = rc ? rc : get_opt(a, o, "image", &out->image);
  rc = rc ? rc : get_opt(a, o, "reference", &out->reference);
  rc = rc ? rc : get_opt(a, o, "containerImage", &out->container_image);
  rc = rc ? rc : get_opt(a, o, "targetImage", &out->target_image);
  rc = rc ? rc : get_opt(a, o, "platform", &out->platform);
  rc = rc ? rc : get_opt(a, o, "user", &out->user);
  rc = rc ? rc : get_opt(a, o, "clientIp", &out->client_ip);
  rc = rc ? rc : get_opt(a, o, "buildId", &out->build_id);
  rc = rc ? rc : get_opt(a, o, "scanId", &out->scan_id);
  rc = rc ? rc : get_opt(a, o, "scanMode", &out->scan_mode);
  rc = rc ? rc : get_opt(a, o, "scanLevels", &out->scan_levels);
  rc = rc ? rc : get_opt(a, o, "containerConfig", &out->cc_json);
  if (!rc && (wv_json_get_int64(o, "createdMs", &out->created_ms) ||
              wv_json_get_int64(o, "expiresMs", &out->expires_ms)))
    rc = WV_EPARSE;
  if (!rc && (!out->token || !out->registry || !out->image))
    rc = WV_EPARSE;
  for (size_t i = 0; !rc && kind && i < sizeof kind_names / sizeof kind_names[0]; i++)
    if (strcmp(kind, kind_names[i]) == 0)
      out->kind = (wv_token_kind_t)i;
  json_object_put(o);
  return rc;
}
