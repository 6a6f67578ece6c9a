/* Unit tests for core/err, core/arena and core/buf. */
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "tests/runner.h"

TEST(err_names) {
  CHECK_EQ_STR(wv_errname(WV_ENOTFOUND), "NOTFOUND");
  CHECK_EQ_STR(wv_strerror(WV_ETOOBIG), "size limit exceeded");
  CHECK_EQ_STR(wv_strerror(12345), "unknown error");
  CHECK_EQ_STR(wv_errname(0), "OK");
}

static int cleanup_order[4];
static int cleanup_n;
static void record_cleanup(void *arg) { cleanup_order[cleanup_n++] = (int)(long)arg; }

TEST(arena_alloc_and_cleanup) {
  wv_arena_t *a = wv_arena_new(1 << 20);
  CHECK(a);
  char *s = wv_arena_sprintf(a, "%s-%d", "x", 42);
  CHECK_EQ_STR(s, "x-42");
  /* Large allocations get their own block and stay aligned. */
  void *big = wv_arena_alloc(a, 100000);
  CHECK(big);
  CHECK_EQ_INT(((uintptr_t)big % 16), 0);
  cleanup_n = 0;
  CHECK_OK(wv_arena_on_cleanup(a, record_cleanup, (void *)1L));
  CHECK_OK(wv_arena_on_cleanup(a, record_cleanup, (void *)2L));
  wv_arena_reset(a);
  CHECK_EQ_INT(cleanup_n, 2);
  CHECK_EQ_INT(cleanup_order[0], 2); /* last registered runs first */
  CHECK_EQ_INT(wv_arena_used(a), 0);
  wv_arena_free(a);
}

/* A large allocation does not end the current block nor size the next one: small
 * allocations go on in place, and reset keeps only the first block. */
TEST(arena_large_beside_chain) {
  wv_arena_t *a = wv_arena_new(0);
  CHECK(a);
  TEST_CLEANUP(wv_arena_free, a);
  for (int round = 0; round < 2; round++) {
    char *p1 = wv_arena_alloc(a, 16);
    CHECK(p1);
    unsigned char *big = wv_arena_alloc(a, 64 * 1024 + 100);
    CHECK(big);
    CHECK_EQ_INT(((uintptr_t)big % 16), 0);
    memset(big, 0xab, 64 * 1024 + 100); /* all of it is usable */
    char *p2 = wv_arena_alloc(a, 16);
    CHECK(p2 == p1 + 16);                      /* same block, right after p1 */
    CHECK(wv_arena_alloc(a, 3 * 1024 * 1024)); /* above the chain's largest block */
    char *p3 = wv_arena_alloc(a, 16);
    CHECK(p3 == p2 + 16);
    CHECK_EQ_INT(wv_arena_used(a), 16 * 3 + 64 * 1024 + 112 + 3 * 1024 * 1024);
    /* Past the first block, the chain still grows geometrically. */
    for (int i = 0; i < 100; i++)
      CHECK(wv_arena_alloc(a, 1000));
    wv_arena_reset(a);
    CHECK_EQ_INT(wv_arena_used(a), 0);
    CHECK(wv_arena_alloc(a, 16) == p1); /* the first block, reused */
    wv_arena_reset(a);
  }
}

TEST(arena_cap) {
  wv_arena_t *a = wv_arena_new(1000);
  CHECK(wv_arena_alloc(a, 900));
  CHECK(wv_arena_alloc(a, 200) == NULL);
  CHECK(wv_arena_alloc(a, (size_t)-1) == NULL);
  wv_arena_free(a);
}

TEST(buf_cap) {
  wv_buf_t b;
  wv_buf_init(&b, 10);
  CHECK_OK(wv_buf_puts(&b, "hello"));
  CHECK_OK(wv_buf_printf(&b, "%d", 12345));
  CHECK_EQ_INT(b.len, 10);
  CHECK_EQ_INT(wv_buf_putc(&b, 'x'), WV_ETOOBIG);
  CHECK_EQ_STR(b.data, "hello12345"); /* unchanged by the failed append */
  wv_buf_consume(&b, 5);
  CHECK_EQ_STR(b.data, "12345");
  size_t len;
  char *p = wv_buf_detach(&b, &len);
  CHECK(p);
  CHECK_EQ_INT(len, 5);
  free(p);
  CHECK(b.data == NULL);
  wv_buf_free(&b);
}

WV_TESTS(T(err_names), T(arena_alloc_and_cleanup), T(arena_large_beside_chain), T(arena_cap),
         T(buf_cap))
