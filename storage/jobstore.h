/*
 * storage/jobstore.h — the job engine's persistence (core/job/job.h's
 * wv_job_persist_t) on the LMDB state store and the zstd log files.
 *
 * Records live in WV_DB_JOBS keyed by job id; a QUEUED or RUNNING record
 * never expires, a final one expires after final_ttl_ms (0 = never). Final
 * logs are zstd files <log_dir>/<id>.log.zst (storage/log.h). The struct
 * must outlive the engine that uses it; every callback is thread-safe.
 */
#ifndef WV_JOBSTORE_H
#define WV_JOBSTORE_H

#include "core/job/job.h"
#include "storage/store.h"

#include <limits.h>
#include <stdint.h>

typedef struct {
  wv_store_t *store;
  char log_dir[PATH_MAX];
  int64_t final_ttl_ms;
} wv_jobstore_t;

/*
 * Fills js and the persistence interface p (whose ctx is js). Creates
 * log_dir (0700). Returns 0, WV_EINVAL (path too long) or WV_EIO.
 */
int wv_jobstore_init(wv_jobstore_t *js, wv_store_t *store, const char *log_dir,
                     int64_t final_ttl_ms, wv_job_persist_t *p);

#endif
