/*
 * registry/container_config.h — the containerConfig of a container request
 * (contract §3.1): its layers and run-config overrides as read from JSON,
 * the augmentation-time checks, and the Fusion layer filter by architecture.
 * The augmentation rewrite (registry/augment.h) applies one to an image;
 * container requests, builds and freeze read and keep them.
 *
 * Threads: no global state. Ownership: everything returned lives in the
 * caller's arena. Messages (*msg, may be NULL) are arena strings. Return
 * codes: 0; WV_EINVAL for a bad containerConfig; WV_EPARSE / WV_ETOOBIG for
 * text that is not JSON or too long; WV_ENOMEM.
 */
#ifndef WV_CONTAINER_CONFIG_H
#define WV_CONTAINER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

struct json_object;

/* Caps on a containerConfig (Docker refuses more than 127 layers anyway). */
#define WV_CONTAINER_MAX_LAYERS 128
#define WV_CONTAINER_MAX_ITEMS 4096 /* entries in entrypoint, cmd or env */

typedef struct {
  const char *location;    /* data:, http(s)://, docker://, gzip: — NULL when absent */
  const char *gzip_digest; /* layer digest in the manifest */
  int64_t gzip_size;       /* layer size in the manifest; 0 when absent */
  const char *tar_digest;  /* appended to rootfs.diff_ids */
} wv_container_layer_t;

typedef struct {
  const char **entrypoint;
  size_t n_entrypoint;
  const char **cmd;
  size_t n_cmd;
  const char **env;
  size_t n_env;
  const char *working_dir; /* NULL when absent */
  wv_container_layer_t *layers;
  size_t n_layers;
} wv_container_config_t;

/*
 * Reads a ContainerConfig (contract §3.1) from a json-c value: NULL or JSON null
 * give an empty config; explicit nulls inside are absent values; unknown
 * fields (skipHashing among them) are ignored. Type errors give WV_EINVAL.
 * Strings are copied into the arena, so obj may be freed afterwards. Layer
 * content is not validated here (see wv_container_config_validate()).
 */
int wv_container_config_from_json(wv_arena_t *a, struct json_object *obj,
                                  wv_container_config_t *out, const char **msg);

/* Same from JSON text (at most WV_AUGMENT_MAX_CONFIG bytes, registry/augment.h). */
int wv_container_config_parse(wv_arena_t *a, const char *json, size_t len,
                              wv_container_config_t *out, const char **msg);

/*
 * The augmentation-time layer check: location, gzipDigest, gzipSize (> 0) and
 * tarDigest present, digests "sha256:" + 64 lowercase hex. Messages are
 * Wave's ("Missing layer gzip digest", "Missing layer tar digest should start
 * with the 'sha256:' prefix -- offending value: x", …). 0 or WV_EINVAL.
 */
int wv_container_config_validate(wv_arena_t *a, const wv_container_config_t *cc, const char **msg);

/* True when the config would change nothing (no layers, no overrides). */
bool wv_container_config_is_empty(const wv_container_config_t *cc);

/*
 * Keeps the layers that are not Fusion archives (location not ending in
 * "/fusion-<word>.tar.gz") and the Fusion archives whose <word> is arch
 * (canonicalised: x86_64 → amd64). out shares strings with in; its layer
 * array is new (arena). NULL or empty arch keeps every layer.
 */
int wv_container_config_filter_arch(wv_arena_t *a, const wv_container_config_t *in,
                                    const char *arch, wv_container_config_t *out);

#endif
