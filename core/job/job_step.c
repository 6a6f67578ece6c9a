/*
 * core/job/job_step.c — running a job's steps on the job thread (see the DESIGN
 * in core/job/job.c): a command step is spawned in its own process group with
 * its output piped into the log and ends when both the process and the pipe
 * are closed; a function step runs on the libuv threadpool with a
 * wv_job_ctx_t. Also the wv_job_ctx_* calls a function step makes.
 */
#include "core/job/job.h"
#include "core/err.h"
#include "core/job/job_int.h"
#include "core/job/jobkill.h"
#include "core/job/jobmem.h"
#include "core/log.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* ---- function-step context ---- */

const char *wv_job_ctx_id(const wv_job_ctx_t *ctx) { return ctx->run->job->id; }
const char *wv_job_ctx_workdir(const wv_job_ctx_t *ctx) { return ctx->run->job->workdir; }
bool wv_job_ctx_cancelled(const wv_job_ctx_t *ctx) {
  return atomic_load(&((jrun_t *)ctx->run)->stop_flag);
}

void wv_job_ctx_logf(wv_job_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wv__jobeng_log_vlinef(ctx->run, fmt, ap);
  va_end(ap);
}

void wv_job_ctx_fail(wv_job_ctx_t *ctx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->reason, sizeof ctx->reason, fmt, ap);
  va_end(ap);
}

/* ---- command steps ---- */

/* Heuristic for RLIMIT_AS: the limit makes allocations fail, which programs
 * report in their own words; look for the usual ones near the end of the log. */
static bool log_says_oom(jrun_t *r) {
  char tail[4097], path[PATH_MAX];
  wv__jobeng_log_path(r->e, r->job->id, path, sizeof path);
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

/* The runner could not exec the command: its one line "waved --job-exec: cannot run X: why"
 * is in the log; the reason reads as when uv_spawn itself fails. */
static bool runner_exec_failed(jrun_t *r, char *why, size_t n) {
  char tail[4097], path[PATH_MAX];
  static const char mark[] = "waved --job-exec: cannot run ";
  wv__jobeng_log_path(r->e, r->job->id, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  off_t end = lseek(fd, 0, SEEK_END);
  ssize_t got = pread(fd, tail, 4096, end > 4096 ? end - 4096 : 0);
  close(fd);
  if (got <= 0)
    return false;
  tail[got] = '\0';
  char *p = strstr(tail, mark);
  if (!p)
    return false;
  p += sizeof mark - 1;
  size_t len = strcspn(p, "\n");
  snprintf(why, n, "%.*s", (int)len, p);
  return true;
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
  char lim[32], why[512];
  uv_timer_stop(&r->eofwait);
  uv_timer_stop(&r->killer);
  if (r->abandoned)
    return wv__jobeng_close_run(r);
  int status = r->term_signal ? 128 + r->term_signal : (int)r->exit_code;
  uint64_t now = uv_hrtime();
  wv_debug("jobs: %s step '%s' ended (status %d) after %.1f ms, its output closed %.1f ms after "
           "its exit",
           j->id, s->name, status, (double)(now - r->t_step) / 1e6,
           (double)(now - r->t_exit) / 1e6);
  bool failed = status != 0 || r->timed_out || r->cancelled;
  if (r->timed_out) {
    wv__jobeng_fmt_limit(j->deadline_ms, lim, sizeof lim);
    wv__jobeng_set_reason(r, -1, "%s timed out after %s", label, lim);
  } else if (r->cancelled) {
    wv__jobeng_set_reason(r, -1, "%s", r->cancel_reason);
  } else if (failed && memory_exceeded(r)) {
    wv_jobmem_format(j->memory_max, lim, sizeof lim);
    wv__jobeng_set_reason(r, status, "%s exceeded the memory limit of %s", label, lim);
  } else if (failed && s->may_fail) {
    wv__jobeng_log_linef(r, "[waved: step '%s' failed with status %d; continuing]", s->name,
                         status);
    failed = false;
  } else if (status == 127 && r->wrapped && runner_exec_failed(r, why, sizeof why)) {
    wv__jobeng_set_reason(r, 127, "%s failed: cannot run %s", label, why);
  } else if (r->term_signal) {
    wv__jobeng_set_reason(r, status, "%s failed: step '%s' was killed by signal %d", label, s->name,
                          r->term_signal);
  } else if (status != 0) {
    wv__jobeng_set_reason(r, status, "%s failed: step '%s' exited with status %d", label, s->name,
                          status);
  }
  if (!failed) {
    uv_mutex_lock(&r->e->mu);
    j->exit_status = status;
    uv_mutex_unlock(&r->e->mu);
  }
  if (failed)
    return wv__jobeng_finish(r, WV_JOB_FAILED);
  if (s->ready)
    wv__jobeng_mark_ready(r);
  j->step++;
  wv__jobeng_run_step(r);
}

static void on_proc_closed(uv_handle_t *h) {
  jrun_t *r = h->data;
  if (r->pidfd >= 0)
    close(r->pidfd); /* ours, as the output pipe's fd is (see spawn_cmd) */
  r->pidfd = -1;
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

/* The step exited but something still held the pipe open: what was already written is kept
 * (a bounded final drain, so a loaded loop that reaches this timer before the pipe's last poll
 * event loses no output), then the pipe is closed. */
static void on_eof_wait(uv_timer_t *t) {
  jrun_t *r = t->data;
  for (int i = 0; r->out_open && i < 64; i++) {
    ssize_t n = read(r->outfd, r->buf, sizeof r->buf);
    if (n <= 0 && !(n < 0 && errno == EINTR))
      break;
    if (n > 0)
      wv__jobeng_log_write(r, r->buf, (size_t)n);
  }
  close_out(r);
}

/* The step's process exited with status or was killed by sig; h is its handle. kill_group: its
 * group is still to be killed (uv_spawn's path; on_pidfd killed it before the reap, and after
 * the reap the number may be another process's). */
static void step_exited(jrun_t *r, int64_t status, int sig, uv_handle_t *h, bool kill_group) {
  r->exited = true;
  r->t_exit = uv_hrtime();
  r->exit_code = status;
  r->term_signal = sig;
  /* Nothing the step started outlives it. */
  if (kill_group)
    kill(-r->pid, SIGKILL);
  if (r->cgroup[0])
    wv_jobmem_signal(r->cgroup, SIGKILL);
  uv_close(h, on_proc_closed);
  if (r->out_open)
    uv_timer_start(&r->eofwait, on_eof_wait, EOF_WAIT_MS, 0);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig) {
  step_exited(p->data, status, sig, (uv_handle_t *)p, true);
}

/* The pidfd is readable: the step's process has exited (a zombie until reaped here). Its group
 * is killed while the zombie still holds the pid, so the number cannot have been reused; then
 * it is reaped. A poll error (never seen on a pidfd) kills it and reaps it blocking. */
static void on_pidfd(uv_poll_t *p, int status, int events) {
  jrun_t *r = p->data;
  siginfo_t si;
  (void)events;
  if (status < 0)
    kill(-r->pid, SIGKILL);
  memset(&si, 0, sizeof si);
  int opts = WEXITED | WNOWAIT | (status < 0 ? 0 : WNOHANG);
  while (waitid(P_PID, (id_t)r->pid, &si, opts) < 0 && errno == EINTR)
    ;
  if (si.si_pid == 0)
    return; /* not yet (a spurious wake-up) */
  kill(-r->pid, SIGKILL);
  while (waitid(P_PID, (id_t)r->pid, &si, WEXITED) < 0 && errno == EINTR)
    ;
  bool sig = si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED;
  step_exited(r, sig ? 0 : si.si_status, sig ? si.si_status : 0, (uv_handle_t *)p, false);
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
      wv__jobeng_log_write(r, r->buf, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      return;
    return close_out(r); /* EOF, or a read error */
  }
}

/* The argv actually spawned: through the job runner (waved --job-exec) whenever there is
 * one, so the step dies with waved (core/job/job_api.c) and sits in its cgroup or under its
 * RLIMIT_AS before the real command runs. */
static char **wrap_argv(jrun_t *r, char **argv, char *limit, size_t limitlen, char *parent,
                        size_t parentlen) {
  wv_job_engine_t *e = r->e;
  if (!e->exec_path)
    return NULL;
  bool rlimit = e->mem == WV_JOB_MEM_RLIMIT && r->job->memory_max;
  bool cg = r->cgroup[0];
  size_t n = 0;
  while (argv[n])
    n++;
  char **w = calloc(n + 10, sizeof *w);
  if (!w)
    return NULL;
  size_t k = 0;
  w[k++] = e->exec_path;
  w[k++] = "--job-exec";
  snprintf(parent, parentlen, "%ld", (long)getpid());
  w[k++] = "--parent";
  w[k++] = parent;
  w[k++] = "--job";
  w[k++] = r->job->id;
  if (rlimit || cg) {
    w[k++] = cg ? "--cgroup" : "--rlimit-as";
    snprintf(limit, limitlen, "%llu", (unsigned long long)r->job->memory_max);
    w[k++] = cg ? r->cgroup : limit;
  }
  w[k++] = "--";
  memcpy(w + k, argv, (n + 1) * sizeof *w);
  return w;
}

/*
 * How a step is spawned (docs/jobs.md "How a step is started"). uv_spawn forks: the child gets a
 * copy of waved's page tables (a large LMDB map, several threads' stacks), and the job thread
 * waits for the child's exec: 18-127 ms per step at load 5-9 on 2 cores, against 0.8-28 ms
 * (docs/benchmarks.md "Fifth pass: spawn"). glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK
 * instead: the child runs on waved's memory until it execs, so nothing is copied. It is given
 * everything uv_spawn gave: a session and process group of its own (POSIX_SPAWN_SETSID: the group
 * kills rely on pgid == pid), stdin /dev/null, stdout and stderr the pipe, the step's env and cwd,
 * an empty signal mask and the default disposition of every signal (waved blocks, handles or
 * ignores some; the child must start clean), and no fd of waved's beyond 0-2 (closefrom 3, which
 * uv_spawn did not even do: it relied on O_CLOEXEC).
 *
 * Its exit is watched through a pidfd polled on the job loop, then reaped with waitid. libuv's
 * SIGCHLD handler cannot take it from us: in libuv 1.44 (src/unix/process.c, uv__wait_children)
 * it calls waitpid(process->pid, WNOHANG) for each uv_process_t of its loop, never waitpid(-1),
 * and this loop has none unless pidfd_open is missing (ENOSYS: kernels before 5.3), where steps
 * go back to uv_spawn.
 */
extern char **environ;

/* pidfd_open works here: 1 yes, 0 no (ENOSYS; or refused, as a seccomp filter that answers
 * EPERM to calls it does not know does), -1 not probed yet. */
static atomic_int have_pidfd = -1;

static bool pidfd_usable(void) {
  int v = atomic_load(&have_pidfd);
  if (v < 0) {
    int fd = pidfd_open(getpid(), 0);
    v = fd >= 0;
    if (fd >= 0)
      close(fd);
    atomic_store(&have_pidfd, v);
  }
  return v == 1;
}

/* An executable regular file (access alone passes directories to root). */
static bool executable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* execvp's search, with the step's own PATH (as uv_spawn's child, which execvp'd after taking the
 * step's environment): posix_spawnp would search waved's. A relative entry (an empty one is ".")
 * is taken from cwd, where the child runs. 0 or a negative errno. */
static int find_program(const char *file, char *const *env, const char *cwd, char *out, size_t n) {
  if (strchr(file, '/'))
    return snprintf(out, n, "%s", file) < (int)n ? 0 : -ENAMETOOLONG;
  const char *path = NULL;
  for (char *const *e = env ? env : environ; e && *e && !path; e++)
    if (strncmp(*e, "PATH=", 5) == 0)
      path = *e + 5;
  if (!path)
    path = "/bin:/usr/bin"; /* glibc's default */
  int err = -ENOENT;
  while (*path) {
    size_t len = strcspn(path, ":");
    bool rel = len == 0 || path[0] != '/';
    const char *base = rel && cwd ? cwd : "";
    int k = snprintf(out, n, "%s%s%.*s%s%s", base, *base ? "/" : "", (int)len, path, len ? "/" : "",
                     file);
    if (k > 0 && (size_t)k < n) {
      if (executable(out))
        return 0;
      if (errno == EACCES)
        err = -EACCES;
    }
    path += len + (path[len] == ':');
  }
  return err;
}

/* posix_spawn with uv_spawn's guarantees (above); out is the pipe's write end, cwd NULL = waved's.
 * 0 or a negative errno. */
static int posix_spawn_step(const char *file, char *const *argv, char *const *env, const char *cwd,
                            int out, pid_t *pid) {
  char path[PATH_MAX];
  int rc = find_program(file, env, cwd, path, sizeof path);
  if (rc)
    return rc;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  sigset_t none, dfl;
  sigemptyset(&none);
  /* Every signal back to SIG_DFL, glibc's internal 32 and 33 included: sigfillset leaves them
   * out, and glibc's posix_spawn child would set them to SIG_IGN, which the command would keep
   * (uv_spawn's did not). The child's loop skips what cannot be changed (SIGKILL, SIGSTOP). */
  memset(&dfl, 0xff, sizeof dfl);
  if ((rc = posix_spawn_file_actions_init(&fa)))
    return -rc;
  if ((rc = posix_spawnattr_init(&at))) {
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
  }
  if (!(rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF)) &&
      !(rc = posix_spawnattr_setsigmask(&at, &none)) &&
      !(rc = posix_spawnattr_setsigdefault(&at, &dfl)) &&
      !(rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) &&
      !(rc = posix_spawn_file_actions_adddup2(&fa, out, 1)) &&
      !(rc = posix_spawn_file_actions_adddup2(&fa, out, 2)) &&
      !(rc = cwd ? posix_spawn_file_actions_addchdir_np(&fa, cwd) : 0) &&
      !(rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)))
    rc = posix_spawn(pid, path, &fa, &at, argv, env ? env : environ);
  if (rc == ENOEXEC) { /* a script without "#!": run by /bin/sh, as execvp does */
    size_t argc = 0;
    while (argv[argc])
      argc++;
    char **sh = calloc(argc + 2, sizeof *sh);
    if (!sh) {
      rc = ENOMEM;
    } else {
      sh[0] = "/bin/sh";
      sh[1] = path;
      for (size_t i = 1; i < argc; i++)
        sh[i + 1] = argv[i];
      rc = posix_spawn(pid, "/bin/sh", &fa, &at, sh, env ? env : environ);
      free(sh);
    }
  }
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return -rc;
}

/* The step's process, spawned by posix_spawn and watched by its pidfd. 0 or a negative errno. */
static int spawn_pidfd(jrun_t *r, const char *file, char *const *argv, char *const *env,
                       const char *cwd, int out) {
  pid_t pid;
  if (out < 3) { /* never in practice (waved's stdio is open); dup2 onto itself keeps CLOEXEC */
    int hi = fcntl(out, F_DUPFD_CLOEXEC, 3);
    if (hi < 0)
      return -errno;
    int rc = spawn_pidfd(r, file, argv, env, cwd, hi);
    close(hi);
    return rc;
  }
  int rc = posix_spawn_step(file, argv, env, cwd, out, &pid);
  if (rc)
    return rc;
  int fd = pidfd_open(pid, 0);
  if (fd < 0 || (rc = uv_poll_init(&r->e->loop, &r->exitp, fd)) != 0) {
    rc = fd < 0 ? -errno : rc;
    if (fd >= 0)
      close(fd);
    kill(-pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    return rc;
  }
  r->pidfd = fd;
  r->pid = pid;
  r->exitp.data = r;
  uv_poll_start(&r->exitp, UV_READABLE, on_pidfd);
  return 0;
}

static int spawn_cmd(jrun_t *r, const jstep_t *s) {
  job_t *j = r->job;
  uv_file fds[2];
  char limit[32], parent[32];
  int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0); /* the read end is non-blocking */
  if (rc)
    return rc;
  char **wrapped = wrap_argv(r, s->argv, limit, sizeof limit, parent, sizeof parent);
  const char *file = wrapped ? wrapped[0] : s->argv[0];
  const char *cwd = s->cwd ? s->cwd : j->workdir;
  r->exited = false;
  r->exit_code = 0;
  r->term_signal = 0;
  bool by_pidfd = pidfd_usable();
  if (by_pidfd) {
    rc = spawn_pidfd(r, file, wrapped ? wrapped : s->argv, s->env, cwd, fds[1]);
  } else {
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
                                     {.flags = UV_INHERIT_FD, .data.fd = fds[1]}};
    uv_process_options_t o = {
        .exit_cb = on_proc_exit,
        .file = file,
        .args = wrapped ? wrapped : s->argv,
        .env = s->env,
        .cwd = cwd,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    r->proc.data = r;
    rc = uv_spawn(&r->e->loop, &r->proc, &o);
    r->handles++; /* initialised even when the spawn failed: it must be closed */
    if (rc)
      uv_close((uv_handle_t *)&r->proc, wv__jobeng_on_timer_closed);
    else
      r->pid = r->proc.pid;
  }
  bool via_runner = wrapped != NULL;
  free(wrapped);
  close(fds[1]);
  if (rc) {
    close(fds[0]);
    return rc;
  }
  if (by_pidfd)
    r->handles++;
  r->proc_open = true;
  r->wrapped = via_runner;
  uint64_t spawned = uv_hrtime();
  if (r->wrapped) {
    /* Durably, before the step can do anything lasting: a restart after a crash kills this
     * group before it rules on the job (core/job/job_api.c, recover). */
    uv_mutex_lock(&r->e->mu);
    j->pgid = r->pid;
    j->pgid_start = wv_jobkill_start_time(r->pid);
    uv_mutex_unlock(&r->e->mu);
    wv__jobeng_save(r->e, j, WV_JOB_RUNNING);
  }
  wv_debug("jobs: %s step '%s': %s spawned (%s) in %.1f ms, its group saved in %.1f ms", j->id,
           s->name, file, by_pidfd ? "posix_spawn" : "uv_spawn",
           (double)(spawned - r->t_step) / 1e6, (double)(uv_hrtime() - spawned) / 1e6);
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
  const jfn_t *f = wv__jobeng_find_fn(r->e, s->fn);
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
    return wv__jobeng_close_run(r);
  int rc = status ? status : r->fn_rc;
  wv_debug("jobs: %s step '%s' ended (%s) after %.1f ms", j->id, s->name, wv_strerror(rc),
           (double)(uv_hrtime() - r->t_step) / 1e6);
  if (r->timed_out) {
    wv__jobeng_fmt_limit(j->deadline_ms, lim, sizeof lim);
    wv__jobeng_set_reason(r, -1, "%s timed out after %s", j->kind->label, lim);
  } else if (r->cancelled) {
    wv__jobeng_set_reason(r, -1, "%s", r->cancel_reason);
  } else if (rc && s->may_fail) {
    wv__jobeng_log_linef(r, "[waved: step '%s' failed: %s; continuing]", s->name, wv_strerror(rc));
    rc = 0;
  } else if (rc && r->ctx.reason[0]) {
    wv__jobeng_set_reason(r, -1, "%s", r->ctx.reason);
  } else if (rc) {
    wv__jobeng_set_reason(r, -1, "%s failed: step '%s': %s", j->kind->label, s->name,
                          wv_strerror(rc));
  }
  if (rc || r->timed_out || r->cancelled)
    return wv__jobeng_finish(r, WV_JOB_FAILED);
  if (s->ready)
    wv__jobeng_mark_ready(r);
  j->step++;
  wv__jobeng_run_step(r);
}

/* ---- the next step ---- */

void wv__jobeng_run_step(jrun_t *r) {
  job_t *j = r->job;
  if (r->timed_out || r->cancelled) /* limit hit between steps */
    return wv__jobeng_finish(r, WV_JOB_FAILED);
  if (j->step >= j->nsteps)
    return wv__jobeng_finish(r, WV_JOB_SUCCEEDED);
  const jstep_t *s = &j->steps[j->step];
  if (j->step == 0 && j->rid) {
    char rid[17];
    wv_log_request_text(j->rid, rid);
    wv__jobeng_log_linef(r, "[waved: %s submitted by request %s]", j->id, rid);
  }
  wv__jobeng_log_linef(r, "[waved: step %zu/%zu: %s]", j->step + 1, j->nsteps, s->name);
  r->t_step = uv_hrtime();
  wv_debug("jobs: %s step %zu/%zu '%s' starts %.1f ms after the job", j->id, j->step + 1, j->nsteps,
           s->name, (double)(wv_now_ns() - j->started_ns) / 1e6);
  if (s->type == WV_JOB_STEP_FN) {
    r->fn_running = true;
    r->work.data = r;
    int rc = uv_queue_work(&r->e->loop, &r->work, on_work, on_work_done);
    if (rc) {
      r->fn_running = false;
      wv__jobeng_set_reason(r, -1, "%s failed: cannot run step '%s': %s", j->kind->label, s->name,
                            uv_strerror(rc));
      wv__jobeng_finish(r, WV_JOB_FAILED);
    }
    return;
  }
  int rc = spawn_cmd(r, s);
  if (rc) {
    wv__jobeng_log_linef(r, "[waved: cannot run '%s': %s]", s->argv[0], uv_strerror(rc));
    wv__jobeng_set_reason(r, 127, "%s failed: cannot run '%s': %s", j->kind->label, s->argv[0],
                          uv_strerror(rc));
    wv__jobeng_finish(r, WV_JOB_FAILED);
  }
}
