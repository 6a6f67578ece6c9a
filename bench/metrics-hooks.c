/*
 * bench/metrics-hooks.c — the CPU time the hot-path metric hooks add to one
 * request, measured without a server: what the server calls per answered
 * /v2 request (wv_metrics_start at the first byte, the route class and
 * wv_metrics_request at the response, one hot-path counter), in a loop on
 * THREADS threads at once, with metrics on and off. The difference per
 * request, set against waved's CPU time per hot request (bench/metrics-cost.sh),
 * is the hooks' share of the hot path. docs/benchmarks.md, "Metrics cost".
 * Usage: metrics-hooks [ITERATIONS [THREADS]]
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long iters = 10000000;
static const char *const paths[] = {"/v2/wt/3f9a1c2b7d4e/library/busybox/manifests/latest",
                                    "/v2/library/busybox/blobs/sha256:0123456789abcdef"};

static void *run(void *arg) {
  (void)arg;
  for (long i = 0; i < iters; i++) {
    uint64_t t0 = wv_metrics_start();
    const char *p = paths[i & 1];
    if (t0)
      wv_metrics_request(wv_metrics_route_class(p, true), 200, t0);
    wv_metrics_add(WV_METRICS_HOT_HIT, 1);
  }
  return NULL;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double measure(bool on, int threads) {
  pthread_t t[64];
  wv_metrics_enable(on);
  double c0 = cpu_s();
  for (int i = 0; i < threads; i++)
    pthread_create(&t[i], NULL, run, NULL);
  for (int i = 0; i < threads; i++)
    pthread_join(t[i], NULL);
  return (cpu_s() - c0) * 1e9 / ((double)iters * threads);
}

int main(int argc, char **argv) {
  if (argc > 1)
    iters = atol(argv[1]);
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  if (iters <= 0 || threads < 1 || threads > 64)
    return fprintf(stderr, "usage: metrics-hooks [ITERATIONS [THREADS]]\n"), 2;
  for (int round = 0; round < 3; round++) {
    double on = measure(true, threads), off = measure(false, threads);
    printf("round %d: hooks on %.1f ns/request, off %.1f ns/request, added %.1f ns\n", round + 1,
           on, off, on - off);
  }
  return 0;
}
