/*
 * build/naming.h — build target names and ids (contract §4.5, §4.6).
 *
 * wv_naming_target_image() is Wave's makeTargetImage: "<repo>:<id>", or a
 * tag / repository suffix made of the tool names of the conda YAML. The
 * tool list follows ContainerHelper.guessCondaRecipeName: a top-level
 * `name:` is the single tool; else each `dependencies` entry (a `pip:`
 * sub-list becomes `pip:<pkg>` entries) loses a leading `pip:`, http(s)
 * entries are skipped, a `channel::` prefix is dropped, and the entry is
 * split on '=', '>' and '<' into name and version. When anything about the
 * YAML is unexpected (not a mapping, a dependency that is not a string, no
 * tools left) Wave gives up on names and so do we: the tag is the id.
 *
 * Everything returned is allocated in the caller's arena. Pure, any thread.
 */
#ifndef WV_BUILD_NAMING_H
#define WV_BUILD_NAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

typedef enum {
  WV_NAMING_DEFAULT = 0, /* nameStrategy absent or null: tagPrefix */
  WV_NAMING_NONE,
  WV_NAMING_TAG_PREFIX,
  WV_NAMING_IMAGE_SUFFIX,
} wv_naming_strategy_t;

#define WV_NAMING_MAX_TOOLS 5  /* more become the first 4 + "_pruned" */
#define WV_NAMING_MAX_TAG 80   /* normalised tag part */
#define WV_NAMING_MAX_NAME 255 /* normalised repository suffix */

/* "none", "tagPrefix", "imageSuffix"; NULL → WV_NAMING_DEFAULT. Else WV_EINVAL with *msg. */
int wv_naming_strategy_parse(wv_arena_t *a, const char *s, wv_naming_strategy_t *out,
                             const char **msg);

/* The conda tools: names[i] with versions[i] (NULL when none), in order, de-duplicated. */
typedef struct {
  const char **names;
  const char **versions;
  size_t n;
  /* Distinct versions in order of appearance, NULL included (Wave's LinkedHashSet). */
  const char **distinct_versions;
  size_t n_distinct_versions;
} wv_naming_tools_t;

/*
 * Derives the tools from conda YAML text. split=false gives names already
 * joined as "name-version" (tagPrefix); split=true keeps names and versions
 * apart (imageSuffix). Returns 0 with out->n == 0 when no name can be
 * derived (never an error for bad YAML), or WV_ENOMEM.
 */
int wv_naming_tools(wv_arena_t *a, const char *conda_yaml, bool split, wv_naming_tools_t *out);

/*
 * makeTargetImage(format, repo, id, condaFile, strategy): "<repo>:<tag>",
 * with "oras://" in front for Singularity. conda_yaml may be NULL. Returns
 * 0, WV_EINVAL (empty repo or id) or WV_ENOMEM.
 */
int wv_naming_target_image(wv_arena_t *a, bool singularity, const char *repo, const char *id,
                           const char *conda_yaml, wv_naming_strategy_t strategy, const char **out);

/* Wave's normaliseTag (max 80) and normaliseName (lower case, '/' allowed, max 255); NULL if empty.
 */
const char *wv_naming_normalise_tag(wv_arena_t *a, const char *s);
const char *wv_naming_normalise_name(wv_arena_t *a, const char *s);

/*
 * The build repository (contract §4.5 "Repository selection"): buildRepository if
 * given, else the public repo for freeze when one is configured, else the
 * default build repo; then Wave's targetRepo rules when it lies under the
 * public repo (reserved path segments ⇒ WV_EINVAL "Use of repository '<repo>'
 * is not allowed"; a bare public host gets "/library" for strategy
 * default/imageSuffix, "/library/build" otherwise). public_repo and reserved
 * may be NULL. WV_EINVAL "Missing build repository attribute" when nothing
 * is configured.
 */
int wv_naming_build_repo(wv_arena_t *a, const char *build_repository, bool freeze,
                         const char *default_repo, const char *public_repo,
                         const char *const *reserved, size_t n_reserved,
                         wv_naming_strategy_t strategy, const char **out, const char **msg);

/* The strategy actually used: imageSuffix for a default strategy under the public repo. */
wv_naming_strategy_t wv_naming_effective_strategy(wv_naming_strategy_t s, const char *repo,
                                                  const char *public_repo);

/* Ids of contract §4.6. */
const char *wv_naming_build_id(wv_arena_t *a, const char *container_id,
                               unsigned long n);                                /* bd-<id>_<n> */
const char *wv_naming_dry_run_id(wv_arena_t *a, const char *container_id);      /* <id>_0 */
const char *wv_naming_multi_parent_id(wv_arena_t *a, const char *container_id); /* bd-<id>_0 */
/* Job / container name: the id with '_' → '-'. */
const char *wv_naming_job_name(wv_arena_t *a, const char *id);

#endif
