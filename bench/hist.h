/*
 * bench/hist.h — a latency histogram with logarithmic buckets, in the manner
 * of HdrHistogram: values are microseconds, every power of two is split into
 * 64 linear sub-buckets, so a recorded value is reported within 1/64 (1.6%)
 * of its true value from 1 us up to the cap (2^27 us, about 134 s; larger
 * values are clamped to the cap and still counted).
 *
 * A histogram is a plain value: no allocation, copy it with memcpy, merge two
 * with pl_hist_merge. Not thread-safe; each load thread owns one and the
 * main thread merges them after joining.
 */
#ifndef PL_HIST_H
#define PL_HIST_H

#include <stdint.h>

#define PL_HIST_SUB_BITS 7                         /* 128 sub-buckets in the first bucket */
#define PL_HIST_MAX_BITS 27                        /* values up to 2^27 us */
#define PL_HIST_HALF (1 << (PL_HIST_SUB_BITS - 1)) /* 64 sub-buckets per later power of two */
#define PL_HIST_LEN ((PL_HIST_MAX_BITS - PL_HIST_SUB_BITS + 2) * PL_HIST_HALF)

typedef struct {
  uint64_t counts[PL_HIST_LEN];
  uint64_t total;
  uint64_t max_us;
  uint64_t sum_us;
} pl_hist_t;

void pl_hist_init(pl_hist_t *h);
void pl_hist_record(pl_hist_t *h, uint64_t us);
void pl_hist_merge(pl_hist_t *into, const pl_hist_t *from);
/* The smallest recorded value v such that at least q (0..1] of all values are
 * <= v, reported as the upper end of v's bucket (never an underestimate);
 * 0 when the histogram is empty. */
uint64_t pl_hist_quantile(const pl_hist_t *h, double q);

#endif
