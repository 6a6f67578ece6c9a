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
 * A failed CHECK returns from the test at once.
 */
#ifndef WV_TEST_RUNNER_H
#define WV_TEST_RUNNER_H

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

#define TEST(name) static void test_##name(void)
#define T(name) {#name, test_##name}

#define FAIL_AT(...)                                          \
  do {                                                        \
    fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);         \
    fprintf(stderr, __VA_ARGS__);                             \
    fputc('\n', stderr);                                      \
    wv_test_failed = 1;                                       \
  } while (0)

#define CHECK(cond)                                           \
  do {                                                        \
    if (!(cond)) {                                            \
      FAIL_AT("CHECK(%s) failed", #cond);                     \
      return;                                                 \
    }                                                         \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
  do {                                                                              \
    long long va_ = (long long)(a), vb_ = (long long)(b);                           \
    if (va_ != vb_) {                                                               \
      FAIL_AT("%s == %s failed: %lld != %lld", #a, #b, va_, vb_);                   \
      return;                                                                       \
    }                                                                               \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                          \
  do {                                                                              \
    const char *sa_ = (a), *sb_ = (b);                                              \
    if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                    \
      FAIL_AT("%s == %s failed: \"%s\" != \"%s\"", #a, #b, sa_ ? sa_ : "(null)",     \
              sb_ ? sb_ : "(null)");                                                \
      return;                                                                       \
    }                                                                               \
  } while (0)

/* Checks that rc == 0 and prints the error name otherwise. */
#define CHECK_OK(expr)                                                              \
  do {                                                                              \
    int rc_ = (expr);                                                               \
    if (rc_ != 0) {                                                                 \
      FAIL_AT("%s returned %d", #expr, rc_);                                        \
      return;                                                                       \
    }                                                                               \
  } while (0)

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
    tests[i].fn();
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

#define WV_TESTS(...)                                                               \
  int wv_test_failed;                                                               \
  static const wv_test_t wv_tests_[] = {__VA_ARGS__};                               \
  int main(int argc, char **argv) {                                                 \
    return wv_test_run(argc, argv, wv_tests_, sizeof wv_tests_ / sizeof wv_tests_[0]); \
  }

#endif
