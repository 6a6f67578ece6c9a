/*
 * registry/park.c — the parking lot (see park.h).
 *
 * DESIGN. Entries are on one doubly-linked list in deadline order: every
 * request gets the same timeout, so appending at the tail keeps the list
 * sorted and the park thread only ever looks at its head. An entry has two
 * owners: the lot (until the request is answered or resumed) and the job
 * engine's waiter (until the waiter ran, exactly once). Whichever of "job
 * ended", "deadline", "stop" comes first settles the request; the entry is
 * freed when both owners let go. Ready entries (job ended) move to a second
 * list that the park thread drains into the worker pool.
 */
#include "registry/park.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/job/job.h"
#include "core/log.h"
#include "http/resp.h"
#include "core/timefmt.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MS 5 /* pause before re-offering resumes to a full worker queue */

typedef struct entry {
  struct entry *prev, *next;
  wv_park_t *lot;
  wv_req_t *req;
  wv_resp_t *resp;
  wv_req_handler_cb resume;
  int64_t deadline_ms; /* CLOCK_MONOTONIC */
  int refs;            /* lot + waiter */
  bool settled;        /* answered or resumed: the lot let go of req */
  bool ready;          /* on the ready list */
} entry_t;

typedef struct {
  entry_t *head, *tail;
} list_t;

struct wv_park {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, stopping;
  int64_t deadline_ms;
  list_t parked, ready;
  size_t count;
};

static void list_push(list_t *l, entry_t *e) {
  e->next = NULL;
  e->prev = l->tail;
  if (l->tail)
    l->tail->next = e;
  else
    l->head = e;
  l->tail = e;
}

static void list_del(list_t *l, entry_t *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    l->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    l->tail = e->prev;
  e->prev = e->next = NULL;
}

/* Drops one reference; under lot->mu. Returns true when the entry must be freed. */
static bool unref(entry_t *e) { return --e->refs == 0; }

/* Answers a request the lot gave up on (outside the lock). */
static void answer(wv_req_t *req, wv_resp_t *resp, int status, wv_regerr_t code, const char *msg) {
  if (wv_resp_registry_error(req, resp, code, status, msg, NULL))
    resp->status = 0; /* the server answers 500 */
  wv_req_complete(req);
}

/* The job is ready or ended (or the engine stops): runs on the job thread, must not block. */
static void on_job_done(void *arg, const wv_job_info_t *info) {
  entry_t *e = arg;
  wv_park_t *lot = e->lot;
  wv_req_t *req = NULL;
  wv_resp_t *resp = e->resp;
  pthread_mutex_lock(&lot->mu);
  if (!e->settled && info->stopping) {
    e->settled = true;
    list_del(&lot->parked, e);
    lot->count--;
    wv_metrics_add(WV_METRICS_PARKED_OUT, 1);
    req = e->req;
  } else if (!e->settled) {
    list_del(&lot->parked, e);
    e->ready = true;
    list_push(&lot->ready, e);
    pthread_cond_signal(&lot->cv);
  }
  bool free_it = unref(e);
  pthread_mutex_unlock(&lot->mu);
  if (req)
    answer(req, resp, 503, WV_REGERR_UNKNOWN, "Server shutting down - retry the pull");
  if (free_it)
    free(e);
}

/* Takes the expired head entries (under lot->mu) into *out. */
static void take_expired(wv_park_t *lot, list_t *out, int64_t now) {
  while (lot->parked.head && lot->parked.head->deadline_ms <= now) {
    entry_t *e = lot->parked.head;
    list_del(&lot->parked, e);
    e->settled = true;
    lot->count--;
    wv_metrics_add(WV_METRICS_PARKED_OUT, 1);
    list_push(out, e);
  }
}

/*
 * Answers every entry of l (already settled and taken off the lot) with the
 * same registry error, outside the lock; drops the lot's reference to each.
 */
static void answer_all(wv_park_t *lot, list_t *l, int status, wv_regerr_t code, const char *msg) {
  for (entry_t *e = l->head, *next; e; e = next) {
    next = e->next;
    wv_req_t *req = e->req;
    wv_resp_t *resp = e->resp;
    pthread_mutex_lock(&lot->mu);
    bool free_it = unref(e);
    pthread_mutex_unlock(&lot->mu);
    if (free_it)
      free(e);
    answer(req, resp, status, code, msg);
  }
}

/* Answers the expired entries taken by take_expired (outside the lock). */
static void expire(wv_park_t *lot, list_t *l) {
  answer_all(lot, l, 408, WV_REGERR_TIMEOUT,
             "Timed out waiting for the container build to complete - retry the pull");
}

/*
 * Hands the ready entries to the worker pool (called with lot->mu held; it is
 * released around each resume). Returns false when the pool is full.
 */
static bool resume_ready(wv_park_t *lot) {
  while (lot->ready.head) {
    entry_t *e = lot->ready.head;
    wv_req_t *req = e->req;
    wv_resp_t *resp = e->resp;
    pthread_mutex_unlock(&lot->mu);
    int rc = wv_req_resume(req, e->resume);
    pthread_mutex_lock(&lot->mu);
    if (rc == WV_EBUSY)
      return false;
    list_del(&lot->ready, e);
    e->settled = true;
    lot->count--;
    wv_metrics_add(WV_METRICS_PARKED_OUT, 1);
    bool free_it = unref(e);
    if (free_it)
      free(e);
    if (rc) {
      pthread_mutex_unlock(&lot->mu);
      answer(req, resp, 503, WV_REGERR_UNKNOWN, "Server shutting down - retry the pull");
      pthread_mutex_lock(&lot->mu);
    }
  }
  return true;
}

static void *park_main(void *arg) {
  wv_park_t *lot = arg;
  pthread_mutex_lock(&lot->mu);
  while (!lot->stopping) {
    bool full = !resume_ready(lot);
    list_t expired = {0};
    take_expired(lot, &expired, wv_mono_ms());
    if (expired.head) {
      pthread_mutex_unlock(&lot->mu);
      expire(lot, &expired);
      pthread_mutex_lock(&lot->mu);
      continue;
    }
    int64_t wait = full ? RETRY_MS : 60000;
    if (lot->parked.head && lot->parked.head->deadline_ms - wv_mono_ms() < wait)
      wait = lot->parked.head->deadline_ms - wv_mono_ms();
    if (lot->stopping || (lot->ready.head && !full))
      continue;
    struct timespec ts = wv_deadline_ts(CLOCK_MONOTONIC, wait);
    pthread_cond_timedwait(&lot->cv, &lot->mu, &ts);
  }
  pthread_mutex_unlock(&lot->mu);
  return NULL;
}

int wv_park_start(wv_park_t **out, int64_t deadline_ms) {
  *out = NULL;
  wv_park_t *lot = calloc(1, sizeof *lot);
  if (!lot)
    return WV_ENOMEM;
  pthread_mutex_init(&lot->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&lot->cv, &ca);
  pthread_condattr_destroy(&ca);
  lot->deadline_ms = deadline_ms > 0 ? deadline_ms : 910000;
  if (pthread_create(&lot->thread, NULL, park_main, lot)) {
    wv_park_free(lot);
    return WV_ENOMEM;
  }
  lot->started = true;
  *out = lot;
  return 0;
}

void wv_park_free(wv_park_t *lot) {
  if (!lot)
    return;
  wv_park_stop(lot);
  pthread_cond_destroy(&lot->cv);
  pthread_mutex_destroy(&lot->mu);
  free(lot);
}

void wv_park_stop(wv_park_t *lot) {
  if (!lot)
    return;
  pthread_mutex_lock(&lot->mu);
  if (!lot->started || lot->stopping) {
    pthread_mutex_unlock(&lot->mu);
    return;
  }
  lot->stopping = true;
  pthread_cond_signal(&lot->cv);
  pthread_mutex_unlock(&lot->mu);
  pthread_join(lot->thread, NULL);
  /* Whatever is still parked or ready is answered here; waiters free their half later. */
  list_t left = {0};
  pthread_mutex_lock(&lot->mu);
  list_t *lists[] = {&lot->parked, &lot->ready};
  for (size_t i = 0; i < 2; i++)
    while (lists[i]->head) {
      entry_t *e = lists[i]->head;
      list_del(lists[i], e);
      e->settled = true;
      lot->count--;
      wv_metrics_add(WV_METRICS_PARKED_OUT, 1);
      list_push(&left, e);
    }
  pthread_mutex_unlock(&lot->mu);
  answer_all(lot, &left, 503, WV_REGERR_UNKNOWN, "Server shutting down - retry the pull");
  lot->started = false;
}

int wv_park_on_job(wv_park_t *lot, wv_req_t *req, wv_resp_t *resp, struct wv_job_engine *jobs,
                   const char *id, wv_req_handler_cb resume) {
  if (!lot)
    return WV_ECLOSED;
  entry_t *e = calloc(1, sizeof *e);
  if (!e)
    return WV_ENOMEM;
  e->lot = lot;
  e->req = req;
  e->resp = resp;
  e->resume = resume;
  e->refs = 2;
  pthread_mutex_lock(&lot->mu);
  if (!lot->started || lot->stopping) {
    pthread_mutex_unlock(&lot->mu);
    free(e);
    return WV_ECLOSED;
  }
  e->deadline_ms = wv_mono_ms() + lot->deadline_ms;
  if (!lot->parked.head) /* the park thread may sleep past this deadline: wake it */
    pthread_cond_signal(&lot->cv);
  list_push(&lot->parked, e);
  lot->count++;
  wv_metrics_add(WV_METRICS_PARKED_IN, 1);
  pthread_mutex_unlock(&lot->mu);
  /* From here the waiter may run at once (the job just ended) and resume req elsewhere. */
  int rc = wv_job_on_ready(jobs, id, on_job_done, e); /* the image is there: no tidy-up wait */
  if (rc == 0)
    return WV_PARKED;
  pthread_mutex_lock(&lot->mu);
  bool mine = !e->settled; /* the deadline cannot have passed yet, but be exact */
  if (mine) {
    list_del(&lot->parked, e);
    e->settled = true;
    lot->count--;
    wv_metrics_add(WV_METRICS_PARKED_OUT, 1);
  }
  bool free_it = unref(e) || (mine && unref(e));
  pthread_mutex_unlock(&lot->mu);
  if (free_it)
    free(e);
  return mine ? rc : WV_PARKED; /* not mine: the lot already answered req */
}

size_t wv_park_count(wv_park_t *lot) {
  pthread_mutex_lock(&lot->mu);
  size_t n = lot->count;
  pthread_mutex_unlock(&lot->mu);
  return n;
}
