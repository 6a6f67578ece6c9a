/*
 * build/checksum.h — the build "containerId" of contract §4.4 and the Java
 * hashCode of a ContainerConfig that a freeze build folds into it.
 *
 * The id must be bit-identical to Wave's, so everything here mirrors Java:
 * the ordered (key, value) pairs hashed by wv_siphash_pairs(), and
 * ContainerConfig.hashCode() = Objects.hash(entrypoint, cmd, env, workingDir,
 * layers) with int32 wrap-around, String.hashCode over UTF-16 code units,
 * null → 0 and an empty list → 1.
 *
 * One subtlety the caller must carry through: Java's ContainerConfig starts
 * with layers = new ArrayList(), so an omitted "layers" is an empty list
 * (hash 1) while "layers": null is null (hash 0). wv_container_config_t
 * cannot tell the two apart (both leave layers NULL), so the hash takes a
 * layers_null flag; wv_checksum_layers_null() reads it from the request JSON.
 * For entrypoint, cmd and env the struct already says it: a NULL pointer is
 * Java null (absent or JSON null), a non-NULL pointer with n == 0 is [].
 *
 * Pure functions, no global state, any thread.
 */
#ifndef WV_BUILD_CHECKSUM_H
#define WV_BUILD_CHECKSUM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/siphash.h"
#include "registry/container_config.h"

struct json_object;

typedef struct {
  const char *container_file; /* decoded text after template generation / freeze rewrite */
  const char *conda_file;     /* conda YAML, NULL when none (hashed as "") */
  const char *platform;       /* normalised, e.g. "linux/amd64" or "linux/amd64,linux/arm64" */
  const char *repository;     /* target repository without tag */
  bool has_build_context;     /* the request carried a buildContext object */
  const char *build_context_tar_digest;          /* its tarDigest (NULL hashes as "") */
  const wv_container_config_t *container_config; /* NULL when none */
  bool layers_null;                              /* the request said "layers": null (see above) */
  bool freeze;                                   /* the config counts only in freeze mode */
} wv_checksum_input_t;

/*
 * The 16-hex containerId. containerConfig is included (as the decimal Java
 * hashCode) only when freeze is set and the config is non-empty, as Wave
 * does. Returns 0, WV_EINVAL (NULL container_file/platform/repository) or
 * WV_EPARSE (a string that is not valid UTF-8).
 */
int wv_checksum_container_id(const wv_checksum_input_t *in, char out[WV_CHECKSUM_STRLEN]);

/* Java String.hashCode of a UTF-8 string (UTF-16 code units); NULL → 0. 0 or WV_EPARSE. */
int wv_checksum_java_string_hash(const char *s, int32_t *out);

/* Java ContainerConfig.hashCode(); cc NULL is Java null (0). 0 or WV_EPARSE. */
int wv_checksum_config_hash(const wv_container_config_t *cc, bool layers_null, int32_t *out);

/* True when the containerConfig JSON object has "layers": null (Java null). */
bool wv_checksum_layers_null(const struct json_object *container_config);

#endif
