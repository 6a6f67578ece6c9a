/*
 * storage/jobqueue_redis.h — the job queue shared by the instances of a cluster
 * (state.backend: redis; docs/scale-out.md "Job queue"): job records and logs in Redis, one
 * Redis stream per job kind read through a consumer group, a lease per running job, reclaim of
 * the jobs of a dead instance, and a pub/sub message when a job ends.
 *
 * It implements the job engine's persistence (wv_job_persist_t) and queue (wv_job_queue_t) of
 * core/job/job.h. Keys, all under state.redis.prefix:
 *   jobs:<id>       the job record (JSON of core/job/jobrec.c), final ones expire
 *   joblogs:<id>    the final log (its last log_max bytes), expires with the record
 *   joblive:<id>    the tail of a running job's log, refreshed with its lease
 *   joblease:<id>   the instance running the job (SET NX PX, renewed)
 *   jobq:<kind>     the stream of queued jobs of a kind (consumer group "waved")
 *   jobinstance:<instance>  the process using that instance id (refused to a second one)
 *   jobs:done       the channel that names each job that ended
 *
 * Thread rules: open, start, stop and free from one thread (main); the persistence and queue
 * callbacks from any thread. start runs two threads: the reader (queue, leases, reclaim, the slow
 * poll of parked remote jobs) and the subscriber.
 */
#ifndef WV_JOBQUEUE_REDIS_H
#define WV_JOBQUEUE_REDIS_H

#include "core/job/job.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wv_jobq wv_jobq_t;

typedef struct {
  const char *url;         /* state.redis.url */
  const char *prefix;      /* state.redis.prefix */
  int64_t timeout_ms;      /* state.redis.timeout */
  const char *instance_id; /* consumer name and lease value; unique in the cluster */
  int64_t lease_ms;        /* state.redis.job-lease */
  int64_t poll_ms;         /* state.redis.job-poll: slow poll of parked remote jobs */
  uint64_t log_max;        /* state.redis.job-log-max: bytes of a final log kept */
  int64_t final_ttl_ms;    /* expiry of final records and logs */
  const char *log_dir;     /* the engine's live logs (<log_dir>/<id>.log) */
  /* The instance's state store on the same Redis (may be NULL): records are read through it,
   * so ended jobs' records are kept in its local cache (wv_store_get_final). */
  struct wv_store *store;
  /* state.redis.job-max-deliveries: a message delivered more often than this (XPENDING's count)
   * is failed instead of run (docs/scale-out.md "Poison jobs"); 0 = 3. */
  int max_deliveries;
  const char *tls_ca; /* state.redis.tls-ca: CAs of a rediss:// server; NULL or "" = the system's */
} wv_jobq_opts_t;

/*
 * Connects once (to check the server) and fills the engine's persistence and queue, whose ctx
 * is the returned queue. 0, WV_EINVAL, WV_EUNAVAIL, WV_ENOMEM.
 */
int wv_jobq_open(const wv_jobq_opts_t *o, wv_jobq_t **out, wv_job_persist_t *persist,
                 wv_job_queue_t *queue);

/*
 * Claims the instance id (waiting up to a lease for the claim of a crashed process of the same id
 * to lapse), then starts the reader and subscriber threads for the started engine e. 0,
 * WV_EEXISTS (another running waved uses the id), WV_EUNAVAIL or WV_EINTERNAL.
 */
int wv_jobq_start(wv_jobq_t *q, wv_job_engine_t *e);

/* Stops and joins both threads (within about a second). Idempotent; NULL is a no-op. */
void wv_jobq_stop(wv_jobq_t *q);

/* Stops and frees. NULL is a no-op. */
void wv_jobq_free(wv_jobq_t *q);

#endif
