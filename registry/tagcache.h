/*
 * registry/tagcache.h — upstream tag → digest resolutions, remembered for
 * wave.storage.cache.tag-duration (docs/proxy.md, "Cold pulls").
 *
 * A tag is the one mutable name in a pull; a digest never changes. New tokens
 * of one image (a pipeline asks for thousands) would each ask the upstream
 * what the tag names; within the window they take the answer another pull
 * got. The key names the registry, the repository, the tag and whether the
 * configured credentials were used, so an answer got with them never serves
 * a caller who may not use them.
 *
 * A fixed table (direct-mapped: a new key evicts the one in its slot), so its
 * memory never grows; its mutex is a leaf lock. Any thread. One per process,
 * created by the composition root (core/main.c) and hung on wv_app_t.tags.
 */
#ifndef WV_TAGCACHE_H
#define WV_TAGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_TAGCACHE_SLOTS 4096
#define WV_TAGCACHE_KEY_MAX 400 /* longer keys are never remembered */

typedef struct wv_tagcache wv_tagcache_t;

/* An empty cache: 0 or WV_ENOMEM. free: NULL is a no-op. */
int wv_tagcache_new(wv_tagcache_t **out);
void wv_tagcache_free(wv_tagcache_t *c);

/* The key of registry/image:tag for a caller who may (creds) or may not use the credentials. */
int wv_tagcache_key(char *out, size_t cap, const char *registry, const char *image, const char *tag,
                    bool creds);
/* Remembers that key named digest, for ttl_ms (<= 0: nothing is kept). */
void wv_tagcache_put(wv_tagcache_t *c, const char *key, const char *digest, int64_t ttl_ms);
/* true, with the digest (out holds >= 72 bytes), when key was resolved within its window. */
bool wv_tagcache_get(wv_tagcache_t *c, const char *key, char *out, size_t cap);

#endif
