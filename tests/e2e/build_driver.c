/*
 * tests/e2e/build_driver.c — runs one build through the real job engine and
 * builder (for tests/e2e/builder.sh), the way waved will: the state store,
 * the blob store, the job records, the --job-exec wrapper, the build kind.
 *
 * Usage: build_driver --data DIR --workdir DIR --tag TAG [--platform P]
 *          [--repo HOST/PATH] [--insecure] [--cred HOST=USER:PASS]...
 *          [--timeout DURATION_MS]
 * The work dir must hold Containerfile and context/. Prints key=value lines
 * (state, reason, exit, digest, mem) and writes <workdir>/build.log and, for
 * the embedded registry, <workdir>/manifest.json. Exit 0 when the driver
 * itself worked (whatever the build's result), 1 otherwise.
 */
#include "build/builder.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/log.h"
#include "storage/cas.h"
#include "storage/embedded.h"
#include "storage/jobstore.h"
#include "storage/store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CREDS 8

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  wv_job_info_t info;
} wait_t;

static void on_done(void *arg, const wv_job_info_t *info) {
  wait_t *w = arg;
  pthread_mutex_lock(&w->mu);
  w->info = *info;
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

typedef struct {
  const char *data, *workdir, *tag, *platform, *repo;
  bool insecure;
  int64_t timeout_ms;
  wv_builder_cred_t creds[MAX_CREDS];
  size_t ncreds;
} args_t;

static int parse_args(int argc, char **argv, args_t *a) {
  memset(a, 0, sizeof *a);
  a->platform = "linux/amd64";
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(k, "--insecure") == 0) {
      a->insecure = true;
      continue;
    }
    if (!v)
      return WV_EINVAL;
    i++;
    if (strcmp(k, "--data") == 0)
      a->data = v;
    else if (strcmp(k, "--workdir") == 0)
      a->workdir = v;
    else if (strcmp(k, "--tag") == 0)
      a->tag = v;
    else if (strcmp(k, "--platform") == 0)
      a->platform = v;
    else if (strcmp(k, "--repo") == 0)
      a->repo = v;
    else if (strcmp(k, "--timeout") == 0)
      a->timeout_ms = atoll(v);
    else if (strcmp(k, "--cred") == 0 && a->ncreds < MAX_CREDS) {
      char *host = strdup(v), *eq = strchr(host, '='), *colon = eq ? strchr(eq, ':') : NULL;
      if (!colon)
        return WV_EINVAL;
      *eq = *colon = '\0';
      a->creds[a->ncreds++] = (wv_builder_cred_t){host, eq + 1, colon + 1};
    } else
      return WV_EINVAL;
  }
  return a->data && a->workdir && a->tag ? 0 : WV_EINVAL;
}

static int save_file(const char *dir, const char *name, const char *p, size_t n) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return WV_EIO;
  size_t w = fwrite(p, 1, n, f);
  fclose(f);
  return w == n ? 0 : WV_EIO;
}

/* Last step of a pushed build: the builder's digest file lives in the work
 * dir, which the engine removes at the end; keep a copy beside it. */
static int keep_digest_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)fn_arg, (void)arg;
  char from[PATH_MAX], dir[PATH_MAX], to[PATH_MAX + 8], buf[256];
  const char *wd = wv_job_ctx_workdir(ctx);
  snprintf(from, sizeof from, "%s/digest", wd);
  snprintf(dir, sizeof dir, "%s.digest", wd);
  snprintf(to, sizeof to, "%s/digest", dir);
  mkdir(dir, 0700);
  FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
  size_t n = in ? fread(buf, 1, sizeof buf, in) : 0;
  int rc = out && fwrite(buf, 1, n, out) == n ? 0 : WV_EIO;
  if (in)
    fclose(in);
  if (out)
    fclose(out);
  return rc;
}

/* Submits the build and waits for its end. */
static int run_build(const args_t *a, wv_config_t *cfg, wv_job_engine_t *e, wv_job_info_t *out) {
  wv_builder_t b;
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256], id[WV_JOB_ID_MAX + 1], ws[PATH_MAX];
  snprintf(ws, sizeof ws, "%s/ws", a->data);
  mkdir(ws, 0700);
  wv_builder_target_t t = {.workspace = ws,
                           .workdir = a->workdir,
                           .platform = a->platform,
                           .repo = a->repo,
                           .tag = a->tag,
                           .insecure = a->insecure};
  wv_arena_t *ar = wv_arena_new(0);
  int rc = ar ? wv_builder_from_config(cfg, &b) : WV_ENOMEM;
  rc = rc ? rc : wv_builder_write_authfile(a->workdir, a->creds, a->ncreds);
  rc = rc ? rc : wv_builder_steps(ar, &b, &t, steps, &n, err, sizeof err);
  if (!rc && a->repo && n < WV_BUILDER_MAX_STEPS)
    steps[n++] =
        (wv_job_step_t){.type = WV_JOB_STEP_FN, .name = "keep-digest", .fn = "driver-keep-digest"};
  char jid[WV_JOB_ID_MAX + 1];
  snprintf(jid, sizeof jid, "bd-%s_1", a->tag);
  wv_job_spec_t spec = {.id = jid,
                        .kind = WV_BUILDER_KIND,
                        .workdir = a->workdir,
                        .deadline_ms = a->timeout_ms,
                        .steps = steps,
                        .nsteps = n};
  wait_t w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  rc = rc ? rc : wv_job_submit(e, &spec, id);
  rc = rc ? rc : wv_job_on_done(e, id, on_done, &w);
  pthread_mutex_lock(&w.mu);
  while (!rc && !w.done)
    pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  wv_arena_free(ar);
  if (rc) {
    fprintf(stderr, "build_driver: %s %s\n", wv_strerror(rc), err);
    return rc;
  }
  char *log;
  size_t len;
  /* The engine removed the work dir when the job ended (the build kind asks
   * it to); outputs of this driver go into a fresh one. */
  mkdir(a->workdir, 0700);
  if (wv_job_log(e, id, 1 << 20, &log, &len) == 0) {
    save_file(a->workdir, "build.log", log, len);
    free(log);
  }
  *out = w.info;
  return 0;
}

static void print_result(const args_t *a, wv_store_t *s, const wv_job_info_t *info,
                         wv_job_engine_t *e) {
  char digest[WV_EMBEDDED_DIGEST_LEN] = "", mt[WV_EMBEDDED_MEDIATYPE_MAX], *body;
  size_t len;
  printf("state=%s\nexit=%d\nreason=%s\nmem=%s\n", wv_job_state_name(info->state),
         info->exit_status, info->reason, wv_job_mem_name(wv_job_engine_mem(e)));
  if (info->state != WV_JOB_SUCCEEDED)
    return;
  if (!a->repo &&
      wv_embedded_get_manifest(s, WV_EMBEDDED_REPO, a->tag, &body, &len, mt, digest) == 0) {
    save_file(a->workdir, "manifest.json", body, len);
    printf("mediatype=%s\n", mt);
    free(body);
  } else if (a->repo) {
    char kept[PATH_MAX];
    snprintf(kept, sizeof kept, "%s.digest", a->workdir);
    wv_builder_result_digest(kept, digest, sizeof digest);
  }
  printf("digest=%s\n", digest);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--job-exec") == 0)
    return wv_job_exec_main(argc, argv);
  args_t a;
  if (parse_args(argc, argv, &a)) {
    fprintf(stderr, "usage: build_driver --data DIR --workdir DIR --tag TAG [...]\n");
    return 1;
  }
  wv_log_set_level(WV_LOG_WARN);
  char path[PATH_MAX], self[PATH_MAX], live[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  wv_config_t cfg;
  wv_store_t *s = NULL;
  wv_cas_t *c = NULL;
  wv_job_engine_t *e = NULL;
  wv_jobstore_t js;
  wv_job_persist_t p;
  wv_job_opts_t o;
  wv_job_info_t info;
  mkdir(a.data, 0700);
  snprintf(path, sizeof path, "%s/state", a.data);
  snprintf(live, sizeof live, "%s/logs/live", a.data);
  int rc = wv_config_defaults(&cfg);
  rc = rc ? rc : wv_store_open(&s, path, 0, 0);
  rc = rc ? rc : wv_cas_open(&c, a.data, 0);
  snprintf(path, sizeof path, "%s/logs", a.data);
  rc = rc ? rc : wv_jobstore_init(&js, s, path, 0, &p);
  wv_job_opts_init(&o);
  o.log_dir = live;
  o.persist = &p;
  o.exec_path = self;
  o.kill_grace_ms = 1000;
  rc = rc ? rc : wv_job_engine_new(&o, &e);
  wv_app_t app = {.cfg = &cfg, .store = s, .cas = c};
  rc = rc ? rc : wv_builder_register(e, &app);
  rc = rc ? rc : wv_job_register_fn(e, "driver-keep-digest", keep_digest_fn, NULL);
  rc = rc ? rc : wv_job_engine_start(e);
  rc = rc ? rc : run_build(&a, &cfg, e, &info);
  if (!rc)
    print_result(&a, s, &info, e);
  wv_job_engine_free(e);
  wv_cas_close(c);
  wv_store_close(s);
  wv_config_free(&cfg);
  for (size_t i = 0; i < a.ncreds; i++)
    free((char *)a.creds[i].host);
  if (rc)
    fprintf(stderr, "build_driver: %s\n", wv_strerror(rc));
  return rc ? 1 : 0;
}
