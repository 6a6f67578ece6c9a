#include "http/pool.h"
#include "core/err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct wv_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wv_pool_job_t *head, *tail;
  size_t queued, max_queue;
  bool stopping, stopped;
  atomic_int signalling; /* submitters between their enqueue and their wake-up (wv_pool_free) */
  int nthreads;
  pthread_t threads[];
};

static void *worker_main(void *arg) {
  wv_pool_t *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stopping)
      pthread_cond_wait(&p->cv, &p->mu);
    /* Stopping leaves queued jobs to the cancel callback. */
    if (p->stopping)
      break;
    wv_pool_job_t *job = p->head;
    p->head = job->next;
    if (!p->head)
      p->tail = NULL;
    p->queued--;
    job->next = NULL;
    pthread_mutex_unlock(&p->mu);
    job->run(job);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int wv_pool_new(int nthreads, size_t max_queue, wv_pool_t **out) {
  if (nthreads < 1)
    return WV_EINVAL;
  wv_pool_t *p = calloc(1, sizeof *p + (size_t)nthreads * sizeof(pthread_t));
  if (!p)
    return WV_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->max_queue = max_queue;
  for (int i = 0; i < nthreads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
      p->nthreads = i;
      wv_pool_free(p);
      return WV_ENOMEM;
    }
    p->nthreads = i + 1;
  }
  *out = p;
  return 0;
}

/*
 * The worker is woken after the lock is released: woken under it, on a busy or pinned CPU it
 * may run at once and block on the mutex the submitter still holds (two more context
 * switches per job, on the IO loop's hand-off to the pool).
 */
int wv_pool_submit(wv_pool_t *p, wv_pool_job_t *job) {
  int rc = 0;
  job->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    rc = WV_ECLOSED;
  } else if (p->max_queue && p->queued >= p->max_queue) {
    rc = WV_EBUSY;
  } else {
    if (p->tail)
      p->tail->next = job;
    else
      p->head = job;
    p->tail = job;
    p->queued++;
    atomic_fetch_add(&p->signalling, 1);
  }
  pthread_mutex_unlock(&p->mu);
  if (rc == 0) {
    pthread_cond_signal(&p->cv);
    atomic_fetch_sub(&p->signalling, 1);
  }
  return rc;
}

void wv_pool_stop(wv_pool_t *p, wv_pool_job_cb cancel) {
  pthread_mutex_lock(&p->mu);
  if (p->stopped) {
    pthread_mutex_unlock(&p->mu);
    return;
  }
  p->stopping = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  /* Workers are gone: the queue is ours without the lock. */
  wv_pool_job_t *job = p->head;
  p->head = p->tail = NULL;
  p->queued = 0;
  p->stopped = true;
  while (job) {
    wv_pool_job_t *next = job->next;
    job->next = NULL;
    if (cancel)
      cancel(job);
    job = next;
  }
}

void wv_pool_free(wv_pool_t *p) {
  if (!p)
    return;
  wv_pool_stop(p, NULL);
  /* A submitter that queued before the stop may still be signalling (a parked request resumed
   * from another thread at shutdown): the condition variable outlives it. */
  while (atomic_load(&p->signalling) > 0)
    sched_yield();
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int wv_pool_size(const wv_pool_t *p) { return p->nthreads; }
