/*
 * build/checksum.c — containerId and Java hashCode (see checksum.h).
 *
 * Java arithmetic is emulated in uint32_t, which wraps the way int32 does in
 * two's complement, and converted to int32_t only at the end.
 */
#include "build/checksum.h"
#include "core/err.h"
#include "core/utf.h"

#include <json-c/json.h>
#include <stdio.h>

int wv_checksum_java_string_hash(const char *s, int32_t *out) {
  uint32_t h = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (p && *p) {
    uint32_t cp;
    size_t n = wv_utf8_decode(p, &cp);
    if (n == 0)
      return WV_EPARSE;
    if (cp < 0x10000) {
      h = 31 * h + cp;
    } else { /* a surrogate pair, as Java stores it */
      cp -= 0x10000;
      h = 31 * h + (0xd800 | (cp >> 10));
      h = 31 * h + (0xdc00 | (cp & 0x3ff));
    }
    p += n;
  }
  *out = (int32_t)h;
  return 0;
}

/* List<String>.hashCode: NULL list → 0, else 1 folded over the elements. */
static int strv_hash(const char *const *v, size_t n, uint32_t *out) {
  if (!v)
    return *out = 0, 0;
  uint32_t h = 1;
  for (size_t i = 0; i < n; i++) {
    int32_t e;
    int rc = wv_checksum_java_string_hash(v[i], &e);
    if (rc)
      return rc;
    h = 31 * h + (uint32_t)e;
  }
  *out = h;
  return 0;
}

/* Objects.hash(location, gzipDigest, gzipSize, tarDigest); gzipSize is a Java Integer. */
static int layer_hash(const wv_container_layer_t *l, uint32_t *out) {
  const char *s[3] = {l->location, l->gzip_digest, l->tar_digest};
  int32_t e[3];
  for (int i = 0; i < 3; i++) {
    int rc = wv_checksum_java_string_hash(s[i], &e[i]);
    if (rc)
      return rc;
  }
  uint32_t h = 1;
  h = 31 * h + (uint32_t)e[0];
  h = 31 * h + (uint32_t)e[1];
  h = 31 * h + (uint32_t)l->gzip_size;
  h = 31 * h + (uint32_t)e[2];
  *out = h;
  return 0;
}

int wv_checksum_config_hash(const wv_container_config_t *cc, bool layers_null, int32_t *out) {
  if (!cc)
    return *out = 0, 0;
  uint32_t f[5], h = 1;
  int32_t wd;
  int rc = strv_hash(cc->entrypoint, cc->n_entrypoint, &f[0]);
  if (!rc)
    rc = strv_hash(cc->cmd, cc->n_cmd, &f[1]);
  if (!rc)
    rc = strv_hash(cc->env, cc->n_env, &f[2]);
  if (!rc)
    rc = wv_checksum_java_string_hash(cc->working_dir, &wd);
  if (rc)
    return rc;
  f[3] = (uint32_t)wd;
  /* A NULL layers array is an omitted field (empty list) unless the caller says null. */
  f[4] = layers_null && !cc->layers ? 0 : 1;
  for (size_t i = 0; i < cc->n_layers; i++) {
    uint32_t e;
    if ((rc = layer_hash(&cc->layers[i], &e)) != 0)
      return rc;
    f[4] = 31 * f[4] + e;
  }
  for (int i = 0; i < 5; i++)
    h = 31 * h + f[i];
  *out = (int32_t)h;
  return 0;
}

bool wv_checksum_layers_null(const struct json_object *cc) {
  json_object *v = NULL;
  if (!cc || !json_object_is_type(cc, json_type_object))
    return false;
  return json_object_object_get_ex(cc, "layers", &v) && v == NULL;
}

int wv_checksum_container_id(const wv_checksum_input_t *in, char out[WV_CHECKSUM_STRLEN]) {
  if (!in || !in->container_file || !in->platform || !in->repository)
    return WV_EINVAL;
  const char *kv[12];
  size_t n = 0;
  char cfg[16];
  kv[2 * n] = "containerFile", kv[2 * n + 1] = in->container_file, n++;
  kv[2 * n] = "condaFile", kv[2 * n + 1] = in->conda_file, n++;
  kv[2 * n] = "platform", kv[2 * n + 1] = in->platform, n++;
  kv[2 * n] = "repository", kv[2 * n + 1] = in->repository, n++;
  if (in->has_build_context)
    kv[2 * n] = "buildContext", kv[2 * n + 1] = in->build_context_tar_digest, n++;
  if (in->freeze && in->container_config && !wv_container_config_is_empty(in->container_config)) {
    int32_t h;
    int rc = wv_checksum_config_hash(in->container_config, in->layers_null, &h);
    if (rc)
      return rc;
    snprintf(cfg, sizeof cfg, "%d", (int)h);
    kv[2 * n] = "containerConfig", kv[2 * n + 1] = cfg, n++;
  }
  return wv_siphash_pairs(kv, n, out);
}
