/*
 * registry/augment.h — the augmentation rewrite of contract §5.4, bytes in,
 * bytes out, no I/O.
 *
 * The proxy resolves a tag upstream and, when the token carries a
 * containerConfig, calls these in this order:
 *
 *   index or list:  wv_augment_index_select()  → child digests to fetch
 *                   for each child: wv_augment_image() (below)
 *                   wv_augment_index_rewrite() → the index the client gets
 *   one manifest:   wv_manifest_info()          → config digest to fetch
 *                   wv_augment_image()          → new config + new manifest
 *
 * wv_augment_image() is wv_augment_config() followed by wv_augment_manifest()
 * after filtering Fusion layers by the image architecture; both are public
 * for callers that need one step.
 *
 * Every rewrite parses the input with json-c (strict, UTF-8 validated, depth
 * capped, whole input consumed), edits the tree in place — json-c objects
 * keep key order, and replacing a key keeps its position — and serialises
 * compact without escaping '/'. Numbers are re-emitted as they were written
 * (json-c keeps the source text of doubles; integers are int64). The result
 * is copied into the caller's arena with its digest computed over exactly
 * those bytes. Output is not byte-identical to Wave's Groovy writer (which
 * escapes non-ASCII); the spec only requires consistency between the bytes,
 * their length and their digest.
 *
 * Threads: no global state; any thread may call these with its own arena.
 * Ownership: everything returned lives in the caller's arena; json-c trees
 * are freed before return. Messages (*msg, may be NULL) are arena strings.
 * Return codes: 0; WV_ETOOBIG past a size cap; WV_EPARSE for malformed JSON
 * or a document without the fields the rewrite needs; WV_EINVAL for a bad
 * containerConfig or (index) no matching platform, which is a 400 to the
 * client; WV_EDIGEST when config bytes do not match the manifest; WV_ENOMEM.
 */
#ifndef WV_AUGMENT_H
#define WV_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/digest.h"
#include "registry/container_config.h"
#include "registry/platform.h"

struct json_object;

/* Caps on what waved accepts from upstream registries. */
#define WV_AUGMENT_MAX_MANIFEST (4u << 20) /* manifests and indexes, bytes */
#define WV_AUGMENT_MAX_CONFIG (8u << 20)   /* image config blobs, bytes */
#define WV_AUGMENT_MAX_DEPTH 32            /* JSON nesting, any document */
/* Rewritten bytes (arena, NUL-terminated, NUL not counted) and their digest. */
typedef struct {
  char *data;
  size_t len;
  char digest[WV_DIGEST_STRLEN];
} wv_augment_out_t;

/* ---- single manifests ------------------------------------------------------ */

typedef struct {
  const char *media_type;    /* body "mediaType", NULL when absent (allowed in OCI) */
  const char *config_digest; /* "sha256:…" */
  int64_t config_size;
  const char *config_media_type; /* NULL when absent */
} wv_manifest_info_t;

/* Reads the config reference of a Docker v2 / OCI manifest (≤ WV_AUGMENT_MAX_MANIFEST). */
int wv_manifest_info(wv_arena_t *a, const char *manifest, size_t len, wv_manifest_info_t *out,
                     const char **msg);

/*
 * Config rewrite: rootfs.diff_ids += tarDigests in order; config.Entrypoint,
 * Cmd, WorkingDir replaced by non-empty request values; config.Env += request
 * env, then WAVE_ENTRY_CHAIN=<original entrypoint> when the original image had
 * one (1-element list → the element; longer list → its compact JSON; string →
 * itself; empty values count as none). A missing or null Env becomes an
 * array; a missing or null config object is created only when needed;
 * history, created, labels etc. are untouched. Validates cc first.
 */
int wv_augment_config(wv_arena_t *a, const char *config, size_t len,
                      const wv_container_config_t *cc, wv_augment_out_t *out, const char **msg);

/*
 * Manifest rewrite (Docker v2 or OCI): appends one
 * {"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":…,"digest":…}
 * per request layer (the Docker type even in OCI manifests, as Wave does),
 * sets config.digest and config.size, keeps everything else.
 */
int wv_augment_manifest(wv_arena_t *a, const char *manifest, size_t len,
                        const char *new_config_digest, int64_t new_config_size,
                        const wv_container_config_t *cc, wv_augment_out_t *out, const char **msg);

/*
 * Augments one platform image: checks that config hashes to the manifest's
 * config.digest (WV_EDIGEST otherwise), filters Fusion layers by the config's
 * "architecture", rewrites the config, then the manifest. *used (may be NULL)
 * receives the filtered config, whose layers the caller registers in the
 * blob cache (contract §5.4 step 4).
 */
int wv_augment_image(wv_arena_t *a, const char *manifest, size_t manifest_len, const char *config,
                     size_t config_len, const wv_container_config_t *cc,
                     wv_augment_out_t *new_manifest, wv_augment_out_t *new_config,
                     wv_container_config_t *used, const char **msg);

/* ---- indexes and manifest lists ------------------------------------------ */

typedef struct {
  const char *digest;     /* child manifest to fetch and augment */
  int64_t size;           /* as declared in the index (-1 when absent) */
  const char *media_type; /* the expected child type */
  wv_platform_t platform; /* as declared, normalised */
} wv_index_entry_t;

typedef struct {
  const char *old_digest; /* digest of the upstream child */
  const char *new_digest; /* digest of its augmented replacement */
  int64_t new_size;
} wv_index_repl_t;

/*
 * Selects the index entries to augment: mediaType equal to the child type of
 * the index (OCI index → OCI manifest, Docker list → Docker v2 manifest), a
 * "platform" object, and a platform matching one of want. index_media_type is
 * the upstream Content-Type; NULL means use the body's "mediaType". Entries
 * are returned in index order without duplicate digests (*entries in the
 * arena). No match: WV_EINVAL with "Cannot find matching platform
 * '<want>' in the image index for '<image>:<tag>'".
 */
int wv_augment_index_select(wv_arena_t *a, const char *index, size_t len,
                            const char *index_media_type, const wv_platform_list_t *want,
                            const char *image, const char *tag, wv_index_entry_t **entries,
                            size_t *n, const char **msg);

/*
 * Rewrites the index: every entry whose digest is a replacement's old_digest
 * gets the new digest and size (in place, key order kept); all other entries
 * (other platforms, attestations) are left as they are. A replacement that
 * matches no entry is WV_EINVAL.
 */
int wv_augment_index_rewrite(wv_arena_t *a, const char *index, size_t len,
                             const wv_index_repl_t *repl, size_t n, wv_augment_out_t *out,
                             const char **msg);

#endif
