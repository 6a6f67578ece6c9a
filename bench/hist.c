/*
 * bench/hist.c — see hist.h. The index of a value v is computed as in
 * HdrHistogram: the bucket is how many bits v has beyond the first
 * PL_HIST_SUB_BITS, and within the bucket the top PL_HIST_SUB_BITS bits of v
 * pick the sub-bucket. Buckets after the first only use their upper half of
 * sub-buckets (the lower half overlaps the previous bucket), which is why
 * each adds PL_HIST_HALF slots.
 */
#include "hist.h"

#include <string.h>

static int bucket_of(uint64_t v) {
  int msb = 63 - __builtin_clzll(v | 1);
  int b = msb - (PL_HIST_SUB_BITS - 1);
  return b < 0 ? 0 : b;
}

static int index_of(uint64_t v) {
  int b = bucket_of(v);
  return b * PL_HIST_HALF + (int)(v >> b);
}

/* The largest value that maps to index i. */
static uint64_t upper_of(int i) {
  int b = i < 2 * PL_HIST_HALF ? 0 : i / PL_HIST_HALF - 1;
  uint64_t sub = (uint64_t)(i - b * PL_HIST_HALF);
  return ((sub + 1) << b) - 1;
}

void pl_hist_init(pl_hist_t *h) { memset(h, 0, sizeof *h); }

void pl_hist_record(pl_hist_t *h, uint64_t us) {
  const uint64_t cap = ((uint64_t)1 << PL_HIST_MAX_BITS) - 1;
  if (us > cap)
    us = cap;
  h->counts[index_of(us)]++;
  h->total++;
  h->sum_us += us;
  if (us > h->max_us)
    h->max_us = us;
}

void pl_hist_merge(pl_hist_t *into, const pl_hist_t *from) {
  for (int i = 0; i < PL_HIST_LEN; i++)
    into->counts[i] += from->counts[i];
  into->total += from->total;
  into->sum_us += from->sum_us;
  if (from->max_us > into->max_us)
    into->max_us = from->max_us;
}

uint64_t pl_hist_quantile(const pl_hist_t *h, double q) {
  if (h->total == 0)
    return 0;
  uint64_t want = (uint64_t)(q * (double)h->total + 0.999999);
  if (want < 1)
    want = 1;
  uint64_t seen = 0;
  for (int i = 0; i < PL_HIST_LEN; i++) {
    seen += h->counts[i];
    if (seen >= want) {
      uint64_t up = upper_of(i);
      return up < h->max_us ? up : h->max_us;
    }
  }
  return h->max_us;
}
