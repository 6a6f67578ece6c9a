/*
 * Unit tests for core/job/: the job engine with real child processes.
 *
 * The test binary doubles as the job runner (--job-exec), as waved does when waved-job-exec is
 * not installed, so memory limits run through the same code as in production; the job_exec_*
 * tests run the same cases under waved-job-exec itself, the runner waved spawns.
 */
#include "core/err.h"
#include "core/job/job.h"
#include "core/job/jobkill.h"
#include "core/log.h"
#include "runner.h"
#include "storage_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a fake in-memory persistence ---- */

#define FAKE_MAX 64
typedef struct {
  pthread_mutex_t mu;
  char *ids[FAKE_MAX], *json[FAKE_MAX], *logs[FAKE_MAX];
  size_t n, saves;
} fake_t;

static int fake_slot(fake_t *f, const char *id) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->ids[i], id) == 0)
      return (int)i;
  if (f->n == FAKE_MAX)
    return -1;
  f->ids[f->n] = strdup(id);
  return (int)f->n++;
}

static int fake_save(void *ctx, const char *id, const char *json, size_t len, bool final) {
  fake_t *f = ctx;
  pthread_mutex_lock(&f->mu);
  int i = fake_slot(f, id);
  if (i >= 0) {
    free(f->json[i]);
    f->json[i] = strndup(json, len);
    f->saves++;
  }
  pthread_mutex_unlock(&f->mu);
  return i < 0 ? WV_ETOOBIG : 0;
}

static int fake_load_all(void *ctx, wv_job_record_cb each, void *arg) {
  fake_t *f = ctx;
  int rc = 0;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < f->n && !rc; i++)
    if (f->json[i])
      rc = each(arg, f->ids[i], f->json[i], strlen(f->json[i]));
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int fake_get(void *ctx, const char *id, char **json, size_t *len) {
  fake_t *f = ctx;
  int rc = WV_ENOTFOUND;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->ids[i], id) == 0 && f->json[i]) {
      *json = strdup(f->json[i]);
      *len = strlen(*json);
      rc = 0;
    }
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int fake_put_log(void *ctx, const char *id, const void *data, size_t len) {
  fake_t *f = ctx;
  pthread_mutex_lock(&f->mu);
  int i = fake_slot(f, id);
  if (i >= 0) {
    free(f->logs[i]);
    f->logs[i] = strndup(data, len);
  }
  pthread_mutex_unlock(&f->mu);
  return i < 0 ? WV_ETOOBIG : 0;
}

static int fake_get_log(void *ctx, const char *id, size_t max, char **out, size_t *len) {
  fake_t *f = ctx;
  int rc = WV_ENOTFOUND;
  pthread_mutex_lock(&f->mu);
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->ids[i], id) == 0 && f->logs[i]) {
      size_t n = strlen(f->logs[i]);
      const char *p = f->logs[i] + (n > max ? n - max : 0);
      *out = strdup(p);
      *len = strlen(p);
      rc = 0;
    }
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static void fake_init(fake_t *f, wv_job_persist_t *p) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  *p = (wv_job_persist_t){f, fake_save, fake_load_all, fake_get, fake_put_log, fake_get_log, NULL};
}

static void fake_free(fake_t *f) {
  for (size_t i = 0; i < f->n; i++)
    free(f->ids[i]), free(f->json[i]), free(f->logs[i]);
  pthread_mutex_destroy(&f->mu);
}

/* ---- helpers ---- */

static char self_exe[PATH_MAX];
static const char *runner_exe; /* the fixtures' job runner; NULL = self_exe */

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls;
  wv_job_info_t info;
} waiter_t;

static void waiter_init(waiter_t *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

static void on_done(void *arg, const wv_job_info_t *info) {
  waiter_t *w = arg;
  pthread_mutex_lock(&w->mu);
  w->calls++;
  w->info = *info;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Waits up to ms for the first call; returns the number of calls. */
static int waiter_wait(waiter_t *w, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L)
    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&w->mu);
  while (w->calls == 0 && pthread_cond_timedwait(&w->cv, &w->mu, &ts) == 0)
    ;
  int n = w->calls;
  pthread_mutex_unlock(&w->mu);
  return n;
}

static void waiter_destroy(waiter_t *w) {
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

/*
 * A test's engine over a fake store in a temp dir. A fixture hands itself to TEST_CLEANUP when
 * it is opened, so it must outlive the test function (tests declare theirs static), and so must
 * whatever a test hands the engine (waiters, a queue): after a failed check the engine runs until
 * the clean-up. An explicit fixture_free before the test ends makes the deferred one a no-op.
 */
typedef struct {
  char dir[256];
  wv_job_engine_t *e;
  fake_t fake;
  wv_job_persist_t persist;
  bool live;     /* opened, not freed yet */
  bool own_fake; /* fake is this fixture's (not another instance's it shares) */
} fixture_t;

/* What a fixture changes in the engine's options; NULL or 0 fields = the engine's defaults. */
typedef struct {
  uint64_t log_max;
  const wv_job_queue_t *queue; /* a shared queue */
  bool rerun;                  /* opts.rerun_reclaimed */
  bool no_runner;              /* no opts.exec_path: steps are spawned as they are */
} fixture_opts_t;

static wv_job_kind_t kind_def(const char *name, int max_running, int64_t deadline_ms) {
  return (wv_job_kind_t){.name = name,
                         .label = "Container build",
                         .max_running = max_running,
                         .deadline_ms = deadline_ms};
}

static void fixture_free(fixture_t *f);

/* Opens f's engine; keep_store reopens it over the store and directory f already has. */
static int fixture_open(fixture_t *f, const char *tag, wv_job_mem_t mem, bool keep_store,
                        const fixture_opts_t *fo) {
  static const fixture_opts_t none = {0};
  fo = fo ? fo : &none;
  wv_job_opts_t o;
  char logs[300];
  if (!keep_store) {
    memset(f, 0, sizeof *f);
    if (!tmpdir_make(f->dir, tag))
      return WV_EIO;
    fake_init(&f->fake, &f->persist);
    f->live = f->own_fake = true;
    TEST_CLEANUP(fixture_free, f);
  }
  snprintf(logs, sizeof logs, "%s/logs", f->dir);
  wv_job_opts_init(&o);
  o.log_dir = logs;
  o.persist = &f->persist;
  o.exec_path = fo->no_runner ? NULL : runner_exe ? runner_exe : self_exe;
  o.mem = mem;
  o.kill_grace_ms = 300;
  o.log_max = fo->log_max;
  o.queue = fo->queue;
  o.rerun_reclaimed = fo->rerun;
  return wv_job_engine_new(&o, &f->e);
}

static void fixture_close(fixture_t *f) {
  wv_job_engine_free(f->e);
  f->e = NULL;
}

/* Stops the engine, frees the fake store and removes the directory; once (then a no-op). */
static void fixture_free(fixture_t *f) {
  if (!f->live)
    return;
  f->live = false;
  fixture_close(f);
  if (f->own_fake)
    fake_free(&f->fake);
  tmpdir_remove(f->dir);
}

/* SIGKILLs child *pid and its process group, and reaps it, unless *pid is 0 (then, or after,
 * 0): a test hands a child it forked to TEST_CLEANUP with this. */
static void child_kill(pid_t *pid) {
  if (*pid <= 0)
    return;
  kill(-*pid, SIGKILL); /* its group, when it leads one (setsid) */
  kill(*pid, SIGKILL);
  waitpid(*pid, NULL, 0);
  *pid = 0;
}

/* Submits one command job and waits for its end (up to 20 s). */
static int run_cmd(fixture_t *f, const char *kind, const char *const *argv, int64_t deadline_ms,
                   uint64_t mem, wv_job_info_t *info, char *id) {
  wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv, .cwd = f->dir};
  wv_job_spec_t spec = {.kind = kind,
                        .workdir = f->dir,
                        .deadline_ms = deadline_ms,
                        .memory_max = mem,
                        .steps = &step,
                        .nsteps = 1};
  waiter_t w;
  waiter_init(&w);
  int rc = wv_job_submit(f->e, &spec, id);
  if (!rc)
    rc = wv_job_on_done(f->e, id, on_done, &w);
  if (!rc && waiter_wait(&w, 20000) != 1)
    rc = WV_ETIMEOUT;
  *info = w.info;
  waiter_destroy(&w);
  return rc;
}

/* ---- tests ---- */

TEST(success_and_log) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *argv[] = {"sh", "-c", "echo hello-out; echo hello-err >&2; pwd", NULL};
  CHECK_OK(run_cmd(&f, "build", argv, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_SUCCEEDED);
  CHECK_EQ_INT(info.exit_status, 0);
  CHECK_EQ_STR(info.reason, "");
  CHECK(info.started_ns >= info.created_ns && info.finished_ns >= info.started_ns);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(f.e, id, 1 << 20, &log, &len));
  CHECK_HAS(log, "hello-out");
  CHECK_HAS(log, "hello-err");
  CHECK_HAS(log, f.dir);
  free(log);
  /* The tail only when asked for less. */
  CHECK_OK(wv_job_log(f.e, id, 10, &log, &len));
  CHECK_EQ_INT(len, 10);
  free(log);
  /* The final record is durable and says SUCCEEDED. */
  char *json;
  CHECK_OK(f.persist.get(&f.fake, id, &json, &len));
  CHECK_HAS(json, "\"state\":\"SUCCEEDED\"");
  free(json);
  fixture_free(&f);
}

TEST(failing_command) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *argv[] = {"sh", "-c", "echo about to fail; exit 3", NULL};
  CHECK_OK(run_cmd(&f, "build", argv, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_INT(info.exit_status, 3);
  CHECK_EQ_STR(info.reason, "Container build failed: step 'sh' exited with status 3");
  const char *missing[] = {"/nonexistent/builder", NULL};
  CHECK_OK(run_cmd(&f, "build", missing, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_HAS(info.reason, "/nonexistent/builder");
  fixture_free(&f);
}

static void restore_sighup(void *unused) {
  (void)unused;
  signal(SIGHUP, SIG_DFL);
}

static void close_fd77(void *unused) {
  (void)unused;
  close(77);
}

/*
 * A step starts clean whatever waved's state (core/job/job_step.c, spawn): no fd of waved's
 * beyond 0-2 (here one without O_CLOEXEC, which uv_spawn would have leaked), an empty signal
 * mask (the job thread's is inherited from the thread that starts the engine: SIGUSR1 blocked
 * here) and no ignored signal (SIGHUP ignored here), in the runner and in the command; stdin is
 * /dev/null. Without the runner too, where the command is found on the step's own PATH.
 */
static void step_starts_clean_with(bool no_runner) {
  static fixture_t f;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  fixture_opts_t fo = {.no_runner = no_runner};
  CHECK(dup2(open("/dev/null", O_RDONLY), 77) == 77); /* no O_CLOEXEC */
  TEST_CLEANUP(close_fd77, NULL);
  CHECK(fcntl(77, F_GETFD) == 0);
  signal(SIGHUP, SIG_IGN);
  TEST_CLEANUP(restore_sighup, NULL);
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, &old);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, &fo));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  int rc = wv_job_engine_start(f.e); /* the job thread takes this thread's mask */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  CHECK_OK(rc);
  /* The command's fds and signals, and its runner's (its parent) when there is one. */
  static char script[512];
  const char *who = no_runner ? "$$" : "$$ $PPID";
  snprintf(script, sizeof script,
           "echo fds; for p in %s; do ls /proc/$p/fd; grep -E '^Sig(Blk|Ign)' /proc/$p/status; "
           "done; readlink /proc/$$/fd/0; echo pgid $(cut -d' ' -f5 /proc/$$/stat) of $$ $PPID",
           who);
  const char *argv[] = {"sh", "-c", script, NULL};
  const char *env[] = {"PATH=/usr/bin:/bin", NULL};
  wv_job_step_t step = {
      .type = WV_JOB_STEP_CMD, .argv = argv, .env = no_runner ? env : NULL, .cwd = f.dir};
  wv_job_spec_t spec = {.kind = "build", .workdir = f.dir, .steps = &step, .nsteps = 1};
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_submit(f.e, &spec, id));
  CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
  CHECK_EQ_INT(waiter_wait(&w, 20000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  waiter_destroy(&w);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(f.e, id, 1 << 20, &log, &len));
  fprintf(stderr, "%s", getenv("TEST_DEBUG") ? log : "");
  const char *fds = strstr(log, "fds\n");
  CHECK(fds != NULL);
  CHECK_LACKS(fds ? fds : "", "\n77\n");
  CHECK_LACKS(fds ? fds : "", "\n3\n"); /* nothing but 0, 1, 2 in the runner and the command */
  CHECK_HAS(log, "\n0\n1\n2\n");
  CHECK_LACKS(log, "SigBlk:\t0000000000000200"); /* SIGUSR1 (10) */
  CHECK_LACKS(log, "SigIgn:\t0000000000000001"); /* SIGHUP (1) */
  CHECK_HAS(log, "SigBlk:\t0000000000000000");
  CHECK_HAS(log, "SigIgn:\t0000000000000000");
  CHECK_HAS(log, "/dev/null\n");
  /* The step leads its own process group: the runner, or the command itself without one. */
  const char *pg = strstr(log, "pgid ");
  long pgid = 0, self = 0, parent = 0;
  CHECK(pg && sscanf(pg, "pgid %ld of %ld %ld", &pgid, &self, &parent) == 3);
  CHECK_EQ_INT(pgid, no_runner ? self : parent);
  free(log);
  if (no_runner) { /* the step's PATH, not waved's, is searched */
    const char *missing[] = {"no-such-builder-xyz", NULL};
    step.argv = missing;
    CHECK_OK(wv_job_submit(f.e, &spec, id));
    waiter_init(&w);
    CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
    CHECK_EQ_INT(waiter_wait(&w, 20000), 1);
    CHECK_EQ_INT(w.info.state, WV_JOB_FAILED);
    CHECK_EQ_INT(w.info.exit_status, 127);
    CHECK_EQ_STR(w.info.reason,
                 "Container build failed: cannot run 'no-such-builder-xyz': no such file or "
                 "directory");
    waiter_destroy(&w);
    /* as execvp: relative PATH entries from the step's cwd, a directory of the name skipped,
     * a script without "#!" run by /bin/sh */
    char p1[400], p2[400];
    snprintf(p1, sizeof p1, "%s/bin1/plain-script", f.dir);
    snprintf(p2, sizeof p2, "%s/bin2", f.dir);
    CHECK(mkdir(p2, 0755) == 0);
    snprintf(p2, sizeof p2, "%s/bin1", f.dir);
    CHECK(mkdir(p2, 0755) == 0 && mkdir(p1, 0755) == 0);
    snprintf(p2, sizeof p2, "%s/bin2/plain-script", f.dir);
    FILE *fp = fopen(p2, "w");
    CHECK(fp != NULL);
    fputs("echo ran-by-sh \"$1\"\n", fp);
    fclose(fp);
    CHECK(chmod(p2, 0755) == 0);
    const char *plain[] = {"plain-script", "arg 1", NULL};
    const char *rel_env[] = {"PATH=bin1:bin2:/usr/bin:/bin", NULL};
    step.argv = plain;
    step.env = rel_env;
    CHECK_OK(wv_job_submit(f.e, &spec, id));
    waiter_init(&w);
    CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
    CHECK_EQ_INT(waiter_wait(&w, 20000), 1);
    CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
    waiter_destroy(&w);
    CHECK_OK(wv_job_log(f.e, id, 1 << 20, &log, &len));
    CHECK_HAS(log, "ran-by-sh arg 1\n");
    free(log);
  }
  fixture_free(&f);
}

TEST(step_starts_clean) { step_starts_clean_with(false); }
TEST(step_starts_clean_no_runner) { step_starts_clean_with(true); }

static bool pid_alive(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *fp = fopen(path, "r");
  if (!fp)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static pid_t read_pid(const char *dir, const char *name) {
  char path[400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "r");
  long pid = 0;
  if (fp) {
    if (fscanf(fp, "%ld", &pid) != 1)
      pid = 0;
    fclose(fp);
  }
  return (pid_t)pid;
}

TEST(deadline_kills_process_group) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  /* A grandchild that ignores SIGTERM: only the SIGKILL after the grace ends it. */
  const char *argv[] = {"sh", "-c",
                        "sh -c 'trap \"\" TERM; echo $$ > gc.pid; exec sleep 30' & wait", NULL};
  /* 400 ms, times the sanitizer slowdown (tests/runner.h): the grandchild must have started. */
  long deadline_ms = WV_TEST_MS(400);
  double t0 = now_sec();
  CHECK_OK(run_cmd(&f, "build", argv, deadline_ms, 0, &info, id));
  double took = now_sec() - t0;
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_INT(info.exit_status, -1);
  if (deadline_ms == 400)
    CHECK_EQ_STR(info.reason, "Container build timed out after 400ms");
  else /* 4000 ms reads "4s" */
    CHECK_HAS(info.reason, "Container build timed out after ");
  CHECK(took < 5.0 * (double)wv_test_slowdown());
  pid_t gc = read_pid(f.dir, "gc.pid");
  CHECK(gc > 0);
  for (long i = 0; i < WV_TEST_MS(100) && pid_alive(gc); i++)
    usleep(10000);
  CHECK(!pid_alive(gc));
  fixture_free(&f);
}

TEST(grandchild_does_not_outlive_its_step) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  /* The main process exits at once, leaving a background sleeper holding the pipe. */
  const char *argv[] = {"sh", "-c", "sleep 30 & echo $! > bg.pid; echo done", NULL};
  double t0 = now_sec();
  CHECK_OK(run_cmd(&f, "build", argv, 0, 0, &info, id));
  CHECK(now_sec() - t0 < 3.0);
  CHECK_EQ_INT(info.state, WV_JOB_SUCCEEDED);
  pid_t bg = read_pid(f.dir, "bg.pid");
  CHECK(bg > 0);
  for (int i = 0; i < 100 && pid_alive(bg); i++)
    usleep(10000);
  CHECK(!pid_alive(bg));
  fixture_free(&f);
}

/* Waits up to ms for a pid file to hold a live pid. */
static pid_t wait_pid_file(const char *dir, const char *name, int ms) {
  for (int i = 0; i < ms / 10; i++) {
    pid_t p = read_pid(dir, name);
    if (p > 0 && pid_alive(p))
      return p;
    usleep(10000);
  }
  return 0;
}

/* waved killed with SIGKILL mid-step: the runner's parent-death signal takes the whole step
 * with it, including a background grandchild that left the process group (setsid). */
TEST(step_dies_with_waved) {
#ifdef __SANITIZE_THREAD__
  /* The child starts the engine's threads, which TSan refuses after a fork of a threaded
   * process; the plain and ASan runs cover this case. */
  fprintf(stderr, "  skipped under ThreadSanitizer (threads after a multi-threaded fork)\n");
  return;
#endif
  static fixture_t f;
  memset(&f, 0, sizeof f);
  CHECK(tmpdir_make(f.dir, "job"));
  f.live = true; /* the directory; the child process makes the engine and the store */
  TEST_CLEANUP(fixture_free, &f);
  static pid_t waved;
  waved = fork();
  CHECK(waved >= 0);
  if (waved == 0) {
    fake_init(&f.fake, &f.persist);
    wv_job_kind_t k = kind_def("build", 2, 60000);
    if (fixture_open(&f, "job", WV_JOB_MEM_NONE, true, NULL) || wv_job_register_kind(f.e, &k) ||
        wv_job_engine_start(f.e))
      _exit(2);
    const char *argv[] = {"sh", "-c",
                          "setsid sleep 300 & echo $! > esc.pid; sleep 300 & echo $! > bg.pid; "
                          "echo $$ > main.pid; wait",
                          NULL};
    wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv, .cwd = f.dir};
    wv_job_spec_t spec = {.kind = "build", .steps = &step, .nsteps = 1};
    if (wv_job_submit(f.e, &spec, NULL))
      _exit(3);
    pause();
    _exit(0);
  }
  TEST_CLEANUP(child_kill, &waved);
  pid_t main_pid = wait_pid_file(f.dir, "main.pid", 10000);
  pid_t bg = wait_pid_file(f.dir, "bg.pid", 2000), esc = wait_pid_file(f.dir, "esc.pid", 2000);
  CHECK(main_pid > 0 && bg > 0 && esc > 0);
  kill(waved, SIGKILL);
  pid_t was = waved, reaped = waitpid(waved, NULL, 0);
  waved = 0;
  CHECK_EQ_INT(reaped, was);
  for (int i = 0; i < 300 && (pid_alive(main_pid) || pid_alive(bg) || pid_alive(esc)); i++)
    usleep(10000);
  CHECK(!pid_alive(main_pid));
  CHECK(!pid_alive(bg));
  CHECK(!pid_alive(esc));
  fixture_free(&f);
}

/* A runner that did not die with the old waved (here: stopped, so it cannot act on the
 * parent-death signal) is killed at the next start, before the job is ruled on; a recorded
 * group whose leader is not that job's runner is left alone (pid reuse). */
TEST(restart_kills_leftover_group) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 1, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  fixture_close(&f);
  static pid_t runner, other;
  runner = other = 0;
  TEST_CLEANUP(child_kill, &runner);
  TEST_CLEANUP(child_kill, &other);
  runner = fork();
  CHECK(runner >= 0);
  if (runner == 0) {
    char parent[32];
    snprintf(parent, sizeof parent, "%ld", (long)getppid());
    setsid();
    if (chdir(f.dir) != 0)
      _exit(2);
    const char *exe = runner_exe ? runner_exe : self_exe;
    execl(exe, exe, "--job-exec", "--parent", parent, "--job", "bd-left_1", "--", "sh", "-c",
          "sleep 300 & echo $! > left.pid; wait", (char *)NULL);
    _exit(127);
  }
  other = fork(); /* not a runner: must survive */
  CHECK(other >= 0);
  if (other == 0) {
    setsid();
    execlp("sleep", "sleep", "300", (char *)NULL);
    _exit(127);
  }
  pid_t left = wait_pid_file(f.dir, "left.pid", 10000);
  CHECK(left > 0);
  kill(runner, SIGSTOP);
  char rec[1024];
  const char *fmt = "{\"id\":\"%s\",\"kind\":\"build\",\"state\":\"RUNNING\",\"created\":1,"
                    "\"started\":2,\"finished\":0,\"exit\":-1,\"reason\":\"\",\"deadline_ms\":"
                    "10000,\"memory_max\":0,\"pgid\":%d,\"pgid_start\":%llu,\"steps\":[{\"type\":"
                    "\"cmd\",\"name\":\"build\",\"argv\":[\"true\"]}]}";
  snprintf(rec, sizeof rec, fmt, "bd-left_1", (int)runner,
           (unsigned long long)wv_jobkill_start_time(runner));
  CHECK_OK(f.persist.save(&f.fake, "bd-left_1", rec, strlen(rec), false));
  snprintf(rec, sizeof rec, fmt, "bd-other_1", (int)other,
           (unsigned long long)wv_jobkill_start_time(other));
  CHECK_OK(f.persist.save(&f.fake, "bd-other_1", rec, strlen(rec), false));
  CHECK(pid_alive(left));

  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, true, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  pid_t reaped = 0;
  for (int i = 0; i < 500 && reaped == 0; i++) /* bounded: the test must fail, not hang */
    if ((reaped = waitpid(runner, NULL, WNOHANG)) == 0)
      usleep(10000);
  pid_t was = runner;
  if (reaped != runner)
    kill(runner, SIGKILL), waitpid(runner, NULL, 0);
  runner = 0;
  CHECK_EQ_INT(reaped, was);
  for (int i = 0; i < 200 && pid_alive(left); i++)
    usleep(10000);
  CHECK(!pid_alive(left));
  CHECK(pid_alive(other));
  wv_job_info_t info;
  CHECK_OK(wv_job_get(f.e, "bd-left_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, WV_JOB_REASON_RESTART);
  child_kill(&other);
  fixture_free(&f);
}

static atomic_int cur_running, max_running;

static int slow_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  int now = atomic_fetch_add(&cur_running, 1) + 1;
  int prev = atomic_load(&max_running);
  while (now > prev && !atomic_compare_exchange_weak(&max_running, &prev, now))
    ;
  wv_job_ctx_logf(ctx, "slow step %s of %s", arg ? arg : "-", wv_job_ctx_id(ctx));
  usleep(100000);
  atomic_fetch_sub(&cur_running, 1);
  if (arg && strcmp(arg, "fail") == 0) {
    wv_job_ctx_fail(ctx, "Import failed: %s", "bad layout");
    return WV_EPARSE;
  }
  return 0;
}

TEST(concurrency_limit_and_fn_steps) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_register_fn(f.e, "slow", slow_fn, NULL));
  CHECK_OK(wv_job_engine_start(f.e));
  atomic_store(&cur_running, 0);
  atomic_store(&max_running, 0);
  static waiter_t w[5]; /* static: see fixture_t */
  char ids[5][WV_JOB_ID_MAX + 1];
  for (int i = 0; i < 5; i++) {
    wv_job_step_t step = {.type = WV_JOB_STEP_FN, .fn = "slow", .arg = i == 4 ? "fail" : "ok"};
    wv_job_spec_t spec = {.kind = "build", .steps = &step, .nsteps = 1};
    waiter_init(&w[i]);
    CHECK_OK(wv_job_submit(f.e, &spec, ids[i]));
    CHECK_OK(wv_job_on_done(f.e, ids[i], on_done, &w[i]));
  }
  for (int i = 0; i < 5; i++)
    CHECK_EQ_INT(waiter_wait(&w[i], 10000), 1);
  CHECK_EQ_INT(atomic_load(&max_running), 2);
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(w[i].info.state, WV_JOB_SUCCEEDED);
  CHECK_EQ_INT(w[4].info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(w[4].info.reason, "Import failed: bad layout");
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(f.e, ids[0], 4096, &log, &len));
  CHECK_HAS(log, "slow step ok");
  free(log);
  for (int i = 0; i < 5; i++)
    waiter_destroy(&w[i]);
  /* Unknown kinds and functions are refused at submit. */
  wv_job_step_t bad = {.type = WV_JOB_STEP_FN, .fn = "nope"};
  wv_job_spec_t spec = {.kind = "build", .steps = &bad, .nsteps = 1};
  CHECK_EQ_INT(wv_job_submit(f.e, &spec, NULL), WV_EINVAL);
  spec.kind = "nope";
  CHECK_EQ_INT(wv_job_submit(f.e, &spec, NULL), WV_EINVAL);
  fixture_free(&f);
}

static atomic_int counted;
static void count_cb(void *arg, const wv_job_info_t *info) {
  if (info->state == WV_JOB_SUCCEEDED)
    atomic_fetch_add(&counted, 1);
}

TEST(waiters_before_and_after) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 1, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *argv[] = {"sleep", "0.3", NULL};
  wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv};
  wv_job_spec_t spec = {
      .id = "bd-0123456789abcdef_1", .kind = "build", .steps = &step, .nsteps = 1};
  char id[WV_JOB_ID_MAX + 1];
  CHECK_OK(wv_job_submit(f.e, &spec, id));
  CHECK_EQ_STR(id, "bd-0123456789abcdef_1");
  CHECK_EQ_INT(wv_job_submit(f.e, &spec, NULL), WV_EEXISTS);
  atomic_store(&counted, 0);
  for (int i = 0; i < 5000; i++) /* thousands of parked requests: memory only */
    CHECK_OK(wv_job_on_done(f.e, id, count_cb, NULL));
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
  wv_job_info_t info;
  CHECK_OK(wv_job_get(f.e, id, &info));
  CHECK(info.state == WV_JOB_QUEUED || info.state == WV_JOB_RUNNING);
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(atomic_load(&counted), 5000);
  /* After the end: the callback runs at once, on this thread. */
  static waiter_t late; /* static: see fixture_t */
  waiter_init(&late);
  CHECK_OK(wv_job_on_done(f.e, id, on_done, &late));
  CHECK_EQ_INT(late.calls, 1);
  CHECK_EQ_INT(late.info.state, WV_JOB_SUCCEEDED);
  CHECK_EQ_INT(wv_job_on_done(f.e, "no-such-job", on_done, &late), WV_ENOTFOUND);
  waiter_destroy(&w);
  waiter_destroy(&late);
  fixture_free(&f);
}

TEST(log_readable_while_running) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 1, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *argv[] = {"sh", "-c", "echo tick; sleep 2; echo tock", NULL};
  wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv};
  wv_job_spec_t spec = {.kind = "build", .steps = &step, .nsteps = 1};
  char id[WV_JOB_ID_MAX + 1];
  CHECK_OK(wv_job_submit(f.e, &spec, id));
  bool seen = false;
  for (int i = 0; i < 150 && !seen; i++) {
    char *log = NULL;
    size_t len;
    if (wv_job_log(f.e, id, 4096, &log, &len) == 0)
      seen = strstr(log, "tick") != NULL;
    free(log);
    if (!seen)
      usleep(10000);
  }
  CHECK(seen);
  wv_job_info_t info;
  CHECK_OK(wv_job_get(f.e, id, &info));
  CHECK_EQ_INT(info.state, WV_JOB_RUNNING);
  /* Cancel ends it early, with the reason given. */
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
  CHECK_OK(wv_job_cancel(f.e, id, "Cancelled by the user"));
  CHECK_EQ_INT(waiter_wait(&w, 5000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(w.info.reason, "Cancelled by the user");
  waiter_destroy(&w);
  /* After the end the log comes from persistence (the live file is gone). */
  char path[400];
  snprintf(path, sizeof path, "%s/logs/%s.log", f.dir, id);
  CHECK(access(path, F_OK) != 0);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(f.e, id, 4096, &log, &len));
  CHECK_HAS(log, "tick");
  CHECK_LACKS(log, "tock");
  free(log);
  fixture_free(&f);
}

TEST(restart_recovery) {
  static fixture_t f;
  wv_job_kind_t once = kind_def("build", 1, 10000);
  wv_job_kind_t again = kind_def("mirror", 1, 10000);
  again.rerunnable = true;
  again.label = "Container mirror";
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &once));
  CHECK_OK(wv_job_register_kind(f.e, &again));
  CHECK_OK(wv_job_engine_start(f.e));
  /* First run: each sleeps; a re-run finds its marker and succeeds at once. */
  const char *slow[] = {"sh", "-c", "if [ -f $M ]; then echo rerun; else touch $M; sleep 30; fi",
                        NULL};
  const char *env_a[] = {"M=a.mark", "PATH=/usr/bin:/bin", NULL};
  const char *env_b[] = {"M=b.mark", "PATH=/usr/bin:/bin", NULL};
  wv_job_step_t sa = {.type = WV_JOB_STEP_CMD, .argv = slow, .env = env_a, .cwd = f.dir};
  wv_job_step_t sb = {.type = WV_JOB_STEP_CMD, .argv = slow, .env = env_b, .cwd = f.dir};
  wv_job_spec_t a = {.id = "bd-a_1", .kind = "build", .steps = &sa, .nsteps = 1};
  wv_job_spec_t q = {.id = "bd-q_1", .kind = "build", .steps = &sa, .nsteps = 1};
  wv_job_spec_t b = {.id = "mr-b", .kind = "mirror", .steps = &sb, .nsteps = 1};
  CHECK_OK(wv_job_submit(f.e, &a, NULL));
  CHECK_OK(wv_job_submit(f.e, &q, NULL)); /* waits behind a (limit 1) */
  CHECK_OK(wv_job_submit(f.e, &b, NULL));
  wv_job_info_t info;
  for (int i = 0; i < 200; i++) {
    char m[300];
    snprintf(m, sizeof m, "%s/b.mark", f.dir);
    if (wv_job_get(f.e, "bd-a_1", &info) == 0 && info.state == WV_JOB_RUNNING &&
        access(m, F_OK) == 0)
      break;
    usleep(10000);
  }
  CHECK_EQ_INT(info.state, WV_JOB_RUNNING);
  fixture_close(&f); /* "crash": records stay RUNNING / QUEUED */
  char *json;
  size_t len;
  CHECK_OK(f.persist.get(&f.fake, "bd-a_1", &json, &len));
  CHECK_HAS(json, "\"state\":\"RUNNING\"");
  free(json);

  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, true, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &once));
  CHECK_OK(wv_job_register_kind(f.e, &again));
  CHECK_OK(wv_job_engine_start(f.e));
  CHECK_OK(wv_job_get(f.e, "bd-a_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, WV_JOB_REASON_RESTART);
  CHECK_OK(wv_job_get(f.e, "bd-q_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, WV_JOB_REASON_RESTART);
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_on_done(f.e, "mr-b", on_done, &w));
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  waiter_destroy(&w);
  char *log;
  CHECK_OK(wv_job_log(f.e, "mr-b", 4096, &log, &len));
  CHECK_HAS(log, "rerun");
  free(log);
  fixture_free(&f);
}

/* ---- the shared queue (core/job/job_queue.c) with a fake queue and one fake store ---- */

typedef struct {
  pthread_mutex_t mu;
  char queued[8][WV_JOB_ID_MAX + 1];
  int nqueued;
  char ended[8][WV_JOB_ID_MAX + 1];
  int nended;
  wv_job_engine_t *other; /* told of each end, as the jobs:done message would */
} fakeq_t;

static int fq_enqueue(void *ctx, const char *kind, const char *id) {
  fakeq_t *q = ctx;
  (void)kind;
  pthread_mutex_lock(&q->mu);
  int rc = q->nqueued < 8 ? 0 : WV_EBUSY;
  if (!rc)
    snprintf(q->queued[q->nqueued++], WV_JOB_ID_MAX + 1, "%s", id);
  pthread_mutex_unlock(&q->mu);
  return rc;
}

static void fq_ended(void *ctx, const char *kind, const char *id, wv_job_state_t state) {
  fakeq_t *q = ctx;
  (void)kind, (void)state;
  pthread_mutex_lock(&q->mu);
  if (q->nended < 8)
    snprintf(q->ended[q->nended++], WV_JOB_ID_MAX + 1, "%s", id);
  wv_job_engine_t *other = q->other;
  pthread_mutex_unlock(&q->mu);
  if (other)
    wv_job_remote_ended(other, id);
}

static int fake_create(void *ctx, const char *id, const char *json, size_t len) {
  char *old;
  size_t n;
  if (fake_get(ctx, id, &old, &n) == 0) {
    free(old);
    return WV_EEXISTS;
  }
  return fake_save(ctx, id, json, len, false);
}

static int open_queued(fixture_t *f, fixture_t *share, const wv_job_queue_t *q, bool rerun) {
  wv_job_kind_t once = kind_def("build", 1, 10000);
  wv_job_kind_t again = kind_def("mirror", 1, 10000);
  again.rerunnable = true;
  fixture_opts_t fo = {.queue = q, .rerun = rerun};
  if (share) { /* the same store, its own live logs: another instance of the cluster */
    memset(f, 0, sizeof *f);
    if (!tmpdir_make(f->dir, "jobq"))
      return WV_EIO;
    f->persist = share->persist;
    f->live = true; /* its directory and engine; the store is share's */
    TEST_CLEANUP(fixture_free, f);
  }
  int rc = fixture_open(f, "jobq", WV_JOB_MEM_NONE, share != NULL, &fo);
  rc = rc ? rc : wv_job_register_kind(f->e, &once);
  rc = rc ? rc : wv_job_register_kind(f->e, &again);
  return rc ? rc : wv_job_engine_start(f->e);
}

/* Two instances x and y on one fake queue and x's store; y hears of every job x ends. */
typedef struct {
  fakeq_t fq;
  wv_job_queue_t q;
  fixture_t x, y;
} cluster_t;

/* Whatever ends in x no longer reaches y (before y is freed: clean-ups run last first). */
static void cluster_unlink(cluster_t *c) {
  pthread_mutex_lock(&c->fq.mu);
  c->fq.other = NULL;
  pthread_mutex_unlock(&c->fq.mu);
}

static void cluster_free_mu(cluster_t *c) { pthread_mutex_destroy(&c->fq.mu); }

/* Opens x, then y sharing x's store (y re-runs reclaimed builds when rerun_y). c is handed to
 * TEST_CLEANUP, so it must outlive the test (static). */
static int cluster_open(cluster_t *c, bool rerun_y) {
  memset(&c->fq, 0, sizeof c->fq);
  pthread_mutex_init(&c->fq.mu, NULL);
  TEST_CLEANUP(cluster_free_mu, c); /* last: after both engines stopped */
  c->q = (wv_job_queue_t){&c->fq, fq_enqueue, fq_ended};
  int rc = open_queued(&c->x, NULL, &c->q, false);
  if (rc)
    return rc;
  c->x.persist.create = fake_create; /* y shares x's store */
  if ((rc = open_queued(&c->y, &c->x, &c->q, rerun_y)))
    return rc;
  c->fq.other = c->y.e;
  TEST_CLEANUP(cluster_unlink, c);
  return 0;
}

/* Rewrites job id's persisted record from state "from" to RUNNING, as a run elsewhere that has
 * not ended (or whose end was fenced out) leaves it. 0, WV_ENOTFOUND (not in state from). */
static int record_set_running(fixture_t *f, const char *id, const char *from) {
  char *rec, want[64], *running = NULL;
  size_t len;
  int rc = f->persist.get(&f->fake, id, &rec, &len);
  if (rc)
    return rc;
  snprintf(want, sizeof want, "\"state\":\"%s\"", from);
  char *st = strstr(rec, want);
  rc = !st ? WV_ENOTFOUND : !(running = malloc(len + 8)) ? WV_ENOMEM : 0;
  if (!rc) {
    snprintf(running, len + 8, "%.*s\"state\":\"RUNNING\"%s", (int)(st - rec), rec,
             st + strlen(want));
    rc = fake_save(&f->fake, id, running, strlen(running), false);
  }
  free(running);
  free(rec);
  return rc;
}

/* The slow steps of the take-over tests: the first run leaves a mark and sleeps, a run that
 * finds the mark says "rerun" and ends. */
static const char *const slow[] = {
    "sh", "-c", "if [ -f $M ]; then echo rerun; else touch $M; sleep 30; fi", NULL};
static const char *const env_b[] = {"M=b.mark", "PATH=/usr/bin:/bin", NULL};
static const char *const env_m[] = {"M=m.mark", "PATH=/usr/bin:/bin", NULL};

/* Submit only queues; the instance that adopts the job runs it, and its end wakes a waiter
 * parked on the other instance. */
TEST(shared_queue_submit_adopt_remote_waiter) {
  static cluster_t c;
  CHECK_OK(cluster_open(&c, false));
  fixture_t *x = &c.x, *y = &c.y;
  const char *argv[] = {"sh", "-c", "sleep 0.3; echo built", NULL};
  wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv, .cwd = x->dir};
  wv_job_spec_t spec = {.id = "bd-s_1", .kind = "build", .steps = &step, .nsteps = 1};
  /* Submit only queues: nothing runs, the record says QUEUED everywhere. */
  CHECK_OK(wv_job_submit(x->e, &spec, NULL));
  CHECK_EQ_INT(wv_job_submit(y->e, &spec, NULL), WV_EEXISTS); /* the id is taken */
  CHECK_EQ_INT(c.fq.nqueued, 1);
  CHECK_EQ_STR(c.fq.queued[0], "bd-s_1");
  CHECK(!wv_job_local(x->e, "bd-s_1"));
  wv_job_info_t info;
  CHECK_OK(wv_job_get(y->e, "bd-s_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_QUEUED);
  /* A waiter on y for a job y does not run: parked until the end message. */
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_on_done(y->e, "bd-s_1", on_done, &w));
  char ids[4][WV_JOB_ID_MAX + 1];
  CHECK_EQ_INT((int)wv_job_remote_waited(y->e, ids, 4), 1);
  /* x takes it from the queue and runs it; its end wakes y's waiter. */
  bool ended = true;
  CHECK_OK(wv_job_adopt(x->e, "bd-s_1", WV_JOB_ADOPT_NEW, &ended));
  CHECK(!ended);
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  CHECK_EQ_INT(c.fq.nended, 1);
  CHECK_EQ_INT((int)wv_job_remote_waited(y->e, ids, 4), 0);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(y->e, "bd-s_1", 4096, &log, &len)); /* the log, read on y */
  CHECK_HAS(log, "built");
  free(log);
  CHECK_OK(wv_job_adopt(y->e, "bd-s_1", WV_JOB_ADOPT_NEW, &ended)); /* a duplicate message */
  CHECK(ended);
  waiter_destroy(&w);
}

/* A job that ended on x, delivered to x again: its record decides, never "runs here already"
 * (the Redis queue would keep tracking it forever). Ended: the message is finished. Its end
 * fenced out (the record still RUNNING, as after a lost lease): taken over like any other. */
TEST(shared_queue_adopt_after_local_end) {
  static cluster_t c;
  CHECK_OK(cluster_open(&c, false));
  fixture_t *x = &c.x;
  const char *argv[] = {"sh", "-c", "echo built", NULL};
  wv_job_step_t step = {.type = WV_JOB_STEP_CMD, .argv = argv, .cwd = x->dir};
  wv_job_spec_t spec = {.id = "bd-e_1", .kind = "build", .steps = &step, .nsteps = 1};
  CHECK_OK(wv_job_submit(x->e, &spec, NULL));
  bool ended = true;
  CHECK_OK(wv_job_adopt(x->e, "bd-e_1", WV_JOB_ADOPT_NEW, &ended));
  CHECK(!ended);
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_on_done(x->e, "bd-e_1", on_done, &w)); /* runs here: a local waiter */
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  CHECK(!wv_job_local(x->e, "bd-e_1"));
  ended = false;
  CHECK_OK(wv_job_adopt(x->e, "bd-e_1", WV_JOB_ADOPT_RECLAIM, &ended));
  CHECK(ended);
  /* The end fenced out: the record says RUNNING. A build is not re-run here (rerun false). */
  CHECK_OK(record_set_running(x, "bd-e_1", "SUCCEEDED"));
  ended = false;
  CHECK_OK(wv_job_adopt(x->e, "bd-e_1", WV_JOB_ADOPT_RECLAIM, &ended));
  CHECK(ended);
  wv_job_info_t info;
  CHECK_OK(wv_job_get(x->e, "bd-e_1", &info)); /* the record, not the run remembered here */
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, WV_JOB_REASON_LOST);
  waiter_destroy(&w);
}

/* x dies with a build and a mirror running; y takes them over: the build (not re-runnable)
 * fails with why in its log, the mirror (re-runnable) runs again from its first step. */
TEST(shared_queue_reclaim_after_instance_death) {
  static cluster_t c;
  CHECK_OK(cluster_open(&c, false));
  fixture_t *x = &c.x, *y = &c.y;
  bool ended = true;
  wv_job_step_t sb = {.type = WV_JOB_STEP_CMD, .argv = slow, .env = env_b, .cwd = x->dir};
  wv_job_step_t sm = {.type = WV_JOB_STEP_CMD, .argv = slow, .env = env_m, .cwd = x->dir};
  wv_job_spec_t b = {.id = "bd-k_1", .kind = "build", .steps = &sb, .nsteps = 1};
  wv_job_spec_t m = {.id = "mr-k", .kind = "mirror", .steps = &sm, .nsteps = 1};
  CHECK_OK(wv_job_submit(x->e, &b, NULL));
  CHECK_OK(wv_job_submit(x->e, &m, NULL));
  CHECK_OK(wv_job_adopt(x->e, "bd-k_1", WV_JOB_ADOPT_NEW, &ended));
  CHECK_OK(wv_job_adopt(x->e, "mr-k", WV_JOB_ADOPT_NEW, &ended));
  for (int i = 0; i < 300; i++) {
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/b.mark", x->dir);
    snprintf(p2, sizeof p2, "%s/m.mark", x->dir);
    if (access(p1, F_OK) == 0 && access(p2, F_OK) == 0)
      break;
    usleep(10000);
  }
  cluster_unlink(&c);
  fixture_close(x); /* records stay RUNNING */
  wv_job_info_t info;
  CHECK_OK(wv_job_get(y->e, "bd-k_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_RUNNING);
  /* Not re-runnable (rerun_reclaimed false): failed at once, with why in its log. */
  CHECK_OK(wv_job_adopt(y->e, "bd-k_1", WV_JOB_ADOPT_RECLAIM, &ended));
  CHECK(ended);
  CHECK_OK(wv_job_get(y->e, "bd-k_1", &info));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, WV_JOB_REASON_LOST);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(y->e, "bd-k_1", 4096, &log, &len));
  CHECK_HAS(log, WV_JOB_REASON_LOST);
  free(log);
  /* Re-runnable: run again on y from its first step. */
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_adopt(y->e, "mr-k", WV_JOB_ADOPT_RECLAIM, &ended));
  CHECK(!ended);
  CHECK_OK(wv_job_on_done(y->e, "mr-k", on_done, &w));
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  CHECK_OK(wv_job_log(y->e, "mr-k", 4096, &log, &len));
  CHECK_HAS(log, "rerun");
  free(log);
  waiter_destroy(&w);
}

/* With rerun_reclaimed a build is run again too (its record made RUNNING as if an instance
 * that died had been running it). */
TEST(shared_queue_rerun_reclaimed_build) {
  static cluster_t c;
  CHECK_OK(cluster_open(&c, true));
  cluster_unlink(&c); /* only y runs here */
  fixture_t *x = &c.x, *y = &c.y;
  char mark[300]; /* the dead instance's run left its mark: a run now says "rerun" */
  snprintf(mark, sizeof mark, "%s/b.mark", x->dir);
  FILE *mf = fopen(mark, "w");
  CHECK(mf);
  fclose(mf);
  bool ended = true;
  wv_job_step_t sb = {.type = WV_JOB_STEP_CMD, .argv = slow, .env = env_b, .cwd = x->dir};
  wv_job_spec_t b3 = {.id = "bd-k_3", .kind = "build", .steps = &sb, .nsteps = 1};
  CHECK_OK(wv_job_submit(y->e, &b3, NULL));
  CHECK_OK(record_set_running(x, "bd-k_3", "QUEUED"));
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_adopt(y->e, "bd-k_3", WV_JOB_ADOPT_RECLAIM, &ended));
  CHECK(!ended);
  CHECK_OK(wv_job_on_done(y->e, "bd-k_3", on_done, &w));
  CHECK_EQ_INT(waiter_wait(&w, 10000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(y->e, "bd-k_3", 4096, &log, &len));
  CHECK_HAS(log, "rerun");
  free(log);
  waiter_destroy(&w);
}

static int spin_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  for (int i = 0; i < 1000 && !wv_job_ctx_cancelled(ctx); i++) {
    wv_job_ctx_logf(ctx, "spin %d", i);
    usleep(5000);
  }
  return wv_job_ctx_cancelled(ctx) ? WV_ETIMEOUT : 0;
}

TEST(deadline_during_fn_step) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 1, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_register_fn(f.e, "spin", spin_fn, NULL));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *never[] = {"sh", "-c", "echo must not run > ran.txt", NULL};
  wv_job_step_t steps[2] = {{.type = WV_JOB_STEP_FN, .fn = "spin"},
                            {.type = WV_JOB_STEP_CMD, .argv = never, .cwd = f.dir}};
  wv_job_spec_t spec = {.kind = "build", .deadline_ms = 200, .steps = steps, .nsteps = 2};
  char id[WV_JOB_ID_MAX + 1];
  static waiter_t w; /* static: see fixture_t */
  waiter_init(&w);
  CHECK_OK(wv_job_submit(f.e, &spec, id));
  CHECK_OK(wv_job_on_done(f.e, id, on_done, &w));
  CHECK_EQ_INT(waiter_wait(&w, 5000), 1);
  CHECK_EQ_INT(w.info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(w.info.reason, "Container build timed out after 200ms");
  char path[400];
  snprintf(path, sizeof path, "%s/ran.txt", f.dir);
  CHECK(access(path, F_OK) != 0);
  waiter_destroy(&w);
  fixture_free(&f);
}

TEST(log_is_capped) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1], *log;
  size_t len;
  wv_job_kind_t k = kind_def("build", 1, 10000);
  int rc = fixture_open(&f, "job", WV_JOB_MEM_NONE, false, &(fixture_opts_t){.log_max = 4096});
  CHECK_OK(rc);
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *argv[] = {"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo", NULL};
  CHECK_OK(run_cmd(&f, "build", argv, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_SUCCEEDED);
  CHECK_OK(wv_job_log(f.e, id, 1 << 20, &log, &len));
  CHECK(len < 4096 + 200);
  CHECK_HAS(log, "log truncated");
  free(log);
  fixture_free(&f);
}

/* python3 allocates 256 MiB and touches every page. */
static const char *const hog[] = {"python3", "-c",
                                  "b = b'x' * (256 << 20)\nprint('allocated', len(b))", NULL};

static void memory_limit_with(wv_job_mem_t mech) {
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 1, 20000);
  k.memory_max = 64u << 20;
  CHECK_OK(fixture_open(&f, "job", mech, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  wv_job_mem_t used = wv_job_engine_mem(f.e);
  printf("  memory limit mechanism: %s\n", wv_job_mem_name(used));
  if (used == WV_JOB_MEM_NONE) {
    printf("  (no mechanism available: skipped)\n");
    fixture_free(&f);
    return;
  }
  CHECK_OK(run_cmd(&f, "build", (const char *const *)hog, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_STR(info.reason, "Container build exceeded the memory limit of 64MiB");
  /* The same program within a larger limit succeeds. */
  CHECK_OK(run_cmd(&f, "build", (const char *const *)hog, 0, 1u << 30, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_SUCCEEDED);
  fixture_free(&f);
}

TEST(memory_limit_auto) { memory_limit_with(WV_JOB_MEM_AUTO); }
TEST(memory_limit_rlimit) { memory_limit_with(WV_JOB_MEM_RLIMIT); }

/* A ready step releases wv_job_on_ready waiters before the tidy-up steps run; a limit that
 * cuts the tidy-up short leaves the job SUCCEEDED; only may_fail steps may follow it. */
TEST(ready_step_releases_early) {
  static fixture_t f;
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  const char *yes[] = {"true", NULL}, *nap[] = {"sleep", "1.5", NULL},
             *lng[] = {"sleep", "30", NULL};
  wv_job_step_t steps[2] = {{.type = WV_JOB_STEP_CMD, .argv = yes, .ready = true},
                            {.type = WV_JOB_STEP_CMD, .argv = nap, .may_fail = true}};
  wv_job_spec_t spec = {.id = "bd-ready_1", .kind = "build", .steps = steps, .nsteps = 2};
  CHECK_OK(wv_job_submit(f.e, &spec, NULL));
  static waiter_t ready, done, late;
  waiter_init(&ready), waiter_init(&done), waiter_init(&late);
  CHECK_OK(wv_job_on_ready(f.e, "bd-ready_1", on_done, &ready));
  CHECK_OK(wv_job_on_done(f.e, "bd-ready_1", on_done, &done));
  CHECK_EQ_INT(waiter_wait(&ready, 10000), 1);
  CHECK(ready.info.ready);
  CHECK_EQ_INT(ready.info.state, WV_JOB_RUNNING);
  CHECK_EQ_INT(done.calls, 0); /* the tidy-up step still sleeps */
  wv_job_info_t info;
  CHECK_OK(wv_job_get(f.e, "bd-ready_1", &info));
  CHECK(info.ready);
  CHECK_EQ_INT(info.state, WV_JOB_RUNNING);
  CHECK_OK(wv_job_on_ready(f.e, "bd-ready_1", on_done, &late)); /* ready already: at once */
  CHECK_EQ_INT(late.calls, 1);
  CHECK_EQ_INT(waiter_wait(&done, 10000), 1);
  CHECK_EQ_INT(done.info.state, WV_JOB_SUCCEEDED);
  /* A deadline during the tidy-up: the result stands. */
  steps[1].argv = lng;
  spec = (wv_job_spec_t){
      .id = "bd-ready_2", .kind = "build", .deadline_ms = 800, .steps = steps, .nsteps = 2};
  static waiter_t cut;
  waiter_init(&cut);
  CHECK_OK(wv_job_submit(f.e, &spec, NULL));
  CHECK_OK(wv_job_on_done(f.e, "bd-ready_2", on_done, &cut));
  CHECK_EQ_INT(waiter_wait(&cut, 10000), 1);
  CHECK_EQ_INT(cut.info.state, WV_JOB_SUCCEEDED);
  CHECK_EQ_STR(cut.info.reason, "");
  /* Only tidy-up (may_fail) steps after the ready one. */
  steps[1].may_fail = false;
  spec = (wv_job_spec_t){.id = "bd-ready_3", .kind = "build", .steps = steps, .nsteps = 2};
  CHECK_EQ_INT(wv_job_submit(f.e, &spec, NULL), WV_EINVAL);
  waiter_destroy(&ready), waiter_destroy(&done), waiter_destroy(&late), waiter_destroy(&cut);
  fixture_free(&f);
}

/* ---- waved-job-exec: the runner executable waved spawns (core/job/runner.c) ---- */

static char job_exec[PATH_MAX + 32];

static void runner_reset(void *unused) {
  (void)unused;
  runner_exe = NULL;
}

/* The waved binary: $WAVED_BIN (ctest), else ../waved from this test binary (out/tests/). */
static const char *waved_bin(char *buf, size_t n) {
  const char *bin = getenv("WAVED_BIN");
  if (bin && *bin)
    return bin;
  const char *slash = strrchr(self_exe, '/');
  snprintf(buf, n, "%.*s/../waved", slash ? (int)(slash - self_exe) : 1, slash ? self_exe : ".");
  return buf;
}

/* Makes this test's fixtures spawn waved-job-exec, found next to waved as waved finds it. */
static bool use_job_exec(void) {
  char buf[PATH_MAX];
  if (wv_job_runner_path(waved_bin(buf, sizeof buf), NULL, job_exec, sizeof job_exec) != job_exec)
    return false;
  runner_exe = job_exec;
  TEST_CLEANUP(runner_reset, NULL);
  return true;
}

/* waved finds it next to itself (a build tree) or in <bindir>/../libexec/waved (an install), else
 * runs itself; it needs nothing but libc. */
TEST(job_exec_found_libc_only) {
  static char dir[256]; /* removed after the test returns */
  char buf[PATH_MAX], out[PATH_MAX + 32], path[400];
  const char *bin = waved_bin(buf, sizeof buf);
  CHECK(wv_job_runner_path(bin, NULL, out, sizeof out) == out);
  CHECK_HAS(out, "/waved-job-exec");
  const char *none = "/nonexistent/bin/waved";
  CHECK(wv_job_runner_path(none, "../libexec", out, sizeof out) == none);
  CHECK(wv_job_runner_path("waved", "../libexec", out, sizeof out)[0] == 'w');
  /* An install: <prefix>/bin/waved and <prefix>/libexec/waved/waved-job-exec. */
  CHECK(tmpdir_make(dir, "job"));
  TEST_CLEANUP(tmpdir_remove, dir);
  snprintf(path, sizeof path, "%s/bin", dir);
  CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/libexec", dir);
  CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/libexec/waved", dir);
  CHECK(mkdir(path, 0755) == 0);
  CHECK(wv_job_runner_path(bin, NULL, out, sizeof out) == out);
  snprintf(path, sizeof path, "%s/libexec/waved/waved-job-exec", dir);
  CHECK(symlink(out, path) == 0);
  char installed[400];
  snprintf(installed, sizeof installed, "%s/bin/waved", dir);
  CHECK(wv_job_runner_path(installed, "../libexec", out, sizeof out) == out);
  CHECK_EQ_STR(out, path);
  /* Linked against libc only: none of waved's libraries (the point of it). */
  CHECK(wv_job_runner_path(bin, NULL, out, sizeof out) == out);
  char cmd[PATH_MAX + 64], line[512], all[8192] = "";
  snprintf(cmd, sizeof cmd, "ldd '%s' 2>&1", out);
  FILE *p = popen(cmd, "r");
  CHECK(p != NULL);
  int libs = 0;
  while (fgets(line, sizeof line, p)) {
    strncat(all, line, sizeof all - strlen(all) - 1);
    libs++;
  }
  CHECK_EQ_INT(pclose(p), 0);
  /* waved's own libraries; libm and libpthread are glibc's (and a sanitizer's runtime brings
   * libm): the count below says "libc only" where no sanitizer is linked in. */
  static const char *const forbidden[] = {"libuv",   "libcurl",    "libssl",    "libcrypto",
                                          "libjson", "liblmdb",    "libyaml",   "libzstd",
                                          "libz.",   "libhiredis", "libsystemd"};
  for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
    CHECK_LACKS(all, forbidden[i]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK_HAS(all, "libc.so");
  CHECK_EQ_INT(libs, 3); /* linux-vdso, libc, the dynamic loader */
#endif
}

/* Exit status and signal passed through, the engine's "cannot run X" reason, both memory-limit
 * mechanisms, all under waved-job-exec. */
TEST(job_exec_status_and_limits) {
  CHECK(use_job_exec());
  test_failing_command();
  if (wv_test_failed)
    return;
  static fixture_t f;
  wv_job_info_t info;
  char id[WV_JOB_ID_MAX + 1];
  wv_job_kind_t k = kind_def("build", 2, 10000);
  CHECK_OK(fixture_open(&f, "job", WV_JOB_MEM_NONE, false, NULL));
  CHECK_OK(wv_job_register_kind(f.e, &k));
  CHECK_OK(wv_job_engine_start(f.e));
  /* The step's parent is waved-job-exec, with the argv restart recovery looks for. */
  const char *who[] = {"sh", "-c", "tr '\\0' ' ' </proc/$PPID/cmdline", NULL};
  CHECK_OK(run_cmd(&f, "build", who, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_SUCCEEDED);
  char *log;
  size_t len;
  CHECK_OK(wv_job_log(f.e, id, 1 << 20, &log, &len));
  char want[sizeof job_exec + WV_JOB_ID_MAX + 64];
  snprintf(want, sizeof want, "%s --job-exec --parent %ld --job %s --", job_exec, (long)getpid(),
           id);
  bool has = strstr(log, want) != NULL;
  if (!has)
    fprintf(stderr, "  log: %s\n  want: %s\n", log, want);
  free(log);
  CHECK(has);
  const char *sig[] = {"sh", "-c", "kill -TERM $$", NULL};
  CHECK_OK(run_cmd(&f, "build", sig, 0, 0, &info, id));
  CHECK_EQ_INT(info.state, WV_JOB_FAILED);
  CHECK_EQ_INT(info.exit_status, 128 + SIGTERM);
  CHECK_EQ_STR(info.reason, "Container build failed: step 'sh' was killed by signal 15");
  const char *missing[] = {"/nonexistent/builder", NULL};
  CHECK_OK(run_cmd(&f, "build", missing, 0, 0, &info, id));
  CHECK_EQ_INT(info.exit_status, 127);
  CHECK_EQ_STR(
      info.reason,
      "Container build failed: cannot run /nonexistent/builder: No such file or directory");
  fixture_free(&f);
  memory_limit_with(WV_JOB_MEM_AUTO);
  if (wv_test_failed)
    return;
  memory_limit_with(WV_JOB_MEM_RLIMIT);
}

/* The deadline kills the group it leads; nothing the step started outlives it. */
TEST(job_exec_deadline_and_leftovers) {
  CHECK(use_job_exec());
  test_deadline_kills_process_group();
  if (wv_test_failed)
    return;
  test_grandchild_does_not_outlive_its_step();
}

/* waved killed mid-step: waved-job-exec's parent-death signal takes the step's tree with it. */
/* The same clean start under waved-job-exec. */
TEST(job_exec_step_starts_clean) {
  CHECK(use_job_exec());
  step_starts_clean_with(false);
}

TEST(job_exec_dies_with_waved) {
  CHECK(use_job_exec());
  test_step_dies_with_waved();
}

/* A stopped waved-job-exec left by a crash is recognised by its argv and killed at restart. */
TEST(job_exec_restart_kills_leftover) {
  CHECK(use_job_exec());
  test_restart_kills_leftover_group();
}

WV_TEST_GLOBALS;
static const wv_test_t tests[] = {
    T(success_and_log),
    T(failing_command),
    T(deadline_kills_process_group),
    T(grandchild_does_not_outlive_its_step),
    T(concurrency_limit_and_fn_steps),
    T(waiters_before_and_after),
    T(log_readable_while_running),
    T(restart_recovery),
    T(deadline_during_fn_step),
    T(log_is_capped),
    T(memory_limit_auto),
    T(memory_limit_rlimit),
    T(step_dies_with_waved),
    T(restart_kills_leftover_group),
    T(shared_queue_submit_adopt_remote_waiter),
    T(shared_queue_adopt_after_local_end),
    T(shared_queue_reclaim_after_instance_death),
    T(shared_queue_rerun_reclaimed_build),
    T(ready_step_releases_early),
    T(step_starts_clean),
    T(step_starts_clean_no_runner),
    T(job_exec_found_libc_only),
    T(job_exec_status_and_limits),
    T(job_exec_deadline_and_leftovers),
    T(job_exec_step_starts_clean),
    T(job_exec_dies_with_waved),
    T(job_exec_restart_kills_leftover),
};

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--job-exec") == 0)
    return wv_job_exec_main(argc, argv);
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n <= 0)
    return 2;
  self_exe[n] = '\0';
  wv_log_set_level(getenv("TEST_DEBUG") ? WV_LOG_DEBUG : WV_LOG_WARN);
  return wv_test_run(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
