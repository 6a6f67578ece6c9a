/*
 * core/job/jobmem.h — memory limits for job children (used by core/job/job.c).
 *
 * Detects the strongest mechanism the host allows (cgroup v2 memory.max,
 * cgroup v1 memory.limit_in_bytes, or RLIMIT_AS set by the exec wrapper),
 * creates one sub-group per job, reports whether the kernel OOM-killed
 * something in it, and kills whatever is left in it. docs/jobs.md explains
 * which mechanism applies where. Functions are stateless and touch only the
 * paths given; they may block briefly (cgroupfs writes, rmdir retries).
 */
#ifndef WV_JOBMEM_H
#define WV_JOBMEM_H

#include "core/job/job.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Finds a cgroup directory under which per-job groups with a memory limit
 * can be made: hint if given, else this process's own cgroup (v2 first,
 * then the v1 memory hierarchy). For v2 it enables the memory controller for
 * children, moving waved into a leaf "<own>/waved" if its own group has
 * processes (the no-internal-process rule). Writes the directory to parent
 * and returns the mechanism; WV_JOB_MEM_RLIMIT when no cgroup is usable and
 * have_wrapper, else WV_JOB_MEM_NONE.
 */
wv_job_mem_t wv_jobmem_detect(const char *hint, bool have_wrapper, char *parent, size_t n);

/* Creates <parent>/wvjob-<id> with the limit; its path into dir. 0 or WV_EIO. */
int wv_jobmem_create(wv_job_mem_t m, const char *parent, const char *id, uint64_t bytes, char *dir,
                     size_t n);

/* Writes val to dir/name (a cgroup control file); 0 or -errno. */
int wv_jobmem_write(const char *dir, const char *name, const char *val);

/* Moves pid into the group dir. 0 or WV_EIO. (This, wv_jobmem_write and wv_jobmem_signal are
 * in core/job/jobcgroup.c, libc only: the job runner links them.) */
int wv_jobmem_join(const char *dir, long pid);

/* Number of OOM kills recorded in the group (0 when unknown). */
long wv_jobmem_oom_kills(wv_job_mem_t m, const char *dir);

/* Sends sig to every process in the group; returns how many were signalled. */
int wv_jobmem_signal(const char *dir, int sig);

/* SIGKILLs what is left and removes the group (retrying while it empties). */
void wv_jobmem_destroy(const char *dir);

/* Renders bytes as "3600MiB" / "2GiB" / "1500B" for reasons. */
void wv_jobmem_format(uint64_t bytes, char *out, size_t n);

#endif
