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
 * memory never grows; its mutex is a leaf lock. Any thread.
 */
#ifndef WV_TAGCACHE_H
#define WV_TAGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_TAGCACHE_SLOTS 4096
#define WV_TAGCACHE_KEY_MAX 400 /* longer keys are never remembered */

/* The key of registry/image:tag for a caller who may (creds) or may not use the credentials. */
int wv_tagcache_key(char *out, size_t cap, const char *registry, const char *image, const char *tag,
                    bool creds);
/* Remembers that key named digest, for ttl_ms (<= 0: nothing is kept). */
void wv_tagcache_put(const char *key, const char *digest, int64_t ttl_ms);
/* true, with the digest (out holds >= 72 bytes), when key was resolved within its window. */
bool wv_tagcache_get(const char *key, char *out, size_t cap);
/* Forgets everything (tests). */
void wv_tagcache_clear(void);

#endif
