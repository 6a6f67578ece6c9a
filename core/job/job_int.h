/*
 * core/job/job_int.h — the job engine's private types, shared by core/job/job.c (the
 * engine), core/job/job_step.c (running steps), core/job/job_api.c (other threads'
 * entry points), core/job/job_queue.c (the shared queue) and core/job/jobrec.c
 * (records as JSON). Not for other modules.
 */
#ifndef WV_JOB_INT_H
#define WV_JOB_INT_H

#include "core/job/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  wv_job_step_type_t type;
  bool may_fail;
  bool ready;  /* wv_job_step_t.ready */
  char *name;  /* never NULL after copy: argv[0] or fn */
  char **argv; /* NULL-terminated, owned */
  char **env;  /* NULL-terminated, owned; NULL = inherit */
  char *cwd;
  char *fn;
  char *arg;
} jstep_t;

typedef struct jwaiter {
  struct jwaiter *next;
  wv_job_done_cb cb;
  void *arg;
  bool on_ready; /* wv_job_on_ready: runs when the job is ready, not at its end */
} jwaiter_t;

typedef struct jkind jkind_t;
typedef struct jrun jrun_t;

/*
 * One job. Immutable after submit: id, kind, workdir, limits, steps. The
 * rest is written by the job thread under the engine mutex and read by
 * other threads under it.
 */
typedef struct job {
  struct job *hnext; /* hash chain */
  struct job *qnext; /* inbox, kind queue or finished list */
  struct job *cnext; /* cancel list */
  jkind_t *kind;
  char id[WV_JOB_ID_MAX + 1];
  char kind_name[64];
  char *workdir;
  int64_t deadline_ms;
  uint64_t memory_max;
  jstep_t *steps;
  size_t nsteps;

  wv_job_state_t state;
  int64_t created_ns, started_ns, finished_ns;
  int exit_status;
  char reason[WV_JOB_REASON_MAX];
  jwaiter_t *waiters;
  bool cancel_req;
  bool admitted; /* in the inbox, a queue or running (cancels may be listed) */
  bool in_finished;
  bool ready; /* its ready step succeeded (job thread writes, under mu) */
  char cancel_reason[WV_JOB_REASON_MAX];
  uint64_t rid; /* the request that submitted it (core/log.h), 0 = none; not persisted */

  int64_t pgid;        /* the running step's process group (its runner's pid), 0 = none */
  uint64_t pgid_start; /* its start time (/proc stat ticks): guards against pid reuse */

  jrun_t *run; /* job thread only: the running state */
  size_t step; /* job thread only: index of the current step */
} job_t;

void wv__jobrec_free_job(job_t *j);
/* Deep copy of a spec's steps into j. 0, WV_EINVAL or WV_ENOMEM. */
int wv__jobrec_copy_steps(job_t *j, const wv_job_step_t *steps, size_t n);
/* The record as JSON text (malloc'd) with the given state. NULL on OOM or too big. */
char *wv__jobrec_to_json(const job_t *j, wv_job_state_t state, size_t *len);
/* A new job from a record. 0, WV_EPARSE or WV_ENOMEM. */
int wv__jobrec_from_json(const char *json, size_t len, job_t **out);
/* The public snapshot. */
void wv__jobrec_info(const job_t *j, wv_job_info_t *out);
/* True for [A-Za-z0-9._-]{1,WV_JOB_ID_MAX}. */
bool wv__jobrec_id_valid(const char *id);

/* ---- the engine (job.c, job_step.c: job thread; job_api.c: other threads) ---- */

#include <limits.h>
#include <stdatomic.h>
#include <uv.h>

#define NBUCKETS 1024
#define MAX_KINDS 16
#define MAX_FNS 32
#define EOF_WAIT_MS 2000
#define READ_CHUNK 65536

struct jkind {
  char name[64];
  char label[128];
  int max_running;
  size_t max_queued;
  bool rerunnable;
  bool remove_workdir;
  int64_t deadline_ms;
  uint64_t memory_max;
  atomic_int running;   /* written by the job thread; read by wv_job_engine_kind */
  size_t waiting;       /* mu: submitted, not yet started */
  job_t *qhead, *qtail; /* job thread */
};

typedef struct {
  char name[64];
  wv_job_fn fn;
  void *arg;
} jfn_t;

struct wv_job_ctx {
  jrun_t *run;
  char reason[WV_JOB_REASON_MAX];
};

struct jrun {
  wv_job_engine_t *e;
  job_t *job;
  uv_timer_t deadline, killer, eofwait;
  uv_process_t proc; /* the step's process when spawned by uv_spawn (no pidfd_open here) */
  uv_poll_t exitp;   /* else: its pidfd, readable when it has exited (job_step.c) */
  int pidfd;         /* -1 = none */
  uv_poll_t out;     /* the read end of the output pipe; we own outfd (see job.c) */
  int outfd;
  uv_work_t work;
  int handles; /* open handles; the run is freed when the last closes */
  bool proc_open, out_open, fn_running;
  bool exited, timed_out, cancelled, abandoned, ending;
  bool wrapped;            /* the step runs under the job runner (waved-job-exec) */
  uint64_t t_step, t_exit; /* uv_hrtime of the step's start and its process's exit (debug log) */
  atomic_bool stop_flag;   /* read by function steps */
  int64_t exit_code;
  int term_signal;
  int fn_rc;
  pid_t pid;
  uv_mutex_t log_mu; /* a function step (worker) and the job thread may both log */
  int logfd;
  uint64_t logged;
  bool truncated;
  char cgroup[PATH_MAX];
  long ooms_before;
  char cancel_reason[WV_JOB_REASON_MAX];
  wv_job_ctx_t ctx;
  char buf[READ_CHUNK];
};

/* Waiters of a job that runs on another instance (shared queue, core/job/job_queue.c). */
typedef struct rwait {
  struct rwait *next;
  jwaiter_t *waiters;
  char id[WV_JOB_ID_MAX + 1];
} rwait_t;

struct wv_job_engine {
  wv_job_opts_t opts;
  char *log_dir, *exec_path, *cgroup_hint;
  wv_job_mem_t mem;
  char cgroup_parent[PATH_MAX];
  jkind_t kinds[MAX_KINDS];
  size_t nkinds;
  jfn_t fns[MAX_FNS];
  size_t nfns;

  uv_loop_t loop;
  uv_async_t wake;
  uv_thread_t thread;
  int live_runs; /* job thread */
  bool started, joined;

  uv_mutex_t mu; /* guards everything below; a leaf lock */
  job_t *buckets[NBUCKETS];
  job_t *inbox_head, *inbox_tail;
  job_t *cancels;
  job_t *fin_head, *fin_tail;
  size_t nfinished;
  size_t nwaiters;
  bool stopping;
  rwait_t *rwaits[NBUCKETS]; /* remote jobs' waiters (shared queue only) */
};

/* Shared by job.c and job_api.c. The *_locked ones need e->mu held. */
uint32_t wv__jobeng_hash_id(const char *s);
job_t *wv__jobeng_find_locked(wv_job_engine_t *e, const char *id);
void wv__jobeng_unlink_locked(wv_job_engine_t *e, job_t *j);
/* Frees ended job j (in_finished), dropping it from the finished list, the id table and the
 * cancels; its record stays. Ended jobs are a cache of their records, so this is always safe. */
void wv__jobeng_drop_finished_locked(wv_job_engine_t *e, job_t *j);
jkind_t *wv__jobeng_find_kind(wv_job_engine_t *e, const char *name);
const jfn_t *wv__jobeng_find_fn(wv_job_engine_t *e, const char *name);
bool wv__jobeng_ended(wv_job_state_t s);
/* Removes j's workdir when its kind asks for it (remove_workdir); never follows links. */
void wv__jobeng_remove_workdir(const job_t *j);
/* Saves the record with the given state through persistence (logs failures). */
int wv__jobeng_save(wv_job_engine_t *e, const job_t *j, wv_job_state_t state);
/* Marks the job ready after its ready step: runs the on_ready waiters, saves the record. */
void wv__jobeng_mark_ready(jrun_t *r);
/* Calls and frees a list of waiters. */
void wv__jobeng_call_waiters(jwaiter_t *w, const wv_job_info_t *info);
void wv__jobeng_log_path(const wv_job_engine_t *e, const char *id, char *out, size_t n);
void wv__jobeng_on_wake(uv_async_t *a);
void wv__jobeng_job_thread(void *arg);
/* Kills what an interrupted job left running (its recorded process group, its cgroup). */
void wv__jobeng_kill_leftovers(wv_job_engine_t *e, job_t *j);
/* Inserts a QUEUED job into the table / links it into the inbox (e->mu held). */
void wv__jobeng_admit_locked(wv_job_engine_t *e, job_t *j);
void wv__jobeng_inbox_push_locked(wv_job_engine_t *e, job_t *j);
/* Info from the persisted record. 0 or WV_ENOTFOUND. */
int wv__jobeng_get_persisted(wv_job_engine_t *e, const char *id, wv_job_info_t *out);
/* Shared queue: parks a waiter of a job not in memory whose record has not ended (job_queue.c). */
int wv__jobeng_remote_wait(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg);
/* Shared queue: hands every remote waiter its info with stopping set (at stop). */
void wv__jobeng_remote_release(wv_job_engine_t *e);

/* Shared by job.c and job_step.c (job thread, unless it says otherwise). */
/* "15m", "90s", "1500ms": how a limit reads in a reason. */
void wv__jobeng_fmt_limit(int64_t ms, char *out, size_t n);
/* Appends text to the job's log, within the cap. Any thread. */
void wv__jobeng_log_write(jrun_t *r, const char *p, size_t n);
/* One formatted line (newline added) into the job's log. */
void wv__jobeng_log_linef(jrun_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a va_list (one line, '\n' added, cut at 2 KiB). */
void wv__jobeng_log_vlinef(jrun_t *r, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Sets the failure reason (first one wins) and the exit status. */
void wv__jobeng_set_reason(jrun_t *r, int exit_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Close callback of the run's handles: frees the run after its last one. */
void wv__jobeng_on_timer_closed(uv_handle_t *h);
/* Closes the log, removes the cgroup and closes the run's timers. */
void wv__jobeng_close_run(jrun_t *r);
/* Ends the run with state: log kept, record saved, waiters told, next job scheduled. */
void wv__jobeng_finish(jrun_t *r, wv_job_state_t state);
/* Starts the job's next step, or finishes the job after its last (job_step.c). */
void wv__jobeng_run_step(jrun_t *r);

#endif
