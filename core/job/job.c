/*
 * core/job/job.c — the job engine's thread (see job.h for the contract,
 * docs/jobs.md for the limits; core/job/job_api.c holds the entry points other
 * threads call, core/job/job_step.c runs a job's steps).
 *
 * DESIGN. Other threads never touch a child process or a libuv handle: they
 * put a job on the inbox (or a cancel on the cancel list) under the engine
 * mutex and wake the job thread with uv_async_send. The job thread moves
 * jobs into per-kind FIFO queues, starts as many as each kind allows, and
 * drives each running job with a jrun_t:
 *
 *   start: RUNNING saved, log file opened, cgroup made, deadline armed
 *   step:  command → posix_spawn (own session and process group, output through
 *          a pipe into the log; its exit seen on a pidfd, job_step.c) and wait for
 *          BOTH the exit and the pipe's EOF;
 *          function → uv_queue_work, wait for its after-callback
 *   end:   cgroup removed, log handed to persistence, final record saved,
 *          THEN the state becomes visible and the waiters run
 *
 * A deadline (or a cancel) sends SIGTERM to the process group and to every
 * process of the job's cgroup, then SIGKILL after the grace. When a step's
 * main process exits, whatever it left in its group is killed too, so no
 * grandchild survives its step; a pipe still held open by an escaped process
 * is closed after EOF_WAIT_MS. Records are saved on the job thread (a durable
 * store write is a few ms; the job thread has nothing more urgent to do).
 */
#include "core/job/job.h"
#include "core/siphash.h"
#include "core/err.h"
#include "core/job/job_int.h"
#include "core/job/jobmem.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rand.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* ---- small helpers ---- */

const char *wv_job_mem_name(wv_job_mem_t m) {
  static const char *const n[] = {"auto", "none", "rlimit", "cgroup-v1", "cgroup-v2"};
  return (unsigned)m < 5 ? n[m] : "unknown";
}

uint32_t wv__jobeng_hash_id(const char *s) { return (uint32_t)(wv_str_hash(s) % NBUCKETS); }

job_t *wv__jobeng_find_locked(wv_job_engine_t *e, const char *id) {
  for (job_t *j = e->buckets[wv__jobeng_hash_id(id)]; j; j = j->hnext)
    if (strcmp(j->id, id) == 0)
      return j;
  return NULL;
}

void wv__jobeng_unlink_locked(wv_job_engine_t *e, job_t *j) {
  for (job_t **p = &e->buckets[wv__jobeng_hash_id(j->id)]; *p; p = &(*p)->hnext)
    if (*p == j) {
      *p = j->hnext;
      return;
    }
}

jkind_t *wv__jobeng_find_kind(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nkinds; i++)
    if (strcmp(e->kinds[i].name, name) == 0)
      return &e->kinds[i];
  return NULL;
}

const jfn_t *wv__jobeng_find_fn(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nfns; i++)
    if (strcmp(e->fns[i].name, name) == 0)
      return &e->fns[i];
  return NULL;
}

bool wv__jobeng_ended(wv_job_state_t s) { return s == WV_JOB_SUCCEEDED || s == WV_JOB_FAILED; }

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  if (remove(path) != 0 && errno != ENOENT)
    wv_warn("jobs: cannot remove %s: %s", path, strerror(errno));
  return 0;
}

void wv__jobeng_remove_workdir(const job_t *j) {
  if (!j->kind || !j->kind->remove_workdir || !j->workdir || !*j->workdir)
    return;
  /* FTW_PHYS: a symlink planted in the work dir is removed, never followed. */
  nftw(j->workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* "15m", "90s", "1500ms": how a limit reads in a reason. */
void wv__jobeng_fmt_limit(int64_t ms, char *out, size_t n) {
  if (ms % 3600000 == 0)
    snprintf(out, n, "%lldh", (long long)(ms / 3600000));
  else if (ms % 60000 == 0)
    snprintf(out, n, "%lldm", (long long)(ms / 60000));
  else if (ms % 1000 == 0)
    snprintf(out, n, "%llds", (long long)(ms / 1000));
  else
    snprintf(out, n, "%lldms", (long long)ms);
}

void wv__jobeng_log_path(const wv_job_engine_t *e, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/%s.log", e->log_dir, id);
}

/* Appends text to the job's log, within the cap. Any thread. */
void wv__jobeng_log_write(jrun_t *r, const char *p, size_t n) {
  static const char note[] = "\n[waved: log truncated: output exceeds the log limit]\n";
  uint64_t max = r->e->opts.log_max;
  uv_mutex_lock(&r->log_mu);
  if (r->logfd >= 0 && !r->truncated) {
    bool cut = r->logged + n > max;
    if (cut)
      n = (size_t)(max - r->logged);
    if (n && write(r->logfd, p, n) > 0)
      r->logged += n;
    if (cut && write(r->logfd, note, sizeof note - 1) > 0)
      r->truncated = true;
    r->truncated = r->truncated || cut;
  }
  uv_mutex_unlock(&r->log_mu);
}

void wv__jobeng_log_vlinef(jrun_t *r, const char *fmt, va_list ap) {
  char line[2048];
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof line - 1)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  wv__jobeng_log_write(r, line, (size_t)n);
}

void wv__jobeng_log_linef(jrun_t *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wv__jobeng_log_vlinef(r, fmt, ap);
  va_end(ap);
}

/* Sets the failure reason (first one wins) and the exit status. */
void wv__jobeng_set_reason(jrun_t *r, int exit_status, const char *fmt, ...) {
  job_t *j = r->job;
  char reason[WV_JOB_REASON_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  uv_mutex_lock(&r->e->mu);
  if (!j->reason[0])
    snprintf(j->reason, sizeof j->reason, "%s", reason);
  j->exit_status = exit_status;
  uv_mutex_unlock(&r->e->mu);
}

int wv__jobeng_save(wv_job_engine_t *e, const job_t *j, wv_job_state_t state) {
  const wv_job_persist_t *p = e->opts.persist;
  if (!p)
    return 0;
  size_t len;
  char *json = wv__jobrec_to_json(j, state, &len);
  if (!json)
    return WV_ENOMEM;
  int rc = p->save(p->ctx, j->id, json, len, wv__jobeng_ended(state));
  free(json);
  if (rc)
    wv_error("jobs: %s: cannot save the %s record: %s", j->id, wv_job_state_name(state),
             wv_strerror(rc));
  return rc;
}

/* ---- killing ---- */

static void signal_job(jrun_t *r, int sig) {
  if (r->proc_open && !r->exited && r->pid > 0)
    kill(-r->pid, sig);
  if (r->cgroup[0])
    wv_jobmem_signal(r->cgroup, sig);
}

static void on_killer(uv_timer_t *t) {
  jrun_t *r = t->data;
  signal_job(r, SIGKILL);
}

/* Deadline, cancel or stop: terminate what runs now; the step's end reports it. */
static void terminate(jrun_t *r, int sig) {
  atomic_store(&r->stop_flag, true);
  signal_job(r, sig);
  if (sig != SIGKILL)
    uv_timer_start(&r->killer, on_killer, (uint64_t)r->e->opts.kill_grace_ms, 0);
}

static void on_deadline(uv_timer_t *t) {
  jrun_t *r = t->data;
  char lim[32];
  wv__jobeng_fmt_limit(r->job->deadline_ms, lim, sizeof lim);
  r->timed_out = true;
  wv__jobeng_log_linef(r, "[waved: %s timed out after %s: stopping it]", r->job->kind->label, lim);
  terminate(r, SIGTERM);
}

/* ---- handle lifetime ---- */

static void maybe_free_run(jrun_t *r) {
  if (r->handles > 0)
    return;
  wv_job_engine_t *e = r->e;
  uv_mutex_destroy(&r->log_mu);
  free(r);
  if (--e->live_runs == 0) {
    uv_mutex_lock(&e->mu);
    bool stopping = e->stopping;
    uv_mutex_unlock(&e->mu);
    if (stopping && !uv_is_closing((uv_handle_t *)&e->wake))
      uv_close((uv_handle_t *)&e->wake, NULL);
  }
}

void wv__jobeng_on_timer_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  r->handles--;
  maybe_free_run(r);
}

void wv__jobeng_close_run(jrun_t *r) {
  uv_mutex_lock(&r->log_mu);
  if (r->logfd >= 0)
    close(r->logfd);
  r->logfd = -1;
  uv_mutex_unlock(&r->log_mu);
  if (r->cgroup[0])
    wv_jobmem_destroy(r->cgroup);
  r->cgroup[0] = '\0';
  uv_close((uv_handle_t *)&r->deadline, wv__jobeng_on_timer_closed);
  uv_close((uv_handle_t *)&r->killer, wv__jobeng_on_timer_closed);
  uv_close((uv_handle_t *)&r->eofwait, wv__jobeng_on_timer_closed);
}

/* ---- job lifecycle (job thread) ---- */

/* The log goes to persistence (compressed there); the plain file is removed. */
static void keep_log(wv_job_engine_t *e, const job_t *j) {
  const wv_job_persist_t *p = e->opts.persist;
  char path[PATH_MAX];
  if (!p || !p->put_log)
    return;
  wv__jobeng_log_path(e, j->id, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0)
      close(fd);
    return;
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  ssize_t got = buf ? read(fd, buf, n) : -1;
  close(fd);
  if (got == (ssize_t)n && p->put_log(p->ctx, j->id, buf, n) == 0)
    unlink(path);
  else
    wv_warn("jobs: %s: cannot store the log; it stays in %s", j->id, path);
  free(buf);
}

void wv__jobeng_call_waiters(jwaiter_t *w, const wv_job_info_t *info) {
  while (w) {
    jwaiter_t *next = w->next;
    w->cb(w->arg, info);
    free(w);
    w = next;
  }
}

void wv__jobeng_drop_finished_locked(wv_job_engine_t *e, job_t *j) {
  job_t *prev = NULL;
  for (job_t **p = &e->fin_head; *p; prev = *p, p = &(*p)->qnext)
    if (*p == j) {
      *p = j->qnext;
      if (e->fin_tail == j)
        e->fin_tail = prev;
      e->nfinished--;
      break;
    }
  wv__jobeng_unlink_locked(e, j);
  for (job_t **c = &e->cancels; *c; c = &(*c)->cnext) /* listed, not yet handled */
    if (*c == j) {
      *c = j->cnext;
      break;
    }
  wv__jobrec_free_job(j);
}

/* Evicts the oldest ended jobs past keep_finished (their records stay). */
static void trim_finished_locked(wv_job_engine_t *e) {
  while (e->nfinished > e->opts.keep_finished)
    wv__jobeng_drop_finished_locked(e, e->fin_head);
}

/* Publishes the end of a job (whose record is saved) and wakes its waiters. */
static void publish_end(wv_job_engine_t *e, job_t *j, wv_job_state_t state) {
  wv_job_info_t info;
  uv_mutex_lock(&e->mu);
  j->state = state;
  j->run = NULL;
  jwaiter_t *w = NULL; /* reversed: waiters run in the order they registered */
  for (jwaiter_t *x = j->waiters, *next; x; x = next) {
    next = x->next;
    x->next = w;
    w = x;
    e->nwaiters--;
  }
  j->waiters = NULL;
  j->qnext = NULL;
  j->in_finished = true;
  if (e->fin_tail)
    e->fin_tail->qnext = j;
  else
    e->fin_head = j;
  e->fin_tail = j;
  e->nfinished++;
  wv__jobrec_info(j, &info);
  trim_finished_locked(e);
  uv_mutex_unlock(&e->mu);
  wv__jobeng_call_waiters(w, &info);
}

static void schedule(wv_job_engine_t *e, jkind_t *k);

void wv__jobeng_mark_ready(jrun_t *r) {
  wv_job_engine_t *e = r->e;
  job_t *j = r->job;
  wv_job_info_t info;
  jwaiter_t *w = NULL; /* the on_ready waiters, in the order they registered */
  uv_mutex_lock(&e->mu);
  j->ready = true;
  for (jwaiter_t **p = &j->waiters; *p;) {
    jwaiter_t *x = *p;
    if (!x->on_ready) {
      p = &x->next;
      continue;
    }
    *p = x->next;
    x->next = w;
    w = x;
    e->nwaiters--;
  }
  wv__jobrec_info(j, &info);
  uv_mutex_unlock(&e->mu);
  wv__jobeng_log_linef(r, "[waved: %s ready; tidying up]", j->id);
  wv__jobeng_call_waiters(w, &info);
  wv__jobeng_save(e, j, WV_JOB_RUNNING); /* a restart from here on ends it SUCCEEDED */
}

void wv__jobeng_finish(jrun_t *r, wv_job_state_t state) {
  wv_job_engine_t *e = r->e;
  job_t *j = r->job;
  if (r->ending)
    return;
  r->ending = true;
  if (state == WV_JOB_FAILED && j->ready) { /* a limit cut the tidy-up short: the result stands */
    wv__jobeng_log_linef(r, "[waved: tidy-up cut short: %s]", j->reason);
    uv_mutex_lock(&e->mu);
    j->reason[0] = '\0';
    uv_mutex_unlock(&e->mu);
    state = WV_JOB_SUCCEEDED;
  }
  uv_timer_stop(&r->deadline);
  wv__jobeng_log_linef(r, "[waved: %s %s%s%s]", j->id, wv_job_state_name(state),
                       j->reason[0] ? ": " : "", j->reason);
  wv__jobeng_close_run(r); /* closes the log and removes the cgroup before the log is kept */
  uv_mutex_lock(&e->mu);
  j->finished_ns = wv_now_ns();
  uv_mutex_unlock(&e->mu);
  keep_log(e, j);
  wv__jobeng_remove_workdir(j);
  wv__jobeng_save(e, j, state);
  char took[32];
  wv_duration_format_human(j->finished_ns - j->started_ns, took, sizeof took);
  wv_log_set_request(j->rid); /* the job thread's line about it names its request */
  wv_info("jobs: %s (%s) %s after %s%s%s", j->id, j->kind_name, wv_job_state_name(state), took,
          j->reason[0] ? ": " : "", j->reason);
  wv_log_set_request(0);
  j->kind->running--;
  jkind_t *k = j->kind;
  wv_metrics_job_end(j->kind_name, wv_job_state_name(state), j->finished_ns - j->started_ns);
  if (e->opts.queue) /* acknowledged and announced once the final record is saved */
    e->opts.queue->ended(e->opts.queue->ctx, j->kind_name, j->id, state);
  publish_end(e, j, state); /* j may be freed from here on */
  schedule(e, k);
}

/* Ends a job that never started (cancelled while queued, or a bad kind). */
static void fail_unstarted(wv_job_engine_t *e, job_t *j, const char *reason) {
  uv_mutex_lock(&e->mu);
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  j->finished_ns = wv_now_ns();
  uv_mutex_unlock(&e->mu);
  wv__jobeng_remove_workdir(j);
  wv__jobeng_save(e, j, WV_JOB_FAILED);
  wv_metrics_job_end(j->kind_name, "FAILED", 0);
  if (e->opts.queue)
    e->opts.queue->ended(e->opts.queue->ctx, j->kind_name, j->id, WV_JOB_FAILED);
  publish_end(e, j, WV_JOB_FAILED);
}

static int open_log(wv_job_engine_t *e, const job_t *j) {
  char path[PATH_MAX];
  wv__jobeng_log_path(e, j->id, path, sizeof path);
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void start_job(wv_job_engine_t *e, job_t *j) {
  jrun_t *r = calloc(1, sizeof *r);
  if (!r) {
    wv_error("jobs: %s: out of memory starting the job", j->id);
    j->kind->running--;
    return fail_unstarted(e, j, "waved ran out of memory starting the job");
  }
  if (uv_mutex_init(&r->log_mu)) {
    free(r);
    j->kind->running--;
    return fail_unstarted(e, j, "waved could not start the job (mutex)");
  }
  r->e = e;
  r->job = j;
  r->ctx.run = r;
  r->logfd = open_log(e, j);
  r->pidfd = -1;
  atomic_init(&r->stop_flag, false);
  uv_timer_init(&e->loop, &r->deadline);
  uv_timer_init(&e->loop, &r->killer);
  uv_timer_init(&e->loop, &r->eofwait);
  r->deadline.data = r->killer.data = r->eofwait.data = r;
  r->handles = 3;
  e->live_runs++;
  bool cg = e->mem == WV_JOB_MEM_CGROUP1 || e->mem == WV_JOB_MEM_CGROUP2;
  if (cg && j->memory_max &&
      wv_jobmem_create(e->mem, e->cgroup_parent, j->id, j->memory_max, r->cgroup,
                       sizeof r->cgroup) != 0)
    r->cgroup[0] = '\0';
  if (r->cgroup[0])
    r->ooms_before = wv_jobmem_oom_kills(e->mem, r->cgroup);
  uv_mutex_lock(&e->mu);
  j->run = r;
  j->step = 0;
  j->started_ns = wv_now_ns();
  j->reason[0] = '\0';
  j->exit_status = -1;
  uv_mutex_unlock(&e->mu);
  /* A first step run through the job runner saves the RUNNING record itself, with the runner's
   * group, right after the spawn (core/job/job_step.c): one durable write fewer before the
   * step starts. A crash in between leaves the QUEUED record, which local recovery treats as
   * it treats a RUNNING one without a group. Not with a shared queue: another instance would
   * run a job found QUEUED again (core/job/job_queue.c). */
  bool saved_by_step =
      !e->opts.queue && j->nsteps > 0 && j->steps[0].type == WV_JOB_STEP_CMD && e->exec_path;
  if (!saved_by_step)
    wv__jobeng_save(e, j, WV_JOB_RUNNING);
  uv_mutex_lock(&e->mu);
  j->state = WV_JOB_RUNNING;
  uv_mutex_unlock(&e->mu);
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)j->deadline_ms, 0);
  wv__jobeng_run_step(r);
}

static void schedule(wv_job_engine_t *e, jkind_t *k) {
  while (k->running < k->max_running && k->qhead) {
    job_t *j = k->qhead;
    k->qhead = j->qnext;
    if (!k->qhead)
      k->qtail = NULL;
    j->qnext = NULL;
    k->running++;
    uv_mutex_lock(&e->mu);
    k->waiting--;
    uv_mutex_unlock(&e->mu);
    start_job(e, j);
  }
}

static void enqueue(jkind_t *k, job_t *j) {
  j->qnext = NULL;
  if (k->qtail)
    k->qtail->qnext = j;
  else
    k->qhead = j;
  k->qtail = j;
}

/* A cancel request for a queued job removes it from its queue. */
static bool dequeue(jkind_t *k, job_t *j) {
  job_t *prev = NULL;
  for (job_t *x = k->qhead; x; prev = x, x = x->qnext) {
    if (x != j)
      continue;
    if (prev)
      prev->qnext = x->qnext;
    else
      k->qhead = x->qnext;
    if (k->qtail == x)
      k->qtail = prev;
    x->qnext = NULL;
    return true;
  }
  return false;
}

static void handle_cancel(wv_job_engine_t *e, job_t *j, const char *reason) {
  jrun_t *r = j->run;
  if (r && !r->ending) {
    snprintf(r->cancel_reason, sizeof r->cancel_reason, "%s", reason);
    r->cancelled = true;
    wv__jobeng_log_linef(r, "[waved: cancelled: %s]", reason);
    terminate(r, SIGTERM);
  } else if (!r && dequeue(j->kind, j)) {
    uv_mutex_lock(&e->mu);
    j->kind->waiting--;
    uv_mutex_unlock(&e->mu);
    fail_unstarted(e, j, reason);
  }
}

typedef struct {
  wv_job_info_t info;
  jwaiter_t *waiters;
} parked_t;

/* Hands every waiter of a job that has not ended its info with stopping set. */
static void release_waiters_on_stop(wv_job_engine_t *e) {
  uv_mutex_lock(&e->mu);
  size_t n = 0, cap = 0;
  for (size_t b = 0; b < NBUCKETS; b++)
    for (job_t *j = e->buckets[b]; j; j = j->hnext)
      cap += j->waiters != NULL;
  parked_t *p = cap ? calloc(cap, sizeof *p) : NULL;
  for (size_t b = 0; p && b < NBUCKETS; b++)
    for (job_t *j = e->buckets[b]; j; j = j->hnext) {
      if (!j->waiters)
        continue;
      wv__jobrec_info(j, &p[n].info);
      p[n].info.stopping = true;
      p[n].waiters = j->waiters;
      for (jwaiter_t *x = j->waiters; x; x = x->next)
        e->nwaiters--;
      j->waiters = NULL;
      n++;
    }
  uv_mutex_unlock(&e->mu);
  if (cap && !p)
    wv_error("jobs: out of memory releasing waiters at stop");
  for (size_t i = 0; i < n; i++)
    wv__jobeng_call_waiters(p[i].waiters, &p[i].info);
  free(p);
}

/* Kills every running child (records stay RUNNING: the next start recovers). */
static void begin_stop(wv_job_engine_t *e) {
  jrun_t **runs = e->live_runs ? calloc((size_t)e->live_runs, sizeof *runs) : NULL;
  size_t n = 0;
  uv_mutex_lock(&e->mu);
  for (size_t b = 0; runs && b < NBUCKETS; b++)
    for (job_t *j = e->buckets[b]; j; j = j->hnext)
      if (j->run && !j->run->ending && n < (size_t)e->live_runs)
        runs[n++] = j->run;
  uv_mutex_unlock(&e->mu);
  for (size_t i = 0; i < n; i++) {
    jrun_t *r = runs[i];
    r->abandoned = true;
    terminate(r, SIGKILL);
    if (!r->proc_open && !r->out_open && !r->fn_running)
      wv__jobeng_close_run(r);
  }
  free(runs);
  release_waiters_on_stop(e);
  wv__jobeng_remote_release(e);
  if (e->live_runs == 0)
    uv_close((uv_handle_t *)&e->wake, NULL);
}

#define MAX_CANCELS_PER_WAKE 256

void wv__jobeng_on_wake(uv_async_t *a) {
  wv_job_engine_t *e = a->data;
  char(*ids)[WV_JOB_ID_MAX + 1] = NULL;
  size_t nids = 0;
  uv_mutex_lock(&e->mu);
  job_t *in = e->inbox_head;
  e->inbox_head = e->inbox_tail = NULL;
  bool stopping = e->stopping;
  /* Cancels are handled by id: a listed job may end (and be evicted) meanwhile. */
  if (!stopping && e->cancels && (ids = malloc(MAX_CANCELS_PER_WAKE * sizeof *ids)))
    while (e->cancels && nids < MAX_CANCELS_PER_WAKE) {
      snprintf(ids[nids++], sizeof ids[0], "%s", e->cancels->id);
      e->cancels = e->cancels->cnext;
    }
  bool more = e->cancels != NULL;
  uv_mutex_unlock(&e->mu);
  if (stopping) {
    if (!uv_is_closing((uv_handle_t *)&e->wake))
      begin_stop(e);
    return;
  }
  while (in) {
    job_t *next = in->qnext;
    enqueue(in->kind, in);
    in = next;
  }
  for (size_t i = 0; i < nids; i++) {
    char reason[WV_JOB_REASON_MAX];
    uv_mutex_lock(&e->mu);
    job_t *j = wv__jobeng_find_locked(e, ids[i]);
    if (j)
      snprintf(reason, sizeof reason, "%s", j->cancel_reason);
    uv_mutex_unlock(&e->mu);
    if (j && !wv__jobeng_ended(j->state))
      handle_cancel(e, j, reason);
  }
  free(ids);
  if (more)
    uv_async_send(&e->wake);
  for (size_t i = 0; i < e->nkinds; i++)
    schedule(e, &e->kinds[i]);
}

void wv__jobeng_job_thread(void *arg) {
  wv_job_engine_t *e = arg;
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}
