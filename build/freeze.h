/*
 * build/freeze.h — the freeze rewrite of contract §6.3 (build/templates_freeze.c):
 * the container file a freeze request builds, where a container file's entry
 * chain comes from, and the names of the layer archives written into the build
 * context (build/freeze.c, through build_int.h, writes them). Follows Wave's
 * FreezeServiceImpl and ContainerInspectService (the container file is hashed
 * into build ids). Everything returned lives in the caller's arena. Pure, no
 * I/O, any thread.
 */
#ifndef WV_BUILD_FREEZE_H
#define WV_BUILD_FREEZE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "registry/container_config.h"

typedef struct {
  const char *container_image;         /* set when the request has no container file */
  const char *container_file;          /* decoded text, or NULL */
  const wv_container_config_t *config; /* NULL or empty: nothing to add */
  /* The entrypoint to chain (WAVE_ENTRY_CHAIN), resolved by the caller, NULL/0 for none. */
  const char *const *entry_chain;
  size_t n_entry_chain;
  bool singularity;
} wv_freeze_input_t;

/*
 * Rewrites a freeze request into the container file to build: for an image,
 * "# wave generated container file\nFROM <image>\n" (Singularity: BootStrap/
 * From); for a file with a config, the file + "\n# wave generated container
 * file\n"; then ENV WAVE_ENTRY_CHAIN and the config (ADD layer-<hex>.tar.gz
 * /, WORKDIR, ENV, ENTRYPOINT, CMD; Singularity %files/%environment/
 * %runscript). *out = NULL when the file stays as it is (a file without a
 * config). 0, WV_EINVAL (neither image nor file) or WV_ENOMEM.
 */
int wv_freeze_container_file(wv_arena_t *a, const wv_freeze_input_t *in, const char **out);

/*
 * What decides the entry chain of a container file (ContainerInspectService):
 * scanning from the bottom, the last `ENTRYPOINT` after the last `FROM` gives
 * *entry (arena vector, *n items), else *from_image names the last FROM image
 * whose config Entrypoint the caller must inspect. Both NULL when neither.
 */
int wv_freeze_entrypoint_source(wv_arena_t *a, const char *container_file, const char ***entry,
                                size_t *n, const char **from_image);

/* Layer archive names of contract §6.1 step 9: "layer-<hex>.tar.gz" and the Singularity dir
 * "layer-<hex>".
 */
const char *wv_freeze_layer_name(wv_arena_t *a, const wv_container_layer_t *l);
const char *wv_freeze_layer_dir(wv_arena_t *a, const wv_container_layer_t *l);

#endif
