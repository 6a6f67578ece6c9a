/*
 * registry/tagcache.c — tag → digest resolutions for a short while (see
 * tagcache.h).
 */
#include "registry/tagcache.h"
#include "core/siphash.h"
#include "core/digest.h"
#include "core/timefmt.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char key[WV_TAGCACHE_KEY_MAX + 1];
  char digest[WV_DIGEST_STRLEN];
  int64_t until_ms; /* monotonic; 0 = empty */
} slot_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t slots[WV_TAGCACHE_SLOTS];

static slot_t *slot_of(const char *key) { return &slots[wv_str_hash(key) % WV_TAGCACHE_SLOTS]; }

int wv_tagcache_key(char *out, size_t cap, const char *registry, const char *image, const char *tag,
                    bool creds) {
  int n = snprintf(out, cap, "%s/%s:%s%s", registry, image, tag, creds ? "\x1c+" : "\x1c-");
  return n > 0 && (size_t)n < cap && n <= WV_TAGCACHE_KEY_MAX ? 0 : -1;
}

void wv_tagcache_put(const char *key, const char *digest, int64_t ttl_ms) {
  if (ttl_ms <= 0 || strlen(key) > WV_TAGCACHE_KEY_MAX || strlen(digest) >= WV_DIGEST_STRLEN ||
      !wv_digest_valid(digest))
    return;
  slot_t *s = slot_of(key);
  pthread_mutex_lock(&mu);
  snprintf(s->key, sizeof s->key, "%s", key);
  snprintf(s->digest, sizeof s->digest, "%s", digest);
  s->until_ms = wv_mono_ms() + ttl_ms;
  pthread_mutex_unlock(&mu);
}

bool wv_tagcache_get(const char *key, char *out, size_t cap) {
  slot_t *s = slot_of(key);
  bool hit = false;
  pthread_mutex_lock(&mu);
  if (s->until_ms && wv_mono_ms() < s->until_ms && strcmp(s->key, key) == 0 &&
      strlen(s->digest) < cap) {
    memcpy(out, s->digest, strlen(s->digest) + 1);
    hit = true;
  }
  pthread_mutex_unlock(&mu);
  return hit;
}

void wv_tagcache_clear(void) {
  pthread_mutex_lock(&mu);
  memset(slots, 0, sizeof slots);
  pthread_mutex_unlock(&mu);
}
