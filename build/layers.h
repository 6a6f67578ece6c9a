/*
 * build/layers.h — what the front door does with containerConfig layers and
 * containerIncludes before it mints a token:
 *
 *   - data: layers are verified (Wave does not): the base64 is decoded
 *     strictly, its size must equal gzipSize and its SHA-256 gzipDigest, both
 *     checked before anything is inflated; it is then gunzipped (streaming,
 *     under the budget of wv_layers_inflate_budget) and the tar must hash to
 *     tarDigest. The gzip bytes go to the blob store under gzipDigest,
 *     so the token record only carries "cas:<gzipDigest>".
 *   - containerIncludes (contract §6.6) are resolved upstream for the request platform
 *     and become docker://<registry>/v2/<path>/blobs/<digest> layers.
 *   - the requested image is checked to exist upstream (§3.2 step 9).
 *
 * Nothing is held whole in memory beyond the request body itself: decoding,
 * hashing, inflating and writing to the blob store run in fixed chunks.
 * Messages (*msg) are arena strings naming the layer index and the field.
 * Thread rules: no shared state beyond the thread-safe services given (cas,
 * upstream, the verified-layer memo and the tag cache of wv_app_t).
 */
#ifndef WV_BUILD_LAYERS_H
#define WV_BUILD_LAYERS_H

#include "core/app.h"
#include "core/arena.h"
#include "core/base64.h"
#include "core/config.h"
#include "registry/container_config.h"
#include "registry/platform.h"
#include "registry/ref.h"

#include <stddef.h>
#include <stdint.h>

struct wv_cas;

#define WV_LAYERS_MAX_TAR (1ull << 30) /* default cap on uncompressed bytes of one data: layer */
#define WV_LAYERS_MAX_RATIO 100        /* default inflated/compressed budget ratio */
#define WV_LAYERS_BUDGET_FLOOR                                                                     \
  (1ull << 20) /* added to every budget: tiny layers of empty files                                \
                */
#define WV_LAYERS_DATA_PREFIX "data:"
#define WV_LAYERS_DOCKER_PREFIX "docker://"

/*
 * The most bytes a data: layer of gz_len compressed bytes may inflate to:
 * wave.build.data-layer.max-inflate-ratio x gz_len + 1 MiB, at most
 * wave.build.data-layer.max-inflated-size (cfg NULL: the defaults above).
 */
uint64_t wv_layers_inflate_budget(const wv_config_t *cfg, uint64_t gz_len);

/*
 * The data: layers verified lately, so the same small layer sent with
 * thousands of requests is inflated once (a fixed table under a leaf lock).
 * One per process, created by the composition root (core/main.c) and hung
 * on wv_app_t.layer_memo. new: 0 or WV_ENOMEM; free: NULL is a no-op.
 */
typedef struct wv_layers_memo wv_layers_memo_t;
int wv_layers_memo_new(wv_layers_memo_t **out);
void wv_layers_memo_free(wv_layers_memo_t *m);

/*
 * Verifies data: layer number idx (location starts with "data:") and, when
 * cas is not NULL, commits its gzip bytes to the blob store. memo (NULL =
 * none) remembers what was verified. cfg (NULL = defaults) gives the inflate
 * budget. Returns 0, WV_EINVAL (400, with the message), WV_EIO / WV_ENOMEM.
 */
int wv_layers_verify_data(wv_arena_t *a, struct wv_cas *cas, wv_layers_memo_t *memo,
                          const wv_config_t *cfg, size_t idx, const wv_container_layer_t *l,
                          const char **msg);

/*
 * Checks every layer location of cc (data:, http://, https:// or docker://;
 * anything else is refused, so a client cannot name a cas: blob) and
 * verifies/stores each data: layer. Returns as wv_layers_verify_data.
 */
int wv_layers_check(wv_arena_t *a, struct wv_cas *cas, wv_layers_memo_t *memo,
                    const wv_config_t *cfg, const wv_container_config_t *cc, const char **msg);

/*
 * wv_layers_check for a thread that must not block (the IO loop): a data: layer not verified
 * before, or whose blob the CAS lacks, is WV_DEFER (nothing inflated or written) instead of
 * being verified and stored. Every other outcome as wv_layers_check; the layer's gzip bytes are
 * still hashed against its gzipDigest.
 */
int wv_layers_check_known(wv_arena_t *a, struct wv_cas *cas, wv_layers_memo_t *memo,
                          const wv_config_t *cfg, const wv_container_config_t *cc,
                          const char **msg);

/*
 * Resolves one include (an image name) for platform: manifest (through an
 * index when there is one), config rootfs.diff_ids, and appends one layer per
 * manifest layer to *layers / *n (arena array, grown), acting for who
 * through app->upstream; the config blob comes through wv_fetch_follow()
 * (registry/fetch.h: Wave's redirects, wave.httpclient's timeouts and retries).
 * Returns 0, WV_EINVAL (400: bad name, unusable image, upstream refusal),
 * WV_ENOTFOUND (404: the image does not exist), WV_EDENIED (403: waved's
 * credential or outbound policy refused), WV_EUPSTREAM (502: the registry
 * could not be reached), WV_ENOMEM.
 */
int wv_layers_include_resolve(wv_arena_t *a, const wv_app_t *app, const char *who, const char *name,
                              const wv_platform_list_t *plat, wv_container_layer_t **layers,
                              size_t *n, const char **msg);

/*
 * HEAD of the image's manifest upstream (app->upstream), on behalf of who (an account, NULL =
 * anonymous; registry/upstream.h). Returns 0 when it exists; WV_EINVAL with
 * "Container image '<image>' does not exist or access is not authorized"
 * when the registry says no (401/403/404); WV_EDENIED (403) when the
 * registry's credentials may not act for who and anonymous access was
 * refused; WV_EUPSTREAM (502 "Unable to reach registry '<host>' - ...")
 * when the registry could not be asked (the transport error is logged).
 * tags (app->tags; NULL = none) and tag_ttl_ms > 0: an answer in the tag
 * cache (registry/tagcache.h) younger than that is the answer (no HEAD), and a HEAD's digest is
 * remembered there for the first pull's resolution.
 */
int wv_layers_image_check_exists(wv_arena_t *a, const wv_app_t *app, struct wv_tagcache *tags,
                                 const char *who, const wv_ref_t *ref, int64_t tag_ttl_ms,
                                 const char **msg);

/*
 * True when wv_layers_image_check_exists would answer 0 from the tag cache, without a round
 * trip (tags and tag_ttl_ms as there).
 */
bool wv_layers_image_known(const wv_app_t *app, struct wv_tagcache *tags, const char *who,
                           const wv_ref_t *ref, int64_t tag_ttl_ms);

/*
 * The config Entrypoint of image name for platform (freeze's WAVE_ENTRY_CHAIN,
 * contract §6.3): *entry is an arena vector of *n strings, NULL/0 when the image
 * has none. Errors as wv_layers_include_resolve.
 */
int wv_layers_image_entrypoint(wv_arena_t *a, const wv_app_t *app, const char *who,
                               const char *name, const wv_platform_list_t *plat,
                               const char ***entry, size_t *n, const char **msg);

/* The image config JSON of image name for platform (Singularity builds); errors as above. */
int wv_layers_image_config_json(wv_arena_t *a, const wv_app_t *app, const char *who,
                                const char *name, const wv_platform_list_t *plat,
                                const char **config, const char **msg);

#endif
