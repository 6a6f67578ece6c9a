/*
 * bench/test_hist.c — the latency histogram's quantiles against exact ones.
 * Run all: test_bench_hist; one: test_bench_hist NAME.
 */
#include "hist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                        \
      fails++;                                                                                     \
    }                                                                                              \
  } while (0)

static pl_hist_t h, g;

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Exact values are reported within 1/64 above, never below. */
static void test_quantiles_within_bucket(void) {
  enum { N = 100000 };
  static uint64_t v[N];
  uint64_t s = 88172645463325252ull;
  pl_hist_init(&h);
  for (int i = 0; i < N; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v[i] = 1 + s % (1u << (s % 24)); /* spread over many powers of two */
    pl_hist_record(&h, v[i]);
  }
  qsort(v, N, sizeof *v, cmp_u64);
  const double qs[] = {0.001, 0.5, 0.9, 0.99, 0.999, 1.0};
  for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
    size_t k = (size_t)(qs[i] * N + 0.999999) - 1;
    uint64_t got = pl_hist_quantile(&h, qs[i]), want = v[k];
    CHECK(got >= want);
    CHECK(got <= want + want / 64 + 1);
  }
  CHECK(h.total == N);
  CHECK(pl_hist_quantile(&h, 1.0) == v[N - 1]);
}

static void test_small_values_exact(void) {
  pl_hist_init(&h);
  for (uint64_t i = 0; i < 128; i++)
    pl_hist_record(&h, i);
  CHECK(pl_hist_quantile(&h, 0.5) == 63);
  CHECK(pl_hist_quantile(&h, 1.0) == 127);
}

static void test_empty_cap_merge(void) {
  pl_hist_init(&h);
  pl_hist_init(&g);
  CHECK(pl_hist_quantile(&h, 0.99) == 0);
  pl_hist_record(&h, (uint64_t)1 << 40); /* clamped to the cap, still counted */
  CHECK(h.total == 1 && h.max_us == ((uint64_t)1 << PL_HIST_MAX_BITS) - 1);
  for (int i = 0; i < 99; i++)
    pl_hist_record(&g, 1000);
  pl_hist_merge(&g, &h);
  CHECK(g.total == 100);
  CHECK(pl_hist_quantile(&g, 0.99) >= 1000 && pl_hist_quantile(&g, 0.99) <= 1016);
  CHECK(pl_hist_quantile(&g, 1.0) == g.max_us);
}

static const struct {
  const char *name;
  void (*fn)(void);
} tests[] = {
    {"quantiles_within_bucket", test_quantiles_within_bucket},
    {"small_values_exact", test_small_values_exact},
    {"empty_cap_merge", test_empty_cap_merge},
};

int main(int argc, char **argv) {
  int ran = 0;
  for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name))
      continue;
    int before = fails;
    tests[i].fn();
    printf("%s %s\n", fails == before ? "ok  " : "FAIL", tests[i].name);
    ran++;
  }
  if (!ran)
    fprintf(stderr, "no test named %s\n", argv[1]);
  return fails || !ran;
}
