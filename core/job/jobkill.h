/*
 * core/job/jobkill.h — making sure nothing a job started outlives it, even when
 * waved itself dies (docs/jobs.md "A crash leaves nothing running"). Used by
 * the --job-exec runner and by restart recovery (both core/job/job_api.c); the
 * step runner (core/job/job_step.c) notes the start time of each step's process
 * group, so recovery never kills a reused pid. Linux /proc only; every call is bounded.
 */
#ifndef WV_JOBKILL_H
#define WV_JOBKILL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Stops (SIGSTOP) every descendant of root, repeating until no new one shows
 * up (a stopped process cannot fork), then SIGKILLs them all, and root too
 * when kill_root. Returns how many processes were signalled.
 */
int wv_jobkill_tree(pid_t root, bool kill_root);

/* The start time of pid in clock ticks since boot (/proc/<pid>/stat field 22); 0 if gone. */
uint64_t wv_jobkill_start_time(pid_t pid);

/* True when pid is alive (not a zombie) and runs "--job-exec ... --job <id>". */
bool wv_jobkill_is_runner(pid_t pid, const char *job_id);

/* Live (non-zombie) processes whose process group is pgid. */
int wv_jobkill_group_count(pid_t pgid);

#endif
