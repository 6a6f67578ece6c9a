/*
 * registry/augment.c — the augmentation rewrite (contract §5.4).
 *
 * DESIGN. Each public function is parse → edit in place → serialise. json-c
 * keeps object keys in insertion order and json_object_object_add() on an
 * existing key swaps the value in the same slot, so untouched keys keep their
 * order and edited ones their position; that is all "keep key order" needs.
 * The one trap is ownership: replacing a key frees the old value, so anything
 * read from the original (the entrypoint for WAVE_ENTRY_CHAIN) is copied into
 * the arena before the edit. Trees are owned by one `root` and put once at
 * `out:`; serialised text belongs to the tree, so it is copied to the arena
 * (and hashed) before the put.
 */
#include "registry/augment.h"
#include "registry/augment_int.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "registry/mediatype.h"
#include "registry/ref.h"

#define JSON_OUT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- small helpers (the first four: augment_int.h) ------------------------ */

int wv__augment_say(wv_arena_t *a, const char **msg, int rc, const char *fmt, ...) {
  if (!msg)
    return rc;
  va_list ap;
  va_start(ap, fmt);
  *msg = wv_arena_vsprintf(a, fmt, ap);
  va_end(ap);
  return *msg ? rc : WV_ENOMEM;
}

int wv__augment_parse_object(wv_arena_t *a, const char *text, size_t len, size_t max,
                             const char *what, json_object **root, const char **msg) {
  char err[160];
  *root = NULL;
  if (len > max)
    return wv__augment_say(a, msg, WV_ETOOBIG,
                           "The %s exceeds the maximum allowed size of %zu bytes", what, max);
  json_object *obj = NULL;
  int rc = wv_json_parse(text, len, max, WV_AUGMENT_MAX_DEPTH, &obj, err, sizeof err);
  if (rc == WV_ENOMEM)
    return rc;
  if (rc)
    return wv__augment_say(a, msg, rc, "Invalid %s: %s", what, err);
  if (!json_object_is_type(obj, json_type_object)) {
    json_object_put(obj);
    return wv__augment_say(a, msg, WV_EPARSE, "Invalid %s: not a JSON object", what);
  }
  *root = obj;
  return 0;
}

/* Serialises root compact into out (arena copy + digest). */
static int emit(wv_arena_t *a, json_object *root, wv_augment_out_t *out) {
  size_t len = 0;
  const char *s = json_object_to_json_string_length(root, JSON_OUT_FLAGS, &len);
  if (!s)
    return WV_ENOMEM;
  char *copy = wv_arena_alloc(a, len + 1);
  if (!copy)
    return WV_ENOMEM;
  memcpy(copy, s, len);
  copy[len] = '\0';
  out->data = copy;
  out->len = len;
  return wv_digest_of(copy, len, out->digest);
}

json_object *wv__augment_member(json_object *obj, const char *key, json_type t) {
  json_object *v = NULL;
  if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, t))
    return NULL;
  return v;
}

bool wv__augment_absent(json_object *obj, const char *key) {
  json_object *v = NULL;
  return !json_object_object_get_ex(obj, key, &v) || v == NULL;
}

static const char *member_str(json_object *obj, const char *key) {
  json_object *v = wv__augment_member(obj, key, json_type_string);
  return v ? json_object_get_string(v) : NULL;
}

/* Adds (or replaces in place) key; takes ownership of v even on failure. */
static int put(json_object *obj, const char *key, json_object *v) {
  if (!v)
    return WV_ENOMEM;
  if (json_object_object_add(obj, key, v) != 0) {
    json_object_put(v);
    return WV_ENOMEM;
  }
  return 0;
}

static int append(json_object *arr, json_object *v) {
  if (!v)
    return WV_ENOMEM;
  if (json_object_array_add(arr, v) != 0) {
    json_object_put(v);
    return WV_ENOMEM;
  }
  return 0;
}

static json_object *string_array(const char **items, size_t n) {
  json_object *arr = json_object_new_array_ext((int)n);
  for (size_t i = 0; arr && i < n; i++) {
    if (append(arr, json_object_new_string(items[i])) != 0) {
      json_object_put(arr);
      return NULL;
    }
  }
  return arr;
}

/* ---- config rewrite ----------------------------------------------------- */

/*
 * WAVE_ENTRY_CHAIN value from the original Entrypoint, copied to the arena
 * (the edit that follows frees the original). NULL when it had none.
 */
static int entry_chain(wv_arena_t *a, json_object *ep, const char **chain) {
  *chain = NULL;
  const char *s = NULL;
  if (json_object_is_type(ep, json_type_string)) {
    s = json_object_get_string(ep);
  } else if (json_object_is_type(ep, json_type_array)) {
    size_t n = json_object_array_length(ep);
    if (n == 1)
      s = json_object_get_string(json_object_array_get_idx(ep, 0)); /* NULL for a null */
    else if (n > 1)
      s = json_object_to_json_string_ext(ep, JSON_OUT_FLAGS);
  }
  if (!s || !*s) /* Groovy truthiness: an empty value is no entrypoint */
    return 0;
  *chain = wv_arena_strdup(a, s);
  return *chain ? 0 : WV_ENOMEM;
}

/* Applies Entrypoint/Cmd/WorkingDir/Env edits to the "config" object. */
static int edit_run_config(wv_arena_t *a, json_object *root, const wv_container_config_t *cc,
                           const char **msg) {
  json_object *cfg = wv__augment_member(root, "config", json_type_object);
  if (!cfg && !wv__augment_absent(root, "config"))
    return wv__augment_say(a, msg, WV_EPARSE, "Invalid image config: 'config' is not an object");
  const char *chain = NULL;
  json_object *ep = NULL;
  if (cfg)
    json_object_object_get_ex(cfg, "Entrypoint", &ep);
  int rc = entry_chain(a, ep, &chain);
  if (rc)
    return rc;
  bool needed =
      cc->n_entrypoint || cc->n_cmd || (cc->working_dir && *cc->working_dir) || cc->n_env || chain;
  if (!needed)
    return 0;
  if (!cfg) {
    cfg = json_object_new_object();
    if ((rc = put(root, "config", cfg)) != 0)
      return rc;
  }
  if (cc->n_entrypoint &&
      (rc = put(cfg, "Entrypoint", string_array(cc->entrypoint, cc->n_entrypoint))) != 0)
    return rc;
  if (cc->n_cmd && (rc = put(cfg, "Cmd", string_array(cc->cmd, cc->n_cmd))) != 0)
    return rc;
  if (cc->working_dir && *cc->working_dir &&
      (rc = put(cfg, "WorkingDir", json_object_new_string(cc->working_dir))) != 0)
    return rc;
  if (!cc->n_env && !chain)
    return 0;
  json_object *env = wv__augment_member(cfg, "Env", json_type_array);
  if (!env) {
    if (!wv__augment_absent(cfg, "Env"))
      return wv__augment_say(a, msg, WV_EPARSE,
                             "Invalid image config: 'config.Env' is not an array");
    env = json_object_new_array();
    if ((rc = put(cfg, "Env", env)) != 0)
      return rc;
  }
  for (size_t i = 0; i < cc->n_env; i++)
    if ((rc = append(env, json_object_new_string(cc->env[i]))) != 0)
      return rc;
  if (chain) {
    char *kv = wv_arena_sprintf(a, "WAVE_ENTRY_CHAIN=%s", chain);
    if (!kv)
      return WV_ENOMEM;
    rc = append(env, json_object_new_string(kv));
  }
  return rc;
}

static int edit_diff_ids(wv_arena_t *a, json_object *root, const wv_container_config_t *cc,
                         const char **msg) {
  if (cc->n_layers == 0)
    return 0;
  json_object *ids = wv__augment_member(wv__augment_member(root, "rootfs", json_type_object),
                                        "diff_ids", json_type_array);
  if (!ids)
    return wv__augment_say(a, msg, WV_EPARSE, "Invalid image config: missing 'rootfs.diff_ids'");
  for (size_t i = 0; i < cc->n_layers; i++) {
    int rc = append(ids, json_object_new_string(cc->layers[i].tar_digest));
    if (rc)
      return rc;
  }
  return 0;
}

int wv_augment_config(wv_arena_t *a, const char *config, size_t len,
                      const wv_container_config_t *cc, wv_augment_out_t *out, const char **msg) {
  json_object *root = NULL;
  int rc = wv_container_config_validate(a, cc, msg);
  if (rc)
    return rc;
  rc = wv__augment_parse_object(a, config, len, WV_AUGMENT_MAX_CONFIG, "image config", &root, msg);
  if (rc)
    goto out;
  rc = edit_diff_ids(a, root, cc, msg);
  if (!rc)
    rc = edit_run_config(a, root, cc, msg);
  if (!rc)
    rc = emit(a, root, out);
out:
  json_object_put(root);
  return rc;
}

/* ---- manifest rewrite --------------------------------------------------- */

int wv_manifest_info(wv_arena_t *a, const char *manifest, size_t len, wv_manifest_info_t *out,
                     const char **msg) {
  json_object *root = NULL;
  int rc = wv__augment_parse_object(a, manifest, len, WV_AUGMENT_MAX_MANIFEST, "image manifest",
                                    &root, msg);
  if (rc)
    return rc;
  wv_manifest_info_t info = {0};
  json_object *cfg = wv__augment_member(root, "config", json_type_object);
  const char *digest = member_str(cfg, "digest");
  json_object *size = wv__augment_member(cfg, "size", json_type_int);
  if (!digest || !wv_ref_is_digest(digest) || !size || json_object_get_int64(size) < 0) {
    rc = wv__augment_say(a, msg, WV_EPARSE,
                         "Invalid image manifest: missing or invalid 'config' reference");
    goto out;
  }
  const char *mt = member_str(root, "mediaType");
  const char *cmt = member_str(cfg, "mediaType");
  info.media_type = mt ? wv_arena_strdup(a, mt) : NULL;
  info.config_media_type = cmt ? wv_arena_strdup(a, cmt) : NULL;
  info.config_digest = wv_arena_strdup(a, digest);
  info.config_size = json_object_get_int64(size);
  if (!info.config_digest || (mt && !info.media_type) || (cmt && !info.config_media_type)) {
    rc = WV_ENOMEM;
    goto out;
  }
  *out = info;
out:
  json_object_put(root);
  return rc;
}

static json_object *layer_object(const wv_container_layer_t *l) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  if (put(o, "mediaType", json_object_new_string(WV_MT_DOCKER_LAYER_GZIP)) ||
      put(o, "size", json_object_new_int64(l->gzip_size)) ||
      put(o, "digest", json_object_new_string(l->gzip_digest))) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

int wv_augment_manifest(wv_arena_t *a, const char *manifest, size_t len,
                        const char *new_config_digest, int64_t new_config_size,
                        const wv_container_config_t *cc, wv_augment_out_t *out, const char **msg) {
  json_object *root = NULL;
  int rc = wv_container_config_validate(a, cc, msg);
  if (rc)
    return rc;
  if (!wv_ref_is_digest(new_config_digest) || new_config_size < 0)
    return wv__augment_say(a, msg, WV_EINVAL,
                           "Invalid config digest or size for the manifest rewrite");
  rc = wv__augment_parse_object(a, manifest, len, WV_AUGMENT_MAX_MANIFEST, "image manifest", &root,
                                msg);
  if (rc)
    goto out;
  json_object *cfg = wv__augment_member(root, "config", json_type_object);
  json_object *layers = wv__augment_member(root, "layers", json_type_array);
  if (!cfg || !layers) {
    rc = wv__augment_say(a, msg, WV_EPARSE, "Invalid image manifest: missing 'config' or 'layers'");
    goto out;
  }
  for (size_t i = 0; i < cc->n_layers && !rc; i++)
    rc = append(layers, layer_object(&cc->layers[i]));
  if (!rc)
    rc = put(cfg, "digest", json_object_new_string(new_config_digest));
  if (!rc)
    rc = put(cfg, "size", json_object_new_int64(new_config_size));
  if (!rc)
    rc = emit(a, root, out);
out:
  json_object_put(root);
  return rc;
}

/* Reads config.architecture, or NULL (arena copy). */
static int config_arch(wv_arena_t *a, const char *config, size_t len, const char **arch,
                       const char **msg) {
  json_object *root = NULL;
  *arch = NULL;
  int rc =
      wv__augment_parse_object(a, config, len, WV_AUGMENT_MAX_CONFIG, "image config", &root, msg);
  if (rc)
    return rc;
  const char *s = member_str(root, "architecture");
  if (s && !(*arch = wv_arena_strdup(a, s)))
    rc = WV_ENOMEM;
  json_object_put(root);
  return rc;
}

int wv_augment_image(wv_arena_t *a, const char *manifest, size_t manifest_len, const char *config,
                     size_t config_len, const wv_container_config_t *cc,
                     wv_augment_out_t *new_manifest, wv_augment_out_t *new_config,
                     wv_container_config_t *used, const char **msg) {
  wv_manifest_info_t info;
  int rc = wv_manifest_info(a, manifest, manifest_len, &info, msg);
  if (rc)
    return rc;
  char actual[WV_DIGEST_STRLEN];
  if ((rc = wv_digest_of(config, config_len, actual)) != 0)
    return rc;
  if (strcmp(actual, info.config_digest) != 0)
    return wv__augment_say(a, msg, WV_EDIGEST, "Image config digest mismatch: expected %s, got %s",
                           info.config_digest, actual);
  const char *arch = NULL;
  wv_container_config_t filtered;
  rc = config_arch(a, config, config_len, &arch, msg);
  if (!rc)
    rc = wv_container_config_filter_arch(a, cc, arch, &filtered);
  if (!rc)
    rc = wv_augment_config(a, config, config_len, &filtered, new_config, msg);
  if (!rc)
    rc = wv_augment_manifest(a, manifest, manifest_len, new_config->digest,
                             (int64_t)new_config->len, &filtered, new_manifest, msg);
  if (!rc && used)
    *used = filtered;
  return rc;
}

/* ---- indexes -------------------------------------------------------------- */

/* The index media type: the Content-Type when it names an index, else the body's. */
static const char *index_type(json_object *root, const char *content_type) {
  if (wv_mediatype_classify(content_type) == WV_MT_KIND_INDEX)
    return wv_mediatype_canonical(content_type);
  return wv_mediatype_canonical(member_str(root, "mediaType"));
}

/* Fills e from an index entry when it is an augmentable match; returns true if so. */
static bool entry_matches(json_object *it, const char *child, const wv_platform_list_t *want,
                          wv_index_entry_t *e) {
  const char *mt = member_str(it, "mediaType");
  json_object *pf = wv__augment_member(it, "platform", json_type_object);
  if (!mt || strcmp(mt, child) != 0 || !pf)
    return false;
  const char *os = member_str(pf, "os"), *arch = member_str(pf, "architecture");
  const char *variant = member_str(pf, "variant");
  if (!wv_platform_list_match_entry(want, os, arch, variant))
    return false;
  json_object *size = wv__augment_member(it, "size", json_type_int);
  e->digest = member_str(it, "digest");
  e->size = size ? json_object_get_int64(size) : -1;
  e->media_type = child;
  snprintf(e->platform.os, sizeof e->platform.os, "%s", os);
  snprintf(e->platform.arch, sizeof e->platform.arch, "%s", wv_platform_arch_canonical(arch));
  snprintf(e->platform.variant, sizeof e->platform.variant, "%s", variant ? variant : "");
  return true;
}

static int collect_entries(wv_arena_t *a, json_object *list, const char *child,
                           const wv_platform_list_t *want, wv_index_entry_t *v, size_t *n,
                           const char **msg) {
  size_t len = json_object_array_length(list);
  *n = 0;
  for (size_t i = 0; i < len; i++) {
    wv_index_entry_t e;
    if (!entry_matches(json_object_array_get_idx(list, i), child, want, &e))
      continue;
    if (!e.digest || !wv_ref_is_digest(e.digest))
      return wv__augment_say(a, msg, WV_EPARSE,
                             "Invalid image index: matching entry without a valid digest");
    bool dup = false;
    for (size_t j = 0; j < *n && !dup; j++)
      dup = strcmp(v[j].digest, e.digest) == 0;
    if (dup)
      continue;
    if (!(e.digest = wv_arena_strdup(a, e.digest)))
      return WV_ENOMEM;
    v[(*n)++] = e;
  }
  return 0;
}

int wv_augment_index_select(wv_arena_t *a, const char *index, size_t len,
                            const char *index_media_type, const wv_platform_list_t *want,
                            const char *image, const char *tag, wv_index_entry_t **entries,
                            size_t *n, const char **msg) {
  json_object *root = NULL;
  int rc =
      wv__augment_parse_object(a, index, len, WV_AUGMENT_MAX_MANIFEST, "image index", &root, msg);
  if (rc)
    return rc;
  const char *type = index_type(root, index_media_type);
  const char *child = wv_mediatype_index_child(type);
  json_object *list = wv__augment_member(root, "manifests", json_type_array);
  if (!child || !list) {
    rc = wv__augment_say(a, msg, WV_EPARSE,
                         "Unexpected media type for request '%s:%s' - offending value: %s", image,
                         tag,
                         type               ? type
                         : index_media_type ? index_media_type
                                            : "(none)");
    goto out;
  }
  size_t cap = json_object_array_length(list);
  wv_index_entry_t *v = wv_arena_calloc(a, (cap ? cap : 1) * sizeof *v);
  if (!v) {
    rc = WV_ENOMEM;
    goto out;
  }
  size_t found = 0;
  if ((rc = collect_entries(a, list, child, want, v, &found, msg)) != 0)
    goto out;
  if (found == 0) {
    const char *pf = wv_platform_list_format(a, want);
    rc = pf ? wv__augment_say(a, msg, WV_EINVAL,
                              "Cannot find matching platform '%s' in the image index for '%s:%s'",
                              pf, image, tag)
            : WV_ENOMEM;
    goto out;
  }
  *entries = v;
  *n = found;
out:
  json_object_put(root);
  return rc;
}

int wv_augment_index_rewrite(wv_arena_t *a, const char *index, size_t len,
                             const wv_index_repl_t *repl, size_t n, wv_augment_out_t *out,
                             const char **msg) {
  json_object *root = NULL;
  int rc =
      wv__augment_parse_object(a, index, len, WV_AUGMENT_MAX_MANIFEST, "image index", &root, msg);
  if (rc)
    return rc;
  json_object *list = wv__augment_member(root, "manifests", json_type_array);
  if (!list) {
    rc = wv__augment_say(a, msg, WV_EPARSE, "Invalid image index: missing 'manifests'");
    goto out;
  }
  /* An entry is rewritten at most once, so A→B, B→C cannot chain. */
  size_t len_list = json_object_array_length(list);
  bool *done = wv_arena_calloc(a, len_list + 1);
  if (!done) {
    rc = WV_ENOMEM;
    goto out;
  }
  for (size_t r = 0; r < n && !rc; r++) {
    if (!wv_ref_is_digest(repl[r].new_digest) || repl[r].new_size < 0) {
      rc = wv__augment_say(a, msg, WV_EINVAL, "Invalid replacement for index entry %s",
                           repl[r].old_digest);
      break;
    }
    size_t hits = 0;
    for (size_t i = 0; i < len_list && !rc; i++) {
      json_object *it = json_object_array_get_idx(list, i);
      const char *d = member_str(it, "digest");
      if (done[i] || !d || strcmp(d, repl[r].old_digest) != 0)
        continue;
      done[i] = true;
      hits++;
      rc = put(it, "digest", json_object_new_string(repl[r].new_digest));
      if (!rc)
        rc = put(it, "size", json_object_new_int64(repl[r].new_size));
    }
    if (!rc && hits == 0)
      rc = wv__augment_say(a, msg, WV_EINVAL, "Missing manifest entry for digest: %s",
                           repl[r].old_digest);
  }
  if (!rc)
    rc = emit(a, root, out);
out:
  json_object_put(root);
  return rc;
}
