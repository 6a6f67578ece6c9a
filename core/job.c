/*
 * core/job.c — the job engine's thread (see job.h for the contract,
 * docs/jobs.md for the limits; core/job_api.c holds the entry points other
 * threads call).
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

static void run_step(jrun_t *r);
static void finish(jrun_t *r, wv_job_state_t state);

/* ---- small helpers ---- */

const char *wv_job_mem_name(wv_job_mem_t m) {
  static const char *const n[] = {"auto", "none", "rlimit", "cgroup-v1", "cgroup-v2"};
  return (unsigned)m < 5 ? n[m] : "unknown";
}

uint32_t wv_jobeng_hash_id(const char *s) {
  uint32_t h = 2166136261u;
  while (*s)
    h = (h ^ (uint8_t)*s++) * 16777619u;
  return h % NBUCKETS;
}

job_t *wv_jobeng_find_locked(wv_job_engine_t *e, const char *id) {
  for (job_t *j = e->buckets[wv_jobeng_hash_id(id)]; j; j = j->hnext)
    if (strcmp(j->id, id) == 0)
      return j;
  return NULL;
}

void wv_jobeng_unlink_locked(wv_job_engine_t *e, job_t *j) {
  for (job_t **p = &e->buckets[wv_jobeng_hash_id(j->id)]; *p; p = &(*p)->hnext)
    if (*p == j) {
      *p = j->hnext;
      return;
    }
}

jkind_t *wv_jobeng_find_kind(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nkinds; i++)
    if (strcmp(e->kinds[i].name, name) == 0)
      return &e->kinds[i];
  return NULL;
}

const jfn_t *wv_jobeng_find_fn(wv_job_engine_t *e, const char *name) {
  for (size_t i = 0; i < e->nfns; i++)
    if (strcmp(e->fns[i].name, name) == 0)
      return &e->fns[i];
  return NULL;
}

bool wv_jobeng_ended(wv_job_state_t s) { return s == WV_JOB_SUCCEEDED || s == WV_JOB_FAILED; }

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  if (remove(path) != 0 && errno != ENOENT)
    wv_warn("jobs: cannot remove %s: %s", path, strerror(errno));
  return 0;
}

void wv_jobeng_remove_workdir(const job_t *j) {
  if (!j->kind || !j->kind->remove_workdir || !j->workdir || !*j->workdir)
    return;
  /* FTW_PHYS: a symlink planted in the work dir is removed, never followed. */
  nftw(j->workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

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

void wv_jobeng_log_path(const wv_job_engine_t *e, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/%s.log", e->log_dir, id);
}

/* Appends text to the job's log, within the cap. Any thread. */
static void log_write(jrun_t *r, const char *p, size_t n) {
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

int wv_jobeng_save(wv_job_engine_t *e, const job_t *j, wv_job_state_t state) {
  const wv_job_persist_t *p = e->opts.persist;
  if (!p)
    return 0;
  size_t len;
  char *json = wv_jobrec_to_json(j, state, &len);
  if (!json)
    return WV_ENOMEM;
  int rc = p->save(p->ctx, j->id, json, len, wv_jobeng_ended(state));
  free(json);
  if (rc)
    wv_error("jobs: %s: cannot wv_jobeng_save the %s record: %s", j->id, wv_job_state_name(state),
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

static void on_timer_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  r->handles--;
  maybe_free_run(r);
}

static void close_run(jrun_t *r) {
  uv_mutex_lock(&r->log_mu);
  if (r->logfd >= 0)
    close(r->logfd);
  r->logfd = -1;
  uv_mutex_unlock(&r->log_mu);
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
  wv_jobeng_log_path(r->e, r->job->id, path, sizeof path);
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
  close(r->outfd);
  r->outfd = -1;
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

/* Drains the pipe (a bounded number of reads per wake-up, so one chatty job
 * cannot starve the loop); EOF or an error ends the output. */
static void on_output(uv_poll_t *p, int status, int events) {
  jrun_t *r = p->data;
  (void)events;
  if (status < 0)
    return close_out(r);
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(r->outfd, r->buf, sizeof r->buf);
    if (n > 0) {
      log_write(r, r->buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    return close_out(r); /* EOF, or a read error */
  }
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
  int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0); /* the read end is non-blocking */
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
  /* A poll handle, not a uv_pipe_t: the fd stays ours to close(). libuv closes the fds it
   * owns with a raw syscall that ThreadSanitizer cannot see, which makes every later reuse
   * of the number look like a race. */
  r->outfd = fds[0];
  uv_poll_init(&r->e->loop, &r->out, fds[0]);
  r->out.data = r;
  r->out_open = true;
  r->handles++;
  uv_poll_start(&r->out, UV_READABLE | UV_DISCONNECT, on_output);
  return 0;
}

/* ---- function steps ---- */

static void on_work(uv_work_t *w) {
  jrun_t *r = w->data;
  const jstep_t *s = &r->job->steps[r->job->step];
  const jfn_t *f = wv_jobeng_find_fn(r->e, s->fn);
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
  wv_jobeng_log_path(e, j->id, path, sizeof path);
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

void wv_jobeng_call_waiters(jwaiter_t *w, const wv_job_info_t *info) {
  while (w) {
    jwaiter_t *next = w->next;
    w->cb(w->arg, info);
    free(w);
    w = next;
  }
}

/* Evicts the oldest wv_jobeng_ended jobs past keep_finished (their records stay). */
static void trim_finished_locked(wv_job_engine_t *e) {
  while (e->nfinished > e->opts.keep_finished) {
    job_t *old = e->fin_head;
    e->fin_head = old->qnext;
    if (!e->fin_head)
      e->fin_tail = NULL;
    e->nfinished--;
    wv_jobeng_unlink_locked(e, old);
    for (job_t **c = &e->cancels; *c; c = &(*c)->cnext) /* listed, not yet handled */
      if (*c == old) {
        *c = old->cnext;
        break;
      }
    wv_jobrec_free_job(old);
  }
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
  wv_jobrec_info(j, &info);
  trim_finished_locked(e);
  uv_mutex_unlock(&e->mu);
  wv_jobeng_call_waiters(w, &info);
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
  wv_jobeng_remove_workdir(j);
  wv_jobeng_save(e, j, state);
  char took[32];
  wv_duration_format_human(j->finished_ns - j->started_ns, took, sizeof took);
  wv_info("jobs: %s (%s) %s after %s%s%s", j->id, j->kind_name, wv_job_state_name(state), took,
          j->reason[0] ? ": " : "", j->reason);
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
  wv_jobeng_remove_workdir(j);
  wv_jobeng_save(e, j, WV_JOB_FAILED);
  publish_end(e, j, WV_JOB_FAILED);
}

static int open_log(wv_job_engine_t *e, const job_t *j) {
  char path[PATH_MAX];
  wv_jobeng_log_path(e, j->id, path, sizeof path);
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
  wv_jobeng_save(e, j, WV_JOB_RUNNING);
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

/* Hands every waiter of a job that has not wv_jobeng_ended its info with stopping set. */
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
    wv_jobeng_call_waiters(p[i].waiters, &p[i].info);
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

void wv_jobeng_on_wake(uv_async_t *a) {
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
    job_t *j = wv_jobeng_find_locked(e, ids[i]);
    if (j)
      snprintf(reason, sizeof reason, "%s", j->cancel_reason);
    uv_mutex_unlock(&e->mu);
    if (j && !wv_jobeng_ended(j->state))
      handle_cancel(e, j, reason);
  }
  free(ids);
  if (more)
    uv_async_send(&e->wake);
  for (size_t i = 0; i < e->nkinds; i++)
    schedule(e, &e->kinds[i]);
}

void wv_jobeng_job_thread(void *arg) {
  wv_job_engine_t *e = arg;
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}
