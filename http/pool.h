/*
 * http/pool.h — a fixed pool of worker threads for work that may block
 * (architecture §2.2: upstream fetches, LMDB write transactions, JSON-heavy work).
 *
 * Jobs are intrusive: the caller embeds a wv_pool_job_t in its own object and
 * keeps ownership of it; the pool only links it into its queue. A job runs
 * exactly once on some worker thread, or, if the pool is stopped before it
 * ran, is handed to the cancel callback given to wv_pool_stop(), on the
 * stopping thread. The queue is capped: past the cap, submit fails with
 * WV_EBUSY (the caller answers 503), never grows without bound.
 *
 * Thread rules: submit may be called from any thread; stop and free from one
 * thread, once. The pool's mutex is a leaf lock: jobs run without it held.
 */
#ifndef WV_POOL_H
#define WV_POOL_H

#include <stddef.h>

typedef struct wv_pool wv_pool_t;
typedef struct wv_pool_job wv_pool_job_t;
typedef void (*wv_pool_job_cb)(wv_pool_job_t *job);

struct wv_pool_job {
  wv_pool_job_t *next; /* owned by the pool while queued */
  wv_pool_job_cb run;  /* runs on a worker thread */
};

/* Starts nthreads (>= 1) workers; max_queue 0 = unlimited. 0 or WV_ENOMEM/WV_EINVAL. */
int wv_pool_new(int nthreads, size_t max_queue, wv_pool_t **out);
/* Queues job (job->run must be set). 0, WV_EBUSY (queue full) or WV_ECLOSED (stopped). */
int wv_pool_submit(wv_pool_t *p, wv_pool_job_t *job);
/*
 * Refuses new jobs, lets running jobs finish, joins every worker, then hands
 * each job still queued to cancel (may be NULL) on the calling thread.
 */
void wv_pool_stop(wv_pool_t *p, wv_pool_job_cb cancel);
/* Stops (without cancel callback) if needed and frees the pool. NULL is a no-op. */
void wv_pool_free(wv_pool_t *p);
/* Number of worker threads. */
int wv_pool_size(const wv_pool_t *p);

#endif
