/*
 * registry/tagcache.c — tag → digest resolutions for a short while (see
 * tagcache.h).
 */
#include "registry/tagcache.h"
#include "core/siphash.h"
#include "core/digest.h"
#include "core/timefmt.h"
#include "core/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char key[WV_TAGCACHE_KEY_MAX + 1];
  char digest[WV_DIGEST_STRLEN];
  int64_t until_ms; /* monotonic; 0 = empty */
} slot_t;

struct wv_tagcache {
  pthread_mutex_t mu; /* leaf: the slots */
  slot_t slots[WV_TAGCACHE_SLOTS];
};

int wv_tagcache_new(wv_tagcache_t **out) {
  wv_tagcache_t *c = calloc(1, sizeof *c);
  if (!c)
    return WV_ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

void wv_tagcache_free(wv_tagcache_t *c) {
  if (!c)
    return;
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static slot_t *slot_of(wv_tagcache_t *c, const char *key) {
  return &c->slots[wv_str_hash(key) % WV_TAGCACHE_SLOTS];
}

int wv_tagcache_key(char *out, size_t cap, const char *registry, const char *image, const char *tag,
                    bool creds) {
  int n = snprintf(out, cap, "%s/%s:%s%s", registry, image, tag, creds ? "\x1c+" : "\x1c-");
  return n > 0 && (size_t)n < cap && n <= WV_TAGCACHE_KEY_MAX ? 0 : -1;
}

void wv_tagcache_put(wv_tagcache_t *c, const char *key, const char *digest, int64_t ttl_ms) {
  if (ttl_ms <= 0 || strlen(key) > WV_TAGCACHE_KEY_MAX || strlen(digest) >= WV_DIGEST_STRLEN ||
      !wv_digest_valid(digest))
    return;
  slot_t *s = slot_of(c, key);
  pthread_mutex_lock(&c->mu);
  snprintf(s->key, sizeof s->key, "%s", key);
  snprintf(s->digest, sizeof s->digest, "%s", digest);
  s->until_ms = wv_mono_ms() + ttl_ms;
  pthread_mutex_unlock(&c->mu);
}

bool wv_tagcache_get(wv_tagcache_t *c, const char *key, char *out, size_t cap) {
  slot_t *s = slot_of(c, key);
  bool hit = false;
  pthread_mutex_lock(&c->mu);
  if (s->until_ms && wv_mono_ms() < s->until_ms && strcmp(s->key, key) == 0 &&
      strlen(s->digest) < cap) {
    memcpy(out, s->digest, strlen(s->digest) + 1);
    hit = true;
  }
  pthread_mutex_unlock(&c->mu);
  return hit;
}
