/*
 * core/job.c — the job engine (see job.h for the contract, docs/jobs.md for
 * the limits).
 *
 * DESIGN. Other threads never touch a child process or a libuv handle: they
 * put a job on the inbox (or a cancel on the cancel list) under the engine
 * mutex and wake the job thread with uv_async_send. The job thread moves
 * jobs into per-kind FIFO queues, starts as many as each kind allows, and
 * drives each running job with a jrun_t:
 *
 *   start: RUNNING saved, log file opened, cgroup made, deadline armed
 *   step:  command → uv_spawn (detached = own process group, output through
 *          a pipe into the log) and wait for BOTH the exit and the pipe's EOF;
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
#include "core/job.h"
#include "core/err.h"
#include "core/job_int.h"
#include "core/jobmem.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
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
  int64_t deadline_ms;
  uint64_t memory_max;
  int running;     /* job thread */
  size_t waiting;  /* mu: submitted, not yet started */
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
  uv_process_t proc;
  uv_pipe_t out;
  uv_work_t work;
  int handles;      /* open handles; the run is freed when the last closes */
  bool proc_open, out_open, fn_running;
  bool exited, timed_out, cancelled, abandoned, ending;
  atomic_bool stop_flag; /* read by function steps */
  int64_t exit_code;
  int term_signal;
  int fn_rc;
  pid_t pid;
  int logfd;
  uint64_t logged;
  bool truncated;
  char cgroup[PATH_MAX];
  long ooms_before;
  char cancel_reason[WV_JOB_REASON_MAX];
  wv_job_ctx_t ctx;
  char buf[READ_CHUNK];
};

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
};

static void run_step(jrun_t *r);
static void finish(jrun_t *r, wv_job_state_t state);

/* ---- small helpers ---- */

const char *wv_job_mem_name(wv_job_mem_t m) {
  static const char *const n[] = {"auto", "none", "rlimit", "cgroup-v1", "cgroup-v2"};
  return (unsigned)m < 5 ? n[m] : "unknown";
}

static uint32_t hash_id(const char *s) {
  uint32_t h = 2166136261u;
  while (*s)
    h = (h ^ (uint8_t)*s++) * 16777619u;
  return h % NBUCKETS;
}

static job_t *find_locked(wv_job_engine_t *e, const char *id) {
  for (job_t *j = e->buckets[hash_id(id)]; j; j = j->hnext)
    if (strcmp(j->id, id) == 0)
      return j;
  return NULL;
}

static void unlink_locked(wv_job_engine_t *e, job_t *j) {
  for (job_t **p = &e->buckets[hash_id(j->id)]; *p; p = &(*p)->hnext)
    if (*p == j) {
      *p = j->hnext;
      return;
    }
}

static jkind_t *find_kind(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nkinds; i++)
    if (strcmp(e->kinds[i].name, name) == 0)
      return &e->kinds[i];
  return NULL;
}

static const jfn_t *find_fn(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nfns; i++)
    if (strcmp(e->fns[i].name, name) == 0)
      return &e->fns[i];
  return NULL;
}

static bool ended(wv_job_state_t s) { return s == WV_JOB_SUCCEEDED || s == WV_JOB_FAILED; }

/* "15m", "90s", "1500ms": how a limit reads in a reason. */
static void fmt_limit(int64_t ms, char *out, size_t n) {
  if (ms % 3600000 == 0)
    snprintf(out, n, "%lldh", (long long)(ms / 3600000));
  else if (ms % 60000 == 0)
    snprintf(out, n, "%lldm", (long long)(ms / 60000));
  else if (ms % 1000 == 0)
    snprintf(out, n, "%llds", (long long)(ms / 1000));
  else
    snprintf(out, n, "%lldms", (long long)ms);
}

static void log_path(const wv_job_engine_t *e, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/%s.log", e->log_dir, id);
}

/* Appends text to the job's log, within the cap. */
static void log_write(jrun_t *r, const char *p, size_t n) {
  uint64_t max = r->e->opts.log_max;
  if (r->logfd < 0 || r->truncated)
    return;
  if (r->logged + n > max) {
    static const char note[] = "\n[waved: log truncated: output exceeds the log limit]\n";
    n = (size_t)(max - r->logged);
    r->truncated = true;
    if (n && write(r->logfd, p, n) < 0)
      return;
    r->logged += n;
    if (write(r->logfd, note, sizeof note - 1) < 0)
      return;
    return;
  }
  if (n && write(r->logfd, p, n) > 0)
    r->logged += n;
}

static void log_linef(jrun_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_linef(jrun_t *r, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof line - 1)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  log_write(r, line, (size_t)n);
}

/* Sets the failure reason (first one wins) and the exit status. */
static void set_reason(jrun_t *r, int exit_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(jrun_t *r, int exit_status, const char *fmt, ...) {
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

static int save(wv_job_engine_t *e, const job_t *j, wv_job_state_t state) {
  const wv_job_persist_t *p = e->opts.persist;
  if (!p)
    return 0;
  size_t len;
  char *json = wv_jobrec_to_json(j, state, &len);
  if (!json)
    return WV_ENOMEM;
  int rc = p->save(p->ctx, j->id, json, len, ended(state));
  free(json);
  if (rc)
    wv_error("jobs: %s: cannot save the %s record: %s", j->id, wv_job_state_name(state),
             wv_strerror(rc));
  return rc;
}

/* ---- function-step context ---- */

const char *wv_job_ctx_id(const wv_job_ctx_t *ctx) { return ctx->run->job->id; }
const char *wv_job_ctx_workdir(const wv_job_ctx_t *ctx) { return ctx->run->job->workdir; }
bool wv_job_ctx_cancelled(const wv_job_ctx_t *ctx) {
  return atomic_load(&((jrun_t *)ctx->run)->stop_flag);
}

void wv_job_ctx_logf(wv_job_ctx_t *ctx, const char *fmt, ...) {
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof line - 1)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  log_write(ctx->run, line, (size_t)n);
}

void wv_job_ctx_fail(wv_job_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->reason, sizeof ctx->reason, fmt, ap);
  va_end(ap);
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
  fmt_limit(r->job->deadline_ms, lim, sizeof lim);
  r->timed_out = true;
  log_linef(r, "[waved: %s timed out after %s: stopping it]", r->job->kind->label, lim);
  terminate(r, SIGTERM);
}

/* ---- handle lifetime ---- */

static void maybe_free_run(jrun_t *r) {
  if (r->handles > 0)
    return;
  wv_job_engine_t *e = r->e;
  free(r);
  if (--e->live_runs == 0) {
    uv_mutex_lock(&e->mu);
    bool stopping = e->stopping;
    uv_mutex_unlock(&e->mu);
    if (stopping && !uv_is_closing((uv_handle_t *)&e->wake))
      uv_close((uv_handle_t *)&e->wake, NULL);
  }
}

static void on_timer_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  r->handles--;
  maybe_free_run(r);
}

static void close_run(jrun_t *r) {
  if (r->logfd >= 0)
    close(r->logfd);
  r->logfd = -1;
  if (r->cgroup[0])
    wv_jobmem_destroy(r->cgroup);
  r->cgroup[0] = '\0';
  uv_close((uv_handle_t *)&r->deadline, on_timer_closed);
  uv_close((uv_handle_t *)&r->killer, on_timer_closed);
  uv_close((uv_handle_t *)&r->eofwait, on_timer_closed);
}

/* ---- command steps ---- */

/* Heuristic for RLIMIT_AS: the limit makes allocations fail, which programs
 * report in their own words; look for the usual ones near the end of the log. */
static bool log_says_oom(jrun_t *r) {
  char tail[4097], path[PATH_MAX];
  log_path(r->e, r->job->id, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  off_t end = lseek(fd, 0, SEEK_END);
  off_t off = end > 4096 ? end - 4096 : 0;
  ssize_t n = pread(fd, tail, 4096, off);
  close(fd);
  if (n <= 0)
    return false;
  tail[n] = '\0';
  static const char *const words[] = {"Cannot allocate memory", "out of memory", "MemoryError",
                                      "bad_alloc", "memory exhausted"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    if (strstr(tail, words[i]))
      return true;
  return false;
}

static bool memory_exceeded(jrun_t *r) {
  wv_job_engine_t *e = r->e;
  if (r->cgroup[0])
    return wv_jobmem_oom_kills(e->mem, r->cgroup) > r->ooms_before;
  return e->mem == WV_JOB_MEM_RLIMIT && r->job->memory_max && log_says_oom(r);
}

/* Both the process and the pipe are closed: judge the step. */
static void cmd_step_done(jrun_t *r) {
  job_t *j = r->job;
  const jstep_t *s = &j->steps[j->step];
  const char *label = j->kind->label;
  char lim[32];
  uv_timer_stop(&r->eofwait);
  uv_timer_stop(&r->killer);
  if (r->abandoned)
    return close_run(r);
  int status = r->term_signal ? 128 + r->term_signal : (int)r->exit_code;
  bool failed = status != 0 || r->timed_out || r->cancelled;
  if (r->timed_out) {
    fmt_limit(j->deadline_ms, lim, sizeof lim);
    set_reason(r, -1, "%s timed out after %s", label, lim);
  } else if (r->cancelled) {
    set_reason(r, -1, "%s", r->cancel_reason);
  } else if (failed && memory_exceeded(r)) {
    wv_jobmem_format(j->memory_max, lim, sizeof lim);
    set_reason(r, status, "%s exceeded the memory limit of %s", label, lim);
  } else if (failed && s->may_fail) {
    log_linef(r, "[waved: step '%s' failed with status %d; continuing]", s->name, status);
    failed = false;
  } else if (r->term_signal) {
    set_reason(r, status, "%s failed: step '%s' was killed by signal %d", label, s->name,
               r->term_signal);
  } else if (status != 0) {
    set_reason(r, status, "%s failed: step '%s' exited with status %d", label, s->name, status);
  }
  if (!failed) {
    uv_mutex_lock(&r->e->mu);
    j->exit_status = status;
    uv_mutex_unlock(&r->e->mu);
  }
  if (failed)
    return finish(r, WV_JOB_FAILED);
  j->step++;
  run_step(r);
}

static void on_proc_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  r->proc_open = false;
  r->handles--;
  if (!r->out_open)
    cmd_step_done(r);
}

static void on_out_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  r->out_open = false;
  r->handles--;
  if (!r->proc_open)
    cmd_step_done(r);
}

static void close_out(jrun_t *r) {
  if (r->out_open && !uv_is_closing((uv_handle_t *)&r->out))
    uv_close((uv_handle_t *)&r->out, on_out_closed);
}

static void on_eof_wait(uv_timer_t *t) { close_out(t->data); }

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
  jrun_t *r = p->data;
  r->exited = true;
  r->exit_code = status;
  r->term_signal = sig;
  /* Nothing the step started outlives it. */
  kill(-r->pid, SIGKILL);
  if (r->cgroup[0])
    wv_jobmem_signal(r->cgroup, SIGKILL);
  uv_close((uv_handle_t *)p, on_proc_closed);
  if (r->out_open)
    uv_timer_start(&r->eofwait, on_eof_wait, EOF_WAIT_MS, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  jrun_t *r = h->data;
  *buf = uv_buf_init(r->buf, sizeof r->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  jrun_t *r = s->data;
  if (n > 0)
    log_write(r, buf->base, (size_t)n);
  else if (n < 0)
    close_out(r);
}

/* The argv actually spawned: through the exec wrapper when it sets a limit. */
static char **wrap_argv(jrun_t *r, char **argv, char *limit, size_t limitlen) {
  wv_job_engine_t *e = r->e;
  bool rlimit = e->mem == WV_JOB_MEM_RLIMIT && r->job->memory_max && e->exec_path;
  bool cg = r->cgroup[0] && e->exec_path;
  if (!rlimit && !cg)
    return NULL;
  size_t n = 0;
  while (argv[n])
    n++;
  char **w = calloc(n + 6, sizeof *w);
  if (!w)
    return NULL;
  size_t k = 0;
  w[k++] = e->exec_path;
  w[k++] = "--job-exec";
  w[k++] = cg ? "--cgroup" : "--rlimit-as";
  snprintf(limit, limitlen, "%llu", (unsigned long long)r->job->memory_max);
  w[k++] = cg ? r->cgroup : limit;
  w[k++] = "--";
  memcpy(w + k, argv, (n + 1) * sizeof *w);
  return w;
}

static int spawn_cmd(jrun_t *r, const jstep_t *s) {
  job_t *j = r->job;
  uv_file fds[2];
  char limit[32];
  int rc = uv_pipe(fds, 0, 0);
  if (rc)
    return rc;
  char **wrapped = wrap_argv(r, s->argv, limit, sizeof limit);
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                   {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
                                   {.flags = UV_INHERIT_FD, .data.fd = fds[1]}};
  uv_process_options_t o = {
      .exit_cb = on_proc_exit,
      .file = wrapped ? wrapped[0] : s->argv[0],
      .args = wrapped ? wrapped : s->argv,
      .env = s->env,
      .cwd = s->cwd ? s->cwd : j->workdir,
      .flags = UV_PROCESS_DETACHED,
      .stdio_count = 3,
      .stdio = stdio,
  };
  r->exited = false;
  r->exit_code = 0;
  r->term_signal = 0;
  r->proc.data = r;
  rc = uv_spawn(&r->e->loop, &r->proc, &o);
  free(wrapped);
  close(fds[1]);
  r->handles++; /* initialised even when the spawn failed: it must be closed */
  if (rc) {
    close(fds[0]);
    uv_close((uv_handle_t *)&r->proc, on_timer_closed);
    return rc;
  }
  r->pid = r->proc.pid;
  r->proc_open = true;
  if (r->cgroup[0] && !r->e->exec_path)
    wv_jobmem_join(r->cgroup, r->pid); /* racy without the wrapper; best effort */
  uv_pipe_init(&r->e->loop, &r->out, 0);
  r->out.data = r;
  uv_pipe_open(&r->out, fds[0]);
  r->out_open = true;
  r->handles++;
  uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
  return 0;
}

/* ---- function steps ---- */

static void on_work(uv_work_t *w) {
  jrun_t *r = w->data;
  const jstep_t *s = &r->job->steps[r->job->step];
  const jfn_t *f = find_fn(r->e, s->fn);
  r->ctx.reason[0] = '\0';
  r->fn_rc = f ? f->fn(&r->ctx, f->arg, s->arg) : WV_EINVAL;
}

static void on_work_done(uv_work_t *w, int status) {
  jrun_t *r = w->data;
  job_t *j = r->job;
  const jstep_t *s = &j->steps[j->step];
  char lim[32];
  r->fn_running = false;
  if (r->abandoned)
    return close_run(r);
  int rc = status ? status : r->fn_rc;
  if (r->timed_out) {
    fmt_limit(j->deadline_ms, lim, sizeof lim);
    set_reason(r, -1, "%s timed out after %s", j->kind->label, lim);
  } else if (r->cancelled) {
    set_reason(r, -1, "%s", r->cancel_reason);
  } else if (rc && s->may_fail) {
    log_linef(r, "[waved: step '%s' failed: %s; continuing]", s->name, wv_strerror(rc));
    rc = 0;
  } else if (rc && r->ctx.reason[0]) {
    set_reason(r, -1, "%s", r->ctx.reason);
  } else if (rc) {
    set_reason(r, -1, "%s failed: step '%s': %s", j->kind->label, s->name, wv_strerror(rc));
  }
  if (rc || r->timed_out || r->cancelled)
    return finish(r, WV_JOB_FAILED);
  j->step++;
  run_step(r);
}

/* ---- job lifecycle (job thread) ---- */

static void run_step(jrun_t *r) {
  job_t *j = r->job;
  if (r->timed_out || r->cancelled) /* limit hit between steps */
    return finish(r, WV_JOB_FAILED);
  if (j->step >= j->nsteps)
    return finish(r, WV_JOB_SUCCEEDED);
  const jstep_t *s = &j->steps[j->step];
  log_linef(r, "[waved: step %zu/%zu: %s]", j->step + 1, j->nsteps, s->name);
  if (s->type == WV_JOB_STEP_FN) {
    r->fn_running = true;
    r->work.data = r;
    int rc = uv_queue_work(&r->e->loop, &r->work, on_work, on_work_done);
    if (rc) {
      r->fn_running = false;
      set_reason(r, -1, "%s failed: cannot run step '%s': %s", j->kind->label, s->name,
                 uv_strerror(rc));
      finish(r, WV_JOB_FAILED);
    }
    return;
  }
  int rc = spawn_cmd(r, s);
  if (rc) {
    log_linef(r, "[waved: cannot run '%s': %s]", s->argv[0], uv_strerror(rc));
    set_reason(r, 127, "%s failed: cannot run '%s': %s", j->kind->label, s->argv[0],
               uv_strerror(rc));
    finish(r, WV_JOB_FAILED);
  }
}

/* The log goes to persistence (compressed there); the plain file is removed. */
static void keep_log(wv_job_engine_t *e, const job_t *j) {
  const wv_job_persist_t *p = e->opts.persist;
  char path[PATH_MAX];
  if (!p || !p->put_log)
    return;
  log_path(e, j->id, path, sizeof path);
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

static void call_waiters(jwaiter_t *w, const wv_job_info_t *info) {
  while (w) {
    jwaiter_t *next = w->next;
    w->cb(w->arg, info);
    free(w);
    w = next;
  }
}

/* Evicts the oldest ended jobs past keep_finished (their records stay). */
static void trim_finished_locked(wv_job_engine_t *e) {
  while (e->nfinished > e->opts.keep_finished) {
    job_t *old = e->fin_head;
    e->fin_head = old->qnext;
    if (!e->fin_head)
      e->fin_tail = NULL;
    e->nfinished--;
    unlink_locked(e, old);
    wv_jobrec_free_job(old);
  }
}

/* Publishes the end of a job (whose record is saved) and wakes its waiters. */
static void publish_end(wv_job_engine_t *e, job_t *j, wv_job_state_t state) {
  wv_job_info_t info;
  uv_mutex_lock(&e->mu);
  j->state = state;
  j->run = NULL;
  jwaiter_t *w = j->waiters;
  for (jwaiter_t *x = w; x; x = x->next)
    e->nwaiters--;
  j->waiters = NULL;
  j->qnext = NULL;
  j->in_finished = true;
  if (e->fin_tail)
    e->fin_tail->qnext = j;
  else
    e->fin_head = j;
  e->fin_tail = j;
  e->nfinished++;
  wv_jobrec_info(j, &info);
  trim_finished_locked(e);
  uv_mutex_unlock(&e->mu);
  call_waiters(w, &info);
}

static void schedule(wv_job_engine_t *e, jkind_t *k);

static void finish(jrun_t *r, wv_job_state_t state) {
  wv_job_engine_t *e = r->e;
  job_t *j = r->job;
  if (r->ending)
    return;
  r->ending = true;
  uv_timer_stop(&r->deadline);
  log_linef(r, "[waved: %s %s%s%s]", j->id, wv_job_state_name(state), j->reason[0] ? ": " : "",
            j->reason);
  close_run(r); /* closes the log and removes the cgroup before the log is kept */
  uv_mutex_lock(&e->mu);
  j->finished_ns = wv_now_ns();
  uv_mutex_unlock(&e->mu);
  keep_log(e, j);
  save(e, j, state);
  j->kind->running--;
  jkind_t *k = j->kind;
  publish_end(e, j, state); /* j may be freed from here on */
  schedule(e, k);
}

/* Ends a job that never started (cancelled while queued, or a bad kind). */
static void fail_unstarted(wv_job_engine_t *e, job_t *j, const char *reason) {
  uv_mutex_lock(&e->mu);
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  j->finished_ns = wv_now_ns();
  uv_mutex_unlock(&e->mu);
  save(e, j, WV_JOB_FAILED);
  publish_end(e, j, WV_JOB_FAILED);
}

static int open_log(wv_job_engine_t *e, const job_t *j) {
  char path[PATH_MAX];
  log_path(e, j->id, path, sizeof path);
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static void start_job(wv_job_engine_t *e, job_t *j) {
  jrun_t *r = calloc(1, sizeof *r);
  if (!r) {
    wv_error("jobs: %s: out of memory starting the job", j->id);
    j->kind->running--;
    return fail_unstarted(e, j, "waved ran out of memory starting the job");
  }
  r->e = e;
  r->job = j;
  r->ctx.run = r;
  r->logfd = open_log(e, j);
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
  save(e, j, WV_JOB_RUNNING);
  uv_mutex_lock(&e->mu);
  j->state = WV_JOB_RUNNING;
  uv_mutex_unlock(&e->mu);
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)j->deadline_ms, 0);
  run_step(r);
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
    log_linef(r, "[waved: cancelled: %s]", reason);
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
      wv_jobrec_info(j, &p[n].info);
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
    call_waiters(p[i].waiters, &p[i].info);
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
      close_run(r);
  }
  free(runs);
  release_waiters_on_stop(e);
  if (e->live_runs == 0)
    uv_close((uv_handle_t *)&e->wake, NULL);
}

#define MAX_CANCELS_PER_WAKE 256

static void on_wake(uv_async_t *a) {
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
    job_t *j = find_locked(e, ids[i]);
    if (j)
      snprintf(reason, sizeof reason, "%s", j->cancel_reason);
    uv_mutex_unlock(&e->mu);
    if (j && !ended(j->state))
      handle_cancel(e, j, reason);
  }
  free(ids);
  if (more)
    uv_async_send(&e->wake);
  for (size_t i = 0; i < e->nkinds; i++)
    schedule(e, &e->kinds[i]);
}

static void job_thread(void *arg) {
  wv_job_engine_t *e = arg;
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}

/* ---- public API ---- */

void wv_job_opts_init(wv_job_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->kill_grace_ms = 5000;
  o->log_max = 16u << 20;
  o->max_waiters = 100000;
  o->keep_finished = 1024;
}

int wv_job_engine_new(const wv_job_opts_t *opts, wv_job_engine_t **out) {
  if (!opts || !opts->log_dir || !*opts->log_dir)
    return WV_EINVAL;
  wv_job_engine_t *e = calloc(1, sizeof *e);
  if (!e)
    return WV_ENOMEM;
  e->opts = *opts;
  if (e->opts.kill_grace_ms <= 0)
    e->opts.kill_grace_ms = 5000;
  if (!e->opts.log_max)
    e->opts.log_max = 16u << 20;
  if (!e->opts.max_waiters)
    e->opts.max_waiters = 100000;
  if (!e->opts.keep_finished)
    e->opts.keep_finished = 1024;
  e->log_dir = strdup(opts->log_dir);
  e->exec_path = opts->exec_path ? strdup(opts->exec_path) : NULL;
  e->cgroup_hint = opts->cgroup_dir ? strdup(opts->cgroup_dir) : NULL;
  if (!e->log_dir || (opts->exec_path && !e->exec_path) || (opts->cgroup_dir && !e->cgroup_hint) ||
      uv_mutex_init(&e->mu)) {
    free(e->log_dir), free(e->exec_path), free(e->cgroup_hint), free(e);
    return WV_ENOMEM;
  }
  e->opts.log_dir = e->log_dir;
  e->opts.exec_path = e->exec_path;
  e->opts.cgroup_dir = e->cgroup_hint;
  *out = e;
  return 0;
}

int wv_job_register_kind(wv_job_engine_t *e, const wv_job_kind_t *k) {
  if (e->started || !k->name || !*k->name || strlen(k->name) >= 64 || k->max_running < 1 ||
      k->deadline_ms <= 0)
    return WV_EINVAL;
  if (find_kind(e, k->name))
    return WV_EEXISTS;
  if (e->nkinds == MAX_KINDS)
    return WV_ETOOBIG;
  jkind_t *d = &e->kinds[e->nkinds++];
  snprintf(d->name, sizeof d->name, "%s", k->name);
  snprintf(d->label, sizeof d->label, "%s", k->label ? k->label : k->name);
  d->max_running = k->max_running;
  d->max_queued = k->max_queued ? k->max_queued : 10000;
  d->rerunnable = k->rerunnable;
  d->deadline_ms = k->deadline_ms;
  d->memory_max = k->memory_max;
  return 0;
}

int wv_job_register_fn(wv_job_engine_t *e, const char *name, wv_job_fn fn, void *arg) {
  if (e->started || !name || !*name || strlen(name) >= 64 || !fn)
    return WV_EINVAL;
  if (find_fn(e, name))
    return WV_EEXISTS;
  if (e->nfns == MAX_FNS)
    return WV_ETOOBIG;
  jfn_t *f = &e->fns[e->nfns++];
  snprintf(f->name, sizeof f->name, "%s", name);
  f->fn = fn;
  f->arg = arg;
  return 0;
}

wv_job_mem_t wv_job_engine_mem(const wv_job_engine_t *e) { return e->mem; }

/* Inserts a QUEUED job into the table and the inbox (no save). */
static void admit_locked(wv_job_engine_t *e, job_t *j) {
  uint32_t h = hash_id(j->id);
  j->hnext = e->buckets[h];
  e->buckets[h] = j;
}

static void inbox_push_locked(wv_job_engine_t *e, job_t *j) {
  j->qnext = NULL;
  j->admitted = true;
  if (e->inbox_tail)
    e->inbox_tail->qnext = j;
  else
    e->inbox_head = j;
  e->inbox_tail = j;
  j->kind->waiting++;
}

typedef struct {
  wv_job_engine_t *e;
  job_t *list; /* loaded jobs that had not ended, linked by qnext */
} recover_t;

static int recover_each(void *arg, const char *id, const char *json, size_t len) {
  recover_t *rv = arg;
  job_t *j;
  int rc = wv_jobrec_from_json(json, len, &j);
  if (rc) {
    wv_warn("jobs: skipping unreadable job record %s: %s", id, wv_strerror(rc));
    return rc == WV_ENOMEM ? rc : 0;
  }
  if (ended(j->state)) {
    wv_jobrec_free_job(j);
    return 0;
  }
  j->qnext = rv->list;
  rv->list = j;
  return 0;
}

/* Jobs interrupted by a restart: re-queued when their kind allows, else FAILED. */
static int recover(wv_job_engine_t *e) {
  const wv_job_persist_t *p = e->opts.persist;
  recover_t rv = {e, NULL};
  if (!p)
    return 0;
  int rc = p->load_all(p->ctx, recover_each, &rv);
  while (rv.list) {
    job_t *j = rv.list;
    rv.list = j->qnext;
    j->kind = find_kind(e, j->kind_name);
    if (!rc && j->kind && j->kind->rerunnable) {
      j->state = WV_JOB_QUEUED;
      j->started_ns = 0;
      wv_info("jobs: %s (%s) was interrupted by a restart; queued again", j->id, j->kind_name);
      save(e, j, WV_JOB_QUEUED);
      admit_locked(e, j);
      inbox_push_locked(e, j);
      continue;
    }
    if (!rc) {
      snprintf(j->reason, sizeof j->reason, "%s", WV_JOB_REASON_RESTART);
      j->finished_ns = wv_now_ns();
      wv_warn("jobs: %s (%s) was interrupted by a restart; marked failed", j->id, j->kind_name);
      save(e, j, WV_JOB_FAILED);
    }
    wv_jobrec_free_job(j);
  }
  return rc ? WV_ESTORE : 0;
}

int wv_job_engine_start(wv_job_engine_t *e) {
  if (e->started)
    return WV_EINVAL;
  if (mkdir(e->log_dir, 0700) != 0 && errno != EEXIST) {
    wv_error("jobs: cannot create %s: %s", e->log_dir, strerror(errno));
    return WV_EIO;
  }
  if (e->opts.mem == WV_JOB_MEM_AUTO)
    e->mem = wv_jobmem_detect(e->cgroup_hint, e->exec_path != NULL, e->cgroup_parent,
                              sizeof e->cgroup_parent);
  else
    e->mem = e->opts.mem == WV_JOB_MEM_RLIMIT && !e->exec_path ? WV_JOB_MEM_NONE : e->opts.mem;
  if ((e->mem == WV_JOB_MEM_CGROUP1 || e->mem == WV_JOB_MEM_CGROUP2) && !e->cgroup_parent[0])
    snprintf(e->cgroup_parent, sizeof e->cgroup_parent, "%s", e->cgroup_hint ? e->cgroup_hint : "");
  wv_info("jobs: memory limits through %s%s%s", wv_job_mem_name(e->mem),
          e->cgroup_parent[0] ? " under " : "", e->cgroup_parent);
  int rc = recover(e);
  if (rc)
    return rc;
  if (uv_loop_init(&e->loop))
    return WV_EINTERNAL;
  if (uv_async_init(&e->loop, &e->wake, on_wake)) {
    uv_loop_close(&e->loop);
    return WV_EINTERNAL;
  }
  e->wake.data = e;
  e->started = true;
  if (uv_thread_create(&e->thread, job_thread, e)) {
    e->started = false;
    uv_close((uv_handle_t *)&e->wake, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    return WV_EINTERNAL;
  }
  uv_async_send(&e->wake); /* schedule what recovery queued */
  return 0;
}

static int build_job(wv_job_engine_t *e, const wv_job_spec_t *spec, job_t **out) {
  jkind_t *k = spec->kind ? find_kind(e, spec->kind) : NULL;
  if (!k || (spec->id && !wv_jobrec_id_valid(spec->id)) || spec->deadline_ms < 0)
    return WV_EINVAL;
  for (size_t i = 0; i < spec->nsteps && spec->steps; i++)
    if (spec->steps[i].type == WV_JOB_STEP_FN && (!spec->steps[i].fn || !find_fn(e, spec->steps[i].fn)))
      return WV_EINVAL;
  job_t *j = calloc(1, sizeof *j);
  if (!j)
    return WV_ENOMEM;
  int rc = wv_jobrec_copy_steps(j, spec->steps, spec->nsteps);
  if (!rc && spec->workdir && !(j->workdir = strdup(spec->workdir)))
    rc = WV_ENOMEM;
  char gen[13];
  if (!rc && !spec->id)
    rc = wv_rand_hex12(gen);
  if (rc) {
    wv_jobrec_free_job(j);
    return rc;
  }
  snprintf(j->id, sizeof j->id, spec->id ? "%s" : "job-%s", spec->id ? spec->id : gen);
  snprintf(j->kind_name, sizeof j->kind_name, "%s", k->name);
  j->kind = k;
  j->deadline_ms = spec->deadline_ms ? spec->deadline_ms : k->deadline_ms;
  j->memory_max = spec->memory_max ? spec->memory_max : k->memory_max;
  j->state = WV_JOB_QUEUED;
  j->exit_status = -1;
  j->created_ns = wv_now_ns();
  *out = j;
  return 0;
}

static bool persisted(wv_job_engine_t *e, const char *id) {
  const wv_job_persist_t *p = e->opts.persist;
  char *json = NULL;
  size_t len;
  if (!p || p->get(p->ctx, id, &json, &len) != 0)
    return false;
  free(json);
  return true;
}

int wv_job_submit(wv_job_engine_t *e, const wv_job_spec_t *spec, char *id_out) {
  job_t *j;
  int rc = build_job(e, spec, &j);
  if (rc)
    return rc;
  if (spec->id && persisted(e, j->id))
    rc = WV_EEXISTS;
  uv_mutex_lock(&e->mu);
  if (!rc && (e->stopping || !e->started))
    rc = WV_ECLOSED;
  else if (!rc && find_locked(e, j->id))
    rc = WV_EEXISTS;
  else if (!rc && j->kind->waiting >= j->kind->max_queued)
    rc = WV_EBUSY;
  if (!rc) {
    admit_locked(e, j);
    j->kind->waiting++; /* reserved; inbox_push counts it again, undone below */
  }
  uv_mutex_unlock(&e->mu);
  if (rc) {
    wv_jobrec_free_job(j);
    return rc;
  }
  rc = save(e, j, WV_JOB_QUEUED);
  uv_mutex_lock(&e->mu);
  j->kind->waiting--;
  if (rc) {
    unlink_locked(e, j);
    /* A waiter that found it meanwhile learns it failed. */
    snprintf(j->reason, sizeof j->reason, "cannot save the job record: %s", wv_strerror(rc));
  } else {
    inbox_push_locked(e, j);
    if (j->cancel_req) { /* cancelled while its record was being saved */
      j->cnext = e->cancels;
      e->cancels = j;
    }
  }
  jwaiter_t *w = rc ? j->waiters : NULL;
  if (rc)
    for (jwaiter_t *x = w; x; x = x->next)
      e->nwaiters--;
  uv_mutex_unlock(&e->mu);
  if (rc) {
    wv_job_info_t info;
    j->state = WV_JOB_FAILED;
    wv_jobrec_info(j, &info);
    call_waiters(w, &info);
    wv_jobrec_free_job(j);
    return rc;
  }
  if (id_out)
    snprintf(id_out, WV_JOB_ID_MAX + 1, "%s", j->id);
  uv_async_send(&e->wake);
  return 0;
}

/* Info from the persisted record. 0 or WV_ENOTFOUND. */
static int get_persisted(wv_job_engine_t *e, const char *id, wv_job_info_t *out) {
  const wv_job_persist_t *p = e->opts.persist;
  char *json = NULL;
  size_t len;
  job_t *j;
  if (!p || p->get(p->ctx, id, &json, &len) != 0)
    return WV_ENOTFOUND;
  int rc = wv_jobrec_from_json(json, len, &j);
  free(json);
  if (rc)
    return WV_ENOTFOUND;
  wv_jobrec_info(j, out);
  wv_jobrec_free_job(j);
  return 0;
}

int wv_job_on_done(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg) {
  wv_job_info_t info;
  bool found = false, now = false;
  int rc = 0;
  if (!id || !cb)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = e->stopping ? NULL : find_locked(e, id);
  if (e->stopping) {
    rc = WV_ECLOSED;
  } else if (j && ended(j->state)) {
    found = now = true;
    wv_jobrec_info(j, &info);
  } else if (j) {
    found = true;
    jwaiter_t *w = e->nwaiters < e->opts.max_waiters ? malloc(sizeof *w) : NULL;
    if (!w) {
      rc = e->nwaiters < e->opts.max_waiters ? WV_ENOMEM : WV_EBUSY;
    } else {
      *w = (jwaiter_t){j->waiters, cb, arg};
      j->waiters = w;
      e->nwaiters++;
    }
  }
  uv_mutex_unlock(&e->mu);
  if (rc)
    return rc;
  if (!found) {
    /* Every job that has not ended is in memory; an evicted one has ended. */
    if (get_persisted(e, id, &info) != 0 || !ended(info.state))
      return WV_ENOTFOUND;
    now = true;
  }
  if (now)
    cb(arg, &info);
  return 0;
}

int wv_job_get(wv_job_engine_t *e, const char *id, wv_job_info_t *out) {
  if (!id)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = find_locked(e, id);
  if (j)
    wv_jobrec_info(j, out);
  uv_mutex_unlock(&e->mu);
  return j ? 0 : get_persisted(e, id, out);
}

/* The last max bytes of a file. */
static int read_tail(const char *path, size_t max, char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? WV_ENOTFOUND : WV_EIO;
  struct stat st;
  int rc = fstat(fd, &st) == 0 ? 0 : WV_EIO;
  size_t size = rc ? 0 : (size_t)st.st_size, n = size > max ? max : size;
  char *buf = rc ? NULL : malloc(n + 1);
  if (!rc && !buf)
    rc = WV_ENOMEM;
  ssize_t got = rc ? -1 : pread(fd, buf, n, (off_t)(size - n));
  close(fd);
  if (!rc && got < 0)
    rc = WV_EIO;
  if (rc) {
    free(buf);
    return rc;
  }
  buf[got] = '\0';
  *out = buf;
  *len = (size_t)got;
  return 0;
}

int wv_job_log(wv_job_engine_t *e, const char *id, size_t max, char **out, size_t *len) {
  char path[PATH_MAX];
  if (!wv_jobrec_id_valid(id))
    return WV_ENOTFOUND;
  log_path(e, id, path, sizeof path);
  int rc = read_tail(path, max, out, len);
  const wv_job_persist_t *p = e->opts.persist;
  if (rc == WV_ENOTFOUND && p && p->get_log) /* the job ended and its log was stored */
    rc = p->get_log(p->ctx, id, max, out, len);
  return rc;
}

int wv_job_cancel(wv_job_engine_t *e, const char *id, const char *reason) {
  if (!id)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = find_locked(e, id);
  int rc = !j ? WV_ENOTFOUND : ended(j->state) ? WV_EINVAL : 0;
  if (!rc && !j->cancel_req) {
    j->cancel_req = true;
    snprintf(j->cancel_reason, sizeof j->cancel_reason, "%s",
             reason && *reason ? reason : "cancelled");
    if (j->admitted) { /* else wv_job_submit lists it once the record is saved */
      j->cnext = e->cancels;
      e->cancels = j;
    }
  }
  uv_mutex_unlock(&e->mu);
  if (!rc)
    uv_async_send(&e->wake);
  return rc;
}

void wv_job_engine_stop(wv_job_engine_t *e) {
  if (!e || !e->started || e->joined)
    return;
  uv_mutex_lock(&e->mu);
  e->stopping = true;
  uv_mutex_unlock(&e->mu);
  uv_async_send(&e->wake);
  uv_thread_join(&e->thread);
  e->joined = true;
}

void wv_job_engine_free(wv_job_engine_t *e) {
  if (!e)
    return;
  wv_job_engine_stop(e);
  for (size_t b = 0; b < NBUCKETS; b++)
    while (e->buckets[b]) {
      job_t *j = e->buckets[b];
      e->buckets[b] = j->hnext;
      for (jwaiter_t *w = j->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
      }
      wv_jobrec_free_job(j);
    }
  uv_mutex_destroy(&e->mu);
  free(e->log_dir), free(e->exec_path), free(e->cgroup_hint);
  free(e);
}

/* ---- the exec wrapper (runs in the child, before the real command) ---- */

static int exec_fail(int code, const char *what, const char *arg) {
  fprintf(stderr, "waved --job-exec: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
  fflush(stderr);
  return code;
}

int wv_job_exec_main(int argc, char **argv) {
  const char *cgroup = NULL;
  unsigned long long limit = 0;
  int i = 1;
  if (argc > 1 && strcmp(argv[1], "--job-exec") == 0)
    i = 2;
  for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc)
      return errno = EINVAL, exec_fail(126, "missing value for", argv[i]);
    if (strcmp(argv[i], "--cgroup") == 0)
      cgroup = argv[i + 1];
    else if (strcmp(argv[i], "--rlimit-as") == 0)
      limit = strtoull(argv[i + 1], NULL, 10);
    else
      return errno = EINVAL, exec_fail(126, "unknown option", argv[i]);
  }
  if (i + 1 >= argc)
    return errno = EINVAL, exec_fail(126, "no command after", "--");
  if (cgroup && wv_jobmem_join(cgroup, (long)getpid()) != 0)
    return exec_fail(126, "cannot join cgroup", cgroup);
  if (limit) {
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      return exec_fail(126, "cannot set RLIMIT_AS for", argv[i + 1]);
  }
  execvp(argv[i + 1], argv + i + 1);
  return exec_fail(127, "cannot run", argv[i + 1]);
}
