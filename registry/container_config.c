/*
 * registry/container_config.c — the containerConfig of contract §3.1: read
 * from JSON, checked, filtered by architecture. It reads JSON as the
 * augmentation rewrite does (registry/augment_int.h: strict, capped, Wave's
 * messages), which is why the two share those helpers.
 */
#include "registry/container_config.h"
#include "registry/augment.h"
#include "registry/augment_int.h"

#include <json-c/json.h>
#include <string.h>

#include "core/err.h"
#include "registry/ref.h"

/* Reads an optional string[] field into arena strings. */
static int read_strings(wv_arena_t *a, json_object *obj, const char *key, const char ***items,
                        size_t *n, const char **msg) {
  *items = NULL;
  *n = 0;
  if (wv__augment_absent(obj, key))
    return 0;
  json_object *arr = wv__augment_member(obj, key, json_type_array);
  if (!arr)
    return wv__augment_say(a, msg, WV_EINVAL,
                           "Invalid container config: '%s' must be an array of strings", key);
  size_t len = json_object_array_length(arr);
  if (len > WV_CONTAINER_MAX_ITEMS)
    return wv__augment_say(a, msg, WV_EINVAL,
                           "Invalid container config: '%s' has more than %d entries", key,
                           WV_CONTAINER_MAX_ITEMS);
  const char **v = wv_arena_calloc(a, (len ? len : 1) * sizeof *v);
  if (!v)
    return WV_ENOMEM;
  for (size_t i = 0; i < len; i++) {
    json_object *it = json_object_array_get_idx(arr, i);
    if (!json_object_is_type(it, json_type_string))
      return wv__augment_say(a, msg, WV_EINVAL,
                             "Invalid container config: '%s' must be an array of strings", key);
    v[i] = wv_arena_strndup(a, json_object_get_string(it), (size_t)json_object_get_string_len(it));
    if (!v[i])
      return WV_ENOMEM;
  }
  *items = v;
  *n = len;
  return 0;
}

/* Reads an optional string field; other types are errors. */
static int read_string(wv_arena_t *a, json_object *obj, const char *key, const char *where,
                       const char **out, const char **msg) {
  *out = NULL;
  if (wv__augment_absent(obj, key))
    return 0;
  json_object *v = wv__augment_member(obj, key, json_type_string);
  if (!v)
    return wv__augment_say(a, msg, WV_EINVAL, "Invalid %s: '%s' must be a string", where, key);
  *out = wv_arena_strndup(a, json_object_get_string(v), (size_t)json_object_get_string_len(v));
  return *out ? 0 : WV_ENOMEM;
}

static int read_layer(wv_arena_t *a, json_object *obj, wv_container_layer_t *l, const char **msg) {
  static const char where[] = "container layer";
  if (!json_object_is_type(obj, json_type_object))
    return wv__augment_say(a, msg, WV_EINVAL,
                           "Invalid container config: 'layers' must be an array of objects");
  int rc = read_string(a, obj, "location", where, &l->location, msg);
  if (!rc)
    rc = read_string(a, obj, "gzipDigest", where, &l->gzip_digest, msg);
  if (!rc)
    rc = read_string(a, obj, "tarDigest", where, &l->tar_digest, msg);
  if (rc)
    return rc;
  l->gzip_size = 0;
  if (!wv__augment_absent(obj, "gzipSize")) {
    json_object *v = wv__augment_member(obj, "gzipSize", json_type_int);
    if (!v)
      return wv__augment_say(a, msg, WV_EINVAL, "Invalid %s: 'gzipSize' must be an integer", where);
    l->gzip_size = json_object_get_int64(v);
  }
  return 0;
}

int wv_container_config_from_json(wv_arena_t *a, json_object *obj, wv_container_config_t *out,
                                  const char **msg) {
  wv_container_config_t cc = {0};
  if (obj && !json_object_is_type(obj, json_type_object))
    return wv__augment_say(a, msg, WV_EINVAL, "Invalid container config: not a JSON object");
  if (!obj) {
    *out = cc;
    return 0;
  }
  int rc = read_strings(a, obj, "entrypoint", &cc.entrypoint, &cc.n_entrypoint, msg);
  if (!rc)
    rc = read_strings(a, obj, "cmd", &cc.cmd, &cc.n_cmd, msg);
  if (!rc)
    rc = read_strings(a, obj, "env", &cc.env, &cc.n_env, msg);
  if (!rc)
    rc = read_string(a, obj, "workingDir", "container config", &cc.working_dir, msg);
  if (rc)
    return rc;
  if (!wv__augment_absent(obj, "layers")) {
    json_object *arr = wv__augment_member(obj, "layers", json_type_array);
    if (!arr)
      return wv__augment_say(a, msg, WV_EINVAL,
                             "Invalid container config: 'layers' must be an array");
    size_t n = json_object_array_length(arr);
    if (n > WV_CONTAINER_MAX_LAYERS)
      return wv__augment_say(a, msg, WV_EINVAL, "Invalid container config: more than %d layers",
                             WV_CONTAINER_MAX_LAYERS);
    cc.layers = wv_arena_calloc(a, (n ? n : 1) * sizeof *cc.layers);
    if (!cc.layers)
      return WV_ENOMEM;
    for (size_t i = 0; i < n; i++)
      if ((rc = read_layer(a, json_object_array_get_idx(arr, i), &cc.layers[i], msg)) != 0)
        return rc;
    cc.n_layers = n;
  }
  *out = cc;
  return 0;
}

int wv_container_config_parse(wv_arena_t *a, const char *json, size_t len,
                              wv_container_config_t *out, const char **msg) {
  json_object *root = NULL;
  int rc =
      wv__augment_parse_object(a, json, len, WV_AUGMENT_MAX_CONFIG, "container config", &root, msg);
  if (!rc)
    rc = wv_container_config_from_json(a, root, out, msg);
  json_object_put(root);
  return rc;
}

/* Checks one layer digest field the way Wave words it, then the full grammar. */
static int check_digest(wv_arena_t *a, const char *what, const char *d, const char **msg) {
  if (strncmp(d, "sha256:", 7) != 0)
    return wv__augment_say(
        a, msg, WV_EINVAL,
        "Missing layer %s digest should start with the 'sha256:' prefix -- offending "
        "value: %s",
        what, d);
  if (!wv_ref_is_digest(d))
    return wv__augment_say(a, msg, WV_EINVAL, "Invalid layer %s digest -- offending value: %s",
                           what, d);
  return 0;
}

int wv_container_config_validate(wv_arena_t *a, const wv_container_config_t *cc, const char **msg) {
  for (size_t i = 0; i < cc->n_layers; i++) {
    const wv_container_layer_t *l = &cc->layers[i];
    if (!l->location || !*l->location)
      return wv__augment_say(a, msg, WV_EINVAL, "Missing layer location");
    if (!l->gzip_digest || !*l->gzip_digest)
      return wv__augment_say(a, msg, WV_EINVAL, "Missing layer gzip digest");
    if (l->gzip_size <= 0)
      return wv__augment_say(a, msg, WV_EINVAL, "Missing layer gzip size");
    if (!l->tar_digest || !*l->tar_digest)
      return wv__augment_say(a, msg, WV_EINVAL, "Missing layer tar digest");
    int rc = check_digest(a, "gzip", l->gzip_digest, msg);
    if (!rc)
      rc = check_digest(a, "tar", l->tar_digest, msg);
    if (rc)
      return rc;
  }
  return 0;
}

bool wv_container_config_is_empty(const wv_container_config_t *cc) {
  return !cc || (cc->n_entrypoint == 0 && cc->n_cmd == 0 && cc->n_env == 0 &&
                 (!cc->working_dir || !*cc->working_dir) && cc->n_layers == 0);
}

/*
 * Wave's pattern is ".*\/fusion-(\w+)\.tar\.gz$": the word between the last
 * "/fusion-" and the ".tar.gz" suffix. Returns its length, 0 when not Fusion.
 */
static size_t fusion_arch(const char *loc, const char **word) {
  static const char suffix[] = ".tar.gz";
  size_t n = strlen(loc), sn = sizeof suffix - 1;
  if (n < sn || strcmp(loc + n - sn, suffix) != 0)
    return 0;
  size_t end = n - sn, start = end;
  while (start > 0 && (loc[start - 1] == '_' || (loc[start - 1] >= '0' && loc[start - 1] <= '9') ||
                       (loc[start - 1] >= 'a' && loc[start - 1] <= 'z') ||
                       (loc[start - 1] >= 'A' && loc[start - 1] <= 'Z')))
    start--;
  if (start == end || start < 8 || strncmp(loc + start - 8, "/fusion-", 8) != 0)
    return 0;
  *word = loc + start;
  return end - start;
}

int wv_container_config_filter_arch(wv_arena_t *a, const wv_container_config_t *in,
                                    const char *arch, wv_container_config_t *out) {
  wv_container_config_t cc = *in;
  if (!arch || !*arch || in->n_layers == 0) {
    *out = cc;
    return 0;
  }
  const char *want = wv_platform_arch_canonical(arch);
  cc.layers = wv_arena_calloc(a, in->n_layers * sizeof *cc.layers);
  if (!cc.layers)
    return WV_ENOMEM;
  cc.n_layers = 0;
  for (size_t i = 0; i < in->n_layers; i++) {
    const char *word = NULL;
    size_t wn = in->layers[i].location ? fusion_arch(in->layers[i].location, &word) : 0;
    if (wn && !(strlen(want) == wn && memcmp(want, word, wn) == 0))
      continue;
    cc.layers[cc.n_layers++] = in->layers[i];
  }
  *out = cc;
  return 0;
}
