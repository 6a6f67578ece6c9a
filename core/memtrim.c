/* core/memtrim.c — return memory after a spike (see memtrim.h). */
#include "core/memtrim.h"
#include "core/err.h"
#include "core/timefmt.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Process-wide on purpose: malloc's arenas belong to the process, so one trimmer serves all
 * (started and stopped by core/main.c, noted from any layer through wv_memtrim_note). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool running, stop;
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic int64_t last_note_ms = INT64_MIN / 2; /* monotonic ms of the last large input */

static void *trim_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&T.mu);
  while (!T.stop) {
    struct timespec ts = wv_deadline_ts(CLOCK_MONOTONIC, WV_MEMTRIM_DELAY_MS);
    while (!T.stop && pthread_cond_timedwait(&T.cv, &T.mu, &ts) != ETIMEDOUT) {
    }
    /* A request noted at its start may free its memory long after: keep trimming a while. */
    if (!T.stop && wv_mono_ms() - atomic_load(&last_note_ms) < WV_MEMTRIM_WINDOW_MS) {
      pthread_mutex_unlock(&T.mu);
      malloc_trim(0);
      pthread_mutex_lock(&T.mu);
    }
  }
  pthread_mutex_unlock(&T.mu);
  return NULL;
}

int wv_memtrim_start(void) {
  mallopt(M_MMAP_THRESHOLD, (int)WV_MEMTRIM_LARGE);
  mallopt(M_TRIM_THRESHOLD, 4 * (int)WV_MEMTRIM_LARGE);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&T.cv, &ca);
  pthread_condattr_destroy(&ca);
  T.stop = false;
  if (pthread_create(&T.thread, NULL, trim_main, NULL) != 0)
    return WV_EINTERNAL;
  T.running = true;
  return 0;
}

void wv_memtrim_stop(void) {
  if (!T.running)
    return;
  pthread_mutex_lock(&T.mu);
  T.stop = true;
  pthread_cond_signal(&T.cv);
  pthread_mutex_unlock(&T.mu);
  pthread_join(T.thread, NULL);
  pthread_cond_destroy(&T.cv);
  T.running = false;
}

void wv_memtrim_note(size_t bytes) {
  if (bytes >= WV_MEMTRIM_LARGE)
    atomic_store(&last_note_ms, wv_mono_ms());
}
