/*
 * tests/runner.h — the small test runner every tests/test_<module>.c uses.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_EQ_STR(s, "a"); }
 *   ...
 *   WV_TESTS(T(name), T(other))
 *
 * The binary runs every test, or only those named on the command line
 * (`out/tests/test_siphash paper_vector`), prints one line per test and a
 * closing "N passed, N failed" line, and exits non-zero if any failed.
 * A failed CHECK returns from the test at once and prints what it compared:
 * both values (CHECK_EQ_*), the haystack and the needle (CHECK_HAS,
 * CHECK_LACKS, CHECK_PREFIX), the error's name (CHECK_OK). What a test sets up it hands to
 * TEST_CLEANUP(fn, arg) right away: the runner calls the deferred functions, last first, when the
 * test returns — also after a failed CHECK — so an environment is always closed.
 */
#ifndef WV_TEST_RUNNER_H
#define WV_TEST_RUNNER_H

#include "core/arena.h"
#include "core/err.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const char *name;
  void (*fn)(void);
} wv_test_t;

extern int wv_test_failed;

/* Deferred clean-ups of the running test (TEST_CLEANUP), run last first after it returns. */
#define WV_TEST_MAX_DEFER 64
typedef struct {
  void (*fn)(void *);
  void *arg;
} wv_test_defer_t;
extern wv_test_defer_t wv_test_defers[WV_TEST_MAX_DEFER];
extern int wv_test_ndefer;

/*
 * Calls fn(arg) when the running test returns, whatever its outcome. Past WV_TEST_MAX_DEFER the
 * test fails and fn is never called: cleaning up at once would free what the test still uses.
 */
static inline void wv_test_defer(void (*fn)(void *), void *arg) {
  if (wv_test_ndefer < WV_TEST_MAX_DEFER) {
    wv_test_defers[wv_test_ndefer++] = (wv_test_defer_t){fn, arg};
    return;
  }
  fprintf(stderr, "  more than %d TEST_CLEANUPs in one test\n", WV_TEST_MAX_DEFER);
  wv_test_failed = 1;
}
#define TEST_CLEANUP(fn, arg) wv_test_defer((void (*)(void *))(fn), (arg))

/* An arena (64 MiB cap) freed when the running test returns; NULL when out of memory. */
static inline wv_arena_t *wv_test_arena(void) {
  wv_arena_t *a = wv_arena_new(0);
  if (a)
    TEST_CLEANUP(wv_arena_free, a);
  return a;
}

/* tests/fixtures/<dir>/<name> (found beside this header), in a; NULL when out of memory. */
static inline const char *wv_test_fixture(wv_arena_t *a, const char *dir, const char *name) {
  const char *here = __FILE__, *slash = strrchr(here, '/');
  int len = slash ? (int)(slash - here) : 1;
  return wv_arena_sprintf(a, "%.*s/fixtures/%s/%s", len, slash ? here : ".", dir, name);
}

/* The file at path (its first max - 1 bytes), NUL-terminated in a, its length in *n (when n is
 * not NULL); NULL when it cannot be read. */
static inline char *wv_test_read_file(wv_arena_t *a, const char *path, size_t max, size_t *n) {
  FILE *f = path ? fopen(path, "rb") : NULL;
  char *buf = f ? wv_arena_alloc(a, max) : NULL;
  size_t got = buf ? fread(buf, 1, max - 1, f) : 0;
  if (f)
    fclose(f);
  if (!buf)
    return NULL;
  buf[got] = '\0';
  if (n)
    *n = got;
  return buf;
}

#define TEST(name) static void test_##name(void)
#define T(name)                                                                                    \
  { #name, test_##name }

#define FAIL_AT(...)                                                                               \
  do {                                                                                             \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                              \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    wv_test_failed = 1;                                                                            \
  } while (0)

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      FAIL_AT("CHECK(%s) failed", #cond);                                                          \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
  do {                                                                                             \
    long long va_ = (long long)(a), vb_ = (long long)(b);                                          \
    if (va_ != vb_) {                                                                              \
      FAIL_AT("%s == %s failed: %lld != %lld", #a, #b, va_, vb_);                                  \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
  do {                                                                                             \
    const char *sa_ = (a), *sb_ = (b);                                                             \
    if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                                   \
      FAIL_AT("%s == %s failed: \"%s\" != \"%s\"", #a, #b, sa_ ? sa_ : "(null)",                   \
              sb_ ? sb_ : "(null)");                                                               \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* Checks that rc == 0 and prints the error's name (wv_strerror) otherwise. */
#define CHECK_OK(expr)                                                                             \
  do {                                                                                             \
    int rc_ = (expr);                                                                              \
    if (rc_ != 0) {                                                                                \
      FAIL_AT("%s returned %d (%s)", #expr, rc_, wv_strerror(rc_));                                \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* Checks that the string haystack contains needle; prints both otherwise. */
#define CHECK_HAS(haystack, needle)                                                                \
  do {                                                                                             \
    const char *h_ = (haystack), *n_ = (needle);                                                   \
    if (!h_ || !n_ || !strstr(h_, n_)) {                                                           \
      FAIL_AT("CHECK_HAS(%s, %s) failed:\n    \"%.2000s\"\n    lacks \"%s\"", #haystack, #needle,  \
              h_ ? h_ : "(null)", n_ ? n_ : "(null)");                                             \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* Checks that the string haystack does not contain needle; prints both otherwise. */
#define CHECK_LACKS(haystack, needle)                                                              \
  do {                                                                                             \
    const char *h_ = (haystack), *n_ = (needle);                                                   \
    if (!h_ || !n_ || strstr(h_, n_)) {                                                            \
      FAIL_AT("CHECK_LACKS(%s, %s) failed:\n    \"%.2000s\"\n    holds \"%s\"", #haystack,         \
              #needle, h_ ? h_ : "(null)", n_ ? n_ : "(null)");                                    \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* Checks that the string s starts with prefix; prints both otherwise. */
#define CHECK_PREFIX(s, prefix)                                                                    \
  do {                                                                                             \
    const char *s_ = (s), *p_ = (prefix);                                                          \
    if (!s_ || !p_ || strncmp(s_, p_, strlen(p_)) != 0) {                                          \
      FAIL_AT("CHECK_PREFIX(%s, %s) failed:\n    \"%.2000s\"\n    does not start with \"%s\"", #s, \
              #prefix, s_ ? s_ : "(null)", p_ ? p_ : "(null)");                                    \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* How much slower than a plain build this one runs: WAVED_TEST_SLOWDOWN, which tests/CMakeLists.txt
 * sets for the sanitizer builds (docs/testing.md "Sanitizer slowdown"); 1 when unset, at most 50.
 * A check of a duration scales its bound by it (WV_TEST_MS) instead of being skipped, so it still
 * fails when the code is slower than the sanitizer explains. */
static inline long wv_test_slowdown(void) {
  const char *s = getenv("WAVED_TEST_SLOWDOWN");
  long k = s ? strtol(s, NULL, 10) : 1;
  return k < 1 ? 1 : k > 50 ? 50 : k;
}
#define WV_TEST_MS(ms) ((ms)*wv_test_slowdown())

static inline int wv_test_run(int argc, char **argv, const wv_test_t *tests, size_t n) {
  int passed = 0, failed = 0, matched = 0;
  for (size_t i = 0; i < n; i++) {
    int want = argc < 2;
    for (int a = 1; a < argc && !want; a++)
      want = strcmp(argv[a], tests[i].name) == 0;
    if (!want)
      continue;
    matched++;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wv_test_failed = 0;
    wv_test_ndefer = 0;
    tests[i].fn();
    while (wv_test_ndefer > 0) {
      wv_test_defer_t d = wv_test_defers[--wv_test_ndefer];
      d.fn(d.arg);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("%s %s (%.1f ms)\n", wv_test_failed ? "FAIL" : "ok  ", tests[i].name, ms);
    fflush(stdout);
    if (wv_test_failed)
      failed++;
    else
      passed++;
  }
  if (argc >= 2 && matched == 0) {
    fprintf(stderr, "no test matches the names given\n");
    return 2;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

/* The runner's state, defined once per test binary (by WV_TESTS, or by hand before a main of its
 * own). */
#define WV_TEST_GLOBALS                                                                            \
  int wv_test_failed;                                                                              \
  wv_test_defer_t wv_test_defers[WV_TEST_MAX_DEFER];                                               \
  int wv_test_ndefer

#define WV_TESTS(...)                                                                              \
  WV_TEST_GLOBALS;                                                                                 \
  static const wv_test_t wv_tests_[] = {__VA_ARGS__};                                              \
  int main(int argc, char **argv) {                                                                \
    return wv_test_run(argc, argv, wv_tests_, sizeof wv_tests_ / sizeof wv_tests_[0]);             \
  }

#endif
