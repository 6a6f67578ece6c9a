/*
 * registry/blobfill.c — one upstream stream for concurrent first pulls of a
 * blob. See blobfill.h.
 *
 * Fills live in a short list (one per blob being streamed into the cache at
 * this moment, so at most the number of workers) under a leaf mutex; a fill
 * leaves the list when its leader finishes, so a GET arriving after that
 * starts a new fill (and will normally find the blob in the cache first).
 */
#include "registry/blobfill.h"

#include "core/err.h"
#include "registry/keyed.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct wv_bfill {
  wv_keyed_t k;          /* first: the table entry (under tab->mu) */
  wv_bfill_table_t *tab; /* the table it was joined in */
  bool listed;           /* under tab->mu */
  pthread_mutex_t mu;    /* the fields below */
  pthread_cond_t cv;
  wv_bfill_state_t state;
  int fd;
  int64_t length;
  uint64_t written;
  char media_type[256];
};

struct wv_bfill_table {
  pthread_mutex_t mu; /* leaf: the list, every fill's listed and refs */
  wv_keyed_t *head;
};

int wv_bfill_table_new(wv_bfill_table_t **out) {
  wv_bfill_table_t *t = calloc(1, sizeof *t);
  if (!t)
    return WV_ENOMEM;
  pthread_mutex_init(&t->mu, NULL);
  *out = t;
  return 0;
}

void wv_bfill_table_free(wv_bfill_table_t *t) {
  if (!t)
    return;
  pthread_mutex_destroy(&t->mu);
  free(t);
}

wv_bfill_t *wv_bfill_join(wv_bfill_table_t *t, const char *key, bool *leader) {
  pthread_mutex_lock(&t->mu);
  wv_bfill_t *f = (wv_bfill_t *)wv_keyed_join(&t->head, key, sizeof(wv_bfill_t), leader);
  if (f && *leader) {
    f->tab = t;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->fd = -1;
    f->length = -1;
    f->listed = true;
  }
  pthread_mutex_unlock(&t->mu);
  return f;
}

int wv_bfill_start(wv_bfill_t *f, int fd, int64_t length, const char *media_type) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    return errno == EMFILE || errno == ENFILE ? WV_ENOMEM : WV_EIO;
  pthread_mutex_lock(&f->mu);
  f->fd = copy;
  f->length = length;
  snprintf(f->media_type, sizeof f->media_type, "%s", media_type ? media_type : "");
  f->state = WV_BFILL_STREAMING;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return 0;
}

void wv_bfill_progress(wv_bfill_t *f, uint64_t written) {
  pthread_mutex_lock(&f->mu);
  f->written = written;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

/* Takes f out of the list so later GETs start afresh (tab->mu not held). */
static void unlist(wv_bfill_t *f) {
  pthread_mutex_lock(&f->tab->mu);
  if (f->listed) {
    wv_keyed_unlink(&f->tab->head, &f->k);
    f->listed = false;
  }
  pthread_mutex_unlock(&f->tab->mu);
}

void wv_bfill_finish(wv_bfill_t *f, bool ok) {
  unlist(f);
  pthread_mutex_lock(&f->mu);
  if (f->state == WV_BFILL_STREAMING)
    f->state = ok ? WV_BFILL_DONE : WV_BFILL_FAILED;
  else if (f->state == WV_BFILL_WAITING)
    f->state = WV_BFILL_NONE;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

wv_bfill_state_t wv_bfill_wait_start(wv_bfill_t *f, int64_t timeout_ms, int *fd, int64_t *length,
                                     char *media_type, size_t mt_cap) {
  struct timespec dl;
  dl = wv_deadline_ts(CLOCK_MONOTONIC, timeout_ms);
  pthread_mutex_lock(&f->mu);
  while (f->state == WV_BFILL_WAITING)
    if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
      break;
  wv_bfill_state_t st = f->state;
  if (f->fd >= 0) {
    *fd = f->fd;
    *length = f->length;
    snprintf(media_type, mt_cap, "%s", f->media_type);
  }
  pthread_mutex_unlock(&f->mu);
  return st;
}

wv_bfill_state_t wv_bfill_wait(wv_bfill_t *f, uint64_t off, int64_t idle_ms, uint64_t *written) {
  struct timespec dl;
  dl = wv_deadline_ts(CLOCK_MONOTONIC, idle_ms);
  pthread_mutex_lock(&f->mu);
  while (f->state == WV_BFILL_STREAMING && f->written <= off)
    if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
      break;
  wv_bfill_state_t st = f->state;
  *written = f->written;
  pthread_mutex_unlock(&f->mu);
  return st;
}

void wv_bfill_leave(wv_bfill_t *f) {
  wv_bfill_table_t *t = f->tab;
  pthread_mutex_lock(&t->mu);
  bool last = --f->k.refs == 0;
  if (last && f->listed) { /* a leader that never finished; nobody can join now */
    wv_keyed_unlink(&t->head, &f->k);
    f->listed = false;
  }
  pthread_mutex_unlock(&t->mu);
  if (!last)
    return;
  if (f->fd >= 0)
    close(f->fd);
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f->k.key);
  free(f);
}

bool wv_bfill_followed(wv_bfill_t *f) {
  pthread_mutex_lock(&f->tab->mu);
  bool r = f->k.refs > 1;
  pthread_mutex_unlock(&f->tab->mu);
  return r;
}
