/*
 * core/job/job.h — the job engine (architecture §2.4): one thread with its own libuv loop
 * owns every child process waved starts (builders, copies, scanners).
 *
 * A job has a kind (registered with a concurrency limit; jobs past the limit
 * wait in a FIFO queue), a deadline, a memory limit and a list of steps run
 * in order. A step is either a command (argv, env, cwd; spawned detached so it
 * leads its own process group, stdout and stderr appended to the job's log)
 * or a function (a registered C callback run on a libuv worker thread, such
 * as "import the OCI layout into the blob store"). The first failing step
 * ends the job FAILED with a reason that says what failed, or which limit was
 * exceeded ("Container build timed out after 15m", "... exceeded the memory
 * limit of 3600MiB"). How each limit is enforced is in docs/jobs.md.
 *
 * Jobs are durable: every state change is saved through wv_job_persist_t
 * (core/ cannot include storage/; core/main.c plugs storage/jobstore.h in).
 * At start the engine reloads the records: jobs found QUEUED or RUNNING are
 * re-queued when their kind is re-runnable, otherwise marked FAILED with the
 * reason WV_JOB_REASON_RESTART. A job is never forgotten.
 *
 * Waiters (parking): wv_job_on_done registers a callback that runs exactly
 * once when the job ends, or at once if it already ended. A waiter costs one
 * small allocation, no thread. wv_job_on_ready runs it earlier, once the
 * job's result is known: a step marked `ready` succeeded and the steps left
 * only tidy up (a build's prune of the builder's storage, docs/jobs.md).
 *
 * Thread rules:
 *   - register_kind / register_fn: before wv_job_engine_start, one thread.
 *   - submit, on_done, get, log, cancel: any thread, any time between start
 *     and stop. submit blocks until the QUEUED record is saved.
 *   - wv_job_done_cb runs on the job thread, or on the caller's thread inside
 *     wv_job_on_done when the job had already ended. It must not block and
 *     must not call wv_job_engine_stop; calling wv_job_on_done/get/submit from
 *     it is fine (the engine lock is not held while callbacks run).
 *   - wv_job_fn runs on a libuv worker thread; only one step of a job runs at
 *     a time, so it owns its job context alone.
 *   - The persistence callbacks run on the job thread (save, put_log), on the
 *     submitting thread (save of a new job), on the thread calling start
 *     (load_all) and on callers of get/on_done/log (get, get_log). They must
 *     be thread-safe and may block (a durable store write).
 *   - stop and free: once, from the thread that started the engine.
 * The engine mutex is a leaf: no callback runs while it is held.
 */
#ifndef WV_JOB_H
#define WV_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_JOB_ID_MAX 128               /* bytes of an id, without the NUL: [A-Za-z0-9._-]+ */
#define WV_JOB_REASON_MAX 512           /* bytes of a failure reason, with the NUL */
#define WV_JOB_STEPS_MAX 16             /* steps in one job */
#define WV_JOB_ARGS_MAX 256             /* argv or env entries of one command step */
#define WV_JOB_RECORD_MAX (256u * 1024) /* bytes of a serialised job record */
#define WV_JOB_REASON_RESTART "waved restarted while the job was running"
/* A job of a kind that is not re-runnable whose instance died (shared queue, its lease expired). */
#define WV_JOB_REASON_LOST                                                                         \
  "the waved instance running the job stopped answering (its lease expired)"

typedef struct wv_job_engine wv_job_engine_t;
typedef struct wv_job_ctx wv_job_ctx_t;

typedef enum { WV_JOB_QUEUED = 0, WV_JOB_RUNNING, WV_JOB_SUCCEEDED, WV_JOB_FAILED } wv_job_state_t;

/* "QUEUED", "RUNNING", "SUCCEEDED", "FAILED". */
const char *wv_job_state_name(wv_job_state_t s);
/* True when json is a whole job record (persistence's format) of a job that ended (SUCCEEDED
 * or FAILED): such a record never changes again, so it may be cached (wv_store_get_final). */
bool wv_job_record_final(const void *json, size_t len);

/* How the memory limit of command steps is enforced (docs/jobs.md). */
typedef enum {
  WV_JOB_MEM_AUTO = 0, /* option only: the strongest the host allows */
  WV_JOB_MEM_NONE,     /* no limit (no wrapper binary, or disabled) */
  WV_JOB_MEM_RLIMIT,   /* RLIMIT_AS set by the exec wrapper */
  WV_JOB_MEM_CGROUP1,  /* cgroup v1 memory controller: memory.limit_in_bytes */
  WV_JOB_MEM_CGROUP2   /* cgroup v2: memory.max */
} wv_job_mem_t;

/* "auto", "none", "rlimit", "cgroup-v1", "cgroup-v2". */
const char *wv_job_mem_name(wv_job_mem_t m);

typedef enum { WV_JOB_STEP_CMD = 0, WV_JOB_STEP_FN } wv_job_step_type_t;

/* One step. Every pointer is borrowed: submit copies what it needs. */
typedef struct {
  wv_job_step_type_t type;
  const char *name;        /* for logs and reasons ("build", "push"); NULL = argv[0] / fn */
  const char *const *argv; /* CMD: NULL-terminated, argv[0] searched in PATH */
  const char *const *env;  /* CMD: NULL-terminated "K=V"; NULL = waved's environment */
  const char *cwd;         /* CMD: NULL = the job's workdir (or waved's cwd) */
  const char *fn;          /* FN: name given to wv_job_register_fn */
  const char *arg;         /* FN: string argument, saved with the record (may be NULL) */
  bool may_fail;           /* a failure of this step is logged, not fatal (cleanup steps) */
  bool ready;              /* the result is known once this step succeeded: every later step must be
                              may_fail (tidy-up); wv_job_on_ready waiters run then, and a timeout,
                              cancel or restart after it ends the job SUCCEEDED */
} wv_job_step_t;

typedef struct {
  const char *name;    /* "build", "mirror", "scan" ... */
  const char *label;   /* starts failure reasons: "Container build" */
  int max_running;     /* concurrency limit, >= 1 */
  size_t max_queued;   /* cap on waiting jobs, 0 = 10000; past it submit is WV_EBUSY */
  bool rerunnable;     /* re-queue (not fail) jobs interrupted by a restart */
  int64_t deadline_ms; /* default deadline from the start of the job, > 0 */
  uint64_t memory_max; /* default memory limit in bytes, 0 = none */
  bool remove_workdir; /* remove a job's workdir once it ended, however it ended: work dirs
                          may hold credentials and build contexts that must not pile up */
} wv_job_kind_t;

typedef struct {
  const char *id;      /* NULL = generated "job-<12 hex>"; else unique, [A-Za-z0-9._-] */
  const char *kind;    /* a registered kind */
  const char *workdir; /* default cwd of command steps and given to fn steps; may be NULL */
  int64_t deadline_ms; /* 0 = the kind's default */
  uint64_t memory_max; /* 0 = the kind's default */
  const wv_job_step_t *steps;
  size_t nsteps; /* 1..WV_JOB_STEPS_MAX */
} wv_job_spec_t;

/* A snapshot of a job, owned by whoever holds it (no pointers inside). */
typedef struct {
  char id[WV_JOB_ID_MAX + 1];
  char kind[64];
  wv_job_state_t state;
  int64_t created_ns, started_ns, finished_ns; /* unix ns; 0 = not yet */
  int exit_status; /* last command's exit code; 128+n if killed by signal n; -1 timeout/none */
  char reason[WV_JOB_REASON_MAX]; /* "" unless FAILED */
  bool stopping; /* set only for waiters released by wv_job_engine_stop (job not ended) */
  bool ready;    /* its `ready` step succeeded (the result is known; tidy-up may still run) */
} wv_job_info_t;

/* Runs once per waiter; info is valid during the call only. */
typedef void (*wv_job_done_cb)(void *arg, const wv_job_info_t *info);

/*
 * A function step. Returns 0 or a WV_E* code; on failure it should say why
 * with wv_job_ctx_fail (else the reason is "<label> failed: step '<name>':
 * <wv_strerror>"). Long work should poll wv_job_ctx_cancelled.
 */
typedef int (*wv_job_fn)(wv_job_ctx_t *ctx, void *fn_arg, const char *step_arg);

const char *wv_job_ctx_id(const wv_job_ctx_t *ctx);
const char *wv_job_ctx_workdir(const wv_job_ctx_t *ctx); /* may be NULL */
/* Appends one line to the job's log. */
void wv_job_ctx_logf(wv_job_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the failure reason (the step must still return non-zero). */
void wv_job_ctx_fail(wv_job_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True once the deadline passed or the engine is stopping. */
bool wv_job_ctx_cancelled(const wv_job_ctx_t *ctx);

/*
 * Persistence (all callbacks required unless noted). Records are JSON text
 * (at most WV_JOB_RECORD_MAX bytes) keyed by job id. final is true for the
 * SUCCEEDED/FAILED record, so an implementation may give it an expiry.
 * Each returns 0 or a WV_E* code.
 */
typedef int (*wv_job_record_cb)(void *arg, const char *id, const char *json, size_t len);
typedef struct {
  void *ctx;
  int (*save)(void *ctx, const char *id, const char *json, size_t len, bool final);
  /* Calls each(arg, ...) for every stored record; stops at each's first non-zero return. */
  int (*load_all)(void *ctx, wv_job_record_cb each, void *arg);
  /* *json malloc'd, freed by the caller; WV_ENOTFOUND when unknown. */
  int (*get)(void *ctx, const char *id, char **json, size_t *len);
  /* Keeps the final log of a job (may be NULL: the plain log file stays in log_dir). */
  int (*put_log)(void *ctx, const char *id, const void *data, size_t len);
  /* Reads it back, at most max bytes (the tail); NULL when put_log is NULL. */
  int (*get_log)(void *ctx, const char *id, size_t max, char **out, size_t *len);
  /* Optional: saves the QUEUED record of a new job only if the id is free (WV_EEXISTS when
   * another instance holds it); NULL = save. */
  int (*create)(void *ctx, const char *id, const char *json, size_t len);
} wv_job_persist_t;

/*
 * A queue shared by several instances (state.backend: redis, docs/scale-out.md "Job queue").
 * With one, wv_job_submit saves the QUEUED record and hands the job to enqueue instead of running
 * it here; whoever takes it from the queue calls wv_job_adopt on its own engine, which runs it
 * with its kind's limits. Recovery at start is the queue's (wv_job_adopt with
 * WV_JOB_ADOPT_RECOVER), not load_all's.
 */
typedef struct {
  void *ctx;
  /* The job's QUEUED record is saved: queue it. Any thread. */
  int (*enqueue)(void *ctx, const char *kind, const char *id);
  /* A job adopted here ended and its final record is saved (job thread). */
  void (*ended)(void *ctx, const char *kind, const char *id, wv_job_state_t state);
} wv_job_queue_t;

typedef struct {
  const char *log_dir;             /* live logs: <log_dir>/<id>.log (created 0700); required */
  const wv_job_persist_t *persist; /* NULL = nothing survives a restart (tests only) */
  /*
   * The job runner: a binary that implements wv_job_exec_main when run as
   * "<exec_path> --job-exec ...": waved-job-exec (wv_job_runner_path), or waved
   * itself. It puts the child into its cgroup or sets its RLIMIT_AS before the
   * real command runs. NULL = no wrapper: commands run directly and only a
   * cgroup limit moved in after spawn can apply.
   */
  const char *exec_path;
  wv_job_mem_t mem;            /* AUTO = detect (docs/jobs.md) */
  const char *cgroup_dir;      /* AUTO only: parent cgroup to use; NULL = our own cgroup */
  int64_t kill_grace_ms;       /* SIGTERM → SIGKILL delay at a deadline; 0 = 5000 */
  uint64_t log_max;            /* bytes of output kept per job; 0 = 16 MiB */
  size_t max_waiters;          /* across all jobs; 0 = 100000; past it on_done is WV_EBUSY */
  size_t keep_finished;        /* ended jobs kept in memory for fast lookups; 0 = 1024 */
  const wv_job_queue_t *queue; /* NULL = jobs run where they are submitted (one instance) */
  /* With a queue: a job taken over from a dead instance (WV_JOB_ADOPT_RECLAIM) is run again
   * from its first step whatever its kind (its work directory is on a shared path); false =
   * only re-runnable kinds, the others fail with WV_JOB_REASON_LOST. */
  bool rerun_reclaimed;
} wv_job_opts_t;

/* Fills o with the defaults above (log_dir must still be set). */
void wv_job_opts_init(wv_job_opts_t *o);

/* Creates an engine (not started). Returns 0 and *out, WV_EINVAL or WV_ENOMEM. */
int wv_job_engine_new(const wv_job_opts_t *opts, wv_job_engine_t **out);

/* Before start. kind->name and label are copied. 0, WV_EEXISTS, WV_EINVAL, WV_ENOMEM. */
int wv_job_register_kind(wv_job_engine_t *e, const wv_job_kind_t *kind);
/* Before start. fn_arg is borrowed for the engine's life. 0, WV_EEXISTS, WV_EINVAL, WV_ENOMEM. */
int wv_job_register_fn(wv_job_engine_t *e, const char *name, wv_job_fn fn, void *fn_arg);

/*
 * Detects the memory-limit mechanism, reloads persisted jobs (recovery as
 * described above) and starts the job thread. Returns 0, WV_EIO (log_dir),
 * WV_ESTORE (load_all failed), WV_ENOMEM, WV_EINTERNAL.
 */
int wv_job_engine_start(wv_job_engine_t *e);

/*
 * The i-th registered kind (0 .. kinds-1): its name (copied into name, 64 bytes), jobs
 * running now and jobs waiting in its queue. WV_ENOTFOUND past the last kind. Any thread.
 */
int wv_job_engine_kind(wv_job_engine_t *e, size_t i, char *name, int *running, size_t *waiting);

/*
 * Snapshots of the jobs the engine holds in memory (queued, running, and the
 * last opts.keep_finished ended), at most max of them, in no order. Returns
 * how many were written to out. Any thread.
 */
size_t wv_job_engine_list(wv_job_engine_t *e, wv_job_info_t *out, size_t max);

/* The mechanism detected at start. */
wv_job_mem_t wv_job_engine_mem(const wv_job_engine_t *e);

/*
 * Queues a job, durably: the QUEUED record is saved before it returns. The
 * job id is copied to id_out (WV_JOB_ID_MAX + 1 bytes; may be NULL).
 * Returns 0, WV_EINVAL (unknown kind or fn, bad id, bad steps), WV_EEXISTS
 * (the id is taken), WV_EBUSY (the kind's queue is full), WV_ECLOSED
 * (stopping), WV_ENOMEM, or the save's error.
 */
int wv_job_submit(wv_job_engine_t *e, const wv_job_spec_t *spec, char *id_out);

/*
 * Registers cb(arg, info) to run once when job id ends (SUCCEEDED or FAILED).
 * If it already ended (in memory or in the persisted records), cb runs now on
 * this thread before the call returns 0. Waiters of a job run in the order
 * they registered. Returns 0, WV_ENOTFOUND (no such
 * job: cb never runs), WV_EBUSY (too many waiters), WV_ECLOSED, WV_ENOMEM.
 * At stop, waiters of jobs still running get cb with info->stopping set.
 */
int wv_job_on_done(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg);
/*
 * The same, but cb runs as soon as the job is ready (its `ready` step
 * succeeded; info->ready set, info->state RUNNING) or, without such a step,
 * when it ends. A job that is ready already, or ended, runs cb now.
 */
int wv_job_on_ready(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg);

/* Snapshot of a job, from memory or the persisted record. 0 or WV_ENOTFOUND. */
int wv_job_get(wv_job_engine_t *e, const char *id, wv_job_info_t *out);

/*
 * The job's output, readable while it runs and after: at most max bytes
 * (the tail when longer), *out malloc'd and NUL-terminated (freed by the
 * caller). 0, WV_ENOTFOUND, WV_EIO, WV_ENOMEM.
 */
int wv_job_log(wv_job_engine_t *e, const char *id, size_t max, char **out, size_t *len);

/*
 * Ends a queued or running job as FAILED with reason (running children get
 * SIGTERM, then SIGKILL after the grace). Asynchronous: returns 0 once
 * requested, WV_ENOTFOUND, or WV_EINVAL when the job already ended.
 */
int wv_job_cancel(wv_job_engine_t *e, const char *id, const char *reason);

/*
 * Stops the job thread: refuses new work, SIGKILLs every running child's
 * process group (their records stay RUNNING, so the next start recovers
 * them), waits for running function steps to return, and releases waiters
 * (info->stopping). Idempotent.
 */
void wv_job_engine_stop(wv_job_engine_t *e);
/* Stops if needed and frees. NULL is a no-op. */
void wv_job_engine_free(wv_job_engine_t *e);

/* ---- the shared queue (opts.queue set; core/job/job_queue.c) ---- */

typedef enum {
  WV_JOB_ADOPT_NEW = 0, /* read from the queue: run it */
  WV_JOB_ADOPT_RECLAIM, /* its instance died (lease expired): re-run or fail (WV_JOB_REASON_LOST) */
  WV_JOB_ADOPT_RECOVER  /* this instance's own, found after a restart (WV_JOB_REASON_RESTART) */
} wv_job_adopt_t;

/*
 * Takes job id (whose lease the caller holds) from the persisted record into this engine. A
 * QUEUED record is run; a RUNNING one (RECLAIM, RECOVER) is run again from its first step when its
 * kind is re-runnable (or, for RECLAIM, when opts.rerun_reclaimed), else saved FAILED with the
 * reason above. Sets *ended when the job has
 * ended (already, or failed now): the caller acknowledges it and tells the other instances; the
 * queue's ended callback is not called for it. 0, WV_ENOTFOUND (no record), WV_EINVAL (unknown
 * kind), WV_ECLOSED, WV_ENOMEM, or the save's error. Any thread.
 */
int wv_job_adopt(wv_job_engine_t *e, const char *id, wv_job_adopt_t how, bool *ended);

/*
 * Job id (whose lease the caller holds) was taken by too many instances that all stopped
 * answering (state.redis.job-max-deliveries): it is not run again here but saved FAILED with
 * reason (what a RUNNING record's instance left in its log is kept, with the reason after it).
 * Sets *ended as wv_job_adopt does (also when it had ended already). 0, WV_ENOTFOUND,
 * WV_EINVAL, WV_ECLOSED, WV_ENOMEM or the save's error. Any thread.
 */
int wv_job_abandon(wv_job_engine_t *e, const char *id, const char *reason, bool *ended);

/*
 * Job id ended on another instance (a message, or the slow poll): its waiters here run when its
 * persisted record says it ended. Any thread but the job thread's callbacks.
 */
void wv_job_remote_ended(wv_job_engine_t *e, const char *id);

/* Ids of jobs that have waiters here but run elsewhere, at most max; how many. Any thread. */
size_t wv_job_remote_waited(wv_job_engine_t *e, char (*ids)[WV_JOB_ID_MAX + 1], size_t max);

/* The concurrency limit of the i-th registered kind; 0 past the last. Any thread. */
int wv_job_engine_kind_max(wv_job_engine_t *e, size_t i);

/* True while job id runs (or waits to) in this engine. */
bool wv_job_local(wv_job_engine_t *e, const char *id);

/*
 * The job runner (core/job/runner.c, docs/jobs.md): main() of waved-job-exec, and of waved
 * when argv[1] is "--job-exec"; returns its result. Usage:
 *   [--job-exec] --parent PID --job ID [--cgroup DIR | --rlimit-as BYTES] -- CMD ARGS...
 * Joins DIR (writes its pid to DIR/cgroup.procs) or sets RLIMIT_AS, then, with --parent,
 * forks CMD and supervises it (dies with PID, kills what CMD leaves, exits as CMD did);
 * without, execvp()s CMD. Returns only on failure: 126 (setup failed) or 127 (exec failed),
 * after a line on stderr (which is the job's log).
 */
int wv_job_exec_main(int argc, char **argv);

/*
 * The runner waved spawns for its command steps: waved-job-exec in self's directory (a build
 * tree), else in <self's directory>/<libexec_rel>/waved/ (an install, libexec_rel "../libexec"),
 * else self (then "waved --job-exec"). out (n bytes) holds the path found; returns out or self.
 */
const char *wv_job_runner_path(const char *self, const char *libexec_rel, char *out, size_t n);

#endif
