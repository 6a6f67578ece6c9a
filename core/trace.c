/* core/trace.c — container-request stage stamps (see trace.h); empty unless WV_CREQ_TRACE. */
#include "core/trace.h"

#ifdef WV_CREQ_TRACE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1u << 20)

_Thread_local int64_t *wv_trace_cur;
_Thread_local int64_t wv_trace_batch[WV_TRACE_N];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static float
    *samples[WV_TRACE_N]; /* [stage][i]: µs from the previous stage (0: the whole request) */
static size_t n_samples;
static int registered;

int64_t wv_trace_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * LMDB's fdatasync calls, seen from the committer thread while it commits (a batch was taken and
 * not yet committed): the first one's start and end. Defined in the executable, this one is what
 * liblmdb's call binds to; the real work is the system call.
 */
int fdatasync(int fd) {
  int64_t t0 = wv_trace_now();
  long rc = syscall(SYS_fdatasync, fd);
  int64_t t1 = wv_trace_now();
  if (wv_trace_batch[WV_TRACE_TAKEN] && !wv_trace_batch[WV_TRACE_COMMITTED] &&
      !wv_trace_batch[WV_TRACE_SYNC1]) {
    wv_trace_batch[WV_TRACE_SYNC1] = t0;
    wv_trace_batch[WV_TRACE_SYNC1_END] = t1;
  }
  return rc < 0 ? -1 : 0;
}

int wv_trace_worker_only(void) {
  static int yes = -1;
  if (yes < 0) {
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    yes = n > 7 && memcmp(exe + n - 7, "-worker", 7) == 0;
  }
  return yes;
}

/* The committer's page writes during commits (pwrite and writev are LMDB's only data writes). */
static _Thread_local uint64_t commit_bytes, commit_calls;
static uint64_t tot_commits, tot_reqs, tot_bytes, tot_calls, lone_commits, lone_bytes;

static bool in_commit(void) {
  return wv_trace_batch[WV_TRACE_TAKEN] && !wv_trace_batch[WV_TRACE_COMMITTED];
}

/* Named pwrite (liblmdb's import), not the pwrite64 the headers redirect to. */
ssize_t trace_pwrite(int fd, const void *buf, size_t n, off_t off) __asm__("pwrite");
ssize_t trace_pwrite(int fd, const void *buf, size_t n, off_t off) {
  long rc = syscall(SYS_pwrite64, fd, buf, n, off);
  if (rc > 0 && in_commit())
    commit_bytes += (uint64_t)rc, commit_calls++;
  return (ssize_t)rc;
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  long rc = syscall(SYS_writev, fd, iov, n);
  if (rc > 0 && in_commit())
    commit_bytes += (uint64_t)rc, commit_calls++;
  return (ssize_t)rc;
}

void wv_trace_commit_done(uint64_t n) {
  pthread_mutex_lock(&mu);
  tot_commits++;
  tot_reqs += n;
  tot_bytes += commit_bytes;
  tot_calls += commit_calls;
  if (n == 1)
    lone_commits++, lone_bytes += commit_bytes;
  pthread_mutex_unlock(&mu);
  commit_bytes = commit_calls = 0;
}

void wv_trace_from_batch(int64_t *t) {
  for (int s = WV_TRACE_TAKEN; s <= WV_TRACE_COMMITTED; s++)
    t[s] = wv_trace_batch[s];
}

static int cmpf(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static const char *const names[WV_TRACE_N] = {"whole request (parsed -> written)",
                                              "parsed -> handler starts",
                                              "handler (-> queued)",
                                              "queued -> committer takes batch",
                                              "page writes (-> fdatasync 1)",
                                              "fdatasync 1",
                                              "fdatasync 2 + commit end",
                                              "committed -> IO loop",
                                              "IO loop -> response written"};

static void report(void) {
  const char *path = getenv("WAVED_TRACE_OUT");
  FILE *f = path ? fopen(path, "a") : NULL;
  FILE *o = f ? f : stderr;
  char exe[512];
  ssize_t n_exe = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n_exe > 0 ? n_exe : 0] = '\0';
  fprintf(o, "# creq stages of %s, %zu requests, µs: p50 p90 p99 p99.9 max\n", exe, n_samples);
  if (tot_commits)
    fprintf(o,
            "# %llu commits, %.2f requests and %.1f KiB in %.1f write calls per commit; "
            "%llu lone commits (one request) wrote %.1f KiB each\n",
            (unsigned long long)tot_commits, (double)tot_reqs / (double)tot_commits,
            (double)tot_bytes / 1024.0 / (double)tot_commits,
            (double)tot_calls / (double)tot_commits, (unsigned long long)lone_commits,
            lone_commits ? (double)lone_bytes / 1024.0 / (double)lone_commits : 0.0);
  for (int s = 0; s < WV_TRACE_N && n_samples; s++) {
    float *v = samples[s];
    qsort(v, n_samples, sizeof *v, cmpf);
    size_t n = n_samples;
    fprintf(o, "%-36s %9.1f %9.1f %9.1f %9.1f %9.1f\n", names[s], v[n / 2], v[n * 9 / 10],
            v[n * 99 / 100], v[n * 999 / 1000], v[n - 1]);
  }
  if (f)
    fclose(f);
}

void wv_trace_record(const int64_t *t) {
  for (int s = 0; s < WV_TRACE_N; s++)
    if (!t[s])
      return; /* not a parked container request */
  pthread_mutex_lock(&mu);
  if (!registered) {
    registered = 1;
    for (int s = 0; s < WV_TRACE_N; s++)
      samples[s] = malloc(MAX_SAMPLES * sizeof(float));
    atexit(report);
  }
  if (samples[WV_TRACE_N - 1] && n_samples < MAX_SAMPLES) {
    samples[0][n_samples] = (float)(t[WV_TRACE_WRITTEN] - t[WV_TRACE_PARSED]) / 1e3f;
    for (int s = 1; s < WV_TRACE_N; s++)
      samples[s][n_samples] = (float)(t[s] - t[s - 1]) / 1e3f;
    n_samples++;
  }
  pthread_mutex_unlock(&mu);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int wv_trace_unused_t;
#endif
