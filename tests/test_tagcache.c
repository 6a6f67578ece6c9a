/* Unit tests for registry/tagcache: keys by access, freshness, eviction by slot. */
#include "registry/tagcache.h"
#include "tests/runner.h"

#include <string.h>
#include <time.h>

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

/* A fresh cache for one test, freed when it returns. */
static wv_tagcache_t *fresh(void) {
  wv_tagcache_t *c = NULL;
  if (wv_tagcache_new(&c) == 0)
    TEST_CLEANUP(wv_tagcache_free, c);
  return c;
}

TEST(remembers_within_the_window) {
  wv_tagcache_t *c = fresh();
  CHECK(c);
  char k[WV_TAGCACHE_KEY_MAX + 1], d[80];
  CHECK(wv_tagcache_key(k, sizeof k, "reg.test", "lib/x", "latest", true) == 0);
  CHECK(!wv_tagcache_get(c, k, d, sizeof d));
  wv_tagcache_put(c, k, D1, 60000);
  CHECK(wv_tagcache_get(c, k, d, sizeof d));
  CHECK_EQ_STR(d, D1);
  wv_tagcache_put(c, k, D2, 60000); /* the tag moved: the newer answer wins */
  CHECK(wv_tagcache_get(c, k, d, sizeof d));
  CHECK_EQ_STR(d, D2);
}

TEST(credentials_and_names_are_part_of_the_key) {
  wv_tagcache_t *c = fresh();
  CHECK(c);
  char with[WV_TAGCACHE_KEY_MAX + 1], without[WV_TAGCACHE_KEY_MAX + 1],
      other[WV_TAGCACHE_KEY_MAX + 1], d[80];
  CHECK(wv_tagcache_key(with, sizeof with, "reg.test", "lib/x", "1", true) == 0);
  CHECK(wv_tagcache_key(without, sizeof without, "reg.test", "lib/x", "1", false) == 0);
  CHECK(wv_tagcache_key(other, sizeof other, "reg.test", "lib/x", "2", true) == 0);
  wv_tagcache_put(c, with, D1, 60000);
  /* What the configured credentials resolved never answers a caller who may not use them. */
  CHECK(!wv_tagcache_get(c, without, d, sizeof d));
  CHECK(!wv_tagcache_get(c, other, d, sizeof d));
}

TEST(expires_and_refuses_bad_input) {
  wv_tagcache_t *c = fresh();
  CHECK(c);
  char k[WV_TAGCACHE_KEY_MAX + 1], d[80];
  CHECK(wv_tagcache_key(k, sizeof k, "reg.test", "lib/x", "old", true) == 0);
  wv_tagcache_put(c, k, D1, 1);
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  CHECK(!wv_tagcache_get(c, k, d, sizeof d));
  wv_tagcache_put(c, k, D1, 0); /* tag-duration 0: nothing kept */
  CHECK(!wv_tagcache_get(c, k, d, sizeof d));
  wv_tagcache_put(c, k, "sha256:short", 60000); /* not a digest */
  CHECK(!wv_tagcache_get(c, k, d, sizeof d));
  char small[8];
  wv_tagcache_put(c, k, D1, 60000);
  CHECK(!wv_tagcache_get(c, k, small, sizeof small)); /* never truncated */
  char longname[600];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  CHECK(wv_tagcache_key(k, sizeof k, "reg.test", longname, "1", true) != 0);
}

WV_TESTS(T(remembers_within_the_window), T(credentials_and_names_are_part_of_the_key),
         T(expires_and_refuses_bad_input))
