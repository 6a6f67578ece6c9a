/*
 * core/job/runner.c — the job runner: every command step of a job runs under it
 * (docs/jobs.md "A crash leaves nothing running"). The engine spawns
 *
 *   <runner> --job-exec --parent <waved pid> --job <id> [--cgroup DIR | --rlimit-as N] -- CMD...
 *
 * where <runner> is waved-job-exec, an executable of its own built from this file,
 * core/job/runner_main.c, core/job/jobkill.c and core/job/jobcgroup.c and linked against libc
 * only, so a step's exec costs what /bin/true's does; when it is not installed, waved itself
 * (`waved --job-exec`, main() calls wv_job_exec_main). Everything here is libc: no libuv, no
 * logging, no allocation that outlives the call.
 */
#include "core/job/job.h"
#include "core/job/jobkill.h"
#include "core/job/jobmem.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The parent-death signal of the job runner (nothing else sends it to the runner). */
#define RUNNER_DEATH_SIG SIGUSR2

/* The runner's file name, next to waved in a build tree, under <libexec>/waved when installed. */
#define RUNNER_NAME "waved-job-exec"

const char *wv_job_runner_path(const char *self, const char *libexec_rel, char *out, size_t n) {
  const char *slash = self ? strrchr(self, '/') : NULL;
  if (!slash)
    return self;
  int dir = (int)(slash - self);
  int k = snprintf(out, n, "%.*s/" RUNNER_NAME, dir, self);
  if (k > 0 && (size_t)k < n && access(out, X_OK) == 0)
    return out;
  if (libexec_rel && *libexec_rel) {
    /* "/usr/bin" + "../libexec" reads "/usr/libexec" (in logs and ps), not "/usr/bin/../libexec" */
    while (strncmp(libexec_rel, "../", 3) == 0 && dir > 0) {
      while (dir > 0 && self[dir - 1] != '/')
        dir--;
      dir = dir > 0 ? dir - 1 : 0;
      libexec_rel += 3;
    }
    k = snprintf(out, n, "%.*s/%s/waved/" RUNNER_NAME, dir, self, libexec_rel);
    if (k > 0 && (size_t)k < n && access(out, X_OK) == 0)
      return out;
  }
  return self;
}

/* ---- the runner (the step's process-group leader) ---- */

static int exec_fail(int code, const char *what, const char *arg) {
  fprintf(stderr, "waved --job-exec: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
  fflush(stderr);
  return code;
}

/* Signals the runner waits for; all blocked, taken with sigwaitinfo. */
static void runner_sigset(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGCHLD);
  sigaddset(set, RUNNER_DEATH_SIG);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGQUIT);
}

/* waved is gone: nothing of this step may go on. */
static _Noreturn void runner_kill_all(const char *cgroup) {
  wv_jobkill_tree(getpid(), false);
  if (cgroup)
    wv_jobmem_signal(cgroup, SIGKILL); /* skips this process */
  kill(0, SIGKILL);                    /* the rest of the group, this process last */
  _exit(137);
}

/* Exits the way the command did: the same code, or the same signal. */
static _Noreturn void runner_exit_as(int status) {
  if (WIFEXITED(status))
    _exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  raise(sig);
  _exit(128 + sig);
}

/*
 * Whether any process is left below the runner once the command is reaped (zombies are reaped
 * here). The runner is a child subreaper, so a descendant that outlives its parent is re-parented
 * to it: a live descendant means a live child. With none (ECHILD), nothing of the step runs and
 * no new process can appear (only a descendant could start one), so the /proc walk of
 * wv_jobkill_tree — a read of every process's stat, the runner's largest cost on a busy host —
 * is skipped.
 */
static bool has_children(void) {
  pid_t got;
  while ((got = waitpid(-1, NULL, WNOHANG)) > 0)
    ;
  return !(got < 0 && errno == ECHILD);
}

/*
 * The runner stays the parent of the command: it dies with waved (a
 * parent-death signal, checked against the pid waved gave it), and then kills
 * the command's whole tree, its process group and its cgroup. It is a child
 * subreaper, so descendants that leave the group (setsid) and lose their
 * parent still hang below it. When the command ends, whatever it left is
 * killed and the runner exits with the command's status.
 */
static int run_supervised(char **cmd, pid_t parent, const char *cgroup, unsigned long long limit) {
  sigset_t set, old;
  runner_sigset(&set);
  sigprocmask(SIG_BLOCK, &set, &old);
  if (prctl(PR_SET_PDEATHSIG, RUNNER_DEATH_SIG) != 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    return exec_fail(126, "cannot watch", "the parent");
  if (getppid() != parent) /* waved died before the watch was set */
    runner_kill_all(cgroup);
  pid_t child = fork();
  if (child < 0)
    return exec_fail(126, "cannot fork for", cmd[0]);
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (limit) {
      struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
      if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(exec_fail(126, "cannot set RLIMIT_AS for", cmd[0]));
    }
    execvp(cmd[0], cmd);
    _exit(exec_fail(127, "cannot run", cmd[0])); /* the engine reads this line (job_step.c) */
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0)
      continue;
    if (getppid() != parent)
      runner_kill_all(cgroup);
    if (sig == SIGCHLD) {
      int status;
      pid_t got;
      while ((got = waitpid(-1, &status, WNOHANG)) > 0)
        if (got == child) {
          if (has_children()) {               /* else nothing of the step is left */
            wv_jobkill_tree(getpid(), false); /* nothing the step started outlives it */
            while (waitpid(-1, NULL, WNOHANG) > 0)
              ;
          }
          runner_exit_as(status);
        }
    } else if (sig != RUNNER_DEATH_SIG) {
      kill(child, sig); /* a signal sent to the runner alone reaches the command */
    }
  }
}

int wv_job_exec_main(int argc, char **argv) {
  const char *cgroup = NULL;
  unsigned long long limit = 0;
  long parent = 0;
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
    else if (strcmp(argv[i], "--parent") == 0)
      parent = strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--job") != 0) /* the job id: for recovery to recognise us */
      return errno = EINVAL, exec_fail(126, "unknown option", argv[i]);
  }
  if (i + 1 >= argc)
    return errno = EINVAL, exec_fail(126, "no command after", "--");
  if (cgroup && wv_jobmem_join(cgroup, (long)getpid()) != 0)
    return exec_fail(126, "cannot join cgroup", cgroup);
  if (parent > 0)
    return run_supervised(argv + i + 1, (pid_t)parent, cgroup, limit);
  if (limit) {
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      return exec_fail(126, "cannot set RLIMIT_AS for", argv[i + 1]);
  }
  execvp(argv[i + 1], argv + i + 1);
  return exec_fail(127, "cannot run", argv[i + 1]);
}
